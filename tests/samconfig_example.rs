//! `samconfig.example.toml`, the quickstart's `sam deploy --config-file` example: read the way
//! SAM reads it (TOML, then `parameter_overrides` split as a shell would; Python's `tomllib` and
//! `shlex`), every override names a template parameter and the JSON setting arrives intact.
// See: issue "A first deploy that works the first time", item 2.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

fn repo_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// The deploy section of `path` as SAM sees it: `parameter_overrides` split into key → value
/// by `shlex`, plus the other deploy settings.
fn read_as_sam_does(path: &Path) -> (BTreeMap<String, String>, Value) {
    const SCRIPT: &str = r#"
import json, shlex, sys, tomllib
with open(sys.argv[1], "rb") as f:
    config = tomllib.load(f)
deploy = config["default"]["deploy"]["parameters"]
overrides = {}
for token in shlex.split(deploy["parameter_overrides"]):
    key, sep, value = token.partition("=")
    if not sep or key in overrides:
        sys.exit(f"not a single Key=Value: {token!r}")
    overrides[key] = value
print(json.dumps({"overrides": overrides, "deploy": deploy,
                  "stack_name": config["default"]["global"]["parameters"]["stack_name"]}))
"#;
    let output = std::process::Command::new("python3")
        .args(["-c", SCRIPT, path.to_str().unwrap()])
        .output()
        .expect("python3 (3.11 or later, for tomllib) runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Value = serde_json::from_slice(&output.stdout).unwrap();
    let overrides = serde_json::from_value(read["overrides"].clone()).unwrap();
    (overrides, read)
}

/// The names under the template's top-level `Parameters:` key.
fn template_parameters() -> Vec<String> {
    let template = std::fs::read_to_string(repo_file("template.yaml")).unwrap();
    template
        .lines()
        .skip_while(|l| *l != "Parameters:")
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' ') || l.starts_with('#'))
        .filter_map(|l| {
            let name = l.strip_prefix("  ")?.strip_suffix(':')?;
            name.chars()
                .all(|c| c.is_ascii_alphanumeric())
                .then(|| name.to_owned())
        })
        .collect()
}

#[test]
fn every_override_is_a_template_parameter() {
    let parameters = template_parameters();
    assert!(
        parameters.len() > 30 && parameters.contains(&"KinesisStreamArn".to_owned()),
        "{parameters:?}"
    );
    let (overrides, read) = read_as_sam_does(&repo_file("samconfig.example.toml"));
    for key in overrides.keys() {
        assert!(parameters.contains(key), "{key} is not in template.yaml");
    }
    for key in [
        "KinesisStreamArn",
        "StreamTriggerEnabled",
        "SalesforceSecretArn",
        "ConnectInstanceArn",
        "CaseFieldMapping",
    ] {
        assert!(overrides.contains_key(key), "{key} missing: {overrides:?}");
    }
    // The first deployment leaves the Kinesis trigger off (docs/deploy.md, section 5).
    assert_eq!(overrides["StreamTriggerEnabled"], "false");
    assert_eq!(overrides["SalesforceSecretArn"], "");
    assert_eq!(read["stack_name"], "ctr-cases");
    assert_eq!(read["deploy"]["capabilities"], "CAPABILITY_IAM");
}

#[test]
fn the_json_setting_arrives_intact_and_the_function_accepts_it() {
    let (overrides, _) = read_as_sam_does(&repo_file("samconfig.example.toml"));
    let mapping = &overrides["CaseFieldMapping"];
    let parsed: Value = serde_json::from_str(mapping)
        .unwrap_or_else(|e| panic!("CaseFieldMapping is not JSON ({e}): {mapping}"));
    assert_eq!(
        parsed,
        json!({
            "Reason": "{DisconnectReason}",
            "Subject": "{outcome}: {Attributes.intent|no intent}"
        })
    );
    // The stack passes it to the functions as CASE_FIELD_MAPPING, which must accept it.
    let config = ctr_cases::config::DryRunConfig::from_lookup(|name| {
        (name == "CASE_FIELD_MAPPING").then(|| mapping.clone())
    });
    assert!(config.is_ok(), "{:?}", config.err());
}
