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

/// Limits on execution inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputLimits {
    /// Largest single string value, in bytes.
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

/// Checks a version's variable definitions (names, duplicates, defaults of the right type,
/// enum values, JSON Schemas). INTERIM: full checks land with the core-rules work.
pub fn check_definitions(definitions: &[VariableDefinition], limits: &InputLimits) -> crate::Result<()> {
    let _ = (definitions, limits);
    Ok(())
}

/// Validates raw `inputs` against `definitions`: the complete typed set (defaults filled in),
/// or [`crate::Error::InvalidInputs`] listing every problem by variable name.
/// INTERIM: full checks land with the core-rules work.
pub fn validate_inputs(
    definitions: &[VariableDefinition],
    inputs: &serde_json::Map<String, Value>,
    limits: &InputLimits,
) -> crate::Result<serde_json::Map<String, Value>> {
    let _ = limits;
    let mut out = inputs.clone();
    for d in definitions {
        if let (false, Some(v)) = (out.contains_key(&d.name), &d.default_value) {
            out.insert(d.name.clone(), v.clone());
        }
    }
    Ok(out)
}
