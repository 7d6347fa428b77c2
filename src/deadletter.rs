//! Dead letters: records that can never become a Case (poison records, permanent Salesforce
//! rejections) go to an SQS queue with their original data and the reason, so they never block
//! the shard and can be inspected and redriven.
//!
//! If a dead letter cannot be sent, the record is reported for retry instead: nothing is dropped
//! silently.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

/// SQS's message size limit (256 KiB); the record data is cut to fit under it.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Room left in a message for the data after the other fields.
const DATA_BUDGET: usize = MAX_MESSAGE_BYTES - 8 * 1024;

/// The error that made a record a dead letter.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeadLetterError {
    /// `invalid_base64`, `missing_contact_id`, a Salesforce `errorCode`, …
    pub code: String,
    /// Human-readable reason (Salesforce's message for Salesforce errors).
    pub message: String,
    /// HTTP status, for Salesforce errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Fields the error is about.
    #[serde(skip_serializing_if = "Vec::is_empty")]
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

impl From<&crate::salesforce::Error> for DeadLetterError {
    /// Keeps Salesforce's own message and fields: they go to the queue, never to the logs.
    fn from(e: &crate::salesforce::Error) -> Self {
        let (message, fields) = match e {
            crate::salesforce::Error::Api {
                message, fields, ..
            } => (message.clone(), fields.clone()),
            other => (other.to_string(), vec![]),
        };
        DeadLetterError {
            code: e.code().into(),
            message,
            status: e.status(),
            fields,
        }
    }
}

/// One dead-letter message (the SQS message body, as JSON).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeadLetter {
    /// `poison_record` or `salesforce_rejected`.
    pub kind: &'static str,
    /// Why.
    pub error: DeadLetterError,
    /// The Kinesis sequence number.
    pub sequence_number: String,
    /// The shard (`shardId-…`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_id: Option<String>,
    /// The stream ARN, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_source_arn: Option<String>,
    /// The partition key, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    /// The ContactId, when the record had a valid one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    /// Kinesis arrival time (epoch seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approximate_arrival_timestamp: Option<f64>,
    /// The record's `data` exactly as delivered (base64 text, or inline JSON text).
    pub data: String,
    /// True when `data` was cut to fit SQS's size limit; re-read the record from the stream by
    /// shard and sequence number.
    pub data_truncated: bool,
}

impl DeadLetter {
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

    /// The SQS message body.
    pub fn body(&self) -> String {
        serde_json::to_string(self).expect("a DeadLetter always serializes")
    }
}

/// Why a dead letter could not be sent.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "could not send a dead letter to DEAD_LETTER_QUEUE_URL ({code}): check the queue URL and the \
     function's sqs:SendMessage permission; the record is reported for retry"
)]
pub struct DeadLetterSendError {
    /// The SQS error code, or a short description.
    pub code: String,
}

/// Where dead letters go.
#[derive(Debug)]
pub enum DeadLetterSink {
    /// An SQS queue.
    Sqs {
        /// The SDK client.
        client: aws_sdk_sqs::Client,
        /// The queue URL.
        queue_url: String,
    },
    /// Kept in memory (the replay CLI's `--send` without a queue, and tests).
    Memory(Mutex<Vec<DeadLetter>>),
    /// No queue configured: dead letters are reported for retry, so the event source mapping's
    /// bounded retries and on-failure destination take over.
    Disabled,
}

impl DeadLetterSink {
    /// An in-memory sink.
    pub fn memory() -> Self {
        DeadLetterSink::Memory(Mutex::new(Vec::new()))
    }

    /// The letters an in-memory sink holds (empty for other sinks).
    pub fn held(&self) -> Vec<DeadLetter> {
        match self {
            DeadLetterSink::Memory(m) => m.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            _ => Vec::new(),
        }
    }

