//! The Salesforce client: Case writes that keep one Case per contact and never overwrite an
//! agent's work, with bounded retries.
//!
//! Per chunk of at most `batch_size` Cases (docs/cases.md, "The Case lifecycle"; the REST API Developer Guide, sObject Collections):
//! 1. **create** them all with one sObject Collections create. The external id field is
//!    unique, so a Case that already exists fails with `DUPLICATE_VALUE` on it: the signal that
//!    it exists (another writer may just have created it), never a permanent error.
//! 2. **read** the existing ones (and those the contact flow named by Id) with one Composite
//!    request holding one SOQL query: their Id, external id and stored version. A Case named
//!    by Id (a contact attribute, which customers can set) counts only when its external id is
//!    the contact's own ContactId or an earlier leg's ([`CaseRecord::owner_ids`]); otherwise
//!    the contact's own Case stands in for it (created first when its outcome files one).
//! 3. **update** only those whose stored version is older than the CTR's, with one Collections
//!    update of the kept-current fields and the version. The others are unchanged.
//!
//! So a new batch costs one call per chunk and a redelivered or updated one at most three. The
//! version guard lives in Salesforce (the Case's version field), so it holds across
//! invocations, containers and days. Nothing here knows about Kinesis.
//!
//! Every write ends as a [`WriteOutcome`] in a [`WriteReport`], the pipeline's own types: a
//! failure is kept as data ([`Error::to_failure`]). Tokens come from `auth::Auth`, which alone
//! signs in.

use std::borrow::Borrow;

use futures::StreamExt as _;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;

use super::assignment::{self, AssignmentRules};
use super::auth::{Auth, CredentialProvider, Grant, Login, Token};
use super::endpoint::HostPolicy;
use super::error::{Error, ErrorClass, TransportKind, request_timeout, transport_error};
use super::preflight::{self, CaseSchema, OrgRequirements};
use super::wire::{self, MAX_COLLECTION_RECORDS, RecordResult};
use crate::case::CaseRecord;
use crate::effect::{CaseSink, Failure, Lookups, WriteOutcome, WriteReport};
use crate::retry::{Deadline, RetryPolicy, jitter};

/// Where and how to call Salesforce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalesforceSettings {
    /// Login host for the token endpoint (`https://login.salesforce.com`, a sandbox or My Domain),
    /// checked against `allowed_hosts` before any request.
    pub login_url: String,
    /// The hosts credentials, tokens and data may go to.
    pub allowed_hosts: HostPolicy,
    /// JWT `aud`; derived from the login URL when `None`.
    pub jwt_audience: Option<String>,
    /// OAuth grant (`SALESFORCE_AUTH_FLOW`); `None`: the grant the credentials imply
    /// ([`Grant::infer`]).
    pub grant: Option<Grant>,
    /// Data API version, `vNN.0`.
    pub api_version: String,
    /// The Case external id field holding the ContactId (Unique, External ID).
    pub external_id_field: String,
    /// The Case DateTime field holding the CTR version the Case reflects.
    pub version_field: String,
    /// Records per collections request (1–200).
    pub batch_size: usize,
    /// Retry schedule and timeouts.
    pub retry: RetryPolicy,
    /// Most data requests (chunks) one write has in flight at once (1: one after another).
    pub max_in_flight: usize,
    /// No new login for this long after the token endpoint refused the credentials, unless
    /// they change.
    pub login_cooldown: Duration,
    /// Which Case assignment rule runs on create; a write to an existing Case never runs one.
    pub assignment: AssignmentRules,
    /// What the org must support, checked once per container before the first write
    /// ([`super::preflight`]); `None`: no check (lengths fall back to the mapping's).
    pub org_check: Option<OrgRequirements>,
    /// While the org check fails, the org is described again after this long.
    pub org_check_retry: Duration,
}

/// Calls made by one operation, for its report.
#[derive(Default)]
pub(super) struct CallCounts {
    pub(super) api_calls: AtomicU32,
    pub(super) token_requests: AtomicU32,
}

/// Where a pending Case is in the create → read → update sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// Create it (it is not known to exist).
    Create,
    /// Read the existing Case: by external id, or by the Id the contact flow gave.
    Read,
    /// Update the existing Case with this Id (`true`: it has no Contact link yet).
    Update(String, bool),
}

/// A Salesforce REST client shared by all invocations of a warm container.
#[derive(Debug)]
pub struct SalesforceClient {
    http: reqwest::Client,
    settings: SalesforceSettings,
    /// Tokens: the cache, the single-flight login and the cool-down after a refused login.
    auth: Auth,
    api_usage: Mutex<Option<(u64, u64)>>,
    /// Set while Salesforce is unavailable (the last write ended in a systemic failure): the
    /// next write probes with a single attempt.
    outage: AtomicBool,
    /// The org check's result (single flight: one describe at a time).
    org: tokio::sync::Mutex<OrgCheck>,
    /// Set once Salesforce answered a Case write or the org check: writes then send their
    /// chunks in parallel from the start.
    answered: AtomicBool,
}

