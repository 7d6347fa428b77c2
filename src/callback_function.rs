//! The callback Lambda's entry point: a batch of callback requests from the callback queue
//! (SQS FIFO) → Amazon Connect tasks, each task's id recorded on its Case.
//!
//! **Precondition:** the SQS event source mapping must have `FunctionResponseTypes:
//! [ReportBatchItemFailures]` (template.yaml sets it); without it Lambda deletes every message
//! of a batch that returned normally, and a throttled request would be lost.
//!
//! One batch: plan ([`crate::callback_batch::plan`], pure) → read the Cases (one Salesforce
//! query) → start a task for each Case without one ([`TaskStarter`], paced) → record the task
//! ids (one Salesforce update) → dead-letter the refused requests → report (pure). Exactly one
//! task per contact: the Case's task field is checked before a task starts and written once,
//! the queue delivers one contact's messages one at a time, and the `ClientToken` (from the
//! ContactId) makes Connect answer a repeated request with the task it already started.
//! A throttled request stops the batch's other starts and returns with them after the queue's
//! visibility timeout.

use std::convert::Infallible;
use std::time::Duration;

use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Serialize};

use crate::aws::callback_queue::CallbackQueue;
use crate::aws::connect::{StartError, TaskStarter};
use crate::callback::{self, CallbackRequest};
use crate::callback_batch::{self, CallbackSummary, Message, MessageOutcome, Planned};
use crate::effect::{ErrorClass, SendOutcome};
use crate::retry::Deadline;
use crate::salesforce::SalesforceClient;
use crate::salesforce::callbacks::CallbackUpdate;

/// A start is not tried with less time than this left before the deadline.
const START_BUDGET: Duration = Duration::from_secs(3);

/// The callback function's default budget when the Runtime API gives no plausible deadline.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(60);

/// State built once per cold start.
#[derive(Debug)]
pub struct CallbackState {
    /// Reads and updates the Cases.
    pub salesforce: SalesforceClient,
    /// Starts the tasks.
    pub tasks: TaskStarter,
    /// The callback queue's dead-letter queue (FIFO), for refused requests; `None`: refused
    /// requests return until SQS moves them there after `maxReceiveCount`.
    pub dead_letters: Option<CallbackQueue>,
    /// The Case field holding the task's ContactId.
    pub task_id_field: String,
    /// The Case field holding the callback state (`started`, `not_started: CODE`); `None`:
    /// not written (`CALLBACK_STATE_FIELD` unset).
    pub state_field: Option<String>,
    /// Time kept in reserve before the invocation deadline.
    pub deadline_margin: Duration,
    /// EMF metrics: `(namespace, function name)`; `None`: no metrics line.
    pub metrics: Option<(String, String)>,
}

/// The SQS event, as the event source mapping delivers it (only what the function reads; a
/// record without an id or body is read as empty and dead-lettered as unreadable).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SqsEvent {
    /// The messages.
    #[serde(rename = "Records", default)]
    pub records: Vec<SqsRecord>,
}

/// One SQS message of the event.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsRecord {
    /// The message id (what a batch item failure names).
    #[serde(default)]
    pub message_id: Option<String>,
    /// The message body.
    #[serde(default)]
    pub body: Option<String>,
}

/// The answer: the messages to return to the queue (`ReportBatchItemFailures`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsBatchResponse {
    /// One entry per message to return.
    pub batch_item_failures: Vec<BatchItemFailure>,
}

/// A message to return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemFailure {
    /// Its SQS message id (never empty).
    pub item_identifier: String,
}

/// The result of one batch.
#[derive(Debug)]
pub struct CallbackOutcome {
    /// One outcome per message, in event order.
    pub outcomes: Vec<MessageOutcome>,
    /// Counts.
    pub summary: CallbackSummary,
    /// The messages to return to the queue.
    pub response: SqsBatchResponse,
}

