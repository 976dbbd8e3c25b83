//! Output validation rules and their verdicts.
//!
//! A version's rules are compiled once ([`CompiledRules::compile`]): regexes and JSON Schemas
//! are built when the version is saved, so an invalid or oversized one is rejected then, not
//! when an execution runs. [`CompiledRules::check`] applies every rule to a model output and
//! returns one [`RuleOutcome`] per rule (with a reason when it failed) plus, when a `json` or
//! `json_schema` rule applies and the output parsed, the parsed value (`validatedOutput`).
//!
//! # Rules
//!
//! - `json`: the output parses as JSON. Surrounding whitespace is ignored, and so is one
//!   Markdown code fence around the whole output (```` ```json ```` or a bare ```` ``` ````),
//!   because models often wrap JSON that way. Nothing else is stripped.
//! - `json_schema`: the output parses as JSON (same leniency as `json`) and the value satisfies
//!   the schema (Draft 2020-12 unless `$schema` says otherwise). Remote `$ref`s (`http:`,
//!   `https:`, `file:`) are **never fetched**: a schema that needs one is rejected when saved.
//!   `pattern` keywords use the linear-time `regex` engine with a size limit.
//! - `regex`: the output matches the pattern somewhere (Rust `regex` syntax; anchor with
//!   `^...$` to match the whole output). Patterns are limited in compiled size.
//! - `min_length` / `max_length`: the output has at least / at most `value` **characters**
//!   (Unicode scalar values, not bytes).
//! - `contains` / `not_contains`: the output does / does not contain `value`, case-sensitive.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Problem, ProblemCode, Result};
use crate::schema::strict::strict_unfit;
pub use crate::schema::{MAX_SCHEMA_BYTES, REGEX_SIZE_LIMIT};
use crate::schema::{build_schema, schema_error_text, truncate};

/// One output validation rule. A closed set: each has a precise, documented meaning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[strum(serialize_all = "snake_case")]
pub enum ValidationRule {
    /// The output (trimmed, optionally inside a ```json fence) parses as JSON.
    Json,
    /// The output parses as JSON and satisfies `schema` (Draft 2020-12 unless `$schema` says
    /// otherwise; remote `$ref`s are never fetched).
    JsonSchema {
        /// The JSON Schema document.
        schema: Value,
        /// Whether the schema is sent to the provider in strict mode: `"auto"` (the default;
        /// strict when the schema fits, see [`crate::schema::strict`]), `true` (always; a
        /// schema that does not fit is refused when the version is saved) or `false` (never).
        #[serde(default, skip_serializing_if = "StrictMode::is_auto")]
        strict: StrictMode,
    },
    /// The output matches `pattern` (Rust `regex` syntax, unanchored unless the pattern
    /// anchors itself).
    Regex {
        /// The regex, at most [`MAX_PATTERN_BYTES`] bytes.
        pattern: String,
    },
    /// The output has at least `value` characters.
    MinLength {
        /// Fewest characters (Unicode scalar values).
        value: usize,
    },
    /// The output has at most `value` characters.
    MaxLength {
        /// Most characters (Unicode scalar values).
        value: usize,
    },
    /// The output contains `value` (case-sensitive).
    Contains {
        /// The text to look for; not empty.
        value: String,
    },
    /// The output does not contain `value` (case-sensitive).
    NotContains {
        /// The text that must be absent; not empty.
        value: String,
    },
}

/// How a `json_schema` rule's schema is sent as structured output (`strict` in the rule's
/// JSON: `"auto"`, `true` or `false`; absent means `"auto"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StrictMode {
    /// `strict: true` when the schema fits OpenAI's strict mode, else `strict: false`.
    #[default]
    Auto,
    /// Always `strict: true`; a version whose schema does not fit is refused when saved.
    Always,
    /// Always `strict: false`.
    Never,
}

impl StrictMode {
    /// Whether this is the default, `"auto"`.
    pub fn is_auto(&self) -> bool {
        *self == Self::Auto
    }
}

impl Serialize for StrictMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::Auto => s.serialize_str("auto"),
            Self::Always => s.serialize_bool(true),
            Self::Never => s.serialize_bool(false),
        }
    }
}

