//! Callbacks for dropped callers: which contacts get an Amazon Connect task, the request the
//! stream function queues for each new dropped-call Case, and the task the callback function
//! starts from it.
//!
//! Pure: no I/O, no clock ("now" is an argument), no configuration module. The request is the
//! callback queue's message body; [`task_for`] turns it into the exact `StartTaskContact`
//! parameters, built only from the request and the Case, so a retry sends the identical request
//! under the same `ClientToken` (Connect answers the same token with the same contact for 7 days,
//! and rejects the token with different parameters: the StartTaskContact API reference).
//!
//! Loops: every task carries [`CALLBACK_FOR_ATTRIBUTE`] (the dropped ContactId) as a contact
//! attribute, so its own CTR is recognised ([`is_callback_task`]) and never makes a Case or a
//! task; `PreviousContactId` (not `RelatedContactId`) links it to the drop without copying the
//! drop's attributes (such as the Case id attribute) onto it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::classify::Outcome;
use crate::ctr::Ctr;

pub use crate::classify::CALLBACK_FOR_ATTRIBUTE;

/// The contact attribute carrying the Case id the task is for.
pub const CALLBACK_CASE_ATTRIBUTE: &str = "ctrCasesCallbackCaseId";

/// The most a configured delay may be: below Connect's 6-day limit on `ScheduledTime`
/// (StartTaskContact) with an hour to spare, so that a request built a little after the drop is
/// still accepted.
pub const MAX_DELAY: Duration = Duration::from_secs(6 * 24 * 3600 - 3600);

/// `Name` is at most 512 characters, `Description` at most 4,096 (StartTaskContact).
const NAME_LIMIT: usize = 512;
const DESCRIPTION_LIMIT: usize = 4096;

/// The callback queue's message: one per new dropped-call Case with a callable caller.
///
/// Holds the caller's number (customer data): its `Debug` redacts it, and it is never logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackRequest {
    /// The dropped contact (the task's `PreviousContactId`, and its idempotency key).
    pub contact_id: String,
    /// The Salesforce Case written for it (set once the write answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_id: Option<String>,
    /// The caller's E.164 number. Customer data.
    pub phone: String,
    /// The classifier outcome: `dropped` or `queued_abandoned`.
    pub outcome: String,
    /// Connect's disconnect reason, when the CTR had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_reason: Option<String>,
    /// When the call ended (the CTR's `DisconnectTimestamp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnected_at: Option<DateTime<Utc>>,
    /// The queue the caller left, for queued-abandoned callers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
}

impl fmt::Debug for CallbackRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackRequest")
            .field("contact_id", &self.contact_id)
            .field("case_id", &self.case_id)
            .field("phone", &"[REDACTED]")
            .field("outcome", &self.outcome)
            .field("disconnect_reason", &self.disconnect_reason)
            .field("disconnected_at", &self.disconnected_at)
            .finish_non_exhaustive()
    }
}

/// Why a message on the callback queue cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not a callback request (a message put there by hand, or by another tool).
    #[error(
        "the message is not a ctr-cases callback request ({0}); it goes to the callback \
         dead-letter queue: remove it there, or fix and redrive it"
    )]
    Unreadable(String),
    /// The request names no Case, so there is nothing to link the task to.
    #[error(
        "the callback request names no Case; it goes to the callback dead-letter queue: \
         redrive the contact's CTR so its Case is written first"
    )]
    NoCase,
    /// The ContactId is not a UUID.
    #[error("the callback request's contactId is not a UUID; it goes to the dead-letter queue")]
    BadContactId,
}

impl CallbackRequest {
    /// The message body (JSON).
    pub fn body(&self) -> String {
        serde_json::to_string(self).expect("a CallbackRequest always serializes")
    }

    /// Reads a message body. Errors never quote the body (it holds a phone number).
    ///
    /// # Errors
    /// [`RequestError`] when the body is not a complete callback request.
    pub fn parse(body: &str) -> Result<Self, RequestError> {
        let request: CallbackRequest = serde_json::from_str(body).map_err(|e| {
            RequestError::Unreadable(format!("line {} column {}", e.line(), e.column()))
        })?;
        if uuid::Uuid::try_parse(&request.contact_id).is_err() {
            return Err(RequestError::BadContactId);
        }
        if request
            .case_id
            .as_deref()
            .is_none_or(|id| !crate::case::is_case_id(id))
        {
            return Err(RequestError::NoCase);
        }
        Ok(request)
    }
}

