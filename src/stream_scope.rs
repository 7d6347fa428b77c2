//! The one stream a redrive may read, and how much of it at a time: the deployment's
//! `KINESIS_STREAM_ARN` and its event source mapping's batch size. Pure: parsing and comparing
//! stream ARNs, no I/O.
//!
//! Why it exists: a ShardFailureQueue message (`KinesisBatchInfo.streamArn`) and a dead letter
//! (`event_source_arn`) name a stream, and whoever can send to those queues writes that text.
//! Redrive runs with the operator's credentials, so trusting it would let a sender make those
//! credentials read any reachable stream and turn it into Cases (a confused deputy). A message
//! is therefore checked against the deployment's own stream ([`StreamScope::check_stream`]),
//! and a range against the deployment's batch size ([`StreamScope::check_batch`]), before
//! anything is read; the calls then go to the deployment's stream and Region, never to the
//! message's.

use std::fmt;

/// The batch size when none is configured: the template's `BatchSize` default.
pub const DEFAULT_BATCH_SIZE: u32 = 100;

/// The largest batch size there is: Lambda's maximum for a Kinesis event source mapping
/// (Lambda developer guide, "Using Lambda with Kinesis Data Streams", `BatchSize`).
pub const MAX_BATCH_SIZE: u32 = 10_000;

/// The most record data a range may hold: Lambda's 6 MB invocation payload limit bounds every
/// batch it delivers (the records travel base64-encoded, so their data is smaller still), so a
/// range holding more was never one batch of the deployment.
pub const MAX_RANGE_BYTES: usize = 6 * 1024 * 1024;

/// A Kinesis data stream ARN, checked: `arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME`.
///
/// Only ASCII letters, digits and `-_.:/` get through [`StreamArn::parse`], so an ARN is safe to
/// print even when a queue message supplied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamArn {
    text: String,
}

/// Why a text is not a Kinesis data stream ARN. Names no part of the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a Kinesis data stream ARN: expected arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME \
     with a 12-digit account, e.g. arn:aws:kinesis:us-east-1:123456789012:stream/connect-ctr \
     (the stack's KinesisStreamArn parameter)"
)]
pub struct NotAStreamArn;

impl StreamArn {
    /// Parses a stream ARN. The rules are those of the template's `KinesisStreamArn` parameter:
    /// partition `aws…`, service `kinesis`, a Region of lower-case letters, digits and `-`, a
    /// 12-digit account, and `stream/` with a 1-128 character name of letters, digits and `_.-`.
    ///
    /// # Errors
    /// [`NotAStreamArn`] for anything else.
    pub fn parse(text: &str) -> Result<Self, NotAStreamArn> {
        let mut parts = text.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some("kinesis"),
            Some(region),
            Some(account),
            Some(rest),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return Err(NotAStreamArn);
        };
        let partition_ok = partition
            .strip_prefix("aws")
            .is_some_and(|tail| tail.bytes().all(|c| c.is_ascii_alphabetic() || c == b'-'));
        let region_ok = !region.is_empty()
            && region
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
        let account_ok = account.len() == 12 && account.bytes().all(|c| c.is_ascii_digit());
        let name_ok = rest.strip_prefix("stream/").is_some_and(|name| {
            (1..=128).contains(&name.len())
                && name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
        });
        if partition_ok && region_ok && account_ok && name_ok {
            Ok(StreamArn {
                text: text.to_owned(),
            })
        } else {
            Err(NotAStreamArn)
        }
    }

    /// The ARN text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn part(&self, index: usize) -> &str {
        self.text.splitn(6, ':').nth(index).unwrap_or_default()
    }

    /// The partition (`aws`, `aws-cn`, …).
    pub fn partition(&self) -> &str {
        self.part(1)
    }

    /// The stream's Region: Kinesis calls for it go there.
    pub fn region(&self) -> &str {
        self.part(3)
    }

    /// The account that owns the stream.
    pub fn account(&self) -> &str {
        self.part(4)
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        self.part(5).trim_start_matches("stream/")
    }

    /// How `other` differs from this ARN, the broadest difference first (`None`: the same
    /// stream).
    pub fn difference(&self, other: &StreamArn) -> Option<&'static str> {
        if self.partition() != other.partition() {
            Some("partition")
        } else if self.account() != other.account() {
            Some("account")
        } else if self.region() != other.region() {
            Some("Region")
        } else if self.name() != other.name() {
            Some("stream")
        } else {
            None
        }
    }
}

