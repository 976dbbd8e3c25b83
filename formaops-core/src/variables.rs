//! Typed variables of a prompt and validation of execution inputs against them.
//!
//! # What is accepted (no coercion)
//!
//! Input values are JSON values and are checked strictly against the declared type; nothing is
//! converted from one JSON type to another:
//!
//! | type      | accepted                                                                 |
//! |-----------|--------------------------------------------------------------------------|
//! | `string`  | a JSON string (at most `maxLength` characters when set)                   |
//! | `number`  | a JSON number (`3`, `3.5`, `-1e3`); the string `"3"` is **not** a number  |
//! | `integer` | a JSON number without a fractional part: `3` and `3.0` (normalised to `3`) are accepted, `3.5` and `"3"` are not; floats must lie within ±2^53 |
//! | `boolean` | `true` or `false` only (not `"true"`, `1` or `0`)                          |
//! | `enum`    | a JSON string equal (case-sensitive) to one of `values`                  |
//! | `json`    | any JSON value, checked against `schema` when one is declared           |
//!
//! An explicit `null` is only a value for `json` variables; for every other type it is
//! `wrong_type` (it does *not* mean "absent": omit the key instead).
//!
//! # Required, defaults and absent values
//!
//! - A variable that is omitted takes its `defaultValue` when it has one. Because of this,
//!   `required: true` together with a default is allowed: the default is used when the caller
//!   omits the value, so such a variable is always present when the template renders.
//! - An omitted required variable without a default is a `missing` problem.
//! - An omitted optional variable without a default is simply **absent** from the validated
//!   inputs. Templates render with strict undefined behaviour, so a template must guard such a
//!   variable with `{% if name is defined %}` (or `name | default("...")`); using it
//!   unguarded fails at render time with an "undefined value" error.
//!
//! # Problems reported
//!
//! [`validate_inputs`] reports every problem at once, as [`Problem`]s whose `field` is
//! `inputs.<name>` and whose `code` is one of `missing`, `wrong_type`, `unknown`,
//! `not_finite`, `too_large`, `not_in_enum`, `schema` (or `inputs` / `too_large` for the
//! request as a whole). [`check_definitions`] reports problems of a version's definitions with
//! fields such as `variables[2].defaultValue`.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Problem, ProblemCode, Result};
pub use crate::schema::MAX_JSON_DEPTH;
use crate::schema::{build_schema, schema_error_text, truncate};

/// The type of a declared variable.
///
/// The spec's `string | number | boolean`, plus `integer`, `enum` (one of `values`) and
/// `json` (any JSON value, optionally checked against `schema`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::AsRefStr,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum VariableType {
    /// A JSON string.
    String,
    /// Any finite JSON number.
    Number,
    /// A whole number within ±2^53 (whole floats such as `3.0` are accepted and normalised).
    Integer,
    /// `true` or `false`.
    Boolean,
    /// One of the definition's `values` (a string).
    Enum,
    /// Any JSON value, checked against the definition's `schema` when there is one.
    Json,
}

impl VariableType {
    /// The type's word as it appears in JSON.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A variable a template may use (the spec's `VariableDefinition`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VariableDefinition {
    /// The name the template uses: letters, digits and `_`, not starting with a digit.
    pub name: String,
    /// The value's type (`type` in JSON).
    #[serde(rename = "type")]
    pub kind: VariableType,
    /// Whether an execution must give a value (a default also satisfies it).
    #[serde(default)]
    pub required: bool,
    /// For people; at most [`MAX_DESCRIPTION_CHARS`] characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Used when an execution gives no value; must itself be a valid value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_value: Option<Value>,
    /// Allowed values, for `enum`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// JSON Schema the value must satisfy, for `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Maximum length in characters, for `string` (the engine-wide cap applies regardless).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
}

/// Limits on execution inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputLimits {
    /// Largest single string value, in bytes (for `json` variables: the value as JSON).
    pub max_value_bytes: usize,
    /// Largest total of all inputs, in bytes (as JSON).
    pub max_total_bytes: usize,
    /// Most variables a version may declare / a request may send.
    pub max_variables: usize,
}

impl Default for InputLimits {
    fn default() -> Self {
        Self { max_value_bytes: 64 * 1024, max_total_bytes: 256 * 1024, max_variables: 100 }
    }
}

