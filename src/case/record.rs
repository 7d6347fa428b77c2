//! What a Case write carries: the Case's key and version, its fields with their write modes,
//! and the Case ids (its own, the hand-off Case, the earlier legs') it may write.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::ctr::ContactId;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::fixtures::{default_mapping, dropped};
    use crate::case::{WriteMode, build};
    use crate::classify::{ClassifyConfig, classify};
    use crate::ctr::Ctr;

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
}
