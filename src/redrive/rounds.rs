//! The rounds of a redrive: receive new messages, run their records through the pipeline,
//! decide what becomes of each message ([`super::decide`]), then delete, release, move or send
//! again. Every queue and stream call goes through [`MessageQueue`] and [`StreamReader`], so the
//! rounds run against in-memory fakes in the tests below.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::RedriveError;
use super::decide::{
    self, Disposition, Holds, LetterTriage, OwnedInput, ROUND_BYTES, ROUND_MESSAGES, RoundBudget,
    Untouched, callback_dedup_id, held_back, is_own_letter, recently_sent, triage_letter,
};
use super::options::KindFilter;
use super::output::{Line, MessageResult, Progress, ProgressCounts, Summary};
use crate::aws::callback_queue::CallbackTarget;
use crate::aws::kinesis::StreamReader;
use crate::aws::sqs::{MessageQueue, OutgoingMessage, QueueMessage, SQS_BATCH};
use crate::callback::CallbackRequest;
use crate::effect::{CaseSink, LetterSink};
use crate::input::InputRecord;
use crate::letter::DeadLetter;
use crate::pipeline;
use crate::plan::Settings;
use crate::report::RecordReport;
use crate::retry::Deadline;
use crate::shard_range::{ShardRange, admit_range};
use crate::stream_scope::{Refusal, StreamScope};

/// Most records in one pipeline run.
const PIPELINE_BATCH: usize = 200;

/// One redrive run: where records go, which queues and stream to use, and how.
pub struct Redrive<'a, C, L, Q, S> {
    /// Classifier, policy and mapping.
    pub settings: &'a Settings,
    /// Where Case writes go (Salesforce, or a recorder for a dry run).
    pub cases: &'a C,
    /// Where new dead letters go (SQS, or a recorder for a dry run).
    pub letters: &'a L,
    /// Where callback requests for redriven dropped calls go (the callback queue with
    /// `CALLBACK_TASKS`; off for a dry run): a redriven drop gets its callback like a streamed
    /// one, and at most one task (the callback function checks the Case).
    pub callbacks: &'a CallbackTarget,
    /// The queue new dead letters go to, when it is an SQS queue (to spot a FIFO queue's
    /// deduplication dropping a replacement letter).
    pub letters_queue_url: Option<&'a str>,
    /// Delete (and move, and send again) messages; without it nothing in a queue changes.
    pub send: bool,
    /// The queue redriven: a dead-letter queue (the stream function's, or the callback
    /// queue's) or a ShardFailureQueue.
    pub queue: &'a Q,
    /// The callback queue, where callback requests from the callback dead-letter queue are
    /// sent again (`CALLBACK_QUEUE_URL` or `--callback-queue`); without it they are left.
    pub callback_queue: Option<&'a Q>,
    /// The deployment's stream, for truncated letters and shard failures.
    pub stream_reader: &'a S,
    /// The deployment's stream and batch size: the only stream read, and the most records a
    /// range may hold. Without it nothing is read from a stream.
    pub stream: Option<&'a StreamScope>,
    /// How long received messages stay hidden.
    pub visibility_timeout: Duration,
    /// Most messages to read, if bounded.
    pub limit: Option<usize>,
    /// Where progress goes.
    pub progress: &'a dyn Progress,
    /// Called after each pipeline run (a dry run empties its recorders there).
    pub after_batch: &'a dyn Fn(),
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RedriveRun {
    /// One line per redriven record and per message not redriven, in the order read.
    pub lines: Vec<Line>,
    /// The counts.
    pub summary: Summary,
}

/// What the queue holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Letters,
    ShardFailures,
}

/// The messages a run has received and keeps in flight until it ends (so that none is read
/// twice).
#[derive(Debug, Default)]
struct InFlight {
    /// Every message id received, and the ids of moved copies.
    seen: HashSet<String>,
    /// Messages kept in flight: id → latest receipt handle.
    held: HashMap<String, String>,
    /// Of those, the ones to make visible again when the run ends.
    release: HashSet<String>,
}

impl InFlight {
    fn keep(&mut self, id: &str, receipt_handle: &str, release: bool) {
        self.held.insert(id.to_owned(), receipt_handle.to_owned());
        if release {
            self.release.insert(id.to_owned());
        }
    }
}

/// A message of the round being processed.
struct Item {
    message: QueueMessage,
    kind: Option<String>,
    letter: Option<Box<DeadLetter>>,
    /// A callback request to send again.
    callback: Option<Box<CallbackRequest>>,
    /// Its records' positions in the round's inputs.
    inputs: std::ops::Range<usize>,
    untouched: Option<Untouched>,
    note: Option<String>,
}

