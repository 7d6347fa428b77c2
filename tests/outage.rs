//! Issue "Outages lose nothing": while Salesforce cannot be used (daily quota gone, credentials
//! refused, a proxy answering instead of the API, the API disabled), every invocation makes at
//! most one probe call, holds for `OUTAGE_HOLD_MS` before answering and reports its unwritten
//! records for retry; records about to leave the stream are parked with their full data; and
//! once Salesforce is back every Case is written exactly once.
//!
//! The real handler (`stream::handle`) against the fake org, driven as Lambda drives a Kinesis
//! shard ([`support::shard::Shard`]); moto_server where SQS or Secrets Manager is needed; the
//! built binaries where the test is about what the process prints or how long it takes to answer.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use ctr_cases::app::AppState;
use ctr_cases::metrics;
use ctr_cases::report::Action;
use ctr_cases::retry::Deadline;
use ctr_cases::stream::process_batch;
use serde_json::Value;
use support::fake_salesforce::{self, FakeSalesforce, Fault};
use support::fixtures::{self, app_state, contact_uuid, dropped_data, fake_env};
use support::moto;
use support::process::{self, Lambda, field};
use support::shard::{self, Shard};
use support::state::app_state_on_moto;

const MINUTE: Duration = Duration::from_secs(60);
/// The outage hold of the in-process tests: short, but long enough to tell from no hold.
const HOLD: Duration = Duration::from_millis(300);

/// The fake org's counters that an outage must keep still.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counters {
    /// Data calls Salesforce counts against the daily limit.
    api_calls: u64,
    /// The same, summed over `calls_by_kind`.
    by_kind: u64,
    /// Requests that reached the data API at all, counted or not (a `403 TotalRequests`
    /// answer and a proxy's page are not counted by Salesforce).
    data_requests: u64,
    /// Calls to the token endpoint.
    token_requests: u64,
}

impl Counters {
    fn of(fake: &FakeSalesforce) -> Self {
        Counters {
            api_calls: fake.org.api_calls(),
            by_kind: fake.org.calls_by_kind().values().sum(),
            data_requests: fake
                .org
                .requests()
                .iter()
                .filter(|r| r.path.starts_with("/services/data/"))
                .count() as u64,
            token_requests: fake.org.token_requests(),
        }
    }

    /// `self - before`, field by field.
    fn since(self, before: Counters) -> Counters {
        Counters {
            api_calls: self.api_calls - before.api_calls,
            by_kind: self.by_kind - before.by_kind,
            data_requests: self.data_requests - before.data_requests,
            token_requests: self.token_requests - before.token_requests,
        }
    }
}

fn env_with(fake: &FakeSalesforce, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env = fake_env(fake);
    env.insert("OUTAGE_HOLD_MS".into(), HOLD.as_millis().to_string());
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    env
}

/// No Case was created twice, and exactly the contacts `ns` have one.
fn assert_cases_exactly_once(fake: &FakeSalesforce, ns: impl IntoIterator<Item = u64>) {
    let ns: Vec<u64> = ns.into_iter().collect();
    let missing: Vec<String> = ns
        .iter()
        .map(|&n| contact_uuid(n))
        .filter(|id| fake.org.case(id).is_none())
        .collect();
    assert!(missing.is_empty(), "no Case for {missing:?}");
    assert_eq!(fake.org.case_count(), ns.len(), "{:?}", fake.org.cases());
    let creates = fake.org.creates_per_external_id();
    assert!(creates.values().all(|&n| n == 1), "duplicates: {creates:?}");
    assert_eq!(creates.len(), ns.len());
}

// ---------------------------------------------------------------------------------------------
// 1. The daily quota runs out
// ---------------------------------------------------------------------------------------------

