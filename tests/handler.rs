//! The Lambda handler against a fake Salesforce org on 127.0.0.1.

mod support;

use std::time::Duration;

use aws_lambda_events::streams::KinesisEventResponse;
use ctr_cases::app::AppState;
use ctr_cases::aws::queue::DeadLetterSink;
use ctr_cases::event::KinesisEnvelope;
use ctr_cases::report::Action;
use ctr_cases::retry::Deadline;
use ctr_cases::stream::{handle, process_batch};
use support::fake_salesforce::{self, Fault};
use support::fixtures::*;

const MINUTE: Duration = Duration::from_secs(60);

/// Runs the handler on `event` with a deadline `budget` from now; asserts that it answered
/// before that deadline.
async fn handle_before_deadline(
    state: &AppState,
    event: KinesisEnvelope,
    budget: Duration,
) -> KinesisEventResponse {
    let started = std::time::Instant::now();
    let response = handle(state, lambda_event(event, budget)).await.unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed < budget,
        "answered after {elapsed:?}, past the {budget:?} deadline"
    );
    response
}

/// An SQS dead-letter sink on a `127.0.0.1` port that accepts connections and never answers,
/// and the task holding those connections open.
async fn silent_queue() -> (DeadLetterSink, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .endpoint_url(&endpoint)
            .build(),
    );
    let sink = DeadLetterSink::Sqs {
        client: sqs,
        queue_url: format!("{endpoint}/123456789012/dead-letters"),
    };
    (sink, hold)
}

#[tokio::test]
async fn dropped_call_creates_case_with_call_context() {
    let fake = fake_salesforce::start().await;
    let state = app_state(&fake_env(&fake));
    let event = kinesis_event(&[dropped_ctr().into_bytes()], 1);
    let response = handle(&state, lambda_event(event, MINUTE)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(fake.org.case_count(), 1);
    let case = fake
        .org
        .case(DROPPED_CONTACT_ID)
        .expect("case upserted by ContactId");
    assert_eq!(
        case["Subject"],
        format!("Dropped call from {DROPPED_CALLER}")
    );
    assert_eq!(case["Origin"], "Phone");
    assert_eq!(case["Status"], "New");
    assert_eq!(case["Priority"], "Medium");
    assert_eq!(case["SuppliedPhone"], DROPPED_CALLER);
    let description = case["Description"].as_str().unwrap();
    for expected in [
        DROPPED_CONTACT_ID,
        "CONTACT_FLOW_DISCONNECT",
        "Started: 2024-02-25T08:35:09Z",
        "Disconnected: 2024-02-25T08:35:21Z",
        "recordingAuth: 3",
    ] {
        assert!(
            description.contains(expected),
            "{expected:?} not in {description}"
        );
    }
}

#[tokio::test]
async fn happy_path_and_skipped_contacts_create_no_case_by_default() {
    let fake = fake_salesforce::start().await;
    let state = app_state(&fake_env(&fake));
    let datas: Vec<Vec<u8>> = SAMPLES
        .iter()
        .filter(|(_, class)| *class != "dropped")
        .flat_map(|(name, _)| sample_ctrs(name))
        .map(String::into_bytes)
        .collect();
    let outcome = process_batch(&state, &kinesis_event(&datas, 1), Deadline::after(MINUTE)).await;
    assert!(
        outcome
            .reports
            .iter()
            .all(|r| r.action == Action::Skipped || r.action == Action::Superseded)
    );
    assert_eq!(fake.org.case_count(), 0);
    assert_eq!(fake.org.api_calls(), 0);
    assert_eq!(
        fake.org.token_requests(),
        0,
        "no sign-in when nothing is written"
    );
}

#[tokio::test]
async fn happy_path_cases_are_filed_when_enabled() {
    let fake = fake_salesforce::start().await;
    let mut env = fake_env(&fake);
    env.insert("CASE_FOR_HAPPY_PATH".into(), "true".into());
    let state = app_state(&env);
    let id = contact_uuid(7);
    let event = kinesis_event(&[handled_ctr_for(&id).into_bytes()], 1);
    handle(&state, lambda_event(event, MINUTE)).await.unwrap();
    let case = fake.org.case(&id).unwrap();
    assert_eq!(
        case["Subject"],
        "Call handled by an agent from +190011112222"
    );
}

#[tokio::test]
async fn many_batches_in_one_warm_process_sign_in_once() {
    let fake = fake_salesforce::start().await;
    let state = app_state(&fake_env(&fake));
    for batch in 0..5u64 {
        let datas = dropped_datas(batch * 100..batch * 100 + 20);
        let event = kinesis_event(&datas, batch * 100);
        let response = handle(&state, lambda_event(event, MINUTE)).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
    }
    assert_eq!(fake.org.token_grants(), 1);
    assert_eq!(fake.org.case_count(), 100);
    assert_eq!(fake.org.api_calls(), 5, "one collections call per batch");
}

#[tokio::test]
async fn redelivered_ctr_updates_the_same_case() {
    let fake = fake_salesforce::start().await;
    let state = app_state(&fake_env(&fake));
    let id = contact_uuid(1);
    let first = dropped_ctr_for(&id, "+15550000001", "2024-02-25T08:36:30Z");
    let later = dropped_ctr_for(&id, "+15550000001", "2024-02-26T09:00:00Z");
    // Same batch: redelivered twice plus a newer version.
    let event = kinesis_event(
        &[
            first.clone().into_bytes(),
            first.clone().into_bytes(),
            later.clone().into_bytes(),
        ],
        1,
    );
    let outcome = process_batch(&state, &event, Deadline::after(MINUTE)).await;
    let actions: Vec<_> = outcome.reports.iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        [Action::Superseded, Action::Superseded, Action::UpsertCase]
    );
    // Days later, in another batch.
    let event = kinesis_event(&[first.into_bytes()], 10);
    let outcome = process_batch(&state, &event, Deadline::after(MINUTE)).await;
    // The older version changes nothing (Case lifecycle: stale versions are ignored).
    assert_eq!(outcome.reports[0].action, Action::Unchanged);
    assert_eq!(outcome.reports[0].created, None);
    assert_eq!(fake.org.case_count(), 1);
    assert_eq!(fake.org.creates_per_external_id()[&id], 1);
}

