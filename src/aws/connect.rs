//! Amazon Connect: starts callback tasks (`StartTaskContact`) at a steady pace, and says what a
//! refusal means for the request.
//!
//! I/O. The request's parameters come from [`crate::callback::task_for`]; this module only
//! sends them. Connect's default quota for StartTaskContact is about 2 requests per second per
//! account and Region: [`TaskStarter`] spaces its calls by `1 / tasks_per_second`, per function
//! instance (concurrent instances multiply the rate; the template keeps the callback function's
//! concurrency low). The SDK's own retries are off: a throttled or failed request is reported
//! and its message returns after the queue's visibility timeout, with the same `ClientToken`.

use std::time::Duration;

use tokio::time::Instant;

use crate::callback::{TaskSettings, TaskSpec, TaskTarget};
use crate::effect::ErrorClass;

/// Why Connect did not start a task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// Over the StartTaskContact rate quota (`ThrottlingException`): try again later; lower
    /// `CALLBACK_TASKS_PER_SECOND` or ask for a higher quota if it keeps happening.
    #[error(
        "Amazon Connect throttled StartTaskContact ({code}); the request returns after the \
         callback queue's visibility timeout: lower CALLBACK_TASKS_PER_SECOND or the callback \
         function's concurrency, or raise the account's StartTaskContact quota"
    )]
    Throttled {
        /// Connect's error code.
        code: String,
    },
    /// Connect failed or could not be reached (5xx, timeout): try again later.
    #[error(
        "Amazon Connect did not answer StartTaskContact ({code}); the request returns after \
         the callback queue's visibility timeout"
    )]
    Transient {
        /// Connect's error code, or `timeout` / `dispatch`.
        code: String,
    },
    /// Connect refused the request for good (a wrong flow, template or instance id, missing
    /// permission, too many open tasks or linked tasks): retrying the same request cannot
    /// help. The request goes to the callback dead-letter queue.
    #[error(
        "Amazon Connect refused StartTaskContact ({code}); the request goes to the callback \
         dead-letter queue: check CONNECT_INSTANCE_ID, CALLBACK_TASK_CONTACT_FLOW_ID / \
         CALLBACK_TASK_TEMPLATE_ID, the function's connect:StartTaskContact permission and the \
         open-tasks quota, then run `ctr-cases redrive` on that queue"
    )]
    Rejected {
        /// Connect's error code.
        code: String,
        /// Connect's message (may quote request values: kept for the dead letter, never
        /// logged).
        message: String,
    },
}

impl StartError {
    /// What to do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            StartError::Throttled { .. } => ErrorClass::Throttled,
            StartError::Transient { .. } => ErrorClass::Transient,
            StartError::Rejected { .. } => ErrorClass::Permanent,
        }
    }

    /// The error code (safe to log).
    pub fn code(&self) -> &str {
        match self {
            StartError::Throttled { code }
            | StartError::Transient { code }
            | StartError::Rejected { code, .. } => code,
        }
    }
}

/// The error a Connect answer stands for, from its error code (`x-amzn-ErrorType`) and HTTP
/// status.
pub fn classify_error(code: Option<&str>, status: Option<u16>, message: &str) -> StartError {
    let code_text = code.unwrap_or("unknown").to_owned();
    match (code, status) {
        (Some("ThrottlingException" | "TooManyRequestsException"), _) | (_, Some(429)) => {
            StartError::Throttled { code: code_text }
        }
        (Some("InternalServiceException" | "ServiceUnavailableException"), _) => {
            StartError::Transient { code: code_text }
        }
        (_, Some(s)) if s >= 500 => StartError::Transient { code: code_text },
        (_, Some(s)) if (400..500).contains(&s) => StartError::Rejected {
            code: code_text,
            message: message.to_owned(),
        },
        _ => StartError::Transient { code: code_text },
    }
}