/// Where the org check stands for this container.
#[derive(Debug, Default)]
enum OrgCheck {
    /// Not checked yet, or a rejection suggested the org changed.
    #[default]
    Unchecked,
    /// The org fits the configuration; its Case schema.
    Passed(Arc<CaseSchema>),
    /// The org did not fit at `at`.
    Failed { at: Instant, error: Error },
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
            auth: Auth::new(http.clone(), &settings, Box::new(credentials)),
            http,
            settings,
            api_usage: Mutex::new(None),
            outage: AtomicBool::new(false),
            org: tokio::sync::Mutex::new(OrgCheck::Unchecked),
            answered: AtomicBool::new(false),
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

    /// Signs in (or keeps the cached token) and says as whom: the grant, the user, the instance.
    ///
    /// # Errors
    /// The token request's [`Error`] (refused credentials, unreachable login host, …).
    pub async fn login(&self, deadline: Deadline) -> Result<Login, Error> {
        let token = self.token(deadline, &CallCounts::default()).await?;
        Ok(token.login())
    }

    /// Writes `records`: creates the new Cases, updates the kept-current fields of existing
    /// ones whose version is older, leaves the others unchanged (see the module doc). Retries
    /// transient failures with backoff until `max_attempts` or the deadline. Never fails as a
    /// whole: each record gets an outcome.
    pub async fn write_cases<R: Borrow<CaseRecord>>(
        &self,
        records: &[R],
        deadline: Deadline,
    ) -> WriteReport {
        let counts = CallCounts::default();
        let schema = match self.ensure_org(deadline, &counts).await {
            Ok(schema) => schema,
            Err(e) => {
                // Nothing can be written: hold every record, as in an outage.
                self.outage.store(
                    e.class() != ErrorClass::Configuration && e.class().stops_the_batch(),
                    Ordering::Relaxed,
                );
                let failure = e.to_failure();
                return WriteReport {
                    outcomes: vec![WriteOutcome::Failed(failure.clone()); records.len()],
                    api_calls: counts.api_calls.load(Ordering::Relaxed),
                    token_requests: counts.token_requests.load(Ordering::Relaxed),
                    quota_exhausted: e.class() == ErrorClass::QuotaExhausted,
                    systemic: Some(failure),
                    ..WriteReport::default()
                };
            }
        };
        let fitted: Vec<Cow<'_, CaseRecord>> = records
            .iter()
            .map(|r| fit_to_org(r.borrow(), schema.as_deref()))
            .collect();
        let report = self.write_fitted(&fitted, deadline, counts).await;
        let drifted = report.outcomes.iter().any(
            |o| matches!(o, WriteOutcome::Failed(f) if SCHEMA_CODES.contains(&f.code.as_str())),
        );
        if drifted {
            // The org may have changed since it was checked: check it again next time.
            self.forget_org_check().await;
        }
        report
    }