/// Six invocations into a quota outage: each probes with at most one data call, holds, and
/// reports its whole batch; once the limit is raised the shard drains with every Case written
/// once and nothing dead-lettered.
#[tokio::test]
async fn quota_outage_probes_once_per_invocation_holds_then_recovers_without_loss() {
    let fake = fake_salesforce::start().await;
    let state = app_state(&env_with(&fake, &[]));
    let datas: Vec<Vec<u8>> = (0..40).map(dropped_data).collect();
    let mut shard = Shard::new(shard::records(&datas, 1, Some(shard::epoch_secs(0.0))), 20);

    // The first batch takes the day's last call; the quota is gone from then on.
    fake.org.set_daily_limit(1);
    let first = shard.invoke(&state, MINUTE).await;
    assert!(first.reported.is_empty(), "{:?}", first.reported);
    assert_eq!(fake.org.case_count(), 20);
    assert_eq!(fake.org.token_requests(), 1);

    for i in 0..6 {
        let before = Counters::of(&fake);
        let held = shard.invoke(&state, MINUTE).await;
        let spent = Counters::of(&fake).since(before);
        assert_eq!(held.reported, held.delivered, "invocation {i}: all held");
        assert_eq!(held.delivered.len(), 20);
        assert!(
            held.elapsed >= HOLD,
            "invocation {i} answered after {:?}, before the {HOLD:?} hold",
            held.elapsed
        );
        assert!(spent.api_calls <= 1, "invocation {i}: {spent:?}");
        assert_eq!(spent.by_kind, spent.api_calls, "invocation {i}: {spent:?}");
        assert!(spent.data_requests <= 1, "invocation {i}: {spent:?}");
        assert_eq!(spent.token_requests, 0, "invocation {i}: the token is kept");
    }
    assert_eq!(
        fake.org.case_count(),
        20,
        "nothing written during the outage"
    );
    assert_eq!(fake.org.api_calls(), 1, "no call past the quota is counted");

    fake.org
        .set_daily_limit(fake_salesforce::DEFAULT_DAILY_LIMIT);
    let recovery = shard.drain(&state, MINUTE, 2).await;
    assert_eq!(recovery.len(), 1, "the next invocation writes the batch");
    assert!(recovery[0].reported.is_empty());
    assert_cases_exactly_once(&fake, 0..40);
    assert!(
        state.dead_letters.held().is_empty(),
        "nothing dead-lettered"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Records about to leave the stream are parked, then redriven
// ---------------------------------------------------------------------------------------------

/// With `PARK_AFTER_HOURS=1`, records that arrived two hours ago are parked (full data, the
/// systemic error code) in a FIFO dead-letter queue like the template's and are not reported;
/// younger ones are held. After the outage the young ones land from the stream and
/// `ctr-cases redrive --send` writes the parked ones and empties the queue.
#[tokio::test]
async fn aged_records_are_parked_during_an_outage_and_redriven_after_it() {
    let moto = moto::start().await;
    let fake = fake_salesforce::start().await;
    let queue = moto
        .create_fifo_queue("ctr-cases-case-dead-letters.fifo")
        .await;
    let env = env_with(&fake, &[("PARK_AFTER_HOURS", "1")]);
    let state = app_state_on_moto(&env, &moto, Some(&queue)).await;

    // Older records come first in a shard: five two hours old, then five just arrived.
    let old: Vec<Vec<u8>> = (0..5).map(dropped_data).collect();
    let young: Vec<Vec<u8>> = (5..10).map(dropped_data).collect();
    let mut records = shard::records(&old, 1, Some(shard::epoch_secs(-2.0 * 3600.0)));
    records.extend(shard::records(&young, 6, Some(shard::epoch_secs(0.0))));
    let old_seqs: Vec<String> = records[..5]
        .iter()
        .map(|r| r.kinesis.sequence_number.clone())
        .collect();
    let young_seqs: Vec<String> = records[5..]
        .iter()
        .map(|r| r.kinesis.sequence_number.clone())
        .collect();
    let mut shard = Shard::new(records, 100);

    fake.org.push_fault(Fault::TotalRequestsLimit);
    let held = shard.invoke(&state, MINUTE).await;
    assert_eq!(held.reported, young_seqs, "only the young records are held");
    assert!(held.elapsed >= HOLD, "{:?}", held.elapsed);
    assert_eq!(
        shard.pending(),
        young_seqs,
        "the checkpoint passed the parked"
    );

    let letters = moto.peek_all(&queue).await;
    assert_eq!(letters.len(), 5, "{letters:?}");
    let mut parked_seqs = Vec::new();
    for message in &letters {
        let body = moto::body_json(message);
        assert_eq!(body["kind"], "parked", "{body}");
        assert_eq!(moto::attribute(message, "kind"), Some("parked"));
        assert_eq!(body["error"]["code"], "REQUEST_LIMIT_EXCEEDED", "{body}");
        let seq = body["sequence_number"].as_str().unwrap().to_owned();
        let n = old_seqs
            .iter()
            .position(|s| *s == seq)
            .expect("an old record") as u64;
        let original = base64::engine::general_purpose::STANDARD.encode(dropped_data(n));
        assert_eq!(body["data"], original.as_str(), "the full original data");
        assert_eq!(body["data_truncated"], false);
        assert_eq!(body["contact_id"], contact_uuid(n).as_str());
        assert_eq!(body["shard_id"], shard::SHARD_ID);
        parked_seqs.push(seq);
    }
    parked_seqs.sort();
    assert_eq!(parked_seqs, old_seqs);

    // Still down: the young records are held again, nothing more is parked.
    fake.org.push_fault(Fault::TotalRequestsLimit);
    let again = shard.invoke(&state, MINUTE).await;
    assert_eq!(again.reported, young_seqs);
    assert_eq!(moto.peek_all(&queue).await.len(), 5);

    // Salesforce is back: the stream writes the young records; the parked wait in the queue.
    let back = shard.drain(&state, MINUTE, 1).await;
    assert!(back[0].reported.is_empty());
    assert_cases_exactly_once(&fake, 5..10);

    let mut cli_env: Vec<(String, String)> = fake_env(&fake).into_iter().collect();
    cli_env.extend(moto.aws_env().map(|(k, v)| (k.to_owned(), v)));
    let output = process::cli(&["redrive", "--queue", &queue, "--send"], &cli_env).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_cases_exactly_once(&fake, 0..10);
    assert_eq!(moto.message_counts(&queue).await, (0, 0), "{stdout}");
}

// ---------------------------------------------------------------------------------------------
// 3. The credentials are refused
// ---------------------------------------------------------------------------------------------

const NEW_PASSWORD: &str = "fixed-pw-and-new-security-token";

/// Five invocations with the credentials refused cost one token request in all (the login
/// cool-down: refused logins lock the user out), hold every record, and dead-letter nothing.
/// Once the secret holds working credentials, the next invocation signs in and writes.
#[tokio::test]
async fn refused_credentials_cool_down_hold_everything_and_recover_when_the_secret_changes() {
    let moto = moto::start().await;
    let fake = fake_salesforce::start().await;
    let arn = moto
        .create_secret(
            "ctr-cases/outage-credentials",
            &fixtures::secret_json(fake_salesforce::PASSWORD),
        )
        .await;
    let mut env = env_with(
        &fake,
        &[
            ("SALESFORCE_SECRET_ARN", arn.as_str()),
            ("SALESFORCE_LOGIN_COOLDOWN_MS", "300000"),
        ],
    );
    fixtures::remove_inline_credentials(&mut env);
    let state: AppState = app_state_on_moto(&env, &moto, None).await;
    let datas: Vec<Vec<u8>> = (0..10).map(dropped_data).collect();
    let mut shard = Shard::new(shard::records(&datas, 1, Some(shard::epoch_secs(0.0))), 100);

    fake.org.reject_credentials(true);
    for i in 0..5 {
        let held = shard.invoke(&state, MINUTE).await;
        assert_eq!(held.reported, held.delivered, "invocation {i}");
        assert!(held.elapsed >= HOLD, "invocation {i}: {:?}", held.elapsed);
    }
    assert_eq!(
        fake.org.token_requests(),
        1,
        "one refused login, then the cool-down"
    );
    assert_eq!(fake.org.token_grants(), 0);
    assert_eq!(fake.org.api_calls(), 0);
    assert_eq!(fake.org.case_count(), 0);
    assert!(
        state.dead_letters.held().is_empty(),
        "nothing dead-lettered"
    );

    // An admin fixes it: a new password in the org and in the secret.
    fake.org.reject_credentials(false);
    fake.org.set_accepted_password(NEW_PASSWORD);
    moto.put_secret_value(&arn, &fixtures::secret_json(NEW_PASSWORD))
        .await;
    let fixed = shard.invoke(&state, MINUTE).await;
    assert!(fixed.reported.is_empty(), "{:?}", fixed.reported);
    assert_eq!(
        fake.org.token_requests(),
        2,
        "the changed secret lifts the cool-down"
    );
    assert_eq!(fake.org.token_grants(), 1);
    assert_cases_exactly_once(&fake, 0..10);
    assert!(state.dead_letters.held().is_empty());
}

// ---------------------------------------------------------------------------------------------
// 4. Answers that are not Salesforce's, and the API disabled
// ---------------------------------------------------------------------------------------------

/// A proxy's HTML 403, a 302 to a login page, and `403 API_DISABLED_FOR_ORG` for the whole
/// request are outages, not record problems: held (reported for retry, SalesforceUnavailable in
/// the summary and the EMF line), never dead-lettered.
#[tokio::test]
async fn proxy_pages_redirects_and_a_disabled_api_are_held_not_dead_lettered() {
    let faults = [
        (
            Fault::NonJson {
                status: 403,
                content_type: "text/html; charset=utf-8".into(),
                body: "<html><head><title>403 Forbidden</title></head><body><h1>Access denied \
                       by the corporate proxy</h1></body></html>"
                    .into(),
            },
            "HTTP_403",
        ),
        (
            Fault::Redirect {
                status: 302,
                location: "https://login.salesforce.com/?ec=302&startURL=%2Fservices%2Fdata".into(),
            },
            "HTTP_302",
        ),
        (
            // The whole request refused, as Salesforce answers an org without API access:
            // `[{"message":"The REST API is not enabled for this Organization.",
            // "errorCode":"API_DISABLED_FOR_ORG"}]` (quoted in wadewegner/Force.com-Toolkit-for-NET
            // issue #150 and restforce/restforce issue #219).
            Fault::RequestError {
                status: 403,
                error_code: "API_DISABLED_FOR_ORG".into(),
                message: "The REST API is not enabled for this Organization.".into(),
            },
            "API_DISABLED_FOR_ORG",
        ),
    ];
    for (fault, code) in faults {
        // A fresh container per fault.
        let fake = fake_salesforce::start().await;
        let state = app_state(&env_with(&fake, &[]));
        let mut datas: Vec<Vec<u8>> = (0..4).map(dropped_data).collect();
        datas.push(fixtures::handled_ctr_for(&contact_uuid(99)).into_bytes());
        let mut shard = Shard::new(shard::records(&datas, 1, Some(shard::epoch_secs(0.0))), 100);

        fake.org.push_fault(fault.clone());
        let before = Counters::of(&fake);
        let held = shard.invoke(&state, MINUTE).await;
        let spent = Counters::of(&fake).since(before);
        assert_eq!(
            held.reported,
            held.delivered[..4],
            "{code}: the Case records"
        );
        assert!(held.elapsed >= HOLD, "{code}: {:?}", held.elapsed);
        assert_eq!(spent.data_requests, 1, "{code}: one request, then stop");

        // What the summary and the EMF line say about the same batch (the next probe).
        fake.org.push_fault(fault);
        let envelope = fixtures::kinesis_event(&datas, 1);
        let outcome = process_batch(&state, &envelope, Deadline::after(MINUTE)).await;
        let summary = &outcome.summary;
        assert_eq!(summary.salesforce_unavailable.as_deref(), Some(code));
        assert_eq!(summary.count(Action::Retry), 4, "{code}: {summary:?}");
        assert_eq!(summary.count(Action::DeadLetter), 0, "{code}");
        assert_eq!(summary.count(Action::Parked), 0, "{code}");
        assert_eq!(summary.count(Action::Skipped), 1, "{code}");
        for report in outcome.reports.iter().take(4) {
            assert_eq!(report.action, Action::Retry);
            assert_eq!(report.error.as_deref(), Some(code));
        }
        let emf: Value =
            serde_json::from_str(&metrics::emf_line("CtrCases", "fn", 0, summary, 1)).unwrap();
        assert_eq!(emf["SalesforceUnavailable"], 1, "{code}: {emf}");
        assert_eq!(emf["Retried"], 4, "{code}: {emf}");
        assert_eq!(emf["DeadLettered"], 0, "{code}: {emf}");

        assert_eq!(fake.org.case_count(), 0, "{code}");
        assert!(
            state.dead_letters.held().is_empty(),
            "{code}: nothing dead-lettered"
        );

        // The path is clear again: the held records land.
        shard.drain(&state, MINUTE, 1).await;
        assert_cases_exactly_once(&fake, 0..4);
    }
}

// ---------------------------------------------------------------------------------------------
// 5. The real binary during a quota outage
// ---------------------------------------------------------------------------------------------

/// The built Lambda with `OUTAGE_HOLD_MS=500` in a quota outage answers after the hold and
/// before the deadline, with `SalesforceUnavailable` 1 in its EMF line and exactly one ERROR
/// log line, which says Salesforce is unavailable.
#[tokio::test]
async fn lambda_binary_holds_a_quota_outage_with_one_error_line_and_the_metric() {
    const BINARY_HOLD: Duration = Duration::from_millis(500);
    const TIMEOUT: Duration = Duration::from_secs(10);
    let fake = fake_salesforce::start().await;
    fake.org.set_daily_limit(0);
    let mut lambda = Lambda::launch(
        &fake,
        "info",
        &[],
        &[("OUTAGE_HOLD_MS", BINARY_HOLD.as_millis().to_string())],
    )
    .await;
    let datas: Vec<Vec<u8>> = (0..3).map(dropped_data).collect();
    let event = process::kinesis_json(&datas, 500);

    let (outcome, elapsed) = lambda.outcome_within(&event, TIMEOUT).await;
    let output = lambda.stop().await;
    let response = outcome
        .response()
        .unwrap_or_else(|| panic!("{outcome:?}\n{}", output.all()))
        .clone();
    assert_eq!(process::response_failures(&response).len(), 3, "{response}");
    assert!(elapsed >= BINARY_HOLD, "answered after {elapsed:?}");
    assert!(
        elapsed < TIMEOUT,
        "answered after {elapsed:?}, past the deadline"
    );

    let emf = output.emf();
    assert_eq!(emf.len(), 1, "{}", output.all());
    let values = process::emf_values(&emf[0]);
    assert_eq!(values["SalesforceUnavailable"], 1, "{}", emf[0]);
    assert_eq!(values["Retried"], 3, "{}", emf[0]);
    assert!(
        values["BatchLatencyMs"] >= BINARY_HOLD.as_millis() as u64,
        "the latency includes the hold: {}",
        emf[0]
    );

    let errors = output.error_lines();
    assert_eq!(errors.len(), 1, "{errors:#?}\n{}", output.all());
    let message = field(&errors[0], "message").unwrap_or_default();
    assert!(message.starts_with("Salesforce unavailable"), "{message}");
    assert_eq!(
        field(&errors[0], "error_code"),
        Some("REQUEST_LIMIT_EXCEEDED")
    );
    assert_eq!(fake.org.case_count(), 0);
}
