//! `ctr-cases check` as a child process against the fake org (and moto_server for the
//! dead-letter queue): a row per check, a fix for every ✗, exit status 1 for each broken org and
//! 0 for a good one. The environment is the tests' Lambda environment, whose
//! `SALESFORCE_ORG_CHECK=false` the command ignores.
//! See: issue "Real orgs", items 3 and 4.

mod support;

use std::process::Output;

use serde_json::Value;
use support::fake_salesforce::{
    self, CaseAccess, FakeSalesforce, FieldType, OUTCOME_FIELD, ShareAccess, USER_ID_18,
};
use support::fixtures;
use support::moto::{self, Moto};
use support::process::{self, stdout_json_lines as json_lines};

/// The org's active Case assignment rule (`CASE_ASSIGNMENT_RULES` defaults to on_create).
const RULE: (&str, &str, &str) = (
    "01QFAKE00000001AAA",
    "Dropped calls to the callback queue",
    "00GFAKE00000001AAA",
);

/// Runs `ctr-cases check` with a clean environment: the Lambda's variables for `fake`, AWS
/// pointing at `moto` (if any) only, plus `extra`.
async fn run_check(
    args: &[&str],
    fake: &FakeSalesforce,
    moto: Option<&Moto>,
    extra: &[(&str, &str)],
) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ctr-cases"));
    command
        .arg("check")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(fixtures::fake_env(fake))
        .envs(extra.iter().copied());
    if let Some(moto) = moto {
        command.envs(moto.aws_env());
    }
    command.output().await.expect("the CLI runs")
}

/// `check --json`'s rows (the summary line left out) and its exit status.
async fn check_rows(
    fake: &FakeSalesforce,
    moto: Option<&Moto>,
    extra: &[(&str, &str)],
) -> (Vec<Value>, i32) {
    let output = run_check(&["--json"], fake, moto, extra).await;
    let mut lines = json_lines(&output);
    let summary = lines.pop().expect("a summary line");
    assert!(summary.get("summary").is_some(), "{summary}");
    let code = output.status.code().expect("exited");
    assert_eq!(
        summary["summary"]["ok"],
        code == 0,
        "exit status follows the summary"
    );
    (lines, code)
}

/// The row of `check`.
fn row_of<'a>(rows: &'a [Value], check: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["check"] == check)
        .unwrap_or_else(|| panic!("no row {check} in {rows:#?}"))
}

