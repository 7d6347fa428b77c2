//! `ctr-cases check`: the doctor a Salesforce admin runs before enabling the trigger. With the
//! Lambda's configuration it signs in as the integration user, runs the org check the Lambda runs
//! ([`crate::salesforce::preflight`]), and looks at what the Lambda cannot see for itself: the
//! assignment rule setting against the org's rules, the Case sharing default against the shipped
//! sharing rule's group and the user's object permissions, API usage, and whether the dead-letter
//! queue answers. One [`Row`] per check ([`rows`] shows them).
//!
//! The calls are made here ([`Doctor::run`]); what each answer means is decided by the pure
//! functions below it, tested without a server. Read-only: no Case is written and no message is
//! sent (a test message would fire the dead-letter alarm). A query the integration user lacks a
//! permission for (setup objects need View Setup and Configuration) is a warning that says what
//! to grant, not a failure. No token, secret or record value is printed.

pub mod rows;

use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata as _};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

pub use rows::{Row, Status, Summary};

use crate::retry::Deadline;
use crate::salesforce::preflight::{self, CaseSchema, OrgRequirements, Problem, ProblemKind};
use crate::salesforce::{AssignmentRules, Error, Login, SalesforceClient};

/// The Case assignment rules of the org (active or not).
const ASSIGNMENT_RULES_QUERY: &str =
    "SELECT Id, Name, Active FROM AssignmentRule WHERE SobjectType = 'Case'";
/// The org-wide default for Cases.
const SHARING_QUERY: &str = "SELECT DefaultCaseAccess FROM Organization";
/// The API name (`DeveloperName`) of the public group the shipped sharing rule shares Cases
/// with (salesforce/force-app/main/default/groups).
pub const SHARING_GROUP: &str = "Ctr_Cases_Integration";
/// That group's label, as Setup shows it.
pub const SHARING_GROUP_LABEL: &str = "ctr-cases integration";
/// What to grant when the integration user cannot edit Cases it no longer owns.
const GRANT: &str = "add the integration user to the public group \"ctr-cases integration\" \
     (Setup > Public Groups), which the shipped criteria-based sharing rule gives Read/Write on \
     every Case with a ContactId (deploy salesforce/force-app if the group is missing), and \
     assign it permission set Ctr_Cases_Integration; or give it Modify All on Case. Otherwise a \
     later version of a contact whose Case an agent or a queue took is dead-lettered \
     (case_not_accessible)";
/// The fix for a query of a setup object the integration user may not read.
const VIEW_SETUP: &str = "grant the integration user View Setup and Configuration to see this \
     (or check it yourself in Setup)";

/// The dead-letter queue to probe, with the operator's SQS client.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetterQueue<'a> {
    /// An SQS client with the operator's credentials.
    pub sqs: &'a aws_sdk_sqs::Client,
    /// `DEAD_LETTER_QUEUE_URL`.
    pub url: &'a str,
}

/// Everything a check run needs: the Lambda's Salesforce client (its credentials and settings),
/// what the mapping needs from the org, and the dead-letter queue if one is configured.
#[derive(Debug, Clone, Copy)]
pub struct Doctor<'a> {
    /// The Lambda's Salesforce client: signs in as the integration user.
    pub salesforce: &'a SalesforceClient,
    /// What the configuration writes, checked whatever `SALESFORCE_ORG_CHECK` says.
    pub requirements: &'a OrgRequirements,
    /// `None`: `DEAD_LETTER_QUEUE_URL` is not set.
    pub dead_letter_queue: Option<DeadLetterQueue<'a>>,
    /// When to stop waiting for answers.
    pub deadline: Deadline,
}

