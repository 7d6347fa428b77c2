//! Plan: input records from any source → one decision per record, plus the effects to perform
//! (Case writes and dead letters), each keyed by its record.
//!
//! Pure: no I/O, no clock, no configuration module. It takes only the settings it needs
//! ([`Settings`]) and decodes each CTR once: the typed fields the classifier uses and the values
//! the Case mapping references come out of the same pass.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::callback::{self, CallbackRequest};
use crate::case::{self, CaseMapping, CaseRecord, FieldUse};
use crate::classify::{self, CasePolicy, ClassifyConfig, HappyPath, Outcome};
use crate::ctr::{Capture, ContactId, Ctr, DecodeError};
use crate::event;
use crate::input::InputRecord;
use crate::invoke_event::{self, EventError};
use crate::letter::{DeadLetter, LetterKind};

/// What the pure pipeline needs: classifier, Case policy and Case mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Classifier settings.
    pub classify: ClassifyConfig,
    /// Which outcomes get a Case.
    pub policy: CasePolicy,
    /// How Cases are built.
    pub mapping: CaseMapping,
    /// A record held for a Salesforce outage is parked in the dead-letter queue once it is
    /// this old (by its Kinesis arrival time), before the stream's retention drops it.
    pub park_after: Duration,
    /// Queue a callback request for each dropped (or queued-abandoned) caller's Case
    /// (`CALLBACK_TASKS`); off by default.
    pub callbacks: bool,
    /// The Case field for the callback state (`CALLBACK_STATE_FIELD`): when a callback task's
    /// own CTR arrives, its drop's Case gets `completed` (an agent took the task) or
    /// `expired: REASON`, and nothing else. `None`: not written.
    pub callback_state_field: Option<String>,
    capture: Capture,
    field_uses: Arc<[FieldUse]>,
}

/// The default [`Settings::park_after`]: 20 hours, for the default 24-hour stream retention.
pub const DEFAULT_PARK_AFTER: Duration = Duration::from_secs(20 * 3600);

impl Settings {
    /// Settings from their parts.
    pub fn new(classify: ClassifyConfig, policy: CasePolicy, mapping: CaseMapping) -> Self {
        let capture = mapping.capture();
        let field_uses = Arc::from(mapping.field_uses(&classify.channels));
        Settings {
            classify,
            policy,
            mapping,
            park_after: DEFAULT_PARK_AFTER,
            callbacks: false,
            callback_state_field: None,
            capture,
            field_uses,
        }
    }

    /// What each mapped field writes on the configured channels ([`CaseMapping::field_uses`]).
    pub fn field_uses(&self) -> &[FieldUse] {
        &self.field_uses
    }

    /// Queues callback requests for new dropped-call Cases (see [`Settings::callbacks`]).
    pub fn with_callbacks(mut self, on: bool) -> Self {
        self.callbacks = on;
        self
    }

    /// Writes callback states to `field` (see [`Settings::callback_state_field`]).
    pub fn with_callback_state_field(mut self, field: Option<String>) -> Self {
        self.callback_state_field = field;
        self
    }

    /// Parks held records older than `age` (see [`Settings::park_after`]).
    pub fn with_park_after(mut self, age: Duration) -> Self {
        self.park_after = age;
        self
    }
}

impl Default for Settings {
    /// The documented defaults: VOICE only, Cases for dropped calls only, the default mapping.
    fn default() -> Self {
        Settings::new(
            ClassifyConfig::default(),
            CasePolicy::default(),
            CaseMapping::default(),
        )
    }
}

/// What the plan decided for one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Write its Case (see [`Plan::cases`]).
    WriteCase,
    /// Classified; no Case is wanted for this outcome.
    Skip,
    /// A newer version of the same contact is in this batch; that one is processed instead.
    Supersede,
    /// Not a CTR: dead-letter it (see [`Plan::letters`]).
    DeadLetter,
}

