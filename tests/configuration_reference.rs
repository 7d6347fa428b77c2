//! docs/deploy.md's configuration reference, template.yaml's parameters and what the code reads
//! (`config::variables_read`, the CLI's and the log settings' variables) must agree: every
//! variable and parameter documented once, with the same default and range on every side. And
//! one version number everywhere.
// See: issue "A first deploy that works the first time", item 1.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use ctr_cases::config::{VariableRead, variables_read};
use ctr_cases::stream_scope::{DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE};

fn repo_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Parameters whose template range is deliberately narrower than the variable's, and why.
const NARROWER_IN_TEMPLATE: [(&str, &str); 1] = [(
    "BatchSize",
    "the template stops at 1000 so a batch of ~2 KB CTRs stays under Lambda's 6 MB payload; \
     the CLI reads KINESIS_BATCH_SIZE up to Kinesis's 10000 for stacks deployed otherwise",
)];

/// Variables the functions never read themselves but the docs must still describe.
const READ_BY_OTHERS: [&str; 1] = [
    // glibc reads it at process start.
    "GLIBC_TUNABLES",
];

/// A cell of the docs: `—` (or empty) is none; backticks are dropped.
fn cell(text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() || text == "—" {
        return None;
    }
    Some(text.replace('`', ""))
}

/// A range cell: `min–max` for numbers, or allowed values.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Range {
    Numbers(i64, i64),
    Values(BTreeSet<String>),
}

fn range_cell(text: &str) -> Option<Range> {
    let text = cell(text)?;
    if let Some((min, max)) = text.split_once('–')
        && let (Ok(min), Ok(max)) = (min.trim().parse(), max.trim().parse())
    {
        return Some(Range::Numbers(min, max));
    }
    Some(Range::Values(
        text.split(", ").map(|v| v.trim().to_owned()).collect(),
    ))
}

#[derive(Debug, Clone)]
struct VariableRow {
    parameter: Option<String>,
    default: Option<String>,
    range: Option<Range>,
}

#[derive(Debug, Clone)]
struct ParameterRow {
    default: Option<String>,
    range: Option<Range>,
}

/// The two tables of docs/deploy.md's `## Configuration reference`.
struct Docs {
    variables: BTreeMap<String, VariableRow>,
    parameters: BTreeMap<String, ParameterRow>,
    problems: Vec<String>,
}

const VARIABLE_HEADER: &str = "| variable | parameter | default | range | read by | meaning |";
const PARAMETER_HEADER: &str = "| parameter | default | range | meaning |";

fn table_rows<'a>(section: &'a str, header: &str) -> Vec<Vec<&'a str>> {
    let Some(at) = section.find(header) else {
        return Vec::new();
    };
    section[at..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim()
                .trim_start_matches('|')
                .trim_end_matches('|')
                .split(" | ")
                .collect()
        })
        .collect()
}

fn parse_docs(deploy: &str) -> Docs {
    let mut problems = Vec::new();
    let start = deploy
        .find("\n## Configuration reference")
        .expect("docs/deploy.md has a `## Configuration reference` section");
    let rest = &deploy[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3);
    let section = &rest[..end];
    for header in [VARIABLE_HEADER, PARAMETER_HEADER] {
        if !section.contains(header) {
            problems.push(format!(
                "the configuration reference lacks the table `{header}`"
            ));
        }
    }
    let mut variables = BTreeMap::new();
    for row in table_rows(section, VARIABLE_HEADER) {
        if row.len() != 6 {
            problems.push(format!("variable row with {} cells: {row:?}", row.len()));
            continue;
        }
        let name = cell(row[0]).unwrap_or_default();
        let parsed = VariableRow {
            parameter: cell(row[1]),
            default: cell(row[2]),
            range: range_cell(row[3]),
        };
        if variables.insert(name.clone(), parsed).is_some() {
            problems.push(format!("{name} is documented twice"));
        }
    }
    let mut parameters = BTreeMap::new();
    for row in table_rows(section, PARAMETER_HEADER) {
        if row.len() != 4 {
            problems.push(format!("parameter row with {} cells: {row:?}", row.len()));
            continue;
        }
        let name = cell(row[0]).unwrap_or_default();
        let parsed = ParameterRow {
            default: cell(row[1]),
            range: range_cell(row[2]),
        };
        if parameters.insert(name.clone(), parsed).is_some() {
            problems.push(format!("parameter {name} is documented twice"));
        }
    }
    Docs {
        variables,
        parameters,
        problems,
    }
}