impl fmt::Display for StreamArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why a batch size cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the batch size must be a whole number from 1 to {MAX_BATCH_SIZE} (Lambda's maximum for \
     Kinesis): set --batch-size or KINESIS_BATCH_SIZE to the stack's BatchSize parameter"
)]
pub struct BadBatchSize;

/// What a redrive may read: the deployment's stream, and at most its batch size of records
/// per range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamScope {
    stream: StreamArn,
    batch_size: u32,
}

/// Why a message is refused before anything is read for it. Each says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The message needs the stream, and no stream is configured.
    StreamNotConfigured,
    /// The message's stream ARN is not a Kinesis data stream ARN.
    NotAStreamArn,
    /// The message names another stream than the deployment's.
    OtherStream {
        /// The stream the message names.
        named: StreamArn,
        /// The deployment's stream.
        expected: StreamArn,
        /// What differs: `partition`, `account`, `Region` or `stream`.
        differs: &'static str,
    },
    /// The message's batch holds more records than a batch of the deployment.
    BatchTooLarge {
        /// The message's `batchSize`.
        claimed: u32,
        /// The deployment's batch size.
        batch_size: u32,
    },
}

impl Refusal {
    /// The reason code of an output line.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::StreamNotConfigured => "stream_not_configured",
            Refusal::NotAStreamArn | Refusal::OtherStream { .. } => "other_stream",
            Refusal::BatchTooLarge { .. } => "range_too_large",
        }
    }

    /// A description for people: what is wrong and what to do.
    pub fn note(&self) -> String {
        match self {
            Refusal::StreamNotConfigured => "the record must be read from the stream, and no \
                stream is configured: set KINESIS_STREAM_ARN (or --stream-arn) to the stack's \
                KinesisStreamArn; the message is left in the queue"
                .into(),
            Refusal::NotAStreamArn => "the message's stream ARN is not a Kinesis data stream \
                ARN: redrive reads only the deployment's stream (KINESIS_STREAM_ARN); the \
                message is left in the queue"
                .into(),
            Refusal::OtherStream {
                named,
                expected,
                differs,
            } => format!(
                "the message names {named}, another {differs} than KINESIS_STREAM_ARN \
                 ({expected}): redrive reads only the deployment's stream; the message is left \
                 in the queue"
            ),
            Refusal::BatchTooLarge {
                claimed,
                batch_size,
            } => format!(
                "the message's batch has {claimed} records, more than the deployment's batch \
                 size ({batch_size}, KINESIS_BATCH_SIZE or --batch-size): left in the queue. If \
                 the stack's BatchSize was larger when the batch failed, redrive with \
                 --batch-size set to that"
            ),
        }
    }
}

impl StreamScope {
    /// The scope of a deployment: its stream and its batch size (1 to [`MAX_BATCH_SIZE`]).
    ///
    /// # Errors
    /// [`BadBatchSize`] when the batch size is out of range.
    pub fn new(stream: StreamArn, batch_size: u32) -> Result<Self, BadBatchSize> {
        if (1..=MAX_BATCH_SIZE).contains(&batch_size) {
            Ok(StreamScope { stream, batch_size })
        } else {
            Err(BadBatchSize)
        }
    }

    /// The deployment's stream.
    pub fn stream(&self) -> &StreamArn {
        &self.stream
    }

    /// The most records a range may hold.
    pub fn batch_size(&self) -> u32 {
        self.batch_size
    }

    /// Whether `named`, a stream ARN taken from a message, is the deployment's stream.
    ///
    /// # Errors
    /// [`Refusal::NotAStreamArn`] or [`Refusal::OtherStream`].
    pub fn check_stream(&self, named: &str) -> Result<(), Refusal> {
        let named = StreamArn::parse(named).map_err(|_| Refusal::NotAStreamArn)?;
        match self.stream.difference(&named) {
            None => Ok(()),
            Some(differs) => Err(Refusal::OtherStream {
                named,
                expected: self.stream.clone(),
                differs,
            }),
        }
    }

