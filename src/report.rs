//! Report: a plan and what became of its effects → each record's final state, the records to
//! retry, the summary and the metrics, and the follow-up effects the write results call for.
//! The one place where an error class becomes an action. For the contact-flow function: its
//! hand-off plan and write → the flow's answer ([`handoff`]).
//!
//! Pure: no I/O.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;

use crate::callback::CallbackRequest;
use crate::case::FieldUse;
use crate::effect::{
    ErrorClass, Failure, HandoffOutcome, HandoffWritten, SendOutcome, WriteOutcome, WriteReport,
};
use crate::input::InputRecord;
use crate::invoke_event::EventError;
use crate::letter::{DeadLetter, LetterKind};
use crate::plan::{Decision, HandoffPlan, Keyed, Plan, SkipReason};

/// The final action for a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A Case was (or, in a dry run, would be) created or updated.
    UpsertCase,
    /// The Case already reflects this version of the contact or a newer one: nothing changed.
    Unchanged,
    /// No Case is wanted for this outcome (policy).
    Skipped,
    /// A newer version of the same contact in the batch was processed instead.
    Superseded,
    /// Sent (or would be sent) to the dead-letter queue.
    DeadLetter,
    /// Held for a Salesforce outage until it was about to expire from the stream, then written
    /// with its full data to the dead-letter queue (kind `parked`), to be redriven.
    Parked,
    /// Reported in `batchItemFailures` for Lambda to retry.
    Retry,
}

impl Action {
    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Action::UpsertCase => "upsert_case",
            Action::Unchanged => "unchanged",
            Action::Skipped => "skipped",
            Action::Superseded => "superseded",
            Action::DeadLetter => "dead_letter",
            Action::Parked => "parked",
            Action::Retry => "retry",
        }
    }
}

/// What to do with a record whose effect failed with `class`: the error-class → action rule.
pub fn action_for(class: ErrorClass) -> Action {
    match class {
        ErrorClass::Permanent | ErrorClass::NoAccess => Action::DeadLetter,
        ErrorClass::Transient
        | ErrorClass::Throttled
        | ErrorClass::AuthExpired
        | ErrorClass::QuotaExhausted
        | ErrorClass::AuthRejected
        | ErrorClass::Unavailable
        | ErrorClass::Configuration
        | ErrorClass::OutOfTime => Action::Retry,
    }
}

/// The class a failure really has for the record it happened to: a permanent rejection caused
/// by what the configuration writes (an unknown or read-only field, a constant outside a
/// restricted picklist, a field the org requires that the mapping does not set) is
/// [`ErrorClass::Configuration`], so the batch is held instead of dead-lettering each record.
/// A rejection of a value taken from the contact stays the record's own.
pub fn effective_class(failure: &Failure, field_uses: &[FieldUse]) -> ErrorClass {
    if failure.class != ErrorClass::Permanent {
        return failure.class;
    }
    let use_of = |name: &String| {
        field_uses
            .iter()
            .find(|u| u.name.eq_ignore_ascii_case(name))
    };
    let fields = &failure.fields;
    let configuration = match failure.code.as_str() {
        "INVALID_FIELD" | "INVALID_FIELD_FOR_INSERT_UPDATE" | "NOT_FOUND" => true,
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" => {
            !fields.is_empty()
                && fields
                    .iter()
                    .all(|f| use_of(f).is_some_and(|u| u.fixed_values.is_some()))
        }
        "REQUIRED_FIELD_MISSING" => {
            !fields.is_empty() && fields.iter().all(|f| use_of(f).is_none())
        }
        _ => false,
    };
    if configuration {
        ErrorClass::Configuration
    } else {
        ErrorClass::Permanent
    }
}

/// The dead-letter kind for a record that failed for good with `class`.
fn letter_kind(class: ErrorClass) -> LetterKind {
    match class {
        ErrorClass::NoAccess => LetterKind::CaseNotAccessible,
        _ => LetterKind::SalesforceRejected,
    }
}

/// The result for one record: a log line and the replay CLI's output line.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RecordReport {
    /// Kinesis sequence number.
    pub sequence_number: String,
    /// ContactId, when decoded.
    pub contact_id: Option<String>,
    /// Classifier outcome, `poison` or `superseded`.
    pub outcome: &'static str,
    /// What was done.
    pub action: Action,
    /// The Salesforce Case id, when written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case_id: Option<String>,
    /// Whether the write created the Case (false: updated an existing one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
    /// Error code, for dead letters and retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether a callback request was queued for it (absent: none was due).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback: Option<bool>,
    /// The classifier's outcome whenever the record decoded; for a superseded record (whose
    /// `outcome` is `superseded`), what the contact was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_outcome: Option<&'static str>,
    /// For a superseded record: the record processed instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<SupersededBy>,
    /// For a skipped record: why no Case is filed, naming the setting that would file one
    /// (e.g. `CASE_FOR_HAPPY_PATH=false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<SkipReason>,
}

/// The record that superseded another: the same contact's newest version in the batch.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SupersededBy {
    /// Its row: its position in the batch or file, counting from 1.
    pub row: usize,
    /// Its Kinesis sequence number (or position in a file).
    pub sequence_number: String,
}

