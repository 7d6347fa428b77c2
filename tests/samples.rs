//! Every recorded CTR sample decodes, round-trips, and gets the class SOURCES.md expects.

mod support;

use ctr_cases::classify::{ClassifyConfig, classify};
use ctr_cases::ctr::Ctr;
use ctr_cases::event::KinesisEnvelope;
use support::fixtures::{SAMPLES, read_sample, sample_ctrs};

#[test]
fn every_sample_decodes_with_its_expected_class() {
    for (name, expected) in SAMPLES {
        let ctrs = sample_ctrs(name);
        assert!(!ctrs.is_empty(), "{name} holds no CTR");
        for json in ctrs {
            let ctr = Ctr::from_json(json).unwrap_or_else(|e| panic!("{name}: {e}"));
            let outcome = classify(&ctr, &ClassifyConfig::default());
            assert_eq!(outcome.name(), *expected, "{name}");
        }
    }
}

#[test]
fn every_sample_keeps_its_untyped_fields_reachable() {
    for (name, _) in SAMPLES {
        for json in sample_ctrs(name) {
            let original: serde_json::Value = serde_json::from_str(&json).unwrap();
            let ctr = Ctr::from_json(json).unwrap();
            // The raw record is kept verbatim: parsing it again gives the same document.
            let kept: serde_json::Value = serde_json::from_str(ctr.raw_json()).unwrap();
            assert_eq!(kept, original, "{name}");
            for key in original.as_object().unwrap().keys() {
                if !original[key].is_null() && !original[key].is_object() {
                    assert!(ctr.path(key).is_some(), "{name}: {key} not reachable");
                }
            }
        }
    }
}

#[test]
fn sources_md_is_kept_with_the_fixtures() {
    let sources = std::fs::read_to_string(support::fixtures::fixture_path("ctr/SOURCES.md"))
        .expect("tests/fixtures/ctr/SOURCES.md");
    for (name, _) in SAMPLES {
        assert!(sources.contains(name), "{name} missing from SOURCES.md");
    }
}

#[test]
fn numeric_attribute_is_rendered_as_text() {
    let json =
        read_sample("partial-handwritten-voice-transfer-telecom-problem-numeric-attribute.json");
    let ctr = Ctr::from_json(json).unwrap();
    assert_eq!(ctr.attributes["sfdc-UserInputNum__c"], "10");
    assert!(ctr.channel.is_none());
    assert_eq!(ctr.disconnect_reason.as_deref(), Some("TELECOM_PROBLEM"));
}

#[test]
fn attribute_keys_differing_only_by_case_are_both_kept() {
    let json = read_sample("voice-agent-handled-2022-attribute-keys-differ-only-by-case.json");
    let ctr = Ctr::from_json(json).unwrap();
    assert_eq!(ctr.attributes["GreetingPlayed"], "false");
    assert_eq!(ctr.attributes["greetingPlayed"], "false");
}

#[test]
fn minimal_2018_record_without_link_keys_decodes() {
    let json = read_sample("voice-agent-handled-2018-minimal-embedded-in-voicebase-response.json");
    let ctr = Ctr::from_json(json).unwrap();
    assert!(ctr.next_contact_id.is_none() && ctr.previous_contact_id.is_none());
    assert!(ctr.disconnect_reason.is_none());
    assert!(ctr.attributes.is_empty());
}

#[test]
fn kinesis_sample_with_inline_object_data_decodes_through_the_envelope() {
    let text =
        read_sample("kinesis-event-inline-object-voice-ivr-only-contact-flow-disconnect-2024.json");
    let envelope: KinesisEnvelope = serde_json::from_str(&text).unwrap();
    let ctr = envelope.records[0].decode_ctr().unwrap();
    assert_eq!(
        ctr.contact_id.as_str(),
        "5ca32fbd-8f92-46af-92a5-6b0f970f0efe"
    );
    assert_eq!(envelope.records[0].shard_id(), Some("shardId-000000000000"));
}

#[test]
fn bundled_events_decode() {
    let dir = support::fixtures::event_path("");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let envelope: KinesisEnvelope =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert!(!envelope.records.is_empty(), "{}", path.display());
            seen += 1;
        }
    }
    assert_eq!(seen, 5);
}
