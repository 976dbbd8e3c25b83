//! The key styles of the two sides: Python's `snake_case` and the JSON API's `camelCase`, and
//! which JSON keys hold user data (never renamed) or timestamps (`datetime` in Python).
//!
//! The two key lists mirror the core records' schema (the fields the OpenAPI document marks as
//! free-form JSON or `date-time`) and are kept in step with it by hand: no test compares them
//! with the document (`formaops-py/tests/rest_fields.json` holds field names only, and the test
//! below checks the key spelling), so a new such field in core must be added here.

/// Keys whose values are user data (JSON key spelling).
const RAW_KEYS: &[&str] = &["inputs", "validatedOutput", "schema", "defaultValue", "expected"];

/// Keys whose values are RFC 3339 timestamps (JSON key spelling).
const TIMESTAMP_KEYS: &[&str] = &[
    "createdAt",
    "updatedAt",
    "runAfter",
    "deadlineAt",
    "startedAt",
    "finishedAt",
    "at",
    "since",
    "until",
    "start",
];

/// Whether values under this key (JSON spelling) are user data, whose keys are never renamed.
pub fn is_raw_key(key: &str) -> bool {
    RAW_KEYS.contains(&key)
}

/// `maxCompletionTokens` -> `max_completion_tokens`.
pub fn camel_to_snake(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `max_completion_tokens` -> `maxCompletionTokens`; a key without `_` is returned unchanged
/// (so camelCase input is accepted as well).
pub fn snake_to_camel(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut upper = false;
    for c in s.chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether values under this key (JSON spelling) are RFC 3339 timestamps.
pub fn is_timestamp_key(key: &str) -> bool {
    TIMESTAMP_KEYS.contains(&key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_styles_round_trip() {
        assert_eq!(camel_to_snake("maxCompletionTokens"), "max_completion_tokens");
        assert_eq!(snake_to_camel("max_completion_tokens"), "maxCompletionTokens");
        assert_eq!(snake_to_camel("defaultValue"), "defaultValue");
        assert_eq!(snake_to_camel("template"), "template");
        assert_eq!(camel_to_snake("id"), "id");
    }
}