/// Starts callback tasks, no faster than its pace.
#[derive(Debug)]
pub struct TaskStarter {
    client: aws_sdk_connect::Client,
    settings: TaskSettings,
    interval: Duration,
    next_start: tokio::sync::Mutex<Option<Instant>>,
}

impl TaskStarter {
    /// A starter calling Connect through `client` at most `per_second` times a second.
    pub fn new(client: aws_sdk_connect::Client, settings: TaskSettings, per_second: u32) -> Self {
        TaskStarter {
            client,
            settings,
            interval: Duration::from_secs(1) / per_second.max(1),
            next_start: tokio::sync::Mutex::new(None),
        }
    }

    /// How tasks are started (instance, flow or template, delay).
    pub fn settings(&self) -> &TaskSettings {
        &self.settings
    }

    /// Waits for this starter's next slot (the pace), then starts the task described by
    /// `spec`; answers the task's ContactId.
    ///
    /// # Errors
    /// [`StartError`] when Connect did not start it.
    pub async fn start(&self, spec: &TaskSpec) -> Result<String, StartError> {
        {
            let mut next = self.next_start.lock().await;
            if let Some(at) = *next {
                tokio::time::sleep_until(at).await;
            }
            *next = Some(Instant::now() + self.interval);
        }
        let mut request = self
            .client
            .start_task_contact()
            .instance_id(&self.settings.instance_id)
            .previous_contact_id(&spec.previous_contact_id)
            .name(&spec.name)
            .description(&spec.description)
            .client_token(&spec.client_token);
        request = match &self.settings.target {
            TaskTarget::ContactFlow(id) => request.contact_flow_id(id),
            TaskTarget::Template(id) => request.task_template_id(id),
        };
        for (name, value) in &spec.attributes {
            request = request.attributes(name, value);
        }
        for reference in &spec.references {
            let kind = aws_sdk_connect::types::ReferenceType::from(reference.kind);
            let built = aws_sdk_connect::types::Reference::builder()
                .value(&reference.value)
                .r#type(kind)
                .build()
                .map_err(|_| StartError::Rejected {
                    code: "invalid_reference".into(),
                    message: format!("reference {} could not be built", reference.name),
                })?;
            request = request.references(&reference.name, built);
        }
        if let Some(at) = spec.scheduled_time {
            request = request.scheduled_time(aws_sdk_connect::primitives::DateTime::from_secs(at));
        }
        match request.send().await {
            Ok(answer) => {
                answer
                    .contact_id()
                    .map(str::to_owned)
                    .ok_or_else(|| StartError::Transient {
                        code: "no_contact_id".into(),
                    })
            }
            Err(e) => {
                use aws_sdk_connect::error::ProvideErrorMetadata as _;
                let status = e.raw_response().map(|r| r.status().as_u16());
                let code = e.code().map(str::to_owned);
                let message = e.message().unwrap_or_default().to_owned();
                let code = code.or_else(|| match &e {
                    aws_sdk_connect::error::SdkError::TimeoutError(_) => Some("timeout".into()),
                    aws_sdk_connect::error::SdkError::DispatchFailure(_) => Some("dispatch".into()),
                    _ => None,
                });
                Err(classify_error(code.as_deref(), status, &message))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_errors_map_to_what_the_caller_does() {
        assert_eq!(
            classify_error(Some("ThrottlingException"), Some(429), "").class(),
            ErrorClass::Throttled
        );
        assert_eq!(
            classify_error(Some("InternalServiceException"), Some(500), "").class(),
            ErrorClass::Transient
        );
        for code in [
            "InvalidParameterException",
            "InvalidRequestException",
            "ResourceNotFoundException",
            "ServiceQuotaExceededException",
            "IdempotencyException",
        ] {
            let e = classify_error(Some(code), Some(400), "m");
            assert_eq!(e.class(), ErrorClass::Permanent, "{code}");
            assert_eq!(e.code(), code);
        }
        assert_eq!(
            classify_error(Some("timeout"), None, "").class(),
            ErrorClass::Transient
        );
    }
}
