//! SQS for redrive: the [`MessageQueue`] trait (receive, delete, release, send) and its SQS
//! adapter, [`SqsQueue`]. The rounds of a redrive ([`crate::redrive::rounds`]) see only the
//! trait and this module's own types, so they run against an in-memory queue in tests.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageAttributeValue, MessageSystemAttributeName as Attr,
};

/// Most messages one `ReceiveMessage` call returns, and most entries in one `*Batch` call (SQS
/// limits).
pub const SQS_BATCH: usize = 10;

/// The longest visibility timeout SQS accepts (12 hours).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(43_200);

/// Long poll of each `ReceiveMessage` call, in seconds. A long poll asks every SQS server, so
/// an empty answer means the queue has nothing visible (a short poll samples only some).
/// Source: SQS developer guide, "Amazon SQS short and long polling".
const RECEIVE_WAIT_SECONDS: i32 = 1;

/// One message attribute, as SQS stores it (`String`, `Number` or `Binary`, with an optional
/// custom suffix such as `String.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAttribute {
    /// The data type (`String`, `Number`, `Binary`, optionally `.suffix`).
    pub data_type: String,
    /// The value of a `String` or `Number` attribute.
    pub string_value: Option<String>,
    /// The value of a `Binary` attribute.
    pub binary_value: Option<Vec<u8>>,
}

/// A received message.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueMessage {
    /// The message id (stable across receives).
    pub message_id: String,
    /// The latest receipt handle (each receive gives a new one; deletes need the latest).
    pub receipt_handle: String,
    /// The body.
    pub body: String,
    /// The FIFO message group, when there is one.
    pub group_id: Option<String>,
    /// When SQS received the message (epoch milliseconds).
    pub sent_at_ms: Option<u64>,
    /// The message attributes (kept to move the message within a FIFO queue).
    pub attributes: BTreeMap<String, MessageAttribute>,
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OutgoingMessage {
    /// The body.
    pub body: String,
    /// The message attributes.
    pub attributes: BTreeMap<String, MessageAttribute>,
    /// The message group (FIFO queues only).
    pub group_id: Option<String>,
    /// The deduplication id (FIFO queues only): SQS drops a message whose id was used in the
    /// last 5 minutes.
    pub dedup_id: Option<String>,
}

/// An SQS queue as redrive uses it. Every per-message call answers one result per message, in
/// order, with SQS's error code on failure: a failed entry never fails the others.
pub trait MessageQueue {
    /// The queue URL (a FIFO queue's ends in `.fifo`).
    fn url(&self) -> &str;

    /// One `ReceiveMessage` call: up to `max` (at most [`SQS_BATCH`]) messages, each hidden
    /// for `visibility`. An empty answer means nothing is visible.
    ///
    /// # Errors
    /// What SQS answered (its error code and message), or why there was no answer.
    fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> impl Future<Output = Result<Vec<QueueMessage>, String>> + Send;

    /// Deletes messages by receipt handle.
    fn delete(&self, handles: &[&str]) -> impl Future<Output = Vec<Result<(), String>>> + Send;

    /// Makes messages visible again at once (visibility timeout 0).
    fn release(&self, handles: &[&str]) -> impl Future<Output = Vec<Result<(), String>>> + Send;

    /// Sends one message; returns its new message id.
    ///
    /// # Errors
    /// SQS's error code.
    fn send(
        &self,
        message: &OutgoingMessage,
    ) -> impl Future<Output = Result<String, String>> + Send;
}

/// An SQS queue, through the SDK.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    /// The SQS client.
    pub client: aws_sdk_sqs::Client,
    /// The queue URL.
    pub queue_url: String,
}

/// What a per-message `*Batch` call does to each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// `DeleteMessageBatch`.
    Delete,
    /// `ChangeMessageVisibilityBatch` with timeout 0.
    Release,
}

/// A `*Batch` answer: the ids of the entries that succeeded, and (id, SQS error code) of the
/// ones that failed.
type BatchAnswer = (Vec<String>, Vec<(String, String)>);

impl SqsQueue {
    /// Deletes or releases messages by receipt handle, [`SQS_BATCH`] a call: one result per
    /// handle, in order.
    async fn change(&self, change: Change, handles: &[&str]) -> Vec<Result<(), String>> {
        let mut results = Vec::with_capacity(handles.len());
        for chunk in handles.chunks(SQS_BATCH) {
            let answer = match change {
                Change::Delete => {
                    let entries = chunk.iter().enumerate().map(|(i, handle)| {
                        DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(*handle)
                            .build()
                            .expect("id and receipt handle are set")
                    });
                    self.client
                        .delete_message_batch()
                        .queue_url(&self.queue_url)
                        .set_entries(Some(entries.collect()))
                        .send()
                        .await
                        .map(|a| batch_answer(a.successful().iter().map(|s| s.id()), a.failed()))
                        .map_err(|e| code(&e))
                }
                Change::Release => {
                    let entries = chunk.iter().enumerate().map(|(i, handle)| {
                        ChangeMessageVisibilityBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(*handle)
                            .visibility_timeout(0)
                            .build()
                            .expect("id and receipt handle are set")
                    });
                    self.client
                        .change_message_visibility_batch()
                        .queue_url(&self.queue_url)
                        .set_entries(Some(entries.collect()))
                        .send()
                        .await
                        .map(|a| batch_answer(a.successful().iter().map(|s| s.id()), a.failed()))
                        .map_err(|e| code(&e))
                }
            };
            results.extend(batch_results(chunk.len(), answer));
        }
        results
    }
}

