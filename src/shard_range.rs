//! ShardFailureQueue messages and the ranges of a shard they name: parsing a message, whether
//! its range may be read ([`admit_range`]), and the completeness and size check of a range read
//! back from the stream ([`RangeCollector`]). Pure: the reading itself is
//! the Kinesis adapter's `StreamReader`'s.

use std::cmp::Ordering;

use serde::Deserialize;

use crate::stream_scope::{MAX_RANGE_BYTES, Refusal, StreamScope};

/// Why a body is not what was expected, without quoting it (serde's messages can quote values,
/// and a body may hold phone numbers).
pub(crate) fn not_json_reason(e: &serde_json::Error, what: &str) -> String {
    match e.classify() {
        serde_json::error::Category::Data => format!(
            "not {what}: JSON without the expected fields (line {}, column {})",
            e.line(),
            e.column()
        ),
        _ => format!("not {what}: the body is not JSON"),
    }
}

/// Most records one `GetRecords` call may return (a Kinesis limit).
const MAX_GET_RECORDS: i32 = 10_000;

/// place either way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// The records are no longer in the stream.
    #[error(
        "the range cannot be read from the stream: {0}. Records older than the stream's \
         retention period are gone; the message is kept as the record of what was lost"
    )]
    Gone(String),
    /// Only part of the range was found.
    #[error("only part of the range was found in the stream: {0}; the message is kept")]
    Incomplete(String),
    /// The range holds more than a batch of the deployment: reading stopped at the bound.
    #[error(
        "the range holds {0}, more than any batch of this deployment: it is left in the queue. \
         If the stack's BatchSize was larger when the batch failed, redrive with --batch-size \
         set to that"
    )]
    TooLarge(String),
    /// A Kinesis call failed.
    #[error(
        "Kinesis {operation} failed ({code}: {message}); check the stream ARN, the credentials \
         (kinesis:GetShardIterator, kinesis:GetRecords, kms:Decrypt for an encrypted stream) \
         and try again"
    )]
    Call {
        /// The operation.
        operation: &'static str,
        /// The error code.
        code: String,
        /// The service's message.
        message: String,
    },
}

/// The records a ShardFailureQueue message points at: a contiguous range of one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRange {
    /// `shardId-…`.
    pub shard_id: String,
    /// The stream's ARN (`arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`).
    pub stream_arn: String,
    /// The first record's sequence number.
    pub start_sequence_number: String,
    /// The last record's sequence number, when the message has it.
    pub end_sequence_number: Option<String>,
    /// How many records the batch had, when the message says.
    pub batch_size: Option<u32>,
}