#[tokio::test]
async fn only_records_that_fail_transiently_are_reported() {
    let fake = fake_salesforce::start().await;
    let state = app_state(&fake_env(&fake));
    let ids: Vec<String> = (0..4).map(contact_uuid).collect();
    let datas: Vec<Vec<u8>> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            dropped_ctr_for(id, &caller_number(i as u64), "2024-02-25T08:36:30Z").into_bytes()
        })
        .collect();
    // Record 1 is locked on every attempt; record 2 is invalid for good.
    for _ in 0..4 {
        fake.org.push_fault(Fault::RecordError {
            external_id: ids[1].clone(),
            status_code: "UNABLE_TO_LOCK_ROW".into(),
            message: "unable to obtain exclusive access to this record".into(),
            fields: vec![],
        });
    }
    let event = kinesis_event(&datas, 100);
    let response = handle(&state, lambda_event(event, MINUTE)).await;
    let response = response.unwrap();
    assert_eq!(failures(&response), [format!("{:020}", 101)]);
    assert!(fake.org.case(&ids[0]).is_some());
    assert!(fake.org.case(&ids[1]).is_none());
    assert!(fake.org.case(&ids[3]).is_some());
}

#[tokio::test]
async fn permanent_record_error_is_dead_lettered_not_retried() {
    let fake = fake_salesforce::start().await;
    let state = app_state(&fake_env(&fake));
    let id = contact_uuid(9);
    fake.org.push_fault(Fault::RecordError {
        external_id: id.clone(),
        status_code: "FIELD_CUSTOM_VALIDATION_EXCEPTION".into(),
        message: "Cases need an account".into(),
        fields: vec!["AccountId".into()],
    });
    let event = kinesis_event(
        &[dropped_ctr_for(&id, "+15550000009", "2024-02-25T08:36:30Z").into_bytes()],
        1,
    );
    let outcome = process_batch(&state, &event, Deadline::after(MINUTE)).await;
    assert!(outcome.response.batch_item_failures.is_empty());
    assert_eq!(outcome.reports[0].action, Action::DeadLetter);
    let letters = state.dead_letters.held();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].kind, "salesforce_rejected");
    assert_eq!(letters[0].error.code, "FIELD_CUSTOM_VALIDATION_EXCEPTION");
    assert_eq!(letters[0].error.fields, ["AccountId"]);
    assert_eq!(letters[0].contact_id.as_deref(), Some(id.as_str()));
    assert_eq!(fake.org.api_calls(), 1, "a permanent error is not retried");
}

