//! Where dead letters go: an SQS queue (`SendMessageBatch`, up to 10 letters a call, calls in
//! parallel, never past the deadline), a JSON-lines file, memory, or a recorder for dry runs.
//!
//! A letter that cannot be stored in time is reported as failed, and its record is reported for
//! retry: nothing is dropped silently.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt as _;

use crate::aws::sqs::SQS_BATCH;
use crate::effect::{LetterSink, SendOutcome};
use crate::letter::{DeadLetter, MAX_MESSAGE_BYTES};
use crate::retry::Deadline;

/// Most bytes of message bodies in one `SendMessageBatch` call (an SQS limit for the total).
const MAX_BATCH_BYTES: usize = MAX_MESSAGE_BYTES;

/// `SendMessageBatch` calls in flight at once.
const PARALLEL_BATCHES: usize = 8;

/// Without a deadline (the CLI), one batch call may take this long.
const UNBOUNDED_SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Where dead letters go.
#[derive(Debug)]
pub enum DeadLetterSink {
    /// An SQS queue (standard or FIFO).
    Sqs {
        /// The SDK client.
        client: aws_sdk_sqs::Client,
        /// The queue URL.
        queue_url: String,
    },
    /// A JSON-lines file, one letter body per line (`replay --send` without a queue). It is
    /// created on the first letter, readable by its owner only, and never written through a
    /// symbolic link ([`open_letter_file`]): each letter holds a raw record, with the caller's
    /// number and whatever the caller typed.
    File {
        /// The file's path.
        path: PathBuf,
        /// The file once opened, and the letters appended to it.
        file: Mutex<(Option<std::fs::File>, usize)>,
    },
    /// Kept in memory (tests).
    Memory(Mutex<Vec<DeadLetter>>),
    /// No queue configured: letters are not stored, so their records are reported for retry
    /// and the event source mapping's retries and on-failure destination take over.
    Disabled,
}

impl DeadLetterSink {
    /// An in-memory sink.
    pub fn memory() -> Self {
        DeadLetterSink::Memory(Mutex::new(Vec::new()))
    }

    /// A sink appending to the JSON-lines file at `path`, created (or appended to) when the
    /// first letter arrives.
    pub fn file(path: PathBuf) -> Self {
        DeadLetterSink::File {
            path,
            file: Mutex::new((None, 0)),
        }
    }

    /// How many letters a file sink wrote (0 for other sinks).
    pub fn written(&self) -> usize {
        match self {
            DeadLetterSink::File { file, .. } => file.lock().unwrap_or_else(|e| e.into_inner()).1,
            _ => 0,
        }
    }

    /// The letters an in-memory sink holds (empty for other sinks).
    pub fn held(&self) -> Vec<DeadLetter> {
        match self {
            DeadLetterSink::Memory(m) => m.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            _ => Vec::new(),
        }
    }

    /// Stores `letters`, one outcome each, in order, never past `deadline`.
    pub async fn send_all(&self, letters: &[&DeadLetter], deadline: Deadline) -> Vec<SendOutcome> {
        match self {
            DeadLetterSink::Sqs { client, queue_url } => {
                send_batches(client, queue_url, letters, deadline).await
            }
            DeadLetterSink::File { file, path } => {
                let mut guard = file.lock().unwrap_or_else(|e| e.into_inner());
                let (file, written) = &mut *guard;
                letters
                    .iter()
                    .map(|letter| {
                        if file.is_none() {
                            match open_letter_file(path) {
                                Ok(opened) => *file = Some(opened),
                                Err(e) => return SendOutcome::Failed(e.to_string()),
                            }
                        }
                        let f = file.as_mut().expect("opened above");
                        match writeln!(f, "{}", letter.body()) {
                            Ok(()) => {
                                *written += 1;
                                SendOutcome::Sent
                            }
                            Err(e) => SendOutcome::Failed(
                                LetterFileError::Write {
                                    path: path.clone(),
                                    kind: e.kind(),
                                }
                                .to_string(),
                            ),
                        }
                    })
                    .collect()
            }
            DeadLetterSink::Memory(m) => {
                m.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(letters.iter().map(|l| (*l).clone()));
                vec![SendOutcome::Sent; letters.len()]
            }
            DeadLetterSink::Disabled => {
                vec![SendOutcome::Failed("DEAD_LETTER_QUEUE_URL not set".into()); letters.len()]
            }
        }
    }
}

