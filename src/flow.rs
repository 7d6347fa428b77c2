//! The contact-flow Lambda's entry point: an Amazon Connect "Invoke AWS Lambda function" block
//! during the call → the hand-off Case, filed or updated, and its Id and number for the flow.
//!
//! It answers a flat map of strings, as Connect requires: `{"caseId":"500…","caseNumber":"…"}`,
//! or `{"caseError":"<short code>"}` on any failure so the call continues, always within
//! `FLOW_TIMEOUT_MS` (Connect gives a Lambda at most 8 s). The flow stores `caseId` in the
//! contact attribute `CASE_ID_ATTRIBUTE` (default `ctrCasesCaseId`), so the contact's CTR later
//! updates this same Case (see `case`, "Case lifecycle").
//!
//! A thin adapter: the event becomes a [`Ctr`] with outcome [`Outcome::Handoff`], mapped by the
//! same Case mapping and write modes as the stream; one Salesforce call writes and reads it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use aws_lambda_events::connect::{ConnectEndpoint, ConnectEvent};
use lambda_runtime::LambdaEvent;

use crate::app::AppState;
use crate::case;
use crate::classify::Outcome;
use crate::ctr::{ContactId, Ctr, Endpoint, Queue};
use crate::effect::ErrorClass;
use crate::retry::Deadline;
use crate::salesforce::{self, TransportKind};

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
    let event = match parse_event(payload) {
        Ok(event) => event,
        Err(_) => return failed(None, "invalid_event", started),
    };
    let data = &event.details.contact_data;
    let contact_id = match data.contact_id.as_deref().map(ContactId::parse) {
        Some(Ok(id)) => id,
        // Checked before anything else: no Salesforce call for an id that is not a UUID.
        _ => return failed(None, "invalid_contact_id", started),
    };
    let ctr = contact_of(&event, contact_id.clone());
    let case = case::build(&ctr, &Outcome::Handoff, &state.settings.mapping);
    let written =
        tokio::time::timeout(timeout, state.salesforce.write_handoff(&case, deadline)).await;
    match written {
        Ok(Ok(handoff)) => {
            tracing::info!(
                contact_id = %contact_id,
                case_id = %handoff.id,
                created = handoff.created,
                salesforce_api_calls = handoff.api_calls,
                token_requests = handoff.token_requests,
                latency_ms = started.elapsed().as_millis() as u64,
                "hand-off case written"
            );
            HashMap::from([
                ("caseId".to_owned(), handoff.id),
                ("caseNumber".to_owned(), handoff.case_number),
            ])
        }
        Ok(Err(e)) => {
            tracing::warn!(contact_id = %contact_id, error = %e, "hand-off case not written");
            failed(Some(&contact_id), short_code(&e), started)
        }
        Err(_) => failed(Some(&contact_id), "timeout", started),
    }
}

/// Parses a Connect invoke event, leniently: chat and task contacts carry `null` (or no)
/// `CustomerEndpoint` and `SystemEndpoint`, and Parameters or Attributes may hold non-string
/// JSON values (a number typed into the block); `aws_lambda_events` wants an object and strings.
fn parse_event(mut payload: serde_json::Value) -> Result<ConnectEvent, serde_json::Error> {
    use serde_json::Value;
    if let Some(details) = payload.get_mut("Details").and_then(Value::as_object_mut) {
        if let Some(Value::Object(parameters)) = details.get_mut("Parameters") {
            stringify_values(parameters);
        }
        if let Some(Value::Object(data)) = details.get_mut("ContactData") {
            for endpoint in ["CustomerEndpoint", "SystemEndpoint"] {
                match data.get(endpoint) {
                    Some(Value::Object(_)) => {}
                    _ => {
                        data.insert(endpoint.to_owned(), Value::Object(Default::default()));
                    }
                }
            }
            if let Some(Value::Object(attributes)) = data.get_mut("Attributes") {
                stringify_values(attributes);
            }
        }
    }
    serde_json::from_value(payload)
}

/// Turns every non-string value of a flat string map into its JSON text (`null` is dropped).
fn stringify_values(map: &mut serde_json::Map<String, serde_json::Value>) {
    map.retain(|_, value| !value.is_null());
    for value in map.values_mut() {
        if !value.is_string() {
            *value = serde_json::Value::String(value.to_string());
        }
    }
}

fn failed(contact_id: Option<&ContactId>, code: &'static str, started: Instant) -> FlowResponse {
    tracing::warn!(
        contact_id = contact_id.map_or("-", ContactId::as_str),
        case_error = code,
        latency_ms = started.elapsed().as_millis() as u64,
        "hand-off case error"
    );
    HashMap::from([("caseError".to_owned(), code.to_owned())])
}

