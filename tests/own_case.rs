//! Issue "A contact writes only its own Case", item 1: a Case Id in the contact attribute
//! `ctrCasesCaseId` is written only when that Case's external id is the contact's own
//! ContactId, its InitialContactId or its PreviousContactId (values Connect sets, not the
//! caller). Otherwise the named Case is left untouched, the contact gets its own Case (or none
//! when its outcome files none), and one warning line names the ContactId. Against the fake
//! org on 127.0.0.1, through the flow function and the stream handler in process.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ctr_cases::app::AppState;
use ctr_cases::flow;
use ctr_cases::report::Action;
use ctr_cases::retry::Deadline;
use ctr_cases::stream::{BatchOutcome, process_batch};
use serde_json::{Value, json};
use support::fake_salesforce::{self, FakeSalesforce, LAST_UPDATE_FIELD, OUTCOME_FIELD};
use support::fixtures::{app_state, contact_uuid, ctr_after, fake_env, kinesis_event};

const MINUTE: Duration = Duration::from_secs(60);

/// The warning the client logs when a contact names a Case that is not its own.
const NOT_OWN_CASE: &str = "the Case named by the contact's case id attribute is not this contact's; using the contact's own Case";

/// Log lines (JSON, WARN and above) written while a [`Captured`] guard lives on this thread.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Captures the events of this thread (the tests run on a current-thread runtime, so the
    /// handler's tasks log here too) until the guard is dropped.
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The `NOT_OWN_CASE` warnings, as the ContactIds they name.
    fn not_own_case(&self) -> Vec<String> {
        self.lines()
            .iter()
            .filter(|l| l["message"] == NOT_OWN_CASE)
            .inspect(|l| assert_eq!(l["level"], "WARN", "{l}"))
            .map(|l| l["contact_id"].as_str().unwrap_or("<none>").to_owned())
            .collect()
    }
}

fn state(fake: &FakeSalesforce) -> AppState {
    app_state(&fake_env(fake))
}

/// A Connect invoke event for `contact_id` (a chat contact: no endpoints), with Connect's
/// `InitialContactId`/`PreviousContactId` and the contact's attributes.
fn invoke_event(
    contact_id: &str,
    initial: &str,
    previous: Option<&str>,
    attributes: Value,
) -> Value {
    let mut data = json!({
        "ContactId": contact_id,
        "InitialContactId": initial,
        "Channel": "CHAT",
        "InstanceARN": "arn:aws:connect:us-east-1:123456789012:instance/7c6f9a4e-0000-4000-8000-000000000001",
        "InitiationMethod": "API",
        "CustomerEndpoint": null,
        "SystemEndpoint": null,
        "Queue": null,
        "Attributes": attributes
    });
    if let Some(previous) = previous {
        data["PreviousContactId"] = previous.into();
    }
    json!({"Name": "ContactFlowEvent", "Details": {"Parameters": {"leg": contact_id}, "ContactData": data}})
}

async fn hand_off(state: &AppState, event: Value) -> std::collections::HashMap<String, String> {
    flow::respond(state, event, Deadline::after(Duration::from_secs(8))).await
}

/// A CTR for `contact_id` updated at `updated`: a dropped call, or an agent-handled one (no
/// Case by default), with `top` merged at the top level and `attributes` into its Attributes.
fn ctr(contact_id: &str, updated: &str, agent: bool, top: Value, attributes: Value) -> Vec<u8> {
    let data = ctr_after(contact_id, "+15555550190", updated, agent, attributes);
    let mut v: Value = serde_json::from_slice(&data).unwrap();
    if let (Some(target), Value::Object(extra)) = (v.as_object_mut(), top) {
        target.extend(extra);
    }
    v.to_string().into_bytes()
}

/// The victim's Case, filed for contact `n`: by the flow (no version field value) or by the
/// stream from a dropped call's CTR (with one). Its Id and its fields as stored.
async fn victim_case(
    fake: &FakeSalesforce,
    state: &AppState,
    n: u64,
    versioned: bool,
) -> (String, Value) {
    let victim = contact_uuid(n);
    if versioned {
        let data = ctr(&victim, "2024-02-25T08:00:00Z", false, json!({}), json!({}));
        process_batch(state, &kinesis_event(&[data], 1), Deadline::after(MINUTE)).await;
    } else {
        hand_off(state, invoke_event(&victim, &victim, None, json!({}))).await;
    }
    let case = fake.org.case(&victim).expect("the victim's Case");
    assert_eq!(
        case.get(LAST_UPDATE_FIELD).is_some_and(|v| !v.is_null()),
        versioned,
        "{case}"
    );
    (case["Id"].as_str().unwrap().to_owned(), case)
}