/// Why the dead-letter file cannot take letters.
#[derive(Debug, thiserror::Error)]
pub enum LetterFileError {
    /// The path is a symbolic link (perhaps planted to redirect raw records elsewhere).
    #[error(
        "{} is a symbolic link; dead letters hold raw customer data and are never written \
         through one: name a new file with --dead-letters",
        path.display()
    )]
    Symlink {
        /// The path given.
        path: PathBuf,
    },
    /// The path exists and is not a regular file (a directory, a FIFO, a device).
    #[error("{} is not a regular file: name a new file with --dead-letters", path.display())]
    NotAFile {
        /// The path given.
        path: PathBuf,
    },
    /// The file exists but others could read it: group or other permissions, another hard
    /// link, or another owner.
    #[error(
        "{} already exists and other users may be able to read it (mode {mode:o}, {links} \
         link(s)); dead letters hold raw customer data: move it away or name a new file with \
         --dead-letters",
        path.display()
    )]
    Exposed {
        /// The path given.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// Its number of hard links.
        links: u64,
    },
    /// Opening or writing failed for another reason.
    #[error("could not write dead letters to {}: {kind}", path.display())]
    Write {
        /// The path given.
        path: PathBuf,
        /// What the operating system said.
        kind: std::io::ErrorKind,
    },
}

/// Opens the dead-letter file at `path` for appending: a new file is created with mode `0600`;
/// an existing one must be a regular file with a single link, owned by this user and readable
/// by nobody else. A symbolic link as the last component is refused (`O_NOFOLLOW`), so a link
/// planted at the path cannot send raw records to another file.
///
/// # Errors
/// [`LetterFileError`] naming the path and what to do.
#[cfg(unix)]
pub fn open_letter_file(path: &Path) -> Result<std::fs::File, LetterFileError> {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};

    let io_error = |e: std::io::Error| match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::EMLINK) => LetterFileError::Symlink {
            path: path.to_owned(),
        },
        _ => LetterFileError::Write {
            path: path.to_owned(),
            kind: e.kind(),
        },
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        // O_NONBLOCK: a FIFO planted at the path fails at once instead of blocking the CLI.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(io_error)?;
    let meta = file.metadata().map_err(io_error)?;
    if !meta.is_file() {
        return Err(LetterFileError::NotAFile {
            path: path.to_owned(),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 || meta.nlink() != 1 {
        return Err(LetterFileError::Exposed {
            path: path.to_owned(),
            mode,
            links: meta.nlink(),
        });
    }
    // Setting the mode the file already has succeeds only for its owner: a private file that
    // someone else created (and may still have open) is refused too.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|_| LetterFileError::Exposed {
            path: path.to_owned(),
            mode,
            links: meta.nlink(),
        })?;
    Ok(file)
}

/// Opens the dead-letter file at `path`, which must not exist yet (without `O_NOFOLLOW`, only
/// creating a new file is sure not to follow a link).
///
/// # Errors
/// [`LetterFileError`] naming the path and what to do.
#[cfg(not(unix))]
pub fn open_letter_file(path: &Path) -> Result<std::fs::File, LetterFileError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| LetterFileError::Write {
            path: path.to_owned(),
            kind: e.kind(),
        })
}

/// Groups `letters` into `SendMessageBatch` calls (≤ 10 entries, ≤ 256 KiB of bodies), sends
/// them in parallel and maps the per-entry answers back to the letters.
async fn send_batches(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    letters: &[&DeadLetter],
    deadline: Deadline,
) -> Vec<SendOutcome> {
    let bodies: Vec<String> = letters.iter().map(|l| l.body()).collect();
    let fifo = queue_url.ends_with(".fifo");
    let sizes: Vec<usize> = bodies.iter().map(String::len).collect();
    send_in_batches(&sizes, PARALLEL_BATCHES, |batch| {
        let bodies = &bodies;
        async move { send_batch(client, queue_url, letters, bodies, &batch, fifo, deadline).await }
    })
    .await
}

/// Positions of messages of `sizes` bytes grouped into `SendMessageBatch` calls: in order, at
/// most [`SQS_BATCH`] entries and [`MAX_BATCH_BYTES`] of bodies each (a larger body goes alone).
fn batch_positions(sizes: &[usize]) -> Vec<Vec<usize>> {
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut size = 0;
    for (i, &len) in sizes.iter().enumerate() {
        let fits = batches
            .last()
            .is_some_and(|b| b.len() < SQS_BATCH && size + len <= MAX_BATCH_BYTES);
        if !fits {
            batches.push(Vec::new());
            size = 0;
        }
        batches.last_mut().expect("pushed above").push(i);
        size += len;
    }
    batches
}

