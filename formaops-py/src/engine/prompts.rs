//! Prompt, label and rendering calls: the arguments of each operation parsed once into a
//! [`Call`], shared by the blocking method and its `_async` twin (see the parent module).

use formaops_core::ids::PromptId;
use formaops_core::page::{Page, PageRequest};
use formaops_core::prompt::{
    Label, LabelMove, LabelSettings, ModelConfig, ModelParameters, Prompt, PromptSpec, PromptStatus,
    PromptUpdate, PromptVersion, VersionDiff,
};
use formaops_core::provider::Message;
use formaops_core::store::{PromptFilter, VersionPageRequest};
use formaops_core::validation::ValidationRule;
use formaops_core::variables::VariableDefinition;
use pyo3::prelude::*;
use pyo3::types::{PyMapping, PyString};
use serde_json::{Map, Value};

use super::args::{Arg, from_json, id_arg, limit_arg, list_arg, version_arg, version_ref_arg};
use super::call::{Call, call};
use crate::convert::{
    Keys, bool_arg, given, inputs_arg, opt_mapping, opt_str, py_to_json, str_arg, type_error,
};
use crate::error::{IntoPyResult, invalid_argument};

/// A prompt with one of its versions under `version` (None in lists and after archiving).
#[derive(serde::Serialize)]
pub(super) struct PromptView {
    #[serde(flatten)]
    prompt: Prompt,
    version: Option<PromptVersion>,
}

impl PromptView {
    fn new(prompt: Prompt, version: Option<PromptVersion>) -> Self {
        Self { prompt, version }
    }
}

/// The `model`, `parameters` and `provider` arguments, checked; [`ModelArgs::over`] merges
/// them over a base model.
struct ModelArgs {
    model: Option<ModelChoice>,
    parameters: Option<ModelParameters>,
    provider: Option<String>,
}

/// `model`: a model name, or a full dict `{"model", "provider", "parameters"}`.
enum ModelChoice {
    Name(String),
    Config(ModelConfig),
}

impl ModelArgs {
    fn parse(
        py: Python<'_>,
        model: Option<&Bound<'_, PyAny>>,
        parameters: Option<&Bound<'_, PyAny>>,
        provider: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let model = given(model);
        let parameters = opt_mapping(parameters, "parameters", Keys::ToCamel)?;
        let provider = opt_str(provider, "provider")?;
        let model = match model {
            None => None,
            Some(m) => {
                if let Ok(name) = m.cast::<PyString>() {
                    Some(ModelChoice::Name(name.to_cow()?.into_owned()))
                } else if m.cast::<PyMapping>().is_ok() {
                    Some(ModelChoice::Config(from_json(py, "model", py_to_json(m, Keys::ToCamel, "model")?)?))
                } else {
                    return Err(type_error("model", "a model name (str) or a mapping (dict)", m));
                }
            }
        };
        let parameters = parameters
            .map(|p| from_json::<ModelParameters>(py, "parameters", Value::Object(p)))
            .transpose()?;
        Ok(Self { model, parameters, provider })
    }

    fn is_empty(&self) -> bool {
        self.model.is_none() && self.parameters.is_none() && self.provider.is_none()
    }

