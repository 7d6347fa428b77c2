//! The callback function's batch, its pure ends: SQS messages → one plan entry per message
//! (plan), and what became of each → the messages to return to the queue and the counts
//! (report). The `callback_function` module performs the I/O in between.
//!
//! Pure: no I/O, no clock, no configuration module.

use std::collections::HashMap;

use serde::Serialize;

use crate::callback::{CallbackRequest, RequestError};

/// One SQS message, borrowed from the event.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The SQS message id (what a batch item failure names).
    pub id: &'a str,
    /// The body.
    pub body: &'a str,
}

/// The plan for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    /// Start (or confirm) the callback task for this request.
    Request(CallbackRequest),
    /// The same contact as the message at this position: shares its outcome.
    Duplicate(usize),
    /// Not a callback request: dead-letter it.
    Unreadable(RequestError),
}

/// Plans a batch: reads each message, and keeps one message per contact.
pub fn plan(messages: &[Message<'_>]) -> Vec<Planned> {
    let mut first: HashMap<String, usize> = HashMap::new();
    messages
        .iter()
        .enumerate()
        .map(|(index, m)| match CallbackRequest::parse(m.body) {
            Err(e) => Planned::Unreadable(e),
            Ok(request) => match first.get(&request.contact_id) {
                Some(&at) => Planned::Duplicate(at),
                None => {
                    first.insert(request.contact_id.clone(), index);
                    Planned::Request(request)
                }
            },
        })
        .collect()
}

/// The distinct Case ids a plan needs to read, in order.
pub fn case_ids(planned: &[Planned]) -> Vec<&str> {
    let mut ids: Vec<&str> = Vec::new();
    for p in planned {
        if let Planned::Request(r) = p
            && let Some(id) = r.case_id.as_deref()
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }
    ids
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageOutcome {
    /// The task was started and its id recorded on the Case.
    Started {
        /// The task's ContactId.
        task_id: String,
    },
    /// The Case already names its callback task: nothing was started.
    AlreadyStarted,
    /// The task was started (or Connect answered the same token with it) but the Case could
    /// not record it: the message returns, and the retry records the same task.
    NotRecorded {
        /// Why the write failed (a code).
        code: String,
    },
    /// Throttled, failed for now, or out of time: the message returns after its visibility
    /// timeout.
    Retry {
        /// Why (a code).
        code: String,
    },
    /// Refused for good and stored in the callback dead-letter queue.
    DeadLettered {
        /// Why (a code).
        code: String,
    },
}

impl MessageOutcome {
    /// Whether the message goes back to the queue (a batch item failure).
    pub fn returns(&self) -> bool {
        matches!(
            self,
            MessageOutcome::NotRecorded { .. } | MessageOutcome::Retry { .. }
        )
    }

    /// A stable name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            MessageOutcome::Started { .. } => "started",
            MessageOutcome::AlreadyStarted => "already_started",
            MessageOutcome::NotRecorded { .. } => "not_recorded",
            MessageOutcome::Retry { .. } => "retry",
            MessageOutcome::DeadLettered { .. } => "dead_lettered",
        }
    }
}

/// Counts for one batch of callback requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackSummary {
    /// Messages in the batch.
    pub messages: u32,
    /// Tasks started (and recorded on their Case).
    pub started: u32,
    /// Requests whose Case already named a task.
    pub already_started: u32,
    /// Messages returned because Connect throttled.
    pub throttled: u32,
    /// Messages returned for another reason.
    pub retried: u32,
    /// Messages stored in the callback dead-letter queue.
    pub dead_lettered: u32,
    /// Salesforce data API calls.
    pub salesforce_api_calls: u32,
    /// StartTaskContact calls.
    pub connect_calls: u32,
}