/// Counts for one batch: the summary log line and the metrics.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BatchSummary {
    /// Records in the event.
    pub records: u32,
    /// Records per outcome name.
    pub outcomes: BTreeMap<&'static str, u32>,
    /// Records per action.
    pub actions: BTreeMap<&'static str, u32>,
    /// Cases created (not updated). Always 0 in a dry run, which cannot tell a create from an
    /// update: see `case_writes`.
    pub cases_created: u32,
    /// Callback requests queued for the callback function.
    pub callbacks_queued: u32,
    /// Cases written, created or updated (`upsert_case` records); in a dry run, the Cases that
    /// would be written.
    pub case_writes: u32,
    /// Salesforce data API calls.
    pub salesforce_api_calls: u32,
    /// Salesforce token requests.
    pub token_requests: u32,
    /// Case writes sent again within the invocation after a transient failure (records
    /// reported back to Lambda are counted in `actions.retry`).
    pub resent_in_invocation: u32,
    /// Whether the daily API quota ran out.
    pub quota_exhausted: bool,
    /// The systemic failure that stopped the Salesforce writes, when one did (an outage: the
    /// invocation holds before answering).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub salesforce_unavailable: Option<String>,
    /// Why the org refused what the configuration writes, when it did (the org check failed,
    /// or a rejection was caused by the mapping): the invocation holds, as in an outage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration_invalid: Option<String>,
}

impl BatchSummary {
    /// Whether the invocation must hold before answering (an outage or a configuration the
    /// org refuses): answering at once would make Lambda retry at once, failing the same way.
    pub fn holds(&self) -> bool {
        self.salesforce_unavailable.is_some() || self.configuration_invalid.is_some()
    }
}

impl BatchSummary {
    /// Counts the reports.
    pub fn from_reports(reports: &[RecordReport]) -> Self {
        let mut summary = BatchSummary {
            records: reports.len() as u32,
            ..BatchSummary::default()
        };
        for r in reports {
            *summary.outcomes.entry(r.outcome).or_default() += 1;
            *summary.actions.entry(r.action.name()).or_default() += 1;
            if r.created == Some(true) {
                summary.cases_created += 1;
            }
            if r.callback == Some(true) {
                summary.callbacks_queued += 1;
            }
            if r.action == Action::UpsertCase {
                summary.case_writes += 1;
            }
        }
        summary
    }

    /// Records with `action`.
    pub fn count(&self, action: Action) -> u32 {
        self.actions.get(action.name()).copied().unwrap_or(0)
    }

    /// Records whose outcome name starts with `prefix` (e.g. `happy_path`).
    pub fn outcomes_starting_with(&self, prefix: &str) -> u32 {
        self.outcomes
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    }
}

/// What execute did, over both passes: the write results and the outcome of every letter,
/// callback request and callback state it tried.
#[derive(Debug, Default)]
pub struct Executed {
    /// One outcome per [`Plan::cases`] entry, with the call counts.
    pub writes: WriteReport,
    /// One outcome per [`Plan::letters`] entry (the poison letters).
    pub poison_sends: Vec<SendOutcome>,
    /// The letters the write results call for ([`follow_up_letters`]).
    pub rejection_letters: Vec<Keyed<DeadLetter>>,
    /// One outcome per follow-up letter.
    pub rejection_sends: Vec<SendOutcome>,
    /// The callback requests the write results call for ([`callbacks_to_queue`]).
    pub callbacks: Vec<Keyed<CallbackRequest>>,
    /// One outcome per queued callback request.
    pub callback_sends: Vec<SendOutcome>,
    /// One result per [`Plan::callback_states`] entry (`None`: written).
    pub callback_state_results: Vec<Option<Failure>>,
}

/// The effects of execute's second pass, decided from the first pass's write results: the
/// follow-up letters and the callback requests, with the callback states the plan asked for
/// (they wait for the Case writes, so they go out in this pass too).
#[derive(Debug)]
pub struct FollowUps<'p> {
    /// Dead letters for the Cases Salesforce rejected for good, and parked letters
    /// ([`follow_up_letters`]).
    pub letters: Vec<Keyed<DeadLetter>>,
    /// Callback requests for the Cases the writes say exist ([`callbacks_to_queue`]).
    pub callbacks: Vec<Keyed<CallbackRequest>>,
    /// The planned callback states, `(Case id, state)` ([`Plan::callback_states`]).
    pub callback_states: &'p [Keyed<(String, String)>],
    /// The Case field they go to; `None`: none is written.
    pub callback_state_field: Option<&'p str>,
}

/// What the write results call for, as of `now_epoch_secs` (the wall clock after the writes,
/// passed in): the follow-up letters ([`follow_up_letters`], parking after
/// [`Plan::park_after`]), the callback requests ([`callbacks_to_queue`]) and the planned
/// callback states.
pub fn follow_ups<'p>(
    plan: &'p Plan,
    inputs: &[InputRecord<'_>],
    writes: &WriteReport,
    now_epoch_secs: f64,
) -> FollowUps<'p> {
    FollowUps {
        letters: follow_up_letters(plan, inputs, writes, now_epoch_secs, plan.park_after),
        callbacks: callbacks_to_queue(plan, writes),
        callback_states: &plan.callback_states,
        callback_state_field: plan.callback_state_field.as_deref(),
    }
}

