//! The difference between two versions of a prompt: unified text diffs of the templates and
//! structured diffs of variables, validation rules and model settings.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use similar::TextDiff;

use crate::prompt::PromptVersion;
use crate::validation::ValidationRule;
use crate::variables::VariableDefinition;

/// What changed from one version to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionDiff {
    /// The old version's number.
    pub from: u32,
    /// The new version's number.
    pub to: u32,
    /// Unified diff of the user template; empty when equal.
    pub template: String,
    /// Unified diff of the system template (absent reads as empty); empty when equal.
    pub system_template: String,
    /// Variable definitions added, removed and changed.
    pub variables: VariablesDiff,
    /// Output validation rules added and removed.
    pub validations: ValidationsDiff,
    /// Changed model settings, by dotted path (`model`, `provider`, `parameters.temperature`).
    pub model: Vec<SettingChange>,
}

impl VersionDiff {
    /// Whether the two versions are the same in everything compared.
    pub fn is_empty(&self) -> bool {
        self.template.is_empty()
            && self.system_template.is_empty()
            && self.variables.added.is_empty()
            && self.variables.removed.is_empty()
            && self.variables.changed.is_empty()
            && self.validations.added.is_empty()
            && self.validations.removed.is_empty()
            && self.model.is_empty()
    }
}

/// Variables added, removed and changed, matched by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariablesDiff {
    /// Only in the new version, in its order.
    pub added: Vec<VariableDefinition>,
    /// Only in the old version, in its order.
    pub removed: Vec<VariableDefinition>,
    /// In both with different definitions, in the new version's order.
    pub changed: Vec<VariableChange>,
}

/// One variable present in both versions with a different definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariableChange {
    /// The variable's name (the same in both).
    pub name: String,
    /// Its definition in the old version.
    pub from: VariableDefinition,
    /// Its definition in the new version.
    pub to: VariableDefinition,
}

/// Validation rules only in the old version (`removed`) or only in the new one (`added`).
/// Rules have no names: they are compared as a multiset of equal rules, so reordering rules
/// is no change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationsDiff {
    /// Rules of the new version with no equal rule left in the old one, in the new order.
    pub added: Vec<ValidationRule>,
    /// Rules of the old version with no equal rule in the new one, in the old order.
    pub removed: Vec<ValidationRule>,
}

/// One changed setting; `null` stands for "not set".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingChange {
    /// Dotted path of the setting as serialised (`model`, `parameters.topP`).
    pub field: String,
    /// The old value; `null` when it was not set.
    pub from: Value,
    /// The new value; `null` when it is no longer set.
    pub to: Value,
}

/// A unified diff of two texts (`a/<name>` and `b/<name>` headers), empty when they are equal.
fn unified(name: &str, from: &str, to: &str) -> String {
    if from == to {
        return String::new();
    }
    TextDiff::from_lines(from, to)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string()
}

/// Flattens a JSON object into (dotted path, leaf) pairs.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&path, v, out);
            }
        }
        leaf => out.push((prefix.to_string(), leaf.clone())),
    }
}