/// Why a classified record gets no Case ([`Decision::Skip`]): the setting that would file one,
/// or the fact that no setting does. Its text names the environment variable (the stack
/// parameter behind it is in template.yaml), e.g. `CASE_FOR_HAPPY_PATH=false`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// A happy-path contact, and `CASE_FOR_HAPPY_PATH` is false.
    HappyPathOff,
    /// A caller who abandoned in a queue, and `CASE_FOR_QUEUED_ABANDONED` is false.
    QueuedAbandonedOff,
    /// The contact's channel is not in `CTR_CHANNELS`; the channel, when it is a plain Connect
    /// value (`CHAT`, `TASK`, …).
    ChannelNotConfigured(Option<String>),
    /// The contact's initiation method is in `SKIP_INITIATION_METHODS`; the method, when it is a
    /// plain Connect value (`OUTBOUND`, …).
    InitiationMethodSkipped(Option<String>),
    /// This leg was transferred on: the next leg has its own CTR, and its own decision.
    TransferredOut,
    /// The contact is one of our callback tasks (or the call an agent made from it): it updates
    /// the dropped call's callback state at most, never files a Case.
    CallbackTask,
}

impl SkipReason {
    /// Why `outcome` gets no Case, when the policy files none for it; `None` for the outcomes
    /// that always get one (dropped, hand-off). Every outcome is named, so a new one must decide.
    pub fn for_outcome(outcome: &Outcome) -> Option<SkipReason> {
        match outcome {
            Outcome::HappyPath(
                HappyPath::LiveAgent
                | HappyPath::VirtualAgentResolved
                | HappyPath::VirtualAgentHandoff,
            ) => Some(SkipReason::HappyPathOff),
            Outcome::QueuedAbandoned => Some(SkipReason::QueuedAbandonedOff),
            Outcome::SkippedChannel(channel) => {
                Some(SkipReason::ChannelNotConfigured(connect_value(channel)))
            }
            Outcome::SkippedInitiation(method) => {
                Some(SkipReason::InitiationMethodSkipped(connect_value(method)))
            }
            Outcome::TransferredOut => Some(SkipReason::TransferredOut),
            Outcome::CallbackTask => Some(SkipReason::CallbackTask),
            Outcome::Dropped { .. } | Outcome::Handoff => None,
        }
    }
}

/// `value` when it looks like a Connect enumeration value (upper-case letters and `_`, at
/// most 32): a record's own text never reaches a report line otherwise.
fn connect_value(value: &str) -> Option<String> {
    let plain = !value.is_empty()
        && value.len() <= 32
        && value.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    plain.then(|| value.to_owned())
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::HappyPathOff => f.write_str("CASE_FOR_HAPPY_PATH=false"),
            SkipReason::QueuedAbandonedOff => f.write_str("CASE_FOR_QUEUED_ABANDONED=false"),
            SkipReason::ChannelNotConfigured(Some(channel)) => {
                write!(f, "channel {channel} not in CTR_CHANNELS")
            }
            SkipReason::ChannelNotConfigured(None) => f.write_str("channel not in CTR_CHANNELS"),
            SkipReason::InitiationMethodSkipped(Some(method)) => {
                write!(f, "{method} in SKIP_INITIATION_METHODS")
            }
            SkipReason::InitiationMethodSkipped(None) => {
                f.write_str("initiation method in SKIP_INITIATION_METHODS")
            }
            SkipReason::TransferredOut => {
                f.write_str("transferred out: the next leg has its own CTR")
            }
            SkipReason::CallbackTask => {
                f.write_str("our callback task: it updates the drop's callback state only")
            }
        }
    }
}

impl serde::Serialize for SkipReason {
    /// As its text: a report line says why in words.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The plan for one record.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRecord {
    /// Kinesis sequence number.
    pub sequence_number: String,
    /// The ContactId, when the record decoded.
    pub contact_id: Option<ContactId>,
    /// The classifier's outcome name, or `poison` / `superseded`.
    pub outcome: &'static str,
    /// The classifier's outcome name for every record that decoded, superseded ones included
    /// (what the contact was); `None` for poison.
    pub contact_outcome: Option<&'static str>,
    /// What to do.
    pub decision: Decision,
    /// Why the record is poison, when it is.
    pub decode_error: Option<DecodeError>,
    /// For [`Decision::Supersede`]: the position of the record processed instead (the
    /// contact's newest version in the batch).
    pub superseded_by: Option<usize>,
    /// For [`Decision::Skip`]: why no Case is filed.
    pub skip_reason: Option<SkipReason>,
}