/// Each message's final outcome (a duplicate takes its first message's) and the ids of the
/// messages to return to the queue.
pub fn finish(
    planned: &[Planned],
    outcomes: &[Option<MessageOutcome>],
) -> (Vec<MessageOutcome>, CallbackSummary) {
    let mut summary = CallbackSummary {
        messages: planned.len() as u32,
        ..CallbackSummary::default()
    };
    let finals: Vec<MessageOutcome> = planned
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let own = match p {
                Planned::Duplicate(at) => outcomes.get(*at).cloned().flatten(),
                _ => outcomes.get(i).cloned().flatten(),
            };
            own.unwrap_or(MessageOutcome::Retry {
                code: "not_attempted".into(),
            })
        })
        .collect();
    for (p, o) in planned.iter().zip(&finals) {
        if matches!(p, Planned::Duplicate(_)) {
            continue;
        }
        match o {
            MessageOutcome::Started { .. } => summary.started += 1,
            MessageOutcome::AlreadyStarted => summary.already_started += 1,
            MessageOutcome::Retry { code } if code == "throttled" => summary.throttled += 1,
            MessageOutcome::Retry { .. } | MessageOutcome::NotRecorded { .. } => {
                summary.retried += 1;
            }
            MessageOutcome::DeadLettered { .. } => summary.dead_lettered += 1,
        }
    }
    (finals, summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "5ca32fbd-8f92-46af-92a5-6b0f970f0efe";

    fn body(contact: &str, case: &str) -> String {
        format!(
            r#"{{"contactId":"{contact}","caseId":"{case}","phone":"+15555550147","outcome":"dropped"}}"#
        )
    }

    #[test]
    fn one_message_per_contact_and_unreadable_ones_are_marked() {
        let (a, b) = (body(A, "500000000000001AAA"), body(A, "500000000000001AAA"));
        let messages = [
            Message { id: "m1", body: &a },
            Message {
                id: "m2",
                body: "not json",
            },
            Message { id: "m3", body: &b },
        ];
        let planned = plan(&messages);
        assert!(matches!(planned[0], Planned::Request(_)));
        assert!(matches!(planned[1], Planned::Unreadable(_)));
        assert_eq!(planned[2], Planned::Duplicate(0));
        assert_eq!(case_ids(&planned), ["500000000000001AAA"]);
    }

    #[test]
    fn duplicates_share_the_outcome_and_only_returns_fail_the_item() {
        let a = body(A, "500000000000001AAA");
        let messages = [
            Message { id: "m1", body: &a },
            Message { id: "m2", body: &a },
        ];
        let planned = plan(&messages);
        let (finals, summary) = finish(
            &planned,
            &[
                Some(MessageOutcome::Retry {
                    code: "throttled".into(),
                }),
                None,
            ],
        );
        assert!(finals.iter().all(MessageOutcome::returns));
        assert_eq!(summary.throttled, 1);
        assert_eq!(summary.messages, 2);
        let (finals, summary) = finish(
            &planned,
            &[
                Some(MessageOutcome::Started {
                    task_id: "t".into(),
                }),
                None,
            ],
        );
        assert!(!finals.iter().any(MessageOutcome::returns));
        assert_eq!(summary.started, 1);
    }

    #[test]
    fn every_outcome_has_its_count_and_its_name() {
        const CONTACTS: [&str; 6] = [
            "00000000-0000-4000-8000-000000000001",
            "00000000-0000-4000-8000-000000000002",
            "00000000-0000-4000-8000-000000000003",
            "00000000-0000-4000-8000-000000000004",
            "00000000-0000-4000-8000-000000000005",
            "00000000-0000-4000-8000-000000000006",
        ];
        let bodies: Vec<String> = CONTACTS
            .iter()
            .map(|c| body(c, "500000000000001AAA"))
            .collect();
        let messages: Vec<Message<'_>> = bodies
            .iter()
            .map(|b| Message { id: "m", body: b })
            .collect();
        let code = |c: &str| c.to_owned();
        let outcomes = [
            MessageOutcome::Started {
                task_id: "t".into(),
            },
            MessageOutcome::AlreadyStarted,
            MessageOutcome::NotRecorded {
                code: code("UNABLE_TO_LOCK_ROW"),
            },
            MessageOutcome::Retry {
                code: code("throttled"),
            },
            MessageOutcome::Retry {
                code: code("timeout"),
            },
            MessageOutcome::DeadLettered {
                code: code("InvalidParameterException"),
            },
        ];
        let planned = plan(&messages);
        let given: Vec<Option<MessageOutcome>> = outcomes.iter().cloned().map(Some).collect();
        let (finals, summary) = finish(&planned, &given);
        assert_eq!(finals, outcomes);
        assert_eq!(
            summary,
            CallbackSummary {
                messages: 6,
                started: 1,
                already_started: 1,
                throttled: 1,
                retried: 2,
                dead_lettered: 1,
                ..CallbackSummary::default()
            }
        );
        let names: Vec<&str> = finals.iter().map(MessageOutcome::name).collect();
        assert_eq!(
            names,
            [
                "started",
                "already_started",
                "not_recorded",
                "retry",
                "retry",
                "dead_lettered"
            ]
        );
    }
}
