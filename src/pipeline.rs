//! One batch through the pipeline: plan (pure) → execute (I/O, one deadline) → report (pure)
//! → execute the follow-ups → report. Every entry point that takes records (the stream
//! Lambda, redrive, the replay CLI) runs them through [`run`].

use crate::effect::{CallbackSink, CaseSink, ErrorClass, LetterSink, SendOutcome, WriteOutcome};
use crate::execute;
use crate::input::InputRecord;
use crate::plan::{self, Plan, Settings};
use crate::report::{self, Action, BatchReport, Executed, RecordReport};
use crate::retry::{self, Deadline};

/// Plans `inputs`, performs the effects through `cases`, `letters` and `callbacks` (a callback
/// request for each callable dropped caller whose Case exists after the writes, when
/// [`Settings::callbacks`] is on; [`crate::effect::NoCallbacks`] only records them), and
/// reports each record's final state. Logs one line per record (no customer data).
pub async fn run<C: CaseSink, L: LetterSink, B: CallbackSink>(
    inputs: &[InputRecord<'_>],
    settings: &Settings,
    cases: &C,
    letters: &L,
    callbacks: &B,
    deadline: Deadline,
) -> BatchReport {
    let plan = plan::plan(inputs, settings);
    run_plan(&plan, inputs, cases, letters, callbacks, deadline).await
}

/// As [`run`], for a plan already made from `inputs` (e.g. one whose Cases a caller inspects
/// first, or a benchmark of execute and report alone).
///
/// The first pass performs the plan's effects; the report decides from its write results,
/// as of the wall clock then ([`retry::epoch_secs`]), the follow-up letters and callback
/// requests ([`report::follow_ups`]); the second pass performs them.
pub async fn run_plan<C: CaseSink, L: LetterSink, B: CallbackSink>(
    plan: &Plan,
    inputs: &[InputRecord<'_>],
    cases: &C,
    letters: &L,
    callbacks: &B,
    deadline: Deadline,
) -> BatchReport {
    let written = execute::execute(plan, cases, letters, deadline).await;
    let follow_ups = report::follow_ups(plan, inputs, &written.writes, retry::epoch_secs());
    let followed = execute::follow_up(&follow_ups, cases, letters, callbacks, deadline).await;
    let executed = Executed {
        writes: written.writes,
        poison_sends: written.poison_sends,
        rejection_letters: follow_ups.letters,
        rejection_sends: followed.letter_sends,
        callbacks: follow_ups.callbacks,
        callback_sends: followed.callback_sends,
        callback_state_results: followed.callback_state_results,
    };
    if let Some(failure) = executed
        .writes
        .systemic
        .as_ref()
        .filter(|f| f.class == ErrorClass::Configuration)
    {
        // The one error line of an invocation held for a configuration the org refuses.
        tracing::error!(
            error = %failure.summary,
            error_code = %failure.code,
            records = plan.cases.len(),
            "the Salesforce org does not take what the configuration writes; nothing is \
             dead-lettered: every Case is held (reported for retry, or parked when about to \
             expire from the stream) until the org or the mapping is fixed"
        );
    } else if let Some(failure) = &executed.writes.systemic {
        // The one error line of an invocation held for an outage.
        let hint = match failure.class {
            ErrorClass::QuotaExhausted => {
                "the daily API quota (TotalRequests) is exhausted: raise the org's API limit or \
                 wait for the rolling 24 h window"
            }
            ErrorClass::AuthRejected => "cannot sign in to Salesforce: fix the credentials",
            _ => "Salesforce cannot be reached or is not answering as Salesforce",
        };
        tracing::error!(
            error = %failure.summary,
            error_code = %failure.code,
            records = plan.cases.len(),
            "Salesforce unavailable ({hint}); Cases not written are held: reported for retry, \
             or parked when about to expire from the stream"
        );
    }
    let out_of_time = executed
        .writes
        .outcomes
        .iter()
        .filter(|o| matches!(o, WriteOutcome::Failed(f) if f.class == ErrorClass::OutOfTime))
        .count();
    if out_of_time > 0 {
        // The deadline, not Salesforce: said as such, so nobody chases an outage.
        tracing::warn!(
            records = out_of_time,
            error_code = "deadline_reached",
            "invocation deadline reached before these Cases could be written (not a Salesforce \
             failure); reported for retry: raise the function's timeout or lower the batch size"
        );
    }
    let held = executed.writes.systemic.is_some();
    let letters = plan.letters.iter().zip(&executed.poison_sends).chain(
        executed
            .rejection_letters
            .iter()
            .zip(&executed.rejection_sends),
    );
    for (letter, sent) in letters {
        if let SendOutcome::Failed(reason) = sent {
            tracing::warn!(
                sequence_number = %letter.effect.sequence_number,
                error_code = %letter.effect.error.code,
                reason = %reason,
                "dead letter not sent; reporting the record for retry"
            );
        }
    }
    let report = report::finish(plan, &executed);
    let rejected_configuration = report
        .summary
        .configuration_invalid
        .as_ref()
        .filter(|_| executed.writes.systemic.is_none());
    if let Some(summary) = rejected_configuration {
        tracing::error!(
            error = %summary,
            "Salesforce rejected what the configuration writes (not the contacts' data); those \
             Cases are held, not dead-lettered, until the org or the mapping is fixed: run \
             `ctr-cases check`"
        );
    }
    let held = held || rejected_configuration.is_some();
    for record in &report.records {
        log_record(record, held);
    }
    report
}

fn log_record(r: &RecordReport, held: bool) {
    let contact_id = r.contact_id.as_deref().unwrap_or("-");
    let error = r.error.as_deref().unwrap_or("");
    let seq = &r.sequence_number;
    match r.action {
        Action::Unchanged => tracing::info!(
            sequence_number = %seq, contact_id, outcome = r.outcome,
            action = r.action.name(), "case unchanged"
        ),
        Action::Skipped | Action::Superseded => tracing::debug!(
            sequence_number = %seq, contact_id, outcome = r.outcome,
            action = r.action.name(), "record skipped"
        ),
        Action::UpsertCase => tracing::info!(
            sequence_number = %seq, contact_id, outcome = r.outcome,
            action = r.action.name(), created = r.created.unwrap_or(false), "case upserted"
        ),
        Action::DeadLetter => tracing::error!(
            sequence_number = %seq, contact_id, outcome = r.outcome,
            action = r.action.name(), error_code = error, "record dead-lettered"
        ),
        // During an outage every record is held: one error line says so, not one per record.
        Action::Retry if held => tracing::debug!(
            sequence_number = %seq, contact_id, outcome = r.outcome,
            action = r.action.name(), error_code = error, "record held for retry"
        ),
        Action::Parked => tracing::warn!(
            sequence_number = %seq, contact_id, outcome = r.outcome,
            action = r.action.name(), error_code = error, "record parked"
        ),
        Action::Retry => tracing::warn!(
            sequence_number = %seq, contact_id, outcome = r.outcome,
            action = r.action.name(), error_code = error, "record reported for retry"
        ),
    }
}