/// The checks and statuses of `rows`.
fn statuses(rows: &[Value]) -> Vec<(String, String)> {
    rows.iter()
        .map(|r| {
            (
                r["check"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A fake org the default configuration fits, with an active Case assignment rule.
async fn good_org() -> FakeSalesforce {
    let fake = fake_salesforce::start().await;
    fake.org.set_assignment_rule(Some(RULE));
    fake
}

/// (c) A good org and a dead-letter queue that answers: every row ✓, exit 0, nothing written
/// and nothing sent.
#[tokio::test]
async fn a_good_org_passes_every_check_and_exits_zero() {
    let fake = good_org().await;
    let moto = moto::start().await;
    let queue = moto.create_queue("ctr-cases-dead-letters").await;
    let dlq = [("DEAD_LETTER_QUEUE_URL", queue.as_str())];

    let output = run_check(&[], &fake, Some(&moto), &dlq).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    let checks = [
        "login",
        "Case fields",
        "assignment rules",
        "Case sharing",
        "API usage",
        "dead-letter queue",
    ];
    assert_eq!(lines.len(), checks.len() + 1, "{text}");
    for (line, check) in lines.iter().zip(checks) {
        assert!(line.starts_with(&format!("✓  {check} ")), "{check}: {text}");
    }
    assert!(
        lines[0].contains(&format!(
            "password grant, user {USER_ID_18}, instance 127.0.0.1:"
        )),
        "{text}"
    );
    assert!(lines[2].contains(RULE.1), "{text}");
    assert!(lines[4].contains(" of 15000 API calls"), "{text}");
    assert!(lines[5].contains(&queue), "{text}");
    assert!(lines[6].starts_with("6 check(s): 6 ✓, 0 ⚠, 0 ✗"), "{text}");
    assert!(!text.contains("fix:"), "{text}");

    assert_eq!(fake.org.case_count(), 0, "the check writes nothing");
    assert_eq!(
        moto.message_counts(&queue).await,
        (0, 0),
        "and sends nothing"
    );
}

/// (c) Each broken org: exit ≠ 0, and the ✗ row names the field and says what to do.
#[tokio::test]
async fn each_broken_org_fails_with_a_row_naming_the_field_and_the_fix() {
    type Break = fn(&FakeSalesforce);
    let broken: [(&str, Break, &str, &str); 4] = [
        (
            "Case.Status",
            |f| f.org.set_picklist("Status", &["Open", "Closed"], true),
            "without the active value \"New\"",
            "valid values: Open, Closed",
        ),
        (
            "Case.Subject",
            |f| f.org.set_case_field_access("Subject", false, false),
            "read-only for the integration user on create",
            "grant Edit access",
        ),
        (
            "Case.Amazon_Connect_Outcome__c",
            |f| f.org.remove_case_field(OUTCOME_FIELD),
            "missing",
            "deploy it (salesforce/force-app)",
        ),
        (
            "Case.Product__c",
            |f| {
                f.org
                    .add_case_field("Product__c", FieldType::Text(80), true)
            },
            "required on create, and not mapped",
            "add it to CASE_FIELD_MAPPING",
        ),
    ];
    for (check, break_it, detail, fix) in broken {
        let fake = good_org().await;
        break_it(&fake);
        let (rows, code) = check_rows(&fake, None, &[]).await;
        assert_eq!(code, 1, "{check}: {rows:#?}");
        let failed: Vec<&str> = rows
            .iter()
            .filter(|r| r["status"] == "fail")
            .map(|r| r["check"].as_str().unwrap())
            .collect();
        assert_eq!(failed, [check], "{rows:#?}");
        let row = row_of(&rows, check);
        assert!(row["detail"].as_str().unwrap().contains(detail), "{row}");
        assert!(row["fix"].as_str().unwrap().contains(fix), "{row}");
        assert!(
            row["fix"]
                .as_str()
                .unwrap()
                .contains(&check["Case.".len()..]),
            "{row}"
        );

        // The table shows the same ✗ with its fix on the next line.
        let output = run_check(&[], &fake, None, &[]).await;
        assert_eq!(output.status.code(), Some(1));
        let text = String::from_utf8_lossy(&output.stdout);
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with(&format!("✗  {check} ")))
            .unwrap_or_else(|| panic!("{check} in {text}"));
        assert!(lines[at + 1].trim_start().starts_with("fix: "), "{text}");
        assert!(lines[at + 1].contains(fix), "{text}");
    }
}

/// (4) A Private org: outside the shipped sharing rule's group and without Modify All, the
/// integration user cannot edit the Cases an agent or a queue took, so the sharing row fails
/// saying what to grant; with either, it passes.
#[tokio::test]
async fn a_private_org_without_access_fails_the_sharing_row_with_what_to_grant() {
    let fake = good_org().await;
    fake.org.set_case_sharing(CaseAccess::Private);
    let (rows, code) = check_rows(&fake, None, &[]).await;
    assert_eq!(code, 1, "{rows:#?}");
    let sharing = row_of(&rows, "Case sharing");
    assert_eq!(sharing["status"], "fail");
    assert!(
        sharing["detail"].as_str().unwrap().starts_with("Private: "),
        "{sharing}"
    );
    let fix = sharing["fix"].as_str().unwrap();
    assert!(
        fix.contains("permission set Ctr_Cases_Integration"),
        "{fix}"
    );
    assert!(fix.contains("public group"), "{fix}");

    // The shipped sharing rule: the user is in its public group.
    fake.org.set_case_sharing_rule(Some(ShareAccess::Edit));
    let (rows, code) = check_rows(&fake, None, &[]).await;
    assert_eq!(code, 0, "{rows:#?}");
    let sharing = row_of(&rows, "Case sharing");
    assert_eq!(sharing["status"], "pass");
    assert!(
        sharing["detail"]
            .as_str()
            .unwrap()
            .contains("public group \"ctr-cases integration\""),
        "{sharing}"
    );
    fake.org.set_case_sharing_rule(None);

    // View All alone lets it see them, not edit them.
    fake.org.set_case_object_permissions(true, false);
    let (rows, code) = check_rows(&fake, None, &[]).await;
    assert_eq!(
        (row_of(&rows, "Case sharing")["status"].as_str(), code),
        (Some("fail"), 1)
    );

    fake.org.set_case_object_permissions(false, true);
    let (rows, code) = check_rows(&fake, None, &[]).await;
    assert_eq!(code, 0, "{rows:#?}");
    let sharing = row_of(&rows, "Case sharing");
    assert_eq!(sharing["status"], "pass");
    assert!(
        sharing["detail"].as_str().unwrap().contains("Modify All"),
        "{sharing}"
    );

    // A Public Read Only org needs it too.
    fake.org.set_case_sharing(CaseAccess::Read);
    fake.org.set_case_object_permissions(false, false);
    let (rows, code) = check_rows(&fake, None, &[]).await;
    assert_eq!(
        (row_of(&rows, "Case sharing")["status"].as_str(), code),
        (Some("fail"), 1)
    );
}

/// Without View Setup and Configuration the setup-object queries are warnings that say what to
/// grant; nothing else failing, the command exits 0.
#[tokio::test]
async fn without_view_setup_the_setup_rows_warn_and_the_check_passes() {
    let fake = good_org().await;
    fake.org.set_case_sharing(CaseAccess::Private);
    fake.org.set_view_setup(false);
    let (rows, code) = check_rows(&fake, None, &[]).await;
    assert_eq!(code, 0, "{rows:#?}");
    assert_eq!(
        statuses(&rows),
        [
            ("login".to_owned(), "pass".to_owned()),
            ("Case fields".into(), "pass".into()),
            ("assignment rules".into(), "warn".into()),
            ("Case sharing".into(), "warn".into()),
            ("API usage".into(), "pass".into()),
            ("dead-letter queue".into(), "skip".into()),
        ]
    );
    for check in ["assignment rules", "Case sharing"] {
        let fix = row_of(&rows, check)["fix"].as_str().unwrap();
        assert!(
            fix.contains("grant the integration user View Setup and Configuration"),
            "{fix}"
        );
    }
    let output = run_check(&[], &fake, None, &[]).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("⚠  assignment rules "), "{text}");
    assert!(
        text.ends_with("6 check(s): 3 ✓, 2 ⚠, 0 ✗, 1 not checked\n"),
        "{text}"
    );
}

/// The assignment row: on_create without an active rule warns (new Cases go to the Default
/// Case Owner); a configured rule Id the org lacks fails.
#[tokio::test]
async fn the_assignment_setting_is_checked_against_the_orgs_rules() {
    let fake = fake_salesforce::start().await;
    let (rows, code) = check_rows(&fake, None, &[]).await;
    assert_eq!(code, 0, "{rows:#?}");
    let assignment = row_of(&rows, "assignment rules");
    assert_eq!(assignment["status"], "warn");
    assert!(
        assignment["detail"]
            .as_str()
            .unwrap()
            .contains("Default Case Owner")
    );

    let (rows, code) = check_rows(&fake, None, &[("CASE_ASSIGNMENT_RULES", "never")]).await;
    assert_eq!(
        (row_of(&rows, "assignment rules")["status"].as_str(), code),
        (Some("pass"), 0)
    );

    fake.org.set_assignment_rule(Some(RULE));
    let (rows, code) = check_rows(
        &fake,
        None,
        &[("CASE_ASSIGNMENT_RULES", "01QFAKE00000009AAA")],
    )
    .await;
    assert_eq!(code, 1, "{rows:#?}");
    let assignment = row_of(&rows, "assignment rules");
    assert_eq!(assignment["status"], "fail");
    assert!(
        assignment["fix"]
            .as_str()
            .unwrap()
            .contains("CASE_ASSIGNMENT_RULES")
    );
    let (rows, code) = check_rows(&fake, None, &[("CASE_ASSIGNMENT_RULES", RULE.0)]).await;
    assert_eq!(
        (row_of(&rows, "assignment rules")["status"].as_str(), code),
        (Some("pass"), 0)
    );
}

/// `--json` has the same rows, in the same order, as the table.
#[tokio::test]
async fn json_has_the_same_rows_as_the_table() {
    let fake = good_org().await;
    fake.org.set_case_sharing(CaseAccess::Private);
    fake.org.set_picklist("Status", &["Open", "Closed"], true);
    let (rows, code) = check_rows(&fake, None, &[]).await;
    assert_eq!(code, 1);
    let output = run_check(&[], &fake, None, &[]).await;
    let text = String::from_utf8_lossy(&output.stdout);
    let table: Vec<(String, String)> = text
        .lines()
        .filter(|l| ["✓", "⚠", "✗", "–"].iter().any(|s| l.starts_with(s)))
        .map(|l| {
            let (symbol, rest) = l.split_once("  ").unwrap();
            let status = match symbol {
                "✓" => "pass",
                "⚠" => "warn",
                "✗" => "fail",
                _ => "skip",
            };
            let check = rows
                .iter()
                .map(|r| r["check"].as_str().unwrap())
                .find(|c| rest.starts_with(&format!("{c} ")))
                .unwrap_or_else(|| panic!("{l}"));
            (check.to_owned(), status.to_owned())
        })
        .collect();
    assert_eq!(table, statuses(&rows));
    let fixes = rows.iter().filter(|r| r["fix"].is_string()).count();
    assert_eq!(text.matches("fix: ").count(), fixes, "{text}");
    // The second run made more API calls; every other detail is the same.
    for r in rows.iter().filter(|r| r["check"] != "API usage") {
        assert!(text.contains(r["detail"].as_str().unwrap()), "{r}");
    }
}

/// The dead-letter queue row with the operator's AWS credentials: a queue that does not exist
/// fails with the permission to check; unset, the row says so and does not fail.
#[tokio::test]
async fn the_dead_letter_queue_must_answer() {
    let fake = good_org().await;
    let moto = moto::start().await;
    let queue = moto.create_queue("ctr-cases-letters").await;
    let missing = queue.replace("ctr-cases-letters", "no-such-queue");
    let (rows, code) = check_rows(&fake, Some(&moto), &[("DEAD_LETTER_QUEUE_URL", &missing)]).await;
    assert_eq!(code, 1, "{rows:#?}");
    let dlq = row_of(&rows, "dead-letter queue");
    assert_eq!(dlq["status"], "fail");
    assert!(
        dlq["detail"].as_str().unwrap().contains("no-such-queue"),
        "{dlq}"
    );
    assert!(
        dlq["fix"]
            .as_str()
            .unwrap()
            .contains("sqs:GetQueueAttributes"),
        "{dlq}"
    );

    moto.send_message(&queue, "a letter").await;
    let (rows, code) = check_rows(&fake, Some(&moto), &[("DEAD_LETTER_QUEUE_URL", &queue)]).await;
    assert_eq!(code, 0, "{rows:#?}");
    let dlq = row_of(&rows, "dead-letter queue");
    assert_eq!(dlq["status"], "pass");
    assert!(
        dlq["detail"]
            .as_str()
            .unwrap()
            .contains("1 letter(s) waiting"),
        "{dlq}"
    );
    assert_eq!(
        moto.message_counts(&queue).await,
        (1, 0),
        "nothing sent or received"
    );

    let (rows, _) = check_rows(&fake, None, &[]).await;
    assert_eq!(row_of(&rows, "dead-letter queue")["status"], "skip");
}

/// Refused credentials: the login row fails with the fix, the org rows are not checked.
#[tokio::test]
async fn refused_credentials_fail_the_login_and_skip_the_org() {
    let fake = good_org().await;
    fake.org.reject_credentials(true);
    let (rows, code) = check_rows(&fake, None, &[]).await;
    assert_eq!(code, 1);
    let login = row_of(&rows, "login");
    assert_eq!(login["status"], "fail");
    assert!(
        login["fix"].as_str().unwrap().contains("invalid_grant"),
        "{login}"
    );
    for check in [
        "Case fields",
        "assignment rules",
        "Case sharing",
        "API usage",
    ] {
        assert_eq!(row_of(&rows, check)["status"], "skip", "{check}");
    }
    assert_eq!(fake.org.api_calls(), 0);
}

/// A configuration the Lambda would refuse is one ✗ row naming the variable.
#[tokio::test]
async fn an_invalid_configuration_is_a_failed_row() {
    let fake = good_org().await;
    let (rows, code) = check_rows(&fake, None, &[("SALESFORCE_API_VERSION", "62")]).await;
    assert_eq!(code, 1);
    assert_eq!(
        statuses(&rows),
        [("configuration".to_owned(), "fail".to_owned())]
    );
    assert!(
        rows[0]["fix"]
            .as_str()
            .unwrap()
            .contains("SALESFORCE_API_VERSION")
    );
    assert_eq!(fake.org.token_requests(), 0);
}

#[tokio::test]
async fn help_explains_the_flag_with_an_example() {
    let help = tokio::process::Command::new(env!("CARGO_BIN_EXE_ctr-cases"))
        .args(["check", "--help"])
        .env_clear()
        .output()
        .await
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    process::assert_each_flag_has_an_example(&text, &["--json"], 4);
    assert!(text.contains("View Setup and Configuration"), "{text}");
}