impl<'de> Deserialize<'de> for StrictMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(true) => Ok(Self::Always),
            Value::Bool(false) => Ok(Self::Never),
            Value::String(s) if s == "auto" => Ok(Self::Auto),
            other => Err(serde::de::Error::custom(format!(
                "strict must be \"auto\", true or false, not {}",
                crate::schema::truncate(&other.to_string(), 100)
            ))),
        }
    }
}

impl ValidationRule {
    /// The rule's `type` word.
    pub fn kind(&self) -> &'static str {
        self.into()
    }
}

/// The outcome of one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleOutcome {
    /// The rule's `type` word.
    pub rule: String,
    /// Whether the output satisfied the rule.
    pub passed: bool,
    /// Why it failed; `None` when it passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The verdict of all of a version's rules on one output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationVerdict {
    /// Whether every rule passed.
    pub passed: bool,
    /// One outcome per rule, in the version's rule order.
    pub results: Vec<RuleOutcome>,
}

/// Appended to a failing JSON rule's reason when the output was cut at the token limit.
pub const TRUNCATED_NOTE: &str =
    "the output was cut at the token limit (finish_reason \"length\"), so it is incomplete";

impl ValidationVerdict {
    /// Marks the verdict of an output cut at the token limit: each failing `json` /
    /// `json_schema` rule's reason says so (incomplete JSON is the likely cause).
    pub fn note_truncated(&mut self) {
        for result in &mut self.results {
            if !result.passed && matches!(result.rule.as_str(), "json" | "json_schema") {
                result.reason = Some(match result.reason.take() {
                    Some(reason) => format!("{TRUNCATED_NOTE}: {reason}"),
                    None => TRUNCATED_NOTE.to_string(),
                });
            }
        }
    }
}

/// Most rules one version may have.
pub const MAX_RULES: usize = 32;
/// Longest regex pattern, in bytes.
pub const MAX_PATTERN_BYTES: usize = 4096;
/// Longest `contains` / `not_contains` value, in bytes.
pub const MAX_NEEDLE_BYTES: usize = 64 * 1024;
/// Most schema errors quoted in one reason.
const MAX_REASON_ERRORS: usize = 5;

#[derive(Debug)]
enum Compiled {
    Json,
    JsonSchema { schema: Value, strict: bool, validator: Box<jsonschema::Validator> },
    Regex(regex::Regex),
    MinLength(usize),
    MaxLength(usize),
    Contains(String),
    NotContains(String),
}

impl Compiled {
    fn kind(&self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::JsonSchema { .. } => "json_schema",
            Self::Regex(_) => "regex",
            Self::MinLength(_) => "min_length",
            Self::MaxLength(_) => "max_length",
            Self::Contains(_) => "contains",
            Self::NotContains(_) => "not_contains",
        }
    }
}

/// A version's rules, compiled once (regexes, JSON Schemas) and reusable from many threads.
#[derive(Debug)]
pub struct CompiledRules {
    rules: Vec<Compiled>,
}

impl CompiledRules {
    /// Compiles rules; an invalid or oversized regex or schema is
    /// [`crate::Error::InvalidPrompt`] naming the rule (`validations[1].pattern`), with every
    /// problem listed.
    pub fn compile(rules: &[ValidationRule]) -> Result<Self> {
        let (compiled, problems) = Self::compile_all(rules);
        if problems.is_empty() { Ok(compiled) } else { Err(Error::InvalidPrompt { problems }) }
    }

    /// Compiles what it can and lists every problem.
    pub(crate) fn compile_all(rules: &[ValidationRule]) -> (Self, Vec<Problem>) {
        let mut problems = Vec::new();
        if rules.len() > MAX_RULES {
            problems.push(Problem::new(
                "validations",
                ProblemCode::TooLarge,
                format!("{} validation rules, at most {MAX_RULES} allowed", rules.len()),
            ));
            return (Self { rules: Vec::new() }, problems);
        }
        let mut compiled = Vec::with_capacity(rules.len());
        for (i, rule) in rules.iter().enumerate() {
            match compile_rule(rule) {
                Ok(c) => compiled.push(c),
                Err((attr, code, message)) => {
                    problems.push(Problem::new(format!("validations[{i}].{attr}"), code, message))
                }
            }
        }
        (Self { rules: compiled }, problems)
    }

    /// Whether any rule parses the output as JSON (so `validatedOutput` applies).
    pub fn wants_json(&self) -> bool {
        self.rules.iter().any(|r| matches!(r, Compiled::Json | Compiled::JsonSchema { .. }))
    }

