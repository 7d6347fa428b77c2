//! OAuth grants, token errors, the token cache and credential rotation, against the fake org's
//! token endpoint (and moto_server's Secrets Manager for rotation).
//!
//! Every test drives the real `SalesforceClient::write_cases` and then looks at what the fake
//! org recorded: the token requests' form bodies, the data calls and the stored Cases.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use base64::Engine as _;
use ctr_cases::aws::secrets::{CredentialSource, Credentials};
use ctr_cases::case::{self, CaseRecord};
use ctr_cases::classify;
use ctr_cases::ctr::Ctr;
use ctr_cases::effect::{Failure, WriteOutcome, WriteReport};
use ctr_cases::plan::Settings;
use ctr_cases::retry::{Deadline, RetryPolicy};
use ctr_cases::salesforce::auth::BoxFuture;
use ctr_cases::salesforce::wire::parse_token_response;
use ctr_cases::salesforce::{
    CredentialProvider, ErrorClass, Grant, SalesforceClient, SalesforceSettings,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use support::fake_salesforce::{self as fake, FakeOptions, FakeSalesforce, RecordedRequest};
use support::{fixtures, moto};

const API_VERSION: &str = "v62.0";
const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const COLLECTIONS_PATH: &str = "/services/data/v62.0/composite/sobjects";
/// The password (+ security token) after a rotation.
const ROTATED_PASSWORD: &str = "rotated-pw-and-new-security-token";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn settings(login_url: &str, grant: Grant) -> SalesforceSettings {
    SalesforceSettings {
        login_url: login_url.to_owned(),
        allowed_hosts: Default::default(),
        jwt_audience: None,
        grant: Some(grant),
        api_version: API_VERSION.into(),
        external_id_field: fake::EXTERNAL_ID_FIELD.into(),
        version_field: "Amazon_Connect_Last_Update__c".into(),
        batch_size: 200,
        max_in_flight: 5,
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            request_timeout: Duration::from_secs(10),
            min_request_time: Duration::from_millis(50),
        },
        login_cooldown: Duration::from_secs(300),
        assignment: Default::default(),
        org_check: None,
        org_check_retry: Duration::from_secs(60),
    }
}

fn secret(text: &str) -> Option<SecretString> {
    Some(SecretString::from(text.to_owned()))
}

fn password_credentials() -> Credentials {
    Credentials {
        client_id: fake::CLIENT_ID.into(),
        client_secret: secret(fake::CLIENT_SECRET),
        username: Some(fake::USERNAME.into()),
        password: secret(fake::PASSWORD),
        private_key: None,
        login_url: None,
    }
}

fn jwt_credentials(private_key_pem: &str) -> Credentials {
    Credentials {
        client_id: fake::CLIENT_ID.into(),
        client_secret: None,
        username: Some(fake::USERNAME.into()),
        password: None,
        private_key: secret(private_key_pem),
        login_url: None,
    }
}

fn client(fake: &FakeSalesforce, grant: Grant, source: CredentialSource) -> SalesforceClient {
    SalesforceClient::new(settings(&fake.base_url, grant), source).expect("client builds")
}

fn static_client(fake: &FakeSalesforce, grant: Grant, creds: Credentials) -> SalesforceClient {
    client(fake, grant, CredentialSource::Static(creds))
}

fn case_from(ctr_json: String) -> CaseRecord {
    let ctr = Ctr::from_json(ctr_json).expect("the fixture CTR decodes");
    let pipeline = Settings::default();
    let outcome = classify::classify(&ctr, &pipeline.classify);
    case::build(&ctr, &outcome, &pipeline.mapping)
}

/// The Case for the recorded dropped call (ContactId [`fixtures::DROPPED_CONTACT_ID`]).
fn dropped_case() -> CaseRecord {
    case_from(fixtures::dropped_ctr())
}

