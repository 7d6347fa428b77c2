//! `ctr-cases`: run event files through the same pipeline as the Lambda (`replay`), redrive
//! dead letters and ShardFailureQueue ranges through it (`redrive`), and check an org and a
//! deployment before the trigger is enabled (`check`).
//!
//! A thin adapter: it reads files (or, through `ctr_cases::redrive`, queues) into plan inputs,
//! picks the sinks (recorders for a dry run, the real Salesforce client and dead-letter queue
//! for `--send`) and prints the report.

/// mimalloc for the CLI: a replay allocates and frees per record, and glibc malloc costs about a
/// fifth of its time; the CLI has no memory target (BENCHMARKS.md, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{ArgGroup, Parser, Subcommand};
use ctr_cases::app::AppState;
use ctr_cases::aws::callback_queue::CallbackTarget;
use ctr_cases::aws::kinesis::{KinesisReader, StreamReader};
use ctr_cases::aws::queue::{DeadLetterSink, LetterRecorder};
use ctr_cases::aws::sqs::{MessageQueue, SqsQueue};
use ctr_cases::config::{Config, DryRunConfig};
use ctr_cases::doctor::{self, DeadLetterQueue, Doctor, Row};
use ctr_cases::effect::{CaseSink, LetterSink, NoCallbacks};
use ctr_cases::event::{KinesisEnvelope, record_for};
use ctr_cases::pipeline;
use ctr_cases::redrive::RedriveError;
use ctr_cases::redrive::options::{DEFAULT_VISIBILITY_TIMEOUT, KindFilter};
use ctr_cases::redrive::output::{Line, Progress, ProgressCounts, Summary};
use ctr_cases::redrive::rounds::{Redrive, RedriveRun};
use ctr_cases::report::BatchReport;
use ctr_cases::report_table::{self, short_sequence};
use ctr_cases::retry::Deadline;
use ctr_cases::salesforce::RequestRecorder;
use ctr_cases::stream;
use ctr_cases::stream_scope::{DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, StreamArn, StreamScope};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(
    name = "ctr-cases",
    version,
    about = "Amazon Connect contact trace records → Salesforce Cases",
    long_about = "Amazon Connect contact trace records → Salesforce Cases.\n\n\
        Runs CTRs through the same pipeline as the Lambda: decode, dedupe, classify, map to \
        Cases, write, dead-letter. Configuration comes from the same environment variables \
        as the Lambda (docs/deploy.md, \"Configuration reference\")."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay event files through the pipeline (a dry run unless --send).
    #[command(after_help = "Examples:\n  \
        ctr-cases replay events/*.json                       # dry run: one row per record\n  \
        ctr-cases replay --show-requests events/dropped-ivr-call.json\n  \
        ctr-cases replay --json events/mixed-batch.json | jq .action\n  \
        SALESFORCE_LOGIN_URL=https://acme.my.salesforce.com SALESFORCE_CLIENT_ID=... \\\n    \
        ctr-cases replay --send ctrs.jsonl")]
    Replay {
        /// Event files: a Kinesis event (`{"Records":[…]}`), a bare CTR, a JSON array of CTRs,
        /// or JSON lines of CTRs. A contact-flow event (`events/connect/*.json`) is refused: run
        /// it with `cargo lambda invoke ctr-cases-flow`. Example: `events/mixed-batch.json`.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Really write the Cases, using the Lambda's SALESFORCE_* configuration. Dead letters go
        /// to DEAD_LETTER_QUEUE_URL, or, without it, to a JSON-lines file named on stderr.
        /// Example: `ctr-cases replay --send events/dropped-ivr-call.json`.
        #[arg(long)]
        send: bool,
        /// Also print the Salesforce requests the run would send (dry run only), as JSON lines
        /// `{"request":{method,path,body}}` before the records. They contain the Case fields,
        /// phone numbers included. Example: `ctr-cases replay --show-requests events/*.json`.
        #[arg(long, conflicts_with = "send")]
        show_requests: bool,
        /// Print JSON lines (one per record, then a summary per file) even on a terminal; this
        /// is the default when stdout is not a terminal. On a terminal, the table fits COLUMNS,
        /// else the terminal's width. Example: `ctr-cases replay --json f.json`.
        #[arg(long)]
        json: bool,
        /// With --send and no DEAD_LETTER_QUEUE_URL: the JSON-lines file dead letters are
        /// appended to (default `ctr-cases-dead-letters-<UTC time>.jsonl` in the current
        /// directory). It holds raw customer data: created mode 0600, never written through a
        /// symbolic link. Example: `--dead-letters /tmp/letters.jsonl`.
        #[arg(long, value_name = "FILE", requires = "send")]
        dead_letters: Option<PathBuf>,
    },
    /// Redrive dead letters, or the ranges of ShardFailureQueue messages, through the pipeline
    /// (a dry run unless --send).
    #[command(
        group(ArgGroup::new("source").required(true).args(["queue", "shard_failures"])),
        long_about = "Redrive dead letters, or the ranges of ShardFailureQueue messages, through \
            the pipeline (a dry run unless --send).\n\n\
            Messages are read in rounds (ReceiveMessage, 10 a call, 1 s long poll) until the \
            queue returns nothing new or --limit messages were read. With --send, a message is \
            deleted only once every record it holds reached a final state (any action but \
            retry). A record dead-lettered again gets a new letter with the new reason, which \
            replaces the old message. A record that fails again (retry) leaves its message in \
            place, hidden until its visibility timeout expires. Messages that are not redriven \
            (not a letter, a kind not asked for, a range that cannot be read) are left in place \
            and made visible again when the run ends; on a FIFO queue, --send moves them to the \
            back of their message group so they do not block the messages behind them.\n\n\
            The callback queue's dead-letter queue holds the callback requests Amazon Connect \
            refused for good (a bad contact flow, too many open tasks). Redriving it with \
            --queue sends each request to the callback queue again (--callback-queue, or \
            CALLBACK_QUEUE_URL) and deletes it once the send succeeded; without a callback \
            queue they are left in place. The copy gets a deduplication id of its own (the \
            ContactId plus the dead-lettered message's id), so SQS does not drop it as a \
            repeat, and the contact still gets at most one task: the callback function skips a \
            Case that already has one, and Connect's ClientToken returns the first task.\n\n\
            What a message says is not trusted. Records are read only from the deployment's \
            stream (--stream-arn, or KINESIS_STREAM_ARN as the stream function has it), in its \
            Region: a message naming another stream, account or Region is left in the queue \
            with the reason. A range is read up to the deployment's batch size (--batch-size, or \
            KINESIS_BATCH_SIZE) of records, whatever the message's batchSize says; a range \
            holding more is left in the queue. Without a stream, --shard-failures refuses to run \
            and letters whose data was cut are left; letters carrying their full data are \
            redriven.\n\n\
            Configuration comes from the same environment variables as the Lambda (SALESFORCE_*, \
            CASE_*, CTR_CHANNELS, DEAD_LETTER_QUEUE_URL, CALLBACK_QUEUE_URL, KINESIS_STREAM_ARN, \
            KINESIS_BATCH_SIZE, \
            …); AWS access from the usual AWS_* \
            variables and profiles.",
        after_help = "Examples:\n  \
        ctr-cases redrive --queue \"$DLQ\"                          # dry run: one row per letter\n  \
        ctr-cases redrive --queue \"$DLQ\" --send --limit 500\n  \
        ctr-cases redrive --queue \"$DLQ\" --kinds poison_record --json | jq .error\n  \
        ctr-cases redrive --shard-failures \"$SFQ\" --send   # needs KINESIS_STREAM_ARN (or --stream-arn)\n  \
        ctr-cases redrive --queue \"$CALLBACK_DLQ\" --callback-queue \"$CALLBACK_QUEUE_URL\" --send"
    )]
    Redrive {
        /// The dead-letter queue to redrive (the stream function's DEAD_LETTER_QUEUE_URL). Each
        /// message must be a dead letter. Example:
        /// `--queue https://sqs.eu-west-1.amazonaws.com/123456789012/ctr-cases-case-dead-letters.fifo`.
        #[arg(long, value_name = "URL")]
        queue: Option<String>,
        /// The ShardFailureQueue to redrive: each message names a range of a shard, which is read
        /// back from the stream (while the stream retains it). Example:
        /// `--shard-failures https://sqs.eu-west-1.amazonaws.com/123456789012/ctr-cases-ShardFailureQueue-ABC`.
        #[arg(long, value_name = "URL")]
        shard_failures: Option<String>,
        /// Really write the Cases (with the Lambda's SALESFORCE_* configuration) and delete the
        /// messages whose records reached a final state. New dead letters go to
        /// DEAD_LETTER_QUEUE_URL, or, without it, back to the --queue being redriven. Example:
        /// `ctr-cases redrive --queue "$DLQ" --send`.
        #[arg(long)]
        send: bool,
        /// The letter kinds to redrive, comma-separated: parked, salesforce_rejected,
        /// case_not_accessible, poison_record (default: the first three; a poison record cannot
        /// become a Case, so it is redriven only when named). Example: `--kinds parked`.
        #[arg(
            long,
            value_name = "KINDS",
            value_parser = KindFilter::parse,
            conflicts_with = "shard_failures"
        )]
        kinds: Option<KindFilter>,
        /// Read at most N messages this run. Example: `--limit 500`.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
        /// Print JSON lines (one per record or message, then a summary) even on a terminal;
        /// this is the default when stdout is not a terminal. Example: `--json | jq .message`.
        #[arg(long)]
        json: bool,
        /// How long each received message stays hidden from other readers, in seconds
        /// (1–43200): a message whose record fails again is visible again after this. Example:
        /// `--visibility-timeout 3600`.
        #[arg(
            long,
            value_name = "SECONDS",
            default_value_t = DEFAULT_VISIBILITY_TIMEOUT.as_secs() as u32,
            value_parser = clap::value_parser!(u32).range(1..=43_200)
        )]
        visibility_timeout: u32,
        /// The deployment's stream (the stack's KinesisStreamArn), the only stream read: for
        /// --shard-failures and for letters whose data was cut. Example:
        /// `--stream-arn arn:aws:kinesis:eu-west-1:123456789012:stream/connect-ctr`.
        #[arg(
            long,
            value_name = "ARN",
            env = "KINESIS_STREAM_ARN",
            value_parser = StreamArn::parse
        )]
        stream_arn: Option<StreamArn>,
        /// The deployment's batch size (the stack's BatchSize, 1–10000): the most records a
        /// range may hold; a range holding more is left in the queue. Example: `--batch-size 100`.
        #[arg(
            long,
            value_name = "N",
            env = "KINESIS_BATCH_SIZE",
            default_value_t = DEFAULT_BATCH_SIZE,
            value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_BATCH_SIZE))
        )]
        batch_size: u32,
        /// The callback queue (the stack's CALLBACK_QUEUE_URL): callback requests found in the
        /// --queue being redriven (the callback dead-letter queue) are sent to it again, then
        /// deleted. Example: `--callback-queue
        /// https://sqs.eu-west-1.amazonaws.com/123456789012/ctr-cases-callbacks.fifo`.
        #[arg(long, value_name = "URL", env = "CALLBACK_QUEUE_URL")]
        callback_queue: Option<String>,
    },
    /// Check the org and the deployment before enabling the trigger; exits non-zero on any ✗.
    #[command(
        long_about = "Check the org and the deployment before enabling the trigger; exits \
            non-zero on any ✗.\n\n\
            With the Lambda's environment (SALESFORCE_*, CASE_*, DEAD_LETTER_QUEUE_URL, …) it \
            signs in as the integration user and checks, one row each: the login (OAuth grant, \
            user, instance); the Case fields the configuration writes, as the Lambda's org check \
            does (whatever SALESFORCE_ORG_CHECK says): a missing or read-only field, a picklist \
            value the org lacks, a field the org requires and the mapping does not set; the \
            assignment rule setting (CASE_ASSIGNMENT_RULES) against the org's active Case \
            assignment rule; the org-wide default for Cases and whether the integration user \
            can edit Cases it no longer owns; API usage against the daily limit; and whether \
            the dead-letter queue answers GetQueueAttributes with your AWS credentials. Each ✗ \
            says how to fix it. A query the integration user may not make (setup objects need \
            View Setup and Configuration) is a ⚠ saying what to grant, not a ✗.\n\n\
            Read-only: no Case is written and no message is sent to the dead-letter queue (a \
            test message would fire its alarm).",
        after_help = "Examples:\n  \
        ctr-cases check                                  # one row per check; exit 1 on any ✗\n  \
        ctr-cases check --json | jq -c 'select(.status == \"fail\")'\n  \
        SALESFORCE_SECRET_ARN=arn:aws:secretsmanager:... DEAD_LETTER_QUEUE_URL=https://sqs... \\\n    \
        ctr-cases check"
    )]
    Check {
        /// Print JSON lines instead of the table: one object per check (`check`, `status`:
        /// pass, warn, fail or skip, `detail`, `fix`), then `{"summary":{…}}`. Example:
        /// `ctr-cases check --json | jq -r .fix`.
        #[arg(long)]
        json: bool,
    },
}

// One thread: the CLI works through its files one by one, and the I/O it waits on (Salesforce,
// SQS, Kinesis) is concurrent on one thread as well; no worker threads to start.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<ExitCode> {
    // The per-record log lines repeat what the CLI prints; keep warnings about everything else.
    let filter =
        std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,ctr_cases::pipeline=off".into());
    ctr_cases::logging::init_with_writer(
        ctr_cases::logging::LogFormat::Text,
        &filter,
        std::io::stderr,
    );
    match Cli::parse().command {
        Command::Replay {
            files,
            send,
            show_requests,
            json,
            dead_letters,
        } => replay(&files, send, show_requests, json, dead_letters)
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Redrive {
            queue,
            shard_failures,
            send,
            kinds,
            limit,
            json,
            visibility_timeout,
            stream_arn,
            batch_size,
            callback_queue,
        } => {
            let source = match (queue, shard_failures) {
                (Some(url), _) => Source::Letters(url, kinds.unwrap_or_default()),
                (None, Some(url)) => Source::ShardFailures(url),
                (None, None) => unreachable!("clap requires --queue or --shard-failures"),
            };
            let options = RedriveOptions {
                send,
                limit: limit.map(|n| n as usize),
                json,
                visibility_timeout: Duration::from_secs(visibility_timeout.into()),
                stream: stream_arn
                    .map(|arn| StreamScope::new(arn, batch_size))
                    .transpose()?,
                callback_queue,
            };
            redrive(source, options).await.map(|()| ExitCode::SUCCESS)
        }
        Command::Check { json } => check(json).await,
    }
}

/// Runs `ctr-cases check` with the Lambda's configuration and prints its rows; exit status 1
/// when any row is ✗.
async fn check(json: bool) -> anyhow::Result<ExitCode> {
    let rows = match Config::from_env() {
        Err(e) => vec![Row::fail(
            "configuration",
            "the environment is not a valid Lambda configuration",
            e.to_string(),
        )],
        Ok(config) => {
            let requirements = config.org_requirements.clone();
            let state = AppState::from_config(config).await?;
            let dead_letter_queue = match &state.dead_letters {
                DeadLetterSink::Sqs { client, queue_url } => Some(DeadLetterQueue {
                    sqs: client,
                    url: queue_url,
                }),
                _ => None,
            };
            Doctor {
                salesforce: &state.salesforce,
                requirements: &requirements,
                dead_letter_queue,
                deadline: Deadline::after(Duration::from_secs(60)),
            }
            .run()
            .await
        }
    };
    let text = if json {
        doctor::rows::json_lines(&rows)
    } else {
        doctor::rows::table(&rows)
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(if doctor::rows::summary(&rows).ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn replay(
    files: &[PathBuf],
    send: bool,
    show_requests: bool,
    json: bool,
    dead_letters: Option<PathBuf>,
) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    // Buffered (stdout alone flushes every line: one write per record), flushed per file.
    let mut out = Output {
        json: json || !stdout.is_terminal(),
        width: report_table::terminal_width(
            std::env::var("COLUMNS").ok().as_deref(),
            console::Term::stdout()
                .size_checked()
                .map(|(_rows, columns)| columns),
        ),
        out: std::io::BufWriter::with_capacity(64 * 1024, stdout.lock()),
    };
    let env = |name: &str| std::env::var(name).ok();
    let mut refused = 0;
    if send {
        let config = Config::from_env()?;
        let mut state = AppState::from_config(config).await?;
        if matches!(state.dead_letters, DeadLetterSink::Disabled) {
            let path = dead_letters.unwrap_or_else(|| {
                PathBuf::from(format!(
                    "ctr-cases-dead-letters-{}.jsonl",
                    chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
                ))
            });
            eprintln!(
                "DEAD_LETTER_QUEUE_URL is not set: dead letters go to {}",
                path.display()
            );
            eprintln!(
                "warning: that file holds raw customer data (each record as received: phone \
                 numbers and anything the caller typed, card numbers included). It is created \
                 readable by you only; keep it private and delete it once redriven."
            );
            state.dead_letters = DeadLetterSink::file(path);
        }
        state.metrics.enabled = false;
        for file in files {
            let Some(envelope) = read_replay_file(file, &mut refused)? else {
                continue;
            };
            let outcome = stream::process_batch(&state, &envelope, Deadline::unbounded()).await;
            let report = BatchReport {
                records: outcome.reports,
                summary: outcome.summary,
            };
            out.report(file, &report, false)?;
        }
        if let DeadLetterSink::File { path, .. } = &state.dead_letters {
            eprintln!(
                "{} dead letter(s) written to {}",
                state.dead_letters.written(),
                path.display()
            );
        }
    } else {
        let config = DryRunConfig::from_lookup(env)?;
        let requests = dry_run_recorder(&config).keeping_bodies(show_requests);
        let letters = LetterRecorder::default();
        for file in files {
            let Some(envelope) = read_replay_file(file, &mut refused)? else {
                continue;
            };
            let inputs = envelope.inputs();
            let report = pipeline::run(
                &inputs,
                &config.pipeline,
                &requests,
                &letters,
                &NoCallbacks,
                Deadline::unbounded(),
            )
            .await;
            let recorded = requests.take();
            letters.take();
            if show_requests {
                for request in recorded {
                    let line = json!({"request": {
                        "method": request.method,
                        "path": request.path,
                        "body": serde_json::from_str::<Value>(&request.body)?,
                    }});
                    writeln!(out.out, "{line}")?;
                }
            }
            out.report(file, &report, true)?;
        }
    }
    if refused > 0 {
        bail!("{refused} contact-flow event file(s) refused (see above); the others were replayed");
    }
    Ok(())
}

/// Records the requests the client would send under `config`, instead of sending them.
fn dry_run_recorder(config: &DryRunConfig) -> RequestRecorder {
    RequestRecorder::new(
        &config.api_version,
        &config.pipeline.mapping.external_id_field,
        &config.pipeline.mapping.version_field,
        config.batch_size,
    )
}

/// What `redrive` reads.
enum Source {
    /// A dead-letter queue, and the kinds to redrive from it.
    Letters(String, KindFilter),
    /// A ShardFailureQueue.
    ShardFailures(String),
}

impl Source {
    fn queue_url(&self) -> &str {
        match self {
            Source::Letters(url, _) | Source::ShardFailures(url) => url,
        }
    }
}

/// The flags of `redrive` other than the source.
struct RedriveOptions {
    send: bool,
    limit: Option<usize>,
    json: bool,
    visibility_timeout: Duration,
    /// The deployment's stream and batch size (`--stream-arn`, `--batch-size`).
    stream: Option<StreamScope>,
    /// Where callback requests from the callback dead-letter queue go (`--callback-queue`).
    callback_queue: Option<String>,
}

async fn redrive(source: Source, options: RedriveOptions) -> anyhow::Result<()> {
    let queue_url = source.queue_url().to_owned();
    // Bounded SDK calls; an attempt must outlast the 1 s long poll of ReceiveMessage.
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(30))
        .build();
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let queue = SqsQueue {
        client: sqs.clone(),
        queue_url: queue_url.clone(),
    };
    let callback_queue = options.callback_queue.clone().map(|queue_url| SqsQueue {
        client: sqs.clone(),
        queue_url,
    });
    let stream_reader = KinesisReader {
        client: aws_sdk_kinesis::Client::new(&aws),
    };
    let run = if options.send {
        let mut state = AppState::from_config(Config::from_env()?).await?;
        state.metrics.enabled = false;
        if matches!(state.dead_letters, DeadLetterSink::Disabled) {
            match &source {
                Source::Letters(url, _) => {
                    eprintln!(
                        "DEAD_LETTER_QUEUE_URL is not set: records dead-lettered again go back \
                         to {url}"
                    );
                    state.dead_letters = DeadLetterSink::Sqs {
                        client: sqs.clone(),
                        queue_url: url.clone(),
                    };
                }
                Source::ShardFailures(_) => eprintln!(
                    "DEAD_LETTER_QUEUE_URL is not set: a range with a record that must be \
                     dead-lettered cannot be settled, and its message stays in the queue"
                ),
            }
        }
        let letters_queue_url = match &state.dead_letters {
            DeadLetterSink::Sqs { queue_url, .. } => Some(queue_url.clone()),
            _ => None,
        };
        let letters = state.letters();
        let progress = ProgressLine::new();
        // A redrive leaves a message in place when Salesforce is down again; it never parks
        // (the letters already are in the queue, and a range stays in the ShardFailureQueue).
        let settings = state.settings.clone().with_park_after(Duration::MAX);
        let redrive = Redrive {
            settings: &settings,
            cases: &state.salesforce,
            letters: &letters,
            callbacks: &state.callbacks,
            letters_queue_url: letters_queue_url.as_deref(),
            send: true,
            queue: &queue,
            callback_queue: callback_queue.as_ref(),
            stream_reader: &stream_reader,
            stream: options.stream.as_ref(),
            visibility_timeout: options.visibility_timeout,
            limit: options.limit,
            progress: &progress,
            after_batch: &|| {},
        };
        let run = run_redrive(&redrive, &source).await;
        progress.finish();
        run
    } else {
        let config = DryRunConfig::from_lookup(|name| std::env::var(name).ok())?;
        let requests = dry_run_recorder(&config).keeping_bodies(false);
        let letters = LetterRecorder::default();
        let forget = || {
            requests.take();
            letters.take();
        };
        let progress = ProgressLine::new();
        let settings = config.pipeline.clone().with_park_after(Duration::MAX);
        let redrive = Redrive {
            settings: &settings,
            cases: &requests,
            letters: &letters,
            callbacks: &CallbackTarget::Off,
            letters_queue_url: None,
            send: false,
            queue: &queue,
            callback_queue: callback_queue.as_ref(),
            stream_reader: &stream_reader,
            stream: options.stream.as_ref(),
            visibility_timeout: options.visibility_timeout,
            limit: options.limit,
            progress: &progress,
            after_batch: &forget,
        };
        let run = run_redrive(&redrive, &source).await;
        progress.finish();
        run
    }?;
    let stdout = std::io::stdout();
    let json = options.json || !stdout.is_terminal();
    let mut out = stdout.lock();
    if json {
        for line in &run.lines {
            writeln!(out, "{}", serde_json::to_string(line)?)?;
        }
        writeln!(
            out,
            "{}",
            json!({"summary": run.summary, "queue": queue_url})
        )?;
    } else {
        redrive_table(&mut out, &queue_url, &run)?;
    }
    Ok(())
}

async fn run_redrive<C: CaseSink, L: LetterSink, Q: MessageQueue, S: StreamReader>(
    redrive: &Redrive<'_, C, L, Q, S>,
    source: &Source,
) -> Result<RedriveRun, RedriveError> {
    match source {
        Source::Letters(_, kinds) => redrive.letters(kinds).await,
        Source::ShardFailures(_) => redrive.shard_failures().await,
    }
}

/// The progress line on stderr (drawn only when stderr is a terminal).
struct ProgressLine(indicatif::ProgressBar);

impl ProgressLine {
    fn new() -> Self {
        let target = if std::io::stderr().is_terminal() {
            indicatif::ProgressDrawTarget::stderr()
        } else {
            indicatif::ProgressDrawTarget::hidden()
        };
        let bar = indicatif::ProgressBar::with_draw_target(None, target);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .expect("the template is valid"),
        );
        bar.set_message("reading messages…");
        bar.enable_steady_tick(Duration::from_millis(200));
        ProgressLine(bar)
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Progress for ProgressLine {
    fn update(&self, c: ProgressCounts) {
        self.0.set_message(format!(
            "{} message(s) read · {} record(s) processed · {} deleted",
            c.read, c.processed, c.deleted
        ));
    }
}

/// The redrive report for people: a table, the notes, a summary line.
fn redrive_table(out: &mut impl Write, queue_url: &str, run: &RedriveRun) -> anyhow::Result<()> {
    let rows: Vec<Vec<String>> = run
        .lines
        .iter()
        .map(|l: &Line| {
            vec![
                l.message_id.clone(),
                l.sequence_number
                    .as_deref()
                    .map_or_else(|| "-".into(), short_sequence),
                l.contact_id.clone().unwrap_or_else(|| "-".into()),
                l.kind.clone().unwrap_or_else(|| "-".into()),
                l.outcome.unwrap_or("-").to_owned(),
                l.action.map_or("-", |a| a.name()).to_owned(),
                l.error.clone().unwrap_or_default(),
                l.message.name().to_owned(),
            ]
        })
        .collect();
    writeln!(out, "{queue_url}")?;
    write_table(
        out,
        &[
            "MESSAGE ID",
            "SEQUENCE",
            "CONTACT ID",
            "KIND",
            "OUTCOME",
            "ACTION",
            "REASON",
            "MESSAGE",
        ],
        &rows,
    )?;
    // Each distinct note once, with how many messages it is about.
    let mut notes: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for line in &run.lines {
        if let Some(note) = &line.note {
            notes.entry(note).or_default().insert(&line.message_id);
        }
    }
    for (note, ids) in notes {
        writeln!(out, "  {} message(s): {note}", ids.len())?;
    }
    writeln!(out, "{}\n", summary_sentence(&run.summary))?;
    Ok(())
}

fn counts(map: &BTreeMap<&'static str, u32>) -> String {
    map.iter()
        .map(|(name, n)| format!("{n} {name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn summary_sentence(s: &Summary) -> String {
    let mut text = format!(
        "{} message(s) read; {} record(s) redriven",
        s.read, s.redriven
    );
    if !s.actions.is_empty() {
        text.push_str(&format!(" ({})", counts(&s.actions)));
    }
    if s.dry_run {
        text.push_str(&format!("; messages: {}", counts(&s.messages)));
    } else {
        text.push_str(&format!(
            "; {} deleted, {} left in place",
            s.deleted, s.left_in_place
        ));
    }
    if !s.skipped_kinds.is_empty() {
        text.push_str(&format!("; skipped kinds: {}", counts(&s.skipped_kinds)));
    }
    if !s.not_redriven.is_empty() {
        text.push_str(&format!("; not redriven: {}", counts(&s.not_redriven)));
    }
    text.push_str(&format!("; {} Salesforce call(s)", s.salesforce_api_calls));
    if s.dry_run {
        text.push_str(" would be made (dry run: nothing was written or deleted)");
    }
    text
}

/// Writes `rows` under `header`, each column as wide as its widest cell, two spaces apart.
fn write_table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        text.trim_end().to_owned()
    };
    writeln!(out, "{}", line(header))?;
    for row in rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        writeln!(out, "{}", line(&cells))?;
    }
    Ok(())
}

/// Where reports go: JSON lines, or a table for people.
struct Output<W: Write> {
    json: bool,
    /// The table's width in columns.
    width: usize,
    out: W,
}

impl<W: Write> Output<W> {
    fn report(&mut self, file: &Path, report: &BatchReport, dry_run: bool) -> anyhow::Result<()> {
        if self.json {
            for record in &report.records {
                writeln!(self.out, "{}", serde_json::to_string(record)?)?;
            }
            let line = json!({"summary": report.summary, "file": file.display().to_string(), "dryRun": dry_run});
            writeln!(self.out, "{line}")?;
        } else {
            let file = file.display().to_string();
            for line in report_table::render(&file, report, dry_run, self.width) {
                writeln!(self.out, "{line}")?;
            }
        }
        self.out.flush()?;
        Ok(())
    }
}

/// A contact-flow event file given to `replay`: the contact-flow function's input, which the
/// stream pipeline would call poison (it is no CTR).
#[derive(Debug, thiserror::Error)]
#[error(
    "{path} is an Amazon Connect contact-flow event (Details.ContactData): the input of the \
     contact-flow function, not contact trace records, so replay (the stream function's \
     pipeline) does not run it. Invoke the contact-flow function with it instead: start \
     `cargo lambda watch --invoke-address 127.0.0.1`, then run `cargo lambda invoke \
     ctr-cases-flow --invoke-address 127.0.0.1 --data-file {path}` (docs/deploy.md, step 9)"
)]
struct ContactFlowEvent {
    path: String,
}

/// Whether `text` is an Amazon Connect contact-flow invoke event (`{"Details":{"ContactData":
/// {…}}, "Name":"ContactFlowEvent"}`).
fn is_contact_flow_event(text: &str) -> bool {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|event| event.pointer("/Details/ContactData").cloned())
        .is_some_and(|data| data.is_object())
}

/// Reads `file` for `replay`: `None` when it is refused (a contact-flow event, reported on
/// stderr and counted in `refused`, so the other files still run).
fn read_replay_file(file: &Path, refused: &mut usize) -> anyhow::Result<Option<KinesisEnvelope>> {
    match read_events(file) {
        Ok(envelope) => Ok(Some(envelope)),
        Err(error) if error.is::<ContactFlowEvent>() => {
            eprintln!("error: {error}");
            *refused += 1;
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// Reads a file as a Kinesis event; other shapes (a CTR, an array of CTRs, JSON lines) are
/// wrapped in one, each CTR becoming a record with sequence numbers 1, 2, ….
fn read_events(path: &Path) -> anyhow::Result<KinesisEnvelope> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if text.contains("\"ContactData\"") && is_contact_flow_event(&text) {
        return Err(ContactFlowEvent {
            path: path.display().to_string(),
        }
        .into());
    }
    let wrap = |items: Vec<Vec<u8>>| KinesisEnvelope {
        records: items
            .iter()
            .enumerate()
            .map(|(i, data)| record_for(data, &(i + 1).to_string(), "shardId-replay"))
            .collect(),
    };
    // A Kinesis event (the large case) is parsed once, straight into the envelope; a file that
    // parses as one but has no Records key is a bare CTR.
    if text.trim_start().starts_with('{') {
        match serde_json::from_str::<KinesisEnvelope>(&text) {
            Ok(envelope) if !envelope.records.is_empty() => return Ok(envelope),
            Ok(_) if !text.contains("\"Records\"") => {
                return Ok(wrap(vec![text.trim().as_bytes().to_vec()]));
            }
            _ => {}
        }
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) if map.contains_key("Records") => serde_json::from_str(&text)
            .with_context(|| format!("{} has Records but is not a Kinesis event", path.display())),
        Ok(Value::Object(_)) => Ok(wrap(vec![text.trim().as_bytes().to_vec()])),
        Ok(Value::Array(items)) => Ok(wrap(
            items.iter().map(|v| v.to_string().into_bytes()).collect(),
        )),
        Ok(_) => bail!(
            "{} is JSON but not an event, a CTR or an array",
            path.display()
        ),
        Err(_) => {
            let lines: Vec<Vec<u8>> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.as_bytes().to_vec())
                .collect();
            if lines.is_empty() {
                bail!("{} is empty", path.display());
            }
            Ok(wrap(lines))
        }
    }
}
