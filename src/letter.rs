//! Dead letters: the message format for records that cannot become a Case now (poison records,
//! permanent Salesforce rejections, records parked during an outage), with the original data so
//! they can be inspected and redriven.
//!
//! Pure: building, encoding and decoding letters. Sending them is `queue`'s job.

use serde::{Deserialize, Serialize};

/// SQS's message size limit (256 KiB); the record data is cut to fit under it.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Room left in a message for the data after the other fields.
const DATA_BUDGET: usize = MAX_MESSAGE_BYTES - 8 * 1024;

/// Why a record became a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum LetterKind {
    /// Not a CTR (bad base64, not JSON, no valid ContactId).
    PoisonRecord,
    /// Salesforce rejected the Case for good (validation, field errors).
    SalesforceRejected,
    /// Held during a Salesforce outage and about to leave the stream's retention: written with
    /// its full data so it is not lost, to be redriven (`ctr-cases redrive`) after the outage.
    Parked,
    /// The contact's Case exists but the integration user may not read or edit it (Private
    /// Case sharing): redrive it once the user has access (see docs/deploy.md, "Sharing").
    CaseNotAccessible,
}

impl LetterKind {
    /// The snake_case name (the message's `kind` and its SQS `kind` attribute).
    pub fn name(self) -> &'static str {
        match self {
            LetterKind::PoisonRecord => "poison_record",
            LetterKind::SalesforceRejected => "salesforce_rejected",
            LetterKind::Parked => "parked",
            LetterKind::CaseNotAccessible => "case_not_accessible",
        }
    }

    /// Every kind, in declaration order.
    pub const ALL: [LetterKind; 4] = [
        LetterKind::PoisonRecord,
        LetterKind::SalesforceRejected,
        LetterKind::Parked,
        LetterKind::CaseNotAccessible,
    ];

    /// Parses a name as written by [`LetterKind::name`].
    pub fn parse(name: &str) -> Option<Self> {
        LetterKind::ALL
            .into_iter()
            .find(|k| k.name() == name.trim())
    }
}

impl PartialEq<&str> for LetterKind {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl std::fmt::Display for LetterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The error that made a record a dead letter.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeadLetterError {
    /// `invalid_base64`, `missing_contact_id`, a Salesforce `errorCode`, …
    pub code: String,
    /// Human-readable reason (Salesforce's message for Salesforce errors).
    pub message: String,
    /// HTTP status, for Salesforce errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Fields the error is about.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

impl From<&crate::ctr::DecodeError> for DeadLetterError {
    fn from(e: &crate::ctr::DecodeError) -> Self {
        DeadLetterError {
            code: e.code().into(),
            message: e.to_string(),
            status: None,
            fields: vec![],
        }
    }
}

/// Where a record came from: what a letter needs to point back at it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Origin {
    /// The Kinesis sequence number (or the position in a file).
    pub sequence_number: String,
    /// The shard (`shardId-…`), when known.
    pub shard_id: Option<String>,
    /// The stream ARN, when known.
    pub event_source_arn: Option<String>,
    /// The partition key, when known.
    pub partition_key: Option<String>,
    /// Kinesis arrival time (epoch seconds).
    pub approximate_arrival_timestamp: Option<f64>,
}

/// One dead-letter message (the SQS message body, as JSON).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeadLetter {
    /// Why the record is here.
    pub kind: LetterKind,
    /// What went wrong.
    pub error: DeadLetterError,
    /// The Kinesis sequence number.
    pub sequence_number: String,
    /// The shard (`shardId-…`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_id: Option<String>,
    /// The stream ARN, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_source_arn: Option<String>,
    /// The partition key, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    /// The ContactId, when the record had a valid one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    /// Kinesis arrival time (epoch seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approximate_arrival_timestamp: Option<f64>,
    /// The record's `data` exactly as delivered (base64 text, or inline JSON text).
    pub data: String,
    /// True when `data` was cut to fit SQS's size limit; re-read the record from the stream by
    /// shard and sequence number.
    #[serde(default)]
    pub data_truncated: bool,
}

