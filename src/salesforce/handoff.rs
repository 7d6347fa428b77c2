//! The contact flow's hand-off Case: written and read back (Id and CaseNumber) in ONE
//! Composite call, so the agent's screen pop can show it while the caller waits.
//!
//! For a contact without a known Case the Composite request holds: a create of the Case with
//! every field (failing with `DUPLICATE_VALUE` on the unique external id when the Case exists),
//! a query of the Case by external id (Id, CaseNumber), and an update of its kept-current fields
//! by the queried Id (a reference: it fails harmlessly when no Case exists, so it can never
//! create one). `allOrNone` is false: each subrequest stands alone.
//!
//! A contact whose attributes name a Case (a transferred leg carries its first leg's Case Id)
//! may write it only when that Case's external id is the contact's own ContactId or an earlier
//! leg's ([`CaseRecord::owner_ids`]): attributes can come from customers. The same one request
//! then holds, in order:
//! 1. `owned`: a query of the named Case restricted to those external ids, and `ownedUpdate`,
//!    a PATCH by `@{owned.records[0].Id}` (it fails harmlessly when the Case is not the
//!    contact's);
//! 2. `foreign`: a query of the named Case when its external id is none of them, and `create`,
//!    the contact's own Case, posted to `sobjects/@{foreign.records[0].attributes.type}` (the
//!    query's record type, `Case`): a Composite request has no condition but a reference, so
//!    the create runs only when the named Case belongs to someone else;
//! 3. `read` and `update`: the contact's own Case by external id, as for a contact without one.
//!
//! The named Case wins when it is the contact's; otherwise the contact's own Case answers.
//! Only when the named Case cannot be read at all (deleted, not shared) and the contact has no
//! Case yet does a second call file it.

use std::sync::atomic::Ordering;

use serde_json::{Map, Value, json};

use super::assignment;
use super::client::{CallCounts, SalesforceClient, fit_to_org};
use super::error::{Error, ErrorClass, TransportKind};
use super::wire;
use crate::case::{self, CaseRecord};
use crate::effect::{HandoffOutcome, HandoffSink, HandoffWritten};
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

/// The warning logged (with the ContactId) when a contact's attributes name a Case that is not
/// the contact's.
const NOT_OWN_CASE: &str = "the Case named by the contact's case id attribute is not this contact's; using the contact's own Case";

impl SalesforceClient {
    /// Files or updates the hand-off Case and reads its Id and CaseNumber, in one API call (two
    /// only when the Case the contact's attributes name cannot be read and the contact has no
    /// Case of its own yet).
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
        let ext_field = &self.settings().external_id_field;
        let named = case.case_id.as_deref().filter(|id| case::is_case_id(id));
        let answer = match named {
            None => {
                let body = self.own_case_body(case)?;
                let (status, bytes) = self.send_handoff(&body, deadline, &counts).await?;
                parse_handoff(status, &bytes, ext_field)?
            }
            Some(id) => {
                let body = self.named_case_body(case, id)?;
                let (status, bytes) = self.send_handoff(&body, deadline, &counts).await?;
                let named = parse_named(status, &bytes, ext_field)?;
                if !matches!(named, Named::Owned(_)) {
                    tracing::warn!(contact_id = %case.external_id, "{NOT_OWN_CASE}");
                }
                match named {
                    Named::Owned(answer) | Named::Own(answer) => answer,
                    Named::Nothing => {
                        // The named Case cannot be read and the contact has no Case yet.
                        let body = self.own_case_body(case)?;
                        let (status, bytes) = self.send_handoff(&body, deadline, &counts).await?;
                        parse_handoff(status, &bytes, ext_field)?
                    }
                }
            }
        };
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

    /// One Composite call; every write subrequest says its own `Sforce-Auto-Assign`.
    async fn send_handoff(
        &self,
        body: &Value,
        deadline: Deadline,
        counts: &CallCounts,
    ) -> Result<(u16, Vec<u8>), Error> {
        let path = wire::composite_path(&self.settings().api_version);
        self.call(
            reqwest::Method::POST,
            &path,
            body,
            Some(assignment::ON_UPDATE),
            deadline,
            counts,
        )
        .await
    }

