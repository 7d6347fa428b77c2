//! Log setup: text or JSON lines, level from the Lambda's log settings.
//!
//! Same rules as `lambda_runtime`'s default subscriber, but with event fields flattened to the
//! top level of each JSON line (easier CloudWatch Logs Insights queries) and a timestamp:
//! `AWS_LAMBDA_LOG_FORMAT=json` (any case) selects JSON; the level comes from
//! `AWS_LAMBDA_LOG_LEVEL`, then `RUST_LOG`, else INFO.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Directives that keep the runtime crates at DEBUG or above whatever the level (an operator
/// may override them by naming `lambda_runtime`): at TRACE the runtime logs every raw event.
const RUNTIME_CAP: &str = "lambda_runtime=debug,lambda_runtime_api_client=debug";

/// Directives that always keep the HTTP and AWS SDK crates at INFO: below that they print
/// request and response bodies (the token grant, Case data, dead letters) or headers.
const BODY_CAP: &str = "aws_smithy_runtime=info,aws_smithy_runtime_api=info,aws_smithy_http=info,\
aws_smithy_http_client=info,aws_smithy_types=info,aws_sdk_sqs=info,\
aws_sdk_secretsmanager=info,aws_sdk_kinesis=info,aws_config=info,aws_sigv4=info,\
hyper=info,hyper_util=info,reqwest=info,h2=info,rustls=info,tower=info";

/// The log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, fields at the top level.
    Json,
}

/// The format and filter chosen by the given variables (`lookup` is the environment).
pub fn settings(lookup: impl Fn(&str) -> Option<String>) -> (LogFormat, String) {
    let format = match lookup("AWS_LAMBDA_LOG_FORMAT") {
        Some(f) if f.eq_ignore_ascii_case("json") => LogFormat::Json,
        _ => LogFormat::Text,
    };
    let filter = lookup("AWS_LAMBDA_LOG_LEVEL")
        .map(|l| l.to_ascii_lowercase())
        .or_else(|| lookup("RUST_LOG"))
        .filter(|f| !f.trim().is_empty())
        .unwrap_or_else(|| "info".to_owned());
    // At TRACE the runtime logs every raw event (CTRs hold phone numbers): never below DEBUG.
    let filter = if filter.contains("lambda_runtime") {
        format!("{filter},{BODY_CAP}")
    } else {
        format!("{filter},{RUNTIME_CAP},{BODY_CAP}")
    };
    (format, filter)
}

/// Installs the global subscriber writing to `writer`. Does nothing if one is already set.
pub fn init_with_writer<W>(format: LogFormat, filter: &str, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.without_time().try_init(),
    };
}

/// Installs the global subscriber from the process environment, writing to stdout (the Lambda).
pub fn init_from_env() {
    let (format, filter) = settings(|name| std::env::var(name).ok());
    init_with_writer(format, &filter, std::io::stdout);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_variables_pick_format_and_level() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(
            settings(env(&[])),
            (LogFormat::Text, format!("info,{RUNTIME_CAP},{BODY_CAP}"))
        );
        assert_eq!(
            settings(env(&[
                ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
                ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
                ("RUST_LOG", "warn")
            ])),
            (LogFormat::Json, format!("debug,{RUNTIME_CAP},{BODY_CAP}"))
        );
        assert_eq!(
            settings(env(&[("RUST_LOG", "ctr_cases=trace")])).1,
            format!("ctr_cases=trace,{RUNTIME_CAP},{BODY_CAP}")
        );
        // An explicit directive for the runtime is the operator's choice.
        assert_eq!(
            settings(env(&[("RUST_LOG", "trace,lambda_runtime=trace")])).1,
            format!("trace,lambda_runtime=trace,{BODY_CAP}")
        );
    }
}
