//! Real orgs against the fake org of tests/support (which follows Salesforce's documentation):
//! assignment rules never take an agent's Case, the org is checked before any record is
//! touched, a configuration the org refuses holds instead of dead-lettering, a Case hidden by
//! Private sharing is a dead letter of its own kind that never blocks the shard, and a record
//! that keeps failing is parked before the stream forgets it.
//! See: issue "Real orgs".

mod support;

use std::collections::HashMap;
use std::time::Duration;

use ctr_cases::app::AppState;
use ctr_cases::event::KinesisEnvelope;
use ctr_cases::flow;
use ctr_cases::metrics;
use ctr_cases::report::Action;
use ctr_cases::retry::Deadline;
use ctr_cases::stream::{BatchOutcome, process_batch};
use serde_json::{Value, json};
use support::fake_salesforce::{
    self, CaseAccess, DEFAULT_CASE_OWNER, FakeSalesforce, Fault, FieldType, OUTCOME_FIELD,
    ShareAccess, USER_ID_18,
};
use support::fixtures::*;
use support::process::{self, Lambda, field};
use support::shard::{epoch_secs, records};

const MINUTE: Duration = Duration::from_secs(60);
/// The active Case assignment rule of the orgs below, and the queue it routes Cases to.
const RULE: (&str, &str, &str) = (
    "01QFAKE00000001AAA",
    "Dropped calls to the callback queue",
    "00GFAKE00000001AAA",
);
const QUEUE: &str = RULE.2;
/// The agent who takes a Case.
const AGENT: &str = "005000000000042AAA";

/// The test environment with the org check on (re-checked at once while it fails).
fn env_for(fake: &FakeSalesforce, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env = fake_env(fake);
    env.insert("SALESFORCE_ORG_CHECK".into(), "true".into());
    env.insert("SALESFORCE_ORG_CHECK_RETRY_SECONDS".into(), "0".into());
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    env
}

/// A CTR of contact `n` at version `updated`, dropped or (with `agent`) handled by an agent,
/// with `attributes` added.
fn ctr(n: u64, updated: &str, agent: bool, attributes: Value) -> Vec<u8> {
    ctr_after(
        &contact_uuid(n),
        &caller_number(n),
        updated,
        agent,
        attributes,
    )
}

async fn run(state: &AppState, datas: &[Vec<u8>], first_seq: u64) -> BatchOutcome {
    process_batch(
        state,
        &kinesis_event(datas, first_seq),
        Deadline::after(MINUTE),
    )
    .await
}

fn owner(fake: &FakeSalesforce, n: u64) -> String {
    let case = fake.org.case(&contact_uuid(n)).expect("the Case exists");
    case["OwnerId"].as_str().unwrap_or_default().to_owned()
}

fn case_id(fake: &FakeSalesforce, n: u64) -> String {
    let case = fake.org.case(&contact_uuid(n)).expect("the Case exists");
    case["Id"].as_str().unwrap().to_owned()
}

/// A Connect "Invoke AWS Lambda function" event for contact `n`.
fn invoke_event(n: u64, previous: Option<u64>, attributes: Value) -> Value {
    let mut data = json!({
        "ContactId": contact_uuid(n),
        "InitialContactId": contact_uuid(previous.unwrap_or(n)),
        "Channel": "VOICE",
        "InitiationMethod": if previous.is_some() { "TRANSFER" } else { "INBOUND" },
        "CustomerEndpoint": {"Type": "TELEPHONE_NUMBER", "Address": caller_number(n)},
        "Attributes": attributes
    });
    if let Some(p) = previous {
        data["PreviousContactId"] = json!(contact_uuid(p));
    }
    json!({"Name": "ContactFlowEvent", "Details": {"Parameters": {}, "ContactData": data}})
}

async fn hand_off(state: &AppState, event: Value) -> HashMap<String, String> {
    flow::respond(state, event, Deadline::after(Duration::from_secs(8))).await
}

