//! Fault injection: the real handler against a fake org that fails often, driven the way
//! Lambda drives a Kinesis shard (re-invoke from the lowest reported sequence number until
//! nothing is reported). Asserts the failure contract: no dropped call lost, no Case created
//! twice, every poison record dead-lettered exactly once.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use ctr_cases::app::AppState;
use ctr_cases::event::KinesisEnvelope;
use ctr_cases::stream::handle;
use support::fake_salesforce::{self, FakeSalesforce, Fault, FaultKind};
use support::fixtures::*;

const MINUTE: Duration = Duration::from_secs(60);

/// What a stream replay needed and produced.
#[derive(Debug, Default)]
struct Replay {
    invocations: u32,
    reported: u32,
}

/// Feeds `records` in batches of `batch_size`; for each batch, re-invokes with the records from
/// the lowest reported sequence number on (Lambda's checkpoint behaviour) until none is
/// reported, or panics after `max_invocations`.
async fn replay_stream(
    state: &AppState,
    records: &[Vec<u8>],
    first_seq: u64,
    batch_size: usize,
    max_invocations: u32,
) -> Replay {
    let mut replay = Replay::default();
    let event = kinesis_event(records, first_seq);
    let all = event.records;
    for start in (0..all.len()).step_by(batch_size) {
        let end = (start + batch_size).min(all.len());
        let mut from = start;
        loop {
            replay.invocations += 1;
            assert!(
                replay.invocations <= max_invocations,
                "no progress after {max_invocations} invocations"
            );
            let batch = KinesisEnvelope {
                records: all[from..end]
                    .iter()
                    .map(|r| serde_json::from_value(serde_json::to_value(r).unwrap()).unwrap())
                    .collect(),
            };
            let response = handle(state, lambda_event(batch, MINUTE)).await.unwrap();
            let failed = failures(&response);
            if failed.is_empty() {
                break;
            }
            replay.reported += failed.len() as u32;
            let lowest = failed.iter().min().unwrap();
            from = all
                .iter()
                .position(|r| &r.kinesis.sequence_number == lowest)
                .expect("reported sequence numbers belong to the batch");
        }
    }
    replay
}

/// 1,000 records: 700 dropped calls (50 of them redelivered later), 200 agent-handled, 50 poison.
fn stream_of_1000() -> (Vec<Vec<u8>>, Vec<String>, usize) {
    let mut records = Vec::new();
    let mut dropped_ids = Vec::new();
    let mut poison = 0;
    for n in 0..1000u64 {
        let data = match n % 20 {
            0 => {
                poison += 1;
                match n % 3 {
                    0 => b"{\"not\":\"a ctr\"}".to_vec(),
                    1 => b"\x00\x01 binary".to_vec(),
                    _ => b"{\"ContactId\":\"DROP TABLE\"}".to_vec(),
                }
            }
            1..=4 => handled_ctr_for(&contact_uuid(n)).into_bytes(),
            5 if n > 100 => {
                // A redelivery of an earlier dropped call, with a newer update time.
                let earlier = n - 94;
                dropped_ctr_for(
                    &contact_uuid(earlier),
                    &caller_number(earlier),
                    "2024-02-26T00:00:00Z",
                )
                .into_bytes()
            }
            _ => {
                dropped_ids.push(contact_uuid(n));
                dropped_data(n)
            }
        };
        records.push(data);
    }
    (records, dropped_ids, poison)
}