    /// Whether a batch of `claimed` records (a message's `batchSize`, when it has one) fits
    /// the deployment's batch size. The message's number is only ever a reason to refuse: a
    /// range is read up to the deployment's batch size whatever the message says.
    ///
    /// # Errors
    /// [`Refusal::BatchTooLarge`].
    pub fn check_batch(&self, claimed: Option<u32>) -> Result<(), Refusal> {
        match claimed {
            Some(claimed) if claimed > self.batch_size => Err(Refusal::BatchTooLarge {
                claimed,
                batch_size: self.batch_size,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/connect-ctr";

    fn scope() -> StreamScope {
        StreamScope::new(StreamArn::parse(OURS).unwrap(), 100).unwrap()
    }

    #[test]
    fn stream_arns_parse_into_their_parts() {
        let arn = StreamArn::parse(OURS).unwrap();
        assert_eq!(arn.as_str(), OURS);
        assert_eq!(arn.partition(), "aws");
        assert_eq!(arn.region(), "eu-west-1");
        assert_eq!(arn.account(), "123456789012");
        assert_eq!(arn.name(), "connect-ctr");
        assert_eq!(arn.to_string(), OURS);
        let china =
            StreamArn::parse("arn:aws-cn:kinesis:cn-north-1:123456789012:stream/a.b_c").unwrap();
        assert_eq!(china.partition(), "aws-cn");
        assert_eq!(china.name(), "a.b_c");
    }

    #[test]
    fn anything_but_a_stream_arn_is_refused() {
        for text in [
            "",
            "arn:",
            "arn:aws:kinesis:eu-west-1:123456789012:stream/",
            "arn:aws:kinesis:eu-west-1:12345678901:stream/s",
            "arn:aws:kinesis:eu-west-1:123456789012:stream/s/consumer/c:1",
            "arn:aws:kinesis::123456789012:stream/s",
            "arn:aws:sqs:eu-west-1:123456789012:stream/s",
            "arn:gcp:kinesis:eu-west-1:123456789012:stream/s",
            "arn:aws:kinesis:EU-WEST-1:123456789012:stream/s",
            "arn:aws:kinesis:eu-west-1:123456789012:stream/s\u{1b}[2J",
            "arn:aws:kinesis:eu-west-1:123456789012:table/s",
        ] {
            assert_eq!(StreamArn::parse(text), Err(NotAStreamArn), "{text:?}");
        }
        let long = format!(
            "arn:aws:kinesis:eu-west-1:123456789012:stream/{}",
            "s".repeat(129)
        );
        assert_eq!(StreamArn::parse(&long), Err(NotAStreamArn));
    }

    #[test]
    fn only_the_deployments_stream_passes_and_the_refusal_says_what_differs() {
        let scope = scope();
        assert_eq!(scope.check_stream(OURS), Ok(()));
        for (other, differs) in [
            (
                "arn:aws:kinesis:eu-west-1:123456789012:stream/other",
                "stream",
            ),
            (
                "arn:aws:kinesis:eu-west-1:999999999999:stream/connect-ctr",
                "account",
            ),
            (
                "arn:aws:kinesis:us-east-1:123456789012:stream/connect-ctr",
                "Region",
            ),
            (
                "arn:aws-cn:kinesis:eu-west-1:123456789012:stream/connect-ctr",
                "partition",
            ),
        ] {
            let refusal = scope.check_stream(other).unwrap_err();
            assert!(
                matches!(&refusal, Refusal::OtherStream { differs: d, .. } if *d == differs),
                "{other}: {refusal:?}"
            );
            assert_eq!(refusal.code(), "other_stream");
            let note = refusal.note();
            assert!(note.contains(other) && note.contains(OURS), "{note}");
            assert!(note.contains("left in the queue"), "{note}");
        }
        let refusal = scope
            .check_stream("arn:aws:iam::123456789012:root")
            .unwrap_err();
        assert_eq!(refusal, Refusal::NotAStreamArn);
        assert!(!refusal.note().contains("iam"));
    }

    #[test]
    fn a_batch_larger_than_the_deployments_is_refused() {
        let scope = scope();
        assert_eq!(scope.check_batch(None), Ok(()));
        assert_eq!(scope.check_batch(Some(100)), Ok(()));
        let refusal = scope.check_batch(Some(101)).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::BatchTooLarge {
                claimed: 101,
                batch_size: 100
            }
        );
        assert_eq!(refusal.code(), "range_too_large");
        assert!(refusal.note().contains("--batch-size"));
    }

    #[test]
    fn batch_size_is_bounded_by_lambdas_maximum() {
        let arn = StreamArn::parse(OURS).unwrap();
        assert_eq!(StreamScope::new(arn.clone(), 0), Err(BadBatchSize));
        assert_eq!(
            StreamScope::new(arn.clone(), MAX_BATCH_SIZE + 1),
            Err(BadBatchSize)
        );
        assert_eq!(
            StreamScope::new(arn, MAX_BATCH_SIZE).unwrap().batch_size(),
            MAX_BATCH_SIZE
        );
        assert!(
            Refusal::StreamNotConfigured
                .note()
                .contains("KINESIS_STREAM_ARN")
        );
    }
}
