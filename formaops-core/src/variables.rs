//! Typed variables of a prompt and validation of execution inputs against them.
//!
//! (Types only for now; validation logic lands with the core-rules work.)

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The type of a declared variable.
///
/// The spec's `string | number | boolean`, plus `integer`, `enum` (one of `values`) and
/// `json` (any JSON value, optionally checked against `schema`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VariableType {
    String,
    Number,
    Integer,
    Boolean,
    Enum,
    Json,
}

/// A variable a template may use (the spec's `VariableDefinition`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VariableDefinition {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: VariableType,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
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
