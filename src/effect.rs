//! The effects a plan asks for and what became of them: the vocabulary shared by `plan` (which
//! decides them), `execute` (which performs them through the sinks below) and `report` (which
//! turns their results into each record's final state).
//!
//! Pure: types and the sink traits, no I/O. The Salesforce client and the dead-letter queues
//! implement the traits; a recording implementation of each backs the replay dry run.

use std::future::Future;

use crate::callback::CallbackRequest;
use crate::case::CaseRecord;
use crate::letter::{DeadLetter, DeadLetterError};
use crate::linking::Link;
use crate::retry::Deadline;

/// What the caller must do about a failed effect. The layer that talks to a service decides
/// the class from what the service answered; the report decides the action from the
/// class, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Try again after a backoff (5xx, dropped connection, timeout, row lock).
    Transient,
    /// Too many concurrent long requests: back off, then try again.
    Throttled,
    /// The session expired or was revoked: refresh the token once, then try again.
    AuthExpired,
    /// The daily API quota is gone: stop calling, report the records for a later retry.
    QuotaExhausted,
    /// The credentials or connected app are wrong: nothing will work until someone fixes the
    /// configuration; report the records for a later retry.
    AuthRejected,
    /// The record or the mapping is wrong: retrying cannot help; dead-letter the record.
    Permanent,
    /// Salesforce cannot be used at all right now (unreachable after the bounded retries, a
    /// proxy's answer instead of Salesforce's, the API disabled, a refused instance URL):
    /// stop calling and report the records for a later retry.
    Unavailable,
    /// The configuration does not fit the org (a mapped field missing or read-only, a template
    /// value outside a restricted picklist, a required field not mapped): no record can be
    /// written until someone fixes the org or the mapping. Hold every record (report for
    /// retry, as in an outage); nothing is dead-lettered.
    Configuration,
    /// The Case exists but the integration user may not read or edit it (Private sharing after
    /// an assignment rule or an agent took it): final for this record, dead-lettered with its
    /// own kind so it never blocks the shard; redriven once access is granted.
    NoAccess,
    /// The invocation's deadline came before the effect could be attempted: no service is at
    /// fault and no retry fits in this invocation; report the record for a later retry.
    OutOfTime,
}

impl ErrorClass {
    /// Whether a retry inside the same invocation may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::Transient | ErrorClass::Throttled | ErrorClass::AuthExpired
        )
    }

    /// Whether nothing else in this invocation can succeed once this happened (stop calling).
    pub fn stops_the_batch(self) -> bool {
        matches!(
            self,
            ErrorClass::QuotaExhausted
                | ErrorClass::AuthRejected
                | ErrorClass::Unavailable
                | ErrorClass::Configuration
        )
    }
}

/// A failed effect, as data: what the service said, with its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What to do about it.
    pub class: ErrorClass,
    /// A stable code: a Salesforce `errorCode`, an OAuth error, `timeout`, `not_attempted`, …
    pub code: String,
    /// The service's own message. May quote record values (phone numbers): it goes to the
    /// dead-letter queue, never to the logs.
    pub message: String,
    /// A description safe to log (codes and field names only).
    pub summary: String,
    /// HTTP status, when there was one.
    pub status: Option<u16>,
    /// Fields the error is about.
    pub fields: Vec<String>,
}

impl Failure {
    /// A failure with no service answer behind it (`not_attempted`, `deadline_reached`, …).
    pub fn local(class: ErrorClass, code: &str, summary: &str) -> Self {
        Failure {
            class,
            code: code.to_owned(),
            message: summary.to_owned(),
            summary: summary.to_owned(),
            status: None,
            fields: Vec::new(),
        }
    }
}

impl From<&Failure> for DeadLetterError {
    /// Keeps the service's own message and fields: they go to the queue, never to the logs.
    fn from(f: &Failure) -> Self {
        DeadLetterError {
            code: f.code.clone(),
            message: f.message.clone(),
            status: f.status,
            fields: f.fields.clone(),
        }
    }
}

/// What became of one Case write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written to Salesforce.
    Written {
        /// The Case id.
        id: String,
        /// Whether the Case was created (else an existing one was updated).
        created: bool,
    },
    /// The Case already reflects this version of the contact (or a newer one): nothing was
    /// written.
    Unchanged {
        /// The Case id.
        id: String,
    },
    /// Nothing was written, on purpose: the Case a contact attribute named is not this
    /// contact's, and the contact has no Case of its own while its outcome files none.
    Skipped,
    /// Captured by a recording sink (dry run): what a real run would send.
    Recorded,
    /// Not written.
    Failed(Failure),
}

/// The results of a set of Case writes, with the counts metrics need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// One outcome per write, in order.
    pub outcomes: Vec<WriteOutcome>,
    /// Salesforce data API calls made (each counts against the daily limit).
    pub api_calls: u32,
    /// Token endpoint calls made.
    pub token_requests: u32,
    /// Writes sent again within the invocation after a transient failure ("resent"; records
    /// reported back to Lambda are "retried").
    pub resent: u32,
    /// Set when the daily API quota ran out.
    pub quota_exhausted: bool,
    /// Set when the sink could not be used at all (a systemic failure): the failure every
    /// unwritten record shares. The invocation then holds instead of spinning.
    pub systemic: Option<Failure>,
}

/// What became of one dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Stored in the queue (or file), or already stored earlier by this container.
    Sent,
    /// Captured by a recording sink (dry run).
    Recorded,
    /// Not stored: the record must be reported for retry. Holds a short reason.
    Failed(String),
}

