//! The contact-flow function (`ctr-cases-flow`) and customer linking, against the fake org on
//! 127.0.0.1: the real binary through the fake Lambda Runtime API, and the library for the
//! cases that need many calls at once.
//! See: issue "The happy path: hand-off Cases from the contact flow".

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctr_cases::flow;
use ctr_cases::report::Action;
use ctr_cases::retry::Deadline;
use ctr_cases::stream::process_batch;
use serde_json::{Value, json};
use support::fake_salesforce::{self, FakeSalesforce, OUTCOME_FIELD};
use support::fixtures::*;
use support::runtime_api::{self, InvocationOutcome};

const FLOW_BIN: &str = env!("CARGO_BIN_EXE_ctr-cases-flow");
const MINUTE: Duration = Duration::from_secs(60);

/// A Connect "Invoke AWS Lambda function" event for contact `n` calling from `caller`.
fn invoke_event(contact_id: &str, caller: &str, attributes: Value) -> Value {
    json!({
        "Name": "ContactFlowEvent",
        "Details": {
            "Parameters": {"intent": "change booking"},
            "ContactData": {
                "ContactId": contact_id,
                "InitialContactId": contact_id,
                "Channel": "VOICE",
                "InstanceARN": "arn:aws:connect:us-east-1:123456789012:instance/7c6f9a4e-0000-4000-8000-000000000001",
                "InitiationMethod": "INBOUND",
                "SystemEndpoint": {"Type": "TELEPHONE_NUMBER", "Address": "+18005550100"},
                "CustomerEndpoint": {"Type": "TELEPHONE_NUMBER", "Address": caller},
                "Queue": {"Name": "Bookings", "ARN": "arn:aws:connect:us-east-1:123456789012:instance/x/queue/y"},
                "Attributes": attributes
            }
        }
    })
}

fn state(fake: &FakeSalesforce, extra: &[(&str, &str)]) -> ctr_cases::app::AppState {
    let mut env = fake_env(fake);
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    app_state(&env)
}

/// Composite calls the fake org has counted.
fn composite_calls(fake: &FakeSalesforce) -> u64 {
    fake.org
        .calls_by_kind()
        .get("composite")
        .copied()
        .unwrap_or(0)
}

async fn hand_off(state: &ctr_cases::app::AppState, event: Value) -> HashMap<String, String> {
    flow::respond(state, event, Deadline::after(Duration::from_secs(8))).await
}