/// Sends messages of `sizes` bytes in `SendMessageBatch` calls ([`batch_positions`]), at most
/// `parallel` calls at once: `send_batch` sends the messages at the positions it is given and
/// answers one outcome per position. One outcome per message, in order; a message whose batch
/// answered nothing for it is `Failed`.
pub(crate) async fn send_in_batches<F, Fut>(
    sizes: &[usize],
    parallel: usize,
    send_batch: F,
) -> Vec<SendOutcome>
where
    F: Fn(Vec<usize>) -> Fut,
    Fut: Future<Output = Vec<SendOutcome>>,
{
    let mut outcomes = vec![SendOutcome::Failed("not sent".into()); sizes.len()];
    let results: Vec<(Vec<usize>, Vec<SendOutcome>)> =
        futures::stream::iter(batch_positions(sizes))
            .map(|batch| {
                let sent = send_batch(batch.clone());
                async move { (batch, sent.await) }
            })
            .buffer_unordered(parallel)
            .collect()
            .await;
    for (batch, batch_outcomes) in results {
        for (i, outcome) in batch.into_iter().zip(batch_outcomes) {
            outcomes[i] = outcome;
        }
    }
    outcomes
}

async fn send_batch(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    letters: &[&DeadLetter],
    bodies: &[String],
    batch: &[usize],
    fifo: bool,
    deadline: Deadline,
) -> Vec<SendOutcome> {
    let attribute = |v: &str| {
        aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .expect("data type and value are set")
    };
    let entries = batch.iter().enumerate().map(|(entry, &i)| {
        let letter = letters[i];
        let mut builder = aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
            .id(entry.to_string())
            .message_body(&bodies[i])
            .message_attributes("kind", attribute(letter.kind.name()))
            .message_attributes("error_code", attribute(&letter.error.code));
        if fifo {
            // FIFO queues drop a redelivered record's second letter within 5 minutes.
            builder = builder
                .message_group_id(letter.shard_id.as_deref().unwrap_or("ctr-cases"))
                .message_deduplication_id(letter.record_key().replace(['/', ':'], "-"));
        }
        builder.build().expect("id and body are set")
    });
    send_entries(client, queue_url, entries.collect(), deadline).await
}

/// One `SendMessageBatch` of `entries` (each entry's id is its position) to `queue_url`, cut off
/// at `deadline`: one outcome per entry, in order. Shared by every SQS sender of the crate.
pub(crate) async fn send_entries(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    entries: Vec<aws_sdk_sqs::types::SendMessageBatchRequestEntry>,
    deadline: Deadline,
) -> Vec<SendOutcome> {
    let count = entries.len();
    let failed = |reason: &str| vec![SendOutcome::Failed(reason.to_owned()); count];
    let budget = match deadline.remaining() {
        None => UNBOUNDED_SEND_TIMEOUT,
        Some(left) if left.is_zero() => return failed("no time left before the deadline"),
        Some(left) => left,
    };
    let request = client
        .send_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries));
    let answer = match tokio::time::timeout(budget, request.send()).await {
        Err(_) => return failed("timed out at the invocation deadline"),
        Ok(Err(e)) => {
            let code = aws_sdk_sqs::error::ProvideErrorMetadata::code(&e)
                .unwrap_or("no answer from SQS")
                .to_owned();
            return failed(&code);
        }
        Ok(Ok(answer)) => answer,
    };
    let mut outcomes = failed("not in the SendMessageBatch answer");
    for ok in answer.successful() {
        if let Ok(entry) = ok.id().parse::<usize>()
            && entry < outcomes.len()
        {
            outcomes[entry] = SendOutcome::Sent;
        }
    }
    for bad in answer.failed() {
        if let Ok(entry) = bad.id().parse::<usize>()
            && entry < outcomes.len()
        {
            outcomes[entry] = SendOutcome::Failed(bad.code().to_owned());
        }
    }
    outcomes
}

/// The records a warm container has already dead-lettered, by `shard/sequence`.
///
/// When a later record of a batch is reported for retry, Lambda redelivers everything after the
/// checkpoint, including poison records that were already dead-lettered. Remembering them keeps
/// each dead letter single within a container; across cold starts a consumer can dedupe by
/// shard and sequence number (a FIFO queue does it: see [`DeadLetterSink::send_all`]).
#[derive(Debug)]
pub struct RecentDeadLetters {
    capacity: usize,
    inner: Mutex<(HashSet<String>, VecDeque<String>)>,
}

impl Default for RecentDeadLetters {
    fn default() -> Self {
        RecentDeadLetters::with_capacity(10_000)
    }
}

