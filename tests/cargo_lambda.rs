//! The documented local workflow with the real tool: `cargo lambda watch` (cargo-lambda's Runtime
//! API emulator, which builds and runs the binaries itself) and `cargo lambda invoke` of both
//! functions with the bundled events, against the fake org on 127.0.0.1.
//! See: issue "Real orgs", items 4 and 9 (cargo-lambda sends `Lambda-Runtime-Deadline-Ms: 600000`,
//! a duration, which the functions took as an epoch time long past).
//!
//! Needs cargo-lambda (`scripts/test` installs it: `pip install cargo-lambda`); without it the
//! test fails saying so. Every address is loopback: the emulator listens on 127.0.0.1 (its
//! default is `::`), the functions talk only to the fake org, and cargo runs `--frozen` (no
//! registry). The emulator builds into this test's target directory with `cargo run`; its first
//! build can take minutes, because without the dev-dependencies' features (tokio's `net`, …) its
//! dependency artifacts differ from `cargo test`'s. Both sets stay cached side by side, so later
//! runs rebuild nothing but changed code.

mod support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::fake_salesforce::{self, FakeSalesforce};
use support::fixtures::{self, DROPPED_CONTACT_ID};

/// How long one `cargo lambda invoke` may take, the emulator's build of the binary included.
const FIRST_INVOKE: Duration = Duration::from_secs(20 * 60);
/// How long an invoke of a running function may take.
const WARM_INVOKE: Duration = Duration::from_secs(60);
/// How long the emulator may take to shut down after SIGTERM before it is killed.
const SHUTDOWN: Duration = Duration::from_secs(10);
/// The warning each function container logs once when the Runtime API's deadline is not
/// plausible (src/app.rs).
const DEADLINE_WARNING: &str =
    "the Runtime API's deadline is not a time within the next 15 minutes";

/// Fails, saying what to do, when cargo-lambda is not installed.
fn require_cargo_lambda() {
    let version = Command::new(cargo()).args(["lambda", "--version"]).output();
    match version {
        Ok(out) if out.status.success() => {}
        other => panic!(
            "cargo-lambda is not installed ({}): run scripts/test, which installs it \
             (pip install cargo-lambda)",
            match other {
                Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                Err(e) => e.to_string(),
            }
        ),
    }
}

/// The cargo that runs this test (cargo sets `CARGO`), else the one on `PATH`.
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// The crate's root: the events/ paths are relative to it, as in the docs.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The target directory this test was built in (`CARGO_TARGET_TMPDIR` is `<target>/tmp`), so the
/// emulator's builds land next to `cargo test`'s and are reused from one run to the next.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is <target>/tmp")
        .to_owned()
}

/// A free port on 127.0.0.1 (bound, then released for the emulator).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A command with a clean environment: only what cargo and rustup need to find the toolchain
/// and build into the same target directory, so nothing from the caller's shell (AWS or
/// Salesforce variables) reaches the functions.
fn clean_command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(root()).env_clear().stdin(Stdio::null());
    for name in [
        "PATH",
        "HOME",
        "RUSTUP_HOME",
        "CARGO_HOME",
        "RUSTUP_TOOLCHAIN",
        "RUSTFLAGS",
        "TMPDIR",
    ] {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    cmd
}

/// `cargo lambda watch` on 127.0.0.1:`port`, in its own process group, output to a file under
/// `<target>/tmp`.
/// Dropping it stops the emulator and every function process it started, test failed or not.
struct Watch {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Watch {
    fn start(env: &[(String, String)]) -> Self {
        let port = free_port();
        let log = target_dir()
            .join("tmp")
            .join(format!("cargo-lambda-watch-{port}.log"));
        std::fs::create_dir_all(log.parent().unwrap()).expect("create the log directory");
        let file = File::create(&log).expect("create the watch log");
        let mut cmd = clean_command(&cargo());
        cmd.args(["lambda", "watch", "--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port.to_string()])
            // No reloads on file changes while the suite runs; no registry access.
            .args(["--ignore-changes", "--frozen", "--color", "never"])
            // Not `--target-dir`: cargo-lambda 1.9.2 passes it to `cargo metadata` too, which
            // refuses it.
            .env("CARGO_TARGET_DIR", target_dir());
        for (key, value) in env {
            assert!(
                !value.contains(','),
                "--env-var splits at commas; {key} cannot be passed this way"
            );
            cmd.arg("--env-var").arg(format!("{key}={value}"));
        }
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .stdout(file.try_clone().expect("clone the log file"))
            .stderr(file)
            .spawn()
            .expect("start cargo lambda watch");
        Watch { child, port, log }
    }

    /// Waits until the emulator accepts connections; panics if it exits or takes a minute.
    async fn ready(mut self) -> Self {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return self;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("cargo lambda watch exited ({status})\n{}", self.output());
            }
            assert!(
                Instant::now() < until,
                "cargo lambda watch is not listening on 127.0.0.1:{}\n{}",
                self.port,
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Everything the emulator and the functions printed so far.
    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `cargo lambda invoke FUNCTION --data-file FILE` against this emulator: the response.
    async fn invoke(&self, function: &str, data_file: &str, within: Duration) -> Value {
        let mut cmd = clean_command(&cargo());
        cmd.args([
            "lambda",
            "invoke",
            function,
            "--invoke-address",
            "127.0.0.1",
        ])
        .args(["--invoke-port", &self.port.to_string()])
        .args(["--data-file", data_file, "--color", "never"]);
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        let started = Instant::now();
        let out = tokio::time::timeout(within, cmd.output())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "cargo lambda invoke {function} gave no answer within {within:?}\n{}",
                    self.output()
                )
            })
            .expect("cargo lambda invoke runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "cargo lambda invoke {function} failed ({}) after {:?}: {}{}\n--- watch:\n{}",
            out.status,
            started.elapsed(),
            stdout,
            String::from_utf8_lossy(&out.stderr),
            self.output()
        );
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "cargo lambda invoke {function} printed no JSON ({e}): {stdout}\n{}",
                self.output()
            )
        })
    }
}