/// Whether `address` is a number Connect can call back: E.164 (`+`, a non-zero digit, at most
/// 15 digits). Connect records a withheld or unknown caller as `anonymous` (or leaves the
/// endpoint out); those, and anything else that is not E.164, are not callable.
pub fn is_callable(address: &str) -> bool {
    let Some(digits) = address.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `ctr` is the CTR of one of our callback tasks (or of a contact that inherited its
/// marker): such a contact never gets a Case or a callback.
pub fn is_callback_task(ctr: &Ctr) -> bool {
    ctr.attributes.contains_key(CALLBACK_FOR_ATTRIBUTE)
}

/// The callback request for a contact whose Case is planned, when it gets one: a dropped or
/// queued-abandoned voice caller with a callable number, and not a callback task itself.
pub fn request_for(ctr: &Ctr, outcome: &Outcome) -> Option<CallbackRequest> {
    let disconnect_reason = match outcome {
        Outcome::Dropped { disconnect_reason } => disconnect_reason.clone(),
        Outcome::QueuedAbandoned => ctr.disconnect_reason.clone(),
        _ => return None,
    };
    if is_callback_task(ctr) {
        return None;
    }
    let endpoint = ctr.customer_endpoint.as_ref()?;
    if endpoint
        .kind
        .as_deref()
        .is_some_and(|k| !k.eq_ignore_ascii_case("TELEPHONE_NUMBER"))
    {
        return None;
    }
    let phone = endpoint.address.as_deref().map(str::trim)?;
    if !is_callable(phone) {
        return None;
    }
    Some(CallbackRequest {
        contact_id: ctr.contact_id.to_string(),
        case_id: None,
        phone: phone.to_owned(),
        outcome: outcome.name().to_owned(),
        disconnect_reason,
        disconnected_at: ctr.disconnect_timestamp,
        queue: ctr.queue.as_ref().and_then(|q| q.name.clone()),
    })
}

/// The callback state a callback task's own CTR reports for its drop's Case: `(Case id,
/// state)`, `completed` when an agent took the task, else `expired: REASON`. `None` for any
/// other contact, or when the task names no Case.
pub fn ended_task_state(ctr: &Ctr, outcome: &Outcome) -> Option<(String, String)> {
    if *outcome != Outcome::CallbackTask {
        return None;
    }
    let case_id = ctr.attributes.get(CALLBACK_CASE_ATTRIBUTE)?.trim();
    if !crate::case::is_case_id(case_id) {
        return None;
    }
    let state = if ctr.has_agent {
        "completed".to_owned()
    } else {
        format!(
            "expired: {}",
            ctr.disconnect_reason.as_deref().unwrap_or("UNKNOWN")
        )
    };
    Some((case_id.to_owned(), state))
}

/// Which flow runs the task: exactly one of StartTaskContact's `ContactFlowId` or
/// `TaskTemplateId` (a template must have a flow configured).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskTarget {
    /// `CALLBACK_TASK_CONTACT_FLOW_ID`.
    ContactFlow(String),
    /// `CALLBACK_TASK_TEMPLATE_ID`.
    Template(String),
}

/// How the callback function starts tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSettings {
    /// The Amazon Connect instance (`CONNECT_INSTANCE_ID`).
    pub instance_id: String,
    /// The flow or template.
    pub target: TaskTarget,
    /// How long after the drop the task starts (`CALLBACK_TASK_DELAY_SECONDS`; at most
    /// [`MAX_DELAY`]).
    pub delay: Duration,
}

/// A URL reference shown to the agent as a link, or a text reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskReference {
    /// The reference's name (what the agent reads).
    pub name: String,
    /// Its value.
    pub value: String,
    /// `URL` or `STRING`.
    pub kind: &'static str,
}

