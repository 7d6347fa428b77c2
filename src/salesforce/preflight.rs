//! The org check: one describe of Case tells whether the org takes what the configuration
//! writes, before any record is touched (docs/cases.md, "Real orgs").
//!
//! Pure: [`CaseSchema::parse`] reads the describe answer and [`check`] compares it with
//! [`OrgRequirements`]; the client makes the call ([`super::SalesforceClient::check_org_now`]).
//! A problem found here is a configuration error: every record is held, nothing is
//! dead-lettered, and one error line names the field, the problem and the valid values.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;

use crate::case::{FieldUse, WriteMode};

/// What the configuration writes to Case: the facts the org must support.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRequirements {
    /// The external id field holding the ContactId: a unique External ID text field.
    pub external_id_field: String,
    /// The DateTime field holding the CTR version, written on create and on every update.
    pub version_field: String,
    /// Every mapped field with its write mode and the values configuration alone writes.
    pub fields: Vec<FieldUse>,
    /// Whether Cases are linked to Contacts (ContactId and AccountId written on create, and on
    /// update when the Case has no link yet).
    pub links_customers: bool,
}

/// One Case field as the describe answer shows it to the integration user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldInfo {
    /// API name.
    pub name: String,
    /// Salesforce's type name (`string`, `textarea`, `picklist`, `datetime`, `reference`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// Maximum length of a text value (0 for other types).
    #[serde(default)]
    pub length: usize,
    /// Whether the user may set it on create.
    #[serde(default)]
    pub createable: bool,
    /// Whether the user may change it on update.
    #[serde(default)]
    pub updateable: bool,
    /// Whether it may be empty.
    #[serde(default = "yes")]
    pub nillable: bool,
    /// Whether the org fills it on create when it is not given.
    #[serde(default)]
    pub defaulted_on_create: bool,
    /// A formula field.
    #[serde(default)]
    pub calculated: bool,
    /// An auto-number field.
    #[serde(default)]
    pub auto_number: bool,
    /// A unique field.
    #[serde(default)]
    pub unique: bool,
    /// An External ID field.
    #[serde(default)]
    pub external_id: bool,
    /// A picklist that takes only its listed values.
    #[serde(default)]
    pub restricted_picklist: bool,
    /// The picklist's values (master list).
    #[serde(default)]
    pub picklist_values: Vec<PicklistValue>,
}

fn yes() -> bool {
    true
}

/// One picklist value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PicklistValue {
    /// The API value.
    pub value: String,
    /// Whether it may be chosen.
    #[serde(default)]
    pub active: bool,
}

/// One record type as the describe answer shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordTypeInfo {
    /// Its Id (`012…`).
    pub record_type_id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Whether the user may create records of it.
    #[serde(default)]
    pub available: bool,
}

/// The Case object as the integration user sees it (field-level security applied).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseSchema {
    fields: HashMap<String, FieldInfo>,
    record_types: Vec<RecordTypeInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeAnswer {
    fields: Vec<FieldInfo>,
    #[serde(default)]
    record_type_infos: Vec<RecordTypeInfo>,
}

impl CaseSchema {
    /// Reads a `GET /sobjects/Case/describe` answer.
    ///
    /// # Errors
    /// A description of what did not match the documented format.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let answer: DescribeAnswer =
            serde_json::from_slice(body).map_err(|e| format!("unreadable describe answer: {e}"))?;
        Ok(CaseSchema {
            fields: answer
                .fields
                .into_iter()
                .map(|f| (f.name.to_ascii_lowercase(), f))
                .collect(),
            record_types: answer.record_type_infos,
        })
    }

    /// The field named `name` (case-insensitive), if the user can see it.
    pub fn field(&self, name: &str) -> Option<&FieldInfo> {
        self.fields.get(&name.to_ascii_lowercase())
    }

    /// The most characters a text field `name` takes, when the org limits it.
    pub fn text_limit(&self, name: &str) -> Option<usize> {
        self.field(name)
            .filter(|f| is_text(&f.kind) && f.length > 0)
            .map(|f| f.length)
    }

    /// The record types the describe answer listed.
    pub fn record_types(&self) -> &[RecordTypeInfo] {
        &self.record_types
    }

    /// Every field, sorted by name.
    pub fn fields(&self) -> Vec<&FieldInfo> {
        let mut fields: Vec<&FieldInfo> = self.fields.values().collect();
        fields.sort_by(|a, b| a.name.cmp(&b.name));
        fields
    }
}

