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
//! Contact attributes reach a Case only through the mapping's [`AttributeFilter`], with card
//! numbers masked ([`AttributeFilter::redact_value`]), however a template names them:
//! `{Attributes.intent}` one attribute, `{Attributes}` every allowed attribute as a JSON
//! object, `{context}` a list.
//!
//! `{{` and `}}` are literal braces. A field whose rendered value is empty is left out. Values
//! are truncated to Salesforce's field sizes on a character boundary. The Case is keyed by the
//! external id field (default `Amazon_Connect_Contact_Id__c`) = ContactId, so writing it twice
//! updates one Case.
//!
//! Nothing here is specific to Kinesis: the mapping reads a [`Ctr`], which a contact-flow event
//! can also be turned into.

use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::classify::{HappyPath, Outcome};
use crate::ctr::{Capture, ContactId, Ctr};
use crate::privacy::AttributeFilter;

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
    /// The mapping tries to set the external id or version field, which ctr-cases always sets
    /// itself (to the ContactId and the CTR's LastUpdateTimestamp).
    #[error(
        "`{0}` is the external id or version field; ctr-cases always sets it (to the ContactId / the CTR's LastUpdateTimestamp) and it cannot be mapped"
    )]
    ExternalIdMapped(String),
    /// A write mode is neither `on_create` nor `kept_current`.
    #[error(
        "the mode `{mode}` for `{field}` is not a write mode: use \"on_create\" (written when the Case is created) or \"kept_current\" (also written by newer versions of the contact)"
    )]
    InvalidMode {
        /// The field.
        field: String,
        /// What was given.
        mode: String,
    },
    /// A per-outcome template definition is wrong.
    #[error("{0}")]
    InvalidTemplate(String),
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

/// When a mapped field is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Only when the Case is created: from then on the field belongs to the agents (Subject,
    /// Status, Priority, Origin, owner, record type, links, and user-added fields by default).
    OnCreate,
    /// On create and whenever a newer version of the contact arrives (the call context and
    /// the outcome).
    KeptCurrent,
}

impl WriteMode {
    /// Parses `on_create` or `kept_current`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "on_create" | "create" => Some(WriteMode::OnCreate),
            "kept_current" | "current" => Some(WriteMode::KeptCurrent),
            _ => None,
        }
    }

    /// The mode a field gets when the mapping does not say: kept current for the call context
    /// and the outcome, on create for everything else.
    pub fn default_for(field: &str) -> Self {
        if KEPT_CURRENT_BY_DEFAULT
            .iter()
            .any(|f| f.eq_ignore_ascii_case(field))
        {
            WriteMode::KeptCurrent
        } else {
            WriteMode::OnCreate
        }
    }
}

/// Fields kept current unless the mapping says otherwise.
pub const KEPT_CURRENT_BY_DEFAULT: [&str; 2] = ["Description", DEFAULT_OUTCOME_FIELD];

/// The default Case field holding the CTR `LastUpdateTimestamp` the Case reflects (DateTime).
pub const DEFAULT_VERSION_FIELD: &str = "Amazon_Connect_Last_Update__c";

/// The default Case field holding the outcome code (Text).
pub const DEFAULT_OUTCOME_FIELD: &str = "Amazon_Connect_Outcome__c";

/// The default contact attribute in which the contact flow stores the hand-off Case's id.
pub const DEFAULT_CASE_ID_ATTRIBUTE: &str = "ctrCasesCaseId";

/// The Case fields whose default comes from the outcome's template ([`CASE_TEMPLATE_FIELDS`]).
pub const CASE_TEMPLATE_FIELDS: [&str; 4] = ["Subject", "Status", "Priority", "Origin"];

/// Where a mapped field's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// One template for every outcome.
    Template(Template),
    /// The outcome's template for this field (see [`CaseTemplates`]).
    PerOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MappedField {
    name: String,
    source: Source,
    mode: WriteMode,
}

/// Per-outcome and per-channel templates for Subject, Status, Priority and Origin.
///
/// Keys are an outcome's template key (`dropped`, `queued_abandoned`, `live_agent`,
/// `virtual_agent_resolved`, `virtual_agent_handoff`, `handoff`, `transferred_out`) or `*`,
/// optionally followed by `.CHANNEL` (`dropped.CHAT`, `*.EMAIL`). For an outcome and channel the
/// first of `key.CHANNEL`, `*.CHANNEL`, `key`, `*` that sets the field wins, then the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseTemplates {
    /// (key, field, template), in the order given.
    entries: Vec<(String, &'static str, Template)>,
    priority: Template,
    /// The template of each field for every (outcome key, channel), resolved once.
    resolved: Vec<(&'static str, &'static str, [Template; 4])>,
}

/// The channels a template can name.
const CHANNELS: [&str; 4] = ["VOICE", "CHAT", "TASK", "EMAIL"];

impl CaseTemplates {
    fn new(priority: &str) -> Self {
        let mut templates = CaseTemplates {
            entries: Vec::new(),
            priority: Template(vec![Piece::Literal(priority.to_owned())]),
            resolved: Vec::new(),
        };
        templates.resolve();
        templates
    }

    /// The template for `field` of outcome `key` on `channel` (see the type's doc).
    fn get(&self, key: &str, channel: &str, field: &str) -> &Template {
        let index = CASE_TEMPLATE_FIELDS
            .iter()
            .position(|f| *f == field)
            .expect("only template fields are per outcome");
        self.resolved
            .iter()
            .find(|(k, c, _)| *k == key && *c == channel)
            .or_else(|| {
                self.resolved
                    .iter()
                    .find(|(k, c, _)| *k == "dropped" && *c == channel)
            })
            .map(|(_, _, t)| &t[index])
            .expect("every key and channel is resolved")
    }

    fn resolve(&mut self) {
        let mut resolved = Vec::new();
        for key in crate::classify::TEMPLATE_KEYS {
            for channel in CHANNELS {
                let candidates = [
                    format!("{key}.{channel}"),
                    format!("*.{channel}"),
                    key.to_owned(),
                    "*".to_owned(),
                ];
                let field = |field: &str| -> Template {
                    candidates
                        .iter()
                        .find_map(|candidate| {
                            self.entries
                                .iter()
                                .find(|(k, f, _)| k == candidate && *f == field)
                                .map(|(_, _, t)| t.clone())
                        })
                        .unwrap_or_else(|| match field {
                            "Priority" => self.priority.clone(),
                            _ => Template::parse(field, default_template_value(key, field))
                                .expect("built-in templates parse"),
                        })
                };
                resolved.push((key, channel, CASE_TEMPLATE_FIELDS.map(field)));
            }
        }
        self.resolved = resolved;
    }
}

