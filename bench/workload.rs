//! Workloads shared by the Rust benches (`benches/pipeline.rs`, `benches/end_to_end.rs`):
//! Kinesis events shaped like the ones Lambda delivers, built from the recorded CTR samples in
//! `tests/fixtures/ctr`, and sized to a byte budget when a figure is about a payload size.
//!
//! Included with `#[path = "../bench/workload.rs"] mod workload;` next to the test fixtures
//! (`mod fixtures;` and `mod fake_salesforce;`, which it uses through `super::fixtures`).
#![allow(dead_code)]

use base64::Engine as _;
use serde_json::{Value, json};

use super::fixtures;

/// Lambda's synchronous invocation payload limit (6 MB = 6,291,456 bytes, "Lambda quotas" in
/// the AWS Lambda developer guide); an event source mapping cannot hand a function more.
pub const LAMBDA_PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;

/// The `GLIBC_TUNABLES` value template.yaml deploys the Lambda functions with (their malloc
/// settings), read from the template so the benches measure what is deployed.
///
/// # Panics
/// When template.yaml no longer sets it (then update BENCHMARKS.md and this function).
pub fn deployed_glibc_tunables() -> &'static str {
    include_str!("../template.yaml")
        .lines()
        .find_map(|line| line.trim().strip_prefix("GLIBC_TUNABLES:"))
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .expect("template.yaml sets GLIBC_TUNABLES for the functions")
}

/// The recorded agent-handled CTRs (one CTR each) the mixed batch cycles through.
const HANDLED_SAMPLES: [&str; 4] = [
    "voice-agent-handled-external-transfer-endpoint-2022.json",
    "voice-agent-handled-2022-attribute-keys-differ-only-by-case.json",
    "voice-agent-handled-2018-minimal-embedded-in-voicebase-response.json",
    "partial-handwritten-voice-transfer-telecom-problem-numeric-attribute.json",
];

/// What a record of a workload is, i.e. what the pipeline must decide for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A call that never reached a queue or an agent: one Case.
    Dropped,
    /// A call an agent handled: no Case.
    Handled,
    /// Record data that is not a CTR: one dead letter.
    Poison,
}

/// Record counts per [`Kind`] of a workload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mix {
    /// Dropped calls.
    pub dropped: usize,
    /// Agent-handled calls.
    pub handled: usize,
    /// Poison records.
    pub poison: usize,
}

impl Mix {
    /// All records.
    pub fn records(&self) -> usize {
        self.dropped + self.handled + self.poison
    }

    fn add(&mut self, kind: Kind) {
        match kind {
            Kind::Dropped => self.dropped += 1,
            Kind::Handled => self.handled += 1,
            Kind::Poison => self.poison += 1,
        }
    }
}

/// The kind of record `i` of a mixed batch: 2 poison records in every 100 (positions 25 and
/// 75), and of the rest every third is agent-handled, the others dropped (65 dropped, 33
/// handled, 2 poison per 100).
pub fn mixed_kind(i: usize) -> Kind {
    if i % 50 == 25 {
        Kind::Poison
    } else if i.is_multiple_of(3) {
        Kind::Handled
    } else {
        Kind::Dropped
    }
}

/// Every record a dropped call.
pub fn dropped_kind(_i: usize) -> Kind {
    Kind::Dropped
}

/// 30% dropped calls (3 in every 10), the rest agent-handled: a contact center's day.
pub fn thirty_percent_dropped(i: usize) -> Kind {
    if i % 10 < 3 {
        Kind::Dropped
    } else {
        Kind::Handled
    }
}

/// `data` (a CTR's JSON text) grown to a real-sized CTR: 20 to 40 contact attributes whose values
/// bring it to 1.5 to 4 KB of JSON, varying with `i` (what flows that store an IVR's answers
/// write).
pub fn real_sized(data: &[u8], i: usize) -> Vec<u8> {
    let mut ctr: Value = serde_json::from_slice(data).expect("the samples are JSON");
    let attributes = 20 + (i * 7) % 21;
    let target = 1_500 + (i * 997) % 2_500;
    let base = ctr.to_string().len();
    let per_value = target.saturating_sub(base + attributes * 24) / attributes;
    let map = ctr
        .as_object_mut()
        .expect("a CTR is an object")
        .entry("Attributes")
        .or_insert_with(|| json!({}));
    if let Some(map) = map.as_object_mut() {
        for a in 0..attributes {
            let value: String = "ivr answer "
                .chars()
                .cycle()
                .take(per_value.max(4))
                .collect();
            map.insert(format!("ivrStep{a:02}Answer"), Value::String(value));
        }
    }
    ctr.to_string().into_bytes()
}