/// An effect for the record at position `record`.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyed<T> {
    /// The record's position in the input (and in [`Plan::records`]).
    pub record: usize,
    /// The effect.
    pub effect: T,
}

/// Decisions and effects for a batch.
#[derive(Debug, Default)]
pub struct Plan {
    /// One per input record, in input order.
    pub records: Vec<PlannedRecord>,
    /// The Cases to write, in input order.
    pub cases: Vec<Keyed<CaseRecord>>,
    /// The dead letters to send (poison records), in input order.
    pub letters: Vec<Keyed<DeadLetter>>,
    /// The callback requests to queue once their Case is written ([`Settings::callbacks`]),
    /// in input order; each record here also has a Case in [`Plan::cases`]. Which are sent
    /// depends on the write results (the report decides, after the writes).
    pub callbacks: Vec<Keyed<CallbackRequest>>,
    /// Callback states to record, `(Case id, state)`, one per callback task CTR whose drop's
    /// Case is named by its attributes ([`Settings::callback_state_field`]).
    pub callback_states: Vec<Keyed<(String, String)>>,
    /// The Case field those states go to.
    pub callback_state_field: Option<String>,
    /// Records that would be reported for retry are parked once this old
    /// ([`Settings::park_after`]).
    pub park_after: Duration,
    /// What each mapped field writes ([`Settings::field_uses`]): tells a rejection caused by
    /// the configuration from one caused by a record's data.
    pub field_uses: Arc<[FieldUse]>,
}

impl Plan {
    /// The Case planned for the record at `record`, if any.
    pub fn case_of(&self, record: usize) -> Option<&CaseRecord> {
        self.cases
            .iter()
            .find(|k| k.record == record)
            .map(|k| &k.effect)
    }
}