/// The callback requests to queue: one per planned request whose Case the writes say exists
/// (created, updated, or already up to date), with the Case id filled in.
///
/// Not only the Cases this write created: when a queue send fails after the Case was created,
/// the record is reported for retry, and the retry finds the Case already written; queueing
/// again then is what keeps the callback. A request queued twice starts one task: the queue
/// drops a duplicate ContactId within 5 minutes, the callback function skips a Case that
/// already names its task, and Connect answers the same `ClientToken` with the same task.
pub fn callbacks_to_queue(plan: &Plan, writes: &WriteReport) -> Vec<Keyed<CallbackRequest>> {
    if plan.callbacks.is_empty() {
        return Vec::new();
    }
    let mut case_ids: Vec<Option<&str>> = vec![None; plan.records.len()];
    for (case, outcome) in plan.cases.iter().zip(&writes.outcomes) {
        case_ids[case.record] = match outcome {
            WriteOutcome::Written { id, .. } | WriteOutcome::Unchanged { id } => Some(id),
            WriteOutcome::Recorded | WriteOutcome::Skipped | WriteOutcome::Failed(_) => None,
        };
    }
    plan.callbacks
        .iter()
        .filter_map(|k| {
            let id = case_ids[k.record]?;
            let mut request = k.effect.clone();
            request.case_id = Some(id.to_owned());
            Some(Keyed {
                record: k.record,
                effect: request,
            })
        })
        .collect()
}

/// The dead letters that the write results call for, each carrying the record's original
/// data: one per Case Salesforce rejected for good ([`Action::DeadLetter`]; kind
/// `case_not_accessible` when the integration user may not see or edit the Case), and one
/// `parked` letter per record that would be reported for retry but arrived more than
/// `park_after` before `now_epoch_secs`, whatever the error, so it is never lost when the
/// stream's retention ends and never holds up its shard.
pub fn follow_up_letters(
    plan: &Plan,
    inputs: &[InputRecord<'_>],
    writes: &WriteReport,
    now_epoch_secs: f64,
    park_after: Duration,
) -> Vec<Keyed<DeadLetter>> {
    plan.cases
        .iter()
        .zip(&writes.outcomes)
        .filter_map(|(case, outcome)| {
            let WriteOutcome::Failed(f) = outcome else {
                return None;
            };
            let input = &inputs[case.record];
            let contact = plan.records[case.record].contact_id.as_ref();
            let class = effective_class(f, &plan.field_uses);
            if action_for(class) == Action::DeadLetter {
                return Some(Keyed {
                    record: case.record,
                    effect: input.letter(letter_kind(class), f.into(), contact),
                });
            }
            let age = now_epoch_secs - input.arrival?;
            let reason = writes.systemic.as_ref().unwrap_or(f);
            (age > park_after.as_secs_f64()).then(|| Keyed {
                record: case.record,
                effect: input.letter(LetterKind::Parked, reason.into(), contact),
            })
        })
        .collect()
}

/// The final report of a batch.
#[derive(Debug)]
pub struct BatchReport {
    /// One report per record, in input order.
    pub records: Vec<RecordReport>,
    /// Counts.
    pub summary: BatchSummary,
}

impl BatchReport {
    /// The sequence numbers to report for retry, in input order (may contain empty ones, which
    /// cannot be reported).
    pub fn retry(&self) -> impl Iterator<Item = &str> {
        self.records
            .iter()
            .filter(|r| r.action == Action::Retry)
            .map(|r| r.sequence_number.as_str())
    }
}

/// Turns a plan and what became of its effects into each record's final state and the counts.
pub fn finish(plan: &Plan, executed: &Executed) -> BatchReport {
    // Per record: its write outcome, its letter outcome.
    let mut writes: Vec<Option<&WriteOutcome>> = vec![None; plan.records.len()];
    for (case, outcome) in plan.cases.iter().zip(&executed.writes.outcomes) {
        writes[case.record] = Some(outcome);
    }
    let mut letters: Vec<Option<&SendOutcome>> = vec![None; plan.records.len()];
    let sent = plan.letters.iter().zip(&executed.poison_sends).chain(
        executed
            .rejection_letters
            .iter()
            .zip(&executed.rejection_sends),
    );
    for (letter, outcome) in sent {
        letters[letter.record] = Some(outcome);
    }
    let mut states: Vec<Option<&Failure>> = vec![None; plan.records.len()];
    for (state, result) in plan
        .callback_states
        .iter()
        .zip(&executed.callback_state_results)
    {
        states[state.record] = result.as_ref();
    }
    let mut callbacks: Vec<Option<&SendOutcome>> = vec![None; plan.records.len()];
    for (request, outcome) in executed.callbacks.iter().zip(&executed.callback_sends) {
        callbacks[request.record] = Some(outcome);
    }

    // The first rejection caused by the configuration, when the org refused what it writes.
    let mut configuration: Option<&Failure> = None;
    let records: Vec<RecordReport> = plan
        .records
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let mut report = RecordReport {
                sequence_number: p.sequence_number.clone(),
                contact_id: p.contact_id.as_ref().map(ToString::to_string),
                outcome: p.outcome,
                action: Action::Skipped,
                case_id: None,
                created: None,
                error: None,
                callback: None,
                contact_outcome: p.contact_outcome,
                superseded_by: p.superseded_by.map(|row| SupersededBy {
                    row: row + 1,
                    sequence_number: plan.records[row].sequence_number.clone(),
                }),
                reason: None,
            };
            let (action, error) = match p.decision {
                Decision::Skip => {
                    report.reason = p.skip_reason.clone();
                    (Action::Skipped, None)
                }
                Decision::Supersede => (Action::Superseded, None),
                Decision::DeadLetter => {
                    let code = p.decode_error.as_ref().map_or("poison", |e| e.code());
                    letter_action(letters[index], code)
                }
                Decision::WriteCase => match writes[index] {
                    Some(WriteOutcome::Written { id, created }) => {
                        report.case_id = Some(id.clone());
                        report.created = Some(*created);
                        (Action::UpsertCase, None)
                    }
                    Some(WriteOutcome::Unchanged { id }) => {
                        report.case_id = Some(id.clone());
                        (Action::Unchanged, None)
                    }
                    Some(WriteOutcome::Recorded) => (Action::UpsertCase, None),
                    Some(WriteOutcome::Skipped) => (Action::Skipped, None),
                    Some(WriteOutcome::Failed(f)) => {
                        let class = effective_class(f, &plan.field_uses);
                        if class == ErrorClass::Configuration && configuration.is_none() {
                            configuration = Some(f);
                        }
                        failed_action(class, &f.code, letters[index])
                    }
                    None => (Action::Retry, Some("not_attempted".to_owned())),
                },
            };
            report.action = action;
            report.error = error;
            // A callback state that could not be written for now: the task's CTR is retried
            // (a state the org refuses for good is only reported).
            if let Some(failure) = states[index] {
                report.error = Some(failure.code.clone());
                if action_for(failure.class) == Action::Retry {
                    report.action = Action::Retry;
                }
            }
            if let Some(sent) = callbacks[index] {
                report.callback = Some(matches!(sent, SendOutcome::Sent));
                // The Case is written but its callback is not queued: retry the record (the
                // retry finds the Case written and queues the request again).
                if let SendOutcome::Failed(_) = sent
                    && matches!(report.action, Action::UpsertCase | Action::Unchanged)
                {
                    report.action = Action::Retry;
                    report.error = Some("callback_not_queued".to_owned());
                }
            }
            report
        })
        .collect();

    let mut summary = BatchSummary::from_reports(&records);
    summary.salesforce_api_calls = executed.writes.api_calls;
    summary.token_requests = executed.writes.token_requests;
    summary.resent_in_invocation = executed.writes.resent;
    summary.quota_exhausted = executed.writes.quota_exhausted;
    match &executed.writes.systemic {
        Some(f) if f.class == ErrorClass::Configuration => configuration = Some(f),
        Some(f) => summary.salesforce_unavailable = Some(f.code.clone()),
        None => {}
    }
    summary.configuration_invalid = configuration.map(|f| f.summary.clone());
    BatchReport { records, summary }
}

