//! The Kinesis event envelope the Lambda receives, decoded leniently.
//!
//! Pure: no I/O. We do not use `aws_lambda_events::kinesis::KinesisEvent` for input because its
//! `data` field is a typed base64 blob: one record whose data is not valid base64 fails the
//! deserialization of the whole event before the handler runs, which would block the shard.
//! Here every record's data is decoded on its own, and a bad one becomes a poison record.
//! (The response type is still `aws_lambda_events::streams::KinesisEventResponse`.)

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::ctr::{Ctr, DecodeError};
use crate::input::InputRecord;

/// A Kinesis stream event as Lambda delivers it (`{"Records":[…]}`).
#[derive(Debug, Deserialize, Serialize, Default)]
pub struct KinesisEnvelope {
    /// The batch's records, in stream order.
    #[serde(rename = "Records", default)]
    pub records: Vec<KinesisEnvelopeRecord>,
}

/// One record of a Kinesis event.
#[derive(Debug, Deserialize, Serialize, Default)]
pub struct KinesisEnvelopeRecord {
    /// `shardId-…:sequence`.
    #[serde(rename = "eventID", default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The stream's ARN.
    #[serde(
        rename = "eventSourceARN",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub event_source_arn: Option<String>,
    /// The Kinesis part of the record.
    #[serde(default)]
    pub kinesis: KinesisPayload,
}

/// The `kinesis` object of a record.
#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct KinesisPayload {
    /// The record's sequence number: what `batchItemFailures` reports.
    #[serde(default)]
    pub sequence_number: String,
    /// The partition key (Connect uses the ContactId).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    /// Base64 text as Kinesis sends it; an inline JSON object is accepted too (some published
    /// sample events use one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
    /// Arrival time in epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approximate_arrival_timestamp: Option<f64>,
}

impl KinesisEnvelope {
    /// The records as plan inputs (borrowing from the event).
    pub fn inputs(&self) -> Vec<InputRecord<'_>> {
        self.records
            .iter()
            .map(KinesisEnvelopeRecord::input)
            .collect()
    }
}

impl KinesisEnvelopeRecord {
    /// This record as a plan input (borrowing from it).
    pub fn input(&self) -> InputRecord<'_> {
        InputRecord {
            sequence_number: &self.kinesis.sequence_number,
            shard_id: self.shard_id(),
            event_source_arn: self.event_source_arn.as_deref(),
            partition_key: self.kinesis.partition_key.as_deref(),
            arrival: self.kinesis.approximate_arrival_timestamp,
            data: self.kinesis.data.as_deref(),
        }
    }

    /// The shard id, taken from `eventID` (`shardId-000000000000:4954…`).
    pub fn shard_id(&self) -> Option<&str> {
        self.event_id.as_deref()?.split_once(':').map(|(s, _)| s)
    }

    /// The record's data bytes: base64-decoded, or the inline JSON object's text.
    ///
    /// # Errors
    /// As [`data_bytes`].
    pub fn data_bytes(&self) -> Result<Vec<u8>, DecodeError> {
        data_bytes(self.kinesis.data.as_deref())
    }

    /// Decodes the record's data into a CTR.
    ///
    /// # Errors
    /// Any [`DecodeError`].
    pub fn decode_ctr(&self) -> Result<Ctr, DecodeError> {
        Ctr::from_bytes(self.data_bytes()?)
    }
}

/// The bytes of a Kinesis `data` value as delivered: base64-decoded when it is a JSON string,
/// the text itself when it is an inline JSON object.
///
/// # Errors
/// [`DecodeError::Empty`] without data, [`DecodeError::Base64`] for invalid base64 or another
/// JSON shape.
pub fn data_bytes(raw: Option<&RawValue>) -> Result<Vec<u8>, DecodeError> {
    let raw = raw.ok_or(DecodeError::Empty)?.get();
    if let Some(quoted) = raw.strip_prefix('"') {
        // Base64 text needs no JSON escapes, so it is normally the literal's inside, as is.
        let text: std::borrow::Cow<'_, str> = match quoted.strip_suffix('"') {
            Some(inner) if !inner.contains('\\') => inner.into(),
            _ => serde_json::from_str::<String>(raw)
                .map_err(|_| DecodeError::Base64)?
                .into(),
        };
        // base64-simd (runtime-detected AVX2/SSE/NEON) is several times faster than the base64
        // crate here, and decoding is a large part of each record's cost.
        base64_simd::STANDARD
            .decode_to_vec(text.trim().as_bytes())
            .map_err(|_| DecodeError::Base64)
    } else if raw.starts_with('{') {
        Ok(raw.as_bytes().to_vec())
    } else if raw == "null" {
        Err(DecodeError::Empty)
    } else {
        Err(DecodeError::Base64)
    }
}

