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
//! `{{` and `}}` are literal braces. A field whose rendered value is empty is left out. Values
//! are truncated to Salesforce's field sizes on a character boundary. The Case is keyed by the
//! external id field (default `Amazon_Connect_Contact_Id__c`) = ContactId, so writing it twice
//! updates one Case.
//!
//! Nothing here is specific to Kinesis: the mapping reads a [`Ctr`], which a contact-flow event
//! can also be turned into.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use crate::classify::{HappyPath, Outcome};
use crate::ctr::{Capture, ContactId, Ctr};

/// The default external id field on Case.
pub const DEFAULT_EXTERNAL_ID_FIELD: &str = "Amazon_Connect_Contact_Id__c";

/// Salesforce field sizes (characters) for standard Case text fields.
const FIELD_LIMITS: &[(&str, usize)] = &[
    ("Subject", 255),
    ("Description", 32_000),
    ("SuppliedPhone", 40),
    ("SuppliedName", 80),
    ("SuppliedEmail", 80),
    ("SuppliedCompany", 80),
    ("Origin", 40),
    ("Status", 40),
    ("Priority", 40),
    ("Reason", 40),
    ("Type", 40),
];

/// Text fields of unknown size (custom fields) are capped at the largest Salesforce text area.
const DEFAULT_LIMIT: usize = 131_072;

/// What went wrong in a Case mapping definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// A field name is not a Salesforce API name.
    #[error(
        "`{0}` is not a Salesforce field API name (letters, digits and underscores, starting with a letter)"
    )]
    InvalidFieldName(String),
    /// A template has an unclosed or stray brace.
    #[error(
        "the template for `{field}` has an unbalanced brace at character {position}; write {{{{ or }}}} for a literal brace"
    )]
    UnbalancedBrace {
        /// The field whose template is wrong.
        field: String,
        /// Character position of the problem.
        position: usize,
    },
    /// The mapping tries to set the external id field, which is always the ContactId.
    #[error(
        "`{0}` is the external id field; it is always set to the ContactId and cannot be mapped"
    )]
    ExternalIdMapped(String),
    /// The mapping JSON is not an object of strings (or nulls to remove a default).
    #[error(
        "the Case mapping must be a JSON object of field name → template string (or null to drop a default field): {0}"
    )]
    NotAnObject(String),
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Placeholder { path: String, fallback: String },
}

/// A parsed field template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

impl Template {
    /// Parses a template for `field`.
    ///
    /// # Errors
    /// [`MappingError::UnbalancedBrace`] for a lone `{` or `}`.
    pub fn parse(field: &str, text: &str) -> Result<Self, MappingError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().enumerate().peekable();
        let unbalanced = |position| MappingError::UnbalancedBrace {
            field: field.to_owned(),
            position,
        };
        while let Some((pos, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => return Err(unbalanced(pos)),
                '{' => {
                    let mut inner = String::new();
                    loop {
                        match chars.next() {
                            Some((_, '}')) => break,
                            Some((p, '{')) => return Err(unbalanced(p)),
                            Some((_, c)) => inner.push(c),
                            None => return Err(unbalanced(pos)),
                        }
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    let (path, fallback) = inner.split_once('|').unwrap_or((&inner, ""));
                    pieces.push(Piece::Placeholder {
                        path: path.trim().to_owned(),
                        fallback: fallback.to_owned(),
                    });
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Template(pieces))
    }
}

/// How Cases are built: external id field and the field templates, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseMapping {
    /// The Case field holding the ContactId (unique external id).
    pub external_id_field: String,
    fields: Vec<(String, Template)>,
}

impl CaseMapping {
    /// The default mapping with the given external id field and Case priority.
    ///
    /// # Errors
    /// [`MappingError::InvalidFieldName`] when `external_id_field` is not an API name.
    pub fn new(external_id_field: &str, priority: &str) -> Result<Self, MappingError> {
        check_field_name(external_id_field)?;
        let defaults = [
            (
                "Subject",
                "{outcome} from {CustomerEndpoint.Address|unknown caller}",
            ),
            ("Description", "{context}"),
            ("Origin", "Phone"),
            ("Status", "New"),
            ("SuppliedPhone", "{CustomerEndpoint.Address}"),
        ];
        let mut fields = defaults
            .into_iter()
            .map(|(f, t)| Ok((f.to_owned(), Template::parse(f, t)?)))
            .collect::<Result<Vec<_>, MappingError>>()?;
        fields.push((
            "Priority".into(),
            Template(vec![Piece::Literal(priority.into())]),
        ));
        Ok(CaseMapping {
            external_id_field: external_id_field.to_owned(),
            fields,
        })
    }