    /// The given fields over `base` (`base` itself when none is given).
    fn over(self, base: Option<ModelConfig>) -> Option<ModelConfig> {
        if self.is_empty() {
            return base;
        }
        let mut config = base.unwrap_or_default();
        match self.model {
            Some(ModelChoice::Name(name)) => config.model = name,
            Some(ModelChoice::Config(c)) => config = c,
            None => {}
        }
        if let Some(p) = self.parameters {
            config.parameters = p;
        }
        if let Some(p) = self.provider {
            config.provider = Some(p);
        }
        Some(config)
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn create_prompt_call(
    py: Python<'_>,
    name: &Bound<'_, PyAny>,
    template: &Bound<'_, PyAny>,
    description: Arg<'_>,
    system_template: Arg<'_>,
    variables: Arg<'_>,
    validations: Arg<'_>,
    model: Arg<'_>,
    parameters: Arg<'_>,
    provider: Arg<'_>,
    labels: Arg<'_>,
) -> PyResult<Call<PromptView>> {
    let labels = match given(labels.as_ref()) {
        None => None,
        Some(obj) if obj.is_instance_of::<PyString>() => {
            return Err(type_error("labels", "a list of str", obj));
        }
        Some(obj) => {
            Some(obj.extract::<Vec<String>>().map_err(|_| type_error("labels", "a list of str", obj))?)
        }
    };
    let spec = PromptSpec {
        name: str_arg(name, "name")?,
        description: opt_str(description.as_ref(), "description")?,
        template: str_arg(template, "template")?,
        system_template: opt_str(system_template.as_ref(), "system_template")?,
        variables: list_arg::<VariableDefinition>(py, "variables", variables.as_ref())?.unwrap_or_default(),
        validations: list_arg::<ValidationRule>(py, "validations", validations.as_ref())?.unwrap_or_default(),
        model: ModelArgs::parse(py, model.as_ref(), parameters.as_ref(), provider.as_ref())?.over(None),
        labels,
    };
    Ok(call(move |e, user| async move {
        let (prompt, version) = e.create_prompt(user, spec).await?;
        Ok(PromptView::new(prompt, Some(version)))
    }))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn update_prompt_call(
    py: Python<'_>,
    prompt_id: &Bound<'_, PyAny>,
    name: Arg<'_>,
    description: Arg<'_>,
    template: Arg<'_>,
    system_template: Arg<'_>,
    variables: Arg<'_>,
    validations: Arg<'_>,
    model: Arg<'_>,
    parameters: Arg<'_>,
    provider: Arg<'_>,
    expected_version: Arg<'_>,
) -> PyResult<Call<PromptView>> {
    let id: PromptId = id_arg(py, prompt_id, "prompt_id")?;
    let mut update = PromptUpdate {
        name: opt_str(name.as_ref(), "name")?,
        description: opt_str(description.as_ref(), "description")?,
        template: opt_str(template.as_ref(), "template")?,
        system_template: opt_str(system_template.as_ref(), "system_template")?,
        variables: list_arg(py, "variables", variables.as_ref())?,
        validations: list_arg(py, "validations", validations.as_ref())?,
        model: None,
        expected_version: version_arg(py, expected_version.as_ref(), "expected_version")?,
    };
    let model = ModelArgs::parse(py, model.as_ref(), parameters.as_ref(), provider.as_ref())?;
    Ok(call(move |e, user| async move {
        // Model fields merge over the current version's model, so `parameters=` alone keeps
        // the model name.
        if !model.is_empty() {
            let (_, current) = e.get_prompt(user, id, None).await?;
            update.model = model.over(Some(current.model));
        }
        let (prompt, version) = e.update_prompt(user, id, update).await?;
        Ok(PromptView::new(prompt, Some(version)))
    }))
}

pub(super) fn get_prompt_call(
    py: Python<'_>,
    prompt_id: &Bound<'_, PyAny>,
    version: Arg<'_>,
    label: Arg<'_>,
) -> PyResult<Call<PromptView>> {
    let id: PromptId = id_arg(py, prompt_id, "prompt_id")?;
    let version = version_arg(py, version.as_ref(), "version")?;
    let label = opt_str(label.as_ref(), "label")?;
    Ok(call(move |e, user| async move {
        let (prompt, version) = e.get_prompt_at(user, id, version, label.as_deref()).await?;
        Ok(PromptView::new(prompt, Some(version)))
    }))
}

pub(super) fn list_prompts_call(
    py: Python<'_>,
    status: Arg<'_>,
    limit: Arg<'_>,
    cursor: Arg<'_>,
) -> PyResult<Call<Page<PromptView>>> {
    let status = match opt_str(status.as_ref(), "status")? {
        None => None,
        Some(s) => Some(PromptStatus::parse(&s.to_ascii_uppercase()).ok_or_else(|| {
            invalid_argument(py, "status", format!("{s:?} is not one of ACTIVE, ARCHIVED"))
        })?),
    };
    let limit = limit_arg(py, limit.as_ref())?;
    let cursor = opt_str(cursor.as_ref(), "cursor")?;
    let page = PageRequest::new(Some(limit), cursor.as_deref()).py_err(py)?;
    Ok(call(move |e, user| async move {
        let page = e.list_prompts(user, PromptFilter { status }, page).await?;
        let items = page.items.into_iter().map(|p| PromptView::new(p, None)).collect();
        Ok(Page { items, next_cursor: page.next_cursor })
    }))
}

/// Versions of a prompt, newest first; `cursor` is a `next_cursor` from a previous page.
pub(super) fn versions_call(
    py: Python<'_>,
    prompt_id: &Bound<'_, PyAny>,
    limit: Arg<'_>,
    cursor: Arg<'_>,
) -> PyResult<Call<Page<PromptVersion>>> {
    let id: PromptId = id_arg(py, prompt_id, "prompt_id")?;
    let limit = limit_arg(py, limit.as_ref())?;
    let before = match opt_str(cursor.as_ref(), "cursor")? {
        None => None,
        Some(c) => Some(
            c.parse::<u32>()
                .map_err(|_| invalid_argument(py, "cursor", "not a cursor returned by versions()"))?,
        ),
    };
    let page = VersionPageRequest { limit, before };
    Ok(call(move |e, user| async move { e.list_versions(user, id, page).await }))
}

pub(super) fn archive_prompt_call(
    py: Python<'_>,
    prompt_id: &Bound<'_, PyAny>,
) -> PyResult<Call<PromptView>> {
    let id: PromptId = id_arg(py, prompt_id, "prompt_id")?;
    Ok(call(move |e, user| async move { Ok(PromptView::new(e.archive_prompt(user, id).await?, None)) }))
}

// ----- labels -----

pub(super) fn set_label_call(
    py: Python<'_>,
    prompt_id: &Bound<'_, PyAny>,
    name: &Bound<'_, PyAny>,
    version: &Bound<'_, PyAny>,
) -> PyResult<Call<Label>> {
    let id: PromptId = id_arg(py, prompt_id, "prompt_id")?;
    let name = str_arg(name, "name")?;
    let version =
        version_arg(py, Some(version), "version")?.ok_or_else(|| type_error("version", "an int", version))?;
    Ok(call(move |e, user| async move { e.set_label(user, id, &name, version).await }))
}

pub(super) fn delete_label_call(
    py: Python<'_>,
    prompt_id: &Bound<'_, PyAny>,
    name: &Bound<'_, PyAny>,
) -> PyResult<Call<()>> {
    let id: PromptId = id_arg(py, prompt_id, "prompt_id")?;
    let name = str_arg(name, "name")?;
    Ok(call(move |e, user| async move { e.delete_label(user, id, &name).await }))
}

pub(super) fn labels_call(py: Python<'_>, prompt_id: &Bound<'_, PyAny>) -> PyResult<Call<Vec<Label>>> {
    let id: PromptId = id_arg(py, prompt_id, "prompt_id")?;
    Ok(call(move |e, user| async move { e.labels(user, id).await }))
}

pub(super) fn label_history_call(
    py: Python<'_>,
    prompt_id: &Bound<'_, PyAny>,
    label: Arg<'_>,
) -> PyResult<Call<Vec<LabelMove>>> {
    let id: PromptId = id_arg(py, prompt_id, "prompt_id")?;
    let label = opt_str(label.as_ref(), "label")?;
    Ok(call(move |e, user| async move { e.label_history(user, id, label.as_deref()).await }))
}

pub(super) fn set_promotion_guard_call(
    py: Python<'_>,
    prompt_id: &Bound<'_, PyAny>,
    enabled: &Bound<'_, PyAny>,
) -> PyResult<Call<()>> {
    let id: PromptId = id_arg(py, prompt_id, "prompt_id")?;
    let enabled = bool_arg(Some(enabled), "enabled", false)?;
    let settings = LabelSettings { guard_production: enabled };
    Ok(call(move |e, user| async move { e.set_label_settings(user, id, settings).await }))
}

pub(super) fn diff_call(
    py: Python<'_>,
    prompt_id: &Bound<'_, PyAny>,
    from_: &Bound<'_, PyAny>,
    to: &Bound<'_, PyAny>,
) -> PyResult<Call<VersionDiff>> {
    let id: PromptId = id_arg(py, prompt_id, "prompt_id")?;
    let from = version_ref_arg(py, from_, "from_")?;
    let to = version_ref_arg(py, to, "to")?;
    Ok(call(move |e, user| async move { e.diff(user, id, &from, &to).await }))
}

// ----- inputs -----

/// The validated inputs (defaults filled in) for a version; keys as given (convert them with
/// `Keys::Raw`).
pub(super) fn validate_inputs_call(
    py: Python<'_>,
    prompt_id: &Bound<'_, PyAny>,
    inputs: Arg<'_>,
    version: Arg<'_>,
) -> PyResult<Call<Map<String, Value>>> {
    let id: PromptId = id_arg(py, prompt_id, "prompt_id")?;
    let inputs = inputs_arg(inputs.as_ref(), "inputs")?;
    let version = version_arg(py, version.as_ref(), "version")?;
    Ok(call(move |e, user| async move {
        let (_, v) = e.get_prompt(user, id, version).await?;
        e.validate_inputs(&v, &inputs)
    }))
}

pub(super) fn render_call(
    py: Python<'_>,
    prompt_id: &Bound<'_, PyAny>,
    inputs: Arg<'_>,
    version: Arg<'_>,
) -> PyResult<Call<Vec<Message>>> {
    let id: PromptId = id_arg(py, prompt_id, "prompt_id")?;
    let inputs = inputs_arg(inputs.as_ref(), "inputs")?;
    let version = version_arg(py, version.as_ref(), "version")?;
    Ok(call(move |e, user| async move {
        let (_, v) = e.get_prompt(user, id, version).await?;
        e.render(&v, &inputs)
    }))
}
