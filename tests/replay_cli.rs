//! The `ctr-cases replay` CLI: dry run on the bundled events, request bodies, and `--send`
//! against a fake org with only `SALESFORCE_*` set.

mod support;

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;
use support::fake_salesforce::{self, FakeSalesforce};
use support::fixtures::event_path as events;
use support::process::{self, stdout_json_lines as json_lines};

/// A fresh scratch directory for one CLI run (its current directory).
fn scratch_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("ctr-cases-cli-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the CLI with a clean environment plus `envs`, in a fresh scratch directory.
async fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    run_in(&scratch_dir(), args, envs).await
}

/// Runs the CLI in `dir` with a clean environment plus `envs`.
async fn run_in(dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_ctr-cases"))
        .current_dir(dir)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(envs.iter().copied())
        .output()
        .await
        .expect("the CLI runs")
}

/// The variables that let `--send` sign in to `fake` (password flow), and nothing else.
fn salesforce_env(fake: &FakeSalesforce) -> [(&'static str, &str); 5] {
    [
        ("SALESFORCE_LOGIN_URL", fake.base_url.as_str()),
        ("SALESFORCE_CLIENT_ID", fake_salesforce::CLIENT_ID),
        ("SALESFORCE_CLIENT_SECRET", fake_salesforce::CLIENT_SECRET),
        ("SALESFORCE_USERNAME", fake_salesforce::USERNAME),
        ("SALESFORCE_PASSWORD", fake_salesforce::PASSWORD),
    ]
}

/// (outcome, action) per record line, skipping summary and request lines.
fn decisions(lines: &[Value]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter(|l| l.get("sequenceNumber").is_some())
        .map(|l| {
            (
                l["outcome"].as_str().unwrap().to_owned(),
                l["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn dry_run_prints_the_documented_decisions_for_every_bundled_event() {
    let cases = [
        ("dropped-ivr-call.json", vec![("dropped", "upsert_case")]),
        (
            "agent-handled-call.json",
            vec![("happy_path_live_agent", "skipped")],
        ),
        ("queued-abandon.json", vec![("queued_abandoned", "skipped")]),
        (
            "transfer.json",
            vec![
                ("transferred_out", "skipped"),
                ("happy_path_live_agent", "skipped"),
            ],
        ),
    ];
    for (file, expected) in cases {
        let output = run(&["replay", events(file).to_str().unwrap()], &[]).await;
        assert!(output.status.success(), "{file}: {output:?}");
        let got = decisions(&json_lines(&output));
        let expected: Vec<(String, String)> = expected
            .into_iter()
            .map(|(o, a)| (o.to_owned(), a.to_owned()))
            .collect();
        assert_eq!(got, expected, "{file}");
    }
}

#[tokio::test]
async fn dry_run_of_mixed_batch_dedupes_and_dead_letters_poison() {
    let output = run(
        &["replay", events("mixed-batch.json").to_str().unwrap()],
        &[],
    )
    .await;
    assert!(output.status.success());
    let lines = json_lines(&output);
    let got = decisions(&lines);
    assert_eq!(got.len(), 10);
    assert_eq!(got.iter().filter(|(o, _)| o == "superseded").count(), 6);
    assert_eq!(got[5], ("happy_path_live_agent".into(), "skipped".into()));
    assert_eq!(got[7], ("poison".into(), "dead_letter".into()));
    assert_eq!(got[8], ("poison".into(), "dead_letter".into()));
    assert_eq!(got[9], ("dropped".into(), "upsert_case".into()));
    let summary = lines.last().unwrap();
    assert_eq!(summary["dryRun"], true);
    assert_eq!(summary["summary"]["actions"]["upsert_case"], 1);
    assert_eq!(summary["summary"]["salesforceApiCalls"], 1);
    // See: issue "A first deploy that works the first time", item 3.
    assert_eq!(summary["summary"]["caseWrites"], 1);
    assert_eq!(lines[0]["contactOutcome"], "happy_path_live_agent");
    assert_eq!(lines[0]["supersededBy"]["row"], 6);
    assert_eq!(
        lines[0]["supersededBy"]["sequenceNumber"],
        lines[5]["sequenceNumber"]
    );
    assert_eq!(lines[5]["reason"], "CASE_FOR_HAPPY_PATH=false");
    assert_eq!(lines[6]["contactOutcome"], "dropped");
    assert_eq!(lines[6]["supersededBy"]["row"], 10);
    // Decisions carry no phone number.
    assert!(!String::from_utf8_lossy(&output.stdout).contains("+1"));
}

#[tokio::test]
async fn show_requests_prints_the_collections_upsert_body() {
    let output = run(
        &[
            "replay",
            "--show-requests",
            events("dropped-ivr-call.json").to_str().unwrap(),
        ],
        &[("SALESFORCE_API_VERSION", "v61.0")],
    )
    .await;
    assert!(output.status.success());
    let lines = json_lines(&output);
    let request = &lines[0]["request"];
    assert_eq!(request["method"], "POST");
    assert_eq!(request["path"], "/services/data/v61.0/composite/sobjects");
    let record = &request["body"]["records"][0];
    assert_eq!(request["body"]["allOrNone"], false);
    assert_eq!(record["attributes"]["type"], "Case");
    assert_eq!(
        record["Amazon_Connect_Contact_Id__c"],
        "5ca32fbd-8f92-46af-92a5-6b0f970f0efe"
    );
    assert_eq!(record["Origin"], "Phone");
}

#[tokio::test]
async fn bare_ctr_array_and_json_lines_inputs_are_accepted() {
    let dir = std::env::temp_dir().join(format!("ctr-cases-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bare = support::fixtures::dropped_ctr();
    let lines_file = dir.join("ctrs.jsonl");
    std::fs::write(
        &lines_file,
        format!(
            "{bare}\nnot json at all\n{}\n",
            support::fixtures::handled_ctr_for(&support::fixtures::contact_uuid(1))
        ),
    )
    .unwrap();
    let bare_file = dir.join("bare.json");
    std::fs::write(&bare_file, &bare).unwrap();
    let array = support::fixtures::fixture_path(
        "ctr/array-voice-agent-handled-duplicate-redeliveries-2022.json",
    );
    let output = run(
        &[
            "replay",
            bare_file.to_str().unwrap(),
            lines_file.to_str().unwrap(),
            array.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let got = decisions(&json_lines(&output));
    let actions: Vec<&str> = got.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "upsert_case",
            "upsert_case",
            "dead_letter",
            "skipped",
            "superseded",
            "superseded",
            "superseded",
            "superseded",
            "superseded",
            "skipped"
        ]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn send_with_only_salesforce_variables_creates_cases() {
    let fake = fake_salesforce::start().await;
    let env = salesforce_env(&fake);
    let dir = scratch_dir();
    let output = run_in(
        &dir,
        &[
            "replay",
            "--send",
            events("dropped-ivr-call.json").to_str().unwrap(),
            events("mixed-batch.json").to_str().unwrap(),
        ],
        &env,
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let lines = json_lines(&output);
    let got = decisions(&lines);
    assert_eq!(got[0], ("dropped".into(), "upsert_case".into()));
    // Without a queue, dead letters go to a JSON-lines file named on stderr, never dropped.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let letters_file: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    assert_eq!(letters_file.len(), 1, "{stderr}");
    let name = letters_file[0].file_name().unwrap().to_string_lossy();
    assert!(
        stderr.contains(name.as_ref()),
        "{name} not named in {stderr}"
    );
    // See: issue "A contact writes only its own Case", item 6.
    assert!(stderr.contains("raw customer data"), "{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&letters_file[0])
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let letters: Vec<Value> = std::fs::read_to_string(&letters_file[0])
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 2);
    assert!(
        letters
            .iter()
            .all(|l| l["kind"] == "poison_record" && l["data"].is_string())
    );
    assert_eq!(
        fake.org.case_count(),
        1,
        "the redelivered dropped call updates its Case"
    );
    assert_eq!(fake.org.token_grants(), 1);
    let created: Vec<_> = lines.iter().filter_map(|l| l.get("created")).collect();
    assert_eq!(created, [&Value::Bool(true)]);
    // The redelivered dropped call (same version) leaves its Case unchanged.
    assert_eq!(got.last().unwrap(), &("dropped".into(), "unchanged".into()));
    let summary = lines.last().unwrap();
    assert_eq!(summary["dryRun"], false);
    assert_eq!(summary["summary"]["actions"]["dead_letter"], 2);
}

#[tokio::test]
async fn send_without_credentials_names_the_missing_variables() {
    let output = run(
        &[
            "replay",
            "--send",
            events("dropped-ivr-call.json").to_str().unwrap(),
        ],
        &[("SALESFORCE_PASSWORD", "hunter2-secret")],
    )
    .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for variable in [
        "SALESFORCE_CLIENT_ID",
        "SALESFORCE_CLIENT_SECRET",
        "SALESFORCE_USERNAME",
    ] {
        assert!(stderr.contains(variable), "{variable} not in {stderr}");
    }
    assert!(!stderr.contains("hunter2"));
}

/// The dry run and a real run share plan and report: for every bundled event, the dry run's
/// per-record decisions equal those of `--send` against a fresh fake org.
#[tokio::test]
async fn dry_run_decisions_equal_a_real_run_for_every_bundled_event() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(events(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    let per_record = |lines: &[Value]| -> Vec<(Value, Value, Value, Value)> {
        lines
            .iter()
            .filter(|l| l.get("sequenceNumber").is_some())
            .map(|l| {
                (
                    l["sequenceNumber"].clone(),
                    l["outcome"].clone(),
                    l["action"].clone(),
                    l.get("error").cloned().unwrap_or(Value::Null),
                )
            })
            .collect()
    };
    for file in files {
        let path = file.to_str().unwrap();
        let dry = run(&["replay", "--json", path], &[]).await;
        assert!(dry.status.success(), "{path}: {dry:?}");
        let fake = fake_salesforce::start().await;
        let env = salesforce_env(&fake);
        let real = run(&["replay", "--send", "--json", path], &env).await;
        assert!(real.status.success(), "{path}: {real:?}");
        let (dry, real) = (
            per_record(&json_lines(&dry)),
            per_record(&json_lines(&real)),
        );
        assert!(!dry.is_empty(), "{path}");
        assert_eq!(dry, real, "{path}");
    }
}

/// Runs `shell` (a command line) on a pseudo-terminal from util-linux `script`, with a clean
/// environment, and returns its output with the terminal's `\r` removed.
async fn on_a_terminal(shell: &str) -> String {
    let output = tokio::process::Command::new("script")
        .args(["-qec", shell, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TERM", "dumb")
        .output()
        .await
        .expect("util-linux script runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).replace('\r', "")
}

/// On a terminal (a pseudo-terminal from util-linux `script`) the CLI prints a table and a
/// summary per file instead of JSON lines. The terminal's size is unknown here (no `COLUMNS`,
/// a 0×0 pseudo-terminal), so the table is 80 columns wide.
#[tokio::test]
async fn a_terminal_gets_a_table_with_a_summary_per_file() {
    let command = format!(
        "{} replay {}",
        env!("CARGO_BIN_EXE_ctr-cases"),
        events("mixed-batch.json").display()
    );
    let text = on_a_terminal(&command).await;
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].ends_with("mixed-batch.json"), "{text}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["#", "CONTACT", "OUTCOME", "ACTION", "REASON"]
    );
    let rows: Vec<Vec<&str>> = lines[2..12]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[7][1..], ["-", "poison", "dead_letter", "invalid_json"]);
    assert_eq!(rows[9][1..], ["5ca32fbd…", "dropped", "upsert_case"]);
    // See: issue "A first deploy that works the first time", item 3.
    for row in &rows[..5] {
        assert_eq!(
            row[1..],
            [
                "6fe40d2a…",
                "happy_path_live_agent",
                "superseded",
                "newer",
                "version",
                "in",
                "row",
                "6"
            ]
        );
    }
    assert_eq!(
        rows[5][2..],
        [
            "happy_path_live_agent",
            "skipped",
            "CASE_FOR_HAPPY_PATH=false"
        ]
    );
    assert_eq!(
        rows[6][2..],
        [
            "dropped",
            "superseded",
            "newer",
            "version",
            "in",
            "row",
            "10"
        ]
    );
    assert_eq!(
        lines[12], "10 record(s): 2 dead_letter, 1 skipped, 6 superseded, 1 upsert_case.",
        "{text}"
    );
    let summary = lines[13..].join(" ");
    assert!(
        summary.starts_with(
            "Dry run: 1 Case(s) would be written (created or updated) in 1 Salesforce call(s)"
        ),
        "{text}"
    );
    assert!(
        !text.contains("created,"),
        "no created count in a dry run: {text}"
    );
    assert!(!text.contains('{'), "no JSON on a terminal: {text}");
    for line in &lines {
        assert!(line.chars().count() <= 80, "wider than 80: {line:?}");
    }
}

/// `replay events/*.json` on an 80-column terminal: no line wraps, every skipped row says why
/// and every superseded row says what the contact was and which row superseded it.
// See: issue "A first deploy that works the first time", item 3.
#[tokio::test]
async fn every_bundled_event_fits_an_80_column_terminal_and_explains_itself() {
    let mut files: Vec<String> = std::fs::read_dir(events(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    let command = format!(
        "stty cols 80 && {} replay {}",
        env!("CARGO_BIN_EXE_ctr-cases"),
        files.join(" ")
    );
    let text = on_a_terminal(&command).await;
    let (mut skipped, mut superseded) = (0, 0);
    for line in text.lines() {
        assert!(
            line.chars().count() <= 80,
            "wider than 80: {line:?}\n{text}"
        );
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first().is_some_and(|w| w.parse::<usize>().is_ok()) && words.len() >= 4 {
            match words[3] {
                "skipped" => {
                    skipped += 1;
                    assert!(words.len() > 4, "a skipped row without a reason: {line}");
                }
                "superseded" => {
                    superseded += 1;
                    assert_ne!(words[2], "superseded", "{line}");
                    assert_eq!(words[4..7], ["newer", "version", "in"], "{line}");
                }
                _ => {}
            }
        }
    }
    // transfer.json 2, agent-handled 1, queued-abandon 1, mixed-batch 1.
    assert_eq!((skipped, superseded), (5, 6), "{text}");
    assert!(text.contains("CASE_FOR_QUEUED_ABANDONED=false"), "{text}");
}

/// A contact-flow event is the contact-flow function's input: refused, naming the command
/// that runs it, never replayed as poison; the other files still run.
// See: issue "A first deploy that works the first time", item 3.
#[tokio::test]
async fn a_contact_flow_event_is_refused_with_the_command_that_runs_it() {
    let flow_event = events("connect/handoff.json");
    let output = run(
        &[
            "replay",
            flow_event.to_str().unwrap(),
            events("dropped-ivr-call.json").to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "cargo lambda invoke ctr-cases-flow --invoke-address 127.0.0.1 --data-file {}",
            flow_event.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("contact-flow event"), "{stderr}");
    let got = decisions(&json_lines(&output));
    assert_eq!(got, [("dropped".to_owned(), "upsert_case".to_owned())]);
    assert!(!String::from_utf8_lossy(&output.stdout).contains("poison"));
}

#[tokio::test]
async fn help_explains_each_flag_with_an_example() {
    let help = run(&["replay", "--help"], &[]).await;
    let text = String::from_utf8_lossy(&help.stdout);
    process::assert_each_flag_has_an_example(
        &text,
        &["--send", "--show-requests", "--json", "--dead-letters"],
        6,
    );
}