impl<C: CaseSink, L: LetterSink, Q: MessageQueue, S: StreamReader> Redrive<'_, C, L, Q, S> {
    /// Redrives the dead letters of `kinds` from [`Redrive::queue`], and sends the callback
    /// requests it holds (the callback dead-letter queue's) to [`Redrive::callback_queue`].
    ///
    /// # Errors
    /// [`RedriveError::Receive`] when the queue cannot be read.
    pub async fn letters(&self, kinds: &KindFilter) -> Result<RedriveRun, RedriveError> {
        self.run(Source::Letters, kinds).await
    }

    /// Redrives the ranges named by the ShardFailureQueue messages of [`Redrive::queue`], read back
    /// from the deployment's stream ([`Redrive::stream`]); a message naming another stream, or a
    /// batch larger than the deployment's, is left in the queue.
    ///
    /// # Errors
    /// [`RedriveError::Receive`] when the queue cannot be read,
    /// [`RedriveError::StreamNotConfigured`] without [`Redrive::stream`] (checked before the
    /// queue is read).
    pub async fn shard_failures(&self) -> Result<RedriveRun, RedriveError> {
        if self.stream.is_none() {
            return Err(RedriveError::StreamNotConfigured);
        }
        self.run(Source::ShardFailures, &KindFilter::default())
            .await
    }

    async fn run(&self, source: Source, kinds: &KindFilter) -> Result<RedriveRun, RedriveError> {
        let fifo = self.queue.url().ends_with(".fifo");
        let mut run = RedriveRun::default();
        run.summary.dry_run = !self.send;
        let mut counts = ProgressCounts::default();
        let mut flight = InFlight::default();
        let mut redriven_records: HashSet<String> = HashSet::new();
        let run_start_ms = epoch_ms();
        loop {
            let want = self
                .limit
                .map_or(ROUND_MESSAGES, |l| l.saturating_sub(counts.read))
                .min(ROUND_MESSAGES);
            if want == 0 {
                break;
            }
            let round = receive_round(
                self.queue,
                want,
                ROUND_BYTES,
                self.visibility_timeout,
                &flight.seen,
                &mut flight.held,
            )
            .await?;
            if round.is_empty() {
                break;
            }
            // More may be waiting when the round was cut short.
            let cut = round.len() >= want
                || round.iter().map(|m| m.body.len()).sum::<usize>() >= ROUND_BYTES;
            let round: Vec<QueueMessage> = round
                .into_iter()
                .filter(|m| {
                    let own = source == Source::Letters
                        && is_own_letter(&m.body, m.sent_at_ms, &redriven_records, run_start_ms);
                    if own {
                        // A letter this run wrote: not part of what was asked for.
                        flight.seen.insert(m.message_id.clone());
                        flight.keep(&m.message_id, &m.receipt_handle, true);
                    }
                    !own
                })
                .collect();
            counts.read += round.len();
            run.summary.read += round.len() as u32;
            flight
                .seen
                .extend(round.iter().map(|m| m.message_id.clone()));
            self.progress.update(counts);

            // The round in parts of bounded size (see RoundBudget); each part's records are
            // dropped before the next part is read.
            let mut pending = round;
            let mut settled = 0;
            while !pending.is_empty() {
                let (items, inputs, rest) = self
                    .prepare(pending, source, kinds, &redriven_records)
                    .await;
                pending = rest;
                let reports = self.pipeline(&inputs, &mut counts, &mut run.summary).await;
                drop(inputs);
                for item in &items {
                    if item.untouched.is_none() {
                        if let Some(letter) = &item.letter {
                            redriven_records.insert(letter.record_key());
                        }
                        if let Some(request) = &item.callback {
                            redriven_records.insert(callback_key(&request.contact_id));
                        }
                    }
                }
                settled += self
                    .settle(items, &reports, &mut run, &mut counts, &mut flight)
                    .await;
                self.progress.update(counts);
            }
            // A standard queue handed out everything visible unless the round was cut short;
            // a FIFO queue hands out more of a message group once some of it left the queue.
            if !(cut || (fifo && settled > 0)) {
                break;
            }
        }
        let to_release: Vec<&str> = flight
            .held
            .iter()
            .filter(|(id, _)| flight.release.contains(*id))
            .map(|(_, handle)| handle.as_str())
            .collect();
        let failed = self
            .queue
            .release(&to_release)
            .await
            .into_iter()
            .filter(Result::is_err)
            .count();
        if failed > 0 {
            tracing::warn!(
                messages = failed,
                "could not make messages visible again; they come back after their visibility timeout"
            );
        }
        run.summary.left_in_place = run.summary.read - run.summary.deleted;
        Ok(run)
    }

    /// Sorts a round's messages and builds the inputs of the ones to redrive, until the part's
    /// [`RoundBudget`] is used up. Returns the part's messages, their inputs, and the messages
    /// left for the next part.
    async fn prepare(
        &self,
        round: Vec<QueueMessage>,
        source: Source,
        kinds: &KindFilter,
        redriven_records: &HashSet<String>,
    ) -> (Vec<Item>, Vec<OwnedInput>, Vec<QueueMessage>) {
        // The most records one message can bring: a letter is one record, a range at most the
        // deployment's batch size.
        let most_records = match source {
            Source::Letters => 1,
            Source::ShardFailures => self.stream.map_or(1, |s| s.batch_size() as usize),
        };
        let mut budget = RoundBudget::default();
        let mut items = Vec::new();
        let mut inputs: Vec<OwnedInput> = Vec::new();
        let mut rest = Vec::new();
        // The contacts whose callback requests this part sends again: one each.
        let mut part_callbacks = HashSet::new();
        let mut round = round.into_iter();
        for message in round.by_ref() {
            if !budget.fits(most_records) {
                rest.push(message);
                break;
            }
            let first = inputs.len();
            let mut item = Item {
                message,
                kind: None,
                letter: None,
                callback: None,
                inputs: first..first,
                untouched: None,
                note: None,
            };
            match source {
                Source::Letters => {
                    let triage = triage_letter(&item.message.body, kinds);
                    let letter = match triage {
                        LetterTriage::NotALetter(reason) => {
                            item.untouched = Some(Untouched::NotRecognized(reason));
                            None
                        }
                        LetterTriage::CallbackRequest(request) => {
                            item.kind = Some(CALLBACK_KIND.into());
                            if self.callback_queue.is_none() {
                                item.untouched = Some(Untouched::NoCallbackQueue);
                            } else {
                                let key = callback_key(&request.contact_id);
                                if redriven_records.contains(&key) || !part_callbacks.insert(key) {
                                    item.untouched = Some(Untouched::AlreadyRedriven);
                                }
                            }
                            item.callback = Some(request);
                            None
                        }
                        LetterTriage::KindSkipped(letter) => {
                            item.untouched = Some(Untouched::KindSkipped(letter.kind));
                            Some(letter)
                        }
                        LetterTriage::Truncated(letter) => {
                            item.untouched = Some(Untouched::Truncated);
                            Some(letter)
                        }
                        LetterTriage::Redrive(letter) => {
                            item.untouched =
                                held_back(&letter, false, self.stream, redriven_records);
                            if item.untouched.is_none() {
                                inputs.push(OwnedInput::from_letter(&letter));
                            }
                            Some(letter)
                        }
                        LetterTriage::Reread(letter) => {
                            item.untouched =
                                held_back(&letter, true, self.stream, redriven_records);
                            if item.untouched.is_none() {
                                match self.reread(&letter).await {
                                    Ok(records) => {
                                        inputs.extend(records);
                                        item.note = Some(
                                            "the letter's data was cut to fit SQS: the record \
                                             was re-read from the stream"
                                                .into(),
                                        );
                                    }
                                    Err(why) => item.untouched = Some(why),
                                }
                            }
                            Some(letter)
                        }
                    };
                    if let Some(letter) = letter {
                        item.kind = Some(letter.kind.name().to_owned());
                        item.letter = Some(letter);
                    }
                }
                Source::ShardFailures => {
                    item.kind = Some("shard_failure".into());
                    match self.range_inputs(&item.message.body).await {
                        Ok(records) => inputs.extend(records),
                        Err(why) => item.untouched = Some(why),
                    }
                }
            }
            item.inputs = first..inputs.len();
            let held: usize = inputs[first..].iter().map(OwnedInput::data_len).sum();
            budget.add(item.inputs.len(), item.message.body.len() + held);
            items.push(item);
        }
        rest.extend(round);
        (items, inputs, rest)
    }

    /// The record of a letter whose data was cut, re-read from the deployment's stream (the
    /// letter was admitted by [`admit_letter`]).
    async fn reread(&self, letter: &DeadLetter) -> Result<Vec<OwnedInput>, Untouched> {
        let scope = self
            .stream
            .ok_or(Untouched::Refused(Refusal::StreamNotConfigured))?;
        let shard = letter.shard_id.as_deref().unwrap_or_default();
        let stream_arn = scope.stream().as_str();
        let range = ShardRange::one(shard, stream_arn, &letter.sequence_number);
        let records = self
            .stream_reader
            .read_range(scope, &range)
            .await
            .map_err(Untouched::Unreadable)?;
        Ok(records
            .iter()
            .map(|r| OwnedInput::from_stream(shard, stream_arn, r))
            .collect())
    }

    /// The records of the range a ShardFailureQueue message names, read from the deployment's
    /// stream once the message is admitted ([`admit_range`]).
    async fn range_inputs(&self, body: &str) -> Result<Vec<OwnedInput>, Untouched> {
        let range = ShardRange::parse(body).map_err(Untouched::NotRecognized)?;
        admit_range(&range, self.stream).map_err(Untouched::Refused)?;
        let scope = self
            .stream
            .ok_or(Untouched::Refused(Refusal::StreamNotConfigured))?;
        let records = self
            .stream_reader
            .read_range(scope, &range)
            .await
            .map_err(Untouched::Unreadable)?;
        Ok(records
            .iter()
            .map(|r| OwnedInput::from_stream(&range.shard_id, scope.stream().as_str(), r))
            .collect())
    }

    /// Runs `inputs` through the pipeline in batches: one report per input, in order.
    async fn pipeline(
        &self,
        inputs: &[OwnedInput],
        counts: &mut ProgressCounts,
        summary: &mut Summary,
    ) -> Vec<RecordReport> {
        let mut reports = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(PIPELINE_BATCH) {
            let records: Vec<InputRecord<'_>> = chunk.iter().map(OwnedInput::input).collect();
            let report = pipeline::run(
                &records,
                self.settings,
                self.cases,
                self.letters,
                self.callbacks,
                Deadline::unbounded(),
            )
            .await;
            (self.after_batch)();
            summary.salesforce_api_calls += report.summary.salesforce_api_calls;
            for record in &report.records {
                *summary.actions.entry(record.action.name()).or_default() += 1;
            }
            summary.redriven += report.records.len() as u32;
            counts.processed += chunk.len();
            self.progress.update(*counts);
            reports.extend(report.records);
        }
        reports
    }

    /// Decides and does what becomes of each message of a part of a round; writes its lines.
    /// Returns how many messages left the queue (deleted or moved).
    async fn settle(
        &self,
        items: Vec<Item>,
        reports: &[RecordReport],
        run: &mut RedriveRun,
        counts: &mut ProgressCounts,
        flight: &mut InFlight,
    ) -> usize {
        let fifo = self.queue.url().ends_with(".fifo");
        // A replacement letter written to this same FIFO queue within 5 minutes of the old
        // one carries the same deduplication id (shard/sequence), so SQS drops it.
        let dedup_risk = fifo && self.letters_queue_url == Some(self.queue.url());
        let now_ms = epoch_ms();
        let decided: Vec<(Item, Result<Disposition, Untouched>)> = items
            .into_iter()
            .map(|item| {
                let decision = match &item.untouched {
                    Some(why) => Err(why.clone()),
                    None => {
                        let holds = if item.callback.is_some() {
                            Holds::CallbackRequest
                        } else if item.letter.is_some() {
                            Holds::Letter
                        } else {
                            Holds::Range
                        };
                        let actions: Vec<_> = reports[item.inputs.clone()]
                            .iter()
                            .map(|r| r.action)
                            .collect();
                        Ok(decide::disposition(holds, &actions))
                    }
                };
                (item, decision)
            })
            .collect();

        // Callback requests go back to the callback queue first (with --send): each is deleted
        // only once it was sent.
        let mut send_errors: HashMap<String, String> = HashMap::new();
        if self.send
            && let Some(callback_queue) = self.callback_queue
        {
            for (item, _) in decided
                .iter()
                .filter(|(_, d)| matches!(d, Ok(Disposition::Resend)))
            {
                if let Some(request) = &item.callback {
                    let copy = OutgoingMessage {
                        body: item.message.body.clone(),
                        group_id: Some(request.contact_id.clone()),
                        dedup_id: Some(callback_dedup_id(
                            &request.contact_id,
                            &item.message.message_id,
                        )),
                        ..OutgoingMessage::default()
                    };
                    if let Err(code) = callback_queue.send(&copy).await {
                        send_errors.insert(item.message.message_id.clone(), code);
                    }
                }
            }
        }

        // Deletes (with --send).
        let mut deleted: HashMap<String, Result<(), String>> = HashMap::new();
        if self.send {
            let doomed: Vec<&Item> = decided
                .iter()
                .filter_map(|(item, d)| {
                    let d = *d.as_ref().ok()?;
                    let resent = !send_errors.contains_key(&item.message.message_id);
                    let recent = recently_sent(item.message.sent_at_ms, now_ms);
                    decide::deletes(d, dedup_risk, recent, resent).then_some(item)
                })
                .collect();
            let handles: Vec<&str> = doomed
                .iter()
                .map(|i| i.message.receipt_handle.as_str())
                .collect();
            let results = self.queue.delete(&handles).await;
            for (item, result) in doomed.iter().zip(results) {
                if result.is_ok() {
                    counts.deleted += 1;
                }
                deleted.insert(item.message.message_id.clone(), result);
            }
        }
        let mut settled = deleted.values().filter(|r| r.is_ok()).count();

        for (item, decision) in decided {
            match decision {
                Err(why) => settled += self.leave(item, why, run, flight, fifo).await,
                Ok(disposition) => {
                    let id = &item.message.message_id;
                    let (result, note) = if self.send {
                        decide::sent_result(
                            disposition,
                            deleted.get(id),
                            send_errors.get(id).map(String::as_str),
                            self.visibility_timeout,
                            item.note.clone(),
                        )
                    } else {
                        let note = match disposition {
                            Disposition::Resend => {
                                Some("would be sent to the callback queue again".into())
                            }
                            _ => item.note.clone(),
                        };
                        (MessageResult::dry_run(disposition), note)
                    };
                    let deleted_now = matches!(
                        result,
                        MessageResult::Deleted | MessageResult::Replaced | MessageResult::Resent
                    );
                    if !deleted_now {
                        // A dry run changes nothing: every message is visible again at the end.
                        flight.keep(id, &item.message.receipt_handle, !self.send);
                    }
                    run.summary.message(result);
                    lines_of(
                        &item,
                        &reports[item.inputs.clone()],
                        result,
                        note,
                        &mut run.lines,
                    );
                }
            }
        }
        settled
    }

    /// A message not redriven: left in place (visible again when the run ends), or, on a FIFO
    /// queue with `--send`, moved to the back of its message group so it does not block the
    /// messages behind it. Returns 1 when it left the queue (moved).
    async fn leave(
        &self,
        item: Item,
        why: Untouched,
        run: &mut RedriveRun,
        flight: &mut InFlight,
        fifo: bool,
    ) -> usize {
        run.summary.untouched(&why);
        let mut result = MessageResult::Left;
        let mut note = why.note();
        let mut moved = 0;
        if fifo && self.send && why != Untouched::AlreadyRedriven {
            match requeue(self.queue, &item.message).await {
                Ok(copy) => {
                    // A later round may receive the copy: keep it aside and make it visible
                    // again at the end, like the original would be.
                    flight.seen.insert(copy.clone());
                    flight.release.insert(copy);
                    result = MessageResult::Moved;
                    moved = 1;
                    note.push_str("; moved to the back of its message group");
                }
                Err(Requeue::NotDeleted(code)) => {
                    result = MessageResult::DeleteFailed;
                    note.push_str(&format!(
                        "; a copy was sent to the back of its message group but this message \
                         could not be deleted ({code}): delete one of the two by hand"
                    ));
                }
                Err(Requeue::NotSent(code)) => note.push_str(&format!(
                    "; could not be moved to the back of its message group ({code})"
                )),
            }
        }
        if moved == 0 {
            flight.keep(&item.message.message_id, &item.message.receipt_handle, true);
        }
        run.summary.message(result);
        let letter = item.letter.as_deref();
        run.lines.push(Line {
            message_id: item.message.message_id,
            sequence_number: letter.map(|l| l.sequence_number.clone()),
            contact_id: letter
                .and_then(|l| l.contact_id.clone())
                .or_else(|| item.callback.map(|r| r.contact_id)),
            kind: item.kind,
            outcome: None,
            action: None,
            error: Some(why.code().to_owned()),
            letter_error: letter.map(|l| l.error.code.clone()),
            message: result,
            note: Some(note),
        });
        moved
    }
}