    /// [`SalesforceClient::write_cases`] for records already fitted to the org.
    async fn write_fitted<R: Borrow<CaseRecord>>(
        &self,
        records: &[R],
        deadline: Deadline,
        counts: CallCounts,
    ) -> WriteReport {
        let mut report = WriteReport::default();
        let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; records.len()];
        let mut last_error: Vec<Option<Error>> = vec![None; records.len()];
        let mut stages: Vec<Stage> = records
            .iter()
            .map(|r| {
                let r = r.borrow();
                if r.case_id.is_some() || !r.create {
                    Stage::Read
                } else {
                    Stage::Create
                }
            })
            .collect();
        // Records whose contact-flow-given Case Id was not found fall back to their external id.
        let mut by_external: Vec<bool> = records
            .iter()
            .map(|r| r.borrow().case_id.is_none())
            .collect();
        let policy = self.settings.retry;
        // While Salesforce is unavailable, each invocation probes: one attempt, one request.
        let probing = self.outage.load(Ordering::Relaxed);
        let max_attempts = if probing { 1 } else { policy.max_attempts };
        let chunk_size = self.settings.batch_size.clamp(1, MAX_COLLECTION_RECORDS);
        let request_failure: Mutex<Option<Error>> = Mutex::new(None);
        let mut attempt = 0;
        'attempts: loop {
            let pending: Vec<usize> = (0..records.len())
                .filter(|&i| outcomes[i].is_none())
                .collect();
            if pending.is_empty() {
                break;
            }
            attempt += 1;
            if attempt > 1 {
                let delay = policy.delay(attempt - 1, jitter());
                if attempt > max_attempts || !deadline.allows(delay + policy.min_request_time) {
                    // Requests that still failed as a whole after the bounded retries:
                    // Salesforce is unreachable or failing, not one record.
                    report.systemic = request_failure
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take()
                        .as_ref()
                        .map(Error::to_failure);
                    break;
                }
                *request_failure.lock().unwrap_or_else(|e| e.into_inner()) = None;
                tokio::time::sleep(delay).await;
                report.resent += pending.len() as u32;
            }
            // Each chunk runs create → read → update on its own state; up to `max_in_flight`
            // chunks (so data requests) at once, sharing the token and the deadline.
            let attempt_state = AttemptState::default();
            let runs: Vec<ChunkRun<'_>> = pending
                .chunks(chunk_size)
                .map(|chunk| ChunkRun {
                    records: chunk.iter().map(|&i| records[i].borrow()).collect(),
                    global: chunk.to_vec(),
                    stages: chunk.iter().map(|&i| stages[i].clone()).collect(),
                    by_external: chunk.iter().map(|&i| by_external[i]).collect(),
                    outcomes: vec![None; chunk.len()],
                    last_error: vec![None; chunk.len()],
                })
                .collect();
            let in_flight = if probing {
                1
            } else {
                self.settings.max_in_flight.max(1)
            };
            // Futures are lazy: each starts when `buffer_unordered` polls it, at most
            // `in_flight` at a time.
            // Until Salesforce has answered this container once, one chunk goes first: a cold
            // container meeting an outage (quota gone, credentials refused) spends one call.
            let mut runs = runs.into_iter();
            let mut done: Vec<(ChunkRun<'_>, Result<(), Error>)> = Vec::new();
            if (probing || !self.answered.load(Ordering::Relaxed))
                && let Some(first) = runs.next()
            {
                done.push(
                    self.run_chunk(
                        first,
                        deadline,
                        &counts,
                        &request_failure,
                        &attempt_state,
                        probing,
                    )
                    .await,
                );
            }
            let chunk_writes: Vec<_> = runs
                .map(|run| {
                    self.run_chunk(
                        run,
                        deadline,
                        &counts,
                        &request_failure,
                        &attempt_state,
                        probing,
                    )
                })
                .collect();
            let rest: Vec<(ChunkRun<'_>, Result<(), Error>)> = futures::stream::iter(chunk_writes)
                .buffer_unordered(in_flight)
                .collect()
                .await;
            done.extend(rest);
            if attempt_state.answered.load(Ordering::Relaxed) {
                self.answered.store(true, Ordering::Relaxed);
            }
            let mut stopped: Option<Error> = None;
            for (run, result) in done {
                for (k, &i) in run.global.iter().enumerate() {
                    stages[i] = run.stages[k].clone();
                    by_external[i] = run.by_external[k];
                    if let Some(outcome) = &run.outcomes[k] {
                        outcomes[i] = Some(outcome.clone());
                    }
                    if let Some(error) = &run.last_error[k] {
                        last_error[i] = Some(error.clone());
                    }
                }
                if let Err(e) = result {
                    stopped.get_or_insert(e);
                }
            }
            if let Some(e) = stopped {
                // Quota gone, credentials refused, Salesforce unusable: nothing else will work
                // in this invocation; no new request started, everything left is reported
                // for retry.
                report.quota_exhausted |= e.class() == ErrorClass::QuotaExhausted;
                let failure = e.to_failure();
                for outcome in outcomes.iter_mut().filter(|o| o.is_none()) {
                    *outcome = Some(WriteOutcome::Failed(failure.clone()));
                }
                report.systemic = Some(failure);
                break 'attempts;
            }
        }
        report.outcomes = outcomes
            .into_iter()
            .zip(last_error)
            .map(|(outcome, error)| {
                outcome.unwrap_or_else(|| {
                    WriteOutcome::Failed(error.unwrap_or(Error::DeadlineReached).to_failure())
                })
            })
            .collect();
        report.api_calls = counts.api_calls.load(Ordering::Relaxed);
        report.token_requests = counts.token_requests.load(Ordering::Relaxed);
        self.outage
            .store(report.systemic.is_some(), Ordering::Relaxed);
        report
    }