/// The Case for a dropped call of test contact `n`.
fn dropped_case_for(n: u64) -> CaseRecord {
    case_from(fixtures::dropped_ctr_for(
        &fixtures::contact_uuid(n),
        &fixtures::caller_number(n),
        "2024-05-01T10:00:00Z",
    ))
}

async fn upsert(client: &SalesforceClient, records: &[CaseRecord]) -> WriteReport {
    client
        .write_cases(records, Deadline::after(Duration::from_secs(30)))
        .await
}

/// The Case id of every outcome; panics with the outcomes if one failed.
fn upserted_ids(report: &WriteReport) -> Vec<String> {
    report
        .outcomes
        .iter()
        .map(|o| match o {
            WriteOutcome::Written { id, .. } | WriteOutcome::Unchanged { id } => id.clone(),
            WriteOutcome::Failed(e) => panic!("expected every Case upserted, got {e:?}"),
            WriteOutcome::Skipped => panic!("expected every Case upserted, one was skipped"),
            WriteOutcome::Recorded => panic!("expected every Case upserted, one was recorded"),
        })
        .collect()
}

/// The one error every outcome failed with; panics if any record was written or errors differ.
fn common_failure(report: &WriteReport) -> Failure {
    let errors: Vec<&Failure> = report
        .outcomes
        .iter()
        .map(|o| match o {
            WriteOutcome::Failed(e) => e,
            WriteOutcome::Written { id, .. } | WriteOutcome::Unchanged { id } => {
                panic!("expected a failure, Case {id} was written")
            }
            WriteOutcome::Skipped => panic!("expected a failure, a Case was skipped"),
            WriteOutcome::Recorded => panic!("expected a failure, a Case was recorded"),
        })
        .collect();
    assert!(!errors.is_empty(), "no outcomes");
    assert!(errors.iter().all(|e| *e == errors[0]), "{errors:?}");
    errors[0].clone()
}

fn token_requests(fake: &FakeSalesforce) -> Vec<RecordedRequest> {
    fake.org
        .requests()
        .into_iter()
        .filter(RecordedRequest::is_token_request)
        .collect()
}

fn data_requests(fake: &FakeSalesforce) -> Vec<RecordedRequest> {
    fake.org
        .requests()
        .into_iter()
        .filter(|r| !r.is_token_request())
        .collect()
}

/// The form of a token request as sorted `(key, value)` pairs.
fn sorted_form(request: &RecordedRequest) -> Vec<(String, String)> {
    let mut form = request.form();
    form.sort();
    form
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = expected
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    pairs.sort();
    pairs
}

fn form_value(request: &RecordedRequest, key: &str) -> Option<String> {
    request
        .form()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// Checks what every token request must look like: a form-encoded POST with nothing in the
/// query string and no `Authorization` header.
fn assert_token_request_shape(request: &RecordedRequest) {
    assert_eq!(request.method, "POST");
    assert_eq!(request.query, None, "credentials must not be in the URL");
    let content_type = request.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/x-www-form-urlencoded"),
        "{content_type}"
    );
    assert_eq!(request.header("authorization"), None);
}

/// The one token request the fake org received, checked for the shape every token request
/// must have ([`assert_token_request_shape`]).
fn only_token_request(fake: &FakeSalesforce) -> RecordedRequest {
    let mut tokens = token_requests(fake);
    assert_eq!(tokens.len(), 1);
    let token = tokens.remove(0);
    assert_token_request_shape(&token);
    token
}