    /// Applies user overrides from JSON: `{"Field": "template", "DefaultField": null, …}`.
    /// A string replaces or adds a field; null removes a default field.
    ///
    /// # Errors
    /// [`MappingError`] for a bad field name, template or JSON shape, or when the external id
    /// field is mapped.
    pub fn with_overrides(mut self, json: &str) -> Result<Self, MappingError> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| MappingError::NotAnObject(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(MappingError::NotAnObject("got a non-object".into()));
        };
        for (field, template) in map {
            check_field_name(&field)?;
            if field.eq_ignore_ascii_case(&self.external_id_field) {
                return Err(MappingError::ExternalIdMapped(field));
            }
            self.fields.retain(|(f, _)| f != &field);
            match template {
                Value::Null => {}
                Value::String(text) => {
                    let parsed = Template::parse(&field, &text)?;
                    self.fields.push((field, parsed));
                }
                _ => {
                    return Err(MappingError::NotAnObject(format!(
                        "the value for `{field}` is not a string or null"
                    )));
                }
            }
        }
        Ok(self)
    }

    /// The mapped field names, in order (without the external id field).
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(f, _)| f.as_str())
    }

    /// What a CTR decode must keep for this mapping: the top-level key of every CTR path its
    /// templates reference (the special placeholders need nothing beyond the typed fields).
    pub fn capture(&self) -> Capture {
        Capture::of_paths(
            self.fields
                .iter()
                .flat_map(|(_, template)| &template.0)
                .filter_map(|piece| match piece {
                    Piece::Placeholder { path, .. } if !SPECIAL.contains(&path.as_str()) => {
                        Some(path.as_str())
                    }
                    _ => None,
                }),
        )
    }
}

impl Default for CaseMapping {
    /// The default mapping: external id `Amazon_Connect_Contact_Id__c`, Priority `Medium`.
    fn default() -> Self {
        CaseMapping::new(DEFAULT_EXTERNAL_ID_FIELD, "Medium").expect("the default mapping is valid")
    }
}

/// Placeholders that are not CTR paths.
const SPECIAL: [&str; 4] = ["outcome", "outcome_code", "contact_id", "context"];

fn check_field_name(name: &str) -> Result<(), MappingError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 80;
    if ok {
        Ok(())
    } else {
        Err(MappingError::InvalidFieldName(name.to_owned()))
    }
}

/// A Case to upsert: its key and its fields (without the external id field).
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRecord {
    /// The external id value: the ContactId.
    pub external_id: ContactId,
    /// Field API name → value (sorted by name).
    pub fields: Map<String, Value>,
}

