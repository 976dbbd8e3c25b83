//! Prompt templates on minijinja: compiled once per version, strict about undefined
//! variables, bounded in fuel, recursion and output size.
//!
//! INTERIM: signatures are fixed; the limits, the declared-variable checks and the tests land
//! with the core-rules work.

use serde_json::{Map, Value};

use crate::error::Result;
use crate::prompt::PromptVersion;
use crate::provider::Message;

/// Limits applied to every template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateLimits {
    /// Largest template source, in bytes.
    pub max_source_bytes: usize,
    /// Largest rendered output, in bytes.
    pub max_output_bytes: usize,
    /// minijinja fuel per render.
    pub fuel: u64,
    /// Deepest nesting of calls / includes.
    pub max_recursion: usize,
}

impl Default for TemplateLimits {
    fn default() -> Self {
        Self { max_source_bytes: 64 * 1024, max_output_bytes: 256 * 1024, fuel: 100_000, max_recursion: 32 }
    }
}

/// A version's templates (user and optional system), compiled once and reusable from many
/// threads.
#[derive(Debug)]
pub struct CompiledPrompt {
    _private: (),
}

impl CompiledPrompt {
    /// Compiles a version's templates and checks them against its declared variables.
    /// Errors: [`crate::Error::InvalidPrompt`] naming each problem.
    pub fn compile(version: &PromptVersion, limits: &TemplateLimits) -> Result<Self> {
        let _ = (version, limits);
        Err(crate::Error::internal("template compilation not yet implemented"))
    }

    /// Renders the messages (system first when present, then user) from validated inputs.
    /// Errors: [`crate::Error::Render`].
    pub fn render(&self, inputs: &Map<String, Value>) -> Result<Vec<Message>> {
        let _ = inputs;
        Err(crate::Error::internal("template rendering not yet implemented"))
    }
}
