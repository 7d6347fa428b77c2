//! Scale: chunks of a batch in flight together, bounded by `SALESFORCE_MAX_IN_FLIGHT`, against
//! the fake org, which counts the data requests it serves at once. Timing lives in the
//! benchmarks (BENCHMARKS.md), never here: these tests assert bounds and outcomes only.
//! See: issue "Scale".

mod support;

use std::collections::HashMap;
use std::time::Duration;

use ctr_cases::app::AppState;
use ctr_cases::report::Action;
use ctr_cases::retry::Deadline;
use ctr_cases::stream::{BatchOutcome, process_batch};
use support::fake_salesforce::{self, FakeSalesforce, Fault, FaultKind};
use support::fixtures::*;

const MINUTE: Duration = Duration::from_secs(60);

/// Chunks of 10 Cases, `in_flight` of them at once, the org answering after `latency`.
fn scaled(fake: &FakeSalesforce, in_flight: usize, extra: &[(&str, &str)]) -> AppState {
    let mut env: HashMap<String, String> = fake_env(fake);
    env.insert("SALESFORCE_BATCH_SIZE".into(), "10".into());
    env.insert("SALESFORCE_MAX_IN_FLIGHT".into(), in_flight.to_string());
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    app_state(&env)
}

async fn run(state: &AppState, range: std::ops::Range<u64>, first_seq: u64) -> BatchOutcome {
    let datas = dropped_datas(range);
    process_batch(
        state,
        &kinesis_event(&datas, first_seq),
        Deadline::after(MINUTE),
    )
    .await
}

/// Data requests the org received (token requests left out).
fn data_requests(fake: &FakeSalesforce) -> usize {
    let requests = fake.org.requests();
    requests.iter().filter(|r| !r.is_token_request()).count()
}

/// A warm container: Salesforce has answered it once (token cached).
async fn warm(fake: &FakeSalesforce, state: &AppState) {
    let outcome = run(state, 1000..1001, 1).await;
    assert!(outcome.response.batch_item_failures.is_empty());
    fake.org.clear_requests();
    fake.org.reset_max_in_flight();
}

#[tokio::test]
async fn chunks_are_in_flight_together_and_never_more_than_the_bound() {
    for in_flight in [1, 3] {
        let fake = fake_salesforce::start().await;
        fake.org.set_latency(Some(Duration::from_millis(150)));
        let state = scaled(&fake, in_flight, &[]);
        warm(&fake, &state).await;
        let outcome = run(&state, 0..100, 10).await;
        assert!(
            outcome.response.batch_item_failures.is_empty(),
            "{:?}",
            outcome.reports
        );
        assert_eq!(outcome.summary.cases_created, 100);
        assert_eq!(data_requests(&fake), 10, "one create per chunk");
        assert_eq!(fake.org.max_in_flight(), in_flight, "in-flight {in_flight}");
    }
}

/// One chunk's request rejected as a whole: its records are dead-lettered, every other chunk's
/// Cases are written, nothing is retried.
#[tokio::test]
async fn one_chunks_rejection_leaves_the_other_chunks_intact() {
    let fake = fake_salesforce::start().await;
    fake.org.set_latency(Some(Duration::from_millis(50)));
    let state = scaled(&fake, 4, &[]);
    warm(&fake, &state).await;
    fake.org.push_fault(Fault::RequestError {
        status: 400,
        error_code: "JSON_PARSER_ERROR".into(),
        message: "Unexpected character".into(),
    });
    let outcome = run(&state, 0..50, 10).await;
    assert!(
        outcome.response.batch_item_failures.is_empty(),
        "{:?}",
        outcome.reports
    );
    let rejected = outcome.summary.count(Action::DeadLetter);
    assert_eq!(rejected, 10, "exactly one chunk: {:?}", outcome.reports);
    assert_eq!(outcome.summary.cases_created, 40);
    assert_eq!(fake.org.case_count(), 41);
    assert_eq!(state.dead_letters.held().len(), 10);
}

/// The daily quota runs out mid-batch: the requests already in flight finish, no new request
/// starts, and every Case not written is held for retry.
#[tokio::test]
async fn a_systemic_error_mid_batch_starts_no_new_request() {
    let fake = fake_salesforce::start().await;
    fake.org.set_latency(Some(Duration::from_millis(100)));
    let state = scaled(&fake, 2, &[]);
    warm(&fake, &state).await;
    fake.org.push_fault(Fault::TotalRequestsLimit);
    let outcome = run(&state, 0..100, 10).await;
    assert!(outcome.summary.quota_exhausted);
    assert_eq!(data_requests(&fake), 2, "the two in flight, then none");
    let written = outcome.summary.count(Action::UpsertCase);
    assert!(
        written <= 10,
        "at most the other chunk in flight: {written}"
    );
    assert_eq!(outcome.summary.count(Action::Retry) + written, 100);
}

/// While Salesforce fails as a whole (every request a 503), the first invocation stops
/// starting chunks after its first wave fails, and the next one probes with a single request.
#[tokio::test]
async fn an_outage_is_probed_with_one_request_not_one_per_chunk() {
    let fake = fake_salesforce::start().await;
    let state = scaled(&fake, 5, &[("SALESFORCE_MAX_ATTEMPTS", "2")]);
    warm(&fake, &state).await;
    fake.org
        .set_random_faults(1.0, vec![FaultKind::Status503], 7);
    let first = run(&state, 0..100, 10).await;
    assert_eq!(first.summary.count(Action::Retry), 100);
    assert!(first.summary.salesforce_unavailable.is_some());
    let sent = data_requests(&fake);
    assert!(sent <= 2 * 5, "at most one wave per attempt: {sent}");
    fake.org.clear_requests();
    let second = run(&state, 0..100, 10).await;
    assert_eq!(second.summary.count(Action::Retry), 100);
    assert_eq!(data_requests(&fake), 1, "one probe");
}