/// The on-failure record an event source mapping sends for a Kinesis batch it gave up on.
/// Shape from the Lambda developer guide, "Retain discarded batch records for a Kinesis Data
/// Streams event source" (example invocation record):
/// `{"requestContext":{…,"condition":"RetryAttemptsExhausted"},"responseContext":{…},
/// "version":"1.0","timestamp":"…","KinesisBatchInfo":{"shardId","startSequenceNumber",
/// "endSequenceNumber","approximateArrivalOfFirstRecord","approximateArrivalOfLastRecord",
/// "batchSize","streamArn"}}`.
#[derive(Deserialize)]
struct FailureRecord {
    #[serde(rename = "KinesisBatchInfo")]
    batch: BatchInfo,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchInfo {
    shard_id: String,
    start_sequence_number: String,
    #[serde(default)]
    end_sequence_number: Option<String>,
    #[serde(default)]
    batch_size: Option<u32>,
    stream_arn: String,
}

/// An SNS notification delivered to SQS (an on-failure destination may be an SNS topic with
/// the queue subscribed): the record is the `Message` string.
#[derive(Deserialize)]
struct SnsEnvelope {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Message")]
    message: String,
}

impl ShardRange {
    /// Parses a ShardFailureQueue message body (or an SNS notification carrying one).
    ///
    /// # Errors
    /// A reason (naming no value from the body) when it is not an on-failure record for a
    /// Kinesis batch, or its range is not usable.
    pub fn parse(body: &str) -> Result<Self, String> {
        let record: FailureRecord = match serde_json::from_str(body) {
            Ok(record) => record,
            Err(e) => match serde_json::from_str::<SnsEnvelope>(body) {
                Ok(sns) if sns.kind == "Notification" => serde_json::from_str(&sns.message)
                    .map_err(|e| not_json_reason(&e, "a Kinesis on-failure record"))?,
                _ => return Err(not_json_reason(&e, "a Kinesis on-failure record")),
            },
        };
        let b = record.batch;
        let is_sequence = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        if !is_sequence(&b.start_sequence_number)
            || b.end_sequence_number
                .as_deref()
                .is_some_and(|e| !is_sequence(e))
        {
            return Err("KinesisBatchInfo has a sequence number that is not a number".into());
        }
        if b.shard_id.is_empty() || !b.stream_arn.starts_with("arn:") {
            return Err("KinesisBatchInfo needs a shardId and a streamArn".into());
        }
        match (&b.end_sequence_number, b.batch_size) {
            (None, None | Some(0)) => {
                return Err("KinesisBatchInfo has neither endSequenceNumber nor batchSize".into());
            }
            (Some(end), _) if compare_sequence(end, &b.start_sequence_number) == Ordering::Less => {
                return Err("KinesisBatchInfo ends before it starts".into());
            }
            _ => {}
        }
        Ok(ShardRange {
            shard_id: b.shard_id,
            stream_arn: b.stream_arn,
            start_sequence_number: b.start_sequence_number,
            end_sequence_number: b.end_sequence_number,
            batch_size: b.batch_size,
        })
    }

    /// The one record at `sequence_number` (a truncated letter's record).
    pub fn one(shard_id: &str, stream_arn: &str, sequence_number: &str) -> Self {
        ShardRange {
            shard_id: shard_id.to_owned(),
            stream_arn: stream_arn.to_owned(),
            start_sequence_number: sequence_number.to_owned(),
            end_sequence_number: Some(sequence_number.to_owned()),
            batch_size: Some(1),
        }
    }

    /// The Region named by the message's stream ARN. Only for display: calls go to the
    /// deployment's stream and Region (the Kinesis adapter's `StreamReader`), never to the
    /// message's.
    pub fn region(&self) -> Option<&str> {
        self.stream_arn.split(':').nth(3).filter(|r| !r.is_empty())
    }
}

/// Whether the range of a ShardFailureQueue message may be read: only with the deployment's
/// stream configured (`scope`), only when the message names that stream, and only when its
/// `batchSize` does not exceed the deployment's batch size. Reading is bounded by the
/// deployment's batch size anyway ([`RangeCollector`]); a `batchSize` over it is refused at once.
///
/// # Errors
/// The [`Refusal`]; the message is left in the queue.
pub fn admit_range(range: &ShardRange, scope: Option<&StreamScope>) -> Result<(), Refusal> {
    let scope = scope.ok_or(Refusal::StreamNotConfigured)?;
    scope.check_stream(&range.stream_arn)?;
    scope.check_batch(range.batch_size)
}

/// Compares two Kinesis sequence numbers (decimal strings of up to 128 digits, too long for an
/// integer type).
pub fn compare_sequence(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// One record read back from a shard.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    /// Its sequence number.
    pub sequence_number: String,
    /// Its partition key.
    pub partition_key: Option<String>,
    /// Its arrival time (epoch seconds).
    pub arrival: Option<f64>,
    /// Its data bytes.
    pub data: Vec<u8>,
}

/// Collects the records of a [`ShardRange`] from `GetRecords` answers (read from an
/// `AT_SEQUENCE_NUMBER` iterator at the range's start) and checks that the whole range is
/// there: its first record must be the range's start (else the start was trimmed away), and
/// it must reach the range's end (or hold `batchSize` records when the end is not known).
///
/// It holds at most `max_records` records (the deployment's batch size) and
/// [`MAX_RANGE_BYTES`] of data: Kinesis sequence numbers are not contiguous, so the records
/// are counted, and a range that goes on past either bound is refused
/// ([`RangeError::TooLarge`]), not cut: a cut range could be neither deleted (the rest would be
/// lost) nor kept (every run would redo its start and never reach the rest), and no batch of
/// the deployment is that large.
#[derive(Debug)]
pub struct RangeCollector<'a> {
    range: &'a ShardRange,
    max_records: usize,
    records: Vec<StreamRecord>,
    bytes: usize,
    complete: bool,
}