/// The parameters of one `StartTaskContact` request.
#[derive(Clone, PartialEq, Eq)]
pub struct TaskSpec {
    /// Idempotency token: derived from the ContactId only.
    pub client_token: String,
    /// The dropped contact.
    pub previous_contact_id: String,
    /// What the agent sees first.
    pub name: String,
    /// What happened, when, the Case number and the number to call. Customer data.
    pub description: String,
    /// The Case link and the number to call.
    pub references: Vec<TaskReference>,
    /// Marks the task as ctr-cases' callback for that contact and Case.
    pub attributes: BTreeMap<String, String>,
    /// Epoch seconds: the drop's time plus the delay, when still in the future.
    pub scheduled_time: Option<i64>,
}

impl fmt::Debug for TaskSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskSpec")
            .field("client_token", &self.client_token)
            .field("previous_contact_id", &self.previous_contact_id)
            .field("scheduled_time", &self.scheduled_time)
            .finish_non_exhaustive()
    }
}

/// The idempotency token of the callback for `contact_id`: the same for every attempt.
pub fn client_token(contact_id: &str) -> String {
    format!("ctr-cases-callback-{contact_id}")
}

/// The Lightning page of a Case on `instance_url`.
pub fn case_url(instance_url: &str, case_id: &str) -> String {
    format!(
        "{}/lightning/r/Case/{case_id}/view",
        instance_url.trim_end_matches('/')
    )
}

/// The task for `request`, whose Case is `case_number` at `case_url`. Built only from its
/// arguments; `now` only decides whether the scheduled time is already past (then omitted,
/// so the task starts at once).
pub fn task_for(
    request: &CallbackRequest,
    case_id: &str,
    case_number: &str,
    case_url: &str,
    settings: &TaskSettings,
    now: DateTime<Utc>,
) -> TaskSpec {
    let what = match request.outcome.as_str() {
        "queued_abandoned" => "hung up while waiting in the queue",
        _ => "was dropped before anyone helped them",
    };
    let when = request.disconnected_at.map_or_else(
        || "at an unknown time".to_owned(),
        |t| format!("at {}", t.format("%Y-%m-%d %H:%M UTC")),
    );
    let name = truncate(
        &format!("Call back: caller {what} (Case {case_number})"),
        NAME_LIMIT,
    );
    let mut description = format!(
        "A caller {what} {when}. Call them back on {phone}. Salesforce Case {case_number} has \
         the details; record the outcome there.",
        phone = request.phone
    );
    if let Some(reason) = &request.disconnect_reason {
        description.push_str(&format!(" Disconnect reason: {reason}."));
    }
    if let Some(queue) = &request.queue {
        description.push_str(&format!(" Queue: {queue}."));
    }
    let references = vec![
        TaskReference {
            name: format!("Salesforce Case {case_number}"),
            value: case_url.to_owned(),
            kind: "URL",
        },
        TaskReference {
            name: "Number to call".into(),
            value: request.phone.clone(),
            kind: "STRING",
        },
    ];
    let attributes = BTreeMap::from([
        (
            CALLBACK_FOR_ATTRIBUTE.to_owned(),
            request.contact_id.clone(),
        ),
        (CALLBACK_CASE_ATTRIBUTE.to_owned(), case_id.to_owned()),
    ]);
    let delay = settings.delay.min(MAX_DELAY);
    let scheduled_time = request
        .disconnected_at
        .filter(|_| !delay.is_zero())
        .and_then(|t| chrono::Duration::from_std(delay).ok().map(|d| t + d))
        .filter(|at| *at > now)
        .map(|at| at.timestamp());
    TaskSpec {
        client_token: client_token(&request.contact_id),
        previous_contact_id: request.contact_id.clone(),
        name,
        description: truncate(&description, DESCRIPTION_LIMIT),
        references,
        attributes,
        scheduled_time,
    }
}