impl Doctor<'_> {
    /// Runs every check, in order: login, the Case fields, assignment rules, Case sharing, API
    /// usage, the dead-letter queue. Never fails: a check that cannot be made is a row too.
    pub async fn run(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        match self.salesforce.login(self.deadline).await {
            Ok(login) => {
                rows.push(login_row(&login));
                rows.extend(self.org_rows(&login).await);
            }
            Err(e) => {
                rows.push(Row::fail(
                    "login",
                    "could not sign in to Salesforce",
                    e.to_string(),
                ));
                for check in [
                    "Case fields",
                    "assignment rules",
                    "Case sharing",
                    "API usage",
                ] {
                    rows.push(Row::skip(check, "not checked: the sign-in failed"));
                }
            }
        }
        rows.push(match self.dead_letter_queue {
            None => Row::skip(
                "dead-letter queue",
                "DEAD_LETTER_QUEUE_URL is not set: records Salesforce rejects are reported for \
                 retry instead of dead-lettered",
            ),
            Some(queue) => dead_letter_queue_row(queue.url, probe_queue(queue).await),
        });
        rows
    }

    /// The rows that need a signed-in client.
    async fn org_rows(&self, login: &Login) -> Vec<Row> {
        let client = self.salesforce;
        let mut rows = case_rows(self.requirements, client.describe_case(self.deadline).await);
        let rules = client
            .query(ASSIGNMENT_RULES_QUERY, self.deadline)
            .await
            .map(|records| records.iter().map(AssignmentRule::from_record).collect());
        rows.push(assignment_row(&client.settings().assignment, rules));
        rows.push(self.sharing(login).await);
        rows.push(api_usage_row(client.api_usage()));
        rows
    }

    /// The Case sharing default and, when it is Private or Read, the two ways the integration
    /// user can still edit Cases it no longer owns: membership of the shipped sharing rule's
    /// public group, and Modify All on Case.
    async fn sharing(&self, login: &Login) -> Row {
        let client = self.salesforce;
        let access = client
            .query(SHARING_QUERY, self.deadline)
            .await
            .map(|records| {
                records
                    .first()
                    .and_then(|r| r.get("DefaultCaseAccess"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            });
        if !matches!(access.as_deref(), Ok("None" | "Read")) {
            return sharing_row(access, None);
        }
        let Some(user) = &login.user_id else {
            return sharing_row(access, Some(Grants::UserUnknown));
        };
        let in_group = client
            .query(&group_query(user), self.deadline)
            .await
            .map(|records| !records.is_empty());
        let permissions = client
            .query(&permissions_query(user), self.deadline)
            .await
            .map(|records| CasePermissions::from_records(&records));
        sharing_row(
            access,
            Some(Grants::Read {
                in_group,
                permissions,
            }),
        )
    }
}

/// Whether the integration user is a direct member of the public group the shipped sharing
/// rule shares Cases with (salesforce/force-app: groups/Ctr_Cases_Integration). `user_id` must
/// be a User Id ([`crate::salesforce::wire::TokenResponse::user_id`] checks that), so it cannot
/// change the query.
fn group_query(user_id: &str) -> String {
    format!(
        "SELECT Id FROM GroupMember WHERE UserOrGroupId = '{user_id}' AND GroupId IN (SELECT Id \
         FROM Group WHERE DeveloperName = '{SHARING_GROUP}')"
    )
}

/// The integration user's Case object permissions, from every permission set assigned to it
/// (its profile's included). `user_id` as in [`group_query`].
fn permissions_query(user_id: &str) -> String {
    format!(
        "SELECT PermissionsViewAllRecords, PermissionsModifyAllRecords FROM ObjectPermissions \
         WHERE SobjectType = 'Case' AND ParentId IN (SELECT PermissionSetId FROM \
         PermissionSetAssignment WHERE AssigneeId = '{user_id}')"
    )
}

/// `GetQueueAttributes` on the queue: how many messages it holds. Never sends a message.
async fn probe_queue(queue: DeadLetterQueue<'_>) -> Result<Option<u64>, String> {
    let answer = queue
        .sqs
        .get_queue_attributes()
        .queue_url(queue.url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await;
    match answer {
        Ok(output) => Ok(output
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|n| n.parse().ok())),
        Err(e) => Err(match (e.code(), e.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_owned(),
            _ => DisplayErrorContext(&e).to_string(),
        }),
    }
}

/// One AssignmentRule record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AssignmentRule {
    id: String,
    name: String,
    active: bool,
}

impl AssignmentRule {
    fn from_record(record: &Value) -> Self {
        let text = |key: &str| {
            record
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        AssignmentRule {
            id: text("Id"),
            name: text("Name"),
            active: record
                .get("Active")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }
    }
}

/// View All and Modify All on Case, from any of the user's permission sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CasePermissions {
    view_all: bool,
    modify_all: bool,
}

