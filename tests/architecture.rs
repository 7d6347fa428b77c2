//! The dependency rules of the crate (src/lib.rs, "Layout"), checked on the source text: pure modules use no I/O
//! module, no `config` and no tokio/reqwest/AWS SDK; `salesforce/` uses neither `config` nor the
//! AWS-facing modules; `config` is used by nothing but the wiring; the top-level modules depend
//! on each other without a cycle.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

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

const PURE: [&str; 33] = [
    "ctr.rs",
    "event.rs",
    "input.rs",
    "invoke_event.rs",
    "classify.rs",
    "case/mod.rs",
    "case/mapping.rs",
    "case/template.rs",
    "case/error.rs",
    "case/channel.rs",
    "case/render.rs",
    "case/description.rs",
    "case/truncate.rs",
    "case/record.rs",
    "case/fixtures.rs",
    "privacy.rs",
    "linking.rs",
    "letter.rs",
    "effect.rs",
    "plan.rs",
    "report.rs",
    "report_table.rs",
    "metrics.rs",
    "retry.rs",
    "salesforce/wire.rs",
    "salesforce/assignment.rs",
    "salesforce/preflight.rs",
    "stream_scope.rs",
    "callback.rs",
    "callback_batch.rs",
    "doctor/rows.rs",
    "redrive/decide.rs",
    "shard_range.rs",
];

const IO_MODULES: [&str; 12] = [
    "crate::config",
    "crate::aws",
    "crate::redrive",
    "crate::doctor",
    "crate::salesforce",
    "crate::execute",
    "crate::pipeline",
    "crate::app",
    "crate::stream",
    "crate::logging",
    "crate::flow",
    "crate::callback_function",
];

/// Whether `code` names the module path `module` (`crate::stream` is not `crate::stream_scope`).
fn names(code: &str, module: &str) -> bool {
    code.match_indices(module).any(|(at, _)| {
        !code[at + module.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
    })
}

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
    // Every file of a pure directory module is listed, so a new one is checked too.
    let case = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/case");
    for entry in std::fs::read_dir(&case).unwrap() {
        let file = format!("case/{}", entry.unwrap().file_name().to_string_lossy());
        assert!(PURE.contains(&file.as_str()), "{file} is missing from PURE");
    }
    for file in PURE {
        let code = code(file);
        for module in IO_MODULES {
            // wire.rs is inside salesforce/ and may name its siblings through `super::`.
            assert!(!names(&code, module), "{file} uses {module}");
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

/// The top-level module a file under `src/` belongs to (`case/render.rs` and `case/mod.rs` are
/// both `case`); `None` for the crate roots (`lib.rs`, `main.rs`, `bin/`), which are not modules.
fn top_level_module(relative: &Path) -> Option<String> {
    let mut parts = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy());
    let first = parts.next()?;
    let rest = parts.next();
    match (first.strip_suffix(".rs"), rest) {
        (Some("lib" | "main"), None) => None,
        (Some(module), None) => Some(module.to_owned()),
        (None, Some(_)) if first != "bin" => Some(first.to_string()),
        _ => None,
    }
}

/// Rust source with comments, string and char literals blanked and every `#[cfg(test)]` item
/// removed: what is left is the code the library is built from.
fn library_code(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            let mut depth = 0;
            while i < bytes.len() {
                if bytes[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if bytes[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if let Some(raw) = raw_string_end(rest) {
            out.push_str("\"\"");
            i += raw;
        } else if rest.starts_with('"') || rest.starts_with("b\"") {
            i += rest.find('"').unwrap() + 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            i += 1;
        } else if let Some(len) = char_literal_len(rest) {
            out.push_str("' '");
            i += len;
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    without_test_items(&out)
}

/// The length of the raw string literal (`r"…"`, `r#"…"#`, `br#"…"#`) `text` starts with.
fn raw_string_end(text: &str) -> Option<usize> {
    let after_prefix = text.strip_prefix("br").or_else(|| text.strip_prefix('r'))?;
    let hashes = after_prefix.len() - after_prefix.trim_start_matches('#').len();
    let body = after_prefix[hashes..].strip_prefix('"')?;
    let close = format!("\"{}", "#".repeat(hashes));
    let end = body.find(&close)?;
    Some(text.len() - body.len() + end + close.len())
}

/// The length of the char literal (`'{'`, `'\n'`, `'\u{7b}'`) `text` starts with; `None` for a
/// lifetime (`'a`).
fn char_literal_len(text: &str) -> Option<usize> {
    let body = text.strip_prefix('\'')?;
    let len = if let Some(escaped) = body.strip_prefix('\\') {
        2 + escaped.get(1..)?.find('\'')?
    } else {
        body.chars().next()?.len_utf8()
    };
    (body[len..].starts_with('\'')).then_some(len + 2)
}

/// `code` (comments and literals already blanked) without the items marked `#[cfg(test)]`: an
/// item ends at its first `;` outside braces, or at the brace closing its first `{`.
fn without_test_items(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at + "#[cfg(test)]".len()..];
        let mut depth = 0;
        let mut end = item.len();
        for (i, c) in item.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// The top-level modules `code` names through `crate::` paths: `crate::a::b`, `crate::a`, and
/// each path of a group, `crate::{a::b, c}`.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let ident = |text: &str| -> String {
        text.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut modules = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let path = &code[at + "crate::".len()..];
        if let Some(group) = path.strip_prefix('{') {
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        modules.insert(ident(&group[start..i]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        modules.insert(ident(&group[start..i]));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            modules.insert(ident(path));
        }
    }
    modules.remove("");
    modules.remove("self");
    modules
}

/// Module → the top-level modules it uses (never itself), from `(path under src/, text)` pairs.
/// Each value names one file that makes the dependency, for the failure message.
type Graph = BTreeMap<String, BTreeMap<String, String>>;

fn module_graph(files: &[(PathBuf, String)]) -> Graph {
    let mut graph = Graph::new();
    for (path, text) in files {
        let Some(module) = top_level_module(path) else {
            continue;
        };
        let uses = graph.entry(module.clone()).or_default();
        for used in crate_paths(&library_code(text)) {
            if used != module {
                uses.entry(used)
                    .or_insert_with(|| path.display().to_string());
            }
        }
    }
    graph
}

/// Every cycle between modules, one per strongly connected group, each as the shortest path
/// from the group's first module back to itself: `["effect", "letter", "effect"]`.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let reaches = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([from.to_owned()]);
        while let Some(module) = queue.pop_front() {
            for next in graph.get(&module).into_iter().flat_map(BTreeMap::keys) {
                if seen.insert(next.clone()) {
                    queue.push_back(next.clone());
                }
            }
        }
        seen
    };
    let mut grouped = BTreeSet::new();
    let mut found = Vec::new();
    for module in graph.keys() {
        if grouped.contains(module) || !reaches(module).contains(module) {
            continue;
        }
        let group: BTreeSet<String> = reaches(module)
            .into_iter()
            .filter(|other| reaches(other).contains(module))
            .collect();
        grouped.extend(group.iter().cloned());
        // Breadth first from `module` inside its group, back to `module`.
        let mut came_from: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = VecDeque::from([module.clone()]);
        'search: while let Some(at) = queue.pop_front() {
            for next in graph[&at].keys().filter(|n| group.contains(*n)) {
                if next == module {
                    let mut back = vec![];
                    let mut step = at.clone();
                    while step != *module {
                        back.push(step.clone());
                        step = came_from[&step].clone();
                    }
                    back.reverse();
                    let mut path = vec![module.clone()];
                    path.extend(back);
                    path.push(module.clone());
                    found.push(path);
                    break 'search;
                }
                if !came_from.contains_key(next) {
                    came_from.insert(next.clone(), at.clone());
                    queue.push_back(next.clone());
                }
            }
        }
    }
    found
}

/// Every `.rs` file under `dir`, as (path relative to `root`, text).
fn rust_files(root: &Path, dir: &Path, files: &mut Vec<(PathBuf, String)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(root, &path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            files.push((path.strip_prefix(root).unwrap().to_owned(), text));
        }
    }
}

/// Arrows one way: no two top-level modules depend on each other, directly or
/// through others. A shared type moves down into its own small module instead.
#[test]
fn top_level_modules_have_no_dependency_cycle() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&root, &root, &mut files);
    let graph = module_graph(&files);
    assert!(graph.len() >= 20, "only {} modules found", graph.len());
    let found = cycles(&graph);
    let described: Vec<String> = found
        .iter()
        .map(|cycle| {
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|pair| {
                    format!(
                        "{} uses {} ({})",
                        pair[0], pair[1], graph[&pair[0]][&pair[1]]
                    )
                })
                .collect();
            format!("{}: {}", cycle.join(" -> "), steps.join("; "))
        })
        .collect();
    assert!(
        found.is_empty(),
        "dependency cycles between top-level modules:\n{}",
        described.join("\n")
    );
}

