//! Configuration from environment variables.
//!
//! The library reads the environment only here ([`Config::from_env`]); the binaries' `main`
//! functions also read it for the log settings ([`crate::logging::settings`] takes a lookup).
//! `from_env` runs once at cold start. It calls [`Config::from_lookup`], which tests call with
//! a map (no `set_var`). Every problem is reported at once, each naming its variable and what
//! to set it to; a bad configuration fails init, never a panic.
//!
//! This module depends on what it configures (the plan settings, the Salesforce client,
//! credentials), never the reverse.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;

use crate::callback::{MAX_DELAY, TaskSettings, TaskTarget};
use crate::case::{
    CaseMapping, CustomerLinking, DEFAULT_CASE_ID_ATTRIBUTE, DEFAULT_EXTERNAL_ID_FIELD,
    DEFAULT_VERSION_FIELD, FieldUse, WriteMode,
};
use crate::classify::{CasePolicy, ClassifyConfig};
use crate::plan::Settings;
use crate::privacy::{AttributeFilter, DEFAULT_EXCLUDE, PatternList};
use crate::retry::RetryPolicy;
use crate::salesforce::endpoint::{HostPolicy, LoginUrl};
use crate::salesforce::preflight::OrgRequirements;
use crate::salesforce::{AssignmentRules, Credentials, Grant, SalesforceSettings};

/// One bad setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The environment variable.
    pub variable: &'static str,
    /// What is wrong and what to set.
    pub message: String,
}

/// Every problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError(pub Vec<Problem>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration:")?;
        for p in &self.0 {
            write!(f, " {}: {};", p.variable, p.message)?;
        }
        Ok(())
    }
}

impl ConfigError {
    /// Whether `variable` is among the problems.
    pub fn mentions(&self, variable: &str) -> bool {
        self.0.iter().any(|p| p.variable == variable)
    }
}

/// Where the Salesforce credentials come from.
#[derive(Debug, Clone)]
pub enum CredentialsConfig {
    /// A Secrets Manager secret (JSON with lower snake case keys).
    SecretArn(String),
    /// `SALESFORCE_*` variables.
    Inline(Credentials),
}

/// The Lambda's whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Classifier, policy, mapping.
    pub pipeline: Settings,
    /// Salesforce endpoint, grant and retry settings.
    pub salesforce: SalesforceSettings,
    /// Credentials source.
    pub credentials: CredentialsConfig,
    /// SQS queue for dead letters; without it they are reported for retry instead.
    pub dead_letter_queue_url: Option<String>,
    /// CloudWatch metrics namespace for EMF lines.
    pub metrics_namespace: String,
    /// Time kept in reserve before the Lambda deadline.
    pub deadline_margin: Duration,
    /// The function's name (`AWS_LAMBDA_FUNCTION_NAME`, set by Lambda), for metrics.
    pub function_name: String,
    /// `OUTAGE_HOLD_MS`: how long an invocation held for an outage waits before answering.
    pub outage_hold: Duration,
    /// `FLOW_TIMEOUT_MS`: the contact-flow function answers within this (Connect allows 8 s).
    pub flow_timeout: Duration,
    /// `FUNCTION_TIMEOUT_SECONDS`: the function's Lambda timeout, its time budget when the
    /// Runtime API gives no plausible deadline (a local emulator). `None`: each function's own
    /// default applies.
    pub function_timeout: Option<Duration>,
    /// Callback tasks for dropped callers (`CALLBACK_TASKS=true`); `None`: off.
    pub callbacks: Option<CallbackConfig>,
    /// What the org must support for the mapping, whatever `SALESFORCE_ORG_CHECK` says (the
    /// Lambda checks it only when that is on; `ctr-cases check` always does).
    pub org_requirements: OrgRequirements,
}

/// The supervisor field holding Connect's disconnect reason (`SUPERVISOR_FIELDS`).
pub const DISCONNECT_REASON_FIELD: &str = "Amazon_Connect_Disconnect_Reason__c";

/// The supervisor field linking to the contact in Amazon Connect (`SUPERVISOR_FIELDS`).
pub const CONTACT_LINK_FIELD: &str = "Amazon_Connect_Contact_Link__c";

/// The default Case field holding the callback task's ContactId (`CALLBACK_TASK_ID_FIELD`).
pub const DEFAULT_CALLBACK_TASK_ID_FIELD: &str = "Amazon_Connect_Callback_Task_Id__c";

/// Callback tasks: where the stream function queues requests and how the callback function
/// starts them.
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackConfig {
    /// `CALLBACK_QUEUE_URL`: the SQS FIFO queue of callback requests.
    pub queue_url: String,
    /// `CALLBACK_DEAD_LETTER_QUEUE_URL`: where permanently rejected requests go (the callback
    /// queue's own dead-letter queue, FIFO); without it they return until SQS moves them.
    pub dead_letter_queue_url: Option<String>,
    /// `CONNECT_INSTANCE_ID`, `CALLBACK_TASK_CONTACT_FLOW_ID` or `CALLBACK_TASK_TEMPLATE_ID`,
    /// `CALLBACK_TASK_DELAY_SECONDS`.
    pub tasks: TaskSettings,
    /// `CALLBACK_TASKS_PER_SECOND`: StartTaskContact calls per second, per function instance
    /// (default 2, Connect's default account quota; concurrent instances multiply it).
    pub tasks_per_second: u32,
    /// `CALLBACK_TASK_ID_FIELD`: the Case field holding the task's ContactId (written once).
    pub task_id_field: String,
    /// `CALLBACK_STATE_FIELD`: the Case field for the callback state (`started`,
    /// `not_started: CODE`); unset: not written.
    pub state_field: Option<String>,
}

