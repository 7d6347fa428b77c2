//! A fake AWS Lambda Runtime API (version `2018-06-01`) served on `127.0.0.1`,
//! plus a helper to run a child process and capture its output.
//!
//! It lets an integration test run the real, built Lambda binary end to end:
//!
//! 1. [`start`] the fake API (it binds `127.0.0.1:0`, so every test gets its own port);
//! 2. [`spawn`] the binary with `AWS_LAMBDA_RUNTIME_API` set to
//!    [`RuntimeApi::endpoint`] and the other variables from [`lambda_env`];
//! 3. queue events with [`RuntimeApi::invoke`] and read what the function answered
//!    with [`RuntimeApi::outcome`].
//!
//! Implemented endpoints (see the AWS "Lambda runtime API" documentation):
//!
//! | method | path                                            | answer |
//! |--------|-------------------------------------------------|--------|
//! | GET    | `/2018-06-01/runtime/invocation/next`           | long-polls until an event is queued, then `200` with the event body and the `Lambda-Runtime-*` headers |
//! | POST   | `/2018-06-01/runtime/invocation/{id}/response`  | `202`, records [`InvocationOutcome::Response`] |
//! | POST   | `/2018-06-01/runtime/invocation/{id}/error`     | `202`, records [`InvocationOutcome::Error`] |
//! | POST   | `/2018-06-01/runtime/init/error`                | `202`, records the body for [`RuntimeApi::init_error`] |
//!
//! Nothing here talks to any address but `127.0.0.1`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

/// The function name that [`lambda_env`] sets and [`FUNCTION_ARN`] names.
pub const FUNCTION_NAME: &str = "ctr-cases-test";

/// The ARN sent in `Lambda-Runtime-Invoked-Function-Arn` with every invocation.
pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:ctr-cases-test";

/// What the function reported for one invocation.
#[derive(Debug, Clone)]
pub enum InvocationOutcome {
    /// Body of `POST /runtime/invocation/{id}/response`: the handler's `Ok` value.
    /// A body that is not JSON is kept as a JSON string.
    Response(Value),
    /// Body of `POST /runtime/invocation/{id}/error`: for `lambda_runtime` this is
    /// its `Diagnostic`, `{"errorType": ..., "errorMessage": ...}`.
    /// A body that is not JSON is kept as a JSON string.
    Error(Value),
}

impl InvocationOutcome {
    /// The response body, if the invocation succeeded.
    pub fn response(&self) -> Option<&Value> {
        match self {
            Self::Response(v) => Some(v),
            Self::Error(_) => None,
        }
    }

    /// The error body, if the invocation failed.
    pub fn error(&self) -> Option<&Value> {
        match self {
            Self::Error(v) => Some(v),
            Self::Response(_) => None,
        }
    }
}

/// One queued invocation, as handed out by `/invocation/next`.
#[derive(Debug)]
struct Event {
    request_id: String,
    deadline_ms: u64,
    trace_id: String,
    body: Vec<u8>,
}

/// State shared between the [`RuntimeApi`] handle and the HTTP handlers.
struct Shared {
    /// Sender side of the event queue; [`RuntimeApi::invoke`] pushes here.
    queue_tx: mpsc::UnboundedSender<Event>,
    /// Receiver side; each `/next` long-poll holds the lock while it waits.
    /// `recv` is cancel-safe, so a poll dropped by a dying client loses no event.
    queue_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Event>>,
    /// Outcomes by request id.
    outcomes: Mutex<HashMap<String, InvocationOutcome>>,
    /// Error types (`Lambda-Runtime-Function-Error-Type` header) by request id.
    error_types: Mutex<HashMap<String, String>>,
    /// Request ids that a `/next` poll has handed out, in order.
    delivered: Mutex<Vec<String>>,
    /// The first `/init/error` body received.
    init_error: Mutex<Option<Value>>,
    /// Woken whenever anything above changes.
    changed: Notify,
    /// Source of unique request ids.
    counter: AtomicU64,
}