/// (a) With an active assignment rule and the default setting, the rule routes each new Case;
/// once an agent owns it, no later write reassigns it: a redelivery, a newer CTR version, the
/// CTR completing a hand-off Case, and a transferred leg. Every write to an existing Case
/// says `Sforce-Auto-Assign: FALSE`, in collections and composite requests alike.
#[tokio::test]
async fn the_rule_routes_new_cases_and_never_takes_an_agents_case() {
    let fake = fake_salesforce::start().await;
    fake.org.set_assignment_rule(Some(RULE));
    let state = app_state(&env_for(&fake, &[]));

    // A dropped call: the rule routes the new Case to the callback queue.
    let v1 = ctr(1, "2024-02-25T08:36:30Z", false, json!({}));
    let outcome = run(&state, std::slice::from_ref(&v1), 1).await;
    assert_eq!(
        outcome.reports[0].created,
        Some(true),
        "{:?}",
        outcome.reports
    );
    assert_eq!(owner(&fake, 1), QUEUE);
    fake.org.assign_case(&case_id(&fake, 1), AGENT);

    // Redelivered, then a newer version: the agent keeps the Case.
    let outcome = run(&state, std::slice::from_ref(&v1), 2).await;
    assert_eq!(outcome.reports[0].action, Action::Unchanged);
    let v2 = ctr(1, "2024-02-25T09:00:00Z", false, json!({"note": "later"}));
    let outcome = run(&state, &[v2], 3).await;
    assert_eq!(outcome.reports[0].action, Action::UpsertCase);
    assert_eq!(outcome.reports[0].created, Some(false));
    assert_eq!(owner(&fake, 1), AGENT);

    // The flow files a hand-off Case (routed by the rule), an agent takes it, then the CTR
    // completes it and a transferred leg's flow updates it: the agent keeps it throughout.
    let first = hand_off(&state, invoke_event(2, None, json!({}))).await;
    let id = first
        .get("caseId")
        .cloned()
        .unwrap_or_else(|| panic!("{first:?}"));
    assert_eq!(owner(&fake, 2), QUEUE);
    fake.org.assign_case(&id, AGENT);
    let done = ctr(
        2,
        "2024-02-25T10:00:00Z",
        true,
        json!({"ctrCasesCaseId": id}),
    );
    let outcome = run(&state, &[done], 4).await;
    assert_eq!(
        outcome.reports[0].action,
        Action::UpsertCase,
        "{:?}",
        outcome.reports
    );
    let leg = hand_off(
        &state,
        invoke_event(3, Some(2), json!({"ctrCasesCaseId": id})),
    )
    .await;
    assert_eq!(leg.get("caseId"), Some(&id), "{leg:?}");
    assert_eq!(owner(&fake, 2), AGENT);
    assert_eq!(fake.org.case_count(), 2);

    // What the org saw: every write to an existing Case said FALSE; creates ran the rule.
    let headers = fake.org.assign_headers();
    assert!(!headers.is_empty());
    for h in &headers {
        let expected = if h.call.contains("create") {
            "TRUE"
        } else {
            "FALSE"
        };
        assert_eq!(h.value.as_deref(), Some(expected), "{headers:#?}");
    }
    assert!(
        headers.iter().any(|h| h.in_composite && h.call == "update"),
        "{headers:#?}"
    );
}

/// (a) `CASE_ASSIGNMENT_RULES=never`: no rule runs on create either; the integration user owns
/// the new Case (the org's Default Case Owner is not used). An AssignmentRule Id runs that rule.
#[tokio::test]
async fn never_runs_no_rule_and_a_rule_id_runs_that_rule() {
    let fake = fake_salesforce::start().await;
    fake.org.set_assignment_rule(Some(RULE));
    let never = app_state(&env_for(&fake, &[("CASE_ASSIGNMENT_RULES", "never")]));
    run(
        &never,
        &[ctr(1, "2024-02-25T08:36:30Z", false, json!({}))],
        1,
    )
    .await;
    assert_eq!(owner(&fake, 1), USER_ID_18);
    assert_ne!(owner(&fake, 1), DEFAULT_CASE_OWNER);

    let by_id = app_state(&env_for(&fake, &[("CASE_ASSIGNMENT_RULES", RULE.0)]));
    run(
        &by_id,
        &[ctr(2, "2024-02-25T08:36:30Z", false, json!({}))],
        2,
    )
    .await;
    assert_eq!(owner(&fake, 2), QUEUE);
    let values: Vec<Option<String>> = fake
        .org
        .assign_headers()
        .into_iter()
        .map(|h| h.value)
        .collect();
    assert_eq!(values, [Some("FALSE".into()), Some(RULE.0.into())]);
}

