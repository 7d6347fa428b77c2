//! Criterion benchmarks of the pure hot path, one core, no I/O:
//!
//! - `event_path/mixed_100_records`: the whole event path the DESIGN.md target is about
//!   (≥ 180,000 records/s): parse a 100-record Kinesis event (JSON text, the shape Lambda
//!   delivers), plan it, run it through `pipeline::run` with the dry-run sinks
//!   (`RequestRecorder`, `LetterRecorder`) on a current-thread runtime, and serialize what would
//!   be sent (the Case collections request bodies and the dead letters) as JSON text. The batch
//!   is mixed (`bench/workload.rs`): 65 dropped calls, 33 agent-handled calls, 2 poison records,
//!   from the recorded CTRs in `tests/fixtures/ctr`.
//! - `event_stages/*`: the same work split into parse, plan, and execute + serialize, to see
//!   where the time goes;
//! - `decode_classify/*` (one CTR) and `plan/kinesis_event_100_records` (decode, dedupe,
//!   classify, map a 100-record batch), as before.
//!
//! `cargo bench --bench pipeline -- --warm-up-time 1 --measurement-time 3`
//!
//! After the criterion report it prints one `name: value` line per figure (records/s from
//! criterion's median estimate of this run). `cargo test --benches` runs every benchmark once
//! (criterion's test mode), after checking each workload's decisions, and prints no figures.

#[path = "../tests/support/fake_salesforce.rs"]
mod fake_salesforce;
#[path = "../tests/support/fixtures.rs"]
mod fixtures;
#[path = "../bench/workload.rs"]
mod workload;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use criterion::{Criterion, Throughput};
use ctr_cases::aws::queue::LetterRecorder;
use ctr_cases::classify::{ClassifyConfig, classify};
use ctr_cases::config::DryRunConfig;
use ctr_cases::ctr::Ctr;
use ctr_cases::effect::NoCallbacks;
use ctr_cases::event::{KinesisEnvelope, record_for};
use ctr_cases::input::InputRecord;
use ctr_cases::pipeline;
use ctr_cases::plan::{self, Plan, Settings};
use ctr_cases::report::{Action, BatchReport};
use ctr_cases::retry::Deadline;
use ctr_cases::salesforce::RequestRecorder;
use tokio::runtime::Runtime;

const DROPPED: &str = include_str!(
    "../tests/fixtures/ctr/kinesis-event-inline-object-voice-ivr-only-contact-flow-disconnect-2024.json"
);
const HANDLED: &str =
    include_str!("../tests/fixtures/ctr/voice-agent-handled-external-transfer-endpoint-2022.json");

/// Records in the event-path batch.
const BATCH: usize = 100;
/// The DESIGN.md target for the whole event path, records per second on one core.
const TARGET_RECORDS_PER_S: f64 = 180_000.0;

fn dropped_ctr() -> String {
    let event: serde_json::Value = serde_json::from_str(DROPPED).unwrap();
    event["Records"][0]["kinesis"]["data"].to_string()
}

fn with_id(json: &str, n: u64) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["ContactId"] = format!("{:08x}-0000-4000-8000-{:012x}", n >> 16, n).into();
    v.to_string().into_bytes()
}

fn decode_classify(c: &mut Criterion) {
    let config = ClassifyConfig::default();
    let mut group = c.benchmark_group("decode_classify");
    for (name, json) in [("dropped", dropped_ctr()), ("handled", HANDLED.to_owned())] {
        let bytes = json.into_bytes();
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| {
            b.iter(|| {
                let ctr = Ctr::from_bytes(black_box(bytes.clone())).unwrap();
                black_box(classify(&ctr, &config))
            })
        });
    }
    group.finish();
}

fn plan_batch(c: &mut Criterion) {
    let pipeline = Settings::default();
    let dropped = dropped_ctr();
    let records: Vec<_> = (0..100u64)
        .map(|n| {
            let data = if n % 3 == 0 {
                with_id(HANDLED, n)
            } else {
                with_id(&dropped, n)
            };
            record_for(&data, &n.to_string(), "shardId-0")
        })
        .collect();
    let event = serde_json::to_string(&KinesisEnvelope { records }).unwrap();
    let mut group = c.benchmark_group("plan");
    group.throughput(Throughput::Elements(100));
    group.bench_function("kinesis_event_100_records", |b| {
        b.iter(|| {
            let envelope: KinesisEnvelope = serde_json::from_str(black_box(&event)).unwrap();
            black_box(plan::plan(&envelope.inputs(), &pipeline))
        })
    });
    group.finish();
}

