mod support;

// End to end: the built Lambda bootstrap (`ctr-cases-lambda`) run as a child process against
// a fake Lambda Runtime API, a fake Salesforce org and (for dead letters) a moto SQS server,
// all on 127.0.0.1. Every wait is bounded and every child process is killed on drop.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitStatus;

use base64::Engine as _;
use serde_json::{Value, json};
use support::fake_salesforce::{self, Fault};
use support::fixtures::{self, DROPPED_CALLER, DROPPED_CONTACT_ID, SAMPLES};
use support::moto;
use support::process::{self, EXIT_WAIT, Lambda, Output, field};
use support::runtime_api::{self, RuntimeApi};

/// Metric names in the EMF line, in order.
const METRICS: [&str; 11] = [
    "Dropped",
    "HappyPath",
    "CasesUpserted",
    "Retried",
    "DeadLettered",
    "SalesforceApiCalls",
    "BatchLatencyMs",
    "Unchanged",
    "Parked",
    "SalesforceUnavailable",
    "ConfigurationInvalid",
];

/// The sequence numbers in events/mixed-batch.json of the record that is not JSON and the
/// record that is not base64.
const MIXED_POISON: [&str; 2] = [
    "49650000000000000000000000000000000000000000000000000008",
    "49650000000000000000000000000000000000000000000000000009",
];

// ---------------------------------------------------------------------------------------------
// Helpers (the process harness itself is `support::process`)
// ---------------------------------------------------------------------------------------------

/// What a warm container is sent in turn: the dropped call, the mixed batch (which redelivers
/// it at the same version), and the dropped call again.
const WARM_SEQUENCE: [&str; 3] = [
    "dropped-ivr-call.json",
    "mixed-batch.json",
    "dropped-ivr-call.json",
];

/// Invokes `lambda` with each of the events/ `files` in turn; returns the responses.
async fn invoke_each<const N: usize>(lambda: &mut Lambda, files: [&str; N]) -> [Value; N] {
    let mut responses = Vec::with_capacity(N);
    for file in files {
        responses.push(lambda.invoke(&fixtures::event_json(file)).await);
    }
    responses.try_into().expect("one response per file")
}

/// Every events/*.json file name, sorted.
fn event_files() -> Vec<String> {
    let dir = fixtures::event_path("");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// The sequence number `fixtures::kinesis_event` gives the record at `index`.
fn seq(first_seq: u64, index: usize) -> String {
    format!("{:020}", first_seq + index as u64)
}

/// The sequence numbers in a response, checking that it has exactly the shape Lambda wants:
/// `{"batchItemFailures":[{"itemIdentifier":"<seq>"}, …]}` and nothing else
/// ([`process::response_failures`] checks the outer shape; this also checks each item's keys).
fn failures(response: &Value) -> Vec<String> {
    let sequence_numbers = process::response_failures(response);
    for item in response["batchItemFailures"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let item = item
            .as_object()
            .unwrap_or_else(|| panic!("failure item is not an object: {response}"));
        assert_eq!(
            item.keys().collect::<Vec<_>>(),
            ["itemIdentifier"],
            "failure item keys: {response}"
        );
    }
    sequence_numbers
}

/// The metric values of an EMF line, checking its structure against [`METRICS`].
fn emf_values(line: &Value) -> BTreeMap<&'static str, u64> {
    let cw = &line["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(cw["Namespace"], "CtrCases", "{line}");
    assert_eq!(cw["Dimensions"], json!([["FunctionName"]]), "{line}");
    assert_eq!(line["FunctionName"], runtime_api::FUNCTION_NAME, "{line}");
    assert!(line["_aws"]["Timestamp"].is_i64(), "{line}");
    let names: Vec<&str> = cw["Metrics"]
        .as_array()
        .unwrap_or_else(|| panic!("no Metrics array: {line}"))
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, METRICS, "{line}");
    for m in cw["Metrics"].as_array().unwrap() {
        let unit = if m["Name"] == "BatchLatencyMs" {
            "Milliseconds"
        } else {
            "Count"
        };
        assert_eq!(m["Unit"], unit, "{line}");
    }
    process::emf_values(line)
}

