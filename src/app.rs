//! The state a warm container keeps between invocations, built once at cold start from the
//! configuration: the Salesforce client (token cache, connection pool), where dead letters go,
//! and the pipeline settings.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lambda_runtime::Diagnostic;

use crate::aws::callback_queue::{CallbackQueue, CallbackTarget};
use crate::aws::connect::TaskStarter;
use crate::aws::queue::{DeadLetterSink, RecentDeadLetters, RememberingSink};
use crate::aws::secrets::CredentialSource;
use crate::callback_function::CallbackState;
use crate::config::{Config, ConfigError, CredentialsConfig};
use crate::plan::Settings;
use crate::retry::{Deadline, DeadlineSource};
use crate::salesforce::{self, SalesforceClient};

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
    pub settings: Settings,
    /// Salesforce client (holds the token cache and connection pool).
    pub salesforce: SalesforceClient,
    /// Where dead letters go.
    pub dead_letters: DeadLetterSink,
    /// Where callback requests go (`CALLBACK_TASKS`, `CALLBACK_QUEUE_URL`).
    pub callbacks: CallbackTarget,
    /// Records this container already dead-lettered (so a redelivery is not sent twice).
    pub recent_dead_letters: RecentDeadLetters,
    /// EMF output.
    pub metrics: MetricsTarget,
    /// Time kept in reserve before the invocation deadline.
    pub deadline_margin: Duration,
    /// How long an invocation held for a Salesforce outage waits before answering (capped by
    /// the deadline), so the event source mapping's retries do not spin.
    pub outage_hold: Duration,
    /// The contact-flow function's answer time (`FLOW_TIMEOUT_MS`).
    pub flow_timeout: Duration,
    /// The function's own timeout (`FUNCTION_TIMEOUT_SECONDS`): its time budget when the Runtime
    /// API gives no plausible deadline. `None`: the entry point's default.
    pub function_timeout: Option<Duration>,
    /// Set once this container warned that the Runtime API's deadline was not plausible.
    pub unknown_deadline_warned: AtomicBool,
}

/// Why the shared state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The Salesforce client could not be built.
    #[error("could not set up the Salesforce client: {0}")]
    Salesforce(#[from] salesforce::Error),
    /// The callback function started without callbacks configured.
    #[error(
        "the callback function needs CALLBACK_TASKS=true with CALLBACK_QUEUE_URL, \
         CONNECT_INSTANCE_ID and CALLBACK_TASK_CONTACT_FLOW_ID or CALLBACK_TASK_TEMPLATE_ID"
    )]
    CallbacksOff,
}

impl From<StartError> for Diagnostic {
    fn from(err: StartError) -> Self {
        let error_type = match err {
            StartError::Config(_) => "ConfigError",
            StartError::Salesforce(_) => "SalesforceSetupError",
            StartError::CallbacksOff => "ConfigError",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: err.to_string(),
        }
    }
}

/// How long a Lambda's init phase may spend signing in and checking the org (Lambda allows
/// 10 s for the whole init phase).
pub const INIT_CHECK_BUDGET: Duration = Duration::from_secs(6);

/// A Lambda binary's `main`: logs from the environment, then `serve` until the container is
/// frozen for good. A start failure is one `cannot start` error line and a failing exit, which
/// Lambda reports as an init error (and Connect takes the block's error branch).
pub async fn run_lambda<F>(serve: F) -> std::process::ExitCode
where
    F: std::future::Future<Output = Result<(), lambda_runtime::Error>>,
{
    crate::logging::init_from_env();
    match serve.await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Builds the callback function's state: the Salesforce client, the Connect client (SDK
/// retries off: a throttled request returns through the queue) and the callback dead-letter
/// queue.
///
/// # Errors
/// [`StartError::CallbacksOff`] without `CALLBACK_TASKS`; [`StartError::Salesforce`] when the
/// HTTP client cannot be built.
pub async fn callback_state(config: Config) -> Result<CallbackState, StartError> {
    let Some(callbacks) = config.callbacks.clone() else {
        return Err(StartError::CallbacksOff);
    };
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(12))
        .build();
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await;
    let connect_config = aws_sdk_connect::config::Builder::from(&aws)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let credentials = match config.credentials {
        CredentialsConfig::Inline(c) => CredentialSource::Static(c),
        CredentialsConfig::SecretArn(arn) => {
            CredentialSource::secrets_manager(aws_sdk_secretsmanager::Client::new(&aws), arn)
        }
    };
    let dead_letters = callbacks
        .dead_letter_queue_url
        .map(|queue_url| CallbackQueue {
            client: aws_sdk_sqs::Client::new(&aws),
            queue_url,
        });
    Ok(CallbackState {
        salesforce: SalesforceClient::new(config.salesforce, credentials)?,
        tasks: TaskStarter::new(
            aws_sdk_connect::Client::from_conf(connect_config),
            callbacks.tasks,
            callbacks.tasks_per_second,
        ),
        dead_letters,
        task_id_field: callbacks.task_id_field,
        state_field: callbacks.state_field,
        deadline_margin: config.deadline_margin,
        metrics: Some((config.metrics_namespace, config.function_name)),
    })
}

