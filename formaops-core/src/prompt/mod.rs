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
pub mod diff;
pub mod label;

pub use check::check_version;
pub use diff::{VersionDiff, diff_versions};
pub use label::{Label, LabelMove, LabelSettings, VersionRef};

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
    /// Usable: can be executed and updated.
    Active,
    /// Read-only history: no new executions or versions.
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
    /// Assigned at creation (a time-ordered UUID v7).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: PromptId,
    /// The owner: only this user can read, update, execute or archive it.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub user_id: UserId,
    /// Trimmed, 1 to 200 characters, no control characters; unique among the owner's ACTIVE
    /// prompts.
    pub name: String,
    /// Free text for people, at most 5,000 characters.
    pub description: Option<String>,
    /// ACTIVE or ARCHIVED.
    pub status: PromptStatus,
    /// Number of the newest version (versions count from 1).
    pub current_version: u32,
    /// When version 1 was written (UTC).
    pub created_at: DateTime<Utc>,
    /// When the newest version was written or the status last changed (UTC).
    pub updated_at: DateTime<Utc>,
}

/// Sampling parameters passed to the model. `None` means "the provider's default".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelParameters {
    /// Sampling temperature, 0 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass (`topP`), 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Most tokens the model may generate (`maxCompletionTokens`), at least 1. An output cut
    /// at this limit has finish reason `length`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// Up to 4 non-empty sequences at which the model stops; empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Sampling seed, for providers that honour one (best-effort determinism).
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
    /// Sampling parameters; all unset by default.
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
    /// The prompt this version belongs to.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub prompt_id: PromptId,
    /// The version's number: 1 for the first, then one more per update, with no gaps.
    pub version: u32,
    /// The user message template (minijinja syntax).
    pub template: String,
    /// Optional system message template, rendered with the same variables.
    pub system_template: Option<String>,
    /// The typed variables the templates use; execution inputs are validated against them.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub variables: Vec<VariableDefinition>,
    /// Rules the output is checked against when an execution asks for validation.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub validations: Vec<ValidationRule>,
    /// Provider, model and sampling parameters.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub model: ModelConfig,
    /// When the version was written (UTC).
    pub created_at: DateTime<Utc>,
    /// The user who wrote this version.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub author: UserId,
}

/// What a caller supplies to create a prompt (the spec's `CreatePromptRequest`, plus model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromptSpec {
    /// The prompt's name (trimmed when stored; see [`Prompt::name`]).
    pub name: String,
    /// Free text, at most 5,000 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// The user message template (minijinja syntax).
    pub template: String,
    /// Optional system message template.
    #[serde(default)]
    pub system_template: Option<String>,
    /// Typed variables; every variable a template uses must be declared here.
    #[serde(default)]
    pub variables: Vec<VariableDefinition>,
    /// Output validation rules.
    #[serde(default)]
    pub validations: Vec<ValidationRule>,
    /// Provider and model; [`ModelConfig::default`] (the engine's default provider,
    /// [`DEFAULT_MODEL`]) when omitted.
    #[serde(default)]
    pub model: Option<ModelConfig>,
    /// Labels put on version 1; `None` means `["production"]`, `Some(vec![])` none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
}

/// What a caller supplies to update a prompt: every field optional; what is omitted is
/// carried over from the current version. Any update writes a new version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromptUpdate {
    /// A new name (checked as at creation).
    #[serde(default)]
    pub name: Option<String>,
    /// A new description. `None` keeps the current one; it cannot be cleared.
    #[serde(default)]
    pub description: Option<String>,
    /// A new user message template.
    #[serde(default)]
    pub template: Option<String>,
    /// A new system template. `None` keeps the current one; it cannot be removed.
    #[serde(default)]
    pub system_template: Option<String>,
    /// The complete new list of variables (replaces the list; no merge by name).
    #[serde(default)]
    pub variables: Option<Vec<VariableDefinition>>,
    /// The complete new list of validation rules (replaces the list).
    #[serde(default)]
    pub validations: Option<Vec<ValidationRule>>,
    /// The complete new model configuration (replaces it; omitted parameters are unset, not
    /// carried over).
    #[serde(default)]
    pub model: Option<ModelConfig>,
    /// Optimistic concurrency: when set, the update fails with a conflict unless this is still
    /// the current version.
    #[serde(default)]
    pub expected_version: Option<u32>,
}