/// The graph and the cycle search on synthetic sources: they find a cycle through three
/// modules and ignore what the library is not built from (tests, comments, strings).
#[test]
fn cycle_search_finds_a_cycle_and_accepts_a_dag() {
    let file = |path: &str, text: &str| (PathBuf::from(path), text.to_owned());
    let dag = vec![
        file("a.rs", "use crate::{b::B, c};\nfn f() { crate::d::g(); }"),
        file("b/mod.rs", "mod x;\nuse super::x::Y;\nuse crate::c::C;"),
        file("b/x.rs", "use crate::b::Z;\npub struct Y;"),
        file(
            "c.rs",
            "/// [`crate::a`]\n// crate::a\nconst S: &str = \"crate::a\";\nconst R: &str = r#\"crate::a\"#;\nfn brace() -> char { '{' }\n#[cfg(test)]\nfn helper() { crate::a::f(); }\n#[cfg(test)]\nmod tests { use crate::a; const J: &str = \"{\"; }\nuse crate::d;",
        ),
        file("d.rs", "pub fn g() {}"),
        file("lib.rs", "pub mod a; fn root() { crate::a::f(); }"),
        file("bin/cli.rs", "fn main() { crate::a::f(); }"),
    ];
    let graph = module_graph(&dag);
    let uses = |m: &str| graph[m].keys().cloned().collect::<Vec<_>>();
    assert_eq!(uses("a"), ["b", "c", "d"]);
    assert_eq!(uses("b"), ["c"]);
    assert_eq!(uses("c"), ["d"]);
    assert_eq!(graph.keys().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
    assert_eq!(cycles(&graph), Vec::<Vec<String>>::new());

    let mut cyclic = dag;
    cyclic.push(file("d.rs", "pub fn g() { crate::a::f(); }"));
    cyclic.push(file("e.rs", "use crate::f;"));
    cyclic.push(file("f.rs", "use crate::e;"));
    assert_eq!(
        cycles(&module_graph(&cyclic)),
        [vec!["a", "d", "a"], vec!["e", "f", "e"]]
    );
}
