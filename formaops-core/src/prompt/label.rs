//! Labels: named pointers from a prompt to one of its versions, their moves, and the
//! promotion guard.
//!
//! A label (`production`, `staging`, or any name of `[a-z0-9_-]{1,64}`) points at one version
//! of a prompt. Moving a label is promotion, moving it back is rollback; every move is kept as
//! a [`LabelMove`]. `latest` is built in: it always names the newest version and can be neither
//! set nor deleted.
//!
//! # The promotion guard
//!
//! A prompt may turn the guard on ([`LabelSettings::guard_production`]). A move of
//! `production` is then refused unless the target version accepts every input the current
//! production version accepts ([`guard_problems`]): no new required variable without a
//! default, no variable made required, no removed variable, no narrowed type, no removed enum
//! value, no shorter `maxLength`, no changed JSON schema.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Problem, ProblemCode, Result};
use crate::ids::{PromptId, UserId};
use crate::variables::{VariableDefinition, VariableType};

/// The built-in label: always the newest version.
pub const LATEST: &str = "latest";
/// The label applications run in production; a new prompt gets it on version 1 by default.
pub const PRODUCTION: &str = "production";
/// Longest label name, in bytes.
pub const MAX_LABEL_LEN: usize = 64;

/// Checks a label name against `[a-z0-9_-]{1,64}` (`field` names it in the error).
///
/// # Errors
/// [`Error::InvalidArgument`] on `field`: empty, longer than [`MAX_LABEL_LEN`] bytes, or a
/// character outside `a-z`, `0-9`, `_`, `-`.
pub fn check_label_name(field: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_LABEL_LEN {
        return Err(Error::invalid_argument(field, format!("a label has 1 to {MAX_LABEL_LEN} characters")));
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-') {
        return Err(Error::invalid_argument(
            field,
            "a label may only contain lowercase letters a-z, digits, '_' and '-'",
        ));
    }
    Ok(())
}

/// Checks that a label may be set or deleted: a valid name other than the built-in `latest`.
///
/// # Errors
/// [`Error::InvalidArgument`] on `field`: as [`check_label_name`], or the name is `latest`.
pub fn check_settable_label(field: &str, name: &str) -> Result<()> {
    check_label_name(field, name)?;
    if name == LATEST {
        return Err(Error::invalid_argument(
            field,
            "`latest` is built in (always the newest version) and cannot be set or deleted",
        ));
    }
    Ok(())
}

/// A version reference as callers write it: a version number or a label name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionRef {
    /// A version number, from 1.
    Version(u32),
    /// A label name (`latest` included), resolved to the version it points at when used.
    Label(String),
}

impl VersionRef {
    /// Parses `3` as a version and anything else as a label name (checked).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on `field`: version 0, a version over `u32::MAX`, or a bad
    /// label name.
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            let v: u32 = s
                .parse()
                .map_err(|_| Error::invalid_argument(field, format!("version {s} is out of range")))?;
            if v == 0 {
                return Err(Error::invalid_argument(field, "versions count from 1"));
            }
            return Ok(Self::Version(v));
        }
        check_label_name(field, s)?;
        Ok(Self::Label(s.to_string()))
    }
}

/// One label of a prompt and the version it points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Label {
    /// The label's name (`[a-z0-9_-]{1,64}`).
    pub name: String,
    /// The version it points at (from 1).
    pub version: u32,
    /// When the label was last moved (for `latest`: when the newest version was written).
    pub updated_at: DateTime<Utc>,
    /// Who moved it last (for `latest`: `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<UserId>,
}

/// One move of a label: created (`from: None`), moved, or deleted (`to: None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelMove {
    /// The prompt whose label moved.
    pub prompt_id: PromptId,
    /// The label's name.
    pub name: String,
    /// The version the label pointed at before; `None` when it did not exist.
    pub from: Option<u32>,
    /// The version it points at after; `None` when it was deleted.
    pub to: Option<u32>,
    /// Who moved it.
    pub actor: UserId,
    /// When it moved (UTC).
    pub at: DateTime<Utc>,
}

/// Per-prompt label settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSettings {
    /// When on, moving `production` requires the target version to accept every input the
    /// current production version accepts (see [`guard_problems`]).
    #[serde(default)]
    pub guard_production: bool,
}

/// Whether an omitted value is accepted (optional, or filled in by a default).
fn may_be_omitted(v: &VariableDefinition) -> bool {
    !v.required || v.default_value.is_some()
}

/// Why inputs accepted by `current` variable definitions might be refused by `target` ones;
/// empty when every input `current` accepts, `target` accepts too. Problem fields are
/// `variables.<name>`.
pub fn guard_problems(current: &[VariableDefinition], target: &[VariableDefinition]) -> Vec<Problem> {
    let by_name: HashMap<&str, &VariableDefinition> = current.iter().map(|v| (v.name.as_str(), v)).collect();
    let target_names: HashMap<&str, &VariableDefinition> =
        target.iter().map(|v| (v.name.as_str(), v)).collect();
    let mut problems = Vec::new();
    for t in target {
        let field = format!("variables.{}", t.name);
        match by_name.get(t.name.as_str()) {
            None if !may_be_omitted(t) => problems.push(Problem::new(
                field,
                ProblemCode::NewRequired,
                "a new required variable without a default: inputs of the current production version omit it",
            )),
            None => {}
            Some(c) => {
                if may_be_omitted(c) && !may_be_omitted(t) {
                    problems.push(Problem::new(
                        field.clone(),
                        ProblemCode::NowRequired,
                        "the variable became required without a default",
                    ));
                }
                if let Some(why) = narrowed(c, t) {
                    problems.push(Problem::new(field, ProblemCode::Narrowed, why));
                }
            }
        }
    }
    for c in current {
        if !target_names.contains_key(c.name.as_str()) {
            problems.push(Problem::new(
                format!("variables.{}", c.name),
                ProblemCode::Removed,
                "the variable was removed: inputs that pass it would be refused as unknown",
            ));
        }
    }
    problems
}