fn jwt_key(name: &str) -> String {
    let path = fixtures::fixture_path(&format!("jwt/{name}"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

async fn start_jwt_fake() -> FakeSalesforce {
    fake::start_with(FakeOptions {
        jwt_public_key_pem: Some(jwt_key("public.pem")),
        ..FakeOptions::default()
    })
    .await
}

/// Upserts the recorded dropped call with the JWT bearer grant, signing with `private_key_pem`,
/// against a fake org that trusts tests/fixtures/jwt/public.pem.
async fn jwt_upsert(private_key_pem: &str) -> (FakeSalesforce, WriteReport) {
    let fake = start_jwt_fake().await;
    let client = static_client(&fake, Grant::JwtBearer, jwt_credentials(private_key_pem));
    let report = upsert(&client, &[dropped_case()]).await;
    (fake, report)
}

fn decode_segment(segment: &str) -> Value {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .expect("JWT segments are base64url without padding");
    serde_json::from_slice(&bytes).expect("JWT header and claims are JSON")
}

/// A pass-through HTTP relay on its own `127.0.0.1` port, standing for an instance host that
/// differs from the login host: the fake org names it as `instance_url`, so a data call that
/// went to the login host instead would never pass through it.
struct Relay {
    target: String,
    http: reqwest::Client,
    seen: Mutex<Vec<String>>,
}

/// Starts a fake org whose `instance_url` is a relay in front of it; returns the fake, the
/// relay's URL and the relay (for the `METHOD path` lines it forwarded).
async fn start_fake_behind_relay() -> (FakeSalesforce, String, Arc<Relay>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let relay_url = format!("http://{}", listener.local_addr().expect("local_addr"));
    let fake = fake::start_with(FakeOptions {
        instance_url: Some(relay_url.clone()),
        ..FakeOptions::default()
    })
    .await;
    let relay = Arc::new(Relay {
        target: fake.base_url.clone(),
        http: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("relay client"),
        seen: Mutex::new(Vec::new()),
    });
    let app = axum::Router::new()
        .fallback(relay_request)
        .with_state(relay.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (fake, relay_url, relay)
}

async fn relay_request(
    State(relay): State<Arc<Relay>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("relay: read the request body");
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    relay
        .seen
        .lock()
        .unwrap()
        .push(format!("{} {path}", parts.method));
    let mut headers = parts.headers;
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    let answer = relay
        .http
        .request(parts.method, format!("{}{path}", relay.target))
        .headers(headers)
        .body(body)
        .send()
        .await
        .expect("relay: forward to the fake org");
    let status = answer.status();
    let mut headers = answer.headers().clone();
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::TRANSFER_ENCODING);
    let bytes = answer.bytes().await.expect("relay: read the answer");
    (status, headers, bytes).into_response()
}

// ---------------------------------------------------------------------------------------------
// Grants
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn password_grant_posts_form_once_and_data_goes_to_instance_url() {
    let fake = fake::start().await;
    let client = static_client(&fake, Grant::Password, password_credentials());

    let report = upsert(&client, &[dropped_case()]).await;

    let ids = upserted_ids(&report);
    let stored = fake
        .org
        .case(fixtures::DROPPED_CONTACT_ID)
        .expect("Case stored");
    assert_eq!(stored["Id"], ids[0]);
    assert_eq!(report.token_requests, 1);
    assert_eq!(fake.org.token_requests(), 1);
    assert_eq!(fake.org.token_grants(), 1);

    let token = only_token_request(&fake);
    assert_eq!(
        sorted_form(&token),
        pairs(&[
            ("grant_type", "password"),
            ("client_id", fake::CLIENT_ID),
            ("client_secret", fake::CLIENT_SECRET),
            ("username", fake::USERNAME),
            ("password", fake::PASSWORD),
        ])
    );

    // The data call went to the instance URL the token answer named (for a local fake org,
    // only its own origin is allowed: see the next test).
    let data = data_requests(&fake);
    assert_eq!(data.len(), 1);
    assert_eq!(data[0].method, "POST");
    assert_eq!(data[0].path, COLLECTIONS_PATH);
    let authorization = data[0].header("authorization").expect("Authorization sent");
    let token = authorization
        .strip_prefix("Bearer ")
        .expect("a Bearer token");
    assert!(token.starts_with(fake::ORG_ID), "{authorization}");
}

/// See: issue "Security and privacy". A token endpoint answering with another host's
/// `instance_url` (here a relay on another loopback port, standing for a foreign host) must
/// not receive the bearer token or any call data: the client refuses it before any request,
/// as a systemic failure (held, never dead-lettered).
#[tokio::test]
async fn instance_url_on_another_origin_receives_nothing() {
    let (fake, relay_url, relay) = start_fake_behind_relay().await;
    let client = static_client(&fake, Grant::Password, password_credentials());

    let report = upsert(&client, &[dropped_case()]).await;

    let error = common_failure(&report);
    assert_eq!(error.code, "instance_url_refused", "{error:?}");
    assert_eq!(error.class, ErrorClass::Unavailable);
    assert!(report.systemic.is_some());
    assert!(
        relay.seen.lock().unwrap().is_empty(),
        "the relay at {relay_url} got a request"
    );
    assert!(data_requests(&fake).is_empty());
    assert_eq!(fake.org.case_count(), 0);
}

#[tokio::test]
async fn client_credentials_grant_sends_only_client_fields() {
    let fake = fake::start().await;
    let creds = Credentials {
        username: None,
        password: None,
        ..password_credentials()
    };
    let client = static_client(&fake, Grant::ClientCredentials, creds);

    let report = upsert(&client, &[dropped_case()]).await;

    upserted_ids(&report);
    assert!(fake.org.case(fixtures::DROPPED_CONTACT_ID).is_some());
    let token = only_token_request(&fake);
    assert_eq!(
        sorted_form(&token),
        pairs(&[
            ("grant_type", "client_credentials"),
            ("client_id", fake::CLIENT_ID),
            ("client_secret", fake::CLIENT_SECRET),
        ])
    );
}

#[tokio::test]
async fn jwt_bearer_grant_signs_a_short_lived_rs256_assertion() {
    let (fake, report) = jwt_upsert(&jwt_key("private.pem")).await;

    upserted_ids(&report);
    assert!(fake.org.case(fixtures::DROPPED_CONTACT_ID).is_some());
    assert_eq!(fake.org.token_grants(), 1);
    let token = only_token_request(&fake);
    let keys: Vec<String> = sorted_form(&token).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["assertion", "grant_type"]);
    assert_eq!(form_value(&token, "grant_type").as_deref(), Some(JWT_GRANT));

    let assertion = form_value(&token, "assertion").unwrap();
    let segments: Vec<&str> = assertion.split('.').collect();
    assert_eq!(segments.len(), 3, "{assertion}");
    let header = decode_segment(segments[0]);
    let claims = decode_segment(segments[1]);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["iss"], fake::CLIENT_ID);
    assert_eq!(claims["sub"], fake::USERNAME);
    assert_eq!(claims["aud"], fake.base_url.as_str());
    let now = chrono::Utc::now().timestamp();
    let exp = claims["exp"].as_i64().expect("numeric exp");
    assert!(exp > now && exp - now <= 180, "exp {exp}, now {now}");
}

#[tokio::test]
async fn jwt_signed_with_wrong_key_is_auth_rejected() {
    let (fake, report) = jwt_upsert(&jwt_key("other-private.pem")).await;

    let error = common_failure(&report);
    assert_eq!(error.class, ErrorClass::AuthRejected);
    assert_eq!(error.code, "invalid_grant");
    assert_eq!(fake.org.token_requests(), 1);
    assert_eq!(fake.org.token_grants(), 0);
    assert_eq!(fake.org.case_count(), 0);
}

#[tokio::test]
async fn jwt_key_that_is_not_pem_is_a_credentials_error_before_any_request() {
    let not_a_key = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC-not-a-pem-key";
    let (fake, report) = jwt_upsert(not_a_key).await;

    let error = common_failure(&report);
    // The code of `Error::Credentials` (the client reports failures as data).
    assert_eq!(
        error.code, "credentials_unavailable",
        "expected Error::Credentials, got {error:?}"
    );
    assert!(error.message.contains("PEM"), "{error:?}");
    assert!(!format!("{error:?}").contains(not_a_key), "{error:?}");
    assert_eq!(error.class, ErrorClass::AuthRejected);
    assert_eq!(report.token_requests, 0);
    assert!(fake.org.requests().is_empty(), "nothing may be sent");
}

// ---------------------------------------------------------------------------------------------
// Token endpoint errors
// ---------------------------------------------------------------------------------------------

/// Each documented token error ends every record as AuthRejected with the OAuth code, after
/// one token request, and its message names what to fix but no secret.
#[tokio::test]
async fn token_errors_fail_records_as_auth_rejected_with_a_fix_hint() {
    const WRONG_SECRET: &str = "wrong-consumer-secret-4711";
    struct Case {
        name: &'static str,
        reject_all: bool,
        credentials: Credentials,
        code: &'static str,
        hint: &'static str,
    }
    let cases = [
        Case {
            name: "rejected credentials",
            reject_all: true,
            credentials: password_credentials(),
            code: "invalid_grant",
            hint: "password + security token",
        },
        Case {
            name: "wrong client id",
            reject_all: false,
            credentials: Credentials {
                client_id: "not-the-consumer-key".into(),
                ..password_credentials()
            },
            code: "invalid_client_id",
            hint: "check client_id",
        },
        Case {
            name: "wrong client secret",
            reject_all: false,
            credentials: Credentials {
                client_secret: secret(WRONG_SECRET),
                ..password_credentials()
            },
            code: "invalid_client",
            hint: "check client_secret",
        },
    ];
    for case in cases {
        let fake = fake::start().await;
        fake.org.reject_credentials(case.reject_all);
        let client = static_client(&fake, Grant::Password, case.credentials);

        let report = upsert(&client, &[dropped_case(), dropped_case_for(1)]).await;

        let error = common_failure(&report);
        let name = case.name;
        assert_eq!(error.class, ErrorClass::AuthRejected, "{name}");
        assert_eq!(error.code, case.code, "{name}");
        assert_eq!(error.status, Some(400), "{name}");
        let shown = error.summary.clone();
        assert!(shown.contains(case.hint), "{name}: {shown}");
        let debug = format!("{error:?}");
        for secret in [fake::PASSWORD, fake::CLIENT_SECRET, WRONG_SECRET] {
            assert!(
                !shown.contains(secret) && !debug.contains(secret),
                "{name}: {debug}"
            );
        }
        assert_eq!(report.token_requests, 1, "{name}");
        assert_eq!(fake.org.token_requests(), 1, "{name}");
        assert!(
            data_requests(&fake).is_empty(),
            "{name}: no data call without a token"
        );
    }
}

/// The client cannot send an unknown grant type, so this checks the fake's answer to one
/// (raw HTTP) goes through the client's token-answer parser to the documented error.
#[tokio::test]
async fn unsupported_grant_answer_is_auth_rejected_naming_the_grant_setting() {
    let fake = fake::start().await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let answer = http
        .post(fake.token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", fake::CLIENT_ID),
            ("client_secret", fake::CLIENT_SECRET),
        ])
        .send()
        .await
        .expect("the fake answers");
    let status = answer.status().as_u16();
    let body = answer.bytes().await.unwrap();

    let error = parse_token_response(status, &body).unwrap_err();

    assert_eq!(status, 400);
    assert_eq!(error.code(), "unsupported_grant_type");
    assert_eq!(error.class(), ErrorClass::AuthRejected);
    assert!(
        error.to_string().contains("SALESFORCE_AUTH_FLOW="),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// Token cache
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn second_upsert_on_same_client_reuses_the_token() {
    let fake = fake::start().await;
    let client = static_client(&fake, Grant::Password, password_credentials());

    let first = upsert(&client, &[dropped_case_for(1)]).await;
    let second = upsert(&client, &[dropped_case_for(2)]).await;

    upserted_ids(&first);
    upserted_ids(&second);
    assert_eq!((first.token_requests, second.token_requests), (1, 0));
    assert_eq!(fake.org.token_grants(), 1);
    assert_eq!(fake.org.token_requests(), 1);
    assert_eq!(fake.org.case_count(), 2);
}

#[tokio::test]
async fn expired_token_is_refreshed_once_and_the_case_lands() {
    let fake = fake::start().await;
    let client = static_client(&fake, Grant::Password, password_credentials());
    upserted_ids(&upsert(&client, &[dropped_case_for(1)]).await);
    fake.org.expire_all_tokens();

    let report = upsert(&client, &[dropped_case_for(2)]).await;

    upserted_ids(&report);
    assert!(fake.org.case(&fixtures::contact_uuid(2)).is_some());
    assert_eq!(report.token_requests, 1);
    // The 401 answer and the retried call.
    assert_eq!(report.api_calls, 2);
    assert_eq!(fake.org.token_grants(), 2);
    assert_eq!(fake.org.token_requests(), 2);
}

/// Eight calls that all meet the expired token share one refresh (single-flight).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_upserts_after_expiry_share_one_refresh() {
    const CALLS: u64 = 8;
    let fake = fake::start().await;
    let client = Arc::new(static_client(
        &fake,
        Grant::Password,
        password_credentials(),
    ));
    upserted_ids(&upsert(&client, &[dropped_case_for(100)]).await);
    let stale = data_requests(&fake)[0]
        .header("authorization")
        .unwrap()
        .to_owned();
    fake.org.expire_all_tokens();
    // Every data call waits before it is answered, so the calls overlap on the expired token.
    fake.org.set_latency(Some(Duration::from_millis(200)));
    let start = Arc::new(tokio::sync::Barrier::new(CALLS as usize));

    let tasks: Vec<_> = (1..=CALLS)
        .map(|n| {
            let client = client.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                upsert(&client, &[dropped_case_for(n)]).await
            })
        })
        .collect();
    let mut token_requests = 0;
    for task in tasks {
        let report = task.await.expect("task completes");
        upserted_ids(&report);
        token_requests += report.token_requests;
    }

    assert_eq!(fake.org.token_grants(), 2);
    assert_eq!(fake.org.token_requests(), 2);
    assert_eq!(token_requests, 1);
    let stale_calls = data_requests(&fake)
        .iter()
        .filter(|r| r.header("authorization") == Some(stale.as_str()))
        .count();
    assert!(
        stale_calls >= 3,
        "the calls did not overlap on the expired token ({stale_calls} used it, 1 is the warm-up)"
    );
    for n in 1..=CALLS {
        assert!(
            fake.org.case(&fixtures::contact_uuid(n)).is_some(),
            "Case {n}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Credential rotation
// ---------------------------------------------------------------------------------------------

/// A warm container holds the old password; after rotation the first grant is refused, the
/// secret is read again once, and the second grant (with the new password) succeeds.
#[tokio::test]
async fn rotated_secret_is_reread_once_and_the_case_lands() {
    let moto = moto::start().await;
    let arn = moto
        .create_secret("ctr-cases/rotation", &fixtures::secret_json(fake::PASSWORD))
        .await;
    let fake = fake::start().await;
    let source = CredentialSource::secrets_manager(moto.secretsmanager().await, arn.clone());
    let client = client(&fake, Grant::Password, source);
    upserted_ids(&upsert(&client, &[dropped_case_for(1)]).await);

    fake.org.set_accepted_password(ROTATED_PASSWORD);
    moto.put_secret_value(&arn, &fixtures::secret_json(ROTATED_PASSWORD))
        .await;
    fake.org.expire_all_tokens();
    fake.org.clear_requests();
    let report = upsert(&client, &[dropped_case_for(2)]).await;

    upserted_ids(&report);
    assert!(fake.org.case(&fixtures::contact_uuid(2)).is_some());
    assert_eq!(report.token_requests, 2);
    let passwords: Vec<Option<String>> = token_requests(&fake)
        .iter()
        .map(|r| form_value(r, "password"))
        .collect();
    assert_eq!(
        passwords,
        [
            Some(fake::PASSWORD.to_owned()),
            Some(ROTATED_PASSWORD.to_owned())
        ]
    );
    assert_eq!(fake.org.token_grants(), 2);
}

/// A `login_url` in the secret wins over the configured one (here a closed port).
#[tokio::test]
async fn secret_login_url_overrides_the_configured_login_url() {
    let moto = moto::start().await;
    let fake = fake::start().await;
    let mut credentials: Value =
        serde_json::from_str(&fixtures::secret_json(fake::PASSWORD)).unwrap();
    credentials["login_url"] = json!(format!("{}/", fake.base_url));
    let arn = moto
        .create_secret("ctr-cases/login-url", &credentials.to_string())
        .await;
    let source = CredentialSource::secrets_manager(moto.secretsmanager().await, arn);
    let closed_port = "http://127.0.0.1:1";
    let client = SalesforceClient::new(settings(closed_port, Grant::Password), source).unwrap();

    let report = upsert(&client, &[dropped_case()]).await;

    upserted_ids(&report);
    assert_eq!(fake.org.token_grants(), 1);
    assert!(fake.org.case(fixtures::DROPPED_CONTACT_ID).is_some());
}

/// When the re-read secret is refused too, the client gives up after that one extra grant.
#[tokio::test]
async fn secret_still_refused_after_reread_fails_after_one_grant() {
    let moto = moto::start().await;
    let arn = moto
        .create_secret("ctr-cases/refused", &fixtures::secret_json(fake::PASSWORD))
        .await;
    let fake = fake::start().await;
    fake.org.reject_credentials(true);
    let source = CredentialSource::secrets_manager(moto.secretsmanager().await, arn);
    let client = client(&fake, Grant::Password, source);

    let report = upsert(&client, &[dropped_case()]).await;

    let error = common_failure(&report);
    assert_eq!(error.class, ErrorClass::AuthRejected);
    assert_eq!(error.code, "invalid_grant");
    // See: issue "Outages lose nothing". The secret was re-read but had not changed, so the
    // same refused credentials are not tried again (refused logins lock the user out).
    assert_eq!(report.token_requests, 1);
    assert_eq!(fake.org.token_requests(), 1);
    assert_eq!(fake.org.case_count(), 0);
}

/// Credentials the test changes between calls, as a secret that was rotated and re-read.
#[derive(Debug, Clone)]
struct Rotating(Arc<Mutex<Credentials>>);

impl Rotating {
    fn set(&self, change: impl FnOnce(&mut Credentials)) {
        change(&mut self.0.lock().unwrap());
    }
}

impl CredentialProvider for Rotating {
    fn current(&self) -> BoxFuture<'_, Result<Credentials, String>> {
        let credentials = self.0.lock().unwrap().clone();
        Box::pin(async move { Ok(credentials) })
    }

    fn reload(&self) -> BoxFuture<'_, Result<Option<Credentials>, String>> {
        let credentials = self.0.lock().unwrap().clone();
        Box::pin(async move { Ok(Some(credentials)) })
    }
}

