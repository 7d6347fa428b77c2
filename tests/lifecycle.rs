//! The Case lifecycle against the fake org: one Case per contact, an agent's work never
//! overwritten, stale CTR versions ignored, racing writers, and the API call budget.
//! See: issue "Case lifecycle: one Case per contact, an agent's work never overwritten".

mod support;

use std::sync::Arc;
use std::time::Duration;

use ctr_cases::report::Action;
use ctr_cases::retry::Deadline;
use ctr_cases::stream::process_batch;
use serde_json::{Value, json};
use support::fake_salesforce::{self, FakeSalesforce};
use support::fixtures::*;

const MINUTE: Duration = Duration::from_secs(60);

/// The dropped call of contact `n` at version `updated`, with `attributes` added.
fn dropped_at(n: u64, updated: &str, attributes: Value) -> Vec<u8> {
    let mut v: Value = serde_json::from_str(&dropped_ctr_for(
        &contact_uuid(n),
        &caller_number(n),
        updated,
    ))
    .unwrap();
    if let (Some(target), Value::Object(extra)) = (v["Attributes"].as_object_mut(), attributes) {
        target.extend(extra);
    }
    v.to_string().into_bytes()
}

/// What an agent does after calling the customer back.
fn agent_edit(fake: &FakeSalesforce, n: u64) {
    let id = fake.org.case(&contact_uuid(n)).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    fake.org.edit_case(
        &id,
        json!({"Status": "Closed", "Priority": "Low", "Subject": "Called back, rebooked",
               "OwnerId": "005000000000042AAA"}),
    );
}

fn assert_agent_work_kept(fake: &FakeSalesforce, n: u64) {
    let case = fake.org.case(&contact_uuid(n)).unwrap();
    assert_eq!(case["Status"], "Closed", "{case}");
    assert_eq!(case["Priority"], "Low", "{case}");
    assert_eq!(case["Subject"], "Called back, rebooked", "{case}");
    assert_eq!(case["OwnerId"], "005000000000042AAA", "{case}");
}

async fn run(
    state: &ctr_cases::app::AppState,
    datas: &[Vec<u8>],
    first_seq: u64,
) -> ctr_cases::stream::BatchOutcome {
    let outcome = process_batch(
        state,
        &kinesis_event(datas, first_seq),
        Deadline::after(MINUTE),
    )
    .await;
    assert!(
        outcome.response.batch_item_failures.is_empty(),
        "{:?}",
        outcome.reports
    );
    outcome
}

#[tokio::test]
async fn agent_work_survives_redelivery_and_newer_versions_and_stale_ones_change_nothing() {
    let fake = fake_salesforce::start().await;
    let state = app_state(&fake_env(&fake));
    let first = dropped_at(1, "2024-02-25T08:36:30Z", json!({}));
    let outcome = run(&state, std::slice::from_ref(&first), 1).await;
    assert_eq!(outcome.reports[0].action, Action::UpsertCase);
    assert_eq!(outcome.reports[0].created, Some(true));
    agent_edit(&fake, 1);

    // (a) The same CTR again: nothing changes, the record says so.
    let outcome = run(&state, std::slice::from_ref(&first), 2).await;
    assert_eq!(outcome.reports[0].action, Action::Unchanged);
    assert_agent_work_kept(&fake, 1);

    // (b) A newer version with an attribute set after the call: the context reaches the Case,
    // the agent's fields stay.
    let newer = dropped_at(
        1,
        "2024-02-26T09:00:00Z",
        json!({"callbackOutcome": "rebooked"}),
    );
    let outcome = run(&state, std::slice::from_ref(&newer), 3).await;
    assert_eq!(outcome.reports[0].action, Action::UpsertCase);
    assert_eq!(outcome.reports[0].created, Some(false));
    assert_agent_work_kept(&fake, 1);
    let case = fake.org.case(&contact_uuid(1)).unwrap();
    let description = case["Description"].as_str().unwrap().to_owned();
    assert!(
        description.contains("callbackOutcome: rebooked"),
        "{description}"
    );
    assert!(
        case[support::fake_salesforce::EXTERNAL_ID_FIELD] == contact_uuid(1).as_str(),
        "{case}"
    );
    assert!(
        case["Amazon_Connect_Last_Update__c"]
            .as_str()
            .is_some_and(|v| v.starts_with("2024-02-26T09:00:00")),
        "{case}"
    );

    // (c) The older version arriving later (a retried batch): nothing changes.
    let outcome = run(&state, std::slice::from_ref(&first), 4).await;
    assert_eq!(outcome.reports[0].action, Action::Unchanged);
    let case = fake.org.case(&contact_uuid(1)).unwrap();
    assert_eq!(case["Description"].as_str().unwrap(), description);
    assert_agent_work_kept(&fake, 1);
    assert_eq!(fake.org.case_count(), 1);
    assert!(state.dead_letters.held().is_empty());
}

