//! The contact flow's hand-off Case: written and read back (Id and CaseNumber) in ONE
//! Composite call, so the agent's screen pop can show it while the caller waits.
//!
//! For a contact without a known Case the Composite request holds: a create of the Case with
//! every field (failing with `DUPLICATE_VALUE` on the unique external id when the Case exists),
//! a query of the Case by external id (Id, CaseNumber), and an update of its kept-current fields
//! by the queried Id (a reference: it fails harmlessly when no Case exists, so it can never
//! create one). For a contact whose flow already stored a Case Id (a transferred leg), it holds
//! an update of that Case and a read of it. `allOrNone` is false: each subrequest stands alone.

use std::sync::atomic::Ordering;

use serde_json::{Map, Value, json};

use super::assignment;
use super::client::{CallCounts, SalesforceClient, fit_to_org};
use super::error::Error;
use super::wire;
use crate::case::CaseRecord;
use crate::retry::Deadline;

/// The Case the flow gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffCase {
    /// The Case Id (`500…`).
    pub id: String,
    /// The Case number people see (`00001234`).
    pub case_number: String,
    /// Whether this call created it.
    pub created: bool,
    /// Data API calls made (one), and token requests (one on a cold container).
    pub api_calls: u32,
    /// Token endpoint calls made.
    pub token_requests: u32,
}

impl SalesforceClient {
    /// Files or updates the hand-off Case and reads its Id and CaseNumber, in one API call.
    ///
    /// # Errors
    /// The request's [`Error`], or the create's when no Case exists afterwards.
    pub async fn write_handoff(
        &self,
        case: &CaseRecord,
        deadline: Deadline,
    ) -> Result<HandoffCase, Error> {
        let counts = CallCounts::default();
        let schema = self.ensure_org(deadline, &counts).await?;
        let case = &*fit_to_org(case, schema.as_deref());
        let settings = self.settings();
        // The create may run the assignment rule; the write to an existing Case must not. A
        // subrequest's own header overrides the request's, so each write says which.
        let create_assign = json!({(assignment::HEADER): settings.assignment.on_create()});
        let update_assign = json!({(assignment::HEADER): assignment::ON_UPDATE});
        let version = &settings.api_version;
        let ext_field = &settings.external_id_field;
        let base = format!("/services/data/{version}");
        let current: Map<String, Value> = case
            .current_fields()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect();
        let body = match &case.case_id {
            Some(id) => json!({"allOrNone": false, "compositeRequest": [
                {"method": "PATCH", "url": format!("{base}/sobjects/Case/{id}"),
                 "referenceId": "update", "body": current, "httpHeaders": update_assign},
                {"method": "GET", "url": format!("{base}/sobjects/Case/{id}?fields=Id,CaseNumber"),
                 "referenceId": "read"},
            ]}),
            None => {
                let records = [case];
                let body =
                    wire::collections_create_body(&records, ext_field, &settings.version_field);
                let mut create =
                    serde_json::to_value(body).map_err(|e| Error::InvalidResponse {
                        status: 0,
                        detail: format!("could not encode the request body: {e}"),
                    })?["records"][0]
                        .take();
                if let Value::Object(map) = &mut create {
                    map.remove("attributes");
                }
                let soql = format!(
                    "SELECT Id, CaseNumber FROM Case WHERE {ext_field} = '{}'",
                    case.external_id.as_str()
                );
                json!({"allOrNone": false, "compositeRequest": [
                    {"method": "POST", "url": format!("{base}/sobjects/Case"),
                     "referenceId": "create", "body": create, "httpHeaders": create_assign},
                    {"method": "GET",
                     "url": format!("{base}/query?q={}", wire::percent_encode_query(&soql)),
                     "referenceId": "read"},
                    {"method": "PATCH", "url": format!("{base}/sobjects/Case/@{{read.records[0].Id}}"),
                     "referenceId": "update", "body": current, "httpHeaders": update_assign},
                ]})
            }
        };
        let path = wire::composite_path(version);
        let (status, bytes) = self
            .call(
                reqwest::Method::POST,
                &path,
                &body,
                Some(assignment::ON_UPDATE),
                deadline,
                &counts,
            )
            .await?;
        let answer = parse_handoff(status, &bytes, ext_field)?;
        let api_calls = counts.api_calls.load(Ordering::Relaxed);
        let token_requests = counts.token_requests.load(Ordering::Relaxed);
        if let Some(e) = &answer.update_error {
            tracing::warn!(
                error = %e,
                "the hand-off Case exists but its call context was not updated"
            );
        }
        Ok(HandoffCase {
            id: answer.id,
            case_number: answer.case_number,
            created: answer.created,
            api_calls,
            token_requests,
        })
    }
}

