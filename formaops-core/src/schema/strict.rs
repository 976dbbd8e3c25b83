//! Whether a JSON Schema fits OpenAI's strict structured-output mode
//! (`response_format: {type: "json_schema", json_schema: {strict: true, ...}}`).
//!
//! Strict mode accepts a subset of JSON Schema only; a schema outside it makes the provider
//! answer 400 to every request. The rules below follow OpenAI's "Structured Outputs —
//! Supported schemas" guide (<https://platform.openai.com/docs/guides/structured-outputs#supported-schemas>).
//! That page could not be fetched from here; the rules were taken from a third-party summary
//! of it (<https://jsonschemaprofiles.unitvectorylabs.com/schemas/openai>, February 2026
//! baseline) and are deliberately conservative: a keyword not known to be supported makes a
//! schema unfit, which with the default `strict: "auto"` only means the schema is sent with
//! `strict: false`.
//!
//! - the root is `type: "object"` (not an array, not `anyOf`);
//! - every object schema, at any depth (`properties`, `items`, `anyOf`, `$defs`), has
//!   `additionalProperties: false` and lists every key of `properties` in `required`
//!   (an optional field is written as a required one whose type allows `null`);
//! - only the keywords in [`SUPPORTED_KEYWORDS`] appear; `$ref`s are local (`#...`);
//! - at most [`MAX_STRICT_PROPERTIES`] object properties in all, [`MAX_STRICT_NESTING`]
//!   levels of nested objects and [`MAX_STRICT_ENUM_VALUES`] enum values in all.

use std::fmt;

use serde_json::{Map, Value};

use super::{MAX_JSON_DEPTH, nests_deeper_than};

/// Most object properties in all, as OpenAI documents it for strict mode.
pub const MAX_STRICT_PROPERTIES: usize = 5000;
/// Most levels of nested object schemas (the root object is level 1), as OpenAI documents it.
pub const MAX_STRICT_NESTING: usize = 10;
/// Most `enum` values in all, as OpenAI documents it.
pub const MAX_STRICT_ENUM_VALUES: usize = 1000;

/// The keywords a strict schema may use: structure, the documented string / number / array
/// constraints, and annotations.
pub const SUPPORTED_KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "anyOf",
    "$ref",
    "$defs",
    "definitions",
    "pattern",
    "format",
    "multipleOf",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "title",
    "description",
    "$comment",
    "$schema",
];

const TYPES: &[&str] = &["string", "number", "integer", "boolean", "object", "array", "null"];

/// Why a schema does not fit strict mode: where (a JSON Pointer into the schema, `""` for the
/// root) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrictUnfit {
    /// JSON Pointer (RFC 6901) of the schema node at fault; `""` is the root.
    pub path: String,
    /// A sentence for people.
    pub reason: String,
}

impl fmt::Display for StrictUnfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "at the root: {}", self.reason)
        } else {
            write!(f, "at {}: {}", self.path, self.reason)
        }
    }
}

/// The first reason `schema` does not fit OpenAI's strict mode, or `None` when it fits.
pub fn strict_unfit(schema: &Value) -> Option<StrictUnfit> {
    if nests_deeper_than(schema, MAX_JSON_DEPTH) {
        return Some(unfit("", format!("the schema nests deeper than {MAX_JSON_DEPTH} levels")));
    }
    let Value::Object(root) = schema else {
        return Some(unfit("", "the root must be a schema object with `type: \"object\"`"));
    };
    if root.contains_key("anyOf") {
        return Some(unfit("", "the root must not be `anyOf`; it must be `type: \"object\"`"));
    }
    if root.get("type").and_then(Value::as_str) != Some("object") {
        let found = root.get("type").map(|t| t.to_string()).unwrap_or_else(|| "no type".to_string());
        return Some(unfit("", format!("the root must be `type: \"object\"` (found {found})")));
    }
    let mut walk = Walk { properties: 0, enum_values: 0 };
    walk.node(schema, &mut String::new(), 0).err()
}

