//! Every rule a prompt version must pass before it is saved, in one place.

use crate::error::{Error, Result};
use crate::prompt::PromptVersion;
use crate::template::{CompiledPrompt, TemplateLimits};
use crate::validation::CompiledRules;
use crate::variables::{InputLimits, definition_problems};

/// Fully validates a version before it is saved: template sizes and syntax, variables used but
/// not declared, variable definitions (see [`crate::variables::check_definitions`]) and
/// output validation rules (see [`CompiledRules::compile`]).
///
/// Errors: one [`Error::InvalidPrompt`] listing every problem found.
pub fn check_version(
    version: &PromptVersion,
    template_limits: &TemplateLimits,
    input_limits: &InputLimits,
) -> Result<()> {
    let (_, mut problems) = CompiledPrompt::compile_all(version, template_limits);
    problems.extend(definition_problems(&version.variables, input_limits));
    let (_, rule_problems) = CompiledRules::compile_all(&version.validations);
    problems.extend(rule_problems);
    if problems.is_empty() { Ok(()) } else { Err(Error::InvalidPrompt { problems }) }
}