/// The built-in value of a per-outcome field (when no template sets it).
fn default_template_value(key: &str, field: &str) -> &'static str {
    match field {
        "Subject" => "{outcome} from {customer}",
        "Origin" => "{origin}",
        "Status" if key == "virtual_agent_resolved" => "Closed",
        _ => "New",
    }
}

/// Whether and how a Case is linked to the caller's Salesforce Contact (`LINK_CUSTOMER`).
///
/// A contact attribute is trusted to name the Contact only when the deployer names it
/// (`LINK_CUSTOMER_ATTRIBUTE`): whoever can set that attribute chooses the Contact a Case is
/// linked to, so it must be one customers cannot set (written from the data-dip Lambda's
/// response, never passed in from a chat or task start). There is no default name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CustomerLinking {
    /// No linking.
    #[default]
    Off,
    /// Link by the caller's number only (a search that must find exactly one Contact).
    ByNumber,
    /// Link to the Contact Id in this contact attribute when it holds one, else by number.
    AttributeThenNumber(String),
}

/// How Cases are built: external id, version field, the field templates in order with their
/// write modes, and the per-outcome templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseMapping {
    /// The Case field holding the ContactId (unique external id).
    pub external_id_field: String,
    /// The Case field holding the CTR version the Case reflects (DateTime).
    pub version_field: String,
    /// The contact attribute that may hold the Id of the contact's hand-off Case.
    pub case_id_attribute: String,
    /// Which contact attributes may reach a Case (card numbers in them are masked).
    pub attributes: AttributeFilter,
    /// Customer linking (`LINK_CUSTOMER`, `LINK_CUSTOMER_ATTRIBUTE`).
    pub linking: CustomerLinking,
    fields: Vec<MappedField>,
    templates: CaseTemplates,
    kept_current: Arc<[String]>,
}

impl CaseMapping {
    /// The default mapping with the given external id field and Case priority.
    ///
    /// # Errors
    /// [`MappingError::InvalidFieldName`] when `external_id_field` is not an API name.
    pub fn new(external_id_field: &str, priority: &str) -> Result<Self, MappingError> {
        check_field_name(external_id_field)?;
        let template = |name: &str, text: &str| -> Result<MappedField, MappingError> {
            Ok(MappedField {
                name: name.to_owned(),
                source: Source::Template(Template::parse(name, text)?),
                mode: WriteMode::default_for(name),
            })
        };
        let per_outcome = |name: &str| MappedField {
            name: name.to_owned(),
            source: Source::PerOutcome,
            mode: WriteMode::default_for(name),
        };
        let fields = vec![
            per_outcome("Subject"),
            template("Description", "{context}")?,
            per_outcome("Origin"),
            per_outcome("Status"),
            template("SuppliedPhone", "{CustomerEndpoint.Address}")?,
            per_outcome("Priority"),
            template(DEFAULT_OUTCOME_FIELD, "{outcome_code}")?,
        ];
        let mut mapping = CaseMapping {
            external_id_field: external_id_field.to_owned(),
            version_field: DEFAULT_VERSION_FIELD.to_owned(),
            case_id_attribute: DEFAULT_CASE_ID_ATTRIBUTE.to_owned(),
            attributes: AttributeFilter::default(),
            linking: CustomerLinking::Off,
            fields,
            templates: CaseTemplates::new(priority),
            kept_current: Arc::from(Vec::new()),
        };
        mapping.refresh();
        Ok(mapping)
    }

    /// Uses `field` (a DateTime field) to store the CTR version.
    ///
    /// # Errors
    /// [`MappingError::InvalidFieldName`], or [`MappingError::ExternalIdMapped`] when it is the
    /// external id field.
    pub fn with_version_field(mut self, field: &str) -> Result<Self, MappingError> {
        check_field_name(field)?;
        if field.eq_ignore_ascii_case(&self.external_id_field) {
            return Err(MappingError::ExternalIdMapped(field.to_owned()));
        }
        self.version_field = field.to_owned();
        self.refresh();
        Ok(self)
    }

    /// Lets only the contact attributes `filter` allows reach a Case.
    pub fn with_attribute_filter(mut self, filter: AttributeFilter) -> Self {
        self.attributes = filter;
        self
    }

    /// Links Cases to the caller's Contact ([`CustomerLinking`]): from contact attribute
    /// `attribute` when one is named and a data dip set it to a Contact Id, else by the caller's
    /// number ([`crate::linking`]). `None` (or a blank name) links by number only.
    pub fn with_customer_linking(mut self, attribute: Option<&str>) -> Self {
        self.linking = match attribute.map(str::trim).filter(|a| !a.is_empty()) {
            Some(name) => CustomerLinking::AttributeThenNumber(name.to_owned()),
            None => CustomerLinking::ByNumber,
        };
        self
    }

    /// Reads the hand-off Case's Id from contact attribute `name`.
    pub fn with_case_id_attribute(mut self, name: &str) -> Self {
        name.trim().clone_into(&mut self.case_id_attribute);
        self
    }