/// The `kind` of a callback request's line.
const CALLBACK_KIND: &str = "callback_request";

/// The key of a callback request sent again this run, among the keys of redriven records.
fn callback_key(contact_id: &str) -> String {
    format!("callback:{contact_id}")
}

/// The lines of a message that was redriven: one per record, or one for the message when it
/// holds none (a callback request, a range without records).
fn lines_of(
    item: &Item,
    records: &[RecordReport],
    result: MessageResult,
    note: Option<String>,
    lines: &mut Vec<Line>,
) {
    let letter_error = item.letter.as_ref().map(|l| l.error.code.clone());
    let contact = item
        .letter
        .as_ref()
        .and_then(|l| l.contact_id.clone())
        .or_else(|| item.callback.as_ref().map(|r| r.contact_id.clone()));
    if records.is_empty() {
        lines.push(Line {
            message_id: item.message.message_id.clone(),
            sequence_number: None,
            contact_id: item.callback.as_ref().map(|r| r.contact_id.clone()),
            kind: item.kind.clone(),
            outcome: None,
            action: None,
            error: None,
            letter_error: letter_error.clone(),
            message: result,
            note: note.clone(),
        });
    }
    for record in records {
        lines.push(Line {
            message_id: item.message.message_id.clone(),
            sequence_number: Some(record.sequence_number.clone()),
            contact_id: record.contact_id.clone().or_else(|| contact.clone()),
            kind: item.kind.clone(),
            outcome: Some(record.outcome),
            action: Some(record.action),
            error: record.error.clone(),
            letter_error: letter_error.clone(),
            message: result,
            note: note.clone(),
        });
    }
}

