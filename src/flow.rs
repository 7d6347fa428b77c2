//! The contact-flow Lambda's entry point: an Amazon Connect "Invoke AWS Lambda function" block
//! during the call → the hand-off Case, filed or updated, and its Id and number for the flow.
//!
//! It answers a flat map of strings, as Connect requires: `{"caseId":"500…","caseNumber":"…"}`,
//! or `{"caseError":"<short code>"}` on any failure so the call continues, always within
//! `FLOW_TIMEOUT_MS` (Connect gives a Lambda at most 8 s). The flow stores `caseId` in the
//! contact attribute `CASE_ID_ATTRIBUTE` (default `ctrCasesCaseId`), so the contact's CTR later
//! updates this same Case (see `case`, "Case lifecycle").
//!
//! The same pipeline as the stream, for one event: [`plan::handoff`] (the event's contact, with
//! outcome [`Outcome::Handoff`](crate::classify::Outcome::Handoff), mapped by the same Case
//! mapping and write modes; or the `caseError` for an event that names no contact) →
//! [`execute::handoff`] (one Salesforce call writes and reads the Case) → [`report::handoff`]
//! (the answer and the log line).

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use lambda_runtime::LambdaEvent;

use crate::app::AppState;
use crate::execute;
use crate::plan;
use crate::report::{self, HandoffReport};
use crate::retry::Deadline;

/// The flow function's time budget when the Runtime API gives no plausible deadline and
/// `FUNCTION_TIMEOUT_SECONDS` is unset: the most Amazon Connect waits for a Lambda block.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(8);

/// What the function answers: a flat map of strings.
pub type FlowResponse = HashMap<String, String>;

/// The Lambda entry point for one contact-flow invocation. Never fails: every problem is a
/// `caseError` for the flow to branch on.
///
/// # Errors
/// None (the `Result` is what `lambda_runtime` wants).
pub async fn handle(
    state: &AppState,
    event: LambdaEvent<serde_json::Value>,
) -> Result<FlowResponse, Infallible> {
    let deadline = state.invocation_deadline(
        event.context.deadline,
        DEFAULT_BUDGET,
        state.deadline_margin.min(
            // Connect's own limit is 8 s: keep the margin small enough to answer in time.
            Duration::from_millis(500),
        ),
    );
    Ok(respond(state, event.payload, deadline).await)
}

/// Files or updates the hand-off Case of the contact in `payload` (a Connect invoke event)
/// before `deadline` and `FLOW_TIMEOUT_MS`, whichever is first.
pub async fn respond(
    state: &AppState,
    payload: serde_json::Value,
    deadline: Deadline,
) -> FlowResponse {
    let started = Instant::now();
    let timeout = deadline
        .remaining()
        .map_or(state.flow_timeout, |left| left.min(state.flow_timeout));
    let deadline = Deadline::after(timeout);
    // Checked before anything else: no Salesforce call for an event that names no contact.
    let planned = plan::handoff(payload, &state.settings.mapping);
    let executed = match &planned {
        Ok(handoff) => Ok((
            handoff,
            execute::handoff(&handoff.case, &state.salesforce, timeout, deadline).await,
        )),
        Err(refusal) => Err(*refusal),
    };
    let report = report::handoff(executed);
    log_report(&report, started);
    report.answer()
}

/// The invocation's log line(s): no customer data.
fn log_report(report: &HandoffReport, started: Instant) {
    let contact_id = report.contact_id.as_deref().unwrap_or("-");
    match &report.result {
        Ok(case) => tracing::info!(
            contact_id,
            case_id = %case.id,
            created = case.created,
            salesforce_api_calls = case.api_calls,
            token_requests = case.token_requests,
            latency_ms = started.elapsed().as_millis() as u64,
            "hand-off case written"
        ),
        Err(code) => {
            if let Some(error) = &report.error {
                tracing::warn!(contact_id, error = %error, "hand-off case not written");
            }
            tracing::warn!(
                contact_id,
                case_error = *code,
                latency_ms = started.elapsed().as_millis() as u64,
                "hand-off case error"
            );
        }
    }
}
