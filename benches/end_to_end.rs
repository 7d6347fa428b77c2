//! End-to-end bench binary: the real handler and the real binaries against the test fake org
//! (and fake Lambda Runtime API) on 127.0.0.1, next to the Python baselines in `bench/`.
//!
//! `cargo bench --bench end_to_end` prints one `name: value` line per figure:
//!
//! 1. in process (`stream::process_batch`, the Lambda's handler): Salesforce API calls per 1,000
//!    dropped calls in batches of 100; data calls per invocation for a new batch and for the
//!    same batch redelivered; the latency of a 100-record batch with 50 ms added to every data
//!    call; the bench process's peak RSS around a 10,000-record batch;
//! 2. the release Lambda binary (`ctr-cases-lambda`) under the fake Runtime API: its peak RSS
//!    (VmHWM) after an all-dropped-calls event just under Lambda's 6 MB payload limit
//!    (6,291,456 bytes, about 1,800 CTRs) and after a 10,000-record event; its cold start
//!    (spawn → first event picked up from the Runtime API, median of several spawns);
//! 3. side by side with the reference Lambda (`bench/reference_lambda.py`), each against its own
//!    fake org with 50 ms on every data call, 10 batches of 100 dropped calls each: API calls per
//!    1,000 dropped calls, median batch wall time, cold start, peak RSS, and reference/ours ratios;
//! 4. the replay dry run (`ctr-cases replay --json FILE > /dev/null`, release build) against the
//!    naive Python pass (`bench/naive_pass.py`) over the same 6 MB event file: median wall time
//!    (spawn → exit) of several alternating runs of each, and the ratio (target ≥ 5×).
//!
//! Figures, not pass/fail: the targets live in DESIGN.md and BENCHMARKS.md. What is checked (and
//! fails the run) is correctness: every Case written, no batch item failure, the baselines'
//! counts matching the fake org's own counters.
//!
//! Smoke mode: `cargo bench --bench end_to_end -- --smoke`, or run without `--bench` (as
//! `cargo test --benches` does) runs every measurement once at tiny sizes, including one run of
//! each Python script, so a broken bench fails CI (`scripts/bench-smoke`). Its figures mean
//! nothing.
//!
//! 5. scale: one event of 1,800 dropped calls with 300 ms per data call at in-flight 1, 5 and
//!    10; a backlog of 50,000 CTRs (30% dropped) drained batch after batch as Lambda drains a
//!    shard, at in-flight 1 and 5, next to the reference's computed rate; the binary's peak RSS
//!    on a 6 MB event of real-sized CTRs (1.5–4 KB, 20–40 attributes, 30% dropped).
//!
//! `cargo bench --bench end_to_end -- --write-events DIR` only writes the event files to `DIR`
//! (for profiling the same input); `-- --scale-only` runs section 5 alone.

#[path = "../tests/support/fake_salesforce.rs"]
mod fake_salesforce;
#[path = "../tests/support/fixtures.rs"]
mod fixtures;
#[path = "../tests/support/runtime_api.rs"]
mod runtime_api;
#[path = "../bench/workload.rs"]
mod workload;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ctr_cases::app::AppState;
use ctr_cases::event::KinesisEnvelope;
use ctr_cases::report::Action;
use ctr_cases::retry::Deadline;
use ctr_cases::stream::process_batch;
use fake_salesforce::{FakeOptions, FakeSalesforce};
use serde_json::Value;

/// Added to every data call of the fake org in the latency figures.
const DATA_CALL_LATENCY: Duration = Duration::from_millis(50);
/// Lambda's own limit on one invocation.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(900);

/// How big each measurement is.
struct Sizes {
    smoke: bool,
    /// Records per batch (100: "100-record batch").
    batch: usize,
    /// Batches for the calls per 1,000 dropped calls and the side-by-side runs (10 × 100).
    batches: usize,
    /// Timed batches for the in-process latency figure.
    latency_runs: usize,
    /// Records of the large in-process and binary batch (10,000).
    big_batch: usize,
    /// Size limit of "the 6 MB event".
    payload_limit: usize,
    /// Spawns per cold-start figure.
    cold_starts: usize,
    /// Timed runs of each program over the event file.
    file_runs: usize,
}

const FULL: Sizes = Sizes {
    smoke: false,
    batch: 100,
    batches: 10,
    latency_runs: 20,
    big_batch: 10_000,
    payload_limit: workload::LAMBDA_PAYLOAD_LIMIT,
    cold_starts: 11,
    file_runs: 11,
};