fn read_callbacks(r: &mut Reader) -> Option<CallbackConfig> {
    if !r.flag("CALLBACK_TASKS", false) {
        return None;
    }
    let queue_url = r.get("CALLBACK_QUEUE_URL").unwrap_or_default();
    if !queue_url.starts_with("https://") && !queue_url.starts_with("http://") {
        r.problem(
            "CALLBACK_QUEUE_URL",
            "must be the callback queue's SQS URL (a FIFO queue, ending in .fifo) when \
             CALLBACK_TASKS is true",
        );
    } else if !queue_url.ends_with(".fifo") {
        r.problem(
            "CALLBACK_QUEUE_URL",
            "must be a FIFO queue (its URL ends in .fifo): requests are grouped and \
             deduplicated by ContactId",
        );
    }
    let dead_letter_queue_url = r.get("CALLBACK_DEAD_LETTER_QUEUE_URL");
    if dead_letter_queue_url
        .as_deref()
        .is_some_and(|u| !u.ends_with(".fifo"))
    {
        r.problem(
            "CALLBACK_DEAD_LETTER_QUEUE_URL",
            "must be the callback queue's FIFO dead-letter queue (its URL ends in .fifo)",
        );
    }
    let instance_id = r.get("CONNECT_INSTANCE_ID").unwrap_or_default();
    if instance_id.is_empty() {
        r.problem(
            "CONNECT_INSTANCE_ID",
            "set the Amazon Connect instance id (the last part of the instance ARN) when \
             CALLBACK_TASKS is true",
        );
    }
    let flow = r.get("CALLBACK_TASK_CONTACT_FLOW_ID");
    let template = r.get("CALLBACK_TASK_TEMPLATE_ID");
    let target = match (flow, template) {
        (Some(flow), None) => TaskTarget::ContactFlow(flow),
        (None, Some(template)) => TaskTarget::Template(template),
        (flow, _) => {
            r.problem(
                "CALLBACK_TASK_CONTACT_FLOW_ID",
                "set exactly one of CALLBACK_TASK_CONTACT_FLOW_ID or CALLBACK_TASK_TEMPLATE_ID \
                 (a template needs a flow configured): Connect refuses a task naming both or \
                 neither",
            );
            TaskTarget::ContactFlow(flow.unwrap_or_default())
        }
    };
    let delay =
        Duration::from_secs(r.number("CALLBACK_TASK_DELAY_SECONDS", 0, (0, MAX_DELAY.as_secs())));
    let tasks_per_second = r.number("CALLBACK_TASKS_PER_SECOND", 2, (1, 100)) as u32;
    let task_id_field = r.text("CALLBACK_TASK_ID_FIELD", DEFAULT_CALLBACK_TASK_ID_FIELD);
    let state_field = r.get("CALLBACK_STATE_FIELD");
    let api_name = |name: &str| {
        name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    for (variable, name) in [
        ("CALLBACK_TASK_ID_FIELD", Some(&task_id_field)),
        ("CALLBACK_STATE_FIELD", state_field.as_ref()),
    ] {
        if name.is_some_and(|n| !api_name(n)) {
            r.problem(
                variable,
                "must be a Case field API name (letters, digits, underscores; custom fields \
                 end in __c)",
            );
        }
    }
    Some(CallbackConfig {
        queue_url,
        dead_letter_queue_url,
        tasks: TaskSettings {
            instance_id,
            target,
            delay,
        },
        tasks_per_second,
        task_id_field,
        state_field,
    })
}

/// One environment variable as the functions read it: its name, the value used when it is
/// unset (`None`: unset means off, none or inferred) and, for numbers, the accepted range.
/// docs/deploy.md's configuration reference is checked against [`variables_read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableRead {
    /// The variable's name.
    pub name: String,
    /// Its default, as text (a list's items joined with `,`).
    pub default: Option<String>,
    /// The inclusive range of a number.
    pub range: Option<(u64, u64)>,
}

/// Every variable [`Config::from_lookup`] reads, with its default and range, in reading order.
/// Read from the parser itself (twice: everything unset, and every optional feature on), so the
/// list cannot drift from the code.
pub fn variables_read() -> Vec<VariableRead> {
    let features_on = |name: &str| {
        let value = match name {
            "CALLBACK_TASKS" | "SUPERVISOR_FIELDS" | "LINK_CUSTOMER" => "true",
            "FUNCTION_TIMEOUT_SECONDS" => "900",
            _ => return None,
        };
        Some(value.to_owned())
    };
    let mut all: Vec<VariableRead> = Vec::new();
    for lookup in [
        &(|_: &str| None) as &dyn Fn(&str) -> Option<String>,
        &features_on,
    ] {
        let mut r = Reader::new(lookup);
        read_config(&mut r);
        for read in r.reads.into_inner() {
            match all.iter_mut().find(|known| known.name == read.name) {
                Some(known) if known.default.is_none() && known.range.is_none() => *known = read,
                Some(_) => {}
                None => all.push(read),
            }
        }
    }
    all
}

struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<Problem>,
    reads: std::cell::RefCell<Vec<VariableRead>>,
}

