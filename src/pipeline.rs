//! One batch through the pipeline: plan (pure) → execute (I/O, one deadline) → report (pure).
//! Every entry point (the stream Lambda, the CLI) runs its records through [`run`].

use crate::effect::{CaseSink, LetterSink};
use crate::execute;
use crate::plan::{self, InputRecord, Plan, Settings};
use crate::report::{self, Action, BatchReport, RecordReport};
use crate::retry::Deadline;

/// Plans `inputs`, performs the effects through `cases` and `letters`, and reports each
/// record's final state. Logs one line per record (no customer data).
pub async fn run<C: CaseSink, L: LetterSink>(
    inputs: &[InputRecord<'_>],
    settings: &Settings,
    cases: &C,
    letters: &L,
    deadline: Deadline,
) -> BatchReport {
    let plan = plan::plan(inputs, settings);
    run_plan(&plan, inputs, cases, letters, deadline).await
}

/// As [`run`], for a plan already made (e.g. one whose Cases a caller inspects first).
pub async fn run_plan<C: CaseSink, L: LetterSink>(
    plan: &Plan,
    inputs: &[InputRecord<'_>],
    cases: &C,
    letters: &L,
    deadline: Deadline,
) -> BatchReport {
    let executed = execute::execute(plan, inputs, cases, letters, deadline).await;
    if executed.writes.quota_exhausted {
        tracing::error!(
            records = plan.cases.len(),
            "Salesforce daily API quota (TotalRequests) is exhausted: Cases not written are \
             reported for retry; raise the org's API limit or wait for the rolling 24 h window"
        );
    }
    if let Some(failure) = executed.writes.outcomes.iter().find_map(|o| match o {
        crate::effect::WriteOutcome::Failed(f)
            if f.class == crate::effect::ErrorClass::AuthRejected =>
        {
            Some(f)
        }
        _ => None,
    }) {
        tracing::error!(error = %failure.summary, "cannot sign in to Salesforce; records are reported for retry");
    }
    let letters = plan.letters.iter().zip(&executed.poison_sends).chain(
        executed
            .rejection_letters
            .iter()
            .zip(&executed.rejection_sends),
    );
    for (letter, sent) in letters {
        if let crate::effect::SendOutcome::Failed(reason) = sent {
            tracing::warn!(
                sequence_number = %letter.effect.sequence_number,
                error_code = %letter.effect.error.code,
                reason = %reason,
                "dead letter not sent; reporting the record for retry"
            );
        }
    }
    let report = report::finish(plan, &executed);
    for record in &report.records {
        log_record(record);
    }
    report
}

fn log_record(r: &RecordReport) {
    let contact_id = r.contact_id.as_deref().unwrap_or("-");
    let error = r.error.as_deref().unwrap_or("");
    let seq = &r.sequence_number;
    match r.action {
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
        Action::Retry => tracing::warn!(
            sequence_number = %seq, contact_id, outcome = r.outcome,
            action = r.action.name(), error_code = error, "record reported for retry"
        ),
    }
}