const SMOKE: Sizes = Sizes {
    smoke: true,
    batch: 5,
    batches: 2,
    latency_runs: 1,
    big_batch: 200,
    payload_limit: 64 * 1024,
    cold_starts: 1,
    file_runs: 1,
};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let smoke = args.iter().any(|a| a == "--smoke") || !args.iter().any(|a| a == "--bench");
    let sizes = if smoke { SMOKE } else { FULL };
    if let Some(dir) = args
        .iter()
        .position(|a| a == "--write-events")
        .map(|i| args.get(i + 1).expect("--write-events DIR"))
    {
        write_events(Path::new(dir), &sizes);
        return;
    }
    if args.iter().any(|a| a == "--scale-only") {
        // Section 5 alone (issue "Scale"): `cargo bench --bench end_to_end -- --scale-only`.
        scale_full_batch(&sizes).await;
        backlog_drain(&sizes).await;
        let (real_sized, real_mix) = real_sized_event(sizes.payload_limit);
        lambda_peak_rss("lambda_6mb_real_sized", &real_sized, real_mix).await;
        return;
    }
    let python = python_interpreter().await;
    let scratch = Scratch::new();
    println!(
        "mode: {} (python {}, lambda {}, cli {})",
        if sizes.smoke {
            "smoke (tiny sizes; the figures mean nothing)"
        } else {
            "full"
        },
        python,
        LAMBDA_BIN,
        CLI_BIN
    );

    // Other work on the machine skews every figure: say how busy it was.
    println!("load_average_start: {}", load_average());

    // 1. In process.
    api_calls_per_1000_dropped(&sizes).await;
    calls_per_invocation_new_and_redelivered(sizes.batch).await;
    batch_latency_50ms(&sizes).await;
    batch_in_process_peak_rss(&sizes).await;

    // 2. The Lambda binary.
    let (six_mb, six_mb_mix) =
        workload::event_json_within(4_000_000, sizes.payload_limit, workload::dropped_kind);
    assert!(six_mb.len() <= sizes.payload_limit);
    println!(
        "event_6mb: {} bytes, {} records (limit {} bytes)",
        six_mb.len(),
        six_mb_mix.records(),
        sizes.payload_limit
    );
    lambda_peak_rss("lambda_6mb", &six_mb, six_mb_mix).await;
    let (big, big_mix) = workload::event_json(5_000_000, sizes.big_batch, workload::dropped_kind);
    lambda_peak_rss(
        &format!("lambda_{}_records", sizes.big_batch),
        &big,
        big_mix,
    )
    .await;
    drop(big);
    let ours_cold = lambda_cold_starts(&sizes).await;
    flow_function(&sizes).await;
    let reference_cold = reference_cold_starts(&sizes, &python, &scratch).await;

    // 3. Side by side with the reference Lambda.
    side_by_side(&sizes, &python, &scratch, ours_cold, reference_cold).await;

    // 4. Replay dry run against the naive Python pass, same file.
    let file = scratch.write("event-6mb.json", &six_mb);
    drop(six_mb);
    replay_against_naive(&sizes, &python, &file, six_mb_mix).await;

    // 5. Scale: chunks in flight together, a backlog drained, real-sized CTRs.
    scale_full_batch(&sizes).await;
    backlog_drain(&sizes).await;
    let (real_sized, real_mix) = real_sized_event(sizes.payload_limit);
    lambda_peak_rss("lambda_6mb_real_sized", &real_sized, real_mix).await;
    println!("load_average_end: {}", load_average());
}

/// `--write-events DIR`: writes the bench's event files (`event-6mb.json`, the one the binary,
/// the replay and the naive pass read; `mixed-100.json`, the criterion bench's mixed batch) to
/// `DIR` for profiling, e.g. `perf record target/release/ctr-cases replay --json
/// DIR/event-6mb.json > /dev/null`, and measures nothing.
fn write_events(dir: &Path, sizes: &Sizes) {
    std::fs::create_dir_all(dir).expect("create the --write-events directory");
    let (six_mb, _) =
        workload::event_json_within(4_000_000, sizes.payload_limit, workload::dropped_kind);
    let (mixed, _) = workload::event_json(0, 100, workload::mixed_kind);
    for (name, event) in [("event-6mb.json", six_mb), ("mixed-100.json", mixed)] {
        let path = dir.join(name);
        std::fs::write(&path, event).expect("write an event file");
        println!("wrote {}", path.display());
    }
}

// ---------------------------------------------------------------------------------------------
// 1. In process
// ---------------------------------------------------------------------------------------------

fn state(fake: &FakeSalesforce) -> AppState {
    fixtures::app_state(&fixtures::fake_env(fake))
}

/// A Kinesis event of `count` dropped calls for contacts `first`, `first + 1`, ….
fn dropped_envelope(first: u64, count: usize) -> KinesisEnvelope {
    let (json, _) = workload::event_json(first, count, workload::dropped_kind);
    serde_json::from_str(&json).expect("a Kinesis event")
}

/// Runs `event` through the handler and panics unless every record got its Case.
async fn process_all(app: &AppState, event: &KinesisEnvelope) {
    process_expecting(app, event, Action::UpsertCase).await;
}

/// Runs `event` through the handler and panics unless every record ended with `expected`
/// (`Unchanged` for a redelivered batch whose Cases already hold this version).
async fn process_expecting(app: &AppState, event: &KinesisEnvelope, expected: Action) {
    let outcome = process_batch(app, event, Deadline::after(Duration::from_secs(120))).await;
    assert!(
        outcome.response.batch_item_failures.is_empty(),
        "batch item failures: {:?}",
        outcome.summary
    );
    assert_eq!(
        outcome.summary.count(expected) as usize,
        event.records.len(),
        "{:?}",
        outcome.summary
    );
}

/// Salesforce API calls (data + token) per 1,000 dropped calls, in batches of 100, from a cold
/// container; the reference makes one token request and one create per dropped call.
async fn api_calls_per_1000_dropped(sizes: &Sizes) {
    let fake = fake_salesforce::start().await;
    let app = state(&fake);
    for batch in 0..sizes.batches {
        let first = (batch * sizes.batch) as u64;
        process_all(&app, &dropped_envelope(first, sizes.batch)).await;
    }
    let dropped = sizes.batches * sizes.batch;
    let (data, token) = (fake.org.api_calls(), fake.org.token_requests());
    assert_eq!(fake.org.case_count(), dropped);
    println!(
        "api_calls_per_1000_dropped: {:.0} (data {data}, token {token} for {dropped} dropped \
         calls in batches of {}; reference: 2000)",
        per_1000(data + token, dropped),
        sizes.batch
    );
}