/// Receives messages not in `seen` until the queue returns nothing new, `want` new ones were
/// received, or their bodies reach `max_bytes` (passed by at most one answer), each hidden for
/// `visibility`. A message already in `seen` that the queue hands out again gets its receipt
/// handle updated in `held` and is not returned.
///
/// # Errors
/// [`RedriveError::Receive`] when a receive fails.
async fn receive_round<Q: MessageQueue>(
    queue: &Q,
    want: usize,
    max_bytes: usize,
    visibility: Duration,
    seen: &HashSet<String>,
    held: &mut HashMap<String, String>,
) -> Result<Vec<QueueMessage>, RedriveError> {
    let mut new: Vec<QueueMessage> = Vec::new();
    let mut ids = HashSet::new();
    let mut bytes = 0;
    while new.len() < want && bytes < max_bytes {
        let answer = queue
            .receive((want - new.len()).min(SQS_BATCH), visibility)
            .await
            .map_err(|detail| RedriveError::Receive {
                queue_url: queue.url().to_owned(),
                detail,
            })?;
        let mut fresh = 0;
        for message in answer {
            if seen.contains(&message.message_id) {
                held.insert(message.message_id, message.receipt_handle);
                continue;
            }
            if !ids.insert(message.message_id.clone()) {
                if let Some(m) = new.iter_mut().find(|m| m.message_id == message.message_id) {
                    m.receipt_handle = message.receipt_handle;
                }
                continue;
            }
            fresh += 1;
            bytes += message.body.len();
            new.push(message);
        }
        if fresh == 0 {
            break;
        }
    }
    Ok(new)
}

