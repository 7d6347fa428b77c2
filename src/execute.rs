//! Execute: performs a plan's effects under one deadline shared by Salesforce calls and
//! dead-letter sends. Knows nothing of Kinesis.
//!
//! Poison letters do not depend on Salesforce, so they go out while the Case writes run; the
//! letters for Cases Salesforce rejected go out once those answers are in. Every send stops at
//! the deadline (which already keeps the invocation's safety margin): a letter that cannot be
//! sent in time leaves its record reported for retry. Callback requests are queued last, for
//! the Cases the writes say exist ([`report::callbacks_to_queue`]): one SQS call per 10, and
//! never a call to Amazon Connect (the callback function starts the tasks at Connect's pace).

use crate::case::CaseRecord;
use crate::effect::{CallbackSink, CaseSink, LetterSink, Lookups, WriteReport};
use crate::plan::{InputRecord, Plan};
use crate::report::{self, Executed};
use crate::retry::Deadline;

/// Performs `plan`'s effects through `cases`, `letters` and `callbacks` before `deadline`.
pub async fn execute<C: CaseSink, L: LetterSink, B: CallbackSink>(
    plan: &Plan,
    inputs: &[InputRecord<'_>],
    cases: &C,
    letters: &L,
    callbacks: &B,
    deadline: Deadline,
) -> Executed {
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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let rejection_letters = report::follow_up_letters(plan, inputs, &writes, now, plan.park_after);
    let rejection_sends = if rejection_letters.is_empty() {
        Vec::new()
    } else {
        let refs: Vec<_> = rejection_letters.iter().map(|k| &k.effect).collect();
        letters.send_letters(&refs, deadline).await
    };
    let callback_state_results = match &plan.callback_state_field {
        Some(field) if !plan.callback_states.is_empty() => {
            let updates: Vec<(&str, &str)> = plan
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
    let queued = report::callbacks_to_queue(plan, &writes);
    let callback_sends = if queued.is_empty() {
        Vec::new()
    } else {
        let refs: Vec<_> = queued.iter().map(|k| &k.effect).collect();
        callbacks.queue_callbacks(&refs, deadline).await
    };
    Executed {
        writes,
        poison_sends,
        rejection_letters,
        rejection_sends,
        callbacks: queued,
        callback_sends,
        callback_state_results,
    }
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