#[tokio::test]
async fn expired_session_is_refreshed_once_and_the_case_lands() {
    let fake = fake_salesforce::start().await;
    let state = app_state(&fake_env(&fake));
    let first = kinesis_event(&[dropped_ctr().into_bytes()], 1);
    handle(&state, lambda_event(first, MINUTE)).await.unwrap();
    fake.org.expire_all_tokens();
    let id = contact_uuid(3);
    let second = kinesis_event(
        &[dropped_ctr_for(&id, "+15550000003", "2024-02-25T08:36:30Z").into_bytes()],
        2,
    );
    let response = handle(&state, lambda_event(second, MINUTE)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert!(fake.org.case(&id).is_some());
    assert_eq!(fake.org.token_grants(), 2);
}

#[tokio::test]
async fn poison_records_are_dead_lettered_and_never_block_the_shard() {
    let fake = fake_salesforce::start().await;
    let state = app_state(&fake_env(&fake));
    let event = kinesis_event(
        &[
            b"not json".to_vec(),
            br#"{"ContactId":"../../sobjects/User"}"#.to_vec(),
            br#"{"Channel":"VOICE"}"#.to_vec(),
            vec![0xff, 0xfe],
            dropped_ctr().into_bytes(),
        ],
        1,
    );
    let outcome = process_batch(&state, &event, Deadline::after(MINUTE)).await;
    assert!(outcome.response.batch_item_failures.is_empty());
    let codes: Vec<_> = state
        .dead_letters
        .held()
        .into_iter()
        .map(|l| l.error.code)
        .collect();
    assert_eq!(
        codes,
        [
            "invalid_json",
            "invalid_contact_id",
            "missing_contact_id",
            "invalid_utf8"
        ]
    );
    assert_eq!(fake.org.case_count(), 1);
}

#[tokio::test]
async fn daily_quota_exhausted_fails_fast_and_reports_every_case() {
    let fake = fake_salesforce::start().await;
    let mut env = fake_env(&fake);
    env.insert("SALESFORCE_BATCH_SIZE".into(), "10".into());
    let state = app_state(&env);
    fake.org.set_daily_limit(0);
    let datas = dropped_datas(0..50);
    let outcome = process_batch(&state, &kinesis_event(&datas, 1), Deadline::after(MINUTE)).await;
    assert_eq!(outcome.response.batch_item_failures.len(), 50);
    assert!(outcome.summary.quota_exhausted);
    assert_eq!(
        outcome.summary.salesforce_api_calls, 1,
        "stop at the first 403"
    );
    assert!(state.dead_letters.held().is_empty());
}

#[tokio::test]
async fn deadline_too_close_reports_instead_of_timing_out() {
    let fake = fake_salesforce::start().await;
    let state = app_state(&fake_env(&fake));
    fake.org.set_latency(Some(Duration::from_millis(300)));
    for _ in 0..10 {
        fake.org.push_fault(Fault::Status503);
    }
    let event = kinesis_event(&[dropped_ctr().into_bytes()], 1);
    // 1.5 s budget, 0.5 s margin: at most a couple of attempts fit.
    let response = handle_before_deadline(&state, event, Duration::from_millis(1500)).await;
    assert_eq!(failures(&response), [format!("{:020}", 1)]);
}

#[tokio::test]
async fn large_batch_is_split_into_collections_of_200() {
    let fake = fake_salesforce::start().await;
    // One chunk after another, so the requests arrive in order (tests/scale.rs covers chunks
    // in flight together).
    let mut env = fake_env(&fake);
    env.insert("SALESFORCE_MAX_IN_FLIGHT".into(), "1".into());
    let state = app_state(&env);
    let datas = dropped_datas(0..450);
    let outcome = process_batch(&state, &kinesis_event(&datas, 1), Deadline::after(MINUTE)).await;
    assert!(outcome.response.batch_item_failures.is_empty());
    assert_eq!(fake.org.case_count(), 450);
    assert_eq!(fake.org.api_calls(), 3);
    let sizes: Vec<usize> = fake
        .org
        .requests()
        .iter()
        .filter(|r| !r.is_token_request())
        .map(|r| r.json().unwrap()["records"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [200, 200, 50]);
}

#[tokio::test]
async fn failure_without_sequence_number_fails_the_whole_batch() {
    let fake = fake_salesforce::start().await;
    let state = app_state(&fake_env(&fake));
    fake.org
        .set_random_faults(1.0, vec![fake_salesforce::FaultKind::Status503], 1);
    let mut event = kinesis_event(&[dropped_ctr().into_bytes()], 1);
    event.records[0].kinesis.sequence_number = String::new();
    let err = handle(&state, lambda_event(event, MINUTE))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ctr_cases::stream::HandlerError::UnreportableFailures(1)
    ));
    let diagnostic: lambda_runtime::Diagnostic = err.into();
    assert_eq!(diagnostic.error_type, "Retryable");
}