/// Compares two versions: what changed going from `from` to `to` (usually the older one
/// first; any order works). Unified diffs have 3 lines of context.
pub fn diff_versions(from: &PromptVersion, to: &PromptVersion) -> VersionDiff {
    let mut variables = VariablesDiff::default();
    for t in &to.variables {
        match from.variables.iter().find(|f| f.name == t.name) {
            None => variables.added.push(t.clone()),
            Some(f) if f != t => variables.changed.push(VariableChange {
                name: t.name.clone(),
                from: f.clone(),
                to: t.clone(),
            }),
            Some(_) => {}
        }
    }
    variables.removed =
        from.variables.iter().filter(|f| !to.variables.iter().any(|t| t.name == f.name)).cloned().collect();

    // Rules have no names: a multiset difference, each rule matched at most once.
    let mut unmatched: Vec<&ValidationRule> = from.validations.iter().collect();
    let mut added = Vec::new();
    for r in &to.validations {
        match unmatched.iter().position(|u| *u == r) {
            Some(i) => {
                unmatched.remove(i);
            }
            None => added.push(r.clone()),
        }
    }
    let validations = ValidationsDiff { added, removed: unmatched.into_iter().cloned().collect() };

    let (mut a, mut b) = (Vec::new(), Vec::new());
    flatten("", &serde_json::to_value(&from.model).unwrap_or(Value::Null), &mut a);
    flatten("", &serde_json::to_value(&to.model).unwrap_or(Value::Null), &mut b);
    let mut fields: Vec<&String> = a.iter().chain(b.iter()).map(|(k, _)| k).collect();
    fields.sort();
    fields.dedup();
    let get = |side: &[(String, Value)], k: &str| {
        side.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone()).unwrap_or(Value::Null)
    };
    let model = fields
        .into_iter()
        .filter_map(|k| {
            let (x, y) = (get(&a, k), get(&b, k));
            (x != y).then(|| SettingChange { field: k.clone(), from: x, to: y })
        })
        .collect();

    VersionDiff {
        from: from.version,
        to: to.version,
        template: unified("template", &from.template, &to.template),
        system_template: unified(
            "systemTemplate",
            from.system_template.as_deref().unwrap_or_default(),
            to.system_template.as_deref().unwrap_or_default(),
        ),
        variables,
        validations,
        model,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::ids::{PromptId, UserId};
    use crate::prompt::ModelConfig;

    fn version(n: u32, template: &str, vars: Value, rules: Value, model: Value) -> PromptVersion {
        PromptVersion {
            prompt_id: PromptId::new(),
            version: n,
            template: template.into(),
            system_template: None,
            variables: serde_json::from_value(vars).unwrap(),
            validations: serde_json::from_value(rules).unwrap(),
            model: serde_json::from_value::<ModelConfig>(model).unwrap(),
            created_at: Utc::now(),
            author: UserId::new(),
        }
    }

    #[test]
    fn diffs_text_variables_rules_and_model() {
        let a = version(
            1,
            "Hello {{ name }}\nBye\n",
            json!([{"name": "name", "type": "string"}, {"name": "old", "type": "string"}]),
            json!([{"type": "json"}, {"type": "max_length", "value": 10}]),
            json!({"model": "gpt-4o-mini", "parameters": {"temperature": 0.2}}),
        );
        let b = version(
            2,
            "Hi {{ name }}\nBye\n",
            json!([{"name": "name", "type": "string", "required": true}, {"name": "new", "type": "integer"}]),
            json!([{"type": "json"}, {"type": "min_length", "value": 1}]),
            json!({"model": "gpt-4o", "parameters": {"temperature": 0.2, "seed": 7}}),
        );
        let d = diff_versions(&a, &b);
        assert!(
            d.template.contains("--- a/template") && d.template.contains("+++ b/template"),
            "{}",
            d.template
        );
        assert!(d.template.contains("-Hello {{ name }}\n+Hi {{ name }}\n"), "{}", d.template);
        assert_eq!(d.system_template, "");
        assert_eq!(d.variables.added.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["new"]);
        assert_eq!(d.variables.removed.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["old"]);
        assert_eq!(d.variables.changed.len(), 1);
        assert_eq!(d.variables.changed[0].name, "name");
        assert_eq!(
            serde_json::to_value(&d.validations.added).unwrap(),
            json!([{"type": "min_length", "value": 1}])
        );
        assert_eq!(
            serde_json::to_value(&d.validations.removed).unwrap(),
            json!([{"type": "max_length", "value": 10}])
        );
        assert_eq!(
            serde_json::to_value(&d.model).unwrap(),
            json!([
                {"field": "model", "from": "gpt-4o-mini", "to": "gpt-4o"},
                {"field": "parameters.seed", "from": null, "to": 7}
            ])
        );
        assert!(!d.is_empty());
        assert!(diff_versions(&a, &a).is_empty());
    }
}