/// The short `caseError` code for a Salesforce failure (no detail: the flow only branches).
pub fn short_code(error: &salesforce::Error) -> &'static str {
    match error {
        salesforce::Error::Transport {
            kind: TransportKind::Timeout,
            ..
        }
        | salesforce::Error::DeadlineReached => "timeout",
        salesforce::Error::Transport { .. } => "unreachable",
        salesforce::Error::CaseNotFound { .. } => "case_not_found",
        salesforce::Error::Api { error_code, .. } if error_code == "NOT_FOUND" => "case_not_found",
        e => match e.class() {
            ErrorClass::QuotaExhausted => "quota_exhausted",
            ErrorClass::AuthRejected | ErrorClass::AuthExpired => "auth_rejected",
            ErrorClass::Configuration => "configuration",
            ErrorClass::Permanent | ErrorClass::NoAccess => "rejected",
            ErrorClass::OutOfTime => "timeout",
            ErrorClass::Transient | ErrorClass::Throttled | ErrorClass::Unavailable => {
                "salesforce_unavailable"
            }
        },
    }
}

/// The contact as the stream would see it: the flow's attributes with the block's parameters
/// over them, the caller, the dialled number and the queue.
fn contact_of(event: &ConnectEvent, contact_id: ContactId) -> Ctr {
    let data = &event.details.contact_data;
    let endpoint = |e: &ConnectEndpoint| {
        (e.address.is_some() || e.type_.is_some()).then(|| Endpoint {
            address: e.address.clone(),
            kind: e.type_.clone(),
        })
    };
    let mut ctr = Ctr::new(contact_id);
    ctr.channel = data.channel.as_ref().map(|c| c.to_ascii_uppercase());
    ctr.initiation_method = data.initiation_method.clone();
    ctr.attributes = data
        .attributes
        .iter()
        .chain(&event.details.parameters)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ctr.customer_endpoint = endpoint(&data.customer_endpoint);
    ctr.system_endpoint = endpoint(&data.system_endpoint);
    ctr.queue = data.queue.as_ref().map(|q| Queue {
        name: q.name.clone(),
        arn: q.arn.clone(),
        enqueue_timestamp: None,
        dequeue_timestamp: None,
    });
    ctr.previous_contact_id = data.previous_contact_id.clone();
    ctr.initial_contact_id = data.initial_contact_id.clone();
    ctr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salesforce_failures_become_short_codes() {
        let api = |status: u16, code: &str, message: &str| salesforce::Error::Api {
            status,
            error_code: code.into(),
            message: message.into(),
            fields: vec![],
        };
        assert_eq!(short_code(&salesforce::Error::DeadlineReached), "timeout");
        assert_eq!(
            short_code(&api(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded."
            )),
            "quota_exhausted"
        );
        assert_eq!(
            short_code(&api(400, "REQUIRED_FIELD_MISSING", "x")),
            "rejected"
        );
        assert_eq!(
            short_code(&api(503, "SERVER_UNAVAILABLE", "x")),
            "salesforce_unavailable"
        );
        assert_eq!(short_code(&api(404, "NOT_FOUND", "x")), "case_not_found");
    }

    #[test]
    fn a_chat_event_without_endpoints_and_with_odd_values_parses() {
        let event = parse_event(serde_json::json!({
            "Name": "ContactFlowEvent",
            "Details": {
                "Parameters": {"attempts": 2, "vip": true, "note": null},
                "ContactData": {
                    "ContactId": "5ca32fbd-8f92-46af-92a5-6b0f970f0efe",
                    "Channel": "CHAT", "InitiationMethod": "API",
                    "CustomerEndpoint": null,
                    "Queue": null,
                    "Attributes": {"score": 0.5}
                }
            }
        }))
        .expect("a chat event");
        let ctr = contact_of(
            &event,
            ContactId::parse("5ca32fbd-8f92-46af-92a5-6b0f970f0efe").unwrap(),
        );
        assert_eq!(ctr.customer_address(), None);
        assert!(ctr.queue.is_none());
        assert_eq!(ctr.attributes["attempts"], "2");
        assert_eq!(ctr.attributes["vip"], "true");
        assert_eq!(ctr.attributes["score"], "0.5");
        assert!(!ctr.attributes.contains_key("note"));
        assert!(parse_event(serde_json::json!({"Details": 1})).is_err());
    }

    #[test]
    fn the_event_becomes_a_contact_with_the_parameters_over_the_attributes() {
        let event: ConnectEvent = serde_json::from_value(serde_json::json!({
            "Name": "ContactFlowEvent",
            "Details": {
                "Parameters": {"intent": "billing", "lang": "en"},
                "ContactData": {
                    "ContactId": "5ca32fbd-8f92-46af-92a5-6b0f970f0efe",
                    "Channel": "VOICE", "InitiationMethod": "INBOUND",
                    "CustomerEndpoint": {"Address": "+15555550147", "Type": "TELEPHONE_NUMBER"},
                    "SystemEndpoint": {"Address": "+18005550100", "Type": "TELEPHONE_NUMBER"},
                    "Queue": {"Name": "Billing", "ARN": "arn:q"},
                    "Attributes": {"intent": "other", "accountType": "gold"}
                }
            }
        }))
        .unwrap();
        let ctr = contact_of(
            &event,
            ContactId::parse("5ca32fbd-8f92-46af-92a5-6b0f970f0efe").unwrap(),
        );
        assert_eq!(ctr.attributes["intent"], "billing");
        assert_eq!(ctr.attributes["accountType"], "gold");
        assert_eq!(ctr.customer_address(), Some("+15555550147"));
        assert_eq!(ctr.queue.unwrap().name.as_deref(), Some("Billing"));
    }
}
