//! The callback queue (SQS FIFO, `CALLBACK_QUEUE_URL`): the stream function queues one
//! callback request per dropped-call Case here and never waits for Amazon Connect; the
//! callback function reads it. Also the callback dead-letter queue's sender.
//!
//! Every message's group and deduplication id is its ContactId: SQS drops a second request for
//! the same contact within its 5-minute deduplication window, and delivers one contact's
//! messages one at a time, so two copies never reach Connect at once.

use crate::aws::queue::{send_entries, send_in_batches};
use crate::callback::CallbackRequest;
use crate::effect::{CallbackSink, SendOutcome};
use crate::retry::Deadline;

/// `SendMessageBatch` calls in flight at once.
const PARALLEL_BATCHES: usize = 4;

/// An SQS FIFO queue of callback requests.
#[derive(Debug, Clone)]
pub struct CallbackQueue {
    /// The SQS client.
    pub client: aws_sdk_sqs::Client,
    /// The queue URL (ends in `.fifo`).
    pub queue_url: String,
}

impl CallbackQueue {
    /// Sends one message body per `(contact_id, body)` pair, each grouped and deduplicated by
    /// its ContactId; one outcome per pair, in order.
    pub async fn send_bodies(
        &self,
        messages: &[(&str, String)],
        deadline: Deadline,
    ) -> Vec<SendOutcome> {
        let sizes: Vec<usize> = messages.iter().map(|(_, body)| body.len()).collect();
        send_in_batches(&sizes, PARALLEL_BATCHES, |batch| async move {
            self.send_batch(messages, &batch, deadline).await
        })
        .await
    }

    async fn send_batch(
        &self,
        messages: &[(&str, String)],
        batch: &[usize],
        deadline: Deadline,
    ) -> Vec<SendOutcome> {
        let entries = batch.iter().enumerate().map(|(entry, &i)| {
            let (contact_id, body) = &messages[i];
            aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                .id(entry.to_string())
                .message_body(body)
                .message_group_id(*contact_id)
                .message_deduplication_id(*contact_id)
                .build()
                .expect("id and body are set")
        });
        send_entries(&self.client, &self.queue_url, entries.collect(), deadline).await
    }
}

impl CallbackSink for CallbackQueue {
    async fn queue_callbacks(
        &self,
        requests: &[&CallbackRequest],
        deadline: Deadline,
    ) -> Vec<SendOutcome> {
        let messages: Vec<(&str, String)> = requests
            .iter()
            .map(|r| (r.contact_id.as_str(), r.body()))
            .collect();
        self.send_bodies(&messages, deadline).await
    }
}

/// The stream function's callback sink: the queue when callbacks are on, else nothing.
#[derive(Debug, Clone, Default)]
pub enum CallbackTarget {
    /// Callbacks are off (`CALLBACK_TASKS` unset or false): no request is planned.
    #[default]
    Off,
    /// Requests go to this queue.
    Queue(CallbackQueue),
}

impl CallbackSink for CallbackTarget {
    async fn queue_callbacks(
        &self,
        requests: &[&CallbackRequest],
        deadline: Deadline,
    ) -> Vec<SendOutcome> {
        match self {
            CallbackTarget::Off => vec![SendOutcome::Recorded; requests.len()],
            CallbackTarget::Queue(queue) => queue.queue_callbacks(requests, deadline).await,
        }
    }
}