    /// The subrequests that file (or update) the contact's own Case and read it back:
    /// `create`, `read`, `update`, the create posted to `create_url`.
    fn own_case_subrequests(
        &self,
        case: &CaseRecord,
        create_url: String,
    ) -> Result<[Value; 3], Error> {
        let settings = self.settings();
        let ext_field = &settings.external_id_field;
        let base = format!("/services/data/{}", settings.api_version);
        let records = [case];
        let body = wire::collections_create_body(&records, ext_field, &settings.version_field);
        let mut create = serde_json::to_value(body).map_err(|e| Error::InvalidResponse {
            status: 0,
            detail: format!("could not encode the request body: {e}"),
        })?["records"][0]
            .take();
        if let Value::Object(map) = &mut create {
            map.remove("attributes");
        }
        // The ContactId is a validated UUID: safe inside SOQL quotes.
        let soql = format!(
            "SELECT Id, CaseNumber FROM Case WHERE {ext_field} = '{}'",
            case.external_id.as_str()
        );
        // The create may run the assignment rule; the write to an existing Case must not. A
        // subrequest's own header overrides the request's, so each write says which.
        let create_assign = json!({(assignment::HEADER): settings.assignment.on_create()});
        Ok([
            json!({"method": "POST", "url": create_url, "referenceId": "create", "body": create,
                   "httpHeaders": create_assign}),
            json!({"method": "GET",
                   "url": format!("{base}/query?q={}", wire::percent_encode_query(&soql)),
                   "referenceId": "read"}),
            update_by_reference("update", &base, "read", case),
        ])
    }

    /// The Composite request for a contact without a named Case (see the module doc).
    fn own_case_body(&self, case: &CaseRecord) -> Result<Value, Error> {
        let base = format!("/services/data/{}", self.settings().api_version);
        let own = self.own_case_subrequests(case, format!("{base}/sobjects/Case"))?;
        Ok(json!({"allOrNone": false, "compositeRequest": own}))
    }