// See: issue "A contact writes only its own Case", item 8.
/// A secret whose login URL now names another org: the cached token of the old org is dropped
/// before the next call, so no Case lands in the old org.
#[tokio::test]
async fn changed_login_url_in_the_secret_drops_the_cached_token() {
    let old_org = fake::start().await;
    let new_org = fake::start().await;
    let mut credentials = password_credentials();
    credentials.login_url = Some(old_org.base_url.clone());
    let source = Rotating(Arc::new(Mutex::new(credentials)));
    let client =
        SalesforceClient::new(settings(&old_org.base_url, Grant::Password), source.clone())
            .unwrap();
    upserted_ids(&upsert(&client, &[dropped_case_for(1)]).await);
    assert_eq!(old_org.org.token_grants(), 1);
    // A new password alone keeps the token: who signs in where did not change.
    source.set(|c| c.password = secret(ROTATED_PASSWORD));
    let report = upsert(&client, &[dropped_case_for(3)]).await;
    upserted_ids(&report);
    assert_eq!(report.token_requests, 0);

    new_org.org.set_accepted_password(ROTATED_PASSWORD);
    source.set(|c| c.login_url = Some(new_org.base_url.clone()));
    old_org.org.clear_requests();
    let report = upsert(&client, &[dropped_case_for(2)]).await;

    upserted_ids(&report);
    assert_eq!(report.token_requests, 1);
    assert_eq!(new_org.org.token_grants(), 1);
    assert!(new_org.org.case(&fixtures::contact_uuid(2)).is_some());
    assert!(old_org.org.case(&fixtures::contact_uuid(2)).is_none());
    assert!(
        old_org.org.requests().is_empty(),
        "the old org's token was used after the rotation"
    );
}

