//! Issue "Security and privacy": credentials, tokens and Case data go only to the Salesforce
//! hosts the URL policy allows; sensitive contact attributes never reach a Case, a dry run's
//! output or a log line; logs at every level hold no phone number, token, secret or raw record.
//!
//! Local servers only: the fake org on 127.0.0.1, and a second listener on 127.0.0.2
//! ([`support::foreign`]) standing in for a foreign host, which must receive nothing.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use base64::Engine as _;
use ctr_cases::plan;
use ctr_cases::report::Action;
use ctr_cases::retry::Deadline;
use ctr_cases::stream::process_batch;
use serde_json::{Value, json};
use support::fake_salesforce::{self, FakeOptions, Fault};
use support::fixtures::{self, app_state, caller_number, contact_uuid, fake_env};
use support::foreign::{self, FOREIGN_IP};
use support::moto;
use support::process::{self, Lambda, Output, field};
use support::shard::{self, Shard};
use support::state::app_state_on_moto;

const MINUTE: Duration = Duration::from_secs(60);

/// The login URLs a misconfiguration (or an attacker who can set a variable) might try, given
/// the fake org's port `p` and the foreign listener's port `q`.
fn login_url_tricks(p: u16, q: u16) -> Vec<String> {
    vec![
        // User info: the host is 127.0.0.2, whatever the text starts with.
        format!("http://127.0.0.1:{p}@{FOREIGN_IP}:{q}"),
        // Starts with an allowed loopback name, is another host.
        "http://localhost.evil.example".to_owned(),
        // Starts with a Salesforce host, is another domain.
        "https://login.salesforce.com.evil.example".to_owned(),
        // Loopback, but not one of the exact loopback hosts a fake org may use.
        format!("http://{FOREIGN_IP}:{q}"),
    ]
}

fn dropped_event() -> Value {
    process::kinesis_json(&[fixtures::dropped_data(1)], 100)
}

// ---------------------------------------------------------------------------------------------
// 1. Login URL tricks fail the cold start
// ---------------------------------------------------------------------------------------------

