//! Redrive: dead letters (parked and rejected records) and ShardFailureQueue ranges back
//! through the same pipeline as the Lambda ([`crate::pipeline::run`]); `ctr-cases redrive` is
//! a thin adapter that wires the AWS adapters ([`crate::aws::sqs::SqsQueue`],
//! [`crate::aws::kinesis::KinesisReader`]) into a [`rounds::Redrive`] and runs it.
//!
//! Layout:
//! - [`options`]: what a run redrives (`--kinds`) and how long a message stays hidden.
//! - [`decide`] (pure): what a message is ([`decide::triage_letter`]), whether it may be
//!   redriven ([`decide::admit_letter`]), a letter → a pipeline input
//!   ([`decide::OwnedInput`]), how much a part of a round holds ([`decide::RoundBudget`]), and
//!   what becomes of a message once its records were processed ([`decide::disposition`],
//!   [`decide::sent_result`]).
//! - ShardFailureQueue messages and their ranges are [`crate::shard_range`]'s (pure, shared with
//!   the Kinesis adapter).
//! - [`rounds`]: the rounds themselves (receive, decide, delete, release, move, send again),
//!   over the [`crate::aws::sqs::MessageQueue`] and [`crate::aws::kinesis::StreamReader`]
//!   traits, so they run against in-memory fakes in tests.
//! - [`output`]: the lines, the run's counts and the progress counts.
//!
//! What a message says is not trusted: the stream read is always the deployment's own
//! (`KINESIS_STREAM_ARN`, in its Region), a message naming another stream, account or Region
//! is left in the queue with the reason, and a range is read up to the deployment's batch size
//! of records (never the message's `batchSize`); a range holding more is left in the queue.
//! Without a configured stream, nothing is read from a stream: `--shard-failures` refuses to
//! run, and letters whose data was cut are left (letters carrying their full data still work).
//!
//! How a run goes, in rounds: receive new messages (up to [`decide::ROUND_MESSAGES`] and
//! about [`decide::ROUND_BYTES`] of bodies, never past `--limit`) until SQS returns nothing
//! new, run their records through the pipeline, delete the messages whose records all reached
//! a final state (any action but `retry`), then receive again. A round is processed in parts of
//! at most [`decide::ROUND_RECORDS`] records and about [`decide::ROUND_BYTES`] of data, so its
//! memory is bounded whatever the messages name. Messages that are not deleted stay in flight until the run ends,
//! so nothing is read twice; at the end, the ones not redriven are made visible again, and the
//! ones that failed again stay hidden until their visibility timeout expires.
//!
//! Redriving the dead-letter queue itself: the pipeline writes new letters into that queue. A
//! later round would receive them, so a letter for a record this run already redrove is never
//! redriven again in the same run (see [`decide::Untouched::AlreadyRedriven`]).
//!
//! FIFO queues (the stack's dead-letter queue is one, grouped by shard): SQS hands out no more
//! messages of a message group while some of it are in flight, so a message that is not
//! redriven would block every message behind it in its shard's group, in every run. With
//! `--send` such a message is therefore moved to the back of its group (sent again with the
//! same body, attributes and group, then deleted); a dry run, which changes nothing, only sees
//! the first messages of each group.
//!
//! Callback requests: the callback function dead-letters the requests Amazon Connect refused
//! for good (a bad contact flow, too many open tasks) into the callback queue's dead-letter
//! queue, with their original bodies. Redriving that queue sends each request to the callback
//! queue again (`CALLBACK_QUEUE_URL` or `--callback-queue`) and deletes it only once the send
//! succeeded; a dry run shows what it would send. The copy keeps the message group (the
//! ContactId) but gets a deduplication id of its own, [`decide::callback_dedup_id`]: the
//! ContactId alone would be dropped by SQS within 5 minutes of the first request. The copy is
//! still at most one task per contact: the callback function skips a Case whose task field is
//! set, and Amazon Connect's `ClientToken` (from the ContactId) makes a repeated start return
//! the first task.

pub mod decide;
pub mod options;
pub mod output;
pub mod rounds;

/// Why a redrive could not run at all (per-message problems are reported in the lines).
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    /// `--kinds` named a kind that does not exist.
    #[error(
        "unknown letter kind `{0}`: use a comma-separated list of parked, salesforce_rejected \
         and poison_record"
    )]
    UnknownKind(String),
    /// `--kinds` was empty.
    #[error("--kinds needs at least one kind (parked, salesforce_rejected, poison_record)")]
    NoKinds,
    /// `ReceiveMessage` failed.
    #[error(
        "cannot receive from {queue_url} ({detail}); check the queue URL, AWS_REGION and the \
         credentials (the CLI needs sqs:ReceiveMessage, sqs:DeleteMessage, \
         sqs:ChangeMessageVisibility and sqs:SendMessage, plus kms:Decrypt for an encrypted queue)"
    )]
    Receive {
        /// The queue.
        queue_url: String,
        /// What SQS answered (its error code and message), or why there was no answer.
        detail: String,
    },
    /// `--shard-failures` without the deployment's stream.
    #[error(
        "--shard-failures reads each message's range from the deployment's stream, and no \
         stream is configured: set KINESIS_STREAM_ARN (or --stream-arn) to the stack's \
         KinesisStreamArn, and KINESIS_BATCH_SIZE (or --batch-size) to its BatchSize"
    )]
    StreamNotConfigured,
}
