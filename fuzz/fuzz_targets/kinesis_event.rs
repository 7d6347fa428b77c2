//! Arbitrary bytes as a whole Lambda event: parsing the envelope may fail, but planning any
//! envelope that parses must never panic.
#![no_main]

use ctr_cases::plan::{self, Settings};
use ctr_cases::event::KinesisEnvelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = serde_json::from_slice::<KinesisEnvelope>(data) {
        let planned = plan::plan(&envelope.inputs(), &Settings::default());
        assert_eq!(planned.len(), envelope.records.len());
    }
});