impl MessageQueue for SqsQueue {
    fn url(&self) -> &str {
        &self.queue_url
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<QueueMessage>, String> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, SQS_BATCH) as i32)
            .wait_time_seconds(RECEIVE_WAIT_SECONDS)
            .visibility_timeout(visibility.min(MAX_VISIBILITY).as_secs() as i32)
            .message_attribute_names("All")
            .message_system_attribute_names(Attr::MessageGroupId)
            .message_system_attribute_names(Attr::SentTimestamp)
            .send()
            .await
            .map_err(|e| match e.code() {
                Some(code) => format!("SQS answered {code}: {}", e.message().unwrap_or_default()),
                None => aws_sdk_sqs::error::DisplayErrorContext(&e).to_string(),
            })?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|message| {
                let system = message.attributes();
                Some(QueueMessage {
                    message_id: message.message_id()?.to_owned(),
                    receipt_handle: message.receipt_handle()?.to_owned(),
                    body: message.body().unwrap_or_default().to_owned(),
                    group_id: system.and_then(|a| a.get(&Attr::MessageGroupId)).cloned(),
                    sent_at_ms: system
                        .and_then(|a| a.get(&Attr::SentTimestamp))
                        .and_then(|t| t.parse().ok()),
                    attributes: message
                        .message_attributes()
                        .into_iter()
                        .flatten()
                        .map(|(name, value)| (name.clone(), from_sdk(value)))
                        .collect(),
                })
            })
            .collect())
    }

    async fn delete(&self, handles: &[&str]) -> Vec<Result<(), String>> {
        self.change(Change::Delete, handles).await
    }

    async fn release(&self, handles: &[&str]) -> Vec<Result<(), String>> {
        self.change(Change::Release, handles).await
    }

    async fn send(&self, message: &OutgoingMessage) -> Result<String, String> {
        let attributes: Option<std::collections::HashMap<String, MessageAttributeValue>> =
            (!message.attributes.is_empty()).then(|| {
                message
                    .attributes
                    .iter()
                    .filter_map(|(name, value)| Some((name.clone(), to_sdk(value)?)))
                    .collect()
            });
        let sent = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(&message.body)
            .set_message_attributes(attributes)
            .set_message_group_id(message.group_id.clone())
            .set_message_deduplication_id(message.dedup_id.clone())
            .send()
            .await
            .map_err(|e| code(&e))?;
        Ok(sent.message_id().unwrap_or_default().to_owned())
    }
}

/// SQS's error code, or why there was no answer.
fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("no answer from SQS").to_owned()
}

fn batch_answer<'a>(
    ok: impl Iterator<Item = &'a str>,
    failed: &[aws_sdk_sqs::types::BatchResultErrorEntry],
) -> BatchAnswer {
    (
        ok.map(str::to_owned).collect(),
        failed
            .iter()
            .map(|f| (f.id().to_owned(), f.code().to_owned()))
            .collect(),
    )
}

/// Maps a `*Batch` answer (entry ids `0…n-1`) to one result per entry; an entry missing from
/// the answer failed.
fn batch_results(n: usize, answer: Result<BatchAnswer, String>) -> Vec<Result<(), String>> {
    match answer {
        Err(code) => vec![Err(code); n],
        Ok((ok, failed)) => {
            let mut results = vec![Err("not in the batch answer".to_owned()); n];
            for id in ok {
                if let Some(r) = id.parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
                    *r = Ok(());
                }
            }
            for (id, code) in failed {
                if let Some(r) = id.parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
                    *r = Err(code);
                }
            }
            results
        }
    }
}

fn from_sdk(value: &MessageAttributeValue) -> MessageAttribute {
    MessageAttribute {
        data_type: value.data_type().to_owned(),
        string_value: value.string_value().map(str::to_owned),
        binary_value: value.binary_value().map(|b| b.as_ref().to_vec()),
    }
}

fn to_sdk(value: &MessageAttribute) -> Option<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type(&value.data_type)
        .set_string_value(value.string_value.clone())
        .set_binary_value(value.binary_value.clone().map(Blob::new))
        .build()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_answers_give_one_result_per_entry_in_order() {
        let answer = Ok((
            vec!["0".to_owned(), "2".to_owned()],
            vec![("1".to_owned(), "ReceiptHandleIsInvalid".to_owned())],
        ));
        assert_eq!(
            batch_results(4, answer),
            [
                Ok(()),
                Err("ReceiptHandleIsInvalid".to_owned()),
                Ok(()),
                Err("not in the batch answer".to_owned())
            ]
        );
        assert_eq!(
            batch_results(2, Err("AccessDenied".into())),
            [
                Err("AccessDenied".to_owned()),
                Err("AccessDenied".to_owned())
            ]
        );
    }

    #[test]
    fn attributes_survive_the_round_trip_through_the_sdk_types() {
        let attribute = MessageAttribute {
            data_type: "String.json".into(),
            string_value: Some("v".into()),
            binary_value: None,
        };
        assert_eq!(from_sdk(&to_sdk(&attribute).unwrap()), attribute);
        let binary = MessageAttribute {
            data_type: "Binary".into(),
            string_value: None,
            binary_value: Some(vec![1, 2]),
        };
        assert_eq!(from_sdk(&to_sdk(&binary).unwrap()), binary);
    }
}
