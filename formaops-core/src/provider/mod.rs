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
pub mod mock;
#[cfg(feature = "openai")]
pub mod openai;

/// Who speaks a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One rendered chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

/// Structured-output request: the JSON Schema the reply must follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseSchema {
    pub name: String,
    pub schema: Value,
    pub strict: bool,
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
    #[default]
    JsonSchema,
    JsonObject,
    None,
}

/// A completion request, fully rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    pub model: String,
    pub messages: Vec<Message>,
    pub parameters: ModelParameters,
    pub response_schema: Option<ResponseSchema>,
    /// The provider must give up (with a transient `Timeout`) by this instant.
    pub deadline: Instant,
}

/// A successful completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
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
    pub delta: String,
}

/// How a provider call failed.
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
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ProviderErrorKind {
    /// 429.
    RateLimited,
    /// 5xx, 408, 409.
    ServerError,
    /// The call passed its deadline.
    Timeout,
    /// Connection refused, reset, DNS failure, a stream cut midway.
    Connection,
    /// The reply could not be understood (not JSON, no choices). Permanent: the same server
    /// would answer the same way, and each call is paid for.
    MalformedResponse,
    /// 401, 403.
    Auth,
    /// 400, 404, 422 and other 4xx: the request itself is wrong.
    BadRequest,
    /// No provider is configured under the requested name.
    NotConfigured,
    /// The model declined to answer (`refusal`); the refusal text is in the details.
    Refused,
    /// The provider stopped the output with its content filter (`finish_reason:
    /// "content_filter"`).
    ContentFiltered,
    /// The model answered only with tool calls (`content: null` + `tool_calls`); they are in
    /// the details.
    ToolCallsOnly,
    /// The reply carries no answer text (empty, or only reasoning).
    EmptyOutput,
}

impl ProviderErrorKind {
    /// The kind's word as serialised (`rate_limited`, `server_error`, ...).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether the same request may succeed if tried again.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::RateLimited | Self::ServerError | Self::Timeout | Self::Connection)
    }
}

/// A provider failure, classified, with the provider's own message preserved (secrets never
/// included).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("provider {kind}: {message}", kind = .kind.as_str())]
pub struct ProviderError {
    pub kind: ProviderErrorKind,
    pub message: String,
    /// HTTP status, when there was one.
    pub status: Option<u16>,
    /// The provider's `Retry-After` / `retry-after-ms`, when sent.
    pub retry_after: Option<Duration>,
    /// What the reply carried that explains the failure (a refusal's text, tool calls, the
    /// finish reason, an excerpt of an unreadable reply), kept on the execution's error.
    pub details: Option<Value>,
    /// The reply's finish reason, when a reply was read.
    pub finish_reason: Option<String>,
}

impl ProviderError {
    pub fn new(kind: ProviderErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            status: None,
            retry_after: None,
            details: None,
            finish_reason: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn with_finish_reason(mut self, finish_reason: Option<String>) -> Self {
        self.finish_reason = finish_reason;
        self
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    pub fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }

    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// An LLM backend.
#[async_trait]
pub trait LlmProvider: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs and metrics (`mock`, `openai`).
    fn name(&self) -> &str;

    /// Runs one completion. Must return by `request.deadline` and must not retry.
    async fn complete(&self, request: CompletionRequest) -> Result<Completion, ProviderError>;

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
