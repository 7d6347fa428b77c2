//! Rendering a contact into a Case: every mapped field's template rendered against the CTR
//! and the outcome, attributes filtered and masked, values trimmed and truncated; the
//! hand-off Case id, the customer link and the earlier legs.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::channel::{channel_of, origin_for};
use super::description::{Title, write_context};
use super::mapping::{CaseMapping, CustomerLinking, Source};
use super::record::{CaseRecord, is_case_id};
use super::template::{ATTRIBUTES, Piece, Template};
use super::truncate::{field_limit, truncate};
use crate::classify::Outcome;
use crate::ctr::{ContactId, Ctr};
use crate::privacy::AttributeFilter;

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
        let limit = field_limit(&field.name);
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

/// Renders `template`: literals as they are, each placeholder's value, its fallback when the
/// value is absent or empty.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::fixtures::{default_mapping, dropped, sensitive};
    use crate::classify::{ClassifyConfig, classify};

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
    fn missing_number_uses_fallback_and_omits_empty_fields() {
        let ctr = Ctr::from_json(r#"{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe"}"#.into())
            .unwrap();
        let outcome = classify(&ctr, &ClassifyConfig::default());
        let case = build(&ctr, &outcome, &default_mapping());
        assert_eq!(case.fields["Subject"], "Dropped call from unknown caller");
        assert!(!case.fields.contains_key("SuppliedPhone"));
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

    /// Every way a template names one attribute goes through the filter and the card mask.
    #[test]
    fn attribute_placeholders_are_filtered_and_masked() {
        let mapping = default_mapping()
            .with_overrides(
                r#"{"Note__c":"{Attributes.note}","Cvv__c":"{Attributes.cvv|hidden}",
                    "Card__c":"{Attributes.creditCardNumber|hidden}"}"#,
            )
            .unwrap();
        let (ctr, outcome) = sensitive();
        let case = build(&ctr, &outcome, &mapping);
        assert_eq!(case.fields["Note__c"], "card ****.****.****.1111 expired");
        assert_eq!(case.fields["Cvv__c"], "hidden");
        assert_eq!(case.fields["Card__c"], "hidden");
    }

    #[test]
    fn placeholders_render_values_and_fallbacks_only_when_absent() {
        let mapping = default_mapping()
            .with_overrides(
                r#"{"Reason__c":"{DisconnectReason|none}","Agent__c":"{Agent.Username|nobody}",
                    "Id__c":"{contact_id}","Padded__c":"  {outcome_code}  ","Blank__c":"   "}"#,
            )
            .unwrap();
        let (ctr, outcome) = dropped();
        let case = build(&ctr, &outcome, &mapping);
        assert_eq!(case.fields["Reason__c"], "CONTACT_FLOW_DISCONNECT");
        assert_eq!(case.fields["Agent__c"], "nobody");
        assert_eq!(case.fields["Id__c"], "5ca32fbd-8f92-46af-92a5-6b0f970f0efe");
        assert_eq!(case.fields["Padded__c"], "dropped");
        assert!(!case.fields.contains_key("Blank__c"));
    }

    #[test]
    fn task_contacts_get_the_task_templates() {
        let ctr = Ctr::from_json(
            r#"{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe","Channel":"TASK",
                "InitiationMethod":"API"}"#
                .into(),
        )
        .unwrap();
        let config = ClassifyConfig {
            channels: vec!["TASK".into()],
            ..ClassifyConfig::default()
        };
        let outcome = classify(&ctr, &config);
        let mapping = default_mapping()
            .with_templates(r#"{"dropped.TASK":{"Status":"Working"},"*.CHAT":{"Status":"Chat"}}"#)
            .unwrap();
        let case = build(&ctr, &outcome, &mapping);
        assert_eq!(case.fields["Subject"], "Dropped task from unknown customer");
        assert_eq!(case.fields["Origin"], "Web");
        assert_eq!(case.fields["Status"], "Working");
        let description = case.fields["Description"].as_str().unwrap();
        assert!(
            description.contains("Outcome: Dropped task"),
            "{description}"
        );
        assert!(description.contains("Customer: unknown"), "{description}");
    }

    // See: issue "A contact writes only its own Case", item 2.
    #[test]
    fn only_a_contact_id_in_the_named_attribute_links_the_case() {
        let mapping = default_mapping().with_customer_linking(Some("linked"));
        let linked = |attributes: &str| {
            let ctr = Ctr::from_json(format!(
                r#"{{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe",
                    "CustomerEndpoint":{{"Address":"+15555550147"}},"Attributes":{{{attributes}}}}}"#
            ))
            .unwrap();
            let outcome = classify(&ctr, &ClassifyConfig::default());
            let case = build(&ctr, &outcome, &mapping);
            (case.fields.get("ContactId").cloned(), case.lookup_number)
        };
        let number = Some("+15555550147".to_owned());
        assert_eq!(
            linked(r#""linked":" 003000000000001AAA ""#),
            (Some(Value::from("003000000000001AAA")), None)
        );
        for not_a_contact in [r#""linked":"500000000000001AAA""#, r#""linked":"x""#, ""] {
            assert_eq!(
                linked(not_a_contact),
                (None, number.clone()),
                "{not_a_contact}"
            );
        }
    }

    #[test]
    fn only_a_searchable_number_is_looked_up() {
        let ctr = Ctr::from_json(
            r#"{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe","Channel":"CHAT",
                "CustomerEndpoint":{"Address":"jo@example.com"}}"#
                .into(),
        )
        .unwrap();
        let outcome = classify(&ctr, &ClassifyConfig::default());
        let case = build(
            &ctr,
            &outcome,
            &default_mapping().with_customer_linking(None),
        );
        assert_eq!(case.lookup_number, None);
    }

    #[test]
    fn the_case_id_attribute_is_trimmed() {
        let ctr = Ctr::from_json(
            r#"{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe",
                "Attributes":{"ctrCasesCaseId":" 500000000000001AAA "}}"#
                .into(),
        )
        .unwrap();
        let outcome = classify(&ctr, &ClassifyConfig::default());
        let case = build(&ctr, &outcome, &default_mapping());
        assert_eq!(case.case_id.as_deref(), Some("500000000000001AAA"));
    }
}