/// The contact-flow function's report on one invoke event: its answer and what its log line
/// says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffReport {
    /// The contact, when the event named a valid one.
    pub contact_id: Option<String>,
    /// The Case written, or the `caseError` code.
    pub result: Result<HandoffWritten, &'static str>,
    /// Why Salesforce did not write the Case, when it answered with an error (for the log).
    pub error: Option<String>,
}

impl HandoffReport {
    /// The flow's answer, a flat map of strings as Connect requires:
    /// `{"caseId":"500…","caseNumber":"…"}`, or `{"caseError":"<short code>"}`.
    pub fn answer(&self) -> HashMap<String, String> {
        match &self.result {
            Ok(case) => HashMap::from([
                ("caseId".to_owned(), case.id.clone()),
                ("caseNumber".to_owned(), case.case_number.clone()),
            ]),
            Err(code) => HashMap::from([("caseError".to_owned(), (*code).to_owned())]),
        }
    }
}

/// Reports on one invoke event: its plan and what became of the hand-off Case write, or why
/// the event named no contact (then nothing was written).
pub fn handoff(executed: Result<(&HandoffPlan, HandoffOutcome), EventError>) -> HandoffReport {
    let (plan, outcome) = match executed {
        Ok(executed) => executed,
        Err(refusal) => {
            return HandoffReport {
                contact_id: None,
                result: Err(refusal.code()),
                error: None,
            };
        }
    };
    let contact_id = Some(plan.contact_id.to_string());
    let (result, error) = match outcome {
        HandoffOutcome::Written(case) => (Ok(case), None),
        HandoffOutcome::Failed { code, error } => (Err(code), Some(error)),
        HandoffOutcome::TimedOut => (Err("timeout"), None),
    };
    HandoffReport {
        contact_id,
        result,
        error,
    }
}

/// A dead letter that was stored is final; one that was not leaves the record for retry.
fn letter_action(sent: Option<&SendOutcome>, code: &str) -> (Action, Option<String>) {
    match sent {
        Some(SendOutcome::Sent | SendOutcome::Recorded) => (Action::DeadLetter, Some(code.into())),
        Some(SendOutcome::Failed(_)) | None => (Action::Retry, Some(code.into())),
    }
}

