//! Fixture loading and builders shared by the integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use ctr_cases::app::{AppState, MetricsTarget};
use ctr_cases::aws::queue::DeadLetterSink;
use ctr_cases::aws::secrets::CredentialSource;
use ctr_cases::config::{Config, CredentialsConfig};
use ctr_cases::event::{KinesisEnvelope, record_for};
use ctr_cases::salesforce::SalesforceClient;
use lambda_runtime::{Context, LambdaEvent};

use super::fake_salesforce::{self, FakeSalesforce};

/// The recorded CTR samples and the class SOURCES.md expects for each.
pub const SAMPLES: &[(&str, &str)] = &[
    (
        "voice-agent-handled-external-transfer-endpoint-2022.json",
        "happy_path_live_agent",
    ),
    (
        "array-voice-agent-handled-duplicate-redeliveries-2022.json",
        "happy_path_live_agent",
    ),
    (
        "voice-agent-handled-2022-attribute-keys-differ-only-by-case.json",
        "happy_path_live_agent",
    ),
    (
        "voice-agent-handled-2018-minimal-embedded-in-voicebase-response.json",
        "happy_path_live_agent",
    ),
    (
        "kinesis-event-inline-object-voice-ivr-only-contact-flow-disconnect-2024.json",
        "dropped",
    ),
    (
        "partial-handwritten-voice-transfer-telecom-problem-numeric-attribute.json",
        "happy_path_live_agent",
    ),
];

/// The ContactId of the recorded dropped call.
pub const DROPPED_CONTACT_ID: &str = "5ca32fbd-8f92-46af-92a5-6b0f970f0efe";
/// The caller number in the recorded dropped call.
pub const DROPPED_CALLER: &str = "+11234567890";

/// Path of a file under tests/fixtures.
pub fn fixture_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative)
}

/// Path of a file under events/ (the bundled sample events).
pub fn event_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(relative)
}

