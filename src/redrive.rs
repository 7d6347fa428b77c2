//! Redrive: dead letters (parked and rejected records) and ShardFailureQueue ranges back
//! through the same pipeline as the Lambda ([`pipeline::run`]); `ctr-cases redrive` is a thin
//! adapter over [`Redrive`].
//!
//! Pure parts (unit-tested below): which letters to redrive ([`triage_letter`]), a letter → a
//! pipeline input ([`OwnedInput::from_letter`]), ShardFailureQueue message parsing
//! ([`ShardRange::parse`]), whether a message may be read from the stream at all
//! ([`admit_range`], [`admit_letter`], over [`crate::stream_scope`]), the completeness and size
//! check of a range read back from the stream ([`RangeCollector`]), how much a round holds
//! ([`RoundBudget`]), what to do with a message once its records were processed
//! ([`letter_disposition`], [`range_disposition`]) and the run's counts ([`Summary`]).
//!
//! I/O, in small functions: [`receive_round`], [`delete_messages`], [`release_messages`] and
//! [`requeue_message`] (SQS), [`read_range`] (Kinesis).
//!
//! What a message says is not trusted: the stream read is always the deployment's own
//! (`KINESIS_STREAM_ARN`, in its Region), a message naming another stream, account or Region
//! is left in the queue with the reason, and a range is read up to the deployment's batch size
//! of records (never the message's `batchSize`); a range holding more is left in the queue.
//! Without a configured stream, nothing is read from a stream: `--shard-failures` refuses to
//! run, and letters whose data was cut are left (letters carrying their full data still work).
//!
//! How a run goes, in rounds: receive new messages (up to [`ROUND_MESSAGES`] and about
//! [`ROUND_BYTES`] of bodies, never past `--limit`) until SQS returns nothing new, run their
//! records through the pipeline, delete the messages whose records all reached a final state
//! (any action but `retry`), then receive again. A round is processed in parts of at most
//! [`ROUND_RECORDS`] records and about [`ROUND_BYTES`] of data, so its memory is bounded
//! whatever the messages name. Messages that are not deleted stay in flight until the run ends,
//! so nothing is read twice; at the end, the ones not redriven are made visible again, and the
//! ones that failed again stay hidden until their visibility timeout expires.
//!
//! Redriving the dead-letter queue itself: the pipeline writes new letters into that queue. A
//! later round would receive them, so a letter for a record this run already redrove is never
//! redriven again in the same run (see [`Untouched::AlreadyRedriven`]).
//!
//! FIFO queues (the stack's dead-letter queue is one, grouped by shard): SQS hands out no more
//! messages of a message group while some of it are in flight, so a message that is not
//! redriven would block every message behind it in its shard's group, in every run. With
//! `--send` such a message is therefore moved to the back of its group (sent again with the
//! same body, attributes and group, then deleted); a dry run, which changes nothing, only sees
//! the first messages of each group.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::callback_queue::CallbackTarget;
use crate::effect::{CaseSink, LetterSink};
use crate::input::{InputRecord, RecordData};
use crate::letter::{DeadLetter, LetterKind};
use crate::pipeline;
use crate::plan::Settings;
use crate::report::{Action, RecordReport};
use crate::retry::Deadline;
use crate::stream_scope::{MAX_BATCH_SIZE, MAX_RANGE_BYTES, Refusal, StreamScope};

/// The letter kinds redriven unless `--kinds` says otherwise. `poison_record` is left out: a
/// record that could not be decoded cannot become a Case by being replayed.
pub const DEFAULT_KINDS: [LetterKind; 3] = [
    LetterKind::Parked,
    LetterKind::SalesforceRejected,
    LetterKind::CaseNotAccessible,
];

/// How long a received message stays hidden unless `--visibility-timeout` says otherwise: a
/// message that failed again comes back after this.
pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Most new messages received before a round is processed (bounds memory on big queues).
pub const ROUND_MESSAGES: usize = 1_000;

/// Most message body bytes received for a round, and most bytes of bodies and record data a
/// part of a round holds (each may pass it by one `ReceiveMessage` answer or one message).
pub const ROUND_BYTES: usize = 64 * 1024 * 1024;

/// Most records a part of a round holds: one range of the largest batch size.
pub const ROUND_RECORDS: usize = MAX_BATCH_SIZE as usize;

/// Most records in one pipeline run.
const PIPELINE_BATCH: usize = 200;

/// Long poll of each `ReceiveMessage` call, in seconds. A long poll asks every SQS server, so
/// an empty answer means the queue has nothing visible (a short poll samples only some).
/// Source: SQS developer guide, "Amazon SQS short and long polling".
const RECEIVE_WAIT_SECONDS: i32 = 1;

/// SQS limits: messages per `ReceiveMessage` and entries per `*Batch` call.
const SQS_BATCH: usize = 10;

/// FIFO queues drop a message whose deduplication id was used in the last 5 minutes (SQS
/// developer guide, "Exactly-once processing"); one more minute covers clock skew.
const FIFO_DEDUP_WINDOW: Duration = Duration::from_secs(6 * 60);

/// Most records one `GetRecords` call may return (a Kinesis limit).
const MAX_GET_RECORDS: i32 = 10_000;

/// `GetRecords` answers in a row without a record before a range read gives up: Kinesis may
/// return empty answers while it skips over empty parts of a shard (Kinesis developer guide,
/// "GetRecords"), but not forever.
const MAX_EMPTY_READS: u32 = 20;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a redrive could not run at all (per-message problems are reported in the lines).
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    /// `--kinds` named a kind that does not exist.
    #[error(
        "unknown letter kind `{0}`: use a comma-separated list of parked, salesforce_rejected \
         and poison_record"
    )]
    UnknownKind(String),
    /// `--kinds` was empty.
    #[error("--kinds needs at least one kind (parked, salesforce_rejected, poison_record)")]
    NoKinds,
    /// `ReceiveMessage` failed.
    #[error(
        "cannot receive from {queue_url} ({detail}); check the queue URL, AWS_REGION and the \
         credentials (the CLI needs sqs:ReceiveMessage, sqs:DeleteMessage, \
         sqs:ChangeMessageVisibility and sqs:SendMessage, plus kms:Decrypt for an encrypted queue)"
    )]
    Receive {
        /// The queue.
        queue_url: String,
        /// What SQS answered (its error code and message), or why there was no answer.
        detail: String,
    },
    /// `--shard-failures` without the deployment's stream.
    #[error(
        "--shard-failures reads each message's range from the deployment's stream, and no \
         stream is configured: set KINESIS_STREAM_ARN (or --stream-arn) to the stack's \
         KinesisStreamArn, and KINESIS_BATCH_SIZE (or --batch-size) to its BatchSize"
    )]
    StreamNotConfigured,
}

/// Why a range of a shard could not be read back from the stream. The message is left in
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

// ---------------------------------------------------------------------------------------------
// Pure: which letters, letter → input
// ---------------------------------------------------------------------------------------------

/// The letter kinds to redrive (`--kinds`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindFilter(Vec<LetterKind>);

impl Default for KindFilter {
    /// [`DEFAULT_KINDS`].
    fn default() -> Self {
        KindFilter(DEFAULT_KINDS.to_vec())
    }
}

impl KindFilter {
    /// Parses a comma-separated list of kind names (`parked,salesforce_rejected`).
    ///
    /// # Errors
    /// [`RedriveError::UnknownKind`] for a name that is not a kind, [`RedriveError::NoKinds`]
    /// for an empty list.
    pub fn parse(list: &str) -> Result<Self, RedriveError> {
        let mut kinds = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let kind = LetterKind::parse(name)
                .ok_or_else(|| RedriveError::UnknownKind(name.to_owned()))?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        if kinds.is_empty() {
            return Err(RedriveError::NoKinds);
        }
        kinds.sort();
        Ok(KindFilter(kinds))
    }

    /// Whether letters of `kind` are redriven.
    pub fn contains(&self, kind: LetterKind) -> bool {
        self.0.contains(&kind)
    }

    /// The kinds, in declaration order.
    pub fn kinds(&self) -> &[LetterKind] {
        &self.0
    }
}

/// What a dead-letter queue message is, before anything is done with it.
#[derive(Debug, Clone, PartialEq)]
pub enum LetterTriage {
    /// Redrive it from its own data.
    Redrive(Box<DeadLetter>),
    /// Its data was cut to fit SQS; its shard and stream are known, so re-read the record from
    /// the stream (while the stream retains it).
    Reread(Box<DeadLetter>),
    /// Its data was cut and there is no shard and stream to re-read it from.
    Truncated(Box<DeadLetter>),
    /// A kind not asked for.
    KindSkipped(Box<DeadLetter>),
    /// Not a dead letter; the reason names no value from the body.
    NotALetter(String),
}