impl Shared {
    /// Stores invocation `id`'s outcome and wakes the waiters.
    fn record_outcome(&self, id: String, outcome: InvocationOutcome) {
        self.outcomes.lock().unwrap().insert(id, outcome);
        self.changed.notify_waiters();
    }

    /// Wait until `check` returns `Some`, or `wait` elapses.
    async fn wait_for<T>(
        &self,
        wait: Duration,
        mut check: impl FnMut(&Self) -> Option<T>,
    ) -> Option<T> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Register interest before checking, so no wake-up is missed in between.
            notified.as_mut().enable();
            if let Some(found) = check(self) {
                return Some(found);
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                return check(self);
            }
        }
    }
}

/// A running fake Runtime API. The server task stops when this is dropped.
pub struct RuntimeApi {
    /// Where the server listens (`127.0.0.1:PORT`).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

/// Start a fake Runtime API on a free `127.0.0.1` port.
///
/// Must be called inside a Tokio runtime; the server runs as a task on it.
pub async fn start() -> RuntimeApi {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind the fake Lambda Runtime API to 127.0.0.1:0");
    let addr = listener
        .local_addr()
        .expect("local address of the fake Runtime API");

    let (queue_tx, queue_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        queue_tx,
        queue_rx: tokio::sync::Mutex::new(queue_rx),
        outcomes: Mutex::new(HashMap::new()),
        error_types: Mutex::new(HashMap::new()),
        delivered: Mutex::new(Vec::new()),
        init_error: Mutex::new(None),
        changed: Notify::new(),
        counter: AtomicU64::new(1),
    });

    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(invocation_response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(invocation_error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        // Lambda accepts 6 MB payloads; axum's default limit is 2 MB.
        .layer(DefaultBodyLimit::max(16 * 1024 * 1024))
        .with_state(shared.clone());

    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("fake Lambda Runtime API stopped: {e}");
        }
    });

    RuntimeApi {
        addr,
        shared,
        server,
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    /// `127.0.0.1:PORT`, without a scheme: the value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Queue one invocation whose deadline is `timeout` from now (that is, from this
    /// call, not from when the function picks it up); returns its request id.
    ///
    /// The event is handed to the next (or a waiting) `GET .../invocation/next`, with
    /// the headers `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`
    /// (epoch milliseconds), `Lambda-Runtime-Invoked-Function-Arn` ([`FUNCTION_ARN`])
    /// and `Lambda-Runtime-Trace-Id`.
    pub fn invoke(&self, payload: Value, timeout: Duration) -> String {
        let body = serde_json::to_vec(&payload).expect("serialize the invocation payload");
        self.invoke_raw(body, timeout)
    }

    /// Like [`RuntimeApi::invoke`], with a body that need not be JSON.
    pub fn invoke_raw(&self, body: impl Into<Vec<u8>>, timeout: Duration) -> String {
        let n = self.shared.counter.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970");
        let deadline_ms = u64::try_from((now + timeout).as_millis()).expect("deadline fits in u64");
        let request_id = format!("{:08x}-0000-4000-8000-{:012x}", self.addr.port(), n);
        let trace_id = format!(
            "Root=1-{:08x}-{:012x}{:012x};Parent={:016x};Sampled=0",
            now.as_secs(),
            self.addr.port(),
            n,
            n
        );
        self.shared
            .queue_tx
            .send(Event {
                request_id: request_id.clone(),
                deadline_ms,
                trace_id,
                body: body.into(),
            })
            .expect("the fake Runtime API owns its queue");
        request_id
    }

    /// Wait (up to `wait`) for the outcome of the invocation `request_id`.
    /// Returns `None` if the function has not answered by then. The outcome stays
    /// recorded, so asking again returns it again.
    pub async fn outcome(&self, request_id: &str, wait: Duration) -> Option<InvocationOutcome> {
        self.shared
            .wait_for(wait, |s| {
                s.outcomes.lock().unwrap().get(request_id).cloned()
            })
            .await
    }

    /// The `Lambda-Runtime-Function-Error-Type` header sent with the error report of
    /// `request_id` (`lambda_runtime` sends `unhandled`), if an error was reported.
    pub fn error_type(&self, request_id: &str) -> Option<String> {
        self.shared
            .error_types
            .lock()
            .unwrap()
            .get(request_id)
            .cloned()
    }

    /// Wait (up to `wait`) for a `POST /runtime/init/error` report, returning its body
    /// (a JSON string if the body was not JSON). `None` if none arrived in time.
    pub async fn init_error(&self, wait: Duration) -> Option<Value> {
        self.shared
            .wait_for(wait, |s| s.init_error.lock().unwrap().clone())
            .await
    }

    /// Wait (up to `wait`) until the function has polled `/invocation/next` and been
    /// handed `request_id`. Useful to tell "never picked up" from "picked up, no answer".
    pub async fn delivered(&self, request_id: &str, wait: Duration) -> bool {
        self.shared
            .wait_for(wait, |s| {
                s.delivered
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|id| id == request_id)
                    .then_some(())
            })
            .await
            .is_some()
    }

    /// Request ids handed out by `/invocation/next` so far, in order.
    pub fn delivered_ids(&self) -> Vec<String> {
        self.shared.delivered.lock().unwrap().clone()
    }
}