    /// Applies user overrides from JSON: `{"Field": "template", "DefaultField": null,
    /// "Other__c": {"template": "…", "mode": "kept_current"}, "Subject": {"mode": "kept_current"}}`.
    /// A string replaces or adds a field (with its default write mode); null removes a default
    /// field; an object sets the template and/or the write mode (`on_create`, `kept_current`).
    ///
    /// # Errors
    /// [`MappingError`] for a bad field name, template, mode or JSON shape, or when the external
    /// id or version field is mapped.
    pub fn with_overrides(mut self, json: &str) -> Result<Self, MappingError> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| MappingError::NotAnObject(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(MappingError::NotAnObject("got a non-object".into()));
        };
        for (field, spec) in map {
            check_field_name(&field)?;
            if field.eq_ignore_ascii_case(&self.external_id_field)
                || field.eq_ignore_ascii_case(&self.version_field)
            {
                return Err(MappingError::ExternalIdMapped(field));
            }
            let existing = self.fields.iter().position(|f| f.name == field);
            let (template, mode) = match spec {
                Value::Null => {
                    if let Some(i) = existing {
                        self.fields.remove(i);
                    }
                    continue;
                }
                Value::String(text) => (Some(text), None),
                Value::Object(spec) => {
                    let mut template = None;
                    let mut mode = None;
                    for (key, value) in spec {
                        match (key.as_str(), value) {
                            ("template", Value::String(t)) => template = Some(t),
                            ("mode", Value::String(m)) => {
                                mode = Some(WriteMode::parse(&m).ok_or_else(|| {
                                    MappingError::InvalidMode {
                                        field: field.clone(),
                                        mode: m.clone(),
                                    }
                                })?);
                            }
                            (other, _) => {
                                return Err(MappingError::NotAnObject(format!(
                                    "the object for `{field}` may only have \"template\" and \
                                     \"mode\" strings, not `{other}`"
                                )));
                            }
                        }
                    }
                    if template.is_none() && existing.is_none() {
                        return Err(MappingError::NotAnObject(format!(
                            "`{field}` is not a default field, so it needs a \"template\""
                        )));
                    }
                    (template, mode)
                }
                _ => {
                    return Err(MappingError::NotAnObject(format!(
                        "the value for `{field}` is not a string, an object or null"
                    )));
                }
            };
            let source = template
                .map(|t| Template::parse(&field, &t).map(Source::Template))
                .transpose()?;
            match existing {
                Some(i) => {
                    let mapped = &mut self.fields[i];
                    if let Some(source) = source {
                        mapped.source = source;
                    }
                    if let Some(mode) = mode {
                        mapped.mode = mode;
                    }
                }
                None => self.fields.push(MappedField {
                    mode: mode.unwrap_or_else(|| WriteMode::default_for(&field)),
                    name: field,
                    source: source.expect("a new field has a template (checked above)"),
                }),
            }
        }
        self.refresh();
        Ok(self)
    }

    /// Applies per-outcome templates from JSON:
    /// `{"dropped": {"Priority": "High"}, "virtual_agent_resolved.CHAT": {"Status": "Closed"},
    /// "*.EMAIL": {"Origin": "Email"}}` (see [`CaseTemplates`]).
    ///
    /// # Errors
    /// [`MappingError::InvalidTemplate`] naming the bad key or field, or a template error.
    pub fn with_templates(mut self, json: &str) -> Result<Self, MappingError> {
        let invalid = |what: String| MappingError::InvalidTemplate(what);
        let value: Value = serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(invalid("expected a JSON object of outcome → fields".into()));
        };
        for (key, fields) in map {
            let (outcome, channel) = key.split_once('.').unwrap_or((&key, ""));
            let known_outcome = outcome == "*" || crate::classify::TEMPLATE_KEYS.contains(&outcome);
            let known_channel =
                channel.is_empty() || ["VOICE", "CHAT", "TASK", "EMAIL"].contains(&channel);
            if !known_outcome || !known_channel {
                return Err(invalid(format!(
                    "`{key}` is not an outcome key ({} or *), optionally followed by \
                     .VOICE, .CHAT, .TASK or .EMAIL",
                    crate::classify::TEMPLATE_KEYS.join(", ")
                )));
            }
            let Value::Object(fields) = fields else {
                return Err(invalid(format!("the value for `{key}` is not an object")));
            };
            for (field, text) in fields {
                let Some(&name) = CASE_TEMPLATE_FIELDS.iter().find(|f| **f == field) else {
                    return Err(invalid(format!(
                        "`{key}.{field}`: templates set only Subject, Status, Priority and Origin"
                    )));
                };
                let Value::String(text) = text else {
                    return Err(invalid(format!("`{key}.{field}` is not a string")));
                };
                let template = Template::parse(name, &text)?;
                self.templates.entries.push((key.clone(), name, template));
            }
        }
        self.templates.resolve();
        Ok(self)
    }

    /// The mapped field names, in order (without the external id and version fields).
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.name.as_str())
    }

    /// The write mode of `field`, if it is mapped.
    pub fn mode_of(&self, field: &str) -> Option<WriteMode> {
        self.fields.iter().find(|f| f.name == field).map(|f| f.mode)
    }

    /// The custom (`…__c`) fields a Case built with this mapping may write: the external id,
    /// the version field and every mapped custom field. What the org's metadata must define.
    pub fn custom_fields(&self) -> Vec<&str> {
        let mut names = vec![self.external_id_field.as_str(), self.version_field.as_str()];
        names.extend(self.field_names().filter(|n| n.ends_with("__c")));
        names
    }

    /// What a CTR decode must keep for this mapping: the top-level key of every CTR path its
    /// templates reference (the special placeholders need nothing beyond the typed fields).
    pub fn capture(&self) -> Capture {
        let mapped = self.fields.iter().filter_map(|f| match &f.source {
            Source::Template(t) => Some(t),
            Source::PerOutcome => None,
        });
        let templates = self.templates.resolved.iter().flat_map(|(_, _, t)| t);
        Capture::of_paths(
            mapped
                .chain(templates)
                .flat_map(|template| &template.0)
                .filter_map(|piece| match piece {
                    // Special placeholders, typed fields and attributes need no capture.
                    Piece::Placeholder { path, .. }
                        if !SPECIAL.contains(&path.as_str())
                            && path != ATTRIBUTES
                            && !crate::ctr::is_typed_path(path)
                            && !is_attribute_path(path) =>
                    {
                        Some(path.as_str())
                    }
                    _ => None,
                }),
        )
    }

    fn refresh(&mut self) {
        let mut names: Vec<String> = self
            .fields
            .iter()
            .filter(|f| f.mode == WriteMode::KeptCurrent)
            .map(|f| f.name.clone())
            .collect();
        names.push(self.version_field.clone());
        self.kept_current = Arc::from(names);
    }
}

