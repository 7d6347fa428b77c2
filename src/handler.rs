//! The Lambda handler: wires a Kinesis batch through plan (pure), Salesforce upsert and dead
//! letters (I/O), and report (pure).
//!
//! **Precondition:** the event source mapping must have `FunctionResponseTypes:
//! [ReportBatchItemFailures]`. Without it Lambda ignores the returned `batchItemFailures` and
//! records reported for retry are lost (template.yaml sets it).
//!
//! Every record ends in exactly one of: Case upserted, intentionally skipped, dead-lettered with
//! its reason, or reported for retry. Lambda checkpoints at the lowest reported sequence number.

use std::time::{Duration, Instant};

use aws_lambda_events::streams::KinesisEventResponse;
use lambda_runtime::{Diagnostic, LambdaEvent};

use crate::batch::{self, Action, BatchSummary, PlannedRecord, RecordReport, Step};
use crate::case::CaseRecord;
use crate::config::{Config, ConfigError, CredentialsConfig, PipelineConfig};
use crate::deadletter::{self, DeadLetterSink, RecentDeadLetters};
use crate::event::KinesisEnvelope;
use crate::metrics;
use crate::retry::Deadline;
use crate::salesforce::{self, ErrorClass, SalesforceClient, UpsertOutcome};
use crate::secrets::CredentialSource;

/// Where the per-batch EMF metrics line goes.
#[derive(Debug, Clone)]
pub struct MetricsTarget {
    /// CloudWatch namespace.
    pub namespace: String,
    /// The `FunctionName` dimension.
    pub function_name: String,
    /// Print EMF lines on stdout.
    pub enabled: bool,
}

/// State built once per cold start and shared by every invocation of a warm container.
#[derive(Debug)]
pub struct AppState {
    /// Classifier, Case policy and mapping.
    pub pipeline: PipelineConfig,
    /// Salesforce client (holds the token cache and connection pool).
    pub salesforce: SalesforceClient,
    /// Where dead letters go.
    pub dead_letters: DeadLetterSink,
    /// Records this container already dead-lettered (so a redelivery is not sent twice).
    pub recent_dead_letters: RecentDeadLetters,
    /// EMF output.
    pub metrics: MetricsTarget,
    /// Time kept in reserve before the invocation deadline.
    pub deadline_margin: Duration,
}

/// Why the Lambda could not start, or a batch could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The Salesforce client could not be built.
    #[error("could not set up the Salesforce client: {0}")]
    Salesforce(#[from] salesforce::Error),
    /// Records must be retried but have no sequence number to report, so the whole batch fails
    /// and Lambda retries all of it (upserts are idempotent).
    #[error(
        "{0} record(s) must be retried but have no sequenceNumber; failing the whole batch so Lambda retries it"
    )]
    UnreportableFailures(usize),
}

impl From<HandlerError> for Diagnostic {
    fn from(err: HandlerError) -> Self {
        let error_type = match err {
            HandlerError::Config(_) => "ConfigError",
            HandlerError::Salesforce(_) => "SalesforceSetupError",
            HandlerError::UnreportableFailures(_) => "Retryable",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: err.to_string(),
        }
    }
}

impl AppState {
    /// Builds the shared state: AWS clients (only those configured), the Salesforce client.
    ///
    /// # Errors
    /// [`HandlerError::Salesforce`] when the HTTP client cannot be built.
    pub async fn from_config(config: Config) -> Result<Self, HandlerError> {
        let needs_aws = matches!(config.credentials, CredentialsConfig::SecretArn(_))
            || config.dead_letter_queue_url.is_some();
        let aws = if needs_aws {
            // Bounded SDK calls: a hung Secrets Manager or SQS call must not eat the invocation.
            let timeouts = aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(5))
                .operation_timeout(Duration::from_secs(12))
                .build();
            Some(
                aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .timeout_config(timeouts)
                    .load()
                    .await,
            )
        } else {
            None
        };
        let credentials = match config.credentials {
            CredentialsConfig::Inline(c) => CredentialSource::Static(c),
            CredentialsConfig::SecretArn(arn) => CredentialSource::secrets_manager(
                aws_sdk_secretsmanager::Client::new(aws.as_ref().expect("loaded above")),
                arn,
            ),
        };
        let dead_letters = match config.dead_letter_queue_url {
            Some(queue_url) => DeadLetterSink::Sqs {
                client: aws_sdk_sqs::Client::new(aws.as_ref().expect("loaded above")),
                queue_url,
            },
            None => DeadLetterSink::Disabled,
        };
        Ok(AppState {
            pipeline: config.pipeline,
            salesforce: SalesforceClient::new(config.salesforce, credentials)?,
            dead_letters,
            recent_dead_letters: RecentDeadLetters::default(),
            metrics: MetricsTarget {
                namespace: config.metrics_namespace,
                function_name: std::env::var("AWS_LAMBDA_FUNCTION_NAME")
                    .unwrap_or_else(|_| "ctr-cases".into()),
                enabled: true,
            },
            deadline_margin: config.deadline_margin,
        })
    }
}

