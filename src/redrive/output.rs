//! What a run reports: one [`Line`] per redriven record and per message not redriven, the
//! run's [`Summary`], and its progress counts ([`Progress`]). Holds no customer data.

use std::collections::BTreeMap;

use serde::Serialize;

use super::decide::{Disposition, Untouched};
use crate::report::Action;

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
    /// A callback request: sent to the callback queue again, then deleted.
    Resent,
    /// Dry run: a callback request that would be sent to the callback queue again and deleted.
    WouldResend,
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
            MessageResult::Resent => "resent",
            MessageResult::WouldResend => "would_resend",
        }
    }

    /// What a dry run reports for a message with `disposition`.
    pub fn dry_run(disposition: Disposition) -> Self {
        match disposition {
            Disposition::Delete => MessageResult::WouldDelete,
            Disposition::Replace => MessageResult::WouldReplace,
            Disposition::RetryLater => MessageResult::WouldRetryLater,
            Disposition::Resend => MessageResult::WouldResend,
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
    /// Messages deleted (including replaced letters and callback requests sent again).
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
    /// Counts what became of a message.
    pub fn message(&mut self, result: MessageResult) {
        *self.messages.entry(result.name()).or_default() += 1;
        if matches!(
            result,
            MessageResult::Deleted | MessageResult::Replaced | MessageResult::Resent
        ) {
            self.deleted += 1;
        }
    }

    /// Counts a message not redriven.
    pub fn untouched(&mut self, why: &Untouched) {
        match why {
            Untouched::KindSkipped(kind) => {
                *self.skipped_kinds.entry(kind.name()).or_default() += 1
            }
            other => *self.not_redriven.entry(other.code()).or_default() += 1,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::letter::LetterKind;
    use crate::shard_range::RangeError;
    use crate::stream_scope::Refusal;

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
}
