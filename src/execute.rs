//! Execute: performs effects decided elsewhere, under one deadline shared by Salesforce calls
//! and queue sends. Decides nothing and reads no clock; knows nothing of Kinesis.
//!
//! Two passes per batch. [`execute`] performs the plan's effects: the Case writes (after the
//! customer lookups they need) and, concurrently, the poison letters, which do not depend on
//! Salesforce. [`follow_up`] then performs what the report decided from those write results
//! ([`FollowUps`]): the letters for Cases Salesforce rejected (and parked records), then the
//! callback states, then the callback requests (one SQS call per 10, never a call to Amazon
//! Connect: the callback function starts the tasks at Connect's pace). Every send stops at the
//! deadline (which already keeps the invocation's safety margin): a letter that cannot be sent
//! in time leaves its record reported for retry.
//!
//! The contact-flow function has one effect, [`handoff`]: its hand-off Case, written and read
//! back within the flow's answer time.

use std::time::Duration;

use crate::case::CaseRecord;
use crate::effect::{
    CallbackSink, CaseSink, Failure, HandoffOutcome, HandoffSink, LetterSink, Lookups, SendOutcome,
    WriteReport,
};
use crate::plan::Plan;
use crate::report::FollowUps;
use crate::retry::Deadline;

/// What the first pass did.
#[derive(Debug, Default)]
pub struct Written {
    /// One outcome per [`Plan::cases`] entry, with the call counts (lookups included).
    pub writes: WriteReport,
    /// One outcome per [`Plan::letters`] entry (the poison letters).
    pub poison_sends: Vec<SendOutcome>,
}

/// What the second pass did.
#[derive(Debug, Default)]
pub struct FollowedUp {
    /// One outcome per [`FollowUps::letters`] entry.
    pub letter_sends: Vec<SendOutcome>,
    /// One result per [`FollowUps::callback_states`] entry (`None`: written); empty when no
    /// callback state field is set.
    pub callback_state_results: Vec<Option<Failure>>,
    /// One outcome per [`FollowUps::callbacks`] entry.
    pub callback_sends: Vec<SendOutcome>,
}

/// The first pass: performs `plan`'s Case writes through `cases` and its poison letters
/// through `letters`, concurrently, before `deadline`.
pub async fn execute<C: CaseSink, L: LetterSink>(
    plan: &Plan,
    cases: &C,
    letters: &L,
    deadline: Deadline,
) -> Written {
    let poison: Vec<_> = plan.letters.iter().map(|k| &k.effect).collect();
    let (writes, poison_sends) = tokio::join!(
        async {
            if plan.cases.is_empty() {
                return WriteReport::default();
            }
            let (linked, lookups) = link_customers(plan, cases, deadline).await;
            let writes: Vec<&CaseRecord> = plan
                .cases
                .iter()
                .zip(&linked)
                .map(|(k, linked)| linked.as_ref().unwrap_or(&k.effect))
                .collect();
            let mut report = cases.write_cases(&writes, deadline).await;
            report.api_calls += lookups.api_calls;
            report.token_requests += lookups.token_requests;
            report
        },
        async {
            if poison.is_empty() {
                Vec::new()
            } else {
                letters.send_letters(&poison, deadline).await
            }
        },
    );
    Written {
        writes,
        poison_sends,
    }
}

/// The second pass: performs `follow_ups` before `deadline`, one after the other: the letters
/// through `letters`, the callback states through `cases`, the callback requests through
/// `callbacks`. An empty list makes no call.
pub async fn follow_up<C: CaseSink, L: LetterSink, B: CallbackSink>(
    follow_ups: &FollowUps<'_>,
    cases: &C,
    letters: &L,
    callbacks: &B,
    deadline: Deadline,
) -> FollowedUp {
    let letter_sends = if follow_ups.letters.is_empty() {
        Vec::new()
    } else {
        let refs: Vec<_> = follow_ups.letters.iter().map(|k| &k.effect).collect();
        letters.send_letters(&refs, deadline).await
    };
    let callback_state_results = match follow_ups.callback_state_field {
        Some(field) if !follow_ups.callback_states.is_empty() => {
            let updates: Vec<(&str, &str)> = follow_ups
                .callback_states
                .iter()
                .map(|k| (k.effect.0.as_str(), k.effect.1.as_str()))
                .collect();
            cases
                .record_callback_states(&updates, field, deadline)
                .await
        }
        _ => Vec::new(),
    };
    let callback_sends = if follow_ups.callbacks.is_empty() {
        Vec::new()
    } else {
        let refs: Vec<_> = follow_ups.callbacks.iter().map(|k| &k.effect).collect();
        callbacks.queue_callbacks(&refs, deadline).await
    };
    FollowedUp {
        letter_sends,
        callback_state_results,
        callback_sends,
    }
}

/// The contact-flow function's one effect: files the hand-off `case` through `sink` before
/// `deadline`, giving up after `timeout` (the flow's answer time).
pub async fn handoff<S: HandoffSink>(
    case: &CaseRecord,
    sink: &S,
    timeout: Duration,
    deadline: Deadline,
) -> HandoffOutcome {
    tokio::time::timeout(timeout, sink.file_handoff(case, deadline))
        .await
        .unwrap_or(HandoffOutcome::TimedOut)
}

/// Customer linking by number: looks up the callers of the Cases that need it (one call per
/// 25 numbers) and returns, per Case, a copy with the link set when exactly one Contact
/// matched (`None`: write the planned Case as it is).
async fn link_customers<C: CaseSink>(
    plan: &Plan,
    cases: &C,
    deadline: Deadline,
) -> (Vec<Option<CaseRecord>>, Lookups) {
    let numbers: Vec<&str> = plan
        .cases
        .iter()
        .filter_map(|k| k.effect.lookup_number.as_deref())
        .collect();
    if numbers.is_empty() {
        return (vec![None; plan.cases.len()], Lookups::default());
    }
    let lookups = cases.find_customers(&numbers, deadline).await;
    if let Some(failure) = &lookups.failure {
        tracing::warn!(
            error = %failure.summary,
            error_code = %failure.code,
            "customer lookup failed; those Cases are written without a Contact link"
        );
    }
    let mut links = lookups.links.iter();
    let linked = plan
        .cases
        .iter()
        .map(|k| {
            k.effect.lookup_number.as_ref()?;
            let link = links.next()?.as_ref()?;
            let mut case = k.effect.clone();
            case.fields
                .insert("ContactId".into(), link.contact_id.clone().into());
            if let Some(account) = &link.account_id {
                case.fields
                    .insert("AccountId".into(), account.clone().into());
            }
            Some(case)
        })
        .collect();
    (linked, lookups)
}
