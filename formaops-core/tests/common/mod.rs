//! Helpers shared by the core's integration tests.
#![allow(dead_code)]

use formaops_core::ids::{PromptId, UserId};
use formaops_core::prompt::{ModelConfig, PromptVersion};
use formaops_core::variables::{VariableDefinition, VariableType};
use serde_json::{Map, Value};

/// A required variable of `kind` without default.
pub fn var(name: &str, kind: VariableType) -> VariableDefinition {
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

/// A version with `template` and the given variables.
pub fn version(template: &str, variables: Vec<VariableDefinition>) -> PromptVersion {
    PromptVersion {
        prompt_id: PromptId::new(),
        version: 1,
        template: template.to_string(),
        system_template: None,
        variables,
        validations: Vec::new(),
        model: ModelConfig::default(),
        created_at: chrono::Utc::now(),
        author: UserId::new(),
    }
}

/// The object inside a JSON value (panics in tests otherwise).
pub fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("expected a JSON object, got {other}"),
    }
}