/// The same through Secrets Manager: a warm container reads the secret again once it is older
/// than the source's maximum age, sees the new login URL and drops the old org's token, while
/// that token still works.
#[tokio::test]
async fn secret_moved_to_another_org_is_picked_up_while_the_old_token_works() {
    let moto = moto::start().await;
    let old_org = fake::start().await;
    let new_org = fake::start().await;
    let secret_for = |org: &FakeSalesforce| {
        let mut credentials: Value =
            serde_json::from_str(&fixtures::secret_json(fake::PASSWORD)).unwrap();
        credentials["login_url"] = json!(org.base_url);
        credentials.to_string()
    };
    let arn = moto
        .create_secret("ctr-cases/moved", &secret_for(&old_org))
        .await;
    let source = CredentialSource::secrets_manager(moto.secretsmanager().await, arn.clone())
        .with_max_age(Duration::ZERO);
    let client = client(&old_org, Grant::Password, source);
    upserted_ids(&upsert(&client, &[dropped_case_for(1)]).await);

    moto.put_secret_value(&arn, &secret_for(&new_org)).await;
    let report = upsert(&client, &[dropped_case_for(2)]).await;

    upserted_ids(&report);
    assert_eq!(report.token_requests, 1);
    assert!(new_org.org.case(&fixtures::contact_uuid(2)).is_some());
    assert!(old_org.org.case(&fixtures::contact_uuid(2)).is_none());
    assert_eq!(old_org.org.token_grants(), 1);
}

