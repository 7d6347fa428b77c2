//! Running the built binaries in tests: the stream Lambda (`ctr-cases-lambda`) as a child process
//! polling a fake Runtime API, and the `ctr-cases` CLI, each with a clean environment (only
//! `PATH` and what the test passes), plus readers for what they print (JSON logs, EMF lines) and
//! leak checks for privacy tests.
//!
//! Shared by every test file that runs a binary (tests/lambda_binary.rs, tests/outage.rs,
//! tests/security.rs, …). Every wait is bounded; child processes are killed on drop.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

use super::fake_salesforce::{self, FakeSalesforce};
use super::fixtures;
use super::moto::Moto;
use super::runtime_api::{self, ChildProcess, InvocationOutcome, RuntimeApi};

/// The stream Lambda's bootstrap.
pub const LAMBDA_BIN: &str = env!("CARGO_BIN_EXE_ctr-cases-lambda");
/// The `ctr-cases` CLI.
pub const CLI_BIN: &str = env!("CARGO_BIN_EXE_ctr-cases");

/// The invocation deadline used unless a test gives one.
pub const LAMBDA_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a test waits for a process that should exit by itself.
pub const EXIT_WAIT: Duration = Duration::from_secs(30);

/// Everything a process wrote, line by line.
pub struct Output {
    /// Stdout lines.
    pub stdout: Vec<String>,
    /// Stderr lines.
    pub stderr: Vec<String>,
}

impl Output {
    /// Everything `child` has written so far.
    pub fn of(child: &ChildProcess) -> Self {
        Output {
            stdout: child.stdout_lines(),
            stderr: child.stderr_lines(),
        }
    }

    /// Both streams joined, for failure messages and substring checks.
    pub fn all(&self) -> String {
        self.stdout
            .iter()
            .chain(&self.stderr)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Stdout lines that are EMF metric lines (a JSON object with `_aws` at the root).
    pub fn emf(&self) -> Vec<Value> {
        self.stdout
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get("_aws").is_some())
            .collect()
    }

    /// Stdout lines that are not EMF lines, parsed as JSON (panics on a line that is not).
    pub fn json_logs(&self) -> Vec<Value> {
        self.stdout
            .iter()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str::<Value>(l)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"))
            })
            .filter(|v| v.get("_aws").is_none())
            .collect()
    }
}

impl Output {
    /// The JSON log lines at level ERROR.
    pub fn error_lines(&self) -> Vec<Value> {
        self.json_logs()
            .into_iter()
            .filter(|l| field(l, "level") == Some("ERROR"))
            .collect()
    }
}

/// A JSON log line's string field.
pub fn field<'a>(line: &'a Value, name: &str) -> Option<&'a str> {
    line.get(name).and_then(Value::as_str)
}

/// The environment for the Lambda binary against `fake` with the password flow, zero backoff,
/// no outage hold (tests of the hold set their own) and JSON logs at `level`.
pub fn lambda_env(
    api: &RuntimeApi,
    fake: &FakeSalesforce,
    level: &str,
) -> Vec<(&'static str, String)> {
    let mut env = runtime_api::lambda_env(api);
    env.extend([
        ("SALESFORCE_LOGIN_URL", fake.base_url.clone()),
        (
            "SALESFORCE_CLIENT_ID",
            fake_salesforce::CLIENT_ID.to_owned(),
        ),
        (
            "SALESFORCE_CLIENT_SECRET",
            fake_salesforce::CLIENT_SECRET.to_owned(),
        ),
        ("SALESFORCE_USERNAME", fake_salesforce::USERNAME.to_owned()),
        ("SALESFORCE_PASSWORD", fake_salesforce::PASSWORD.to_owned()),
        ("SALESFORCE_RETRY_BASE_MS", "0".to_owned()),
        ("SALESFORCE_RETRY_MAX_MS", "0".to_owned()),
        ("AWS_LAMBDA_LOG_FORMAT", "json".to_owned()),
        ("AWS_LAMBDA_LOG_LEVEL", level.to_owned()),
        ("OUTAGE_HOLD_MS", "0".to_owned()),
        // As in fixtures::fake_env: the org-check tests turn it on.
        ("SALESFORCE_ORG_CHECK", "false".to_owned()),
    ]);
    env
}