/// The dry-run sinks and settings, as `ctr-cases replay` builds them from an empty environment.
struct DryRun {
    config: DryRunConfig,
    requests: RequestRecorder,
    letters: LetterRecorder,
    runtime: Runtime,
}

impl DryRun {
    fn new() -> Self {
        let config = DryRunConfig::from_lookup(|_| None).expect("the defaults are valid");
        let requests = RequestRecorder::new(
            &config.api_version,
            &config.pipeline.mapping.external_id_field,
            &config.pipeline.mapping.version_field,
            config.batch_size,
        );
        DryRun {
            config,
            requests,
            letters: LetterRecorder::default(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime"),
        }
    }

    /// The whole event path: JSON text in, the report and the bodies that would be sent out.
    fn event_path(&self, event: &str) -> (BatchReport, Vec<String>) {
        let envelope: KinesisEnvelope = serde_json::from_str(event).expect("a Kinesis event");
        let inputs = envelope.inputs();
        let report = self.runtime.block_on(pipeline::run(
            &inputs,
            &self.config.pipeline,
            &self.requests,
            &self.letters,
            &NoCallbacks,
            Deadline::unbounded(),
        ));
        (report, self.bodies())
    }

    /// Execute + report for a plan already made, then the bodies that would be sent.
    fn execute(&self, plan: &Plan, inputs: &[InputRecord<'_>]) -> (BatchReport, Vec<String>) {
        let report = self.runtime.block_on(pipeline::run_plan(
            plan,
            inputs,
            &self.requests,
            &self.letters,
            &NoCallbacks,
            Deadline::unbounded(),
        ));
        (report, self.bodies())
    }

    /// What the real sinks would send, as JSON text: each Case request body, each SQS message.
    fn bodies(&self) -> Vec<String> {
        let requests = self.requests.take();
        let letters = self.letters.take();
        // The recorder keeps each body as the JSON text it would send.
        requests
            .into_iter()
            .map(|r| r.body)
            .chain(letters.iter().map(|l| l.body()))
            .collect()
    }
}

/// Panics unless `report` made the decisions `mix` calls for.
fn check_decisions(report: &BatchReport, bodies: &[String], mix: workload::Mix) {
    let summary = &report.summary;
    assert_eq!(summary.records as usize, mix.records(), "{summary:?}");
    assert_eq!(
        summary.count(Action::UpsertCase) as usize,
        mix.dropped,
        "{summary:?}"
    );
    assert_eq!(
        summary.count(Action::Skipped) as usize,
        mix.handled,
        "{summary:?}"
    );
    assert_eq!(
        summary.count(Action::DeadLetter) as usize,
        mix.poison,
        "{summary:?}"
    );
    let case_bodies = bodies.len() - mix.poison;
    assert!(case_bodies >= 1, "the Cases go in at least one request");
    let cases: usize = bodies[..case_bodies]
        .iter()
        .map(|b| {
            let body: serde_json::Value = serde_json::from_str(b).unwrap();
            body["records"].as_array().map_or(0, Vec::len)
        })
        .sum();
    assert_eq!(cases, mix.dropped, "every dropped call's Case is in a body");
}

fn event_path(c: &mut Criterion) {
    let (event, mix) = workload::event_json(0, BATCH, workload::mixed_kind);
    let dry_run = DryRun::new();
    let (report, bodies) = dry_run.event_path(&event);
    check_decisions(&report, &bodies, mix);

    let mut group = c.benchmark_group("event_path");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("mixed_100_records", |b| {
        b.iter(|| black_box(dry_run.event_path(black_box(&event))))
    });
    group.finish();
}

fn event_stages(c: &mut Criterion) {
    let (event, mix) = workload::event_json(0, BATCH, workload::mixed_kind);
    let dry_run = DryRun::new();
    let settings = &dry_run.config.pipeline;
    let envelope: KinesisEnvelope = serde_json::from_str(&event).unwrap();
    let inputs = envelope.inputs();
    let planned = plan::plan(&inputs, settings);
    let (report, bodies) = dry_run.execute(&planned, &inputs);
    check_decisions(&report, &bodies, mix);

    let mut group = c.benchmark_group("event_stages");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("parse_envelope", |b| {
        b.iter(|| black_box(serde_json::from_str::<KinesisEnvelope>(black_box(&event)).unwrap()))
    });
    group.bench_function("plan", |b| {
        b.iter(|| black_box(plan::plan(black_box(&inputs), settings)))
    });
    group.bench_function("execute_and_serialize", |b| {
        b.iter(|| black_box(dry_run.execute(black_box(&planned), &inputs)))
    });
    group.finish();
}

/// Where criterion keeps its results: `$CARGO_TARGET_DIR/criterion`, else `target/criterion`
/// in this package (criterion's own default, without the `cargo metadata` call).
fn criterion_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("criterion")
}

/// Criterion's median estimate (ns per iteration) of `group/function`, if this run measured it
/// (criterion's test mode and filtered-out benchmarks write nothing).
fn median_ns(dir: &Path, id: &str, since: SystemTime) -> Option<f64> {
    let path = dir.join(id).join("new/estimates.json");
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    if modified < since {
        return None;
    }
    let estimates: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

/// One `name: value` line per figure measured in this run.
/// Re-runs this bench process under the malloc settings template.yaml deploys the Lambdas with
/// ([`workload::deployed_glibc_tunables`]; glibc reads them only at process start), unless
/// `GLIBC_TUNABLES` is set already: `GLIBC_TUNABLES= cargo bench …` measures glibc's defaults.
fn run_with_deployed_malloc_settings() {
    use std::os::unix::process::CommandExt as _;
    if std::env::var_os("GLIBC_TUNABLES").is_some() {
        return;
    }
    let error = std::process::Command::new(std::env::current_exe().expect("the bench's path"))
        .args(std::env::args_os().skip(1))
        .env("GLIBC_TUNABLES", workload::deployed_glibc_tunables())
        .exec();
    panic!("could not re-run the bench under GLIBC_TUNABLES: {error}");
}

fn print_figures(dir: &Path, since: SystemTime) {
    println!(
        "glibc_tunables: {:?} (template.yaml deploys {:?})",
        std::env::var("GLIBC_TUNABLES").unwrap_or_default(),
        workload::deployed_glibc_tunables()
    );
    let per_s = |ns: f64, records: usize| records as f64 / (ns * 1e-9);
    if let Some(ns) = median_ns(dir, "event_path/mixed_100_records", since) {
        let rate = per_s(ns, BATCH);
        println!(
            "event_path_mixed_records_per_s: {rate:.0} ({:.3} ms per {BATCH}-record event; \
             target >= {TARGET_RECORDS_PER_S:.0}: {})",
            ns / 1e6,
            if rate >= TARGET_RECORDS_PER_S {
                "met"
            } else {
                "missed"
            }
        );
    }
    for stage in ["parse_envelope", "plan", "execute_and_serialize"] {
        if let Some(ns) = median_ns(dir, &format!("event_stages/{stage}"), since) {
            println!(
                "event_stage_{stage}_us_per_100: {:.1} ({:.0} records/s)",
                ns / 1e3,
                per_s(ns, BATCH)
            );
        }
    }
    if let Some(ns) = median_ns(dir, "plan/kinesis_event_100_records", since) {
        println!("plan_records_per_s: {:.0}", per_s(ns, 100));
    }
    for kind in ["dropped", "handled"] {
        if let Some(ns) = median_ns(dir, &format!("decode_classify/{kind}"), since) {
            println!("decode_classify_{kind}_records_per_s: {:.0}", per_s(ns, 1));
        }
    }
}

fn main() {
    run_with_deployed_malloc_settings();
    let since = SystemTime::now();
    let dir = criterion_dir();
    let mut criterion = Criterion::default()
        .output_directory(&dir)
        .configure_from_args();
    event_path(&mut criterion);
    event_stages(&mut criterion);
    plan_batch(&mut criterion);
    decode_classify(&mut criterion);
    criterion.final_summary();
    print_figures(&dir, since);
}