/// Plans a batch: decode, dedupe by ContactId, classify, map to Cases, decide dead letters.
///
/// Dedupe: Connect delivers at least once and re-sends a CTR with a newer `LastUpdateTimestamp`
/// when it changes, so for each ContactId only the newest version in the batch (the later one
/// on a tie) is processed; the others are [`Decision::Supersede`].
///
/// One pass, record by record: each CTR is dropped as soon as its Case is built, so a batch
/// never holds all decoded CTRs at once (memory stays near the event size plus the Cases).
pub fn plan(inputs: &[InputRecord<'_>], settings: &Settings) -> Plan {
    let mut records: Vec<PlannedRecord> = Vec::with_capacity(inputs.len());
    // Sized once (growing a Vec of Cases re-copies it at every doubling); a superseded
    // version's Case is only marked here and removed in place at the end.
    let mut cases: Vec<Keyed<CaseRecord>> = Vec::with_capacity(inputs.len());
    let mut superseded_cases: Vec<usize> = Vec::new();
    let mut letters = Vec::new();
    let mut callbacks: Vec<Keyed<CallbackRequest>> = Vec::new();
    let mut callback_states: Vec<Keyed<(String, String)>> = Vec::new();
    let mut newest: HashMap<ContactId, Newest> = HashMap::new();
    for (index, input) in inputs.iter().enumerate() {
        let sequence_number = input.sequence_number.to_owned();
        let ctr = match decode(input, &settings.capture) {
            Ok(ctr) => ctr,
            Err(error) => {
                letters.push(Keyed {
                    record: index,
                    effect: input.letter(LetterKind::PoisonRecord, (&error).into(), None),
                });
                records.push(PlannedRecord {
                    sequence_number,
                    contact_id: None,
                    outcome: "poison",
                    contact_outcome: None,
                    decision: Decision::DeadLetter,
                    decode_error: Some(error),
                    superseded_by: None,
                    skip_reason: None,
                });
                continue;
            }
        };
        let updated = ctr.last_update_timestamp;
        // Classified even when superseded: the report says what the contact was.
        let outcome = classify::classify(&ctr, &settings.classify);
        let (name, decision, skip_reason) = match newest.get(&ctr.contact_id) {
            Some(best) if updated < best.updated => ("superseded", Decision::Supersede, None),
            previous => {
                if let Some(older) = previous {
                    let older_record = &mut records[older.record];
                    older_record.outcome = "superseded";
                    older_record.decision = Decision::Supersede;
                    older_record.skip_reason = None;
                    if let Some(position) = older.case {
                        superseded_cases.push(position);
                    }
                }
                let wanted = settings.policy.wants_case(&outcome);
                // A contact whose hand-off Case the flow already filed updates that Case with
                // its outcome even when the policy files none for it. The attribute alone makes
                // no Case (`create` stays false): the read decides whether the named Case is
                // the contact's own (salesforce::client), and writes nothing when it is not.
                let has_case = outcome.template_key().is_some()
                    && ctr
                        .attributes
                        .get(&settings.mapping.case_id_attribute)
                        .is_some_and(|id| case::is_case_id(id.trim()));
                let case_position = (wanted || has_case).then(|| {
                    let mut case = case::build(&ctr, &outcome, &settings.mapping);
                    case.create = wanted;
                    cases.push(Keyed {
                        record: index,
                        effect: case,
                    });
                    cases.len() - 1
                });
                if settings.callback_state_field.is_some()
                    && let Some(state) = callback::ended_task_state(&ctr, &outcome)
                {
                    callback_states.push(Keyed {
                        record: index,
                        effect: state,
                    });
                }
                if wanted
                    && settings.callbacks
                    && let Some(request) = callback::request_for(&ctr, &outcome)
                {
                    callbacks.push(Keyed {
                        record: index,
                        effect: request,
                    });
                }
                newest.insert(
                    ctr.contact_id.clone(),
                    Newest {
                        record: index,
                        case: case_position,
                        updated,
                    },
                );
                if case_position.is_some() {
                    (outcome.name(), Decision::WriteCase, None)
                } else {
                    let reason = SkipReason::for_outcome(&outcome);
                    (outcome.name(), Decision::Skip, reason)
                }
            }
        };
        records.push(PlannedRecord {
            sequence_number,
            contact_id: Some(ctr.contact_id),
            outcome: name,
            contact_outcome: Some(outcome.name()),
            decision,
            decode_error: None,
            superseded_by: None,
            skip_reason,
        });
    }
    // Each superseded version points at the version processed instead: its contact's newest.
    for record in &mut records {
        if record.decision == Decision::Supersede {
            record.superseded_by = record
                .contact_id
                .as_ref()
                .and_then(|id| newest.get(id))
                .map(|n| n.record);
        }
    }
    if !superseded_cases.is_empty() {
        superseded_cases.sort_unstable();
        let mut position = 0;
        cases.retain(|_| {
            let keep = superseded_cases.binary_search(&position).is_err();
            position += 1;
            keep
        });
    }
    // A superseded version's callback goes with it: the newest version decides.
    callbacks.retain(|k| records[k.record].decision == Decision::WriteCase);
    callback_states.retain(|k| records[k.record].decision != Decision::Supersede);
    Plan {
        records,
        cases,
        letters,
        callbacks,
        callback_states,
        callback_state_field: settings.callback_state_field.clone(),
        park_after: settings.park_after,
        field_uses: settings.field_uses.clone(),
    }
}

/// The newest version of a contact planned so far.
struct Newest {
    /// Its record's position.
    record: usize,
    /// Its Case's position in the plan's Cases, when it has one.
    case: Option<usize>,
    /// Its `LastUpdateTimestamp`.
    updated: Option<DateTime<Utc>>,
}

fn decode(input: &InputRecord<'_>, capture: &Capture) -> Result<Ctr, DecodeError> {
    Ctr::decode(event::data_bytes(input.data)?, capture)
}

/// The contact-flow function's plan: the hand-off Case to write for the contact of one Amazon
/// Connect invoke event.
#[derive(Debug, Clone, PartialEq)]
pub struct HandoffPlan {
    /// The contact.
    pub contact_id: ContactId,
    /// Its hand-off Case ([`Outcome::Handoff`], the stream's mapping and write modes).
    pub case: CaseRecord,
}

/// Plans the contact-flow function's answer to the invoke event `payload`: the hand-off Case
/// of its contact, mapped by `mapping`.
///
/// # Errors
/// Why the event names no contact ([`EventError`]): no Salesforce call is made for it.
pub fn handoff(
    payload: serde_json::Value,
    mapping: &CaseMapping,
) -> Result<HandoffPlan, EventError> {
    let ctr = invoke_event::contact(payload)?;
    Ok(HandoffPlan {
        case: case::build(&ctr, &Outcome::Handoff, mapping),
        contact_id: ctr.contact_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{KinesisEnvelope, record_for};

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

    fn plan_of(env: &KinesisEnvelope) -> Plan {
        plan(&env.inputs(), &Settings::default())
    }

    #[test]
    fn records_park_after_twenty_hours_unless_configured() {
        // PARK_AFTER_HOURS defaults to 20 (docs/deploy.md); settings built without the
        // configuration must agree.
        assert_eq!(Settings::default().park_after, Duration::from_secs(72_000));
    }

    #[test]
    fn newest_version_wins_regardless_of_order() {
        let env = envelope(&[
            ctr("2024-01-01T00:00:10Z", r#","Agent":{}"#),
            ctr("2024-01-01T00:00:00Z", ""),
            ctr("2024-01-01T00:00:10Z", r#","Agent":{}"#),
        ]);
        let plan = plan_of(&env);
        assert_eq!(plan.records[0].decision, Decision::Supersede);
        assert_eq!(plan.records[1].decision, Decision::Supersede);
        assert_eq!(plan.records[2].outcome, "happy_path_live_agent");
    }

    #[test]
    fn superseded_case_is_not_written() {
        let env = envelope(&[
            ctr("2024-01-01T00:00:00Z", ""),
            ctr("2024-01-01T00:00:10Z", ""),
        ]);
        let plan = plan_of(&env);
        assert_eq!(plan.records[0].decision, Decision::Supersede);
        assert_eq!(plan.records[1].decision, Decision::WriteCase);
        assert_eq!(plan.cases.len(), 1);
        assert_eq!(plan.cases[0].record, 1);
    }

    #[test]
    fn only_each_contacts_newest_case_is_kept_in_record_order() {
        const OTHER: &str = "0e5a3c2b-1111-4222-8333-444455556666";
        let other = |updated: &str| {
            String::from_utf8(ctr(updated, ""))
                .unwrap()
                .replace(ID, OTHER)
                .into_bytes()
        };
        let env = envelope(&[
            ctr("2024-01-01T00:00:00Z", ""),
            other("2024-01-01T00:00:05Z"),
            ctr("2024-01-01T00:00:10Z", ""),
            ctr("2024-01-01T00:00:20Z", ""),
            other("2024-01-01T00:00:01Z"),
            b"not json".to_vec(),
        ]);
        let plan = plan_of(&env);
        let kept: Vec<(usize, &str)> = plan
            .cases
            .iter()
            .map(|c| (c.record, c.effect.external_id.as_str()))
            .collect();
        assert_eq!(kept, [(1, OTHER), (3, ID)]);
        let decisions: Vec<Decision> = plan.records.iter().map(|r| r.decision).collect();
        assert_eq!(
            decisions,
            [
                Decision::Supersede,
                Decision::WriteCase,
                Decision::Supersede,
                Decision::WriteCase,
                Decision::Supersede,
                Decision::DeadLetter,
            ]
        );
    }

    #[test]
    fn dropped_call_plans_a_case_and_poison_is_kept_in_place() {
        let env = envelope(&[b"not json".to_vec(), ctr("2024-01-01T00:00:00Z", "")]);
        let plan = plan_of(&env);
        assert!(matches!(
            plan.records[0].decode_error,
            Some(DecodeError::Json { .. })
        ));
        assert_eq!(plan.records[0].decision, Decision::DeadLetter);
        assert_eq!(plan.records[0].sequence_number, "100");
        assert_eq!(plan.records[1].outcome, "dropped");
        let case = plan.case_of(1).expect("a Case for the dropped call");
        assert_eq!(case.external_id.as_str(), ID);
        assert_eq!(plan.letters.len(), 1);
        assert_eq!(plan.letters[0].record, 0);
    }

    #[test]
    fn callbacks_are_planned_only_when_on_for_the_newest_callable_drop() {
        let caller = r#","CustomerEndpoint":{"Address":"+15555550147","Type":"TELEPHONE_NUMBER"}"#;
        let env = envelope(&[
            ctr("2024-01-01T00:00:00Z", caller),
            ctr("2024-01-01T00:00:10Z", caller),
        ]);
        assert!(plan_of(&env).callbacks.is_empty());
        let on = Settings::default().with_callbacks(true);
        let plan = plan(&env.inputs(), &on);
        assert_eq!(plan.callbacks.len(), 1);
        assert_eq!(plan.callbacks[0].record, 1);
        assert_eq!(plan.callbacks[0].effect.contact_id, ID);
        let anonymous = envelope(&[ctr(
            "2024-01-01T00:00:00Z",
            r#","CustomerEndpoint":{"Address":"anonymous","Type":"TELEPHONE_NUMBER"}"#,
        )]);
        let plan = super::plan(&anonymous.inputs(), &on);
        assert_eq!(plan.cases.len(), 1, "an anonymous caller still gets a Case");
        assert!(plan.callbacks.is_empty());
    }

    #[test]
    fn callback_task_ctr_plans_no_case_and_no_callback() {
        let env = envelope(&[ctr(
            "2024-01-01T00:00:00Z",
            r#","CustomerEndpoint":{"Address":"+15555550147"},"Attributes":{"ctrCasesCallbackFor":"x","ctrCasesCaseId":"500000000000001AAA"}"#,
        )]);
        let plan = plan(&env.inputs(), &Settings::default().with_callbacks(true));
        assert_eq!(plan.records[0].outcome, "callback_task");
        assert!(plan.cases.is_empty());
        assert!(plan.callbacks.is_empty());
    }

    /// A callback task's CTR delivered in two versions: only the newest reports the state, so
    /// the drop's Case is not written twice, nor with the older version's state.
    #[test]
    fn only_the_newest_version_of_a_callback_task_reports_its_state() {
        let task = format!(
            r#","Attributes":{{"{}":"x","{}":"500000000000001AAA"}}"#,
            crate::classify::CALLBACK_FOR_ATTRIBUTE,
            callback::CALLBACK_CASE_ATTRIBUTE
        );
        let taken = format!(r#"{task},"Agent":{{}}"#);
        let env = envelope(&[
            ctr("2024-01-01T00:00:00Z", &task),
            ctr("2024-01-01T00:00:10Z", &taken),
        ]);
        let settings = Settings::default().with_callback_state_field(Some("State__c".into()));
        let plan = plan(&env.inputs(), &settings);
        assert_eq!(plan.records[0].decision, Decision::Supersede);
        assert_eq!(plan.callback_states.len(), 1);
        assert_eq!(plan.callback_states[0].record, 1);
        assert_eq!(
            plan.callback_states[0].effect,
            ("500000000000001AAA".to_owned(), "completed".to_owned())
        );
    }

    /// The agent's outbound call from a callback task, unanswered (no agent leg, like a drop):
    /// no Case and no callback.
    #[test]
    fn unanswered_outbound_callback_call_plans_nothing() {
        let env = envelope(&[String::from_utf8(ctr(
            "2024-01-01T00:00:00Z",
            r#","CustomerEndpoint":{"Address":"+15555550147"},"DisconnectReason":"CUSTOMER_DISCONNECT""#,
        ))
        .unwrap()
        .replace("INBOUND", "OUTBOUND")
        .into_bytes()]);
        let plan = plan(&env.inputs(), &Settings::default().with_callbacks(true));
        assert_eq!(plan.records[0].outcome, "skipped_initiation");
        assert!(plan.cases.is_empty());
        assert!(plan.callbacks.is_empty());
    }

    #[test]
    fn superseded_versions_keep_their_outcome_and_point_at_the_newest() {
        let env = envelope(&[
            ctr("2024-01-01T00:00:00Z", r#","Agent":{}"#),
            ctr("2024-01-01T00:00:20Z", ""),
            ctr("2024-01-01T00:00:10Z", ""),
            b"not json".to_vec(),
        ]);
        let plan = plan_of(&env);
        let got: Vec<(&str, Option<&str>, Option<usize>)> = plan
            .records
            .iter()
            .map(|r| (r.outcome, r.contact_outcome, r.superseded_by))
            .collect();
        assert_eq!(
            got,
            [
                ("superseded", Some("happy_path_live_agent"), Some(1)),
                ("dropped", Some("dropped"), None),
                ("superseded", Some("dropped"), Some(1)),
                ("poison", None, None),
            ]
        );
    }

    /// The reason goes with the decision: none when the policy files a Case, none once a newer
    /// version supersedes the record.
    #[test]
    fn skipped_record_names_the_setting_that_would_file_a_case() {
        let env = envelope(&[ctr("2024-01-01T00:00:00Z", r#","Agent":{}"#)]);
        let plan = plan_of(&env);
        assert_eq!(plan.records[0].decision, Decision::Skip);
        let reason = plan.records[0].skip_reason.as_ref().expect("a reason");
        assert_eq!(reason.to_string(), "CASE_FOR_HAPPY_PATH=false");

        let settings = Settings::new(
            ClassifyConfig::default(),
            CasePolicy {
                happy_path: true,
                ..CasePolicy::default()
            },
            CaseMapping::default(),
        );
        let filed = super::plan(&env.inputs(), &settings);
        assert_eq!(filed.records[0].decision, Decision::WriteCase);
        assert_eq!(filed.records[0].skip_reason, None);

        let env = envelope(&[
            ctr("2024-01-01T00:00:00Z", r#","Agent":{}"#),
            ctr("2024-01-01T00:00:10Z", ""),
        ]);
        let plan = plan_of(&env);
        assert_eq!(plan.records[0].decision, Decision::Supersede);
        assert_eq!(plan.records[0].skip_reason, None);
    }

    #[test]
    fn every_skipped_outcome_has_a_reason_naming_its_setting() {
        let text = |outcome: Outcome| SkipReason::for_outcome(&outcome).map(|r| r.to_string());
        assert_eq!(
            text(Outcome::QueuedAbandoned).as_deref(),
            Some("CASE_FOR_QUEUED_ABANDONED=false")
        );
        assert_eq!(
            text(Outcome::SkippedChannel("CHAT".into())).as_deref(),
            Some("channel CHAT not in CTR_CHANNELS")
        );
        assert_eq!(
            text(Outcome::SkippedInitiation("OUTBOUND".into())).as_deref(),
            Some("OUTBOUND in SKIP_INITIATION_METHODS")
        );
        assert_eq!(
            text(Outcome::TransferredOut).as_deref(),
            Some("transferred out: the next leg has its own CTR")
        );
        assert_eq!(
            text(Outcome::Dropped {
                disconnect_reason: None
            }),
            None
        );
        assert_eq!(text(Outcome::Handoff), None);
    }

    /// A record's own text (here a channel with a phone number in it) is never quoted.
    #[test]
    fn skip_reason_quotes_only_plain_connect_values() {
        let reason = SkipReason::for_outcome(&Outcome::SkippedChannel("chat +15550100".into()));
        assert_eq!(reason, Some(SkipReason::ChannelNotConfigured(None)));
        assert_eq!(reason.unwrap().to_string(), "channel not in CTR_CHANNELS");
        let env = envelope(&[String::from_utf8(ctr("2024-01-01T00:00:00Z", ""))
            .unwrap()
            .replace("VOICE", "CHAT")
            .into_bytes()]);
        let plan = plan_of(&env);
        assert_eq!(
            plan.records[0].skip_reason,
            Some(SkipReason::ChannelNotConfigured(Some("CHAT".into())))
        );
    }

    #[test]
    fn dead_letter_keeps_original_data_and_position() {
        let env = envelope(&[b"garbage".to_vec()]);
        let plan = plan_of(&env);
        let letter = &plan.letters[0].effect;
        assert_eq!(letter.data, "Z2FyYmFnZQ==");
        assert_eq!(letter.shard_id.as_deref(), Some("shardId-000000000000"));
        assert_eq!(letter.sequence_number, "100");
        assert_eq!(letter.kind, "poison_record");
        assert_eq!(letter.error.code, "invalid_json");
    }
}