    /// What the first `json_schema` rule asks of the provider's structured output: its
    /// schema, and whether to send it in strict mode (the rule's `strict`, decided when it was
    /// compiled). The engine turns it into the provider request.
    pub fn structured_output(&self) -> Option<(&Value, bool)> {
        self.rules.iter().find_map(|r| match r {
            Compiled::JsonSchema { schema, strict, .. } => Some((schema, *strict)),
            _ => None,
        })
    }

    /// Whether there are no rules at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Applies every rule to `output`: the verdict, and the parsed JSON when a JSON rule
    /// applies and the output parsed (even if a schema then rejected it).
    pub fn check(&self, output: &str) -> (ValidationVerdict, Option<Value>) {
        let parsed: Option<std::result::Result<Value, String>> =
            self.wants_json().then(|| serde_json::from_str(extract_json(output)).map_err(|e| e.to_string()));
        let mut results = Vec::with_capacity(self.rules.len());
        for rule in &self.rules {
            let reason = match rule {
                Compiled::Json => match &parsed {
                    Some(Err(e)) => Some(format!("output is not valid JSON: {e}")),
                    _ => None,
                },
                Compiled::JsonSchema { validator, .. } => match &parsed {
                    Some(Ok(value)) => {
                        let errors: Vec<String> = validator
                            .iter_errors(value)
                            .take(MAX_REASON_ERRORS)
                            .map(|e| schema_error_text(&e))
                            .collect();
                        (!errors.is_empty())
                            .then(|| format!("output does not match the schema: {}", errors.join("; ")))
                    }
                    Some(Err(e)) => Some(format!("output is not valid JSON: {e}")),
                    None => Some("output was not parsed".to_string()),
                },
                Compiled::Regex(re) => (!re.is_match(output))
                    .then(|| format!("output does not match the pattern {:?}", re.as_str())),
                Compiled::MinLength(min) => {
                    let n = output.chars().count();
                    (n < *min).then(|| format!("output has {n} characters, fewer than the minimum {min}"))
                }
                Compiled::MaxLength(max) => {
                    let n = output.chars().count();
                    (n > *max).then(|| format!("output has {n} characters, more than the maximum {max}"))
                }
                Compiled::Contains(needle) => (!output.contains(needle.as_str()))
                    .then(|| format!("output does not contain {:?}", truncate(needle, 200))),
                Compiled::NotContains(needle) => output
                    .contains(needle.as_str())
                    .then(|| format!("output contains {:?}", truncate(needle, 200))),
            };
            results.push(RuleOutcome { rule: rule.kind().to_string(), passed: reason.is_none(), reason });
        }
        let passed = results.iter().all(|r| r.passed);
        (ValidationVerdict { passed, results }, parsed.and_then(|p| p.ok()))
    }
}

