//! Salesforce REST wire formats (the REST API Developer Guide: sObject Collections, Composite, Query, Search, error responses): request bodies and response parsing.
//!
//! Pure: status and body in, typed values out. No HTTP here, so every documented response shape
//! is tested on fixture text.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::ser::SerializeMap as _;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value, json};

use super::error::Error;
use crate::case::CaseRecord;

/// Most records in one sObject Collections request.
pub const MAX_COLLECTION_RECORDS: usize = 200;

/// A successful OAuth token answer. There is no `expires_in`: the token lives for the org's
/// session timeout.
#[derive(Deserialize)]
pub struct TokenResponse {
    /// The bearer token. Secret: never log it.
    pub access_token: String,
    /// Where all data calls go.
    pub instance_url: String,
    /// The identity URL, `https://login.salesforce.com/id/<org id>/<user id>`: who signed in.
    #[serde(default)]
    pub id: Option<String>,
}

impl TokenResponse {
    /// The signed-in user's Id: the last segment of the identity URL, when it is a User Id
    /// (15 or 18 letters and digits starting `005`; anything else is not trusted into a query).
    pub fn user_id(&self) -> Option<&str> {
        let id = self
            .id
            .as_deref()?
            .trim_end_matches('/')
            .rsplit('/')
            .next()?;
        let is_user = matches!(id.len(), 15 | 18)
            && id.starts_with("005")
            && id.bytes().all(|b| b.is_ascii_alphanumeric());
        is_user.then_some(id)
    }
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[REDACTED]")
            .field("instance_url", &self.instance_url)
            .finish()
    }
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Parses the token endpoint's answer.
///
/// # Errors
/// [`Error::AuthRejected`] for an OAuth error body, [`Error::Api`]-free
/// [`Error::InvalidResponse`] for anything undocumented (5xx included, classified transient).
pub fn parse_token_response(status: u16, body: &[u8]) -> Result<TokenResponse, Error> {
    if status == 200 {
        let token: TokenResponse =
            serde_json::from_slice(body).map_err(|e| Error::InvalidResponse {
                status,
                detail: format!("token answer without access_token/instance_url ({e})"),
            })?;
        if token.access_token.is_empty() || !token.instance_url.starts_with("http") {
            return Err(Error::InvalidResponse {
                status,
                detail: "token answer with an empty access_token or instance_url".into(),
            });
        }
        return Ok(token);
    }
    match serde_json::from_slice::<OAuthError>(body) {
        Ok(e) if (400..500).contains(&status) => Err(Error::AuthRejected {
            status,
            error: e.error,
            description: e.error_description,
        }),
        _ if status >= 500 => Err(Error::InvalidResponse {
            status,
            detail: "the token endpoint answered without an OAuth error body".into(),
        }),
        _ => Err(Error::NotSalesforce {
            status,
            code: format!("HTTP_{status}"),
        }),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiErrorItem {
    #[serde(default)]
    message: String,
    #[serde(default)]
    error_code: String,
    /// Absent, empty or `null` in real answers.
    #[serde(default)]
    fields: Option<Vec<String>>,
}

/// The field an `INVALID_FIELD` message names ("No such column 'F' on sobject of type Case"):
/// a request-level answer carries no `fields`, and the name is what an admin must fix. A field
/// name, never a record value.
fn column_named_in(message: &str) -> Option<String> {
    let rest = message.split_once("No such column '")?.1;
    let name = rest.split_once('\'')?.0;
    let valid = !name.is_empty()
        && name.len() <= 80
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    valid.then(|| name.to_owned())
}

/// Turns a non-2xx data API answer (`[{"message","errorCode","fields"}]`) into an [`Error`].
pub fn parse_api_error(status: u16, body: &[u8]) -> Error {
    let items: Option<Vec<ApiErrorItem>> = serde_json::from_slice(body).ok().or_else(|| {
        serde_json::from_slice::<ApiErrorItem>(body)
            .ok()
            .map(|i| vec![i])
    });
    match items.and_then(|v| v.into_iter().next()) {
        Some(item) if !item.error_code.is_empty() => {
            let mut fields = item.fields.unwrap_or_default();
            if fields.is_empty() {
                fields.extend(column_named_in(&item.message));
            }
            Error::Api {
                status,
                error_code: item.error_code,
                message: item.message,
                fields,
            }
        }
        // Not Salesforce's error format: an HTML page from a proxy or gateway, a redirect to a
        // login page. Salesforce cannot be reached as such: an outage, not a record problem.
        _ => Error::NotSalesforce {
            status,
            code: format!("HTTP_{status}"),
        },
    }
}

/// How a version timestamp is written to a DateTime field.
pub fn datetime_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Reads a DateTime value as Salesforce returns it (`2024-02-25T08:36:30.000+0000`) or as
/// RFC 3339.
pub fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The path of the sObject Collections create and update resources.
pub fn collections_path(api_version: &str) -> String {
    format!("/services/data/{api_version}/composite/sobjects")
}

/// The path of the Composite resource.
pub fn composite_path(api_version: &str) -> String {
    format!("/services/data/{api_version}/composite")
}

/// The body of an sObject Collections create (`allOrNone:false`): every field of each Case,
/// its external id and, when known, its version. Serialized straight from the records (no
/// intermediate JSON tree: this is on the hot path).
pub fn collections_create_body<'a>(
    records: &'a [&'a CaseRecord],
    external_id_field: &'a str,
    version_field: &'a str,
) -> CreateBody<'a> {
    CreateBody {
        records,
        external_id_field,
        version_field,
    }
}