/// Sends `signal` to process group `group` (`kill -SIGNAL -- -GROUP`).
fn signal_group(signal: &str, group: u32) {
    let _ = Command::new("kill")
        .args([signal, "--", &format!("-{group}")])
        .stderr(Stdio::null())
        .status();
}

/// The ids of the processes whose parent is `parent` (read from /proc).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // /proc/PID/stat: "PID (COMM) STATE PPID …"; COMM may hold spaces, so split after ')'.
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let after = &stat[stat.rfind(')')? + 1..];
                    after.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

impl Drop for Watch {
    fn drop(&mut self) {
        let pid = self.child.id();
        // watchexec starts each function in a process group of its own: note them first.
        let functions = children_of(pid);
        // SIGTERM: the emulator stops its function instances and exits.
        signal_group("-TERM", pid);
        let until = Instant::now() + SHUTDOWN;
        while Instant::now() < until && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        signal_group("-KILL", pid);
        for function in functions {
            signal_group("-KILL", function);
        }
        let _ = self.child.wait();
        // Kept for a failed test (its panic message holds it too).
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// The environment both functions get: the fake org with inline credentials, zero backoff, no
/// outage hold (fixtures::fake_env), and JSON logs.
fn function_env(fake: &FakeSalesforce) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = fixtures::fake_env(fake).into_iter().collect();
    env.push(("AWS_LAMBDA_LOG_FORMAT".into(), "json".into()));
    env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "info".into()));
    env.sort();
    env
}

/// Done when (d) of issue "Real orgs": a Case from `cargo lambda invoke` of the stream function,
/// and `{"caseId","caseNumber"}` of that Case from the flow function.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_lambda_invoke_runs_both_functions_against_the_fake_org() {
    require_cargo_lambda();
    let fake = fake_salesforce::start().await;
    let watch = Watch::start(&function_env(&fake)).ready().await;

    let response = watch
        .invoke(
            "ctr-cases-lambda",
            "events/dropped-ivr-call.json",
            FIRST_INVOKE,
        )
        .await;
    assert_eq!(
        response,
        serde_json::json!({"batchItemFailures": []}),
        "nothing reported for retry\n{}",
        watch.output()
    );
    let case = fake
        .org
        .case(DROPPED_CONTACT_ID)
        .unwrap_or_else(|| panic!("no Case for the dropped call\n{}", watch.output()));
    assert_eq!(fake.org.case_count(), 1);

    // A warm container, the same record again: unchanged, and no second warning.
    let again = watch
        .invoke(
            "ctr-cases-lambda",
            "events/dropped-ivr-call.json",
            WARM_INVOKE,
        )
        .await;
    assert_eq!(again, serde_json::json!({"batchItemFailures": []}));

    let answer = watch
        .invoke(
            "ctr-cases-flow",
            "events/connect/handoff.json",
            FIRST_INVOKE,
        )
        .await;
    let mut keys: Vec<&String> = answer
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {answer}"))
        .keys()
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["caseId", "caseNumber"],
        "{answer}\n{}",
        watch.output()
    );
    assert_eq!(answer["caseId"], case["Id"], "{answer}");
    assert_eq!(answer["caseNumber"], case["CaseNumber"], "{answer}");
    assert_eq!(fake.org.case_count(), 1, "the hand-off found the same Case");

    let output = watch.output();
    assert_eq!(
        output.matches(DEADLINE_WARNING).count(),
        2,
        "one warning per function container\n{output}"
    );
    assert!(
        !output.contains("Salesforce unavailable") && !output.contains("deadline_reached"),
        "{output}"
    );
}