impl RecentDeadLetters {
    /// Remembers at most `capacity` records (oldest forgotten first).
    pub fn with_capacity(capacity: usize) -> Self {
        RecentDeadLetters {
            capacity: capacity.max(1),
            inner: Mutex::new((HashSet::new(), VecDeque::new())),
        }
    }

    /// Whether `key` was recorded.
    pub fn contains(&self, key: &str) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .contains(key)
    }

    /// Records `key`.
    pub fn insert(&self, key: String) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (set, order) = &mut *guard;
        if set.insert(key.clone()) {
            order.push_back(key);
            if order.len() > self.capacity
                && let Some(old) = order.pop_front()
            {
                set.remove(&old);
            }
        }
    }
}

/// A sink that skips letters this container already stored and remembers the ones it stores.
#[derive(Debug, Clone, Copy)]
pub struct RememberingSink<'a> {
    /// Where letters go.
    pub sink: &'a DeadLetterSink,
    /// What was already stored.
    pub recent: &'a RecentDeadLetters,
}

impl LetterSink for RememberingSink<'_> {
    async fn send_letters(&self, letters: &[&DeadLetter], deadline: Deadline) -> Vec<SendOutcome> {
        let keys: Vec<String> = letters.iter().map(|l| l.record_key()).collect();
        let fresh: Vec<usize> = (0..letters.len())
            .filter(|&i| {
                let known = self.recent.contains(&keys[i]);
                if known {
                    tracing::debug!(sequence_number = %letters[i].sequence_number, "record already dead-lettered");
                }
                !known
            })
            .collect();
        let to_send: Vec<&DeadLetter> = fresh.iter().map(|&i| letters[i]).collect();
        let sent = self.sink.send_all(&to_send, deadline).await;
        let mut outcomes = vec![SendOutcome::Sent; letters.len()];
        for (i, outcome) in fresh.into_iter().zip(sent) {
            if outcome == SendOutcome::Sent {
                self.recent.insert(keys[i].clone());
            }
            outcomes[i] = outcome;
        }
        outcomes
    }
}

/// A sink that stores nothing and records what it was given (dry runs).
#[derive(Debug, Default)]
pub struct LetterRecorder {
    letters: Mutex<Vec<DeadLetter>>,
}