/// The real binary refuses each trick at cold start, naming `SALESFORCE_LOGIN_URL`, before it
/// asks for an event: neither the foreign listener nor the fake org hears from it.
#[tokio::test]
async fn login_url_tricks_fail_the_cold_start_naming_the_variable() {
    let fake = fake_salesforce::start().await;
    let foreign = foreign::start().await;
    let port = fake.base_url.rsplit(':').next().unwrap().parse().unwrap();
    for trick in login_url_tricks(port, foreign.port) {
        let (status, output, api) = process::cold_start(
            |api| {
                let mut env = process::lambda_env(api, &fake, "info");
                env.push(("SALESFORCE_LOGIN_URL", trick.clone()));
                env
            },
            &dropped_event(),
            Duration::from_secs(10),
        )
        .await;
        let text = output.all();
        foreign.assert_untouched(&trick);
        assert_eq!(fake.org.token_requests(), 0, "{trick}");
        assert!(
            api.delivered_ids().is_empty(),
            "{trick}: asked for an event"
        );
        let status = status.unwrap_or_else(|| panic!("{trick}: still running\n{text}"));
        assert!(!status.success(), "{trick}: exit {status}\n{text}");
        let logged = output
            .json_logs()
            .into_iter()
            .find(|l| field(l, "message") == Some("cannot start"))
            .unwrap_or_else(|| panic!("{trick}: no `cannot start` line\n{text}"));
        assert!(
            field(&logged, "error").is_some_and(|e| e.contains("SALESFORCE_LOGIN_URL")),
            "{trick}: {logged}"
        );
        assert!(!text.contains(fake_salesforce::PASSWORD), "{trick}: {text}");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. A token answer naming another host
// ---------------------------------------------------------------------------------------------

/// A token endpoint whose `instance_url` is another host (plainly, or behind user info) gets
/// neither the token nor the data sent there: the records are held, not dead-lettered.
#[tokio::test]
async fn instance_url_on_another_host_receives_nothing_and_the_records_are_held() {
    let foreign = foreign::start().await;
    for instance in [
        foreign.url.clone(),
        format!("http://127.0.0.1:1@{FOREIGN_IP}:{}", foreign.port),
    ] {
        let fake = fake_salesforce::start_with(FakeOptions {
            instance_url: Some(instance.clone()),
            ..FakeOptions::default()
        })
        .await;
        let mut env = fake_env(&fake);
        env.insert("OUTAGE_HOLD_MS".into(), "50".into());
        let state = app_state(&env);
        let datas: Vec<Vec<u8>> = (0..3).map(fixtures::dropped_data).collect();
        let mut shard = Shard::new(shard::records(&datas, 1, Some(shard::epoch_secs(0.0))), 10);

        for _ in 0..2 {
            let held = shard.invoke(&state, MINUTE).await;
            foreign.assert_untouched(&instance);
            assert_eq!(held.reported, held.delivered, "{instance}");
        }
        let envelope = fixtures::kinesis_event(&datas, 1);
        let outcome = process_batch(&state, &envelope, Deadline::after(MINUTE)).await;
        assert_eq!(
            outcome.summary.salesforce_unavailable.as_deref(),
            Some("instance_url_refused"),
            "{instance}"
        );
        assert_eq!(outcome.summary.count(Action::Retry), 3);
        assert!(
            fake.org.token_grants() >= 1,
            "{instance}: the grant happened"
        );
        let data_calls = fake
            .org
            .requests()
            .iter()
            .filter(|r| !r.is_token_request())
            .count();
        assert_eq!(data_calls, 0, "{instance}: no data call anywhere");
        assert!(state.dead_letters.held().is_empty(), "{instance}");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. A secret whose login_url points elsewhere
// ---------------------------------------------------------------------------------------------

/// A `login_url` key in the Salesforce secret that names another host is refused before any
/// request: the credentials go nowhere, the records are held, and the error names the key.
#[tokio::test]
async fn secret_login_url_on_another_host_receives_nothing_and_names_the_key() {
    let moto = moto::start().await;
    let foreign = foreign::start().await;
    let fake = fake_salesforce::start().await;
    let targets = [
        foreign.url.clone(),
        format!("http://127.0.0.1:1@{FOREIGN_IP}:{}", foreign.port),
    ];
    for (i, login_url) in targets.iter().enumerate() {
        let mut secret: Value =
            serde_json::from_str(&fixtures::secret_json(fake_salesforce::PASSWORD)).unwrap();
        secret["login_url"] = login_url.as_str().into();
        let arn = moto
            .create_secret(&format!("ctr-cases/foreign-login-{i}"), &secret.to_string())
            .await;
        let mut env: HashMap<String, String> = fake_env(&fake);
        fixtures::remove_inline_credentials(&mut env);
        env.insert("SALESFORCE_SECRET_ARN".into(), arn);
        let state = app_state_on_moto(&env, &moto, None).await;
        let datas: Vec<Vec<u8>> = (0..2).map(fixtures::dropped_data).collect();
        let mut shard = Shard::new(shard::records(&datas, 1, Some(shard::epoch_secs(0.0))), 10);

        let held = shard.invoke(&state, MINUTE).await;
        foreign.assert_untouched(login_url);
        assert_eq!(fake.org.token_requests(), 0, "{login_url}");
        assert_eq!(held.reported, held.delivered, "{login_url}");
        assert!(state.dead_letters.held().is_empty(), "{login_url}");

        // The error an operator reads (the "Salesforce unavailable" line's `error`).
        let envelope = fixtures::kinesis_event(&datas, 1);
        let inputs = envelope.inputs();
        let plan = plan::plan(&inputs, &state.settings);
        let records: Vec<_> = plan.cases.iter().map(|k| &k.effect).collect();
        let report = state
            .salesforce
            .write_cases(&records, Deadline::after(MINUTE))
            .await;
        let error = report
            .systemic
            .unwrap_or_else(|| panic!("{login_url}: not refused: {:?}", report.outcomes))
            .summary;
        assert!(error.contains("login_url key"), "{login_url}: {error}");
        assert!(error.contains("secret"), "{login_url}: {error}");
        assert!(!error.contains(fake_salesforce::PASSWORD), "{error}");
        foreign.assert_untouched(login_url);
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Sensitive contact attributes stay out of Cases
// ---------------------------------------------------------------------------------------------

/// Attributes a contact flow might collect that must never reach a Case (name, value).
const SENSITIVE: [(&str, &str); 6] = [
    ("cardNumber", "4111111111111111"),
    ("pin", "8052"),
    ("customerSSN", "123-45-6789"),
    ("cvv", "9314"),
    ("dateOfBirth", "1980-07-14"),
    ("accountNumber", "000123456789"),
];
const NOTE: &str = "card 4111 1111 1111 1111 expired";
const MASKED_NOTE: &str = "card **** **** **** 1111 expired";

/// Dropped call `n` whose flow stored the [`SENSITIVE`] attributes, an intent and a note.
fn sensitive_ctr(n: u64) -> String {
    let mut ctr: Value = serde_json::from_str(&fixtures::dropped_ctr_for(
        &contact_uuid(n),
        &caller_number(n),
        "2024-06-01T10:00:00Z",
    ))
    .unwrap();
    let mut attributes = serde_json::Map::new();
    for (name, value) in SENSITIVE {
        attributes.insert(name.into(), value.into());
    }
    attributes.insert("intent".into(), "billing".into());
    attributes.insert("note".into(), NOTE.into());
    ctr["Attributes"] = Value::Object(attributes);
    // The test means something only if the values appear nowhere else in the CTR.
    let mut bare = ctr.clone();
    bare["Attributes"] = json!({});
    let bare = bare.to_string();
    for (name, value) in SENSITIVE {
        assert!(
            !bare.contains(value),
            "{name}'s value is elsewhere in the CTR"
        );
    }
    assert!(!bare.contains("4111"));
    ctr.to_string()
}

/// The sensitive attributes (by value, or by name as a Description line or a JSON key) and
/// the unmasked note found in `text`.
fn sensitive_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (name, value) in SENSITIVE {
        for shown in [value.to_owned(), format!("{name}:"), format!("\"{name}\"")] {
            if text.contains(&shown) {
                found.push(shown);
            }
        }
    }
    for unmasked in ["4111 1111", NOTE] {
        if text.contains(unmasked) {
            found.push(unmasked.to_owned());
        }
    }
    found
}

/// Writes [`sensitive_ctr`] `n` through the handler with `extra` settings and returns its
/// Case's Description; also checks that no Case field carries a sensitive value.
async fn description_with(extra: &[(&str, &str)], n: u64) -> String {
    let fake = fake_salesforce::start().await;
    let mut env = fake_env(&fake);
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    let state = app_state(&env);
    let event = fixtures::kinesis_event(&[sensitive_ctr(n).into_bytes()], 1);
    let response = ctr_cases::stream::handle(&state, fixtures::lambda_event(event, MINUTE))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty(), "{extra:?}");
    let case = fake
        .org
        .case(&contact_uuid(n))
        .unwrap_or_else(|| panic!("{extra:?}: no Case"));
    let leaked = sensitive_in(&case.to_string());
    assert!(leaked.is_empty(), "{extra:?}: {leaked:?} in {case:#}");
    case["Description"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn sensitive_attributes_never_reach_the_case_and_notes_are_masked() {
    let description = description_with(&[], 1).await;
    assert!(
        description.contains("intent: billing"),
        "the other attributes pass: {description}"
    );
    assert!(
        description.contains(&format!("note: {MASKED_NOTE}")),
        "{description}"
    );

    let only_intent = description_with(&[("CASE_ATTRIBUTES_INCLUDE", "intent")], 2).await;
    assert!(only_intent.contains("intent: billing"), "{only_intent}");
    assert!(!only_intent.contains("note:"), "{only_intent}");
    assert!(!only_intent.contains("card "), "{only_intent}");

    let no_intent = description_with(&[("CASE_ATTRIBUTES_EXCLUDE", "@default,intent")], 3).await;
    assert!(!no_intent.contains("intent"), "{no_intent}");
    assert!(!no_intent.contains("billing"), "{no_intent}");
    assert!(
        no_intent.contains(&format!("note: {MASKED_NOTE}")),
        "{no_intent}"
    );
}

/// A dry run's request bodies (`replay --show-requests`) are what would be sent: the same
/// filter applies.
#[tokio::test]
async fn replay_show_requests_prints_no_sensitive_attribute() {
    let dir = std::env::temp_dir().join(format!("ctr-cases-security-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sensitive-ctr.json");
    std::fs::write(&file, sensitive_ctr(4)).unwrap();
    let output = process::cli(&["replay", "--show-requests", file.to_str().unwrap()], &[]).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let request = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l.get("request").is_some())
        .unwrap_or_else(|| panic!("no request line: {stdout}"));
    let description = request["request"]["body"]["records"][0]["Description"]
        .as_str()
        .unwrap_or_else(|| panic!("no Description: {request}"));
    assert!(description.contains("intent: billing"), "{description}");
    assert!(description.contains(MASKED_NOTE), "{description}");
    let leaked = sensitive_in(&format!("{stdout}\n{stderr}"));
    assert!(leaked.is_empty(), "{leaked:?} in\n{stdout}\n{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A poison record is dead-lettered with its data exactly as delivered: the queue is where the
/// original record is kept for inspection, sensitive values included.
#[tokio::test]
async fn poison_dead_letters_keep_the_original_record() {
    let fake = fake_salesforce::start().await;
    let state = app_state(&fake_env(&fake));
    let mut poison: Value = serde_json::from_str(&sensitive_ctr(5)).unwrap();
    poison["ContactId"] = "not-a-contact-id".into();
    let poison = poison.to_string().into_bytes();
    let datas = vec![sensitive_ctr(6).into_bytes(), poison.clone()];
    let event = fixtures::kinesis_event(&datas, 1);
    let response = ctr_cases::stream::handle(&state, fixtures::lambda_event(event, MINUTE))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let letters = state.dead_letters.held();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].kind, "poison_record");
    assert_eq!(
        letters[0].data,
        base64::engine::general_purpose::STANDARD.encode(&poison)
    );
    assert!(!letters[0].data_truncated);
    assert!(fake.org.case(&contact_uuid(6)).is_some());
}

// ---------------------------------------------------------------------------------------------
// 5. Logs at every level
// ---------------------------------------------------------------------------------------------

/// What must never appear in the output of a run.
struct Forbidden {
    numbers: BTreeSet<String>,
    secrets: BTreeSet<String>,
    /// Each record's `data` as delivered (base64), and its first 32 characters.
    raw_records: BTreeSet<String>,
    /// Contact attribute values.
    attribute_values: BTreeSet<String>,
}

impl Forbidden {
    fn in_line(&self, line: &str) -> Vec<String> {
        let mut found = process::numbers_and_secrets_in(line, &self.numbers, &self.secrets);
        for raw in &self.raw_records {
            if line.contains(raw.as_str()) {
                found.push(format!("raw record {}…", &raw[..16]));
            }
        }
        for value in &self.attribute_values {
            if line.contains(value.as_str()) {
                found.push(format!("attribute value {value}"));
            }
        }
        for decoded in process::decoded_base64_runs(line) {
            if self.numbers.iter().any(|n| decoded.contains(n.as_str()))
                || decoded.contains("ContactId")
            {
                found.push("base64 of a record".to_owned());
            }
        }
        found
    }
}

/// The binary at TRACE (`AWS_LAMBDA_LOG_LEVEL=TRACE`, no `RUST_LOG`) with a dead-letter queue
/// processes a poison record carrying a caller number and sensitive attributes, a Case that
/// Salesforce rejects with a message quoting caller numbers, dropped calls, and finally a
/// refused sign-in. No phone number, token, secret, raw record or attribute value appears in
/// stdout or stderr. (tests/lambda_binary.rs checks every fixture and event file for phone
/// numbers and credentials at trace level; this adds the raw records, the attribute values,
/// the upper-case level name and the poison path.)
#[tokio::test]
async fn logs_at_trace_level_leak_no_phone_number_token_secret_or_raw_record() {
    let fake = fake_salesforce::start().await;
    let moto = moto::start().await;
    let (queue, dlq) = process::dead_letter_queue_env(&moto, "ctr-cases-security-trace-dlq").await;
    let mut lambda = Lambda::launch(&fake, "TRACE", &["RUST_LOG"], &dlq).await;

    let mut poison: Value = serde_json::from_str(&sensitive_ctr(20)).unwrap();
    poison["ContactId"] = "DROP TABLE cases".into();
    let poison = poison.to_string();
    let rejected = fixtures::dropped_ctr_for(
        &contact_uuid(21),
        &caller_number(21),
        "2024-06-01T10:00:00Z",
    );
    let quoted_only = caller_number(29);
    let datas: Vec<String> = vec![
        poison,
        rejected,
        sensitive_ctr(22),
        fixtures::dropped_ctr_for(
            &contact_uuid(23),
            &caller_number(23),
            "2024-06-01T10:00:00Z",
        ),
    ];
    fake.org.push_fault(Fault::RecordError {
        external_id: contact_uuid(21),
        status_code: "FIELD_CUSTOM_VALIDATION_EXCEPTION".into(),
        message: format!(
            "SuppliedPhone {} does not match the account phone {}",
            caller_number(21),
            quoted_only
        ),
        fields: vec!["SuppliedPhone".into()],
    });
    let response = lambda.invoke(&process::kinesis_json(&datas, 300)).await;
    assert!(
        process::response_failures(&response).is_empty(),
        "poison and rejection dead-lettered: {response}"
    );
    assert!(fake.org.case(&contact_uuid(22)).is_some());
    assert!(fake.org.case(&contact_uuid(23)).is_some());

    // Then the token endpoint refuses a new sign-in.
    fake.org.expire_all_tokens();
    fake.org.reject_credentials(true);
    let refused = fixtures::dropped_ctr_for(
        &contact_uuid(24),
        &caller_number(24),
        "2024-06-01T10:00:00Z",
    );
    let event = process::kinesis_json(&[&refused], 400);
    let response = lambda.invoke(&event).await;
    assert_eq!(process::response_failures(&response).len(), 1);
    let output: Output = lambda.stop().await;
    let text = output.all();
    assert!(
        output
            .stdout
            .iter()
            .any(|l| l.contains("\"level\":\"TRACE\"")),
        "trace level is on\n{text}"
    );
    assert!(text.contains("record dead-lettered"), "{text}");
    assert!(text.contains("Salesforce unavailable"), "{text}");

    // Both letters keep their records (the queue is not a log).
    let letters = moto.receive_all(&queue).await;
    let kinds: BTreeSet<String> = letters
        .iter()
        .map(|m| moto::body_json(m)["kind"].to_string())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "\"poison_record\"".to_owned(),
            "\"salesforce_rejected\"".to_owned()
        ]),
        "{letters:?}"
    );

    let mut all_datas = datas.clone();
    all_datas.push(refused);
    let mut numbers = BTreeSet::from([quoted_only]);
    let mut raw_records = BTreeSet::new();
    for data in &all_datas {
        let ctr: Value = serde_json::from_str(data).unwrap();
        process::phone_numbers(&ctr, &mut numbers);
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        raw_records.insert(b64[..32].to_owned());
        raw_records.insert(b64);
    }
    for n in [20, 21, 22, 23, 24] {
        assert!(numbers.contains(&caller_number(n)), "{numbers:?}");
    }
    let mut secrets = BTreeSet::from([
        fake_salesforce::PASSWORD.to_owned(),
        fake_salesforce::CLIENT_SECRET.to_owned(),
        format!("{}!", fake_salesforce::ORG_ID),
    ]);
    secrets.extend(process::bearer_tokens(&fake));
    assert!(secrets.len() >= 4, "a token was used: {secrets:?}");
    let forbidden = Forbidden {
        numbers,
        secrets,
        raw_records,
        attribute_values: SENSITIVE
            .iter()
            .map(|(_, v)| (*v).to_owned())
            .filter(|v| v.len() >= 6)
            .chain([
                NOTE.to_owned(),
                MASKED_NOTE.to_owned(),
                "billing".to_owned(),
            ])
            .collect(),
    };
    process::assert_no_leaks(&output, |line| forbidden.in_line(line));
}

/// Every log group the stack encrypts with its own KMS key is named in that key's policy:
/// CloudWatch Logs cannot use the key for a log group the policy leaves out, and the stack
/// would fail to create it.
#[test]
fn the_data_key_policy_names_every_log_group_it_encrypts() {
    let template = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml"),
    )
    .unwrap();
    let policy = template
        .split("kms:EncryptionContext:aws:logs:arn:")
        .nth(1)
        .expect("the data key's policy limits CloudWatch Logs to named log groups");
    let allowed: Vec<&str> = policy
        .lines()
        .skip(1)
        .take_while(|l| l.trim_start().starts_with("- !Sub"))
        .filter_map(|l| l.split("log-group:").nth(1)?.strip_suffix('"'))
        .collect();
    let encrypted: Vec<&str> = template
        .split("Type: AWS::Logs::LogGroup")
        .skip(1)
        .filter_map(|group| {
            let properties = group.split("\n  # ").next().unwrap_or(group);
            if !properties.contains("KmsKeyId: !If [UseDataKey") {
                return None;
            }
            properties
                .split("LogGroupName: !Sub \"")
                .nth(1)?
                .split('"')
                .next()
        })
        .collect();
    assert!(encrypted.len() >= 3, "log groups found: {encrypted:?}");
    for group in &encrypted {
        assert!(
            allowed.contains(group),
            "{group} is encrypted with the data key but not in its policy ({allowed:?})"
        );
    }
}
