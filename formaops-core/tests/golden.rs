//! Golden rendering tests: each `golden/*.txt` file holds variable definitions, inputs, a
//! template and either the exact expected output or the expected error.
//!
//! File format (sections start with a `--- name` line; a section's text excludes the newline
//! before the next marker):
//!
//! ```text
//! --- variables       JSON array of variable definitions (optional: none declared)
//! --- inputs          JSON object (optional: {})
//! --- system          system template (optional)
//! --- template        user template
//! --- expected        the rendered user message, exactly
//! --- expected_system the rendered system message, exactly (when `system` is given)
//! --- error           instead of `expected`: `<kind> <field>/<code>` for invalid prompts and
//!                     inputs (`prompt template/undeclared`, `inputs inputs.n/wrong_type`), or
//!                     `render <text the message contains>`
//! ```
//!
//! Add a case by adding a file; every file is run.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::version;
use formaops_core::Error;
use formaops_core::provider::Role;
use formaops_core::template::{CompiledPrompt, TemplateLimits, check_version};
use formaops_core::variables::{InputLimits, VariableDefinition, validate_inputs};
use serde_json::{Map, Value};

fn sections(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in text.split('\n') {
        if let Some(name) = line.strip_prefix("--- ") {
            if let Some((n, lines)) = current.take() {
                out.insert(n, lines.join("\n"));
            }
            current = Some((name.trim().to_string(), Vec::new()));
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line);
        }
    }
    if let Some((n, mut lines)) = current {
        if lines.last() == Some(&"") {
            lines.pop();
        }
        out.insert(n, lines.join("\n"));
    }
    out
}

/// Runs one case and returns what happened, in the file's vocabulary.
fn run(s: &BTreeMap<String, String>) -> Result<(Option<String>, String), String> {
    let variables: Vec<VariableDefinition> =
        s.get("variables").map(|v| serde_json::from_str(v).expect("variables JSON")).unwrap_or_default();
    let inputs: Map<String, Value> =
        s.get("inputs").map(|v| serde_json::from_str(v).expect("inputs JSON")).unwrap_or_default();
    let mut v = version(s.get("template").expect("a template section"), variables);
    v.system_template = s.get("system").cloned();
    let describe = |e: Error| match e {
        Error::InvalidPrompt { problems } => {
            format!(
                "prompt {}",
                problems.iter().map(|p| format!("{}/{}", p.field, p.code)).collect::<Vec<_>>().join(" ")
            )
        }
        Error::InvalidInputs { problems } => {
            format!(
                "inputs {}",
                problems.iter().map(|p| format!("{}/{}", p.field, p.code)).collect::<Vec<_>>().join(" ")
            )
        }
        Error::Render { message } => format!("render {message}"),
        other => format!("other {other}"),
    };
    check_version(&v, &TemplateLimits::default(), &InputLimits::default()).map_err(describe)?;
    let compiled = CompiledPrompt::compile(&v, &TemplateLimits::default()).map_err(describe)?;
    let inputs = validate_inputs(&v.variables, &inputs, &InputLimits::default()).map_err(describe)?;
    let messages = compiled.render(&inputs).map_err(describe)?;
    let system = messages.iter().find(|m| m.role == Role::System).map(|m| m.content.clone());
    let user =
        messages.iter().find(|m| m.role == Role::User).map(|m| m.content.clone()).expect("a user message");
    Ok((system, user))
}

#[test]
fn golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/golden exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "expected the golden files in {}", dir.display());
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("readable");
        let s = sections(&text);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_string();
        match (run(&s), s.get("expected"), s.get("error")) {
            (Ok((system, user)), Some(expected), None) => {
                if &user != expected {
                    failures.push(format!("{name}: rendered\n{user:?}\nexpected\n{expected:?}"));
                }
                if let Some(expected_system) = s.get("expected_system")
                    && system.as_ref() != Some(expected_system)
                {
                    failures
                        .push(format!("{name}: system rendered {system:?}, expected {expected_system:?}"));
                }
            }
            (Err(got), None, Some(expected)) => {
                let ok = if let Some(text) = expected.strip_prefix("render ") {
                    got.starts_with("render ") && got.contains(text.trim())
                } else {
                    got == expected.trim()
                };
                if !ok {
                    failures.push(format!("{name}: error {got:?}, expected {expected:?}"));
                }
            }
            (got, expected, error) => failures
                .push(format!("{name}: got {got:?}, file expects output {expected:?} / error {error:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden files failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}