    /// The Composite request for a contact whose attributes name Case `id` (a validated Case
    /// Id; see the module doc).
    fn named_case_body(&self, case: &CaseRecord, id: &str) -> Result<Value, Error> {
        let settings = self.settings();
        let ext_field = &settings.external_id_field;
        let base = format!("/services/data/{}", settings.api_version);
        // Validated UUIDs and a validated Case Id: safe inside SOQL quotes.
        let owners = case
            .owner_ids()
            .map(|id| format!("'{id}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let query = |reference: &str, select: &str, test: &str| {
            let soql = format!(
                "SELECT {select} FROM Case WHERE Id = '{id}' AND {ext_field} {test} ({owners})"
            );
            json!({"method": "GET",
                   "url": format!("{base}/query?q={}", wire::percent_encode_query(&soql)),
                   "referenceId": reference})
        };
        let [create, read, update] = self.own_case_subrequests(
            case,
            format!("{base}/sobjects/@{{foreign.records[0].attributes.type}}"),
        )?;
        Ok(json!({"allOrNone": false, "compositeRequest": [
            query("owned", "Id, CaseNumber", "IN"),
            update_by_reference("ownedUpdate", &base, "owned", case),
            query("foreign", "Id", "NOT IN"),
            create,
            read,
            update,
        ]}))
    }
}

/// A PATCH of `case`'s kept-current fields to the Case that query `query` found first: a
/// reference, so it fails harmlessly (and creates nothing) when the query found none. Never
/// runs an assignment rule.
fn update_by_reference(reference: &str, base: &str, query: &str, case: &CaseRecord) -> Value {
    let current: Map<String, Value> = case
        .current_fields()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect();
    json!({"method": "PATCH", "url": format!("{base}/sobjects/Case/@{{{query}.records[0].Id}}"),
           "referenceId": reference, "body": current,
           "httpHeaders": {(assignment::HEADER): assignment::ON_UPDATE}})
}

/// What the Composite answer says.
#[derive(Debug)]
struct HandoffAnswer {
    id: String,
    case_number: String,
    created: bool,
    update_error: Option<Error>,
}

/// The Case a read subrequest answered (Id and CaseNumber), when it found one.
///
/// # Errors
/// The subrequest's error.
fn case_read(read: &Value) -> Result<Option<(String, String)>, Error> {
    if let Some(e) = wire::subrequest_error(read) {
        return Err(e);
    }
    // A query answers {records:[…]}, a read by Id the record itself.
    let record = read["body"]["records"].get(0).unwrap_or(&read["body"]);
    let text = |name: &str| record.get(name).and_then(Value::as_str).map(str::to_owned);
    Ok(text("Id").zip(text("CaseNumber")))
}

/// Reads the Composite answer of a request for the contact's own Case.
fn parse_handoff(status: u16, body: &[u8], ext_field: &str) -> Result<HandoffAnswer, Error> {
    let answer = wire::CompositeAnswer::parse(status, body)?;
    own_case_answer(&answer, ext_field)
}

/// The contact's own Case from the `create`, `read` and `update` answers.
fn own_case_answer(
    answer: &wire::CompositeAnswer,
    ext_field: &str,
) -> Result<HandoffAnswer, Error> {
    let sub = |reference: &str| answer.get(reference);
    let error_of = wire::subrequest_error;
    let create_error = sub("create").and_then(error_of);
    let created = sub("create").is_some() && create_error.is_none();
    let read =
        sub("read").ok_or_else(|| answer.invalid("composite answer without the read".into()))?;
    let Some((id, case_number)) = case_read(read)? else {
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

/// What the answer to a request naming a Case says.
#[derive(Debug)]
enum Named {
    /// The named Case is the contact's: it was updated.
    Owned(HandoffAnswer),
    /// It is not (or cannot be read): the contact's own Case answers.
    Own(HandoffAnswer),
    /// It cannot be read, and the contact has no Case of its own.
    Nothing,
}

/// Reads the Composite answer of a request naming a Case.
fn parse_named(status: u16, body: &[u8], ext_field: &str) -> Result<Named, Error> {
    let answer = wire::CompositeAnswer::parse(status, body)?;
    let missing = |reference: &str| answer.invalid(format!("composite answer without {reference}"));
    let owned = answer.get("owned").ok_or_else(|| missing("owned"))?;
    if let Some((id, case_number)) = case_read(owned)? {
        return Ok(Named::Owned(HandoffAnswer {
            id,
            case_number,
            created: false,
            update_error: answer.get("ownedUpdate").and_then(wire::subrequest_error),
        }));
    }
    let foreign = answer.get("foreign").ok_or_else(|| missing("foreign"))?;
    let create_ran =
        wire::subrequest_error(foreign).is_none() && foreign["body"]["records"].get(0).is_some();
    let read = answer.get("read").ok_or_else(|| missing("read"))?;
    if !create_ran && case_read(read)?.is_none() {
        // The named Case cannot be read (deleted, not shared), so the create never ran, and
        // the contact has no Case of its own yet.
        return Ok(Named::Nothing);
    }
    own_case_answer(&answer, ext_field).map(Named::Own)
}

impl HandoffSink for SalesforceClient {
    async fn file_handoff(&self, case: &CaseRecord, deadline: Deadline) -> HandoffOutcome {
        match self.write_handoff(case, deadline).await {
            Ok(handoff) => HandoffOutcome::Written(HandoffWritten {
                id: handoff.id,
                case_number: handoff.case_number,
                created: handoff.created,
                api_calls: handoff.api_calls,
                token_requests: handoff.token_requests,
            }),
            Err(e) => HandoffOutcome::Failed {
                code: short_code(&e),
                error: e.to_string(),
            },
        }
    }
}

/// The short `caseError` code for a Salesforce failure (no detail: the flow only branches).
pub fn short_code(error: &Error) -> &'static str {
    match error {
        Error::Transport {
            kind: TransportKind::Timeout,
            ..
        }
        | Error::DeadlineReached => "timeout",
        Error::Transport { .. } => "unreachable",
        Error::CaseNotFound { .. } => "case_not_found",
        Error::Api { error_code, .. } if error_code == "NOT_FOUND" => "case_not_found",
        e => match e.class() {
            ErrorClass::QuotaExhausted => "quota_exhausted",
            ErrorClass::AuthRejected | ErrorClass::AuthExpired => "auth_rejected",
            ErrorClass::Configuration => "configuration",
            ErrorClass::Permanent | ErrorClass::NoAccess => "rejected",
            ErrorClass::OutOfTime => "timeout",
            ErrorClass::Transient | ErrorClass::Throttled | ErrorClass::Unavailable => {
                "salesforce_unavailable"
            }
        },
    }
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

    /// See: issue "A contact writes only its own Case", item 1.
    #[test]
    fn a_named_case_counts_only_when_the_owned_query_found_it() {
        let owned = br#"{"compositeResponse":[
            {"body":{"totalSize":1,"done":true,"records":[{"Id":"500000000000001AAA","CaseNumber":"00001001"}]},"httpHeaders":{},"httpStatusCode":200,"referenceId":"owned"},
            {"body":null,"httpHeaders":{},"httpStatusCode":204,"referenceId":"ownedUpdate"},
            {"body":{"totalSize":0,"done":true,"records":[]},"httpHeaders":{},"httpStatusCode":200,"referenceId":"foreign"},
            {"body":[{"errorCode":"PROCESSING_HALTED","message":"Invalid reference specified. No value for foreign.records[0].attributes.type found in foreign."}],"httpHeaders":{},"httpStatusCode":400,"referenceId":"create"},
            {"body":{"totalSize":0,"done":true,"records":[]},"httpHeaders":{},"httpStatusCode":200,"referenceId":"read"},
            {"body":[{"errorCode":"PROCESSING_HALTED","message":"Invalid reference specified."}],"httpHeaders":{},"httpStatusCode":400,"referenceId":"update"}]}"#;
        let Named::Owned(a) = parse_named(200, owned, EXT).unwrap() else {
            panic!("the named Case is the contact's");
        };
        assert_eq!((a.id.as_str(), a.created), ("500000000000001AAA", false));
        assert!(a.update_error.is_none());

        let foreign = br#"{"compositeResponse":[
            {"body":{"totalSize":0,"done":true,"records":[]},"httpHeaders":{},"httpStatusCode":200,"referenceId":"owned"},
            {"body":[{"errorCode":"PROCESSING_HALTED","message":"Invalid reference specified."}],"httpHeaders":{},"httpStatusCode":400,"referenceId":"ownedUpdate"},
            {"body":{"totalSize":1,"done":true,"records":[{"attributes":{"type":"Case"},"Id":"500000000000009AAA"}]},"httpHeaders":{},"httpStatusCode":200,"referenceId":"foreign"},
            {"body":{"id":"500000000000002AAA","success":true,"errors":[]},"httpHeaders":{},"httpStatusCode":201,"referenceId":"create"},
            {"body":{"totalSize":1,"done":true,"records":[{"Id":"500000000000002AAA","CaseNumber":"00001002"}]},"httpHeaders":{},"httpStatusCode":200,"referenceId":"read"},
            {"body":null,"httpHeaders":{},"httpStatusCode":204,"referenceId":"update"}]}"#;
        let Named::Own(a) = parse_named(200, foreign, EXT).unwrap() else {
            panic!("another contact's Case: the contact's own answers");
        };
        assert_eq!((a.id.as_str(), a.created), ("500000000000002AAA", true));

        // Neither readable nor owned, and no Case of its own: nothing was created.
        let unreadable = String::from_utf8(owned.to_vec())
            .unwrap()
            .replace(r#""totalSize":1,"done":true,"records":[{"Id":"500000000000001AAA","CaseNumber":"00001001"}]"#, r#""totalSize":0,"done":true,"records":[]"#);
        assert!(matches!(
            parse_named(200, unreadable.as_bytes(), EXT).unwrap(),
            Named::Nothing
        ));

        // The other contact's Case exists but the contact's own create was refused.
        let refused = String::from_utf8(foreign.to_vec())
            .unwrap()
            .replace(
                r#"{"body":{"id":"500000000000002AAA","success":true,"errors":[]},"httpHeaders":{},"httpStatusCode":201"#,
                r#"{"body":[{"errorCode":"REQUIRED_FIELD_MISSING","message":"Required fields are missing: [Type]","fields":["Type"]}],"httpHeaders":{},"httpStatusCode":400"#,
            )
            .replace(
                r#""totalSize":1,"done":true,"records":[{"Id":"500000000000002AAA","CaseNumber":"00001002"}]"#,
                r#""totalSize":0,"done":true,"records":[]"#,
            );
        let e = parse_named(200, refused.as_bytes(), EXT).unwrap_err();
        assert_eq!(e.code(), "REQUIRED_FIELD_MISSING");
    }

    #[test]
    fn salesforce_failures_become_short_codes() {
        let api = |status: u16, code: &str, message: &str| Error::Api {
            status,
            error_code: code.into(),
            message: message.into(),
            fields: vec![],
        };
        assert_eq!(short_code(&Error::DeadlineReached), "timeout");
        assert_eq!(
            short_code(&api(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded."
            )),
            "quota_exhausted"
        );
        assert_eq!(
            short_code(&api(400, "REQUIRED_FIELD_MISSING", "x")),
            "rejected"
        );
        assert_eq!(
            short_code(&api(503, "SERVER_UNAVAILABLE", "x")),
            "salesforce_unavailable"
        );
        assert_eq!(short_code(&api(404, "NOT_FOUND", "x")), "case_not_found");
    }
}