/// One way an org can refuse the default configuration, and the field the error must name.
struct Breakage {
    name: &'static str,
    field: &'static str,
    apply: fn(&FakeSalesforce),
}

const BREAKAGES: [Breakage; 4] = [
    Breakage {
        name: "Status picklist without New",
        field: "Status",
        apply: |f| {
            f.org
                .set_picklist("Status", &["Open", "Working", "Closed"], true)
        },
    },
    Breakage {
        name: "read-only mapped field",
        field: "Subject",
        apply: |f| f.org.set_case_field_access("Subject", false, false),
    },
    Breakage {
        name: "custom field not deployed",
        field: OUTCOME_FIELD,
        apply: |f| f.org.remove_case_field(OUTCOME_FIELD),
    },
    Breakage {
        name: "required field not mapped",
        field: "Product__c",
        apply: |f| {
            f.org
                .add_case_field("Product__c", FieldType::Text(80), true)
        },
    },
];

/// (b) For each broken org: no letters but the poison record's and the aged record's parked
/// one, every other record held, the error names the field, `ConfigurationInvalid` is 1, and
/// the first invocation after the org is fixed writes the Cases (no redeploy).
#[tokio::test]
async fn a_broken_org_holds_every_record_until_it_is_fixed() {
    for breakage in &BREAKAGES {
        let fake = fake_salesforce::start().await;
        (breakage.apply)(&fake);
        let state = app_state(&env_for(&fake, &[]));
        let fresh: Vec<Vec<u8>> = (1..4)
            .map(|n| ctr(n, "2024-02-25T08:36:30Z", false, json!({})))
            .collect();
        let mut batch = records(&fresh, 10, Some(epoch_secs(0.0)));
        batch.extend(records(&[b"not json".to_vec()], 13, Some(epoch_secs(0.0))));
        let aged = ctr(4, "2024-02-25T08:36:30Z", false, json!({}));
        batch.extend(records(&[aged], 14, Some(epoch_secs(-30.0 * 3600.0))));
        let event = KinesisEnvelope { records: batch };

        let outcome = process_batch(&state, &event, Deadline::after(MINUTE)).await;
        let name = breakage.name;
        let held: Vec<Option<String>> = outcome
            .reports
            .iter()
            .filter(|r| r.action == Action::Retry)
            .map(|r| r.contact_id.clone())
            .collect();
        let expected: Vec<Option<String>> = (1..4).map(|n| Some(contact_uuid(n))).collect();
        assert_eq!(held, expected, "{name}: {:?}", outcome.reports);
        assert_eq!(failures(&outcome.response).len(), 3, "{name}");
        let kinds: Vec<String> = state
            .dead_letters
            .held()
            .iter()
            .map(|l| l.kind.to_string())
            .collect();
        assert_eq!(kinds, ["poison_record", "parked"], "{name}");
        let why = outcome
            .summary
            .configuration_invalid
            .clone()
            .unwrap_or_default();
        assert!(why.contains(breakage.field), "{name}: {why}");
        assert!(outcome.summary.salesforce_unavailable.is_none(), "{name}");
        let values = metrics::metric_values(&outcome.summary, 0);
        assert!(
            values.contains(&("ConfigurationInvalid", 1)),
            "{name}: {values:?}"
        );
        assert_eq!(fake.org.case_count(), 0, "{name}");
        assert_eq!(fake.org.calls_by_kind().get("describe"), Some(&1), "{name}");
        assert_eq!(fake.org.api_calls(), 1, "{name}: only the describe");

        // Fixed in the org: the next invocation checks again and writes the Cases.
        fake.org.reset_case_schema();
        let outcome = run(&state, &fresh, 10).await;
        assert!(
            outcome.response.batch_item_failures.is_empty(),
            "{name}: {:?}",
            outcome.reports
        );
        assert_eq!(fake.org.case_count(), 3, "{name}");
        assert!(outcome.summary.configuration_invalid.is_none(), "{name}");
    }
}

