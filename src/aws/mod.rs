//! The AWS adapters: every call to an AWS service goes through a module here, so the rest of
//! the crate sees small traits and its own types, never an SDK client.
//!
//! - [`queue`]: dead-letter sinks (SQS `SendMessageBatch`, file, memory, recorder) and the one
//!   `SendMessageBatch` sender every SQS sender of the crate shares.
//! - [`callback_queue`]: the callback queue (SQS FIFO, by ContactId) and its dead-letter queue.
//! - [`secrets`]: credentials from Secrets Manager (a [`crate::salesforce::CredentialProvider`]).
//! - [`connect`]: Amazon Connect `StartTaskContact`, paced, with typed errors.
//! - [`sqs`]: the queues `ctr-cases redrive` reads and writes ([`sqs::MessageQueue`]).
//! - [`kinesis`]: the ranges of a shard `ctr-cases redrive` reads back
//!   ([`kinesis::StreamReader`]).

pub mod callback_queue;
pub mod connect;
pub mod kinesis;
pub mod queue;
pub mod secrets;
pub mod sqs;
