//! One Kinesis shard as Lambda's event source mapping drives it, for handler tests.
//!
//! The mapping hands the function the records from its checkpoint on (at most `batch_size`);
//! when the response reports failures, the checkpoint moves to the *lowest* reported sequence
//! number and the next invocation starts there; when it reports none, the checkpoint moves past
//! the batch. (AWS Lambda developer guide, "Configuring partial batch response with Kinesis Data
//! Streams and Lambda", services-kinesis-batchfailurereporting: with several items in
//! `batchItemFailures`, Lambda uses the record with the lowest sequence number as the checkpoint
//! and retries all records starting from it; an empty list is a complete success.)
//! [`Shard`] does exactly that with the real [`ctr_cases::stream::handle`], and times each
//! invocation, so a test can see what was held, reported and written, invocation by invocation.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use aws_lambda_events::streams::KinesisEventResponse;
use ctr_cases::app::AppState;
use ctr_cases::event::{KinesisEnvelope, KinesisEnvelopeRecord};
use ctr_cases::stream::handle;

use super::fixtures::{failures, kinesis_event, lambda_event};

/// The shard the records are in (matches [`super::fixtures::kinesis_event`]).
pub const SHARD_ID: &str = "shardId-000000000000";

/// A stream ARN for the records' `eventSourceARN` (letters carry it).
pub const STREAM_ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/ctr-stream";

/// What one invocation was given and answered.
#[derive(Debug)]
pub struct Invocation {
    /// Sequence numbers delivered, in order.
    pub delivered: Vec<String>,
    /// Sequence numbers reported in `batchItemFailures`.
    pub reported: Vec<String>,
    /// How long `handle` took (processing plus any outage hold).
    pub elapsed: Duration,
    /// The response as returned.
    pub response: KinesisEventResponse,
}

/// A shard's records and the event source mapping's checkpoint in it.
pub struct Shard {
    /// Each record as event JSON (the envelope record type is not `Clone`).
    records: Vec<serde_json::Value>,
    sequence_numbers: Vec<String>,
    checkpoint: usize,
    batch_size: usize,
}

/// Kinesis records carrying `datas` (base64, as Kinesis delivers them), sequence numbers
/// `first_seq`, `first_seq + 1`, …, arrived at `arrival` (epoch seconds) when given.
pub fn records(
    datas: &[Vec<u8>],
    first_seq: u64,
    arrival: Option<f64>,
) -> Vec<KinesisEnvelopeRecord> {
    let mut records = kinesis_event(datas, first_seq).records;
    for record in &mut records {
        record.event_source_arn = Some(STREAM_ARN.to_owned());
        record.kinesis.approximate_arrival_timestamp = arrival;
    }
    records
}

/// Now, in epoch seconds (as `approximateArrivalTimestamp`), moved by `offset_secs`.
pub fn epoch_secs(offset_secs: f64) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    now.as_secs_f64() + offset_secs
}

impl Shard {
    /// A shard holding `records` in order, delivered `batch_size` at a time.
    pub fn new(records: Vec<KinesisEnvelopeRecord>, batch_size: usize) -> Self {
        assert!(batch_size > 0, "a batch holds at least one record");
        let sequence_numbers = records
            .iter()
            .map(|r| r.kinesis.sequence_number.clone())
            .collect();
        Shard {
            records: records
                .iter()
                .map(|r| serde_json::to_value(r).expect("records serialize"))
                .collect(),
            sequence_numbers,
            checkpoint: 0,
            batch_size,
        }
    }

    /// Records not yet behind the checkpoint.
    pub fn remaining(&self) -> usize {
        self.records.len() - self.checkpoint
    }

    /// The sequence numbers not yet behind the checkpoint.
    pub fn pending(&self) -> &[String] {
        &self.sequence_numbers[self.checkpoint..]
    }

    /// Delivers the next batch to `handle` with an invocation deadline `budget` from now and
    /// moves the checkpoint as Lambda does.
    ///
    /// # Panics
    /// When nothing is left, when `handle` fails the whole batch, or when a reported sequence
    /// number is not one of the batch's.
    pub async fn invoke(&mut self, state: &AppState, budget: Duration) -> Invocation {
        assert!(
            self.remaining() > 0,
            "the shard has no record left to deliver"
        );
        let end = (self.checkpoint + self.batch_size).min(self.records.len());
        let batch = KinesisEnvelope {
            records: self.records[self.checkpoint..end]
                .iter()
                .map(|r| serde_json::from_value(r.clone()).expect("records deserialize"))
                .collect(),
        };
        let delivered = self.sequence_numbers[self.checkpoint..end].to_vec();
        let started = Instant::now();
        let response = handle(state, lambda_event(batch, budget))
            .await
            .expect("the handler answers with a partial batch response");
        let elapsed = started.elapsed();
        let reported = failures(&response);
        let lowest = reported
            .iter()
            .map(|seq| {
                delivered
                    .iter()
                    .position(|d| d == seq)
                    .unwrap_or_else(|| panic!("{seq} was not delivered: {delivered:?}"))
            })
            .min();
        self.checkpoint += lowest.unwrap_or(delivered.len());
        Invocation {
            delivered,
            reported,
            elapsed,
            response,
        }
    }

    /// Invokes until every record is behind the checkpoint; returns the invocations made.
    ///
    /// # Panics
    /// After `max_invocations` without getting there.
    pub async fn drain(
        &mut self,
        state: &AppState,
        budget: Duration,
        max_invocations: usize,
    ) -> Vec<Invocation> {
        let mut made = Vec::new();
        while self.remaining() > 0 {
            assert!(
                made.len() < max_invocations,
                "{} record(s) still pending after {max_invocations} invocations",
                self.remaining()
            );
            made.push(self.invoke(state, budget).await);
        }
        made
    }
}
