//! Kinesis for redrive: the [`StreamReader`] trait (the records of a range of a shard) and its
//! Kinesis adapter, [`KinesisReader`].

use std::future::Future;

use crate::shard_range::{RangeCollector, RangeError, ShardRange, StreamRecord};
use crate::stream_scope::StreamScope;

/// `GetRecords` answers in a row without a record before a range read gives up: Kinesis may
/// return empty answers while it skips over empty parts of a shard (Kinesis developer guide,
/// "GetRecords"), but not forever.
const MAX_EMPTY_READS: u32 = 20;

/// Reads ranges of a shard back from the deployment's stream.
pub trait StreamReader {
    /// The records of `range`, read from the deployment's stream (`scope`), never from the
    /// stream the range names; complete and within the deployment's batch size, or an error.
    ///
    /// # Errors
    /// Any [`RangeError`].
    fn read_range(
        &self,
        scope: &StreamScope,
        range: &ShardRange,
    ) -> impl Future<Output = Result<Vec<StreamRecord>, RangeError>> + Send;
}

/// The deployment's stream, through the SDK.
#[derive(Debug, Clone)]
pub struct KinesisReader {
    /// The Kinesis client.
    pub client: aws_sdk_kinesis::Client,
}

impl StreamReader for KinesisReader {
    /// Reads `range` back from the deployment's stream (`scope`): `GetShardIterator`
    /// (`AT_SEQUENCE_NUMBER` at its start) then `GetRecords` until past its end, checked and
    /// bounded by a [`RangeCollector`] (at most the deployment's batch size of records). The
    /// calls name the deployment's stream ARN and go to its Region, whatever the message named
    /// (check it first with [`crate::shard_range::admit_range`] or
    /// [`crate::redrive::decide::admit_letter`]); a stream of another account works when the
    /// deployment names it.
    ///
    /// # Errors
    /// Any [`RangeError`].
    async fn read_range(
        &self,
        scope: &StreamScope,
        range: &ShardRange,
    ) -> Result<Vec<StreamRecord>, RangeError> {
        let kinesis = &self.client;
        let stream_arn = scope.stream().as_str();
        let region = || {
            aws_sdk_kinesis::config::Builder::default().region(
                aws_sdk_kinesis::config::Region::new(scope.stream().region().to_owned()),
            )
        };
        let start = kinesis
            .get_shard_iterator()
            .stream_arn(stream_arn)
            .shard_id(&range.shard_id)
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::AtSequenceNumber)
            .starting_sequence_number(&range.start_sequence_number)
            .customize()
            .config_override(region())
            .send()
            .await
            .map_err(|e| kinesis_error("GetShardIterator", &e))?;
        let mut collector = RangeCollector::new(range, scope.batch_size());
        let mut iterator = start.shard_iterator;
        let mut empty_reads = 0;
        while let Some(current) = iterator.take() {
            let out = kinesis
                .get_records()
                .stream_arn(stream_arn)
                .shard_iterator(current)
                .limit(collector.wanted())
                .customize()
                .config_override(region())
                .send()
                .await
                .map_err(|e| kinesis_error("GetRecords", &e))?;
            let batch: Vec<StreamRecord> = out
                .records()
                .iter()
                .map(|r| StreamRecord {
                    sequence_number: r.sequence_number().to_owned(),
                    partition_key: r.partition_key().map(str::to_owned),
                    arrival: r
                        .approximate_arrival_timestamp()
                        .map(aws_sdk_kinesis::primitives::DateTime::as_secs_f64),
                    data: r.data().as_ref().to_vec(),
                })
                .collect();
            let empty = batch.is_empty();
            if collector.add(batch)? {
                break;
            }
            if empty {
                empty_reads += 1;
                // Caught up with the tip of the shard: there is nothing more to read.
                if out.millis_behind_latest() == Some(0) || empty_reads >= MAX_EMPTY_READS {
                    break;
                }
            } else {
                empty_reads = 0;
            }
            iterator = out.next_shard_iterator().map(str::to_owned);
        }
        collector.finish()
    }
}

fn kinesis_error<E, R>(
    operation: &'static str,
    e: &aws_sdk_kinesis::error::SdkError<E, R>,
) -> RangeError
where
    E: aws_sdk_kinesis::error::ProvideErrorMetadata,
{
    let code = aws_sdk_kinesis::error::ProvideErrorMetadata::code(e)
        .unwrap_or("no answer from Kinesis")
        .to_owned();
    let message = aws_sdk_kinesis::error::ProvideErrorMetadata::message(e)
        .unwrap_or_default()
        .to_owned();
    if code == "ResourceNotFoundException" {
        RangeError::Gone(format!(
            "{operation}: the stream or shard was not found ({message})"
        ))
    } else {
        RangeError::Call {
            operation,
            code,
            message,
        }
    }
}
