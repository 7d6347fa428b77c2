//! Execute: performs a plan's effects under one deadline shared by Salesforce calls and
//! dead-letter sends. Knows nothing of Kinesis.
//!
//! Poison letters do not depend on Salesforce, so they go out while the Case writes run; the
//! letters for Cases Salesforce rejected go out once those answers are in. Every send stops at
//! the deadline (which already keeps the invocation's safety margin): a letter that cannot be
//! sent in time leaves its record reported for retry.

use crate::effect::{CaseSink, LetterSink};
use crate::plan::{InputRecord, Plan};
use crate::report::{self, Executed};
use crate::retry::Deadline;

/// Performs `plan`'s effects through `cases` and `letters` before `deadline`.
pub async fn execute<C: CaseSink, L: LetterSink>(
    plan: &Plan,
    inputs: &[InputRecord<'_>],
    cases: &C,
    letters: &L,
    deadline: Deadline,
) -> Executed {
    let writes: Vec<_> = plan.cases.iter().map(|k| &k.effect).collect();
    let poison: Vec<_> = plan.letters.iter().map(|k| &k.effect).collect();
    let (writes, poison_sends) = tokio::join!(
        async {
            if writes.is_empty() {
                Default::default()
            } else {
                cases.write_cases(&writes, deadline).await
            }
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
    Executed {
        writes,
        poison_sends,
        rejection_letters,
        rejection_sends,
    }
}