/// The org check costs one describe per container: later invocations make only their own calls.
#[tokio::test]
async fn the_org_is_described_once_per_container() {
    let fake = fake_salesforce::start().await;
    let state = app_state(&env_for(&fake, &[]));
    let first = run(
        &state,
        &[ctr(1, "2024-02-25T08:36:30Z", false, json!({}))],
        1,
    )
    .await;
    assert_eq!(first.summary.salesforce_api_calls, 2, "describe + create");
    let second = run(
        &state,
        &[ctr(2, "2024-02-25T08:36:30Z", false, json!({}))],
        2,
    )
    .await;
    assert_eq!(second.summary.salesforce_api_calls, 1);
    assert_eq!(fake.org.calls_by_kind().get("describe"), Some(&1));
}

/// The org's field lengths, not constants, decide where a value is cut.
#[tokio::test]
async fn values_are_cut_to_the_orgs_field_lengths() {
    let fake = fake_salesforce::start().await;
    fake.org.set_field_length("Subject", 12);
    let state = app_state(&env_for(&fake, &[]));
    let outcome = run(
        &state,
        &[ctr(1, "2024-02-25T08:36:30Z", false, json!({}))],
        1,
    )
    .await;
    assert!(
        outcome.response.batch_item_failures.is_empty(),
        "{:?}",
        outcome.reports
    );
    let subject = fake.org.case(&contact_uuid(1)).unwrap()["Subject"].clone();
    let subject = subject.as_str().unwrap();
    assert_eq!(subject.chars().count(), 12, "{subject}");
    assert!(subject.ends_with('…'), "{subject}");
}

/// The flow function answers `caseError: configuration` without writing when the org does not
/// fit.
#[tokio::test]
async fn the_flow_answers_configuration_without_writing() {
    let fake = fake_salesforce::start().await;
    fake.org.remove_case_field(OUTCOME_FIELD);
    let state = app_state(&env_for(&fake, &[]));
    let answer = hand_off(&state, invoke_event(1, None, json!({}))).await;
    assert_eq!(
        answer.get("caseError").map(String::as_str),
        Some("configuration")
    );
    assert_eq!(fake.org.case_count(), 0);
    assert_eq!(fake.org.calls_by_kind().get("composite"), None);
}