    /// One chunk's create → read → update, unless the attempt already stopped (then its
    /// records stay pending). `Err`: a failure that stops the batch.
    async fn run_chunk<'a>(
        &self,
        mut run: ChunkRun<'a>,
        deadline: Deadline,
        counts: &CallCounts,
        request_failure: &Mutex<Option<Error>>,
        attempt: &AttemptState,
        probing: bool,
    ) -> (ChunkRun<'a>, Result<(), Error>) {
        if !attempt.may_start(probing) {
            return (run, Ok(()));
        }
        let all: Vec<usize> = (0..run.records.len()).collect();
        let step = Step {
            records: &run.records,
            chunk: &all,
            deadline,
            counts,
            request_failure,
            attempt,
        };
        let result = async {
            self.create_step(
                &step,
                &mut run.stages,
                &mut run.outcomes,
                &mut run.last_error,
            )
            .await?;
            if attempt.stopped() {
                return Ok(());
            }
            let fell_back = self
                .read_step(
                    &step,
                    &mut run.stages,
                    &mut run.by_external,
                    &mut run.outcomes,
                    &mut run.last_error,
                )
                .await?;
            if !fell_back.is_empty() && !attempt.stopped() {
                // Records whose named Case was not theirs: file their own Case now, and read
                // it if another writer filed it first.
                let own = Step {
                    chunk: &fell_back,
                    ..step
                };
                self.create_step(
                    &own,
                    &mut run.stages,
                    &mut run.outcomes,
                    &mut run.last_error,
                )
                .await?;
                self.read_step(
                    &own,
                    &mut run.stages,
                    &mut run.by_external,
                    &mut run.outcomes,
                    &mut run.last_error,
                )
                .await?;
            }
            if attempt.stopped() {
                return Ok(());
            }
            self.update_step(
                &step,
                &mut run.stages,
                &mut run.outcomes,
                &mut run.last_error,
            )
            .await
        }
        .await;
        if result.is_err() {
            attempt.stop.store(true, Ordering::Relaxed);
        }
        (run, result)
    }

    /// Checks the org against the configuration once per container (again after
    /// `org_check_retry` while it fails, and after a rejection that suggests the org changed):
    /// the org's Case schema, `None` without an org check.
    ///
    /// # Errors
    /// [`Error::ConfigurationInvalid`] when the org does not fit, or the describe call's error.
    pub(super) async fn ensure_org(
        &self,
        deadline: Deadline,
        counts: &CallCounts,
    ) -> Result<Option<Arc<CaseSchema>>, Error> {
        let Some(requirements) = &self.settings.org_check else {
            return Ok(None);
        };
        let mut state = self.org.lock().await;
        match &*state {
            OrgCheck::Passed(schema) => return Ok(Some(schema.clone())),
            OrgCheck::Failed { at, error } if at.elapsed() < self.settings.org_check_retry => {
                return Err(error.clone());
            }
            _ => {}
        }
        let schema = match self.describe_case_counted(deadline, counts).await {
            Ok(schema) => schema,
            // Salesforce answered, and refused to describe Case to this user: no outage.
            Err(e) if matches!(e.class(), ErrorClass::Permanent | ErrorClass::NoAccess) => {
                let error = Error::ConfigurationInvalid {
                    problems: vec![format!(
                        "the integration user cannot describe Case ({e}): give it API Enabled \
                         and Read, Create and Edit on Case (permission set Ctr_Cases_Integration)"
                    )],
                };
                *state = OrgCheck::Failed {
                    at: Instant::now(),
                    error: error.clone(),
                };
                return Err(error);
            }
            Err(e) => return Err(e),
        };
        let problems = preflight::check(requirements, &schema);
        self.answered.store(true, Ordering::Relaxed);
        if problems.is_empty() {
            tracing::info!(fields = schema.fields().len(), "org check passed");
            let schema = Arc::new(schema);
            *state = OrgCheck::Passed(schema.clone());
            Ok(Some(schema))
        } else {
            let error = Error::ConfigurationInvalid {
                problems: problems.iter().map(ToString::to_string).collect(),
            };
            *state = OrgCheck::Failed {
                at: Instant::now(),
                error: error.clone(),
            };
            Err(error)
        }
    }

    /// Runs the org check now (at cold start, in the init phase), so the first invocation
    /// makes no describe call. A failure is kept and reported by the first write.
    pub async fn check_org_now(&self, deadline: Deadline) {
        let counts = CallCounts::default();
        if let Err(e) = self.ensure_org(deadline, &counts).await {
            tracing::warn!(error = %e, error_code = e.code(), "org check at start failed");
        }
    }

    /// Forgets a passed org check, so the next write describes the org again.
    async fn forget_org_check(&self) {
        let mut state = self.org.lock().await;
        if matches!(*state, OrgCheck::Passed(_)) {
            *state = OrgCheck::Unchecked;
        }
    }

    /// The Case object as the integration user sees it (`GET /sobjects/Case/describe`).
    ///
    /// # Errors
    /// The call's [`Error`], or [`Error::InvalidResponse`] for an unreadable answer.
    pub async fn describe_case(&self, deadline: Deadline) -> Result<CaseSchema, Error> {
        self.describe_case_counted(deadline, &CallCounts::default())
            .await
    }

    async fn describe_case_counted(
        &self,
        deadline: Deadline,
        counts: &CallCounts,
    ) -> Result<CaseSchema, Error> {
        let path = format!(
            "/services/data/{}/sobjects/Case/describe",
            self.settings.api_version
        );
        let (status, bytes) = self
            .send(reqwest::Method::GET, &path, None, None, deadline, counts)
            .await?;
        if status != 200 {
            return Err(wire::parse_api_error(status, &bytes));
        }
        CaseSchema::parse(&bytes).map_err(|detail| Error::InvalidResponse { status, detail })
    }

    /// Runs a SOQL query (`GET /query?q=`) and returns its records.
    ///
    /// # Errors
    /// The call's [`Error`] (e.g. `INSUFFICIENT_ACCESS` for setup objects without the View
    /// Setup and Configuration permission).
    pub async fn query(
        &self,
        soql: &str,
        deadline: Deadline,
    ) -> Result<Vec<serde_json::Value>, Error> {
        let path = format!(
            "/services/data/{}/query?q={}",
            self.settings.api_version,
            wire::percent_encode_query(soql)
        );
        let counts = CallCounts::default();
        let (status, bytes) = self
            .send(reqwest::Method::GET, &path, None, None, deadline, &counts)
            .await?;
        if status != 200 {
            return Err(wire::parse_api_error(status, &bytes));
        }
        let answer: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| Error::InvalidResponse {
                status,
                detail: format!("unreadable query answer: {e}"),
            })?;
        match answer.get("records").and_then(serde_json::Value::as_array) {
            Some(records) => Ok(records.clone()),
            None => Err(Error::InvalidResponse {
                status,
                detail: "query answer without records".into(),
            }),
        }
    }

    /// Step 1: one collections create for the chunk's Cases not known to exist.
    async fn create_step<R: Borrow<CaseRecord>>(
        &self,
        step: &Step<'_, R>,
        stages: &mut [Stage],
        outcomes: &mut [Option<WriteOutcome>],
        last_error: &mut [Option<Error>],
    ) -> Result<(), Error> {
        let creates: Vec<usize> = step.select(outcomes, |i| stages[i] == Stage::Create);
        if creates.is_empty() {
            return Ok(());
        }
        let batch: Vec<&CaseRecord> = creates.iter().map(|&i| step.records[i].borrow()).collect();
        let body = wire::collections_create_body(
            &batch,
            &self.settings.external_id_field,
            &self.settings.version_field,
        );
        let Some(results) = self
            .collections_request(
                reqwest::Method::POST,
                &body,
                self.settings.assignment.on_create(),
                &creates,
                step,
                outcomes,
                last_error,
            )
            .await?
        else {
            return Ok(());
        };
        for (&i, result) in creates.iter().zip(results) {
            match result {
                RecordResult::Upserted { id, .. } => {
                    outcomes[i] = Some(WriteOutcome::Written { id, created: true });
                }
                RecordResult::Failed(e)
                    if wire::is_duplicate_external_id(&e, &self.settings.external_id_field) =>
                {
                    stages[i] = Stage::Read;
                }
                RecordResult::Failed(e) => fail_record(i, e, outcomes, last_error),
            }
        }
        Ok(())
    }

    /// Step 2: one Composite query for the chunk's existing Cases; decides update or unchanged.
    ///
    /// A Case named by Id (a contact attribute) is read with its external id and taken only
    /// when that is one of the record's [`CaseRecord::owner_ids`]; the contact's own Case is
    /// read in the same query, so a named Case that is not the contact's (or cannot be read)
    /// falls back to it at once. Returns the records that fell back and have no Case yet: the
    /// caller creates them.
    async fn read_step<R: Borrow<CaseRecord>>(
        &self,
        step: &Step<'_, R>,
        stages: &mut [Stage],
        by_external: &mut [bool],
        outcomes: &mut [Option<WriteOutcome>],
        last_error: &mut [Option<Error>],
    ) -> Result<Vec<usize>, Error> {
        let reads: Vec<usize> = step.select(outcomes, |i| stages[i] == Stage::Read);
        if reads.is_empty() {
            return Ok(Vec::new());
        }
        let record = |i: usize| -> &CaseRecord { step.records[i].borrow() };
        // Every record's own external id: for a Case named by Id, the fallback.
        let external_ids: Vec<&str> = reads
            .iter()
            .map(|&i| record(i).external_id.as_str())
            .collect();
        let ids: Vec<&str> = reads
            .iter()
            .filter(|&&i| !by_external[i])
            .filter_map(|&i| record(i).case_id.as_deref())
            .collect();
        let body = wire::existing_cases_body(
            &self.settings.api_version,
            &self.settings.external_id_field,
            &self.settings.version_field,
            &external_ids,
            &ids,
        );
        let path = wire::composite_path(&self.settings.api_version);
        let answer = self
            .call(
                reqwest::Method::POST,
                &path,
                &body,
                None,
                step.deadline,
                step.counts,
            )
            .await
            .and_then(|(status, bytes)| {
                wire::parse_existing_cases(
                    status,
                    &bytes,
                    &self.settings.external_id_field,
                    &self.settings.version_field,
                )
            });
        let existing = match answer {
            Ok(existing) => {
                step.attempt.answered.store(true, Ordering::Relaxed);
                existing
            }
            Err(e) => {
                return fail_request(
                    e,
                    &reads,
                    outcomes,
                    last_error,
                    step.request_failure,
                    step.attempt,
                )
                .map(|()| Vec::new());
            }
        };
        let mut to_create = Vec::new();
        for &i in &reads {
            let r = record(i);
            let own = |e: &&wire::ExistingCase| {
                e.external_id
                    .as_deref()
                    .is_some_and(|x| x.eq_ignore_ascii_case(r.external_id.as_str()))
            };
            let mut found = if by_external[i] {
                existing.iter().find(own)
            } else {
                // A Case named by a contact attribute is this contact's only when its external
                // id says so: attributes can come from customers.
                existing.iter().find(|e| {
                    r.case_id
                        .as_deref()
                        .is_some_and(|id| preflight::same_id(&e.id, id))
                        && e.external_id.as_deref().is_some_and(|x| r.owns(x))
                })
            };
            if found.is_none() && !by_external[i] {
                // The named Case is another contact's, or cannot be read (deleted, not shared):
                // it is never written. The contact's own Case stands in for it.
                tracing::warn!(
                    contact_id = %r.external_id,
                    "the Case named by the contact's case id attribute is not this contact's; using the contact's own Case"
                );
                by_external[i] = true;
                found = existing.iter().find(own);
                if found.is_none() && r.create {
                    stages[i] = Stage::Create;
                    to_create.push(i);
                    continue;
                }
            }
            match found {
                Some(e) => {
                    let newer = match (r.version, e.version) {
                        (Some(ours), Some(theirs)) => ours > theirs,
                        (Some(_), None) => true,
                        // A CTR without a version never replaces existing context.
                        (None, _) => false,
                    };
                    if newer {
                        stages[i] = Stage::Update(e.id.clone(), e.contact_id.is_none());
                    } else {
                        outcomes[i] = Some(WriteOutcome::Unchanged { id: e.id.clone() });
                    }
                }
                None if !r.create => {
                    // Its outcome files no Case, and it has none of its own: nothing to write.
                    outcomes[i] = Some(WriteOutcome::Skipped);
                }
                None => {
                    // The create said it exists (the unique index covers every Case) but the
                    // query cannot see it: the integration user may not read it (Private
                    // sharing after a rule or an agent took it). Final for this record: it
                    // must never hold up the shard.
                    fail_record(
                        i,
                        Error::CaseNotAccessible { access: "read" },
                        outcomes,
                        last_error,
                    );
                }
            }
        }
        Ok(to_create)
    }

    /// Step 3: one collections update of the kept-current fields of the chunk's older Cases.
    async fn update_step<R: Borrow<CaseRecord>>(
        &self,
        step: &Step<'_, R>,
        stages: &mut [Stage],
        outcomes: &mut [Option<WriteOutcome>],
        last_error: &mut [Option<Error>],
    ) -> Result<(), Error> {
        let mut updates: Vec<usize> =
            step.select(outcomes, |i| matches!(stages[i], Stage::Update(..)));
        // Two records of a batch may name the same Case (legs of one transferred contact): a
        // collections update may not name a record twice, so the newest version writes it.
        let mut newest: HashMap<String, usize> = HashMap::new();
        for &i in &updates {
            let Stage::Update(id, _) = &stages[i] else {
                continue;
            };
            let version = step.records[i].borrow().version;
            match newest.get(id) {
                Some(&j) if step.records[j].borrow().version >= version => {}
                _ => {
                    newest.insert(id.clone(), i);
                }
            }
        }
        updates.retain(|&i| {
            let Stage::Update(id, _) = &stages[i] else {
                return false;
            };
            if newest[id] == i {
                true
            } else {
                outcomes[i] = Some(WriteOutcome::Unchanged { id: id.clone() });
                false
            }
        });
        if updates.is_empty() {
            return Ok(());
        }
        let batch: Vec<wire::CaseUpdate<'_>> = updates
            .iter()
            .map(|&i| match &stages[i] {
                Stage::Update(id, unlinked) => (id.as_str(), step.records[i].borrow(), *unlinked),
                _ => unreachable!("selected above"),
            })
            .collect();
        let body = wire::collections_update_body(&batch, &self.settings.version_field);
        let Some(results) = self
            .collections_request(
                reqwest::Method::PATCH,
                &body,
                assignment::ON_UPDATE,
                &updates,
                step,
                outcomes,
                last_error,
            )
            .await?
        else {
            return Ok(());
        };
        for (&i, result) in updates.iter().zip(results) {
            match result {
                RecordResult::Upserted { id, .. } => {
                    outcomes[i] = Some(WriteOutcome::Written { id, created: false });
                }
                RecordResult::Failed(e) => fail_record(i, e, outcomes, last_error),
            }
        }
        Ok(())
    }

    /// One sObject Collections request (`method` with `body`) for the records at `affected`:
    /// each record's result in order, or `None` when the request failed as a whole and those
    /// records took its error (see [`fail_request`]).
    ///
    /// # Errors
    /// A failure that stops the batch (quota, auth, deadline).
    // The step's state is three parallel slices owned by `write_fitted`; bundling them would
    // only move the count elsewhere.
    #[allow(clippy::too_many_arguments)]
    async fn collections_request<R>(
        &self,
        method: reqwest::Method,
        body: &impl serde::Serialize,
        auto_assign: &str,
        affected: &[usize],
        step: &Step<'_, R>,
        outcomes: &mut [Option<WriteOutcome>],
        last_error: &mut [Option<Error>],
    ) -> Result<Option<Vec<RecordResult>>, Error> {
        let path = wire::collections_path(&self.settings.api_version);
        let answer = self
            .call(
                method,
                &path,
                body,
                Some(auto_assign),
                step.deadline,
                step.counts,
            )
            .await
            .and_then(|(status, bytes)| {
                wire::parse_collections_response(status, &bytes, affected.len())
            });
        match answer {
            Ok(results) => {
                step.attempt.answered.store(true, Ordering::Relaxed);
                Ok(Some(results))
            }
            Err(e) => fail_request(
                e,
                affected,
                outcomes,
                last_error,
                step.request_failure,
                step.attempt,
            )
            .map(|()| None),
        }
    }

    /// One data call (JSON body), refreshing the token once on 401. `auto_assign`: the
    /// `Sforce-Auto-Assign` header of a request that writes Cases (every write says whether
    /// an assignment rule runs: absent means TRUE).
    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &impl serde::Serialize,
        auto_assign: Option<&str>,
        deadline: Deadline,
        counts: &CallCounts,
    ) -> Result<(u16, Vec<u8>), Error> {
        let body = serde_json::to_vec(body).map_err(|e| Error::InvalidResponse {
            status: 0,
            detail: format!("could not encode the request body: {e}"),
        })?;
        self.send(method, path, Some(body), auto_assign, deadline, counts)
            .await
    }

    /// One data call with an optional JSON body, refreshing the token once on 401.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        auto_assign: Option<&str>,
        deadline: Deadline,
        counts: &CallCounts,
    ) -> Result<(u16, Vec<u8>), Error> {
        let mut refreshed = false;
        loop {
            let token = self.token(deadline, counts).await?;
            let timeout = request_timeout(&self.settings.retry, deadline)?;
            let url = format!("{}{path}", token.instance_url.trim_end_matches('/'));
            counts.api_calls.fetch_add(1, Ordering::Relaxed);
            let mut request = self
                .http
                .request(method.clone(), url)
                .bearer_auth(token.access_token.expose_secret())
                .header(reqwest::header::ACCEPT, "application/json")
                .timeout(timeout);
            if let Some(body) = &body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            if let Some(value) = auto_assign {
                request = request.header(assignment::HEADER, value);
            }
            let response = request.send().await.map_err(transport_error)?;
            let status = response.status().as_u16();
            if let Some(usage) = response
                .headers()
                .get("sforce-limit-info")
                .and_then(|v| v.to_str().ok())
                .and_then(wire::parse_limit_info)
            {
                *self.api_usage.lock().unwrap_or_else(|e| e.into_inner()) = Some(usage);
            }
            let bytes = response.bytes().await.map_err(transport_error)?.to_vec();
            if status == 401 && !refreshed {
                let error = wire::parse_api_error(status, &bytes);
                if error.class() == ErrorClass::AuthExpired {
                    self.auth.expired(&token);
                    refreshed = true;
                    continue;
                }
            }
            return Ok((status, bytes));
        }
    }

    /// A token from `Auth` (the cached one, or a new login), counted in `counts`.
    pub(super) async fn token(
        &self,
        deadline: Deadline,
        counts: &CallCounts,
    ) -> Result<Arc<Token>, Error> {
        self.auth.token(deadline, &counts.token_requests).await
    }
}

