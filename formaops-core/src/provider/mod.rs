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
    /// The reply could not be understood (bad JSON, missing fields).
    MalformedResponse,
    /// 401, 403.
    Auth,
    /// 400, 404, 422 and other 4xx: the request itself is wrong.
    BadRequest,
    /// No provider is configured under the requested name.
    NotConfigured,
}

impl ProviderErrorKind {
    /// The kind's word as serialised (`rate_limited`, `server_error`, ...).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether the same request may succeed if tried again.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::RateLimited
                | Self::ServerError
                | Self::Timeout
                | Self::Connection
                | Self::MalformedResponse
        )
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
}

impl ProviderError {
    pub fn new(kind: ProviderErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), status: None, retry_after: None }
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