/// Why a message could not be moved to the back of its FIFO group.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requeue {
    /// The copy could not be sent (the original is kept): SQS's error code.
    NotSent(String),
    /// The copy was sent but the original could not be deleted: SQS's error code.
    NotDeleted(String),
}

/// Moves a FIFO message to the back of its group: sends a copy (same body, attributes and
/// group; a deduplication id of its own, so the copy is never dropped as a duplicate), then
/// deletes the original. Returns the copy's message id.
async fn requeue<Q: MessageQueue>(queue: &Q, message: &QueueMessage) -> Result<String, Requeue> {
    let copy = queue
        .send(&OutgoingMessage {
            body: message.body.clone(),
            attributes: message.attributes.clone(),
            group_id: Some(
                message
                    .group_id
                    .clone()
                    .unwrap_or_else(|| "ctr-cases".into()),
            ),
            dedup_id: Some(format!("redrive-{}", message.message_id)),
        })
        .await
        .map_err(Requeue::NotSent)?;
    match queue
        .delete(&[message.receipt_handle.as_str()])
        .await
        .remove(0)
    {
        Ok(()) => Ok(copy),
        Err(code) => Err(Requeue::NotDeleted(code)),
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    //! The rounds against in-memory fakes of the queue, the stream and the org.

    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use base64::Engine as _;

    use super::*;
    use crate::aws::queue::LetterRecorder;
    use crate::case::CaseRecord;
    use crate::effect::{ErrorClass, Failure, Lookups, WriteOutcome, WriteReport};
    use crate::letter::{DeadLetterError, LetterKind, Origin};
    use crate::redrive::output::NoProgress;
    use crate::shard_range::{RangeCollector, RangeError, StreamRecord};
    use crate::stream_scope::StreamArn;

    const STREAM: &str = "arn:aws:kinesis:eu-west-1:123456789012:stream/ctr";
    const SHARD: &str = "shardId-000000000001";

    /// A message in the fake queue.
    #[derive(Debug, Clone)]
    struct Stored {
        id: String,
        body: String,
        group_id: Option<String>,
        attributes: BTreeMap<String, crate::aws::sqs::MessageAttribute>,
        /// The receipt handle of its latest receive, while it is in flight.
        in_flight: Option<String>,
    }

    /// An SQS queue in memory: receives hand out visible messages in order and hide them until
    /// they are released (the visibility timeout never expires during a test).
    #[derive(Debug, Default)]
    struct FakeQueue {
        url: String,
        messages: Mutex<Vec<Stored>>,
        next: Mutex<usize>,
        /// Message ids whose delete fails.
        failing_deletes: HashSet<String>,
        /// Every send fails with this code.
        failing_sends: Option<String>,
        sent: Mutex<Vec<OutgoingMessage>>,
        released: Mutex<Vec<String>>,
        receives: Mutex<usize>,
    }

    impl FakeQueue {
        fn new(url: &str) -> Self {
            FakeQueue {
                url: url.into(),
                ..FakeQueue::default()
            }
        }

        fn id(&self) -> String {
            let mut next = self.next.lock().unwrap();
            *next += 1;
            format!("m{next:03}")
        }

        fn push(&self, body: &str) -> String {
            let id = self.id();
            self.messages.lock().unwrap().push(Stored {
                id: id.clone(),
                body: body.into(),
                group_id: None,
                attributes: BTreeMap::new(),
                in_flight: None,
            });
            id
        }

        fn ids(&self) -> Vec<String> {
            self.messages
                .lock()
                .unwrap()
                .iter()
                .map(|m| m.id.clone())
                .collect()
        }

        fn in_flight(&self) -> usize {
            let messages = self.messages.lock().unwrap();
            messages.iter().filter(|m| m.in_flight.is_some()).count()
        }
    }

    impl MessageQueue for FakeQueue {
        fn url(&self) -> &str {
            &self.url
        }

        async fn receive(
            &self,
            max: usize,
            _visibility: Duration,
        ) -> Result<Vec<QueueMessage>, String> {
            let n = {
                let mut receives = self.receives.lock().unwrap();
                *receives += 1;
                *receives
            };
            let mut messages = self.messages.lock().unwrap();
            Ok(messages
                .iter_mut()
                .filter(|m| m.in_flight.is_none())
                .take(max)
                .map(|m| {
                    let handle = format!("{}#{n}", m.id);
                    m.in_flight = Some(handle.clone());
                    QueueMessage {
                        message_id: m.id.clone(),
                        receipt_handle: handle,
                        body: m.body.clone(),
                        group_id: m.group_id.clone(),
                        sent_at_ms: Some(epoch_ms()),
                        attributes: m.attributes.clone(),
                    }
                })
                .collect())
        }

        async fn delete(&self, handles: &[&str]) -> Vec<Result<(), String>> {
            let mut messages = self.messages.lock().unwrap();
            handles
                .iter()
                .map(|handle| {
                    let i = messages
                        .iter()
                        .position(|m| m.in_flight.as_deref() == Some(*handle))
                        .ok_or("ReceiptHandleIsInvalid")?;
                    if self.failing_deletes.contains(&messages[i].id) {
                        return Err("InternalError".to_owned());
                    }
                    messages.remove(i);
                    Ok(())
                })
                .collect()
        }

        async fn release(&self, handles: &[&str]) -> Vec<Result<(), String>> {
            let mut messages = self.messages.lock().unwrap();
            let mut released = self.released.lock().unwrap();
            handles
                .iter()
                .map(|handle| {
                    let m = messages
                        .iter_mut()
                        .find(|m| m.in_flight.as_deref() == Some(*handle))
                        .ok_or("ReceiptHandleIsInvalid")?;
                    m.in_flight = None;
                    released.push(m.id.clone());
                    Ok(())
                })
                .collect()
        }

        async fn send(&self, message: &OutgoingMessage) -> Result<String, String> {
            if let Some(code) = &self.failing_sends {
                return Err(code.clone());
            }
            self.sent.lock().unwrap().push(message.clone());
            let id = self.id();
            self.messages.lock().unwrap().push(Stored {
                id: id.clone(),
                body: message.body.clone(),
                group_id: message.group_id.clone(),
                attributes: message.attributes.clone(),
                in_flight: None,
            });
            Ok(id)
        }
    }

    /// The deployment's stream in memory: one shard's records, read through the same
    /// completeness check as the Kinesis adapter.
    #[derive(Debug, Default)]
    struct FakeStream {
        records: Vec<StreamRecord>,
    }

    impl StreamReader for FakeStream {
        async fn read_range(
            &self,
            scope: &StreamScope,
            range: &ShardRange,
        ) -> Result<Vec<StreamRecord>, RangeError> {
            let mut collector = RangeCollector::new(range, scope.batch_size());
            collector.add(self.records.clone())?;
            collector.finish()
        }
    }

    /// An org that writes every Case, or, in an outage, none.
    #[derive(Debug, Default)]
    struct FakeOrg {
        outage: bool,
        written: Mutex<usize>,
    }

    impl CaseSink for FakeOrg {
        async fn find_customers(&self, numbers: &[&str], _deadline: Deadline) -> Lookups {
            Lookups {
                links: vec![None; numbers.len()],
                ..Lookups::default()
            }
        }

        async fn write_cases(&self, cases: &[&CaseRecord], _deadline: Deadline) -> WriteReport {
            if self.outage {
                let down =
                    Failure::local(ErrorClass::Unavailable, "salesforce_unavailable", "down");
                return WriteReport {
                    outcomes: vec![WriteOutcome::Failed(down.clone()); cases.len()],
                    systemic: Some(down),
                    ..WriteReport::default()
                };
            }
            let mut written = self.written.lock().unwrap();
            let outcomes = cases
                .iter()
                .map(|_| {
                    *written += 1;
                    WriteOutcome::Written {
                        id: format!("500000000000{:03}AAA", *written),
                        created: true,
                    }
                })
                .collect();
            WriteReport {
                outcomes,
                api_calls: 1,
                ..WriteReport::default()
            }
        }
    }

    fn contact(n: u32) -> String {
        format!("5ca32fbd-8f92-46af-92a5-{n:012}")
    }

    fn dropped_ctr(n: u32) -> String {
        format!(
            r#"{{"ContactId":"{}","Channel":"VOICE","InitiationMethod":"INBOUND"}}"#,
            contact(n)
        )
    }

    /// A parked letter for dropped call `n`.
    fn parked(n: u32) -> String {
        let data = base64::engine::general_purpose::STANDARD.encode(dropped_ctr(n));
        DeadLetter::new(
            LetterKind::Parked,
            DeadLetterError {
                code: "salesforce_unavailable".into(),
                message: "m".into(),
                status: None,
                fields: vec![],
            },
            &Origin {
                sequence_number: format!("{}", 4_000 + n),
                shard_id: Some(SHARD.into()),
                event_source_arn: Some(STREAM.into()),
                partition_key: Some(contact(n)),
                approximate_arrival_timestamp: Some(1_700_000_000.0),
            },
            Some(contact(n)),
            &data,
        )
        .body()
    }

    /// A callback request for dropped call `n`, as the callback function dead-letters it.
    fn callback_request(n: u32) -> String {
        serde_json::json!({
            "contactId": contact(n),
            "caseId": format!("500000000000{n:03}AAA"),
            "phone": "+15550100",
            "outcome": "dropped",
        })
        .to_string()
    }

    fn scope() -> StreamScope {
        StreamScope::new(StreamArn::parse(STREAM).unwrap(), 100).unwrap()
    }

    /// What a test runs: the fakes and the options.
    struct World {
        queue: FakeQueue,
        callback_queue: Option<FakeQueue>,
        stream: FakeStream,
        org: FakeOrg,
        letters: LetterRecorder,
        scope: Option<StreamScope>,
        send: bool,
        limit: Option<usize>,
    }

    impl World {
        fn new(url: &str) -> Self {
            World {
                queue: FakeQueue::new(url),
                callback_queue: None,
                stream: FakeStream::default(),
                org: FakeOrg::default(),
                letters: LetterRecorder::default(),
                scope: None,
                send: true,
                limit: None,
            }
        }

        async fn run(&self, shard_failures: bool) -> RedriveRun {
            let settings = Settings::default().with_park_after(Duration::MAX);
            let redrive = Redrive {
                settings: &settings,
                cases: &self.org,
                letters: &self.letters,
                callbacks: &CallbackTarget::Off,
                letters_queue_url: None,
                send: self.send,
                queue: &self.queue,
                callback_queue: self.callback_queue.as_ref(),
                stream_reader: &self.stream,
                stream: self.scope.as_ref(),
                visibility_timeout: Duration::from_secs(900),
                limit: self.limit,
                progress: &NoProgress,
                after_batch: &|| {},
            };
            if shard_failures {
                redrive.shard_failures().await.unwrap()
            } else {
                redrive.letters(&KindFilter::default()).await.unwrap()
            }
        }
    }

    fn results(run: &RedriveRun) -> Vec<(&str, &'static str)> {
        run.lines
            .iter()
            .map(|l| (l.message_id.as_str(), l.message.name()))
            .collect()
    }

    #[tokio::test]
    async fn a_round_deletes_the_letters_whose_records_were_written_and_leaves_the_rest() {
        let w = World::new("https://sqs.test/1/dlq");
        let ids: Vec<String> = (1..=3).map(|n| w.queue.push(&parked(n))).collect();
        let stranger = w.queue.push("call me back");
        let run = w.run(false).await;
        assert_eq!(
            results(&run),
            [
                (ids[0].as_str(), "deleted"),
                (ids[1].as_str(), "deleted"),
                (ids[2].as_str(), "deleted"),
                (stranger.as_str(), "left"),
            ]
        );
        assert_eq!(*w.org.written.lock().unwrap(), 3);
        assert_eq!(w.queue.ids(), std::slice::from_ref(&stranger));
        assert_eq!(*w.queue.released.lock().unwrap(), [stranger]);
        assert_eq!(w.queue.in_flight(), 0);
        assert_eq!((run.summary.read, run.summary.deleted), (4, 3));
        assert_eq!(run.summary.left_in_place, 1);
        assert_eq!(run.summary.not_redriven["not_recognized"], 1);
    }

    #[tokio::test]
    async fn a_dry_run_deletes_nothing_and_releases_every_message() {
        let mut w = World::new("https://sqs.test/1/dlq");
        w.send = false;
        let id = w.queue.push(&parked(1));
        let run = w.run(false).await;
        assert_eq!(results(&run), [(id.as_str(), "would_delete")]);
        assert_eq!(w.queue.ids(), std::slice::from_ref(&id));
        assert_eq!(*w.queue.released.lock().unwrap(), [id]);
        assert!(run.summary.dry_run);
    }

    /// A delete SQS refuses for one message leaves only that one, and says so.
    #[tokio::test]
    async fn a_failed_delete_leaves_that_message_and_deletes_the_others() {
        let mut w = World::new("https://sqs.test/1/dlq");
        let ids: Vec<String> = (1..=3).map(|n| w.queue.push(&parked(n))).collect();
        w.queue.failing_deletes.insert(ids[1].clone());
        let run = w.run(false).await;
        assert_eq!(
            results(&run),
            [
                (ids[0].as_str(), "deleted"),
                (ids[1].as_str(), "delete_failed"),
                (ids[2].as_str(), "deleted"),
            ]
        );
        assert!(
            run.lines[1]
                .note
                .as_deref()
                .unwrap()
                .contains("InternalError")
        );
        assert_eq!(w.queue.ids(), [ids[1].clone()]);
        assert!(
            w.queue.released.lock().unwrap().is_empty(),
            "a message that should have gone is not handed out again in this run"
        );
        assert_eq!(run.summary.deleted, 2);
    }

    /// Salesforce down again: every message stays, hidden until its visibility timeout, so a
    /// later run (not this one) tries again; nothing is dead-lettered.
    #[tokio::test]
    async fn an_outage_holds_every_message_for_a_later_run() {
        let mut w = World::new("https://sqs.test/1/dlq");
        w.org.outage = true;
        let ids: Vec<String> = (1..=12).map(|n| w.queue.push(&parked(n))).collect();
        let run = w.run(false).await;
        assert!(
            results(&run).iter().all(|(_, r)| *r == "retry_later"),
            "{run:?}"
        );
        assert_eq!(run.lines.len(), 12);
        assert_eq!(w.queue.ids(), ids);
        assert_eq!(w.queue.in_flight(), 12, "held until the visibility timeout");
        assert!(w.queue.released.lock().unwrap().is_empty());
        assert!(w.letters.take().is_empty());
        assert_eq!(run.summary.actions["retry"], 12);
        assert_eq!(run.summary.deleted, 0);
    }

    #[tokio::test]
    async fn a_run_stops_at_its_limit() {
        let mut w = World::new("https://sqs.test/1/dlq");
        w.limit = Some(12);
        for n in 1..=25 {
            w.queue.push(&parked(n));
        }
        let run = w.run(false).await;
        assert_eq!(run.summary.read, 12);
        assert_eq!(run.lines.len(), 12);
        assert_eq!(w.queue.ids().len(), 13, "the rest was never received");
        assert_eq!(w.queue.in_flight(), 0);
    }

    /// On a FIFO queue a message that is not redriven goes to the back of its group (a copy
    /// with a deduplication id of its own, then the original is deleted).
    #[tokio::test]
    async fn on_a_fifo_queue_a_message_not_redriven_is_moved_to_the_back_of_its_group() {
        let w = World::new("https://sqs.test/1/dlq.fifo");
        let stranger = w.queue.push("not a letter");
        let run = w.run(false).await;
        assert_eq!(results(&run), [(stranger.as_str(), "moved")]);
        let sent = w.queue.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].body, "not a letter");
        assert_eq!(
            sent[0].dedup_id.as_deref(),
            Some(&*format!("redrive-{stranger}"))
        );
        let left = w.queue.ids();
        assert_eq!(left.len(), 1);
        assert_ne!(left[0], stranger, "only the copy is left");
        assert_eq!(
            *w.queue.released.lock().unwrap(),
            left,
            "the copy is visible again"
        );
    }

    #[tokio::test]
    async fn shard_failure_ranges_are_read_from_the_stream_and_deleted_once_written() {
        let mut w = World::new("https://sqs.test/1/sfq");
        w.scope = Some(scope());
        w.stream.records = (1..=3)
            .map(|n| StreamRecord {
                sequence_number: format!("{}", 10 + n),
                partition_key: Some(contact(n)),
                arrival: None,
                data: dropped_ctr(n).into_bytes(),
            })
            .collect();
        let range = serde_json::json!({"KinesisBatchInfo": {
            "shardId": SHARD, "streamArn": STREAM, "startSequenceNumber": "11",
            "endSequenceNumber": "13", "batchSize": 3}});
        let id = w.queue.push(&range.to_string());
        let gone = serde_json::json!({"KinesisBatchInfo": {
            "shardId": SHARD, "streamArn": STREAM, "startSequenceNumber": "2",
            "endSequenceNumber": "5", "batchSize": 4}});
        let lost = w.queue.push(&gone.to_string());
        let run = w.run(true).await;
        assert_eq!(
            results(&run),
            [
                (id.as_str(), "deleted"),
                (id.as_str(), "deleted"),
                (id.as_str(), "deleted"),
                (lost.as_str(), "left"),
            ]
        );
        assert_eq!(run.lines[3].error.as_deref(), Some("range_gone"));
        assert_eq!(w.queue.ids(), [lost]);
        assert_eq!(*w.org.written.lock().unwrap(), 3);
    }

    /// Issue #20: the callback dead-letter queue's requests go back to the callback queue,
    /// grouped by contact, with a deduplication id of their own; each is deleted only once it
    /// was sent.
    #[tokio::test]
    async fn callback_requests_are_sent_to_the_callback_queue_again_then_deleted() {
        let mut w = World::new("https://sqs.test/1/callback-dead-letters.fifo");
        w.callback_queue = Some(FakeQueue::new("https://sqs.test/1/callbacks.fifo"));
        let ids: Vec<String> = (1..=2)
            .map(|n| w.queue.push(&callback_request(n)))
            .collect();
        let run = w.run(false).await;
        assert_eq!(
            results(&run),
            [(ids[0].as_str(), "resent"), (ids[1].as_str(), "resent")]
        );
        assert_eq!(run.lines[0].contact_id, Some(contact(1)));
        assert_eq!(run.lines[0].kind.as_deref(), Some("callback_request"));
        let callbacks = w.callback_queue.as_ref().unwrap();
        let sent = callbacks.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].body, callback_request(1), "the body, unchanged");
        assert_eq!(sent[0].group_id, Some(contact(1)));
        assert_eq!(
            sent[0].dedup_id,
            Some(format!("{}-redrive-{}", contact(1), ids[0]))
        );
        assert!(w.queue.ids().is_empty());
        assert_eq!(run.summary.deleted, 2);
        assert_eq!(*w.org.written.lock().unwrap(), 0, "no Case is written");
    }

    #[tokio::test]
    async fn a_callback_request_that_cannot_be_sent_again_is_kept() {
        let mut w = World::new("https://sqs.test/1/callback-dead-letters.fifo");
        w.callback_queue = Some(FakeQueue {
            failing_sends: Some("AccessDenied".into()),
            ..FakeQueue::new("https://sqs.test/1/callbacks.fifo")
        });
        let id = w.queue.push(&callback_request(1));
        let run = w.run(false).await;
        assert_eq!(results(&run), [(id.as_str(), "retry_later")]);
        assert!(
            run.lines[0]
                .note
                .as_deref()
                .unwrap()
                .contains("AccessDenied")
        );
        assert_eq!(w.queue.ids(), [id]);
        assert_eq!(
            w.queue.in_flight(),
            1,
            "hidden until its visibility timeout"
        );
    }

    #[tokio::test]
    async fn callback_requests_without_a_callback_queue_are_left_and_a_dry_run_sends_nothing() {
        let mut w = World::new("https://sqs.test/1/callback-dead-letters");
        let id = w.queue.push(&callback_request(1));
        let run = w.run(false).await;
        assert_eq!(results(&run), [(id.as_str(), "left")]);
        assert_eq!(
            run.lines[0].error.as_deref(),
            Some("callback_queue_not_configured")
        );
        assert!(
            run.lines[0]
                .note
                .as_deref()
                .unwrap()
                .contains("CALLBACK_QUEUE_URL")
        );

        w.callback_queue = Some(FakeQueue::new("https://sqs.test/1/callbacks.fifo"));
        w.send = false;
        let run = w.run(false).await;
        assert_eq!(results(&run), [(id.as_str(), "would_resend")]);
        let callbacks = w.callback_queue.as_ref().unwrap();
        assert!(callbacks.sent.lock().unwrap().is_empty());
        assert_eq!(w.queue.ids(), [id]);
    }

    /// A contact's request sent again in this run is not sent a second time when another copy
    /// of it turns up later in the same run.
    #[tokio::test]
    async fn a_second_request_for_the_same_contact_in_one_run_is_left_for_later() {
        let mut w = World::new("https://sqs.test/1/callback-dead-letters");
        w.callback_queue = Some(FakeQueue::new("https://sqs.test/1/callbacks.fifo"));
        // More than a receive hands out, so the copy arrives in a later receive of the run.
        for n in 1..=11 {
            w.queue.push(&callback_request(n));
        }
        let copy = w.queue.push(&callback_request(1));
        let run = w.run(false).await;
        let last = run.lines.last().unwrap();
        assert_eq!(last.message_id, copy);
        assert_eq!(last.error.as_deref(), Some("already_redriven"));
        let callbacks = w.callback_queue.as_ref().unwrap();
        assert_eq!(callbacks.sent.lock().unwrap().len(), 11);
    }
}
