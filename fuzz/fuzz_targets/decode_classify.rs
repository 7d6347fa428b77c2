//! Arbitrary bytes as one record's data: decode, dedupe, classify and map must never panic.
#![no_main]

use ctr_cases::plan::{self, Settings};
use ctr_cases::event::{KinesisEnvelope, record_for};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let envelope = KinesisEnvelope {
        records: vec![record_for(data, "1", "shardId-0"), record_for(data, "2", "shardId-0")],
    };
    let planned = plan::plan(&envelope.inputs(), &Settings::default());
    assert_eq!(planned.len(), 2);
});
