//! A fake Amazon Connect for `StartTaskContact` (moto does not implement it), speaking the AWS
//! REST-JSON protocol as the API reference describes it: `PUT /contact/task` with a JSON body,
//! `200 {"ContactId","ContactArn"}`, errors as a status plus `x-amzn-ErrorType` and
//! `{"Message"}`. It follows the StartTaskContact API reference, not our client:
//!
//! - `InstanceId` must name the instance (else `ResourceNotFoundException`, 404); exactly one of
//!   `ContactFlowId`, `QuickConnectId`, `TaskTemplateId` (else `InvalidRequestException`, 400);
//!   a known flow or template (else `ResourceNotFoundException`); `Name` (unless a template)
//!   ≤ 512 and `Description` ≤ 4,096 characters, reference types `URL | NUMBER | STRING | DATE |
//!   EMAIL`, `ScheduledTime` no more than 6 days ahead (else `InvalidParameterException`, 400).
//! - `ClientToken`: the same token with the same request answers the contact it started; with a
//!   different request, `IdempotencyException` (409). Tokens are honoured for 7 days.
//! - At most 12 tasks share one `PreviousContactId` (`ServiceQuotaExceededException`, 402 as
//!   Connect sends it for quotas; the code is what clients read).
//! - The default rate quota: a token bucket (2 per second, burst 5 by default); over it,
//!   `ThrottlingException` (429). Scripted faults answer the next requests first.
//!
//! The SDK reaches it through an endpoint URL (`AWS_ENDPOINT_URL_CONNECT` in a deployed
//! function, `endpoint_url` on the client in process).
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use serde_json::{Value, json};

/// The instance the fake serves.
pub const INSTANCE_ID: &str = "11111111-2222-4333-8444-555555555555";
/// A task flow that exists.
pub const FLOW_ID: &str = "66666666-7777-4888-9999-000000000000";

/// A started task.
#[derive(Debug, Clone)]
pub struct Task {
    /// Its ContactId.
    pub contact_id: String,
    /// The request body that started it.
    pub request: Value,
}

#[derive(Debug)]
struct Bucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct ConnectState {
    tasks: Vec<Task>,
    by_token: HashMap<String, (usize, Value)>,
    bucket: Bucket,
    faults: VecDeque<(u16, String)>,
    calls: u64,
    throttled: u64,
}

/// The fake's state, shared with the test.
#[derive(Debug, Clone)]
pub struct FakeConnect {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<Mutex<ConnectState>>,
}

/// Starts a fake Connect with the default quota (2 per second, burst 5).
pub async fn start() -> FakeConnect {
    start_with_rate(2.0, 5.0).await
}

/// Starts a fake Connect allowing `per_second` requests with a burst of `burst`.
pub async fn start_with_rate(per_second: f64, burst: f64) -> FakeConnect {
    let state = Arc::new(Mutex::new(ConnectState {
        tasks: Vec::new(),
        by_token: HashMap::new(),
        bucket: Bucket {
            per_second,
            burst,
            tokens: burst,
            at: Instant::now(),
        },
        faults: VecDeque::new(),
        calls: 0,
        throttled: 0,
    }));
    let app = Router::new()
        .route("/contact/task", put(start_task_contact))
        .fallback(|| async { error(404, "UnknownOperationException", "not implemented") })
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    FakeConnect { url, state }
}

impl FakeConnect {
    fn lock(&self) -> std::sync::MutexGuard<'_, ConnectState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every task started, in order.
    pub fn tasks(&self) -> Vec<Task> {
        self.lock().tasks.clone()
    }

    /// StartTaskContact requests received (every answer counted).
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    /// Requests answered with `ThrottlingException`.
    pub fn throttled(&self) -> u64 {
        self.lock().throttled
    }

    /// Answers the next request with `status` and the error `code`.
    pub fn push_fault(&self, status: u16, code: &str) {
        self.lock().faults.push_back((status, code.to_owned()));
    }