/// The Kinesis `data` value (base64 text, as Kinesis delivers it) of record `i`, contact `n`.
///
/// Dropped calls are the recorded 2024 IVR-only CTR with contact `n`'s ContactId and caller;
/// handled calls cycle through the recorded agent-handled CTRs; poison records cycle through
/// text that is not JSON, a JSON array, and data that is not base64 at all.
pub fn record_data(kind: Kind, i: usize, n: u64) -> String {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    match kind {
        Kind::Dropped => b64(&fixtures::dropped_data(n)),
        Kind::Handled => {
            let name = HANDLED_SAMPLES[(i / 3) % HANDLED_SAMPLES.len()];
            let mut ctr: Value = serde_json::from_str(&fixtures::sample_ctrs(name).remove(0))
                .expect("the samples are JSON");
            ctr["ContactId"] = fixtures::contact_uuid(n).into();
            if let Some(endpoint) = ctr
                .get_mut("CustomerEndpoint")
                .and_then(Value::as_object_mut)
            {
                endpoint.insert("Address".into(), fixtures::caller_number(n).into());
            }
            b64(ctr.to_string().as_bytes())
        }
        Kind::Poison => match i % 3 {
            0 => b64(b"Contact trace record export failed"),
            1 => b64(b"[\"not\", \"a\", \"CTR object\"]"),
            _ => "this is not base64!".to_owned(),
        },
    }
}

/// One record of a Kinesis event, with every field Lambda sends ("Using Lambda with Kinesis",
/// sample event), for contact `n` at sequence number `seq`.
pub fn record_json(data: String, n: u64, seq: u64) -> Value {
    let sequence = format!("4965{seq:052}");
    json!({
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": fixtures::contact_uuid(n),
            "sequenceNumber": sequence,
            "data": data,
            "approximateArrivalTimestamp": 1_732_612_801.0 + seq as f64 / 1000.0
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": format!("shardId-000000000000:{sequence}"),
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/ctr-cases",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/connect-ctr"
    })
}

/// A Kinesis event (JSON text) of `count` records whose kinds `kind_of(i)` gives, for contacts
/// (and sequence numbers) `first`, `first + 1`, ….
pub fn event_json(first: u64, count: usize, kind_of: fn(usize) -> Kind) -> (String, Mix) {
    let mut mix = Mix::default();
    let records: Vec<String> = (0..count)
        .map(|i| {
            let kind = kind_of(i);
            mix.add(kind);
            let n = first + i as u64;
            record_json(record_data(kind, i, n), n, n).to_string()
        })
        .collect();
    (wrap(&records), mix)
}

/// The largest Kinesis event (JSON text) of records `kind_of(0)`, `kind_of(1)`, … whose size is
/// at most `limit` bytes, for contacts `first`, `first + 1`, ….
pub fn event_json_within(first: u64, limit: usize, kind_of: fn(usize) -> Kind) -> (String, Mix) {
    const WRAPPER: usize = r#"{"Records":[]}"#.len();
    let mut mix = Mix::default();
    let mut records = Vec::new();
    let mut size = WRAPPER;
    loop {
        let i = records.len();
        let kind = kind_of(i);
        let n = first + i as u64;
        let record = record_json(record_data(kind, i, n), n, n).to_string();
        let added = record.len() + usize::from(i > 0);
        if size + added > limit {
            break;
        }
        size += added;
        mix.add(kind);
        records.push(record);
    }
    let event = wrap(&records);
    assert_eq!(event.len(), size, "the event is exactly the bytes counted");
    (event, mix)
}

fn wrap(records: &[String]) -> String {
    format!(r#"{{"Records":[{}]}}"#, records.join(","))
}
