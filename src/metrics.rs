//! CloudWatch Embedded Metric Format: one JSON line per batch on stdout.
//!
//! Pure: [`emf_line`] builds the line; the handler prints it. Written directly rather than
//! through tracing, because `_aws` must sit at the root of the JSON object.

use serde_json::{Map, Value, json};

use crate::callback_batch::CallbackSummary;
use crate::report::{Action, BatchSummary};

/// The metric names, in the order they are emitted. `Retried` counts records reported back
/// to Lambda; `SalesforceUnavailable` is 1 for an invocation held for a Salesforce outage and
/// `ConfigurationInvalid` 1 for one held because the org refuses what the configuration
/// writes (the template's alarms watch both).
pub const METRIC_NAMES: [&str; 11] = [
    "Dropped",
    "HappyPath",
    "CasesUpserted",
    "Retried",
    "DeadLettered",
    "SalesforceApiCalls",
    "BatchLatencyMs",
    "Unchanged",
    "Parked",
    "SalesforceUnavailable",
    "ConfigurationInvalid",
];

/// The metric values for a batch.
pub fn metric_values(summary: &BatchSummary, latency_ms: u64) -> [(&'static str, u64); 11] {
    [
        ("Dropped", summary.outcomes_starting_with("dropped").into()),
        (
            "HappyPath",
            summary.outcomes_starting_with("happy_path").into(),
        ),
        ("CasesUpserted", summary.count(Action::UpsertCase).into()),
        ("Retried", summary.count(Action::Retry).into()),
        ("DeadLettered", summary.count(Action::DeadLetter).into()),
        ("SalesforceApiCalls", summary.salesforce_api_calls.into()),
        ("BatchLatencyMs", latency_ms),
        ("Unchanged", summary.count(Action::Unchanged).into()),
        ("Parked", summary.count(Action::Parked).into()),
        (
            "SalesforceUnavailable",
            u64::from(summary.salesforce_unavailable.is_some()),
        ),
        (
            "ConfigurationInvalid",
            u64::from(summary.configuration_invalid.is_some()),
        ),
    ]
}

/// One EMF line for a batch.
pub fn emf_line(
    namespace: &str,
    function_name: &str,
    timestamp_ms: i64,
    summary: &BatchSummary,
    latency_ms: u64,
) -> String {
    line(
        namespace,
        function_name,
        timestamp_ms,
        &metric_values(summary, latency_ms),
    )
}

/// The callback function's metric names, in the order they are emitted (the template's
/// dashboard shows them).
pub const CALLBACK_METRIC_NAMES: [&str; 6] = [
    "CallbacksStarted",
    "CallbacksAlreadyStarted",
    "CallbacksThrottled",
    "CallbacksRetried",
    "CallbacksDeadLettered",
    "StartTaskContactCalls",
];

/// The callback function's metric values for one batch.
pub fn callback_metric_values(summary: &CallbackSummary) -> [(&'static str, u64); 6] {
    [
        ("CallbacksStarted", summary.started.into()),
        ("CallbacksAlreadyStarted", summary.already_started.into()),
        ("CallbacksThrottled", summary.throttled.into()),
        ("CallbacksRetried", summary.retried.into()),
        ("CallbacksDeadLettered", summary.dead_lettered.into()),
        ("StartTaskContactCalls", summary.connect_calls.into()),
    ]
}

/// One EMF line for a batch of callback requests (all counts).
pub fn callback_emf_line(
    namespace: &str,
    function_name: &str,
    timestamp_ms: i64,
    summary: &CallbackSummary,
) -> String {
    line(
        namespace,
        function_name,
        timestamp_ms,
        &callback_metric_values(summary),
    )
}

/// One EMF line: the `_aws` root with a definition per value (`…Ms` in milliseconds, the rest
/// counts), the `FunctionName` dimension and the values.
fn line(
    namespace: &str,
    function_name: &str,
    timestamp_ms: i64,
    values: &[(&'static str, u64)],
) -> String {
    let definitions: Vec<Value> = values
        .iter()
        .map(|(name, _)| {
            let unit = if name.ends_with("Ms") {
                "Milliseconds"
            } else {
                "Count"
            };
            json!({"Name": name, "Unit": unit})
        })
        .collect();
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["FunctionName"]],
                "Metrics": definitions,
            }]
        }),
    );
    root.insert("FunctionName".into(), Value::String(function_name.into()));
    for (name, value) in values {
        root.insert((*name).into(), Value::from(*value));
    }
    Value::Object(root).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_emf_line_names_every_callback_metric() {
        let summary = CallbackSummary {
            started: 3,
            throttled: 2,
            connect_calls: 5,
            ..CallbackSummary::default()
        };
        let line: Value =
            serde_json::from_str(&callback_emf_line("Ns", "fn", 1, &summary)).unwrap();
        let defined: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(defined, CALLBACK_METRIC_NAMES);
        assert_eq!(line["CallbacksStarted"], 3);
        assert_eq!(line["CallbacksThrottled"], 2);
        assert_eq!(line["StartTaskContactCalls"], 5);
        assert_eq!(line["FunctionName"], "fn");
    }

    #[test]
    fn emf_line_has_root_aws_and_every_metric() {
        let mut summary = BatchSummary::default();
        summary.outcomes.insert("dropped", 3);
        summary.outcomes.insert("happy_path_live_agent", 2);
        summary.actions.insert("upsert_case", 3);
        summary.salesforce_api_calls = 1;
        let line = emf_line("CtrCases", "fn", 1_700_000_000_000, &summary, 42);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "CtrCases");
        let names: Vec<&str> = v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, METRIC_NAMES);
        let units: Vec<&str> = v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Unit"].as_str().unwrap())
            .collect();
        assert_eq!(units[6], "Milliseconds");
        assert_eq!(units.iter().filter(|u| **u == "Count").count(), 10);
        assert_eq!(v["Dropped"], 3);
        assert_eq!(v["HappyPath"], 2);
        assert_eq!(v["CasesUpserted"], 3);
        assert_eq!(v["SalesforceApiCalls"], 1);
        assert_eq!(v["BatchLatencyMs"], 42);
        assert_eq!(v["FunctionName"], "fn");
    }
}
