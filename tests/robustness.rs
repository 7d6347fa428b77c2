//! Property tests ("fuzzing" on stable) for decode + classify + map over arbitrary bytes and
//! arbitrary JSON, and input-size hardening. No input may panic.

mod support;

use std::time::Duration;

use ctr_cases::ctr::{ContactId, Ctr};
use ctr_cases::event::KinesisEnvelope;
use ctr_cases::plan::{self, Settings};
use ctr_cases::retry::Deadline;
use ctr_cases::stream::process_batch;
use proptest::prelude::*;
use serde_json::{Value, json};
use support::fake_salesforce;
use support::fixtures::*;

/// Arbitrary JSON values, biased towards CTR-shaped objects.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("ContactId".to_owned()),
                    Just("Agent".to_owned()),
                    Just("Queue".to_owned()),
                    Just("Attributes".to_owned()),
                    Just("Channel".to_owned()),
                    Just("CustomerEndpoint".to_owned()),
                    Just("LastUpdateTimestamp".to_owned()),
                    Just("NextContactId".to_owned()),
                    ".{0,8}",
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let envelope = kinesis_event(&[bytes], 1);
        let planned = plan::plan(&envelope.inputs(), &Settings::default());
        prop_assert_eq!(planned.records.len(), 1);
    }

    #[test]
    fn arbitrary_json_never_panics_and_valid_ids_always_decode(
        mut value in arb_json(),
        with_id in any::<bool>(),
    ) {
        if with_id && let Value::Object(map) = &mut value {
            map.insert("ContactId".into(), json!("5ca32fbd-8f92-46af-92a5-6b0f970f0efe"));
        }
        let bytes = value.to_string().into_bytes();
        let envelope = kinesis_event(&[bytes], 1);
        let planned = plan::plan(&envelope.inputs(), &Settings::default());
        if with_id && value.is_object() {
            prop_assert!(planned.records[0].contact_id.is_some(), "valid id must decode: {}", value);
        }
    }

    #[test]
    fn arbitrary_event_envelopes_never_panic(value in arb_json()) {
        let wrapped = json!({"Records": [{"kinesis": {"sequenceNumber": "1", "data": value}}]});
        if let Ok(envelope) = serde_json::from_value::<KinesisEnvelope>(wrapped) {
            let _ = plan::plan(&envelope.inputs(), &Settings::default());
        }
    }

    #[test]
    fn contact_id_accepts_only_uuids(text in ".{0,40}") {
        let accepted = ContactId::parse(&text).is_ok();
        prop_assert_eq!(accepted, text.len() == 36 && uuid::Uuid::try_parse(&text).is_ok());
        if accepted {
            prop_assert!(text.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
        }
    }
}

#[test]
fn one_mebibyte_record_is_mapped_within_salesforce_limits() {
    let note = "x".repeat(1024 * 1024);
    let mut v: Value = serde_json::from_str(&dropped_ctr()).unwrap();
    v["Attributes"]["transcript"] = note.into();
    let ctr = Ctr::from_json(v.to_string()).unwrap();
    let envelope = kinesis_event(&[ctr.raw_json().as_bytes().to_vec()], 1);
    let planned = plan::plan(&envelope.inputs(), &Settings::default());
    let Some(case) = planned.case_of(0) else {
        panic!("a dropped call gets a Case")
    };
    let description = case.fields["Description"].as_str().unwrap();
    assert_eq!(description.encode_utf16().count(), 32_000);
}

#[tokio::test]
async fn ten_thousand_record_batch_is_processed_in_collections() {
    let fake = fake_salesforce::start().await;
    let state = app_state(&fake_env(&fake));
    let datas = dropped_datas(0..10_000);
    let outcome = process_batch(
        &state,
        &kinesis_event(&datas, 1),
        Deadline::after(Duration::from_secs(120)),
    )
    .await;
    assert!(outcome.response.batch_item_failures.is_empty());
    assert_eq!(fake.org.case_count(), 10_000);
    assert_eq!(outcome.summary.salesforce_api_calls, 50);
}
