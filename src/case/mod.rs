//! From a classified contact to the fields of a Salesforce Case.
//!
//! Pure: no I/O. The mapping is a list of `Field API name → template`. A template is literal
//! text with placeholders in braces:
//!
//! - `{Some.Path}`: any field of the CTR by dotted path (`CustomerEndpoint.Address`,
//!   `Attributes.intent`, `Recordings.0.Location`, …); `{Some.Path|fallback}` when it is absent;
//! - `{outcome}`: what happened, in words ("Dropped call"); `{outcome_code}`: its snake_case name;
//! - `{contact_id}`: the ContactId; `{context}`: the full call context block (the default
//!   Description: contact id, times, disconnect reason, queue/flow context, contact attributes).
//!
//! Contact attributes reach a Case only through the mapping's
//! [`AttributeFilter`](crate::privacy::AttributeFilter), with card numbers masked, however a
//! template names them: `{Attributes.intent}` one attribute, `{Attributes}` every allowed
//! attribute as a JSON object, `{context}` a list.
//!
//! `{{` and `}}` are literal braces. A field whose rendered value is empty is left out. Values
//! are truncated to Salesforce's field sizes on a character boundary. The Case is keyed by the
//! external id field (default `Amazon_Connect_Contact_Id__c`) = ContactId, so writing it twice
//! updates one Case.
//!
//! Nothing here is specific to Kinesis: the mapping reads a [`Ctr`](crate::ctr::Ctr), which a
//! contact-flow event can also be turned into.
//!
//! ## Layout
//! The configuration, checked once at cold start:
//! - `mapping`: [`CaseMapping`] (fields, write modes, overrides, linking, defaults),
//!   [`FieldUse`] for the org check.
//! - `template`: the template language parsed; [`CaseTemplates`] per outcome and channel.
//! - `error`: [`MappingError`], every way a mapping definition can be wrong.
//! - `channel`: the channels, their Case Origin and what a contact on each is called.
//!
//! Rendering, once per contact:
//! - `render`: [`build`]: a contact → a [`CaseRecord`], templates rendered, attributes filtered
//!   and masked, the customer link and the earlier legs.
//! - `description`: the call context block (the default Description) and the outcome in words.
//! - `truncate`: Salesforce's field sizes, [`truncate`] on a character boundary.
//! - `record`: [`CaseRecord`], what a Case write carries, and [`is_case_id`].

mod channel;
mod description;
mod error;
mod mapping;
mod record;
mod render;
mod template;
mod truncate;

pub use error::MappingError;
pub use mapping::{
    CaseMapping, CustomerLinking, DEFAULT_CASE_ID_ATTRIBUTE, DEFAULT_EXTERNAL_ID_FIELD,
    DEFAULT_OUTCOME_FIELD, DEFAULT_VERSION_FIELD, FieldUse, KEPT_CURRENT_BY_DEFAULT, WriteMode,
};
pub use record::{CaseRecord, is_case_id};
pub use render::build;
pub use template::{CASE_TEMPLATE_FIELDS, CaseTemplates};
pub use truncate::truncate;

#[cfg(test)]
mod fixtures;