/// Why `t` accepts fewer values than `c`, if it does.
fn narrowed(c: &VariableDefinition, t: &VariableDefinition) -> Option<String> {
    use VariableType as T;
    let max_len_narrowed = |values_max: Option<usize>| -> Option<String> {
        let t_max = t.max_length?;
        match values_max {
            Some(m) if m <= t_max => None,
            _ => Some(format!("maxLength narrowed to {t_max}")),
        }
    };
    match (c.kind, t.kind) {
        (_, T::Json) => match &t.schema {
            None => None,
            Some(s) if c.kind == T::Json && c.schema.as_ref() == Some(s) => None,
            Some(_) => Some("a JSON schema was added or changed".into()),
        },
        (T::String, T::String) => max_len_narrowed(c.max_length),
        (T::Enum, T::String) => {
            max_len_narrowed(c.values.as_ref().and_then(|v| v.iter().map(|s| s.chars().count()).max()))
        }
        (T::Enum, T::Enum) => {
            let tv = t.values.as_deref().unwrap_or_default();
            let removed: Vec<&str> = c
                .values
                .as_deref()
                .unwrap_or_default()
                .iter()
                .filter(|v| !tv.contains(v))
                .map(String::as_str)
                .collect();
            if removed.is_empty() {
                None
            } else {
                Some(format!("enum values removed: {}", removed.join(", ")))
            }
        }
        (T::Integer, T::Number) => None,
        (a, b) if a == b => None,
        (a, b) => Some(format!("type narrowed from {} to {}", a.as_str(), b.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn var(v: serde_json::Value) -> VariableDefinition {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn label_names() {
        for ok in ["production", "staging", "a", "v2_canary-1", &"x".repeat(64)] {
            check_label_name("label", ok).unwrap();
        }
        for bad in ["", "Prod", "a b", "é", "a.b", &"x".repeat(65)] {
            assert!(matches!(check_label_name("label", bad), Err(Error::InvalidArgument { .. })), "{bad}");
        }
        assert!(check_settable_label("label", LATEST).is_err());
        check_label_name("label", LATEST).unwrap();
    }

    #[test]
    fn version_refs() {
        assert_eq!(VersionRef::parse("from", "3").unwrap(), VersionRef::Version(3));
        assert_eq!(VersionRef::parse("from", "production").unwrap(), VersionRef::Label("production".into()));
        assert!(VersionRef::parse("from", "0").is_err());
        assert!(VersionRef::parse("from", "99999999999").is_err());
        assert!(VersionRef::parse("from", "Bad!").is_err());
    }

    #[test]
    fn guard_accepts_widening() {
        let cur = vec![
            var(json!({"name": "a", "type": "string", "required": true, "maxLength": 10})),
            var(json!({"name": "n", "type": "integer"})),
            var(json!({"name": "e", "type": "enum", "values": ["x", "y"]})),
        ];
        let tgt = vec![
            var(json!({"name": "a", "type": "string", "required": true})),
            var(json!({"name": "n", "type": "number"})),
            var(json!({"name": "e", "type": "enum", "values": ["x", "y", "z"]})),
            var(json!({"name": "extra", "type": "string", "required": true, "defaultValue": "d"})),
            var(json!({"name": "opt", "type": "boolean"})),
        ];
        assert_eq!(guard_problems(&cur, &tgt), vec![]);
    }

    #[test]
    fn guard_refuses_narrowing_with_reasons() {
        let cur = vec![
            var(json!({"name": "a", "type": "string"})),
            var(json!({"name": "n", "type": "number"})),
            var(json!({"name": "e", "type": "enum", "values": ["x", "y"]})),
            var(json!({"name": "gone", "type": "string"})),
        ];
        let tgt = vec![
            var(json!({"name": "a", "type": "string", "required": true})),
            var(json!({"name": "n", "type": "integer"})),
            var(json!({"name": "e", "type": "enum", "values": ["x"]})),
            var(json!({"name": "new", "type": "string", "required": true})),
        ];
        let codes: Vec<(String, String)> =
            guard_problems(&cur, &tgt).into_iter().map(|p| (p.field, p.code.as_str().to_string())).collect();
        assert_eq!(
            codes,
            [
                ("variables.a", "now_required"),
                ("variables.n", "narrowed"),
                ("variables.e", "narrowed"),
                ("variables.new", "new_required"),
                ("variables.gone", "removed"),
            ]
            .map(|(f, c)| (f.to_string(), c.to_string()))
        );
    }
}