/// The result of one batch.
#[derive(Debug)]
pub struct BatchOutcome {
    /// One report per record, in event order.
    pub reports: Vec<RecordReport>,
    /// Counts.
    pub summary: BatchSummary,
    /// The Lambda response: the records to retry.
    pub response: KinesisEventResponse,
}

/// The Lambda entry point for one invocation.
///
/// # Errors
/// Only [`HandlerError::UnreportableFailures`]: every other failure is per record.
pub async fn handle(
    state: &AppState,
    event: LambdaEvent<KinesisEnvelope>,
) -> Result<KinesisEventResponse, HandlerError> {
    let started = Instant::now();
    let deadline = Deadline::from_lambda(event.context.deadline, state.deadline_margin);
    let outcome = process_batch(state, &event.payload, deadline).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    log_summary(&outcome.summary, latency_ms);
    if state.metrics.enabled {
        let line = metrics::emf_line(
            &state.metrics.namespace,
            &state.metrics.function_name,
            chrono::Utc::now().timestamp_millis(),
            &outcome.summary,
            latency_ms,
        );
        println!("{line}");
    }
    let unreportable = outcome
        .reports
        .iter()
        .filter(|r| r.action == Action::Retry && r.sequence_number.is_empty())
        .count();
    if unreportable > 0 {
        return Err(HandlerError::UnreportableFailures(unreportable));
    }
    Ok(outcome.response)
}

fn log_summary(summary: &BatchSummary, latency_ms: u64) {
    tracing::info!(
        records = summary.records,
        dropped = summary.outcomes_starting_with("dropped"),
        happy_path = summary.outcomes_starting_with("happy_path"),
        poison = summary.outcomes_starting_with("poison"),
        outcomes = %serde_json::to_string(&summary.outcomes).unwrap_or_default(),
        cases_upserted = summary.count(Action::UpsertCase),
        cases_created = summary.cases_created,
        skipped = summary.count(Action::None),
        dead_lettered = summary.count(Action::DeadLetter),
        retry = summary.count(Action::Retry),
        salesforce_api_calls = summary.salesforce_api_calls,
        token_requests = summary.token_requests,
        latency_ms,
        "batch processed"
    );
}

/// Runs a batch: plan, upsert the Cases, dead-letter what can never succeed, report the rest
/// for retry. Never fails as a whole.
pub async fn process_batch(
    state: &AppState,
    envelope: &KinesisEnvelope,
    deadline: Deadline,
) -> BatchOutcome {
    let planned = batch::plan(envelope, &state.pipeline);
    let (case_indices, cases): (Vec<usize>, Vec<&CaseRecord>) = planned
        .iter()
        .filter_map(|p| Some((p.index, p.case()?)))
        .unzip();
    let mut upsert = if cases.is_empty() {
        salesforce::UpsertReport::default()
    } else {
        state.salesforce.upsert_cases(&cases, deadline).await
    };
    if upsert.quota_exhausted {
        tracing::error!(
            records = cases.len(),
            "Salesforce daily API quota (TotalRequests) is exhausted: Cases not written are \
             reported for retry; raise the org's API limit or wait for the rolling 24 h window"
        );
    }
    let mut upserts: Vec<Option<UpsertOutcome>> = vec![None; planned.len()];
    for (index, outcome) in case_indices
        .into_iter()
        .zip(std::mem::take(&mut upsert.outcomes))
    {
        upserts[index] = Some(outcome);
    }

    let mut reports = Vec::with_capacity(planned.len());
    let mut auth_error_logged = false;
    for p in &planned {
        let record = &envelope.records[p.index];
        let report = match (&p.step, upserts[p.index].take()) {
            (Step::Poison(e), _) => {
                send_dead_letter(
                    state,
                    p,
                    batch::dead_letter(record, p, "poison_record", e.into()),
                    deadline,
                )
                .await
            }
            (Step::Case(..), Some(UpsertOutcome::Upserted { id, created })) => RecordReport {
                case_id: Some(id),
                created: Some(created),
                ..RecordReport::new(p, Action::UpsertCase)
            },
            (Step::Case(..), Some(UpsertOutcome::Failed(e)))
                if e.class() == ErrorClass::Permanent =>
            {
                send_dead_letter(
                    state,
                    p,
                    batch::dead_letter(record, p, "salesforce_rejected", (&e).into()),
                    deadline,
                )
                .await
            }
            (Step::Case(..), Some(UpsertOutcome::Failed(e))) => {
                if e.class() == ErrorClass::AuthRejected && !auth_error_logged {
                    auth_error_logged = true;
                    tracing::error!(error = %e, "cannot sign in to Salesforce; records are reported for retry");
                }
                retry_report(p, e.code())
            }
            (Step::Case(..), None) => retry_report(p, "not_attempted"),
            (Step::NoCase(_) | Step::Superseded, _) => RecordReport::new(p, Action::None),
        };
        log_record(&report);
        reports.push(report);
    }

    let mut response = KinesisEventResponse::default();
    for r in reports.iter().filter(|r| r.action == Action::Retry) {
        if !r.sequence_number.is_empty() {
            response.add_failure(r.sequence_number.clone());
        }
    }
    let mut summary = BatchSummary::from_reports(&reports);
    summary.salesforce_api_calls = upsert.api_calls;
    summary.token_requests = upsert.token_requests;
    summary.retried_in_invocation = upsert.retried_records;
    summary.quota_exhausted = upsert.quota_exhausted;
    BatchOutcome {
        reports,
        summary,
        response,
    }
}

