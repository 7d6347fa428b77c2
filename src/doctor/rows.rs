//! The rows `ctr-cases check` prints and how they look: a table for people (✓/⚠/✗ and the fix
//! under each row that needs one) and JSON lines for tools.
//!
//! Pure: rows in, text out. What each check finds is decided in [`super`].

use serde::Serialize;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The org (or the deployment) is ready in this respect.
    Pass,
    /// Not a failure, but someone should look: the fix says what to grant or change.
    Warn,
    /// The Lambda would not work as configured: fix it before enabling the trigger.
    Fail,
    /// Not checked (not configured, or an earlier check failed); the detail says why.
    Skip,
}

impl Status {
    /// The symbol the table shows.
    pub fn symbol(self) -> &'static str {
        match self {
            Status::Pass => "✓",
            Status::Warn => "⚠",
            Status::Fail => "✗",
            Status::Skip => "–",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// What was checked: `login`, `Case.Status`, `Case sharing`, ….
    pub check: String,
    /// How it came out.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do (every ✗ and ⚠ has one); `null` in JSON otherwise.
    pub fix: Option<String>,
}

impl Row {
    /// A passed check.
    pub fn pass(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Row::new(check, Status::Pass, detail, None)
    }

    /// A warning, with what to grant or change.
    pub fn warn(
        check: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Row::new(check, Status::Warn, detail, Some(fix.into()))
    }

    /// A failed check, with its fix.
    pub fn fail(
        check: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Row::new(check, Status::Fail, detail, Some(fix.into()))
    }

    /// A check that was not made, and why.
    pub fn skip(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Row::new(check, Status::Skip, detail, None)
    }

    fn new(
        check: impl Into<String>,
        status: Status,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Row {
            check: check.into(),
            status,
            detail: detail.into(),
            fix,
        }
    }
}

/// How many rows came out each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// ✓ rows.
    pub pass: usize,
    /// ⚠ rows.
    pub warn: usize,
    /// ✗ rows.
    pub fail: usize,
    /// Rows not checked.
    pub skip: usize,
    /// No ✗: the command exits 0.
    pub ok: bool,
}

/// Counts `rows` by status.
pub fn summary(rows: &[Row]) -> Summary {
    let count = |status: Status| rows.iter().filter(|r| r.status == status).count();
    let fail = count(Status::Fail);
    Summary {
        pass: count(Status::Pass),
        warn: count(Status::Warn),
        fail,
        skip: count(Status::Skip),
        ok: fail == 0,
    }
}

/// The table for people: one line per check (symbol, check, what was found), the fix indented
/// under it, then a summary line.
pub fn table(rows: &[Row]) -> String {
    let width = rows
        .iter()
        .map(|r| r.check.chars().count())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for row in rows {
        let line = format!(
            "{}  {:<width$}  {}",
            row.status.symbol(),
            row.check,
            row.detail
        );
        text.push_str(line.trim_end());
        text.push('\n');
        if let Some(fix) = &row.fix {
            text.push_str(&format!("   {:<width$}  fix: {fix}\n", ""));
        }
    }
    let s = summary(rows);
    text.push_str(&format!(
        "{} check(s): {} ✓, {} ⚠, {} ✗, {} not checked",
        rows.len(),
        s.pass,
        s.warn,
        s.fail,
        s.skip
    ));
    text.push_str(if s.ok {
        "\n"
    } else {
        ": fix every ✗ before enabling the trigger, then run ctr-cases check again\n"
    });
    text
}

/// JSON lines for tools: one object per row (`check`, `status`, `detail`, `fix`), then
/// `{"summary":{…}}`.
pub fn json_lines(rows: &[Row]) -> String {
    let mut text = String::new();
    for row in rows {
        text.push_str(&serde_json::to_string(row).expect("rows serialize"));
        text.push('\n');
    }
    let summary = serde_json::json!({ "summary": summary(rows) });
    text.push_str(&summary.to_string());
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn rows() -> Vec<Row> {
        vec![
            Row::pass("login", "password grant"),
            Row::fail("Case.Status", "lacks \"Open\"", "add the value"),
            Row::warn(
                "Case sharing",
                "hidden",
                "grant View Setup and Configuration",
            ),
            Row::skip("dead-letter queue", "DEAD_LETTER_QUEUE_URL is not set"),
        ]
    }

    #[test]
    fn table_shows_a_symbol_per_row_and_the_fix_under_it() {
        let text = table(&rows());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "✓  login              password grant");
        assert_eq!(lines[1], "✗  Case.Status        lacks \"Open\"");
        assert_eq!(lines[2], "                      fix: add the value");
        assert_eq!(lines[3], "⚠  Case sharing       hidden");
        assert_eq!(
            lines[4],
            "                      fix: grant View Setup and Configuration"
        );
        assert_eq!(
            lines[5],
            "–  dead-letter queue  DEAD_LETTER_QUEUE_URL is not set"
        );
        assert!(
            lines[6].starts_with("4 check(s): 1 ✓, 1 ⚠, 1 ✗, 1 not checked: fix every ✗"),
            "{text}"
        );
        assert_eq!(lines.len(), 7);
    }

    #[test]
    fn a_warning_does_not_fail_the_check() {
        let mut rows = rows();
        rows.remove(1);
        let s = summary(&rows);
        assert!(s.ok);
        assert_eq!((s.pass, s.warn, s.fail, s.skip), (1, 1, 0, 1));
        assert!(table(&rows).ends_with("1 ✓, 1 ⚠, 0 ✗, 1 not checked\n"));
        assert!(!summary(&self::rows()).ok);
    }

    #[test]
    fn json_lines_have_every_row_then_the_summary() {
        let text = json_lines(&rows());
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[1],
            json!({"check": "Case.Status", "status": "fail", "detail": "lacks \"Open\"",
                   "fix": "add the value"})
        );
        assert_eq!(lines[0]["fix"], Value::Null);
        assert_eq!(lines[3]["status"], "skip");
        assert_eq!(
            lines[4],
            json!({"summary": {"pass": 1, "warn": 1, "fail": 1, "skip": 1, "ok": false}})
        );
    }
}