/// What one mapped field writes: the facts an org check needs, and what tells a rejection
/// caused by the configuration from one caused by a contact's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldUse {
    /// The Case field's API name.
    pub name: String,
    /// When it is written.
    pub mode: WriteMode,
    /// Every value the configuration alone writes to it on the given channels (literal
    /// templates, `{origin}`), sorted; `None` when a value comes from the contact (a CTR path,
    /// an attribute, the caller).
    pub fixed_values: Option<Vec<String>>,
}

impl Template {
    /// The text this template renders to on `channel` when it needs nothing from the contact
    /// (literals and `{origin}` only); `None` otherwise.
    fn fixed_text(&self, channel: &str) -> Option<String> {
        let mut text = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Literal(s) => text.push_str(s),
                Piece::Placeholder { path, .. } if path == "origin" => {
                    text.push_str(origin_for(channel));
                }
                Piece::Placeholder { .. } => return None,
            }
        }
        Some(text.trim().to_owned())
    }
}

impl CaseMapping {
    /// What each mapped field writes for contacts on `channels` (upper case; every channel
    /// when empty), in mapping order.
    pub fn field_uses(&self, channels: &[String]) -> Vec<FieldUse> {
        let channels: Vec<&str> = if channels.is_empty() {
            CHANNELS.to_vec()
        } else {
            CHANNELS
                .into_iter()
                .filter(|c| channels.iter().any(|x| x.eq_ignore_ascii_case(c)))
                .collect()
        };
        self.fields
            .iter()
            .map(|field| {
                let templates: Vec<(&Template, &str)> = match &field.source {
                    Source::Template(t) => channels.iter().map(|c| (t, *c)).collect(),
                    Source::PerOutcome => crate::classify::TEMPLATE_KEYS
                        .iter()
                        .flat_map(|key| {
                            channels
                                .iter()
                                .map(move |c| (self.templates.get(key, c, &field.name), *c))
                        })
                        .collect(),
                };
                let fixed_values = templates
                    .iter()
                    .map(|(t, channel)| t.fixed_text(channel))
                    .collect::<Option<Vec<String>>>()
                    .map(|mut values| {
                        values.retain(|v| !v.is_empty());
                        values.sort();
                        values.dedup();
                        values
                    });
                FieldUse {
                    name: field.name.clone(),
                    mode: field.mode,
                    fixed_values,
                }
            })
            .collect()
    }
}

impl Default for CaseMapping {
    /// The default mapping: external id `Amazon_Connect_Contact_Id__c`, Priority `Medium`.
    fn default() -> Self {
        CaseMapping::new(DEFAULT_EXTERNAL_ID_FIELD, "Medium").expect("the default mapping is valid")
    }
}

/// Whether `path` names one contact attribute (`Attributes.intent`), which the typed
/// attribute map answers; a deeper path (`Attributes.obj.x`) needs the captured value.
fn is_attribute_path(path: &str) -> bool {
    path.strip_prefix("Attributes.")
        .is_some_and(|name| !name.is_empty() && !name.contains('.'))
}

/// Placeholders that are not CTR paths.
const SPECIAL: [&str; 6] = [
    "outcome",
    "outcome_code",
    "contact_id",
    "context",
    "customer",
    "origin",
];

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

