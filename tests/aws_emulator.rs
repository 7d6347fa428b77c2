//! Secrets Manager credentials and the SQS dead-letter queue against moto_server on 127.0.0.1,
//! plus the Lambda's whole configuration path (`Config::from_env` → `AppState::from_config`) in
//! a child process whose AWS environment points at moto.
//!
//! Each test starts its own moto_server (see `support::moto`), so no state is shared.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::types::Message;
use base64::Engine as _;
use ctr_cases::app::AppState;
use ctr_cases::aws::queue::DeadLetterSink;
use ctr_cases::aws::secrets::{CredentialSource, Credentials, SecretsError};
use ctr_cases::config::Config;
use ctr_cases::event::KinesisEnvelope;
use ctr_cases::report::Action;
use ctr_cases::retry::Deadline;
use ctr_cases::stream as handler;
use secrecy::ExposeSecret;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use support::fake_salesforce::{self as fake, FakeSalesforce, Fault};
use support::fixtures;
use support::moto::{self, Moto, attribute, body_json};

/// Set in the child process's environment by the parent test.
const CHILD_MARKER: &str = "CTR_CASES_AWS_EMULATOR_CHILD";
/// The child prints its record reports on one stdout line after this marker (libtest may put
/// `test … ` before it on the same line).
const CHILD_RESULT_PREFIX: &str = "CHILD_REPORTS ";
const SHARD: &str = "shardId-000000000000";
/// Data of a record that is not base64 (`kinesis.data` as Lambda would deliver it).
const NOT_BASE64: &str = "this is not base64 !!";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

async fn secret_source(moto: &Moto, arn: &str) -> CredentialSource {
    let client = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
    CredentialSource::secrets_manager(client, arn.to_owned())
}

fn exposed(secret: Option<&secrecy::SecretString>) -> Option<&str> {
    secret.map(ExposeSecret::expose_secret)
}

/// An app state for `fake` (password flow, zero backoff) whose dead letters go to `queue_url`.
async fn state_with_queue(moto: &Moto, fake: &FakeSalesforce, queue_url: &str) -> AppState {
    let mut state = fixtures::app_state(&fixtures::fake_env(fake));
    state.dead_letters = DeadLetterSink::Sqs {
        client: aws_sdk_sqs::Client::new(&moto.sdk_config().await),
        queue_url: queue_url.to_owned(),
    };
    state
}

fn dropped_call(n: u64) -> Vec<u8> {
    fixtures::dropped_ctr_for(
        &fixtures::contact_uuid(n),
        &fixtures::caller_number(n),
        "2024-05-01T10:00:00Z",
    )
    .into_bytes()
}

fn base64_of(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Replaces record `index`'s `kinesis.data` with the JSON string `text` (as delivered, unchecked).
fn set_raw_data(event: &mut KinesisEnvelope, index: usize, text: &str) {
    let raw = RawValue::from_string(Value::String(text.to_owned()).to_string())
        .expect("a JSON string literal");
    event.records[index].kinesis.data = Some(raw);
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(30))
}

// ---------------------------------------------------------------------------------------------
// Secrets Manager
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn secret_json_is_read_into_credentials() {
    let moto = moto::start().await;
    let text = json!({
        "client_id": "consumer-key",
        "client_secret": "consumer-secret",
        "username": "integration@example.com",
        "password": "pw+token",
        "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "login_url": "https://acme.my.salesforce.com",
    })
    .to_string();
    let arn = moto.create_secret("ctr-cases/full", &text).await;
    let source = secret_source(&moto, &arn).await;

    let credentials = source.current().await.expect("the secret is read");

    assert_eq!(credentials.client_id, "consumer-key");
    assert_eq!(
        exposed(credentials.client_secret.as_ref()),
        Some("consumer-secret")
    );
    assert_eq!(
        credentials.username.as_deref(),
        Some("integration@example.com")
    );
    assert_eq!(exposed(credentials.password.as_ref()), Some("pw+token"));
    assert!(
        exposed(credentials.private_key.as_ref()).is_some_and(|k| k.contains("BEGIN PRIVATE KEY"))
    );
    assert_eq!(
        credentials.login_url.as_deref(),
        Some("https://acme.my.salesforce.com")
    );
    let shown = format!("{credentials:?} {source:?}");
    assert!(
        !shown.contains("consumer-secret") && !shown.contains("pw+token"),
        "{shown}"
    );
}