/// Salesforce data API calls (the fake org's `api_calls()` counter) for one invocation of a
/// new batch of `records` dropped calls, and for the same batch delivered again (Kinesis
/// redelivers a whole batch after a failed or timed-out invocation). The container is warm
/// (signed in on an earlier batch), so both numbers are data calls only.
async fn calls_per_invocation_new_and_redelivered(records: usize) {
    let fake = fake_salesforce::start().await;
    let app = state(&fake);
    process_all(&app, &dropped_envelope(9_000_000, 1)).await;
    let batch = dropped_envelope(9_100_000, records);

    let before = fake.org.api_calls();
    process_all(&app, &batch).await;
    let new_batch = fake.org.api_calls() - before;

    let before = fake.org.api_calls();
    process_expecting(&app, &batch, Action::Unchanged).await;
    let redelivered = fake.org.api_calls() - before;

    assert_eq!(
        fake.org.case_count(),
        1 + records,
        "a redelivery adds no Case"
    );
    println!("calls_per_invocation_new_batch: {new_batch} ({records} dropped calls, warm)");
    println!("calls_per_invocation_redelivered_batch: {redelivered} (the same {records} again)");
}

/// Latency of a 100-record batch with 50 ms added to every data call (warm container).
async fn batch_latency_50ms(sizes: &Sizes) {
    let fake = fake_salesforce::start_with(FakeOptions {
        latency: Some(DATA_CALL_LATENCY),
        ..Default::default()
    })
    .await;
    let app = state(&fake);
    process_all(&app, &dropped_envelope(1_000_000, 1)).await;
    let mut samples = Vec::new();
    for run in 0..sizes.latency_runs {
        let event = dropped_envelope(2_000_000 + (run * sizes.batch) as u64, sizes.batch);
        let started = Instant::now();
        process_all(&app, &event).await;
        samples.push(ms(started.elapsed()));
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "batch_{}_latency_50ms_fake_ms: {:.1} (median of {}; p95 {:.1}, max {:.1}; in process, \
         warm; target < 200)",
        sizes.batch,
        median(&samples),
        samples.len(),
        samples[(samples.len() * 95 / 100).min(samples.len() - 1)],
        samples[samples.len() - 1]
    );
}

/// The bench process's peak RSS while it parses and handles a 10,000-record event (JSON text
/// already in memory), with the peak reset just before; it includes the fake org's own memory
/// (it stores every Case), so the binary's figures below are the ones to compare with targets.
async fn batch_in_process_peak_rss(sizes: &Sizes) {
    let fake = fake_salesforce::start().await;
    let app = state(&fake);
    let (event, _) = workload::event_json(3_000_000, sizes.big_batch, workload::dropped_kind);
    let reset = reset_peak_rss();
    let before = peak_rss_kib("self");
    let started = Instant::now();
    let envelope: KinesisEnvelope = serde_json::from_str(&event).expect("a Kinesis event");
    drop(event);
    let outcome = process_batch(&app, &envelope, Deadline::unbounded()).await;
    let elapsed = started.elapsed();
    assert!(outcome.response.batch_item_failures.is_empty());
    assert_eq!(
        outcome.summary.count(Action::UpsertCase) as usize,
        sizes.big_batch
    );
    println!(
        "batch_{}_in_process_peak_rss_mib: {:.1} ({}; RSS before {:.1}; {:.0} ms, {} data \
         calls; the bench process, fake org included)",
        sizes.big_batch,
        mib(peak_rss_kib("self")),
        if reset {
            "peak since just before the parse"
        } else {
            "process peak: the reset failed"
        },
        mib(before),
        ms(elapsed),
        outcome.summary.salesforce_api_calls
    );
}

// ---------------------------------------------------------------------------------------------
// 2. The Lambda binary
// ---------------------------------------------------------------------------------------------

/// The Lambda binary built by this `cargo bench` (release) or `cargo test` (debug).
const LAMBDA_BIN: &str = env!("CARGO_BIN_EXE_ctr-cases-lambda");
/// The CLI binary, same profile.
const CLI_BIN: &str = env!("CARGO_BIN_EXE_ctr-cases");
/// The contact-flow binary, same profile.
const FLOW_BIN: &str = env!("CARGO_BIN_EXE_ctr-cases-flow");

/// A running Lambda binary and its Runtime API.
struct Lambda {
    api: runtime_api::RuntimeApi,
    child: runtime_api::ChildProcess,
    /// Spawn → first event picked up.
    cold_start: Duration,
    /// Request id of the first event.
    first: String,
    /// When the first event was picked up.
    picked_up: Instant,
}

impl Lambda {
    /// Spawns the binary against `fake` with `first_event` already queued (as Lambda has the
    /// event waiting when it starts a container) and waits until the binary picks it up.
    async fn start(fake: &FakeSalesforce, first_event: &str) -> Lambda {
        Lambda::start_program(LAMBDA_BIN, fake, first_event).await
    }

    /// [`Lambda::start`] for `program` (the stream or the contact-flow binary).
    async fn start_program(program: &str, fake: &FakeSalesforce, first_event: &str) -> Lambda {
        let api = runtime_api::start().await;
        let first = api.invoke_raw(first_event.as_bytes().to_vec(), INVOCATION_TIMEOUT);
        let mut env = runtime_api::lambda_env(&api);
        env.extend([
            ("SALESFORCE_LOGIN_URL", fake.base_url.clone()),
            ("SALESFORCE_CLIENT_ID", fake_salesforce::CLIENT_ID.into()),
            (
                "SALESFORCE_CLIENT_SECRET",
                fake_salesforce::CLIENT_SECRET.into(),
            ),
            ("SALESFORCE_USERNAME", fake_salesforce::USERNAME.into()),
            ("SALESFORCE_PASSWORD", fake_salesforce::PASSWORD.into()),
            ("AWS_LAMBDA_LOG_LEVEL", "warn".into()),
            // As template.yaml deploys the functions.
            ("GLIBC_TUNABLES", workload::deployed_glibc_tunables().into()),
        ]);
        let started = Instant::now();
        let child = runtime_api::spawn(program, &env);
        let delivered = api.delivered(&first, Duration::from_secs(30)).await;
        let picked_up = Instant::now();
        assert!(
            delivered,
            "the Lambda binary did not poll for its first event\n{}",
            child.dump()
        );
        Lambda {
            api,
            child,
            cold_start: picked_up - started,
            first,
            picked_up,
        }
    }

