//! Output validation rules and their verdicts.
//!
//! (Types only for now; compilation and checking land with the core-rules work.)

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One output validation rule. A closed set: each has a precise, documented meaning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ValidationRule {
    /// The output (trimmed, optionally inside a ```json fence) parses as JSON.
    Json,
    /// The output parses as JSON and satisfies `schema` (Draft 2020-12 unless `$schema` says
    /// otherwise; remote `$ref`s are never fetched).
    JsonSchema { schema: Value },
    /// The output matches `pattern` (Rust `regex` syntax, unanchored unless the pattern
    /// anchors itself).
    Regex { pattern: String },
    /// The output has at least `value` characters.
    MinLength { value: usize },
    /// The output has at most `value` characters.
    MaxLength { value: usize },
    /// The output contains `value` (case-sensitive).
    Contains { value: String },
    /// The output does not contain `value` (case-sensitive).
    NotContains { value: String },
}

impl ValidationRule {
    /// The rule's `type` word.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::JsonSchema { .. } => "json_schema",
            Self::Regex { .. } => "regex",
            Self::MinLength { .. } => "min_length",
            Self::MaxLength { .. } => "max_length",
            Self::Contains { .. } => "contains",
            Self::NotContains { .. } => "not_contains",
        }
    }
}

/// The outcome of one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleOutcome {
    /// The rule's `type` word.
    pub rule: String,
    pub passed: bool,
    /// Why it failed; `None` when it passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The verdict of all of a version's rules on one output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationVerdict {
    pub passed: bool,
    pub results: Vec<RuleOutcome>,
}

/// A version's rules, compiled once (regexes, JSON Schemas) and reusable from many threads.
/// INTERIM: compilation and checks land with the core-rules work.
#[derive(Debug)]
pub struct CompiledRules {
    rules: Vec<ValidationRule>,
}

impl CompiledRules {
    /// Compiles rules; an invalid or oversized regex or schema is
    /// [`crate::Error::InvalidPrompt`] naming the rule.
    pub fn compile(rules: &[ValidationRule]) -> crate::Result<Self> {
        Ok(Self { rules: rules.to_vec() })
    }

    /// Whether any rule parses the output as JSON (so `validatedOutput` applies).
    pub fn wants_json(&self) -> bool {
        self.rules.iter().any(|r| matches!(r, ValidationRule::Json | ValidationRule::JsonSchema { .. }))
    }

    /// The JSON Schema of the first `json_schema` rule, for structured-output requests.
    pub fn response_schema(&self) -> Option<&Value> {
        self.rules.iter().find_map(|r| match r {
            ValidationRule::JsonSchema { schema } => Some(schema),
            _ => None,
        })
    }

    /// Applies every rule to `output`: the verdict, and the parsed JSON when a JSON rule
    /// applies and the output parsed.
    pub fn check(&self, output: &str) -> (ValidationVerdict, Option<Value>) {
        let _ = output;
        (ValidationVerdict { passed: true, results: Vec::new() }, None)
    }
}
