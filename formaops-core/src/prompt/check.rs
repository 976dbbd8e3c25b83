//! Every rule a prompt version must pass before it is saved, in one place.

use crate::error::{Error, Problem, Result};
use crate::prompt::PromptVersion;
use crate::template::{CompiledPrompt, TemplateLimits};
use crate::validation::{CompiledRules, ValidationRule};
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
    problems.extend(unstorable_problems(version));
    if problems.is_empty() { Ok(()) } else { Err(Error::InvalidPrompt { problems }) }
}

/// Every string of a prompt version that cannot be stored, by field: templates, variable
/// descriptions, enum values, defaults and schemas, output rules, model configuration.
/// (Variable names are identifiers and checked as such.)
fn unstorable_problems(version: &PromptVersion) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut text = |field: &dyn Fn() -> String, s: &str| {
        if !crate::text::is_storable(s) {
            problems.push(Problem::new(field(), crate::text::CODE, crate::text::MESSAGE));
        }
    };
    text(&|| "template".into(), &version.template);
    if let Some(s) = &version.system_template {
        text(&|| "systemTemplate".into(), s);
    }
    for (i, d) in version.variables.iter().enumerate() {
        if let Some(s) = &d.description {
            text(&|| format!("variables[{i}].description"), s);
        }
        for (j, s) in d.values.iter().flatten().enumerate() {
            text(&|| format!("variables[{i}].values[{j}]"), s);
        }
    }
    for (i, rule) in version.validations.iter().enumerate() {
        match rule {
            ValidationRule::Regex { pattern } => text(&|| format!("validations[{i}].pattern"), pattern),
            ValidationRule::Contains { value } | ValidationRule::NotContains { value } => {
                text(&|| format!("validations[{i}].value"), value)
            }
            _ => {}
        }
    }
    let model = &version.model;
    if let Some(s) = &model.provider {
        text(&|| "model.provider".into(), s);
    }
    text(&|| "model.model".into(), &model.model);
    for (j, s) in model.parameters.stop.iter().enumerate() {
        text(&|| format!("model.parameters.stop[{j}]"), s);
    }
    for (i, d) in version.variables.iter().enumerate() {
        if let Some(v) = &d.default_value {
            problems.extend(crate::text::value_problem(format_args!("variables[{i}].defaultValue"), v));
        }
        if let Some(v) = &d.schema {
            problems.extend(crate::text::value_problem(format_args!("variables[{i}].schema"), v));
        }
    }
    for (i, rule) in version.validations.iter().enumerate() {
        if let ValidationRule::JsonSchema { schema } = rule {
            problems.extend(crate::text::value_problem(format_args!("validations[{i}].schema"), schema));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ids::{PromptId, UserId};
    use crate::prompt::ModelConfig;
    use crate::validation::ValidationRule;
    use crate::variables::{VariableDefinition, VariableType};

    fn version(template: &str, vars: &[&str]) -> PromptVersion {
        let var = |name: &str| VariableDefinition {
            name: name.to_string(),
            kind: VariableType::String,
            required: true,
            description: None,
            default_value: None,
            values: None,
            schema: None,
            max_length: None,
        };
        PromptVersion {
            prompt_id: PromptId::new(),
            version: 1,
            template: template.to_string(),
            system_template: None,
            variables: vars.iter().map(|n| var(n)).collect(),
            validations: Vec::new(),
            model: ModelConfig::default(),
            created_at: chrono::Utc::now(),
            author: UserId::new(),
        }
    }

    #[test]
    fn check_version_collects_every_problem() {
        let mut v = version("{{ a }} {{ missing }}", &["a", "a"]);
        v.variables[0].default_value = Some(json!(1));
        v.validations = vec![ValidationRule::Json, ValidationRule::Regex { pattern: "(".into() }];
        let got: Vec<(String, String)> =
            match check_version(&v, &TemplateLimits::default(), &InputLimits::default()) {
                Err(Error::InvalidPrompt { problems }) => {
                    problems.into_iter().map(|p| (p.field, p.code.to_string())).collect()
                }
                other => panic!("expected InvalidPrompt, got {other:?}"),
            };
        let p = |field: &str, code: &str| (field.to_string(), code.to_string());
        assert_eq!(
            got,
            vec![
                p("template", "undeclared"),
                p("variables[0].defaultValue", "wrong_type"),
                p("variables[1].name", "duplicate"),
                p("validations[1].pattern", "invalid_regex"),
            ]
        );
        let ok = version("{{ a }}", &["a"]);
        check_version(&ok, &TemplateLimits::default(), &InputLimits::default()).expect("valid");
    }
}