impl<'a> Reader<'a> {
    fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Reader {
            lookup,
            problems: Vec::new(),
            reads: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// Notes that `variable` is read, with its default and range.
    fn note(&self, variable: &str, default: Option<String>, range: Option<(u64, u64)>) {
        self.reads.borrow_mut().push(VariableRead {
            name: variable.to_owned(),
            default,
            range,
        });
    }

    fn value(&self, variable: &str) -> Option<String> {
        (self.lookup)(variable)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn get(&self, variable: &str) -> Option<String> {
        self.note(variable, None, None);
        self.value(variable)
    }

    /// The value when set; unset, the caller applies `default` (noted as the default).
    fn get_defaulted(&self, variable: &str, default: &str) -> Option<String> {
        self.note(variable, Some(default.to_owned()), None);
        self.value(variable)
    }

    fn problem(&mut self, variable: &'static str, message: impl Into<String>) {
        self.problems.push(Problem {
            variable,
            message: message.into(),
        });
    }

    fn text(&self, variable: &str, default: &str) -> String {
        self.note(variable, Some(default.to_owned()), None);
        self.value(variable).unwrap_or_else(|| default.to_owned())
    }

    fn list(&self, variable: &str, default: &[&str]) -> Vec<String> {
        let joined = (!default.is_empty()).then(|| default.join(","));
        self.note(variable, joined, None);
        match self.value(variable) {
            Some(v) => v
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            None => default.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn flag(&mut self, variable: &'static str, default: bool) -> bool {
        self.note(variable, Some(default.to_string()), None);
        match self.value(variable).map(|v| v.to_ascii_lowercase()) {
            None => default,
            Some(v) if ["true", "1", "yes", "on"].contains(&v.as_str()) => true,
            Some(v) if ["false", "0", "no", "off"].contains(&v.as_str()) => false,
            Some(_) => {
                self.problem(variable, "must be true or false");
                default
            }
        }
    }

    /// A number that has no default: `None` when unset (or invalid, with the problem noted).
    fn optional_number(&mut self, variable: &'static str, range: (u64, u64)) -> Option<u64> {
        self.note(variable, None, Some(range));
        let value = self.value(variable)?;
        match value.parse::<u64>() {
            Ok(n) if (range.0..=range.1).contains(&n) => Some(n),
            _ => {
                self.problem(
                    variable,
                    format!("must be a whole number from {} to {}", range.0, range.1),
                );
                None
            }
        }
    }

    fn number(&mut self, variable: &'static str, default: u64, range: (u64, u64)) -> u64 {
        self.note(variable, Some(default.to_string()), Some(range));
        match self.value(variable) {
            None => default,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (range.0..=range.1).contains(&n) => n,
                _ => {
                    self.problem(
                        variable,
                        format!("must be a whole number from {} to {}", range.0, range.1),
                    );
                    default
                }
            },
        }
    }
}

fn strs(values: &[String]) -> Vec<&str> {
    values.iter().map(String::as_str).collect()
}

fn read_pipeline(r: &mut Reader) -> Settings {
    let defaults = ClassifyConfig::default();
    let classify = ClassifyConfig {
        channels: r
            .list("CTR_CHANNELS", &["VOICE"])
            .into_iter()
            .map(|c| c.to_ascii_uppercase())
            .collect(),
        skipped_initiation_methods: r
            .list(
                "SKIP_INITIATION_METHODS",
                &strs(&defaults.skipped_initiation_methods),
            )
            .into_iter()
            .map(|c| c.to_ascii_uppercase())
            .collect(),
        status_attribute: r.text("VIRTUAL_AGENT_STATUS_ATTRIBUTE", &defaults.status_attribute),
        resolved_values: r.list(
            "VIRTUAL_AGENT_RESOLVED_VALUES",
            &strs(&defaults.resolved_values),
        ),
        handoff_values: r.list(
            "VIRTUAL_AGENT_HANDOFF_VALUES",
            &strs(&defaults.handoff_values),
        ),
    };
    if classify.channels.is_empty() {
        r.problem("CTR_CHANNELS", "must list at least one channel, e.g. VOICE");
    }
    let policy = CasePolicy {
        happy_path: r.flag("CASE_FOR_HAPPY_PATH", false),
        queued_abandoned: r.flag("CASE_FOR_QUEUED_ABANDONED", false),
    };
    let external_id_field = r.text("CASE_EXTERNAL_ID_FIELD", DEFAULT_EXTERNAL_ID_FIELD);
    let priority = r.text("CASE_PRIORITY", "Medium");
    let mut mapping = match CaseMapping::new(&external_id_field, &priority) {
        Ok(m) => m,
        Err(e) => {
            r.problem("CASE_EXTERNAL_ID_FIELD", e.to_string());
            CaseMapping::new(DEFAULT_EXTERNAL_ID_FIELD, &priority)
                .expect("the default mapping is valid")
        }
    };
    if let Some(field) = r.get_defaulted("CASE_VERSION_FIELD", DEFAULT_VERSION_FIELD) {
        match mapping.clone().with_version_field(&field) {
            Ok(m) => mapping = m,
            Err(e) => r.problem(
                "CASE_VERSION_FIELD",
                format!("{e} (a DateTime field such as {DEFAULT_VERSION_FIELD})"),
            ),
        }
    }
    let attribute = r.text("CASE_ID_ATTRIBUTE", DEFAULT_CASE_ID_ATTRIBUTE);
    mapping = mapping.with_case_id_attribute(&attribute);
    if r.flag("LINK_CUSTOMER", false) {
        // No default attribute: whoever can set it chooses the Contact a Case is linked to, so
        // only the deployer may name one (an attribute customers cannot set).
        let attribute = r.get("LINK_CUSTOMER_ATTRIBUTE");
        mapping = mapping.with_customer_linking(attribute.as_deref());
    }
    // CASE_ATTRIBUTES_EXCLUDE replaces the default list; `@default` in it stands for that list.
    let include = r.list("CASE_ATTRIBUTES_INCLUDE", &[]);
    let exclude: Vec<String> = r
        .list("CASE_ATTRIBUTES_EXCLUDE", &["@default"])
        .into_iter()
        .flat_map(|p| {
            if p.eq_ignore_ascii_case("@default") {
                DEFAULT_EXCLUDE.iter().map(|d| (*d).to_owned()).collect()
            } else {
                vec![p]
            }
        })
        .collect();
    match AttributeFilter::new(&include, &exclude) {
        Ok(filter) => mapping = mapping.with_attribute_filter(filter),
        Err(e) => {
            let variable = match e.list() {
                PatternList::Include => "CASE_ATTRIBUTES_INCLUDE",
                PatternList::Exclude => "CASE_ATTRIBUTES_EXCLUDE",
            };
            r.problem(variable, e.to_string());
        }
    }
    // Supervisor fields (opt-in): written only when configured, so an org that has not
    // deployed them never sees them; the org check then requires them like any mapped field.
    if r.flag("SUPERVISOR_FIELDS", false) {
        let base = r.get("CONNECT_INSTANCE_URL").unwrap_or_default();
        let base = base.trim_end_matches('/');
        let parsed = url::Url::parse(base).ok().filter(|u| u.scheme() == "https");
        if parsed.is_none() {
            r.problem(
                "CONNECT_INSTANCE_URL",
                "set the Amazon Connect instance's access URL (https://ALIAS.my.connect.aws) when \
                 SUPERVISOR_FIELDS is true: the Case links to the contact there",
            );
        }
        let fields = serde_json::json!({
            DISCONNECT_REASON_FIELD: {"template": "{DisconnectReason}", "mode": "kept_current"},
            CONTACT_LINK_FIELD: {
                "template": format!("{base}/contact-trace-records/details/{{ContactId}}"),
                "mode": "on_create",
            },
        });
        match mapping.clone().with_overrides(&fields.to_string()) {
            Ok(m) => mapping = m,
            Err(e) => r.problem("CONNECT_INSTANCE_URL", e.to_string()),
        }
    }
    for (variable, apply) in [
        (
            "CASE_FIELD_MAPPING",
            CaseMapping::with_overrides as fn(CaseMapping, &str) -> _,
        ),
        ("CASE_TEMPLATES", CaseMapping::with_templates),
    ] {
        if let Some(json) = r.get(variable) {
            match apply(mapping.clone(), &json) {
                Ok(m) => mapping = m,
                Err(e) => r.problem(variable, e.to_string()),
            }
        }
    }
    let park_hours = r.number("PARK_AFTER_HOURS", 20, (1, 8_760));
    Settings::new(classify, policy, mapping).with_park_after(Duration::from_secs(park_hours * 3600))
}

/// What a dry run needs: the pipeline settings and how the client would shape its requests.
#[derive(Debug, Clone)]
pub struct DryRunConfig {
    /// Classifier, policy, mapping.
    pub pipeline: Settings,
    /// `SALESFORCE_API_VERSION`.
    pub api_version: String,
    /// `SALESFORCE_BATCH_SIZE`: Cases per collections request.
    pub batch_size: usize,
}

impl DryRunConfig {
    /// Reads the settings a dry run needs (all optional; no credentials).
    ///
    /// # Errors
    /// [`ConfigError`] listing every invalid variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = Reader::new(&lookup);
        let pipeline = read_pipeline(&mut r);
        let salesforce = read_salesforce(&mut r, &pipeline);
        if !r.problems.is_empty() {
            return Err(ConfigError(r.problems));
        }
        Ok(DryRunConfig {
            pipeline,
            api_version: salesforce.api_version,
            batch_size: salesforce.batch_size,
        })
    }
}

/// Reads only the pipeline settings (all optional).
///
/// # Errors
/// [`ConfigError`] listing every invalid variable.
pub fn pipeline_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    let mut r = Reader::new(&lookup);
    let pipeline = read_pipeline(&mut r);
    if r.problems.is_empty() {
        Ok(pipeline)
    } else {
        Err(ConfigError(r.problems))
    }
}

fn read_salesforce(r: &mut Reader, pipeline: &Settings) -> SalesforceSettings {
    let mapping = &pipeline.mapping;
    let extra_hosts = r.list("SALESFORCE_ALLOWED_HOSTS", &[]);
    let allowed_hosts = HostPolicy::with_extra(&extra_hosts).unwrap_or_else(|e| {
        r.problem("SALESFORCE_ALLOWED_HOSTS", e.to_string());
        HostPolicy::default()
    });
    let login_text = r.text("SALESFORCE_LOGIN_URL", "https://login.salesforce.com");
    let login_url = match LoginUrl::parse(&login_text, &allowed_hosts) {
        Ok(url) => url.as_str().to_owned(),
        Err(e) => {
            r.problem(
                "SALESFORCE_LOGIN_URL",
                format!(
                    "{e}: use https://login.salesforce.com, https://test.salesforce.com or your \
                     My Domain URL"
                ),
            );
            login_text
        }
    };
    let grant = match r.get("SALESFORCE_AUTH_FLOW") {
        None => None,
        Some(v) if v.eq_ignore_ascii_case("auto") => None,
        Some(v) => Grant::parse(&v).or_else(|| {
            r.problem(
                "SALESFORCE_AUTH_FLOW",
                "must be jwt_bearer, client_credentials, password, or auto (unset: the grant \
                 the credentials imply)",
            );
            None
        }),
    };
    let api_version = r.text("SALESFORCE_API_VERSION", "v62.0");
    let version_ok = api_version
        .strip_prefix('v')
        .and_then(|v| v.strip_suffix(".0"))
        .is_some_and(|n| !n.is_empty() && n.len() <= 3 && n.chars().all(|c| c.is_ascii_digit()));
    if !version_ok {
        r.problem("SALESFORCE_API_VERSION", "must look like v62.0");
    }
    let jwt_audience = r.get("SALESFORCE_JWT_AUDIENCE");
    let default_rules = AssignmentRules::default().to_string();
    let assignment = match r.get_defaulted("CASE_ASSIGNMENT_RULES", &default_rules) {
        None => AssignmentRules::default(),
        Some(text) => AssignmentRules::parse(&text).unwrap_or_else(|e| {
            r.problem("CASE_ASSIGNMENT_RULES", e.to_string());
            AssignmentRules::default()
        }),
    };
    let defaults = RetryPolicy::default();
    let ms = |n: u64| Duration::from_millis(n);
    let retry = RetryPolicy {
        max_attempts: r.number(
            "SALESFORCE_MAX_ATTEMPTS",
            defaults.max_attempts.into(),
            (1, 10),
        ) as u32,
        base_delay: ms(r.number(
            "SALESFORCE_RETRY_BASE_MS",
            defaults.base_delay.as_millis() as u64,
            (0, 60_000),
        )),
        max_delay: ms(r.number(
            "SALESFORCE_RETRY_MAX_MS",
            defaults.max_delay.as_millis() as u64,
            (0, 300_000),
        )),
        request_timeout: ms(r.number(
            "SALESFORCE_TIMEOUT_MS",
            defaults.request_timeout.as_millis() as u64,
            (100, 120_000),
        )),
        min_request_time: defaults.min_request_time,
    };
    SalesforceSettings {
        login_url,
        allowed_hosts,
        jwt_audience,
        grant,
        api_version,
        external_id_field: mapping.external_id_field.clone(),
        version_field: mapping.version_field.clone(),
        batch_size: r.number("SALESFORCE_BATCH_SIZE", 200, (1, 200)) as usize,
        max_in_flight: r.number("SALESFORCE_MAX_IN_FLIGHT", 5, (1, 25)) as usize,
        retry,
        login_cooldown: ms(r.number("SALESFORCE_LOGIN_COOLDOWN_MS", 300_000, (0, 86_400_000))),
        assignment,
        org_check: r
            .flag("SALESFORCE_ORG_CHECK", true)
            .then(|| org_requirements(pipeline)),
        org_check_retry: Duration::from_secs(r.number(
            "SALESFORCE_ORG_CHECK_RETRY_SECONDS",
            60,
            (0, 86_400),
        )),
    }
}

/// What the org must support for the configured mapping.
fn org_requirements(pipeline: &Settings) -> OrgRequirements {
    let mapping = &pipeline.mapping;
    OrgRequirements {
        external_id_field: mapping.external_id_field.clone(),
        version_field: mapping.version_field.clone(),
        fields: pipeline.field_uses().to_vec(),
        links_customers: mapping.linking != CustomerLinking::Off,
    }
}

fn read_credentials(r: &mut Reader, grant: Option<Grant>) -> (CredentialsConfig, Option<Grant>) {
    if let Some(arn) = r.get("SALESFORCE_SECRET_ARN") {
        return (CredentialsConfig::SecretArn(arn), grant);
    }
    let secret = |r: &Reader, v: &str| r.get(v).map(SecretString::from);
    let credentials = Credentials {
        client_id: r.get("SALESFORCE_CLIENT_ID").unwrap_or_default(),
        client_secret: secret(r, "SALESFORCE_CLIENT_SECRET"),
        username: r.get("SALESFORCE_USERNAME"),
        password: secret(r, "SALESFORCE_PASSWORD"),
        private_key: secret(r, "SALESFORCE_PRIVATE_KEY"),
        login_url: None,
    };
    let needed = |grant: Grant| -> &'static [&'static str] {
        match grant {
            Grant::Password => &[
                "SALESFORCE_CLIENT_ID",
                "SALESFORCE_CLIENT_SECRET",
                "SALESFORCE_USERNAME",
                "SALESFORCE_PASSWORD",
            ],
            Grant::ClientCredentials => &["SALESFORCE_CLIENT_ID", "SALESFORCE_CLIENT_SECRET"],
            Grant::JwtBearer => &[
                "SALESFORCE_CLIENT_ID",
                "SALESFORCE_USERNAME",
                "SALESFORCE_PRIVATE_KEY",
            ],
        }
    };
    let (grant, missing): (Option<Grant>, Vec<&'static str>) =
        match grant.or_else(|| Grant::infer(&credentials)) {
            Some(grant) => (
                Some(grant),
                needed(grant)
                    .iter()
                    .copied()
                    .filter(|v| r.get(v).is_none())
                    .collect(),
            ),
            // Nothing fits a grant: name everything that could.
            None => (
                None,
                [
                    "SALESFORCE_CLIENT_ID",
                    "SALESFORCE_CLIENT_SECRET",
                    "SALESFORCE_USERNAME",
                    "SALESFORCE_PASSWORD",
                    "SALESFORCE_PRIVATE_KEY",
                ]
                .into_iter()
                .filter(|v| r.get(v).is_none())
                .collect(),
            ),
        };
    for variable in missing {
        let message = match grant {
            Some(grant) => format!(
                "is required for SALESFORCE_AUTH_FLOW={} unless SALESFORCE_SECRET_ARN names a \
                 secret holding the credentials",
                grant.name()
            ),
            None => "is missing: set SALESFORCE_SECRET_ARN, or the credentials of one grant: \
                     SALESFORCE_CLIENT_ID with SALESFORCE_USERNAME and SALESFORCE_PRIVATE_KEY \
                     (jwt_bearer), with SALESFORCE_CLIENT_SECRET (client_credentials), or with \
                     SALESFORCE_CLIENT_SECRET, SALESFORCE_USERNAME and SALESFORCE_PASSWORD \
                     (password)"
                .to_owned(),
        };
        r.problem(variable, message);
    }
    (CredentialsConfig::Inline(credentials), grant)
}

impl Config {
    /// Reads the configuration from the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] listing every missing or invalid variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (variable name → value).
    ///
    /// # Errors
    /// [`ConfigError`] listing every missing or invalid variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = Reader::new(&lookup);
        let config = read_config(&mut r);
        if r.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError(r.problems))
        }
    }
}

