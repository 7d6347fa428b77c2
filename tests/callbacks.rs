//! Callback tasks end to end: the stream function against the fake org and moto's SQS (the
//! callback queue), then the callback function against the fake org, moto's SQS and the fake
//! Amazon Connect (tests/support/fake_connect.rs). The queue is drained the way Lambda's SQS
//! event source does it: a message is deleted unless reported as a batch item failure, and a
//! reported one returns after its visibility timeout.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use ctr_cases::app::AppState;
use ctr_cases::aws::callback_queue::{CallbackQueue, CallbackTarget};
use ctr_cases::aws::connect::TaskStarter;
use ctr_cases::callback_batch::Message;
use ctr_cases::callback_function::{self, CallbackState};
use ctr_cases::report::Action;
use ctr_cases::retry::Deadline;
use ctr_cases::salesforce::SalesforceClient;
use ctr_cases::stream::process_batch;
use support::fake_connect::{self, FLOW_ID, FakeConnect, INSTANCE_ID};
use support::fake_salesforce::{self, FakeSalesforce, FieldType, OUTCOME_FIELD};
use support::fixtures;
use support::moto::{self, Moto};

const TASK_FIELD: &str = "Amazon_Connect_Callback_Task_Id__c";
const STATE_FIELD: &str = "Amazon_Connect_Callback_State__c";

struct World {
    sf: FakeSalesforce,
    moto: Moto,
    connect: FakeConnect,
    queue_url: String,
    dlq_url: String,
    env: HashMap<String, String>,
}

async fn world(connect: FakeConnect, name: &str) -> World {
    let org = fake_salesforce::start().await;
    org.org
        .add_case_field(TASK_FIELD, FieldType::Text(36), false);
    org.org
        .add_case_field(STATE_FIELD, FieldType::Text(80), false);
    let moto = moto::start().await;
    let queue_url = moto
        .create_fifo_queue(&format!("{name}-callbacks.fifo"))
        .await;
    let dlq_url = moto
        .create_fifo_queue(&format!("{name}-callbacks-dlq.fifo"))
        .await;
    let mut env = fixtures::fake_env(&org);
    for (k, v) in [
        ("CALLBACK_TASKS", "true"),
        ("CALLBACK_QUEUE_URL", queue_url.as_str()),
        ("CALLBACK_DEAD_LETTER_QUEUE_URL", dlq_url.as_str()),
        ("CONNECT_INSTANCE_ID", INSTANCE_ID),
        ("CALLBACK_TASK_CONTACT_FLOW_ID", FLOW_ID),
        ("CALLBACK_STATE_FIELD", STATE_FIELD),
    ] {
        env.insert(k.to_owned(), v.to_owned());
    }
    World {
        sf: org,
        moto,
        connect,
        queue_url,
        dlq_url,
        env,
    }
}

impl World {
    async fn stream_state(&self) -> AppState {
        let mut state = fixtures::app_state(&self.env);
        state.callbacks = CallbackTarget::Queue(CallbackQueue {
            client: self.moto.sqs().await,
            queue_url: self.queue_url.clone(),
        });
        state
    }

    async fn callback_state(&self, per_second: u32) -> CallbackState {
        let config = fixtures::test_config(&self.env);
        let callbacks = config.callbacks.clone().expect("callbacks are on");
        let credentials = match &config.credentials {
            ctr_cases::config::CredentialsConfig::Inline(c) => {
                ctr_cases::aws::secrets::CredentialSource::Static(c.clone())
            }
            other => panic!("inline credentials expected, got {other:?}"),
        };
        CallbackState {
            salesforce: SalesforceClient::new(config.salesforce, credentials).unwrap(),
            tasks: TaskStarter::new(self.connect.client(), callbacks.tasks, per_second),
            dead_letters: Some(CallbackQueue {
                client: self.moto.sqs().await,
                queue_url: self.dlq_url.clone(),
            }),
            task_id_field: callbacks.task_id_field,
            state_field: callbacks.state_field,
            deadline_margin: Duration::from_millis(500),
            metrics: None,
        }
    }

