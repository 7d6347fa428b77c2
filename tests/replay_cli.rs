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

/// On a terminal (a pseudo-terminal from util-linux `script`) the CLI prints a table and a
/// summary line per file instead of JSON lines.
#[tokio::test]
async fn a_terminal_gets_a_table_with_a_summary_per_file() {
    let command = format!(
        "{} replay {}",
        env!("CARGO_BIN_EXE_ctr-cases"),
        events("mixed-batch.json").display()
    );
    let output = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TERM", "dumb")
        .output()
        .await
        .expect("util-linux script runs");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout).replace('\r', "");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].ends_with("mixed-batch.json"), "{text}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["SEQUENCE", "CONTACT", "ID", "OUTCOME", "ACTION", "REASON"]
    );
    let rows: Vec<Vec<&str>> = lines[2..12]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[7][1..], ["-", "poison", "dead_letter", "invalid_json"]);
    assert_eq!(
        rows[9][1..],
        [
            "5ca32fbd-8f92-46af-92a5-6b0f970f0efe",
            "dropped",
            "upsert_case"
        ]
    );
    assert!(lines[12].starts_with("10 record(s): 2 dead_letter, 1 skipped, 6 superseded, 1 upsert_case; 1 Salesforce call(s)"), "{text}");
    assert!(!text.contains('{'), "no JSON on a terminal: {text}");
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
