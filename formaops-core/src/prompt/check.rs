//! Every rule a prompt version must pass before it is saved, in one place.

use crate::error::{Error, Problem, ProblemCode, Result};
use crate::prompt::{ModelParameters, PromptVersion};
use crate::template::{CompiledPrompt, TemplateLimits};
use crate::validation::{CompiledRules, ValidationRule};
use crate::variables::{InputLimits, definition_problems};

/// Fully validates a version before it is saved: template sizes and syntax, variables used but
/// not declared, optional variables without a default read without a guard (code
/// `unguarded`), variable definitions (see [`crate::variables::check_definitions`]) and
/// output validation rules (see [`CompiledRules::compile`]).
///
/// # Errors
/// One [`Error::InvalidPrompt`] listing every problem found, each with its field path
/// (`template`, `variables[0].name`, `validations[1].pattern`, `model.parameters.topP`).
pub fn check_version(
    version: &PromptVersion,
    template_limits: &TemplateLimits,
    input_limits: &InputLimits,
) -> Result<()> {
    let (_, mut problems) = CompiledPrompt::compile_all(version, template_limits);
    problems.extend(crate::template::unguarded_problems(version, template_limits));
    problems.extend(definition_problems(&version.variables, input_limits));
    let (_, rule_problems) = CompiledRules::compile_all(&version.validations);
    problems.extend(rule_problems);
    problems.extend(unstorable_problems(version));
    problems.extend(parameter_problems(&version.model.parameters));
    if problems.is_empty() { Ok(()) } else { Err(Error::InvalidPrompt { problems }) }
}

/// Allowed `temperature` (inclusive), as OpenAI's chat completions API documents it.
pub const TEMPERATURE_RANGE: (f64, f64) = (0.0, 2.0);
/// Allowed `topP` (inclusive).
pub const TOP_P_RANGE: (f64, f64) = (0.0, 1.0);
/// Most `stop` sequences a request may carry.
pub const MAX_STOP_SEQUENCES: usize = 4;

/// Sampling parameters out of the range the provider API accepts, each naming its field and
/// the allowed range: `temperature` 0-2, `topP` 0-1 (finite numbers), `maxCompletionTokens` at
/// least 1, at most [`MAX_STOP_SEQUENCES`] `stop` strings, none empty.
pub fn parameter_problems(p: &ModelParameters) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut range = |field: &str, value: Option<f64>, (lo, hi): (f64, f64)| {
        if let Some(v) = value
            && !(v.is_finite() && (lo..=hi).contains(&v))
        {
            problems.push(Problem::new(
                format!("model.parameters.{field}"),
                ProblemCode::OutOfRange,
                format!("{field} must be between {lo} and {hi} (got {v})"),
            ));
        }
    };
    range("temperature", p.temperature, TEMPERATURE_RANGE);
    range("topP", p.top_p, TOP_P_RANGE);
    if p.max_completion_tokens == Some(0) {
        problems.push(Problem::new(
            "model.parameters.maxCompletionTokens",
            ProblemCode::OutOfRange,
            "maxCompletionTokens must be at least 1 (got 0)",
        ));
    }
    if p.stop.len() > MAX_STOP_SEQUENCES {
        problems.push(Problem::new(
            "model.parameters.stop",
            ProblemCode::TooLarge,
            format!("stop takes at most {MAX_STOP_SEQUENCES} strings (got {})", p.stop.len()),
        ));
    }
    for (i, s) in p.stop.iter().enumerate() {
        if s.is_empty() {
            problems.push(Problem::new(
                format!("model.parameters.stop[{i}]"),
                ProblemCode::Invalid,
                "a stop string must not be empty",
            ));
        }
    }
    problems
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
        if let ValidationRule::JsonSchema { schema, .. } = rule {
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

    #[test]
    fn out_of_range_parameters_are_refused_naming_field_and_range() {
        let refused = |p: ModelParameters| -> Vec<(String, String)> {
            let mut v = version("hi", &[]);
            v.model.parameters = p;
            match check_version(&v, &TemplateLimits::default(), &InputLimits::default()) {
                Err(Error::InvalidPrompt { problems }) => {
                    problems.into_iter().map(|p| (p.field, p.message)).collect()
                }
                other => panic!("expected InvalidPrompt, got {other:?}"),
            }
        };
        let one = |p: ModelParameters, field: &str, range: &str| {
            let got = refused(p);
            assert_eq!(got.len(), 1, "{got:?}");
            assert_eq!(got[0].0, format!("model.parameters.{field}"));
            assert!(got[0].1.contains(range), "{got:?} names {range}");
        };
        for t in [2.5, -0.1, f64::NAN, f64::INFINITY, 100.0] {
            one(
                ModelParameters { temperature: Some(t), ..Default::default() },
                "temperature",
                "between 0 and 2",
            );
        }
        for t in [1.5, -0.5, 1.0000001] {
            one(ModelParameters { top_p: Some(t), ..Default::default() }, "topP", "between 0 and 1");
        }
        one(
            ModelParameters { max_completion_tokens: Some(0), ..Default::default() },
            "maxCompletionTokens",
            "at least 1",
        );
        let stops = |n: usize| (0..n).map(|i| format!("s{i}")).collect::<Vec<_>>();
        for n in [5, 6, 50] {
            one(ModelParameters { stop: stops(n), ..Default::default() }, "stop", "at most 4");
        }
        one(
            ModelParameters { stop: vec!["a".into(), String::new()], ..Default::default() },
            "stop[1]",
            "empty",
        );
        let all = refused(ModelParameters {
            temperature: Some(3.0),
            top_p: Some(2.0),
            stop: stops(5),
            ..Default::default()
        });
        assert_eq!(all.len(), 3, "every bad field is named: {all:?}");
        // The edges and ordinary values pass.
        for (t, p, n) in [(0.0, 0.0, 1), (2.0, 1.0, 4), (0.7, 0.9, 0)] {
            let mut v = version("hi", &[]);
            v.model.parameters = ModelParameters {
                temperature: Some(t),
                top_p: Some(p),
                max_completion_tokens: Some(1),
                stop: stops(n),
                seed: Some(-1),
            };
            check_version(&v, &TemplateLimits::default(), &InputLimits::default()).expect("in range");
        }
    }
}
