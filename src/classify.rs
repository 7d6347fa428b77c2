//! What happened to a contact, and whether it gets a Case.
//!
//! Pure: no I/O. Implements the decision table of docs/cases.md (first match wins):
//!
//! | # | condition | outcome |
//! |---|-----------|---------|
//! | 1 | record cannot be decoded / no valid ContactId | poison (handled by the caller) |
//! | 1a | the contact is one of our callback tasks (its marker attribute) | [`Outcome::CallbackTask`] |
//! | 2 | Channel not in the configured channels (default VOICE; absent = VOICE) | [`Outcome::SkippedChannel`] |
//! | 3 | InitiationMethod is not inbound-like (OUTBOUND, MONITOR, …) | [`Outcome::SkippedInitiation`] |
//! | 4 | Agent present | [`Outcome::HappyPath`] ([`HappyPath::LiveAgent`]) |
//! | 5 | status attribute says the virtual agent resolved / handed off | [`Outcome::HappyPath`] ([`HappyPath::VirtualAgentResolved`] / [`HappyPath::VirtualAgentHandoff`]) |
//! | 6 | NextContactId set | [`Outcome::TransferredOut`] |
//! | 7 | Queue present, no Agent | [`Outcome::QueuedAbandoned`] |
//! | 8 | otherwise | [`Outcome::Dropped`] |
//!
//! [`Outcome::Handoff`] is not in the table: the contact-flow function files it during the
//! call, before any CTR exists.

use serde::Serialize;

use crate::ctr::Ctr;

/// The contact attribute that marks a task as ctr-cases' callback (its value is the dropped
/// ContactId; [`crate::callback`] sets it): such a contact is [`Outcome::CallbackTask`].
pub const CALLBACK_FOR_ATTRIBUTE: &str = "ctrCasesCallbackFor";

/// Which kind of happy path a contact took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HappyPath {
    /// An agent was connected.
    LiveAgent,
    /// The contact flow's status attribute says the virtual agent resolved the request.
    VirtualAgentResolved,
    /// The contact flow's status attribute says the virtual agent handed the caller off (and
    /// no agent was connected on this leg).
    VirtualAgentHandoff,
}

/// The classification of one contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not a channel we handle (e.g. CHAT when only VOICE is configured).
    SkippedChannel(String),
    /// Not an inbound contact (OUTBOUND, MONITOR, …).
    SkippedInitiation(String),
    /// Served by an agent or the virtual agent.
    HappyPath(HappyPath),
    /// This leg was transferred on; the next leg has its own CTR.
    TransferredOut,
    /// Queued, then left before an agent answered.
    QueuedAbandoned,
    /// Lost in the IVR before anyone served the caller. Keeps the disconnect reason.
    Dropped {
        /// `CUSTOMER_DISCONNECT`, `TELECOM_PROBLEM`, … when the CTR has one.
        disconnect_reason: Option<String>,
    },
    /// The virtual agent is handing the caller to a live agent right now (the contact-flow
    /// function's hand-off Case, filed during the call).
    Handoff,
    /// One of our callback tasks ([`CALLBACK_FOR_ATTRIBUTE`]): never a Case,
    /// never another task, never an update of the dropped call's Case.
    CallbackTask,
}

