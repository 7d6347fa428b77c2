//! `ctr-cases replay FILE...`: runs event files through the same pipeline as the Lambda.
//!
//! Dry run by default: decodes, dedupes, classifies and maps, then prints what it would do and
//! touches nothing. `--send` reads the Lambda's configuration from the environment and really
//! upserts the Cases.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use ctr_cases::batch::{self, BatchSummary, RecordReport};
use ctr_cases::config::{Config, PipelineConfig};
use ctr_cases::deadletter::DeadLetterSink;
use ctr_cases::event::{KinesisEnvelope, record_for};
use ctr_cases::handler::{self, AppState, MetricsTarget};
use ctr_cases::retry::Deadline;
use ctr_cases::salesforce::wire;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(
    name = "ctr-cases",
    version,
    about = "Amazon Connect CTRs → Salesforce Cases"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay event files: Kinesis event JSON, a bare CTR, a JSON array of CTRs, or JSON lines
    /// of CTRs. Prints one JSON line per record and a summary line per file.
    Replay {
        /// Event files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Really upsert the Cases, using the SALESFORCE_* configuration (default: dry run).
        #[arg(long)]
        send: bool,
        /// Print the Salesforce request bodies that would be sent (dry run).
        #[arg(long)]
        show_requests: bool,
        /// Salesforce API version for --show-requests.
        #[arg(long, env = "SALESFORCE_API_VERSION", default_value = "v62.0")]
        api_version: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    ctr_cases::logging::init_with_writer(
        ctr_cases::logging::LogFormat::Text,
        &filter,
        std::io::stderr,
    );
    let Command::Replay {
        files,
        send,
        show_requests,
        api_version,
    } = Cli::parse().command;
    let mut out = std::io::stdout().lock();
    if send {
        let config = Config::from_env()?;
        let mut state = AppState::from_config(config).await?;
        if matches!(state.dead_letters, DeadLetterSink::Disabled) {
            state.dead_letters = DeadLetterSink::memory();
        }
        state.metrics = MetricsTarget {
            enabled: false,
            ..state.metrics
        };
        for file in &files {
            let envelope = read_events(file)?;
            let outcome = handler::process_batch(&state, &envelope, Deadline::unbounded()).await;
            print_reports(&mut out, file, &outcome.reports, &outcome.summary, false)?;
        }
    } else {
        let pipeline = PipelineConfig::from_lookup(|name| std::env::var(name).ok())?;
        for file in &files {
            let envelope = read_events(file)?;
            let planned = batch::plan(&envelope, &pipeline);
            if show_requests {
                print_requests(&mut out, &planned, &pipeline, &api_version)?;
            }
            let reports: Vec<RecordReport> = planned
                .iter()
                .map(|p| RecordReport::new(p, p.planned_action()))
                .collect();
            let mut summary = BatchSummary::from_reports(&reports);
            // What --send would cost: one collections call per 200 Cases (plus one token).
            summary.salesforce_api_calls = summary
                .count(batch::Action::UpsertCase)
                .div_ceil(wire::MAX_COLLECTION_RECORDS as u32);
            print_reports(&mut out, file, &reports, &summary, true)?;
        }
    }
    Ok(())
}

fn print_reports(
    out: &mut impl std::io::Write,
    file: &Path,
    reports: &[RecordReport],
    summary: &BatchSummary,
    dry_run: bool,
) -> anyhow::Result<()> {
    for report in reports {
        writeln!(out, "{}", serde_json::to_string(report)?)?;
    }
    let line = json!({"summary": summary, "file": file.display().to_string(), "dryRun": dry_run});
    writeln!(out, "{line}")?;
    Ok(())
}

fn print_requests(
    out: &mut impl std::io::Write,
    planned: &[batch::PlannedRecord],
    pipeline: &PipelineConfig,
    api_version: &str,
) -> anyhow::Result<()> {
    let cases: Vec<_> = planned
        .iter()
        .filter_map(batch::PlannedRecord::case)
        .collect();
    let field = &pipeline.mapping.external_id_field;
    for chunk in cases.chunks(wire::MAX_COLLECTION_RECORDS) {
        let body = wire::collections_upsert_body(chunk.iter().copied(), field);
        let request = json!({"request": {
            "method": "PATCH",
            "path": wire::collections_upsert_path(api_version, field),
            "body": body,
        }});
        writeln!(out, "{request}")?;
    }
    Ok(())
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
