//! How a provider call fails ([`ProviderErrorKind`], [`ProviderError`]) and how a provider
//! configuration is refused ([`ProviderConfigError`]). A leaf: it imports nothing of the
//! crate, so the crate's [`Error`](crate::Error) can wrap a provider error.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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

/// A provider configuration that cannot be used, naming the provider and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("provider {provider:?}: {field}: {message}")]
pub struct ProviderConfigError {
    pub provider: String,
    pub field: String,
    pub message: String,
}

impl ProviderConfigError {
    pub fn new(provider: impl Into<String>, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { provider: provider.into(), field: field.into(), message: message.into() }
    }
}
