//! # ctr-cases
//!
//! An AWS Lambda that turns Amazon Connect contact trace records (CTRs), streamed through
//! Kinesis, into Salesforce Service Cloud Cases: one Case for every dropped call (and, where
//! configured, for queued-abandoned and happy-path contacts), upserted by ContactId so it is
//! never duplicated.
//!
//! ## Data flow (one invocation)
//! ```text
//! KinesisEnvelope ──decode (event, ctr)──▶ Ctr or DecodeError per record
//!   ──dedupe by ContactId (newest LastUpdateTimestamp)──▶ classify ──▶ case::build   (batch: pure)
//!   ──▶ salesforce upsert (≤200 per collections call, retries, token cache)          (I/O)
//!   ──▶ dead letters (SQS) for poison records and permanent rejections              (I/O)
//!   ──▶ KinesisEventResponse { batchItemFailures: records to retry }
//! ```
//!
//! ## Layout
//! - [`ctr`]: CTR types and lenient decoding (pure).
//! - [`event`]: the Kinesis event envelope, decoded record by record (pure).
//! - [`classify`]: the decision table: dropped, happy path, transferred, abandoned, skipped (pure).
//! - [`case`]: CTR + outcome → Case fields, configurable templates, truncation (pure).
//! - [`batch`]: plan a batch (decode, dedupe, classify, map) and count the results (pure).
//! - [`salesforce`]: OAuth flows, token cache, collections upsert, typed errors.
//! - [`secrets`]: credentials from the environment or Secrets Manager.
//! - [`deadletter`]: the SQS dead-letter queue.
//! - [`retry`]: deadline and backoff schedule.
//! - [`metrics`]: CloudWatch Embedded Metric Format lines (pure).
//! - [`config`]: environment variables (the only place that reads them).
//! - [`logging`]: text or JSON logs.
//! - [`handler`]: wires a batch through all of the above.

pub mod batch;
pub mod case;
pub mod classify;
pub mod config;
pub mod ctr;
pub mod deadletter;
pub mod event;
pub mod handler;
pub mod logging;
pub mod metrics;
pub mod privacy;
pub mod retry;
pub mod salesforce;
pub mod secrets;
