//! The pure steps of a batch: decode, dedupe by ContactId, classify and map to Cases (plan),
//! and the per-record report and counts that come out of it.
//!
//! Pure: no I/O. The handler runs the plan's Salesforce and dead-letter steps.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::case::{self, CaseRecord};
use crate::classify::{self, Outcome};
use crate::config::PipelineConfig;
use crate::ctr::{ContactId, DecodeError};
use crate::deadletter::{DeadLetter, DeadLetterError};
use crate::event::{KinesisEnvelope, KinesisEnvelopeRecord};

/// What the plan says to do with one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Not a CTR: dead-letter it.
    Poison(DecodeError),
    /// A newer version of the same contact is in this batch; that one is processed instead.
    Superseded,
    /// Classified; no Case is wanted for this outcome.
    NoCase(Outcome),
    /// Classified; upsert this Case.
    Case(Outcome, CaseRecord),
}

/// One planned record.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRecord {
    /// Position in the event.
    pub index: usize,
    /// Kinesis sequence number.
    pub sequence_number: String,
    /// The ContactId, when the record decoded.
    pub contact_id: Option<ContactId>,
    /// What to do.
    pub step: Step,
}

impl PlannedRecord {
    /// The outcome name for reports: the classifier's, or `poison` / `superseded`.
    pub fn outcome_name(&self) -> &'static str {
        match &self.step {
            Step::Poison(_) => "poison",
            Step::Superseded => "superseded",
            Step::NoCase(o) | Step::Case(o, _) => o.name(),
        }
    }

    /// The Case to upsert, when the plan has one.
    pub fn case(&self) -> Option<&CaseRecord> {
        match &self.step {
            Step::Case(_, case) => Some(case),
            _ => None,
        }
    }

    /// The action a dry run reports.
    pub fn planned_action(&self) -> Action {
        match self.step {
            Step::Poison(_) => Action::DeadLetter,
            Step::Superseded | Step::NoCase(_) => Action::None,
            Step::Case(..) => Action::UpsertCase,
        }
    }
}

/// Decodes, dedupes, classifies and maps a batch.
///
/// Dedupe: Connect delivers at least once and re-sends a CTR with a newer `LastUpdateTimestamp`
/// when it changes, so for each ContactId only the newest version in the batch (the later one
/// on a tie) is processed; the others are [`Step::Superseded`].
///
/// One pass, record by record: each CTR is dropped as soon as its Case is built, so a batch
/// never holds all decoded CTRs at once (memory stays near the event size plus the Cases).
pub fn plan(envelope: &KinesisEnvelope, pipeline: &PipelineConfig) -> Vec<PlannedRecord> {
    let mut planned: Vec<PlannedRecord> = Vec::with_capacity(envelope.records.len());
    // ContactId → (position in `planned`, its LastUpdateTimestamp) of the newest version so far.
    let mut newest: HashMap<ContactId, (usize, Option<DateTime<Utc>>)> = HashMap::new();
    for (index, record) in envelope.records.iter().enumerate() {
        let sequence_number = record.kinesis.sequence_number.clone();
        let ctr = match record.decode_ctr() {
            Ok(ctr) => ctr,
            Err(e) => {
                planned.push(PlannedRecord {
                    index,
                    sequence_number,
                    contact_id: None,
                    step: Step::Poison(e),
                });
                continue;
            }
        };
        let updated = ctr.last_update_timestamp;
        let step = match newest.get(&ctr.contact_id) {
            Some(&(_, best)) if updated < best => Step::Superseded,
            previous => {
                if let Some(&(older, _)) = previous {
                    planned[older].step = Step::Superseded;
                }
                newest.insert(ctr.contact_id.clone(), (index, updated));
                let outcome = classify::classify(&ctr, &pipeline.classify);
                if pipeline.policy.wants_case(&outcome) {
                    let case = case::build(&ctr, &outcome, &pipeline.mapping);
                    Step::Case(outcome, case)
                } else {
                    Step::NoCase(outcome)
                }
            }
        };
        planned.push(PlannedRecord {
            index,
            sequence_number,
            contact_id: Some(ctr.contact_id),
            step,
        });
    }
    planned
}

/// The final action for a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A Case was (or would be) upserted.
    UpsertCase,
    /// Nothing to do (skipped by policy, or superseded by a newer version).
    None,
    /// Sent (or would be sent) to the dead-letter queue.
    DeadLetter,
    /// Reported in `batchItemFailures` for Lambda to retry.
    Retry,
}

impl Action {
    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Action::UpsertCase => "upsert_case",
            Action::None => "none",
            Action::DeadLetter => "dead_letter",
            Action::Retry => "retry",
        }
    }
}

/// The result for one record: the replay CLI's output line.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RecordReport {
    /// Kinesis sequence number.
    pub sequence_number: String,
    /// ContactId, when decoded.
    pub contact_id: Option<String>,
    /// Classifier outcome, `poison` or `superseded`.
    pub outcome: &'static str,
    /// What was done.
    pub action: Action,
    /// The Salesforce Case id, when upserted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case_id: Option<String>,
    /// Whether the upsert created the Case (false: updated an existing one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
    /// Error code, for dead letters and retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RecordReport {
    /// A report for `planned` with `action`.
    pub fn new(planned: &PlannedRecord, action: Action) -> Self {
        RecordReport {
            sequence_number: planned.sequence_number.clone(),
            contact_id: planned.contact_id.as_ref().map(ToString::to_string),
            outcome: planned.outcome_name(),
            action,
            case_id: None,
            created: None,
            error: None,
        }
    }
}