    /// Waits for the answer to `request_id`; panics unless it reports no failed record.
    async fn answered(&self, request_id: &str) {
        let outcome = self.api.outcome(request_id, INVOCATION_TIMEOUT).await;
        let failures = outcome
            .as_ref()
            .and_then(|o| o.response())
            .and_then(|r| r["batchItemFailures"].as_array().map(Vec::len));
        assert_eq!(
            failures,
            Some(0),
            "invocation {request_id}: {outcome:?}\n{}",
            self.child.dump()
        );
    }

    /// Waits for the contact-flow answer to `request_id`; panics unless it carries a `caseId`.
    async fn answered_with_case(&self, request_id: &str) {
        let outcome = self.api.outcome(request_id, INVOCATION_TIMEOUT).await;
        let case_id = outcome
            .as_ref()
            .and_then(|o| o.response())
            .and_then(|r| r["caseId"].as_str());
        assert!(
            case_id.is_some_and(|id| id.starts_with("500")),
            "invocation {request_id}: {outcome:?}\n{}",
            self.child.dump()
        );
    }

    /// Sends `event` and waits for the answer; returns the wall time from queueing to answer.
    async fn invoke(&self, event: &str) -> Duration {
        let started = Instant::now();
        let id = self
            .api
            .invoke_raw(event.as_bytes().to_vec(), INVOCATION_TIMEOUT);
        self.answered(&id).await;
        started.elapsed()
    }

    /// The binary's peak RSS so far, KiB.
    fn peak_rss_kib(&self) -> Option<u64> {
        peak_rss_kib(&self.child.id()?.to_string())
    }

    async fn stop(mut self) {
        self.child.kill().await;
    }
}

/// The binary's peak RSS after one event, with the Cases checked.
async fn lambda_peak_rss(name: &str, event: &str, mix: workload::Mix) {
    let fake = fake_salesforce::start().await;
    let lambda = Lambda::start(&fake, event).await;
    lambda.answered(&lambda.first).await;
    let batch = lambda.picked_up.elapsed();
    let rss = lambda.peak_rss_kib();
    assert_eq!(
        fake.org.case_count(),
        mix.dropped,
        "every dropped call's Case"
    );
    let target = if name == "lambda_6mb" {
        format!(
            "; target <= 24: {}",
            if mib(rss) <= 24.0 { "met" } else { "missed" }
        )
    } else {
        String::new()
    };
    println!(
        "{name}_peak_rss_mib: {:.1} ({} records, {} bytes, {} data calls, batch {:.0} ms{target})",
        mib(rss),
        mix.records(),
        event.len(),
        fake.org.api_calls(),
        ms(batch)
    );
    lambda.stop().await;
}

/// Cold starts of the binary: spawn → first event picked up, each a new process and Runtime
/// API, with a one-record event.
async fn lambda_cold_starts(sizes: &Sizes) -> Vec<f64> {
    let fake = fake_salesforce::start().await;
    let mut samples = Vec::new();
    for run in 0..sizes.cold_starts {
        let (event, _) = workload::event_json(6_000_000 + run as u64, 1, workload::dropped_kind);
        let lambda = Lambda::start(&fake, &event).await;
        lambda.answered(&lambda.first).await;
        samples.push(ms(lambda.cold_start));
        lambda.stop().await;
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "lambda_cold_start_ms: {:.1} (median of {}, min {:.1}, max {:.1}; spawn -> first event \
         picked up; target < 10: {})",
        median(&samples),
        samples.len(),
        samples[0],
        samples[samples.len() - 1],
        if median(&samples) < 10.0 {
            "met"
        } else {
            "missed"
        }
    );
    samples
}

/// A Connect "Invoke AWS Lambda function" event (virtual-agent hand-off) for contact `n`.
fn flow_event(n: u64) -> String {
    serde_json::json!({
        "Name": "ContactFlowEvent",
        "Details": {
            "Parameters": {"intent": "change booking"},
            "ContactData": {
                "ContactId": fixtures::contact_uuid(n),
                "InitialContactId": fixtures::contact_uuid(n),
                "Channel": "VOICE",
                "InstanceARN": "arn:aws:connect:us-east-1:123456789012:instance/7c6f9a4e-0000-4000-8000-000000000001",
                "InitiationMethod": "INBOUND",
                "SystemEndpoint": {"Type": "TELEPHONE_NUMBER", "Address": "+18005550100"},
                "CustomerEndpoint": {"Type": "TELEPHONE_NUMBER", "Address": fixtures::caller_number(n)},
                "Queue": {"Name": "Bookings", "ARN": "arn:aws:connect:us-east-1:123456789012:instance/x/queue/y"},
                "Attributes": {"VirtualAgentStatus": "handed_off"}
            }
        }
    })
    .to_string()
}