/// Sorts a message body into a [`LetterTriage`].
pub fn triage_letter(body: &str, kinds: &KindFilter) -> LetterTriage {
    let letter: DeadLetter = match serde_json::from_str(body) {
        Ok(letter) => letter,
        Err(e) => return LetterTriage::NotALetter(not_json_reason(&e, "a dead letter")),
    };
    let letter = Box::new(letter);
    if !kinds.contains(letter.kind) {
        LetterTriage::KindSkipped(letter)
    } else if !letter.data_truncated {
        LetterTriage::Redrive(letter)
    } else if letter.shard_id.is_some() && letter.event_source_arn.is_some() {
        LetterTriage::Reread(letter)
    } else {
        LetterTriage::Truncated(letter)
    }
}

/// Why a body is not what was expected, without quoting it (serde's messages can quote values,
/// and a body may hold phone numbers).
fn not_json_reason(e: &serde_json::Error, what: &str) -> String {
    match e.classify() {
        serde_json::error::Category::Data => format!(
            "not {what}: JSON without the expected fields (line {}, column {})",
            e.line(),
            e.column()
        ),
        _ => format!("not {what}: the body is not JSON"),
    }
}

/// A record to run through the pipeline, owning what an [`InputRecord`] borrows.
#[derive(Debug, Clone)]
pub struct OwnedInput {
    /// Kinesis sequence number.
    pub sequence_number: String,
    /// The shard, when known.
    pub shard_id: Option<String>,
    /// The stream ARN, when known.
    pub event_source_arn: Option<String>,
    /// The partition key, when known.
    pub partition_key: Option<String>,
    /// Kinesis arrival time (epoch seconds), when known.
    pub arrival: Option<f64>,
    /// The data as Kinesis delivers it: a base64 JSON string or an inline JSON object.
    pub data: Option<Box<RawValue>>,
}

impl OwnedInput {
    /// The record a letter was written for, with the letter's data re-wrapped as Kinesis
    /// delivered it (see [`letter_data`]).
    pub fn from_letter(letter: &DeadLetter) -> Self {
        OwnedInput {
            sequence_number: letter.sequence_number.clone(),
            shard_id: letter.shard_id.clone(),
            event_source_arn: letter.event_source_arn.clone(),
            partition_key: letter.partition_key.clone(),
            arrival: letter.approximate_arrival_timestamp,
            data: letter_data(&letter.data),
        }
    }

    /// A record read back from shard `shard_id` of stream `stream_arn`, its data base64-encoded
    /// as Lambda would deliver it.
    pub fn from_stream(shard_id: &str, stream_arn: &str, record: &StreamRecord) -> Self {
        let encoded = base64::engine::general_purpose::STANDARD.encode(&record.data);
        OwnedInput {
            sequence_number: record.sequence_number.clone(),
            shard_id: Some(shard_id.to_owned()),
            event_source_arn: Some(stream_arn.to_owned()),
            partition_key: record.partition_key.clone(),
            arrival: record.arrival,
            data: Some(json_string(&encoded)),
        }
    }

    /// The bytes its data takes (as delivered: base64 text or inline JSON).
    pub fn data_len(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.get().len())
    }

    /// This record as a plan input (borrowing from it).
    pub fn input(&self) -> InputRecord<'_> {
        InputRecord {
            sequence_number: &self.sequence_number,
            shard_id: self.shard_id.as_deref(),
            event_source_arn: self.event_source_arn.as_deref(),
            partition_key: self.partition_key.as_deref(),
            arrival: self.arrival,
            data: RecordData::Delivered(self.data.as_deref()),
        }
    }
}

/// A letter's `data` (the record's data as delivered: base64 text, or inline JSON text) as a
/// Kinesis `data` value again: the inline JSON object when it is one, else a JSON string
/// holding the text (which the pipeline base64-decodes); `None` when the letter has no data.
pub fn letter_data(data: &str) -> Option<Box<RawValue>> {
    if data.is_empty() {
        return None;
    }
    if data.trim_start().starts_with('{')
        && let Ok(raw) = RawValue::from_string(data.to_owned())
    {
        return Some(raw);
    }
    Some(json_string(data))
}

fn json_string(text: &str) -> Box<RawValue> {
    RawValue::from_string(serde_json::Value::String(text.to_owned()).to_string())
        .expect("a JSON string literal is valid JSON")
}

// ---------------------------------------------------------------------------------------------
// Pure: ShardFailureQueue messages and ranges
// ---------------------------------------------------------------------------------------------

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
    /// deployment's stream and Region ([`read_range`]), never to the message's.
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

/// Whether a dead letter may be redriven: one whose data must be re-read from the stream
/// (`reread`) needs the deployment's stream configured (`scope`), and a letter naming a stream
/// must name that one when it is configured. A letter carrying its full data is redriven
/// without a configured stream (nothing is read from a stream for it).
///
/// # Errors
/// The [`Refusal`]; the message is left in the queue.
pub fn admit_letter(
    letter: &DeadLetter,
    reread: bool,
    scope: Option<&StreamScope>,
) -> Result<(), Refusal> {
    match (scope, letter.event_source_arn.as_deref()) {
        (Some(scope), Some(named)) => scope.check_stream(named),
        (None, _) if reread => Err(Refusal::StreamNotConfigured),
        _ => Ok(()),
    }
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

// ---------------------------------------------------------------------------------------------
// Pure: what to do with a message
// ---------------------------------------------------------------------------------------------

/// What to do with a message once its records went through the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Every record reached a final state: delete the message.
    Delete,
    /// The record was dead-lettered (or parked) again: the pipeline wrote a new letter with the
    /// new reason, so delete this one.
    Replace,
    /// A record is to be retried: keep the message; it is visible again once its visibility
    /// timeout expires.
    RetryLater,
}

/// Whether the pipeline wrote a new letter for a record with this action. By name, so that an
/// action added later (`parked`) is covered without a change here.
fn writes_new_letter(action: Action) -> bool {
    matches!(action.name(), "dead_letter" | "parked")
}

/// What to do with a dead-letter message whose record ended with `action`: every action but
/// `retry` is final.
pub fn letter_disposition(action: Action) -> Disposition {
    if action == Action::Retry {
        Disposition::RetryLater
    } else if writes_new_letter(action) {
        Disposition::Replace
    } else {
        Disposition::Delete
    }
}

/// What to do with a ShardFailureQueue message whose range's records ended with `actions`:
/// delete it only when every record reached a final state (dead letters for some of them went
/// to the dead-letter queue and need nothing from this message).
pub fn range_disposition(actions: &[Action]) -> Disposition {
    if actions.is_empty() || actions.contains(&Action::Retry) {
        Disposition::RetryLater
    } else {
        Disposition::Delete
    }
}

/// Why a message was not redriven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untouched {
    /// The body is not a dead letter (or not an on-failure record); the reason.
    NotRecognized(String),
    /// A letter kind not asked for.
    KindSkipped(LetterKind),
    /// A letter whose data was cut, with no shard and stream to re-read it from.
    Truncated,
    /// The record (or range) could not be read back from the stream.
    Unreadable(RangeError),
    /// Refused before anything was read: another stream, no stream configured, or a batch
    /// larger than the deployment's.
    Refused(Refusal),
    /// A letter for a record this run already redrove: the letter this run just wrote, or a
    /// duplicate. Redriven by a later run.
    AlreadyRedriven,
}

impl Untouched {
    /// A description for the output line.
    pub fn note(&self) -> String {
        match self {
            Untouched::NotRecognized(reason) => reason.clone(),
            Untouched::KindSkipped(kind) => {
                format!("kind {kind} is not redriven (add it with --kinds)")
            }
            Untouched::Truncated => "the letter's data was cut to fit SQS and it names no \
                shard and stream to re-read the record from: it cannot be redriven"
                .into(),
            Untouched::Unreadable(e) => e.to_string(),
            Untouched::Refused(refusal) => refusal.note(),
            Untouched::AlreadyRedriven => {
                "its record was redriven earlier in this run (this is the new letter, or a \
                 duplicate): left for a later run"
                    .into()
            }
        }
    }