impl DeadLetter {
    /// A letter of `kind` for the record from `origin` whose data was `data` as delivered.
    pub fn new(
        kind: LetterKind,
        error: DeadLetterError,
        origin: &Origin,
        contact_id: Option<String>,
        data: &str,
    ) -> Self {
        DeadLetter {
            kind,
            error,
            sequence_number: origin.sequence_number.clone(),
            shard_id: origin.shard_id.clone(),
            event_source_arn: origin.event_source_arn.clone(),
            partition_key: origin.partition_key.clone(),
            contact_id,
            approximate_arrival_timestamp: origin.approximate_arrival_timestamp,
            data: String::new(),
            data_truncated: false,
        }
        .with_data(data)
    }

    /// Sets `data`, cutting it (on a character boundary) when it would not fit in a message.
    pub fn with_data(mut self, data: &str) -> Self {
        if data.len() <= DATA_BUDGET {
            self.data = data.to_owned();
            self.data_truncated = false;
        } else {
            let mut end = DATA_BUDGET;
            while !data.is_char_boundary(end) {
                end -= 1;
            }
            self.data = data[..end].to_owned();
            self.data_truncated = true;
        }
        self
    }

    /// The message body.
    pub fn body(&self) -> String {
        serde_json::to_string(self).expect("a DeadLetter always serializes")
    }

    /// The key that identifies the record across redeliveries: `shard/sequence`.
    pub fn record_key(&self) -> String {
        record_key(self.shard_id.as_deref(), &self.sequence_number)
    }
}

/// The key that identifies a record across redeliveries (dead-letter deduplication).
pub fn record_key(shard_id: Option<&str>, sequence_number: &str) -> String {
    format!("{}/{sequence_number}", shard_id.unwrap_or("-"))
}

/// A poison-record letter for record `sequence_number` of `shardId-0`, for unit tests.
#[cfg(test)]
pub(crate) fn test_letter(sequence_number: &str) -> DeadLetter {
    DeadLetter::new(
        LetterKind::PoisonRecord,
        DeadLetterError {
            code: "invalid_json".into(),
            message: "record data is not a JSON object".into(),
            status: None,
            fields: vec![],
        },
        &Origin {
            sequence_number: sequence_number.into(),
            shard_id: Some("shardId-0".into()),
            ..Origin::default()
        },
        None,
        "",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter() -> DeadLetter {
        test_letter("1")
    }

    #[test]
    fn huge_data_is_cut_to_fit_a_message() {
        let big = "é".repeat(600_000);
        let l = letter().with_data(&big);
        assert!(l.data_truncated);
        assert!(l.body().len() <= MAX_MESSAGE_BYTES);
        // The cut falls on a character boundary at or below the budget, as close as it can.
        let odd = format!("a{}", "é".repeat(200_000));
        let l = letter().with_data(&odd);
        assert!(l.data_truncated);
        assert_eq!(l.data.len(), DATA_BUDGET - 1);
        assert!(odd.starts_with(&l.data));
        let small = letter().with_data("abc");
        assert!(!small.data_truncated && small.data == "abc");
    }

    #[test]
    fn body_round_trips_and_names_the_kind() {
        let l = letter().with_data("eyJhIjoxfQ==");
        let body = l.body();
        assert!(body.contains(r#""kind":"poison_record""#), "{body}");
        let back: DeadLetter = serde_json::from_str(&body).unwrap();
        assert_eq!(back, l);
        assert_eq!(back.record_key(), "shardId-0/1");
        assert_eq!(
            LetterKind::parse("salesforce_rejected"),
            Some(LetterKind::SalesforceRejected)
        );
        assert_eq!(LetterKind::parse("nope"), None);
    }

    #[test]
    fn every_kind_parses_from_its_name_and_serializes_as_it() {
        for kind in LetterKind::ALL {
            assert_eq!(LetterKind::parse(kind.name()), Some(kind));
            assert_eq!(kind.to_string(), kind.name());
            assert!(kind == kind.name(), "{kind} equals its name");
            assert!(kind != "nope", "{kind} equals no other text");
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", kind.name())
            );
        }
        assert_eq!(LetterKind::parse(" parked "), Some(LetterKind::Parked));
        let parked: DeadLetter = serde_json::from_str(
            r#"{"kind":"parked","error":{"code":"salesforce_unavailable","message":"m"},
                "sequence_number":"7","data":"e30="}"#,
        )
        .unwrap();
        assert_eq!(parked.kind, LetterKind::Parked);
        assert!(!parked.data_truncated);
    }
}
