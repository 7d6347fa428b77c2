//! Criterion benchmarks of the pure hot path: decode + classify per record, and planning a
//! 100-record batch (decode, dedupe, classify, map).
//!
//! `cargo bench --bench pipeline -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ctr_cases::classify::{ClassifyConfig, classify};
use ctr_cases::ctr::Ctr;
use ctr_cases::event::{KinesisEnvelope, record_for};
use ctr_cases::plan::{self, Settings};

const DROPPED: &str = include_str!(
    "../tests/fixtures/ctr/kinesis-event-inline-object-voice-ivr-only-contact-flow-disconnect-2024.json"
);
const HANDLED: &str =
    include_str!("../tests/fixtures/ctr/voice-agent-handled-external-transfer-endpoint-2022.json");

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

criterion_group!(benches, decode_classify, plan_batch);
criterion_main!(benches);
