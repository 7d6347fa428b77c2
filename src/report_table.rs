//! The replay report for people: one row per record and a summary per file, fitted to the
//! terminal's width. Programs read the JSON lines instead (`ctr-cases replay --json`).
//!
//! Pure: no I/O, no environment. The width is an argument; [`terminal_width`] picks it from
//! what the CLI found out (`COLUMNS`, the terminal's size).
//!
//! A row says what the record was and what became of it: the contact's outcome (also for a
//! superseded version, with the row that superseded it), the action, and a reason for every
//! record that gets no Case (the setting that would file one) or failed (the error code). On a
//! narrow terminal the table drops the sequence number (the row number stands in for it; the
//! JSON lines keep it), then shortens the ContactId to its first 8 characters, then moves the
//! reason below its row; the reason wraps at word boundaries. It never wraps a row at 80
//! columns.

use std::collections::BTreeMap;

use crate::report::{BatchReport, BatchSummary, RecordReport};

/// The width used when neither `COLUMNS` nor the terminal says: 80 columns.
pub const DEFAULT_WIDTH: usize = 80;

/// The reason column is used only when at least this wide (or as wide as the longest reason);
/// narrower, the reason goes below its row.
const MIN_REASON_WIDTH: usize = 24;

/// Columns between two cells.
const GAP: usize = 2;

/// Indent of a reason printed below its row.
const BELOW_INDENT: usize = 4;

/// The table's width: `COLUMNS` when it is a positive number (an explicit choice wins, as in
/// most command-line tools), else the terminal's width when it could be queried, else
/// [`DEFAULT_WIDTH`].
///
/// ```
/// use ctr_cases::report_table::terminal_width;
/// assert_eq!(terminal_width(Some("120"), Some(200)), 120);
/// assert_eq!(terminal_width(None, Some(200)), 200);
/// assert_eq!(terminal_width(Some("wide"), None), 80);
/// ```
pub fn terminal_width(columns: Option<&str>, queried: Option<u16>) -> usize {
    columns
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
        .or_else(|| queried.map(usize::from).filter(|&c| c > 0))
        .unwrap_or(DEFAULT_WIDTH)
}

/// Kinesis sequence numbers are 56 digits; a table shows the last 12.
pub fn short_sequence(sequence: &str) -> String {
    let count = sequence.chars().count();
    if count <= 14 {
        sequence.to_owned()
    } else {
        let tail: String = sequence.chars().skip(count - 12).collect();
        format!("…{tail}")
    }
}

/// Renders one file's report: the file name, a header, one row per record (with continuation
/// lines when a reason wraps), the summary and an empty line. Every line fits in `width`
/// columns, unless `width` is narrower than the narrowest layout (about 50 columns) or the file
/// name is longer than `width`.
pub fn render(file: &str, report: &BatchReport, dry_run: bool, width: usize) -> Vec<String> {
    let rows: Vec<Row> = report
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| Row::of(i + 1, r))
        .collect();
    // The reason column needs room for a fair part of the longest reason, and for its
    // longest word (a setting such as CASE_FOR_QUEUED_ABANDONED=false is never cut).
    let longest = |len: fn(&str) -> usize| rows.iter().map(|r| len(&r.reason)).max().unwrap_or(0);
    let longest_reason = longest(|r| r.chars().count());
    let longest_word = longest(|r| {
        r.split_whitespace()
            .map(|w| w.chars().count())
            .max()
            .unwrap_or(0)
    });
    let need = longest_reason
        .clamp("REASON".len(), MIN_REASON_WIDTH)
        .max(longest_word);
    let layout = LAYOUTS
        .iter()
        .copied()
        .find(|layout| !layout.reason_below && layout.fixed_width(&rows) + need <= width)
        .unwrap_or(LAYOUTS[LAYOUTS.len() - 1]);

    let mut lines = vec![file.to_owned()];
    let widths = layout.widths(&rows);
    let fixed = layout.fixed_width(&rows);
    let mut header = layout.line(&layout.header(), &widths);
    if !layout.reason_below {
        header.push_str("REASON");
    }
    lines.push(header.trim_end().to_owned());
    for row in &rows {
        let cells = layout.cells(row);
        let first = layout.line(&cells, &widths);
        if row.reason.is_empty() {
            lines.push(first.trim_end().to_owned());
        } else if layout.reason_below {
            lines.push(first.trim_end().to_owned());
            let indent = " ".repeat(BELOW_INDENT);
            for part in wrap(&row.reason, width.saturating_sub(BELOW_INDENT)) {
                lines.push(format!("{indent}{part}"));
            }
        } else {
            let mut parts = wrap(&row.reason, width - fixed).into_iter();
            lines.push(format!("{first}{}", parts.next().unwrap_or_default()));
            let indent = " ".repeat(fixed);
            lines.extend(parts.map(|part| format!("{indent}{part}")));
        }
    }
    for paragraph in summary_paragraphs(&report.summary, dry_run) {
        lines.extend(wrap(&paragraph, width));
    }
    lines.push(String::new());
    lines
}

