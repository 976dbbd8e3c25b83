//! The crate's one error type.
//!
//! Variants carry the context a caller needs to act (which thing was not found, every problem
//! with an input) and never HTTP words: adapters map them to their own vocabulary.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::provider::error::ProviderError;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error type a wrapped cause is kept as (see [`Error::source`](std::error::Error::source)).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The stable, machine-readable word naming what is wrong in a [`Problem`].
///
/// Serialised (JSON, `Display`, [`ProblemCode::as_str`]) as the snake_case word, e.g.
/// `too_large`; the words are part of the REST and Python contracts and never change.
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
#[non_exhaustive]
pub enum ProblemCode {
    /// A required value (variable input, enum values, a name) is absent or empty.
    Missing,
    /// A value has the wrong JSON type for its declaration.
    WrongType,
    /// A value is not one of an enum variable's `values`.
    NotInEnum,
    /// A name that is not declared or configured (an input, a provider).
    Unknown,
    /// A size, count or depth limit is exceeded.
    TooLarge,
    /// The template uses a variable that is not declared.
    Undeclared,
    /// Nesting (template blocks, JSON values) is deeper than allowed.
    TooDeep,
    /// The template does not parse.
    Syntax,
    /// The template's output can grow without bound.
    Unbounded,
    /// The template reads an optional variable without a default and without a guard.
    Unguarded,
    /// A value is not acceptable (control characters, an empty needle, ...).
    Invalid,
    /// A variable name breaks the naming rules.
    InvalidName,
    /// A name or enum value is given twice.
    Duplicate,
    /// An attribute is given for a type it does not apply to.
    NotApplicable,
    /// A JSON Schema is invalid, or a value does not match it.
    Schema,
    /// A number is NaN or infinite.
    NotFinite,
    /// A number is outside its allowed range (a model parameter the provider API refuses).
    OutOfRange,
    /// Text holds a character no store can keep (NUL).
    InvalidCharacter,
    /// A validation pattern is not a valid regex.
    InvalidRegex,
    /// Rendering the template failed (Python adapter).
    Render,
    /// Promotion guard: a new required variable without a default.
    NewRequired,
    /// Promotion guard: an optional variable (or one with a default) became required.
    NowRequired,
    /// Promotion guard: a variable accepts fewer values (type, enum values, `maxLength`,
    /// schema).
    Narrowed,
    /// Promotion guard: a variable was removed.
    Removed,
}

impl ProblemCode {
    /// The code's word, as serialised.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl PartialEq<str> for ProblemCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ProblemCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One thing wrong with a piece of user input, named by where it is.
///
/// `field` is a path such as `inputs.topic`, `variables[2].defaultValue` or `template`;
/// `code` says what kind of problem it is (see [`ProblemCode`]); `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Where the problem is: a JSON-ish path into the input.
    pub field: String,
    /// What kind of problem it is.
    pub code: ProblemCode,
    /// A sentence for people.
    pub message: String,
}