fn is_text(kind: &str) -> bool {
    matches!(
        kind,
        "string" | "textarea" | "phone" | "email" | "url" | "picklist" | "multipicklist"
    )
}

/// One way the org does not fit the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The Case field it is about.
    pub field: String,
    /// What is wrong.
    pub kind: ProblemKind,
}

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// The field does not exist, or field-level security hides it from the integration user.
    Missing,
    /// The user may not set it on create.
    NotCreateable,
    /// The user may not change it on update (it is kept current).
    NotUpdateable,
    /// It has the wrong type.
    WrongType {
        /// What it must be.
        expected: &'static str,
        /// What the org says.
        found: String,
    },
    /// The external id field is not a unique External ID field.
    NotUniqueExternalId,
    /// A template writes a value the restricted picklist does not have (or has inactive).
    PicklistValue {
        /// The value the configuration writes.
        value: String,
        /// The picklist's active values.
        valid: Vec<String>,
    },
    /// The org requires it on create and the mapping does not set it.
    RequiredNotMapped,
    /// The configured record type is unknown or not available to the user.
    RecordTypeUnavailable {
        /// The configured Id.
        id: String,
        /// The record types available to the user (`Id (Name)`).
        available: Vec<String>,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = &self.field;
        match &self.kind {
            ProblemKind::Missing => write!(
                f,
                "Case.{field} does not exist or is hidden from the integration user by \
                 field-level security: deploy it (salesforce/force-app) and grant Edit access, \
                 or remove it from CASE_FIELD_MAPPING"
            ),
            ProblemKind::NotCreateable => write!(
                f,
                "Case.{field} is read-only for the integration user on create: grant Edit \
                 access in its field-level security (permission set Ctr_Cases_Integration)"
            ),
            ProblemKind::NotUpdateable => write!(
                f,
                "Case.{field} is kept current but read-only for the integration user on \
                 update: grant Edit access, or map it with \"mode\": \"on_create\""
            ),
            ProblemKind::WrongType { expected, found } => {
                write!(f, "Case.{field} is a {found} field; it must be {expected}")
            }
            ProblemKind::NotUniqueExternalId => write!(
                f,
                "Case.{field} holds the ContactId and must be a Unique External ID text field \
                 (salesforce/force-app defines it so)"
            ),
            ProblemKind::PicklistValue { value, valid } => write!(
                f,
                "Case.{field} is a restricted picklist without the active value \"{value}\" the \
                 configuration writes; valid values: {}: add the value in Setup or set a valid \
                 one in CASE_TEMPLATES",
                valid.join(", ")
            ),
            ProblemKind::RequiredNotMapped => write!(
                f,
                "Case.{field} is required by the org on create and not mapped: add it to \
                 CASE_FIELD_MAPPING (e.g. {{\"{field}\": \"a value\"}}) or make it optional"
            ),
            ProblemKind::RecordTypeUnavailable { id, available } => write!(
                f,
                "Case.{field}: record type {id} is not available to the integration user; \
                 available: {}",
                if available.is_empty() {
                    "none".to_owned()
                } else {
                    available.join(", ")
                }
            ),
        }
    }
}

/// The fields Salesforce manages itself: never "required but not mapped".
const SYSTEM_FIELDS: [&str; 3] = ["OwnerId", "Status", "Id"];

