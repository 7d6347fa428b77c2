//! The Salesforce client: batched, idempotent Case upserts with bounded retries.
//!
//! Every write is an sObject Collections upsert by the external id field (≤200 records = one API
//! call), so a retried request, a write applied but answered with 503, or a CTR redelivered days
//! later all leave one Case per ContactId. Nothing here knows about Kinesis.

use std::borrow::Borrow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::auth::{AuthFlow, CredentialProvider, Credentials, TokenCache, grant_form};
use super::error::{Error, ErrorClass, TransportKind};
use super::wire::{self, MAX_COLLECTION_RECORDS, RecordResult};
use crate::case::CaseRecord;
use crate::effect::{CaseSink, WriteOutcome, WriteReport};
use crate::retry::{Deadline, RetryPolicy, jitter};

/// Where and how to call Salesforce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalesforceSettings {
    /// Login host for the token endpoint (`https://login.salesforce.com`, a sandbox or My Domain).
    pub login_url: String,
    /// JWT `aud`; derived from the login URL when `None`.
    pub jwt_audience: Option<String>,
    /// OAuth flow.
    pub auth_flow: AuthFlow,
    /// Data API version, `vNN.0`.
    pub api_version: String,
    /// The Case external id field holding the ContactId.
    pub external_id_field: String,
    /// Records per collections request (1–200).
    pub batch_size: usize,
    /// Retry schedule and timeouts.
    pub retry: RetryPolicy,
}

/// What happened to one Case in [`SalesforceClient::upsert_cases`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpsertOutcome {
    /// Written.
    Upserted {
        /// Salesforce Case id.
        id: String,
        /// Whether the Case was created (else updated).
        created: bool,
    },
    /// Not written; `error.class()` says whether to dead-letter (permanent) or retry later.
    Failed(Error),
}

/// The outcome of an upsert call, with the counts metrics need.
#[derive(Debug, Default)]
pub struct UpsertReport {
    /// One outcome per input record, in order.
    pub outcomes: Vec<UpsertOutcome>,
    /// Data API calls made (each counts against the daily limit).
    pub api_calls: u32,
    /// Token endpoint calls made.
    pub token_requests: u32,
    /// Records sent again after a transient failure.
    pub retried_records: u32,
    /// Set when the daily API quota ran out.
    pub quota_exhausted: bool,
}

#[derive(Default)]
struct CallCounts {
    api_calls: AtomicU32,
    token_requests: AtomicU32,
}

/// A Salesforce REST client shared by all invocations of a warm container.
#[derive(Debug)]
pub struct SalesforceClient {
    http: reqwest::Client,
    settings: SalesforceSettings,
    credentials: Box<dyn CredentialProvider>,
    tokens: TokenCache,
    api_usage: Mutex<Option<(u64, u64)>>,
}