fn unfit(path: &str, reason: impl Into<String>) -> StrictUnfit {
    StrictUnfit { path: path.to_string(), reason: reason.into() }
}

struct Walk {
    properties: usize,
    enum_values: usize,
}

type Step = Result<(), StrictUnfit>;

impl Walk {
    /// Checks one schema node at `path`, inside `level` enclosing object schemas.
    fn node(&mut self, node: &Value, path: &mut String, level: usize) -> Step {
        let Value::Object(map) = node else {
            return Err(unfit(path, "a schema must be an object (boolean schemas are not supported)"));
        };
        if let Some(key) = map.keys().find(|k| !SUPPORTED_KEYWORDS.contains(&k.as_str())) {
            return Err(unfit(path, format!("keyword `{key}` is not supported in strict mode")));
        }
        let is_object = check_type(map.get("type"), path)? || map.contains_key("properties");
        if let Some(r) = map.get("$ref") {
            match r.as_str() {
                Some(r) if r.starts_with('#') => {}
                _ => return Err(unfit(path, "`$ref` must be a local reference (`#...`)")),
            }
        }
        if let Some(values) = map.get("enum") {
            let Some(values) = values.as_array() else {
                return Err(unfit(path, "`enum` must be an array"));
            };
            self.enum_values += values.len();
            if self.enum_values > MAX_STRICT_ENUM_VALUES {
                return Err(unfit(path, format!("more than {MAX_STRICT_ENUM_VALUES} enum values in all")));
            }
        }
        let level = if is_object { self.object(map, path, level)? } else { level };
        if map.get("additionalProperties").is_some_and(|a| a != &Value::Bool(false)) {
            return Err(unfit(path, "`additionalProperties` must be `false`"));
        }
        for defs in ["$defs", "definitions"] {
            if let Some(d) = map.get(defs) {
                let Some(d) = d.as_object() else {
                    return Err(unfit(path, format!("`{defs}` must be an object")));
                };
                for (name, def) in d {
                    // A definition starts its own nesting count: where it is used is not known here.
                    self.child(def, path, &[defs, name], 0)?;
                }
            }
        }
        if let Some(props) = map.get("properties").and_then(Value::as_object) {
            for (name, prop) in props {
                self.child(prop, path, &["properties", name], level)?;
            }
        }
        if let Some(items) = map.get("items") {
            if !items.is_object() {
                return Err(unfit(path, "`items` must be one schema (tuple forms are not supported)"));
            }
            self.child(items, path, &["items"], level)?;
        }
        if let Some(any) = map.get("anyOf") {
            let Some(any) = any.as_array().filter(|a| !a.is_empty()) else {
                return Err(unfit(path, "`anyOf` must be a non-empty array"));
            };
            for (i, branch) in any.iter().enumerate() {
                self.child(branch, path, &["anyOf", &i.to_string()], level)?;
            }
        }
        Ok(())
    }

    /// The object rules; returns the nesting level inside this object.
    fn object(&mut self, map: &Map<String, Value>, path: &str, level: usize) -> Result<usize, StrictUnfit> {
        let level = level + 1;
        if level > MAX_STRICT_NESTING {
            return Err(unfit(path, format!("objects nest more than {MAX_STRICT_NESTING} levels")));
        }
        let empty = Map::new();
        let props = match map.get("properties") {
            None => &empty,
            Some(Value::Object(p)) => p,
            Some(_) => return Err(unfit(path, "`properties` must be an object")),
        };
        let required: Vec<&str> = match map.get("required") {
            None => Vec::new(),
            Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).collect(),
            Some(_) => return Err(unfit(path, "`required` must be an array of property names")),
        };
        if let Some(missing) = props.keys().find(|k| !required.contains(&k.as_str())) {
            return Err(unfit(
                path,
                format!(
                    "property `{missing}` is not in `required`: strict mode needs every property \
                     required (make it nullable, e.g. `type: [\"string\", \"null\"]`, instead)"
                ),
            ));
        }
        if map.get("additionalProperties") != Some(&Value::Bool(false)) {
            return Err(unfit(path, "an object must have `additionalProperties: false`"));
        }
        self.properties += props.len();
        if self.properties > MAX_STRICT_PROPERTIES {
            return Err(unfit(path, format!("more than {MAX_STRICT_PROPERTIES} object properties in all")));
        }
        Ok(level)
    }

    fn child(&mut self, node: &Value, path: &mut String, segments: &[&str], level: usize) -> Step {
        let len = path.len();
        for s in segments {
            path.push('/');
            path.push_str(&s.replace('~', "~0").replace('/', "~1"));
        }
        let result = self.node(node, path, level);
        path.truncate(len);
        result
    }
}