    /// Runs Kinesis record datas through the stream function; every record must end written.
    async fn stream(&self, state: &AppState, datas: &[Vec<u8>], first_seq: u64) {
        let event = fixtures::kinesis_event(datas, first_seq);
        let outcome = process_batch(state, &event, Deadline::after(Duration::from_secs(60))).await;
        assert!(
            outcome.response.batch_item_failures.is_empty(),
            "{:?}",
            outcome.summary
        );
    }

    /// Drains the callback queue through the callback function as Lambda would; answers the
    /// number of invocations.
    async fn drain(&self, state: &CallbackState) -> u32 {
        let sqs = self.moto.sqs().await;
        let mut invocations = 0;
        for _ in 0..200 {
            let out = sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(1)
                .send()
                .await
                .unwrap();
            let received = out.messages.unwrap_or_default();
            if received.is_empty() {
                let (visible, in_flight) = self.moto.message_counts(&self.queue_url).await;
                if visible + in_flight == 0 {
                    return invocations;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            invocations += 1;
            let messages: Vec<Message<'_>> = received
                .iter()
                .map(|m| Message {
                    id: m.message_id().unwrap(),
                    body: m.body().unwrap(),
                })
                .collect();
            let outcome = callback_function::process(
                state,
                &messages,
                Deadline::after(Duration::from_secs(60)),
            )
            .await;
            let failed: Vec<&str> = outcome
                .response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect();
            for m in &received {
                if !failed.contains(&m.message_id().unwrap()) {
                    sqs.delete_message()
                        .queue_url(&self.queue_url)
                        .receipt_handle(m.receipt_handle().unwrap())
                        .send()
                        .await
                        .unwrap();
                }
            }
        }
        panic!("the callback queue did not drain");
    }

    /// The tasks the fake Connect started per previous (dropped) contact.
    fn tasks_per_contact(&self) -> HashMap<String, usize> {
        let mut per = HashMap::new();
        for t in self.connect.tasks() {
            let previous = t.request["PreviousContactId"].as_str().unwrap().to_owned();
            *per.entry(previous).or_default() += 1;
        }
        per
    }
}

fn drop_data(n: u64, caller: &str, updated: &str) -> Vec<u8> {
    fixtures::dropped_ctr_for(&fixtures::contact_uuid(n), caller, updated).into_bytes()
}

fn callable(n: u64) -> Vec<u8> {
    drop_data(n, &fixtures::caller_number(n), "2024-02-25T08:36:30Z")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_callers_get_one_linked_task_each_and_anonymous_gets_none() {
    let w = world(fake_connect::start().await, "batch").await;
    let stream = w.stream_state().await;
    let mut datas: Vec<Vec<u8>> = (1..=4).map(callable).collect();
    datas.push(drop_data(5, "anonymous", "2024-02-25T08:36:30Z"));
    w.stream(&stream, &datas, 100).await;
    assert_eq!(
        w.sf.org.case_count(),
        5,
        "the anonymous caller still gets a Case"
    );
    assert_eq!(
        w.connect.calls(),
        0,
        "the stream function never calls Connect"
    );

    let callbacks = w.callback_state(50).await;
    w.drain(&callbacks).await;
    let tasks = w.connect.tasks();
    assert_eq!(tasks.len(), 4);
    for n in 1..=4 {
        let contact = fixtures::contact_uuid(n);
        let case = w.sf.org.case(&contact).expect("a Case");
        let case_id = case["Id"].as_str().unwrap();
        let task = tasks
            .iter()
            .find(|t| t.request["PreviousContactId"] == contact.as_str())
            .expect("a task for the caller");
        assert!(task.request.get("RelatedContactId").is_none());
        assert_eq!(task.request["ContactFlowId"], FLOW_ID);
        assert_eq!(
            task.request["Attributes"]["ctrCasesCallbackFor"],
            contact.as_str()
        );
        let link = task.request["References"]
            .as_object()
            .unwrap()
            .values()
            .find(|r| r["Type"] == "URL")
            .expect("a URL reference");
        assert_eq!(
            link["Value"],
            format!("{}/lightning/r/Case/{case_id}/view", w.sf.base_url)
        );
        let number = case["CaseNumber"].as_str().unwrap();
        assert!(task.request["Name"].as_str().unwrap().contains(number));
        assert!(
            task.request["Description"]
                .as_str()
                .unwrap()
                .contains(&fixtures::caller_number(n))
        );
        assert_eq!(
            case[TASK_FIELD],
            task.contact_id.as_str(),
            "task id on the Case"
        );
        assert_eq!(case[STATE_FIELD], "started");
    }
    let anonymous = w.sf.org.case(&fixtures::contact_uuid(5)).unwrap();
    assert!(
        anonymous
            .get(TASK_FIELD)
            .is_none_or(serde_json::Value::is_null)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_newer_version_and_concurrent_writers_still_start_one_task_each() {
    let w = world(fake_connect::start().await, "once").await;
    let stream = w.stream_state().await;
    let callbacks = w.callback_state(50).await;
    let datas: Vec<Vec<u8>> = (1..=3).map(callable).collect();
    w.stream(&stream, &datas, 100).await;
    w.drain(&callbacks).await;
    assert_eq!(w.connect.tasks().len(), 3);
    let first_tasks: Vec<serde_json::Value> = (1..=3)
        .map(|n| w.sf.org.case(&fixtures::contact_uuid(n)).unwrap()[TASK_FIELD].clone())
        .collect();

    // A redelivery of the same batch, a newer version of contact 1, and three concurrent
    // writers of contact 2 (three containers, three states).
    w.stream(&stream, &datas, 100).await;
    w.stream(
        &stream,
        &[drop_data(
            1,
            &fixtures::caller_number(1),
            "2024-02-25T09:00:00Z",
        )],
        200,
    )
    .await;
    let (a, b, c) = (
        w.stream_state().await,
        w.stream_state().await,
        w.stream_state().await,
    );
    let two = [drop_data(
        2,
        &fixtures::caller_number(2),
        "2024-02-25T09:30:00Z",
    )];
    tokio::join!(
        w.stream(&a, &two, 300),
        w.stream(&b, &two, 300),
        w.stream(&c, &two, 300)
    );
    // Some of those requests may wait in the queue; every one goes through the function.
    w.drain(&callbacks).await;
    assert_eq!(w.connect.tasks().len(), 3, "still one task per contact");
    assert!(w.tasks_per_contact().values().all(|&n| n == 1));
    for (n, before) in (1..=3).zip(first_tasks) {
        let case = w.sf.org.case(&fixtures::contact_uuid(n)).unwrap();
        assert_eq!(case[TASK_FIELD], before, "the task id is written once");
    }
    assert_eq!(w.sf.org.case_count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_connect_starts_every_task_exactly_once_without_holding_the_stream() {
    // Connect's default quota with a small burst; the function paces itself faster than that
    // (as several concurrent instances would), so Connect throttles.
    let w = world(fake_connect::start_with_rate(4.0, 2.0).await, "throttle").await;
    let stream = w.stream_state().await;
    let datas: Vec<Vec<u8>> = (1..=8).map(callable).collect();
    let started = std::time::Instant::now();
    w.stream(&stream, &datas, 100).await;
    let stream_took = started.elapsed();
    assert_eq!(w.connect.calls(), 0, "the stream never waits for Connect");
    assert!(stream_took < Duration::from_secs(5), "{stream_took:?}");

    let callbacks = w.callback_state(100).await;
    let invocations = w.drain(&callbacks).await;
    assert!(w.connect.throttled() > 0, "Connect throttled some requests");
    assert!(invocations > 1, "throttled requests came back");
    let per = w.tasks_per_contact();
    assert_eq!(per.len(), 8);
    assert!(per.values().all(|&n| n == 1), "{per:?}");
    for n in 1..=8 {
        let case = w.sf.org.case(&fixtures::contact_uuid(n)).unwrap();
        assert!(
            case[TASK_FIELD].is_string(),
            "task recorded for contact {n}"
        );
    }
    let (dead, _) = w.moto.message_counts(&w.dlq_url).await;
    assert_eq!(dead, 0, "throttling is not a permanent refusal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_tasks_own_ctr_makes_no_case_no_task_and_keeps_the_drop() {
    let w = world(fake_connect::start().await, "loop").await;
    let stream = w.stream_state().await;
    let callbacks = w.callback_state(50).await;
    w.stream(&stream, &[callable(1)], 100).await;
    w.drain(&callbacks).await;
    let contact = fixtures::contact_uuid(1);
    let before = w.sf.org.case(&contact).unwrap();
    let task = w.connect.tasks().remove(0);

    // The task's CTR: on the TASK channel (handled here too), API-initiated, carrying the
    // attributes the task was started with (and, worst case, the drop's Case id attribute).
    let mut env = w.env.clone();
    env.insert("CTR_CHANNELS".into(), "VOICE,TASK".into());
    let mut handles_tasks = fixtures::app_state(&env);
    handles_tasks.callbacks = CallbackTarget::Queue(CallbackQueue {
        client: w.moto.sqs().await,
        queue_url: w.queue_url.clone(),
    });
    let mut ctr: serde_json::Value = serde_json::from_str(&fixtures::dropped_ctr_for(
        &task.contact_id,
        "+15555550100",
        "2024-02-25T10:00:00Z",
    ))
    .unwrap();
    ctr["Channel"] = "TASK".into();
    ctr["InitiationMethod"] = "API".into();
    ctr["PreviousContactId"] = contact.as_str().into();
    ctr["DisconnectReason"] = "AGENT_DISCONNECT".into();
    ctr["Attributes"] = task.request["Attributes"].clone();
    ctr["Attributes"]["ctrCasesCaseId"] = before["Id"].clone();
    let event = fixtures::kinesis_event(&[ctr.to_string().into_bytes()], 500);
    let outcome = process_batch(
        &handles_tasks,
        &event,
        Deadline::after(Duration::from_secs(60)),
    )
    .await;
    assert!(outcome.response.batch_item_failures.is_empty());
    assert_eq!(outcome.reports[0].outcome, "callback_task");
    assert_eq!(outcome.reports[0].action, Action::Skipped);
    assert_eq!(w.sf.org.case_count(), 1, "no Case for the task");
    let after = w.sf.org.case(&contact).unwrap();
    assert_eq!(
        after[OUTCOME_FIELD], before[OUTCOME_FIELD],
        "the drop stays on record"
    );
    // Only the callback state changed: the task ended without an agent.
    assert_eq!(after[STATE_FIELD], "expired: AGENT_DISCONNECT");
    let mut unchanged = after.clone();
    unchanged[STATE_FIELD] = before[STATE_FIELD].clone();
    if let Some(modified) = before.get("LastModifiedDate") {
        unchanged["LastModifiedDate"] = modified.clone();
    }
    assert_eq!(unchanged, before);

    // A later version of the task's CTR: an agent took it.
    ctr["Agent"] = serde_json::json!({"Username": "agent1"});
    ctr["LastUpdateTimestamp"] = "2024-02-25T11:00:00Z".into();
    let event = fixtures::kinesis_event(&[ctr.to_string().into_bytes()], 600);
    process_batch(
        &handles_tasks,
        &event,
        Deadline::after(Duration::from_secs(60)),
    )
    .await;
    let done = w.sf.org.case(&contact).unwrap();
    assert_eq!(done[STATE_FIELD], "completed");
    assert_eq!(done[OUTCOME_FIELD], before[OUTCOME_FIELD]);
    assert_eq!(done[TASK_FIELD], before[TASK_FIELD]);
    let (queued, in_flight) = w.moto.message_counts(&w.queue_url).await;
    assert_eq!(queued + in_flight, 0, "no callback request for the task");
    assert_eq!(w.connect.tasks().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_task_goes_to_the_callback_dead_letter_queue_once() {
    let w = world(fake_connect::start().await, "refused").await;
    let stream = w.stream_state().await;
    let callbacks = w.callback_state(50).await;
    w.connect.push_fault(400, "InvalidParameterException");
    w.stream(&stream, &[callable(1)], 100).await;
    w.drain(&callbacks).await;
    assert!(w.connect.tasks().is_empty());
    let dead = w.moto.receive_all(&w.dlq_url).await;
    assert_eq!(dead.len(), 1);
    let body: serde_json::Value = moto::body_json(&dead[0]);
    assert_eq!(body["contactId"], fixtures::contact_uuid(1).as_str());
    let case = w.sf.org.case(&fixtures::contact_uuid(1)).unwrap();
    assert_eq!(case[STATE_FIELD], "not_started: InvalidParameterException");
    assert!(case.get(TASK_FIELD).is_none_or(serde_json::Value::is_null));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_fields_carry_the_reason_and_the_contact_link_only_when_on() {
    use ctr_cases::config::{CONTACT_LINK_FIELD, DISCONNECT_REASON_FIELD};
    let org = fake_salesforce::start().await;
    let plain = fixtures::app_state(&fixtures::fake_env(&org));
    let event = fixtures::kinesis_event(&[callable(1)], 100);
    process_batch(&plain, &event, Deadline::after(Duration::from_secs(60))).await;
    let case = org.org.case(&fixtures::contact_uuid(1)).unwrap();
    assert!(
        case.get(DISCONNECT_REASON_FIELD).is_none(),
        "opt-in: {case}"
    );

    org.org
        .add_case_field(DISCONNECT_REASON_FIELD, FieldType::Text(40), false);
    org.org
        .add_case_field(CONTACT_LINK_FIELD, FieldType::Text(255), false);
    let mut env = fixtures::fake_env(&org);
    env.insert("SUPERVISOR_FIELDS".into(), "true".into());
    env.insert(
        "CONNECT_INSTANCE_URL".into(),
        "https://example.my.connect.aws".into(),
    );
    let state = fixtures::app_state(&env);
    let event = fixtures::kinesis_event(&[callable(2)], 200);
    let outcome = process_batch(&state, &event, Deadline::after(Duration::from_secs(60))).await;
    assert!(outcome.response.batch_item_failures.is_empty());
    let contact = fixtures::contact_uuid(2);
    let case = org.org.case(&contact).unwrap();
    // The recorded dropped call's reason.
    assert_eq!(case[DISCONNECT_REASON_FIELD], "CONTACT_FLOW_DISCONNECT");
    assert_eq!(
        case[CONTACT_LINK_FIELD],
        format!("https://example.my.connect.aws/contact-trace-records/details/{contact}")
    );
}

/// The template's CloudWatch dashboard shows only metrics the functions emit, and every
/// callback metric.
#[test]
fn the_dashboard_shows_metrics_the_functions_emit() {
    use ctr_cases::metrics::{CALLBACK_METRIC_NAMES, METRIC_NAMES};
    let template = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml"),
    )
    .unwrap();
    let prefix = "[\"${MetricsNamespace}\",\"";
    let shown: Vec<&str> = template
        .match_indices(prefix)
        .filter_map(|(at, _)| {
            let rest = &template[at + prefix.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect();
    assert!(!shown.is_empty(), "no dashboard metrics found");
    for name in &shown {
        assert!(
            METRIC_NAMES.contains(name) || CALLBACK_METRIC_NAMES.contains(name),
            "the dashboard shows {name}, which no function emits"
        );
    }
    for name in [
        "CallbacksStarted",
        "CallbacksThrottled",
        "CallbacksDeadLettered",
        "Dropped",
    ] {
        assert!(shown.contains(&name), "{name} is not on the dashboard");
    }
}

/// The real `ctr-cases-callback` binary under a fake Lambda Runtime API: it reaches the fake
/// Connect through `AWS_ENDPOINT_URL_CONNECT`, starts the task, records it on the Case, prints
/// its metrics line, and logs no phone number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_binary_starts_the_task_through_the_connect_endpoint() {
    use support::runtime_api::{self, InvocationOutcome};
    let org = fake_salesforce::start().await;
    org.org
        .add_case_field(TASK_FIELD, FieldType::Text(36), false);
    let connect = fake_connect::start().await;
    let plain = fixtures::app_state(&fixtures::fake_env(&org));
    let event = fixtures::kinesis_event(&[callable(7)], 100);
    process_batch(&plain, &event, Deadline::after(Duration::from_secs(60))).await;
    let contact = fixtures::contact_uuid(7);
    let case_id = org.org.case(&contact).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_owned();

    let api = runtime_api::start().await;
    let mut env = runtime_api::lambda_env(&api);
    env.extend(
        fixtures::fake_env(&org)
            .into_iter()
            .map(|(k, v)| (Box::leak(k.into_boxed_str()) as &'static str, v)),
    );
    env.extend([
        ("AWS_LAMBDA_LOG_FORMAT", "json".to_owned()),
        ("AWS_ENDPOINT_URL_CONNECT", connect.url.clone()),
        ("CALLBACK_TASKS", "true".to_owned()),
        (
            "CALLBACK_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/123456789012/cb.fifo".to_owned(),
        ),
        ("CONNECT_INSTANCE_ID", INSTANCE_ID.to_owned()),
        ("CALLBACK_TASK_CONTACT_FLOW_ID", FLOW_ID.to_owned()),
    ]);
    let mut child = runtime_api::spawn(env!("CARGO_BIN_EXE_ctr-cases-callback"), &env);
    let caller = fixtures::caller_number(7);
    let body = serde_json::json!({
        "contactId": contact,
        "caseId": case_id,
        "phone": caller,
        "outcome": "dropped",
        "disconnectedAt": "2024-02-25T08:36:30Z",
    });
    let sqs_event = serde_json::json!({"Records": [{
        "messageId": "m-1",
        "receiptHandle": "r-1",
        "body": body.to_string(),
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:cb.fifo",
        "awsRegion": "us-east-1",
    }]});
    let id = api.invoke(sqs_event, Duration::from_secs(30));
    let answer = match api.outcome(&id, Duration::from_secs(60)).await {
        Some(InvocationOutcome::Response(v)) => v,
        other => panic!("no answer: {other:?}\n{}", child.dump()),
    };
    assert_eq!(
        answer,
        serde_json::json!({"batchItemFailures": []}),
        "{}",
        child.dump()
    );
    let tasks = connect.tasks();
    assert_eq!(tasks.len(), 1, "{}", child.dump());
    assert_eq!(tasks[0].request["PreviousContactId"], contact.as_str());
    let case = org.org.case(&contact).unwrap();
    assert_eq!(case[TASK_FIELD], tasks[0].contact_id.as_str());
    // The metrics line is printed before the answer is posted, but the pipe reader may not
    // have collected it yet: wait for it, then stop the process so all output is in.
    let metrics = child
        .wait_for_line("\"CallbacksStarted\":1", Duration::from_secs(10))
        .await;
    child.kill().await;
    let output = child.dump();
    assert!(metrics.is_some(), "no metrics line: {output}");
    assert!(
        !output.contains(&caller),
        "a phone number in the output: {output}"
    );
}