/// Whether `id` looks like a Salesforce Case Id: 15 or 18 letters and digits, key prefix `500`.
pub fn is_case_id(id: &str) -> bool {
    matches!(id.len(), 15 | 18)
        && id.starts_with("500")
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A Case to write: its key, the version it reflects, and its fields with their write modes.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRecord {
    /// The external id value: the ContactId.
    pub external_id: ContactId,
    /// Every mapped field with a value, as written when the Case is created (without the
    /// external id and version fields). Field API name → value (sorted by name).
    pub fields: Map<String, Value>,
    /// The names of the fields a later version of the contact writes (kept current), the
    /// version field included.
    pub kept_current: Arc<[String]>,
    /// The CTR `LastUpdateTimestamp` this Case reflects; `None` when the CTR had none (such a
    /// record may create a Case but never replaces existing context).
    pub version: Option<DateTime<Utc>>,
    /// The Id of a Case this contact may already have, from a contact attribute (the flow
    /// stored it). Attributes can come from customers, so it is written only when that Case's
    /// external id is one of [`CaseRecord::owner_ids`].
    pub case_id: Option<String>,
    /// The earlier legs of this contact that Connect named (`InitialContactId`,
    /// `PreviousContactId`; validated UUIDs, never the contact itself): values Connect sets, not
    /// the caller. A transferred leg may update the Case one of them filed.
    pub earlier_legs: Vec<ContactId>,
    /// Whether a missing Case may be created (false: only update an existing one).
    pub create: bool,
    /// With customer linking, the caller's number to look the Contact up by, when no data dip
    /// named it. Customer data: never log it.
    pub lookup_number: Option<String>,
}

impl CaseRecord {
    /// The ContactIds whose Case this contact may write: its own, then its earlier legs.
    pub fn owner_ids(&self) -> impl Iterator<Item = &ContactId> {
        std::iter::once(&self.external_id).chain(&self.earlier_legs)
    }

    /// Whether a Case with external id `external_id` belongs to this contact (its own, or one
    /// an earlier leg filed). External ids are compared as the org's unique index does: without
    /// regard to case.
    pub fn owns(&self, external_id: &str) -> bool {
        self.owner_ids()
            .any(|id| id.as_str().eq_ignore_ascii_case(external_id))
    }

    /// The fields a later version writes: the kept-current ones that have a value.
    pub fn current_fields(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.kept_current
            .iter()
            .filter_map(|name| self.fields.get_key_value(name.as_str()))
            .map(|(k, v)| (k.as_str(), v))
    }
}

/// Builds the Case for a contact. CTR paths come from the values the decode captured for
/// this mapping ([`CaseMapping::capture`]), so the record is not parsed again.
pub fn build(ctr: &Ctr, outcome: &Outcome, mapping: &CaseMapping) -> CaseRecord {
    let channel = channel_of(ctr);
    let key = outcome.template_key().unwrap_or("dropped");
    let mut fields = Map::new();
    for field in &mapping.fields {
        let template = match &field.source {
            Source::Template(t) => t,
            Source::PerOutcome => mapping.templates.get(key, channel, &field.name),
        };
        let mut text = render(template, ctr, outcome, &mapping.attributes);
        if text.trim().len() != text.len() {
            text = text.trim().to_owned();
        }
        if text.is_empty() {
            continue;
        }
        let limit = FIELD_LIMITS
            .iter()
            .find(|(f, _)| *f == field.name)
            .map_or(DEFAULT_LIMIT, |(_, l)| *l);
        // Usually short enough already: keep the rendered string (no copy).
        if text.len() > limit {
            text = truncate(&text, limit);
        }
        fields.insert(field.name.clone(), Value::String(text));
    }
    let case_id = ctr
        .attributes
        .get(&mapping.case_id_attribute)
        .map(|id| id.trim())
        .filter(|id| is_case_id(id))
        .map(str::to_owned);
    let mut lookup_number = None;
    let by_number = |ctr: &Ctr| {
        ctr.customer_address()
            .filter(|a| crate::linking::search_terms(a).is_some())
            .map(str::to_owned)
    };
    match &mapping.linking {
        CustomerLinking::Off => {}
        CustomerLinking::ByNumber => lookup_number = by_number(ctr),
        CustomerLinking::AttributeThenNumber(attribute) => {
            match ctr.attributes.get(attribute).map(|id| id.trim()) {
                Some(id) if crate::linking::is_contact_id(id) => {
                    fields.insert("ContactId".into(), Value::String(id.to_owned()));
                }
                _ => lookup_number = by_number(ctr),
            }
        }
    }
    CaseRecord {
        external_id: ctr.contact_id.clone(),
        fields,
        kept_current: mapping.kept_current.clone(),
        version: ctr.last_update_timestamp,
        case_id,
        earlier_legs: earlier_legs(ctr),
        create: true,
        lookup_number,
    }
}

/// The contact's earlier legs as Connect named them: `InitialContactId` and
/// `PreviousContactId` when they are UUIDs other than the contact's own id, without repeats
/// (compared without regard to case, as the external id index compares them).
fn earlier_legs(ctr: &Ctr) -> Vec<ContactId> {
    let mut legs: Vec<ContactId> = Vec::new();
    for raw in [&ctr.initial_contact_id, &ctr.previous_contact_id]
        .into_iter()
        .flatten()
    {
        let Ok(id) = ContactId::parse(raw.trim()) else {
            continue;
        };
        let same = |other: &ContactId| other.as_str().eq_ignore_ascii_case(id.as_str());
        if !same(&ctr.contact_id) && !legs.iter().any(same) {
            legs.push(id);
        }
    }
    legs
}

fn render(template: &Template, ctr: &Ctr, outcome: &Outcome, filter: &AttributeFilter) -> String {
    let mut text = String::new();
    for piece in &template.0 {
        match piece {
            Piece::Literal(s) => text.push_str(s),
            Piece::Placeholder { path, fallback } => {
                let before = text.len();
                resolve_into(&mut text, path, ctr, outcome, filter);
                if text.len() == before {
                    text.push_str(fallback);
                }
            }
        }
    }
    text
}

/// Appends the value of placeholder `path` to `out` (nothing when it is absent or empty).
fn resolve_into(
    out: &mut String,
    path: &str,
    ctr: &Ctr,
    outcome: &Outcome,
    filter: &AttributeFilter,
) {
    let channel = channel_of(ctr);
    match path {
        "outcome" => {
            let _ = write!(out, "{}", Title(outcome, channel));
        }
        "outcome_code" => out.push_str(outcome.name()),
        "contact_id" => out.push_str(ctr.contact_id.as_str()),
        "context" => write_context(out, ctr, outcome, filter),
        "customer" => out.push_str(ctr.customer_address().unwrap_or(if channel == "VOICE" {
            "unknown caller"
        } else {
            "unknown customer"
        })),
        "origin" => out.push_str(origin_for(channel)),
        ATTRIBUTES => write_attributes(out, ctr, filter),
        _ => match path.split_once('.') {
            // An attribute reaches a Case only through the filter, card numbers masked. Names
            // may contain dots (`card.number`), and a deeper path names keys inside a value
            // (`payment.cvv`): the whole name and each of its parts must pass.
            Some(("Attributes", name)) => {
                if !filter.allows(name) || !name.split('.').all(|part| filter.allows(part)) {
                    return;
                }
                match ctr.attributes.get(name) {
                    Some(value) => out.push_str(&filter.redact_value(value)),
                    // The typed map holds every attribute: only a path into one (an object
                    // value) needs the captured JSON.
                    None if name.contains('.') => {
                        if let Some(value) = ctr.path(path) {
                            out.push_str(&filter.redact_value(&value));
                        }
                    }
                    None => {}
                }
            }
            _ => match ctr.typed_path(path) {
                Some(value) => out.push_str(value.unwrap_or_default()),
                None => out.push_str(&ctr.path(path).unwrap_or_default()),
            },
        },
    }
}

/// The placeholder for every contact attribute at once.
const ATTRIBUTES: &str = "Attributes";

/// `{Attributes}`: the contact attributes `filter` allows, card numbers masked, as a JSON
/// object (nothing when none is allowed, so the fallback applies). Never the CTR's own map,
/// which would carry every excluded attribute unmasked.
fn write_attributes(out: &mut String, ctr: &Ctr, filter: &AttributeFilter) {
    let allowed: Map<String, Value> = ctr
        .attributes
        .iter()
        .filter(|(name, _)| filter.allows(name))
        .map(|(name, value)| {
            let shown = filter.redact_value(value).into_owned();
            (name.clone(), Value::String(shown))
        })
        .collect();
    if !allowed.is_empty() {
        out.push_str(&Value::Object(allowed).to_string());
    }
}

/// The contact's channel, upper case; a CTR without one counts as VOICE.
fn channel_of(ctr: &Ctr) -> &str {
    match ctr.channel.as_deref() {
        Some(c) if c.eq_ignore_ascii_case("CHAT") => "CHAT",
        Some(c) if c.eq_ignore_ascii_case("TASK") => "TASK",
        Some(c) if c.eq_ignore_ascii_case("EMAIL") => "EMAIL",
        _ => "VOICE",
    }
}

/// The Case Origin for a channel, among the picklist values every org has (Phone, Email,
/// Web): chats and tasks come from the web or an app. Orgs with a `Chat` origin set it with
/// `CASE_TEMPLATES` (`{"*.CHAT": {"Origin": "Chat"}}`).
pub fn origin_for(channel: &str) -> &'static str {
    match channel {
        "EMAIL" => "Email",
        "CHAT" | "TASK" => "Web",
        _ => "Phone",
    }
}

