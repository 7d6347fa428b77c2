//! The contact-flow function's event: an Amazon Connect "Invoke AWS Lambda function" block's
//! invoke event, decoded leniently into the contact as the stream would see it.
//!
//! Pure: no I/O.

use aws_lambda_events::connect::{ConnectEndpoint, ConnectEvent};

use crate::ctr::{ContactId, Ctr, Endpoint, Queue};

/// Why an invoke event names no contact to file a Case for: the `caseError` code the flow gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventError {
    /// Not a Connect invoke event (`invalid_event`).
    InvalidEvent,
    /// The event's ContactId is missing or not a UUID (`invalid_contact_id`).
    InvalidContactId,
}

impl EventError {
    /// The short code the flow branches on.
    pub fn code(self) -> &'static str {
        match self {
            EventError::InvalidEvent => "invalid_event",
            EventError::InvalidContactId => "invalid_contact_id",
        }
    }
}

/// The contact of the invoke event `payload`: the flow's attributes with the block's parameters
/// over them, the caller, the dialled number and the queue.
///
/// # Errors
/// [`EventError::InvalidEvent`] when `payload` is not an invoke event,
/// [`EventError::InvalidContactId`] when its ContactId is not a UUID.
pub fn contact(payload: serde_json::Value) -> Result<Ctr, EventError> {
    let event = parse_event(payload).map_err(|_| EventError::InvalidEvent)?;
    match event
        .details
        .contact_data
        .contact_id
        .as_deref()
        .map(ContactId::parse)
    {
        Some(Ok(id)) => Ok(contact_of(&event, id)),
        _ => Err(EventError::InvalidContactId),
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

    #[test]
    fn an_event_without_a_valid_contact_id_is_refused() {
        let data = |contact_data| serde_json::json!({"Details": {"ContactData": contact_data}});
        assert_eq!(
            contact(serde_json::json!({"Details": "nope"})).unwrap_err(),
            EventError::InvalidEvent
        );
        for missing in [
            serde_json::json!({}),
            serde_json::json!({"ContactId": "42"}),
        ] {
            assert_eq!(
                contact(data(missing)).unwrap_err(),
                EventError::InvalidContactId
            );
        }
        let id = "5ca32fbd-8f92-46af-92a5-6b0f970f0efe";
        let ctr = contact(data(serde_json::json!({"ContactId": id}))).expect("a contact");
        assert_eq!(ctr.contact_id.as_str(), id);
        // The caller's endpoint is kept as given, even with an address only.
        let ctr = contact(data(serde_json::json!({
            "ContactId": id,
            "CustomerEndpoint": {"Address": "+15555550147"},
            "SystemEndpoint": {"Type": "TELEPHONE_NUMBER"}
        })))
        .expect("a contact");
        assert_eq!(ctr.customer_address(), Some("+15555550147"));
        assert_eq!(
            ctr.system_endpoint.and_then(|e| e.kind).as_deref(),
            Some("TELEPHONE_NUMBER")
        );
        assert_eq!(EventError::InvalidEvent.code(), "invalid_event");
        assert_eq!(EventError::InvalidContactId.code(), "invalid_contact_id");
    }
}