/// A fresh standard queue `name` on `moto`, and the `DEAD_LETTER_QUEUE_URL` and
/// `AWS_ENDPOINT_URL` entries that send the binary's dead letters there.
pub async fn dead_letter_queue_env(
    moto: &Moto,
    name: &str,
) -> (String, Vec<(&'static str, String)>) {
    let queue = moto.create_queue(name).await;
    let env = vec![
        ("DEAD_LETTER_QUEUE_URL", queue.clone()),
        ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
    ];
    (queue, env)
}

/// A running Lambda binary and the fake Runtime API it polls.
pub struct Lambda {
    /// The fake Runtime API.
    pub api: RuntimeApi,
    /// The process.
    pub child: ChildProcess,
}

impl Lambda {
    /// Starts a fake Runtime API and the binary with [`lambda_env`] plus `extra` (a later entry
    /// wins); names in `remove` are left out.
    pub async fn launch(
        fake: &FakeSalesforce,
        level: &str,
        remove: &[&str],
        extra: &[(&'static str, String)],
    ) -> Self {
        let api = runtime_api::start().await;
        let mut env = lambda_env(&api, fake, level);
        env.retain(|(k, _)| !remove.contains(k));
        env.extend(extra.iter().cloned());
        let child = runtime_api::spawn(LAMBDA_BIN, &env);
        Lambda { api, child }
    }

    /// Invokes with `payload` and an invocation deadline `timeout` from now; returns the
    /// outcome and how long it took to arrive (from the moment the event was queued). Panics
    /// (with the process output) if there is none before the deadline plus 5 s, or the process
    /// exits first.
    pub async fn outcome_within(
        &mut self,
        payload: &Value,
        timeout: Duration,
    ) -> (InvocationOutcome, Duration) {
        let started = Instant::now();
        let id = self.api.invoke(payload.clone(), timeout);
        let until = started + timeout + Duration::from_secs(5);
        loop {
            if let Some(outcome) = self.api.outcome(&id, Duration::from_millis(20)).await {
                return (outcome, started.elapsed());
            }
            if let Some(status) = self.child.wait_exit(Duration::from_millis(1)).await {
                panic!(
                    "the Lambda exited ({status}) before answering {id}\n{}",
                    self.child.dump()
                );
            }
            if Instant::now() >= until {
                let delivered = self.api.delivered_ids().contains(&id);
                panic!(
                    "no answer to {id} within {timeout:?} (delivered: {delivered})\n{}",
                    self.child.dump()
                );
            }
        }
    }

    /// Invokes with [`LAMBDA_TIMEOUT`] and returns the response body; panics on an error.
    pub async fn invoke(&mut self, payload: &Value) -> Value {
        match self.outcome_within(payload, LAMBDA_TIMEOUT).await.0 {
            InvocationOutcome::Response(v) => v,
            InvocationOutcome::Error(e) => {
                panic!("invocation failed: {e}\n{}", self.child.dump())
            }
        }
    }

    /// Kills the process and returns everything it wrote.
    pub async fn stop(mut self) -> Output {
        self.child.kill().await;
        Output::of(&self.child)
    }
}

/// Starts the binary with `env`, queues one invocation of `payload` at once (so a binary that
/// wrongly starts gets to work on it), and waits up to `wait` for it to exit. Returns the exit
/// status (`None`: still running, then killed), its output and the Runtime API.
pub async fn cold_start(
    env_for: impl FnOnce(&RuntimeApi) -> Vec<(&'static str, String)>,
    payload: &Value,
    wait: Duration,
) -> (Option<ExitStatus>, Output, RuntimeApi) {
    let api = runtime_api::start().await;
    let env = env_for(&api);
    let mut child = runtime_api::spawn(LAMBDA_BIN, &env);
    api.invoke(payload.clone(), LAMBDA_TIMEOUT);
    let status = child.wait_exit(wait).await;
    if status.is_none() {
        child.kill().await;
    }
    (status, Output::of(&child), api)
}

/// Runs the CLI with `args`, a clean environment plus `envs`, in the system temp directory.
pub async fn cli(args: &[&str], envs: &[(String, String)]) -> std::process::Output {
    tokio::process::Command::new(CLI_BIN)
        .current_dir(std::env::temp_dir())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .kill_on_drop(true)
        .output()
        .await
        .expect("the CLI runs")
}

/// A CLI run's stdout, one JSON value a line; panics on a line that is not JSON.
pub fn stdout_json_lines(output: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// Asserts that each of `flags` starts a line of the `--help` text `help` and that `Example`
/// appears within the `within` lines from there, and that `help` has an `Examples:` section.
pub fn assert_each_flag_has_an_example(help: &str, flags: &[&str], within: usize) {
    for flag in flags {
        let line = help
            .lines()
            .position(|l| l.trim_start().starts_with(flag))
            .unwrap_or_else(|| panic!("{flag} not in {help}"));
        let described: String = help
            .lines()
            .skip(line)
            .take(within)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(described.contains("Example"), "{flag}: {described}");
    }
    assert!(help.contains("Examples:"), "{help}");
}

/// A Kinesis event (as JSON) of `datas` as base64 records, sequence numbers from `first_seq`.
pub fn kinesis_json(datas: &[impl AsRef<[u8]>], first_seq: u64) -> Value {
    let bytes: Vec<Vec<u8>> = datas.iter().map(|d| d.as_ref().to_vec()).collect();
    serde_json::to_value(fixtures::kinesis_event(&bytes, first_seq)).expect("events serialize")
}

/// The sequence numbers in a Lambda response, checking its exact shape:
/// `{"batchItemFailures":[{"itemIdentifier":"<seq>"}, …]}`.
pub fn response_failures(response: &Value) -> Vec<String> {
    let object = response
        .as_object()
        .unwrap_or_else(|| panic!("response is not an object: {response}"));
    assert_eq!(
        object.keys().collect::<Vec<_>>(),
        ["batchItemFailures"],
        "response keys: {response}"
    );
    object["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("batchItemFailures is not an array: {response}"))
        .iter()
        .map(|item| {
            item["itemIdentifier"]
                .as_str()
                .unwrap_or_else(|| panic!("itemIdentifier is not a string: {response}"))
                .to_owned()
        })
        .collect()
}

/// The metric values of an EMF line (the names `ctr_cases::metrics` emits).
pub fn emf_values(line: &Value) -> BTreeMap<&'static str, u64> {
    ctr_cases::metrics::METRIC_NAMES
        .iter()
        .map(|&name| {
            let value = line[name]
                .as_u64()
                .unwrap_or_else(|| panic!("{name} is not a whole number: {line}"));
            (name, value)
        })
        .collect()
}

/// Every string in `value` that looks like an E.164 phone number.
pub fn phone_numbers(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::String(s)
            if s.len() >= 9 && s.starts_with('+') && s[1..].chars().all(|c| c.is_ascii_digit()) =>
        {
            out.insert(s.clone());
        }
        Value::Array(items) => items.iter().for_each(|v| phone_numbers(v, out)),
        Value::Object(map) => map.values().for_each(|v| phone_numbers(v, out)),
        _ => {}
    }
}

/// What of `numbers` (plain, URL-encoded `%2B…` or JSON-escaped `\u002b…`) and of `secrets`
/// appears in `line`, as `phone number N` and `secret S` entries.
pub fn numbers_and_secrets_in(
    line: &str,
    numbers: &BTreeSet<String>,
    secrets: &BTreeSet<String>,
) -> Vec<String> {
    let mut found = Vec::new();
    for number in numbers {
        let digits = &number[1..];
        let forms = [
            number.clone(),
            format!("%2B{digits}"),
            format!("\\u002b{digits}"),
            format!("\\u002B{digits}"),
        ];
        if forms.iter().any(|f| line.contains(f.as_str())) {
            found.push(format!("phone number {number}"));
        }
    }
    for secret in secrets {
        if line.contains(secret.as_str()) {
            found.push(format!("secret {secret}"));
        }
    }
    found
}

/// Every bearer token the fake org was sent (the `Authorization: Bearer …` of its requests).
pub fn bearer_tokens(fake: &FakeSalesforce) -> Vec<String> {
    fake.org
        .requests()
        .iter()
        .filter_map(|request| {
            request
                .header("authorization")
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(|token| token.trim().to_owned())
        })
        .collect()
}

/// Runs of base64 characters (at least 24 long) in `text`, decoded where they decode.
pub fn decoded_base64_runs(text: &str) -> Vec<String> {
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=';
    text.split(|c: char| !is_b64(c))
        .filter(|run| run.len() >= 24)
        .filter_map(|run| {
            let trimmed = run.trim_end_matches('=');
            let usable = &trimmed[..trimmed.len() - trimmed.len() % 4];
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(usable)
                .ok()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        })
        .collect()
}

/// Asserts that `leaks_in(line)` finds nothing in any output line; the failure lists each
/// distinct (log target and message, what leaked).
pub fn assert_no_leaks(output: &Output, leaks_in: impl Fn(&str) -> Vec<String>) {
    let mut leaks: BTreeSet<(String, String)> = BTreeSet::new();
    let mut leaking_lines = 0;
    for line in output.stdout.iter().chain(&output.stderr) {
        let found = leaks_in(line);
        if found.is_empty() {
            continue;
        }
        leaking_lines += 1;
        let source = match serde_json::from_str::<Value>(line) {
            Ok(v) => format!(
                "{} {:?}",
                field(&v, "target").unwrap_or("?"),
                field(&v, "message").unwrap_or("?")
            ),
            Err(_) => line.chars().take(200).collect(),
        };
        for what in found {
            leaks.insert((source.clone(), what));
        }
    }
    assert!(
        leaks.is_empty(),
        "{leaking_lines} of {} output lines leak; (log line: what):\n{}",
        output.stdout.len() + output.stderr.len(),
        leaks
            .iter()
            .map(|(source, what)| format!("  {source}: {what}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
