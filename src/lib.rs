//! # ctr-cases
//!
//! AWS Lambdas that turn Amazon Connect contacts into Salesforce Service Cloud Cases: one Case
//! for every dropped call (and, where configured, for queued-abandoned and happy-path
//! contacts), keyed by ContactId so it is never duplicated.
//!
//! ## Data flow: one pipeline for every entry point
//! ```text
//! Kinesis batch ─┐                 ┌ Case writes (Salesforce)        ┌ rejection, parked letters
//! CTR files ─────┼▶ plan ▶ execute ┤                  ▶ report ▶ execute ┤ callback states
//! dead letters ──┘  pure   I/O     └ poison letters (SQS)   pure    I/O  └ callback requests
//!                                                                             │
//!                 report (pure) ◀─────────────────────────────────────────────┘
//!                   ▼  Lambda response · CLI lines · summary · EMF metrics
//!
//! flow event ─▶ plan::handoff (pure) ─▶ execute::handoff (I/O) ─▶ report::handoff (pure)
//!                                                     ▼  the flow's answer · its log line
//! ```
//! - **plan** ([`plan`]): decode each record once, dedupe by ContactId (newest
//!   LastUpdateTimestamp), classify, map to Case writes, decide poison letters, callback
//!   requests and callback states. For the contact-flow function, [`plan::handoff`]: the invoke
//!   event → the hand-off Case to write, or the `caseError` of an event that names no contact.
//! - **execute** ([`execute`]): performs effects and decides nothing, under one deadline, in
//!   two passes: the plan's Case writes with its poison letters (concurrently) through a
//!   [`effect::CaseSink`] (the Salesforce client, or a recorder for dry runs) and a
//!   [`effect::LetterSink`] (SQS, a file, memory, or a recorder); then the follow-ups the report
//!   decided, through those and an [`effect::CallbackSink`]. For the flow, [`execute::handoff`].
//! - **report** ([`report`]): from the first pass's write results and the wall clock handed in,
//!   the follow-ups ([`report::follow_ups`]); from every result, each record's final state, the
//!   records to retry, the summary: the one place where an error class becomes an action. For
//!   the flow, [`report::handoff`]: its answer map.
//!
//! plan, execute and report read no clock: [`pipeline`] hands the report the wall clock
//! ([`retry::epoch_secs`]); each entry point makes the deadline ([`retry::Deadline`]).
//! Between an entry point and [`pipeline::run`] there is at most one function:
//! `stream::handle` → [`stream::process_batch`] → [`pipeline::run`]; redrive and the replay
//! CLI call [`pipeline::run`] themselves.
//!
//! ## Layout
//! Pure (no I/O, no `config`, no tokio/reqwest/AWS SDK):
//! - [`ctr`]: CTR types and lenient one-pass decoding.
//! - [`input`]: the pipeline's input record, from any source, as delivered.
//! - [`event`]: the Kinesis event envelope, decoded record by record.
//! - [`invoke_event`]: the contact-flow invoke event, decoded leniently into its contact.
//! - [`classify`]: the decision table: dropped, happy path, transferred, abandoned, skipped.
//! - [`case`]: CTR + outcome → Case fields, configurable templates, truncation.
//! - [`letter`]: the dead-letter message format.
//! - [`privacy`]: which contact attributes may reach a Case; card-number masking.
//! - [`linking`]: linking a Case to the caller's Contact (ids, phone search, the match rule).
//! - [`callback`]: which dropped callers get a callback task; the queued request; the task.
//! - [`callback_batch`]: the callback function's batch plan and report.
//! - [`effect`]: the effects and their results; the sink traits (Cases, letters, callbacks,
//!   the flow's hand-off Case).
//! - [`plan`], [`report`]: the pure ends of the pipeline.
//! - [`report_table`]: a report as a table for people, fitted to the terminal's width.
//! - [`metrics`]: CloudWatch Embedded Metric Format lines.
//! - [`retry`]: deadline and backoff schedule (reads the clock only).
//! - [`stream_scope`]: the one stream redrive may read (stream ARNs checked against
//!   `KINESIS_STREAM_ARN`) and the batch size bounding a range.
//! - [`shard_range`]: ShardFailureQueue messages, whether their range may be read, and the
//!   completeness check of a range read back.
//!
//! I/O:
//! - [`execute`]: performs effects; [`pipeline`]: plan → execute → report → execute → report.
//! - [`salesforce`]: OAuth grants, token cache, Case writes, wire formats, typed errors, and a
//!   request recorder for dry runs. Uses no `config` and no [`aws`] adapter.
//! - [`aws`]: every AWS adapter, in one place:
//!   - [`aws::secrets`]: credentials from Secrets Manager (a [`salesforce::CredentialProvider`]).
//!   - [`aws::queue`]: dead-letter sinks (SQS `SendMessageBatch`, file, memory, recorder).
//!   - [`aws::callback_queue`]: the callback queue (SQS FIFO, by ContactId) and its dead-letter
//!     queue.
//!   - [`aws::connect`]: Amazon Connect `StartTaskContact`, paced, with typed errors.
//!   - [`aws::sqs`], [`aws::kinesis`]: the queues and the stream `ctr-cases redrive` uses,
//!     behind the [`aws::sqs::MessageQueue`] and [`aws::kinesis::StreamReader`] traits.
//!
//! Wiring:
//! - [`config`]: environment variables → the settings of each module above.
//! - [`app`]: the state a warm container keeps; [`logging`]: text or JSON logs.
//! - [`stream`]: the stream Lambda's entry point (Kinesis batch → partial batch response).
//! - [`doctor`]: `ctr-cases check`: the org check plus login, API usage, assignment rules,
//!   Case sharing and the dead-letter queue, as rows for people ([`doctor::rows`]: table, JSON).
//! - [`redrive`]: dead letters and ShardFailureQueue ranges back through the pipeline, and
//!   refused callback requests back to the callback queue: options, pure decisions
//!   ([`redrive::decide`], [`shard_range`]), the rounds over the [`aws`] traits
//!   ([`redrive::rounds`]) and the output ([`redrive::output`]).
//! - [`flow`]: the contact-flow Lambda's entry point (Connect invoke event → hand-off Case, by
//!   [`plan::handoff`] → [`execute::handoff`] → [`report::handoff`]).
//! - [`callback_function`]: the callback Lambda's entry point (SQS callback requests → Connect
//!   tasks, task ids on the Cases).
//! - Binaries: `src/main.rs` (the stream Lambda), `src/bin/flow.rs` (the contact-flow
//!   Lambda), `src/bin/callback.rs` (the callback Lambda), `src/bin/cli.rs` (`ctr-cases replay` /
//!   `redrive` / `check`); each only bootstraps.

pub mod app;
pub mod aws;
pub mod callback;
pub mod callback_batch;
pub mod callback_function;
pub mod case;
pub mod classify;
pub mod config;
pub mod ctr;
pub mod doctor;
pub mod effect;
pub mod event;
pub mod execute;
pub mod flow;
pub mod input;
pub mod invoke_event;
pub mod letter;
pub mod linking;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod plan;
pub mod privacy;
pub mod redrive;
pub mod report;
pub mod report_table;
pub mod retry;
pub mod salesforce;
pub mod shard_range;
pub mod stream;
pub mod stream_scope;