/// A wrong external id field is a configuration error: the org has no such column, so each
/// Case of the create is rejected with INVALID_FIELD. Since issue "Real orgs" that rejection is
/// the configuration's, not the records': nothing is dead-lettered, every record is held
/// (reported for retry, as in an outage) until the configuration is fixed.
#[tokio::test]
async fn missing_external_id_field_holds_the_batch_without_dead_letters() {
    let fake = fake_salesforce::start().await;
    let mut env = fake_env(&fake);
    env.insert("CASE_EXTERNAL_ID_FIELD".into(), "Connect_Contact__c".into());
    let state = app_state(&env);
    let outcome = process_batch(
        &state,
        &kinesis_event(&dropped_datas(0..3), 1),
        Deadline::after(MINUTE),
    )
    .await;
    assert_eq!(
        failures(&outcome.response).len(),
        3,
        "{:?}",
        outcome.reports
    );
    assert!(
        outcome
            .reports
            .iter()
            .all(|r| r.error.as_deref() == Some("INVALID_FIELD")),
        "{:?}",
        outcome.reports
    );
    assert!(state.dead_letters.held().is_empty());
    let why = outcome.summary.configuration_invalid.as_deref().unwrap();
    assert!(why.contains("Connect_Contact__c"), "{why}");
    assert_eq!(fake.org.api_calls(), 1);
    assert_eq!(fake.org.case_count(), 0);
}

/// An SQS endpoint that accepts connections and never answers: the dead-letter send is cut off
/// near the deadline and the record is reported for retry instead of timing out the invocation.
#[tokio::test]
async fn hung_dead_letter_queue_reports_the_record_before_the_deadline() {
    let (dead_letters, _hold) = silent_queue().await;
    let fake = fake_salesforce::start().await;
    let mut state = app_state(&fake_env(&fake));
    state.dead_letters = dead_letters;
    let event = kinesis_event(&[b"not json".to_vec()], 1);
    let response = handle_before_deadline(&state, event, Duration::from_secs(2)).await;
    assert_eq!(failures(&response), [format!("{:020}", 1)]);
}

