//! Text every store can hold.
//!
//! PostgreSQL refuses U+0000 (NUL) in `text` and in `jsonb` (where `\u0000` is an invalid
//! escape); SQLite and the memory store would keep it. So that one request answers the same on
//! every backend, and never reaches the database with something it must refuse, NUL is
//! refused in every user-supplied string the engine stores: execution inputs (strings, and
//! `json` values with their object keys at any depth), the idempotency key, the prompt's name,
//! description, templates, variable definitions, output rules and model configuration. The
//! refusal is a [`Problem`] with code [`CODE`] naming the field (`inputs.v`,
//! `inputs.data.items[2]`, `variables[0].defaultValue`).
//!
//! Text a provider or the engine produces (model output, error messages) is checked before it
//! is recorded, see [`storable_outcome`].
//!
//! Every other Unicode scalar value is storable everywhere (Rust strings are valid UTF-8, so
//! lone surrogates cannot occur).

use std::fmt::{self, Write as _};

use serde_json::Value;

use crate::error::{Problem, ProblemCode};
use crate::execution::{AttemptOutcome, ExecutionError, ExecutionErrorCode};

/// The `code` of a [`Problem`] about a NUL character.
pub const CODE: ProblemCode = ProblemCode::InvalidCharacter;
/// The message of such a problem (after the field's name).
pub const MESSAGE: &str = "contains a NUL character (U+0000), which cannot be stored";
/// Most path segments named in a problem's field (deeper paths end in `...`).
const MAX_PATH_SEGMENTS: usize = 32;
/// Longest object key quoted in a field path, in bytes.
const MAX_QUOTED_KEY: usize = 64;

/// Whether every store can hold `s` (it has no NUL character).
pub fn is_storable(s: &str) -> bool {
    !s.contains('\0')
}

/// A problem at `field` when `s` cannot be stored.
pub fn str_problem(field: impl fmt::Display, s: &str) -> Option<Problem> {
    (!is_storable(s)).then(|| Problem::new(field.to_string(), CODE, MESSAGE))
}

