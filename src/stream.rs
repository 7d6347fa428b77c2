//! The stream Lambda's entry point: a Kinesis batch through the pipeline, answered with the
//! records to retry.
//!
//! **Precondition:** the event source mapping must have `FunctionResponseTypes:
//! [ReportBatchItemFailures]`. Without it Lambda ignores the returned `batchItemFailures` and
//! records reported for retry are lost (template.yaml sets it).
//!
//! Every record ends in exactly one of: Case written, intentionally skipped or superseded,
//! dead-lettered with its reason, or reported for retry. Lambda checkpoints at the lowest
//! reported sequence number.

use std::time::{Duration, Instant};

use aws_lambda_events::streams::KinesisEventResponse;
use lambda_runtime::{Diagnostic, LambdaEvent};

use crate::app::AppState;
use crate::event::KinesisEnvelope;
use crate::metrics;
use crate::pipeline;
use crate::report::{Action, BatchSummary, RecordReport};
use crate::retry::Deadline;

/// The stream function's time budget when the Runtime API gives no plausible deadline and
/// `FUNCTION_TIMEOUT_SECONDS` is unset: template.yaml's default `FunctionTimeout`.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(60);

/// Why a batch could not be answered with a partial failure report.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Records must be retried but have no sequence number to report, so the whole batch fails
    /// and Lambda retries all of it (writes are idempotent).
    #[error(
        "{0} record(s) must be retried but have no sequenceNumber; failing the whole batch so Lambda retries it"
    )]
    UnreportableFailures(usize),
}

impl From<HandlerError> for Diagnostic {
    fn from(err: HandlerError) -> Self {
        let error_type = match err {
            HandlerError::UnreportableFailures(_) => "Retryable",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: err.to_string(),
        }
    }
}

/// The result of one batch.
#[derive(Debug)]
pub struct BatchOutcome {
    /// One report per record, in event order.
    pub reports: Vec<RecordReport>,
    /// Counts.
    pub summary: BatchSummary,
    /// The Lambda response: the records to retry.
    pub response: KinesisEventResponse,
}

/// The Lambda entry point for one invocation.
///
/// # Errors
/// Only [`HandlerError::UnreportableFailures`]: every other failure is per record.
pub async fn handle(
    state: &AppState,
    event: LambdaEvent<KinesisEnvelope>,
) -> Result<KinesisEventResponse, HandlerError> {
    let started = Instant::now();
    let deadline = state.invocation_deadline(
        event.context.deadline,
        DEFAULT_BUDGET,
        state.deadline_margin,
    );
    let outcome = process_batch(state, &event.payload, deadline).await;
    if outcome.summary.holds() {
        // Hold: answering at once would make the event source mapping retry at once, and
        // every retry would fail the same way. Never past the deadline.
        let hold = deadline
            .remaining()
            .map_or(state.outage_hold, |left| left.min(state.outage_hold));
        tokio::time::sleep(hold).await;
    }
    let latency_ms = started.elapsed().as_millis() as u64;
    log_summary(&outcome.summary, latency_ms);
    if state.metrics.enabled {
        let line = metrics::emf_line(
            &state.metrics.namespace,
            &state.metrics.function_name,
            chrono::Utc::now().timestamp_millis(),
            &outcome.summary,
            latency_ms,
        );
        println!("{line}");
    }
    let unreportable = outcome
        .reports
        .iter()
        .filter(|r| r.action == Action::Retry && r.sequence_number.is_empty())
        .count();
    if unreportable > 0 {
        return Err(HandlerError::UnreportableFailures(unreportable));
    }
    Ok(outcome.response)
}

/// Runs a batch through the pipeline ([`pipeline::run`]) with the container's settings,
/// Salesforce client, dead-letter queue and callback queue, within `deadline`: everything
/// [`handle`] answers with, before its hold, logs and metrics. Never fails as a whole.
pub async fn process_batch(
    state: &AppState,
    envelope: &KinesisEnvelope,
    deadline: Deadline,
) -> BatchOutcome {
    let inputs = envelope.inputs();
    let report = pipeline::run(
        &inputs,
        &state.settings,
        &state.salesforce,
        &state.letters(),
        &state.callbacks,
        deadline,
    )
    .await;
    let mut response = KinesisEventResponse::default();
    for sequence_number in report.retry().filter(|s| !s.is_empty()) {
        response.add_failure(sequence_number.to_owned());
    }
    BatchOutcome {
        reports: report.records,
        summary: report.summary,
        response,
    }
}

fn log_summary(summary: &BatchSummary, latency_ms: u64) {
    tracing::info!(
        records = summary.records,
        dropped = summary.outcomes_starting_with("dropped"),
        happy_path = summary.outcomes_starting_with("happy_path"),
        poison = summary.outcomes_starting_with("poison"),
        outcomes = %serde_json::to_string(&summary.outcomes).unwrap_or_default(),
        cases_upserted = summary.count(Action::UpsertCase),
        unchanged = summary.count(Action::Unchanged),
        cases_created = summary.cases_created,
        skipped = summary.count(Action::Skipped),
        superseded = summary.count(Action::Superseded),
        dead_lettered = summary.count(Action::DeadLetter),
        retried = summary.count(Action::Retry),
        resent_in_invocation = summary.resent_in_invocation,
        salesforce_api_calls = summary.salesforce_api_calls,
        token_requests = summary.token_requests,
        latency_ms,
        "batch processed"
    );
}