/// The flow: a chat contact carrying a victim's Case Id gets its own Case back in one call;
/// the victim's Case (with and without a version) is untouched.
#[tokio::test]
async fn a_flow_contact_naming_another_contacts_case_gets_its_own() {
    for (n, versioned) in [(600, false), (610, true)] {
        let fake = fake_salesforce::start().await;
        let state = state(&fake);
        let (victim_id, before) = victim_case(&fake, &state, n, versioned).await;
        let attacker = contact_uuid(n + 1);
        let calls = fake.org.api_calls();

        let (logs, guard) = Logs::capture();
        let answer = hand_off(
            &state,
            invoke_event(
                &attacker,
                &attacker,
                None,
                json!({"ctrCasesCaseId": victim_id}),
            ),
        )
        .await;
        drop(guard);

        assert_eq!(
            fake.org.case_by_id(&victim_id).unwrap(),
            before,
            "victim untouched"
        );
        let own = fake.org.case(&attacker).expect("the contact's own Case");
        assert_ne!(answer["caseId"], victim_id);
        assert_eq!(answer["caseId"], own["Id"].as_str().unwrap(), "{answer:?}");
        assert_eq!(answer["caseNumber"], own["CaseNumber"].as_str().unwrap());
        assert_eq!(fake.org.case_count(), 2);
        assert_eq!(fake.org.api_calls() - calls, 1, "one Composite call");
        assert_eq!(
            logs.not_own_case(),
            std::slice::from_ref(&attacker),
            "versioned: {versioned}"
        );

        // Again (a warm container, the contact's Case exists now): its own Case, one call.
        let calls = fake.org.api_calls();
        let again = hand_off(
            &state,
            invoke_event(
                &attacker,
                &attacker,
                None,
                json!({"ctrCasesCaseId": victim_id}),
            ),
        )
        .await;
        assert_eq!(again["caseId"], answer["caseId"]);
        assert_eq!(fake.org.api_calls() - calls, 1);
        assert_eq!(fake.org.case_by_id(&victim_id).unwrap(), before);
        assert_eq!(fake.org.case_count(), 2);
    }
}

/// The flow: a Case Id that names no Case the integration user can read (deleted, not shared)
/// is never written either; the contact's own Case is filed (a second call, only here).
#[tokio::test]
async fn a_flow_contact_naming_a_case_it_cannot_read_gets_its_own() {
    let fake = fake_salesforce::start().await;
    let state = state(&fake);
    let contact = contact_uuid(620);
    let calls = fake.org.api_calls();
    let (logs, guard) = Logs::capture();
    let answer = hand_off(
        &state,
        invoke_event(
            &contact,
            &contact,
            None,
            json!({"ctrCasesCaseId": "500000000000999AAA"}),
        ),
    )
    .await;
    drop(guard);
    let own = fake.org.case(&contact).expect("the contact's own Case");
    assert_eq!(answer["caseId"], own["Id"].as_str().unwrap(), "{answer:?}");
    assert_eq!(fake.org.case_count(), 1);
    assert_eq!(fake.org.api_calls() - calls, 2);
    assert_eq!(logs.not_own_case(), [contact]);
}

/// The flow: a transferred leg whose InitialContactId or PreviousContactId is the first leg
/// still updates the first leg's Case, in one call, without a warning.
#[tokio::test]
async fn a_flow_transferred_leg_naming_its_first_legs_case_updates_it() {
    let fake = fake_salesforce::start().await;
    let state = state(&fake);
    let first = contact_uuid(630);
    let filed = hand_off(&state, invoke_event(&first, &first, None, json!({}))).await;
    let middle = contact_uuid(631);
    let legs = [
        // Initial and previous leg both the first.
        (contact_uuid(632), first.clone(), Some(first.clone())),
        // Third leg: the first is its initial contact only.
        (contact_uuid(633), first.clone(), Some(middle.clone())),
        // Previous leg only (an InitialContactId of its own).
        (contact_uuid(634), contact_uuid(634), Some(first.clone())),
    ];
    for (leg, initial, previous) in legs {
        let calls = fake.org.api_calls();
        let (logs, guard) = Logs::capture();
        let answer = hand_off(
            &state,
            invoke_event(
                &leg,
                &initial,
                previous.as_deref(),
                json!({"ctrCasesCaseId": filed["caseId"]}),
            ),
        )
        .await;
        drop(guard);
        assert_eq!(answer["caseId"], filed["caseId"], "{leg}");
        assert_eq!(answer["caseNumber"], filed["caseNumber"]);
        assert_eq!(fake.org.api_calls() - calls, 1, "{leg}");
        assert_eq!(fake.org.case_count(), 1, "{leg}");
        assert!(logs.not_own_case().is_empty(), "{leg}");
        let description = fake.org.case(&first).unwrap()["Description"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            description.contains(&format!("leg: {leg}")),
            "{description}"
        );
    }
}