fn failed_action(
    class: ErrorClass,
    code: &str,
    letter: Option<&SendOutcome>,
) -> (Action, Option<String>) {
    match (action_for(class), letter) {
        (Action::DeadLetter, _) => letter_action(letter, code),
        // A held record with a parked letter: final once the letter is stored.
        (_, Some(SendOutcome::Sent | SendOutcome::Recorded)) => {
            (Action::Parked, Some(code.to_owned()))
        }
        (action, _) => (action, Some(code.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{KinesisEnvelope, record_for};
    use crate::plan::{Settings, plan};

    const ID: &str = "5ca32fbd-8f92-46af-92a5-6b0f970f0efe";

    fn envelope(datas: &[&[u8]]) -> KinesisEnvelope {
        KinesisEnvelope {
            records: datas
                .iter()
                .enumerate()
                .map(|(i, d)| record_for(d, &format!("{}", 100 + i), "shardId-0"))
                .collect(),
        }
    }

    fn dropped() -> Vec<u8> {
        format!(r#"{{"ContactId":"{ID}","Channel":"VOICE"}}"#).into_bytes()
    }

    fn failure(class: ErrorClass, code: &str) -> WriteOutcome {
        WriteOutcome::Failed(Failure::local(class, code, code))
    }

    /// The report when the writes answered `writes` and the follow-up letters' one send
    /// answered `sent`.
    fn finish_with_letter(
        plan: &Plan,
        writes: &WriteReport,
        letters: &[Keyed<DeadLetter>],
        sent: SendOutcome,
    ) -> BatchReport {
        let executed = Executed {
            writes: writes.clone(),
            rejection_letters: letters.to_vec(),
            rejection_sends: vec![sent],
            ..Executed::default()
        };
        finish(plan, &executed)
    }

    /// What execute answers when only the Case writes ran, with these outcomes.
    fn wrote(outcomes: Vec<WriteOutcome>) -> Executed {
        Executed {
            writes: WriteReport {
                outcomes,
                ..WriteReport::default()
            },
            ..Executed::default()
        }
    }

    #[test]
    fn summary_counts_outcomes_and_actions() {
        let env = envelope(&[b"{}", &dropped()]);
        let inputs = env.inputs();
        let plan = plan(&inputs, &Settings::default());
        let executed = Executed {
            writes: WriteReport {
                outcomes: vec![WriteOutcome::Recorded],
                api_calls: 1,
                ..WriteReport::default()
            },
            poison_sends: vec![SendOutcome::Recorded],
            ..Executed::default()
        };
        let report = finish(&plan, &executed);
        let s = &report.summary;
        assert_eq!(s.records, 2);
        assert_eq!(s.outcomes["poison"], 1);
        assert_eq!(s.outcomes["dropped"], 1);
        assert_eq!(s.count(Action::UpsertCase), 1);
        assert_eq!(s.count(Action::DeadLetter), 1);
        assert_eq!(s.count(Action::Retry), 0);
        assert_eq!(s.salesforce_api_calls, 1);
    }

    #[test]
    fn superseded_and_skipped_records_say_why() {
        let handled = format!(
            r#"{{"ContactId":"{ID}","Channel":"VOICE","Agent":{{}},"LastUpdateTimestamp":"2024-01-01T00:00:00Z"}}"#
        );
        let newer = format!(
            r#"{{"ContactId":"{ID}","Channel":"VOICE","Agent":{{}},"LastUpdateTimestamp":"2024-01-01T00:00:10Z"}}"#
        );
        let env = envelope(&[handled.as_bytes(), newer.as_bytes()]);
        let inputs = env.inputs();
        let report = finish(&plan(&inputs, &Settings::default()), &Executed::default());
        let line = serde_json::to_value(&report.records[0]).unwrap();
        assert_eq!(line["outcome"], "superseded");
        assert_eq!(line["action"], "superseded");
        assert_eq!(line["contactOutcome"], "happy_path_live_agent");
        assert_eq!(
            line["supersededBy"],
            serde_json::json!({"row": 2, "sequenceNumber": "101"})
        );
        assert!(line.get("reason").is_none(), "{line}");
        let line = serde_json::to_value(&report.records[1]).unwrap();
        assert_eq!(line["action"], "skipped");
        assert_eq!(line["reason"], "CASE_FOR_HAPPY_PATH=false");
        assert!(line.get("supersededBy").is_none(), "{line}");
    }

    /// A dry run records its writes: it cannot tell a create from an update, so it counts
    /// Case writes, never Cases created.
    #[test]
    fn dry_run_counts_case_writes_not_creates() {
        let env = envelope(&[&dropped()]);
        let inputs = env.inputs();
        let plan = plan(&inputs, &Settings::default());
        let executed = wrote(vec![WriteOutcome::Recorded]);
        let summary = finish(&plan, &executed).summary;
        assert_eq!((summary.case_writes, summary.cases_created), (1, 0));
        let executed = Executed {
            writes: WriteReport {
                outcomes: vec![WriteOutcome::Written {
                    id: "500000000000001AAA".into(),
                    created: true,
                }],
                ..WriteReport::default()
            },
            ..Executed::default()
        };
        let summary = finish(&plan, &executed).summary;
        assert_eq!((summary.case_writes, summary.cases_created), (1, 1));
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["caseWrites"], 1);
    }

    #[test]
    fn error_classes_map_to_actions() {
        assert_eq!(action_for(ErrorClass::Permanent), Action::DeadLetter);
        assert_eq!(action_for(ErrorClass::NoAccess), Action::DeadLetter);
        assert_eq!(action_for(ErrorClass::Configuration), Action::Retry);
        for class in [
            ErrorClass::Transient,
            ErrorClass::Throttled,
            ErrorClass::AuthExpired,
            ErrorClass::QuotaExhausted,
            ErrorClass::AuthRejected,
            ErrorClass::Unavailable,
            ErrorClass::OutOfTime,
        ] {
            assert_eq!(action_for(class), Action::Retry, "{class:?}");
        }
    }

    #[test]
    fn rejected_case_is_dead_lettered_only_when_its_letter_was_stored() {
        let env = envelope(&[&dropped()]);
        let inputs = env.inputs();
        let plan = plan(&inputs, &Settings::default());
        let writes = WriteReport {
            outcomes: vec![failure(ErrorClass::Permanent, "REQUIRED_FIELD_MISSING")],
            ..WriteReport::default()
        };
        let letters = follow_up_letters(&plan, &inputs, &writes, 0.0, Duration::ZERO);
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].effect.kind, "salesforce_rejected");
        assert_eq!(letters[0].effect.contact_id.as_deref(), Some(ID));
        for (sent, action) in [
            (SendOutcome::Sent, Action::DeadLetter),
            (SendOutcome::Failed("timed out".into()), Action::Retry),
        ] {
            let report = finish_with_letter(&plan, &writes, &letters, sent);
            assert_eq!(report.records[0].action, action);
            assert_eq!(
                report.records[0].error.as_deref(),
                Some("REQUIRED_FIELD_MISSING")
            );
        }
    }

    #[test]
    fn callbacks_follow_the_written_cases_and_an_unqueued_one_is_retried() {
        let other = "0e5a3c2b-1111-4222-8333-444455556666";
        let caller = |id: &str| {
            format!(r#"{{"ContactId":"{id}","Channel":"VOICE","CustomerEndpoint":{{"Address":"+15555550147"}}}}"#)
                .into_bytes()
        };
        let (a, b) = (caller(ID), caller(other));
        let env = envelope(&[&a, &b]);
        let inputs = env.inputs();
        let plan = plan(&inputs, &Settings::default().with_callbacks(true));
        assert_eq!(plan.callbacks.len(), 2);
        let writes = WriteReport {
            outcomes: vec![
                WriteOutcome::Written {
                    id: "500000000000001AAA".into(),
                    created: true,
                },
                failure(ErrorClass::Transient, "timeout"),
            ],
            ..WriteReport::default()
        };
        let queued = callbacks_to_queue(&plan, &writes);
        assert_eq!(
            queued.len(),
            1,
            "no callback for a Case that was not written"
        );
        assert_eq!(queued[0].record, 0);
        assert_eq!(
            queued[0].effect.case_id.as_deref(),
            Some("500000000000001AAA")
        );
        for (sent, action, queued_count) in [
            (SendOutcome::Sent, Action::UpsertCase, 1),
            (SendOutcome::Failed("timed out".into()), Action::Retry, 0),
        ] {
            let executed = Executed {
                writes: writes.clone(),
                callbacks: queued.clone(),
                callback_sends: vec![sent],
                ..Executed::default()
            };
            let report = finish(&plan, &executed);
            assert_eq!(report.records[0].action, action);
            assert_eq!(report.summary.callbacks_queued, queued_count);
        }
    }

    #[test]
    fn transient_failure_and_missing_outcome_are_retried() {
        let env = envelope(&[&dropped()]);
        let inputs = env.inputs();
        let plan = plan(&inputs, &Settings::default());
        let executed = wrote(vec![failure(ErrorClass::Transient, "timeout")]);
        let report = finish(&plan, &executed);
        assert_eq!(report.retry().collect::<Vec<_>>(), ["100"]);
        let report = finish(&plan, &Executed::default());
        assert_eq!(report.records[0].error.as_deref(), Some("not_attempted"));
    }

    #[test]
    fn held_records_are_parked_only_once_older_than_park_after() {
        let mut env = envelope(&[&dropped()]);
        env.records[0].kinesis.approximate_arrival_timestamp = Some(1_000.0);
        let inputs = env.inputs();
        let settings = Settings::default().with_park_after(Duration::from_secs(100));
        let plan = plan(&inputs, &settings);
        let outage = Failure::local(ErrorClass::Unavailable, "salesforce_unavailable", "down");
        let writes = WriteReport {
            outcomes: vec![failure(ErrorClass::Transient, "timeout")],
            systemic: Some(outage),
            ..WriteReport::default()
        };
        for young in [1_000.0, 1_050.0, 1_100.0] {
            let letters = follow_ups(&plan, &inputs, &writes, young).letters;
            assert!(letters.is_empty(), "parked at {young}");
        }
        let letters = follow_ups(&plan, &inputs, &writes, 1_100.5).letters;
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].record, 0);
        assert_eq!(letters[0].effect.kind, "parked");
        assert_eq!(letters[0].effect.error.code, "salesforce_unavailable");
        assert_eq!(letters[0].effect.contact_id.as_deref(), Some(ID));
        for (sent, action) in [
            (SendOutcome::Sent, Action::Parked),
            (SendOutcome::Recorded, Action::Parked),
            (SendOutcome::Failed("timed out".into()), Action::Retry),
        ] {
            let report = finish_with_letter(&plan, &writes, &letters, sent);
            assert_eq!(report.records[0].action, action);
            assert_eq!(report.records[0].error.as_deref(), Some("timeout"));
            assert_eq!(
                report.summary.salesforce_unavailable.as_deref(),
                Some("salesforce_unavailable")
            );
        }
        // Without a systemic failure the record's own failure is the letter's reason.
        let own = WriteReport {
            systemic: None,
            ..writes.clone()
        };
        let letters = follow_ups(&plan, &inputs, &own, 5_000.0).letters;
        assert_eq!(letters[0].effect.error.code, "timeout");
        // A record without an arrival time is never parked.
        let env = envelope(&[&dropped()]);
        let inputs = env.inputs();
        let plan = crate::plan::plan(&inputs, &settings);
        assert!(
            follow_ups(&plan, &inputs, &writes, f64::MAX)
                .letters
                .is_empty()
        );
    }

    #[test]
    fn rejections_are_dead_lettered_at_any_age_and_configuration_is_held() {
        let env = envelope(&[&dropped()]);
        let inputs = env.inputs();
        let plan = plan(&inputs, &Settings::default());
        let letter_of = |outcome: WriteOutcome| {
            let writes = WriteReport {
                outcomes: vec![outcome],
                ..WriteReport::default()
            };
            follow_ups(&plan, &inputs, &writes, 0.0).letters
        };
        let no_access = letter_of(failure(ErrorClass::NoAccess, "CASE_NOT_ACCESSIBLE"));
        assert_eq!(no_access[0].effect.kind, "case_not_accessible");
        let rejected = letter_of(failure(ErrorClass::Permanent, "STRING_TOO_LONG"));
        assert_eq!(rejected[0].effect.kind, "salesforce_rejected");
        assert!(letter_of(failure(ErrorClass::Permanent, "INVALID_FIELD")).is_empty());
        assert!(letter_of(failure(ErrorClass::Transient, "timeout")).is_empty());
        let written = WriteOutcome::Written {
            id: "500000000000001AAA".into(),
            created: false,
        };
        assert!(letter_of(written).is_empty());
    }

    #[test]
    fn follow_ups_carry_the_planned_callback_states() {
        let plan = Plan {
            callback_states: vec![Keyed {
                record: 0,
                effect: ("500000000000001AAA".into(), "completed".into()),
            }],
            callback_state_field: Some("Callback_State__c".into()),
            ..Plan::default()
        };
        let follow = follow_ups(&plan, &[], &WriteReport::default(), 0.0);
        assert_eq!(follow.callback_states, plan.callback_states.as_slice());
        assert_eq!(follow.callback_state_field, Some("Callback_State__c"));
        assert!(follow.letters.is_empty() && follow.callbacks.is_empty());
        let mut states = Executed {
            callback_state_results: vec![Some(Failure::local(
                ErrorClass::Transient,
                "UNABLE_TO_LOCK_ROW",
                "locked",
            ))],
            ..Executed::default()
        };
        let mut plan = plan;
        plan.records = vec![crate::plan::PlannedRecord {
            sequence_number: "100".into(),
            contact_id: None,
            outcome: "callback_task",
            contact_outcome: Some("callback_task"),
            decision: Decision::Skip,
            decode_error: None,
            superseded_by: None,
            skip_reason: None,
        }];
        let report = finish(&plan, &states);
        assert_eq!(report.records[0].action, Action::Retry);
        assert_eq!(
            report.records[0].error.as_deref(),
            Some("UNABLE_TO_LOCK_ROW")
        );
        states.callback_state_results = vec![Some(Failure::local(
            ErrorClass::Permanent,
            "INVALID_FIELD",
            "x",
        ))];
        let report = finish(&plan, &states);
        assert_eq!(report.records[0].action, Action::Skipped);
        assert_eq!(report.records[0].error.as_deref(), Some("INVALID_FIELD"));
    }

    #[test]
    fn summary_counts_each_created_case_and_queued_callback() {
        let line = |outcome, action, created, callback| RecordReport {
            sequence_number: "1".into(),
            contact_id: None,
            outcome,
            action,
            case_id: None,
            created,
            error: None,
            callback,
            contact_outcome: None,
            superseded_by: None,
            reason: None,
        };
        let mut s = BatchSummary::from_reports(&[
            line("dropped", Action::UpsertCase, Some(true), Some(true)),
            line("dropped", Action::UpsertCase, Some(true), Some(false)),
            line("dropped", Action::UpsertCase, Some(false), None),
            line("dropped", Action::Retry, None, Some(false)),
            line("happy_path_live_agent", Action::Unchanged, None, Some(true)),
        ]);
        assert_eq!(s.records, 5);
        assert_eq!(s.cases_created, 2);
        assert_eq!(s.callbacks_queued, 2);
        assert_eq!(s.case_writes, 3);
        assert_eq!(s.count(Action::UpsertCase), 3);
        assert_eq!(s.count(Action::Retry), 1);
        assert_eq!(s.count(Action::Skipped), 0);
        assert_eq!(s.outcomes_starting_with("dropped"), 4);
        assert_eq!(s.outcomes_starting_with("happy_path"), 1);
        assert_eq!(s.outcomes_starting_with("poison"), 0);
        assert!(!s.holds());
        s.salesforce_unavailable = Some("salesforce_unavailable".into());
        assert!(s.holds());
        s.salesforce_unavailable = None;
        s.configuration_invalid = Some("INVALID_FIELD on Foo__c".into());
        assert!(s.holds());
    }

    #[test]
    fn the_flow_answers_its_case_or_a_short_code() {
        let event = serde_json::json!({
            "Name": "ContactFlowEvent",
            "Details": {"ContactData": {"ContactId": ID, "Channel": "VOICE"}, "Parameters": {}}
        });
        let planned =
            crate::plan::handoff(event, &crate::case::CaseMapping::default()).expect("a contact");
        assert_eq!(planned.contact_id.as_str(), ID);
        let written = HandoffWritten {
            id: "500000000000001AAA".into(),
            case_number: "00001234".into(),
            created: true,
            api_calls: 1,
            token_requests: 0,
        };
        let report = handoff(Ok((&planned, HandoffOutcome::Written(written.clone()))));
        assert_eq!(report.contact_id.as_deref(), Some(ID));
        assert_eq!(report.result, Ok(written));
        assert_eq!(
            report.answer(),
            HashMap::from([
                ("caseId".to_owned(), "500000000000001AAA".to_owned()),
                ("caseNumber".to_owned(), "00001234".to_owned()),
            ])
        );
        let failed = HandoffOutcome::Failed {
            code: "rejected",
            error: "Salesforce answered 400 STRING_TOO_LONG".into(),
        };
        let report = handoff(Ok((&planned, failed)));
        let error = |code: &str| HashMap::from([("caseError".to_owned(), code.to_owned())]);
        assert_eq!(report.answer(), error("rejected"));
        assert_eq!(
            report.error.as_deref(),
            Some("Salesforce answered 400 STRING_TOO_LONG")
        );
        let report = handoff(Ok((&planned, HandoffOutcome::TimedOut)));
        assert_eq!((report.answer(), report.error), (error("timeout"), None));
        for (refusal, code) in [
            (EventError::InvalidEvent, "invalid_event"),
            (EventError::InvalidContactId, "invalid_contact_id"),
        ] {
            let report = handoff(Err(refusal));
            assert_eq!(report.contact_id, None);
            assert_eq!(report.answer(), error(code));
        }
    }

    #[test]
    fn rejections_of_what_the_configuration_writes_are_configuration() {
        use crate::case::WriteMode;
        let uses = [
            FieldUse {
                name: "Origin".into(),
                mode: WriteMode::OnCreate,
                fixed_values: Some(vec!["Phone".into()]),
            },
            FieldUse {
                name: "Description".into(),
                mode: WriteMode::KeptCurrent,
                fixed_values: None,
            },
        ];
        let class = |class: ErrorClass, code: &str, fields: &[&str]| {
            let mut failure = Failure::local(class, code, code);
            failure.fields = fields.iter().map(|f| (*f).to_owned()).collect();
            effective_class(&failure, &uses)
        };
        use ErrorClass::{Configuration, Permanent};
        for code in [
            "INVALID_FIELD",
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            "NOT_FOUND",
        ] {
            assert_eq!(class(Permanent, code, &[]), Configuration, "{code}");
        }
        let picklist = "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST";
        assert_eq!(class(Permanent, picklist, &["origin"]), Configuration);
        assert_eq!(
            class(Permanent, picklist, &["Origin", "Description"]),
            Permanent
        );
        assert_eq!(class(Permanent, picklist, &["Unmapped__c"]), Permanent);
        assert_eq!(class(Permanent, picklist, &[]), Permanent);
        let required = "REQUIRED_FIELD_MISSING";
        assert_eq!(class(Permanent, required, &["Unmapped__c"]), Configuration);
        assert_eq!(
            class(Permanent, required, &["Unmapped__c", "Origin"]),
            Permanent
        );
        assert_eq!(class(Permanent, required, &[]), Permanent);
        assert_eq!(class(Permanent, "STRING_TOO_LONG", &["Origin"]), Permanent);
        // Only a permanent rejection can be the configuration's.
        assert_eq!(
            class(ErrorClass::Transient, "INVALID_FIELD", &[]),
            ErrorClass::Transient
        );
        assert_eq!(
            class(ErrorClass::NoAccess, required, &["X__c"]),
            ErrorClass::NoAccess
        );
    }

    #[test]
    fn the_first_configuration_rejection_or_the_systemic_failure_is_summarized() {
        let other = "0e5a3c2b-1111-4222-8333-444455556666";
        let second = format!(r#"{{"ContactId":"{other}","Channel":"VOICE"}}"#).into_bytes();
        let env = envelope(&[&dropped(), &second]);
        let inputs = env.inputs();
        let plan = plan(&inputs, &Settings::default());
        let rejected = |summary: &str| {
            WriteOutcome::Failed(Failure::local(
                ErrorClass::Permanent,
                "INVALID_FIELD",
                summary,
            ))
        };
        let executed = wrote(vec![rejected("first"), rejected("second")]);
        let report = finish(&plan, &executed);
        assert_eq!(
            report.summary.configuration_invalid.as_deref(),
            Some("first")
        );
        assert_eq!(report.summary.salesforce_unavailable, None);
        assert_eq!(report.retry().count(), 2);
        // A record's own failure says nothing about the configuration.
        let executed = wrote(vec![
            failure(ErrorClass::Transient, "timeout"),
            rejected("third"),
        ]);
        let summary = finish(&plan, &executed).summary;
        assert_eq!(summary.configuration_invalid.as_deref(), Some("third"));
        let executed = wrote(vec![failure(ErrorClass::Transient, "timeout")]);
        assert_eq!(finish(&plan, &executed).summary.configuration_invalid, None);
        // A systemic configuration failure is summarized as one, not as an outage.
        let systemic = Failure::local(ErrorClass::Configuration, "configuration_invalid", "org");
        let executed = Executed {
            writes: WriteReport {
                systemic: Some(systemic),
                ..WriteReport::default()
            },
            ..Executed::default()
        };
        let summary = finish(&plan, &executed).summary;
        assert_eq!(summary.configuration_invalid.as_deref(), Some("org"));
        assert_eq!(summary.salesforce_unavailable, None);
    }
}
