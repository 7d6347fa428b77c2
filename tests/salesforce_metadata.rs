//! The org metadata in salesforce/force-app defines every custom field the default
//! configuration writes, with the right type, uniqueness and external-id flags, and the
//! integration user's permission set may edit each of them.
//! See: issue "Case lifecycle" (Salesforce metadata in the repo).

use std::path::PathBuf;

use ctr_cases::plan::Settings;

fn metadata(relative: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("salesforce/force-app/main/default")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The text of every `<tag>…</tag>` directly in `xml`, in order (the files are flat).
fn tags<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    xml.match_indices(&open)
        .filter_map(|(at, _)| {
            let start = at + open.len();
            xml[start..]
                .find(&close)
                .map(|end| xml[start..start + end].trim())
        })
        .collect()
}

fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    tags(xml, name).into_iter().next()
}

#[test]
fn every_custom_field_the_default_configuration_writes_is_defined() {
    let settings = Settings::default();
    let mapping = &settings.mapping;
    let custom = mapping.custom_fields();
    assert_eq!(
        custom,
        [
            "Amazon_Connect_Contact_Id__c",
            "Amazon_Connect_Last_Update__c",
            "Amazon_Connect_Outcome__c"
        ]
    );
    for field in &custom {
        let xml = metadata(&format!("objects/Case/fields/{field}.field-meta.xml"));
        assert!(xml.starts_with("<?xml"), "{field}: not XML");
        assert!(xml.contains("<CustomField xmlns=\"http://soap.sforce.com/2006/04/metadata\">"));
        assert_eq!(tag(&xml, "fullName"), Some(*field), "{field}");
        let expected: (&str, Option<&str>, &str, &str) = if *field == mapping.external_id_field {
            // Text(36), Unique, External ID: the key of one Case per contact.
            ("Text", Some("36"), "true", "true")
        } else if *field == mapping.version_field {
            ("DateTime", None, "false", "false")
        } else {
            ("Text", Some("40"), "false", "false")
        };
        // An absent flag is false in the Metadata API.
        let flag = |name: &str| tag(&xml, name).unwrap_or("false");
        assert_eq!(tag(&xml, "type"), Some(expected.0), "{field} type");
        assert_eq!(tag(&xml, "length"), expected.1, "{field} length");
        assert_eq!(flag("unique"), expected.2, "{field} unique");
        assert_eq!(flag("externalId"), expected.3, "{field} externalId");
        if *field == mapping.external_id_field {
            // A ContactId is a UUID of 36 characters: the field must hold it.
            let length: usize = expected.1.unwrap().parse().unwrap();
            assert!(length >= 36);
        }
    }
}

#[test]
fn the_permission_set_lets_the_integration_user_write_those_fields() {
    let xml = metadata("permissionsets/Ctr_Cases_Integration.permissionset-meta.xml");
    let blocks = tags(&xml, "fieldPermissions");
    let editable: Vec<&str> = blocks
        .iter()
        .filter(|b| tag(b, "editable") == Some("true") && tag(b, "readable") == Some("true"))
        .filter_map(|b| tag(b, "field"))
        .collect();
    let settings = Settings::default();
    for field in settings.mapping.custom_fields() {
        assert!(
            editable.contains(&format!("Case.{field}").as_str()),
            "{field}: {editable:?}"
        );
    }
    let objects = tags(&xml, "objectPermissions");
    let case = objects
        .iter()
        .find(|b| tag(b, "object") == Some("Case"))
        .expect("Case object permissions");
    for permission in ["allowCreate", "allowEdit", "allowRead"] {
        assert_eq!(tag(case, permission), Some("true"), "{permission}");
    }
    assert_eq!(tag(case, "allowDelete"), Some("false"));
    assert!(
        tags(&xml, "userPermissions")
            .iter()
            .any(|b| tag(b, "name") == Some("ApiEnabled") && tag(b, "enabled") == Some("true"))
    );
}

/// The opt-in callback task field (CALLBACK_TASKS): Text(36) like a ContactId, not unique, and
/// the integration user may write it.
#[test]
fn the_callback_task_field_is_defined_and_writable() {
    let field = ctr_cases::config::DEFAULT_CALLBACK_TASK_ID_FIELD;
    let xml = metadata(&format!("objects/Case/fields/{field}.field-meta.xml"));
    assert_eq!(tag(&xml, "fullName"), Some(field));
    assert_eq!(tag(&xml, "type"), Some("Text"));
    assert_eq!(tag(&xml, "length"), Some("36"));
    assert_eq!(tag(&xml, "unique"), Some("false"));
    assert_eq!(tag(&xml, "required"), Some("false"));
    let permissions = metadata("permissionsets/Ctr_Cases_Integration.permissionset-meta.xml");
    assert!(tags(&permissions, "fieldPermissions").iter().any(|b| {
        tag(b, "field") == Some(&format!("Case.{field}"))
            && tag(b, "editable") == Some("true")
            && tag(b, "readable") == Some("true")
    }));
    // Opt-in: the default mapping never writes it.
    assert!(!Settings::default().mapping.custom_fields().contains(&field));
}