/// Checks `type` (a known type name or an array of them); returns whether it includes
/// `object`.
fn check_type(t: Option<&Value>, path: &str) -> Result<bool, StrictUnfit> {
    let names: Vec<&Value> = match t {
        None => return Ok(false),
        Some(Value::Array(a)) if !a.is_empty() => a.iter().collect(),
        Some(one) => vec![one],
    };
    let mut object = false;
    for n in names {
        match n.as_str() {
            Some(name) if TYPES.contains(&name) => object |= name == "object",
            _ => return Err(unfit(path, format!("`type` {n} is not one of {}", TYPES.join(", ")))),
        }
    }
    Ok(object)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn reason(schema: Value) -> (String, String) {
        let u = strict_unfit(&schema).map(|u| (u.path, u.reason));
        u.unwrap_or_else(|| panic!("expected unfit: {schema}"))
    }

    fn fits(schema: Value) {
        assert_eq!(strict_unfit(&schema), None, "{schema}");
    }

    #[test]
    fn unfit_schemas_name_the_first_fault_and_where() {
        // The issue's example: an optional property, no `additionalProperties: false`.
        let (path, why) = reason(json!({
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": false
        }));
        assert_eq!(path, "");
        assert!(why.contains("`zip` is not in `required`"), "{why}");

        let (path, why) = reason(json!({
            "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]
        }));
        assert_eq!((path.as_str(), why.contains("additionalProperties: false")), ("", true), "{why}");

        let (path, why) = reason(json!({"type": "array", "items": {"type": "string"}}));
        assert_eq!(path, "");
        assert!(why.contains("root must be `type: \"object\"`") && why.contains("array"), "{why}");

        let (path, why) = reason(json!({"anyOf": [{"type": "object"}]}));
        assert_eq!(path, "");
        assert!(why.contains("must not be `anyOf`"), "{why}");

        // A nested object missing `required`.
        let (path, why) = reason(json!({
            "type": "object", "additionalProperties": false, "required": ["address"],
            "properties": {"address": {
                "type": "object", "additionalProperties": false,
                "properties": {"street": {"type": "string"}}
            }}
        }));
        assert_eq!(path, "/properties/address");
        assert!(why.contains("`street`"), "{why}");

        // An anyOf branch that is an open object.
        let (path, why) = reason(json!({
            "type": "object", "additionalProperties": false, "required": ["v"],
            "properties": {"v": {"anyOf": [
                {"type": "string"},
                {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}
            ]}}
        }));
        assert_eq!(path, "/properties/v/anyOf/1");
        assert!(why.contains("additionalProperties"), "{why}");

        // A `$ref` to an unfit definition (`~` and `/` escaped in the pointer).
        let (path, why) = reason(json!({
            "type": "object", "additionalProperties": false, "required": ["p"],
            "properties": {"p": {"$ref": "#/$defs/a~b"}},
            "$defs": {"a~b": {"type": "object", "additionalProperties": false,
                               "properties": {"q/r": {"type": "string"}}}}
        }));
        assert_eq!(path, "/$defs/a~0b");
        assert!(why.contains("`q/r`"), "{why}");

        // Unsupported keywords, anywhere.
        for (kw, v) in [("allOf", json!([{}])), ("oneOf", json!([{}])), ("not", json!({})), ("if", json!({}))]
        {
            let mut s = json!({"type": "object", "additionalProperties": false, "required": ["a"],
                               "properties": {"a": {"type": "string"}}});
            s["properties"]["a"][kw] = v;
            let (path, why) = reason(s);
            assert_eq!(path, "/properties/a");
            assert!(why.contains(&format!("`{kw}`")), "{why}");
        }
        let (path, _) = reason(json!({
            "type": "object", "additionalProperties": false, "required": ["a"],
            "properties": {"a": {"type": "object", "additionalProperties": {"type": "string"}}}
        }));
        assert_eq!(path, "/properties/a");
        let (path, why) = reason(json!({
            "type": "object", "additionalProperties": false, "required": ["a"],
            "properties": {"a": {"type": "array", "items": [{"type": "string"}]}}
        }));
        assert_eq!(path, "/properties/a");
        assert!(why.contains("tuple"), "{why}");
        let (_, why) = reason(json!({
            "type": "object", "additionalProperties": false, "required": ["a"],
            "properties": {"a": {"$ref": "https://example.com/s.json"}}
        }));
        assert!(why.contains("local"), "{why}");
        let (_, why) = reason(json!({"type": "object", "additionalProperties": false, "required": ["a"],
                                     "properties": {"a": {"type": "date"}}}));
        assert!(why.contains("`type` \"date\""), "{why}");
        let (_, why) = reason(json!(true));
        assert!(why.contains("root"), "{why}");
    }

    #[test]
    fn fitting_schemas_pass() {
        fits(json!({"type": "object", "additionalProperties": false}));
        fits(json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Order", "description": "An order",
            "type": "object", "additionalProperties": false,
            "required": ["id", "items", "status", "note", "customer"],
            "properties": {
                "id": {"type": "string", "pattern": "^[A-Z]+$"},
                "items": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": false, "required": ["sku", "qty"],
                    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}
                }},
                "status": {"type": "string", "enum": ["open", "paid"]},
                "note": {"type": ["string", "null"]},
                "customer": {"anyOf": [{"$ref": "#/$defs/person"}, {"type": "null"}]}
            },
            "$defs": {"person": {
                "type": ["object", "null"], "additionalProperties": false, "required": ["name", "friends"],
                "properties": {"name": {"type": "string"},
                               "friends": {"type": "array", "items": {"$ref": "#/$defs/person"}}}
            }}
        }));
    }

    #[test]
    fn limits_are_enforced() {
        // MAX_STRICT_NESTING levels of objects fit; one more does not.
        let nest = |levels: usize| {
            let mut s = json!({"type": "object", "additionalProperties": false});
            for _ in 1..levels {
                s = json!({"type": "object", "additionalProperties": false, "required": ["n"],
                           "properties": {"n": s}});
            }
            s
        };
        fits(nest(MAX_STRICT_NESTING));
        let (path, why) = reason(nest(MAX_STRICT_NESTING + 1));
        assert_eq!(path, "/properties/n".repeat(MAX_STRICT_NESTING));
        assert!(why.contains("nest more than"), "{why}");

        let values: Vec<Value> = (0..=MAX_STRICT_ENUM_VALUES).map(|i| json!(i)).collect();
        let (_, why) = reason(json!({"type": "object", "additionalProperties": false, "required": ["e"],
                                     "properties": {"e": {"enum": values}}}));
        assert!(why.contains("enum values"), "{why}");

        let names: Vec<String> = (0..=MAX_STRICT_PROPERTIES).map(|i| format!("p{i}")).collect();
        let props: Map<String, Value> =
            names.iter().map(|n| (n.clone(), json!({"type": "string"}))).collect();
        let (_, why) = reason(json!({"type": "object", "additionalProperties": false,
                                     "required": names, "properties": props}));
        assert!(why.contains("object properties"), "{why}");
    }
}
