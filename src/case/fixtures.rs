//! Contacts and the default mapping the case module's tests share.

use crate::case::CaseMapping;
use crate::case::DEFAULT_EXTERNAL_ID_FIELD;
use crate::classify::{ClassifyConfig, Outcome, classify};
use crate::ctr::Ctr;

/// A dropped voice call with a caller, a dialled number, times and two attributes.
const DROPPED: &str = r#"{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe","Channel":"VOICE",
    "InitiationMethod":"INBOUND","Agent":null,"Queue":null,"DisconnectReason":"CONTACT_FLOW_DISCONNECT",
    "CustomerEndpoint":{"Address":"+11234567890","Type":"TELEPHONE_NUMBER"},
    "SystemEndpoint":{"Address":"+18005550100","Type":"TELEPHONE_NUMBER"},
    "InitiationTimestamp":"2024-02-25T08:35:09Z","ConnectedToSystemTimestamp":"2024-02-25T08:35:09Z",
    "DisconnectTimestamp":"2024-02-25T08:35:21Z","Attributes":{"intent":"billing","accountNumber":12345},
    "Tags":{"aws:connect:instanceId":"9308c2a1"}}"#;

/// [`DROPPED`] and its outcome.
pub(super) fn dropped() -> (Ctr, Outcome) {
    let ctr = Ctr::from_json(DROPPED.into()).unwrap();
    let outcome = classify(&ctr, &ClassifyConfig::default());
    (ctr, outcome)
}

/// The default mapping: Priority `Medium`.
pub(super) fn default_mapping() -> CaseMapping {
    CaseMapping::new(DEFAULT_EXTERNAL_ID_FIELD, "Medium").unwrap()
}

/// The CTR of [`sensitive`].
const SENSITIVE: &str = r#"{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe",
    "CustomerEndpoint":{"Address":"+15555550147"},
    "Attributes":{"creditCardNumber":"4111111111111111","cvv":"123","card.number":"5555555555554444",
    "pin.code":"8642","payment":{"cvv":"987","brand":"visa"},"note":"card 4111.1111.1111.1111 expired",
    "intent":"billing","sfContactId":"003000000000001AAA"}}"#;

/// A contact whose attributes hold card numbers, a CVV, a PIN and a Contact Id.
pub(super) fn sensitive() -> (Ctr, Outcome) {
    let ctr = Ctr::from_json(SENSITIVE.into()).unwrap();
    let outcome = classify(&ctr, &ClassifyConfig::default());
    (ctr, outcome)
}
