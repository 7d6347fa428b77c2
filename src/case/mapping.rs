//! The Case mapping configuration: which fields a Case gets, from which template, with which
//! write mode; the overrides and per-outcome templates a deployer sets, validated once at cold
//! start; and what each field writes, for the org check.

use std::sync::Arc;

use serde_json::Value;

use super::channel::CHANNELS;
use super::error::MappingError;
use super::template::{ATTRIBUTES, CaseTemplates, Piece, SPECIAL, Template, is_attribute_path};
use crate::classify::TEMPLATE_KEYS;
use crate::ctr::{Capture, is_typed_path};
use crate::privacy::AttributeFilter;

/// The default external id field on Case.
pub const DEFAULT_EXTERNAL_ID_FIELD: &str = "Amazon_Connect_Contact_Id__c";

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

/// Where a mapped field's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Source {
    /// One template for every outcome.
    Template(Template),
    /// The outcome's template for this field (see [`CaseTemplates`]).
    PerOutcome,
}

/// One mapped field: its API name, where its value comes from and when it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MappedField {
    pub(super) name: String,
    pub(super) source: Source,
    pub(super) mode: WriteMode,
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
    pub(super) fields: Vec<MappedField>,
    pub(super) templates: CaseTemplates,
    pub(super) kept_current: Arc<[String]>,
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
        self.templates.add_json(json)?;
        Ok(self)
    }

    /// The mapped field names, in order (without the external id and version fields).
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.name.as_str())
    }

    /// The write mode of `field`, if it is mapped (tests).
    #[cfg(test)]
    fn mode_of(&self, field: &str) -> Option<WriteMode> {
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
        let templates = self.templates.all();
        Capture::of_paths(
            mapped
                .chain(templates)
                .flat_map(|template| &template.0)
                .filter_map(|piece| match piece {
                    // Special placeholders, typed fields and attributes need no capture.
                    Piece::Placeholder { path, .. }
                        if !SPECIAL.contains(&path.as_str())
                            && path != ATTRIBUTES
                            && !is_typed_path(path)
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
                    Source::PerOutcome => TEMPLATE_KEYS
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::build;
    use crate::case::fixtures::{default_mapping, dropped};

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
    fn write_modes_parse_with_their_short_names() {
        assert_eq!(WriteMode::parse(" Create "), Some(WriteMode::OnCreate));
        assert_eq!(WriteMode::parse("CURRENT"), Some(WriteMode::KeptCurrent));
        assert_eq!(WriteMode::parse("never"), None);
    }

    #[test]
    fn version_field_is_kept_current_and_cannot_be_mapped() {
        let mapping = default_mapping().with_version_field("Version__c").unwrap();
        assert_eq!(mapping.version_field, "Version__c");
        assert_eq!(
            mapping.custom_fields(),
            [
                "Amazon_Connect_Contact_Id__c",
                "Version__c",
                "Amazon_Connect_Outcome__c"
            ]
        );
        let (ctr, outcome) = dropped();
        let case = build(&ctr, &outcome, &mapping);
        assert_eq!(
            case.kept_current.last().map(String::as_str),
            Some("Version__c")
        );
        assert!(matches!(
            mapping.with_overrides(r#"{"version__c":"x"}"#),
            Err(MappingError::ExternalIdMapped(_))
        ));
        assert!(matches!(
            default_mapping().with_version_field("amazon_connect_contact_id__c"),
            Err(MappingError::ExternalIdMapped(_))
        ));
        assert!(matches!(
            default_mapping().with_version_field("Version field"),
            Err(MappingError::InvalidFieldName(_))
        ));
    }

    #[test]
    fn attribute_filter_is_the_one_given() {
        let filter = AttributeFilter::new(&["intent".into()], &[]).unwrap();
        let mapping = default_mapping().with_attribute_filter(filter.clone());
        assert_eq!(mapping.attributes, filter);
        assert_ne!(mapping.attributes, AttributeFilter::default());
    }

    #[test]
    fn field_names_are_letters_digits_and_underscores_up_to_80() {
        let longest = format!("A{}", "b".repeat(79));
        assert!(CaseMapping::new(&longest, "Medium").is_ok());
        assert!(CaseMapping::new(&format!("{longest}c"), "Medium").is_err());
        assert!(CaseMapping::new("1Field__c", "Medium").is_err());
        assert!(CaseMapping::new("Field-Id__c", "Medium").is_err());
    }

    /// The decode keeps only the top-level keys of paths that neither the typed fields nor
    /// the attribute map answer.
    #[test]
    fn capture_keeps_only_what_the_typed_fields_do_not_answer() {
        let capture = |overrides: &str| {
            default_mapping()
                .with_overrides(overrides)
                .unwrap()
                .capture()
        };
        assert_eq!(default_mapping().capture(), Capture::none());
        assert_eq!(
            capture(
                r#"{"A__c":"{Attributes.intent} {Attributes} {Queue.Name} {contact_id} {origin}"}"#
            ),
            Capture::none()
        );
        assert_eq!(
            capture(r#"{"A__c":"{Agent.Username}"}"#),
            Capture::of_paths(["Agent"])
        );
        for deeper in [
            r#"{"A__c":"{Attributes.payment.brand}"}"#,
            r#"{"A__c":"{Attributes.}"}"#,
        ] {
            assert_eq!(
                capture(deeper),
                Capture::of_paths(["Attributes"]),
                "{deeper}"
            );
        }
        let per_outcome = default_mapping()
            .with_templates(r#"{"*.CHAT":{"Subject":"{Recordings.0.Location}"}}"#)
            .unwrap();
        assert_eq!(per_outcome.capture(), Capture::of_paths(["Recordings"]));
    }

    #[test]
    fn field_uses_name_the_values_the_configuration_alone_writes() {
        let mapping = default_mapping()
            .with_overrides(r#"{"Blank__c":" ","Mixed__c":"{origin} {Channel}"}"#)
            .unwrap();
        let uses = |channels: &[&str]| -> Vec<(String, WriteMode, Option<Vec<String>>)> {
            let channels: Vec<String> = channels.iter().map(|c| (*c).to_owned()).collect();
            mapping
                .field_uses(&channels)
                .into_iter()
                .map(|u| (u.name, u.mode, u.fixed_values))
                .collect()
        };
        let fixed = |values: &[&str]| Some(values.iter().map(|v| (*v).to_owned()).collect());
        let row = |name: &str, mode, values| (name.to_owned(), mode, values);
        use WriteMode::{KeptCurrent, OnCreate};
        assert_eq!(
            uses(&["voice"]),
            [
                row("Subject", OnCreate, None),
                row("Description", KeptCurrent, None),
                row("Origin", OnCreate, fixed(&["Phone"])),
                row("Status", OnCreate, fixed(&["Closed", "New"])),
                row("SuppliedPhone", OnCreate, None),
                row("Priority", OnCreate, fixed(&["Medium"])),
                row("Amazon_Connect_Outcome__c", KeptCurrent, None),
                row("Blank__c", OnCreate, fixed(&[])),
                row("Mixed__c", OnCreate, None),
            ]
        );
        let origin = |channels: &[&str]| uses(channels).swap_remove(2).2;
        assert_eq!(origin(&[]), fixed(&["Email", "Phone", "Web"]));
        assert_eq!(origin(&["CHAT", "TASK"]), fixed(&["Web"]));
    }
}