impl<'a> RangeCollector<'a> {
    /// An empty collector for `range`, holding at most `max_records` records.
    pub fn new(range: &'a ShardRange, max_records: u32) -> Self {
        RangeCollector {
            range,
            max_records: max_records.max(1) as usize,
            records: Vec::new(),
            bytes: 0,
            complete: false,
        }
    }

    /// The most records this range may still need: up to its `batchSize` when its end is not
    /// known, else up to the bound.
    fn target(&self) -> usize {
        match self.range.batch_size {
            Some(size) if self.range.end_sequence_number.is_none() => {
                (size as usize).min(self.max_records)
            }
            _ => self.max_records,
        }
    }

    /// How many records the next `GetRecords` call should ask for (never past the bound).
    pub fn wanted(&self) -> i32 {
        self.target()
            .saturating_sub(self.records.len())
            .clamp(1, MAX_GET_RECORDS as usize) as i32
    }

    /// Adds the records of one answer, in shard order. Returns whether the range is complete.
    ///
    /// # Errors
    /// [`RangeError::Gone`] when the first record is past the range's start,
    /// [`RangeError::TooLarge`] when the range goes on past the bound.
    pub fn add(&mut self, batch: Vec<StreamRecord>) -> Result<bool, RangeError> {
        for record in batch {
            if self.complete {
                break;
            }
            if self.records.is_empty() {
                match compare_sequence(&record.sequence_number, &self.range.start_sequence_number) {
                    Ordering::Less => continue,
                    Ordering::Greater => {
                        return Err(RangeError::Gone(format!(
                            "the oldest record left at or after its start ({}) is {}, so the \
                             start was trimmed",
                            self.range.start_sequence_number, record.sequence_number
                        )));
                    }
                    Ordering::Equal => {}
                }
            }
            let data = record.data.len();
            match &self.range.end_sequence_number {
                Some(end) => match compare_sequence(&record.sequence_number, end) {
                    Ordering::Greater => self.complete = true,
                    Ordering::Equal => {
                        self.bytes += data;
                        self.records.push(record);
                        self.complete = true;
                    }
                    Ordering::Less => {
                        self.bytes += data;
                        self.records.push(record);
                    }
                },
                None => {
                    self.bytes += data;
                    self.records.push(record);
                    let size = self.range.batch_size.unwrap_or(1) as usize;
                    self.complete = self.records.len() >= size;
                }
            }
            if self.bytes > MAX_RANGE_BYTES {
                return Err(RangeError::TooLarge(format!(
                    "more than {} MiB of record data (Lambda's invocation payload limit)",
                    MAX_RANGE_BYTES / (1024 * 1024)
                )));
            }
            if !self.complete && self.records.len() >= self.max_records {
                return Err(RangeError::TooLarge(format!(
                    "more than {} records (the deployment's batch size: KINESIS_BATCH_SIZE or \
                     --batch-size)",
                    self.max_records
                )));
            }
        }
        Ok(self.complete)
    }