impl SalesforceClient {
    /// A client with its own HTTP connection pool.
    ///
    /// # Errors
    /// When the TLS backend cannot be initialised.
    pub fn new(
        settings: SalesforceSettings,
        credentials: impl CredentialProvider + 'static,
    ) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            // A thawed container may hold sockets the server closed long ago.
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(8)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ctr-cases/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Transport {
                kind: TransportKind::Connect,
                detail: format!("could not build the HTTP client: {e}"),
            })?;
        Ok(SalesforceClient {
            http,
            settings,
            credentials: Box::new(credentials),
            tokens: TokenCache::default(),
            api_usage: Mutex::new(None),
        })
    }

    /// The settings in use.
    pub fn settings(&self) -> &SalesforceSettings {
        &self.settings
    }

    /// The last `Sforce-Limit-Info` API usage seen (used, max).
    pub fn api_usage(&self) -> Option<(u64, u64)> {
        *self.api_usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Upserts `records` by the external id field, in collections of at most `batch_size`,
    /// retrying transient failures with backoff until `max_attempts` or the deadline. Never
    /// fails as a whole: each record gets an outcome.
    pub async fn upsert_cases<R: Borrow<CaseRecord>>(
        &self,
        records: &[R],
        deadline: Deadline,
    ) -> UpsertReport {
        let counts = CallCounts::default();
        let mut outcomes: Vec<Option<UpsertOutcome>> = vec![None; records.len()];
        let mut last_error: Vec<Option<Error>> = vec![None; records.len()];
        let mut pending: Vec<usize> = (0..records.len()).collect();
        let mut report = UpsertReport::default();
        let policy = self.settings.retry;
        let mut attempt = 0;
        'attempts: while !pending.is_empty() {
            attempt += 1;
            if attempt > 1 {
                report.retried_records += pending.len() as u32;
            }
            let mut still_pending = Vec::new();
            let chunk_size = self.settings.batch_size.clamp(1, MAX_COLLECTION_RECORDS);
            let mut chunks = pending.chunks(chunk_size);
            while let Some(chunk) = chunks.next() {
                let batch: Vec<&CaseRecord> = chunk.iter().map(|&i| records[i].borrow()).collect();
                match self.send_collection(&batch, deadline, &counts).await {
                    Ok(results) => {
                        for (&i, result) in chunk.iter().zip(results) {
                            match result {
                                RecordResult::Upserted { id, created } => {
                                    outcomes[i] = Some(UpsertOutcome::Upserted { id, created });
                                }
                                RecordResult::Failed(e) if e.class().is_retryable() => {
                                    last_error[i] = Some(e);
                                    still_pending.push(i);
                                }
                                RecordResult::Failed(e) => {
                                    outcomes[i] = Some(UpsertOutcome::Failed(e));
                                }
                            }
                        }
                    }
                    Err(e) if e.class().is_retryable() => {
                        for &i in chunk {
                            last_error[i] = Some(e.clone());
                        }
                        still_pending.extend_from_slice(chunk);
                    }
                    Err(e) => {
                        // Quota gone or credentials refused: nothing else will work in this
                        // invocation; stop calling and report everything left for retry.
                        // A permanent request-level error (NOT_FOUND on the external id
                        // field, JSON_PARSER_ERROR) fails this chunk only.
                        let stop = matches!(
                            e.class(),
                            ErrorClass::QuotaExhausted | ErrorClass::AuthRejected
                        );
                        report.quota_exhausted |= e.class() == ErrorClass::QuotaExhausted;
                        for &i in chunk {
                            outcomes[i] = Some(UpsertOutcome::Failed(e.clone()));
                        }
                        if stop {
                            for &i in chunks.flatten().chain(&still_pending) {
                                outcomes[i] = Some(UpsertOutcome::Failed(e.clone()));
                            }
                            pending.clear();
                            break 'attempts;
                        }
                    }
                }
            }
            pending = still_pending;
            if pending.is_empty() {
                break;
            }
            let delay = policy.delay(attempt, jitter());
            if attempt >= policy.max_attempts || !deadline.allows(delay + policy.min_request_time) {
                break;
            }
            tokio::time::sleep(delay).await;
        }
        for i in pending {
            let error = last_error[i].take().unwrap_or(Error::DeadlineReached);
            outcomes[i] = Some(UpsertOutcome::Failed(error));
        }
        report.outcomes = outcomes
            .into_iter()
            .map(|o| o.unwrap_or(UpsertOutcome::Failed(Error::DeadlineReached)))
            .collect();
        report.api_calls = counts.api_calls.load(Ordering::Relaxed);
        report.token_requests = counts.token_requests.load(Ordering::Relaxed);
        report
    }

    /// One collections upsert, refreshing the token once on 401.
    async fn send_collection(
        &self,
        batch: &[&CaseRecord],
        deadline: Deadline,
        counts: &CallCounts,
    ) -> Result<Vec<RecordResult>, Error> {
        let body = serde_json::to_vec(&wire::collections_upsert_body(
            batch.iter().copied(),
            &self.settings.external_id_field,
        ))
        .map_err(|e| Error::InvalidResponse {
            status: 0,
            detail: format!("could not encode the request body: {e}"),
        })?;
        let mut refreshed = false;
        loop {
            let token = self
                .tokens
                .get_or_fetch(|| self.fetch_token(deadline, counts))
                .await?;
            let timeout = self.request_timeout(deadline)?;
            let url = format!(
                "{}{}",
                token.instance_url.trim_end_matches('/'),
                wire::collections_upsert_path(
                    &self.settings.api_version,
                    &self.settings.external_id_field
                )
            );
            counts.api_calls.fetch_add(1, Ordering::Relaxed);
            let response = self
                .http
                .patch(url)
                .bearer_auth(token.access_token.expose_secret())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(reqwest::header::ACCEPT, "application/json")
                .body(body.clone())
                .timeout(timeout)
                .send()
                .await
                .map_err(transport_error)?;
            let status = response.status().as_u16();
            if let Some(usage) = response
                .headers()
                .get("sforce-limit-info")
                .and_then(|v| v.to_str().ok())
                .and_then(wire::parse_limit_info)
            {
                *self.api_usage.lock().unwrap_or_else(|e| e.into_inner()) = Some(usage);
            }
            let bytes = response.bytes().await.map_err(transport_error)?;
            match wire::parse_collections_response(status, &bytes, batch.len()) {
                Err(e) if e.class() == ErrorClass::AuthExpired && !refreshed => {
                    tracing::info!(
                        generation = token.generation,
                        "Salesforce session expired; refreshing the token once"
                    );
                    self.tokens.invalidate(token.generation);
                    refreshed = true;
                }
                other => return other,
            }
        }
    }

    fn request_timeout(&self, deadline: Deadline) -> Result<Duration, Error> {
        let policy = self.settings.retry;
        deadline
            .request_timeout(policy.request_timeout, policy.min_request_time)
            .ok_or(Error::DeadlineReached)
    }

    /// Gets a token; when the grant is refused, reads the credentials again once (they may have
    /// been rotated) and retries.
    async fn fetch_token(
        &self,
        deadline: Deadline,
        counts: &CallCounts,
    ) -> Result<(SecretString, String), Error> {
        let credentials = self
            .credentials
            .current()
            .await
            .map_err(Error::Credentials)?;
        match self.request_token(&credentials, deadline, counts).await {
            Err(e @ Error::AuthRejected { .. }) => {
                let reloaded = self
                    .credentials
                    .reload()
                    .await
                    .map_err(Error::Credentials)?;
                match reloaded {
                    Some(fresh) => {
                        tracing::warn!(
                            error_code = e.code(),
                            "Salesforce refused the grant; re-read the secret and trying once more"
                        );
                        self.request_token(&fresh, deadline, counts).await
                    }
                    None => Err(e),
                }
            }
            other => other,
        }
    }

    async fn request_token(
        &self,
        credentials: &Credentials,
        deadline: Deadline,
        counts: &CallCounts,
    ) -> Result<(SecretString, String), Error> {
        let login_url = credentials
            .login_url
            .as_deref()
            .unwrap_or(&self.settings.login_url)
            .trim_end_matches('/');
        if !is_allowed_login_url(login_url) {
            return Err(Error::Credentials(
                "login_url in the Salesforce secret must be an https:// URL".into(),
            ));
        }
        let audience = self
            .settings
            .jwt_audience
            .clone()
            .unwrap_or_else(|| default_jwt_audience(login_url));
        let now = chrono::Utc::now().timestamp();
        let form = grant_form(self.settings.auth_flow, credentials, &audience, now)?;
        let timeout = self.request_timeout(deadline)?;
        counts.token_requests.fetch_add(1, Ordering::Relaxed);
        let response = self
            .http
            .post(format!("{login_url}/services/oauth2/token"))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form.exposed())
            .timeout(timeout)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(transport_error)?;
        let token = wire::parse_token_response(status, &bytes)?;
        tracing::info!(
            flow = self.settings.auth_flow.name(),
            "signed in to Salesforce"
        );
        Ok((SecretString::from(token.access_token), token.instance_url))
    }
}