/// Parse a request body as JSON, or keep it as a JSON string if it is not JSON.
fn body_value(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// `GET /2018-06-01/runtime/invocation/next`: long-poll until an event is queued.
async fn next_invocation(State(shared): State<Arc<Shared>>) -> Response {
    let event = {
        let mut rx = shared.queue_rx.lock().await;
        rx.recv().await
    };
    let Some(event) = event else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    shared
        .delivered
        .lock()
        .unwrap()
        .push(event.request_id.clone());
    shared.changed.notify_waiters();

    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).expect("valid header value"),
        );
    };
    put("content-type", "application/json");
    put("lambda-runtime-aws-request-id", &event.request_id);
    put("lambda-runtime-deadline-ms", &event.deadline_ms.to_string());
    put("lambda-runtime-invoked-function-arn", FUNCTION_ARN);
    put("lambda-runtime-trace-id", &event.trace_id);
    (StatusCode::OK, headers, event.body).into_response()
}

/// `POST /2018-06-01/runtime/invocation/{id}/response`.
async fn invocation_response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    shared.record_outcome(id, InvocationOutcome::Response(body_value(&body)));
    StatusCode::ACCEPTED
}

/// `POST /2018-06-01/runtime/invocation/{id}/error`.
async fn invocation_error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if let Some(kind) = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
    {
        shared
            .error_types
            .lock()
            .unwrap()
            .insert(id.clone(), kind.to_owned());
    }
    shared.record_outcome(id, InvocationOutcome::Error(body_value(&body)));
    StatusCode::ACCEPTED
}

/// `POST /2018-06-01/runtime/init/error`.
async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    shared
        .init_error
        .lock()
        .unwrap()
        .get_or_insert_with(|| body_value(&body));
    shared.changed.notify_waiters();
    StatusCode::ACCEPTED
}

