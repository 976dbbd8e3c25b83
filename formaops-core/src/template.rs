//! Prompt templates on minijinja: compiled once per version, strict about undefined
//! variables, bounded in fuel, recursion and output size.
//!
//! INTERIM: signatures are fixed; the limits, the declared-variable checks and the tests land
//! with the core-rules work.

use serde_json::{Map, Value};

use crate::error::Result;
use crate::prompt::PromptVersion;
use crate::provider::{Message, Role};

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
    env: minijinja::Environment<'static>,
    has_system: bool,
}

const USER: &str = "user";
const SYSTEM: &str = "system";

fn render_error(e: minijinja::Error) -> crate::Error {
    crate::Error::Render { message: e.to_string() }
}

impl CompiledPrompt {
    /// Compiles a version's templates and checks them against its declared variables.
    /// Errors: [`crate::Error::InvalidPrompt`] naming each problem.
    pub fn compile(version: &PromptVersion, limits: &TemplateLimits) -> Result<Self> {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_fuel(Some(limits.fuel));
        env.set_recursion_limit(limits.max_recursion);
        let invalid = |field: &str, e: minijinja::Error| crate::Error::InvalidPrompt {
            problems: vec![crate::Problem::new(field, "syntax", e.to_string())],
        };
        env.add_template_owned(USER, version.template.clone()).map_err(|e| invalid("template", e))?;
        if let Some(system) = &version.system_template {
            env.add_template_owned(SYSTEM, system.clone()).map_err(|e| invalid("systemTemplate", e))?;
        }
        Ok(Self { env, has_system: version.system_template.is_some() })
    }

    /// Renders the messages (system first when present, then user) from validated inputs.
    /// Errors: [`crate::Error::Render`].
    pub fn render(&self, inputs: &Map<String, Value>) -> Result<Vec<Message>> {
        let ctx = minijinja::Value::from(minijinja::value::Serde(inputs));
        let mut messages = Vec::with_capacity(2);
        if self.has_system {
            let t = self.env.get_template(SYSTEM).map_err(render_error)?;
            messages.push(Message { role: Role::System, content: t.render(&ctx).map_err(render_error)? });
        }
        let t = self.env.get_template(USER).map_err(render_error)?;
        messages.push(Message { role: Role::User, content: t.render(&ctx).map_err(render_error)? });
        Ok(messages)
    }
}