/// See: issue "One pipeline for every entry point". An SQS endpoint that accepts connections
/// and never answers, 30 poison records and an 8 s deadline: the invocation answers before the
/// deadline, reports the poison records for retry (their letters could not be stored) and
/// still writes the dropped calls' Cases, because letters and Case writes run side by side
/// under one deadline.
#[tokio::test]
async fn silent_queue_with_thirty_poison_records_answers_before_an_eight_second_deadline() {
    let (dead_letters, _hold) = silent_queue().await;
    let fake = fake_salesforce::start().await;
    let mut state = app_state(&fake_env(&fake));
    state.dead_letters = dead_letters;
    let mut datas: Vec<Vec<u8>> = (0..30)
        .map(|n| format!("poison {n}").into_bytes())
        .collect();
    datas.extend(dropped_datas(100..110));
    let event = kinesis_event(&datas, 1);
    let response = handle_before_deadline(&state, event, Duration::from_secs(8)).await;
    let expected: Vec<String> = (0..30).map(|i| format!("{:020}", 1 + i)).collect();
    assert_eq!(failures(&response), expected);
    for n in 100..110 {
        assert!(
            fake.org.case(&contact_uuid(n)).is_some(),
            "Case {n} written"
        );
    }
}

/// See: issue "Real orgs", item 9. A deadline that leaves no time is the deadline's doing: the
/// record is reported for retry as `deadline_reached`, no outage is declared (no hold, and the
/// next invocation is not limited to a single probe) and Salesforce is not called.
#[tokio::test]
async fn an_expired_deadline_is_reported_as_the_deadline_not_an_outage() {
    let fake = fake_salesforce::start().await;
    let state = app_state(&fake_env(&fake));
    let event = kinesis_event(&[dropped_data(1)], 1);
    let outcome = process_batch(&state, &event, Deadline::after(Duration::ZERO)).await;
    assert_eq!(failures(&outcome.response), [format!("{:020}", 1)]);
    assert_eq!(outcome.reports[0].action, Action::Retry);
    assert_eq!(
        outcome.reports[0].error.as_deref(),
        Some("deadline_reached")
    );
    assert_eq!(outcome.summary.salesforce_unavailable, None);
    assert_eq!(fake.org.api_calls() + fake.org.token_requests(), 0);
    // Not in outage mode: a 503 in the next invocation is retried within it.
    fake.org.push_fault(Fault::Status503);
    let outcome = process_batch(&state, &event, Deadline::after(MINUTE)).await;
    assert!(outcome.response.batch_item_failures.is_empty());
    assert_eq!(fake.org.case_count(), 1);
}

/// See: issue "Real orgs", item 9. cargo-lambda's emulator sends `Lambda-Runtime-Deadline-Ms:
/// 600000`; the handler then uses its own budget, `FUNCTION_TIMEOUT_SECONDS`: records are
/// written, and an outage hold ends before that budget runs out.
#[tokio::test]
async fn an_emulator_deadline_falls_back_to_the_function_timeout() {
    let fake = fake_salesforce::start().await;
    let mut env = fake_env(&fake);
    env.insert("FUNCTION_TIMEOUT_SECONDS".into(), "2".into());
    env.insert("OUTAGE_HOLD_MS".into(), "60000".into());
    let state = app_state(&env);
    let emulated = |datas: &[Vec<u8>], seq: u64| {
        let mut event = lambda_event(kinesis_event(datas, seq), MINUTE);
        event.context.deadline = 600_000;
        event
    };
    let response = handle(&state, emulated(&[dropped_data(1)], 1))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(fake.org.case_count(), 1);

    fake.org.reject_credentials(true);
    fake.org.expire_all_tokens();
    let started = std::time::Instant::now();
    let response = handle(&state, emulated(&[dropped_data(2)], 2))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(failures(&response), [format!("{:020}", 2)]);
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(2),
        "held {elapsed:?}: until the 2 s budget less the 500 ms margin"
    );
}
