//! The dependency rules of DESIGN.md, checked on the source text: pure modules use no I/O
//! module, no `config` and no tokio/reqwest/AWS SDK; `salesforce/` uses neither `config` nor the
//! AWS-facing modules; `config` is used by nothing but the wiring.

use std::path::PathBuf;

fn source(relative: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The code of a file without its `#[cfg(test)]` module (tests may use anything).
fn code(relative: &str) -> String {
    let text = source(relative);
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

const PURE: [&str; 16] = [
    "ctr.rs",
    "event.rs",
    "classify.rs",
    "case.rs",
    "letter.rs",
    "effect.rs",
    "plan.rs",
    "report.rs",
    "report_table.rs",
    "metrics.rs",
    "retry.rs",
    "salesforce/wire.rs",
    "stream_scope.rs",
    "callback.rs",
    "callback_batch.rs",
    "doctor/rows.rs",
];

const IO_MODULES: [&str; 10] = [
    "crate::config",
    "crate::salesforce",
    "crate::aws",
    "crate::execute",
    "crate::pipeline",
    "crate::app",
    "crate::stream",
    "crate::logging",
    "crate::flow",
    "crate::callback_function",
];

const IO_CRATES: [&str; 7] = [
    "tokio",
    "reqwest",
    "aws_sdk",
    "aws_config",
    "lambda_runtime",
    "std::fs",
    "std::net",
];

#[test]
fn pure_modules_use_no_io_module_no_config_and_no_io_crate() {
    for file in PURE {
        let code = code(file);
        for module in IO_MODULES {
            // wire.rs is inside salesforce/ and may name its siblings through `super::`.
            assert!(!code.contains(module), "{file} uses {module}");
        }
        for krate in IO_CRATES {
            assert!(!code.contains(&format!("{krate}::")), "{file} uses {krate}");
        }
    }
}

#[test]
fn salesforce_uses_neither_config_nor_aws_modules() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/salesforce");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let code = code(&format!("salesforce/{name}"));
        for module in ["crate::config", "crate::aws", "crate::app", "aws_sdk"] {
            assert!(!code.contains(module), "salesforce/{name} uses {module}");
        }
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} files in src/salesforce");
}

#[test]
fn only_the_wiring_reads_config() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let wiring = ["config.rs", "app.rs", "lib.rs", "main.rs"];
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".rs") || wiring.contains(&name.as_str()) {
            continue;
        }
        assert!(
            !code(&name).contains("crate::config"),
            "{name} depends on config; config must depend on what it configures"
        );
    }
}

#[test]
fn only_config_and_logging_read_the_environment() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".rs") {
            files.push(name);
        }
    }
    for sub in ["salesforce"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            files.push(format!(
                "{sub}/{}",
                entry.unwrap().file_name().to_string_lossy()
            ));
        }
    }
    for name in files {
        if ["config.rs", "logging.rs", "main.rs"].contains(&name.as_str()) {
            continue;
        }
        assert!(
            !code(&name).contains("std::env::var"),
            "{name} reads the environment"
        );
    }
}

/// The stream's path never waits for Connect's quota: only the callback function (and the
/// wiring that builds it) uses the Connect module.
#[test]
fn only_the_callback_function_calls_amazon_connect() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !name.ends_with(".rs")
            || ["callback_function.rs", "app.rs", "lib.rs"].contains(&name.as_str())
        {
            continue;
        }
        let code = code(&name);
        assert!(
            !code.contains("crate::aws::connect"),
            "{name} uses crate::aws::connect"
        );
        assert!(
            !code.contains("aws_sdk_connect"),
            "{name} uses aws_sdk_connect"
        );
    }
}