    /// Sends one dead letter.
    ///
    /// # Errors
    /// [`DeadLetterSendError`] when it was not stored; the caller reports the record for retry.
    pub async fn send(&self, letter: &DeadLetter) -> Result<(), DeadLetterSendError> {
        match self {
            DeadLetterSink::Sqs { client, queue_url } => {
                let attribute = |v: &str| {
                    aws_sdk_sqs::types::MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(v)
                        .build()
                        .expect("data type and value are set")
                };
                let mut request = client
                    .send_message()
                    .queue_url(queue_url)
                    .message_body(letter.body());
                if queue_url.ends_with(".fifo") {
                    // FIFO queues drop a redelivered record's second letter within 5 minutes.
                    let key = record_key(letter.shard_id.as_deref(), &letter.sequence_number);
                    request = request
                        .message_group_id(letter.shard_id.as_deref().unwrap_or("ctr-cases"))
                        .message_deduplication_id(key.replace(['/', ':'], "-"));
                }
                request
                    .message_attributes("kind", attribute(letter.kind))
                    .message_attributes("error_code", attribute(&letter.error.code))
                    .send()
                    .await
                    .map_err(|e| DeadLetterSendError {
                        code: aws_sdk_sqs::error::ProvideErrorMetadata::code(&e)
                            .unwrap_or("no answer from SQS")
                            .to_owned(),
                    })?;
                Ok(())
            }
            DeadLetterSink::Memory(m) => {
                m.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(letter.clone());
                Ok(())
            }
            DeadLetterSink::Disabled => Err(DeadLetterSendError {
                code: "DEAD_LETTER_QUEUE_URL not set".into(),
            }),
        }
    }
}

/// The records a warm container has already dead-lettered, by `shard/sequence`.
///
/// When a later record of a batch is reported for retry, Lambda redelivers everything after the
/// checkpoint, including poison records that were already dead-lettered. Remembering them keeps
/// each dead letter single within a container; across cold starts a consumer can dedupe by
/// shard and sequence number (a FIFO queue does it: see [`DeadLetterSink::send`]).
#[derive(Debug)]
pub struct RecentDeadLetters {
    capacity: usize,
    inner: Mutex<(HashSet<String>, VecDeque<String>)>,
}

impl Default for RecentDeadLetters {
    fn default() -> Self {
        RecentDeadLetters::with_capacity(10_000)
    }
}

impl RecentDeadLetters {
    /// Remembers at most `capacity` records (oldest forgotten first).
    pub fn with_capacity(capacity: usize) -> Self {
        RecentDeadLetters {
            capacity: capacity.max(1),
            inner: Mutex::new((HashSet::new(), VecDeque::new())),
        }
    }

    /// Whether `key` was recorded.
    pub fn contains(&self, key: &str) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .contains(key)
    }

    /// Records `key`.
    pub fn insert(&self, key: String) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (set, order) = &mut *guard;
        if set.insert(key.clone()) {
            order.push_back(key);
            if order.len() > self.capacity
                && let Some(old) = order.pop_front()
            {
                set.remove(&old);
            }
        }
    }
}

/// The key [`RecentDeadLetters`] and FIFO deduplication use for a record.
pub fn record_key(shard_id: Option<&str>, sequence_number: &str) -> String {
    format!("{}/{sequence_number}", shard_id.unwrap_or("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter() -> DeadLetter {
        DeadLetter {
            kind: "poison_record",
            error: DeadLetterError {
                code: "invalid_json".into(),
                message: "record data is not a JSON object".into(),
                status: None,
                fields: vec![],
            },
            sequence_number: "1".into(),
            shard_id: Some("shardId-0".into()),
            event_source_arn: None,
            partition_key: None,
            contact_id: None,
            approximate_arrival_timestamp: None,
            data: String::new(),
            data_truncated: false,
        }
    }

    #[test]
    fn huge_data_is_cut_to_fit_a_message() {
        let big = "é".repeat(600_000);
        let l = letter().with_data(&big);
        assert!(l.data_truncated);
        assert!(l.body().len() <= MAX_MESSAGE_BYTES);
        let small = letter().with_data("abc");
        assert!(!small.data_truncated && small.data == "abc");
    }

    #[tokio::test]
    async fn memory_sink_keeps_letters_and_disabled_refuses() {
        let sink = DeadLetterSink::memory();
        sink.send(&letter()).await.unwrap();
        assert_eq!(sink.held().len(), 1);
        assert!(DeadLetterSink::Disabled.send(&letter()).await.is_err());
    }

    #[test]
    fn recent_dead_letters_forget_the_oldest() {
        let recent = RecentDeadLetters::with_capacity(2);
        recent.insert(record_key(Some("s"), "1"));
        recent.insert(record_key(Some("s"), "2"));
        recent.insert(record_key(Some("s"), "2"));
        assert!(recent.contains("s/1") && recent.contains("s/2"));
        recent.insert(record_key(Some("s"), "3"));
        assert!(!recent.contains("s/1") && recent.contains("s/3"));
    }
}