fn assert_contract(fake: &FakeSalesforce, state: &AppState, dropped_ids: &[String], poison: usize) {
    let lost: Vec<_> = dropped_ids
        .iter()
        .filter(|id| fake.org.case(id).is_none())
        .collect();
    assert!(lost.is_empty(), "lost dropped calls: {lost:?}");
    let duplicates: Vec<_> = fake
        .org
        .creates_per_external_id()
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(duplicates.is_empty(), "duplicate Cases: {duplicates:?}");
    assert_eq!(fake.org.case_count(), dropped_ids.len());
    let mut letters: BTreeMap<String, u32> = BTreeMap::new();
    for letter in state.dead_letters.held() {
        *letters.entry(letter.sequence_number).or_default() += 1;
    }
    assert_eq!(letters.len(), poison, "every poison record dead-lettered");
    assert!(
        letters.values().all(|n| *n == 1),
        "dead-lettered twice: {letters:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_records_with_thirty_percent_faults_lose_and_duplicate_nothing() {
    // 40% of data calls fail: 30% plain failures (nothing applied) and 10% applied, then
    // answered with 503 or a dropped connection.
    let plain = [
        FaultKind::Status503,
        FaultKind::Status500,
        FaultKind::DropConnection,
        FaultKind::UnableToLockRow,
        FaultKind::ConcurrentLongTxn,
    ];
    let mut mix: Vec<FaultKind> = plain.iter().cycle().take(15).copied().collect();
    mix.extend([FaultKind::AppliedThen503; 3]);
    mix.extend([FaultKind::AppliedThenDrop; 2]);
    // Several seeded runs, each a fresh org and a fresh container.
    for seed in [20_261_126, 1, 2, 3, 4] {
        let fake = fake_salesforce::start().await;
        // Small collections and few in-invocation attempts, so that many calls are made and
        // many records go back to Lambda for retry.
        let mut env = fake_env(&fake);
        env.insert("SALESFORCE_BATCH_SIZE".into(), "20".into());
        env.insert("SALESFORCE_MAX_ATTEMPTS".into(), "2".into());
        let state = app_state(&env);
        fake.org.set_random_faults(0.4, mix.clone(), seed);
        let (records, dropped_ids, poison) = stream_of_1000();
        let replay = replay_stream(&state, &records, 1, 100, 200).await;
        assert_contract(&fake, &state, &dropped_ids, poison);
        let injected = fake.org.random_faults_injected();
        let total: u64 = injected.values().sum();
        assert!(
            total >= 10,
            "the suite must really inject faults: {injected:?}"
        );
        eprintln!(
            "fault suite seed={seed}: records={} dropped={} poison={poison} invocations={} \
             reported_for_retry={} data_calls={} injected_faults={total} ({injected:?}) \
             token_grants={} cases={} dead_letters={} duplicates=0 lost=0",
            records.len(),
            dropped_ids.len(),
            replay.invocations,
            replay.reported,
            fake.org.api_calls(),
            fake.org.token_grants(),
            fake.org.case_count(),
            state.dead_letters.held().len(),
        );
    }
}

#[tokio::test]
async fn token_expiry_mid_stream_refreshes_and_loses_nothing() {
    let fake = fake_salesforce::start().await;
    let state = app_state(&fake_env(&fake));
    let (records, dropped_ids, poison) = stream_of_1000();
    replay_stream(&state, &records[..500], 1, 100, 20).await;
    fake.org.expire_all_tokens();
    // And a revocation later on: each invalid session costs exactly one new grant.
    fake.org.push_fault(Fault::InvalidSession);
    replay_stream(&state, &records[500..], 501, 100, 40).await;
    assert_eq!(fake.org.token_grants(), 3, "one grant per invalidation");
    assert_contract(&fake, &state, &dropped_ids, poison);
}

#[tokio::test]
async fn salesforce_down_for_a_whole_invocation_reports_every_case() {
    let fake = fake_salesforce::start().await;
    let state = app_state(&fake_env(&fake));
    let datas: Vec<Vec<u8>> = (0..30)
        .map(|n| {
            if n == 7 {
                b"garbage".to_vec()
            } else {
                dropped_data(n)
            }
        })
        .collect();
    fake.org.set_random_faults(
        1.0,
        vec![FaultKind::Status503, FaultKind::DropConnection],
        7,
    );
    let event = kinesis_event(&datas, 1);
    let response = handle(&state, lambda_event(event, MINUTE)).await.unwrap();
    assert_eq!(
        response.batch_item_failures.len(),
        29,
        "all but the poison record"
    );
    assert_eq!(state.dead_letters.held().len(), 1);
    assert_eq!(fake.org.case_count(), 0);
    // Salesforce is back: the retried batch lands, and the poison record is not sent twice.
    fake.org.clear_faults();
    let event = kinesis_event(&datas, 1);
    let response = handle(&state, lambda_event(event, MINUTE)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(fake.org.case_count(), 29);
    assert_eq!(state.dead_letters.held().len(), 1);
}

#[tokio::test]
async fn quota_exhausted_then_restored_loses_nothing() {
    let fake = fake_salesforce::start().await;
    let state = app_state(&fake_env(&fake));
    let (records, dropped_ids, poison) = stream_of_1000();
    fake.org.set_daily_limit(1);
    // With 1 API call a day, the stream stalls: every later call is refused and fails fast.
    let event = kinesis_event(&records[..300], 1);
    for _ in 0..3 {
        let batch: KinesisEnvelope =
            serde_json::from_value(serde_json::to_value(&event).unwrap()).unwrap();
        let response = handle(&state, lambda_event(batch, MINUTE)).await.unwrap();
        assert!(!response.batch_item_failures.is_empty());
    }
    assert_eq!(
        fake.org.api_calls(),
        1,
        "no call is accepted past the quota"
    );
    fake.org.set_daily_limit(15_000);
    replay_stream(&state, &records, 1, 100, 40).await;
    assert_contract(&fake, &state, &dropped_ids, poison);
}