/// Compares what the configuration writes with the org's Case object. Empty: the org fits.
pub fn check(requirements: &OrgRequirements, schema: &CaseSchema) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut problem = |field: &str, kind: ProblemKind| {
        problems.push(Problem {
            field: field.to_owned(),
            kind,
        })
    };
    // External id: a unique External ID text field, set on create.
    let ext = requirements.external_id_field.as_str();
    match schema.field(ext) {
        None => problem(ext, ProblemKind::Missing),
        Some(f) => {
            if f.kind != "string" {
                problem(
                    ext,
                    ProblemKind::WrongType {
                        expected: "a Text field",
                        found: f.kind.clone(),
                    },
                );
            } else if !(f.unique && f.external_id) {
                problem(ext, ProblemKind::NotUniqueExternalId);
            }
            if !f.createable {
                problem(ext, ProblemKind::NotCreateable);
            }
        }
    }
    // Version: a DateTime written on create and on every update.
    let version = requirements.version_field.as_str();
    match schema.field(version) {
        None => problem(version, ProblemKind::Missing),
        Some(f) => {
            if f.kind != "datetime" {
                problem(
                    version,
                    ProblemKind::WrongType {
                        expected: "a DateTime field",
                        found: f.kind.clone(),
                    },
                );
            }
            if !f.createable {
                problem(version, ProblemKind::NotCreateable);
            }
            if !f.updateable {
                problem(version, ProblemKind::NotUpdateable);
            }
        }
    }
    let links = ["ContactId", "AccountId"].map(|name| FieldUse {
        name: name.to_owned(),
        mode: WriteMode::KeptCurrent,
        fixed_values: None,
    });
    let linked = requirements.links_customers.then_some(&links[..]);
    for field in requirements
        .fields
        .iter()
        .chain(linked.into_iter().flatten())
    {
        let name = field.name.as_str();
        let Some(info) = schema.field(name) else {
            problem(name, ProblemKind::Missing);
            continue;
        };
        if !info.createable {
            problem(name, ProblemKind::NotCreateable);
        }
        if field.mode == WriteMode::KeptCurrent && !info.updateable {
            problem(name, ProblemKind::NotUpdateable);
        }
        let values = field.fixed_values.as_deref().unwrap_or_default();
        if name.eq_ignore_ascii_case("RecordTypeId") {
            for id in values {
                let usable = schema
                    .record_types
                    .iter()
                    .any(|r| r.available && same_id(&r.record_type_id, id));
                if !usable {
                    let available = schema
                        .record_types
                        .iter()
                        .filter(|r| r.available)
                        .map(|r| format!("{} ({})", r.record_type_id, r.name))
                        .collect();
                    problem(
                        name,
                        ProblemKind::RecordTypeUnavailable {
                            id: id.clone(),
                            available,
                        },
                    );
                }
            }
        } else if info.restricted_picklist {
            let active: Vec<&str> = info
                .picklist_values
                .iter()
                .filter(|v| v.active)
                .map(|v| v.value.as_str())
                .collect();
            for value in values.iter().filter(|v| !active.contains(&v.as_str())) {
                problem(
                    name,
                    ProblemKind::PicklistValue {
                        value: value.clone(),
                        valid: active.iter().map(|v| (*v).to_owned()).collect(),
                    },
                );
            }
        }
    }
    // Fields the org requires on create that nothing sets.
    let written = |name: &str| {
        name.eq_ignore_ascii_case(ext)
            || name.eq_ignore_ascii_case(version)
            || SYSTEM_FIELDS.iter().any(|s| s.eq_ignore_ascii_case(name))
            || requirements
                .fields
                .iter()
                .any(|f| f.name.eq_ignore_ascii_case(name))
    };
    for info in schema.fields() {
        let required = info.createable
            && !info.nillable
            && !info.defaulted_on_create
            && !info.calculated
            && !info.auto_number
            && info.kind != "boolean";
        if required && !written(&info.name) {
            problem(&info.name, ProblemKind::RequiredNotMapped);
        }
    }
    problems
}