impl Problem {
    /// A problem at `field`.
    pub fn new(field: impl Into<String>, code: ProblemCode, message: impl Into<String>) -> Self {
        Self { field: field.into(), code, message: message.into() }
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
    NotFound {
        /// What was looked for (`prompt`, `execution`, `version`, ...).
        kind: &'static str,
        /// The id (or name) looked for.
        id: String,
    },

    /// The request contradicts current state: a duplicate name, a retry of an execution that
    /// did not fail, a concurrent update that lost the race.
    #[error("conflict: {message}")]
    Conflict {
        /// What conflicts, for people.
        message: String,
    },

    /// Execution inputs failed validation; every problem is listed.
    #[error("invalid inputs: {}", Problems(.problems))]
    InvalidInputs {
        /// Every problem found, at least one.
        problems: Vec<Problem>,
    },

    /// A prompt definition (template, variables, validation rules, model) is not acceptable;
    /// every problem is listed.
    #[error("invalid prompt: {}", Problems(.problems))]
    InvalidPrompt {
        /// Every problem found, at least one.
        problems: Vec<Problem>,
    },

    /// A request argument other than inputs or a prompt definition is malformed
    /// (a bad cursor, a page size out of range).
    #[error("invalid {field}: {message}")]
    InvalidArgument {
        /// The argument's name as the caller wrote it (`limit`, `cursor`, `database url`).
        field: String,
        /// What is wrong with it, for people.
        message: String,
    },

    /// Rendering a template failed at run time (fuel exhausted, output too large, ...).
    #[error("template error: {message}")]
    Render {
        /// What failed, with the template and line where known.
        message: String,
    },

    /// The LLM provider failed (after the engine's retries, where they applied).
    #[error(transparent)]
    Provider(#[from] ProviderError),

    /// A dependency (the database) is unavailable; the operation may succeed later.
    #[error("unavailable: {message}")]
    Unavailable {
        /// What is unavailable, for people.
        message: String,
        /// The underlying failure (a database driver error), when there is one.
        #[source]
        source: Option<BoxError>,
    },

    /// An idempotency key was reused with a different request.
    #[error("idempotency key {key:?} was already used with a different request")]
    IdempotencyKeyReused {
        /// The reused key.
        key: String,
    },

    /// Missing, invalid, expired or revoked credentials, or a wrong email or password (the
    /// cases are indistinguishable on purpose).
    #[error("missing, invalid or expired credentials")]
    Unauthenticated,

    /// Too many attempts (failed logins) from this source; try again after `retry_after`.
    #[error("too many attempts; try again in {retry_after:?}")]
    RateLimited {
        /// How long to wait before trying again.
        retry_after: std::time::Duration,
    },

    /// The engine is shutting down and accepts no new work.
    #[error("the engine is shutting down")]
    ShuttingDown,

    /// A bug or an unexpected state; details are for logs, not for end users.
    #[error("internal error: {message}")]
    Internal {
        /// What went wrong, for logs.
        message: String,
        /// The underlying failure, when there is one.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// [`Error::NotFound`] for the `kind` with `id`.
    pub fn not_found(kind: &'static str, id: impl fmt::Display) -> Self {
        Self::NotFound { kind, id: id.to_string() }
    }

    /// [`Error::Conflict`] with `message`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict { message: message.into() }
    }

    /// [`Error::Internal`] with `message` and no source.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal { message: message.into(), source: None }
    }

    /// [`Error::Internal`] keeping `source` as its cause.
    pub fn internal_from(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Internal { message: message.into(), source: Some(source.into()) }
    }

    /// [`Error::Unavailable`] with `message` and no source.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable { message: message.into(), source: None }
    }

    /// [`Error::Unavailable`] keeping `source` as its cause.
    pub fn unavailable_from(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Unavailable { message: message.into(), source: Some(source.into()) }
    }

    /// [`Error::InvalidArgument`] naming `field`.
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

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn problem_codes_serialise_as_their_words() {
        for (code, word) in [
            (ProblemCode::Missing, "missing"),
            (ProblemCode::WrongType, "wrong_type"),
            (ProblemCode::NotInEnum, "not_in_enum"),
            (ProblemCode::TooLarge, "too_large"),
            (ProblemCode::InvalidRegex, "invalid_regex"),
            (ProblemCode::NotApplicable, "not_applicable"),
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(word));
            assert_eq!((code.as_str(), code.to_string()), (word, word.to_string()));
            assert_eq!(word.parse::<ProblemCode>().unwrap(), code);
        }
        let p = Problem::new("inputs.a", ProblemCode::Missing, "required");
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json, serde_json::json!({"field": "inputs.a", "code": "missing", "message": "required"}));
        assert_eq!(serde_json::from_value::<Problem>(json).unwrap(), p);
    }

    #[test]
    fn wrapped_errors_keep_their_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::unavailable_from("the database connection failed", io);
        assert_eq!(e.to_string(), "unavailable: the database connection failed");
        assert_eq!(e.source().map(|s| s.to_string()), Some("refused".to_string()));
        assert!(e.is_transient());
        assert!(Error::unavailable("x").source().is_none());
        let e = Error::internal_from("database error", std::fmt::Error);
        assert!(e.source().is_some());
    }
}