/// See [`collections_create_body`].
#[derive(Debug, Clone, Copy)]
pub struct CreateBody<'a> {
    records: &'a [&'a CaseRecord],
    external_id_field: &'a str,
    version_field: &'a str,
}

/// One record of a [`CreateBody`].
struct CreateRecord<'a> {
    record: &'a CaseRecord,
    external_id_field: &'a str,
    version_field: &'a str,
}

impl Serialize for CreateBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("allOrNone", &false)?;
        let records: Vec<CreateRecord<'_>> = self
            .records
            .iter()
            .map(|record| CreateRecord {
                record,
                external_id_field: self.external_id_field,
                version_field: self.version_field,
            })
            .collect();
        map.serialize_entry("records", &records)?;
        map.end()
    }
}

impl Serialize for CreateRecord<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.record;
        let mut map = s.serialize_map(Some(r.fields.len() + 3))?;
        map.serialize_entry("attributes", &CaseType)?;
        for (k, v) in &r.fields {
            map.serialize_entry(k, v)?;
        }
        map.serialize_entry(self.external_id_field, r.external_id.as_str())?;
        if let Some(version) = r.version {
            map.serialize_entry(self.version_field, &datetime_text(version))?;
        }
        map.end()
    }
}

/// `{"type":"Case"}`, the `attributes` of every record.
struct CaseType;

impl Serialize for CaseType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry("type", "Case")?;
        map.end()
    }
}

/// One update of an existing Case: its Id, the record, and whether the Case has no Contact
/// link yet (then the record's link, if any, is set too: filling an empty link overwrites
/// nobody's work).
pub type CaseUpdate<'a> = (&'a str, &'a CaseRecord, bool);