/// A rejection caused by the configuration that the org check could not foresee (a constant
/// outside a restricted picklist after the check passed) holds, and the org is described again;
/// a rejection of a value taken from the CTR stays the record's own dead letter.
#[tokio::test]
async fn configuration_rejections_hold_and_record_rejections_are_dead_letters() {
    let fake = fake_salesforce::start().await;
    let mapping = r#"{"Reason": "{DisconnectReason}"}"#;
    let state = app_state(&env_for(&fake, &[("CASE_FIELD_MAPPING", mapping)]));
    let outcome = run(
        &state,
        &[ctr(1, "2024-02-25T08:36:30Z", false, json!({}))],
        1,
    )
    .await;
    assert!(
        failures(&outcome.response).is_empty(),
        "{:?}",
        outcome.reports
    );

    // After the check passed, an admin deactivates "New": the constant is refused → held.
    fake.org.set_picklist("Status", &["Open", "Closed"], true);
    let outcome = run(
        &state,
        &[ctr(2, "2024-02-25T08:36:30Z", false, json!({}))],
        2,
    )
    .await;
    assert_eq!(
        outcome.reports[0].action,
        Action::Retry,
        "{:?}",
        outcome.reports
    );
    assert_eq!(
        outcome.reports[0].error.as_deref(),
        Some("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
    );
    let why = outcome.summary.configuration_invalid.unwrap_or_default();
    assert!(why.contains("Status"), "{why}");
    assert!(state.dead_letters.held().is_empty());
    // The rejection made the client forget its check: the next invocation describes again.
    let outcome = run(
        &state,
        &[ctr(2, "2024-02-25T08:36:30Z", false, json!({}))],
        3,
    )
    .await;
    assert_eq!(fake.org.calls_by_kind().get("describe"), Some(&2));
    assert!(
        outcome
            .summary
            .configuration_invalid
            .unwrap()
            .contains("Case.Status")
    );

    // A value from the CTR outside a restricted picklist: that record's own dead letter.
    fake.org.reset_case_schema();
    fake.org.set_picklist("Reason", &["Other"], true);
    let mut v: Value =
        serde_json::from_slice(&ctr(3, "2024-02-25T08:36:30Z", false, json!({}))).unwrap();
    v["DisconnectReason"] = json!("CUSTOMER_DISCONNECT");
    let outcome = run(&state, &[v.to_string().into_bytes()], 4).await;
    assert_eq!(
        outcome.reports[0].action,
        Action::DeadLetter,
        "{:?}",
        outcome.reports
    );
    assert_eq!(
        outcome.reports[0].error.as_deref(),
        Some("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
    );
    assert!(outcome.summary.configuration_invalid.is_none());
    assert_eq!(state.dead_letters.held().len(), 1);
}

/// (b) A Private-sharing org whose rule hands new Cases to a queue: the next CTR version of
/// such a contact is a `case_not_accessible` dead letter, and the records behind it are written
/// in the same invocation. With the shipped sharing rule the integration user sees and edits
/// those Cases again, and the letter's record goes through.
#[tokio::test]
async fn a_case_hidden_by_sharing_is_a_dead_letter_of_its_own_and_never_blocks_the_shard() {
    let fake = fake_salesforce::start().await;
    fake.org.set_assignment_rule(Some(RULE));
    fake.org.set_case_sharing(CaseAccess::Private);
    let state = app_state(&env_for(&fake, &[]));
    run(
        &state,
        &[ctr(1, "2024-02-25T08:36:30Z", false, json!({}))],
        1,
    )
    .await;
    assert_eq!(owner(&fake, 1), QUEUE);

    let newer = ctr(1, "2024-02-25T09:00:00Z", false, json!({}));
    let behind: Vec<Vec<u8>> = (2..5)
        .map(|n| ctr(n, "2024-02-25T09:00:00Z", false, json!({})))
        .collect();
    let batch = [vec![newer.clone()], behind].concat();
    let outcome = run(&state, &batch, 10).await;
    assert!(
        failures(&outcome.response).is_empty(),
        "{:?}",
        outcome.reports
    );
    assert_eq!(outcome.reports[0].action, Action::DeadLetter);
    assert_eq!(
        outcome.reports[0].error.as_deref(),
        Some("CASE_NOT_ACCESSIBLE")
    );
    let letters = state.dead_letters.held();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].kind.to_string(), "case_not_accessible");
    assert!(
        letters[0].error.message.contains("Sharing"),
        "{:?}",
        letters[0].error
    );
    assert!(outcome.reports[1..].iter().all(|r| r.created == Some(true)));

    // Access granted (the shipped criteria-based sharing rule): the record goes through.
    fake.org.set_case_sharing_rule(Some(ShareAccess::Edit));
    let outcome = run(&state, &[newer], 20).await;
    assert_eq!(
        outcome.reports[0].action,
        Action::UpsertCase,
        "{:?}",
        outcome.reports
    );
    assert_eq!(outcome.reports[0].created, Some(false));
}

/// The hand-off in a Private org: the rule hands the new Case to a queue inside the call, and
/// with the shipped sharing rule the call's read of its CaseNumber still succeeds.
#[tokio::test]
async fn with_the_shipped_sharing_rule_the_handoff_reads_back_its_routed_case() {
    let fake = fake_salesforce::start().await;
    fake.org.set_assignment_rule(Some(RULE));
    fake.org.set_case_sharing(CaseAccess::Private);
    fake.org.set_case_sharing_rule(Some(ShareAccess::Edit));
    let state = app_state(&env_for(&fake, &[]));
    let answer = hand_off(&state, invoke_event(1, None, json!({}))).await;
    assert_eq!(answer.get("caseId"), Some(&case_id(&fake, 1)), "{answer:?}");
    assert!(answer.contains_key("caseNumber"));
    assert_eq!(owner(&fake, 1), QUEUE);
}

