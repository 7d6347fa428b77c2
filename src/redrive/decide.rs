//! The pure decisions of a redrive: what a message is ([`triage_letter`]), whether it may be
//! redriven ([`admit_letter`]), a letter → a pipeline input ([`OwnedInput`]), how much a part of
//! a round holds ([`RoundBudget`]), and what becomes of a message once its records went through
//! the pipeline ([`letter_disposition`], [`range_disposition`], [`sent_result`]).

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;
use serde_json::value::RawValue;

use super::options::KindFilter;
use super::output::MessageResult;
use crate::callback::{CallbackRequest, RequestError};
use crate::input::InputRecord;
use crate::letter::{DeadLetter, LetterKind};
use crate::report::Action;
use crate::shard_range::{RangeError, StreamRecord, not_json_reason};
use crate::stream_scope::{MAX_BATCH_SIZE, Refusal, StreamScope};

/// Most new messages received before a round is processed (bounds memory on big queues).
pub const ROUND_MESSAGES: usize = 1_000;

/// Most message body bytes received for a round, and most bytes of bodies and record data a
/// part of a round holds (each may pass it by one `ReceiveMessage` answer or one message).
pub const ROUND_BYTES: usize = 64 * 1024 * 1024;

/// Most records a part of a round holds: one range of the largest batch size.
pub const ROUND_RECORDS: usize = MAX_BATCH_SIZE as usize;

/// FIFO queues drop a message whose deduplication id was used in the last 5 minutes (SQS
/// developer guide, "Exactly-once processing"); one more minute covers clock skew.
const FIFO_DEDUP_WINDOW: Duration = Duration::from_secs(6 * 60);

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
    /// A callback request the callback function dead-lettered (Amazon Connect refused it for
    /// good): send it to the callback queue again.
    CallbackRequest(Box<CallbackRequest>),
    /// Not a dead letter (nor a callback request that can be sent again); the reason names no
    /// value from the body.
    NotALetter(String),
}