/// One chunk of an attempt, with its own state (positions `global` in the write's records).
struct ChunkRun<'a> {
    records: Vec<&'a CaseRecord>,
    global: Vec<usize>,
    stages: Vec<Stage>,
    by_external: Vec<bool>,
    outcomes: Vec<Option<WriteOutcome>>,
    last_error: Vec<Option<Error>>,
}

/// What the chunks of one attempt share: whether to start new requests.
#[derive(Default)]
struct AttemptState {
    /// A failure stopped the batch: no new request starts.
    stop: AtomicBool,
    /// Some request of this attempt was answered.
    answered: AtomicBool,
    /// Some request of this attempt failed as a whole with a retryable error.
    failed: AtomicBool,
}

impl AttemptState {
    /// Whether a chunk may start: not after a stop, and not while every request of the attempt
    /// so far failed as a whole (Salesforce failing, not one record: the rest wait for the
    /// backoff); while probing an outage, not after any failure.
    fn may_start(&self, probing: bool) -> bool {
        let failed = self.failed.load(Ordering::Relaxed);
        let answered = self.answered.load(Ordering::Relaxed);
        !self.stopped() && !(failed && (probing || !answered))
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// The chunk a step works on, with what every step needs.
struct Step<'a, R> {
    records: &'a [R],
    chunk: &'a [usize],
    deadline: Deadline,
    counts: &'a CallCounts,
    /// The last request of this attempt that failed as a whole with a retryable error.
    request_failure: &'a Mutex<Option<Error>>,
    /// What the attempt's chunks share.
    attempt: &'a AttemptState,
}

impl<R> Step<'_, R> {
    /// The chunk's records still without an outcome that `wanted` selects.
    fn select(
        &self,
        outcomes: &[Option<WriteOutcome>],
        wanted: impl Fn(usize) -> bool,
    ) -> Vec<usize> {
        self.chunk
            .iter()
            .copied()
            .filter(|&i| outcomes[i].is_none() && wanted(i))
            .collect()
    }
}