/// Builds a Kinesis event record carrying `data` base64-encoded, as Kinesis would.
pub fn record_for(data: &[u8], sequence_number: &str, shard_id: &str) -> KinesisEnvelopeRecord {
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let data = RawValue::from_string(serde_json::Value::String(encoded).to_string())
        .expect("a JSON string literal is valid JSON");
    KinesisEnvelopeRecord {
        event_id: Some(format!("{shard_id}:{sequence_number}")),
        event_source_arn: None,
        kinesis: KinesisPayload {
            sequence_number: sequence_number.to_owned(),
            partition_key: None,
            data: Some(data),
            approximate_arrival_timestamp: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(data_json: &str) -> KinesisEnvelope {
        serde_json::from_str(&format!(
            r#"{{"Records":[{{"eventID":"shardId-000000000001:49","kinesis":{{"sequenceNumber":"49","data":{data_json}}}}}]}}"#
        ))
        .unwrap()
    }

    proptest::proptest! {
        /// The SIMD decoder accepts and yields exactly what the `base64` crate's standard
        /// engine does, for encoded bytes and for arbitrary text over the base64 alphabet.
        #[test]
        fn simd_base64_agrees_with_the_base64_crate(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            text in "[A-Za-z0-9+/=]{0,40}",
        ) {
            use base64::Engine as _;
            let standard = base64::engine::general_purpose::STANDARD;
            let encoded = serde_json::value::to_raw_value(&standard.encode(&bytes)).unwrap();
            proptest::prop_assert_eq!(data_bytes(Some(&encoded)).unwrap(), bytes);
            let raw = serde_json::value::to_raw_value(&text).unwrap();
            proptest::prop_assert_eq!(
                data_bytes(Some(&raw)).ok(),
                standard.decode(text.as_bytes()).ok()
            );
        }
    }

    #[test]
    fn base64_data_decodes() {
        let env = envelope(r#""eyJhIjoxfQ==""#);
        assert_eq!(env.records[0].data_bytes().unwrap(), br#"{"a":1}"#);
        assert_eq!(env.records[0].shard_id(), Some("shardId-000000000001"));
    }

    /// JSON may escape base64's `/` as `\/`: such a string is unescaped before decoding.
    #[test]
    fn base64_data_with_json_escapes_decodes() {
        let escaped = envelope(r#""\/w==""#);
        assert_eq!(escaped.records[0].data_bytes().unwrap(), [0xff]);
        let plain = envelope(r#""/w==""#);
        assert_eq!(plain.records[0].data_bytes().unwrap(), [0xff]);
    }

    #[test]
    fn inline_object_data_is_accepted() {
        let env = envelope(r#"{"ContactId":"6fe40d2a-1a89-4d73-bfcf-5d9c33894f47"}"#);
        assert!(env.records[0].decode_ctr().is_ok());
    }

    #[test]
    fn bad_base64_is_a_record_error_not_an_event_error() {
        let env = envelope(r#""not base64 !!""#);
        assert_eq!(
            env.records[0].data_bytes().unwrap_err(),
            DecodeError::Base64
        );
        assert_eq!(
            envelope("12").records[0].data_bytes().unwrap_err(),
            DecodeError::Base64
        );
        assert_eq!(
            envelope("null").records[0].data_bytes().unwrap_err(),
            DecodeError::Empty
        );
    }

    #[test]
    fn record_for_round_trips() {
        let rec = record_for(b"{\"x\":\"\\u00e9\"}", "7", "shardId-1");
        let json = serde_json::to_string(&KinesisEnvelope { records: vec![rec] }).unwrap();
        let back: KinesisEnvelope = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back.records[0].data_bytes().unwrap(),
            b"{\"x\":\"\\u00e9\"}"
        );
        assert_eq!(back.records[0].kinesis.sequence_number, "7");
    }
}