/// Sorts a message body into a [`LetterTriage`]: a dead letter, else a callback request (the
/// callback dead-letter queue holds those), else neither.
pub fn triage_letter(body: &str, kinds: &KindFilter) -> LetterTriage {
    let letter: DeadLetter = match serde_json::from_str(body) {
        Ok(letter) => letter,
        Err(e) => {
            return match CallbackRequest::parse(body) {
                Ok(request) => LetterTriage::CallbackRequest(Box::new(request)),
                Err(RequestError::Unreadable(_)) => {
                    LetterTriage::NotALetter(not_json_reason(&e, "a dead letter"))
                }
                Err(refused) => LetterTriage::NotALetter(format!(
                    "a callback request that cannot be sent again: {refused}"
                )),
            };
        }
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
            data: self.data.as_deref(),
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

/// Why a letter that asks to be redriven (`reread`: from the stream) is left alone this run:
/// the stream refuses it ([`admit_letter`]), or this run already redrove its record
/// (`redriven`, by [`DeadLetter::record_key`]). `None`: redrive it.
pub fn held_back(
    letter: &DeadLetter,
    reread: bool,
    scope: Option<&StreamScope>,
    redriven: &HashSet<String>,
) -> Option<Untouched> {
    if let Err(refusal) = admit_letter(letter, reread, scope) {
        Some(Untouched::Refused(refusal))
    } else if redriven.contains(&letter.record_key()) {
        Some(Untouched::AlreadyRedriven)
    } else {
        None
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
    /// A callback request: send it to the callback queue again, then delete it.
    Resend,
}

/// What a message of a round holds, once sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// A dead letter: one record.
    Letter,
    /// A ShardFailureQueue message: a range of records.
    Range,
    /// A callback request: no record, it goes back to the callback queue.
    CallbackRequest,
}

/// What to do with a message holding `holds` whose records ended with `actions` (in order).
pub fn disposition(holds: Holds, actions: &[Action]) -> Disposition {
    match holds {
        Holds::Letter => actions
            .first()
            .map_or(Disposition::RetryLater, |a| letter_disposition(*a)),
        Holds::Range => range_disposition(actions),
        Holds::CallbackRequest => Disposition::Resend,
    }
}

/// Whether a message with `disposition` is deleted now (with `--send`). A replaced letter on
/// a FIFO queue that also receives its replacement (`dedup_risk`) is kept while it was sent
/// within the deduplication window (`recent`): SQS would drop the replacement as a duplicate.
/// A callback request is deleted only once it was sent again (`resent`).
pub fn deletes(disposition: Disposition, dedup_risk: bool, recent: bool, resent: bool) -> bool {
    match disposition {
        Disposition::Delete => true,
        Disposition::Replace => !(dedup_risk && recent),
        Disposition::Resend => resent,
        Disposition::RetryLater => false,
    }
}

/// The deduplication id of a callback request sent again from the callback dead-letter queue
/// (`message_id`: its id there). Not the ContactId the stream function uses, which SQS would
/// drop within 5 minutes of the first request; one per dead-lettered message, so a second
/// redrive of the same message within 5 minutes (its delete failed) is dropped, not queued
/// twice. Either way the contact gets at most one task: the callback function skips a Case
/// whose task field is set, and Connect's `ClientToken` (from the ContactId) returns the first
/// task. At most 36 + 9 + 100 characters, within SQS's 128 for message ids it issues (UUIDs).
pub fn callback_dedup_id(contact_id: &str, message_id: &str) -> String {
    format!("{contact_id}-redrive-{message_id}")
}

/// How a message with `disposition` was settled with `--send`, for its line: `deleted` is the
/// delete's result when one was asked for, `send_error` the callback queue's error code when
/// a callback request could not be sent again; `note` is the note the message already had (a
/// re-read record).
pub fn sent_result(
    disposition: Disposition,
    deleted: Option<&Result<(), String>>,
    send_error: Option<&str>,
    visibility: Duration,
    note: Option<String>,
) -> (MessageResult, Option<String>) {
    let later = |why: &str| {
        (
            MessageResult::RetryLater,
            Some(format!(
                "{why}: left in place, visible again in {} s",
                visibility.as_secs()
            )),
        )
    };
    match (disposition, deleted) {
        (Disposition::RetryLater, _) => later("failed again"),
        (Disposition::Resend, None) => later(&format!(
            "could not be sent to the callback queue ({})",
            send_error.unwrap_or("not sent")
        )),
        (Disposition::Resend, Some(Ok(()))) => (
            MessageResult::Resent,
            Some("sent to the callback queue again".into()),
        ),
        (Disposition::Resend, Some(Err(code))) => (
            MessageResult::DeleteFailed,
            Some(format!(
                "sent to the callback queue again, but DeleteMessageBatch failed ({code}): left \
                 in place; redriving it again starts no second task for the contact"
            )),
        ),
        (Disposition::Replace, Some(Ok(()))) => (
            MessageResult::Replaced,
            Some("dead-lettered again: the new letter replaces this one".into()),
        ),
        (_, Some(Ok(()))) => (MessageResult::Deleted, note),
        (_, Some(Err(code))) => (
            MessageResult::DeleteFailed,
            Some(format!("DeleteMessageBatch failed ({code}): left in place")),
        ),
        (_, None) => (
            MessageResult::RetryLater,
            Some(
                "dead-lettered again, but this FIFO queue drops a letter for the same record \
                 within 5 minutes of the last one: kept this one, redrive it later"
                    .into(),
            ),
        ),
    }
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
    /// duplicate. Redriven by a later run. Also a callback request for a contact whose request
    /// this run already sent again.
    AlreadyRedriven,
    /// A callback request, and no callback queue to send it to.
    NoCallbackQueue,
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
            Untouched::NoCallbackQueue => "a callback request, and no callback queue to send \
                it to: set CALLBACK_QUEUE_URL (or --callback-queue) to the stack's callback \
                queue"
                .into(),
        }
    }

    /// The reason code for the output line's `error`, and the summary's counts.
    pub fn code(&self) -> &'static str {
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
            Untouched::NoCallbackQueue => "callback_queue_not_configured",
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

/// Whether a message (`body`, sent at `sent_at_ms`) is a letter this run wrote: one for a
/// record the run redrove, sent since the run started (a minute earlier, for clock skew). An
/// older letter for such a record is a duplicate and is reported
/// ([`Untouched::AlreadyRedriven`]).
pub fn is_own_letter(
    body: &str,
    sent_at_ms: Option<u64>,
    redriven: &HashSet<String>,
    run_start_ms: u64,
) -> bool {
    !redriven.is_empty()
        && sent_at_ms.is_some_and(|sent| sent + 60_000 >= run_start_ms)
        && serde_json::from_str::<DeadLetter>(body)
            .is_ok_and(|l| redriven.contains(&l.record_key()))
}

/// Whether a message sent at `sent_at_ms` (unknown: assume so) was sent within the FIFO
/// deduplication window.
pub fn recently_sent(sent_at_ms: Option<u64>, now_ms: u64) -> bool {
    sent_at_ms.is_none_or(|sent| now_ms.saturating_sub(sent) < FIFO_DEDUP_WINDOW.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::letter::{DeadLetterError, Origin};
    use crate::plan::Settings;

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
        // The data counts as delivered: base64 text, as a JSON string with its quotes.
        assert_eq!(owned.data_len(), encoded.len() + 2);
        let mut empty = l.clone();
        empty.data = String::new();
        assert_eq!(OwnedInput::from_letter(&empty).data_len(), 0);
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

    fn scope(arn: &str, batch_size: u32) -> StreamScope {
        StreamScope::new(
            crate::stream_scope::StreamArn::parse(arn).unwrap(),
            batch_size,
        )
        .unwrap()
    }

    const LETTER_STREAM: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/ctr";

    /// A letter is redriven from its own data anywhere, but re-read only from the deployment's
    /// configured stream, and never from a stream it names that is not the deployment's.
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

    #[test]
    fn letters_are_held_back_when_refused_or_already_redriven_this_run() {
        let full = letter(LetterKind::Parked, "e30=");
        let ours = scope(LETTER_STREAM, 100);
        let mut redriven = HashSet::new();
        assert_eq!(held_back(&full, false, Some(&ours), &redriven), None);
        assert_eq!(held_back(&full, true, Some(&ours), &redriven), None);
        assert_eq!(
            held_back(&full, true, None, &redriven),
            Some(Untouched::Refused(Refusal::StreamNotConfigured))
        );
        redriven.insert(full.record_key());
        assert_eq!(
            held_back(&full, false, Some(&ours), &redriven),
            Some(Untouched::AlreadyRedriven)
        );
        // A refusal is named first: the record key says nothing about the stream.
        assert_eq!(
            held_back(&full, true, None, &redriven),
            Some(Untouched::Refused(Refusal::StreamNotConfigured))
        );
    }

    /// A round part holds at most [`ROUND_RECORDS`] records and [`ROUND_BYTES`] of data; an empty
    /// part takes any one message, so no message is ever too big to be redriven.
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
        let mut big = RoundBudget::default();
        big.add(1, 63 * 1024 * 1024);
        assert!(big.fits(1), "a part holds up to 64 MiB of data");
        let mut just_under = RoundBudget::default();
        just_under.add(1, ROUND_BYTES - 1);
        assert!(just_under.fits(1));
        let mut full = RoundBudget::default();
        full.add(1, ROUND_BYTES);
        assert!(
            !full.fits(1),
            "a part that reached the byte bound takes no more"
        );
        budget.add(0, ROUND_BYTES);
        assert!(!budget.fits(1));
        let mut letters = RoundBudget::default();
        for _ in 0..1_000 {
            assert!(letters.fits(1));
            letters.add(1, 1_000);
        }
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
    fn own_letters_are_those_for_redriven_records_sent_since_the_run_started() {
        let body = letter(LetterKind::SalesforceRejected, "e30=").body();
        let own = |sent: u64, redriven: &HashSet<String>, start| {
            is_own_letter(&body, Some(sent), redriven, start)
        };
        let start = 10_000_000;
        let redriven: HashSet<String> = ["shardId-000000000001/4959".to_owned()].into();
        assert!(own(start + 5, &redriven, start));
        assert!(!own(start - 3_600_000, &redriven, start));
        assert!(!own(start + 5, &HashSet::new(), start));
        let other: HashSet<String> = ["shardId-000000000001/1".to_owned()].into();
        assert!(!own(start + 5, &other, start));
        assert!(
            !is_own_letter(&body, None, &redriven, start),
            "unknown send time: not this run's"
        );
    }

    #[test]
    fn fifo_dedup_window_is_measured_from_the_send_time() {
        let sent_at_ms = Some(1_000_000);
        assert!(recently_sent(sent_at_ms, 1_000_000 + 60_000));
        // Five minutes (the SQS window) plus one for clock skew.
        assert!(recently_sent(sent_at_ms, 1_000_000 + 6 * 60_000 - 1));
        assert!(!recently_sent(sent_at_ms, 1_000_000 + 6 * 60_000));
        assert!(!recently_sent(sent_at_ms, 1_000_000 + 7 * 60_000));
        assert!(
            recently_sent(None, 0),
            "unknown send time: assume the worst"
        );
    }

    fn callback_body(case_id: Option<&str>) -> String {
        let mut request = serde_json::json!({
            "contactId": ID,
            "phone": "+15551234567",
            "outcome": "dropped",
        });
        if let Some(case_id) = case_id {
            request["caseId"] = case_id.into();
        }
        request.to_string()
    }

    /// Issue #20: the callback dead-letter queue holds callback requests, not dead letters.
    #[test]
    fn callback_requests_are_triaged_apart_from_letters() {
        let kinds = KindFilter::default();
        match triage_letter(&callback_body(Some("500000000000001AAA")), &kinds) {
            LetterTriage::CallbackRequest(request) => assert_eq!(request.contact_id, ID),
            other => panic!("{other:?}"),
        }
        match triage_letter(&callback_body(None), &kinds) {
            LetterTriage::NotALetter(reason) => {
                assert!(reason.contains("names no Case"), "{reason}");
                assert!(!reason.contains("+1555"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_redriven_callback_request_gets_a_dedup_id_of_its_own_per_message() {
        let message = "059f36b4-87a3-44ab-83d2-661975830a7d";
        let id = callback_dedup_id(ID, message);
        assert_ne!(id, ID, "the ContactId alone is dropped within 5 minutes");
        assert_eq!(id, callback_dedup_id(ID, message), "stable for one message");
        assert_ne!(id, callback_dedup_id(ID, "another-message"));
        assert!(id.starts_with(ID) && id.len() <= 128, "{id}");
    }

    #[test]
    fn only_final_messages_and_resent_requests_are_deleted() {
        assert_eq!(
            disposition(Holds::Letter, &[Action::DeadLetter]),
            Disposition::Replace
        );
        assert_eq!(disposition(Holds::Letter, &[]), Disposition::RetryLater);
        assert_eq!(
            disposition(Holds::Range, &[Action::UpsertCase]),
            Disposition::Delete
        );
        assert_eq!(
            disposition(Holds::CallbackRequest, &[]),
            Disposition::Resend
        );
        assert!(deletes(Disposition::Delete, true, true, false));
        assert!(deletes(Disposition::Replace, false, true, false));
        assert!(deletes(Disposition::Replace, true, false, false));
        assert!(!deletes(Disposition::Replace, true, true, false));
        assert!(deletes(Disposition::Resend, false, false, true));
        assert!(!deletes(Disposition::Resend, false, false, false));
        assert!(!deletes(Disposition::RetryLater, false, false, true));
    }

    #[test]
    fn send_results_say_what_became_of_each_message() {
        let visibility = Duration::from_secs(900);
        let ok = Ok(());
        let refused = Err("InternalError".to_owned());
        let note = || Some("re-read".to_owned());
        let result =
            |d, deleted, send_error| sent_result(d, deleted, send_error, visibility, note());
        assert_eq!(
            result(Disposition::Delete, Some(&ok), None),
            (MessageResult::Deleted, note())
        );
        assert_eq!(
            result(Disposition::Replace, Some(&ok), None).0,
            MessageResult::Replaced
        );
        let (kept, why) = result(Disposition::Replace, None, None);
        assert_eq!(kept, MessageResult::RetryLater);
        assert!(why.unwrap().contains("FIFO"));
        let (failed, why) = result(Disposition::Delete, Some(&refused), None);
        assert_eq!(failed, MessageResult::DeleteFailed);
        assert!(why.unwrap().contains("InternalError"));
        let (later, why) = result(Disposition::RetryLater, Some(&ok), None);
        assert_eq!(later, MessageResult::RetryLater);
        assert!(why.unwrap().contains("900 s"));
        assert_eq!(
            result(Disposition::Resend, Some(&ok), None).0,
            MessageResult::Resent
        );
        let (unsent, why) = result(Disposition::Resend, None, Some("AccessDenied"));
        assert_eq!(unsent, MessageResult::RetryLater);
        assert!(why.unwrap().contains("AccessDenied"));
        let (sent_kept, why) = result(Disposition::Resend, Some(&refused), None);
        assert_eq!(sent_kept, MessageResult::DeleteFailed);
        assert!(why.unwrap().contains("no second task"));
    }
}