/// A file under events/, parsed; panics naming the file when it cannot be read or is not JSON.
pub fn event_json(relative: &str) -> serde_json::Value {
    let path = event_path(relative);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Text of a CTR sample.
pub fn read_sample(name: &str) -> String {
    std::fs::read_to_string(fixture_path(&format!("ctr/{name}")))
        .unwrap_or_else(|e| panic!("cannot read sample {name}: {e}"))
}

/// The CTRs (JSON text) inside a sample: a bare CTR, an array of CTRs, or a Kinesis event
/// with inline CTR objects.
pub fn sample_ctrs(name: &str) -> Vec<String> {
    let text = read_sample(name);
    let value: serde_json::Value = serde_json::from_str(&text).expect("samples are JSON");
    match value {
        serde_json::Value::Array(items) => items.iter().map(ToString::to_string).collect(),
        serde_json::Value::Object(map) if map.contains_key("Records") => map["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["kinesis"]["data"].to_string())
            .collect(),
        _ => vec![text],
    }
}

/// The recorded dropped call as JSON text.
pub fn dropped_ctr() -> String {
    sample_ctrs("kinesis-event-inline-object-voice-ivr-only-contact-flow-disconnect-2024.json")
        .remove(0)
}

/// The recorded dropped call with another ContactId, caller number and update time.
pub fn dropped_ctr_for(contact_id: &str, caller: &str, last_update: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(&dropped_ctr()).unwrap();
    v["ContactId"] = contact_id.into();
    v["CustomerEndpoint"]["Address"] = caller.into();
    v["LastUpdateTimestamp"] = last_update.into();
    v.to_string()
}

/// Dropped call number `n` (its own ContactId and caller), as record data.
pub fn dropped_data(n: u64) -> Vec<u8> {
    dropped_ctr_for(&contact_uuid(n), &caller_number(n), "2024-02-25T08:36:30Z").into_bytes()
}

/// Dropped calls for every `n` in `range`, as record datas.
pub fn dropped_datas(range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    range.map(dropped_data).collect()
}

/// A CTR of `contact_id` calling from `caller` at version `updated`: a dropped call, or (with
/// `agent`) one an agent handled; `attributes` (a JSON object) added to its contact attributes.
pub fn ctr_after(
    contact_id: &str,
    caller: &str,
    updated: &str,
    agent: bool,
    attributes: serde_json::Value,
) -> Vec<u8> {
    use serde_json::{Value, json};
    let mut v: Value = serde_json::from_str(&dropped_ctr_for(contact_id, caller, updated))
        .expect("the fixture CTR is JSON");
    if agent {
        v["Agent"] = json!({"Username": "agent.one", "ConnectedToAgentTimestamp": updated});
        v["Queue"] = json!({"Name": "Bookings"});
    }
    if let (Some(target), Value::Object(extra)) = (v["Attributes"].as_object_mut(), attributes) {
        target.extend(extra);
    }
    v.to_string().into_bytes()
}

/// The recorded agent-handled call with another ContactId.
pub fn handled_ctr_for(contact_id: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(&read_sample(SAMPLES[0].0)).unwrap();
    v["ContactId"] = contact_id.into();
    v.to_string()
}

/// A deterministic UUID for test contact `n`.
pub fn contact_uuid(n: u64) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", n >> 16, n)
}

/// A deterministic fake caller number for contact `n` (valid E.164 shape).
pub fn caller_number(n: u64) -> String {
    format!("+1555{:07}", n % 10_000_000)
}

/// A Kinesis event of the given record datas, sequence numbers `first_seq`, `first_seq+1`, ….
pub fn kinesis_event(datas: &[Vec<u8>], first_seq: u64) -> KinesisEnvelope {
    KinesisEnvelope {
        records: datas
            .iter()
            .enumerate()
            .map(|(i, d)| {
                record_for(
                    d,
                    &format!("{:020}", first_seq + i as u64),
                    "shardId-000000000000",
                )
            })
            .collect(),
    }
}

/// A Lambda event with a deadline `budget` from now.
pub fn lambda_event(envelope: KinesisEnvelope, budget: Duration) -> LambdaEvent<KinesisEnvelope> {
    let mut context = Context::default();
    context.deadline = (chrono::Utc::now() + budget).timestamp_millis() as u64;
    LambdaEvent::new(envelope, context)
}

/// Environment for a Lambda talking to `fake` with the password flow and zero backoff.
pub fn fake_env(fake: &FakeSalesforce) -> HashMap<String, String> {
    [
        ("SALESFORCE_LOGIN_URL", fake.base_url.as_str()),
        ("SALESFORCE_CLIENT_ID", fake_salesforce::CLIENT_ID),
        ("SALESFORCE_CLIENT_SECRET", fake_salesforce::CLIENT_SECRET),
        ("SALESFORCE_USERNAME", fake_salesforce::USERNAME),
        ("SALESFORCE_PASSWORD", fake_salesforce::PASSWORD),
        ("SALESFORCE_RETRY_BASE_MS", "0"),
        ("SALESFORCE_RETRY_MAX_MS", "0"),
        ("SALESFORCE_TIMEOUT_MS", "5000"),
        // Tests of the outage hold set their own; the others must not wait.
        ("OUTAGE_HOLD_MS", "0"),
        // Tests of the org check (tests/real_orgs.rs) turn it on; the others count calls and
        // script faults from the first write, in a container whose org was checked.
        ("SALESFORCE_ORG_CHECK", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Removes the inline `SALESFORCE_*` credentials from `env` (see [`fake_env`]), for tests whose
/// credentials come from a secret.
pub fn remove_inline_credentials(env: &mut HashMap<String, String>) {
    for inline in [
        "SALESFORCE_CLIENT_ID",
        "SALESFORCE_CLIENT_SECRET",
        "SALESFORCE_USERNAME",
        "SALESFORCE_PASSWORD",
    ] {
        env.remove(inline);
    }
}

/// A Salesforce credentials secret (the JSON `SALESFORCE_SECRET_ARN` names) for the fake org's
/// user with `client_id` and `password`.
pub fn secret_json_for(client_id: &str, password: &str) -> String {
    serde_json::json!({
        "client_id": client_id,
        "client_secret": fake_salesforce::CLIENT_SECRET,
        "username": fake_salesforce::USERNAME,
        "password": password,
    })
    .to_string()
}

/// [`secret_json_for`] the fake org's client id.
pub fn secret_json(password: &str) -> String {
    secret_json_for(fake_salesforce::CLIENT_ID, password)
}

/// The configuration `env` describes (see [`fake_env`]).
///
/// # Panics
/// When `env` is not a valid configuration.
pub fn test_config(env: &HashMap<String, String>) -> Config {
    Config::from_lookup(|k| env.get(k).cloned())
        .unwrap_or_else(|e| panic!("test config is invalid: {e}"))
}

/// App state for `fake` built from `env` (see [`fake_env`]), with an in-memory dead-letter sink
/// and metrics off.
pub fn app_state(env: &HashMap<String, String>) -> AppState {
    let config = test_config(env);
    let credentials = match &config.credentials {
        CredentialsConfig::Inline(c) => CredentialSource::Static(c.clone()),
        other => panic!("tests use inline credentials, got {other:?}"),
    };
    app_state_from(config, credentials, DeadLetterSink::memory())
}

/// App state from `config` with `credentials` (`config.credentials` is not looked at) and
/// `dead_letters`: metrics off, a 500 ms deadline margin, the rest as `config` says.
pub fn app_state_from(
    config: Config,
    credentials: CredentialSource,
    dead_letters: DeadLetterSink,
) -> AppState {
    AppState {
        settings: config.pipeline,
        salesforce: SalesforceClient::new(config.salesforce, credentials)
            .expect("the HTTP client builds"),
        dead_letters,
        callbacks: Default::default(),
        recent_dead_letters: Default::default(),
        metrics: MetricsTarget {
            namespace: "CtrCasesTest".into(),
            function_name: "test".into(),
            enabled: false,
        },
        deadline_margin: Duration::from_millis(500),
        outage_hold: config.outage_hold,
        flow_timeout: config.flow_timeout,
        function_timeout: config.function_timeout,
        unknown_deadline_warned: Default::default(),
    }
}

/// Sequence numbers reported for retry.
pub fn failures(response: &aws_lambda_events::streams::KinesisEventResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().expect("failures carry an id"))
        .collect()
}