impl CasePermissions {
    fn from_records(records: &[Value]) -> Self {
        let any = |key: &str| {
            records
                .iter()
                .any(|r| r.get(key).and_then(Value::as_bool) == Some(true))
        };
        CasePermissions {
            view_all: any("PermissionsViewAllRecords"),
            modify_all: any("PermissionsModifyAllRecords"),
        }
    }
}

/// What lets the integration user edit Cases it no longer owns, in a Private or Read org.
#[derive(Debug)]
enum Grants {
    /// The token answer named no user, so there is nothing to query.
    UserUnknown,
    /// What the two queries answered.
    Read {
        /// Whether it is in the shipped sharing rule's public group.
        in_group: Result<bool, Error>,
        /// Its View All / Modify All on Case.
        permissions: Result<CasePermissions, Error>,
    },
}

/// Whether a query failed because the user may not read that object: Salesforce answers
/// `INSUFFICIENT_ACCESS` for setup objects without View Setup and Configuration, and
/// `INVALID_TYPE` for an object outside the user's permissions.
fn hidden_from_user(error: &Error) -> bool {
    matches!(error, Error::Api { status, error_code, .. }
        if *status != 200 && matches!(error_code.as_str(), "INSUFFICIENT_ACCESS" | "INVALID_TYPE"))
}

/// The login row: the grant, the user and the instance host (no token).
fn login_row(login: &Login) -> Row {
    let instance = url::Url::parse(&login.instance_url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| u.port().map_or(h.to_owned(), |p| format!("{h}:{p}")))
        })
        .unwrap_or_else(|| login.instance_url.clone());
    let user = login
        .user_id
        .as_deref()
        .unwrap_or("unknown (the token answer named no user)");
    Row::pass(
        "login",
        format!(
            "{} grant, user {user}, instance {instance}",
            login.grant.name()
        ),
    )
}

/// The org check's rows: one ✓ row when the org fits, else one ✗ row per problem, named after
/// its field.
fn case_rows(requirements: &OrgRequirements, schema: Result<CaseSchema, Error>) -> Vec<Row> {
    let schema = match schema {
        Ok(schema) => schema,
        Err(e) => {
            return vec![Row::fail(
                "Case fields",
                format!("the integration user cannot describe Case ({e})"),
                "give it API Enabled and Read, Create and Edit on Case (permission set \
                 Ctr_Cases_Integration)",
            )];
        }
    };
    let problems = preflight::check(requirements, &schema);
    if problems.is_empty() {
        // The mapped fields, the external id and version fields, and the customer links.
        let links = if requirements.links_customers { 2 } else { 0 };
        let mapped = requirements.fields.len() + 2 + links;
        return vec![Row::pass(
            "Case fields",
            format!(
                "the org takes all {mapped} fields the configuration writes ({} and {} included)",
                requirements.external_id_field, requirements.version_field
            ),
        )];
    }
    problems.iter().map(problem_row).collect()
}

/// A ✗ row for one org check problem: what is wrong in a few words, and the problem's own
/// sentence (what to do) as the fix.
fn problem_row(problem: &Problem) -> Row {
    let detail = match &problem.kind {
        ProblemKind::Missing => "missing, or hidden by field-level security".to_owned(),
        ProblemKind::NotCreateable => "read-only for the integration user on create".to_owned(),
        ProblemKind::NotUpdateable => {
            "kept current but read-only for the integration user on update".to_owned()
        }
        ProblemKind::WrongType { expected, found } => {
            format!("a {found} field; it must be {expected}")
        }
        ProblemKind::NotUniqueExternalId => "not a Unique External ID field".to_owned(),
        ProblemKind::PicklistValue { value, .. } => {
            format!("restricted picklist without the active value \"{value}\"")
        }
        ProblemKind::RequiredNotMapped => "required on create, and not mapped".to_owned(),
        ProblemKind::RecordTypeUnavailable { id, .. } => {
            format!("record type {id} not available to the integration user")
        }
    };
    Row::fail(
        format!("Case.{}", problem.field),
        detail,
        problem.to_string(),
    )
}