    fn error(&self) -> &'static str {
        match self {
            Untouched::NotRecognized(_) => "not_recognized",
            Untouched::KindSkipped(_) => "kind_skipped",
            Untouched::Truncated => "data_truncated",
            Untouched::Unreadable(RangeError::Gone(_)) => "range_gone",
            Untouched::Unreadable(RangeError::Incomplete(_)) => "range_incomplete",
            Untouched::Unreadable(RangeError::Call { .. }) => "kinesis_error",
            Untouched::Unreadable(RangeError::TooLarge(_)) => "range_too_large",
            Untouched::Refused(refusal) => refusal.code(),
            Untouched::AlreadyRedriven => "already_redriven",
        }
    }
}

/// What became of a message (the `message` field of an output line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum MessageResult {
    /// Its records reached a final state; it was deleted.
    Deleted,
    /// Dead-lettered (or parked) again: the new letter replaces it; it was deleted.
    Replaced,
    /// Failed again: left in place, visible again after the visibility timeout.
    RetryLater,
    /// Not redriven: left in place (visible again when the run ends).
    Left,
    /// Not redriven, on a FIFO queue: moved to the back of its message group so the messages
    /// behind it can be redriven.
    Moved,
    /// Should have been deleted, but SQS refused: left in place.
    DeleteFailed,
    /// Dry run: would be deleted.
    WouldDelete,
    /// Dry run: would be replaced by a new letter and deleted.
    WouldReplace,
    /// Dry run: would be left for a later retry.
    WouldRetryLater,
}

impl MessageResult {
    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            MessageResult::Deleted => "deleted",
            MessageResult::Replaced => "replaced",
            MessageResult::RetryLater => "retry_later",
            MessageResult::Left => "left",
            MessageResult::Moved => "moved",
            MessageResult::DeleteFailed => "delete_failed",
            MessageResult::WouldDelete => "would_delete",
            MessageResult::WouldReplace => "would_replace",
            MessageResult::WouldRetryLater => "would_retry_later",
        }
    }

    fn dry_run(disposition: Disposition) -> Self {
        match disposition {
            Disposition::Delete => MessageResult::WouldDelete,
            Disposition::Replace => MessageResult::WouldReplace,
            Disposition::RetryLater => MessageResult::WouldRetryLater,
        }
    }
}

/// One output line: a record redriven (with what became of its message), or a message that was
/// not redriven. Holds no customer data: ids, codes and names only.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    /// The SQS message id.
    pub message_id: String,
    /// The record's sequence number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
    /// The ContactId, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    /// The letter kind, or `shard_failure`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The classifier's outcome, when the record was redriven.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    /// The record's final action, when it was redriven.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// The new error code (dead letter, retry), or why the message was not redriven.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The error code the letter carried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub letter_error: Option<String>,
    /// What became of the message.
    pub message: MessageResult,
    /// More about it, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The counts of a run.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Messages read (each once, however often SQS handed it out).
    pub read: u32,
    /// Records run through the pipeline.
    pub redriven: u32,
    /// Redriven records per final action.
    pub actions: BTreeMap<&'static str, u32>,
    /// What became of the messages, per [`MessageResult`] name.
    pub messages: BTreeMap<&'static str, u32>,
    /// Messages deleted (including replaced ones).
    pub deleted: u32,
    /// Messages still in the queue (every message read and not deleted).
    pub left_in_place: u32,
    /// Letters not redriven because of their kind, per kind.
    pub skipped_kinds: BTreeMap<&'static str, u32>,
    /// Messages not redriven for another reason, per reason code.
    pub not_redriven: BTreeMap<&'static str, u32>,
    /// Salesforce data API calls made (or, in a dry run, that would be made).
    pub salesforce_api_calls: u32,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

impl Summary {
    fn message(&mut self, result: MessageResult) {
        *self.messages.entry(result.name()).or_default() += 1;
        if matches!(result, MessageResult::Deleted | MessageResult::Replaced) {
            self.deleted += 1;
        }
    }

    fn untouched(&mut self, why: &Untouched) {
        match why {
            Untouched::KindSkipped(kind) => {
                *self.skipped_kinds.entry(kind.name()).or_default() += 1
            }
            other => *self.not_redriven.entry(other.error()).or_default() += 1,
        }
    }
}

/// What a part of a round holds so far: records read and bytes held (message bodies and
/// record data). A round is processed in parts so that its memory stays bounded whatever its
/// messages name: a message joins the part only while the part stays within [`ROUND_RECORDS`]
/// (counting the most records the message can bring) and under [`ROUND_BYTES`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundBudget {
    messages: usize,
    records: usize,
    bytes: usize,
}

impl RoundBudget {
    /// Whether a message that can bring up to `most_records` records joins this part. An
    /// empty part takes any message, so every message is processed.
    pub fn fits(&self, most_records: usize) -> bool {
        self.messages == 0
            || (self.records + most_records <= ROUND_RECORDS && self.bytes < ROUND_BYTES)
    }

    /// Counts a message that brought `records` records, holding `bytes` bytes.
    pub fn add(&mut self, records: usize, bytes: usize) {
        self.messages += 1;
        self.records += records;
        self.bytes += bytes;
    }
}

// ---------------------------------------------------------------------------------------------
// Progress
// ---------------------------------------------------------------------------------------------

/// Counts for a progress line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressCounts {
    /// Messages read so far.
    pub read: usize,
    /// Records run through the pipeline so far.
    pub processed: usize,
    /// Messages deleted so far.
    pub deleted: usize,
}

/// Where progress goes (the CLI's progress line on stderr).
pub trait Progress {
    /// The counts changed.
    fn update(&self, counts: ProgressCounts);
}

/// No progress output.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _counts: ProgressCounts) {}
}

// ---------------------------------------------------------------------------------------------
// SQS
// ---------------------------------------------------------------------------------------------

/// A received SQS message.
#[derive(Debug, Clone)]
pub struct Received {
    /// The message id (stable across receives).
    pub message_id: String,
    /// The latest receipt handle (each receive gives a new one; deletes need the latest).
    pub receipt_handle: String,
    /// The body.
    pub body: String,
    /// The FIFO message group, when there is one.
    pub group_id: Option<String>,
    /// When SQS received the message (epoch milliseconds).
    pub sent_at_ms: Option<u64>,
    /// The message attributes (kept to move the message within a FIFO queue).
    pub attributes: HashMap<String, aws_sdk_sqs::types::MessageAttributeValue>,
}

fn sqs_code<E: aws_sdk_sqs::error::ProvideErrorMetadata>(e: &E) -> (String, String) {
    (
        e.code().unwrap_or("no answer from SQS").to_owned(),
        e.message().unwrap_or_default().to_owned(),
    )
}

/// Receives messages not in `seen` until SQS returns nothing new, `want` new ones were
/// received, or their bodies reach `max_bytes` (passed by at most one answer), each hidden for
/// `visibility`. A message already in `seen` that SQS hands out again gets its receipt handle
/// updated in `held` and is not returned.
///
/// # Errors
/// [`RedriveError::Receive`] when `ReceiveMessage` fails.
pub async fn receive_round(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    want: usize,
    max_bytes: usize,
    visibility: Duration,
    seen: &HashSet<String>,
    held: &mut HashMap<String, String>,
) -> Result<Vec<Received>, RedriveError> {
    use aws_sdk_sqs::types::MessageSystemAttributeName as Attr;
    let mut new: Vec<Received> = Vec::new();
    let mut ids = HashSet::new();
    let mut bytes = 0;
    while new.len() < want && bytes < max_bytes {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages((want - new.len()).min(SQS_BATCH) as i32)
            .wait_time_seconds(RECEIVE_WAIT_SECONDS)
            .visibility_timeout(visibility.as_secs().min(43_200) as i32)
            .message_attribute_names("All")
            .message_system_attribute_names(Attr::MessageGroupId)
            .message_system_attribute_names(Attr::SentTimestamp)
            .send()
            .await
            .map_err(|e| RedriveError::Receive {
                queue_url: queue_url.to_owned(),
                detail: match aws_sdk_sqs::error::ProvideErrorMetadata::code(&e) {
                    Some(code) => format!(
                        "SQS answered {code}: {}",
                        aws_sdk_sqs::error::ProvideErrorMetadata::message(&e).unwrap_or_default()
                    ),
                    None => aws_sdk_sqs::error::DisplayErrorContext(&e).to_string(),
                },
            })?;
        let mut fresh = 0;
        for message in out.messages.unwrap_or_default() {
            let (Some(id), Some(handle)) = (message.message_id(), message.receipt_handle()) else {
                continue;
            };
            if seen.contains(id) {
                held.insert(id.to_owned(), handle.to_owned());
                continue;
            }
            if !ids.insert(id.to_owned()) {
                if let Some(m) = new.iter_mut().find(|m| m.message_id == id) {
                    m.receipt_handle = handle.to_owned();
                }
                continue;
            }
            let system = message.attributes();
            fresh += 1;
            bytes += message.body().map_or(0, str::len);
            new.push(Received {
                message_id: id.to_owned(),
                receipt_handle: handle.to_owned(),
                body: message.body().unwrap_or_default().to_owned(),
                group_id: system.and_then(|a| a.get(&Attr::MessageGroupId)).cloned(),
                sent_at_ms: system
                    .and_then(|a| a.get(&Attr::SentTimestamp))
                    .and_then(|t| t.parse().ok()),
                attributes: message.message_attributes().cloned().unwrap_or_default(),
            });
        }
        if fresh == 0 {
            break;
        }
    }
    Ok(new)
}