/// Longest variable name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Longest variable description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2048;
/// Most values an `enum` variable may declare.
pub const MAX_ENUM_VALUES: usize = 256;
/// Most schema errors quoted in one problem message.
const MAX_SCHEMA_ERRORS: usize = 5;
/// Longest unknown input name quoted back in a problem's `field`.
const MAX_QUOTED_NAME: usize = 64;

/// Names a variable cannot take: template keywords and names the template engine gives a
/// meaning of its own (`loop`, `caller`, ...).
const RESERVED_NAMES: &[&str] = &[
    "and",
    "as",
    "block",
    "by",
    "caller",
    "continue",
    "break",
    "else",
    "elif",
    "endblock",
    "endfor",
    "endif",
    "extends",
    "false",
    "False",
    "for",
    "from",
    "if",
    "import",
    "in",
    "include",
    "is",
    "kwargs",
    "loop",
    "macro",
    "none",
    "None",
    "not",
    "or",
    "recursive",
    "self",
    "set",
    "super",
    "true",
    "True",
    "varargs",
    "with",
];

/// Whether `name` is acceptable as a variable name: an ASCII identifier
/// (`[A-Za-z_][A-Za-z0-9_]*`), at most [`MAX_NAME_LEN`] bytes, not a reserved word.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_');
    first_ok
        && name.len() <= MAX_NAME_LEN
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !RESERVED_NAMES.contains(&name)
}

/// Checks a version's variable definitions: names are valid identifiers and unique, there are
/// not too many, each attribute fits the type (`values` only for `enum`, `schema` only for
/// `json`, `maxLength` only for `string`), enums have values, JSON Schemas compile (remote
/// `$ref`s are never fetched) and defaults are valid values of their variable.
///
/// `required` together with a `defaultValue` is allowed: see the module docs.
///
/// Errors: [`Error::InvalidPrompt`] listing every problem.
pub fn check_definitions(definitions: &[VariableDefinition], limits: &InputLimits) -> Result<()> {
    let problems = definition_problems(definitions, limits);
    if problems.is_empty() { Ok(()) } else { Err(Error::InvalidPrompt { problems }) }
}

/// Every problem with `definitions` (empty when they are fine).
pub(crate) fn definition_problems(definitions: &[VariableDefinition], limits: &InputLimits) -> Vec<Problem> {
    let mut problems = Vec::new();
    if definitions.len() > limits.max_variables {
        problems.push(Problem::new(
            "variables",
            ProblemCode::TooLarge,
            format!("{} variables declared, at most {} allowed", definitions.len(), limits.max_variables),
        ));
        return problems;
    }
    let mut seen: HashSet<&str> = HashSet::with_capacity(definitions.len());
    for (i, d) in definitions.iter().enumerate() {
        let at = |attr: &str| format!("variables[{i}].{attr}");
        if !is_valid_name(&d.name) {
            problems.push(Problem::new(
                at("name"),
                ProblemCode::InvalidName,
                format!(
                    "{:?} is not a valid variable name: use letters, digits and '_', not starting with a \
                     digit, at most {MAX_NAME_LEN} bytes, and not a reserved word",
                    truncate(&d.name, MAX_QUOTED_NAME)
                ),
            ));
        } else if !seen.insert(d.name.as_str()) {
            problems.push(Problem::new(
                at("name"),
                ProblemCode::Duplicate,
                format!("variable {:?} is declared twice", d.name),
            ));
        }
        if let Some(desc) = &d.description
            && desc.chars().count() > MAX_DESCRIPTION_CHARS
        {
            problems.push(Problem::new(
                at("description"),
                ProblemCode::TooLarge,
                format!("description is longer than {MAX_DESCRIPTION_CHARS} characters"),
            ));
        }
        let mut usable = true;
        match (d.kind, &d.values) {
            (VariableType::Enum, None) => {
                usable = false;
                problems.push(Problem::new(
                    at("values"),
                    ProblemCode::Missing,
                    "an enum variable needs `values`",
                ));
            }
            (VariableType::Enum, Some(values)) => {
                if values.is_empty() {
                    usable = false;
                    problems.push(Problem::new(
                        at("values"),
                        ProblemCode::Missing,
                        "an enum variable needs at least one value",
                    ));
                } else if values.len() > MAX_ENUM_VALUES {
                    usable = false;
                    problems.push(Problem::new(
                        at("values"),
                        ProblemCode::TooLarge,
                        format!("{} enum values, at most {MAX_ENUM_VALUES} allowed", values.len()),
                    ));
                } else {
                    let mut distinct = HashSet::with_capacity(values.len());
                    for (j, v) in values.iter().enumerate() {
                        if v.len() > limits.max_value_bytes {
                            problems.push(Problem::new(
                                format!("variables[{i}].values[{j}]"),
                                ProblemCode::TooLarge,
                                format!("enum value is larger than {} bytes", limits.max_value_bytes),
                            ));
                        } else if !distinct.insert(v.as_str()) {
                            problems.push(Problem::new(
                                format!("variables[{i}].values[{j}]"),
                                ProblemCode::Duplicate,
                                format!("enum value {:?} is listed twice", truncate(v, MAX_QUOTED_NAME)),
                            ));
                        }
                    }
                }
            }
            (_, Some(_)) => problems.push(Problem::new(
                at("values"),
                ProblemCode::NotApplicable,
                format!("`values` only applies to enum variables, not {}", d.kind.as_str()),
            )),
            (_, None) => {}
        }
        let mut schema = None;
        match (d.kind, &d.schema) {
            (VariableType::Json, Some(s)) => match build_schema(s) {
                Ok(v) => schema = Some(v),
                Err(message) => {
                    usable = false;
                    problems.push(Problem::new(at("schema"), ProblemCode::Schema, message));
                }
            },
            (_, Some(_)) => problems.push(Problem::new(
                at("schema"),
                ProblemCode::NotApplicable,
                format!("`schema` only applies to json variables, not {}", d.kind.as_str()),
            )),
            (_, None) => {}
        }
        if d.max_length.is_some() && d.kind != VariableType::String {
            problems.push(Problem::new(
                at("maxLength"),
                ProblemCode::NotApplicable,
                format!("`maxLength` only applies to string variables, not {}", d.kind.as_str()),
            ));
        }
        if let (true, Some(default)) = (usable, &d.default_value) {
            let mut checked = Checked { value: None, problem: None };
            check_value(d, default, schema.as_ref(), limits, &mut checked);
            if let Some((code, message)) = checked.problem {
                problems.push(Problem::new(at("defaultValue"), code, format!("default value: {message}")));
            }
        }
    }
    problems
}

