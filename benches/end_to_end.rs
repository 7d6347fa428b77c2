//! End-to-end bench binary: the real handler against the test fake org on 127.0.0.1.
//!
//! `cargo bench --bench end_to_end` prints:
//! - Salesforce API calls (data + token) per 1,000 dropped calls in batches of 100, next to the
//!   reference Lambda's (one token request and one create per dropped call);
//! - the end-to-end latency of a 100-record batch with 50 ms added to every data call;
//! - the bench process's peak RSS around a 10,000-record batch;
//! - the real Lambda binary (release build) under a fake Runtime API: cold start (spawn → first
//!   event picked up) and its own peak RSS after a 1,800-record batch (about Lambda's 6 MB
//!   payload limit) and after a 10,000-record batch.
//!
//! Figures, not pass/fail: the targets live in DESIGN.md and the closing notes.

#[path = "../tests/support/fake_salesforce.rs"]
mod fake_salesforce;
#[path = "../tests/support/fixtures.rs"]
mod fixtures;
#[path = "../tests/support/runtime_api.rs"]
mod runtime_api;

use std::time::{Duration, Instant};

use ctr_cases::app::AppState;
use ctr_cases::event::KinesisEnvelope;
use ctr_cases::retry::Deadline;
use ctr_cases::stream::process_batch;

fn dropped_batch(first: u64, count: u64) -> KinesisEnvelope {
    fixtures::kinesis_event(&fixtures::dropped_datas(first..first + count), first)
}

fn state(fake: &fake_salesforce::FakeSalesforce) -> AppState {
    fixtures::app_state(&fixtures::fake_env(fake))
}

fn peak_rss_kib() -> Option<u64> {
    peak_rss_kib_of("self")
}

fn peak_rss_kib_of(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs bench targets without `--bench`: a smoke check only.
        println!("end_to_end: run with `cargo bench --bench end_to_end` for figures");
        return;
    }
    // 1. API calls per 1,000 dropped calls, batches of 100.
    let fake = fake_salesforce::start().await;
    let app = state(&fake);
    for batch in 0..10 {
        let event = dropped_batch(batch * 100, 100);
        let outcome = process_batch(&app, &event, Deadline::after(Duration::from_secs(60))).await;
        assert!(outcome.response.batch_item_failures.is_empty());
    }
    let calls = fake.org.api_calls() + fake.org.token_requests();
    println!(
        "api_calls_per_1000_dropped: {calls} (data {}, token {}); reference: 2000",
        fake.org.api_calls(),
        fake.org.token_requests()
    );

    // 2. 100-record batch latency with 50 ms per data call (warm container: token cached).
    let fake = fake_salesforce::start_with(fake_salesforce::FakeOptions {
        latency: Some(Duration::from_millis(50)),
        ..Default::default()
    })
    .await;
    let app = state(&fake);
    let warm = dropped_batch(1_000_000, 1);
    process_batch(&app, &warm, Deadline::unbounded()).await;
    let mut samples = Vec::new();
    for run in 0..20u64 {
        let event = dropped_batch(2_000_000 + run * 100, 100);
        let started = Instant::now();
        process_batch(&app, &event, Deadline::unbounded()).await;
        samples.push(started.elapsed());
    }
    samples.sort();
    println!(
        "batch_100_latency_50ms_fake: median {:?}, p95 {:?}, max {:?} (target < 200 ms)",
        samples[samples.len() / 2],
        samples[samples.len() * 95 / 100],
        samples[samples.len() - 1]
    );

    // 3. Peak RSS after a 10,000-record batch (includes the fake org's own memory).
    let fake = fake_salesforce::start().await;
    let app = state(&fake);
    let event = serde_json::to_string(&dropped_batch(3_000_000, 10_000)).unwrap();
    let before = peak_rss_kib();
    let envelope: KinesisEnvelope = serde_json::from_str(&event).unwrap();
    drop(event);
    let started = Instant::now();
    let outcome = process_batch(&app, &envelope, Deadline::unbounded()).await;
    println!(
        "batch_10000: {:?}, {} cases, {} data calls; peak RSS before {:?} KiB, after {:?} KiB \
         (process includes the fake org)",
        started.elapsed(),
        outcome.summary.count(ctr_cases::report::Action::UpsertCase),
        outcome.summary.salesforce_api_calls,
        before,
        peak_rss_kib()
    );

    // 4. The real binary: cold start and its own peak RSS.
    for records in [1_800u64, 10_000] {
        let fake = fake_salesforce::start().await;
        let api = runtime_api::start().await;
        let event = serde_json::to_value(dropped_batch(4_000_000, records)).unwrap();
        let payload_mb = event.to_string().len() as f64 / 1e6;
        let request_id = api.invoke(event, Duration::from_secs(120));
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
        ]);
        let started = Instant::now();
        let mut child = runtime_api::spawn(env!("CARGO_BIN_EXE_ctr-cases-lambda"), &env);
        let picked_up = api.delivered(&request_id, Duration::from_secs(10)).await;
        let cold_start = started.elapsed();
        let outcome = api.outcome(&request_id, Duration::from_secs(120)).await;
        let pid = child.id().map(|p| p.to_string()).unwrap_or_default();
        let rss = peak_rss_kib_of(&pid);
        let failures = outcome
            .as_ref()
            .and_then(|o| o.response())
            .and_then(|r| r["batchItemFailures"].as_array().map(Vec::len));
        println!(
            "lambda_binary_{records}_records: payload {payload_mb:.1} MB, cold start to first \
             event {cold_start:?} (picked up: {picked_up}), peak RSS {rss:?} KiB, \
             failures {failures:?}, cases {}",
            fake.org.case_count()
        );
        child.kill().await;
    }
}
