//! LLM providers: one completion request in, a completion with token usage out.
//!
//! Providers never retry: the engine's single retry loop does, guided by
//! [`ProviderError::is_transient`] and [`ProviderError::retry_after`].

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use crate::execution::TokenUsage;
use crate::prompt::ModelParameters;

pub mod config;
pub mod error;
pub mod mock;
#[cfg(feature = "openai")]
pub mod openai;
pub mod secret;

pub use error::{ProviderError, ProviderErrorKind};

/// Who speaks a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions to the model (a version's system template renders to one).
    System,
    /// The user's turn (a version's template renders to one).
    User,
    /// The model's own earlier turn, in a conversation a chat call sends.
    Assistant,
}

/// One rendered chat message. Serialised as `{"role": "user", "content": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// The message text.
    pub content: String,
}

/// Structured-output request: the JSON Schema the reply must follow, or, with a `null`
/// schema ([`ResponseSchema::json_object`]), JSON mode: any JSON object, no schema
/// (`response_format: {type: "json_object"}` on OpenAI-compatible servers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseSchema {
    /// The schema's name as the provider API wants one (the engine sends `output` for a
    /// version's JSON Schema rule).
    pub name: String,
    /// The JSON Schema document.
    pub schema: Value,
    /// Asks the provider to follow the schema exactly (the engine sets it for a version's
    /// rule).
    pub strict: bool,
}

impl ResponseSchema {
    /// JSON mode: the reply must be a JSON object, of no particular schema.
    pub fn json_object() -> Self {
        Self { name: "json_object".to_string(), schema: Value::Null, strict: false }
    }

    /// Whether this asks for JSON mode rather than a schema (see [`Self::json_object`]).
    pub fn is_json_object(&self) -> bool {
        self.schema.is_null()
    }
}

/// Which structured-output form a provider accepts, for versions whose rules give a JSON
/// Schema.
///
/// - `json_schema` (default): `response_format: {type: "json_schema", json_schema: {...}}`;
/// - `json_object`: `response_format: {type: "json_object"}` (JSON mode, no schema);
/// - `none`: no `response_format` at all.
///
/// Whatever is sent, the version's rules are checked on the output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructuredOutput {
    /// Send the schema itself (`json_schema`); the default.
    #[default]
    JsonSchema,
    /// Ask only for a JSON object (`json_object`), without the schema.
    JsonObject,
    /// Send no `response_format`.
    None,
}

/// A completion request, fully rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    /// Model name as the provider knows it.
    pub model: String,
    /// The conversation, in order (a version's rendered system message first).
    pub messages: Vec<Message>,
    /// Sampling parameters; unset ones are left to the provider's defaults.
    pub parameters: ModelParameters,
    /// The JSON Schema the reply must follow; `None` for free text.
    pub response_schema: Option<ResponseSchema>,
    /// The provider must give up (with a transient `Timeout`) by this instant.
    pub deadline: Instant,
}

/// A successful completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The answer text (never the model's reasoning; see `reasoning`).
    pub text: String,
    /// Tokens the call used, as reported (or estimated, flagged in
    /// [`TokenUsage::estimated`]).
    pub usage: TokenUsage,
    /// Wall time of the provider call.
    pub latency: Duration,
    /// The model that answered, as the provider reports it (may differ from the request).
    pub model: Option<String>,
    /// Why the model stopped, as the provider reports it (`stop`, `length`, ...). `length`
    /// means the output was cut at the token limit (see [`Completion::truncated`]).
    pub finish_reason: Option<String>,
    /// Thinking the model reported apart from its answer (`thinking` / `reasoning` content
    /// parts, `reasoning_content`). Never part of `text`.
    pub reasoning: Option<String>,
}

/// The finish reason of an output cut at the token limit.
pub const FINISH_LENGTH: &str = "length";

impl Completion {
    /// A completion with only text and usage (no finish reason, no reasoning).
    pub fn new(text: impl Into<String>, usage: TokenUsage, latency: Duration, model: Option<String>) -> Self {
        Self { text: text.into(), usage, latency, model, finish_reason: None, reasoning: None }
    }

    /// Whether the output was cut at the token limit (`finish_reason: "length"`).
    pub fn truncated(&self) -> bool {
        self.finish_reason.as_deref() == Some(FINISH_LENGTH)
    }
}

/// A chunk of partial output while a completion streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialOutput {
    /// Text added since the previous chunk (the default
    /// [`LlmProvider::complete_streaming`] sends the whole text as one chunk).
    pub delta: String,
}

/// An LLM backend.
#[async_trait]
pub trait LlmProvider: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs and metrics (`mock`, `openai`).
    fn name(&self) -> &str;

    /// Runs one completion. Must return by `request.deadline` and must not retry.
    async fn complete(&self, request: CompletionRequest) -> Result<Completion, ProviderError>;

    /// Whether [`LlmProvider::complete_streaming`] really streams: reports the output in
    /// pieces as it arrives. The engine streams (and publishes `partial` events) only from
    /// providers that do; the others are called with [`LlmProvider::complete`]. Default false.
    fn streams(&self) -> bool {
        false
    }

    /// Runs one completion, reporting partial output as it arrives. The default calls
    /// [`LlmProvider::complete`] and reports the whole text once.
    async fn complete_streaming(
        &self,
        request: CompletionRequest,
        on_partial: &(dyn Fn(PartialOutput) + Send + Sync),
    ) -> Result<Completion, ProviderError> {
        let completion = self.complete(request).await?;
        on_partial(PartialOutput { delta: completion.text.clone() });
        Ok(completion)
    }
}
