//! Salesforce REST wire formats (see salesforce-wire.md): request bodies and response parsing.
//!
//! Pure: status and body in, typed values out. No HTTP here, so every documented response shape
//! is tested on fixture text.

use serde::Deserialize;
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
        _ => Err(Error::InvalidResponse {
            status,
            detail: "the token endpoint answered without an OAuth error body".into(),
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
    #[serde(default)]
    fields: Vec<String>,
}

/// Turns a non-2xx data API answer (`[{"message","errorCode","fields"}]`) into an [`Error`].
pub fn parse_api_error(status: u16, body: &[u8]) -> Error {
    let items: Option<Vec<ApiErrorItem>> = serde_json::from_slice(body).ok().or_else(|| {
        serde_json::from_slice::<ApiErrorItem>(body)
            .ok()
            .map(|i| vec![i])
    });
    match items.and_then(|v| v.into_iter().next()) {
        Some(item) if !item.error_code.is_empty() => Error::Api {
            status,
            error_code: item.error_code,
            message: item.message,
            fields: item.fields,
        },
        _ => {
            // Gateways answer 502/503 with HTML; keep the status, which decides the class.
            Error::Api {
                status,
                error_code: format!("HTTP_{status}"),
                message: String::new(),
                fields: vec![],
            }
        }
    }
}

/// The path (below the instance URL) of an sObject Collections upsert of Cases by
/// `external_id_field`.
pub fn collections_upsert_path(api_version: &str, external_id_field: &str) -> String {
    format!("/services/data/{api_version}/composite/sobjects/Case/{external_id_field}")
}

/// The body of an sObject Collections upsert: `allOrNone:false`, one Case per record, each with
/// its external id field set to the ContactId.
pub fn collections_upsert_body<'a>(
    records: impl IntoIterator<Item = &'a CaseRecord>,
    external_id_field: &str,
) -> Value {
    let records: Vec<Value> = records
        .into_iter()
        .map(|record| {
            let mut object = Map::with_capacity(record.fields.len() + 2);
            object.insert("attributes".into(), json!({"type": "Case"}));
            for (k, v) in &record.fields {
                object.insert(k.clone(), v.clone());
            }
            object.insert(
                external_id_field.to_owned(),
                Value::String(record.external_id.to_string()),
            );
            Value::Object(object)
        })
        .collect();
    json!({"allOrNone": false, "records": records})
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
        assert_eq!(err.class(), ErrorClass::Transient);
    }

    #[test]
    fn upsert_body_has_type_and_external_id() {
        let mut fields = Map::new();
        fields.insert("Subject".into(), "Dropped call".into());
        let record = CaseRecord {
            external_id: ContactId::parse("5ca32fbd-8f92-46af-92a5-6b0f970f0efe").unwrap(),
            fields,
        };
        let body = collections_upsert_body([&record], "Amazon_Connect_Contact_Id__c");
        assert_eq!(
            body,
            json!({"allOrNone":false,"records":[{"attributes":{"type":"Case"},"Subject":"Dropped call",
                "Amazon_Connect_Contact_Id__c":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe"}]})
        );
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

    #[test]
    fn limit_info_parses() {
        assert_eq!(parse_limit_info("api-usage=18/15000"), Some((18, 15000)));
        assert_eq!(
            parse_limit_info("per-app-api-usage=1/10(appName=x), api-usage=7/100"),
            Some((7, 100))
        );
        assert_eq!(parse_limit_info("nonsense"), None);
    }
}