/// What a contact on `channel` is called in a Subject.
fn noun(channel: &str) -> (&'static str, &'static str) {
    match channel {
        "CHAT" => ("chat", "Chat"),
        "TASK" => ("task", "Task"),
        "EMAIL" => ("email", "Email"),
        _ => ("call", "Call"),
    }
}

/// What happened, in words, for Subjects ("Dropped call", "Chat abandoned in queue").
pub fn outcome_title(outcome: &Outcome, channel: &str) -> String {
    Title(outcome, channel).to_string()
}

/// [`outcome_title`], written without an intermediate string.
struct Title<'a>(&'a Outcome, &'a str);

impl std::fmt::Display for Title<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (noun, capital) = noun(self.1);
        match self.0 {
            Outcome::Dropped { .. } => write!(f, "Dropped {noun}"),
            Outcome::QueuedAbandoned => write!(f, "{capital} abandoned in queue"),
            Outcome::HappyPath(HappyPath::LiveAgent) => write!(f, "{capital} handled by an agent"),
            Outcome::HappyPath(HappyPath::VirtualAgentResolved) => {
                write!(f, "{capital} resolved by the virtual agent")
            }
            Outcome::HappyPath(HappyPath::VirtualAgentHandoff) => {
                write!(f, "{capital} handed off by the virtual agent")
            }
            Outcome::Handoff => write!(f, "Virtual agent hand-off ({noun})"),
            Outcome::TransferredOut => write!(f, "Transferred {noun}"),
            Outcome::SkippedChannel(_) | Outcome::SkippedInitiation(_) | Outcome::CallbackTask => {
                f.write_str("Contact")
            }
        }
    }
}

/// A time as `2024-02-25T08:35:09Z`, or `unknown`, written without an intermediate string.
struct Time(Option<DateTime<Utc>>);