/// Validates raw `inputs` against `definitions`: the complete typed set (defaults filled in),
/// or [`Error::InvalidInputs`] listing every problem by variable name (see the module docs
/// for what is accepted).
///
/// The result holds only declared variables; optional variables without a default that were
/// not supplied are absent. `integer` values given as `3.0` come back as `3`.
///
/// JSON Schemas of `json` variables are compiled on each call; to validate many times against
/// the same definitions, build an [`InputValidator`] once (or use
/// [`crate::template::CompiledPrompt::validate_inputs`]), which compiles them once.
/// Definitions are assumed to have passed [`check_definitions`] (a schema that does not
/// compile is reported as a `schema` problem of that input).
pub fn validate_inputs(
    definitions: &[VariableDefinition],
    inputs: &Map<String, Value>,
    limits: &InputLimits,
) -> Result<Map<String, Value>> {
    validate_with(definitions, inputs, limits, |d, _| match (d.kind, &d.schema) {
        (VariableType::Json, Some(s)) => build_schema(s).map(SchemaRef::Owned),
        _ => Ok(SchemaRef::None),
    })
}

/// A version's variable definitions with their JSON Schemas compiled once; validates inputs
/// exactly like [`validate_inputs`], without recompiling schemas on each call.
#[derive(Debug)]
pub struct InputValidator {
    definitions: Vec<VariableDefinition>,
    /// One entry per definition: its compiled schema, or why it does not compile.
    schemas: Vec<Option<std::result::Result<jsonschema::Validator, String>>>,
}

impl InputValidator {
    /// Compiles the schemas of `definitions` (a schema that does not compile is reported as
    /// a `schema` problem of that input by [`InputValidator::validate`]).
    pub fn new(definitions: &[VariableDefinition]) -> Self {
        let schemas = definitions
            .iter()
            .map(|d| match (d.kind, &d.schema) {
                (VariableType::Json, Some(s)) => Some(build_schema(s)),
                _ => None,
            })
            .collect();
        Self { definitions: definitions.to_vec(), schemas }
    }

    /// The definitions this validator checks against.
    pub fn definitions(&self) -> &[VariableDefinition] {
        &self.definitions
    }