/// A problem naming the first place in `value` (a string, or an object key, at any depth) that
/// cannot be stored; `field` is the path of `value` itself (formatted only when there is a
/// problem). Iterative: any depth is safe.
pub fn value_problem(field: impl fmt::Display, value: &Value) -> Option<Problem> {
    enum Seg<'a> {
        Key(&'a str),
        Index(usize),
    }
    let render = |path: &[Seg<'_>]| {
        let mut out = field.to_string();
        for seg in path.iter().take(MAX_PATH_SEGMENTS) {
            // Writing to a String cannot fail.
            let _ = match seg {
                Seg::Key(k) => write!(out, ".{}", crate::schema::truncate(k, MAX_QUOTED_KEY)),
                Seg::Index(i) => write!(out, "[{i}]"),
            };
        }
        if path.len() > MAX_PATH_SEGMENTS {
            out.push_str("...");
        }
        out
    };
    // Depth-first; `path` holds the segments from `value` down to the node being visited.
    let mut stack: Vec<(Option<Seg<'_>>, &Value, usize)> = vec![(None, value, 0)];
    let mut path: Vec<Seg<'_>> = Vec::new();
    while let Some((seg, v, depth)) = stack.pop() {
        path.truncate(depth.saturating_sub(1));
        path.extend(seg);
        match v {
            Value::String(s) if !is_storable(s) => {
                return Some(Problem::new(render(&path), CODE, MESSAGE));
            }
            Value::Array(items) => {
                stack.extend(
                    items.iter().enumerate().rev().map(|(i, item)| (Some(Seg::Index(i)), item, depth + 1)),
                );
            }
            Value::Object(map) => {
                for k in map.keys() {
                    if !is_storable(k) {
                        return Some(Problem::new(
                            render(&path),
                            CODE,
                            format!("the key {:?} {MESSAGE}", crate::schema::truncate(k, MAX_QUOTED_KEY)),
                        ));
                    }
                }
                let start = stack.len();
                stack.extend(map.iter().map(|(k, item)| (Some(Seg::Key(k.as_str())), item, depth + 1)));
                stack[start..].reverse();
            }
            _ => {}
        }
    }
    None
}

/// `s` with every NUL replaced by U+FFFD, for diagnostic text (error messages, rule reasons)
/// that may quote what a provider or a template produced.
pub fn lossy(s: String) -> String {
    if is_storable(&s) { s } else { s.replace('\0', "\u{FFFD}") }
}

/// An attempt's outcome as it can be recorded on every store: a completed attempt whose
/// output (or parsed output) contains NUL becomes a permanent failure with code
/// `unstorable_output`; NUL in diagnostic text is replaced by U+FFFD.
pub fn storable_outcome(outcome: AttemptOutcome) -> AttemptOutcome {
    let clean = |e: ExecutionError| ExecutionError { message: lossy(e.message), ..e };
    match outcome {
        AttemptOutcome::Completed { output, validated_output, validation, metrics } => {
            let parsed_bad = validated_output.as_ref().and_then(|v| value_problem("output", v)).is_some();
            if !is_storable(&output) || parsed_bad {
                return AttemptOutcome::Failed {
                    error: ExecutionError {
                        code: ExecutionErrorCode::UnstorableOutput,
                        message: format!("the model output {MESSAGE}"),
                        transient: false,
                    },
                    metrics: Some(metrics),
                };
            }
            let validation = validation.map(|mut verdict| {
                for r in &mut verdict.results {
                    r.reason = r.reason.take().map(lossy);
                }
                verdict
            });
            AttemptOutcome::Completed { output, validated_output, validation, metrics }
        }
        AttemptOutcome::Failed { error, metrics } => AttemptOutcome::Failed { error: clean(error), metrics },
        AttemptOutcome::Retry { error, run_after } => {
            AttemptOutcome::Retry { error: clean(error), run_after }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field(p: Option<Problem>) -> Option<String> {
        p.map(|p| {
            assert_eq!(p.code, CODE);
            p.field
        })
    }

    #[test]
    fn strings_with_nul_are_refused_by_field() {
        assert!(is_storable("plain, ünïcode, \u{1}, \u{FFFF}"));
        assert!(str_problem("name", "ok").is_none());
        assert_eq!(field(str_problem("name", "a\0b")).as_deref(), Some("name"));
    }

    #[test]
    fn values_name_the_path_to_the_nul() {
        assert_eq!(field(value_problem("inputs.v", &json!("x\u{0000}y"))).as_deref(), Some("inputs.v"));
        assert_eq!(field(value_problem("inputs.v", &json!({"a": [1, {"b": "ok"}], "c": 2}))), None);
        assert_eq!(
            field(value_problem("inputs.data", &json!({"a": [1, {"b": "x\u{0}"}]}))).as_deref(),
            Some("inputs.data.a[1].b")
        );
        let p = value_problem("inputs.data", &json!({"k": {"x\u{0}y": 1}})).unwrap();
        assert_eq!(p.field, "inputs.data.k");
        assert!(p.message.contains(r#""x\0y""#), "{}", p.message);
        // The first NUL in document order is named.
        assert_eq!(field(value_problem("j", &json!(["ok", ["\u{0}"], "\u{0}"]))).as_deref(), Some("j[1][0]"));
    }

    #[test]
    fn any_depth_is_walked_without_recursion() {
        let mut v = json!("\u{0}");
        for _ in 0..100_000 {
            v = Value::Array(vec![v]);
        }
        let p = value_problem("j", &v).unwrap();
        assert!(p.field.starts_with("j[0][0]") && p.field.ends_with("..."), "{}", p.field);
        // serde_json drops deep values recursively; leak it so the test's own stack is safe.
        std::mem::forget(v);
    }

    #[test]
    fn outcomes_become_storable() {
        let metrics = crate::execution::ExecutionMetrics {
            latency_ms: 1,
            provider_latency_ms: 1,
            queue_ms: 0,
            token_usage: crate::execution::TokenUsage::default(),
            cost_usd: None,
        };
        let done = |output: &str, parsed: Option<Value>| AttemptOutcome::Completed {
            output: output.into(),
            validated_output: parsed,
            validation: None,
            metrics: metrics.clone(),
        };
        assert!(matches!(storable_outcome(done("fine", None)), AttemptOutcome::Completed { .. }));
        for bad in [done("a\0b", None), done(r#"{"a":"\u0000"}"#, Some(json!({"a": "\u{0}"})))] {
            match storable_outcome(bad) {
                AttemptOutcome::Failed { error, .. } => {
                    assert_eq!(error.code, "unstorable_output");
                    assert!(!error.transient);
                }
                other => panic!("expected a failure, got {other:?}"),
            }
        }
        let failed = AttemptOutcome::Failed {
            error: ExecutionError {
                code: ExecutionErrorCode::Render,
                message: "bad \0 text".into(),
                transient: false,
            },
            metrics: None,
        };
        let AttemptOutcome::Failed { error, .. } = storable_outcome(failed) else { panic!("still failed") };
        assert_eq!(error.message, "bad \u{FFFD} text");
    }
}