    /// The records, once the stream has nothing more to give.
    ///
    /// # Errors
    /// [`RangeError::Gone`] when no record of the range was found, [`RangeError::Incomplete`]
    /// when its end was not reached.
    pub fn finish(self) -> Result<Vec<StreamRecord>, RangeError> {
        if self.complete {
            return Ok(self.records);
        }
        match self.records.last() {
            None => Err(RangeError::Gone(format!(
                "no record at or after {} in {}",
                self.range.start_sequence_number, self.range.shard_id
            ))),
            Some(last) => Err(RangeError::Incomplete(format!(
                "{} record(s) up to {}, but the range ends at {}",
                self.records.len(),
                last.sequence_number,
                self.range
                    .end_sequence_number
                    .clone()
                    .unwrap_or_else(|| format!("record {}", self.range.batch_size.unwrap_or(1)))
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example invocation record of the Lambda developer guide.
    const FAILURE: &str = r#"{
        "requestContext": {"requestId": "c9b8fa9f-5a7f-xmpl-af9c-0c604cde93a5",
            "functionArn": "arn:aws:lambda:us-east-2:123456789012:function:myfunction",
            "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 1},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0", "timestamp": "2019-11-14T00:38:06.021Z",
        "KinesisBatchInfo": {"shardId": "shardId-000000000001",
            "startSequenceNumber": "49601189658422359378836298521827638475320189012309704722",
            "endSequenceNumber": "49601189658422359378836298522902373528957594348623495186",
            "approximateArrivalOfFirstRecord": "2019-11-14T00:38:04.835Z",
            "approximateArrivalOfLastRecord": "2019-11-14T00:38:05.580Z",
            "batchSize": 500, "streamArn": "arn:aws:kinesis:us-east-2:123456789012:stream/mystream"}}"#;

    #[test]
    fn shard_failure_message_parses_to_its_range() {
        let range = ShardRange::parse(FAILURE).unwrap();
        assert_eq!(range.shard_id, "shardId-000000000001");
        assert_eq!(range.batch_size, Some(500));
        assert_eq!(
            range.end_sequence_number.as_deref(),
            Some("49601189658422359378836298522902373528957594348623495186")
        );
        assert_eq!(range.region(), Some("us-east-2"));
        // Through an SNS topic, the record is the notification's Message.
        let sns = serde_json::json!({"Type": "Notification", "MessageId": "m", "Message": FAILURE});
        assert_eq!(ShardRange::parse(&sns.to_string()).unwrap(), range);
        // Only a notification carries one: a subscription confirmation is not a range.
        let confirmation = serde_json::json!({"Type": "SubscriptionConfirmation", "MessageId": "m", "Message": FAILURE});
        assert!(ShardRange::parse(&confirmation.to_string()).is_err());
    }

    #[test]
    fn unusable_shard_failure_messages_are_refused_with_a_reason() {
        assert!(ShardRange::parse("hello").unwrap_err().contains("not JSON"));
        assert!(
            ShardRange::parse(r#"{"KinesisBatchInfo":{}}"#)
                .unwrap_err()
                .contains("expected fields")
        );
        let info = |extra: &str| {
            format!(
                r#"{{"KinesisBatchInfo":{{"shardId":"shardId-0","streamArn":"arn:aws:kinesis:r:1:stream/s",{extra}}}}}"#
            )
        };
        assert!(ShardRange::parse(&info(r#""startSequenceNumber":"12""#)).is_err());
        assert!(ShardRange::parse(&info(r#""startSequenceNumber":"1x","batchSize":1"#)).is_err());
        assert!(
            ShardRange::parse(&info(
                r#""startSequenceNumber":"1","endSequenceNumber":"2x""#
            ))
            .unwrap_err()
            .contains("not a number"),
            "a good start does not excuse a bad end"
        );
        for (shard, arn) in [("", "arn:aws:kinesis:r:1:stream/s"), ("shardId-0", "s")] {
            let body = format!(
                r#"{{"KinesisBatchInfo":{{"shardId":"{shard}","streamArn":"{arn}","startSequenceNumber":"1","batchSize":1}}}}"#
            );
            assert!(
                ShardRange::parse(&body)
                    .unwrap_err()
                    .contains("needs a shardId and a streamArn"),
                "{body}"
            );
        }
        assert!(
            ShardRange::parse(&info(
                r#""startSequenceNumber":"9","endSequenceNumber":"10""#
            ))
            .is_ok()
        );
        assert!(
            ShardRange::parse(&info(
                r#""startSequenceNumber":"10","endSequenceNumber":"9""#
            ))
            .unwrap_err()
            .contains("ends before")
        );
    }

    #[test]
    fn sequence_numbers_compare_as_numbers_of_any_length() {
        let long = "49601189658422359378836298521827638475320189012309704722";
        let longer = "49601189658422359378836298522902373528957594348623495186";
        assert_eq!(compare_sequence(long, longer), Ordering::Less);
        assert_eq!(compare_sequence("9", "10"), Ordering::Less);
        assert_eq!(compare_sequence("010", "10"), Ordering::Equal);
        assert_eq!(compare_sequence(longer, "99"), Ordering::Greater);
    }

    fn record(seq: &str) -> StreamRecord {
        StreamRecord {
            sequence_number: seq.into(),
            partition_key: None,
            arrival: None,
            data: vec![],
        }
    }

    fn range(start: &str, end: Option<&str>, size: Option<u32>) -> ShardRange {
        ShardRange {
            shard_id: "shardId-0".into(),
            stream_arn: "arn:aws:kinesis:r:1:stream/s".into(),
            start_sequence_number: start.into(),
            end_sequence_number: end.map(Into::into),
            batch_size: size,
        }
    }

    #[test]
    fn range_collector_stops_past_the_end_across_answers() {
        let r = range("3", Some("5"), Some(3));
        let mut c = RangeCollector::new(&r, 100);
        assert!(!c.add(vec![record("3"), record("4")]).unwrap());
        assert!(c.add(vec![]).is_ok_and(|done| !done));
        assert!(c.add(vec![record("5"), record("6")]).unwrap());
        let seqs: Vec<String> = c
            .finish()
            .unwrap()
            .into_iter()
            .map(|r| r.sequence_number)
            .collect();
        assert_eq!(seqs, ["3", "4", "5"]);
        // Without an end, batchSize records make the range.
        let r = range("3", None, Some(2));
        let mut c = RangeCollector::new(&r, 100);
        assert_eq!(c.wanted(), 2);
        assert!(c.add(vec![record("3"), record("8"), record("9")]).unwrap());
        assert_eq!(c.finish().unwrap().len(), 2);
    }

    #[test]
    fn range_collector_reports_a_trimmed_start_and_a_missing_end() {
        let r = range("3", Some("5"), None);
        let mut c = RangeCollector::new(&r, 100);
        assert!(
            matches!(c.add(vec![record("4")]), Err(RangeError::Gone(m)) if m.contains("trimmed"))
        );
        let c = RangeCollector::new(&r, 100);
        assert!(matches!(c.finish(), Err(RangeError::Gone(_))));
        let mut c = RangeCollector::new(&r, 100);
        c.add(vec![record("3"), record("4")]).unwrap();
        assert!(matches!(c.finish(), Err(RangeError::Incomplete(m)) if m.contains("ends at 5")));
    }

    fn scope(arn: &str, batch_size: u32) -> StreamScope {
        StreamScope::new(
            crate::stream_scope::StreamArn::parse(arn).unwrap(),
            batch_size,
        )
        .unwrap()
    }

    /// A crafted ShardFailureQueue message is read only when it names the deployment's stream
    /// and its batch fits the deployment's batch size.
    #[test]
    fn shard_failure_ranges_are_admitted_only_from_the_deployments_stream() {
        let range = ShardRange::parse(FAILURE).unwrap();
        let ours = scope(
            "arn:aws:kinesis:us-east-2:123456789012:stream/mystream",
            500,
        );
        assert_eq!(admit_range(&range, Some(&ours)), Ok(()));
        assert_eq!(admit_range(&range, None), Err(Refusal::StreamNotConfigured));
        let other = scope("arn:aws:kinesis:us-east-2:123456789012:stream/ctr", 500);
        assert!(matches!(
            admit_range(&range, Some(&other)),
            Err(Refusal::OtherStream {
                differs: "stream",
                ..
            })
        ));
        let elsewhere = scope(
            "arn:aws:kinesis:eu-west-1:123456789012:stream/mystream",
            500,
        );
        assert!(matches!(
            admit_range(&range, Some(&elsewhere)),
            Err(Refusal::OtherStream {
                differs: "Region",
                ..
            })
        ));
        // The message's batchSize (500) over the deployment's: refused before any read.
        let smaller = scope(
            "arn:aws:kinesis:us-east-2:123456789012:stream/mystream",
            100,
        );
        assert_eq!(
            admit_range(&range, Some(&smaller)),
            Err(Refusal::BatchTooLarge {
                claimed: 500,
                batch_size: 100
            })
        );
        let mut odd = range.clone();
        odd.stream_arn = "arn:aws:kinesis:us-east-2:123456789012:stream/mystream/x".into();
        assert_eq!(admit_range(&odd, Some(&ours)), Err(Refusal::NotAStreamArn));
    }

    /// Kinesis sequence numbers are not contiguous: the bound counts records, and a range that
    /// goes on past it (or past Lambda's payload limit) is refused, not cut.
    #[test]
    fn range_collector_refuses_a_range_longer_than_the_batch_size() {
        let r = range("10", Some("90"), Some(2));
        let mut c = RangeCollector::new(&r, 3);
        assert_eq!(c.wanted(), 3, "the bound, not the message's batchSize");
        assert!(!c.add(vec![record("10"), record("20")]).unwrap());
        assert_eq!(c.wanted(), 1);
        assert!(matches!(
            c.add(vec![record("30"), record("40")]),
            Err(RangeError::TooLarge(m)) if m.contains("more than 3 records")
        ));
        // Exactly the bound, ending at the end: complete.
        let r = range("10", Some("30"), None);
        let mut c = RangeCollector::new(&r, 3);
        assert!(
            c.add(vec![record("10"), record("20"), record("30")])
                .unwrap()
        );
        assert_eq!(c.finish().unwrap().len(), 3);
        // No end, and a batchSize over the bound: read up to the bound, then refused.
        let r = range("10", None, Some(50));
        let mut c = RangeCollector::new(&r, 2);
        assert_eq!(c.wanted(), 2);
        assert!(matches!(
            c.add(vec![record("10"), record("11"), record("12")]),
            Err(RangeError::TooLarge(_))
        ));
        // More data than Lambda's payload limit allows in one batch.
        let r = range("1", Some("9"), None);
        let mut c = RangeCollector::new(&r, 100);
        let big = |seq: &str| StreamRecord {
            data: vec![b'x'; MAX_RANGE_BYTES / 2 + 1],
            ..record(seq)
        };
        assert!(matches!(
            c.add(vec![big("1"), big("2")]),
            Err(RangeError::TooLarge(m)) if m.contains("MiB")
        ));
        // One record alone past the limit: at the range's end, and in a range without one.
        let over = |seq: &str| StreamRecord {
            data: vec![b'x'; MAX_RANGE_BYTES + 1],
            ..record(seq)
        };
        for r in [range("1", Some("1"), None), range("1", None, Some(1))] {
            let mut c = RangeCollector::new(&r, 100);
            assert!(
                matches!(c.add(vec![over("1")]), Err(RangeError::TooLarge(_))),
                "{r:?}"
            );
        }
        // Lambda delivers up to 6 MB: a 5 MiB range is one it may have delivered.
        let r = range("1", None, Some(1));
        let mut c = RangeCollector::new(&r, 100);
        let five = StreamRecord {
            data: vec![b'x'; 5 * 1024 * 1024],
            ..record("1")
        };
        assert!(c.add(vec![five]).unwrap());
        // Exactly the limit fits.
        let r = range("1", None, Some(1));
        let mut c = RangeCollector::new(&r, 100);
        let limit = StreamRecord {
            data: vec![b'x'; MAX_RANGE_BYTES],
            ..record("1")
        };
        assert!(c.add(vec![limit]).unwrap());
        // GetRecords never asks past Kinesis' own maximum.
        let r = range("1", Some("9"), None);
        assert_eq!(RangeCollector::new(&r, 10_000).wanted(), MAX_GET_RECORDS);
    }
}