/// Deletes messages by receipt handle (`DeleteMessageBatch`, 10 a call): one result per handle,
/// in order, with SQS's error code on failure.
pub async fn delete_messages(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    handles: &[&str],
) -> Vec<Result<(), String>> {
    let mut results = Vec::with_capacity(handles.len());
    for chunk in handles.chunks(SQS_BATCH) {
        let mut request = sqs.delete_message_batch().queue_url(queue_url);
        for (i, handle) in chunk.iter().enumerate() {
            request = request.entries(
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*handle)
                    .build()
                    .expect("id and receipt handle are set"),
            );
        }
        results.extend(batch_results(
            chunk.len(),
            request.send().await.map(|a| {
                let ok = a.successful().iter().map(|s| s.id().to_owned()).collect();
                (ok, failed_codes(a.failed()))
            }),
        ));
    }
    results
}

/// Makes messages visible again at once (`ChangeMessageVisibilityBatch` with timeout 0): one
/// result per handle, in order.
pub async fn release_messages(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    handles: &[&str],
) -> Vec<Result<(), String>> {
    let mut results = Vec::with_capacity(handles.len());
    for chunk in handles.chunks(SQS_BATCH) {
        let mut request = sqs.change_message_visibility_batch().queue_url(queue_url);
        for (i, handle) in chunk.iter().enumerate() {
            request = request.entries(
                aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*handle)
                    .visibility_timeout(0)
                    .build()
                    .expect("id and receipt handle are set"),
            );
        }
        results.extend(batch_results(
            chunk.len(),
            request.send().await.map(|a| {
                let ok = a.successful().iter().map(|s| s.id().to_owned()).collect();
                (ok, failed_codes(a.failed()))
            }),
        ));
    }
    results
}

type BatchAnswer = (Vec<String>, Vec<(String, String)>);

/// The (entry id, SQS error code) of each failed entry of a `*Batch` answer.
fn failed_codes(failed: &[aws_sdk_sqs::types::BatchResultErrorEntry]) -> Vec<(String, String)> {
    failed
        .iter()
        .map(|f| (f.id().to_owned(), f.code().to_owned()))
        .collect()
}

/// Maps a `*Batch` answer (entry ids `0…n-1`) to one result per entry.
fn batch_results<E: aws_sdk_sqs::error::ProvideErrorMetadata>(
    n: usize,
    answer: Result<BatchAnswer, E>,
) -> Vec<Result<(), String>> {
    match answer {
        Err(e) => vec![Err(sqs_code(&e).0); n],
        Ok((ok, failed)) => {
            let mut results = vec![Err("not in the batch answer".to_owned()); n];
            for id in ok {
                if let Some(r) = id.parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
                    *r = Ok(());
                }
            }
            for (id, code) in failed {
                if let Some(r) = id.parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
                    *r = Err(code);
                }
            }
            results
        }
    }
}