impl Outcome {
    /// A stable snake_case name for logs, metrics and the replay output.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::SkippedChannel(_) => "skipped_channel",
            Outcome::SkippedInitiation(_) => "skipped_initiation",
            Outcome::HappyPath(HappyPath::LiveAgent) => "happy_path_live_agent",
            Outcome::HappyPath(HappyPath::VirtualAgentResolved) => {
                "happy_path_virtual_agent_resolved"
            }
            Outcome::HappyPath(HappyPath::VirtualAgentHandoff) => {
                "happy_path_virtual_agent_handoff"
            }
            Outcome::TransferredOut => "transferred_out",
            Outcome::QueuedAbandoned => "queued_abandoned",
            Outcome::Dropped { .. } => "dropped",
            Outcome::Handoff => "handoff",
            Outcome::CallbackTask => "callback_task",
        }
    }

    /// The key of this outcome's Case template (`CASE_TEMPLATES`), when it can have a Case.
    pub fn template_key(&self) -> Option<&'static str> {
        match self {
            Outcome::Dropped { .. } => Some("dropped"),
            Outcome::QueuedAbandoned => Some("queued_abandoned"),
            Outcome::HappyPath(HappyPath::LiveAgent) => Some("live_agent"),
            Outcome::HappyPath(HappyPath::VirtualAgentResolved) => Some("virtual_agent_resolved"),
            Outcome::HappyPath(HappyPath::VirtualAgentHandoff) => Some("virtual_agent_handoff"),
            Outcome::Handoff => Some("handoff"),
            Outcome::TransferredOut => Some("transferred_out"),
            Outcome::SkippedChannel(_) | Outcome::SkippedInitiation(_) | Outcome::CallbackTask => {
                None
            }
        }
    }
}

/// Every key [`Outcome::template_key`] can return, for validating `CASE_TEMPLATES`.
pub const TEMPLATE_KEYS: [&str; 7] = [
    "dropped",
    "queued_abandoned",
    "live_agent",
    "virtual_agent_resolved",
    "virtual_agent_handoff",
    "handoff",
    "transferred_out",
];

/// Classifier settings (see `config` for the environment variables behind them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassifyConfig {
    /// Channels handled, upper case. A CTR without Channel counts as VOICE.
    pub channels: Vec<String>,
    /// Initiation methods that are never a caller waiting for help, upper case.
    pub skipped_initiation_methods: Vec<String>,
    /// Contact attribute the flow sets to report the virtual agent's result.
    pub status_attribute: String,
    /// Values of that attribute (compared case-insensitively) that mean the virtual agent
    /// served the caller (resolved or handed off).
    pub resolved_values: Vec<String>,
    /// Which of those values mean a hand-off rather than a resolution.
    pub handoff_values: Vec<String>,
}

impl Default for ClassifyConfig {
    fn default() -> Self {
        ClassifyConfig {
            channels: vec!["VOICE".into()],
            skipped_initiation_methods: [
                "OUTBOUND",
                "EXTERNAL_OUTBOUND",
                "MONITOR",
                "AGENT_REPLY",
                "DISCONNECT",
                "CAMPAIGN",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            status_attribute: "VirtualAgentStatus".into(),
            resolved_values: vec!["resolved".into(), "handed_off".into()],
            handoff_values: vec!["handed_off".into()],
        }
    }
}

/// Which outcomes get a Case besides dropped calls (which always do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CasePolicy {
    /// File a Case for happy-path contacts too (the hand-off Case a live agent picks up).
    pub happy_path: bool,
    /// File a Case for callers who abandoned in a queue (the reference skips them).
    pub queued_abandoned: bool,
}

impl CasePolicy {
    /// Whether `outcome` gets a Case under this policy.
    pub fn wants_case(&self, outcome: &Outcome) -> bool {
        match outcome {
            Outcome::Dropped { .. } => true,
            Outcome::HappyPath(_) => self.happy_path,
            Outcome::QueuedAbandoned => self.queued_abandoned,
            Outcome::Handoff => true,
            Outcome::SkippedChannel(_)
            | Outcome::SkippedInitiation(_)
            | Outcome::TransferredOut
            | Outcome::CallbackTask => false,
        }
    }
}