/// `current()` keeps the first read; only `reload()` sees a new secret value.
#[tokio::test]
async fn secret_is_cached_until_reload() {
    let moto = moto::start().await;
    let arn = moto
        .create_secret(
            "ctr-cases/cached",
            &fixtures::secret_json_for("old-client", "old-pw"),
        )
        .await;
    let source = secret_source(&moto, &arn).await;
    assert_eq!(source.current().await.unwrap().client_id, "old-client");

    moto.put_secret_value(&arn, &fixtures::secret_json_for("new-client", "new-pw"))
        .await;
    let cached = source.current().await.unwrap();
    assert_eq!(cached.client_id, "old-client");
    assert_eq!(exposed(cached.password.as_ref()), Some("old-pw"));

    let reloaded: Credentials = source
        .reload()
        .await
        .unwrap()
        .expect("a secret source reloads");
    assert_eq!(reloaded.client_id, "new-client");
    assert_eq!(exposed(reloaded.password.as_ref()), Some("new-pw"));
    assert_eq!(source.current().await.unwrap().client_id, "new-client");
}

#[tokio::test]
async fn secret_that_is_not_credentials_json_is_bad_json_without_its_text() {
    let moto = moto::start().await;
    for (name, text) in [
        ("ctr-cases/plain", "hunter2-plain-text-password"),
        ("ctr-cases/json-string", "\"hunter2-json-string-password\""),
        (
            "ctr-cases/wrong-type",
            r#"{"client_id":"cid","password":8675309123}"#,
        ),
    ] {
        let arn = moto.create_secret(name, text).await;
        let source = secret_source(&moto, &arn).await;

        let error = source.current().await.unwrap_err();

        assert!(
            matches!(error, SecretsError::BadJson(_)),
            "{name}: {error:?}"
        );
        let shown = format!("{error} {error:?}");
        assert!(shown.contains("SALESFORCE_SECRET_ARN"), "{name}: {shown}");
        for leaked in ["hunter2", "8675309123"] {
            assert!(!shown.contains(leaked), "{name}: {shown}");
        }
    }
}

#[tokio::test]
async fn binary_secret_is_not_text() {
    let moto = moto::start().await;
    let arn = moto
        .secretsmanager()
        .await
        .create_secret()
        .name("ctr-cases/binary")
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(
            fixtures::secret_json_for("cid", "pw").into_bytes(),
        ))
        .send()
        .await
        .expect("moto CreateSecret")
        .arn()
        .expect("an ARN")
        .to_owned();
    let source = secret_source(&moto, &arn).await;

    let error = source.current().await.unwrap_err();

    assert!(matches!(error, SecretsError::NotText), "{error:?}");
}