/// The supervisor fields (SUPERVISOR_FIELDS): a reportable disconnect reason and a URL to the
/// contact in Amazon Connect, both writable by the integration user.
#[test]
fn the_supervisor_fields_are_defined_and_writable() {
    use ctr_cases::config::{CONTACT_LINK_FIELD, DISCONNECT_REASON_FIELD};
    let reason = metadata(&format!(
        "objects/Case/fields/{DISCONNECT_REASON_FIELD}.field-meta.xml"
    ));
    assert_eq!(tag(&reason, "type"), Some("Text"));
    // Connect's reasons (CONTACT_FLOW_DISCONNECT, …) fit, as the outcome field's values do.
    assert_eq!(tag(&reason, "length"), Some("40"));
    let link = metadata(&format!(
        "objects/Case/fields/{CONTACT_LINK_FIELD}.field-meta.xml"
    ));
    assert_eq!(tag(&link, "type"), Some("Url"));
    let permissions = metadata("permissionsets/Ctr_Cases_Integration.permissionset-meta.xml");
    for field in [DISCONNECT_REASON_FIELD, CONTACT_LINK_FIELD] {
        assert!(
            tags(&permissions, "fieldPermissions")
                .iter()
                .any(|b| tag(b, "field") == Some(&format!("Case.{field}"))
                    && tag(b, "editable") == Some("true")),
            "{field}"
        );
    }
}

/// "Dropped calls, last 7 days": dropped-call Cases grouped by day and disconnect reason, with
/// the callback task column; every custom field it names is in the metadata, and the dashboard
/// shows that report.
#[test]
fn the_dropped_calls_report_and_dashboard_fit_the_fields() {
    let report = metadata("reports/Ctr_Cases/Dropped_Calls_Last_7_Days.report-meta.xml");
    assert!(report.contains("<Report xmlns=\"http://soap.sforce.com/2006/04/metadata\">"));
    assert_eq!(tag(&report, "name"), Some("Dropped calls, last 7 days"));
    assert_eq!(tag(&report, "format"), Some("Summary"));
    assert_eq!(tag(&report, "interval"), Some("INTERVAL_LAST7"));
    let criteria = tags(&report, "criteriaItems");
    assert!(criteria.iter().any(|c| {
        tag(c, "column") == Some("Case.Amazon_Connect_Outcome__c")
            && tag(c, "operator") == Some("equals")
            && tag(c, "value") == Some("dropped")
    }));
    let groupings: Vec<&str> = tags(&report, "groupingsDown")
        .iter()
        .filter_map(|g| tag(g, "field"))
        .collect();
    assert_eq!(
        groupings,
        [
            "CREATED_DATEONLY",
            "Case.Amazon_Connect_Disconnect_Reason__c"
        ]
    );
    let mut named: Vec<&str> = tags(&report, "field");
    named.extend(criteria.iter().filter_map(|c| tag(c, "column")));
    assert!(named.contains(&"Case.Amazon_Connect_Callback_Task_Id__c"));
    assert!(named.contains(&"Case.Amazon_Connect_Callback_State__c"));
    for field in named.iter().filter_map(|f| f.strip_prefix("Case.")) {
        let xml = metadata(&format!("objects/Case/fields/{field}.field-meta.xml"));
        assert_eq!(tag(&xml, "fullName"), Some(field));
    }
    let folder = metadata("reports/Ctr_Cases.reportFolder-meta.xml");
    assert_eq!(tag(&folder, "accessType"), Some("Public"));

    let dashboard = metadata("dashboards/Ctr_Cases_Dashboards/Dropped_Calls.dashboard-meta.xml");
    assert!(dashboard.contains("<Dashboard xmlns=\"http://soap.sforce.com/2006/04/metadata\">"));
    let shown = tags(&dashboard, "report");
    assert!(!shown.is_empty());
    assert!(
        shown
            .iter()
            .all(|r| *r == "Ctr_Cases/Dropped_Calls_Last_7_Days")
    );
    assert_eq!(tag(&dashboard, "dashboardType"), Some("LoggedInUser"));
    metadata("dashboards/Ctr_Cases_Dashboards.dashboardFolder-meta.xml");
}

/// Private Case sharing (issue "Real orgs"): once an assignment rule or an agent takes a Case,
/// the integration user must still read and edit it. The shipped criteria-based sharing rule
/// gives a public group Read/Write on every Case that carries a ContactId, and nothing more:
/// the permission set has no View All or Modify All (which would add delete and every Case).
#[test]
fn a_sharing_rule_gives_the_integration_group_every_case_with_a_contact_id() {
    let rules = metadata("sharingRules/Case.sharingRules-meta.xml");
    assert!(rules.contains("<SharingRules xmlns=\"http://soap.sforce.com/2006/04/metadata\">"));
    let rule = tags(&rules, "sharingCriteriaRules");
    assert_eq!(rule.len(), 1);
    assert_eq!(tag(rule[0], "accessLevel"), Some("Edit"));
    let group = tag(tag(rule[0], "sharedTo").unwrap(), "group").unwrap();
    let group_xml = metadata(&format!("groups/{group}.group-meta.xml"));
    assert!(group_xml.contains("<Group xmlns=\"http://soap.sforce.com/2006/04/metadata\">"));
    // `ctr-cases check` looks for the user in this group, by these names.
    assert_eq!(group, ctr_cases::doctor::SHARING_GROUP);
    assert_eq!(
        tag(&group_xml, "name"),
        Some(ctr_cases::doctor::SHARING_GROUP_LABEL)
    );
    let item = tag(rule[0], "criteriaItems").unwrap();
    let settings = Settings::default();
    assert_eq!(
        tag(item, "field"),
        Some(settings.mapping.external_id_field.as_str())
    );
    assert_eq!(tag(item, "operation"), Some("notEqual"));
    assert_eq!(tag(item, "value"), Some(""), "not blank");

    let xml = metadata("permissionsets/Ctr_Cases_Integration.permissionset-meta.xml");
    let objects = tags(&xml, "objectPermissions");
    let case = objects
        .iter()
        .find(|b| tag(b, "object") == Some("Case"))
        .unwrap();
    for broad in ["viewAllRecords", "modifyAllRecords"] {
        assert_eq!(tag(case, broad).unwrap_or("false"), "false", "{broad}");
    }
}