/// A request-level failure for the records `affected`: retry them later, stop everything
/// (`Err`), or fail them for good.
fn fail_request(
    e: Error,
    affected: &[usize],
    outcomes: &mut [Option<WriteOutcome>],
    last_error: &mut [Option<Error>],
    request_failure: &Mutex<Option<Error>>,
    attempt: &AttemptState,
) -> Result<(), Error> {
    if e.class().stops_the_batch() {
        return Err(e);
    }
    if e.class().is_retryable() {
        attempt.failed.store(true, Ordering::Relaxed);
        *request_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.clone());
    }
    for &i in affected {
        fail_record(i, e.clone(), outcomes, last_error);
    }
    Ok(())
}

/// A per-record failure: retryable ones stay pending (with their last error), the others end.
fn fail_record(
    i: usize,
    e: Error,
    outcomes: &mut [Option<WriteOutcome>],
    last_error: &mut [Option<Error>],
) {
    if e.class().is_retryable() {
        last_error[i] = Some(e);
    } else {
        outcomes[i] = Some(WriteOutcome::Failed(e.to_failure()));
    }
}

/// Error codes that can mean the org changed since it was checked (a field removed or made
/// read-only, a picklist value deactivated, a new required field, a shorter field).
const SCHEMA_CODES: [&str; 5] = [
    "INVALID_FIELD",
    "INVALID_FIELD_FOR_INSERT_UPDATE",
    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
    "REQUIRED_FIELD_MISSING",
    "STRING_TOO_LONG",
];