    /// Same contract as [`validate_inputs`].
    pub fn validate(&self, inputs: &Map<String, Value>, limits: &InputLimits) -> Result<Map<String, Value>> {
        validate_with(&self.definitions, inputs, limits, |_, i| match self.schemas.get(i) {
            Some(Some(Ok(v))) => Ok(SchemaRef::Compiled(v)),
            Some(Some(Err(message))) => Err(message.clone()),
            _ => Ok(SchemaRef::None),
        })
    }
}

/// The schema a `json` input is checked against, if any.
enum SchemaRef<'a> {
    None,
    Compiled(&'a jsonschema::Validator),
    Owned(jsonschema::Validator),
}

impl SchemaRef<'_> {
    fn get(&self) -> Option<&jsonschema::Validator> {
        match self {
            Self::None => None,
            Self::Compiled(v) => Some(v),
            Self::Owned(v) => Some(v),
        }
    }
}

fn validate_with<'a>(
    definitions: &[VariableDefinition],
    inputs: &Map<String, Value>,
    limits: &InputLimits,
    schema_of: impl Fn(&VariableDefinition, usize) -> std::result::Result<SchemaRef<'a>, String>,
) -> Result<Map<String, Value>> {
    if inputs.len() > limits.max_variables {
        return Err(Error::InvalidInputs {
            problems: vec![Problem::new(
                "inputs",
                ProblemCode::TooLarge,
                format!("{} inputs sent, at most {} allowed", inputs.len(), limits.max_variables),
            )],
        });
    }
    let mut problems = Vec::new();
    for name in inputs.keys() {
        if !definitions.iter().any(|d| d.name == *name) {
            problems.push(Problem::new(
                format!("inputs.{}", truncate(name, MAX_QUOTED_NAME)),
                ProblemCode::Unknown,
                format!("{:?} is not a declared variable", truncate(name, MAX_QUOTED_NAME)),
            ));
        }
    }
    let mut out = Map::new();
    let mut total = 0usize;
    for (i, d) in definitions.iter().enumerate() {
        match inputs.get(&d.name) {
            Some(value) => {
                let schema = match schema_of(d, i) {
                    Ok(v) => v,
                    Err(message) => {
                        problems.push(Problem::new(
                            format!("inputs.{}", d.name),
                            ProblemCode::Schema,
                            format!("the variable's schema is invalid: {message}"),
                        ));
                        continue;
                    }
                };
                let mut checked = Checked { value: None, problem: None };
                let size = check_value(d, value, schema.get(), limits, &mut checked);
                total = total.saturating_add(size);
                match checked.problem {
                    Some((code, message)) => {
                        problems.push(Problem::new(format!("inputs.{}", d.name), code, message))
                    }
                    None => match crate::text::value_problem(format_args!("inputs.{}", d.name), value) {
                        Some(p) => problems.push(p),
                        None => {
                            out.insert(d.name.clone(), checked.value.unwrap_or_else(|| value.clone()));
                        }
                    },
                }
            }
            None => match &d.default_value {
                Some(default) => {
                    out.insert(d.name.clone(), default.clone());
                }
                None if d.required => problems.push(Problem::new(
                    format!("inputs.{}", d.name),
                    ProblemCode::Missing,
                    format!("required variable {:?} is missing", d.name),
                )),
                None => {}
            },
        }
    }
    if total > limits.max_total_bytes {
        problems.push(Problem::new(
            "inputs",
            ProblemCode::TooLarge,
            format!("inputs total about {total} bytes, at most {} allowed", limits.max_total_bytes),
        ));
    }
    if problems.is_empty() { Ok(out) } else { Err(Error::InvalidInputs { problems }) }
}

/// The outcome of checking one value: a replacement value (normalisation) and/or a problem.
struct Checked {
    value: Option<Value>,
    problem: Option<(ProblemCode, String)>,
}