/// `expected` (name, value) pairs must match; BatchLatencyMs is only checked to be present.
fn assert_metrics(line: &Value, expected: &[(&str, u64)]) {
    let values = emf_values(line);
    for (name, value) in expected {
        assert_eq!(values[name], *value, "{name} in {line}");
    }
}

/// The `Address` of every `*Endpoint` object in a CTR.
fn endpoint_addresses(ctr: &Value) -> Vec<String> {
    [
        "CustomerEndpoint",
        "SystemEndpoint",
        "TransferredToEndpoint",
    ]
    .iter()
    .filter_map(|k| ctr.get(*k)?.get("Address")?.as_str().map(str::to_owned))
    .collect()
}

/// The CTRs (decoded JSON) in a Kinesis event file; records that are not CTRs are skipped.
fn event_ctrs(event: &Value) -> Vec<Value> {
    event["Records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| match &r["kinesis"]["data"] {
            Value::String(b64) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .ok()?;
                serde_json::from_slice(&bytes).ok()
            }
            inline @ Value::Object(_) => Some(inline.clone()),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. A dropped call becomes one Case
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn dropped_call_event_creates_one_case_and_reports_no_failures() {
    let fake = fake_salesforce::start().await;
    let mut lambda = Lambda::launch(&fake, "info", &[], &[]).await;

    let response = lambda
        .invoke(&fixtures::event_json("dropped-ivr-call.json"))
        .await;

    // Exactly what Lambda expects from a ReportBatchItemFailures function with nothing to retry.
    assert_eq!(
        serde_json::to_string(&response).unwrap(),
        r#"{"batchItemFailures":[]}"#
    );
    assert!(failures(&response).is_empty());
    let output = lambda.stop().await;

    assert_eq!(fake.org.case_count(), 1, "{:?}", fake.org.cases());
    let case = fake
        .org
        .case(DROPPED_CONTACT_ID)
        .unwrap_or_else(|| panic!("no Case for {DROPPED_CONTACT_ID}\n{}", output.all()));
    assert_eq!(case[fake_salesforce::EXTERNAL_ID_FIELD], DROPPED_CONTACT_ID);
    assert_eq!(case["Origin"], "Phone");
    assert_eq!(case["Status"], "New");
    assert_eq!(case["SuppliedPhone"], DROPPED_CALLER);
    let subject = case["Subject"].as_str().unwrap();
    assert!(
        subject.to_lowercase().contains("dropped call"),
        "Subject {subject:?}"
    );
    assert_eq!(fake.org.token_grants(), 1);
    assert_eq!(fake.org.api_calls(), 1);
}

// ---------------------------------------------------------------------------------------------
// 2. A warm container keeps its token and stays idempotent
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn warm_container_with_dead_letter_queue_reuses_token_and_dead_letters_poison() {
    let fake = fake_salesforce::start().await;
    let moto = moto::start().await;
    let (queue, dlq) = process::dead_letter_queue_env(&moto, "ctr-cases-warm-dlq").await;
    let mut lambda = Lambda::launch(&fake, "warn", &[], &dlq).await;

    let [first, mixed, again] = invoke_each(&mut lambda, WARM_SEQUENCE).await;
    let output = lambda.stop().await;

    assert!(failures(&first).is_empty(), "{first}");
    assert!(
        failures(&mixed).is_empty(),
        "dead-lettered poison must not be reported for retry: {mixed}\n{}",
        output.all()
    );
    assert!(failures(&again).is_empty(), "{again}");

    assert_eq!(fake.org.token_grants(), 1, "one sign-in per warm container");
    assert_eq!(fake.org.token_requests(), 1);
    // Case lifecycle: the first invocation creates the Case (one call); each redelivery of the
    // same version costs a create answered DUPLICATE_VALUE and a read (two calls).
    assert_eq!(
        fake.org.api_calls(),
        5,
        "one create, then create + read per redelivery"
    );
    assert_eq!(fake.org.case_count(), 1, "{:?}", fake.org.cases());
    let creates = fake.org.creates_per_external_id();
    assert_eq!(creates.len(), 1, "{creates:?}");
    assert!(creates.values().all(|&n| n == 1), "{creates:?}");
    assert_eq!(creates[DROPPED_CONTACT_ID], 1);

    let letters = moto.receive_all(&queue).await;
    assert_eq!(letters.len(), 2, "{letters:?}");
    let mut seqs: Vec<String> = letters
        .iter()
        .map(|m| {
            let body = moto::body_json(m);
            assert_eq!(body["kind"], "poison_record", "{body}");
            assert_eq!(moto::attribute(m, "kind"), Some("poison_record"));
            body["sequence_number"]
                .as_str()
                .unwrap_or_else(|| panic!("no sequence_number: {body}"))
                .to_owned()
        })
        .collect();
    seqs.sort();
    assert_eq!(seqs, MIXED_POISON);
}

#[tokio::test]
async fn warm_container_without_dead_letter_queue_reports_poison_for_retry() {
    let fake = fake_salesforce::start().await;
    let mut lambda = Lambda::launch(&fake, "error", &[], &[]).await;

    let [first, mixed, again] = invoke_each(&mut lambda, WARM_SEQUENCE).await;
    let output = lambda.stop().await;

    assert!(failures(&first).is_empty(), "{first}");
    let mut reported = failures(&mixed);
    reported.sort();
    assert_eq!(reported, MIXED_POISON, "{}", output.all());
    assert!(failures(&again).is_empty(), "{again}");

    assert_eq!(fake.org.token_grants(), 1);
    assert_eq!(fake.org.case_count(), 1);
    let creates = fake.org.creates_per_external_id();
    assert!(
        creates.len() == 1 && creates.values().all(|&n| n == 1),
        "{creates:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Salesforce down: only the Case record is reported for retry
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn salesforce_unavailable_reports_only_the_case_record() {
    const MAX_ATTEMPTS: usize = 3;
    let fake = fake_salesforce::start().await;
    let mut lambda = Lambda::launch(
        &fake,
        "info",
        &[],
        &[("SALESFORCE_MAX_ATTEMPTS", MAX_ATTEMPTS.to_string())],
    )
    .await;

    // An agent-handled call, the dropped call and another agent-handled call: only the middle
    // one needs Salesforce.
    let datas = [
        fixtures::handled_ctr_for(&fixtures::contact_uuid(1)),
        fixtures::dropped_ctr(),
        fixtures::read_sample(SAMPLES[3].0),
    ];
    let event = process::kinesis_json(&datas, 7_000);
    for _ in 0..=MAX_ATTEMPTS {
        fake.org.push_fault(Fault::Status503);
    }

    let response = lambda.invoke(&event).await;
    assert_eq!(failures(&response), [seq(7_000, 1)]);
    assert_eq!(fake.org.api_calls(), MAX_ATTEMPTS as u64);
    // After the bounded retries the outage is systemic: the container probes once next time.
    assert_eq!(fake.org.pending_faults(), 1, "one attempt per allowed try");
    assert_eq!(fake.org.case_count(), 0);

    // The container is not poisoned: Lambda's retry of the same batch succeeds.
    fake.org.clear_faults();
    let retried = lambda.invoke(&event).await;
    let output = lambda.stop().await;
    assert!(failures(&retried).is_empty(), "{retried}\n{}", output.all());
    assert_eq!(fake.org.case_count(), 1);
    assert!(fake.org.case(DROPPED_CONTACT_ID).is_some());
    assert_eq!(fake.org.token_grants(), 1);

    let emf = output.emf();
    assert_eq!(emf.len(), 2, "{}", output.all());
    assert_metrics(
        &emf[0],
        &[
            ("Dropped", 1),
            ("HappyPath", 2),
            ("CasesUpserted", 0),
            ("Retried", 1),
            ("DeadLettered", 0),
            ("SalesforceApiCalls", MAX_ATTEMPTS as u64),
            ("SalesforceUnavailable", 1),
        ],
    );
    assert_metrics(
        &emf[1],
        &[
            ("CasesUpserted", 1),
            ("Retried", 0),
            ("SalesforceApiCalls", 1),
            ("SalesforceUnavailable", 0),
        ],
    );
    // One clear error line for the held invocation (no per-record warning flood).
    let held = output
        .json_logs()
        .into_iter()
        .filter(|l| field(l, "message").is_some_and(|m| m.starts_with("Salesforce unavailable")))
        .collect::<Vec<_>>();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["level"], "ERROR");
    assert_eq!(field(&held[0], "error_code"), Some("SERVER_UNAVAILABLE"));
    assert_eq!(held[0]["records"], 1);
}

// ---------------------------------------------------------------------------------------------
// 4. One EMF line per invocation
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn emf_line_per_invocation_counts_the_batch() {
    let fake = fake_salesforce::start().await;
    let moto = moto::start().await;
    let (_queue, dlq) = process::dead_letter_queue_env(&moto, "ctr-cases-emf-dlq").await;
    let mut lambda = Lambda::launch(&fake, "info", &[], &dlq).await;

    invoke_each(
        &mut lambda,
        [
            "dropped-ivr-call.json",
            "mixed-batch.json",
            "agent-handled-call.json",
        ],
    )
    .await;
    let output = lambda.stop().await;

    let emf = output.emf();
    assert_eq!(
        emf.len(),
        3,
        "one EMF line per invocation\n{}",
        output.all()
    );
    assert_metrics(
        &emf[0],
        &[
            ("Dropped", 1),
            ("HappyPath", 0),
            ("CasesUpserted", 1),
            ("Retried", 0),
            ("DeadLettered", 0),
            ("SalesforceApiCalls", 1),
        ],
    );
    // The mixed batch redelivers the dropped call at the same version: its Case is unchanged
    // (a create answered DUPLICATE_VALUE, then a read).
    assert_metrics(
        &emf[1],
        &[
            ("Dropped", 1),
            ("HappyPath", 1),
            ("CasesUpserted", 0),
            ("Unchanged", 1),
            ("Retried", 0),
            ("DeadLettered", 2),
            ("SalesforceApiCalls", 2),
        ],
    );
    assert_metrics(
        &emf[2],
        &[
            ("Dropped", 0),
            ("HappyPath", 1),
            ("CasesUpserted", 0),
            ("Retried", 0),
            ("DeadLettered", 0),
            ("SalesforceApiCalls", 0),
        ],
    );
    // EMF lines are whole JSON objects on stdout only.
    assert!(
        output.stderr.iter().all(|l| !l.contains("_aws")),
        "{:?}",
        output.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// 5. JSON logs
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn json_logs_have_level_message_summary_and_contact_ids() {
    let fake = fake_salesforce::start().await;
    let mut lambda = Lambda::launch(&fake, "debug", &[], &[]).await;

    invoke_each(&mut lambda, ["dropped-ivr-call.json", "mixed-batch.json"]).await;
    let output = lambda.stop().await;

    let logs = output.json_logs();
    assert!(!logs.is_empty(), "{}", output.all());
    for line in &logs {
        let level = field(line, "level").unwrap_or_else(|| panic!("no level: {line}"));
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
            "level {level}: {line}"
        );
        // flatten_event(true): the message and the event's fields sit at the top level.
        assert!(field(line, "message").is_some(), "no message: {line}");
        assert!(line.get("fields").is_none(), "fields not flattened: {line}");
        assert!(field(line, "timestamp").is_some(), "no timestamp: {line}");
        assert!(field(line, "target").is_some(), "no target: {line}");
    }
    for line in &output.stderr {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "stderr line is not JSON: {line}"
        );
    }

    let summaries: Vec<&Value> = logs
        .iter()
        .filter(|l| field(l, "message") == Some("batch processed"))
        .collect();
    assert_eq!(summaries.len(), 2, "{}", output.all());
    let dropped = summaries[0];
    assert_eq!(dropped["level"], "INFO");
    assert_eq!(dropped["records"], 1);
    assert_eq!(dropped["cases_upserted"], 1);
    assert_eq!(dropped["cases_created"], 1);
    assert_eq!(dropped["retried"], 0);
    assert_eq!(dropped["salesforce_api_calls"], 1);
    assert_eq!(dropped["token_requests"], 1);
    assert!(dropped["latency_ms"].is_u64(), "{dropped}");
    let mixed = summaries[1];
    assert_eq!(mixed["records"], 10);
    // The redelivered dropped call has the version its Case already reflects: unchanged.
    assert_eq!(mixed["cases_upserted"], 0);
    assert_eq!(mixed["unchanged"], 1);
    assert_eq!(
        mixed["cases_created"], 0,
        "the Case exists since the first batch"
    );
    assert_eq!(mixed["skipped"], 1);
    assert_eq!(mixed["superseded"], 6);
    assert_eq!(mixed["dead_lettered"], 0);
    assert_eq!(mixed["retried"], 2, "no DLQ: poison is reported for retry");
    assert_eq!(mixed["token_requests"], 0, "the token is cached");
    let outcomes: Value = serde_json::from_str(field(mixed, "outcomes").unwrap()).unwrap();
    assert_eq!(
        outcomes,
        json!({"dropped": 1, "happy_path_live_agent": 1, "poison": 2, "superseded": 6})
    );

    // Per-record lines carry the sequence number and the ContactId ("-" when undecodable).
    let per_record = [
        "case upserted",
        "case unchanged",
        "record skipped",
        "record dead-lettered",
        "record reported for retry",
    ];
    let records: Vec<&Value> = logs
        .iter()
        .filter(|l| field(l, "message").is_some_and(|m| per_record.contains(&m)))
        .collect();
    assert_eq!(records.len(), 11, "one line per record at debug level");
    for line in &records {
        assert!(field(line, "sequence_number").is_some(), "{line}");
        assert!(field(line, "contact_id").is_some(), "{line}");
    }
    let upserted: Vec<&&Value> = records
        .iter()
        .filter(|l| {
            field(l, "message") == Some("case upserted")
                || field(l, "message") == Some("case unchanged")
        })
        .collect();
    assert_eq!(upserted.len(), 2);
    for line in upserted {
        assert_eq!(
            field(line, "contact_id"),
            Some(DROPPED_CONTACT_ID),
            "{line}"
        );
    }
    let skipped_ids: BTreeSet<&str> = records
        .iter()
        .filter(|l| field(l, "message") == Some("record skipped"))
        .filter_map(|l| field(l, "contact_id"))
        .collect();
    assert_eq!(
        skipped_ids,
        BTreeSet::from([DROPPED_CONTACT_ID, "6fe40d2a-1a89-4d73-bfcf-5d9c33894f47"])
    );
    let poison: Vec<&&Value> = records
        .iter()
        .filter(|l| field(l, "message") == Some("record reported for retry"))
        .collect();
    assert_eq!(poison.len(), 2);
    for line in poison {
        assert_eq!(field(line, "contact_id"), Some("-"), "{line}");
        assert_eq!(line["level"], "WARN");
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Privacy: no phone number or credential in the output, even at trace level
// ---------------------------------------------------------------------------------------------

/// What a privacy run produced and what must not appear in it.
struct PrivacyRun {
    output: Output,
    /// Every phone number in the fixtures and the synthetic ones.
    numbers: BTreeSet<String>,
    /// Password, client secret, every access token used, and the token prefix.
    secrets: BTreeSet<String>,
}

/// Runs every fixture CTR and every events/*.json through one process at TRACE level with
/// JSON logs and a dead-letter queue, including a Salesforce rejection whose message quotes
/// caller numbers and a token endpoint refusal. With `inline_event`, the recorded Kinesis event
/// whose `data` is an inline JSON object (accepted by src/event.rs) is also sent as is.
async fn privacy_run(inline_event: bool) -> PrivacyRun {
    let fake = fake_salesforce::start().await;
    let moto = moto::start().await;
    let (queue, dlq) = process::dead_letter_queue_env(&moto, "ctr-cases-privacy-dlq").await;
    let mut lambda = Lambda::launch(&fake, "trace", &[], &dlq).await;

    // Every phone number in every fixture CTR.
    let mut sample_datas: Vec<String> = Vec::new();
    let mut ctrs: Vec<Value> = Vec::new();
    for (name, _) in SAMPLES {
        for ctr in fixtures::sample_ctrs(name) {
            ctrs.push(serde_json::from_str(&ctr).unwrap());
            sample_datas.push(ctr);
        }
    }
    let mut events: Vec<Value> = event_files()
        .iter()
        .map(|n| fixtures::event_json(n))
        .collect();
    for event in &events {
        ctrs.extend(event_ctrs(event));
    }
    if inline_event {
        let text = fixtures::read_sample(SAMPLES[4].0);
        let event: Value = serde_json::from_str(&text).unwrap();
        assert!(event["Records"][0]["kinesis"]["data"].is_object());
        events.push(event);
    }
    let mut numbers = BTreeSet::new();
    for ctr in &ctrs {
        process::phone_numbers(ctr, &mut numbers);
    }
    let addresses: BTreeSet<String> = ctrs.iter().flat_map(endpoint_addresses).collect();
    assert!(
        addresses.is_subset(&numbers) && addresses.len() >= 6,
        "{addresses:?} vs {numbers:?}"
    );
    for n in [
        DROPPED_CALLER,
        "+190011112222",
        "+14156372250",
        "+18004449999",
    ] {
        assert!(numbers.contains(n), "{n} not collected: {numbers:?}");
    }

    // Synthetic dropped calls with their own numbers; Salesforce rejects the first with a
    // message quoting caller numbers, so it is dead-lettered.
    let synthetic: Vec<(String, String)> = (1..=3)
        .map(|n| {
            (
                fixtures::contact_uuid(9_000 + n),
                fixtures::caller_number(9_000 + n),
            )
        })
        .collect();
    let quoted_only = fixtures::caller_number(9_999);
    numbers.extend(synthetic.iter().map(|(_, number)| number.clone()));
    numbers.insert(quoted_only.clone());
    let mut datas = sample_datas;
    for (i, (id, number)) in synthetic.iter().take(2).enumerate() {
        datas.push(fixtures::dropped_ctr_for(
            id,
            number,
            &format!("2024-03-0{}T10:00:00Z", i + 1),
        ));
    }
    fake.org.push_fault(Fault::RecordError {
        external_id: synthetic[0].0.clone(),
        status_code: "STRING_TOO_LONG".into(),
        message: format!(
            "SuppliedPhone: data value too large: {} / {} (max length=40)",
            synthetic[0].1, quoted_only
        ),
        fields: vec!["SuppliedPhone".into()],
    });
    let response = lambda.invoke(&process::kinesis_json(&datas, 100)).await;
    assert!(
        failures(&response).is_empty(),
        "the rejected record is dead-lettered: {response}"
    );
    assert!(fake.org.case(&synthetic[1].0).is_some());
    assert!(fake.org.case(&synthetic[0].0).is_none());

    // Every sample event.
    for event in &events {
        let response = lambda.invoke(event).await;
        failures(&response);
    }

    // The token endpoint refuses the grant (sessions expired, credentials rejected).
    fake.org.expire_all_tokens();
    fake.org.reject_credentials(true);
    let refused =
        fixtures::dropped_ctr_for(&synthetic[2].0, &synthetic[2].1, "2024-04-01T10:00:00Z");
    let response = lambda.invoke(&process::kinesis_json(&[refused], 500)).await;
    assert_eq!(failures(&response), [seq(500, 0)]);
    let output = lambda.stop().await;
    let text = output.all();
    assert!(
        text.contains("cannot sign in to Salesforce"),
        "the refusal is logged\n{text}"
    );
    assert!(
        output
            .stdout
            .iter()
            .any(|l| l.contains("\"level\":\"TRACE\"")),
        "trace level is on"
    );

    // The dead letter itself carries Salesforce's message (SQS is not a log).
    let letters = moto.receive_all(&queue).await;
    assert!(
        letters.iter().any(|m| m
            .body()
            .is_some_and(|b| b.contains("STRING_TOO_LONG") && b.contains(&quoted_only))),
        "{letters:?}"
    );

    let mut secrets: BTreeSet<String> = BTreeSet::from([
        fake_salesforce::PASSWORD.to_owned(),
        fake_salesforce::CLIENT_SECRET.to_owned(),
        format!("{}!AQ", fake_salesforce::ORG_ID),
    ]);
    secrets.extend(process::bearer_tokens(&fake));
    assert!(secrets.len() >= 4, "at least one token seen: {secrets:?}");
    PrivacyRun {
        output,
        numbers,
        secrets,
    }
}

#[tokio::test]
async fn trace_logs_never_contain_phone_numbers_or_credentials() {
    let run = privacy_run(false).await;
    process::assert_no_leaks(&run.output, |line| {
        process::numbers_and_secrets_in(line, &run.numbers, &run.secrets)
    });
}

/// Stricter: record payloads are not echoed either, neither base64-encoded (real Kinesis
/// records) nor inline (the recorded event whose `data` is a JSON object).
///
/// Fails while src/logging.rs applies AWS_LAMBDA_LOG_LEVEL to every crate: at TRACE,
/// lambda_runtime logs "raw JSON event received from Lambda" with the whole event as `body`.
#[tokio::test]
async fn trace_logs_do_not_echo_record_payloads() {
    let run = privacy_run(true).await;
    process::assert_no_leaks(&run.output, |line| {
        let mut found = Vec::new();
        for number in &run.numbers {
            if line.contains(number.as_str()) {
                found.push(format!("phone number {number}"));
            }
        }
        for decoded in process::decoded_base64_runs(line) {
            for number in &run.numbers {
                if decoded.contains(number.as_str()) {
                    found.push(format!("base64-encoded phone number {number}"));
                }
            }
        }
        found
    });
}

// ---------------------------------------------------------------------------------------------
// 7. Cold start with a bad configuration
// ---------------------------------------------------------------------------------------------

/// Start the binary with [`process::lambda_env`] minus `remove` plus `extra`, and wait for it
/// to exit.
async fn cold_start_failure(
    remove: &[&str],
    extra: &[(&'static str, String)],
) -> (ExitStatus, Output, RuntimeApi) {
    let fake = fake_salesforce::start().await;
    let api = runtime_api::start().await;
    let mut env = process::lambda_env(&api, &fake, "info");
    env.retain(|(k, _)| !remove.contains(k));
    env.extend(extra.iter().cloned());
    let mut child = runtime_api::spawn(process::LAMBDA_BIN, &env);
    let status = child
        .wait_exit(EXIT_WAIT)
        .await
        .unwrap_or_else(|| panic!("still running after {EXIT_WAIT:?}\n{}", child.dump()));
    let output = Output::of(&child);
    assert_eq!(
        fake.org.token_requests(),
        0,
        "no sign-in before the config is valid"
    );
    (status, output, api)
}

#[tokio::test]
async fn missing_client_id_fails_cold_start_naming_the_variable() {
    let (status, output, api) = cold_start_failure(&["SALESFORCE_CLIENT_ID"], &[]).await;
    let text = output.all();
    assert!(!status.success(), "exit {status}\n{text}");
    assert!(text.contains("SALESFORCE_CLIENT_ID"), "{text}");
    assert!(!text.contains(fake_salesforce::PASSWORD), "{text}");
    assert!(!text.contains(fake_salesforce::CLIENT_SECRET), "{text}");
    // The error is also a JSON log line.
    let logged = output
        .json_logs()
        .into_iter()
        .find(|l| field(l, "message") == Some("cannot start"))
        .unwrap_or_else(|| panic!("no `cannot start` log line\n{text}"));
    assert_eq!(logged["level"], "ERROR");
    assert!(
        field(&logged, "error").is_some_and(|e| e.contains("SALESFORCE_CLIENT_ID")),
        "{logged}"
    );
    // It never asked for an event.
    assert!(api.delivered_ids().is_empty());
}

#[tokio::test]
async fn invalid_api_version_fails_cold_start_naming_the_variable() {
    let (status, output, _api) =
        cold_start_failure(&[], &[("SALESFORCE_API_VERSION", "62".to_owned())]).await;
    let text = output.all();
    assert!(!status.success(), "exit {status}\n{text}");
    assert!(text.contains("SALESFORCE_API_VERSION"), "{text}");
    assert!(text.contains("v62.0"), "the hint says what to set: {text}");
    assert!(!text.contains(fake_salesforce::PASSWORD), "{text}");
}
