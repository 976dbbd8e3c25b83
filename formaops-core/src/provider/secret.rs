//! [`Secret`]: an API key that cannot be logged by accident.

use std::fmt;

use serde::Deserialize;

/// A secret string (an API key). Its `Debug` output is redacted, it has no `Display`, and
/// it is only readable through [`Secret::expose`], so it cannot end up in logs or error
/// messages by accident.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(Box<str>);

impl Secret {
    /// Wraps `value` (stored as is, no trimming).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into().into_boxed_str())
    }

    /// The secret itself. Call only where it is sent to its destination.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}