/// Runs the CTR of `attacker` (an agent served it, or it was dropped) naming `victim_id` in
/// `ctrCasesCaseId` through the stream, with the logs captured.
async fn stream_ctr_naming(
    state: &AppState,
    attacker: &str,
    agent: bool,
    victim_id: &str,
) -> (BatchOutcome, Logs) {
    let data = ctr(
        attacker,
        "2024-02-25T09:00:00Z",
        agent,
        json!({}),
        json!({"ctrCasesCaseId": victim_id}),
    );
    let (logs, guard) = Logs::capture();
    let outcome = process_batch(state, &kinesis_event(&[data], 10), Deadline::after(MINUTE)).await;
    drop(guard);
    (outcome, logs)
}

/// The stream: a dropped call carrying a victim's Case Id (with and without a version) files
/// its own Case; the victim's Case is untouched.
#[tokio::test]
async fn a_ctr_naming_another_contacts_case_files_its_own() {
    for (n, versioned) in [(640, false), (650, true)] {
        let fake = fake_salesforce::start().await;
        let state = state(&fake);
        let (victim_id, before) = victim_case(&fake, &state, n, versioned).await;
        let attacker = contact_uuid(n + 1);
        let (outcome, logs) = stream_ctr_naming(&state, &attacker, false, &victim_id).await;
        let report = &outcome.reports[0];
        assert_eq!(report.action, Action::UpsertCase, "{:?}", outcome.reports);
        assert_eq!(report.created, Some(true));
        let own = fake.org.case(&attacker).expect("the contact's own Case");
        assert_eq!(report.case_id.as_deref(), own["Id"].as_str());
        assert_eq!(
            fake.org.case_by_id(&victim_id).unwrap(),
            before,
            "victim untouched"
        );
        assert_eq!(fake.org.case_count(), 2);
        assert_eq!(logs.not_own_case(), [attacker], "versioned: {versioned}");
    }
}

/// The stream: a contact whose outcome files no Case (an agent took it) and that names a
/// victim's Case writes nothing at all: the victim's Case is untouched and none is filed.
#[tokio::test]
async fn a_ctr_naming_another_contacts_case_without_a_case_of_its_own_writes_nothing() {
    for (n, versioned) in [(660, false), (670, true)] {
        let fake = fake_salesforce::start().await;
        let state = state(&fake);
        let (victim_id, before) = victim_case(&fake, &state, n, versioned).await;
        let attacker = contact_uuid(n + 1);
        let (outcome, logs) = stream_ctr_naming(&state, &attacker, true, &victim_id).await;
        let report = &outcome.reports[0];
        assert_eq!(report.outcome, "happy_path_live_agent");
        assert_eq!(report.action, Action::Skipped, "{:?}", outcome.reports);
        assert_eq!(report.case_id, None);
        assert!(outcome.response.batch_item_failures.is_empty());
        assert_eq!(
            fake.org.case_by_id(&victim_id).unwrap(),
            before,
            "victim untouched"
        );
        assert!(fake.org.case(&attacker).is_none());
        assert_eq!(fake.org.case_count(), 1);
        assert_eq!(logs.not_own_case(), [attacker], "versioned: {versioned}");
    }
}

/// The stream: the CTR of a transferred leg (an agent took it: no Case of its own by default)
/// whose PreviousContactId or InitialContactId is the first leg updates the first leg's Case.
#[tokio::test]
async fn a_transferred_legs_ctr_naming_its_first_legs_case_updates_it() {
    let fake = fake_salesforce::start().await;
    let state = state(&fake);
    let first = contact_uuid(680);
    let filed = hand_off(&state, invoke_event(&first, &first, None, json!({}))).await;
    let legs = [
        (
            contact_uuid(681),
            json!({"PreviousContactId": first, "InitialContactId": first}),
        ),
        (contact_uuid(682), json!({"InitialContactId": first})),
        (contact_uuid(683), json!({"PreviousContactId": first})),
    ];
    for (i, (leg, top)) in legs.into_iter().enumerate() {
        let updated = format!("2024-02-25T09:0{i}:00Z");
        let attributes = json!({"ctrCasesCaseId": filed["caseId"], "leg": leg});
        let data = ctr(&leg, &updated, true, top, attributes);
        let (logs, guard) = Logs::capture();
        let outcome =
            process_batch(&state, &kinesis_event(&[data], 20), Deadline::after(MINUTE)).await;
        drop(guard);
        let report = &outcome.reports[0];
        assert_eq!(
            report.action,
            Action::UpsertCase,
            "{leg}: {:?}",
            outcome.reports
        );
        assert_eq!(report.created, Some(false));
        assert_eq!(report.case_id.as_deref(), Some(filed["caseId"].as_str()));
        assert_eq!(fake.org.case_count(), 1);
        let case = fake.org.case(&first).unwrap();
        assert_eq!(case[OUTCOME_FIELD], "happy_path_live_agent");
        let description = case["Description"].as_str().unwrap();
        assert!(
            description.contains(&format!("leg: {leg}")),
            "{description}"
        );
        assert!(logs.not_own_case().is_empty(), "{leg}");
    }
}
