//! How a provider call fails ([`ProviderErrorKind`], [`ProviderError`]) and how a provider
//! configuration is refused ([`ProviderConfigError`]). A leaf: it imports nothing of the
//! crate, so the crate's [`Error`](crate::Error) can wrap a provider error.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// How the call failed; decides whether the engine retries.
    pub kind: ProviderErrorKind,
    /// What went wrong, for people: the server's own message where there was one (API key
    /// scrubbed), else ours.
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
    /// An error of `kind` with `message` and nothing else (no status, Retry-After, details
    /// or finish reason).
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

    /// The timeout of a call that did not end by the execution's deadline (the engine's own
    /// timer, not the provider's answer).
    pub fn deadline() -> Self {
        Self::new(ProviderErrorKind::Timeout, "the provider did not answer by the deadline")
    }

    /// Sets [`details`](Self::details).
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Sets (or clears) [`finish_reason`](Self::finish_reason).
    pub fn with_finish_reason(mut self, finish_reason: Option<String>) -> Self {
        self.finish_reason = finish_reason;
        self
    }

    /// Sets the HTTP [`status`](Self::status) the reply had.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Sets (or clears) the delay the provider asked for before a retry.
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Whether the same request may succeed if tried again (see
    /// [`ProviderErrorKind::is_transient`]).
    pub fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }

    /// The delay the provider asked for before a retry, which replaces the engine's backoff.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// A provider configuration that cannot be used, naming the provider and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("provider {provider:?}: {field}: {message}")]
pub struct ProviderConfigError {
    /// The provider's configured name (`*` when the error concerns the whole settings).
    pub provider: String,
    /// The configuration field at fault (`base_url`, `concurrency`, `api_key_env`, ...).
    pub field: String,
    /// What is wrong with it, for people.
    pub message: String,
}

impl ProviderConfigError {
    /// The error for `field` of `provider`.
    pub fn new(provider: impl Into<String>, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { provider: provider.into(), field: field.into(), message: message.into() }
    }
}