fn retry_report(p: &PlannedRecord, code: &str) -> RecordReport {
    RecordReport {
        error: Some(code.to_owned()),
        ..RecordReport::new(p, Action::Retry)
    }
}

/// The longest a dead-letter send may take.
const DEAD_LETTER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a dead-letter send always gets, even past the deadline (taken from the safety margin).
const MIN_DEAD_LETTER_TIME: Duration = Duration::from_secs(1);

async fn send_dead_letter(
    state: &AppState,
    p: &PlannedRecord,
    letter: crate::deadletter::DeadLetter,
    deadline: Deadline,
) -> RecordReport {
    let code = letter.error.code.clone();
    let dead_lettered = |code: String| RecordReport {
        error: Some(code),
        ..RecordReport::new(p, Action::DeadLetter)
    };
    let key = deadletter::record_key(letter.shard_id.as_deref(), &letter.sequence_number);
    if state.recent_dead_letters.contains(&key) {
        tracing::debug!(sequence_number = %p.sequence_number, "record already dead-lettered");
        return dead_lettered(code);
    }
    // Dead letters go out after the upserts, into the safety margin if need be, but never
    // past it: a record whose letter could not be sent in time is reported for retry.
    let budget = deadline
        .remaining()
        .map_or(DEAD_LETTER_TIMEOUT, |left| left.max(MIN_DEAD_LETTER_TIME))
        .min(DEAD_LETTER_TIMEOUT);
    let sent = tokio::time::timeout(budget, state.dead_letters.send(&letter))
        .await
        .unwrap_or_else(|_| {
            Err(deadletter::DeadLetterSendError {
                code: "timed out".into(),
            })
        });
    match sent {
        Ok(()) => {
            state.recent_dead_letters.insert(key);
            dead_lettered(code)
        }
        Err(e) => {
            tracing::warn!(
                sequence_number = %p.sequence_number,
                error_code = %code,
                reason = %e,
                "dead letter not sent; reporting the record for retry"
            );
            retry_report(p, &code)
        }
    }
}

fn log_record(r: &RecordReport) {
    let contact_id = r.contact_id.as_deref().unwrap_or("-");
    let error = r.error.as_deref().unwrap_or("");
    match r.action {
        Action::None => tracing::debug!(
            sequence_number = %r.sequence_number, contact_id, outcome = r.outcome,
            action = r.action.name(), "record skipped"
        ),
        Action::UpsertCase => tracing::info!(
            sequence_number = %r.sequence_number, contact_id, outcome = r.outcome,
            action = r.action.name(), created = r.created.unwrap_or(false), "case upserted"
        ),
        Action::DeadLetter => tracing::error!(
            sequence_number = %r.sequence_number, contact_id, outcome = r.outcome,
            action = r.action.name(), error_code = error, "record dead-lettered"
        ),
        Action::Retry => tracing::warn!(
            sequence_number = %r.sequence_number, contact_id, outcome = r.outcome,
            action = r.action.name(), error_code = error, "record reported for retry"
        ),
    }
}