impl AppState {
    /// The state of the stream and flow functions, built in the init phase from the process
    /// environment: the configuration, the clients, then a sign-in and the org check (within
    /// [`INIT_CHECK_BUDGET`]), so the first invocation makes only its own calls.
    ///
    /// # Errors
    /// As [`AppState::from_config`].
    pub async fn start() -> Result<Self, StartError> {
        let state = AppState::from_config(Config::from_env()?).await?;
        state
            .salesforce
            .check_org_now(Deadline::after(INIT_CHECK_BUDGET))
            .await;
        Ok(state)
    }

    /// Builds the shared state: AWS clients (only those configured), the Salesforce client.
    ///
    /// # Errors
    /// [`StartError::Salesforce`] when the HTTP client cannot be built.
    pub async fn from_config(config: Config) -> Result<Self, StartError> {
        let needs_aws = matches!(config.credentials, CredentialsConfig::SecretArn(_))
            || config.dead_letter_queue_url.is_some()
            || config.callbacks.is_some();
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
        match config.salesforce.grant {
            Some(grant) => tracing::info!(grant = grant.name(), "Salesforce OAuth grant"),
            None => tracing::info!(
                grant = "inferred from the secret's credentials at the first sign-in",
                "Salesforce OAuth grant"
            ),
        }
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
        let callbacks = match &config.callbacks {
            Some(callbacks) => CallbackTarget::Queue(CallbackQueue {
                client: aws_sdk_sqs::Client::new(aws.as_ref().expect("loaded above")),
                queue_url: callbacks.queue_url.clone(),
            }),
            None => CallbackTarget::Off,
        };
        Ok(AppState {
            settings: config.pipeline,
            callbacks,
            salesforce: SalesforceClient::new(config.salesforce, credentials)?,
            dead_letters,
            recent_dead_letters: RecentDeadLetters::default(),
            metrics: MetricsTarget {
                namespace: config.metrics_namespace,
                function_name: config.function_name,
                enabled: true,
            },
            deadline_margin: config.deadline_margin,
            outage_hold: config.outage_hold,
            flow_timeout: config.flow_timeout,
            function_timeout: config.function_timeout,
            unknown_deadline_warned: AtomicBool::new(false),
        })
    }

    /// The deadline of an invocation whose Runtime API deadline is `runtime_deadline_ms`,
    /// keeping `margin` in reserve. When that deadline is not plausible (a local emulator's),
    /// the budget is `FUNCTION_TIMEOUT_SECONDS`, or `default_budget` without it; the first time
    /// in a container this logs a warning.
    pub fn invocation_deadline(
        &self,
        runtime_deadline_ms: u64,
        default_budget: Duration,
        margin: Duration,
    ) -> Deadline {
        let budget = self.function_timeout.unwrap_or(default_budget);
        let (deadline, source) = Deadline::from_lambda(runtime_deadline_ms, budget, margin);
        if source == DeadlineSource::OwnBudget
            && !self.unknown_deadline_warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                runtime_deadline_ms,
                budget_ms = budget.as_millis() as u64,
                "the Runtime API's deadline is not a time within the next 15 minutes (a local \
                 emulator sends a duration); using the function's own timeout instead \
                 (FUNCTION_TIMEOUT_SECONDS); warned once per container"
            );
        }
        deadline
    }

    /// The dead-letter sink, remembering what this container already stored.
    pub fn letters(&self) -> RememberingSink<'_> {
        RememberingSink {
            sink: &self.dead_letters,
            recent: &self.recent_dead_letters,
        }
    }
}