/// The real binary: one Salesforce call per invocation (plus the token on a cold start), a
/// flat map of strings back, and a caseError without any call for a ContactId that is not a
/// UUID (AWS's own sample event).
#[tokio::test]
async fn the_flow_binary_files_the_handoff_case_in_one_call() {
    let fake = fake_salesforce::start().await;
    let api = runtime_api::start().await;
    let mut env = runtime_api::lambda_env(&api);
    env.extend(
        fake_env(&fake)
            .into_iter()
            .map(|(k, v)| (Box::leak(k.into_boxed_str()) as &'static str, v)),
    );
    env.push(("AWS_LAMBDA_LOG_FORMAT", "json".into()));
    let mut child = runtime_api::spawn(FLOW_BIN, &env);

    let id = contact_uuid(41);
    let first = api.invoke(
        invoke_event(
            &id,
            "+15555550141",
            json!({"VirtualAgentStatus": "handed_off"}),
        ),
        Duration::from_secs(8),
    );
    let answer = match api.outcome(&first, Duration::from_secs(30)).await {
        Some(InvocationOutcome::Response(v)) => v,
        other => panic!("no answer: {other:?}\n{}", child.dump()),
    };
    let object = answer.as_object().unwrap();
    assert_eq!(
        object.keys().collect::<Vec<_>>(),
        ["caseId", "caseNumber"],
        "{answer}"
    );
    assert!(
        object.values().all(Value::is_string),
        "flat strings: {answer}"
    );
    let case = fake.org.case(&id).expect("the hand-off Case");
    assert_eq!(case["Id"], answer["caseId"]);
    assert_eq!(case["CaseNumber"], answer["caseNumber"]);
    assert_eq!(case[OUTCOME_FIELD], "handoff");
    assert_eq!(
        case["Subject"],
        "Virtual agent hand-off (call) from +15555550141"
    );
    let description = case["Description"].as_str().unwrap();
    assert!(
        description.contains("intent: change booking"),
        "{description}"
    );
    assert!(description.contains("Queue: Bookings"), "{description}");
    assert_eq!(fake.org.api_calls(), 1, "{:?}", fake.org.calls_by_kind());
    assert_eq!(fake.org.token_requests(), 1);

    // The same block again (warm): the same Case, one more call, no new token.
    let again = api.invoke(
        invoke_event(&id, "+15555550141", json!({})),
        Duration::from_secs(8),
    );
    let answer_again = api.outcome(&again, Duration::from_secs(30)).await.unwrap();
    assert_eq!(answer_again.response().unwrap()["caseId"], answer["caseId"]);
    assert_eq!(fake.org.api_calls(), 2);
    assert_eq!(fake.org.token_requests(), 1);
    assert_eq!(fake.org.case_count(), 1);

    // AWS's sample event: not a UUID, so no Salesforce call at all.
    let sample = event_json("connect/sample-invalid-contact-id.json");
    let bad = api.invoke(sample, Duration::from_secs(8));
    let bad_answer = api.outcome(&bad, Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        bad_answer.response().unwrap(),
        &json!({"caseError": "invalid_contact_id"})
    );
    assert_eq!(fake.org.api_calls(), 2);
    child.kill().await;
    let output = child.stdout_lines().join("\n") + &child.stderr_lines().join("\n");
    assert!(
        !output.contains("+15555550141"),
        "no phone number in the logs"
    );
}

/// A Salesforce that never answers in time: `caseError` within FLOW_TIMEOUT_MS.
#[tokio::test]
async fn a_hanging_salesforce_gets_a_case_error_within_the_timeout() {
    let fake = fake_salesforce::start().await;
    let state = state(&fake, &[("FLOW_TIMEOUT_MS", "500")]);
    fake.org.set_latency(Some(Duration::from_secs(10)));
    let started = Instant::now();
    let answer = hand_off(
        &state,
        invoke_event(&contact_uuid(42), "+15555550142", json!({})),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(
        answer,
        HashMap::from([("caseError".to_owned(), "timeout".to_owned())])
    );
    assert!(elapsed < Duration::from_millis(1_500), "{elapsed:?}");
}

#[tokio::test]
async fn a_malformed_event_is_a_case_error_not_a_failure() {
    let fake = fake_salesforce::start().await;
    let state = state(&fake, &[]);
    let answer = flow::respond(&state, json!({"Details": "nope"}), Deadline::after(MINUTE)).await;
    assert_eq!(answer["caseError"], "invalid_event");
    assert_eq!(fake.org.token_requests(), 0);
}

/// Hand-off, an agent's edit, then the CTR: one Case with both contexts, the agent's fields
/// kept, the outcome current — even with CASE_FOR_HAPPY_PATH off.
#[tokio::test]
async fn handoff_then_ctr_is_one_case_with_the_agents_work_kept() {
    let fake = fake_salesforce::start().await;
    let state = state(&fake, &[]);
    let id = contact_uuid(43);
    let answer = hand_off(
        &state,
        invoke_event(&id, "+15555550143", json!({"collected": "booking 7"})),
    )
    .await;
    let case_id = answer["caseId"].clone();
    fake.org.edit_case(
        &case_id,
        json!({"Status": "Working", "Priority": "High", "Subject": "Rebooking, agent on it"}),
    );

    let ctr = ctr_after(
        &id,
        "+15555550143",
        "2024-02-25T08:40:00Z",
        true,
        json!({"ctrCasesCaseId": case_id, "collected": "booking 7"}),
    );
    let outcome = process_batch(&state, &kinesis_event(&[ctr], 1), Deadline::after(MINUTE)).await;
    assert_eq!(outcome.reports[0].outcome, "happy_path_live_agent");
    assert_eq!(
        outcome.reports[0].action,
        Action::UpsertCase,
        "{:?}",
        outcome.reports
    );
    assert_eq!(outcome.reports[0].created, Some(false));
    assert_eq!(fake.org.case_count(), 1);
    let case = fake.org.case_by_id(&case_id).unwrap();
    assert_eq!(case["Status"], "Working");
    assert_eq!(case["Priority"], "High");
    assert_eq!(case["Subject"], "Rebooking, agent on it");
    assert_eq!(case[OUTCOME_FIELD], "happy_path_live_agent");
    let description = case["Description"].as_str().unwrap();
    assert!(
        description.contains("Outcome: Call handled by an agent"),
        "{description}"
    );
    assert!(
        description.contains("collected: booking 7"),
        "{description}"
    );
}

/// A hand-off whose caller drops before an agent answers ends as that same Case, dropped.
#[tokio::test]
async fn handoff_then_drop_ends_as_the_same_case_with_the_dropped_outcome() {
    let fake = fake_salesforce::start().await;
    let state = state(&fake, &[]);
    let id = contact_uuid(44);
    let answer = hand_off(&state, invoke_event(&id, "+15555550144", json!({}))).await;
    let ctr = ctr_after(
        &id,
        "+15555550144",
        "2024-02-25T08:41:00Z",
        false,
        json!({"ctrCasesCaseId": answer["caseId"]}),
    );
    let outcome = process_batch(&state, &kinesis_event(&[ctr], 1), Deadline::after(MINUTE)).await;
    assert_eq!(outcome.reports[0].outcome, "dropped");
    assert_eq!(outcome.reports[0].created, Some(false));
    assert_eq!(fake.org.case_count(), 1);
    let case = fake.org.case(&id).unwrap();
    assert_eq!(case[OUTCOME_FIELD], "dropped");
    assert_eq!(
        case["Subject"], "Virtual agent hand-off (call) from +15555550144",
        "set on create"
    );
}

/// A transferred leg's flow carries the first leg's Case id: it updates that Case, never files
/// a second one. Connect names the first leg in the transferred leg's InitialContactId and
/// PreviousContactId (see tests/own_case.rs for a contact that is not a later leg).
#[tokio::test]
async fn a_transferred_leg_updates_the_first_legs_case() {
    let fake = fake_salesforce::start().await;
    let state = state(&fake, &[]);
    let first = hand_off(
        &state,
        invoke_event(&contact_uuid(45), "+15555550145", json!({})),
    )
    .await;
    let mut transferred = invoke_event(
        &contact_uuid(46),
        "+15555550145",
        json!({"ctrCasesCaseId": first["caseId"]}),
    );
    let data = &mut transferred["Details"]["ContactData"];
    data["InitialContactId"] = contact_uuid(45).into();
    data["PreviousContactId"] = contact_uuid(45).into();
    let second = hand_off(&state, transferred).await;
    assert_eq!(second["caseId"], first["caseId"]);
    assert_eq!(second["caseNumber"], first["caseNumber"]);
    assert_eq!(fake.org.case_count(), 1);
}

/// Many concurrent invocations in one warm container share one token (single-flight).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_handoffs_share_one_token() {
    let fake = fake_salesforce::start().await;
    fake.org.set_latency(Some(Duration::from_millis(50)));
    let state = Arc::new(state(&fake, &[]));
    let mut calls = Vec::new();
    for n in 0..12 {
        let state = state.clone();
        calls.push(tokio::spawn(async move {
            hand_off(
                &state,
                invoke_event(&contact_uuid(100 + n), "+15555550100", json!({})),
            )
            .await
        }));
    }
    for call in calls {
        assert!(call.await.unwrap().contains_key("caseId"));
    }
    assert_eq!(fake.org.token_grants(), 1);
    assert_eq!(fake.org.case_count(), 12);
}

/// Linking by the data dip's attribute, in the flow's one call.
#[tokio::test]
async fn the_flow_links_the_contact_the_data_dip_found() {
    let fake = fake_salesforce::start().await;
    let contact = fake
        .org
        .add_contact(json!({"LastName": "Rivera", "Phone": "+1 (555) 555-0147"}));
    // The deployer names the attribute the data dip writes: there is no default.
    let state = state(
        &fake,
        &[
            ("LINK_CUSTOMER", "true"),
            ("LINK_CUSTOMER_ATTRIBUTE", "sfContactId"),
        ],
    );
    let answer = hand_off(
        &state,
        invoke_event(
            &contact_uuid(47),
            "+15555550147",
            json!({"sfContactId": contact}),
        ),
    )
    .await;
    let case = fake.org.case_by_id(&answer["caseId"]).unwrap();
    assert_eq!(case["ContactId"], contact.as_str());
    assert_eq!(fake.org.api_calls(), 1);
}

/// Linking by number on the stream: the formats people type, exactly one match only, one
/// lookup call per 25 distinct numbers.
#[tokio::test]
async fn the_stream_links_by_number_only_on_exactly_one_match() {
    let fake = fake_salesforce::start().await;
    let account = "001000000000001AAA";
    let plus_format = fake
        .org
        .add_contact(json!({"LastName": "A", "Phone": "+1 (555) 555-0147", "AccountId": account}));
    let dashes = fake
        .org
        .add_contact(json!({"LastName": "B", "Phone": "555-555-0148"}));
    let mobile = fake
        .org
        .add_contact(json!({"LastName": "C", "MobilePhone": "(555) 555 0149"}));
    fake.org
        .add_contact(json!({"LastName": "D", "Phone": "555.555.0150"}));
    fake.org
        .add_contact(json!({"LastName": "E", "Phone": "(555) 555-0150"}));
    let uk = fake
        .org
        .add_contact(json!({"LastName": "F", "Phone": "020 7946 0958"}));
    let state = state(&fake, &[("LINK_CUSTOMER", "true")]);
    let callers = [
        ("+15555550147", Some(plus_format.as_str())),
        ("+15555550148", Some(dashes.as_str())),
        ("+15555550149", Some(mobile.as_str())),
        ("+15555550150", None), // two Contacts
        ("+15555550151", None), // none
        ("+442079460958", Some(uk.as_str())),
    ];
    let datas: Vec<Vec<u8>> = callers
        .iter()
        .enumerate()
        .map(|(i, (caller, _))| {
            dropped_ctr_for(
                &contact_uuid(200 + i as u64),
                caller,
                "2024-02-25T08:36:30Z",
            )
            .into_bytes()
        })
        .collect();
    let outcome = process_batch(&state, &kinesis_event(&datas, 1), Deadline::after(MINUTE)).await;
    assert!(outcome.response.batch_item_failures.is_empty());
    for (i, (caller, expected)) in callers.iter().enumerate() {
        let case = fake.org.case(&contact_uuid(200 + i as u64)).unwrap();
        assert_eq!(
            case.get("ContactId").and_then(Value::as_str),
            *expected,
            "{caller}"
        );
    }
    assert_eq!(
        fake.org.case(&contact_uuid(200)).unwrap()["AccountId"],
        account
    );
    // One Composite of searches for the 6 numbers, one collections create.
    assert_eq!(
        outcome.summary.salesforce_api_calls,
        2,
        "{:?}",
        fake.org.calls_by_kind()
    );
    let kinds = fake.org.calls_by_kind();
    assert_eq!(kinds.get("composite"), Some(&1), "{kinds:?}");

    // 30 distinct numbers: two lookup calls (25 + 5).
    let many: Vec<Vec<u8>> = (0..30)
        .map(|n| {
            dropped_ctr_for(
                &contact_uuid(300 + n),
                &format!("+1555777{n:04}"),
                "2024-02-25T08:36:30Z",
            )
            .into_bytes()
        })
        .collect();
    fake.org.clear_requests();
    let before = composite_calls(&fake);
    process_batch(&state, &kinesis_event(&many, 100), Deadline::after(MINUTE)).await;
    let after = composite_calls(&fake);
    assert_eq!(after - before, 2);
    let searches: usize = fake
        .org
        .requests()
        .iter()
        .filter_map(|r| r.json())
        .filter_map(|b| b["compositeRequest"].as_array().map(Vec::len))
        .sum();
    assert_eq!(searches, 30, "one search per distinct number");
}

/// A hand-off Case filed without a link gets it from the CTR's lookup (the link was empty, so
/// filling it overwrites nobody's work).
#[tokio::test]
async fn a_handoff_case_without_a_link_is_linked_when_its_ctr_arrives() {
    let fake = fake_salesforce::start().await;
    let contact = fake
        .org
        .add_contact(json!({"LastName": "G", "Phone": "555-555-0160"}));
    let state = state(&fake, &[("LINK_CUSTOMER", "true")]);
    let id = contact_uuid(48);
    let answer = hand_off(&state, invoke_event(&id, "+15555550160", json!({}))).await;
    assert!(
        fake.org
            .case_by_id(&answer["caseId"])
            .unwrap()
            .get("ContactId")
            .is_none_or(Value::is_null)
    );
    let ctr = ctr_after(
        &id,
        "+15555550160",
        "2024-02-25T08:42:00Z",
        true,
        json!({"ctrCasesCaseId": answer["caseId"]}),
    );
    process_batch(&state, &kinesis_event(&[ctr], 1), Deadline::after(MINUTE)).await;
    assert_eq!(fake.org.case(&id).unwrap()["ContactId"], contact.as_str());
}

/// The bundled sample (events/connect/handoff.json, for `cargo lambda invoke`) files a Case.
#[tokio::test]
async fn the_bundled_connect_event_files_a_handoff_case() {
    let fake = fake_salesforce::start().await;
    let state = state(&fake, &[]);
    let event = event_json("connect/handoff.json");
    let answer = hand_off(&state, event).await;
    let case = fake.org.case_by_id(&answer["caseId"]).expect("a Case");
    assert_eq!(case["CaseNumber"], answer["caseNumber"].as_str());
    let description = case["Description"].as_str().unwrap();
    assert!(
        description.contains("bookingReference: BK-2291"),
        "{description}"
    );
}

/// See: issue "Real orgs", items 4 and 9. cargo-lambda's emulator sends
/// `Lambda-Runtime-Deadline-Ms: 600000`, which the handler once took as a time long past and
/// answered `{"caseError":"timeout"}`; it is now unknown, and the flow's own 8 s budget applies.
#[tokio::test]
async fn an_emulator_deadline_still_files_the_handoff_case() {
    let fake = fake_salesforce::start().await;
    let state = state(&fake, &[]);
    let id = contact_uuid(47);
    let mut context = lambda_runtime::Context::default();
    context.deadline = 600_000;
    let event = lambda_runtime::LambdaEvent::new(
        invoke_event(
            &id,
            "+15555550147",
            json!({"VirtualAgentStatus": "handed_off"}),
        ),
        context,
    );
    let Ok(answer) = flow::handle(&state, event).await;
    let case = fake.org.case(&id).expect("the hand-off Case");
    assert_eq!(
        answer.get("caseId"),
        case["Id"].as_str().map(str::to_owned).as_ref()
    );
    assert_eq!(answer.get("caseError"), None);
}