/// What the Composite answer says.
#[derive(Debug)]
struct HandoffAnswer {
    id: String,
    case_number: String,
    created: bool,
    update_error: Option<Error>,
}

/// Reads the Composite answer of [`SalesforceClient::write_handoff`].
fn parse_handoff(status: u16, body: &[u8], ext_field: &str) -> Result<HandoffAnswer, Error> {
    let answer = wire::CompositeAnswer::parse(status, body)?;
    let invalid = |detail: String| answer.invalid(detail);
    let sub = |reference: &str| answer.get(reference);
    let error_of = wire::subrequest_error;
    let create_error = sub("create").and_then(error_of);
    let created = sub("create").is_some() && create_error.is_none();
    let read = sub("read").ok_or_else(|| invalid("composite answer without the read".into()))?;
    if let Some(e) = error_of(read) {
        return Err(e);
    }
    // A query answers {records:[…]}, a read by Id the record itself.
    let record = read["body"]["records"]
        .get(0)
        .unwrap_or(&read["body"])
        .clone();
    let text = |name: &str| record.get(name).and_then(Value::as_str).map(str::to_owned);
    let (Some(id), Some(case_number)) = (text("Id"), text("CaseNumber")) else {
        // No Case: the create failed for another reason than "it exists".
        return Err(create_error.unwrap_or_else(|| Error::CaseNotFound { id: String::new() }));
    };
    if let Some(e) = &create_error
        && !wire::is_duplicate_external_id(e, ext_field)
    {
        // The Case exists although the create failed for another reason: use it.
        tracing::debug!(error = %e, "hand-off create failed but the Case exists");
    }
    let update_error = sub("update").and_then(error_of);
    Ok(HandoffAnswer {
        id,
        case_number,
        created,
        update_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXT: &str = "Amazon_Connect_Contact_Id__c";

    #[test]
    fn created_case_is_read_back_with_its_number() {
        let answer = br#"{"compositeResponse":[
            {"body":{"id":"500000000000001AAA","success":true,"errors":[]},"httpHeaders":{},"httpStatusCode":201,"referenceId":"create"},
            {"body":{"totalSize":1,"done":true,"records":[{"attributes":{"type":"Case"},"Id":"500000000000001AAA","CaseNumber":"00001001"}]},"httpHeaders":{},"httpStatusCode":200,"referenceId":"read"},
            {"body":null,"httpHeaders":{},"httpStatusCode":204,"referenceId":"update"}]}"#;
        let a = parse_handoff(200, answer, EXT).unwrap();
        assert_eq!(
            (a.id.as_str(), a.case_number.as_str(), a.created),
            ("500000000000001AAA", "00001001", true)
        );
        assert!(a.update_error.is_none());
    }

    #[test]
    fn existing_case_is_updated_not_created() {
        let answer = br#"{"compositeResponse":[
            {"body":[{"errorCode":"DUPLICATE_VALUE","message":"duplicate value found: Amazon_Connect_Contact_Id__c duplicates value on record with id: 500000000000001","fields":[]}],"httpHeaders":{},"httpStatusCode":400,"referenceId":"create"},
            {"body":{"totalSize":1,"done":true,"records":[{"Id":"500000000000001AAA","CaseNumber":"00001001"}]},"httpHeaders":{},"httpStatusCode":200,"referenceId":"read"},
            {"body":null,"httpHeaders":{},"httpStatusCode":204,"referenceId":"update"}]}"#;
        let a = parse_handoff(200, answer, EXT).unwrap();
        assert!(!a.created);
        assert_eq!(a.case_number, "00001001");
    }

    #[test]
    fn rejected_create_without_a_case_is_the_create_error() {
        let answer = br#"{"compositeResponse":[
            {"body":[{"errorCode":"REQUIRED_FIELD_MISSING","message":"Required fields are missing: [Type]","fields":["Type"]}],"httpHeaders":{},"httpStatusCode":400,"referenceId":"create"},
            {"body":{"totalSize":0,"done":true,"records":[]},"httpHeaders":{},"httpStatusCode":200,"referenceId":"read"},
            {"body":[{"errorCode":"PROCESSING_HALTED","message":"Invalid reference specified"}],"httpHeaders":{},"httpStatusCode":400,"referenceId":"update"}]}"#;
        let e = parse_handoff(200, answer, EXT).unwrap_err();
        assert_eq!(e.code(), "REQUIRED_FIELD_MISSING");
    }
}
