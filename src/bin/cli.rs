//! `ctr-cases`: run event files through the same pipeline as the Lambda (`replay`).
//!
//! A thin adapter: it reads files into plan inputs, picks the sinks (recorders for a dry run,
//! the real Salesforce client and dead-letter queue for `--send`) and prints the report.

use std::io::{IsTerminal as _, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use ctr_cases::app::AppState;
use ctr_cases::config::{Config, DryRunConfig};
use ctr_cases::event::{KinesisEnvelope, record_for};
use ctr_cases::pipeline;
use ctr_cases::queue::{DeadLetterSink, LetterRecorder};
use ctr_cases::report::{BatchReport, BatchSummary, RecordReport};
use ctr_cases::retry::Deadline;
use ctr_cases::salesforce::RequestRecorder;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(
    name = "ctr-cases",
    version,
    about = "Amazon Connect contact trace records → Salesforce Cases",
    long_about = "Amazon Connect contact trace records → Salesforce Cases.\n\n\
        Runs CTRs through the same pipeline as the Lambda: decode, dedupe, classify, map to \
        Cases, write, dead-letter. Configuration comes from the same environment variables \
        as the Lambda (see README.md)."
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
        /// or JSON lines of CTRs. Example: `events/mixed-batch.json`.
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
        /// is the default when stdout is not a terminal. Example: `ctr-cases replay --json f.json`.
        #[arg(long)]
        json: bool,
        /// With --send and no DEAD_LETTER_QUEUE_URL: the JSON-lines file dead letters are
        /// appended to (default `ctr-cases-dead-letters-<UTC time>.jsonl` in the current
        /// directory). Example: `--dead-letters /tmp/letters.jsonl`.
        #[arg(long, value_name = "FILE", requires = "send")]
        dead_letters: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The per-record log lines repeat what the CLI prints; keep warnings about everything else.
    let filter =
        std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,ctr_cases::pipeline=off".into());
    ctr_cases::logging::init_with_writer(
        ctr_cases::logging::LogFormat::Text,
        &filter,
        std::io::stderr,
    );
    let Command::Replay {
        files,
        send,
        show_requests,
        json,
        dead_letters,
    } = Cli::parse().command;
    let stdout = std::io::stdout();
    let mut out = Output {
        json: json || !stdout.is_terminal(),
        out: stdout.lock(),
    };
    let env = |name: &str| std::env::var(name).ok();
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
            state.dead_letters = DeadLetterSink::file(path);
        }
        state.metrics.enabled = false;
        for file in &files {
            let envelope = read_events(file)?;
            let inputs = envelope.inputs();
            let report = pipeline::run(
                &inputs,
                &state.settings,
                &state.salesforce,
                &state.letters(),
                Deadline::unbounded(),
            )
            .await;
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
        let requests = RequestRecorder::new(
            &config.api_version,
            &config.pipeline.mapping.external_id_field,
            &config.pipeline.mapping.version_field,
            config.batch_size,
        );
        let letters = LetterRecorder::default();
        for file in &files {
            let envelope = read_events(file)?;
            let inputs = envelope.inputs();
            let report = pipeline::run(
                &inputs,
                &config.pipeline,
                &requests,
                &letters,
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
                        "body": request.body,
                    }});
                    writeln!(out.out, "{line}")?;
                }
            }
            out.report(file, &report, true)?;
        }
    }
    Ok(())
}

/// Where reports go: JSON lines, or a table for people.
struct Output<W: Write> {
    json: bool,
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
            self.table(file, &report.records, &report.summary, dry_run)?;
        }
        Ok(())
    }

    fn table(
        &mut self,
        file: &Path,
        records: &[RecordReport],
        summary: &BatchSummary,
        dry_run: bool,
    ) -> anyhow::Result<()> {
        let rows: Vec<[String; 5]> = records
            .iter()
            .map(|r| {
                [
                    short_sequence(&r.sequence_number),
                    r.contact_id.clone().unwrap_or_else(|| "-".into()),
                    r.outcome.to_owned(),
                    r.action.name().to_owned(),
                    r.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        let header = ["SEQUENCE", "CONTACT ID", "OUTCOME", "ACTION", "REASON"];
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        writeln!(self.out, "{}", file.display())?;
        let line = |cells: [&str; 5]| {
            let mut text = String::new();
            for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
                if i + 1 == cells.len() {
                    text.push_str(cell);
                } else {
                    text.push_str(&format!("{cell:<width$}  "));
                }
            }
            text.trim_end().to_owned()
        };
        writeln!(self.out, "{}", line(header))?;
        for row in &rows {
            writeln!(self.out, "{}", line(row.each_ref().map(String::as_str)))?;
        }
        let actions: Vec<String> = summary
            .actions
            .iter()
            .map(|(action, n)| format!("{n} {action}"))
            .collect();
        writeln!(
            self.out,
            "{} record(s): {}; {} Salesforce call(s){}\n",
            summary.records,
            actions.join(", "),
            summary.salesforce_api_calls,
            if dry_run {
                " would be made (dry run: nothing was sent)"
            } else {
                ""
            }
        )?;
        Ok(())
    }
}

/// Kinesis sequence numbers are 56 digits; a table shows the last 12.
fn short_sequence(sequence: &str) -> String {
    let count = sequence.chars().count();
    if count <= 14 {
        sequence.to_owned()
    } else {
        let tail: String = sequence.chars().skip(count - 12).collect();
        format!("…{tail}")
    }
}

/// Reads a file as a Kinesis event; other shapes (a CTR, an array of CTRs, JSON lines) are
/// wrapped in one, each CTR becoming a record with sequence numbers 1, 2, ….
fn read_events(path: &Path) -> anyhow::Result<KinesisEnvelope> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let wrap = |items: Vec<Vec<u8>>| KinesisEnvelope {
        records: items
            .iter()
            .enumerate()
            .map(|(i, data)| record_for(data, &(i + 1).to_string(), "shardId-replay"))
            .collect(),
    };
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