/// The summary in words: what became of the records, then what was (or would be) written.
/// A dry run cannot tell a create from an update, so it counts the Cases it would write.
fn summary_paragraphs(summary: &BatchSummary, dry_run: bool) -> [String; 2] {
    let actions = counts(&summary.actions);
    let records = format!("{} record(s): {actions}.", summary.records);
    let calls = summary.salesforce_api_calls;
    let writes = if dry_run {
        format!(
            "Dry run: {} Case(s) would be written (created or updated) in {calls} Salesforce \
             call(s); nothing was sent.",
            summary.case_writes
        )
    } else {
        format!(
            "{} Case(s) written ({} created, {} updated) in {calls} Salesforce call(s).",
            summary.case_writes,
            summary.cases_created,
            summary.case_writes.saturating_sub(summary.cases_created)
        )
    };
    [records, writes]
}

fn counts(map: &BTreeMap<&'static str, u32>) -> String {
    map.iter()
        .map(|(name, n)| format!("{n} {name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One record's cells, in every form a layout may use.
struct Row {
    number: String,
    sequence: String,
    contact: String,
    contact_short: String,
    outcome: &'static str,
    action: &'static str,
    reason: String,
}

impl Row {
    fn of(number: usize, r: &RecordReport) -> Row {
        let contact = r.contact_id.clone().unwrap_or_else(|| "-".into());
        let contact_short = if contact.chars().count() > 9 {
            format!("{}…", contact.chars().take(8).collect::<String>())
        } else {
            contact.clone()
        };
        let reason = match (&r.superseded_by, &r.reason, &r.error) {
            (Some(by), _, _) => format!("newer version in row {}", by.row),
            (None, Some(reason), _) => reason.to_string(),
            (None, None, Some(error)) => error.clone(),
            (None, None, None) => String::new(),
        };
        Row {
            number: number.to_string(),
            sequence: short_sequence(&r.sequence_number),
            contact,
            contact_short,
            // What the contact was, also when a newer version superseded this one.
            outcome: r.contact_outcome.unwrap_or(r.outcome),
            action: r.action.name(),
            reason,
        }
    }
}

/// Which columns a table shows and where the reason goes.
#[derive(Debug, Clone, Copy)]
struct Layout {
    sequence: bool,
    full_contact: bool,
    reason_below: bool,
}

/// From the widest to the narrowest; the first that fits is used.
const LAYOUTS: [Layout; 4] = [
    Layout {
        sequence: true,
        full_contact: true,
        reason_below: false,
    },
    Layout {
        sequence: false,
        full_contact: true,
        reason_below: false,
    },
    Layout {
        sequence: false,
        full_contact: false,
        reason_below: false,
    },
    Layout {
        sequence: false,
        full_contact: false,
        reason_below: true,
    },
];

impl Layout {
    fn header(self) -> Vec<&'static str> {
        let mut header = vec!["#"];
        if self.sequence {
            header.push("SEQUENCE");
        }
        header.push(if self.full_contact {
            "CONTACT ID"
        } else {
            "CONTACT"
        });
        header.extend(["OUTCOME", "ACTION"]);
        header
    }

    fn cells(self, row: &Row) -> Vec<&str> {
        let mut cells = vec![row.number.as_str()];
        if self.sequence {
            cells.push(&row.sequence);
        }
        cells.push(if self.full_contact {
            &row.contact
        } else {
            &row.contact_short
        });
        cells.extend([row.outcome, row.action]);
        cells
    }

    /// Each column as wide as its widest cell or header.
    fn widths(self, rows: &[Row]) -> Vec<usize> {
        let mut widths: Vec<usize> = self.header().iter().map(|h| h.chars().count()).collect();
        for row in rows {
            for (w, cell) in widths.iter_mut().zip(self.cells(row)) {
                *w = (*w).max(cell.chars().count());
            }
        }
        widths
    }

    /// The columns before the reason, gaps included.
    fn fixed_width(self, rows: &[Row]) -> usize {
        self.widths(rows).iter().map(|w| w + GAP).sum()
    }

    /// The cells padded to their widths, each followed by a gap; the row number is
    /// right-aligned.
    fn line(self, cells: &[&str], widths: &[usize]) -> String {
        let mut text = String::new();
        for (i, (cell, &width)) in cells.iter().zip(widths).enumerate() {
            let padding = " ".repeat(width.saturating_sub(cell.chars().count()));
            if i == 0 {
                text.push_str(&padding);
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.push_str(&padding);
            }
            text.push_str(&" ".repeat(GAP));
        }
        text
    }
}

/// `text` in lines of at most `width` characters, broken at spaces; a word longer than a line
/// is cut.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut line_len = 0;
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while word.len() > width {
            if line_len > 0 {
                lines.push(std::mem::take(&mut line));
                line_len = 0;
            }
            lines.push(word.drain(..width).collect());
        }
        if word.is_empty() {
            continue;
        }
        if line_len > 0 && line_len + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
            line_len = 0;
        }
        if line_len > 0 {
            line.push(' ');
            line_len += 1;
        }
        line_len += word.len();
        line.extend(word);
    }
    if line_len > 0 || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effect::{SendOutcome, WriteOutcome, WriteReport};
    use crate::event::{KinesisEnvelope, record_for};
    use crate::plan::{Settings, plan};
    use crate::report::{Executed, finish};

    const HANDLED: &str = "6fe40d2a-1a89-4d73-bfcf-5d9c33894f47";
    const DROPPED: &str = "5ca32fbd-8f92-46af-92a5-6b0f970f0efe";

    fn ctr(id: &str, updated: &str, extra: &str) -> Vec<u8> {
        format!(
            r#"{{"ContactId":"{id}","Channel":"VOICE","InitiationMethod":"INBOUND","LastUpdateTimestamp":"{updated}"{extra}}}"#
        )
        .into_bytes()
    }

    /// A batch shaped like `events/mixed-batch.json`, with 56-digit sequence numbers: three
    /// versions of an agent-handled call, a dropped call twice, a poison record, and one
    /// record of each other skipped kind.
    fn mixed_report(dry_run: bool) -> BatchReport {
        let datas = [
            ctr(HANDLED, "2022-01-05T17:48:35Z", r#","Agent":{}"#),
            ctr(HANDLED, "2022-01-11T03:41:32Z", r#","Agent":{}"#),
            ctr(HANDLED, "2022-01-11T04:09:47Z", r#","Agent":{}"#),
            ctr(DROPPED, "2024-02-25T08:36:30Z", ""),
            b"not json".to_vec(),
            ctr(DROPPED, "2024-02-25T08:36:30Z", ""),
            ctr(
                "0e5a3c2b-1111-4222-8333-444455556666",
                "2024-02-25T08:36:30Z",
                r#","Queue":{"Name":"Q"}"#,
            ),
            ctr(
                "0e5a3c2b-1111-4222-8333-444455556667",
                "2024-02-25T08:36:30Z",
                r#","NextContactId":"0e5a3c2b-1111-4222-8333-444455556668""#,
            ),
            String::from_utf8(ctr(
                "0e5a3c2b-1111-4222-8333-444455556669",
                "2024-02-25T08:36:30Z",
                "",
            ))
            .unwrap()
            .replace("INBOUND", "OUTBOUND")
            .into_bytes(),
        ];
        let env = KinesisEnvelope {
            records: datas
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let sequence = format!("4961{:052}", i + 1);
                    record_for(d, &sequence, "shardId-000000000000")
                })
                .collect(),
        };
        let inputs = env.inputs();
        let plan = plan(&inputs, &Settings::default());
        let outcome = if dry_run {
            WriteOutcome::Recorded
        } else {
            WriteOutcome::Written {
                id: "500000000000001AAA".into(),
                created: true,
            }
        };
        let executed = Executed {
            writes: WriteReport {
                outcomes: vec![outcome],
                api_calls: 1,
                ..WriteReport::default()
            },
            poison_sends: vec![SendOutcome::Recorded],
            ..Executed::default()
        };
        finish(&plan, &executed)
    }

    fn assert_fits(lines: &[String], width: usize) {
        for line in lines {
            assert!(
                line.chars().count() <= width,
                "{} > {width} columns: {line:?}\n{}",
                line.chars().count(),
                lines.join("\n")
            );
        }
    }

    /// The words of record `number`'s row and of its continuation lines.
    fn row_words(lines: &[String], number: usize) -> Vec<String> {
        let start = lines
            .iter()
            .position(|l| l.split_whitespace().next() == Some(&number.to_string()))
            .unwrap_or_else(|| panic!("no row {number} in\n{}", lines.join("\n")));
        let continued = lines[start + 1..]
            .iter()
            .take_while(|l| l.starts_with(' ') && !l.trim_start().starts_with(char::is_numeric));
        std::iter::once(&lines[start])
            .chain(continued)
            .flat_map(|l| l.split_whitespace().map(str::to_owned))
            .collect()
    }

    /// Whether `words` ends with the words of `text`.
    fn ends_with(words: &[String], text: &str) -> bool {
        let tail: Vec<&str> = text.split_whitespace().collect();
        words.len() >= tail.len() && words[words.len() - tail.len()..] == tail[..]
    }

    #[test]
    fn at_80_columns_every_row_fits_and_says_why() {
        let lines = render("events/mixed-batch.json", &mixed_report(true), true, 80);
        assert_fits(&lines, 80);
        let text = lines.join("\n");
        assert_eq!(
            lines[1].split_whitespace().take(4).collect::<Vec<_>>(),
            ["#", "CONTACT", "OUTCOME", "ACTION"]
        );
        assert_eq!(
            row_words(&lines, 1),
            [
                "1",
                "6fe40d2a…",
                "happy_path_live_agent",
                "superseded",
                "newer",
                "version",
                "in",
                "row",
                "3"
            ],
            "{text}"
        );
        let expected = [
            (2, "happy_path_live_agent superseded newer version in row 3"),
            (3, "happy_path_live_agent skipped CASE_FOR_HAPPY_PATH=false"),
            (4, "dropped superseded newer version in row 6"),
            (5, "- poison dead_letter invalid_json"),
            (6, "dropped upsert_case"),
            (
                7,
                "queued_abandoned skipped CASE_FOR_QUEUED_ABANDONED=false",
            ),
            (
                8,
                "transferred_out skipped transferred out: the next leg has its own CTR",
            ),
            (
                9,
                "skipped_initiation skipped OUTBOUND in SKIP_INITIATION_METHODS",
            ),
        ];
        for (row, tail) in expected {
            let words = row_words(&lines, row);
            assert!(ends_with(&words, tail), "row {row}: {words:?}\n{text}");
        }
    }

    /// A batch whose reasons fit beside the rows keeps them there at 80 columns.
    #[test]
    fn at_80_columns_short_reasons_stay_on_their_row() {
        let mut report = mixed_report(true);
        report.records.truncate(6);
        let lines = render("f.json", &report, true, 80);
        assert_fits(&lines, 80);
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["#", "CONTACT", "OUTCOME", "ACTION", "REASON"]
        );
        for (i, line) in lines[2..8].iter().enumerate() {
            let number = (i + 1).to_string();
            assert_eq!(
                line.split_whitespace().next(),
                Some(number.as_str()),
                "{line}"
            );
        }
        assert!(ends_with(
            &lines[4]
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>(),
            "skipped CASE_FOR_HAPPY_PATH=false"
        ));
    }

    #[test]
    fn wrap_breaks_at_spaces_in_order_and_cuts_a_word_longer_than_a_line() {
        assert_eq!(wrap("a bc de", 4), ["a bc", "de"]);
        assert_eq!(wrap("a bcdefgh", 4), ["a", "bcde", "fgh"]);
        assert_eq!(wrap("abcd", 4), ["abcd"], "a word as long as the line");
        assert_eq!(wrap("", 4), [""]);
    }

    #[test]
    fn the_row_number_is_right_aligned_and_other_cells_left_aligned() {
        let gap = " ".repeat(GAP);
        assert_eq!(
            LAYOUTS[0].line(&["7", "abc"], &[3, 5]),
            format!("  7{gap}abc  {gap}")
        );
    }

    /// A long reason beside its row wraps within the reason column, its lines indented to it.
    #[test]
    fn a_long_reason_beside_its_row_wraps_within_the_width() {
        let mut report = mixed_report(true);
        report.records.truncate(6);
        let long = "the org refused the write because a validation rule said so ".repeat(4);
        report.records[5].error = Some(long.trim().to_owned());
        report.records[5].reason = None;
        let lines = render("f.json", &report, true, 100);
        assert_fits(&lines, 100);
        assert!(lines[1].contains("REASON"), "{}", lines.join("\n"));
        let at = lines.iter().position(|l| l.starts_with("6 ")).unwrap();
        let column = lines[1].find("REASON").unwrap();
        assert!(
            lines[at + 1].starts_with(&" ".repeat(column)),
            "{}",
            lines[at + 1]
        );
        assert!(!lines[at + 1].trim().is_empty());
    }

    /// Contact ids longer than 9 characters are cut to 8 and an ellipsis; shorter ones are not.
    #[test]
    fn only_contact_ids_longer_than_nine_characters_are_cut() {
        let mut report = mixed_report(true);
        report.records[0].contact_id = Some("123456789".into());
        report.records[1].contact_id = Some("1234567890".into());
        let lines = render("f.json", &report, true, 80);
        let contact_of = |number: &str| {
            let row = lines.iter().find(|l| l.starts_with(number)).unwrap();
            row.split_whitespace().nth(1).unwrap().to_owned()
        };
        assert_eq!(contact_of("1 "), "123456789");
        assert_eq!(contact_of("2 "), "12345678…");
    }

    #[test]
    fn a_wide_terminal_shows_the_sequence_and_the_full_contact_id() {
        let lines = render("f.json", &mixed_report(true), true, 160);
        assert_fits(&lines, 160);
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            [
                "#", "SEQUENCE", "CONTACT", "ID", "OUTCOME", "ACTION", "REASON"
            ]
        );
        assert_eq!(
            lines[7].split_whitespace().collect::<Vec<_>>(),
            ["6", "…000000000006", DROPPED, "dropped", "upsert_case"]
        );
    }

    /// Below the narrowest table with a reason column, each reason goes on its own lines.
    #[test]
    fn a_narrow_terminal_puts_the_reason_below_its_row() {
        let lines = render("f.json", &mixed_report(true), true, 56);
        assert_fits(&lines, 56);
        assert!(!lines[1].contains("REASON"), "{}", lines.join("\n"));
        let at = lines.iter().position(|l| l.starts_with("3 ")).unwrap();
        assert_eq!(lines[at + 1], "    CASE_FOR_HAPPY_PATH=false");
    }

    #[test]
    fn dry_run_summary_counts_the_cases_it_would_write() {
        let lines = render("f.json", &mixed_report(true), true, 80);
        let text = lines.join(" ");
        assert!(
            text.contains(
                "9 record(s): 1 dead_letter, 4 skipped, 3 superseded, 1 upsert_case. Dry run: \
                 1 Case(s) would be written (created or updated) in 1 Salesforce call(s); \
                 nothing was sent."
            ),
            "{text}"
        );
        assert!(!text.contains("created,"), "{text}");
        let lines = render("f.json", &mixed_report(false), false, 80);
        assert!(
            lines
                .join(" ")
                .contains("1 Case(s) written (1 created, 0 updated) in 1 Salesforce call(s).")
        );
    }

    #[test]
    fn width_comes_from_columns_then_the_terminal_then_80() {
        assert_eq!(terminal_width(Some(" 100 "), Some(60)), 100);
        assert_eq!(terminal_width(Some("0"), Some(60)), 60);
        assert_eq!(terminal_width(None, Some(0)), DEFAULT_WIDTH);
        assert_eq!(terminal_width(None, None), DEFAULT_WIDTH);
    }

    #[test]
    fn wrap_breaks_at_spaces_and_cuts_long_words() {
        assert_eq!(wrap("a bb ccc", 4), ["a bb", "ccc"]);
        assert_eq!(wrap("abcdefgh x", 3), ["abc", "def", "gh", "x"]);
        assert_eq!(wrap("", 10), [""]);
    }

    #[test]
    fn long_sequence_numbers_keep_their_last_12_digits() {
        assert_eq!(short_sequence("12345"), "12345");
        let sequence = format!("4961{}123456789012", "0".repeat(40));
        assert_eq!(sequence.len(), 56);
        assert_eq!(short_sequence(&sequence), "…123456789012");
    }
}
