//! `ctr-cases redrive` as a child process against moto_server (SQS, Kinesis) and the fake
//! Salesforce org: dead letters and ShardFailureQueue ranges, dry runs and `--send`.
//!
//! Each test starts its own moto_server and fake org, so no state is shared.

mod support;

use std::process::Output;
use std::time::Duration;

use base64::Engine as _;
use ctr_cases::letter::{DeadLetter, DeadLetterError, LetterKind, Origin};
use serde_json::{Value, json};
use support::fake_salesforce::{self, FakeSalesforce, Fault, FaultKind};
use support::fixtures::{self, caller_number, contact_uuid};
use support::moto::{self, Moto};
use support::process::{self, stdout_json_lines as json_lines};

const SHARD: &str = "shardId-000000000000";
const STREAM_ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/ctr-stream";

/// Dropped call `n` as CTR JSON text.
fn dropped(n: u64) -> String {
    fixtures::dropped_ctr_for(&contact_uuid(n), &caller_number(n), "2024-05-01T10:00:00Z")
}

fn base64_of(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The error code a letter of `kind` carries in these tests.
fn code_of(kind: LetterKind) -> &'static str {
    match kind {
        LetterKind::PoisonRecord => "invalid_json",
        LetterKind::SalesforceRejected => "REQUIRED_FIELD_MISSING",
        LetterKind::Parked => "salesforce_unavailable",
        LetterKind::CaseNotAccessible => "INSUFFICIENT_ACCESS_OR_READONLY",
    }
}

/// A letter of `kind` for record `n` (sequence number `1000 + n`) whose data was `data`.
fn letter(kind: LetterKind, n: u64, data: &str) -> DeadLetter {
    DeadLetter::new(
        kind,
        DeadLetterError {
            code: code_of(kind).into(),
            message: "written by the test".into(),
            status: None,
            fields: vec![],
        },
        &Origin {
            sequence_number: format!("{:056}", 1000 + n),
            shard_id: Some(SHARD.into()),
            event_source_arn: Some(STREAM_ARN.into()),
            partition_key: Some(contact_uuid(n)),
            approximate_arrival_timestamp: Some(1_714_557_600.0),
        },
        (kind != LetterKind::PoisonRecord).then(|| contact_uuid(n)),
        data,
    )
}

/// A parked letter for dropped call `n`, its data base64 as Kinesis delivers it.
fn parked(n: u64) -> DeadLetter {
    letter(LetterKind::Parked, n, &base64_of(&dropped(n)))
}

/// The deployment's stream, as the stream function's environment names it (docs/deploy.md
/// copies that environment for the CLI).
const STREAM_ENV: [(&str, &str); 1] = [("KINESIS_STREAM_ARN", STREAM_ARN)];

/// Runs the CLI with a clean environment: AWS pointing at `moto` only, Salesforce at `fake`,
/// plus `env`; whatever its exit status.
async fn cli_output(
    args: &[&str],
    env: &[(&str, &str)],
    moto: &Moto,
    fake: &FakeSalesforce,
) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_ctr-cases"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(moto.aws_env())
        .envs(fixtures::fake_env(fake))
        .envs(env.iter().copied())
        .output()
        .await
        .expect("the CLI runs")
}

/// Runs the CLI with a clean environment: AWS pointing at `moto` only, Salesforce at `fake`.
async fn cli(args: &[&str], moto: &Moto, fake: &FakeSalesforce) -> Output {
    cli_env(args, &[], moto, fake).await
}

/// [`cli`] with `env` added; checks that it succeeded.
async fn cli_env(
    args: &[&str],
    env: &[(&str, &str)],
    moto: &Moto,
    fake: &FakeSalesforce,
) -> Output {
    let output = cli_output(args, env, moto, fake).await;
    assert!(
        output.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// [`cli`]'s stdout lines, parsed.
async fn cli_lines(args: &[&str], moto: &Moto, fake: &FakeSalesforce) -> Vec<Value> {
    json_lines(&cli(args, moto, fake).await)
}

/// [`cli_env`]'s stdout lines, parsed.
async fn cli_env_lines(
    args: &[&str],
    env: &[(&str, &str)],
    moto: &Moto,
    fake: &FakeSalesforce,
) -> Vec<Value> {
    json_lines(&cli_env(args, env, moto, fake).await)
}

/// The per-message lines (not the summary).
fn message_lines(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|l| l.get("messageId").is_some())
        .collect()
}

fn summary(lines: &[Value]) -> &Value {
    &lines.last().expect("a summary line")["summary"]
}

/// The line about contact `n`.
fn line_for(lines: &[Value], n: u64) -> &Value {
    let id = contact_uuid(n);
    lines
        .iter()
        .find(|l| l["contactId"] == id.as_str())
        .unwrap_or_else(|| panic!("no line for {id} in {lines:#?}"))
}

/// The line whose `error` is `code`.
fn line_with_error<'a>(lines: &'a [Value], code: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["error"] == code)
        .unwrap_or_else(|| panic!("no line with error {code} in {lines:#?}"))
}