/// The assignment rule setting against the org's Case assignment rules.
fn assignment_row(setting: &AssignmentRules, rules: Result<Vec<AssignmentRule>, Error>) -> Row {
    const CHECK: &str = "assignment rules";
    let rules = match rules {
        Ok(rules) => rules,
        Err(e) if hidden_from_user(&e) => {
            return Row::warn(
                CHECK,
                format!(
                    "CASE_ASSIGNMENT_RULES={setting}; the org's Case assignment rules are hidden \
                     from the integration user ({})",
                    e.code()
                ),
                VIEW_SETUP,
            );
        }
        Err(e) => {
            return Row::fail(
                CHECK,
                "could not read the org's Case assignment rules",
                e.to_string(),
            );
        }
    };
    let active = rules.iter().find(|r| r.active);
    match (setting, active) {
        (AssignmentRules::OnCreate, Some(rule)) => Row::pass(
            CHECK,
            format!(
                "on_create: the active rule \"{}\" ({}) routes each new Case; no rule runs on \
                 updates",
                rule.name, rule.id
            ),
        ),
        (AssignmentRules::OnCreate, None) => Row::warn(
            CHECK,
            "on_create, and the org has no active Case assignment rule: each new Case goes to \
             the Default Case Owner (Support Settings)",
            "activate a Case assignment rule, or set CASE_ASSIGNMENT_RULES=never to keep new \
             Cases with the integration user (or the mapping's OwnerId)",
        ),
        (AssignmentRules::Never, active) => Row::pass(
            CHECK,
            format!(
                "never: no rule runs; a new Case belongs to the mapping's OwnerId or the \
                 integration user{}",
                active.map_or(String::new(), |r| format!(
                    " (the org's active rule \"{}\" is not used)",
                    r.name
                ))
            ),
        ),
        (AssignmentRules::Rule(id), _) => {
            match rules.iter().find(|r| preflight::same_id(&r.id, id)) {
                Some(rule) => Row::pass(
                    CHECK,
                    format!(
                        "{id}: the rule \"{}\" routes each new Case{}; no rule runs on updates",
                        rule.name,
                        if rule.active {
                            ""
                        } else {
                            " (inactive, run by Id)"
                        }
                    ),
                ),
                None => Row::fail(
                    CHECK,
                    format!(
                        "CASE_ASSIGNMENT_RULES names {id}, which is not a Case assignment rule \
                         of this org"
                    ),
                    "set CASE_ASSIGNMENT_RULES to the Id of a Case assignment rule (Setup > \
                     Case Assignment Rules), on_create or never",
                ),
            }
        }
    }
}

/// The Case sharing default and whether the integration user can see and edit Cases it no
/// longer owns (an agent or a queue took them).
fn sharing_row(access: Result<String, Error>, grants: Option<Grants>) -> Row {
    const CHECK: &str = "Case sharing";
    let access = match access {
        Ok(access) => access,
        Err(e) if hidden_from_user(&e) => {
            return Row::warn(
                CHECK,
                format!(
                    "the org-wide default for Cases is hidden from the integration user ({})",
                    e.code()
                ),
                VIEW_SETUP,
            );
        }
        Err(e) => {
            return Row::fail(
                CHECK,
                "could not read the org-wide default for Cases",
                e.to_string(),
            );
        }
    };
    let default = match access.as_str() {
        "Edit" => "Public Read/Write",
        "ReadEditTransfer" => "Public Read/Write/Transfer",
        "Read" => "Public Read Only",
        "None" => "Private",
        _ => {
            return Row::warn(
                CHECK,
                format!(
                    "the org-wide default for Cases is \"{access}\", a value ctr-cases does not \
                     know"
                ),
                format!(
                    "make sure the integration user can read and edit Cases it does not own: \
                     {GRANT}"
                ),
            );
        }
    };
    let (in_group, permissions) = match grants {
        None => {
            return Row::pass(
                CHECK,
                format!("{default}: the integration user edits Cases it does not own"),
            );
        }
        Some(Grants::UserUnknown) => {
            return Row::warn(
                CHECK,
                format!(
                    "{default}; the token answer named no user, so its group and Case \
                     permissions were not read"
                ),
                format!("make sure the integration user can edit Cases it does not own: {GRANT}"),
            );
        }
        Some(Grants::Read {
            in_group,
            permissions,
        }) => (in_group, permissions),
    };
    if in_group.as_ref().is_ok_and(|yes| *yes) {
        return Row::pass(
            CHECK,
            format!(
                "{default}, and the integration user is in the public group \"{SHARING_GROUP_LABEL}\", \
                 which the shipped sharing rule gives Read/Write on every Case with a ContactId"
            ),
        );
    }
    if permissions.as_ref().is_ok_and(|p| p.modify_all) {
        return Row::pass(
            CHECK,
            format!(
                "{default}, and the integration user has Modify All on Case: it sees and edits \
                 Cases it no longer owns"
            ),
        );
    }
    match (in_group, permissions) {
        (Ok(_), Ok(CasePermissions { view_all, .. })) => {
            let seen = if view_all {
                "View All lets it see them, but it has no Modify All on Case"
            } else {
                "no View All or Modify All on Case"
            };
            Row::fail(
                CHECK,
                format!(
                    "{default}: the integration user cannot edit Cases it no longer owns (not in \
                     the public group \"{SHARING_GROUP_LABEL}\"; {seen})"
                ),
                GRANT,
            )
        }
        (Err(e), _) | (_, Err(e)) if hidden_from_user(&e) => Row::warn(
            CHECK,
            format!(
                "{default}; the integration user's groups or Case permissions are hidden from it \
                 ({})",
                e.code()
            ),
            format!("{VIEW_SETUP}; unless it can already edit Cases it does not own: {GRANT}"),
        ),
        (Err(e), _) | (_, Err(e)) => Row::fail(
            CHECK,
            format!("{default}; could not read the integration user's groups or Case permissions"),
            e.to_string(),
        ),
    }
}