fn truncate(text: &str, limit: usize) -> String {
    text.chars().take(limit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "5ca32fbd-8f92-46af-92a5-6b0f970f0efe";

    fn ctr(extra: &str) -> Ctr {
        Ctr::from_json(format!(
            r#"{{"ContactId":"{ID}","Channel":"VOICE","InitiationMethod":"INBOUND",
            "DisconnectTimestamp":"2024-01-01T10:00:00Z"{extra}}}"#
        ))
        .unwrap()
    }

    fn dropped() -> Outcome {
        Outcome::Dropped {
            disconnect_reason: Some("CUSTOMER_DISCONNECT".into()),
        }
    }

    fn settings(delay: u64) -> TaskSettings {
        TaskSettings {
            instance_id: "inst".into(),
            target: TaskTarget::ContactFlow("flow".into()),
            delay: Duration::from_secs(delay),
        }
    }

    #[test]
    fn e164_numbers_are_callable_and_anonymous_is_not() {
        assert!(is_callable("+15555550147"));
        assert!(is_callable("+442071838750"));
        for bad in [
            "anonymous",
            "Anonymous",
            "",
            "+",
            "+0123456",
            "5555550147",
            "+1555 555 0147",
            "+1234567890123456",
        ] {
            assert!(!is_callable(bad), "{bad}");
        }
    }

    #[test]
    fn dropped_caller_with_a_number_gets_a_request() {
        let c = ctr(r#","CustomerEndpoint":{"Address":"+15555550147","Type":"TELEPHONE_NUMBER"}"#);
        let r = request_for(&c, &dropped()).expect("a request");
        assert_eq!(r.contact_id, ID);
        assert_eq!(r.phone, "+15555550147");
        assert_eq!(r.outcome, "dropped");
        assert_eq!(r.disconnect_reason.as_deref(), Some("CUSTOMER_DISCONNECT"));
        assert!(!format!("{r:?}").contains("5550147"));
    }

    #[test]
    fn anonymous_or_missing_caller_gets_no_request() {
        let anonymous =
            ctr(r#","CustomerEndpoint":{"Address":"anonymous","Type":"TELEPHONE_NUMBER"}"#);
        assert_eq!(request_for(&anonymous, &dropped()), None);
        assert_eq!(
            request_for(&ctr(r#","CustomerEndpoint":null"#), &dropped()),
            None
        );
        assert_eq!(request_for(&ctr(""), &dropped()), None);
    }

    #[test]
    fn callback_task_and_happy_path_get_no_request() {
        let task = ctr(&format!(
            r#","CustomerEndpoint":{{"Address":"+15555550147","Type":"TELEPHONE_NUMBER"}},
            "Attributes":{{"{CALLBACK_FOR_ATTRIBUTE}":"{ID}"}}"#
        ));
        assert!(is_callback_task(&task));
        assert_eq!(request_for(&task, &dropped()), None);
        let served = ctr(r#","CustomerEndpoint":{"Address":"+15555550147"}"#);
        assert_eq!(request_for(&served, &Outcome::TransferredOut), None);
        assert!(request_for(&served, &Outcome::QueuedAbandoned).is_some());
    }

    #[test]
    fn an_ended_task_reports_completed_or_expired_for_its_case_only() {
        let task = |extra: &str| {
            ctr(&format!(
                r#","Attributes":{{"{CALLBACK_FOR_ATTRIBUTE}":"{ID}","{CALLBACK_CASE_ATTRIBUTE}":"500000000000001AAA"}}{extra}"#
            ))
        };
        let taken = task(r#","Agent":{"Username":"a"}"#);
        assert_eq!(
            ended_task_state(&taken, &Outcome::CallbackTask),
            Some(("500000000000001AAA".into(), "completed".into()))
        );
        let expired = task(r#","DisconnectReason":"EXPIRED""#);
        assert_eq!(
            ended_task_state(&expired, &Outcome::CallbackTask).map(|s| s.1),
            Some("expired: EXPIRED".into())
        );
        assert_eq!(ended_task_state(&expired, &dropped()), None);
        let no_case = ctr(&format!(
            r#","Attributes":{{"{CALLBACK_FOR_ATTRIBUTE}":"{ID}"}}"#
        ));
        assert_eq!(ended_task_state(&no_case, &Outcome::CallbackTask), None);
    }

    fn request() -> CallbackRequest {
        let c = ctr(r#","CustomerEndpoint":{"Address":"+15555550147"}"#);
        let mut r = request_for(&c, &dropped()).unwrap();
        r.case_id = Some("500000000000001AAA".into());
        r
    }

    #[test]
    fn request_round_trips_through_its_body() {
        let r = request();
        assert_eq!(CallbackRequest::parse(&r.body()), Ok(r));
        assert_eq!(
            CallbackRequest::parse(r#"{"contactId":"x"}"#)
                .map_err(|e| matches!(e, RequestError::Unreadable(_))),
            Err(true)
        );
        let mut no_case = request();
        no_case.case_id = None;
        assert_eq!(
            CallbackRequest::parse(&no_case.body()),
            Err(RequestError::NoCase)
        );
    }

    #[test]
    fn task_links_the_case_and_marks_itself() {
        let now = "2024-01-01T10:05:00Z".parse().unwrap();
        let url = case_url("https://example.my.salesforce.com/", "500000000000001AAA");
        assert_eq!(
            url,
            "https://example.my.salesforce.com/lightning/r/Case/500000000000001AAA/view"
        );
        let t = task_for(
            &request(),
            "500000000000001AAA",
            "00001234",
            &url,
            &settings(0),
            now,
        );
        assert_eq!(t.client_token, format!("ctr-cases-callback-{ID}"));
        assert_eq!(t.previous_contact_id, ID);
        assert!(t.name.contains("00001234"));
        assert!(t.description.contains("+15555550147"));
        assert!(t.description.contains("2024-01-01 10:00 UTC"));
        assert_eq!(t.references[0].value, url);
        assert_eq!(t.references[0].kind, "URL");
        assert_eq!(t.attributes[CALLBACK_FOR_ATTRIBUTE], ID);
        assert_eq!(t.attributes[CALLBACK_CASE_ATTRIBUTE], "500000000000001AAA");
        assert_eq!(t.scheduled_time, None);
        let shown = format!("{t:?}");
        assert!(!shown.contains("5550147"), "{shown}");
        assert!(
            shown.contains(ID),
            "the task's Debug names the dropped contact: {shown}"
        );
    }

    #[test]
    fn schedule_follows_the_drop_not_the_clock_and_is_omitted_when_past() {
        let drop: DateTime<Utc> = "2024-01-01T10:00:00Z".parse().unwrap();
        let early = "2024-01-01T10:05:00Z".parse().unwrap();
        let later = "2024-01-01T10:20:00Z".parse().unwrap();
        let at = |now| {
            task_for(
                &request(),
                "500000000000001AAA",
                "1",
                "u",
                &settings(900),
                now,
            )
            .scheduled_time
        };
        let expected = drop.timestamp() + 900;
        assert_eq!(at(early), Some(expected));
        assert_eq!(at("2024-01-01T10:06:00Z".parse().unwrap()), Some(expected));
        assert_eq!(at(later), None);
        // Exactly due: not in the future, so omitted (Connect starts it now).
        assert_eq!(at("2024-01-01T10:15:00Z".parse().unwrap()), None);
    }

    #[test]
    fn a_queued_abandoned_callers_task_says_they_hung_up_in_the_queue() {
        let mut queued = request();
        queued.outcome = "queued_abandoned".into();
        let t = task_for(
            &queued,
            "500000000000001AAA",
            "42",
            "u",
            &settings(0),
            Utc::now(),
        );
        assert!(
            t.name.contains("hung up while waiting in the queue"),
            "{}",
            t.name
        );
        let dropped = task_for(
            &request(),
            "500000000000001AAA",
            "42",
            "u",
            &settings(0),
            Utc::now(),
        );
        assert!(dropped.name.contains("was dropped"), "{}", dropped.name);
    }

    #[test]
    fn the_longest_delay_stays_within_connects_six_days() {
        let drop: DateTime<Utc> = "2024-01-01T10:00:00Z".parse().unwrap();
        let ten_days = 10 * 24 * 3600;
        let scheduled = task_for(
            &request(),
            "500000000000001AAA",
            "1",
            "u",
            &settings(ten_days),
            drop,
        )
        .scheduled_time
        .unwrap();
        let ahead = scheduled - drop.timestamp();
        assert_eq!(ahead, 6 * 24 * 3600 - 3600, "six days less an hour");
        assert!(ahead < 6 * 24 * 3600, "Connect refuses more than 6 days");
    }

    #[test]
    fn a_requests_debug_names_the_contact_and_hides_the_number() {
        let shown = format!("{:?}", request());
        assert!(shown.contains(ID), "{shown}");
        assert!(shown.contains("[REDACTED]"), "{shown}");
        assert!(!shown.contains("5550147"), "{shown}");
    }
}