    /// A Connect client for this fake (static credentials, no SDK retries).
    pub fn client(&self) -> aws_sdk_connect::Client {
        let config = aws_sdk_connect::Config::builder()
            .behavior_version(aws_sdk_connect::config::BehaviorVersion::latest())
            .region(aws_sdk_connect::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_connect::config::Credentials::new(
                "testing", "testing", None, None, "fake",
            ))
            .endpoint_url(&self.url)
            .retry_config(aws_sdk_connect::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_connect::Client::from_conf(config)
    }
}

fn error(status: u16, code: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("x-amzn-ErrorType", code.parse().unwrap());
    (status, headers, axum::Json(json!({ "Message": message }))).into_response()
}

/// The documented validation errors, as `(status, code, message)`.
fn validate(body: &Value) -> Result<(), (u16, &'static str, &'static str)> {
    let text = |k: &str| body.get(k).and_then(Value::as_str);
    if text("InstanceId") != Some(INSTANCE_ID) {
        return Err((404, "ResourceNotFoundException", "instance not found"));
    }
    let targets = ["ContactFlowId", "QuickConnectId", "TaskTemplateId"]
        .iter()
        .filter(|k| body.get(**k).is_some())
        .count();
    if targets != 1 {
        return Err((
            400,
            "InvalidRequestException",
            "exactly one of ContactFlowId, QuickConnectId, TaskTemplateId",
        ));
    }
    if let Some(flow) = text("ContactFlowId")
        && flow != FLOW_ID
    {
        return Err((404, "ResourceNotFoundException", "contact flow not found"));
    }
    if text("TaskTemplateId").is_some() {
        return Err((404, "ResourceNotFoundException", "task template not found"));
    }
    let name = text("Name").unwrap_or_default();
    if name.is_empty() || name.chars().count() > 512 {
        return Err((400, "InvalidParameterException", "Name"));
    }
    if text("Description").is_some_and(|d| d.chars().count() > 4096) {
        return Err((400, "InvalidParameterException", "Description"));
    }
    if let Some(references) = body.get("References").and_then(Value::as_object) {
        for r in references.values() {
            let kind = r.get("Type").and_then(Value::as_str).unwrap_or_default();
            if !["URL", "NUMBER", "STRING", "DATE", "EMAIL"].contains(&kind)
                || r.get("Value").and_then(Value::as_str).is_none()
            {
                return Err((400, "InvalidParameterException", "References"));
            }
        }
    }
    if let Some(at) = body.get("ScheduledTime").and_then(Value::as_f64) {
        let now = chrono::Utc::now().timestamp() as f64;
        if at > now + 6.0 * 24.0 * 3600.0 {
            return Err((400, "InvalidParameterException", "ScheduledTime"));
        }
    }
    Ok(())
}

async fn start_task_contact(
    State(state): State<Arc<Mutex<ConnectState>>>,
    body: String,
) -> Response {
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return error(400, "InvalidRequestException", "body is not JSON");
    };
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    s.calls += 1;
    if let Some((status, code)) = s.faults.pop_front() {
        return error(status, &code, "scripted fault");
    }
    if !s.bucket.take() {
        s.throttled += 1;
        return error(429, "ThrottlingException", "Rate exceeded");
    }
    if let Err((status, code, message)) = validate(&body) {
        return error(status, code, message);
    }
    let token = body
        .get("ClientToken")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(token) = &token
        && let Some((index, first)) = s.by_token.get(token)
    {
        if *first != body {
            return error(
                409,
                "IdempotencyException",
                "the ClientToken was used with a different request",
            );
        }
        let id = s.tasks[*index].contact_id.clone();
        return answer(&id);
    }
    if let Some(previous) = body.get("PreviousContactId").and_then(Value::as_str) {
        let chained = s
            .tasks
            .iter()
            .filter(|t| t.request["PreviousContactId"] == previous)
            .count();
        if chained >= 12 {
            return error(
                402,
                "ServiceQuotaExceededException",
                "12 tasks already share this PreviousContactId",
            );
        }
    }
    let n = s.tasks.len() as u64 + 1;
    let id = format!("{:08x}-aaaa-4bbb-8ccc-{:012x}", n, n);
    s.tasks.push(Task {
        contact_id: id.clone(),
        request: body.clone(),
    });
    if let Some(token) = token {
        let index = s.tasks.len() - 1;
        s.by_token.insert(token, (index, body));
    }
    answer(&id)
}

fn answer(id: &str) -> Response {
    axum::Json(json!({
        "ContactId": id,
        "ContactArn": format!(
            "arn:aws:connect:us-east-1:123456789012:instance/{INSTANCE_ID}/contact/{id}"
        ),
    }))
    .into_response()
}

/// How long a test waits for a throttled bucket to refill by one request.
pub fn refill_time(per_second: f64) -> Duration {
    Duration::from_secs_f64(1.0 / per_second)
}