/// API usage against the daily limit, from the last `Sforce-Limit-Info` header.
fn api_usage_row(usage: Option<(u64, u64)>) -> Row {
    const CHECK: &str = "API usage";
    let Some((used, max)) = usage else {
        return Row::skip(CHECK, "not known: no answer carried Sforce-Limit-Info");
    };
    let percent = (used * 100).checked_div(max).unwrap_or(100);
    let detail = format!("{used} of {max} API calls ({percent}%) used in the last 24 hours");
    if used >= max {
        Row::fail(
            CHECK,
            format!("{detail}: the daily limit is reached, no Case can be written"),
            "wait for the rolling 24-hour window to free calls, find what else uses the API \
             (Setup > System Overview), or ask Salesforce for a higher limit",
        )
    } else if percent >= 90 {
        Row::warn(
            CHECK,
            detail,
            "find what else uses the API (Setup > System Overview) before the limit stops Case \
             writes; ctr-cases needs about 1 call per 200 new Cases",
        )
    } else {
        Row::pass(CHECK, detail)
    }
}

/// The dead-letter queue row from a `GetQueueAttributes` answer (messages waiting, if said).
fn dead_letter_queue_row(url: &str, answer: Result<Option<u64>, String>) -> Row {
    const CHECK: &str = "dead-letter queue";
    match answer {
        Ok(waiting) => Row::pass(
            CHECK,
            match waiting {
                Some(0) | None => format!("{url} answers"),
                Some(n) => format!(
                    "{url} answers; {n} letter(s) waiting (ctr-cases redrive --queue \"$DLQ\")"
                ),
            },
        ),
        Err(e) => Row::fail(
            CHECK,
            format!("{url} did not answer GetQueueAttributes ({e})"),
            "check DEAD_LETTER_QUEUE_URL (the stack's dead-letter queue URL) and the Region, and \
             that your AWS credentials allow sqs:GetQueueAttributes on the queue",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::{FieldUse, WriteMode};
    use crate::salesforce::Grant;
    use serde_json::json;

    fn api_error(status: u16, code: &str) -> Error {
        Error::Api {
            status,
            error_code: code.into(),
            message: "m".into(),
            fields: vec![],
        }
    }

    fn rule(id: &str, name: &str, active: bool) -> AssignmentRule {
        AssignmentRule {
            id: id.into(),
            name: name.into(),
            active,
        }
    }

    #[test]
    fn login_row_names_grant_user_and_host_only() {
        let row = login_row(&Login {
            grant: Grant::JwtBearer,
            user_id: Some("0055e000001AbCdAAK".into()),
            instance_url: "https://acme.my.salesforce.com".into(),
        });
        assert_eq!(row.status, Status::Pass);
        assert_eq!(
            row.detail,
            "jwt_bearer grant, user 0055e000001AbCdAAK, instance acme.my.salesforce.com"
        );
    }

    #[test]
    fn org_check_problems_become_one_failed_row_per_field() {
        let requirements = OrgRequirements {
            external_id_field: "Ext__c".into(),
            version_field: "Version__c".into(),
            fields: vec![FieldUse {
                name: "Status".into(),
                mode: WriteMode::OnCreate,
                fixed_values: Some(vec!["Open".into()]),
            }],
            links_customers: false,
        };
        let describe = json!({"fields": [
            {"name": "Ext__c", "type": "string", "createable": true, "updateable": true,
             "unique": true, "externalId": true},
            {"name": "Status", "type": "picklist", "createable": true, "updateable": true,
             "restrictedPicklist": true, "picklistValues": [{"value": "New", "active": true}]}
        ]});
        let schema = CaseSchema::parse(describe.to_string().as_bytes()).unwrap();
        let rows = case_rows(&requirements, Ok(schema));
        let checks: Vec<(&str, Status)> =
            rows.iter().map(|r| (r.check.as_str(), r.status)).collect();
        assert_eq!(
            checks,
            [
                ("Case.Version__c", Status::Fail),
                ("Case.Status", Status::Fail)
            ]
        );
        assert!(rows[1].detail.contains("\"Open\""), "{:?}", rows[1]);
        assert!(rows[1].fix.as_deref().unwrap().contains("CASE_TEMPLATES"));
        let refused = case_rows(&requirements, Err(api_error(403, "INSUFFICIENT_ACCESS")));
        assert_eq!(refused[0].status, Status::Fail);
        assert!(
            refused[0]
                .fix
                .as_deref()
                .unwrap()
                .contains("Ctr_Cases_Integration")
        );
    }

    #[test]
    fn assignment_setting_is_checked_against_the_orgs_rules() {
        let rules = || {
            Ok(vec![
                rule("01Q000000000001AAA", "Callbacks", true),
                rule("01Q000000000002AAA", "Old", false),
            ])
        };
        let row = assignment_row(&AssignmentRules::OnCreate, rules());
        assert_eq!(row.status, Status::Pass);
        assert!(row.detail.contains("\"Callbacks\""), "{row:?}");
        let row = assignment_row(&AssignmentRules::OnCreate, Ok(vec![]));
        assert_eq!(row.status, Status::Warn);
        assert!(row.fix.unwrap().contains("CASE_ASSIGNMENT_RULES=never"));
        let row = assignment_row(&AssignmentRules::Never, rules());
        assert_eq!(row.status, Status::Pass);
        assert!(row.detail.contains("not used"), "{row:?}");
        let by_id = AssignmentRules::Rule("01Q000000000002".into());
        let row = assignment_row(&by_id, rules());
        assert_eq!(
            row.status,
            Status::Pass,
            "15 and 18 characters name one rule"
        );
        assert!(row.detail.contains("inactive"), "{row:?}");
        let unknown = AssignmentRules::Rule("01Q000000000009AAA".into());
        assert_eq!(assignment_row(&unknown, rules()).status, Status::Fail);
    }

    /// What the two queries of a Private or Read org answered.
    fn grants(
        in_group: Result<bool, Error>,
        permissions: Result<(bool, bool), Error>,
    ) -> Option<Grants> {
        Some(Grants::Read {
            in_group,
            permissions: permissions.map(|(view_all, modify_all)| CasePermissions {
                view_all,
                modify_all,
            }),
        })
    }

    #[test]
    fn a_hidden_setup_object_is_a_warning_saying_what_to_grant() {
        for code in ["INVALID_TYPE", "INSUFFICIENT_ACCESS"] {
            let row = assignment_row(&AssignmentRules::OnCreate, Err(api_error(400, code)));
            assert_eq!(row.status, Status::Warn, "{code}");
            assert!(row.fix.unwrap().contains("View Setup and Configuration"));
            for hidden in [
                grants(Err(api_error(400, code)), Ok((false, false))),
                grants(Ok(false), Err(api_error(400, code))),
            ] {
                let row = sharing_row(Ok("None".into()), hidden);
                assert_eq!(row.status, Status::Warn, "{code}");
                assert!(row.fix.unwrap().contains("View Setup and Configuration"));
            }
        }
        let outage = || Error::NotSalesforce {
            status: 502,
            code: "HTTP_502".into(),
        };
        let row = assignment_row(&AssignmentRules::OnCreate, Err(outage()));
        assert_eq!(row.status, Status::Fail);
        let row = sharing_row(Ok("None".into()), grants(Ok(false), Err(outage())));
        assert_eq!(row.status, Status::Fail);
    }

    #[test]
    fn a_private_org_needs_the_sharing_rules_group_or_modify_all() {
        assert_eq!(sharing_row(Ok("Edit".into()), None).status, Status::Pass);
        assert_eq!(
            sharing_row(Ok("ReadEditTransfer".into()), None).status,
            Status::Pass
        );
        for access in ["None", "Read"] {
            let row = sharing_row(Ok(access.into()), grants(Ok(true), Ok((false, false))));
            assert_eq!(row.status, Status::Pass, "{access}");
            assert!(row.detail.contains("public group"), "{row:?}");
            let row = sharing_row(Ok(access.into()), grants(Ok(false), Ok((true, true))));
            assert_eq!(row.status, Status::Pass, "{access}");
            assert!(row.detail.contains("Modify All"), "{row:?}");
            for view_all in [false, true] {
                let row = sharing_row(Ok(access.into()), grants(Ok(false), Ok((view_all, false))));
                assert_eq!(row.status, Status::Fail, "{access} {view_all}");
                let fix = row.fix.unwrap();
                assert!(
                    fix.contains("public group \"ctr-cases integration\"")
                        && fix.contains("Ctr_Cases_Integration"),
                    "{fix}"
                );
            }
        }
        let row = sharing_row(Ok("None".into()), grants(Ok(false), Ok((false, false))));
        assert!(row.detail.starts_with("Private:"), "{row:?}");
        // Membership answers even when the permissions cannot be read.
        let hidden = Err(api_error(400, "INVALID_TYPE"));
        let row = sharing_row(Ok("None".into()), grants(Ok(true), hidden));
        assert_eq!(row.status, Status::Pass);
        let row = sharing_row(Ok("None".into()), Some(Grants::UserUnknown));
        assert_eq!(row.status, Status::Warn);
    }

    #[test]
    fn permissions_come_from_any_assigned_permission_set() {
        let records = [
            json!({"PermissionsViewAllRecords": false, "PermissionsModifyAllRecords": false}),
            json!({"PermissionsViewAllRecords": true, "PermissionsModifyAllRecords": true}),
        ];
        let all = CasePermissions {
            view_all: true,
            modify_all: true,
        };
        assert_eq!(CasePermissions::from_records(&records), all);
        let none = CasePermissions {
            view_all: false,
            modify_all: false,
        };
        assert_eq!(CasePermissions::from_records(&[]), none);
    }

    #[test]
    fn api_usage_fails_at_the_limit_and_warns_near_it() {
        assert_eq!(api_usage_row(Some((10, 15_000))).status, Status::Pass);
        assert_eq!(api_usage_row(Some((13_500, 15_000))).status, Status::Warn);
        let row = api_usage_row(Some((15_000, 15_000)));
        assert_eq!(row.status, Status::Fail);
        assert!(
            row.detail.starts_with("15000 of 15000 API calls (100%)"),
            "{row:?}"
        );
        assert_eq!(api_usage_row(None).status, Status::Skip);
    }

    #[test]
    fn dead_letter_queue_errors_say_which_permission_to_check() {
        let url = "https://sqs.eu-west-1.amazonaws.com/123456789012/dlq";
        let row = dead_letter_queue_row(url, Ok(Some(3)));
        assert_eq!(row.status, Status::Pass);
        assert!(row.detail.contains("3 letter(s) waiting"));
        let row = dead_letter_queue_row(url, Err("AccessDenied: not allowed".into()));
        assert_eq!(row.status, Status::Fail);
        assert!(row.detail.contains("AccessDenied"));
        assert!(row.fix.unwrap().contains("sqs:GetQueueAttributes"));
    }
}
