//! The Case side of callback tasks: one query reads the Cases a batch of callback requests is
//! for (number, and the task already recorded, if any), and one collections update records the
//! tasks started. At most two data API calls per batch of at most 200 requests.
//!
//! The task field is written once: the callback function writes it only for Cases the read
//! found without a task, and every write says `Sforce-Auto-Assign: FALSE` (the Case exists).

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::assignment;
use super::client::{CallCounts, SalesforceClient};
use super::error::Error;
use super::wire::{self, RecordResult};
use crate::retry::Deadline;

/// What the callback function needs to know about one Case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackCase {
    /// The Case Id.
    pub id: String,
    /// The Case number people see.
    pub case_number: String,
    /// The callback task's ContactId, when one was recorded.
    pub task_id: Option<String>,
}

/// The Cases read, with where their Lightning pages live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackCases {
    /// The Cases found (a Case deleted since, or not visible, is missing).
    pub cases: Vec<CallbackCase>,
    /// The instance the Cases are on (`https://…my.salesforce.com`).
    pub instance_url: String,
    /// Data API calls made.
    pub api_calls: u32,
}

impl SalesforceClient {
    /// Reads the Cases `ids` (Case number and `task_field`), in one query.
    ///
    /// # Errors
    /// The call's [`Error`]; an ill-formed Case id is [`Error::InvalidResponse`] without a
    /// call (ids come from our own queue, so that is a bug or a hand-made message).
    pub async fn callback_cases(
        &self,
        ids: &[&str],
        task_field: &str,
        deadline: Deadline,
    ) -> Result<CallbackCases, Error> {
        if let Some(bad) = ids.iter().find(|id| !crate::case::is_case_id(id)) {
            return Err(Error::InvalidResponse {
                status: 0,
                detail: format!("not a Case id: {} characters", bad.len()),
            });
        }
        let counts = CallCounts::default();
        let token = self.token(deadline, &counts).await?;
        let quoted: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
        let soql = format!(
            "SELECT Id, CaseNumber, {task_field} FROM Case WHERE Id IN ({})",
            quoted.join(", ")
        );
        let records = self.query(&soql, deadline).await?;
        let cases = records
            .iter()
            .filter_map(|r| {
                let text = |name: &str| {
                    r.get(name)
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .filter(|s| !s.trim().is_empty())
                };
                Some(CallbackCase {
                    id: text("Id")?,
                    case_number: text("CaseNumber").unwrap_or_default(),
                    task_id: text(task_field),
                })
            })
            .collect();
        Ok(CallbackCases {
            cases,
            instance_url: token.instance_url.clone(),
            api_calls: counts.api_calls.load(Ordering::Relaxed) + 1,
        })
    }

    /// Writes each update (the task's ContactId in `task_field`, the callback state in
    /// `state_field` when configured) in one collections update (at most 200). One result per
    /// update, in order.
    ///
    /// # Errors
    /// The request's [`Error`] when nothing was written.
    pub async fn record_callbacks(
        &self,
        updates: &[CallbackUpdate<'_>],
        task_field: &str,
        state_field: Option<&str>,
        deadline: Deadline,
    ) -> Result<Vec<Result<(), Error>>, Error> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let records: Vec<Value> = updates
            .iter()
            .map(|u| {
                let mut record = json!({"attributes": {"type": "Case"}, "id": u.case_id});
                if let Some(task) = u.task_id {
                    record[task_field] = json!(task);
                }
                if let (Some(field), Some(state)) = (state_field, u.state.as_deref()) {
                    record[field] = json!(state);
                }
                record
            })
            .collect();
        let body = json!({"allOrNone": false, "records": records});
        let path = wire::collections_path(&self.settings().api_version);
        let counts = CallCounts::default();
        let (status, bytes) = self
            .call(
                reqwest::Method::PATCH,
                &path,
                &body,
                Some(assignment::ON_UPDATE),
                deadline,
                &counts,
            )
            .await?;
        let results = wire::parse_collections_response(status, &bytes, updates.len())?;
        Ok(results
            .into_iter()
            .map(|r| match r {
                RecordResult::Upserted { .. } => Ok(()),
                RecordResult::Failed(e) => Err(e),
            })
            .collect())
    }
}

/// Writes callback states (the stream function, when a callback task's own CTR arrives): one
/// collections update; one result per update (`None`: written).
pub(super) async fn record_states(
    client: &SalesforceClient,
    updates: &[(&str, &str)],
    field: &str,
    deadline: Deadline,
) -> Vec<Option<crate::effect::Failure>> {
    let updates: Vec<CallbackUpdate<'_>> = updates
        .iter()
        .map(|(case_id, state)| CallbackUpdate {
            case_id,
            task_id: None,
            state: Some((*state).to_owned()),
        })
        .collect();
    match client
        .record_callbacks(&updates, "", Some(field), deadline)
        .await
    {
        Ok(results) => results
            .into_iter()
            .map(|r| r.err().map(|e| e.to_failure()))
            .collect(),
        Err(e) => vec![Some(e.to_failure()); updates.len()],
    }
}

/// One Case update of [`SalesforceClient::record_callbacks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackUpdate<'a> {
    /// The Case.
    pub case_id: &'a str,
    /// The task started for it (written once: only for a Case the read found without one).
    pub task_id: Option<&'a str>,
    /// The callback state (`started`, `not_started: CODE`), written when the state field is
    /// configured.
    pub state: Option<String>,
}
