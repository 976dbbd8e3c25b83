//! The crate's one error type.
//!
//! Variants carry the context a caller needs to act (which thing was not found, every problem
//! with an input) and never HTTP words: adapters map them to their own vocabulary.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::provider::error::ProviderError;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One thing wrong with a piece of user input, named by where it is.
///
/// `field` is a path such as `inputs.topic`, `variables[2].defaultValue` or `template`;
/// `code` is a stable machine-readable word (`missing`, `wrong_type`, `unknown`, `too_large`,
/// `undeclared`, `syntax`, ...); `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub field: String,
    pub code: String,
    pub message: String,
}

impl Problem {
    pub fn new(field: impl Into<String>, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), code: code.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Joins problems into one line for `Display`.
pub(crate) struct Problems<'a>(pub &'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in FormaOps.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The thing does not exist, or belongs to another user (the two are indistinguishable
    /// on purpose).
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },

    /// The request contradicts current state: a duplicate name, a retry of an execution that
    /// did not fail, a concurrent update that lost the race.
    #[error("conflict: {message}")]
    Conflict { message: String },

    /// Execution inputs failed validation; every problem is listed.
    #[error("invalid inputs: {}", Problems(.problems))]
    InvalidInputs { problems: Vec<Problem> },

    /// A prompt definition (template, variables, validation rules, model) is not acceptable;
    /// every problem is listed.
    #[error("invalid prompt: {}", Problems(.problems))]
    InvalidPrompt { problems: Vec<Problem> },

    /// A request argument other than inputs or a prompt definition is malformed
    /// (a bad cursor, a page size out of range).
    #[error("invalid {field}: {message}")]
    InvalidArgument { field: String, message: String },

    /// Rendering a template failed at run time (fuel exhausted, output too large, ...).
    #[error("template error: {message}")]
    Render { message: String },

    /// The LLM provider failed (after the engine's retries, where they applied).
    #[error(transparent)]
    Provider(#[from] ProviderError),

    /// A dependency (the database) is unavailable; the operation may succeed later.
    #[error("unavailable: {message}")]
    Unavailable { message: String },

    /// An idempotency key was reused with a different request.
    #[error("idempotency key {key:?} was already used with a different request")]
    IdempotencyKeyReused { key: String },

    /// Missing, invalid, expired or revoked credentials, or a wrong email or password (the
    /// cases are indistinguishable on purpose).
    #[error("missing, invalid or expired credentials")]
    Unauthenticated,

    /// Too many attempts (failed logins) from this source; try again after `retry_after`.
    #[error("too many attempts; try again in {retry_after:?}")]
    RateLimited { retry_after: std::time::Duration },

    /// The engine is shutting down and accepts no new work.
    #[error("the engine is shutting down")]
    ShuttingDown,

    /// A bug or an unexpected state; details are for logs, not for end users.
    #[error("internal error: {message}")]
    Internal { message: String },
}

impl Error {
    pub fn not_found(kind: &'static str, id: impl fmt::Display) -> Self {
        Self::NotFound { kind, id: id.to_string() }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict { message: message.into() }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal { message: message.into() }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable { message: message.into() }
    }

    pub fn invalid_argument(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument { field: field.into(), message: message.into() }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unavailable { .. } | Self::RateLimited { .. } => true,
            Self::Provider(e) => e.is_transient(),
            _ => false,
        }
    }
}