/// The environment for running a Lambda binary against `api`.
///
/// What `lambda_runtime` 1.5 reads: `AWS_LAMBDA_RUNTIME_API` (required; `host:port`,
/// `http://` is assumed), `AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`
/// (an `i32`) and `AWS_LAMBDA_FUNCTION_VERSION` (all three required, it panics without
/// them), `AWS_LAMBDA_LOG_STREAM_NAME` and `AWS_LAMBDA_LOG_GROUP_NAME` (optional).
///
/// Like real Lambda it also sets `AWS_REGION`/`AWS_DEFAULT_REGION` (`us-east-1`) and
/// static credentials (`testing`/`testing`), plus two guards so an AWS SDK in the
/// child never leaves the machine: `AWS_EC2_METADATA_DISABLED=true` (no IMDS lookup)
/// and `AWS_ENDPOINT_URL=http://127.0.0.1:9` (a closed loopback port, so a call whose
/// endpoint a test forgot fails fast). Push `("AWS_ENDPOINT_URL", moto.endpoint.clone())`
/// (or service-specific endpoint variables) after these: with [`spawn`], a later entry
/// for the same name wins.
pub fn lambda_env(api: &RuntimeApi) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_LAMBDA_RUNTIME_API", api.endpoint()),
        ("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/01/01/[$LATEST]0123456789abcdef".to_owned(),
        ),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{FUNCTION_NAME}"),
        ),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9".to_owned()),
    ]
}

/// A child process whose stdout and stderr lines are collected in the background.
/// It is killed when dropped.
pub struct ChildProcess {
    child: tokio::process::Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

/// Spawn `program` with a cleared environment holding only `PATH` (copied from this
/// process) and `envs` (applied in order, so a later entry for a name overrides an
/// earlier one), with stdout and stderr piped and collected line by line.
///
/// Must be called inside a Tokio runtime (the readers are tasks on it). Panics if the
/// program cannot be started.
pub fn spawn(program: &str, envs: &[(&str, String)]) -> ChildProcess {
    let mut cmd = tokio::process::Command::new(program);
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    for (key, value) in envs {
        cmd.env(key, value);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("failed to spawn {program}: {e}"));

    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(collect_lines(out, stdout.clone())));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(collect_lines(err, stderr.clone())));
    }
    ChildProcess {
        child,
        stdout,
        stderr,
        readers,
    }
}

/// Read `stream` to its end, pushing each line (without its newline) into `sink`.
async fn collect_lines(stream: impl AsyncRead + Unpin, sink: Arc<Mutex<Vec<String>>>) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                while matches!(buf.last(), Some(b'\n' | b'\r')) {
                    buf.pop();
                }
                sink.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf).into_owned());
            }
        }
    }
}

impl ChildProcess {
    /// The stdout lines collected so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// The stderr lines collected so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// The OS process id, while the process has not been reaped.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kill the process (SIGKILL), reap it, and wait (up to 5 s) for its remaining
    /// output to be collected. Does nothing harmful if it has already exited.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
        self.drain_readers().await;
    }

    /// Wait (up to `wait`) for the process to exit by itself. On exit, also waits for
    /// its remaining output to be collected. `None` if it is still running.
    pub async fn wait_exit(&mut self, wait: Duration) -> Option<ExitStatus> {
        let status = tokio::time::timeout(wait, self.child.wait())
            .await
            .ok()?
            .ok()?;
        self.drain_readers().await;
        Some(status)
    }

    /// Wait (up to `wait`) for a stdout or stderr line containing `needle`; returns
    /// the first such line.
    pub async fn wait_for_line(&self, needle: &str, wait: Duration) -> Option<String> {
        let until = Instant::now() + wait;
        loop {
            let found = {
                let out = self.stdout.lock().unwrap();
                let err = self.stderr.lock().unwrap();
                out.iter()
                    .chain(err.iter())
                    .find(|l| l.contains(needle))
                    .cloned()
            };
            if found.is_some() || Instant::now() >= until {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Both streams, labelled, for a panic message.
    pub fn dump(&self) -> String {
        let mut s = String::from("--- stdout ---\n");
        for l in self.stdout_lines() {
            s.push_str(&l);
            s.push('\n');
        }
        s.push_str("--- stderr ---\n");
        for l in self.stderr_lines() {
            s.push_str(&l);
            s.push('\n');
        }
        s
    }

    /// Await the reader tasks (bounded, in case a grandchild holds the pipes open).
    async fn drain_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let abort = reader.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), reader)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}