impl LetterRecorder {
    /// Takes the letters recorded so far.
    pub fn take(&self) -> Vec<DeadLetter> {
        std::mem::take(&mut *self.letters.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl LetterSink for LetterRecorder {
    async fn send_letters(&self, letters: &[&DeadLetter], _deadline: Deadline) -> Vec<SendOutcome> {
        self.letters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(letters.iter().map(|l| (*l).clone()));
        vec![SendOutcome::Recorded; letters.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::letter::test_letter as letter;

    #[test]
    fn batches_hold_ten_entries_and_256_kib_of_bodies_in_order() {
        let lens = |batches: Vec<Vec<usize>>| batches.iter().map(Vec::len).collect::<Vec<_>>();
        assert_eq!(lens(batch_positions(&[100; 25])), [10, 10, 5]);
        assert!(batch_positions(&[]).is_empty());
        let half = MAX_BATCH_BYTES / 2;
        assert_eq!(
            batch_positions(&[half, half, 1, MAX_BATCH_BYTES + 1, 1]),
            [vec![0, 1], vec![2], vec![3], vec![4]],
            "a batch ends where the next body would pass the total; a big body goes alone"
        );
    }

    #[tokio::test]
    async fn batch_outcomes_go_back_to_their_messages_and_unanswered_ones_fail() {
        let outcomes = send_in_batches(&[1; 12], 2, |batch| async move {
            if batch.len() == 10 {
                vec![SendOutcome::Sent; batch.len()]
            } else {
                vec![SendOutcome::Recorded] // answers only the first of its two
            }
        })
        .await;
        assert_eq!(outcomes[..10], vec![SendOutcome::Sent; 10]);
        assert_eq!(outcomes[10], SendOutcome::Recorded);
        assert!(matches!(outcomes[11], SendOutcome::Failed(_)));
    }

    #[tokio::test]
    async fn memory_sink_keeps_letters_and_disabled_refuses() {
        let sink = DeadLetterSink::memory();
        let l = letter("1");
        assert_eq!(
            sink.send_all(&[&l], Deadline::unbounded()).await,
            [SendOutcome::Sent]
        );
        assert_eq!(sink.held().len(), 1);
        assert!(matches!(
            DeadLetterSink::Disabled
                .send_all(&[&l], Deadline::unbounded())
                .await[0],
            SendOutcome::Failed(_)
        ));
    }

    #[tokio::test]
    async fn remembering_sink_stores_a_redelivered_letter_once() {
        let sink = DeadLetterSink::memory();
        let recent = RecentDeadLetters::default();
        let letters = RememberingSink {
            sink: &sink,
            recent: &recent,
        };
        let (a, b) = (letter("1"), letter("2"));
        letters.send_letters(&[&a], Deadline::unbounded()).await;
        let outcomes = letters.send_letters(&[&a, &b], Deadline::unbounded()).await;
        assert_eq!(outcomes, [SendOutcome::Sent, SendOutcome::Sent]);
        assert_eq!(sink.held().len(), 2);
    }

    #[tokio::test]
    async fn file_sink_appends_json_lines() {
        let path =
            std::env::temp_dir().join(format!("ctr-cases-letters-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let sink = DeadLetterSink::file(path.clone());
        assert!(!path.exists(), "created on the first letter only");
        let (a, b) = (letter("1"), letter("2"));
        sink.send_all(&[&a, &b], Deadline::unbounded()).await;
        assert_eq!(sink.written(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        let back: Vec<DeadLetter> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back, [a, b]);
        std::fs::remove_file(path).unwrap();
    }

    /// A fresh directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ctr-cases-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    // See: issue "A contact writes only its own Case", item 6.
    #[cfg(unix)]
    #[tokio::test]
    async fn file_sink_creates_a_private_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = scratch("letters-private");
        let path = dir.join("letters.jsonl");
        let sink = DeadLetterSink::file(path.clone());
        let (a, b) = (letter("1"), letter("2"));
        let outcomes = sink.send_all(&[&a], Deadline::unbounded()).await;
        assert_eq!(outcomes, [SendOutcome::Sent]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
        // A second run appends to its own private file.
        let again = DeadLetterSink::file(path.clone());
        let outcomes = again.send_all(&[&b], Deadline::unbounded()).await;
        assert_eq!(outcomes, [SendOutcome::Sent]);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn file_sink_never_writes_through_a_symlink() {
        let dir = scratch("letters-symlink");
        let target = dir.join("elsewhere.txt");
        std::fs::write(&target, "").unwrap();
        let dangling = dir.join("not-yet.txt");
        for (name, points_to) in [("planted.jsonl", &target), ("dangling.jsonl", &dangling)] {
            let path = dir.join(name);
            std::os::unix::fs::symlink(points_to, &path).unwrap();
            let sink = DeadLetterSink::file(path.clone());
            let outcomes = sink.send_all(&[&letter("1")], Deadline::unbounded()).await;
            let [SendOutcome::Failed(reason)] = &outcomes[..] else {
                panic!("{name}: {outcomes:?}");
            };
            assert!(reason.contains("symbolic link"), "{reason}");
            assert_eq!(sink.written(), 0);
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "");
        assert!(
            !dangling.exists(),
            "nothing created through the dangling link"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn file_sink_refuses_a_file_others_can_read() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = scratch("letters-exposed");
        let readable = dir.join("readable.jsonl");
        std::fs::write(&readable, "").unwrap();
        std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o644)).unwrap();
        let linked = dir.join("linked.jsonl");
        let private = dir.join("private.jsonl");
        std::fs::write(&private, "").unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::hard_link(&private, &linked).unwrap();
        for path in [&readable, &linked] {
            let sink = DeadLetterSink::file(path.clone());
            let outcomes = sink.send_all(&[&letter("1")], Deadline::unbounded()).await;
            let [SendOutcome::Failed(reason)] = &outcomes[..] else {
                panic!("{}: {outcomes:?}", path.display());
            };
            assert!(reason.contains("other users"), "{reason}");
        }
        assert_eq!(std::fs::read_to_string(&readable).unwrap(), "");
        assert_eq!(std::fs::read_to_string(&private).unwrap(), "");
        let sink = DeadLetterSink::file(dir.clone());
        let outcomes = sink.send_all(&[&letter("1")], Deadline::unbounded()).await;
        assert!(
            matches!(&outcomes[0], SendOutcome::Failed(_)),
            "a directory"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn recent_dead_letters_forget_the_oldest() {
        let recent = RecentDeadLetters::with_capacity(2);
        recent.insert("s/1".into());
        recent.insert("s/2".into());
        recent.insert("s/2".into());
        assert!(recent.contains("s/1") && recent.contains("s/2"));
        recent.insert("s/3".into());
        assert!(!recent.contains("s/1") && recent.contains("s/3"));
    }
}