/// The body of an sObject Collections update (`allOrNone:false`) of existing Cases by Id: only
/// the kept-current fields and the version, so an agent's edits to the other fields stay.
pub fn collections_update_body(updates: &[CaseUpdate<'_>], version_field: &str) -> Value {
    let records: Vec<Value> = updates
        .iter()
        .map(|(id, record, unlinked)| {
            let mut object = Map::new();
            object.insert("attributes".into(), json!({"type": "Case"}));
            object.insert("id".into(), Value::String((*id).to_owned()));
            for (k, v) in record.current_fields() {
                object.insert(k.to_owned(), v.clone());
            }
            if *unlinked {
                for link in ["ContactId", "AccountId"] {
                    if let Some(v) = record.fields.get(link) {
                        object.insert(link.to_owned(), v.clone());
                    }
                }
            }
            if let Some(version) = record.version {
                object.insert(
                    version_field.to_owned(),
                    Value::String(datetime_text(version)),
                );
            }
            Value::Object(object)
        })
        .collect();
    json!({"allOrNone": false, "records": records})
}

/// The reference id of the query in [`existing_cases_body`].
const EXISTING_REF: &str = "existingCases";

/// A Composite request holding one SOQL query for the Cases with the given external ids or
/// Ids: their Id, external id and version. In a Composite body the query is not bound by the
/// 16 KB URI limit a GET would hit with 200 ids. `external_ids` are UUIDs and `ids` Salesforce
/// Ids (both validated), so they are safe inside SOQL quotes.
pub fn existing_cases_body(
    api_version: &str,
    external_id_field: &str,
    version_field: &str,
    external_ids: &[&str],
    ids: &[&str],
) -> Value {
    let list = |values: &[&str]| {
        values
            .iter()
            .map(|v| format!("'{v}'"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut conditions = Vec::new();
    if !external_ids.is_empty() {
        conditions.push(format!("{external_id_field} IN ({})", list(external_ids)));
    }
    if !ids.is_empty() {
        conditions.push(format!("Id IN ({})", list(ids)));
    }
    let soql = format!(
        "SELECT Id, {external_id_field}, {version_field}, ContactId FROM Case WHERE {}",
        conditions.join(" OR ")
    );
    let url = format!(
        "/services/data/{api_version}/query?q={}",
        percent_encode_query(&soql)
    );
    json!({"allOrNone": false, "compositeRequest": [
        {"method": "GET", "url": url, "referenceId": EXISTING_REF}
    ]})
}

/// Percent-encodes a query-string value (RFC 3986 unreserved characters stay).
pub(crate) fn percent_encode_query(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A Composite request of one phone search per caller (≤ 25 subrequests), in order; see
/// [`crate::linking`].
pub fn customer_searches_body(api_version: &str, searches: &[String]) -> Value {
    let requests: Vec<Value> = searches
        .iter()
        .enumerate()
        .map(|(i, sosl)| {
            json!({
                "method": "GET",
                "url": format!("/services/data/{api_version}/search?q={}", percent_encode_query(sosl)),
                "referenceId": format!("caller{i}"),
            })
        })
        .collect();
    json!({"allOrNone": false, "compositeRequest": requests})
}

/// The answer of each search of [`customer_searches_body`], in order: the search result body,
/// or the subrequest's error.
///
/// # Errors
/// The request-level [`Error`] when the Composite call failed, or
/// [`Error::InvalidResponse`] for an undocumented shape.
pub fn parse_customer_searches(
    status: u16,
    body: &[u8],
    expected: usize,
) -> Result<Vec<Result<Value, Error>>, Error> {
    let answer = CompositeAnswer::parse(status, body)?;
    (0..expected)
        .map(|i| {
            let reference = format!("caller{i}");
            let result = answer
                .result(&reference)
                .ok_or_else(|| answer.invalid(format!("no answer for {reference}")))?;
            Ok(result.cloned())
        })
        .collect()
}

/// The answer to a Composite request (`POST …/composite`): its subrequests' answers, found
/// by reference id.
#[derive(Debug)]
pub struct CompositeAnswer {
    status: u16,
    subs: Vec<Value>,
}

impl CompositeAnswer {
    /// Parses a Composite answer.
    ///
    /// # Errors
    /// The request-level [`Error`] when the call itself failed, or
    /// [`Error::InvalidResponse`] when the body is not a `compositeResponse` list.
    pub fn parse(status: u16, body: &[u8]) -> Result<Self, Error> {
        if status != 200 {
            return Err(parse_api_error(status, body));
        }
        let invalid = |detail: String| Error::InvalidResponse { status, detail };
        let mut answer: Value = serde_json::from_slice(body)
            .map_err(|e| invalid(format!("composite answer is not JSON ({e})")))?;
        match answer["compositeResponse"].take() {
            Value::Array(subs) => Ok(CompositeAnswer { status, subs }),
            _ => Err(invalid("composite answer without compositeResponse".into())),
        }
    }

    /// The subrequest answer with `reference` (`httpStatusCode`, `body`, …), when present.
    pub fn get(&self, reference: &str) -> Option<&Value> {
        self.subs.iter().find(|s| s["referenceId"] == reference)
    }

    /// The body of subrequest `reference` when it succeeded (2xx), else its error; `None`
    /// when the answer has no such subrequest.
    pub fn result(&self, reference: &str) -> Option<Result<&Value, Error>> {
        self.get(reference).map(|sub| match subrequest_error(sub) {
            None => Ok(&sub["body"]),
            Some(e) => Err(e),
        })
    }

    /// An [`Error::InvalidResponse`] for this answer.
    pub fn invalid(&self, detail: String) -> Error {
        Error::InvalidResponse {
            status: self.status,
            detail,
        }
    }
}

/// The error of one Composite subrequest answer, unless its status is 2xx.
pub fn subrequest_error(sub: &Value) -> Option<Error> {
    let code = sub["httpStatusCode"].as_u64().unwrap_or(0) as u16;
    (!(200..300).contains(&code)).then(|| {
        let body = serde_json::to_vec(&sub["body"]).unwrap_or_default();
        parse_api_error(code, &body)
    })
}

/// An existing Case as the read returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingCase {
    /// Its Id.
    pub id: String,
    /// Its external id (ContactId), when set.
    pub external_id: Option<String>,
    /// The CTR version it reflects, when set.
    pub version: Option<DateTime<Utc>>,
    /// The Contact it is linked to, when it is.
    pub contact_id: Option<String>,
}

/// Parses the answer to [`existing_cases_body`].
///
/// # Errors
/// The request-level [`Error`] when the Composite call failed, the query's own error when it
/// failed inside it, or [`Error::InvalidResponse`] for an undocumented shape.
pub fn parse_existing_cases(
    status: u16,
    body: &[u8],
    external_id_field: &str,
    version_field: &str,
) -> Result<Vec<ExistingCase>, Error> {
    let answer = CompositeAnswer::parse(status, body)?;
    let invalid = |detail: String| answer.invalid(detail);
    let result = answer
        .result(EXISTING_REF)
        .ok_or_else(|| invalid("composite answer without the query's result".into()))??;
    let records = result["records"]
        .as_array()
        .ok_or_else(|| invalid("query result without records".into()))?;
    let field = |record: &Value, name: &str| {
        record
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
            .and_then(|(_, v)| v.as_str())
            .map(str::to_owned)
    };
    records
        .iter()
        .map(|record| {
            Ok(ExistingCase {
                id: field(record, "Id").ok_or_else(|| invalid("a Case without Id".into()))?,
                external_id: field(record, external_id_field),
                version: field(record, version_field).and_then(|t| parse_datetime(&t)),
                contact_id: field(record, "ContactId"),
            })
        })
        .collect()
}

/// Whether a per-record error says a Case with this external id already exists: Salesforce's
/// `DUPLICATE_VALUE` on the (unique) external id field. That is the signal to update the
/// existing Case, never a reason to dead-letter.
pub fn is_duplicate_external_id(error: &Error, external_id_field: &str) -> bool {
    match error {
        Error::Api {
            error_code,
            message,
            fields,
            ..
        } => {
            error_code == "DUPLICATE_VALUE"
                && (fields
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(external_id_field))
                    || message
                        .to_ascii_lowercase()
                        .contains(&external_id_field.to_ascii_lowercase()))
        }
        _ => false,
    }
}

/// One record's result in a collections answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordResult {
    /// Written: the Case id and whether a new Case was created.
    Upserted {
        /// Salesforce Case id.
        id: String,
        /// `true` when the upsert created the Case, `false` when it updated it.
        created: bool,
    },
    /// This record failed; the others may have succeeded.
    Failed(Error),
}

#[derive(Deserialize)]
struct SaveResult {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    success: bool,
    #[serde(default)]
    created: Option<bool>,
    #[serde(default)]
    errors: Vec<SaveError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SaveError {
    #[serde(default)]
    status_code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    fields: Vec<String>,
}

/// Parses a collections answer for a request of `expected` records.
///
/// # Errors
/// The request-level [`Error`] when the status is not 200, or [`Error::InvalidResponse`] when
/// the answer does not have one entry per record.
pub fn parse_collections_response(
    status: u16,
    body: &[u8],
    expected: usize,
) -> Result<Vec<RecordResult>, Error> {
    if status != 200 {
        return Err(parse_api_error(status, body));
    }
    let results: Vec<SaveResult> =
        serde_json::from_slice(body).map_err(|e| Error::InvalidResponse {
            status,
            detail: format!("collections answer is not an array of save results ({e})"),
        })?;
    if results.len() != expected {
        return Err(Error::InvalidResponse {
            status,
            detail: format!(
                "collections answer has {} results for {expected} records",
                results.len()
            ),
        });
    }
    Ok(results
        .into_iter()
        .map(|r| match (r.success, r.id) {
            (true, Some(id)) => RecordResult::Upserted {
                id,
                created: r.created.unwrap_or(false),
            },
            _ => {
                let first = r.errors.into_iter().next();
                RecordResult::Failed(match first {
                    Some(e) => Error::Api {
                        status,
                        error_code: e.status_code,
                        message: e.message,
                        fields: e.fields,
                    },
                    None => Error::InvalidResponse {
                        status,
                        detail: "a failed record without errors".into(),
                    },
                })
            }
        })
        .collect())
}

/// Reads `Sforce-Limit-Info: api-usage=USED/MAX`.
pub fn parse_limit_info(header: &str) -> Option<(u64, u64)> {
    let usage = header
        .split(',')
        .find_map(|part| part.trim().strip_prefix("api-usage="))?;
    let (used, max) = usage.split_once('/')?;
    Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_errors_with_null_fields_name_the_unknown_column() {
        let body = br#"[{"message":"No such column 'Connect_Contact__c' on sobject of type Case","errorCode":"INVALID_FIELD","fields":null}]"#;
        let e = parse_api_error(400, body);
        assert_eq!(e.code(), "INVALID_FIELD");
        assert!(e.to_string().contains("Connect_Contact__c"), "{e}");
        let odd = br#"[{"message":"No such column 'a b' here","errorCode":"INVALID_FIELD"}]"#;
        assert_eq!(
            parse_api_error(400, odd).to_failure().fields,
            Vec::<String>::new()
        );
    }
    use crate::ctr::ContactId;
    use crate::salesforce::ErrorClass;

    #[test]
    fn token_success_parses_without_expires_in() {
        let body = br#"{"access_token":"00D!AQ","instance_url":"https://yourorg.my.salesforce.com",
            "id":"https://login.salesforce.com/id/00D/005","token_type":"Bearer",
            "issued_at":"1700000000000","signature":"c2ln"}"#;
        let t = parse_token_response(200, body).unwrap();
        assert_eq!(t.instance_url, "https://yourorg.my.salesforce.com");
        assert!(!format!("{t:?}").contains("00D!AQ"));
    }

    #[test]
    fn user_id_is_the_identity_urls_last_segment_when_it_is_a_user_id() {
        let answer = |id: &str| {
            let body = json!({"access_token": "t", "instance_url": "https://i", "id": id});
            parse_token_response(200, body.to_string().as_bytes()).unwrap()
        };
        let url = "https://login.salesforce.com/id/00D5e000000XyZaEAK/0055e000001AbCdAAK";
        assert_eq!(answer(url).user_id(), Some("0055e000001AbCdAAK"));
        let short = "https://login.salesforce.com/id/00D5e000000XyZa/0055e000001AbCd";
        assert_eq!(answer(short).user_id(), Some("0055e000001AbCd"));
        for not_a_user in [
            "https://login.salesforce.com/id/00D/005",
            "https://login.salesforce.com/id/00D5e000000XyZaEAK/00G5e000001AbCdAAK",
            "https://login.salesforce.com/id/00D5e000000XyZaEAK/005' OR Id != '",
        ] {
            assert_eq!(answer(not_a_user).user_id(), None, "{not_a_user}");
        }
        let body = br#"{"access_token":"t","instance_url":"https://i"}"#;
        assert_eq!(parse_token_response(200, body).unwrap().user_id(), None);
    }

    #[test]
    fn token_errors_are_auth_rejected() {
        let err = parse_token_response(
            400,
            br#"{"error":"invalid_grant","error_description":"authentication failure"}"#,
        )
        .unwrap_err();
        assert_eq!(err.code(), "invalid_grant");
        assert_eq!(err.class(), ErrorClass::AuthRejected);
        let err = parse_token_response(503, b"<html>down</html>").unwrap_err();
        assert_eq!(err.class(), ErrorClass::Transient);
    }

    #[test]
    fn api_error_array_parses() {
        let err = parse_api_error(
            403,
            br#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#,
        );
        assert_eq!(err.class(), ErrorClass::QuotaExhausted);
        let err = parse_api_error(502, b"Bad Gateway");
        assert_eq!(err.code(), "HTTP_502");
        // See: issue "Outages lose nothing". A proxy's page is an outage, not a retry.
        assert_eq!(err.class(), ErrorClass::Unavailable);
        let err = parse_api_error(302, b"");
        assert_eq!(err.class(), ErrorClass::Unavailable);
        let err = parse_token_response(403, b"<html>Forbidden</html>").unwrap_err();
        assert_eq!(err.class(), ErrorClass::Unavailable);
    }

    #[test]
    fn collections_results_map_per_record() {
        let body = br#"[{"id":"5001","success":true,"errors":[],"created":true},
            {"id":null,"success":false,"errors":[{"statusCode":"REQUIRED_FIELD_MISSING",
              "message":"Required fields are missing: [Subject]","fields":["Subject"]}]},
            {"id":"5003","success":true,"errors":[],"created":false}]"#;
        let results = parse_collections_response(200, body, 3).unwrap();
        assert_eq!(
            results[0],
            RecordResult::Upserted {
                id: "5001".into(),
                created: true
            }
        );
        let RecordResult::Failed(err) = &results[1] else {
            panic!("second record should fail")
        };
        assert_eq!(err.code(), "REQUIRED_FIELD_MISSING");
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(matches!(
            results[2],
            RecordResult::Upserted { created: false, .. }
        ));
        assert!(parse_collections_response(200, body, 2).is_err());
        let err = parse_collections_response(
            401,
            br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
            3,
        )
        .unwrap_err();
        assert_eq!(err.class(), ErrorClass::AuthExpired);
    }

    fn record(version: Option<&str>) -> CaseRecord {
        let mut fields = Map::new();
        fields.insert("Subject".into(), "Dropped call".into());
        fields.insert("Description".into(), "context".into());
        CaseRecord {
            external_id: ContactId::parse("5ca32fbd-8f92-46af-92a5-6b0f970f0efe").unwrap(),
            fields,
            kept_current: std::sync::Arc::from(vec![
                "Description".to_owned(),
                "Version__c".to_owned(),
            ]),
            version: version.and_then(parse_datetime),
            case_id: None,
            earlier_legs: Vec::new(),
            create: true,
            lookup_number: None,
        }
    }

    #[test]
    fn create_body_has_every_field_and_update_body_only_kept_current_ones() {
        let r = record(Some("2024-02-25T08:36:30Z"));
        let create =
            serde_json::to_value(collections_create_body(&[&r], "Ext__c", "Version__c")).unwrap();
        assert_eq!(
            create,
            json!({"allOrNone": false, "records": [{"attributes": {"type": "Case"},
                "Subject": "Dropped call", "Description": "context",
                "Ext__c": "5ca32fbd-8f92-46af-92a5-6b0f970f0efe",
                "Version__c": "2024-02-25T08:36:30.000Z"}]})
        );
        let update = collections_update_body(&[("5001", &r, false)], "Version__c");
        assert_eq!(
            update,
            json!({"allOrNone": false, "records": [{"attributes": {"type": "Case"},
                "id": "5001", "Description": "context", "Version__c": "2024-02-25T08:36:30.000Z"}]})
        );
        let unversioned = record(None);
        let create = serde_json::to_value(collections_create_body(
            &[&unversioned],
            "Ext__c",
            "Version__c",
        ))
        .unwrap();
        assert!(create["records"][0].get("Version__c").is_none());
    }

    #[test]
    fn existing_cases_query_is_a_composite_subrequest() {
        let body = existing_cases_body("v62.0", "Ext__c", "Version__c", &["a-1", "b-2"], &["500X"]);
        let url = body["compositeRequest"][0]["url"].as_str().unwrap();
        assert!(
            url.starts_with("/services/data/v62.0/query?q=SELECT%20Id%2C%20Ext__c"),
            "{url}"
        );
        assert!(
            url.contains(
                "Ext__c%20IN%20%28%27a-1%27%2C%27b-2%27%29%20OR%20Id%20IN%20%28%27500X%27%29"
            ),
            "{url}"
        );
        let answer = br#"{"compositeResponse":[{"body":{"totalSize":2,"done":true,"records":[
            {"attributes":{"type":"Case","url":"/x"},"Id":"5001","Ext__c":"a-1","Version__c":"2024-02-25T08:36:30.000+0000"},
            {"attributes":{"type":"Case","url":"/y"},"Id":"5002","Ext__c":"b-2","Version__c":null}]},
            "httpHeaders":{},"httpStatusCode":200,"referenceId":"existingCases"}]}"#;
        let cases = parse_existing_cases(200, answer, "Ext__c", "Version__c").unwrap();
        assert_eq!(cases[0].version, parse_datetime("2024-02-25T08:36:30Z"));
        assert_eq!(cases[1].external_id.as_deref(), Some("b-2"));
        assert_eq!(cases[1].version, None);
        let failed = br#"{"compositeResponse":[{"body":[{"errorCode":"INVALID_FIELD","message":"No such column"}],
            "httpHeaders":{},"httpStatusCode":400,"referenceId":"existingCases"}]}"#;
        let err = parse_existing_cases(200, failed, "Ext__c", "Version__c").unwrap_err();
        assert_eq!(err.code(), "INVALID_FIELD");
    }

    #[test]
    fn duplicate_value_on_the_external_id_means_the_case_exists() {
        let dup = |message: &str, fields: &[&str]| Error::Api {
            status: 200,
            error_code: "DUPLICATE_VALUE".into(),
            message: message.into(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        };
        let message = "duplicate value found: Amazon_Connect_Contact_Id__c duplicates value on record with id: 500000000000001";
        assert!(is_duplicate_external_id(
            &dup(message, &[]),
            "Amazon_Connect_Contact_Id__c"
        ));
        assert!(is_duplicate_external_id(
            &dup("dup", &["amazon_connect_contact_id__c"]),
            "Amazon_Connect_Contact_Id__c"
        ));
        assert!(!is_duplicate_external_id(
            &dup("duplicate value found: Other__c", &[]),
            "Amazon_Connect_Contact_Id__c"
        ));
    }

    #[test]
    fn limit_info_parses() {
        assert_eq!(parse_limit_info("api-usage=18/15000"), Some((18, 15000)));
        assert_eq!(
            parse_limit_info("per-app-api-usage=1/10(appName=x), api-usage=7/100"),
            Some((7, 100))
        );
        assert_eq!(parse_limit_info("nonsense"), None);
    }

    #[test]
    fn token_answer_needs_a_token_and_an_http_instance_url() {
        for body in [
            br#"{"access_token":"","instance_url":"https://i"}"#.as_slice(),
            br#"{"access_token":"t","instance_url":"ftp://i"}"#.as_slice(),
        ] {
            let err = parse_token_response(200, body).unwrap_err();
            assert_eq!(err.code(), "invalid_response", "{err}");
        }
        let token =
            parse_token_response(200, br#"{"access_token":"t0k","instance_url":"https://i"}"#)
                .unwrap();
        let shown = format!("{token:?}");
        assert!(
            shown.contains("[REDACTED]") && shown.contains("https://i") && !shown.contains("t0k"),
            "{shown}"
        );
    }

    /// An OAuth error body with a 5xx status is the token endpoint failing, not a refusal.
    #[test]
    fn oauth_error_with_a_server_status_is_transient() {
        let err = parse_token_response(
            503,
            br#"{"error":"server_error","error_description":"try later"}"#,
        )
        .unwrap_err();
        assert_eq!(err.code(), "invalid_response");
        assert_eq!(err.class(), ErrorClass::Transient);
    }

    /// A JSON error list without an `errorCode` is not Salesforce's error format.
    #[test]
    fn an_error_body_without_an_error_code_is_not_salesforces() {
        let err = parse_api_error(400, br#"[{"message":"something went wrong"}]"#);
        assert_eq!(err.code(), "HTTP_400");
        assert_eq!(err.class(), ErrorClass::Unavailable);
    }

    #[test]
    fn paths_name_the_api_version() {
        assert_eq!(
            collections_path("v62.0"),
            "/services/data/v62.0/composite/sobjects"
        );
        assert_eq!(composite_path("v62.0"), "/services/data/v62.0/composite");
    }

    #[test]
    fn customer_searches_are_one_subrequest_each_answered_by_reference() {
        let searches = ["FIND {+15551234567}".to_owned(), "FIND {x}".to_owned()];
        let body = customer_searches_body("v62.0", &searches);
        let requests = body["compositeRequest"].as_array().unwrap();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0]["method"], "GET");
        assert_eq!(
            requests[0]["url"],
            "/services/data/v62.0/search?q=FIND%20%7B%2B15551234567%7D"
        );
        assert_eq!(requests[1]["referenceId"], "caller1");
        let answer = br#"{"compositeResponse":[
            {"body":[{"errorCode":"INVALID_SEARCH","message":"bad"}],"httpHeaders":{},"httpStatusCode":400,"referenceId":"caller1"},
            {"body":{"searchRecords":[{"Id":"003A"}]},"httpHeaders":{},"httpStatusCode":200,"referenceId":"caller0"}]}"#;
        let results = parse_customer_searches(200, answer, 2).unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(
            results[0].as_ref().unwrap()["searchRecords"][0]["Id"],
            "003A"
        );
        assert_eq!(results[1].as_ref().unwrap_err().code(), "INVALID_SEARCH");
        assert!(
            parse_customer_searches(200, answer, 3).is_err(),
            "caller2 has no answer"
        );
    }
}