/// (b) Nothing expires: a record failing on its own (not an outage) past `PARK_AFTER_HOURS` is
/// parked with its data instead of being reported for retry again; its neighbour is written.
#[tokio::test]
async fn a_record_failing_on_its_own_past_park_after_is_parked() {
    let fake = fake_salesforce::start().await;
    let state = app_state(&env_for(&fake, &[("SALESFORCE_MAX_ATTEMPTS", "1")]));
    // A warm container: the org is checked, so the scripted fault meets the create.
    state
        .salesforce
        .check_org_now(Deadline::after(MINUTE))
        .await;
    fake.org.push_fault(Fault::RecordError {
        external_id: contact_uuid(1),
        status_code: "UNABLE_TO_LOCK_ROW".into(),
        message: "unable to obtain exclusive access to this record".into(),
        fields: vec![],
    });
    let aged = ctr(1, "2024-02-25T08:36:30Z", false, json!({}));
    let young = ctr(2, "2024-02-25T08:36:30Z", false, json!({}));
    let mut batch = records(&[aged], 1, Some(epoch_secs(-21.0 * 3600.0)));
    batch.extend(records(&[young], 2, Some(epoch_secs(0.0))));
    let outcome = process_batch(
        &state,
        &KinesisEnvelope { records: batch },
        Deadline::after(MINUTE),
    )
    .await;
    assert!(
        failures(&outcome.response).is_empty(),
        "{:?}",
        outcome.reports
    );
    assert_eq!(
        outcome.reports[0].action,
        Action::Parked,
        "{:?}",
        outcome.reports
    );
    assert_eq!(outcome.reports[1].action, Action::UpsertCase);
    let letters = state.dead_letters.held();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].kind.to_string(), "parked");
    assert_eq!(letters[0].error.code, "UNABLE_TO_LOCK_ROW");
}

/// The release-shaped binary: the org is checked in the init phase (so the first invocation
/// makes only its own call), and a broken org holds with exactly one error line naming the
/// field and the `ConfigurationInvalid` metric.
#[tokio::test]
async fn the_binary_checks_the_org_at_start_and_holds_a_broken_one_with_one_error_line() {
    let fake = fake_salesforce::start().await;
    let check_on = [
        ("SALESFORCE_ORG_CHECK", "true".to_owned()),
        ("SALESFORCE_ORG_CHECK_RETRY_SECONDS", "0".to_owned()),
    ];
    let mut lambda = Lambda::launch(&fake, "info", &[], &check_on).await;
    let datas: Vec<Vec<u8>> = (0..2).map(dropped_data).collect();
    let outcome = lambda.invoke(&process::kinesis_json(&datas, 1)).await;
    assert!(process::response_failures(&outcome).is_empty(), "{outcome}");
    let output = lambda.stop().await;
    let emf = output.emf();
    assert_eq!(
        process::emf_values(&emf[0])["SalesforceApiCalls"],
        1,
        "{}",
        emf[0]
    );
    assert_eq!(fake.org.calls_by_kind().get("describe"), Some(&1));

    fake.org.set_picklist("Status", &["Open", "Closed"], true);
    let mut lambda = Lambda::launch(&fake, "info", &[], &check_on).await;
    let datas: Vec<Vec<u8>> = (10..13).map(dropped_data).collect();
    let outcome = lambda.invoke(&process::kinesis_json(&datas, 100)).await;
    assert_eq!(process::response_failures(&outcome).len(), 3, "{outcome}");
    let output = lambda.stop().await;
    let values = process::emf_values(&output.emf()[0]);
    assert_eq!(values["ConfigurationInvalid"], 1);
    assert_eq!(values["SalesforceUnavailable"], 0);
    let errors = output.error_lines();
    assert_eq!(errors.len(), 1, "{errors:#?}\n{}", output.all());
    let error = field(&errors[0], "error").unwrap_or_default();
    assert!(
        error.contains("Case.Status") && error.contains("valid values: Open, Closed"),
        "{error}"
    );
}