/// One template parameter.
#[derive(Debug, Default, Clone)]
struct Parameter {
    default: Option<String>,
    min: Option<i64>,
    max: Option<i64>,
    allowed: Option<BTreeSet<String>>,
}

impl Parameter {
    fn range(&self) -> Option<Range> {
        match (self.min, self.max, &self.allowed) {
            (Some(min), Some(max), _) => Some(Range::Numbers(min, max)),
            (_, _, Some(values)) => Some(Range::Values(values.clone())),
            _ => None,
        }
    }
}

/// What the tests read from template.yaml.
struct Template {
    parameters: BTreeMap<String, Parameter>,
    /// Each variable the functions get → the lines that set it.
    variables: BTreeMap<String, Vec<String>>,
    /// Each condition → its definition.
    conditions: BTreeMap<String, String>,
}

fn unquote(value: &str) -> String {
    value.trim().trim_matches('"').trim_matches('\'').to_owned()
}

/// The blocks of a top-level key: `  Name:` → its lines.
fn blocks<'a>(template: &'a str, key: &str) -> Vec<(String, Vec<&'a str>)> {
    let mut out: Vec<(String, Vec<&str>)> = Vec::new();
    for line in template
        .lines()
        .skip_while(|l| *l != key)
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' ') || l.starts_with('#'))
    {
        let is_entry = line.starts_with("  ") && !line.starts_with("   ");
        match line.trim_start().split_once(':') {
            Some((name, _)) if is_entry && !name.starts_with('#') && !name.starts_with('-') => {
                out.push((name.to_owned(), vec![line]));
            }
            _ => {
                if let Some(last) = out.last_mut() {
                    last.1.push(line);
                }
            }
        }
    }
    out
}

fn parse_template(template: &str) -> Template {
    let mut parameters = BTreeMap::new();
    for (name, lines) in blocks(template, "Parameters:") {
        let mut parameter = Parameter::default();
        let mut in_allowed_list = false;
        for line in &lines[1..] {
            let trimmed = line.trim();
            if in_allowed_list && let Some(value) = trimmed.strip_prefix("- ") {
                parameter
                    .allowed
                    .get_or_insert_with(BTreeSet::new)
                    .insert(unquote(value));
                continue;
            }
            in_allowed_list = false;
            let Some((key, value)) = trimmed.split_once(':') else {
                continue;
            };
            match key {
                "Default" => parameter.default = Some(unquote(value)),
                "MinValue" => parameter.min = value.trim().parse().ok(),
                "MaxValue" => parameter.max = value.trim().parse().ok(),
                "AllowedValues" if value.trim().is_empty() => in_allowed_list = true,
                "AllowedValues" => {
                    let list = value.trim().trim_start_matches('[').trim_end_matches(']');
                    parameter.allowed = Some(list.split(',').map(unquote).collect());
                }
                _ => {}
            }
        }
        parameters.insert(name, parameter);
    }
    let conditions = blocks(template, "Conditions:")
        .into_iter()
        .map(|(name, lines)| (name, lines.join("\n")))
        .collect();
    let mut variables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut in_variables = None;
    for line in template.lines() {
        let indent = line.len() - line.trim_start().len();
        if line.trim() == "Variables:" || line.trim().starts_with("Variables: #") {
            in_variables = Some(indent);
            continue;
        }
        let Some(block_indent) = in_variables else {
            continue;
        };
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if indent <= block_indent {
            in_variables = None;
            continue;
        }
        if let Some((name, value)) = line.trim().split_once(": ") {
            variables
                .entry(name.to_owned())
                .or_default()
                .push(value.to_owned());
        }
    }
    Template {
        parameters,
        variables,
        conditions,
    }
}

impl Template {
    /// The parameters a variable's lines use, directly or through a condition.
    fn parameters_behind(&self, variable: &str) -> BTreeSet<String> {
        let mut text = self.variables.get(variable).cloned().unwrap_or_default();
        for line in text.clone() {
            for (name, definition) in &self.conditions {
                if line.contains(&format!("!If [{name},")) {
                    text.push(definition.clone());
                }
            }
        }
        let joined = text.join("\n");
        self.parameters
            .keys()
            .filter(|p| {
                joined.contains(&format!("!Ref {p}]"))
                    || joined.contains(&format!("!Ref {p},"))
                    || joined.contains(&format!("!Ref {p}\n"))
                    || joined.ends_with(&format!("!Ref {p}"))
            })
            .cloned()
            .collect()
    }

