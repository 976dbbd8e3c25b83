//! User-supplied JSON Schemas (of `json` variables and `json_schema` output rules): a size
//! cap, no remote `$ref` ever fetched, linear-time `pattern` regexes, and error text for
//! people. [`variables`](crate::variables) and [`validation`](crate::validation) both build
//! their schemas here.

use serde_json::Value;

pub mod strict;

/// Compiled-size limit of a regex (also of `pattern` keywords in JSON Schemas), in bytes.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Deepest nesting of arrays/objects accepted in a `json` value (and in a user schema).
pub const MAX_JSON_DEPTH: usize = 64;
/// Largest JSON Schema, in bytes as JSON.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;

/// A retriever that refuses every external resource: user-supplied schemas must never make
/// the server fetch anything (SSRF), whatever features of `jsonschema` are enabled.
struct NoRemoteRefs;

impl jsonschema::Retrieve for NoRemoteRefs {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> std::result::Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!("remote $ref {} is not allowed: schemas must be self-contained", uri.as_str()).into())
    }
}

/// Compiles a user-supplied JSON Schema: size-limited, no remote `$ref`s, linear-time regexes
/// for `pattern`. The error is a message for people.
pub(crate) fn build_schema(schema: &Value) -> std::result::Result<jsonschema::Validator, String> {
    // Compiling (and serialising, below) recurse once per level: bound the depth first.
    if nests_deeper_than(schema, MAX_JSON_DEPTH) {
        return Err(format!("schema is nested deeper than {MAX_JSON_DEPTH} levels"));
    }
    if serde_json::to_vec(schema).map(|v| v.len()).unwrap_or(usize::MAX) > MAX_SCHEMA_BYTES {
        return Err(format!("schema is larger than {MAX_SCHEMA_BYTES} bytes"));
    }
    jsonschema::options()
        .with_retriever(NoRemoteRefs)
        .with_pattern_options(jsonschema::PatternOptions::regex().size_limit(REGEX_SIZE_LIMIT))
        .build(schema)
        .map_err(|e| format!("invalid JSON Schema: {}", truncate(&e.to_string(), 500)))
}

/// Whether `value` nests arrays/objects more than `limit` levels deep (a scalar is level 0).
/// Iterative, so any depth is safe to ask about.
pub(crate) fn nests_deeper_than(value: &Value, limit: usize) -> bool {
    let mut stack = vec![(value, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        match v {
            Value::Array(_) | Value::Object(_) if depth >= limit => return true,
            Value::Array(items) => stack.extend(items.iter().map(|c| (c, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|c| (c, depth + 1))),
            _ => {}
        }
    }
    false
}

/// One schema error as `at <path>: <message>`.
pub(crate) fn schema_error_text(e: &jsonschema::ValidationError<'_>) -> String {
    let path = e.instance_path().to_string();
    let message = truncate(&e.to_string(), 200).to_string();
    if path.is_empty() { message } else { format!("at {path}: {message}") }
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