/// Classifies a decoded CTR (rows 1a–8 of the table; row 1 is a decode failure).
///
/// ```
/// use ctr_cases::classify::{classify, ClassifyConfig, Outcome};
/// use ctr_cases::ctr::Ctr;
/// let ivr_only = Ctr::from_json(r#"{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe",
///     "Channel":"VOICE","Agent":null,"Queue":null,
///     "DisconnectReason":"CUSTOMER_DISCONNECT"}"#.to_owned()).unwrap();
/// assert_eq!(
///     classify(&ivr_only, &ClassifyConfig::default()),
///     Outcome::Dropped { disconnect_reason: Some("CUSTOMER_DISCONNECT".into()) }
/// );
/// ```
pub fn classify(ctr: &Ctr, config: &ClassifyConfig) -> Outcome {
    if ctr.attributes.contains_key(CALLBACK_FOR_ATTRIBUTE) {
        return Outcome::CallbackTask;
    }
    let channel = ctr.channel.as_deref().unwrap_or("VOICE");
    if !config
        .channels
        .iter()
        .any(|c| c.eq_ignore_ascii_case(channel))
    {
        return Outcome::SkippedChannel(channel.to_owned());
    }
    if let Some(method) = ctr.initiation_method.as_deref()
        && config
            .skipped_initiation_methods
            .iter()
            .any(|m| m.eq_ignore_ascii_case(method))
    {
        return Outcome::SkippedInitiation(method.to_owned());
    }
    if ctr.has_agent {
        return Outcome::HappyPath(HappyPath::LiveAgent);
    }
    if let Some(status) = ctr.attributes.get(&config.status_attribute)
        && config
            .resolved_values
            .iter()
            .any(|v| v.eq_ignore_ascii_case(status.trim()))
    {
        let handoff = config
            .handoff_values
            .iter()
            .any(|v| v.eq_ignore_ascii_case(status.trim()));
        return Outcome::HappyPath(if handoff {
            HappyPath::VirtualAgentHandoff
        } else {
            HappyPath::VirtualAgentResolved
        });
    }
    if ctr
        .next_contact_id
        .as_deref()
        .is_some_and(|id| !id.is_empty())
    {
        return Outcome::TransferredOut;
    }
    if ctr.queue.is_some() {
        return Outcome::QueuedAbandoned;
    }
    Outcome::Dropped {
        disconnect_reason: ctr.disconnect_reason.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CTR with `extra` fields; Channel VOICE and InitiationMethod INBOUND unless given.
    fn ctr(extra: &str) -> Ctr {
        let mut fields = vec![r#""ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe""#.to_owned()];
        if !extra.contains("\"Channel\"") {
            fields.push(r#""Channel":"VOICE""#.to_owned());
        }
        if !extra.contains("\"InitiationMethod\"") {
            fields.push(r#""InitiationMethod":"INBOUND""#.to_owned());
        }
        if !extra.is_empty() {
            fields.push(extra.to_owned());
        }
        Ctr::from_json(format!("{{{}}}", fields.join(","))).unwrap()
    }

    fn outcome(extra: &str) -> Outcome {
        classify(&ctr(extra), &ClassifyConfig::default())
    }

    #[test]
    fn other_channel_is_skipped() {
        assert_eq!(
            outcome(r#""Channel":"CHAT","Agent":null"#),
            Outcome::SkippedChannel("CHAT".into())
        );
    }

    #[test]
    fn absent_channel_counts_as_voice() {
        let ctr = Ctr::from_json(r#"{"ContactId":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe"}"#.into())
            .unwrap();
        assert!(matches!(
            classify(&ctr, &ClassifyConfig::default()),
            Outcome::Dropped { .. }
        ));
    }

    #[test]
    fn configured_channels_are_case_insensitive() {
        let config = ClassifyConfig {
            channels: vec!["voice".into(), "CHAT".into()],
            ..ClassifyConfig::default()
        };
        assert!(matches!(
            classify(&ctr(r#""Channel":"CHAT""#), &config),
            Outcome::Dropped { .. }
        ));
    }

    #[test]
    fn outbound_is_skipped_even_with_agent() {
        assert_eq!(
            outcome(r#""InitiationMethod":"OUTBOUND","Agent":{"Username":"x"}"#),
            Outcome::SkippedInitiation("OUTBOUND".into())
        );
    }

    #[test]
    fn agent_present_is_happy_path() {
        assert_eq!(
            outcome(r#""Agent":{},"Queue":{"Name":"q"}"#),
            Outcome::HappyPath(HappyPath::LiveAgent)
        );
    }

    #[test]
    fn resolved_status_attribute_is_virtual_agent_happy_path() {
        assert_eq!(
            outcome(r#""Attributes":{"VirtualAgentStatus":" Resolved "}"#),
            Outcome::HappyPath(HappyPath::VirtualAgentResolved)
        );
        assert_eq!(
            outcome(r#""Attributes":{"VirtualAgentStatus":"HANDED_OFF"}"#),
            Outcome::HappyPath(HappyPath::VirtualAgentHandoff)
        );
    }

    #[test]
    fn other_status_value_is_still_dropped() {
        assert!(matches!(
            outcome(r#""Attributes":{"VirtualAgentStatus":"in_progress"}"#),
            Outcome::Dropped { .. }
        ));
    }

    #[test]
    fn status_attribute_name_is_configurable() {
        let config = ClassifyConfig {
            status_attribute: "botResult".into(),
            resolved_values: vec!["done".into()],
            ..ClassifyConfig::default()
        };
        let c = ctr(r#""Attributes":{"botResult":"DONE","VirtualAgentStatus":"resolved"}"#);
        assert_eq!(
            classify(&c, &config),
            Outcome::HappyPath(HappyPath::VirtualAgentResolved)
        );
        let c = ctr(r#""Attributes":{"VirtualAgentStatus":"resolved"}"#);
        assert!(matches!(classify(&c, &config), Outcome::Dropped { .. }));
    }

    #[test]
    fn next_contact_id_is_transferred_out() {
        assert_eq!(
            outcome(
                r#""NextContactId":"0eeeb618-d2a9-46ce-9ad9-0c76a60cff8e","Queue":{"Name":"q"}"#
            ),
            Outcome::TransferredOut
        );
    }

    #[test]
    fn callback_task_is_never_a_dropped_call_even_on_a_handled_channel() {
        let config = ClassifyConfig {
            channels: vec!["VOICE".into(), "TASK".into()],
            skipped_initiation_methods: Vec::new(),
            ..ClassifyConfig::default()
        };
        let c = ctr(
            r#""Channel":"TASK","InitiationMethod":"API","Attributes":{"ctrCasesCallbackFor":"5ca32fbd-8f92-46af-92a5-6b0f970f0efe"}"#,
        );
        assert_eq!(classify(&c, &config), Outcome::CallbackTask);
        assert_eq!(Outcome::CallbackTask.template_key(), None);
        assert!(
            !CasePolicy {
                happy_path: true,
                queued_abandoned: true
            }
            .wants_case(&Outcome::CallbackTask)
        );
    }

    #[test]
    fn queue_without_agent_is_queued_abandoned() {
        assert_eq!(outcome(r#""Queue":{"Name":"q"}"#), Outcome::QueuedAbandoned);
    }

    #[test]
    fn nothing_is_dropped_with_reason() {
        assert_eq!(
            outcome(r#""Agent":null,"Queue":null,"DisconnectReason":"CONTACT_FLOW_DISCONNECT""#),
            Outcome::Dropped {
                disconnect_reason: Some("CONTACT_FLOW_DISCONNECT".into())
            }
        );
    }

    #[test]
    fn transfer_initiated_leg_is_classified_like_inbound() {
        assert_eq!(
            outcome(r#""InitiationMethod":"TRANSFER","Agent":{}"#),
            Outcome::HappyPath(HappyPath::LiveAgent)
        );
    }

    #[test]
    fn policy_files_cases_for_dropped_only_by_default() {
        let policy = CasePolicy::default();
        assert!(policy.wants_case(&Outcome::Dropped {
            disconnect_reason: None
        }));
        assert!(!policy.wants_case(&Outcome::QueuedAbandoned));
        assert!(!policy.wants_case(&Outcome::HappyPath(HappyPath::LiveAgent)));
        assert!(!policy.wants_case(&Outcome::TransferredOut));
        let all = CasePolicy {
            happy_path: true,
            queued_abandoned: true,
        };
        assert!(all.wants_case(&Outcome::QueuedAbandoned));
        assert!(all.wants_case(&Outcome::HappyPath(HappyPath::VirtualAgentResolved)));
        assert!(!all.wants_case(&Outcome::SkippedChannel("CHAT".into())));
    }
}