/// Whether two Salesforce Ids name the same record (a 15-character Id is the case-sensitive
/// prefix of its 18-character form).
pub fn same_id(a: &str, b: &str) -> bool {
    a == b || (a.len() >= 15 && b.len() >= 15 && a[..15] == b[..15])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const EXT: &str = "Amazon_Connect_Contact_Id__c";
    const VERSION: &str = "Amazon_Connect_Last_Update__c";

    fn field(name: &str, kind: &str) -> Value {
        json!({"name": name, "type": kind, "length": 255, "createable": true, "updateable": true,
               "nillable": true, "defaultedOnCreate": false, "calculated": false,
               "autoNumber": false, "unique": false, "externalId": false,
               "restrictedPicklist": false, "picklistValues": []})
    }

    fn org() -> Vec<Value> {
        let mut ext = field(EXT, "string");
        ext["unique"] = json!(true);
        ext["externalId"] = json!(true);
        let mut status = field("Status", "picklist");
        status["restrictedPicklist"] = json!(true);
        status["defaultedOnCreate"] = json!(true);
        status["nillable"] = json!(false);
        status["picklistValues"] = json!([
            {"value": "New", "active": true}, {"value": "Closed", "active": true},
            {"value": "Escalated", "active": false}]);
        let mut id = field("Id", "id");
        id["createable"] = json!(false);
        id["nillable"] = json!(false);
        vec![
            id,
            ext,
            field(VERSION, "datetime"),
            field("Subject", "string"),
            field("Description", "textarea"),
            status,
        ]
    }

    fn schema(fields: Vec<Value>) -> CaseSchema {
        let body = json!({"name": "Case", "fields": fields,
            "recordTypeInfos": [{"recordTypeId": "012000000000001AAA", "name": "Support",
                                 "available": true, "master": false}]});
        CaseSchema::parse(body.to_string().as_bytes()).unwrap()
    }

    fn uses(list: &[(&str, WriteMode, Option<&[&str]>)]) -> OrgRequirements {
        OrgRequirements {
            external_id_field: EXT.into(),
            version_field: VERSION.into(),
            fields: list
                .iter()
                .map(|(name, mode, values)| FieldUse {
                    name: (*name).into(),
                    mode: *mode,
                    fixed_values: values.map(|v| v.iter().map(|s| (*s).to_owned()).collect()),
                })
                .collect(),
            links_customers: false,
        }
    }

    #[test]
    fn a_fitting_org_has_no_problems() {
        let req = uses(&[
            ("Subject", WriteMode::OnCreate, None),
            ("Description", WriteMode::KeptCurrent, None),
            ("Status", WriteMode::OnCreate, Some(&["Closed", "New"])),
        ]);
        assert_eq!(check(&req, &schema(org())), vec![]);
    }

    #[test]
    fn each_mismatch_names_the_field_and_what_to_do() {
        let mut fields = org();
        fields[3]["updateable"] = json!(false); // Subject
        let mut required = field("Product__c", "string");
        required["nillable"] = json!(false);
        fields.push(required);
        let req = uses(&[
            ("Subject", WriteMode::KeptCurrent, None),
            ("Missing__c", WriteMode::OnCreate, None),
            ("Status", WriteMode::OnCreate, Some(&["Escalated", "Open"])),
            (
                "RecordTypeId",
                WriteMode::OnCreate,
                Some(&["012000000000009"]),
            ),
        ]);
        let mut fields_with_rt = fields.clone();
        fields_with_rt.push(field("RecordTypeId", "reference"));
        let problems = check(&req, &schema(fields_with_rt));
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let kinds: Vec<(&str, &ProblemKind)> = problems
            .iter()
            .map(|p| (p.field.as_str(), &p.kind))
            .collect();
        assert!(
            kinds.contains(&("Subject", &ProblemKind::NotUpdateable)),
            "{text:?}"
        );
        assert!(
            kinds.contains(&("Missing__c", &ProblemKind::Missing)),
            "{text:?}"
        );
        assert!(kinds.contains(&("Product__c", &ProblemKind::RequiredNotMapped)));
        let picklist: Vec<&String> = problems
            .iter()
            .filter_map(|p| match &p.kind {
                ProblemKind::PicklistValue { value, valid } => {
                    assert_eq!(valid, &["New", "Closed"]);
                    Some(value)
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            picklist,
            ["Escalated", "Open"],
            "inactive and unknown values"
        );
        assert!(text.iter().any(|t| t.contains("valid values: New, Closed")));
        assert!(
            text.iter()
                .any(|t| t.contains("012000000000009") && t.contains("Support"))
        );
        assert_eq!(problems.len(), 6, "{text:?}");
    }

    #[test]
    fn key_fields_must_have_their_types() {
        let mut fields = org();
        fields[1]["unique"] = json!(false);
        fields[2]["type"] = json!("date");
        fields[2]["updateable"] = json!(false);
        let problems = check(&uses(&[]), &schema(fields));
        let kinds: Vec<&ProblemKind> = problems.iter().map(|p| &p.kind).collect();
        assert_eq!(
            kinds,
            [
                &ProblemKind::NotUniqueExternalId,
                &ProblemKind::WrongType {
                    expected: "a DateTime field",
                    found: "date".into()
                },
                &ProblemKind::NotUpdateable,
            ]
        );
        let hidden: Vec<Value> = org().into_iter().filter(|f| f["name"] != EXT).collect();
        assert_eq!(
            check(&uses(&[]), &schema(hidden))[0].kind,
            ProblemKind::Missing
        );
    }

    #[test]
    fn links_need_contact_and_account_and_unrestricted_values_pass() {
        let mut req = uses(&[("Subject", WriteMode::OnCreate, Some(&["Anything"]))]);
        req.links_customers = true;
        let problems = check(&req, &schema(org()));
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["ContactId", "AccountId"]);
    }

    #[test]
    fn text_limits_come_from_the_org() {
        let mut fields = org();
        fields[3]["length"] = json!(80);
        let s = schema(fields);
        assert_eq!(s.text_limit("subject"), Some(80));
        assert_eq!(s.text_limit(VERSION), None, "not a text field");
        assert_eq!(s.text_limit("Nope__c"), None);
    }

    /// A describe answer without `nillable` says the field may be empty: not required.
    #[test]
    fn a_field_without_nillable_is_optional() {
        let mut fields = org();
        let mut optional = field("Product__c", "string");
        optional.as_object_mut().unwrap().remove("nillable");
        fields.push(optional);
        let s = schema(fields);
        assert!(s.field("Product__c").unwrap().nillable);
        assert_eq!(check(&uses(&[]), &s), vec![]);
    }

    #[test]
    fn a_text_field_of_length_zero_has_no_limit() {
        let mut fields = org();
        fields[4]["length"] = json!(0);
        assert_eq!(schema(fields).text_limit("Description"), None);
    }

    #[test]
    fn record_types_are_the_describe_answers() {
        let s = schema(org());
        let ids: Vec<&str> = s
            .record_types()
            .iter()
            .map(|r| r.record_type_id.as_str())
            .collect();
        assert_eq!(ids, ["012000000000001AAA"]);
    }

    /// Required fields written by every Case (the external id, the version, a mapped field) or
    /// filled by Salesforce (OwnerId) are never "required but not mapped".
    #[test]
    fn required_fields_that_every_case_sets_pass() {
        let mut fields = org();
        for i in [1, 2, 3] {
            // The external id, the version and Subject.
            fields[i]["nillable"] = json!(false);
        }
        let mut owner = field("OwnerId", "reference");
        owner["nillable"] = json!(false);
        fields.push(owner);
        let req = uses(&[("Subject", WriteMode::OnCreate, None)]);
        assert_eq!(check(&req, &schema(fields)), vec![]);
    }
}