type RuleProblem = (&'static str, ProblemCode, String);

fn compile_rule(rule: &ValidationRule) -> std::result::Result<Compiled, RuleProblem> {
    Ok(match rule {
        ValidationRule::Json => Compiled::Json,
        ValidationRule::JsonSchema { schema, strict } => {
            let validator = build_schema(schema).map_err(|m| ("schema", ProblemCode::Schema, m))?;
            let unfit = match strict {
                StrictMode::Never => None,
                StrictMode::Auto | StrictMode::Always => strict_unfit(schema),
            };
            let strict = match (strict, unfit) {
                (StrictMode::Always, Some(u)) => {
                    return Err((
                        "schema",
                        ProblemCode::Schema,
                        format!(
                            "the schema does not fit the provider's strict structured-output mode, \
                             which `strict: true` asks for ({u}); fix it, or set `strict` to \
                             \"auto\" or false"
                        ),
                    ));
                }
                (StrictMode::Never, _) => false,
                (_, unfit) => unfit.is_none(),
            };
            Compiled::JsonSchema { schema: schema.clone(), strict, validator: Box::new(validator) }
        }
        ValidationRule::Regex { pattern } => {
            if pattern.len() > MAX_PATTERN_BYTES {
                return Err((
                    "pattern",
                    ProblemCode::TooLarge,
                    format!("pattern is {} bytes, at most {MAX_PATTERN_BYTES} allowed", pattern.len()),
                ));
            }
            let re = regex::RegexBuilder::new(pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| match e {
                    regex::Error::CompiledTooBig(limit) => (
                        "pattern",
                        ProblemCode::TooLarge,
                        format!("pattern compiles to more than the {limit}-byte limit"),
                    ),
                    e => ("pattern", ProblemCode::InvalidRegex, format!("invalid regex: {e}")),
                })?;
            Compiled::Regex(re)
        }
        ValidationRule::MinLength { value } => Compiled::MinLength(*value),
        ValidationRule::MaxLength { value } => Compiled::MaxLength(*value),
        ValidationRule::Contains { value } | ValidationRule::NotContains { value } => {
            if value.is_empty() {
                return Err(("value", ProblemCode::Invalid, "the text to look for is empty".to_string()));
            }
            if value.len() > MAX_NEEDLE_BYTES {
                return Err((
                    "value",
                    ProblemCode::TooLarge,
                    format!("value is {} bytes, at most {MAX_NEEDLE_BYTES} allowed", value.len()),
                ));
            }
            if matches!(rule, ValidationRule::Contains { .. }) {
                Compiled::Contains(value.clone())
            } else {
                Compiled::NotContains(value.clone())
            }
        }
    })
}

/// The JSON text inside `output`: trimmed, and unwrapped from one Markdown code fence
/// (```` ```json ```` or ```` ``` ````) when the whole output is fenced.
pub fn extract_json(output: &str) -> &str {
    let trimmed = output.trim();
    let Some(rest) = trimmed.strip_prefix("```") else {
        return trimmed;
    };
    let Some(body) = rest.strip_suffix("```") else {
        return trimmed;
    };
    // The info string runs to the end of the first line; only `json` (any case) or none.
    let (info, body) = body.split_once('\n').unwrap_or((body, ""));
    let info = info.trim();
    if info.is_empty() || info.eq_ignore_ascii_case("json") { body.trim() } else { trimmed }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn kind_is_the_serialised_type() {
        for rule in [
            ValidationRule::Json,
            ValidationRule::JsonSchema { schema: json!({}), strict: Default::default() },
            ValidationRule::Regex { pattern: "a".into() },
            ValidationRule::MinLength { value: 1 },
            ValidationRule::MaxLength { value: 1 },
            ValidationRule::Contains { value: "a".into() },
            ValidationRule::NotContains { value: "a".into() },
        ] {
            assert_eq!(serde_json::to_value(&rule).unwrap()["type"], json!(rule.kind()));
        }
        assert_eq!(ValidationRule::NotContains { value: "a".into() }.kind(), "not_contains");
    }

    fn compile(rules: Vec<ValidationRule>) -> CompiledRules {
        CompiledRules::compile(&rules).expect("rules compile")
    }

    fn problems(rules: Vec<ValidationRule>) -> Vec<(String, String)> {
        match CompiledRules::compile(&rules) {
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
    fn json_accepts_whitespace_and_one_fence() {
        let rules = compile(vec![ValidationRule::Json]);
        for (output, expected) in [
            ("{\"a\":1}", json!({"a": 1})),
            ("  \n[1, 2]\n ", json!([1, 2])),
            ("```json\n{\"a\": true}\n```", json!({"a": true})),
            ("```JSON\n\"x\"\n```", json!("x")),
            ("\n```\n{\"a\": null}\n```\n", json!({"a": null})),
        ] {
            let (verdict, parsed) = rules.check(output);
            assert!(verdict.passed, "{output:?}: {verdict:?}");
            assert_eq!(parsed, Some(expected), "{output:?}");
        }
        for output in ["Here it is: {\"a\":1}", "```python\n{}\n```", "{\"a\":", "", "```json\n{}"] {
            let (verdict, parsed) = rules.check(output);
            assert!(!verdict.passed, "{output:?}");
            assert_eq!(parsed, None);
            let reason = verdict.results[0].reason.as_deref().expect("reason");
            assert!(reason.starts_with("output is not valid JSON"), "{reason}");
        }
    }

    #[test]
    fn json_schema_checks_and_still_returns_parsed_value() {
        let rules = compile(vec![ValidationRule::JsonSchema {
            schema: json!({"type": "object", "required": ["score"], "properties": {"score": {"type": "number"}}}),
            strict: StrictMode::Auto,
        }]);
        let (verdict, parsed) = rules.check("{\"score\": 0.5}");
        assert!(verdict.passed);
        assert_eq!(parsed, Some(json!({"score": 0.5})));
        let (verdict, parsed) = rules.check("{\"score\": \"high\"}");
        assert!(!verdict.passed);
        assert_eq!(parsed, Some(json!({"score": "high"})));
        let reason = verdict.results[0].reason.as_deref().expect("reason");
        assert!(reason.contains("/score"), "{reason}");
        assert!(rules.wants_json());
        let (schema, strict) = rules.structured_output().expect("a schema to send");
        assert_eq!(schema.get("required"), Some(&json!(["score"])));
        // No `additionalProperties: false`: not fit for strict mode, so sent non-strict.
        assert!(!strict);
    }

    #[test]
    fn remote_refs_are_never_fetched() {
        // No network is needed for this test to pass: the retriever refuses before any I/O.
        // 192.0.2.0/24 is TEST-NET-1: even an attempt could not reach anything.
        for schema in [
            json!({"$ref": "http://192.0.2.1/schema.json"}),
            json!({"properties": {"a": {"$ref": "https://192.0.2.1/defs.json#/a"}}}),
            json!({"$ref": "file:///etc/passwd"}),
        ] {
            let rules =
                vec![ValidationRule::Json, ValidationRule::JsonSchema { schema, strict: Default::default() }];
            let Err(Error::InvalidPrompt { problems }) = CompiledRules::compile(&rules) else {
                panic!("a remote $ref must be rejected")
            };
            assert_eq!(problems.len(), 1);
            assert_eq!(
                (problems[0].field.as_str(), problems[0].code.as_str()),
                ("validations[1].schema", "schema")
            );
            assert!(problems[0].message.contains("is not allowed"), "{}", problems[0].message);
        }
        // Local refs and known meta-schemas need no fetching and work.
        let rules = compile(vec![ValidationRule::JsonSchema {
            schema: json!({
                "$schema": "http://json-schema.org/draft-07/schema#",
                "definitions": {"n": {"type": "integer"}},
                "properties": {"n": {"$ref": "#/definitions/n"}}
            }),
            strict: StrictMode::Auto,
        }]);
        assert!(rules.check("{\"n\": 1}").0.passed);
        assert!(!rules.check("{\"n\": 1.5}").0.passed);
    }

    fn strict_rule(schema: Value, strict: StrictMode) -> ValidationRule {
        ValidationRule::JsonSchema { schema, strict }
    }

    #[test]
    fn strict_is_decided_by_the_rule_and_the_schema_fitness() {
        let fit = json!({"type": "object", "additionalProperties": false, "required": ["city", "zip"],
                         "properties": {"city": {"type": "string"}, "zip": {"type": ["string", "null"]}}});
        let optional = json!({"type": "object", "required": ["city"],
                              "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}});
        let array_root = json!({"type": "array", "items": {"type": "string"}});
        let sent = |schema: &Value, mode| {
            let rules = compile(vec![strict_rule(schema.clone(), mode)]);
            let (sent, strict) = rules.structured_output().expect("a schema to send");
            assert_eq!(sent, schema);
            strict
        };
        assert!(sent(&fit, StrictMode::Auto));
        assert!(sent(&fit, StrictMode::Always));
        assert!(!sent(&fit, StrictMode::Never));
        for unfit in [&optional, &array_root] {
            assert!(!sent(unfit, StrictMode::Auto), "{unfit}");
            assert!(!sent(unfit, StrictMode::Never), "{unfit}");
        }
        // `strict: true` with an unfit schema is refused, naming the rule, the path and why.
        let got = problems(vec![
            ValidationRule::Json,
            strict_rule(optional.clone(), StrictMode::Always),
            strict_rule(array_root.clone(), StrictMode::Always),
        ]);
        assert_eq!(got, vec![p("validations[1].schema", "schema"), p("validations[2].schema", "schema")]);
        let Err(Error::InvalidPrompt { problems }) =
            CompiledRules::compile(&[strict_rule(optional.clone(), StrictMode::Always)])
        else {
            panic!("strict: true with an optional property must be refused")
        };
        let message = &problems[0].message;
        assert!(
            message.contains("at the root") && message.contains("`zip` is not in `required`"),
            "{message}"
        );
        // The rule is still checked on the output, whatever is sent.
        let rules = compile(vec![strict_rule(optional, StrictMode::Auto)]);
        assert!(rules.check(r#"{"city": "Paris"}"#).0.passed);
        assert!(!rules.check(r#"{"zip": "75001"}"#).0.passed);
    }

    #[test]
    fn strict_serialises_as_auto_true_or_false() {
        let read = |v: Value| serde_json::from_value::<ValidationRule>(v);
        let schema = json!({"type": "object"});
        // Stored rules without the field read as auto; auto is not written back.
        let old = json!({"type": "json_schema", "schema": schema});
        assert_eq!(read(old.clone()).ok(), Some(strict_rule(schema.clone(), StrictMode::Auto)));
        assert_eq!(serde_json::to_value(strict_rule(schema.clone(), StrictMode::Auto)).ok(), Some(old));
        for (word, mode) in [
            (json!("auto"), StrictMode::Auto),
            (json!(true), StrictMode::Always),
            (json!(false), StrictMode::Never),
        ] {
            let v = json!({"type": "json_schema", "schema": schema, "strict": word});
            assert_eq!(read(v).ok(), Some(strict_rule(schema.clone(), mode)));
        }
        let v = json!({"type": "json_schema", "schema": schema, "strict": true});
        assert_eq!(serde_json::to_value(strict_rule(schema.clone(), StrictMode::Always)).ok(), Some(v));
        for bad in [json!("yes"), json!(1), json!(null)] {
            let err = read(json!({"type": "json_schema", "schema": schema, "strict": bad}))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("strict must be \"auto\", true or false"), "{err}");
        }
    }

    #[test]
    fn invalid_rules_name_their_index() {
        let got = problems(vec![
            ValidationRule::MinLength { value: 1 },
            ValidationRule::Regex { pattern: "(unclosed".into() },
            ValidationRule::Regex { pattern: "\\w{1000}{1000}".into() },
            ValidationRule::Regex { pattern: "a".repeat(MAX_PATTERN_BYTES + 1) },
            ValidationRule::JsonSchema { schema: json!({"type": 12}), strict: Default::default() },
            ValidationRule::Contains { value: String::new() },
        ]);
        assert_eq!(
            got,
            vec![
                p("validations[1].pattern", "invalid_regex"),
                p("validations[2].pattern", "too_large"),
                p("validations[3].pattern", "too_large"),
                p("validations[4].schema", "schema"),
                p("validations[5].value", "invalid"),
            ]
        );
        let many = vec![ValidationRule::Json; MAX_RULES + 1];
        assert_eq!(problems(many), vec![p("validations", "too_large")]);
    }

    #[test]
    fn text_rules() {
        let rules = compile(vec![
            ValidationRule::Regex { pattern: r"^\d+ items$".into() },
            ValidationRule::MinLength { value: 7 },
            ValidationRule::MaxLength { value: 8 },
            ValidationRule::Contains { value: "items".into() },
            ValidationRule::NotContains { value: "Items".into() },
        ]);
        let (verdict, parsed) = rules.check("3 items");
        assert!(verdict.passed, "{verdict:?}");
        assert_eq!(parsed, None);
        assert!(verdict.results.iter().all(|r| r.reason.is_none()));
        let kinds: Vec<_> = verdict.results.iter().map(|r| r.rule.as_str()).collect();
        assert_eq!(kinds, ["regex", "min_length", "max_length", "contains", "not_contains"]);

        let (verdict, _) = rules.check("12345 Items");
        let failed: Vec<_> = verdict.results.iter().filter(|r| !r.passed).map(|r| r.rule.as_str()).collect();
        assert_eq!(failed, ["regex", "max_length", "contains", "not_contains"]);
        assert!(!verdict.passed);
        assert!(verdict.results.iter().all(|r| r.passed == r.reason.is_none()));
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        let rules =
            compile(vec![ValidationRule::MinLength { value: 3 }, ValidationRule::MaxLength { value: 3 }]);
        assert!(rules.check("ééé").0.passed); // 6 bytes, 3 characters
        assert!(!rules.check("éé").0.passed);
        assert!(!rules.check("éééé").0.passed);
    }

    #[test]
    fn no_rules_pass_and_parse_nothing() {
        let rules = compile(Vec::new());
        let (verdict, parsed) = rules.check("anything");
        assert!(verdict.passed && verdict.results.is_empty() && parsed.is_none());
        assert!(!rules.wants_json() && rules.structured_output().is_none() && rules.is_empty());
    }
}