#[tokio::test]
async fn a_ctr_without_a_version_creates_but_never_replaces_context() {
    let fake = fake_salesforce::start().await;
    let state = app_state(&fake_env(&fake));
    let mut v: Value = serde_json::from_slice(&dropped_at(2, "x", json!({}))).unwrap();
    v.as_object_mut().unwrap().remove("LastUpdateTimestamp");
    let unversioned = v.to_string().into_bytes();
    let outcome = run(&state, std::slice::from_ref(&unversioned), 1).await;
    assert_eq!(outcome.reports[0].created, Some(true));
    let versioned = dropped_at(2, "2024-02-25T08:36:30Z", json!({"late": "yes"}));
    run(&state, std::slice::from_ref(&versioned), 2).await;
    let with_context = fake.org.case(&contact_uuid(2)).unwrap()["Description"].clone();
    assert!(with_context.as_str().unwrap().contains("late: yes"));
    let outcome = run(&state, std::slice::from_ref(&unversioned), 3).await;
    assert_eq!(outcome.reports[0].action, Action::Unchanged);
    assert_eq!(
        fake.org.case(&contact_uuid(2)).unwrap()["Description"],
        with_context
    );
}

/// (d) Three writers of the same batch at once (ParallelizationFactor > 1, redeliveries on
/// other shard readers): one Case per contact, no dead letters, no retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn three_writers_of_the_same_batch_leave_one_case_per_contact() {
    let fake = fake_salesforce::start().await;
    let env = fake_env(&fake);
    let datas: Vec<Vec<u8>> = (0..60)
        .map(|n| dropped_at(n, "2024-02-25T08:36:30Z", json!({})))
        .collect();
    let states: Vec<Arc<ctr_cases::app::AppState>> =
        (0..3).map(|_| Arc::new(app_state(&env))).collect();
    let mut writers = Vec::new();
    for state in &states {
        let state = state.clone();
        let datas = datas.clone();
        writers.push(tokio::spawn(async move {
            process_batch(&state, &kinesis_event(&datas, 1), Deadline::after(MINUTE)).await
        }));
    }
    let mut written = 0;
    for writer in writers {
        let outcome = writer.await.unwrap();
        assert!(
            outcome.response.batch_item_failures.is_empty(),
            "{:?}",
            outcome.reports
        );
        for r in &outcome.reports {
            assert!(
                matches!(r.action, Action::UpsertCase | Action::Unchanged),
                "{r:?}"
            );
            written += u32::from(r.created == Some(true));
        }
    }
    assert_eq!(written, 60, "each Case created exactly once");
    assert_eq!(fake.org.case_count(), 60);
    assert!(fake.org.creates_per_external_id().values().all(|&n| n == 1));
    assert!(states.iter().all(|s| s.dead_letters.held().is_empty()));
}