/// Checks `value` against `d`, filling `out`; returns the value's approximate size in bytes
/// (as JSON) for the total-size limit.
fn check_value(
    d: &VariableDefinition,
    value: &Value,
    schema: Option<&jsonschema::Validator>,
    limits: &InputLimits,
    out: &mut Checked,
) -> usize {
    let wrong_type = |out: &mut Checked| {
        out.problem =
            Some((ProblemCode::WrongType, format!("expected {}, got {}", d.kind.as_str(), json_type(value))));
    };
    match d.kind {
        VariableType::String => {
            let Value::String(s) = value else {
                wrong_type(out);
                return 0;
            };
            if s.len() > limits.max_value_bytes {
                out.problem = Some((
                    ProblemCode::TooLarge,
                    format!("{} bytes, at most {} allowed", s.len(), limits.max_value_bytes),
                ));
            } else if let Some(max) = d.max_length
                && s.chars().count() > max
            {
                out.problem = Some((ProblemCode::TooLarge, format!("longer than {max} characters")));
            }
            s.len() + 2
        }
        VariableType::Number => {
            let Value::Number(n) = value else {
                wrong_type(out);
                return 0;
            };
            // serde_json numbers are finite when parsed from JSON text; this guards values
            // built some other way.
            if !n.as_f64().is_some_and(f64::is_finite) {
                out.problem = Some((ProblemCode::NotFinite, "the number is not finite".to_string()));
            }
            24
        }
        VariableType::Integer => {
            let Value::Number(n) = value else {
                wrong_type(out);
                return 0;
            };
            if n.is_i64() || n.is_u64() {
                return 24;
            }
            match n.as_f64() {
                Some(f) if !f.is_finite() => {
                    out.problem = Some((ProblemCode::NotFinite, "the number is not finite".to_string()))
                }
                Some(f) if f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER => {
                    // Exact: |f| <= 2^53 with no fractional part fits i64 without loss.
                    #[allow(clippy::cast_possible_truncation)]
                    let i = f as i64;
                    out.value = Some(Value::from(i));
                }
                Some(f) if f.fract() == 0.0 => {
                    out.problem = Some((
                        ProblemCode::TooLarge,
                        format!("{f} is outside the exact integer range ±2^53"),
                    ));
                }
                _ => {
                    out.problem = Some((
                        ProblemCode::WrongType,
                        format!("expected integer, got the fractional number {n}"),
                    ))
                }
            }
            24
        }
        VariableType::Boolean => {
            if !value.is_boolean() {
                wrong_type(out);
            }
            5
        }
        VariableType::Enum => {
            let Value::String(s) = value else {
                wrong_type(out);
                return 0;
            };
            let values = d.values.as_deref().unwrap_or_default();
            if !values.iter().any(|v| v == s) {
                out.problem = Some((
                    ProblemCode::NotInEnum,
                    format!(
                        "{:?} is not one of the allowed values {:?}",
                        truncate(s, MAX_QUOTED_NAME),
                        values
                    ),
                ));
            }
            s.len() + 2
        }
        VariableType::Json => {
            let size = match json_size(value, limits.max_value_bytes, 0) {
                Ok(size) => size,
                Err(JsonTooBig::Size) => {
                    out.problem = Some((
                        ProblemCode::TooLarge,
                        format!("larger than {} bytes as JSON", limits.max_value_bytes),
                    ));
                    return limits.max_value_bytes;
                }
                Err(JsonTooBig::Depth) => {
                    out.problem =
                        Some((ProblemCode::TooLarge, format!("nested deeper than {MAX_JSON_DEPTH} levels")));
                    return 0;
                }
            };
            if let Some(schema) = schema {
                let errors: Vec<String> = schema
                    .iter_errors(value)
                    .take(MAX_SCHEMA_ERRORS)
                    .map(|e| schema_error_text(&e))
                    .collect();
                if !errors.is_empty() {
                    out.problem = Some((
                        ProblemCode::Schema,
                        format!("does not match the schema: {}", errors.join("; ")),
                    ));
                }
            }
            size
        }
    }
}

/// 2^53: the largest magnitude up to which every integer is exactly representable as `f64`.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

enum JsonTooBig {
    Size,
    Depth,
}

/// Approximate size of `value` serialised as JSON, failing as soon as it exceeds `max` bytes
/// or nests deeper than [`MAX_JSON_DEPTH`].
fn json_size(value: &Value, max: usize, depth: usize) -> std::result::Result<usize, JsonTooBig> {
    if depth > MAX_JSON_DEPTH {
        return Err(JsonTooBig::Depth);
    }
    let size = match value {
        Value::Null => 4,
        Value::Bool(_) => 5,
        Value::Number(_) => 24,
        Value::String(s) => s.len() + 2,
        Value::Array(items) => {
            let mut size = 2usize;
            for item in items {
                size = size.saturating_add(json_size(item, max, depth + 1)? + 1);
                if size > max {
                    return Err(JsonTooBig::Size);
                }
            }
            size
        }
        Value::Object(map) => {
            let mut size = 2usize;
            for (k, v) in map {
                size = size.saturating_add(k.len() + 4 + json_size(v, max, depth + 1)?);
                if size > max {
                    return Err(JsonTooBig::Size);
                }
            }
            size
        }
    };
    if size > max { Err(JsonTooBig::Size) } else { Ok(size) }
}

