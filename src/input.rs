//! The pipeline's input: one record from any source, as delivered, with what a dead letter
//! needs to point back at it. Sources (the Kinesis event, the replay files, redrive) build
//! these; the plan decodes them.
//!
//! Pure: no I/O.

use serde_json::value::RawValue;

use crate::ctr::ContactId;
use crate::letter::{DeadLetter, DeadLetterError, LetterKind, Origin};

/// One input record, whatever its source (a Kinesis record, a CTR from a file, a redriven dead
/// letter, a record re-read from the stream). Borrows from the source.
#[derive(Debug)]
pub struct InputRecord<'a> {
    /// Kinesis sequence number (or position in a file): what a retry report names.
    pub sequence_number: &'a str,
    /// The shard, when known.
    pub shard_id: Option<&'a str>,
    /// The stream ARN, when known.
    pub event_source_arn: Option<&'a str>,
    /// The partition key, when known.
    pub partition_key: Option<&'a str>,
    /// Kinesis arrival time (epoch seconds), when known.
    pub arrival: Option<f64>,
    /// The record's data, as its source delivered it: a Kinesis `data` value, a base64 JSON
    /// string or an inline JSON object (some published sample events use one); `None` when the
    /// record had none.
    pub data: Option<&'a RawValue>,
}

impl InputRecord<'_> {
    /// Where the record came from, for a dead letter.
    pub fn origin(&self) -> Origin {
        Origin {
            sequence_number: self.sequence_number.to_owned(),
            shard_id: self.shard_id.map(str::to_owned),
            event_source_arn: self.event_source_arn.map(str::to_owned),
            partition_key: self.partition_key.map(str::to_owned),
            approximate_arrival_timestamp: self.arrival,
        }
    }

    /// The data as delivered, as a dead letter carries it: the base64 text (a JSON string's
    /// content) or the inline JSON text; empty when there is none.
    pub fn delivered_text(&self) -> String {
        match self.data {
            Some(raw) => {
                serde_json::from_str::<String>(raw.get()).unwrap_or_else(|_| raw.get().to_owned())
            }
            None => String::new(),
        }
    }

    /// A dead letter of `kind` for this record.
    pub fn letter(
        &self,
        kind: LetterKind,
        error: DeadLetterError,
        contact_id: Option<&ContactId>,
    ) -> DeadLetter {
        DeadLetter::new(
            kind,
            error,
            &self.origin(),
            contact_id.map(ToString::to_string),
            &self.delivered_text(),
        )
    }
}