/// The Lambda entry point for one invocation. Never fails as a whole: every message gets an
/// outcome, and those to try again are reported as batch item failures.
///
/// # Errors
/// None: the `Result` is the runtime's handler shape.
pub async fn handle(
    state: &CallbackState,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Infallible> {
    let (deadline, _) = Deadline::from_lambda(
        event.context.deadline,
        DEFAULT_BUDGET,
        state.deadline_margin,
    );
    let messages: Vec<Message<'_>> = event
        .payload
        .records
        .iter()
        .map(|m| Message {
            id: m.message_id.as_deref().unwrap_or(""),
            body: m.body.as_deref().unwrap_or(""),
        })
        .collect();
    let outcome = process(state, &messages, deadline).await;
    let s = &outcome.summary;
    tracing::info!(
        messages = s.messages,
        started = s.started,
        already_started = s.already_started,
        throttled = s.throttled,
        retried = s.retried,
        dead_lettered = s.dead_lettered,
        salesforce_api_calls = s.salesforce_api_calls,
        connect_calls = s.connect_calls,
        "callback batch processed"
    );
    if let Some((namespace, function_name)) = &state.metrics {
        let line = crate::metrics::callback_emf_line(
            namespace,
            function_name,
            chrono::Utc::now().timestamp_millis(),
            &outcome.summary,
        );
        println!("{line}");
    }
    Ok(outcome.response)
}

/// Runs a batch of messages: read the Cases, start the missing tasks, record them.
pub async fn process(
    state: &CallbackState,
    messages: &[Message<'_>],
    deadline: Deadline,
) -> CallbackOutcome {
    let planned = callback_batch::plan(messages);
    let mut outcomes: Vec<Option<MessageOutcome>> = vec![None; planned.len()];
    let mut api_calls = 0;
    let mut connect_calls = 0;
    let mut dead: Vec<(usize, String)> = Vec::new();
    for (i, p) in planned.iter().enumerate() {
        if let Planned::Unreadable(e) = p {
            tracing::error!(message_id = messages[i].id, error = %e, "callback request unreadable");
            dead.push((i, code_of(e).to_owned()));
        }
    }
    let ids = callback_batch::case_ids(&planned);
    let mut started: Vec<(usize, String)> = Vec::new();
    let mut refused: Vec<(usize, String)> = Vec::new();
    if !ids.is_empty() {
        match state
            .salesforce
            .callback_cases(&ids, &state.task_id_field, deadline)
            .await
        {
            Err(e) => {
                tracing::warn!(
                    error_code = e.code(),
                    "could not read the Cases of callback requests; they return to the queue"
                );
                api_calls += 1;
                for (i, p) in planned.iter().enumerate() {
                    if matches!(p, Planned::Request(_)) {
                        outcomes[i] = Some(MessageOutcome::Retry {
                            code: e.code().to_owned(),
                        });
                    }
                }
            }
            Ok(read) => {
                api_calls += read.api_calls;
                let mut stop: Option<&'static str> = None;
                for (i, p) in planned.iter().enumerate() {
                    let Planned::Request(request) = p else {
                        continue;
                    };
                    let case_id = request.case_id.as_deref().unwrap_or_default();
                    let Some(case) = read.cases.iter().find(|c| same_case(&c.id, case_id)) else {
                        dead.push((i, "case_not_found".into()));
                        continue;
                    };
                    if case.task_id.is_some() {
                        outcomes[i] = Some(MessageOutcome::AlreadyStarted);
                        continue;
                    }
                    if let Some(code) = stop {
                        outcomes[i] = Some(MessageOutcome::Retry { code: code.into() });
                        continue;
                    }
                    if !deadline.allows(START_BUDGET) {
                        stop = Some("deadline_reached");
                        outcomes[i] = Some(MessageOutcome::Retry {
                            code: "deadline_reached".into(),
                        });
                        continue;
                    }
                    let url = callback::case_url(&read.instance_url, &case.id);
                    let spec = callback::task_for(
                        request,
                        &case.id,
                        &case.case_number,
                        &url,
                        state.tasks.settings(),
                        chrono::Utc::now(),
                    );
                    connect_calls += 1;
                    match state.tasks.start(&spec).await {
                        Ok(task_id) => started.push((i, task_id)),
                        Err(e) => {
                            log_refusal(request, &e);
                            match e.class() {
                                ErrorClass::Throttled => {
                                    stop = Some("throttled");
                                    outcomes[i] = Some(MessageOutcome::Retry {
                                        code: "throttled".into(),
                                    });
                                }
                                ErrorClass::Permanent => {
                                    dead.push((i, e.code().to_owned()));
                                    refused.push((i, e.code().to_owned()));
                                }
                                _ => {
                                    outcomes[i] = Some(MessageOutcome::Retry {
                                        code: e.code().to_owned(),
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    api_calls += record_tasks(state, &planned, &started, &refused, &mut outcomes, deadline).await;
    dead_letter(state, messages, &planned, &dead, &mut outcomes, deadline).await;
    let (finals, mut summary) = callback_batch::finish(&planned, &outcomes);
    summary.salesforce_api_calls = api_calls;
    summary.connect_calls = connect_calls;
    let mut response = SqsBatchResponse::default();
    for (m, (p, o)) in messages.iter().zip(planned.iter().zip(&finals)) {
        let contact_id = match p {
            Planned::Request(r) => r.contact_id.as_str(),
            _ => "-",
        };
        tracing::info!(
            message_id = m.id,
            contact_id,
            outcome = o.name(),
            "callback request"
        );
        if o.returns() && !m.id.is_empty() {
            response.batch_item_failures.push(BatchItemFailure {
                item_identifier: m.id.to_owned(),
            });
        }
    }
    CallbackOutcome {
        outcomes: finals,
        summary,
        response,
    }
}

/// Records the started tasks on their Cases (and, with the state field, the refused ones'
/// state) in one call; answers the calls made. A refused request's state is best effort: the
/// request is dead-lettered either way.
async fn record_tasks(
    state: &CallbackState,
    planned: &[Planned],
    started: &[(usize, String)],
    refused: &[(usize, String)],
    outcomes: &mut [Option<MessageOutcome>],
    deadline: Deadline,
) -> u32 {
    let case_of = |i: usize| match &planned[i] {
        Planned::Request(r) => r.case_id.as_deref().unwrap_or_default(),
        _ => "",
    };
    let with_state = state.state_field.is_some();
    let mut updates: Vec<CallbackUpdate<'_>> = started
        .iter()
        .map(|(i, task)| CallbackUpdate {
            case_id: case_of(*i),
            task_id: Some(task.as_str()),
            state: with_state.then(|| "started".to_owned()),
        })
        .collect();
    if with_state {
        updates.extend(refused.iter().map(|(i, code)| CallbackUpdate {
            case_id: case_of(*i),
            task_id: None,
            state: Some(format!("not_started: {code}")),
        }));
    }
    if updates.is_empty() {
        return 0;
    }
    let results = state
        .salesforce
        .record_callbacks(
            &updates,
            &state.task_id_field,
            state.state_field.as_deref(),
            deadline,
        )
        .await;
    for (n, (i, task_id)) in started.iter().enumerate() {
        let result = match &results {
            Ok(each) => each.get(n).map_or(Err("missing_result"), |r| {
                r.as_ref().map(|_| ()).map_err(|e| e.code())
            }),
            Err(e) => Err(e.code()),
        };
        outcomes[*i] = Some(match result {
            Ok(()) => MessageOutcome::Started {
                task_id: task_id.clone(),
            },
            Err(code) => {
                tracing::warn!(
                    error_code = code,
                    "callback task started but not recorded on its Case; the request returns \
                     and records it"
                );
                MessageOutcome::NotRecorded {
                    code: code.to_owned(),
                }
            }
        });
    }
    1
}

/// Stores the refused requests in the callback dead-letter queue (their original bodies, so
/// a redrive puts them back as they were).
async fn dead_letter(
    state: &CallbackState,
    messages: &[Message<'_>],
    planned: &[Planned],
    dead: &[(usize, String)],
    outcomes: &mut [Option<MessageOutcome>],
    deadline: Deadline,
) {
    if dead.is_empty() {
        return;
    }
    let Some(queue) = &state.dead_letters else {
        for (i, code) in dead {
            outcomes[*i] = Some(MessageOutcome::Retry { code: code.clone() });
        }
        return;
    };
    let bodies: Vec<(&str, String)> = dead
        .iter()
        .map(|(i, _)| {
            let group = match &planned[*i] {
                Planned::Request(r) => r.contact_id.as_str(),
                _ => messages[*i].id,
            };
            (group, messages[*i].body.to_owned())
        })
        .collect();
    let sent = queue.send_bodies(&bodies, deadline).await;
    for ((i, code), sent) in dead.iter().zip(sent) {
        outcomes[*i] = Some(match sent {
            SendOutcome::Sent | SendOutcome::Recorded => {
                MessageOutcome::DeadLettered { code: code.clone() }
            }
            SendOutcome::Failed(_) => MessageOutcome::Retry { code: code.clone() },
        });
    }
}

fn log_refusal(request: &CallbackRequest, e: &StartError) {
    match e.class() {
        ErrorClass::Throttled => tracing::warn!(
            contact_id = %request.contact_id, error_code = e.code(),
            "StartTaskContact throttled; the batch's remaining requests return to the queue"
        ),
        ErrorClass::Permanent => tracing::error!(
            contact_id = %request.contact_id, error_code = e.code(), error = %e,
            "Amazon Connect refused the callback task"
        ),
        _ => tracing::warn!(
            contact_id = %request.contact_id, error_code = e.code(),
            "StartTaskContact failed for now; the request returns to the queue"
        ),
    }
}

fn code_of(e: &callback::RequestError) -> &'static str {
    match e {
        callback::RequestError::Unreadable(_) => "unreadable_request",
        callback::RequestError::NoCase => "no_case",
        callback::RequestError::BadContactId => "bad_contact_id",
    }
}

/// Whether two Case ids name the same Case (15- and 18-character forms).
fn same_case(a: &str, b: &str) -> bool {
    a.len() >= 15 && b.len() >= 15 && a[..15] == b[..15]
}