/// Reads every variable of [`Config`] through `r`, noting the problems in `r`.
fn read_config(r: &mut Reader) -> Config {
    let callbacks = read_callbacks(r);
    let pipeline = read_pipeline(r)
        .with_callbacks(callbacks.is_some())
        .with_callback_state_field(callbacks.as_ref().and_then(|c| c.state_field.clone()));
    let mut salesforce = read_salesforce(r, &pipeline);
    if let (Some(check), Some(callbacks)) = (salesforce.org_check.as_mut(), &callbacks) {
        // Opt-in: the org needs the field only when callbacks are on.
        for name in std::iter::once(&callbacks.task_id_field).chain(&callbacks.state_field) {
            check.fields.push(FieldUse {
                name: name.clone(),
                mode: WriteMode::KeptCurrent,
                fixed_values: None,
            });
        }
    }
    let (credentials, grant) = read_credentials(r, salesforce.grant);
    salesforce.grant = grant;
    let dead_letter_queue_url = r.get("DEAD_LETTER_QUEUE_URL");
    if let Some(url) = &dead_letter_queue_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        r.problem(
            "DEAD_LETTER_QUEUE_URL",
            "must be an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)",
        );
    }
    let metrics_namespace = r.text("METRICS_NAMESPACE", "CtrCases");
    let deadline_margin = Duration::from_millis(r.number("DEADLINE_MARGIN_MS", 3_000, (0, 60_000)));
    let function_name = r.text("AWS_LAMBDA_FUNCTION_NAME", "ctr-cases");
    // Below Lambda's longest timeout (900 s); the hold never runs past the invocation's deadline.
    let outage_hold = Duration::from_millis(r.number("OUTAGE_HOLD_MS", 20_000, (0, 899_000)));
    // Connect waits at most 8 s for a Lambda block.
    let flow_timeout = Duration::from_millis(r.number("FLOW_TIMEOUT_MS", 3_000, (100, 7_500)));
    // Lambda's timeouts run from 1 s to 15 minutes.
    // Unset: each function's own budget (stream::DEFAULT_BUDGET, flow::DEFAULT_BUDGET).
    let function_timeout = r
        .optional_number("FUNCTION_TIMEOUT_SECONDS", (1, 900))
        .map(Duration::from_secs);
    Config {
        org_requirements: org_requirements(&pipeline),
        pipeline,
        salesforce,
        credentials,
        dead_letter_queue_url,
        metrics_namespace,
        deadline_margin,
        function_name,
        outage_hold,
        flow_timeout,
        function_timeout,
        callbacks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::CustomerLinking;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const PASSWORD_ENV: &[(&str, &str)] = &[
        ("SALESFORCE_CLIENT_ID", "cid"),
        ("SALESFORCE_CLIENT_SECRET", "cs"),
        ("SALESFORCE_USERNAME", "u@x"),
        ("SALESFORCE_PASSWORD", "pwtok"),
    ];

    #[test]
    fn supervisor_and_callback_fields_are_opt_in_and_checked_when_on() {
        let base = PASSWORD_ENV;
        let off = Config::from_lookup(lookup(base)).unwrap();
        let names: Vec<&str> = off.pipeline.mapping.field_names().collect();
        assert!(!names.contains(&DISCONNECT_REASON_FIELD));
        assert!(!names.contains(&CONTACT_LINK_FIELD));
        assert!(off.callbacks.is_none());
        let check = off.salesforce.org_check.as_ref().unwrap();
        assert!(
            !check
                .fields
                .iter()
                .any(|f| f.name == DEFAULT_CALLBACK_TASK_ID_FIELD)
        );

        let mut on = base.to_vec();
        on.extend([
            ("SUPERVISOR_FIELDS", "true"),
            ("CONNECT_INSTANCE_URL", "https://example.my.connect.aws/"),
            ("CALLBACK_TASKS", "true"),
            (
                "CALLBACK_QUEUE_URL",
                "https://sqs.us-east-1.amazonaws.com/1/cb.fifo",
            ),
            ("CONNECT_INSTANCE_ID", "inst"),
            ("CALLBACK_TASK_TEMPLATE_ID", "tmpl"),
        ]);
        let config = Config::from_lookup(lookup(&on)).unwrap();
        let check = config.salesforce.org_check.as_ref().unwrap();
        for field in [
            DISCONNECT_REASON_FIELD,
            CONTACT_LINK_FIELD,
            DEFAULT_CALLBACK_TASK_ID_FIELD,
        ] {
            assert!(check.fields.iter().any(|f| f.name == field), "{field}");
        }
        let callbacks = config.callbacks.unwrap();
        assert_eq!(callbacks.tasks.target, TaskTarget::Template("tmpl".into()));
        assert_eq!(callbacks.tasks_per_second, 2);
        assert!(config.pipeline.callbacks);

        let mut bad = base.to_vec();
        bad.extend([
            ("SUPERVISOR_FIELDS", "true"),
            ("CALLBACK_TASKS", "true"),
            (
                "CALLBACK_QUEUE_URL",
                "https://sqs.us-east-1.amazonaws.com/1/standard",
            ),
            ("CALLBACK_TASK_CONTACT_FLOW_ID", "f"),
            ("CALLBACK_TASK_TEMPLATE_ID", "t"),
        ]);
        let e = Config::from_lookup(lookup(&bad)).unwrap_err();
        for variable in [
            "CONNECT_INSTANCE_URL",
            "CALLBACK_QUEUE_URL",
            "CONNECT_INSTANCE_ID",
            "CALLBACK_TASK_CONTACT_FLOW_ID",
        ] {
            assert!(e.mentions(variable), "{variable}: {e}");
        }
    }

    #[test]
    fn defaults_apply_with_password_credentials() {
        let config = Config::from_lookup(lookup(PASSWORD_ENV)).unwrap();
        assert_eq!(config.salesforce.login_url, "https://login.salesforce.com");
        assert_eq!(config.salesforce.api_version, "v62.0");
        assert_eq!(config.salesforce.grant, Some(Grant::Password));
        assert_eq!(
            config.salesforce.external_id_field,
            "Amazon_Connect_Contact_Id__c"
        );
        assert_eq!(config.salesforce.batch_size, 200);
        assert_eq!(config.pipeline.classify, ClassifyConfig::default());
        assert_eq!(config.pipeline.policy, CasePolicy::default());
        assert!(config.dead_letter_queue_url.is_none());
        assert!(matches!(config.credentials, CredentialsConfig::Inline(_)));
    }

    // See: issue "Real orgs", item 3: `ctr-cases check` checks the org whatever the flag says.
    #[test]
    fn org_requirements_are_kept_when_the_lambdas_org_check_is_off() {
        let mut env = PASSWORD_ENV.to_vec();
        env.push(("CASE_VERSION_FIELD", "Ctr_Version__c"));
        let on = Config::from_lookup(lookup(&env)).unwrap();
        assert_eq!(on.salesforce.org_check.as_ref(), Some(&on.org_requirements));
        env.push(("SALESFORCE_ORG_CHECK", "false"));
        let off = Config::from_lookup(lookup(&env)).unwrap();
        assert_eq!(off.salesforce.org_check, None);
        assert_eq!(off.org_requirements, on.org_requirements);
        assert_eq!(off.org_requirements.version_field, "Ctr_Version__c");
        assert!(!off.org_requirements.fields.is_empty());
    }

    // See: issue "A contact writes only its own Case", item 2.
    #[test]
    fn customer_linking_trusts_an_attribute_only_when_one_is_named() {
        let linking = |extra: &[(&'static str, &'static str)]| {
            let mut env = PASSWORD_ENV.to_vec();
            env.extend_from_slice(extra);
            Config::from_lookup(lookup(&env))
                .unwrap()
                .pipeline
                .mapping
                .linking
        };
        assert_eq!(linking(&[]), CustomerLinking::Off);
        assert_eq!(
            linking(&[("LINK_CUSTOMER", "true")]),
            CustomerLinking::ByNumber,
            "no default attribute"
        );
        assert_eq!(
            linking(&[("LINK_CUSTOMER", "true"), ("LINK_CUSTOMER_ATTRIBUTE", " ")]),
            CustomerLinking::ByNumber
        );
        assert_eq!(
            linking(&[
                ("LINK_CUSTOMER", "true"),
                ("LINK_CUSTOMER_ATTRIBUTE", "dipContactId")
            ]),
            CustomerLinking::AttributeThenNumber("dipContactId".into())
        );
        assert_eq!(
            linking(&[("LINK_CUSTOMER_ATTRIBUTE", "dipContactId")]),
            CustomerLinking::Off
        );
    }

    #[test]
    fn missing_credentials_name_every_variable() {
        let err = Config::from_lookup(lookup(&[])).unwrap_err();
        for v in [
            "SALESFORCE_CLIENT_ID",
            "SALESFORCE_CLIENT_SECRET",
            "SALESFORCE_USERNAME",
            "SALESFORCE_PASSWORD",
        ] {
            assert!(err.mentions(v), "{err}");
        }
        let err =
            Config::from_lookup(lookup(&[("SALESFORCE_AUTH_FLOW", "jwt_bearer")])).unwrap_err();
        assert!(err.mentions("SALESFORCE_PRIVATE_KEY") && !err.mentions("SALESFORCE_PASSWORD"));
    }

    #[test]
    fn an_outage_hold_stays_below_lambdas_longest_timeout() {
        let mut env = PASSWORD_ENV.to_vec();
        env.push(("OUTAGE_HOLD_MS", "899001"));
        let err = Config::from_lookup(lookup(&env)).unwrap_err();
        assert!(err.mentions("OUTAGE_HOLD_MS"), "{err}");
        env.pop();
        env.push(("OUTAGE_HOLD_MS", "899000"));
        assert!(Config::from_lookup(lookup(&env)).is_ok());
    }

    #[test]
    fn variables_read_come_from_the_parser_with_defaults_and_ranges() {
        let reads = variables_read();
        let find = |name: &str| {
            reads
                .iter()
                .find(|r| r.name == name)
                .unwrap_or_else(|| panic!("{name} not read"))
        };
        let flow = find("FLOW_TIMEOUT_MS");
        assert_eq!(flow.default.as_deref(), Some("3000"));
        assert_eq!(flow.range, Some((100, 7_500)));
        // Read only when the feature is on.
        assert_eq!(find("CALLBACK_TASKS_PER_SECOND").range, Some((1, 100)));
        assert_eq!(find("FUNCTION_TIMEOUT_SECONDS").range, Some((1, 900)));
        assert_eq!(find("CTR_CHANNELS").default.as_deref(), Some("VOICE"));
        assert_eq!(
            find("CASE_FOR_HAPPY_PATH").default.as_deref(),
            Some("false")
        );
        assert_eq!(find("SALESFORCE_SECRET_ARN").default, None);
        let names: Vec<&str> = reads.iter().map(|r| r.name.as_str()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "each variable once: {names:?}");
    }

    #[test]
    fn secret_arn_replaces_inline_credentials() {
        let config = Config::from_lookup(lookup(&[(
            "SALESFORCE_SECRET_ARN",
            "arn:aws:secretsmanager:us-east-1:1:secret:sf",
        )]))
        .unwrap();
        assert!(matches!(
            config.credentials,
            CredentialsConfig::SecretArn(_)
        ));
    }

    #[test]
    fn invalid_values_are_all_reported() {
        let mut env = PASSWORD_ENV.to_vec();
        env.extend([
            ("SALESFORCE_LOGIN_URL", "login.salesforce.com"),
            ("SALESFORCE_API_VERSION", "62"),
            ("SALESFORCE_AUTH_FLOW", "saml"),
            ("SALESFORCE_BATCH_SIZE", "500"),
            ("CASE_FOR_HAPPY_PATH", "maybe"),
            ("CASE_EXTERNAL_ID_FIELD", "Contact Id"),
            ("CASE_FIELD_MAPPING", "{\"Subject\":\"{oops\"}"),
            ("DEAD_LETTER_QUEUE_URL", "my-queue"),
        ]);
        let err = Config::from_lookup(lookup(&env)).unwrap_err();
        for v in [
            "SALESFORCE_LOGIN_URL",
            "SALESFORCE_API_VERSION",
            "SALESFORCE_AUTH_FLOW",
            "SALESFORCE_BATCH_SIZE",
            "CASE_FOR_HAPPY_PATH",
            "CASE_EXTERNAL_ID_FIELD",
            "CASE_FIELD_MAPPING",
            "DEAD_LETTER_QUEUE_URL",
        ] {
            assert!(err.mentions(v), "{v} not in {err}");
        }
        assert!(!err.to_string().contains("pwtok"));
    }

    #[test]
    fn classifier_settings_are_read() {
        let p = pipeline_from_lookup(lookup(&[
            ("CTR_CHANNELS", "voice, chat"),
            ("VIRTUAL_AGENT_STATUS_ATTRIBUTE", "botStatus"),
            ("VIRTUAL_AGENT_RESOLVED_VALUES", "done,agent"),
            ("CASE_FOR_QUEUED_ABANDONED", "true"),
            ("CASE_PRIORITY", "High"),
        ]))
        .unwrap();
        assert_eq!(p.classify.channels, ["VOICE", "CHAT"]);
        assert_eq!(p.classify.status_attribute, "botStatus");
        assert_eq!(p.classify.resolved_values, ["done", "agent"]);
        assert!(p.policy.queued_abandoned && !p.policy.happy_path);
    }

    #[test]
    fn function_timeout_is_optional_and_checked() {
        let config = Config::from_lookup(lookup(PASSWORD_ENV)).unwrap();
        assert_eq!(config.function_timeout, None);
        let mut env = PASSWORD_ENV.to_vec();
        env.push(("FUNCTION_TIMEOUT_SECONDS", "120"));
        let config = Config::from_lookup(lookup(&env)).unwrap();
        assert_eq!(config.function_timeout, Some(Duration::from_secs(120)));
        for bad in ["0", "901", "60s"] {
            let mut env = PASSWORD_ENV.to_vec();
            env.push(("FUNCTION_TIMEOUT_SECONDS", bad));
            let err = Config::from_lookup(lookup(&env)).unwrap_err();
            assert!(err.mentions("FUNCTION_TIMEOUT_SECONDS"), "{bad}: {err}");
        }
    }

    #[test]
    fn local_http_login_url_is_allowed_for_testing() {
        let mut env = PASSWORD_ENV.to_vec();
        env.push(("SALESFORCE_LOGIN_URL", "http://127.0.0.1:9999/"));
        let config = Config::from_lookup(lookup(&env)).unwrap();
        assert_eq!(config.salesforce.login_url, "http://127.0.0.1:9999");
    }

    #[test]
    fn grant_follows_the_credentials_unless_set() {
        let jwt = [
            ("SALESFORCE_CLIENT_ID", "cid"),
            ("SALESFORCE_USERNAME", "u@x"),
            ("SALESFORCE_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----"),
        ];
        let config = Config::from_lookup(lookup(&jwt)).unwrap();
        assert_eq!(config.salesforce.grant, Some(Grant::JwtBearer));
        let cc = [
            ("SALESFORCE_CLIENT_ID", "cid"),
            ("SALESFORCE_CLIENT_SECRET", "cs"),
        ];
        let config = Config::from_lookup(lookup(&cc)).unwrap();
        assert_eq!(config.salesforce.grant, Some(Grant::ClientCredentials));
        let mut explicit = PASSWORD_ENV.to_vec();
        explicit.push(("SALESFORCE_AUTH_FLOW", "client_credentials"));
        let config = Config::from_lookup(lookup(&explicit)).unwrap();
        assert_eq!(config.salesforce.grant, Some(Grant::ClientCredentials));
        let secret = [
            (
                "SALESFORCE_SECRET_ARN",
                "arn:aws:secretsmanager:us-east-1:1:secret:sf",
            ),
            ("SALESFORCE_AUTH_FLOW", "auto"),
        ];
        let config = Config::from_lookup(lookup(&secret)).unwrap();
        assert_eq!(
            config.salesforce.grant, None,
            "inferred from the secret later"
        );
    }

    /// See: issue "Security and privacy". Login URLs are parsed, not prefix-checked.
    #[test]
    fn refused_login_urls_fail_naming_the_variable() {
        for url in [
            "http://127.0.0.1:1@127.0.0.2:2",
            "http://localhost.evil.example",
            "https://login.salesforce.com.evil.example",
            "http://login.salesforce.com",
            "https://acme.example.com",
        ] {
            let mut env = PASSWORD_ENV.to_vec();
            env.push(("SALESFORCE_LOGIN_URL", url));
            let err = Config::from_lookup(lookup(&env)).unwrap_err();
            assert!(err.mentions("SALESFORCE_LOGIN_URL"), "{url}: {err}");
        }
        let mut env = PASSWORD_ENV.to_vec();
        env.extend([
            ("SALESFORCE_LOGIN_URL", "https://login.acme-gov.example"),
            ("SALESFORCE_ALLOWED_HOSTS", "acme-gov.example"),
        ]);
        let config = Config::from_lookup(lookup(&env)).unwrap();
        assert_eq!(
            config.salesforce.login_url,
            "https://login.acme-gov.example"
        );
    }

    #[test]
    fn case_settings_are_read_and_bad_ones_name_their_variable() {
        let p = pipeline_from_lookup(lookup(&[
            ("CASE_VERSION_FIELD", "Ctr_Version__c"),
            ("CASE_ID_ATTRIBUTE", "handoffCase"),
            ("CASE_TEMPLATES", r#"{"dropped":{"Priority":"High"}}"#),
            ("CASE_ATTRIBUTES_EXCLUDE", "@default,*internal*"),
            ("CASE_ATTRIBUTES_INCLUDE", "intent,*internal*,cardNumber"),
        ]))
        .unwrap();
        assert_eq!(p.mapping.version_field, "Ctr_Version__c");
        assert_eq!(p.mapping.case_id_attribute, "handoffCase");
        assert!(p.mapping.attributes.allows("intent"));
        assert!(!p.mapping.attributes.allows("myInternalNote"));
        assert!(
            !p.mapping.attributes.allows("cardNumber"),
            "defaults kept with @default"
        );
        assert!(!p.mapping.attributes.allows("language"), "not included");
        for (variable, value) in [
            ("CASE_TEMPLATES", r#"{"sometimes":{"Status":"New"}}"#),
            ("CASE_FIELD_MAPPING", r#"{"Subject":{"mode":"often"}}"#),
            ("CASE_VERSION_FIELD", "bad field"),
            ("CASE_ATTRIBUTES_EXCLUDE", "card,--"),
            ("VIRTUAL_AGENT_RESOLVED_VALUES", "ok"),
        ] {
            let result = pipeline_from_lookup(lookup(&[(variable, value)]));
            if variable == "VIRTUAL_AGENT_RESOLVED_VALUES" {
                assert!(result.is_ok());
                continue;
            }
            let err = result.unwrap_err();
            assert!(err.mentions(variable), "{variable}: {err}");
        }
    }
}