/// Builds the Case for a contact. CTR paths come from the values the decode captured for
/// this mapping ([`CaseMapping::capture`]), so the record is not parsed again.
pub fn build(ctr: &Ctr, outcome: &Outcome, mapping: &CaseMapping) -> CaseRecord {
    let mut fields = Map::new();
    for (field, template) in &mapping.fields {
        let mut text = String::new();
        for piece in &template.0 {
            match piece {
                Piece::Literal(s) => text.push_str(s),
                Piece::Placeholder { path, fallback } => {
                    let value = resolve(path, ctr, outcome);
                    match value.filter(|v| !v.is_empty()) {
                        Some(v) => text.push_str(&v),
                        None => text.push_str(fallback),
                    }
                }
            }
        }
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let limit = FIELD_LIMITS
            .iter()
            .find(|(f, _)| f == field)
            .map_or(DEFAULT_LIMIT, |(_, l)| *l);
        fields.insert(field.clone(), Value::String(truncate(text, limit)));
    }
    CaseRecord {
        external_id: ctr.contact_id.clone(),
        fields,
    }
}

fn resolve(path: &str, ctr: &Ctr, outcome: &Outcome) -> Option<String> {
    match path {
        "outcome" => Some(outcome_title(outcome).to_owned()),
        "outcome_code" => Some(outcome.name().to_owned()),
        "contact_id" => Some(ctr.contact_id.to_string()),
        "context" => Some(context_block(ctr, outcome)),
        _ => ctr.path(path),
    }
}

/// What happened, in words, for Subjects.
pub fn outcome_title(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Dropped { .. } => "Dropped call",
        Outcome::QueuedAbandoned => "Call abandoned in queue",
        Outcome::HappyPath(HappyPath::LiveAgent) => "Call handled by an agent",
        Outcome::HappyPath(HappyPath::VirtualAgent) => "Virtual agent hand-off",
        Outcome::TransferredOut => "Transferred call",
        Outcome::SkippedChannel(_) | Outcome::SkippedInitiation(_) => "Contact",
    }
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "unknown".to_owned(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

/// The call context a Case carries: contact id, times, disconnect reason, queue/flow context and
/// every contact attribute the flow (or virtual agent) collected.
pub fn context_block(ctr: &Ctr, outcome: &Outcome) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Amazon Connect contact {}", ctr.contact_id);
    let _ = write!(out, "Outcome: {}", outcome_title(outcome));
    if let Outcome::Dropped {
        disconnect_reason: Some(reason),
    } = outcome
    {
        let _ = write!(out, " (disconnect reason: {reason})");
    } else if let Some(reason) = &ctr.disconnect_reason {
        let _ = write!(out, " (disconnect reason: {reason})");
    }
    out.push('\n');
    let or_unknown = |v: Option<&str>| v.unwrap_or("unknown").to_owned();
    let _ = writeln!(
        out,
        "Channel: {}, initiation: {}",
        or_unknown(ctr.channel.as_deref()),
        or_unknown(ctr.initiation_method.as_deref())
    );
    let _ = writeln!(out, "Caller: {}", or_unknown(ctr.customer_address()));
    if let Some(dialled) = ctr
        .system_endpoint
        .as_ref()
        .and_then(|e| e.address.as_deref())
    {
        let _ = writeln!(out, "Dialled: {dialled}");
    }
    let _ = writeln!(out, "Started: {}", time(ctr.initiation_timestamp));
    let _ = writeln!(
        out,
        "Reached contact flow: {}",
        time(ctr.connected_to_system_timestamp)
    );
    let _ = writeln!(out, "Disconnected: {}", time(ctr.disconnect_timestamp));
    if let (Some(start), Some(end)) = (ctr.initiation_timestamp, ctr.disconnect_timestamp) {
        let _ = writeln!(out, "Duration: {} s", (end - start).num_seconds());
    }
    if let Some(queue) = &ctr.queue {
        let _ = writeln!(
            out,
            "Queue: {} (entered {}, left {})",
            or_unknown(queue.name.as_deref()),
            time(queue.enqueue_timestamp),
            time(queue.dequeue_timestamp)
        );
    } else {
        let _ = writeln!(out, "Queue: none (the caller never left the contact flow)");
    }
    for (label, id) in [
        ("Previous contact", &ctr.previous_contact_id),
        ("Next contact", &ctr.next_contact_id),
        ("Initial contact", &ctr.initial_contact_id),
    ] {
        if let Some(id) = id.as_deref().filter(|id| !id.is_empty()) {
            let _ = writeln!(out, "{label}: {id}");
        }
    }
    if ctr.attributes.is_empty() {
        out.push_str("Contact attributes: none\n");
    } else {
        out.push_str("Contact attributes:\n");
        for (key, value) in &ctr.attributes {
            let _ = writeln!(out, "  {key}: {value}");
        }
    }
    out
}