#[tokio::test]
async fn missing_secret_is_fetch_error_naming_the_variable() {
    let moto = moto::start().await;
    let arn = format!(
        "arn:aws:secretsmanager:{}:{}:secret:ctr-cases/absent-AbCdEf",
        moto::REGION,
        moto::ACCOUNT_ID
    );
    let source = secret_source(&moto, &arn).await;

    let error = source.current().await.unwrap_err();

    let SecretsError::Fetch { code } = &error else {
        panic!("expected SecretsError::Fetch, got {error:?}");
    };
    assert_eq!(code, "ResourceNotFoundException");
    assert!(
        error.to_string().contains("SALESFORCE_SECRET_ARN"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// Dead-letter queue
// ---------------------------------------------------------------------------------------------

/// Two poison records and a Salesforce rejection are dead-lettered to SQS with their reason and
/// original data; none is retried, and the good dropped call still becomes a Case.
#[tokio::test]
async fn poison_and_rejected_records_go_to_the_queue_not_to_retry() {
    let moto = moto::start().await;
    let queue_url = moto.create_queue("ctr-cases-dlq").await;
    let fake = fake::start().await;
    let good = fixtures::contact_uuid(1);
    let rejected = fixtures::contact_uuid(2);
    fake.org.push_fault(Fault::RecordError {
        external_id: rejected.clone(),
        status_code: "REQUIRED_FIELD_MISSING".into(),
        message: "Required fields are missing: [Subject]".into(),
        fields: vec!["Subject".into()],
    });
    let datas = [
        dropped_call(1),
        b"not json at all".to_vec(),
        b"placeholder".to_vec(),
        dropped_call(2),
    ];
    let mut event = fixtures::kinesis_event(&datas, 1);
    set_raw_data(&mut event, 2, NOT_BASE64);
    let seq: Vec<String> = event
        .records
        .iter()
        .map(|r| r.kinesis.sequence_number.clone())
        .collect();
    let state = state_with_queue(&moto, &fake, &queue_url).await;

    let outcome = handler::process_batch(&state, &event, deadline()).await;

    assert!(
        outcome.response.batch_item_failures.is_empty(),
        "{:?}",
        outcome.reports
    );
    let actions: Vec<Action> = outcome.reports.iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        [
            Action::UpsertCase,
            Action::DeadLetter,
            Action::DeadLetter,
            Action::DeadLetter
        ]
    );
    assert!(fake.org.case(&good).is_some());
    assert!(fake.org.case(&rejected).is_none());
    assert_eq!(fake.org.pending_faults(), 0);

    let mut letters: HashMap<String, (Value, Message)> = moto
        .receive_all(&queue_url)
        .await
        .into_iter()
        .map(|m| {
            let body = body_json(&m);
            let seq = body["sequence_number"].as_str().unwrap().to_owned();
            (seq, (body, m))
        })
        .collect();
    assert_eq!(letters.len(), 3, "{:?}", letters.keys());
    let expected = [
        (
            &seq[1],
            "poison_record",
            "invalid_json",
            base64_of(&datas[1]),
            None,
        ),
        (
            &seq[2],
            "poison_record",
            "invalid_base64",
            NOT_BASE64.to_owned(),
            None,
        ),
        (
            &seq[3],
            "salesforce_rejected",
            "REQUIRED_FIELD_MISSING",
            base64_of(&datas[3]),
            Some(rejected.as_str()),
        ),
    ];
    for (sequence, kind, code, data, contact_id) in expected {
        let (body, message) = letters
            .remove(sequence)
            .unwrap_or_else(|| panic!("no dead letter for record {sequence}"));
        assert_eq!(body["kind"], kind, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert_eq!(body["shard_id"], SHARD, "{body}");
        assert_eq!(body["data"], data.as_str(), "{body}");
        assert_eq!(body["data_truncated"], false, "{body}");
        assert_eq!(body["contact_id"].as_str(), contact_id, "{body}");
        assert_eq!(attribute(&message, "kind"), Some(kind));
        assert_eq!(attribute(&message, "error_code"), Some(code));
        if kind == "salesforce_rejected" {
            assert_eq!(body["error"]["status"], 200, "{body}");
            assert_eq!(body["error"]["fields"], json!(["Subject"]), "{body}");
        }
    }
    assert_eq!(
        outcome.reports[3].error.as_deref(),
        Some("REQUIRED_FIELD_MISSING")
    );
}

/// A dead letter SQS does not take is reported for retry, never dropped.
#[tokio::test]
async fn unknown_queue_reports_poison_record_for_retry() {
    let moto = moto::start().await;
    let missing_queue = format!(
        "{}/{}/ctr-cases-no-such-queue",
        moto.endpoint,
        moto::ACCOUNT_ID
    );
    let fake = fake::start().await;
    let event = fixtures::kinesis_event(&[dropped_call(1), b"not json".to_vec()], 1);
    let poison_seq = event.records[1].kinesis.sequence_number.clone();
    let state = state_with_queue(&moto, &fake, &missing_queue).await;

    let outcome = handler::process_batch(&state, &event, deadline()).await;

    assert_eq!(fixtures::failures(&outcome.response), [poison_seq]);
    let poison = &outcome.reports[1];
    assert_eq!(poison.action, Action::Retry);
    assert_eq!(poison.error.as_deref(), Some("invalid_json"));
    assert_eq!(outcome.reports[0].action, Action::UpsertCase);
    assert!(fake.org.case(&fixtures::contact_uuid(1)).is_some());
}

/// A poison record redelivered to another container (a cold start) after its batch was
/// retried: with a FIFO dead-letter queue the second letter is deduplicated by shard and
/// sequence number, so the record is dead-lettered exactly once.
#[tokio::test]
async fn fifo_queue_keeps_one_letter_for_a_record_redelivered_to_another_container() {
    let moto = moto::start().await;
    let queue_url = moto.create_fifo_queue("ctr-cases-dead-letters.fifo").await;
    let fake = fake::start().await;
    let event = fixtures::kinesis_event(&[b"not json".to_vec(), dropped_call(2)], 1);
    for _container in 0..2 {
        let state = state_with_queue(&moto, &fake, &queue_url).await;
        let outcome = handler::process_batch(&state, &event, deadline()).await;
        assert_eq!(outcome.reports[0].action, Action::DeadLetter);
        assert!(outcome.response.batch_item_failures.is_empty());
    }
    let messages = moto.receive_all(&queue_url).await;
    assert_eq!(messages.len(), 1, "deduplicated across containers");
    assert_eq!(body_json(&messages[0])["error"]["code"], "invalid_json");
    assert_eq!(
        fake.org.creates_per_external_id()[&fixtures::contact_uuid(2)],
        1
    );
}

// ---------------------------------------------------------------------------------------------
// The Lambda's configuration path, in a child process
// ---------------------------------------------------------------------------------------------

/// `Config::from_env` and `AppState::from_config` (which loads the AWS configuration from the
/// environment) run in a child process (this test binary again, running
/// [`child_runs_a_batch_with_lambda_environment`]) so no environment variable is set in this
/// process. The child's AWS endpoint is moto; it must read the Salesforce credentials from the
/// secret and send the dead letter to the queue.
#[tokio::test]
async fn lambda_environment_reads_secret_and_queue_from_aws() {
    let moto = moto::start().await;
    let fake = fake::start().await;
    let arn = moto
        .create_secret(
            "ctr-cases/lambda-env",
            &fixtures::secret_json_for(fake::CLIENT_ID, fake::PASSWORD),
        )
        .await;
    let queue_url = moto.create_queue("ctr-cases-lambda-env-dlq").await;
    let exe = std::env::current_exe().expect("the test binary's path");
    let child = tokio::process::Command::new(exe)
        .args([
            "child_runs_a_batch_with_lambda_environment",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .env(CHILD_MARKER, "1")
        .envs(moto.aws_env())
        .env("SALESFORCE_LOGIN_URL", &fake.base_url)
        .env("SALESFORCE_SECRET_ARN", &arn)
        .env("DEAD_LETTER_QUEUE_URL", &queue_url)
        .env("SALESFORCE_RETRY_BASE_MS", "0")
        .env("SALESFORCE_RETRY_MAX_MS", "0")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), child)
        .await
        .expect("the child finishes within 60 s")
        .expect("the child runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "child failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let reports: Vec<Value> = stdout
        .lines()
        .find_map(|l| l.split_once(CHILD_RESULT_PREFIX).map(|(_, json)| json))
        .map(|json| serde_json::from_str(json).expect("the child's reports are JSON"))
        .unwrap_or_else(|| panic!("the child printed no reports:\n{stdout}\n{stderr}"));

    assert_eq!(reports.len(), 2, "{reports:?}");
    assert_eq!(reports[0]["action"], "upsert_case");
    assert_eq!(reports[1]["action"], "dead_letter");
    // The grant used the secret's credentials (nothing else in the child's environment has them).
    assert_eq!(fake.org.token_grants(), 1);
    let case = fake
        .org
        .case(fixtures::DROPPED_CONTACT_ID)
        .expect("the child's Case is in the org");
    assert_eq!(case["Id"], reports[0]["caseId"]);
    let letters = moto.receive_all(&queue_url).await;
    assert_eq!(letters.len(), 1);
    let body = body_json(&letters[0]);
    assert_eq!(body["kind"], "poison_record");
    assert_eq!(body["error"]["code"], "invalid_json");
    assert_eq!(body["sequence_number"], reports[1]["sequenceNumber"]);
}

/// Entry point of the child process started by [`lambda_environment_reads_secret_and_queue_from_aws`];
/// does nothing unless that test set its marker variable.
#[tokio::test]
#[ignore = "run as a child process by lambda_environment_reads_secret_and_queue_from_aws"]
async fn child_runs_a_batch_with_lambda_environment() {
    if std::env::var_os(CHILD_MARKER).is_none() {
        return;
    }
    let config = Config::from_env().expect("the parent set a valid configuration");
    let state = AppState::from_config(config)
        .await
        .expect("the app state builds");
    let event = fixtures::kinesis_event(
        &[fixtures::dropped_ctr().into_bytes(), b"{not json".to_vec()],
        1,
    );
    let outcome = handler::process_batch(&state, &event, deadline()).await;
    println!(
        "{CHILD_RESULT_PREFIX}{}",
        serde_json::to_string(&outcome.reports).expect("reports serialize")
    );
}