impl CaseSink for SalesforceClient {
    async fn write_cases(&self, cases: &[&CaseRecord], deadline: Deadline) -> WriteReport {
        let report = self.upsert_cases(cases, deadline).await;
        WriteReport {
            outcomes: report
                .outcomes
                .into_iter()
                .map(|outcome| match outcome {
                    UpsertOutcome::Upserted { id, created } => {
                        WriteOutcome::Written { id, created }
                    }
                    UpsertOutcome::Failed(e) => WriteOutcome::Failed(e.to_failure()),
                })
                .collect(),
            api_calls: report.api_calls,
            token_requests: report.token_requests,
            resent: report.retried_records,
            quota_exhausted: report.quota_exhausted,
        }
    }
}

/// Whether `url` may receive credentials: https, or plain http on the loopback interface only
/// (local testing).
pub fn is_allowed_login_url(url: &str) -> bool {
    let local = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| url.starts_with(p));
    let https = url
        .strip_prefix("https://")
        .is_some_and(|rest| !rest.is_empty() && !rest.contains(' '));
    https || local
}

/// The JWT audience for a login URL: sandboxes use test.salesforce.com, other Salesforce hosts
/// (including My Domain) login.salesforce.com, and any other host (a test fake) itself.
pub fn default_jwt_audience(login_url: &str) -> String {
    let host = login_url
        .split("://")
        .nth(1)
        .unwrap_or(login_url)
        .split(['/', ':'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if host == "test.salesforce.com" || host.ends_with(".sandbox.my.salesforce.com") {
        "https://test.salesforce.com".into()
    } else if host.ends_with("salesforce.com") {
        "https://login.salesforce.com".into()
    } else {
        login_url.trim_end_matches('/').to_owned()
    }
}

fn transport_error(err: reqwest::Error) -> Error {
    let kind = if err.is_timeout() {
        TransportKind::Timeout
    } else if err.is_connect() {
        TransportKind::Connect
    } else {
        TransportKind::Broken
    };
    // Without the URL: it is not secret, but the error text should stay short and stable.
    Error::Transport {
        kind,
        detail: err.without_url().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_audience_follows_login_host() {
        assert_eq!(
            default_jwt_audience("https://login.salesforce.com"),
            "https://login.salesforce.com"
        );
        assert_eq!(
            default_jwt_audience("https://acme.my.salesforce.com/"),
            "https://login.salesforce.com"
        );
        assert_eq!(
            default_jwt_audience("https://acme--uat.sandbox.my.salesforce.com"),
            "https://test.salesforce.com"
        );
        assert_eq!(
            default_jwt_audience("https://test.salesforce.com"),
            "https://test.salesforce.com"
        );
        assert_eq!(
            default_jwt_audience("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080"
        );
    }
}