/// Counts for one batch: the summary log line and the metrics.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BatchSummary {
    /// Records in the event.
    pub records: u32,
    /// Records per outcome name.
    pub outcomes: BTreeMap<&'static str, u32>,
    /// Records per action.
    pub actions: BTreeMap<&'static str, u32>,
    /// Cases created (not updated).
    pub cases_created: u32,
    /// Salesforce data API calls.
    pub salesforce_api_calls: u32,
    /// Salesforce token requests.
    pub token_requests: u32,
    /// Records re-sent within the invocation after a transient failure.
    pub retried_in_invocation: u32,
    /// Whether the daily API quota ran out.
    pub quota_exhausted: bool,
}

impl BatchSummary {
    /// Counts the reports.
    pub fn from_reports(reports: &[RecordReport]) -> Self {
        let mut summary = BatchSummary {
            records: reports.len() as u32,
            ..BatchSummary::default()
        };
        for r in reports {
            *summary.outcomes.entry(r.outcome).or_default() += 1;
            *summary.actions.entry(r.action.name()).or_default() += 1;
            if r.created == Some(true) {
                summary.cases_created += 1;
            }
        }
        summary
    }

    /// Records with `action`.
    pub fn count(&self, action: Action) -> u32 {
        self.actions.get(action.name()).copied().unwrap_or(0)
    }

    /// Records whose outcome name starts with `prefix` (e.g. `happy_path`).
    pub fn outcomes_starting_with(&self, prefix: &str) -> u32 {
        self.outcomes
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    }
}

/// The dead letter for a planned record that failed with `error`.
pub fn dead_letter(
    record: &KinesisEnvelopeRecord,
    planned: &PlannedRecord,
    kind: &'static str,
    error: DeadLetterError,
) -> DeadLetter {
    let data = record
        .kinesis
        .data
        .as_deref()
        .map(|raw| {
            serde_json::from_str::<String>(raw.get()).unwrap_or_else(|_| raw.get().to_owned())
        })
        .unwrap_or_default();
    DeadLetter {
        kind,
        error,
        sequence_number: planned.sequence_number.clone(),
        shard_id: record.shard_id().map(str::to_owned),
        event_source_arn: record.event_source_arn.clone(),
        partition_key: record.kinesis.partition_key.clone(),
        contact_id: planned.contact_id.as_ref().map(ToString::to_string),
        approximate_arrival_timestamp: record.kinesis.approximate_arrival_timestamp,
        data: String::new(),
        data_truncated: false,
    }
    .with_data(&data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::record_for;

    const ID: &str = "5ca32fbd-8f92-46af-92a5-6b0f970f0efe";

    fn ctr(updated: &str, extra: &str) -> Vec<u8> {
        format!(
            r#"{{"ContactId":"{ID}","Channel":"VOICE","InitiationMethod":"INBOUND","LastUpdateTimestamp":"{updated}"{extra}}}"#
        )
        .into_bytes()
    }

    fn envelope(datas: &[Vec<u8>]) -> KinesisEnvelope {
        KinesisEnvelope {
            records: datas
                .iter()
                .enumerate()
                .map(|(i, d)| record_for(d, &format!("{}", 100 + i), "shardId-000000000000"))
                .collect(),
        }
    }

    #[test]
    fn newest_version_wins_regardless_of_order() {
        let env = envelope(&[
            ctr("2024-01-01T00:00:10Z", r#","Agent":{}"#),
            ctr("2024-01-01T00:00:00Z", ""),
            ctr("2024-01-01T00:00:10Z", r#","Agent":{}"#),
        ]);
        let plan = plan(&env, &PipelineConfig::default());
        assert_eq!(plan[0].step, Step::Superseded);
        assert_eq!(plan[1].step, Step::Superseded);
        assert_eq!(plan[2].outcome_name(), "happy_path_live_agent");
    }

    #[test]
    fn dropped_call_plans_a_case_and_poison_is_kept_in_place() {
        let env = envelope(&[b"not json".to_vec(), ctr("2024-01-01T00:00:00Z", "")]);
        let plan = plan(&env, &PipelineConfig::default());
        assert!(matches!(
            plan[0].step,
            Step::Poison(DecodeError::Json { .. })
        ));
        assert_eq!(plan[0].planned_action(), Action::DeadLetter);
        assert_eq!(plan[0].sequence_number, "100");
        let Step::Case(Outcome::Dropped { .. }, case) = &plan[1].step else {
            panic!("expected a Case, got {:?}", plan[1].step)
        };
        assert_eq!(case.external_id.as_str(), ID);
    }

    #[test]
    fn summary_counts_outcomes_and_actions() {
        let env = envelope(&[b"{}".to_vec(), ctr("2024-01-01T00:00:00Z", "")]);
        let planned = plan(&env, &PipelineConfig::default());
        let reports: Vec<_> = planned
            .iter()
            .map(|p| RecordReport::new(p, p.planned_action()))
            .collect();
        let s = BatchSummary::from_reports(&reports);
        assert_eq!(s.records, 2);
        assert_eq!(s.outcomes["poison"], 1);
        assert_eq!(s.outcomes["dropped"], 1);
        assert_eq!(s.count(Action::UpsertCase), 1);
        assert_eq!(s.count(Action::DeadLetter), 1);
        assert_eq!(s.count(Action::Retry), 0);
    }

    #[test]
    fn dead_letter_keeps_original_data_and_position() {
        let env = envelope(&[b"garbage".to_vec()]);
        let planned = plan(&env, &PipelineConfig::default());
        let letter = dead_letter(
            &env.records[0],
            &planned[0],
            "poison_record",
            DeadLetterError {
                code: "invalid_json".into(),
                message: "x".into(),
                status: None,
                fields: vec![],
            },
        );
        assert_eq!(letter.data, "Z2FyYmFnZQ==");
        assert_eq!(letter.shard_id.as_deref(), Some("shardId-000000000000"));
        assert_eq!(letter.sequence_number, "100");
    }
}