/// The letters (and other bodies) now in `queue`, hiding them from later receives.
async fn bodies(moto: &Moto, queue: &str) -> Vec<(String, String)> {
    moto.receive_all(queue)
        .await
        .into_iter()
        .map(|m| {
            (
                m.message_id().unwrap_or_default().to_owned(),
                m.body().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn dry_run_changes_nothing_and_send_writes_the_cases_and_deletes_their_letters() {
    let moto = moto::start().await;
    let fake = fake_salesforce::start().await;
    let queue = moto.create_queue("case-dead-letters").await;
    let poison = letter(LetterKind::PoisonRecord, 3, &base64_of("not json"));
    let poison_id = moto.send_message(&queue, &poison.body()).await;
    for body in [
        parked(1).body(),
        // An inline-object record (as some sample events carry), rejected earlier.
        letter(LetterKind::SalesforceRejected, 2, &dropped(2)).body(),
        "hello, this is not a letter".to_owned(),
    ] {
        moto.send_message(&queue, &body).await;
    }

    // Dry run: the decisions, nothing written, nothing deleted, everything visible again.
    let output = cli(&["redrive", "--queue", &queue], &moto, &fake).await;
    let lines = json_lines(&output);
    assert_eq!(message_lines(&lines).len(), 4, "{lines:#?}");
    for (n, kind) in [(1, "parked"), (2, "salesforce_rejected")] {
        let line = line_for(&lines, n);
        assert_eq!(line["kind"], kind);
        assert_eq!(line["outcome"], "dropped");
        assert_eq!(line["action"], "upsert_case");
        assert_eq!(line["message"], "would_delete");
        assert_eq!(line["sequenceNumber"], format!("{:056}", 1000 + n));
    }
    let skipped = line_with_error(&lines, "kind_skipped");
    assert_eq!(skipped["kind"], "poison_record");
    assert_eq!(skipped["messageId"], poison_id.as_str());
    assert_eq!(skipped["message"], "left");
    let other = line_with_error(&lines, "not_recognized");
    assert_eq!(other["message"], "left");
    assert!(other["note"].as_str().unwrap().contains("not JSON"));
    let s = summary(&lines);
    assert_eq!(s["read"], 4);
    assert_eq!(s["redriven"], 2);
    assert_eq!(s["deleted"], 0);
    assert_eq!(s["dryRun"], true);
    assert_eq!(s["skippedKinds"]["poison_record"], 1);
    assert_eq!(s["notRedriven"]["not_recognized"], 1);
    assert_eq!(s["salesforceApiCalls"], 1);
    assert_eq!(fake.org.case_count(), 0);
    assert_eq!(moto.message_counts(&queue).await, (4, 0));
    assert!(!String::from_utf8_lossy(&output.stdout).contains("+1555"));

    // --send: the Cases are written, their letters deleted; the others stay, visible.
    let output = cli(&["redrive", "--queue", &queue, "--send"], &moto, &fake).await;
    let lines = json_lines(&output);
    for n in [1, 2] {
        assert_eq!(line_for(&lines, n)["message"], "deleted");
        assert!(fake.org.case(&contact_uuid(n)).is_some(), "Case {n}");
    }
    assert_eq!(fake.org.case_count(), 2);
    let s = summary(&lines);
    assert_eq!(
        (s["deleted"].as_u64(), s["leftInPlace"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(moto.message_counts(&queue).await, (2, 0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("DEAD_LETTER_QUEUE_URL is not set"),
        "{stderr}"
    );

    // Poison letters only when asked for: dead-lettered again, the new letter (written to this
    // same queue) replaces the old one and is not redriven again in the same run.
    let lines = cli_lines(
        &[
            "redrive",
            "--queue",
            &queue,
            "--send",
            "--kinds",
            "poison_record",
        ],
        &moto,
        &fake,
    )
    .await;
    assert_eq!(message_lines(&lines).len(), 2, "{lines:#?}");
    let again = line_with_error(&lines, "invalid_json");
    assert_eq!(again["action"], "dead_letter");
    assert_eq!(again["message"], "replaced");
    assert_eq!(again["letterError"], "invalid_json");
    assert_eq!(summary(&lines)["read"], 2);
    let left = bodies(&moto, &queue).await;
    assert_eq!(left.len(), 2, "{left:?}");
    let new_letter: Vec<DeadLetter> = left
        .iter()
        .filter_map(|(_, body)| serde_json::from_str(body).ok())
        .collect();
    assert_eq!(new_letter.len(), 1);
    assert_eq!(new_letter[0].kind, LetterKind::PoisonRecord);
    assert_eq!(new_letter[0].sequence_number, poison.sequence_number);
    assert_eq!(new_letter[0].data, poison.data);
    assert!(left.iter().all(|(id, _)| *id != poison_id));
}

#[tokio::test]
async fn kinds_and_limit_bound_what_a_run_redrives() {
    let moto = moto::start().await;
    let fake = fake_salesforce::start().await;
    let queue = moto.create_queue("kinds").await;
    for n in 5..=9 {
        let l = if n % 2 == 0 {
            letter(LetterKind::SalesforceRejected, n, &base64_of(&dropped(n)))
        } else {
            parked(n)
        };
        moto.send_message(&queue, &l.body()).await;
    }

    let lines = cli_lines(
        &["redrive", "--queue", &queue, "--limit", "2"],
        &moto,
        &fake,
    )
    .await;
    assert_eq!(message_lines(&lines).len(), 2);
    assert_eq!(summary(&lines)["read"], 2);
    assert_eq!(moto.message_counts(&queue).await, (5, 0));

    let lines = cli_lines(
        &[
            "redrive",
            "--queue",
            &queue,
            "--send",
            "--kinds",
            "salesforce_rejected",
        ],
        &moto,
        &fake,
    )
    .await;
    for n in [6, 8] {
        assert_eq!(line_for(&lines, n)["message"], "deleted");
    }
    for n in [5, 7, 9] {
        assert_eq!(line_for(&lines, n)["error"], "kind_skipped");
        assert!(fake.org.case(&contact_uuid(n)).is_none());
    }
    assert_eq!(summary(&lines)["skippedKinds"]["parked"], 3);
    assert_eq!(fake.org.case_count(), 2);
    assert_eq!(moto.message_counts(&queue).await, (3, 0));

    let lines = cli_lines(
        &["redrive", "--queue", &queue, "--send", "--limit", "1"],
        &moto,
        &fake,
    )
    .await;
    assert_eq!(summary(&lines)["read"], 1);
    assert_eq!(summary(&lines)["deleted"], 1);
    assert_eq!(fake.org.case_count(), 3);
    assert_eq!(moto.message_counts(&queue).await, (2, 0));
}

#[tokio::test]
async fn a_letter_that_fails_again_is_left_for_later_or_replaced_by_its_new_letter() {
    let moto = moto::start().await;
    let fake = fake_salesforce::start().await;
    let queue = moto.create_queue("again").await;
    for n in [3, 4] {
        moto.send_message(&queue, &parked(n).body()).await;
    }

    // Salesforce still answers 503: both records are for retry; the messages stay, hidden
    // until their (here 2 s) visibility timeout expires.
    fake.org
        .set_random_faults(1.0, vec![FaultKind::Status503], 7);
    let lines = cli_lines(
        &[
            "redrive",
            "--queue",
            &queue,
            "--send",
            "--visibility-timeout",
            "2",
        ],
        &moto,
        &fake,
    )
    .await;
    for n in [3, 4] {
        let line = line_for(&lines, n);
        assert_eq!(line["action"], "retry", "{line}");
        assert_eq!(line["message"], "retry_later");
    }
    assert_eq!(summary(&lines)["leftInPlace"], 2);
    assert_eq!(fake.org.case_count(), 0);
    assert_eq!(moto.message_counts(&queue).await, (0, 2));
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(moto.message_counts(&queue).await, (2, 0));

    // Salesforce is back but rejects contact 4 for good: 3 is written and its letter deleted;
    // 4 gets a new letter with the new reason, which replaces the old one.
    fake.org.clear_faults();
    fake.org.push_fault(Fault::RecordError {
        external_id: contact_uuid(4),
        status_code: "FIELD_CUSTOM_VALIDATION_EXCEPTION".into(),
        message: "A callback number is required".into(),
        fields: vec!["SuppliedPhone".into()],
    });
    let lines = cli_lines(&["redrive", "--queue", &queue, "--send"], &moto, &fake).await;
    assert_eq!(line_for(&lines, 3)["message"], "deleted");
    let rejected = line_for(&lines, 4);
    assert_eq!(rejected["action"], "dead_letter");
    assert_eq!(rejected["error"], "FIELD_CUSTOM_VALIDATION_EXCEPTION");
    assert_eq!(rejected["letterError"], "salesforce_unavailable");
    assert_eq!(rejected["message"], "replaced");
    assert!(fake.org.case(&contact_uuid(3)).is_some());
    assert!(fake.org.case(&contact_uuid(4)).is_none());
    let left = bodies(&moto, &queue).await;
    assert_eq!(left.len(), 1, "{left:?}");
    let new_letter: DeadLetter = serde_json::from_str(&left[0].1).unwrap();
    assert_eq!(new_letter.kind, LetterKind::SalesforceRejected);
    assert_eq!(new_letter.error.code, "FIELD_CUSTOM_VALIDATION_EXCEPTION");
    assert_eq!(
        new_letter.contact_id.as_deref(),
        Some(contact_uuid(4).as_str())
    );
    assert_eq!(new_letter.data, parked(4).data, "the full data is kept");
}

/// An on-failure record as the Lambda developer guide shows it, for `range` of `shard`.
fn shard_failure(shard: &str, stream_arn: &str, start: &str, end: &str, size: u32) -> String {
    json!({
        "requestContext": {
            "requestId": "c9b8fa9f-5a7f-xmpl-af9c-0c604cde93a5",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:ctr-cases",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 3
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2024-05-01T10:05:00.000Z",
        "KinesisBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": start,
            "endSequenceNumber": end,
            "approximateArrivalOfFirstRecord": "2024-05-01T10:00:00.000Z",
            "approximateArrivalOfLastRecord": "2024-05-01T10:00:01.000Z",
            "batchSize": size,
            "streamArn": stream_arn
        }
    })
    .to_string()
}

#[tokio::test]
async fn shard_failure_ranges_and_truncated_letters_are_read_back_from_the_stream() {
    let moto = moto::start().await;
    let fake = fake_salesforce::start().await;
    let stream = moto.create_stream("ctr-stream", 1).await;
    assert_eq!(stream, STREAM_ARN);
    let mut positions = Vec::new();
    for n in 10..=14 {
        positions.push(
            moto.put_record(&stream, dropped(n).as_bytes(), &contact_uuid(n))
                .await,
        );
    }
    let shard = |i: usize| positions[i].0.as_str();
    let s = |i: usize| positions[i].1.as_str();
    let queue = moto.create_queue("shard-failures").await;
    // Records 11-13 (positions 1-3); a range whose start was trimmed away; a shard that is
    // gone; something else.
    for body in [
        shard_failure(shard(1), &stream, s(1), s(3), 3),
        shard_failure(shard(0), &stream, "0", s(0), 1),
        shard_failure("shardId-000000000009", &stream, s(1), s(1), 1),
        r#"{"hello":"world"}"#.to_owned(),
    ] {
        moto.send_message(&queue, &body).await;
    }

    let lines = cli_env_lines(
        &["redrive", "--shard-failures", &queue],
        &STREAM_ENV,
        &moto,
        &fake,
    )
    .await;
    for n in 11..=13 {
        let line = line_for(&lines, n);
        assert_eq!(line["kind"], "shard_failure");
        assert_eq!(line["action"], "upsert_case");
        assert_eq!(line["message"], "would_delete");
    }
    let gone: Vec<&Value> = lines
        .iter()
        .filter(|l| l["error"] == "range_gone")
        .collect();
    assert_eq!(gone.len(), 2, "{lines:#?}");
    assert!(
        gone.iter()
            .any(|l| l["note"].as_str().unwrap().contains("retention")),
        "{gone:?}"
    );
    line_with_error(&lines, "not_recognized");
    assert_eq!(summary(&lines)["redriven"], 3);
    assert_eq!(fake.org.case_count(), 0);
    assert_eq!(moto.message_counts(&queue).await, (4, 0));

    let lines = cli_env_lines(
        &["redrive", "--shard-failures", &queue, "--send"],
        &STREAM_ENV,
        &moto,
        &fake,
    )
    .await;
    for n in 11..=13 {
        assert_eq!(line_for(&lines, n)["message"], "deleted");
        assert!(fake.org.case(&contact_uuid(n)).is_some());
    }
    assert_eq!(fake.org.case_count(), 3, "only the range's records");
    assert_eq!(summary(&lines)["deleted"], 1);
    assert_eq!(moto.message_counts(&queue).await, (3, 0));

    // A letter whose data was cut to fit SQS is redriven from the stream; one that names no
    // stream cannot be.
    let letters = moto.create_queue("truncated").await;
    let mut cut = parked(10).with_data(&"x".repeat(300_000));
    assert!(cut.data_truncated);
    cut.sequence_number = s(0).to_owned();
    cut.shard_id = Some(shard(0).to_owned());
    moto.send_message(&letters, &cut.body()).await;
    let mut lost = parked(15).with_data(&"x".repeat(300_000));
    lost.event_source_arn = None;
    moto.send_message(&letters, &lost.body()).await;
    let lines = cli_env_lines(
        &["redrive", "--queue", &letters, "--send"],
        &STREAM_ENV,
        &moto,
        &fake,
    )
    .await;
    let reread = line_for(&lines, 10);
    assert_eq!(reread["action"], "upsert_case");
    assert_eq!(reread["message"], "deleted");
    assert!(reread["note"].as_str().unwrap().contains("re-read"));
    assert!(fake.org.case(&contact_uuid(10)).is_some());
    let left = line_for(&lines, 15);
    assert_eq!(left["error"], "data_truncated");
    assert_eq!(left["message"], "left");
    assert_eq!(moto.message_counts(&letters).await, (1, 0));
}

/// The line about the message `id`.
fn line_of_message<'a>(lines: &'a [Value], id: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["messageId"] == id)
        .unwrap_or_else(|| panic!("no line for message {id} in {lines:#?}"))
}

/// Whoever can send to the ShardFailureQueue must not make the operator's credentials read
/// another stream, or more than a batch of ours.
// See: issue "A contact writes only its own Case", item 3.
#[tokio::test]
async fn crafted_shard_failure_messages_are_left_in_the_queue_with_the_reason() {
    let moto = moto::start().await;
    let fake = fake_salesforce::start().await;
    let ours = moto.create_stream("ctr-stream", 1).await;
    assert_eq!(ours, STREAM_ARN);
    // Another stream the same credentials can read.
    let theirs = moto.create_stream("someone-elses-stream", 1).await;
    let mut at = Vec::new();
    for n in 60..=64 {
        at.push(
            moto.put_record(&ours, dropped(n).as_bytes(), &contact_uuid(n))
                .await,
        );
    }
    let mut elsewhere = Vec::new();
    for n in 70..=71 {
        elsewhere.push(
            moto.put_record(&theirs, dropped(n).as_bytes(), &contact_uuid(n))
                .await,
        );
    }
    let other_account = STREAM_ARN.replace("123456789012", "999999999999");
    let other_region = STREAM_ARN.replace("us-east-1", "eu-west-1");
    let queue = moto.create_queue("shard-failures").await;
    let mut ids = Vec::new();
    for body in [
        // Genuine: 2 records of our stream.
        shard_failure(&at[0].0, &ours, &at[0].1, &at[1].1, 2),
        // Another stream, another account, another Region.
        shard_failure(
            &elsewhere[0].0,
            &theirs,
            &elsewhere[0].1,
            &elsewhere[1].1,
            2,
        ),
        shard_failure(&at[0].0, &other_account, &at[0].1, &at[1].1, 2),
        shard_failure(&at[0].0, &other_region, &at[0].1, &at[1].1, 2),
        // Our stream, but a batchSize over the deployment's (2).
        shard_failure(&at[2].0, &ours, &at[2].1, &at[3].1, 3),
        // Our stream and a batchSize that fits, but 3 records from start to end.
        shard_failure(&at[2].0, &ours, &at[2].1, &at[4].1, 2),
    ] {
        ids.push(moto.send_message(&queue, &body).await);
    }

    // Without the deployment's stream nothing is read, and the error says what to set.
    let output = cli_output(
        &["redrive", "--shard-failures", &queue, "--send"],
        &[],
        &moto,
        &fake,
    )
    .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("set KINESIS_STREAM_ARN"), "{stderr}");
    assert_eq!(moto.message_counts(&queue).await, (6, 0));
    assert_eq!(fake.org.case_count(), 0);

    let env = [
        ("KINESIS_STREAM_ARN", STREAM_ARN),
        ("KINESIS_BATCH_SIZE", "2"),
    ];
    let lines = cli_env_lines(
        &["redrive", "--shard-failures", &queue, "--send"],
        &env,
        &moto,
        &fake,
    )
    .await;
    for n in [60, 61] {
        let line = line_for(&lines, n);
        assert_eq!(line["action"], "upsert_case");
        assert_eq!(line["message"], "deleted");
    }
    for (i, what) in [
        (1, "another stream"),
        (2, "another account"),
        (3, "another Region"),
    ] {
        let line = line_of_message(&lines, &ids[i]);
        assert_eq!(line["error"], "other_stream", "{line}");
        assert_eq!(line["message"], "left");
        let note = line["note"].as_str().unwrap();
        assert!(
            note.contains(what) && note.contains(STREAM_ARN) && note.contains("left in the queue"),
            "{note}"
        );
    }
    for i in [4, 5] {
        let line = line_of_message(&lines, &ids[i]);
        assert_eq!(line["error"], "range_too_large", "{line}");
        assert_eq!(line["message"], "left");
        assert!(line["note"].as_str().unwrap().contains("--batch-size"));
    }
    assert_eq!(fake.org.case_count(), 2, "only the genuine range's records");
    for n in [62, 63, 64, 70, 71] {
        assert!(fake.org.case(&contact_uuid(n)).is_none(), "contact {n}");
    }
    let s = summary(&lines);
    assert_eq!(s["notRedriven"]["other_stream"], 3);
    assert_eq!(s["notRedriven"]["range_too_large"], 2);
    assert_eq!(s["deleted"], 1);
    assert_eq!(moto.message_counts(&queue).await, (5, 0));

    // With the batch size the stack had when those batches failed (say 10,000), the two ranges
    // of our stream are read; each takes a part of the round of its own. The others stay left.
    let lines = cli_env_lines(
        &["redrive", "--shard-failures", &queue],
        &[
            ("KINESIS_STREAM_ARN", STREAM_ARN),
            ("KINESIS_BATCH_SIZE", "10000"),
        ],
        &moto,
        &fake,
    )
    .await;
    let mut redriven: Vec<&str> = lines
        .iter()
        .filter(|l| l["message"] == "would_delete")
        .filter_map(|l| l["contactId"].as_str())
        .collect();
    redriven.sort_unstable();
    let (c62, c63, c64) = (contact_uuid(62), contact_uuid(63), contact_uuid(64));
    assert_eq!(redriven, [&c62, &c62, &c63, &c63, &c64], "{lines:#?}");
    let s = summary(&lines);
    assert_eq!(s["read"], 5);
    assert_eq!(s["notRedriven"]["other_stream"], 3);
    assert_eq!(fake.org.case_count(), 2, "a dry run writes nothing");
}

/// A dead letter whose data was cut is re-read only from the deployment's stream; a letter
/// naming another stream is left, and without a configured stream a cut letter is left too.
// See: issue "A contact writes only its own Case", item 3.
#[tokio::test]
async fn crafted_dead_letters_naming_another_stream_are_left_in_the_queue_with_the_reason() {
    let moto = moto::start().await;
    let fake = fake_salesforce::start().await;
    let ours = moto.create_stream("ctr-stream", 1).await;
    let theirs = moto.create_stream("someone-elses-stream", 1).await;
    let (our_shard, our_seq) = moto
        .put_record(&ours, dropped(80).as_bytes(), &contact_uuid(80))
        .await;
    let (their_shard, their_seq) = moto
        .put_record(&theirs, dropped(81).as_bytes(), &contact_uuid(81))
        .await;
    let cut = |n: u64, shard: &str, sequence: &str, stream: &str| {
        let mut l = parked(n).with_data(&"x".repeat(300_000));
        assert!(l.data_truncated);
        l.shard_id = Some(shard.to_owned());
        l.sequence_number = sequence.to_owned();
        l.event_source_arn = Some(stream.to_owned());
        l
    };
    let queue = moto.create_queue("letters").await;
    moto.send_message(&queue, &cut(80, &our_shard, &our_seq, &ours).body())
        .await;
    let crafted = moto
        .send_message(&queue, &cut(81, &their_shard, &their_seq, &theirs).body())
        .await;
    let mut foreign = parked(82);
    foreign.event_source_arn = Some(STREAM_ARN.replace("123456789012", "999999999999"));
    let foreign = moto.send_message(&queue, &foreign.body()).await;
    moto.send_message(&queue, &parked(83).body()).await;

    // No stream configured: letters whose data was cut are left, saying what to set; a letter
    // carrying its full data is still redriven.
    let lines = cli_lines(&["redrive", "--queue", &queue], &moto, &fake).await;
    for n in [80, 81] {
        let line = line_for(&lines, n);
        assert_eq!(line["error"], "stream_not_configured", "{line}");
        assert_eq!(line["message"], "left");
        assert!(
            line["note"]
                .as_str()
                .unwrap()
                .contains("set KINESIS_STREAM_ARN")
        );
    }
    assert_eq!(line_for(&lines, 83)["message"], "would_delete");
    assert_eq!(moto.message_counts(&queue).await, (4, 0));

    let lines = cli_env_lines(
        &["redrive", "--queue", &queue, "--send"],
        &STREAM_ENV,
        &moto,
        &fake,
    )
    .await;
    let reread = line_for(&lines, 80);
    assert_eq!(reread["message"], "deleted");
    assert!(reread["note"].as_str().unwrap().contains("re-read"));
    assert_eq!(line_for(&lines, 83)["message"], "deleted");
    for (id, what) in [(&crafted, "another stream"), (&foreign, "another account")] {
        let line = line_of_message(&lines, id);
        assert_eq!(line["error"], "other_stream", "{line}");
        assert_eq!(line["message"], "left");
        let note = line["note"].as_str().unwrap();
        assert!(note.contains(what) && note.contains(STREAM_ARN), "{note}");
    }
    assert!(fake.org.case(&contact_uuid(80)).is_some());
    assert!(fake.org.case(&contact_uuid(83)).is_some());
    assert!(
        fake.org.case(&contact_uuid(81)).is_none(),
        "their record was not read"
    );
    assert!(fake.org.case(&contact_uuid(82)).is_none());
    assert_eq!(fake.org.case_count(), 2);
    let left: Vec<String> = bodies(&moto, &queue)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&crafted) && left.contains(&foreign));
}

/// On a FIFO queue SQS hands out no more of a message group while some of it is in flight: the
/// letters not redriven are moved to the back of their group, so those behind them are reached.
#[tokio::test]
async fn on_a_fifo_queue_letters_not_redriven_do_not_block_their_group() {
    let moto = moto::start().await;
    let fake = fake_salesforce::start().await;
    let queue = moto.create_fifo_queue("case-dead-letters.fifo").await;
    let mut letters: Vec<DeadLetter> = (20..32)
        .map(|n| letter(LetterKind::PoisonRecord, n, &base64_of("not json")))
        .collect();
    letters.extend([parked(40), parked(41)]);
    for l in &letters {
        moto.send_fifo_message(&queue, &l.body(), SHARD, &l.sequence_number)
            .await;
    }

    let lines = cli_lines(&["redrive", "--queue", &queue, "--send"], &moto, &fake).await;
    for n in [40, 41] {
        assert_eq!(line_for(&lines, n)["message"], "deleted");
        assert!(fake.org.case(&contact_uuid(n)).is_some());
    }
    let s = summary(&lines);
    assert_eq!(s["read"], 14, "{lines:#?}");
    assert_eq!(s["messages"]["moved"], 12);
    assert_eq!(s["skippedKinds"]["poison_record"], 12);
    assert_eq!(moto.message_counts(&queue).await, (12, 0));
    let left: Vec<DeadLetter> = bodies(&moto, &queue)
        .await
        .iter()
        .map(|(_, body)| serde_json::from_str(body).unwrap())
        .collect();
    // A FIFO queue hands out 10 messages of a group at a time: the first 10, in order.
    assert_eq!(left, letters[..10], "the same letters, in their order");
}

#[tokio::test]
async fn help_explains_each_flag_with_an_example() {
    let help = tokio::process::Command::new(env!("CARGO_BIN_EXE_ctr-cases"))
        .args(["redrive", "--help"])
        .env_clear()
        .output()
        .await
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    process::assert_each_flag_has_an_example(
        &text,
        &[
            "--queue",
            "--shard-failures",
            "--send",
            "--kinds",
            "--limit",
            "--json",
            "--visibility-timeout",
            "--stream-arn",
            "--batch-size",
            "--callback-queue",
        ],
        4,
    );
}

/// A redriven dropped call gets its callback request like a streamed one (CALLBACK_TASKS, the
/// stream function's environment copied for the CLI); a dry run queues nothing.
#[tokio::test]
async fn send_queues_the_callback_request_of_a_redriven_drop() {
    let moto = moto::start().await;
    let fake = fake_salesforce::start().await;
    let queue = moto.create_queue("callback-redrive-letters").await;
    let callbacks = moto.create_fifo_queue("callback-redrive.fifo").await;
    moto.send_message(&queue, &parked(5).body()).await;
    let env = [
        ("CALLBACK_TASKS", "true"),
        ("CALLBACK_QUEUE_URL", callbacks.as_str()),
        (
            "CONNECT_INSTANCE_ID",
            "11111111-2222-4333-8444-555555555555",
        ),
        (
            "CALLBACK_TASK_CONTACT_FLOW_ID",
            "66666666-7777-4888-9999-000000000000",
        ),
    ];
    cli_env(&["redrive", "--queue", &queue], &env, &moto, &fake).await;
    assert_eq!(
        moto.message_counts(&callbacks).await,
        (0, 0),
        "a dry run queues nothing"
    );

    let lines = cli_env_lines(
        &["redrive", "--queue", &queue, "--send"],
        &env,
        &moto,
        &fake,
    )
    .await;
    assert_eq!(line_for(&lines, 5)["action"], "upsert_case", "{lines:#?}");
    let requests = moto.receive_all(&callbacks).await;
    assert_eq!(requests.len(), 1);
    let request = moto::body_json(&requests[0]);
    assert_eq!(request["contactId"], contact_uuid(5).as_str());
    let case = fake.org.case(&contact_uuid(5)).expect("the redriven Case");
    assert_eq!(request["caseId"], case["Id"]);
}

/// Real orgs: a `case_not_accessible` letter is redriven by default once access is granted, and
/// a redrive never runs the org's assignment rule on an existing Case: the agent who took it
/// keeps it (every write to an existing Case says `Sforce-Auto-Assign: FALSE`).
#[tokio::test]
async fn redrive_applies_not_accessible_letters_and_never_reassigns_an_agents_case() {
    const QUEUE_OWNER: &str = "00GFAKE00000001AAA";
    const AGENT: &str = "005000000000042AAA";
    let moto = moto::start().await;
    let fake = fake_salesforce::start().await;
    fake.org
        .set_assignment_rule(Some(("01QFAKE00000001AAA", "Callbacks", QUEUE_OWNER)));
    let queue = moto.create_queue("case-dead-letters-owner").await;
    let hidden = letter(LetterKind::CaseNotAccessible, 1, &base64_of(&dropped(1)));
    moto.send_message(&queue, &hidden.body()).await;
    cli(&["redrive", "--queue", &queue, "--send"], &moto, &fake).await;
    let case = fake.org.case(&contact_uuid(1)).expect("the Case was filed");
    assert_eq!(case["OwnerId"], QUEUE_OWNER, "the rule routes the new Case");
    fake.org.assign_case(case["Id"].as_str().unwrap(), AGENT);

    let newer =
        fixtures::dropped_ctr_for(&contact_uuid(1), &caller_number(1), "2030-01-01T00:00:00Z");
    let parked = letter(LetterKind::Parked, 1, &base64_of(&newer));
    moto.send_message(&queue, &parked.body()).await;
    let lines = cli_lines(&["redrive", "--queue", &queue, "--send"], &moto, &fake).await;
    assert_eq!(line_for(&lines, 1)["action"], "upsert_case", "{lines:#?}");
    let case = fake.org.case(&contact_uuid(1)).unwrap();
    assert_eq!(case["OwnerId"], AGENT, "{case}");
    let updates: Vec<_> = fake
        .org
        .assign_headers()
        .into_iter()
        .filter(|h| !h.call.contains("create"))
        .collect();
    assert!(!updates.is_empty());
    assert!(
        updates.iter().all(|h| h.value.as_deref() == Some("FALSE")),
        "{updates:#?}"
    );
}

/// A callback request as the stream function queues it for dropped call `n` (and as the callback
/// function moves it, unchanged, to the callback dead-letter queue when Connect refuses it).
fn callback_request(n: u64) -> String {
    json!({
        "contactId": contact_uuid(n),
        "caseId": format!("500FAKE0000000{n:02}AA"),
        "phone": caller_number(n),
        "outcome": "dropped",
    })
    .to_string()
}

/// See: issue #20. Refused callback requests go back from the callback dead-letter queue to the
/// callback queue, each deleted only once sent; the copy is not dropped as a repeat of the
/// request the stream function queued minutes ago under the ContactId.
#[tokio::test]
async fn callback_requests_in_the_callback_dead_letter_queue_go_back_to_the_callback_queue() {
    let moto = moto::start().await;
    let fake = fake_salesforce::start().await;
    let dlq = moto.create_fifo_queue("callback-dead-letters.fifo").await;
    let callbacks = moto.create_fifo_queue("callbacks.fifo").await;
    for n in 1..=2 {
        let contact = contact_uuid(n);
        // Queued by the stream function under its ContactId moments ago, then refused by
        // Connect. SQS remembers that deduplication id for 5 minutes even once the message is
        // gone; moto only while the message is there, so it stays in the callback queue here.
        moto.send_fifo_message(&callbacks, &callback_request(n), &contact, &contact)
            .await;
        moto.send_fifo_message(&dlq, &callback_request(n), &contact, &contact)
            .await;
    }

    let lines = cli_lines(&["redrive", "--queue", &dlq], &moto, &fake).await;
    let requests = message_lines(&lines);
    assert_eq!(requests.len(), 2, "{lines:#?}");
    for line in &requests {
        assert_eq!(line["error"], "callback_queue_not_configured");
        assert_eq!(line["kind"], "callback_request");
    }

    let env = [("CALLBACK_QUEUE_URL", callbacks.as_str())];
    let lines = cli_env_lines(&["redrive", "--queue", &dlq], &env, &moto, &fake).await;
    for n in 1..=2 {
        let line = line_for(&lines, n);
        assert_eq!(line["message"], "would_resend", "{lines:#?}");
    }
    assert_eq!(
        moto.message_counts(&callbacks).await,
        (2, 0),
        "a dry run sends nothing"
    );
    assert_eq!(moto.message_counts(&dlq).await, (2, 0));

    let lines = cli_lines(
        &[
            "redrive",
            "--queue",
            &dlq,
            "--callback-queue",
            &callbacks,
            "--send",
        ],
        &moto,
        &fake,
    )
    .await;
    for n in 1..=2 {
        assert_eq!(line_for(&lines, n)["message"], "resent", "{lines:#?}");
    }
    assert_eq!(summary(&lines)["deleted"], 2);
    assert_eq!(moto.message_counts(&dlq).await, (0, 0));
    assert_eq!(
        moto.message_counts(&callbacks).await,
        (4, 0),
        "the copies are not dropped as repeats of the first requests"
    );
    let sent = moto.receive_all(&callbacks).await;
    for n in 1..=2 {
        let copy = sent
            .iter()
            .find(|m| m.body() == Some(callback_request(n).as_str()))
            .expect("the request, unchanged");
        let group = copy
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId));
        assert_eq!(group.map(String::as_str), Some(contact_uuid(n).as_str()));
    }
    assert!(
        fake.org.case(&contact_uuid(1)).is_none(),
        "no Case is written"
    );
}