    /// Whether the template leaves `variable` unset for some value of its parameter (then the
    /// code's default applies, whatever the parameter's own default says).
    fn may_unset(&self, variable: &str) -> bool {
        self.variables
            .get(variable)
            .is_some_and(|lines| lines.iter().any(|l| l.contains("AWS::NoValue")))
    }
}

/// The variables the CLI and the log settings read: `env = "X"` (clap) and
/// `std::env::var("X")` in the CLI, `lookup("X")` in logging.rs.
fn variables_read_elsewhere() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (file, marker) in [
        ("src/bin/cli.rs", "env = \""),
        ("src/bin/cli.rs", "std::env::var(\""),
        ("src/logging.rs", "lookup(\""),
    ] {
        let text = repo_file(file);
        for piece in text.split(marker).skip(1) {
            let name: String = piece
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_' || c.is_ascii_digit())
                .collect();
            if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    names
}

/// A variable's default and numeric range in the code.
type CodeDefault = (Option<String>, Option<(u64, u64)>);

/// Every disagreement between the docs, the template and the code, one line each.
fn mismatches(deploy: &str, template: &str, code: &[VariableRead]) -> Vec<String> {
    let docs = parse_docs(deploy);
    let template = parse_template(template);
    let mut out = docs.problems.clone();
    // What the code reads, with defaults and ranges.
    let mut code: BTreeMap<String, CodeDefault> = code
        .iter()
        .map(|r| (r.name.clone(), (r.default.clone(), r.range)))
        .collect();
    code.insert(
        "KINESIS_BATCH_SIZE".into(),
        (
            Some(DEFAULT_BATCH_SIZE.to_string()),
            Some((1, u64::from(MAX_BATCH_SIZE))),
        ),
    );
    let elsewhere = variables_read_elsewhere();
    for name in code
        .keys()
        .chain(&elsewhere)
        .chain(template.variables.keys())
    {
        if !docs.variables.contains_key(name) {
            out.push(format!("{name} is read or set but not documented"));
        }
    }
    for (name, row) in &docs.variables {
        let known = code.contains_key(name)
            || elsewhere.contains(name)
            || READ_BY_OTHERS.contains(&name.as_str());
        if !known {
            out.push(format!("{name} is documented but nothing reads it"));
        }
        if let Some((default, range)) = code.get(name) {
            if row.default != *default {
                out.push(format!(
                    "{name}: default {:?} in docs, {default:?} in the code",
                    row.default
                ));
            }
            if let Some((min, max)) = range {
                let expected = Range::Numbers(*min as i64, *max as i64);
                if row.range.as_ref() != Some(&expected) {
                    out.push(format!(
                        "{name}: range {:?} in docs, {expected:?} in the code",
                        row.range
                    ));
                }
            }
        }
        let Some(parameter) = &row.parameter else {
            continue;
        };
        let Some(declared) = template.parameters.get(parameter) else {
            out.push(format!(
                "{name}: parameter {parameter} is not in template.yaml"
            ));
            continue;
        };
        if !template.parameters_behind(name).contains(parameter) {
            out.push(format!(
                "{name}: template.yaml does not set it from {parameter}"
            ));
        }
        let default_agrees = declared.default == row.default
            || (declared.default.as_deref() == Some("") && row.default.is_none())
            || (template.may_unset(name)
                && (declared.default.as_deref() == Some("") || row.default.is_none()));
        if !default_agrees {
            out.push(format!(
                "{parameter}: default {:?} in template.yaml, {:?} in docs ({name})",
                declared.default, row.default
            ));
        }
        if let Some(range) = declared.range() {
            let narrower = NARROWER_IN_TEMPLATE.iter().any(|(p, _)| p == parameter);
            let agrees = match (&range, &row.range) {
                (Range::Numbers(min, max), Some(Range::Numbers(doc_min, doc_max))) if narrower => {
                    doc_min <= min && max <= doc_max
                }
                (range, Some(documented)) => range == documented,
                (_, None) => false,
            };
            if !agrees {
                out.push(format!(
                    "{parameter}: range {range:?} in template.yaml, {:?} in docs ({name})",
                    row.range
                ));
            }
        }
    }
    let in_variable_rows: BTreeSet<&String> = docs
        .variables
        .values()
        .filter_map(|r| r.parameter.as_ref())
        .collect();
    for (name, declared) in &template.parameters {
        match (in_variable_rows.contains(name), docs.parameters.get(name)) {
            (false, None) => out.push(format!("parameter {name} is not documented")),
            (true, Some(_)) => out.push(format!("parameter {name} is documented twice")),
            (_, Some(row)) => {
                let default = declared.default.clone().filter(|d| !d.is_empty());
                if row.default != default {
                    out.push(format!(
                        "{name}: default {default:?} in template.yaml, {:?} in docs",
                        row.default
                    ));
                }
                if row.range != declared.range() {
                    out.push(format!(
                        "{name}: range {:?} in template.yaml, {:?} in docs",
                        declared.range(),
                        row.range
                    ));
                }
            }
            (true, None) => {}
        }
    }
    for name in docs.parameters.keys() {
        if !template.parameters.contains_key(name) {
            out.push(format!(
                "parameter {name} is documented but not in template.yaml"
            ));
        }
    }
    out
}

#[test]
fn docs_template_and_code_agree_on_every_setting() {
    let problems = mismatches(
        &repo_file("docs/deploy.md"),
        &repo_file("template.yaml"),
        &variables_read(),
    );
    assert!(
        problems.is_empty(),
        "docs/deploy.md, template.yaml and the code disagree:\n{}",
        problems.join("\n")
    );
}

/// The check fails when one side changes alone: a default or range in the template, the docs
/// or the code.
#[test]
fn a_change_on_one_side_only_is_caught() {
    let deploy = repo_file("docs/deploy.md");
    let template = repo_file("template.yaml");
    let code = variables_read();
    let changed = |problems: Vec<String>, what: &str| {
        assert!(
            problems.iter().any(|p| p.contains(what)),
            "changing {what} on one side went unnoticed: {problems:?}"
        );
    };
    // The template's range.
    let narrowed = template.replacen("MaxValue: 7500", "MaxValue: 7000", 1);
    assert_ne!(
        narrowed, template,
        "template.yaml has FlowTimeoutMs's MaxValue: 7500"
    );
    changed(mismatches(&deploy, &narrowed, &code), "FlowTimeoutMs");
    // The template's default.
    let at = template.find("  ParkAfterHours:").unwrap();
    let mut other_default = template.clone();
    other_default.replace_range(
        at..,
        &template[at..].replacen("Default: 20", "Default: 21", 1),
    );
    changed(mismatches(&deploy, &other_default, &code), "ParkAfterHours");
    // The code's default and range.
    let mut code_changed = code.clone();
    let flow = code_changed
        .iter_mut()
        .find(|r| r.name == "FLOW_TIMEOUT_MS")
        .unwrap();
    flow.default = Some("2500".into());
    changed(
        mismatches(&deploy, &template, &code_changed),
        "FLOW_TIMEOUT_MS",
    );
    let mut code_changed = code.clone();
    let hold = code_changed
        .iter_mut()
        .find(|r| r.name == "OUTAGE_HOLD_MS")
        .unwrap();
    hold.range = Some((0, 600_000));
    changed(
        mismatches(&deploy, &template, &code_changed),
        "OUTAGE_HOLD_MS",
    );
    // A variable the code reads that the docs lose.
    let mut code_changed = code.clone();
    code_changed.push(VariableRead {
        name: "CASE_NEW_SETTING".into(),
        default: None,
        range: None,
    });
    changed(
        mismatches(&deploy, &template, &code_changed),
        "CASE_NEW_SETTING",
    );
    // The docs' default.
    let docs_changed = deploy.replacen("| `PARK_AFTER_HOURS` |", "| `PARK_AFTER_HOURS_X` |", 1);
    assert_ne!(docs_changed, deploy);
    changed(
        mismatches(&docs_changed, &template, &code),
        "PARK_AFTER_HOURS",
    );
}

#[test]
fn one_version_everywhere() {
    let version = env!("CARGO_PKG_VERSION");
    let template = repo_file("template.yaml");
    assert!(
        template.contains(&format!("SemanticVersion: {version}\n")),
        "template.yaml's SemanticVersion is not {version}"
    );
    let changelog = repo_file("CHANGELOG.md");
    let first = changelog
        .lines()
        .find(|l| l.starts_with("## "))
        .expect("CHANGELOG.md has a release heading");
    assert!(
        first.contains(version),
        "CHANGELOG.md's first heading {first:?} is not {version}"
    );
    for file in ["README.md", "docs/deploy.md"] {
        let text = repo_file(file);
        for piece in text.split("version `").skip(1) {
            let named = piece.split('`').next().unwrap_or_default();
            assert_eq!(named, version, "{file} names version {named}");
        }
    }
}