/// The contact-flow binary against the fake org with 50 ms on every data call: cold start
/// (spawn → first event picked up), the first answer of a new container (token request plus
/// its one data call) and warm answers (one data call each), every answer checked for a
/// `caseId`.
async fn flow_function(sizes: &Sizes) {
    let fake = fake_salesforce::start_with(FakeOptions {
        latency: Some(DATA_CALL_LATENCY),
        ..Default::default()
    })
    .await;
    let (mut cold, mut first_answer) = (Vec::new(), Vec::new());
    for run in 0..sizes.cold_starts {
        let flow =
            Lambda::start_program(FLOW_BIN, &fake, &flow_event(7_000_000 + run as u64)).await;
        flow.answered_with_case(&flow.first).await;
        first_answer.push(ms(flow.picked_up.elapsed()));
        cold.push(ms(flow.cold_start));
        flow.stop().await;
    }
    let flow = Lambda::start_program(FLOW_BIN, &fake, &flow_event(7_100_000)).await;
    flow.answered_with_case(&flow.first).await;
    let calls_before = fake.org.api_calls();
    let mut warm = Vec::new();
    for run in 0..sizes.latency_runs {
        let started = Instant::now();
        let id = flow.api.invoke_raw(
            flow_event(7_200_000 + run as u64).into_bytes(),
            INVOCATION_TIMEOUT,
        );
        flow.answered_with_case(&id).await;
        warm.push(ms(started.elapsed()));
    }
    let warm_calls = fake.org.api_calls() - calls_before;
    flow.stop().await;
    for samples in [&mut cold, &mut first_answer, &mut warm] {
        samples.sort_by(f64::total_cmp);
    }
    println!(
        "flow_cold_start_ms: {:.1} (median of {}, min {:.1}, max {:.1}; spawn -> first event \
         picked up)",
        median(&cold),
        cold.len(),
        cold[0],
        cold[cold.len() - 1]
    );
    println!(
        "flow_first_answer_ms: {:.1} (median of {}; picked up -> answered, token request and \
         one data call, 50 ms per data call)",
        median(&first_answer),
        first_answer.len()
    );
    println!(
        "flow_warm_answer_ms: {:.1} (median of {}, max {:.1}; queued -> answered, 50 ms per \
         data call; {} data calls for {} invocations; FLOW_TIMEOUT_MS default 3000)",
        median(&warm),
        warm.len(),
        warm[warm.len() - 1],
        warm_calls,
        warm.len()
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Scale (issue "Scale")
// ---------------------------------------------------------------------------------------------

/// Added to every data call of the fake org in the scale figures: a collections insert of many
/// Cases with triggers and rules is slow in a real org.
const SCALE_LATENCY: Duration = Duration::from_millis(300);

/// A warm container (signed in, Salesforce answered once) writing in chunks of `chunk` Cases,
/// `in_flight` chunks at once, against `fake`.
async fn scale_state(fake: &FakeSalesforce, chunk: usize, in_flight: usize) -> AppState {
    let mut env = fixtures::fake_env(fake);
    env.insert("SALESFORCE_BATCH_SIZE".into(), chunk.to_string());
    env.insert("SALESFORCE_MAX_IN_FLIGHT".into(), in_flight.to_string());
    let app = fixtures::app_state(&env);
    process_all(&app, &dropped_envelope(8_900_000, 1)).await;
    app
}

/// One event of 1,800 dropped calls (9 chunks of 200) with 300 ms per data call: wall time at
/// in-flight 1 (one chunk after another), at the default (5) and at 10.
async fn scale_full_batch(sizes: &Sizes) {
    let (records, chunk): (usize, usize) = if sizes.smoke { (30, 10) } else { (1_800, 200) };
    let chunks = records.div_ceil(chunk);
    for in_flight in [1, 5, 10] {
        let fake = fake_salesforce::start_with(FakeOptions {
            latency: Some(SCALE_LATENCY),
            ..Default::default()
        })
        .await;
        let app = scale_state(&fake, chunk, in_flight).await;
        let event = dropped_envelope(8_000_000, records);
        fake.org.reset_max_in_flight();
        let started = Instant::now();
        process_all(&app, &event).await;
        let wall = started.elapsed();
        let goal = if in_flight >= chunks {
            let met = wall <= SCALE_LATENCY + Duration::from_millis(100);
            format!(
                "; goal <= 400 (one round trip + 100 ms): {}",
                if met { "met" } else { "missed" }
            )
        } else {
            String::new()
        };
        println!(
            "scale_{records}_dropped_300ms_in_flight_{in_flight}_ms: {:.0} ({chunks} chunks of \
             {chunk}, at most {} requests in flight at the org{goal})",
            ms(wall),
            fake.org.max_in_flight()
        );
    }
}

/// A backlog of CTRs (30% dropped) drained as Lambda drains a shard with ParallelizationFactor 1:
/// batches of BatchSize, each invocation after the previous, the next batch starting at the
/// lowest record reported for retry. Records/s and Cases/s at in-flight 1 and 5, with 300 ms per
/// data call; the reference's rate on the same backlog is computed from its measured cost (two
/// sequential calls per dropped call, each 300 ms here: bench/reference_lambda.py).
async fn backlog_drain(sizes: &Sizes) {
    let (backlog, batch_size) = if sizes.smoke {
        (300, 100)
    } else {
        (50_000, 1_000)
    };
    let mut reference = None;
    for in_flight in [1, 5] {
        let fake = fake_salesforce::start_with(FakeOptions {
            latency: Some(SCALE_LATENCY),
            ..Default::default()
        })
        .await;
        let app = scale_state(&fake, 200, in_flight).await;
        let cases_before = fake.org.case_count();
        let mut checkpoint = 0;
        let mut invocations = 0;
        let started = Instant::now();
        while checkpoint < backlog {
            let count = batch_size.min(backlog - checkpoint);
            let (json, _) = workload::event_json(
                10_000_000 + checkpoint as u64,
                count,
                workload::thirty_percent_dropped,
            );
            let event: KinesisEnvelope = serde_json::from_str(&json).expect("a Kinesis event");
            let outcome =
                process_batch(&app, &event, Deadline::after(Duration::from_secs(60))).await;
            invocations += 1;
            let retried: Vec<&str> = outcome
                .response
                .batch_item_failures
                .iter()
                .filter_map(|f| f.item_identifier.as_deref())
                .collect();
            let done = match retried.iter().min() {
                // Lambda retries from the lowest reported sequence number.
                Some(lowest) => event
                    .records
                    .iter()
                    .position(|r| r.kinesis.sequence_number == *lowest)
                    .unwrap_or(count),
                None => count,
            };
            checkpoint += done;
        }
        let wall = started.elapsed().as_secs_f64();
        let cases = fake.org.case_count() - cases_before;
        let dropped = (0..backlog)
            .filter(|i| workload::thirty_percent_dropped(i % batch_size) == workload::Kind::Dropped)
            .count();
        assert_eq!(
            cases, dropped,
            "a Case for every dropped call of the backlog"
        );
        println!(
            "backlog_{backlog}_in_flight_{in_flight}: {:.0} records/s, {:.1} Cases/s ({backlog} \
             CTRs, {cases} Cases, {invocations} invocations of BatchSize {batch_size}, {:.1} s)",
            backlog as f64 / wall,
            cases as f64 / wall,
            wall
        );
        reference.get_or_insert(cases);
    }
    // The reference: a token request and a create per dropped call, one after another.
    let per_case = 2.0 * SCALE_LATENCY.as_secs_f64();
    let cases = reference.unwrap_or(0) as f64;
    println!(
        "backlog_{backlog}_reference: {:.1} records/s, {:.1} Cases/s (computed: 2 sequential \
         calls of 300 ms per dropped call, {:.0} s for the same backlog)",
        backlog as f64 / (cases * per_case),
        1.0 / per_case,
        cases * per_case
    );
}

/// An event of real-sized CTRs (1.5–4 KB, 20–40 attributes; 30% dropped calls) just under
/// `limit` bytes, and its mix.
fn real_sized_event(limit: usize) -> (String, workload::Mix) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (json, _) =
        workload::event_json_within(6_000_000, limit * 2, workload::thirty_percent_dropped);
    let mut event: Value = serde_json::from_str(&json).expect("a Kinesis event");
    let records = event["Records"].as_array_mut().expect("records");
    for (i, record) in records.iter_mut().enumerate() {
        let data = b64
            .decode(record["kinesis"]["data"].as_str().expect("data"))
            .expect("base64");
        record["kinesis"]["data"] = b64.encode(workload::real_sized(&data, i)).into();
    }
    // Keep the records that fit the payload limit.
    let wrapper = r#"{"Records":[]}"#.len();
    let mut size = wrapper;
    let mut mix = workload::Mix::default();
    let mut kept = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let text = record.to_string();
        if size + text.len() + usize::from(i > 0) > limit {
            break;
        }
        size += text.len() + usize::from(i > 0);
        match workload::thirty_percent_dropped(i) {
            workload::Kind::Dropped => mix.dropped += 1,
            workload::Kind::Handled => mix.handled += 1,
            workload::Kind::Poison => mix.poison += 1,
        }
        kept.push(text);
    }
    (format!(r#"{{"Records":[{}]}}"#, kept.join(",")), mix)
}

// ---------------------------------------------------------------------------------------------
// 3. The reference Lambda, side by side
// ---------------------------------------------------------------------------------------------

/// The real interpreter behind `python3` (on this machine a pyenv shim, a shell script that
/// would add its own start-up to every figure).
async fn python_interpreter() -> String {
    let output = tokio::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .await
        .expect("python3 on PATH (the Python baselines need it)");
    assert!(output.status.success(), "python3 -c failed");
    let path = String::from_utf8(output.stdout).expect("a UTF-8 path");
    let path = path.trim();
    assert!(!path.is_empty(), "python3 has no sys.executable");
    path.to_owned()
}

/// A script of `bench/`.
fn script(name: &str) -> String {
    format!("{}/bench/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// What one `reference_lambda.py` process reported.
struct ReferenceRun {
    cold_start_ms: f64,
    batch_ms: Vec<f64>,
    peak_rss_kib: u64,
    dropped: u64,
    calls: u64,
}

/// Runs `reference_lambda.py EVENT --repeat N` against `fake`; panics unless it succeeds, and
/// unless its own request counts match the fake org's counters.
async fn run_reference(
    python: &str,
    fake: &FakeSalesforce,
    event: &Path,
    repeat: usize,
) -> ReferenceRun {
    let (tokens_before, calls_before) = (fake.org.token_requests(), fake.org.api_calls());
    let mut command = tokio::process::Command::new(python);
    command
        .arg(script("reference_lambda.py"))
        .arg(event)
        .args(["--repeat", &repeat.to_string()])
        .env_clear()
        .envs(std::env::var_os("PATH").map(|p| ("PATH", p)))
        .env("SALESFORCE_LOGIN_URL", &fake.base_url)
        .env("SALESFORCE_CLIENT_ID", fake_salesforce::CLIENT_ID)
        .env("SALESFORCE_CLIENT_SECRET", fake_salesforce::CLIENT_SECRET)
        .env("SALESFORCE_USERNAME", fake_salesforce::USERNAME)
        .env("SALESFORCE_PASSWORD", fake_salesforce::PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command.env("BENCH_SPAWN_UNIX_NS", unix_ns().to_string());
    let output = command.output().await.expect("spawn reference_lambda.py");
    assert!(
        output.status.success(),
        "reference_lambda.py failed: {}",
        output.status
    );
    let line = last_json_line(&output.stdout, "reference_lambda.py");
    let number = |key: &str| {
        line[key]
            .as_u64()
            .unwrap_or_else(|| panic!("reference_lambda.py: no {key} in {line}"))
    };
    let (dropped, tokens, posts) = (
        number("dropped"),
        number("token_requests"),
        number("case_posts"),
    );
    assert_eq!(line["cold_start_from"], "spawn_env", "{line}");
    assert_eq!(line["peak_rss_from"], "VmHWM", "{line}");
    assert_eq!(tokens, dropped, "reference: one token per dropped call");
    assert_eq!(posts, dropped, "reference: one create per dropped call");
    assert_eq!(
        fake.org.token_requests() - tokens_before,
        tokens,
        "fake org token count"
    );
    assert_eq!(
        fake.org.api_calls() - calls_before,
        posts,
        "fake org data call count"
    );
    ReferenceRun {
        cold_start_ms: line["cold_start_ms"].as_f64().expect("cold_start_ms"),
        batch_ms: line["batch_ms"]
            .as_array()
            .expect("batch_ms")
            .iter()
            .map(|v| v.as_f64().expect("a batch time"))
            .collect(),
        peak_rss_kib: number("peak_rss_kib"),
        dropped,
        calls: tokens + posts,
    }
}

/// Cold starts of the reference: its `cold_start_ms` (spawn → handler ready, from
/// `BENCH_SPAWN_UNIX_NS`), one process per sample, each on a one-record event.
async fn reference_cold_starts(sizes: &Sizes, python: &str, scratch: &Scratch) -> Vec<f64> {
    let fake = fake_salesforce::start().await;
    let (event, _) = workload::event_json(7_000_000, 1, workload::dropped_kind);
    let file = scratch.write("reference-cold-start.json", &event);
    let mut samples = Vec::new();
    for _ in 0..sizes.cold_starts {
        let run = run_reference(python, &fake, &file, 1).await;
        assert_eq!(run.dropped, 1);
        samples.push(run.cold_start_ms);
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "reference_cold_start_ms: {:.1} (median of {}, min {:.1}, max {:.1}; spawn -> handler \
         ready)",
        median(&samples),
        samples.len(),
        samples[0],
        samples[samples.len() - 1]
    );
    samples
}

/// Ours (the Lambda binary) and the reference, each against its own fake org with 50 ms on
/// every data call, over the same number of batches of the same size.
async fn side_by_side(
    sizes: &Sizes,
    python: &str,
    scratch: &Scratch,
    ours_cold: Vec<f64>,
    reference_cold: Vec<f64>,
) {
    let slow_fake = || {
        fake_salesforce::start_with(FakeOptions {
            latency: Some(DATA_CALL_LATENCY),
            ..Default::default()
        })
    };
    let dropped = sizes.batches * sizes.batch;

    // Ours: a cold container gets the first batch, then the rest one by one.
    let fake = slow_fake().await;
    let events: Vec<String> = (0..sizes.batches)
        .map(|b| {
            let first = 8_000_000 + (b * sizes.batch) as u64;
            workload::event_json(first, sizes.batch, workload::dropped_kind).0
        })
        .collect();
    let lambda = Lambda::start(&fake, &events[0]).await;
    lambda.answered(&lambda.first).await;
    let mut ours_ms = vec![ms(lambda.picked_up.elapsed())];
    for event in &events[1..] {
        ours_ms.push(ms(lambda.invoke(event).await));
    }
    let ours_rss = lambda.peak_rss_kib();
    lambda.stop().await;
    assert_eq!(fake.org.case_count(), dropped, "ours: every Case written");
    let ours_calls = fake.org.api_calls() + fake.org.token_requests();

    // The reference: the same batch size, invoked as many times, in one process.
    let fake = slow_fake().await;
    let (event, _) = workload::event_json(8_500_000, sizes.batch, workload::dropped_kind);
    let file = scratch.write("reference-batch.json", &event);
    let reference = run_reference(python, &fake, &file, sizes.batches).await;
    assert_eq!(reference.dropped as usize, dropped);

    let ours = (
        per_1000(ours_calls, dropped),
        median_of(ours_ms),
        median(&ours_cold),
        mib(ours_rss),
    );
    let theirs = (
        per_1000(reference.calls, dropped),
        median_of(reference.batch_ms),
        median(&reference_cold),
        mib(Some(reference.peak_rss_kib)),
    );
    let b = sizes.batch;
    let n = sizes.batches;
    println!("side_by_side: {n} batches of {b} dropped calls, 50 ms per data call");
    println!("ours_api_calls_per_1000_dropped: {:.0}", ours.0);
    println!("reference_api_calls_per_1000_dropped: {:.0}", theirs.0);
    println!(
        "ratio_api_calls_reference_over_ours: {:.1}",
        theirs.0 / ours.0
    );
    println!(
        "ours_batch_{b}_50ms_ms: {:.1} (median; the Lambda binary)",
        ours.1
    );
    println!("reference_batch_{b}_50ms_ms: {:.1} (median)", theirs.1);
    println!(
        "ratio_batch_{b}_reference_over_ours: {:.1}",
        theirs.1 / ours.1
    );
    println!(
        "ours_cold_start_ms: {:.1} (median, spawn -> first event picked up)",
        ours.2
    );
    println!(
        "reference_cold_start_ms: {:.1} (median, spawn -> handler ready)",
        theirs.2
    );
    println!(
        "ratio_cold_start_reference_over_ours: {:.1}",
        theirs.2 / ours.2
    );
    println!(
        "ours_peak_rss_mib: {:.1} (after {dropped} dropped calls)",
        ours.3
    );
    println!(
        "reference_peak_rss_mib: {:.1} (after {dropped} dropped calls)",
        theirs.3
    );
    println!(
        "ratio_peak_rss_reference_over_ours: {:.1}",
        theirs.3 / ours.3
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Replay dry run against the naive Python pass
// ---------------------------------------------------------------------------------------------

/// `ctr-cases replay --json FILE`, stdout to `/dev/null` (or captured, to check it); returns
/// the wall time from spawn to exit and the output.
async fn run_replay(file: &Path, capture: bool) -> (Duration, Vec<u8>) {
    let mut command = tokio::process::Command::new(CLI_BIN);
    command
        .args(["replay", "--json"])
        .arg(file)
        .env_clear()
        .envs(std::env::var_os("PATH").map(|p| ("PATH", p)))
        .stdin(Stdio::null())
        .stdout(if capture {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::inherit());
    let started = Instant::now();
    let output = command.output().await.expect("spawn ctr-cases replay");
    let wall = started.elapsed();
    assert!(
        output.status.success(),
        "ctr-cases replay failed: {}",
        output.status
    );
    (wall, output.stdout)
}

/// `naive_pass.py FILE`; returns the wall time from spawn to exit and its JSON line.
async fn run_naive(python: &str, file: &Path) -> (Duration, Value) {
    let mut command = tokio::process::Command::new(python);
    command
        .arg(script("naive_pass.py"))
        .arg(file)
        .env_clear()
        .envs(std::env::var_os("PATH").map(|p| ("PATH", p)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command.env("BENCH_SPAWN_UNIX_NS", unix_ns().to_string());
    let started = Instant::now();
    let output = command.output().await.expect("spawn naive_pass.py");
    let wall = started.elapsed();
    assert!(
        output.status.success(),
        "naive_pass.py failed: {}",
        output.status
    );
    (wall, last_json_line(&output.stdout, "naive_pass.py"))
}

async fn replay_against_naive(sizes: &Sizes, python: &str, file: &Path, mix: workload::Mix) {
    // One checked run of each (it also warms the page cache).
    let (_, out) = run_replay(file, true).await;
    let summary = last_json_line(&out, "ctr-cases replay");
    let records = &summary["summary"]["records"];
    let upserts = &summary["summary"]["actions"]["upsert_case"];
    assert_eq!(records.as_u64(), Some(mix.records() as u64), "{summary}");
    assert_eq!(upserts.as_u64(), Some(mix.dropped as u64), "{summary}");
    let (_, line) = run_naive(python, file).await;
    assert_eq!(
        line["records"].as_u64(),
        Some(mix.records() as u64),
        "{line}"
    );
    assert_eq!(line["dropped"].as_u64(), Some(mix.dropped as u64), "{line}");

    let mut ours = Vec::new();
    let mut naive = Vec::new();
    let mut naive_processing = Vec::new();
    for _ in 0..sizes.file_runs {
        ours.push(ms(run_replay(file, false).await.0));
        let (wall, line) = run_naive(python, file).await;
        naive.push(ms(wall));
        naive_processing.push(line["seconds"].as_f64().expect("seconds") * 1000.0);
    }
    let (ours, naive, naive_processing) = (
        median_of(ours),
        median_of(naive),
        median_of(naive_processing),
    );
    let bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let n = sizes.file_runs;
    let ratio = naive / ours;
    println!(
        "replay_6mb_wall_ms: {ours:.1} (median of {n}; ctr-cases replay --json, {} records, \
         {bytes} bytes, stdout to /dev/null)",
        mix.records()
    );
    println!(
        "naive_python_6mb_wall_ms: {naive:.1} (median of {n}; processing only {naive_processing:.1})"
    );
    println!(
        "ratio_replay_speedup_vs_naive: {ratio:.1} (wall / wall; target >= 5: {})",
        if ratio >= 5.0 { "met" } else { "missed" }
    );
    println!(
        "ratio_replay_speedup_vs_naive_processing_only: {:.1} (naive processing only / our \
         whole process)",
        naive_processing / ours
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A directory for the event files, removed when the bench ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("ctr-cases-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the bench's scratch directory");
        Scratch(dir)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write an event file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The last line of `stdout` as JSON; panics with `program` named if there is none.
fn last_json_line(stdout: &[u8], program: &str) -> Value {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().rev().find(|l| !l.trim().is_empty());
    line.and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("{program} printed no JSON line"))
}

/// `VmHWM` (peak resident set) of process `pid` (or `self`), KiB.
fn peak_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`), or `unknown`.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".to_owned(),
        |text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        },
    )
}

/// Resets this process's peak RSS (VmHWM) to its current RSS (`echo 5 > /proc/PID/clear_refs`,
/// Linux 4.0+, "proc" in the kernel's filesystems documentation); false if that failed.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// `CLOCK_REALTIME` in nanoseconds, what the Python scripts compare `BENCH_SPAWN_UNIX_NS` with.
fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// KiB to MiB; NaN when the figure could not be read.
fn mib(kib: Option<u64>) -> f64 {
    kib.map_or(f64::NAN, |k| k as f64 / 1024.0)
}

fn per_1000(calls: u64, dropped: usize) -> f64 {
    calls as f64 * 1000.0 / dropped as f64
}

/// Median of sorted samples (the upper middle one for an even count).
fn median(sorted: &[f64]) -> f64 {
    assert!(!sorted.is_empty(), "no samples");
    sorted[sorted.len() / 2]
}

fn median_of(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    median(&samples)
}