/// A secret with another client id: the cached token is not used; the next call signs in with
/// the new client id (which this org does not know, so the grant is refused).
#[tokio::test]
async fn changed_client_id_in_the_secret_drops_the_cached_token() {
    let fake = fake::start().await;
    let source = Rotating(Arc::new(Mutex::new(password_credentials())));
    let client =
        SalesforceClient::new(settings(&fake.base_url, Grant::Password), source.clone()).unwrap();
    upserted_ids(&upsert(&client, &[dropped_case_for(1)]).await);

    source.set(|c| c.client_id = "another-connected-app".into());
    fake.org.clear_requests();
    let report = upsert(&client, &[dropped_case_for(2)]).await;

    assert_eq!(common_failure(&report).class, ErrorClass::AuthRejected);
    let client_ids: Vec<Option<String>> = token_requests(&fake)
        .iter()
        .map(|r| form_value(r, "client_id"))
        .collect();
    assert_eq!(client_ids, [Some("another-connected-app".to_owned())]);
    assert!(data_requests(&fake).is_empty(), "the old token was used");
    assert!(fake.org.case(&fixtures::contact_uuid(2)).is_none());
}

#[tokio::test]
async fn static_credentials_refused_after_rotation_fail_after_one_grant() {
    let fake = fake::start().await;
    fake.org.set_accepted_password(ROTATED_PASSWORD);
    let client = static_client(&fake, Grant::Password, password_credentials());

    let report = upsert(&client, &[dropped_case(), dropped_case_for(1)]).await;

    let error = common_failure(&report);
    assert_eq!(error.class, ErrorClass::AuthRejected);
    assert_eq!(error.code, "invalid_grant");
    assert_eq!(report.token_requests, 1);
    assert_eq!(fake.org.token_requests(), 1);
    assert!(data_requests(&fake).is_empty());
}