/// `record` with every text value cut to the length the org gives its field (the record
/// itself when nothing is too long, or without a schema).
pub(super) fn fit_to_org<'a>(
    record: &'a CaseRecord,
    schema: Option<&CaseSchema>,
) -> Cow<'a, CaseRecord> {
    let Some(schema) = schema else {
        return Cow::Borrowed(record);
    };
    let too_long = |(name, value): (&String, &serde_json::Value)| {
        let text = value.as_str()?;
        let limit = schema.text_limit(name)?;
        (text.len() > limit && text.encode_utf16().count() > limit)
            .then(|| (name.clone(), crate::case::truncate(text, limit)))
    };
    let cut: Vec<(String, String)> = record.fields.iter().filter_map(too_long).collect();
    if cut.is_empty() {
        return Cow::Borrowed(record);
    }
    let mut fitted = record.clone();
    for (name, text) in cut {
        fitted.fields.insert(name, serde_json::Value::String(text));
    }
    Cow::Owned(fitted)
}

impl CaseSink for SalesforceClient {
    async fn find_customers(&self, numbers: &[&str], deadline: Deadline) -> Lookups {
        SalesforceClient::find_customers(self, numbers, deadline).await
    }

    async fn record_callback_states(
        &self,
        updates: &[(&str, &str)],
        field: &str,
        deadline: Deadline,
    ) -> Vec<Option<Failure>> {
        super::callbacks::record_states(self, updates, field, deadline).await
    }

    async fn write_cases(&self, cases: &[&CaseRecord], deadline: Deadline) -> WriteReport {
        SalesforceClient::write_cases(self, cases, deadline).await
    }
}