/// What a customer lookup found, with its cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookups {
    /// The Contact for each number asked about, in order, when exactly one matched.
    pub links: Vec<Option<Link>>,
    /// Data API calls made.
    pub api_calls: u32,
    /// Token endpoint calls made.
    pub token_requests: u32,
    /// Why some numbers could not be looked up (they stay unlinked).
    pub failure: Option<Failure>,
}

/// Where Case writes go: the Salesforce client, or a recording sink for dry runs.
pub trait CaseSink {
    /// Looks up the Salesforce Contact of each caller number (customer linking). A failed
    /// lookup leaves its number unlinked; it never holds up a Case.
    fn find_customers(
        &self,
        numbers: &[&str],
        deadline: Deadline,
    ) -> impl Future<Output = Lookups> + Send;

    /// Writes `cases` (creating or updating each by its external id) before `deadline`.
    /// Never fails as a whole: every write gets an outcome, in order.
    fn write_cases(
        &self,
        cases: &[&CaseRecord],
        deadline: Deadline,
    ) -> impl Future<Output = WriteReport> + Send;

    /// Writes each `(Case id, callback state)` to `field` (a callback task ended: its own CTR
    /// arrived). One result per update, in order: `None` when written (or, for a recording
    /// sink, recorded). Only this field changes: the Case's outcome, reason and version stay.
    fn record_callback_states(
        &self,
        updates: &[(&str, &str)],
        field: &str,
        deadline: Deadline,
    ) -> impl Future<Output = Vec<Option<Failure>>> + Send {
        let _ = (field, deadline);
        let recorded = vec![None; updates.len()];
        async move { recorded }
    }
}

/// A hand-off Case as written (created or updated) and read back: the contact-flow function's
/// one effect, when it worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffWritten {
    /// The Case Id (`500…`).
    pub id: String,
    /// The Case number people see (`00001234`).
    pub case_number: String,
    /// Whether this write created the Case.
    pub created: bool,
    /// Salesforce data API calls made.
    pub api_calls: u32,
    /// Token endpoint calls made.
    pub token_requests: u32,
}

/// What became of a hand-off Case write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandoffOutcome {
    /// Written and read back.
    Written(HandoffWritten),
    /// Not written: the short code the flow branches on (`rejected`, `unreachable`, …) and a
    /// description of the error safe to log.
    Failed {
        /// The `caseError` code.
        code: &'static str,
        /// What went wrong, for the log.
        error: String,
    },
    /// The flow's answer time ran out before Salesforce answered.
    TimedOut,
}

/// Where the contact flow's hand-off Case goes: the Salesforce client.
pub trait HandoffSink {
    /// Files or updates `case` and reads back its Id and number, before `deadline`. Never
    /// fails: a failure is [`HandoffOutcome::Failed`].
    fn file_handoff(
        &self,
        case: &CaseRecord,
        deadline: Deadline,
    ) -> impl Future<Output = HandoffOutcome> + Send;
}

/// Where dead letters go: an SQS queue, a file, memory, or a recording sink.
pub trait LetterSink {
    /// Stores `letters` before `deadline`. Never fails as a whole: every letter gets an
    /// outcome, in order; a letter that cannot be stored in time is [`SendOutcome::Failed`].
    fn send_letters(
        &self,
        letters: &[&DeadLetter],
        deadline: Deadline,
    ) -> impl Future<Output = Vec<SendOutcome>> + Send;
}

/// Where callback requests go: the callback queue (SQS FIFO), or nowhere.
pub trait CallbackSink {
    /// Queues `requests` before `deadline`. Never fails as a whole: every request gets an
    /// outcome, in order; one that cannot be queued in time is [`SendOutcome::Failed`].
    fn queue_callbacks(
        &self,
        requests: &[&CallbackRequest],
        deadline: Deadline,
    ) -> impl Future<Output = Vec<SendOutcome>> + Send;
}

/// The callback sink of the entry points that start no callbacks (the replay dry run, the
/// contact-flow function): every request is only recorded ([`SendOutcome::Recorded`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCallbacks;

impl CallbackSink for NoCallbacks {
    async fn queue_callbacks(
        &self,
        requests: &[&CallbackRequest],
        _deadline: Deadline,
    ) -> Vec<SendOutcome> {
        vec![SendOutcome::Recorded; requests.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every class, with whether it may be retried in this invocation and whether it stops it.
    const CLASSES: [(ErrorClass, bool, bool); 10] = [
        (ErrorClass::Transient, true, false),
        (ErrorClass::Throttled, true, false),
        (ErrorClass::AuthExpired, true, false),
        (ErrorClass::QuotaExhausted, false, true),
        (ErrorClass::AuthRejected, false, true),
        (ErrorClass::Permanent, false, false),
        (ErrorClass::Unavailable, false, true),
        (ErrorClass::Configuration, false, true),
        (ErrorClass::NoAccess, false, false),
        (ErrorClass::OutOfTime, false, false),
    ];

    #[test]
    fn only_quota_credentials_outage_and_configuration_stop_the_batch() {
        for (class, retryable, stops) in CLASSES {
            assert_eq!(class.is_retryable(), retryable, "{class:?} retryable");
            assert_eq!(class.stops_the_batch(), stops, "{class:?} stops the batch");
        }
    }

    #[tokio::test]
    async fn no_callbacks_records_every_request_and_sends_none() {
        let request = CallbackRequest {
            contact_id: "c-1".to_owned(),
            case_id: None,
            phone: "+15555550100".to_owned(),
            outcome: "dropped".to_owned(),
            disconnect_reason: None,
            disconnected_at: None,
            queue: None,
        };
        let outcomes = NoCallbacks
            .queue_callbacks(&[&request, &request], Deadline::unbounded())
            .await;
        assert_eq!(outcomes, vec![SendOutcome::Recorded; 2]);
    }
}