/// Truncates `text` so that its length in UTF-16 code units (how Salesforce counts) is at most
/// `limit`, cutting on a character boundary and ending with `…` when it had to cut.
///
/// ```
/// use ctr_cases::case::truncate;
/// assert_eq!(truncate("Dropped call", 255), "Dropped call");
/// assert_eq!(truncate("Dropped call", 8), "Dropped…");
/// assert_eq!(truncate("José😀", 5), "José…"); // the emoji would need 2 units
/// ```
pub fn truncate(text: &str, limit: usize) -> String {
    if text.encode_utf16().count() <= limit {
        return text.to_owned();
    }
    let budget = limit.saturating_sub(1);
    let mut used = 0;
    let mut out = String::new();
    for c in text.chars() {
        used += c.len_utf16();
        if used > budget {
            break;
        }
        out.push(c);
    }
    if limit > 0 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{ClassifyConfig, classify};

    const DROPPED: &str = r#"{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe","Channel":"VOICE",
        "InitiationMethod":"INBOUND","Agent":null,"Queue":null,"DisconnectReason":"CONTACT_FLOW_DISCONNECT",
        "CustomerEndpoint":{"Address":"+11234567890","Type":"TELEPHONE_NUMBER"},
        "SystemEndpoint":{"Address":"+18005550100","Type":"TELEPHONE_NUMBER"},
        "InitiationTimestamp":"2024-02-25T08:35:09Z","ConnectedToSystemTimestamp":"2024-02-25T08:35:09Z",
        "DisconnectTimestamp":"2024-02-25T08:35:21Z","Attributes":{"intent":"billing","accountNumber":12345},
        "Tags":{"aws:connect:instanceId":"9308c2a1"}}"#;

    fn dropped() -> (Ctr, Outcome) {
        let ctr = Ctr::from_json(DROPPED.into()).unwrap();
        let outcome = classify(&ctr, &ClassifyConfig::default());
        (ctr, outcome)
    }

    fn default_mapping() -> CaseMapping {
        CaseMapping::new(DEFAULT_EXTERNAL_ID_FIELD, "Medium").unwrap()
    }

    #[test]
    fn dropped_call_gets_default_fields() {
        let (ctr, outcome) = dropped();
        let case = build(&ctr, &outcome, &default_mapping());
        assert_eq!(
            case.external_id.as_str(),
            "5ca32fbd-8f92-46af-92a5-6b0f970f0efe"
        );
        assert_eq!(case.fields["Subject"], "Dropped call from +11234567890");
        assert_eq!(case.fields["Origin"], "Phone");
        assert_eq!(case.fields["Status"], "New");
        assert_eq!(case.fields["Priority"], "Medium");
        assert_eq!(case.fields["SuppliedPhone"], "+11234567890");
        let description = case.fields["Description"].as_str().unwrap();
        for expected in [
            "5ca32fbd-8f92-46af-92a5-6b0f970f0efe",
            "disconnect reason: CONTACT_FLOW_DISCONNECT",
            "Started: 2024-02-25T08:35:09Z",
            "Disconnected: 2024-02-25T08:35:21Z",
            "Duration: 12 s",
            "Queue: none",
            "intent: billing",
            "accountNumber: 12345",
        ] {
            assert!(
                description.contains(expected),
                "missing {expected:?} in {description}"
            );
        }
        let names: Vec<_> = case.fields.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "Description",
                "Origin",
                "Priority",
                "Status",
                "Subject",
                "SuppliedPhone"
            ]
        );
    }

    #[test]
    fn missing_number_uses_fallback_and_omits_empty_fields() {
        let ctr = Ctr::from_json(r#"{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe"}"#.into())
            .unwrap();
        let outcome = classify(&ctr, &ClassifyConfig::default());
        let case = build(&ctr, &outcome, &default_mapping());
        assert_eq!(case.fields["Subject"], "Dropped call from unknown caller");
        assert!(!case.fields.contains_key("SuppliedPhone"));
    }

    #[test]
    fn overrides_add_replace_and_remove_fields() {
        let mapping = default_mapping()
            .with_overrides(
                r#"{"Subject":"{outcome}: {Attributes.intent}","Reason__c":"{DisconnectReason}",
                    "Instance__c":"{Tags.aws:connect:instanceId}","Priority":null,
                    "Braces__c":"{{literal}} {outcome_code}"}"#,
            )
            .unwrap();
        let (ctr, outcome) = dropped();
        let case = build(&ctr, &outcome, &mapping);
        assert_eq!(case.fields["Subject"], "Dropped call: billing");
        assert_eq!(case.fields["Reason__c"], "CONTACT_FLOW_DISCONNECT");
        assert_eq!(case.fields["Instance__c"], "9308c2a1");
        assert_eq!(case.fields["Braces__c"], "{literal} dropped");
        assert!(!case.fields.contains_key("Priority"));
    }

    #[test]
    fn bad_mappings_are_rejected() {
        let m = default_mapping();
        assert!(matches!(
            m.clone().with_overrides(r#"{"Bad Field":"x"}"#),
            Err(MappingError::InvalidFieldName(_))
        ));
        assert!(matches!(
            m.clone().with_overrides(r#"{"Subject":"{oops"}"#),
            Err(MappingError::UnbalancedBrace { .. })
        ));
        assert!(matches!(
            m.clone().with_overrides(r#"{"Subject":"a } b"}"#),
            Err(MappingError::UnbalancedBrace { .. })
        ));
        assert!(matches!(
            m.clone()
                .with_overrides(r#"{"Amazon_Connect_Contact_Id__c":"{contact_id}"}"#),
            Err(MappingError::ExternalIdMapped(_))
        ));
        assert!(matches!(
            m.clone().with_overrides("[1]"),
            Err(MappingError::NotAnObject(_))
        ));
        assert!(matches!(
            m.with_overrides(r#"{"Subject":5}"#),
            Err(MappingError::NotAnObject(_))
        ));
        assert!(CaseMapping::new("bad-field", "Medium").is_err());
    }

    #[test]
    fn long_fields_are_truncated_on_char_boundaries() {
        let long = "é".repeat(40_000);
        let json = format!(
            r#"{{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe","Attributes":{{"note":"{long}"}},
                "CustomerEndpoint":{{"Address":"{long}"}}}}"#
        );
        let ctr = Ctr::from_json(json).unwrap();
        let outcome = classify(&ctr, &ClassifyConfig::default());
        let case = build(&ctr, &outcome, &default_mapping());
        let len = |f: &str| case.fields[f].as_str().unwrap().encode_utf16().count();
        assert_eq!(len("Subject"), 255);
        assert_eq!(len("Description"), 32_000);
        assert_eq!(len("SuppliedPhone"), 40);
        assert!(case.fields["Subject"].as_str().unwrap().ends_with('…'));
    }

    #[test]
    fn truncate_counts_utf16_units() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "ab…");
        // An emoji is two UTF-16 units: it must not be split or overflow the limit.
        let t = truncate("a😀😀😀", 4);
        assert!(t.encode_utf16().count() <= 4, "{t}");
        assert_eq!(t, "a😀…");
        assert_eq!(truncate("abc", 0), "");
    }
}