/// The JSON type word of a value, for messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn var(name: &str, kind: VariableType) -> VariableDefinition {
        VariableDefinition {
            name: name.to_string(),
            kind,
            required: true,
            description: None,
            default_value: None,
            values: None,
            schema: None,
            max_length: None,
        }
    }

    fn inputs(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("test inputs must be an object"),
        }
    }

    fn problems(r: Result<Map<String, Value>>) -> Vec<(String, String)> {
        match r {
            Err(Error::InvalidInputs { problems }) => {
                problems.into_iter().map(|p| (p.field, p.code.to_string())).collect()
            }
            other => panic!("expected InvalidInputs, got {other:?}"),
        }
    }

    fn def_problems(defs: &[VariableDefinition]) -> Vec<(String, String)> {
        match check_definitions(defs, &InputLimits::default()) {
            Err(Error::InvalidPrompt { problems }) => {
                problems.into_iter().map(|p| (p.field, p.code.to_string())).collect()
            }
            other => panic!("expected InvalidPrompt, got {other:?}"),
        }
    }

    fn p(field: &str, code: &str) -> (String, String) {
        (field.to_string(), code.to_string())
    }

    #[test]
    fn valid_inputs_come_back_typed_with_defaults() {
        let mut lang = var("lang", VariableType::Enum);
        lang.values = Some(vec!["en".into(), "fr".into()]);
        lang.default_value = Some(json!("en"));
        let mut opt = var("note", VariableType::String);
        opt.required = false;
        let defs = [var("topic", VariableType::String), var("n", VariableType::Integer), lang, opt];
        let out = validate_inputs(&defs, &inputs(json!({"topic": "rust", "n": 3})), &InputLimits::default())
            .expect("valid");
        assert_eq!(Value::Object(out), json!({"topic": "rust", "n": 3, "lang": "en"}));
    }

    #[test]
    fn no_coercion_between_json_types() {
        let defs = [
            var("num", VariableType::Number),
            var("int", VariableType::Integer),
            var("flag", VariableType::Boolean),
            var("text", VariableType::String),
        ];
        let got = problems(validate_inputs(
            &defs,
            &inputs(json!({"num": "3", "int": "3", "flag": "true", "text": 3})),
            &InputLimits::default(),
        ));
        assert_eq!(
            got,
            vec![
                p("inputs.num", "wrong_type"),
                p("inputs.int", "wrong_type"),
                p("inputs.flag", "wrong_type"),
                p("inputs.text", "wrong_type"),
            ]
        );
        let got =
            problems(validate_inputs(&defs[2..3], &inputs(json!({"flag": 1})), &InputLimits::default()));
        assert_eq!(got, vec![p("inputs.flag", "wrong_type")]);
    }

    #[test]
    fn integer_accepts_whole_floats_and_normalises_them() {
        let defs = [var("n", VariableType::Integer)];
        let out = validate_inputs(&defs, &inputs(json!({"n": 3.0})), &InputLimits::default()).expect("valid");
        assert_eq!(out["n"], json!(3));
        assert!(out["n"].is_i64());
        let got = problems(validate_inputs(&defs, &inputs(json!({"n": 3.5})), &InputLimits::default()));
        assert_eq!(got, vec![p("inputs.n", "wrong_type")]);
        let got = problems(validate_inputs(&defs, &inputs(json!({"n": 1e300})), &InputLimits::default()));
        assert_eq!(got, vec![p("inputs.n", "too_large")]);
        let out =
            validate_inputs(&defs, &inputs(json!({"n": u64::MAX})), &InputLimits::default()).expect("valid");
        assert_eq!(out["n"], json!(u64::MAX));
    }

    #[test]
    fn number_accepts_integers_and_floats() {
        let defs = [var("x", VariableType::Number)];
        for v in [json!(3), json!(-3.25), json!(1e300)] {
            let out = validate_inputs(&defs, &inputs(json!({"x": v.clone()})), &InputLimits::default())
                .expect("valid");
            assert_eq!(out["x"], v);
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut color = var("color", VariableType::Enum);
        color.values = Some(vec!["red".into()]);
        let defs = [var("a", VariableType::String), var("b", VariableType::Boolean), color];
        let got = problems(validate_inputs(
            &defs,
            &inputs(json!({"b": null, "color": "blue", "zzz": 1})),
            &InputLimits::default(),
        ));
        assert_eq!(
            got,
            vec![
                p("inputs.zzz", "unknown"),
                p("inputs.a", "missing"),
                p("inputs.b", "wrong_type"),
                p("inputs.color", "not_in_enum"),
            ]
        );
    }

    #[test]
    fn null_is_only_a_json_value() {
        let mut j = var("j", VariableType::Json);
        j.required = false;
        let mut s = var("s", VariableType::String);
        s.required = false;
        let out =
            validate_inputs(std::slice::from_ref(&j), &inputs(json!({"j": null})), &InputLimits::default())
                .expect("valid");
        assert_eq!(out["j"], Value::Null);
        let got = problems(validate_inputs(&[s], &inputs(json!({"s": null})), &InputLimits::default()));
        assert_eq!(got, vec![p("inputs.s", "wrong_type")]);
    }

    #[test]
    fn sizes_are_limited() {
        let limits = InputLimits { max_value_bytes: 10, max_total_bytes: 30, max_variables: 3 };
        let mut short = var("short", VariableType::String);
        short.max_length = Some(3);
        let defs = [var("s", VariableType::String), short, var("j", VariableType::Json)];
        let got = problems(validate_inputs(
            &defs,
            &inputs(json!({"s": "x".repeat(11), "short": "éééé", "j": [1, 2, 3]})),
            &InputLimits { max_total_bytes: 1000, ..limits },
        ));
        assert_eq!(
            got,
            vec![p("inputs.s", "too_large"), p("inputs.short", "too_large"), p("inputs.j", "too_large")]
        );
        // maxLength counts characters, not bytes: three two-byte characters fit in 3.
        let got = validate_inputs(&defs[1..2], &inputs(json!({"short": "ééé"})), &limits).expect("valid");
        assert_eq!(got["short"], json!("ééé"));
        // Each value fits but the total does not.
        let defs =
            [var("a", VariableType::String), var("b", VariableType::String), var("c", VariableType::String)];
        let got = problems(validate_inputs(
            &defs,
            &inputs(json!({"a": "x".repeat(10), "b": "x".repeat(10), "c": "x".repeat(10)})),
            &limits,
        ));
        assert_eq!(got, vec![p("inputs", "too_large")]);
        // Too many inputs: one problem, not one per key.
        let got =
            problems(validate_inputs(&defs, &inputs(json!({"a": "", "b": "", "c": "", "d": ""})), &limits));
        assert_eq!(got, vec![p("inputs", "too_large")]);
    }

    #[test]
    fn deep_json_is_rejected() {
        let defs = [var("j", VariableType::Json)];
        let mut v = json!(1);
        for _ in 0..=MAX_JSON_DEPTH {
            v = json!([v]);
        }
        let got = problems(validate_inputs(&defs, &inputs(json!({"j": v})), &InputLimits::default()));
        assert_eq!(got, vec![p("inputs.j", "too_large")]);
    }

    #[test]
    fn json_values_are_checked_against_their_schema() {
        let mut j = var("j", VariableType::Json);
        j.schema =
            Some(json!({"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}));
        let defs = [j];
        validate_inputs(&defs, &inputs(json!({"j": {"id": 1}})), &InputLimits::default()).expect("valid");
        let err = validate_inputs(&defs, &inputs(json!({"j": {"id": "one"}})), &InputLimits::default())
            .expect_err("schema violation");
        let Error::InvalidInputs { problems } = err else { panic!("wrong error") };
        assert_eq!(problems.len(), 1);
        assert_eq!((problems[0].field.as_str(), problems[0].code.as_str()), ("inputs.j", "schema"));
        assert!(problems[0].message.contains("/id"), "{}", problems[0].message);
    }

    #[test]
    fn input_validator_matches_validate_inputs() {
        let mut good = var("doc", VariableType::Json);
        good.schema =
            Some(json!({"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}));
        let mut bad = var("broken", VariableType::Json);
        bad.schema = Some(json!({"type": 12}));
        bad.required = false;
        let mut defs = vec![good, bad, var("topic", VariableType::String)];
        defs[2].required = false;
        let validator = InputValidator::new(&defs);
        assert_eq!(validator.definitions(), defs.as_slice());
        let limits = InputLimits::default();
        let cases = [
            json!({"doc": {"n": 1}, "topic": "x"}),
            json!({"doc": {"n": "1"}}),
            json!({"doc": {"n": 1}, "broken": 1}),
            json!({"topic": 3, "extra": true}),
        ];
        for case in cases {
            let raw = inputs(case.clone());
            let once = validator.validate(&raw, &limits);
            let per_call = validate_inputs(&defs, &raw, &limits);
            assert_eq!(format!("{once:?}"), format!("{per_call:?}"), "{case}");
        }
        assert_eq!(
            problems(validator.validate(&inputs(json!({"doc": {"n": "1"}})), &limits)),
            vec![p("inputs.doc", "schema")]
        );
        assert_eq!(
            problems(validator.validate(&inputs(json!({"doc": {"n": 1}, "broken": 1})), &limits)),
            vec![p("inputs.broken", "schema")]
        );
        assert!(validator.validate(&inputs(json!({"doc": {"n": 1}})), &limits).is_ok());
    }

    #[test]
    fn unknown_names_are_truncated_in_problems() {
        let long = "k".repeat(10_000);
        let got = problems(validate_inputs(&[], &inputs(json!({ long: 1 })), &InputLimits::default()));
        assert_eq!(got, vec![(format!("inputs.{}", "k".repeat(MAX_QUOTED_NAME)), "unknown".to_string())]);
    }

    #[test]
    fn definitions_are_checked() {
        assert!(check_definitions(&[var("topic", VariableType::String)], &InputLimits::default()).is_ok());
        let mut bad_default = var("n", VariableType::Number);
        bad_default.default_value = Some(json!("3"));
        let no_values = var("e", VariableType::Enum);
        let mut bad_schema = var("j", VariableType::Json);
        bad_schema.schema = Some(json!({"type": "not-a-type"}));
        let mut misplaced = var("s", VariableType::Boolean);
        misplaced.values = Some(vec!["a".into()]);
        misplaced.max_length = Some(3);
        let mut dup_values = var("d", VariableType::Enum);
        dup_values.values = Some(vec!["a".into(), "a".into()]);
        let got = def_problems(&[
            var("1bad", VariableType::String),
            var("loop", VariableType::String),
            var("ok", VariableType::String),
            var("ok", VariableType::String),
            bad_default,
            no_values,
            bad_schema,
            misplaced,
            dup_values,
        ]);
        assert_eq!(
            got,
            vec![
                p("variables[0].name", "invalid_name"),
                p("variables[1].name", "invalid_name"),
                p("variables[3].name", "duplicate"),
                p("variables[4].defaultValue", "wrong_type"),
                p("variables[5].values", "missing"),
                p("variables[6].schema", "schema"),
                p("variables[7].values", "not_applicable"),
                p("variables[7].maxLength", "not_applicable"),
                p("variables[8].values[1]", "duplicate"),
            ]
        );
    }

    #[test]
    fn defaults_must_be_valid_values() {
        let mut e = var("e", VariableType::Enum);
        e.values = Some(vec!["a".into()]);
        e.default_value = Some(json!("b"));
        let mut s = var("s", VariableType::String);
        s.max_length = Some(2);
        s.default_value = Some(json!("abc"));
        let mut i = var("i", VariableType::Integer);
        i.default_value = Some(json!(2.5));
        assert_eq!(
            def_problems(&[e, s, i]),
            vec![
                p("variables[0].defaultValue", "not_in_enum"),
                p("variables[1].defaultValue", "too_large"),
                p("variables[2].defaultValue", "wrong_type"),
            ]
        );
    }

    #[test]
    fn required_with_default_is_allowed_and_filled_in() {
        let mut v = var("tone", VariableType::String);
        v.default_value = Some(json!("friendly"));
        check_definitions(std::slice::from_ref(&v), &InputLimits::default()).expect("allowed");
        let out = validate_inputs(&[v], &Map::new(), &InputLimits::default()).expect("valid");
        assert_eq!(out["tone"], json!("friendly"));
    }

    #[test]
    fn too_many_definitions() {
        let limits = InputLimits { max_variables: 2, ..InputLimits::default() };
        let defs: Vec<_> = (0..3).map(|i| var(&format!("v{i}"), VariableType::String)).collect();
        let Err(Error::InvalidPrompt { problems }) = check_definitions(&defs, &limits) else {
            panic!("expected error")
        };
        assert_eq!((problems[0].field.as_str(), problems[0].code.as_str()), ("variables", "too_large"));
    }

    #[test]
    fn names() {
        for ok in ["a", "_x", "topic_2", "A1"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a b", "é", "true", "loop", &"a".repeat(MAX_NAME_LEN + 1)] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}