impl std::fmt::Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use chrono::{Datelike as _, Timelike as _};
        let Some(t) = self.0 else {
            return f.write_str("unknown");
        };
        // Written digit by digit: the formatting machinery costs more than the rest of a
        // context block (four times per Case).
        let mut buf = *b"0000-00-00T00:00:00Z";
        let mut put = |at: usize, width: usize, mut n: u32| {
            for i in (at..at + width).rev() {
                buf[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        let year = t.year();
        if !(0..=9999).contains(&year) {
            return write!(f, "{}", t.format("%Y-%m-%dT%H:%M:%SZ"));
        }
        put(0, 4, year as u32);
        put(5, 2, t.month());
        put(8, 2, t.day());
        put(11, 2, t.hour());
        put(14, 2, t.minute());
        put(17, 2, t.second());
        f.write_str(std::str::from_utf8(&buf).expect("ASCII digits"))
    }
}

fn time(t: Option<DateTime<Utc>>) -> Time {
    Time(t)
}

/// The call context a Case carries: contact id, times, disconnect reason, queue/flow context and
/// the contact attributes the flow (or virtual agent) collected that `filter` allows, with
/// payment card numbers masked.
pub fn context_block(ctr: &Ctr, outcome: &Outcome, filter: &AttributeFilter) -> String {
    let mut out = String::new();
    write_context(&mut out, ctr, outcome, filter);
    out
}

/// [`context_block`], appended to `out`.
fn write_context(out: &mut String, ctr: &Ctr, outcome: &Outcome, filter: &AttributeFilter) {
    let channel = channel_of(ctr);
    let _ = writeln!(out, "Amazon Connect contact {}", ctr.contact_id);
    let _ = write!(out, "Outcome: {}", Title(outcome, channel));
    if let Outcome::Dropped {
        disconnect_reason: Some(reason),
    } = outcome
    {
        let _ = write!(out, " (disconnect reason: {reason})");
    } else if let Some(reason) = &ctr.disconnect_reason {
        let _ = write!(out, " (disconnect reason: {reason})");
    }
    out.push('\n');
    fn or_unknown(v: Option<&str>) -> &str {
        v.unwrap_or("unknown")
    }
    let _ = writeln!(
        out,
        "Channel: {}, initiation: {}",
        or_unknown(ctr.channel.as_deref()),
        or_unknown(ctr.initiation_method.as_deref())
    );
    let who = if channel == "VOICE" {
        "Caller"
    } else {
        "Customer"
    };
    let _ = writeln!(out, "{who}: {}", or_unknown(ctr.customer_address()));
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
        let _ = writeln!(out, "Queue: none (the contact never left the contact flow)");
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
    let mut allowed = ctr
        .attributes
        .iter()
        .filter(|(key, _)| filter.allows(key))
        .peekable();
    if allowed.peek().is_none() {
        out.push_str("Contact attributes: none\n");
    } else {
        out.push_str("Contact attributes:\n");
        for (key, value) in allowed {
            let _ = writeln!(out, "  {key}: {}", filter.redact_value(value));
        }
    }
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
    // A UTF-8 text never has more UTF-16 units than bytes: short texts need no counting.
    if text.len() <= limit || text.encode_utf16().count() <= limit {
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
        ] {
            assert!(
                description.contains(expected),
                "missing {expected:?} in {description}"
            );
        }
        // See: issue "Security and privacy". Account numbers are excluded by default.
        assert!(!description.contains("accountNumber"), "{description}");
        let names: Vec<_> = case.fields.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "Amazon_Connect_Outcome__c",
                "Description",
                "Origin",
                "Priority",
                "Status",
                "Subject",
                "SuppliedPhone"
            ]
        );
        assert_eq!(case.fields["Amazon_Connect_Outcome__c"], "dropped");
    }

    #[test]
    fn later_versions_write_only_kept_current_fields() {
        let (ctr, outcome) = dropped();
        let case = build(&ctr, &outcome, &default_mapping());
        let current: Vec<&str> = case.current_fields().map(|(k, _)| k).collect();
        assert_eq!(current, ["Description", "Amazon_Connect_Outcome__c"]);
        assert_eq!(
            &case.kept_current[..],
            [
                "Description",
                "Amazon_Connect_Outcome__c",
                "Amazon_Connect_Last_Update__c"
            ]
        );
        for field in [
            "Subject",
            "Status",
            "Origin",
            "Priority",
            "SuppliedPhone",
            "OwnerId",
            "ContactId",
            "Custom__c",
        ] {
            assert_eq!(
                WriteMode::default_for(field),
                WriteMode::OnCreate,
                "{field}"
            );
        }
    }

    #[test]
    fn mapping_sets_write_modes_and_rejects_bad_ones() {
        let mapping = default_mapping()
            .with_overrides(
                r#"{"Subject":{"mode":"kept_current"},"Intent__c":{"template":"{Attributes.intent}","mode":"kept_current"},
                    "Note__c":"{Attributes.intent}","Description":{"mode":"on_create"}}"#,
            )
            .unwrap();
        assert_eq!(mapping.mode_of("Subject"), Some(WriteMode::KeptCurrent));
        assert_eq!(mapping.mode_of("Intent__c"), Some(WriteMode::KeptCurrent));
        assert_eq!(mapping.mode_of("Note__c"), Some(WriteMode::OnCreate));
        assert_eq!(mapping.mode_of("Description"), Some(WriteMode::OnCreate));
        let (ctr, outcome) = dropped();
        let case = build(&ctr, &outcome, &mapping);
        let current: Vec<&str> = case.current_fields().map(|(k, _)| k).collect();
        assert_eq!(
            current,
            ["Subject", "Amazon_Connect_Outcome__c", "Intent__c"]
        );
        assert!(matches!(
            default_mapping().with_overrides(r#"{"Subject":{"mode":"sometimes"}}"#),
            Err(MappingError::InvalidMode { .. })
        ));
        assert!(matches!(
            default_mapping().with_overrides(r#"{"New__c":{"mode":"kept_current"}}"#),
            Err(MappingError::NotAnObject(_))
        ));
        assert!(matches!(
            default_mapping().with_overrides(r#"{"Amazon_Connect_Last_Update__c":"x"}"#),
            Err(MappingError::ExternalIdMapped(_))
        ));
    }

    #[test]
    fn templates_follow_outcome_and_channel() {
        let outcome_of = |extra: &str| {
            let ctr = Ctr::from_json(format!(
                r#"{{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe","InitiationMethod":"INBOUND"{extra}}}"#
            ))
            .unwrap();
            let config = ClassifyConfig {
                channels: vec!["VOICE".into(), "CHAT".into(), "EMAIL".into(), "TASK".into()],
                ..ClassifyConfig::default()
            };
            let outcome = classify(&ctr, &config);
            (ctr, outcome)
        };
        let mapping = default_mapping()
            .with_templates(
                r#"{"dropped":{"Priority":"High"},"*.CHAT":{"Status":"Working"},
                    "live_agent.CHAT":{"Status":"Escalated"}}"#,
            )
            .unwrap();
        let case = |extra: &str| {
            let (ctr, outcome) = outcome_of(extra);
            build(&ctr, &outcome, &mapping).fields
        };
        let voice = case(r#","Channel":"VOICE","CustomerEndpoint":{"Address":"+15550100"}"#);
        assert_eq!(voice["Subject"], "Dropped call from +15550100");
        assert_eq!(voice["Priority"], "High");
        assert_eq!(
            (voice["Status"].as_str(), voice["Origin"].as_str()),
            (Some("New"), Some("Phone"))
        );
        let chat = case(r#","Channel":"CHAT""#);
        assert_eq!(chat["Subject"], "Dropped chat from unknown customer");
        assert_eq!(
            (chat["Status"].as_str(), chat["Origin"].as_str()),
            (Some("Working"), Some("Web"))
        );
        assert!(!chat["Description"].as_str().unwrap().contains("Caller"));
        let chat_agent = case(r#","Channel":"CHAT","Agent":{}"#);
        assert_eq!(chat_agent["Status"], "Escalated");
        assert_eq!(
            chat_agent["Subject"],
            "Chat handled by an agent from unknown customer"
        );
        let email = case(r#","Channel":"EMAIL","Queue":{"Name":"q"}"#);
        assert_eq!(
            email["Subject"],
            "Email abandoned in queue from unknown customer"
        );
        assert_eq!(email["Origin"], "Email");
        let resolved = case(r#","Channel":"VOICE","Attributes":{"VirtualAgentStatus":"resolved"}"#);
        assert_eq!(resolved["Status"], "Closed");
        assert_eq!(
            resolved["Subject"],
            "Call resolved by the virtual agent from unknown caller"
        );
        for bad in [
            r#"{"nope":{"Status":"New"}}"#,
            r#"{"dropped.FAX":{"Status":"New"}}"#,
            r#"{"dropped":{"Description":"x"}}"#,
            r#"{"dropped":{"Status":5}}"#,
        ] {
            assert!(
                matches!(
                    default_mapping().with_templates(bad),
                    Err(MappingError::InvalidTemplate(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn case_id_attribute_names_the_existing_case() {
        let ctr = Ctr::from_json(
            r#"{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe","Attributes":{"ctrCasesCaseId":"500000000000001AAA","other":"500bad"}}"#.into(),
        )
        .unwrap();
        let outcome = classify(&ctr, &ClassifyConfig::default());
        let case = build(&ctr, &outcome, &default_mapping());
        assert_eq!(case.case_id.as_deref(), Some("500000000000001AAA"));
        let case = build(
            &ctr,
            &outcome,
            &default_mapping().with_case_id_attribute("other"),
        );
        assert_eq!(case.case_id, None, "not a Case Id");
        assert!(
            is_case_id("500000000000001") && !is_case_id("003000000000001") && !is_case_id("500x")
        );
    }

    /// See: issue "A contact writes only its own Case", item 1.
    #[test]
    fn owner_ids_are_the_contact_and_the_legs_connect_named() {
        let ctr = Ctr::from_json(
            r#"{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe",
                "InitialContactId":"0e5a3c2b-1111-4222-8333-444455556666",
                "PreviousContactId":"0E5A3C2B-1111-4222-8333-444455556666",
                "Attributes":{"ctrCasesCaseId":"500000000000001AAA"}}"#
                .into(),
        )
        .unwrap();
        let outcome = classify(&ctr, &ClassifyConfig::default());
        let case = build(&ctr, &outcome, &default_mapping());
        let owners: Vec<&str> = case.owner_ids().map(ContactId::as_str).collect();
        assert_eq!(
            owners,
            [
                "5ca32fbd-8f92-46af-92a5-6b0f970f0efe",
                "0e5a3c2b-1111-4222-8333-444455556666"
            ]
        );
        assert!(case.owns("5CA32FBD-8F92-46AF-92A5-6B0F970F0EFE"));
        assert!(case.owns("0e5a3c2b-1111-4222-8333-444455556666"));
        assert!(!case.owns("7d3c2b1a-0000-4000-8000-000000000001"));
        assert!(!case.owns(""));

        let first_leg = Ctr::from_json(
            r#"{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe",
                "InitialContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe",
                "PreviousContactId":"../sobjects/User"}"#
                .into(),
        )
        .unwrap();
        let case = build(&first_leg, &outcome, &default_mapping());
        assert!(
            case.earlier_legs.is_empty(),
            "itself and non-UUIDs are left out"
        );
    }

    const SENSITIVE: &str = r#"{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe",
        "CustomerEndpoint":{"Address":"+15555550147"},
        "Attributes":{"creditCardNumber":"4111111111111111","cvv":"123","card.number":"5555555555554444",
        "pin.code":"8642","payment":{"cvv":"987","brand":"visa"},"note":"card 4111.1111.1111.1111 expired",
        "intent":"billing","sfContactId":"003000000000001AAA"}}"#;

    fn sensitive() -> (Ctr, Outcome) {
        let ctr = Ctr::from_json(SENSITIVE.into()).unwrap();
        let outcome = classify(&ctr, &ClassifyConfig::default());
        (ctr, outcome)
    }

    // See: issue "A contact writes only its own Case", item 4.
    #[test]
    fn whole_attribute_map_is_filtered_and_masked() {
        let mapping = default_mapping()
            .with_overrides(r#"{"Notes__c":"{Attributes}","Empty__c":"{Attributes|none}"}"#)
            .unwrap();
        let (ctr, outcome) = sensitive();
        let case = build(&ctr, &outcome, &mapping);
        let notes = case.fields["Notes__c"].as_str().unwrap();
        let shown: Value = serde_json::from_str(notes).unwrap();
        assert_eq!(
            shown,
            serde_json::json!({
                "intent": "billing",
                "note": "card ****.****.****.1111 expired",
                "payment": "{\"brand\":\"visa\"}",
                "sfContactId": "003000000000001AAA"
            })
        );
        for secret in ["4111111111111111", "5555555555554444", "123", "987", "8642"] {
            assert!(!notes.contains(secret), "{secret} in {notes}");
        }
        // No allowed attribute: the fallback, never the raw map.
        let ctr = Ctr::from_json(
            r#"{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe","Attributes":{"cvv":"123"}}"#
                .into(),
        )
        .unwrap();
        let case = build(&ctr, &outcome, &mapping);
        assert_eq!(case.fields["Empty__c"], "none");
        assert!(!case.fields.contains_key("Notes__c"));
    }

    #[test]
    fn dotted_attribute_paths_pass_the_filter_as_a_whole_and_in_parts() {
        let mapping = default_mapping()
            .with_overrides(
                r#"{"A__c":"{Attributes.card.number|hidden}","B__c":"{Attributes.pin.code|hidden}",
                    "C__c":"{Attributes.payment.cvv|hidden}","D__c":"{Attributes.intent}",
                    "E__c":"{Attributes.payment.brand}","F__c":"{Attributes.payment}"}"#,
            )
            .unwrap();
        let (ctr, outcome) = sensitive();
        let case = build(&ctr, &outcome, &mapping);
        for field in ["A__c", "B__c", "C__c"] {
            assert_eq!(case.fields[field], "hidden", "{field}");
        }
        assert_eq!(case.fields["D__c"], "billing");
        assert_eq!(case.fields["E__c"], "visa");
        assert_eq!(case.fields["F__c"], r#"{"brand":"visa"}"#);
    }

    // See: issue "A contact writes only its own Case", item 2.
    #[test]
    fn customer_linking_reads_only_the_named_attribute() {
        let (ctr, outcome) = sensitive();
        let case = build(&ctr, &outcome, &default_mapping());
        assert!(!case.fields.contains_key("ContactId") && case.lookup_number.is_none());
        let by_number = default_mapping().with_customer_linking(None);
        assert_eq!(by_number.linking, CustomerLinking::ByNumber);
        let case = build(&ctr, &outcome, &by_number);
        assert!(
            !case.fields.contains_key("ContactId"),
            "sfContactId is not trusted unless named"
        );
        assert_eq!(case.lookup_number.as_deref(), Some("+15555550147"));
        let named = default_mapping().with_customer_linking(Some(" sfContactId "));
        let case = build(&ctr, &outcome, &named);
        assert_eq!(case.fields["ContactId"], "003000000000001AAA");
        assert!(case.lookup_number.is_none());
        assert_eq!(
            default_mapping().with_customer_linking(Some("  ")).linking,
            CustomerLinking::ByNumber
        );
    }

    #[test]
    fn custom_fields_lists_what_the_org_must_define() {
        let mapping = default_mapping()
            .with_overrides(r#"{"Intent__c":"{Attributes.intent}"}"#)
            .unwrap();
        assert_eq!(
            mapping.custom_fields(),
            [
                "Amazon_Connect_Contact_Id__c",
                "Amazon_Connect_Last_Update__c",
                "Amazon_Connect_Outcome__c",
                "Intent__c"
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
    fn times_are_written_as_rfc3339_seconds() {
        let t = DateTime::parse_from_rfc3339("2024-02-05T08:03:09.999Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(Time(Some(t)).to_string(), "2024-02-05T08:03:09Z");
        assert_eq!(Time(None).to_string(), "unknown");
        let far = DateTime::parse_from_rfc3339("0099-12-31T23:59:59Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(Time(Some(far)).to_string(), "0099-12-31T23:59:59Z");
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