/// (e) The call budget per chunk: 1 call for a new batch, at most 3 when some Cases exist.
#[tokio::test]
async fn call_budget_is_one_for_new_cases_and_at_most_three_for_existing_ones() {
    let fake = fake_salesforce::start().await;
    let state = app_state(&fake_env(&fake));
    let new: Vec<Vec<u8>> = (0..100)
        .map(|n| dropped_at(n, "2024-02-25T08:36:30Z", json!({})))
        .collect();
    let outcome = run(&state, &new, 1).await;
    assert_eq!(
        outcome.summary.salesforce_api_calls, 1,
        "all new: one create"
    );
    // Redelivered as is: create (duplicates) + read; nothing to update.
    let outcome = run(&state, &new, 1).await;
    assert_eq!(outcome.summary.salesforce_api_calls, 2);
    assert_eq!(outcome.summary.count(Action::Unchanged), 100);
    // Half of them newer, plus 50 new ones: create + read + update.
    let mut mixed: Vec<Vec<u8>> = (0..50)
        .map(|n| dropped_at(n, "2024-02-27T00:00:00Z", json!({})))
        .collect();
    mixed.extend((100..150).map(|n| dropped_at(n, "2024-02-25T08:36:30Z", json!({}))));
    let outcome = run(&state, &mixed, 200).await;
    assert_eq!(outcome.summary.salesforce_api_calls, 3);
    assert_eq!(outcome.summary.cases_created, 50);
    assert_eq!(outcome.summary.count(Action::UpsertCase), 100);
    // 450 existing and newer Cases in chunks of 200: three chunks, three calls each at most.
    let many: Vec<Vec<u8>> = (0..450)
        .map(|n| dropped_at(n, "2024-03-01T00:00:00Z", json!({})))
        .collect();
    let outcome = run(&state, &many, 1000).await;
    assert!(
        outcome.summary.salesforce_api_calls <= 9,
        "{:?}",
        outcome.summary
    );
    let kinds = fake.org.calls_by_kind();
    assert!(
        kinds.keys().all(
            |k| ["collections_create", "composite", "collections_update"].contains(&k.as_str())
        ),
        "{kinds:?}"
    );
}

/// The replay CLI's `--send` follows the same lifecycle: an agent's edit survives a replay of
/// a newer version, and replaying an older file changes nothing.
#[tokio::test]
async fn replay_send_keeps_agent_work_and_ignores_stale_versions() {
    let fake = fake_salesforce::start().await;
    let dir = std::env::temp_dir().join(format!("ctr-cases-lifecycle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, data: Vec<u8>| {
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap();
        path
    };
    let old = write("old.json", dropped_at(7, "2024-02-25T08:36:30Z", json!({})));
    let new = write(
        "new.json",
        dropped_at(7, "2024-02-26T08:36:30Z", json!({"late": "1"})),
    );
    let env = fake_env(&fake);
    let send = |file: std::path::PathBuf| {
        let env = env.clone();
        let dir = dir.clone();
        async move {
            let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ctr-cases"))
                .current_dir(&dir)
                .args(["replay", "--send", "--json", file.to_str().unwrap()])
                .env_clear()
                .envs(env)
                .output()
                .await
                .unwrap();
            assert!(output.status.success(), "{output:?}");
            let line = String::from_utf8_lossy(&output.stdout)
                .lines()
                .next()
                .unwrap()
                .to_owned();
            serde_json::from_str::<Value>(&line).unwrap()["action"].clone()
        }
    };
    assert_eq!(send(old.clone()).await, "upsert_case");
    agent_edit(&fake, 7);
    assert_eq!(send(new).await, "upsert_case");
    assert_agent_work_kept(&fake, 7);
    let description = fake.org.case(&contact_uuid(7)).unwrap()["Description"].clone();
    assert!(description.as_str().unwrap().contains("late: 1"));
    assert_eq!(send(old).await, "unchanged");
    assert_eq!(
        fake.org.case(&contact_uuid(7)).unwrap()["Description"],
        description
    );
    std::fs::remove_dir_all(dir).unwrap();
}
