//! Prompts and their immutable versions.
//!
//! A [`Prompt`] is a named container owned by one user. Every create or update writes a new
//! [`PromptVersion`]; versions are never modified, and executions pin the version they ran.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{PromptId, UserId};
use crate::validation::ValidationRule;
use crate::variables::VariableDefinition;

mod check;

pub use check::check_version;

/// Lifecycle of a prompt. Archived prompts keep their history and executions readable but
/// cannot be executed or updated; their name becomes free for a new prompt.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum PromptStatus {
    Active,
    Archived,
}

impl PromptStatus {
    /// The word as serialised (`ACTIVE`, `ARCHIVED`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The status named by its serialised word (case-sensitive); `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

/// A named prompt owned by a user; its content lives in [`PromptVersion`]s.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prompt {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: PromptId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub user_id: UserId,
    pub name: String,
    pub description: Option<String>,
    pub status: PromptStatus,
    /// Number of the newest version (versions count from 1).
    pub current_version: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Sampling parameters passed to the model. `None` means "the provider's default".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
}

/// Which provider and model a version runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelConfig {
    /// Name of a configured provider (`mock`, `openai`, `local`, ...). `None`: the engine's
    /// default provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Model name as the provider knows it (`gpt-4o-mini`).
    pub model: String,
    #[serde(default)]
    pub parameters: ModelParameters,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self { provider: None, model: DEFAULT_MODEL.to_string(), parameters: ModelParameters::default() }
    }
}

/// Model used when a prompt names none.
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";

/// One immutable version of a prompt.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptVersion {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub prompt_id: PromptId,
    pub version: u32,
    /// The user message template (minijinja syntax).
    pub template: String,
    /// Optional system message template, rendered with the same variables.
    pub system_template: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub variables: Vec<VariableDefinition>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub validations: Vec<ValidationRule>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub model: ModelConfig,
    pub created_at: DateTime<Utc>,
    /// The user who wrote this version.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub author: UserId,
}

/// What a caller supplies to create a prompt (the spec's `CreatePromptRequest`, plus model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromptSpec {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub template: String,
    #[serde(default)]
    pub system_template: Option<String>,
    #[serde(default)]
    pub variables: Vec<VariableDefinition>,
    #[serde(default)]
    pub validations: Vec<ValidationRule>,
    #[serde(default)]
    pub model: Option<ModelConfig>,
}

/// What a caller supplies to update a prompt: every field optional; what is omitted is
/// carried over from the current version. Any update writes a new version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromptUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub system_template: Option<String>,
    #[serde(default)]
    pub variables: Option<Vec<VariableDefinition>>,
    #[serde(default)]
    pub validations: Option<Vec<ValidationRule>>,
    #[serde(default)]
    pub model: Option<ModelConfig>,
    /// Optimistic concurrency: when set, the update fails with a conflict unless this is still
    /// the current version.
    #[serde(default)]
    pub expected_version: Option<u32>,
}