/// Moves a FIFO message to the back of its group: sends a copy (same body, attributes and
/// group; a deduplication id of its own, so the copy is never dropped as a duplicate), then
/// deletes the original. Returns the copy's message id.
///
/// # Errors
/// SQS's error code when the copy could not be sent (the original is kept), or
/// `copied:<code>` when the copy was sent but the original could not be deleted.
pub async fn requeue_message(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    message: &Received,
) -> Result<String, String> {
    let sent = sqs
        .send_message()
        .queue_url(queue_url)
        .message_body(&message.body)
        .set_message_attributes(
            (!message.attributes.is_empty()).then(|| message.attributes.clone()),
        )
        .message_group_id(message.group_id.as_deref().unwrap_or("ctr-cases"))
        .message_deduplication_id(format!("redrive-{}", message.message_id))
        .send()
        .await
        .map_err(|e| sqs_code(&e).0)?;
    let copy = sent.message_id().unwrap_or_default().to_owned();
    match delete_messages(sqs, queue_url, &[message.receipt_handle.as_str()])
        .await
        .remove(0)
    {
        Ok(()) => Ok(copy),
        Err(code) => Err(format!("copied:{code}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Kinesis
// ---------------------------------------------------------------------------------------------

fn kinesis_error<E, R>(
    operation: &'static str,
    e: &aws_sdk_kinesis::error::SdkError<E, R>,
) -> RangeError
where
    E: aws_sdk_kinesis::error::ProvideErrorMetadata,
{
    let code = aws_sdk_kinesis::error::ProvideErrorMetadata::code(e)
        .unwrap_or("no answer from Kinesis")
        .to_owned();
    let message = aws_sdk_kinesis::error::ProvideErrorMetadata::message(e)
        .unwrap_or_default()
        .to_owned();
    if code == "ResourceNotFoundException" {
        RangeError::Gone(format!(
            "{operation}: the stream or shard was not found ({message})"
        ))
    } else {
        RangeError::Call {
            operation,
            code,
            message,
        }
    }
}

/// Reads `range` back from the deployment's stream (`scope`): `GetShardIterator`
/// (`AT_SEQUENCE_NUMBER` at its start) then `GetRecords` until past its end, checked and
/// bounded by a [`RangeCollector`] (at most the deployment's batch size of records). The calls
/// name the deployment's stream ARN and go to its Region, whatever the message named (check it
/// first with [`admit_range`] or [`admit_letter`]); a stream of another account works when the
/// deployment names it.
///
/// # Errors
/// Any [`RangeError`].
pub async fn read_range(
    kinesis: &aws_sdk_kinesis::Client,
    scope: &StreamScope,
    range: &ShardRange,
) -> Result<Vec<StreamRecord>, RangeError> {
    let stream_arn = scope.stream().as_str();
    let region = || {
        aws_sdk_kinesis::config::Builder::default().region(aws_sdk_kinesis::config::Region::new(
            scope.stream().region().to_owned(),
        ))
    };
    let start = kinesis
        .get_shard_iterator()
        .stream_arn(stream_arn)
        .shard_id(&range.shard_id)
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(&range.start_sequence_number)
        .customize()
        .config_override(region())
        .send()
        .await
        .map_err(|e| kinesis_error("GetShardIterator", &e))?;
    let mut collector = RangeCollector::new(range, scope.batch_size());
    let mut iterator = start.shard_iterator;
    let mut empty_reads = 0;
    while let Some(current) = iterator.take() {
        let out = kinesis
            .get_records()
            .stream_arn(stream_arn)
            .shard_iterator(current)
            .limit(collector.wanted())
            .customize()
            .config_override(region())
            .send()
            .await
            .map_err(|e| kinesis_error("GetRecords", &e))?;
        let batch: Vec<StreamRecord> = out
            .records()
            .iter()
            .map(|r| StreamRecord {
                sequence_number: r.sequence_number().to_owned(),
                partition_key: r.partition_key().map(str::to_owned),
                arrival: r
                    .approximate_arrival_timestamp()
                    .map(aws_sdk_kinesis::primitives::DateTime::as_secs_f64),
                data: r.data().as_ref().to_vec(),
            })
            .collect();
        let empty = batch.is_empty();
        if collector.add(batch)? {
            break;
        }
        if empty {
            empty_reads += 1;
            // Caught up with the tip of the shard: there is nothing more to read.
            if out.millis_behind_latest() == Some(0) || empty_reads >= MAX_EMPTY_READS {
                break;
            }
        } else {
            empty_reads = 0;
        }
        iterator = out.next_shard_iterator().map(str::to_owned);
    }
    collector.finish()
}

// ---------------------------------------------------------------------------------------------
// A run
// ---------------------------------------------------------------------------------------------

/// One redrive run: where records go, which queue clients to use, and how.
pub struct Redrive<'a, C, L> {
    /// Classifier, policy and mapping.
    pub settings: &'a Settings,
    /// Where Case writes go (Salesforce, or a recorder for a dry run).
    pub cases: &'a C,
    /// Where new dead letters go (SQS, or a recorder for a dry run).
    pub letters: &'a L,
    /// Where callback requests for redriven dropped calls go (the callback queue with
    /// `CALLBACK_TASKS`; off for a dry run): a redriven drop gets its callback like a streamed
    /// one, and at most one task (the callback function checks the Case).
    pub callbacks: &'a CallbackTarget,
    /// The queue new dead letters go to, when it is an SQS queue (to spot a FIFO queue's
    /// deduplication dropping a replacement letter).
    pub letters_queue_url: Option<&'a str>,
    /// Delete (and move) messages; without it nothing in the queue changes.
    pub send: bool,
    /// The SQS client.
    pub sqs: &'a aws_sdk_sqs::Client,
    /// The Kinesis client (truncated letters, shard failures).
    pub kinesis: &'a aws_sdk_kinesis::Client,
    /// The deployment's stream and batch size: the only stream read, and the most records a
    /// range may hold. Without it nothing is read from a stream.
    pub stream: Option<&'a StreamScope>,
    /// How long received messages stay hidden.
    pub visibility_timeout: Duration,
    /// Most messages to read, if bounded.
    pub limit: Option<usize>,
    /// Where progress goes.
    pub progress: &'a dyn Progress,
    /// Called after each pipeline run (a dry run empties its recorders there).
    pub after_batch: &'a dyn Fn(),
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RedriveRun {
    /// One line per redriven record and per message not redriven, in the order read.
    pub lines: Vec<Line>,
    /// The counts.
    pub summary: Summary,
}

/// What the queue holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Letters,
    ShardFailures,
}

/// The messages a run has received and keeps in flight until it ends (so that none is read
/// twice).
#[derive(Debug, Default)]
struct InFlight {
    /// Every message id received, and the ids of moved copies.
    seen: HashSet<String>,
    /// Messages kept in flight: id → latest receipt handle.
    held: HashMap<String, String>,
    /// Of those, the ones to make visible again when the run ends.
    release: HashSet<String>,
}

impl InFlight {
    fn keep(&mut self, id: &str, receipt_handle: &str, release: bool) {
        self.held.insert(id.to_owned(), receipt_handle.to_owned());
        if release {
            self.release.insert(id.to_owned());
        }
    }
}

/// A message of the round being processed.
struct Item {
    message: Received,
    kind: Option<String>,
    letter: Option<Box<DeadLetter>>,
    /// Its records' positions in the round's inputs.
    inputs: std::ops::Range<usize>,
    untouched: Option<Untouched>,
    note: Option<String>,
}

impl<C: CaseSink, L: LetterSink> Redrive<'_, C, L> {
    /// Redrives the dead letters of `kinds` from the queue at `queue_url`.
    ///
    /// # Errors
    /// [`RedriveError::Receive`] when the queue cannot be read.
    pub async fn letters(
        &self,
        queue_url: &str,
        kinds: &KindFilter,
    ) -> Result<RedriveRun, RedriveError> {
        self.run(queue_url, Source::Letters, kinds).await
    }

    /// Redrives the ranges named by the ShardFailureQueue messages at `queue_url`, read back
    /// from the deployment's stream ([`Redrive::stream`]); a message naming another stream, or a
    /// batch larger than the deployment's, is left in the queue.
    ///
    /// # Errors
    /// [`RedriveError::Receive`] when the queue cannot be read,
    /// [`RedriveError::StreamNotConfigured`] without [`Redrive::stream`] (checked before the
    /// queue is read).
    pub async fn shard_failures(&self, queue_url: &str) -> Result<RedriveRun, RedriveError> {
        if self.stream.is_none() {
            return Err(RedriveError::StreamNotConfigured);
        }
        self.run(queue_url, Source::ShardFailures, &KindFilter::default())
            .await
    }

    async fn run(
        &self,
        queue_url: &str,
        source: Source,
        kinds: &KindFilter,
    ) -> Result<RedriveRun, RedriveError> {
        let fifo = queue_url.ends_with(".fifo");
        let mut run = RedriveRun::default();
        run.summary.dry_run = !self.send;
        let mut counts = ProgressCounts::default();
        let mut flight = InFlight::default();
        let mut redriven_records: HashSet<String> = HashSet::new();
        let run_start_ms = epoch_ms();
        loop {
            let want = self
                .limit
                .map_or(ROUND_MESSAGES, |l| l.saturating_sub(counts.read))
                .min(ROUND_MESSAGES);
            if want == 0 {
                break;
            }
            let round = receive_round(
                self.sqs,
                queue_url,
                want,
                ROUND_BYTES,
                self.visibility_timeout,
                &flight.seen,
                &mut flight.held,
            )
            .await?;
            if round.is_empty() {
                break;
            }
            // More may be waiting when the round was cut short.
            let cut = round.len() >= want
                || round.iter().map(|m| m.body.len()).sum::<usize>() >= ROUND_BYTES;
            let round: Vec<Received> = round
                .into_iter()
                .filter(|m| {
                    let own = source == Source::Letters
                        && is_own_letter(m, &redriven_records, run_start_ms);
                    if own {
                        // A letter this run wrote: not part of what was asked for.
                        flight.seen.insert(m.message_id.clone());
                        flight.keep(&m.message_id, &m.receipt_handle, true);
                    }
                    !own
                })
                .collect();
            counts.read += round.len();
            run.summary.read += round.len() as u32;
            flight
                .seen
                .extend(round.iter().map(|m| m.message_id.clone()));
            self.progress.update(counts);

            // The round in parts of bounded size (see RoundBudget); each part's records are
            // dropped before the next part is read.
            let mut pending = round;
            let mut settled = 0;
            while !pending.is_empty() {
                let (items, inputs, rest) = self
                    .prepare(pending, source, kinds, &redriven_records)
                    .await;
                pending = rest;
                let reports = self.pipeline(&inputs, &mut counts, &mut run.summary).await;
                drop(inputs);
                for item in &items {
                    if let Some(letter) = &item.letter
                        && item.untouched.is_none()
                    {
                        redriven_records.insert(letter.record_key());
                    }
                }
                settled += self
                    .settle(
                        queue_url,
                        items,
                        &reports,
                        &mut run,
                        &mut counts,
                        &mut flight,
                    )
                    .await;
                self.progress.update(counts);
            }
            // A standard queue handed out everything visible unless the round was cut short;
            // a FIFO queue hands out more of a message group once some of it left the queue.
            if !(cut || (fifo && settled > 0)) {
                break;
            }
        }
        let to_release: Vec<&str> = flight
            .held
            .iter()
            .filter(|(id, _)| flight.release.contains(*id))
            .map(|(_, handle)| handle.as_str())
            .collect();
        let failed = release_messages(self.sqs, queue_url, &to_release)
            .await
            .into_iter()
            .filter(Result::is_err)
            .count();
        if failed > 0 {
            tracing::warn!(
                messages = failed,
                "could not make messages visible again; they come back after their visibility timeout"
            );
        }
        run.summary.left_in_place = run.summary.read - run.summary.deleted;
        Ok(run)
    }

    /// Sorts a round's messages and builds the inputs of the ones to redrive, until the part's
    /// [`RoundBudget`] is used up. Returns the part's messages, their inputs, and the messages
    /// left for the next part.
    async fn prepare(
        &self,
        round: Vec<Received>,
        source: Source,
        kinds: &KindFilter,
        redriven_records: &HashSet<String>,
    ) -> (Vec<Item>, Vec<OwnedInput>, Vec<Received>) {
        // The most records one message can bring: a letter is one record, a range at most the
        // deployment's batch size.
        let most_records = match source {
            Source::Letters => 1,
            Source::ShardFailures => self.stream.map_or(1, |s| s.batch_size() as usize),
        };
        let mut budget = RoundBudget::default();
        let mut items = Vec::new();
        let mut inputs: Vec<OwnedInput> = Vec::new();
        let mut rest = Vec::new();
        let mut round = round.into_iter();
        for message in round.by_ref() {
            if !budget.fits(most_records) {
                rest.push(message);
                break;
            }
            let first = inputs.len();
            let mut item = Item {
                message,
                kind: None,
                letter: None,
                inputs: first..first,
                untouched: None,
                note: None,
            };
            match source {
                Source::Letters => {
                    let triage = triage_letter(&item.message.body, kinds);
                    let letter = match triage {
                        LetterTriage::NotALetter(reason) => {
                            item.untouched = Some(Untouched::NotRecognized(reason));
                            None
                        }
                        LetterTriage::KindSkipped(letter) => {
                            item.untouched = Some(Untouched::KindSkipped(letter.kind));
                            Some(letter)
                        }
                        LetterTriage::Truncated(letter) => {
                            item.untouched = Some(Untouched::Truncated);
                            Some(letter)
                        }
                        LetterTriage::Redrive(letter) => {
                            if let Err(refusal) = admit_letter(&letter, false, self.stream) {
                                item.untouched = Some(Untouched::Refused(refusal));
                            } else if redriven_records.contains(&letter.record_key()) {
                                item.untouched = Some(Untouched::AlreadyRedriven);
                            } else {
                                inputs.push(OwnedInput::from_letter(&letter));
                            }
                            Some(letter)
                        }
                        LetterTriage::Reread(letter) => {
                            if let Err(refusal) = admit_letter(&letter, true, self.stream) {
                                item.untouched = Some(Untouched::Refused(refusal));
                            } else if redriven_records.contains(&letter.record_key()) {
                                item.untouched = Some(Untouched::AlreadyRedriven);
                            } else {
                                match self.reread(&letter).await {
                                    Ok(records) => {
                                        inputs.extend(records);
                                        item.note = Some(
                                            "the letter's data was cut to fit SQS: the record \
                                             was re-read from the stream"
                                                .into(),
                                        );
                                    }
                                    Err(why) => item.untouched = Some(why),
                                }
                            }
                            Some(letter)
                        }
                    };
                    item.kind = letter.as_ref().map(|l| l.kind.name().to_owned());
                    item.letter = letter;
                }
                Source::ShardFailures => {
                    item.kind = Some("shard_failure".into());
                    match self.range_inputs(&item.message.body).await {
                        Ok(records) => inputs.extend(records),
                        Err(why) => item.untouched = Some(why),
                    }
                }
            }
            item.inputs = first..inputs.len();
            let held: usize = inputs[first..].iter().map(OwnedInput::data_len).sum();
            budget.add(item.inputs.len(), item.message.body.len() + held);
            items.push(item);
        }
        rest.extend(round);
        (items, inputs, rest)
    }

    /// The record of a letter whose data was cut, re-read from the deployment's stream (the
    /// letter was admitted by [`admit_letter`]).
    async fn reread(&self, letter: &DeadLetter) -> Result<Vec<OwnedInput>, Untouched> {
        let scope = self
            .stream
            .ok_or(Untouched::Refused(Refusal::StreamNotConfigured))?;
        let shard = letter.shard_id.as_deref().unwrap_or_default();
        let stream_arn = scope.stream().as_str();
        let range = ShardRange::one(shard, stream_arn, &letter.sequence_number);
        let records = read_range(self.kinesis, scope, &range)
            .await
            .map_err(Untouched::Unreadable)?;
        Ok(records
            .iter()
            .map(|r| OwnedInput::from_stream(shard, stream_arn, r))
            .collect())
    }

    /// The records of the range a ShardFailureQueue message names, read from the deployment's
    /// stream once the message is admitted ([`admit_range`]).
    async fn range_inputs(&self, body: &str) -> Result<Vec<OwnedInput>, Untouched> {
        let range = ShardRange::parse(body).map_err(Untouched::NotRecognized)?;
        admit_range(&range, self.stream).map_err(Untouched::Refused)?;
        let scope = self
            .stream
            .ok_or(Untouched::Refused(Refusal::StreamNotConfigured))?;
        let records = read_range(self.kinesis, scope, &range)
            .await
            .map_err(Untouched::Unreadable)?;
        Ok(records
            .iter()
            .map(|r| OwnedInput::from_stream(&range.shard_id, scope.stream().as_str(), r))
            .collect())
    }

    /// Runs `inputs` through the pipeline in batches: one report per input, in order.
    async fn pipeline(
        &self,
        inputs: &[OwnedInput],
        counts: &mut ProgressCounts,
        summary: &mut Summary,
    ) -> Vec<RecordReport> {
        let mut reports = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(PIPELINE_BATCH) {
            let records: Vec<InputRecord<'_>> = chunk.iter().map(OwnedInput::input).collect();
            let report = pipeline::run(
                &records,
                self.settings,
                self.cases,
                self.letters,
                self.callbacks,
                Deadline::unbounded(),
            )
            .await;
            (self.after_batch)();
            summary.salesforce_api_calls += report.summary.salesforce_api_calls;
            for record in &report.records {
                *summary.actions.entry(record.action.name()).or_default() += 1;
            }
            summary.redriven += report.records.len() as u32;
            counts.processed += chunk.len();
            self.progress.update(*counts);
            reports.extend(report.records);
        }
        reports
    }

    /// Decides and does what becomes of each message of a round; writes its lines. Returns
    /// how many messages left the queue (deleted or moved).
    async fn settle(
        &self,
        queue_url: &str,
        items: Vec<Item>,
        reports: &[RecordReport],
        run: &mut RedriveRun,
        counts: &mut ProgressCounts,
        flight: &mut InFlight,
    ) -> usize {
        let fifo = queue_url.ends_with(".fifo");
        // A replacement letter written to this same FIFO queue within 5 minutes of the old
        // one carries the same deduplication id (shard/sequence), so SQS drops it.
        let dedup_risk = fifo && self.letters_queue_url == Some(queue_url);
        let now_ms = epoch_ms();
        // Messages that left the queue (deleted or moved) in this round.
        let mut settled = 0;
        let mut decided: Vec<(Item, Result<Disposition, Untouched>)> = Vec::new();
        for item in items {
            let decision = match &item.untouched {
                Some(why) => Err(why.clone()),
                None => {
                    let records = &reports[item.inputs.clone()];
                    let disposition = match item.letter {
                        Some(_) => records
                            .first()
                            .map_or(Disposition::RetryLater, |r| letter_disposition(r.action)),
                        None => {
                            range_disposition(&records.iter().map(|r| r.action).collect::<Vec<_>>())
                        }
                    };
                    Ok(disposition)
                }
            };
            decided.push((item, decision));
        }

        // Deletes (with --send).
        let mut deleted: HashMap<String, Result<(), String>> = HashMap::new();
        if self.send {
            let doomed: Vec<&Item> = decided
                .iter()
                .filter(|(item, d)| {
                    matches!(d, Ok(Disposition::Delete))
                        || (matches!(d, Ok(Disposition::Replace))
                            && !(dedup_risk && recently_sent(&item.message, now_ms)))
                })
                .map(|(item, _)| item)
                .collect();
            let handles: Vec<&str> = doomed
                .iter()
                .map(|i| i.message.receipt_handle.as_str())
                .collect();
            let results = delete_messages(self.sqs, queue_url, &handles).await;
            for (item, result) in doomed.iter().zip(results) {
                if result.is_ok() {
                    counts.deleted += 1;
                    settled += 1;
                }
                deleted.insert(item.message.message_id.clone(), result);
            }
        }

        for (item, decision) in decided {
            let id = item.message.message_id.clone();
            let letter_error = item.letter.as_ref().map(|l| l.error.code.clone());
            let letter_contact = item.letter.as_ref().and_then(|l| l.contact_id.clone());
            match decision {
                Err(why) => {
                    run.summary.untouched(&why);
                    let mut result = MessageResult::Left;
                    let mut note = why.note();
                    let movable = fifo && self.send && why != Untouched::AlreadyRedriven;
                    let mut keep = true;
                    if movable {
                        match requeue_message(self.sqs, queue_url, &item.message).await {
                            Ok(copy) => {
                                // A later round may receive the copy: keep it aside and make
                                // it visible again at the end, like the original would be.
                                flight.seen.insert(copy.clone());
                                flight.release.insert(copy);
                                result = MessageResult::Moved;
                                settled += 1;
                                note.push_str("; moved to the back of its message group");
                                keep = false;
                            }
                            Err(code) if code.starts_with("copied:") => {
                                result = MessageResult::DeleteFailed;
                                note.push_str(&format!(
                                    "; a copy was sent to the back of its message group but \
                                     this message could not be deleted ({code}): delete one of \
                                     the two by hand"
                                ));
                            }
                            Err(code) => note.push_str(&format!(
                                "; could not be moved to the back of its message group ({code})"
                            )),
                        }
                    }
                    if keep {
                        flight.keep(&id, &item.message.receipt_handle, true);
                    }
                    run.summary.message(result);
                    run.lines.push(Line {
                        message_id: id,
                        sequence_number: item.letter.as_ref().map(|l| l.sequence_number.clone()),
                        contact_id: letter_contact,
                        kind: item.kind.clone(),
                        outcome: None,
                        action: None,
                        error: Some(why.error().to_owned()),
                        letter_error,
                        message: result,
                        note: Some(note),
                    });
                }
                Ok(disposition) => {
                    let (result, note) = if !self.send {
                        (MessageResult::dry_run(disposition), item.note.clone())
                    } else {
                        match (disposition, deleted.get(&id)) {
                            (Disposition::RetryLater, _) => (
                                MessageResult::RetryLater,
                                Some(format!(
                                    "failed again: left in place, visible again in {} s",
                                    self.visibility_timeout.as_secs()
                                )),
                            ),
                            (_, Some(Ok(()))) if disposition == Disposition::Replace => (
                                MessageResult::Replaced,
                                Some(
                                    "dead-lettered again: the new letter replaces this one".into(),
                                ),
                            ),
                            (_, Some(Ok(()))) => (MessageResult::Deleted, item.note.clone()),
                            (_, Some(Err(code))) => (
                                MessageResult::DeleteFailed,
                                Some(format!("DeleteMessageBatch failed ({code}): left in place")),
                            ),
                            (_, None) => (
                                MessageResult::RetryLater,
                                Some(
                                    "dead-lettered again, but this FIFO queue drops a letter \
                                     for the same record within 5 minutes of the last one: \
                                     kept this one, redrive it later"
                                        .into(),
                                ),
                            ),
                        }
                    };
                    let deleted_now =
                        matches!(result, MessageResult::Deleted | MessageResult::Replaced);
                    if !deleted_now {
                        // A dry run changes nothing: every message is visible again at the end.
                        flight.keep(&id, &item.message.receipt_handle, !self.send);
                    }
                    run.summary.message(result);
                    let records = &reports[item.inputs.clone()];
                    if records.is_empty() {
                        run.lines.push(Line {
                            message_id: id.clone(),
                            sequence_number: None,
                            contact_id: None,
                            kind: item.kind.clone(),
                            outcome: None,
                            action: None,
                            error: None,
                            letter_error: letter_error.clone(),
                            message: result,
                            note: note.clone(),
                        });
                    }
                    for record in records {
                        run.lines.push(Line {
                            message_id: id.clone(),
                            sequence_number: Some(record.sequence_number.clone()),
                            contact_id: record
                                .contact_id
                                .clone()
                                .or_else(|| letter_contact.clone()),
                            kind: item.kind.clone(),
                            outcome: Some(record.outcome),
                            action: Some(record.action),
                            error: record.error.clone(),
                            letter_error: letter_error.clone(),
                            message: result,
                            note: note.clone(),
                        });
                    }
                }
            }
        }
        settled
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Whether `message` is a letter this run wrote: one for a record the run redrove, sent since
/// the run started (a minute earlier, for clock skew). An older letter for such a record is a
/// duplicate and is reported ([`Untouched::AlreadyRedriven`]).
fn is_own_letter(message: &Received, redriven: &HashSet<String>, run_start_ms: u64) -> bool {
    !redriven.is_empty()
        && message
            .sent_at_ms
            .is_some_and(|sent| sent + 60_000 >= run_start_ms)
        && serde_json::from_str::<DeadLetter>(&message.body)
            .is_ok_and(|l| redriven.contains(&l.record_key()))
}

/// Whether `message` was sent within the FIFO deduplication window.
fn recently_sent(message: &Received, now_ms: u64) -> bool {
    message
        .sent_at_ms
        .is_none_or(|sent| now_ms.saturating_sub(sent) < FIFO_DEDUP_WINDOW.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::letter::{DeadLetterError, Origin};

    const ID: &str = "5ca32fbd-8f92-46af-92a5-6b0f970f0efe";

    fn letter(kind: LetterKind, data: &str) -> DeadLetter {
        DeadLetter::new(
            kind,
            DeadLetterError {
                code: "salesforce_unavailable".into(),
                message: "m".into(),
                status: None,
                fields: vec![],
            },
            &Origin {
                sequence_number: "4959".into(),
                shard_id: Some("shardId-000000000001".into()),
                event_source_arn: Some("arn:aws:kinesis:eu-west-1:123456789012:stream/ctr".into()),
                partition_key: Some(ID.into()),
                approximate_arrival_timestamp: Some(1_700_000_000.5),
            },
            Some(ID.into()),
            data,
        )
    }

    fn dropped_ctr() -> String {
        format!(r#"{{"ContactId":"{ID}","Channel":"VOICE","InitiationMethod":"INBOUND"}}"#)
    }

    #[test]
    fn kind_filter_parses_lists_and_defaults_to_parked_and_rejected() {
        let default = KindFilter::default();
        assert!(default.contains(LetterKind::Parked));
        assert!(default.contains(LetterKind::SalesforceRejected));
        assert!(!default.contains(LetterKind::PoisonRecord));
        let all = KindFilter::parse("poison_record, parked,parked").unwrap();
        assert_eq!(all.kinds(), [LetterKind::PoisonRecord, LetterKind::Parked]);
        assert!(matches!(
            KindFilter::parse("parked,bogus"),
            Err(RedriveError::UnknownKind(k)) if k == "bogus"
        ));
        assert!(matches!(
            KindFilter::parse(" , "),
            Err(RedriveError::NoKinds)
        ));
    }

    #[test]
    fn triage_sorts_letters_by_kind_truncation_and_shape() {
        let kinds = KindFilter::default();
        let parked = letter(LetterKind::Parked, "e30=");
        assert!(
            matches!(triage_letter(&parked.body(), &kinds), LetterTriage::Redrive(l) if *l == parked)
        );
        let poison = letter(LetterKind::PoisonRecord, "e30=");
        assert!(matches!(
            triage_letter(&poison.body(), &kinds),
            LetterTriage::KindSkipped(l) if l.kind == LetterKind::PoisonRecord
        ));
        let mut cut = letter(LetterKind::SalesforceRejected, "e30=");
        cut.data_truncated = true;
        assert!(matches!(
            triage_letter(&cut.body(), &kinds),
            LetterTriage::Reread(_)
        ));
        cut.event_source_arn = None;
        assert!(matches!(
            triage_letter(&cut.body(), &kinds),
            LetterTriage::Truncated(_)
        ));
        match triage_letter("call +15551234567 back", &kinds) {
            LetterTriage::NotALetter(reason) => {
                assert_eq!(reason, "not a dead letter: the body is not JSON");
            }
            other => panic!("{other:?}"),
        }
        match triage_letter(r#"{"phone":"+15551234567"}"#, &kinds) {
            LetterTriage::NotALetter(reason) => {
                assert!(
                    reason.contains("expected fields") && !reason.contains("+1555"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    /// Base64 letters become a JSON string again, inline ones the object: both decode to the
    /// original CTR through the pipeline's own data path.
    #[test]
    fn letter_data_is_rewrapped_as_kinesis_delivered_it() {
        let ctr = dropped_ctr();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&ctr);
        let raw = letter_data(&encoded).unwrap();
        assert_eq!(raw.get(), format!("\"{encoded}\""));
        assert_eq!(
            crate::event::data_bytes(Some(&raw)).unwrap(),
            ctr.as_bytes()
        );
        let inline = letter_data(&ctr).unwrap();
        assert_eq!(inline.get(), ctr);
        assert_eq!(
            crate::event::data_bytes(Some(&inline)).unwrap(),
            ctr.as_bytes()
        );
        assert!(letter_data("").is_none());
        // Broken inline JSON stays a string, so it is poison again, not a crash.
        let broken = letter_data("{not json").unwrap();
        assert_eq!(broken.get(), r#""{not json""#);
    }

    #[test]
    fn letter_input_keeps_the_record_origin_and_plans_a_case() {
        let encoded = base64::engine::general_purpose::STANDARD.encode(dropped_ctr());
        let l = letter(LetterKind::Parked, &encoded);
        let owned = OwnedInput::from_letter(&l);
        let input = owned.input();
        assert_eq!(input.sequence_number, "4959");
        assert_eq!(input.shard_id, Some("shardId-000000000001"));
        assert_eq!(input.partition_key, Some(ID));
        assert_eq!(input.arrival, Some(1_700_000_000.5));
        assert_eq!(
            input.origin(),
            Origin {
                sequence_number: l.sequence_number.clone(),
                shard_id: l.shard_id.clone(),
                event_source_arn: l.event_source_arn.clone(),
                partition_key: l.partition_key.clone(),
                approximate_arrival_timestamp: l.approximate_arrival_timestamp,
            }
        );
        let plan = crate::plan::plan(&[input], &Settings::default());
        assert_eq!(plan.records[0].outcome, "dropped");
        assert_eq!(plan.cases.len(), 1);
    }

    #[test]
    fn stream_input_is_base64_data_with_the_range_origin() {
        let record = StreamRecord {
            sequence_number: "7".into(),
            partition_key: Some("pk".into()),
            arrival: Some(2.0),
            data: dropped_ctr().into_bytes(),
        };
        let owned = OwnedInput::from_stream("shardId-2", "arn:aws:kinesis:r:1:stream/s", &record);
        let input = owned.input();
        assert_eq!(input.event_source_arn, Some("arn:aws:kinesis:r:1:stream/s"));
        assert!(owned.data.as_ref().unwrap().get().starts_with('"'));
        assert_eq!(
            input.delivered_text(),
            base64::engine::general_purpose::STANDARD.encode(dropped_ctr())
        );
    }

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

    const LETTER_STREAM: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/ctr";

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

    #[test]
    fn letters_naming_another_stream_or_needing_an_unconfigured_one_are_refused() {
        let full = letter(LetterKind::Parked, "e30=");
        let ours = scope(LETTER_STREAM, 100);
        let other = scope("arn:aws:kinesis:eu-west-1:999999999999:stream/ctr", 100);
        // Full data: redriven without a stream; with one, only when the letter names it.
        assert_eq!(admit_letter(&full, false, None), Ok(()));
        assert_eq!(admit_letter(&full, false, Some(&ours)), Ok(()));
        assert!(matches!(
            admit_letter(&full, false, Some(&other)),
            Err(Refusal::OtherStream {
                differs: "account",
                ..
            })
        ));
        // Data cut: re-read only from the configured stream.
        assert_eq!(
            admit_letter(&full, true, None),
            Err(Refusal::StreamNotConfigured)
        );
        assert_eq!(admit_letter(&full, true, Some(&ours)), Ok(()));
        assert!(admit_letter(&full, true, Some(&other)).is_err());
        let mut crafted = full.clone();
        crafted.event_source_arn =
            Some("arn:aws:kinesis:ap-south-1:123456789012:stream/ctr".into());
        assert!(matches!(
            admit_letter(&crafted, true, Some(&ours)),
            Err(Refusal::OtherStream {
                differs: "Region",
                ..
            })
        ));
        // A letter that names no stream (replay) has nothing to check.
        let mut unnamed = full;
        unnamed.event_source_arn = None;
        assert_eq!(admit_letter(&unnamed, false, Some(&ours)), Ok(()));
    }

    /// Kinesis sequence numbers are not contiguous: the bound counts records, and a range that
    /// goes on past it is refused, not cut.
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
        // GetRecords never asks past Kinesis' own maximum.
        let r = range("1", Some("9"), None);
        assert_eq!(RangeCollector::new(&r, 10_000).wanted(), MAX_GET_RECORDS);
    }

    #[test]
    fn round_parts_stay_within_the_record_and_byte_bounds() {
        let mut budget = RoundBudget::default();
        assert!(
            budget.fits(ROUND_RECORDS + 1),
            "an empty part takes any message"
        );
        budget.add(100, 10);
        assert!(budget.fits(ROUND_RECORDS - 100));
        assert!(!budget.fits(ROUND_RECORDS - 99));
        budget.add(0, ROUND_BYTES);
        assert!(!budget.fits(1));
        let mut letters = RoundBudget::default();
        for _ in 0..1_000 {
            assert!(letters.fits(1));
            letters.add(1, 1_000);
        }
    }

    #[test]
    fn refused_and_oversized_messages_are_counted_by_reason() {
        let mut summary = Summary::default();
        summary.untouched(&Untouched::Refused(Refusal::StreamNotConfigured));
        summary.untouched(&Untouched::Refused(Refusal::NotAStreamArn));
        summary.untouched(&Untouched::Unreadable(RangeError::TooLarge("x".into())));
        summary.untouched(&Untouched::Refused(Refusal::BatchTooLarge {
            claimed: 2,
            batch_size: 1,
        }));
        assert_eq!(summary.not_redriven["stream_not_configured"], 1);
        assert_eq!(summary.not_redriven["other_stream"], 1);
        assert_eq!(summary.not_redriven["range_too_large"], 2);
        assert!(
            Untouched::Unreadable(RangeError::TooLarge("x".into()))
                .note()
                .contains("--batch-size")
        );
    }

    #[test]
    fn only_final_actions_delete_and_new_letters_replace() {
        assert_eq!(letter_disposition(Action::UpsertCase), Disposition::Delete);
        assert_eq!(letter_disposition(Action::Skipped), Disposition::Delete);
        assert_eq!(letter_disposition(Action::Superseded), Disposition::Delete);
        assert_eq!(letter_disposition(Action::DeadLetter), Disposition::Replace);
        assert_eq!(letter_disposition(Action::Retry), Disposition::RetryLater);
        assert_eq!(
            range_disposition(&[Action::UpsertCase, Action::DeadLetter, Action::Skipped]),
            Disposition::Delete
        );
        assert_eq!(
            range_disposition(&[Action::UpsertCase, Action::Retry]),
            Disposition::RetryLater
        );
        assert_eq!(range_disposition(&[]), Disposition::RetryLater);
    }

    #[test]
    fn untouched_messages_are_counted_by_reason_and_kind() {
        let mut summary = Summary::default();
        summary.untouched(&Untouched::KindSkipped(LetterKind::PoisonRecord));
        summary.untouched(&Untouched::KindSkipped(LetterKind::PoisonRecord));
        summary.untouched(&Untouched::Truncated);
        summary.untouched(&Untouched::Unreadable(RangeError::Gone("x".into())));
        assert_eq!(summary.skipped_kinds["poison_record"], 2);
        assert_eq!(summary.not_redriven["data_truncated"], 1);
        assert_eq!(summary.not_redriven["range_gone"], 1);
        summary.message(MessageResult::Replaced);
        summary.message(MessageResult::RetryLater);
        assert_eq!(summary.deleted, 1);
        assert_eq!(summary.messages["retry_later"], 1);
        assert!(
            Untouched::KindSkipped(LetterKind::PoisonRecord)
                .note()
                .contains("--kinds")
        );
    }

    /// A later round must not redrive the letters this run wrote; an older duplicate is still
    /// reported.
    #[test]
    fn own_letters_are_those_for_redriven_records_sent_since_the_run_started() {
        let body = letter(LetterKind::SalesforceRejected, "e30=").body();
        let message = |sent| Received {
            message_id: "m".into(),
            receipt_handle: "h".into(),
            body: body.clone(),
            group_id: None,
            sent_at_ms: Some(sent),
            attributes: HashMap::new(),
        };
        let start = 10_000_000;
        let redriven: HashSet<String> = ["shardId-000000000001/4959".to_owned()].into();
        assert!(is_own_letter(&message(start + 5), &redriven, start));
        assert!(!is_own_letter(
            &message(start - 3_600_000),
            &redriven,
            start
        ));
        assert!(!is_own_letter(&message(start + 5), &HashSet::new(), start));
        let other: HashSet<String> = ["shardId-000000000001/1".to_owned()].into();
        assert!(!is_own_letter(&message(start + 5), &other, start));
    }

    #[test]
    fn fifo_dedup_window_is_measured_from_the_send_time() {
        let mut m = Received {
            message_id: "m".into(),
            receipt_handle: "h".into(),
            body: String::new(),
            group_id: None,
            sent_at_ms: Some(1_000_000),
            attributes: HashMap::new(),
        };
        assert!(recently_sent(&m, 1_000_000 + 60_000));
        assert!(!recently_sent(&m, 1_000_000 + 7 * 60_000));
        m.sent_at_ms = None;
        assert!(recently_sent(&m, 0), "unknown send time: assume the worst");
    }
}
