//! `NativeEngine`: the engine as Python sees it, one method per engine operation.
//!
//! Every method copies its arguments into owned Rust values while holding the GIL, then runs
//! the engine with the GIL released ([`crate::runtime::block_on`]) or, for `*_async`, as an
//! asyncio awaitable. Results are plain dicts in the snake_case view of [`crate::convert`];
//! the `formaops` Python package wraps them in dataclasses.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use formaops_core::Problem;
use formaops_core::engine::{ExecuteRequest, FormaOps};
use formaops_core::execution::{ExecutionStatus, Priority};
use formaops_core::ids::{ExecutionId, PromptId, UserId};
use formaops_core::metrics::MetricsQuery;
use formaops_core::page::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PageRequest};
use formaops_core::prompt::{
    ModelConfig, ModelParameters, Prompt, PromptSpec, PromptStatus, PromptUpdate, PromptVersion,
};
use formaops_core::store::{ExecutionFilter, PromptFilter, VersionPageRequest};
use formaops_core::validation::ValidationRule;
use formaops_core::variables::VariableDefinition;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use serde_json::Value;

use crate::convert::{Keys, json_to_py, py_to_json, py_to_object, to_py};
use crate::error::{IntoPyResult, UnavailableError, invalid_argument, to_py_err, validation_error};
use crate::events::EventStream;
use crate::open::{OpenOptions, open_engine};
use crate::runtime::{block_on, runtime};

/// A FormaOps engine running in this process, acting as one user.
#[pyclass(module = "formaops._formaops", frozen)]
#[derive(Debug)]
pub struct NativeEngine {
    engine: FormaOps,
    user: UserId,
    email: String,
    closed: AtomicBool,
}

impl Drop for NativeEngine {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            let engine = self.engine.clone();
            runtime().spawn(async move { engine.shutdown().await });
        }
    }
}

// ----- argument parsing (GIL held) -----

pub(crate) fn parse_id<T: FromStr>(py: Python<'_>, field: &str, value: &str) -> PyResult<T> {
    T::from_str(value.trim()).map_err(|_| invalid_argument(py, field, format!("{value:?} is not a UUID")))
}

pub(crate) fn parse_timeout(py: Python<'_>, field: &str, seconds: Option<f64>) -> PyResult<Option<Duration>> {
    match seconds {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => {
            Duration::try_from_secs_f64(s).map(Some).map_err(|_| invalid_argument(py, field, "is too large"))
        }
        Some(s) => {
            Err(invalid_argument(py, field, format!("must be a finite number of seconds >= 0, not {s}")))
        }
    }
}

fn parse_priority(py: Python<'_>, value: &str) -> PyResult<Priority> {
    Priority::parse(&value.to_ascii_uppercase())
        .ok_or_else(|| invalid_argument(py, "priority", format!("{value:?} is not one of LOW, NORMAL, HIGH")))
}

fn parse_limit(py: Python<'_>, limit: Option<i64>) -> PyResult<u32> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(l) if (1..=i64::from(MAX_PAGE_SIZE)).contains(&l) => Ok(l as u32),
        Some(l) => Err(invalid_argument(py, "limit", format!("{l} is not between 1 and {MAX_PAGE_SIZE}"))),
    }
}

fn parse_version(py: Python<'_>, version: Option<i64>) -> PyResult<Option<u32>> {
    match version {
        None => Ok(None),
        Some(v) if v >= 1 && v <= i64::from(u32::MAX) => Ok(Some(v as u32)),
        Some(v) => Err(invalid_argument(py, "version", format!("{v} is not a version number (1 or more)"))),
    }
}

/// Deserializes a JSON value into a core type, reporting serde's complaint as a problem of
/// `field`.
fn from_json<T: serde::de::DeserializeOwned>(py: Python<'_>, field: &str, value: Value) -> PyResult<T> {
    serde_json::from_value(value).map_err(|e| {
        let problem = Problem::new(field, "invalid", e.to_string());
        validation_error(py, format!("invalid {field}: {e}"), &[problem])
    })
}

fn list_arg<T: serde::de::DeserializeOwned>(
    py: Python<'_>,
    field: &str,
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<Vec<T>>> {
    match value {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => {
            let json = py_to_json(v, Keys::ToCamel, field)?;
            if !json.is_array() {
                return Err(invalid_argument(py, field, "must be a list of dicts"));
            }
            from_json(py, field, json).map(Some)
        }
    }
}

/// The `model`, `parameters` and `provider` arguments, merged over `base`.
/// `model` may be a model name or a full dict `{"model", "provider", "parameters"}`.
fn model_arg(
    py: Python<'_>,
    base: Option<ModelConfig>,
    model: Option<&Bound<'_, PyAny>>,
    parameters: Option<&Bound<'_, PyAny>>,
    provider: Option<String>,
) -> PyResult<Option<ModelConfig>> {
    let model = model.filter(|m| !m.is_none());
    let parameters = parameters.filter(|p| !p.is_none());
    if model.is_none() && parameters.is_none() && provider.is_none() {
        return Ok(base);
    }
    let mut config = base.unwrap_or_default();
    if let Some(m) = model {
        if let Ok(name) = m.cast::<PyString>() {
            config.model = name.to_cow()?.into_owned();
        } else {
            config = from_json(py, "model", py_to_json(m, Keys::ToCamel, "model")?)?;
        }
    }
    if let Some(p) = parameters {
        config.parameters =
            from_json::<ModelParameters>(py, "parameters", py_to_json(p, Keys::ToCamel, "parameters")?)?;
    }
    if let Some(p) = provider {
        config.provider = Some(p);
    }
    Ok(Some(config))
}

/// The prompt with the given version under `version`.
fn prompt_to_py<'py>(
    py: Python<'py>,
    prompt: &Prompt,
    version: Option<&PromptVersion>,
) -> PyResult<Bound<'py, PyAny>> {
    let dict = to_py(py, prompt)?;
    let version = match version {
        Some(v) => to_py(py, v)?,
        None => py.None().into_bound(py),
    };
    dict.set_item("version", version)?;
    Ok(dict)
}

/// Converts an engine result to Python (GIL held).
fn result_to_py<T: serde::Serialize>(
    py: Python<'_>,
    result: formaops_core::Result<T>,
) -> PyResult<Py<PyAny>> {
    match result {
        Ok(v) => Ok(to_py(py, &v)?.unbind()),
        Err(e) => Err(to_py_err(py, e)),
    }
}

/// Arguments of execute/submit, owned.
fn execute_request(
    py: Python<'_>,
    prompt_id: &str,
    inputs: Option<&Bound<'_, PyAny>>,
    version: Option<i64>,
    priority: &str,
    validate_output: bool,
    idempotency_key: Option<String>,
) -> PyResult<ExecuteRequest> {
    Ok(ExecuteRequest {
        prompt_id: parse_id(py, "prompt_id", prompt_id)?,
        version: parse_version(py, version)?,
        inputs: py_to_object(inputs, "inputs")?,
        priority: parse_priority(py, priority)?,
        validate_output,
        idempotency_key,
    })
}

impl NativeEngine {
    fn engine(&self) -> PyResult<&FormaOps> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(UnavailableError::new_err("the engine is closed"));
        }
        Ok(&self.engine)
    }
}

#[pymethods]
impl NativeEngine {
    /// Opens an engine on a store and a provider, acting as one local user (created on first
    /// open; `user` picks it by email).
    #[staticmethod]
    #[pyo3(signature = (
        url = "memory://",
        *,
        provider = "mock",
        base_url = None,
        api_key = None,
        user = None,
        mock_latency_ms = 0,
        mock_reply = None,
        mock_faults = None,
        max_attempts = None,
        execution_timeout = None,
        concurrency = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn open(
        py: Python<'_>,
        url: &str,
        provider: &str,
        base_url: Option<String>,
        api_key: Option<String>,
        user: Option<String>,
        mock_latency_ms: u64,
        mock_reply: Option<String>,
        mock_faults: Option<Bound<'_, PyAny>>,
        max_attempts: Option<u32>,
        execution_timeout: Option<f64>,
        concurrency: Option<usize>,
    ) -> PyResult<Self> {
        let mock_faults = match mock_faults {
            Some(f) if !f.is_none() => Some(py_to_json(&f, Keys::Raw, "mock_faults")?),
            _ => None,
        };
        let options = OpenOptions {
            url: url.to_owned(),
            provider: provider.to_owned(),
            base_url,
            api_key,
            user,
            mock_latency: Duration::from_millis(mock_latency_ms),
            mock_reply,
            mock_faults,
            max_attempts,
            execution_timeout: parse_timeout(py, "execution_timeout", execution_timeout)?,
            concurrency,
        };
        let opened = block_on(py, open_engine(options))?.py_err(py)?;
        Ok(Self {
            engine: opened.engine,
            user: opened.user,
            email: opened.email,
            closed: AtomicBool::new(false),
        })
    }

    /// The id of the user this engine acts as.
    #[getter]
    fn user_id(&self) -> String {
        self.user.to_string()
    }

    /// The email of the user this engine acts as.
    #[getter]
    fn user_email(&self) -> String {
        self.email.clone()
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Stops the workers, letting running executions finish within the grace period.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let engine = self.engine.clone();
        block_on(py, async move { engine.shutdown().await })
    }

    // ----- prompts -----

    #[pyo3(signature = (
        name, template, *, description = None, system_template = None, variables = None,
        validations = None, model = None, parameters = None, provider = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn create_prompt<'py>(
        &self,
        py: Python<'py>,
        name: String,
        template: String,
        description: Option<String>,
        system_template: Option<String>,
        variables: Option<Bound<'py, PyAny>>,
        validations: Option<Bound<'py, PyAny>>,
        model: Option<Bound<'py, PyAny>>,
        parameters: Option<Bound<'py, PyAny>>,
        provider: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let spec = PromptSpec {
            name,
            description,
            template,
            system_template,
            variables: list_arg::<VariableDefinition>(py, "variables", variables.as_ref())?
                .unwrap_or_default(),
            validations: list_arg::<ValidationRule>(py, "validations", validations.as_ref())?
                .unwrap_or_default(),
            model: model_arg(py, None, model.as_ref(), parameters.as_ref(), provider)?,
        };
        let engine = self.engine()?.clone();
        let user = self.user;
        let (prompt, version) =
            block_on(py, async move { engine.create_prompt(user, spec).await })?.py_err(py)?;
        prompt_to_py(py, &prompt, Some(&version))
    }

    #[pyo3(signature = (
        prompt_id, *, name = None, description = None, template = None, system_template = None,
        variables = None, validations = None, model = None, parameters = None, provider = None,
        expected_version = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn update_prompt<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &str,
        name: Option<String>,
        description: Option<String>,
        template: Option<String>,
        system_template: Option<String>,
        variables: Option<Bound<'py, PyAny>>,
        validations: Option<Bound<'py, PyAny>>,
        model: Option<Bound<'py, PyAny>>,
        parameters: Option<Bound<'py, PyAny>>,
        provider: Option<String>,
        expected_version: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id: PromptId = parse_id(py, "prompt_id", prompt_id)?;
        let engine = self.engine()?.clone();
        let user = self.user;
        let model_given = [&model, &parameters].iter().any(|a| a.as_ref().is_some_and(|v| !v.is_none()))
            || provider.is_some();
        // Model fields merge over the current version's model, so `parameters=` alone keeps
        // the model name.
        let model = if model_given {
            let e = engine.clone();
            let (_, current) = block_on(py, async move { e.get_prompt(user, id, None).await })?.py_err(py)?;
            model_arg(py, Some(current.model), model.as_ref(), parameters.as_ref(), provider)?
        } else {
            None
        };
        let update = PromptUpdate {
            name,
            description,
            template,
            system_template,
            variables: list_arg(py, "variables", variables.as_ref())?,
            validations: list_arg(py, "validations", validations.as_ref())?,
            model,
            expected_version: parse_version(py, expected_version)?,
        };
        let (prompt, version) =
            block_on(py, async move { engine.update_prompt(user, id, update).await })?.py_err(py)?;
        prompt_to_py(py, &prompt, Some(&version))
    }

    #[pyo3(signature = (prompt_id, version = None))]
    fn get_prompt<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &str,
        version: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id: PromptId = parse_id(py, "prompt_id", prompt_id)?;
        let version = parse_version(py, version)?;
        let engine = self.engine()?.clone();
        let user = self.user;
        let (prompt, version) =
            block_on(py, async move { engine.get_prompt(user, id, version).await })?.py_err(py)?;
        prompt_to_py(py, &prompt, Some(&version))
    }

    #[pyo3(signature = (*, status = None, limit = None, cursor = None))]
    fn list_prompts<'py>(
        &self,
        py: Python<'py>,
        status: Option<String>,
        limit: Option<i64>,
        cursor: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let status = match status {
            None => None,
            Some(s) => Some(PromptStatus::parse(&s.to_ascii_uppercase()).ok_or_else(|| {
                invalid_argument(py, "status", format!("{s:?} is not one of ACTIVE, ARCHIVED"))
            })?),
        };
        let page = PageRequest::new(Some(parse_limit(py, limit)?), cursor.as_deref()).py_err(py)?;
        let engine = self.engine()?.clone();
        let user = self.user;
        let page =
            block_on(py, async move { engine.list_prompts(user, PromptFilter { status }, page).await })?
                .py_err(py)?;
        let items = PyList::empty(py);
        for p in &page.items {
            items.append(prompt_to_py(py, p, None)?)?;
        }
        let out = PyDict::new(py);
        out.set_item("items", items)?;
        out.set_item("next_cursor", page.next_cursor)?;
        Ok(out.into_any())
    }

    /// Versions of a prompt, newest first. `cursor` is a `next_cursor` from a previous page.
    #[pyo3(signature = (prompt_id, *, limit = None, cursor = None))]
    fn versions<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &str,
        limit: Option<i64>,
        cursor: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id: PromptId = parse_id(py, "prompt_id", prompt_id)?;
        let before = match cursor {
            None => None,
            Some(c) => Some(
                c.parse::<u32>()
                    .map_err(|_| invalid_argument(py, "cursor", "not a cursor returned by versions()"))?,
            ),
        };
        let page = VersionPageRequest { limit: parse_limit(py, limit)?, before };
        let engine = self.engine()?.clone();
        let user = self.user;
        let page = block_on(py, async move { engine.list_versions(user, id, page).await })?.py_err(py)?;
        to_py(py, &page)
    }

    fn archive_prompt<'py>(&self, py: Python<'py>, prompt_id: &str) -> PyResult<Bound<'py, PyAny>> {
        let id: PromptId = parse_id(py, "prompt_id", prompt_id)?;
        let engine = self.engine()?.clone();
        let user = self.user;
        let prompt = block_on(py, async move { engine.archive_prompt(user, id).await })?.py_err(py)?;
        prompt_to_py(py, &prompt, None)
    }

    /// The validated inputs (defaults filled in) for a version, or ValidationError.
    #[pyo3(signature = (prompt_id, inputs = None, *, version = None))]
    fn validate_inputs<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &str,
        inputs: Option<Bound<'py, PyAny>>,
        version: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id: PromptId = parse_id(py, "prompt_id", prompt_id)?;
        let version = parse_version(py, version)?;
        let inputs = py_to_object(inputs.as_ref(), "inputs")?;
        let engine = self.engine()?.clone();
        let user = self.user;
        let validated = block_on(py, async move {
            let (_, v) = engine.get_prompt(user, id, version).await?;
            engine.validate_inputs(&v, &inputs)
        })?
        .py_err(py)?;
        json_to_py(py, &Value::Object(validated), Keys::Raw)
    }

    /// The rendered messages `[{"role", "content"}]` for a version, without executing.
    #[pyo3(signature = (prompt_id, inputs = None, *, version = None))]
    fn render<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &str,
        inputs: Option<Bound<'py, PyAny>>,
        version: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id: PromptId = parse_id(py, "prompt_id", prompt_id)?;
        let version = parse_version(py, version)?;
        let inputs = py_to_object(inputs.as_ref(), "inputs")?;
        let engine = self.engine()?.clone();
        let user = self.user;
        let messages = block_on(py, async move {
            let (_, v) = engine.get_prompt(user, id, version).await?;
            engine.render(&v, &inputs)
        })?
        .py_err(py)?;
        to_py(py, &messages)
    }

    // ----- executions -----

    /// Submits and waits for the final state, with the GIL released.
    #[pyo3(signature = (
        prompt_id, inputs = None, *, version = None, priority = "NORMAL", validate_output = false,
        idempotency_key = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn execute<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &str,
        inputs: Option<Bound<'py, PyAny>>,
        version: Option<i64>,
        priority: &str,
        validate_output: bool,
        idempotency_key: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = execute_request(
            py,
            prompt_id,
            inputs.as_ref(),
            version,
            priority,
            validate_output,
            idempotency_key,
        )?;
        let engine = self.engine()?.clone();
        let user = self.user;
        let execution = block_on(py, async move { engine.execute(user, request).await })?.py_err(py)?;
        to_py(py, &execution)
    }

    /// `execute` as an asyncio awaitable.
    #[pyo3(signature = (
        prompt_id, inputs = None, *, version = None, priority = "NORMAL", validate_output = false,
        idempotency_key = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn execute_async<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &str,
        inputs: Option<Bound<'py, PyAny>>,
        version: Option<i64>,
        priority: &str,
        validate_output: bool,
        idempotency_key: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = execute_request(
            py,
            prompt_id,
            inputs.as_ref(),
            version,
            priority,
            validate_output,
            idempotency_key,
        )?;
        let engine = self.engine()?.clone();
        let user = self.user;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let result = engine.execute(user, request).await;
            Python::attach(|py| result_to_py(py, result))
        })
    }

    /// Validates and enqueues; returns the QUEUED execution without waiting.
    #[pyo3(signature = (
        prompt_id, inputs = None, *, version = None, priority = "NORMAL", validate_output = false,
        idempotency_key = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn submit<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &str,
        inputs: Option<Bound<'py, PyAny>>,
        version: Option<i64>,
        priority: &str,
        validate_output: bool,
        idempotency_key: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = execute_request(
            py,
            prompt_id,
            inputs.as_ref(),
            version,
            priority,
            validate_output,
            idempotency_key,
        )?;
        let engine = self.engine()?.clone();
        let user = self.user;
        let execution = block_on(py, async move { engine.submit(user, request).await })?.py_err(py)?;
        to_py(py, &execution)
    }

    /// Waits until the execution is final, or `timeout` seconds pass (then its current state).
    #[pyo3(signature = (execution_id, timeout = None))]
    fn wait<'py>(
        &self,
        py: Python<'py>,
        execution_id: &str,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id: ExecutionId = parse_id(py, "execution_id", execution_id)?;
        let timeout = parse_timeout(py, "timeout", timeout)?;
        let engine = self.engine()?.clone();
        let user = self.user;
        let execution = block_on(py, async move { engine.wait(user, id, timeout).await })?.py_err(py)?;
        to_py(py, &execution)
    }

    /// `wait` as an asyncio awaitable.
    #[pyo3(signature = (execution_id, timeout = None))]
    fn wait_async<'py>(
        &self,
        py: Python<'py>,
        execution_id: &str,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id: ExecutionId = parse_id(py, "execution_id", execution_id)?;
        let timeout = parse_timeout(py, "timeout", timeout)?;
        let engine = self.engine()?.clone();
        let user = self.user;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let result = engine.wait(user, id, timeout).await;
            Python::attach(|py| result_to_py(py, result))
        })
    }

    /// Re-runs a FAILED execution as a new one (ConflictError for any other status).
    fn retry<'py>(&self, py: Python<'py>, execution_id: &str) -> PyResult<Bound<'py, PyAny>> {
        let id: ExecutionId = parse_id(py, "execution_id", execution_id)?;
        let engine = self.engine()?.clone();
        let user = self.user;
        let execution = block_on(py, async move { engine.retry(user, id).await })?.py_err(py)?;
        to_py(py, &execution)
    }

    /// Cancels a QUEUED execution (ConflictError for any other status).
    fn cancel<'py>(&self, py: Python<'py>, execution_id: &str) -> PyResult<Bound<'py, PyAny>> {
        let id: ExecutionId = parse_id(py, "execution_id", execution_id)?;
        let engine = self.engine()?.clone();
        let user = self.user;
        let execution = block_on(py, async move { engine.cancel(user, id).await })?.py_err(py)?;
        to_py(py, &execution)
    }

    fn get_execution<'py>(&self, py: Python<'py>, execution_id: &str) -> PyResult<Bound<'py, PyAny>> {
        let id: ExecutionId = parse_id(py, "execution_id", execution_id)?;
        let engine = self.engine()?.clone();
        let user = self.user;
        let execution = block_on(py, async move { engine.get_execution(user, id).await })?.py_err(py)?;
        to_py(py, &execution)
    }

    #[pyo3(signature = (*, status = None, prompt_id = None, since = None, until = None, limit = None, cursor = None))]
    #[allow(clippy::too_many_arguments)]
    fn list_executions<'py>(
        &self,
        py: Python<'py>,
        status: Option<String>,
        prompt_id: Option<String>,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        limit: Option<i64>,
        cursor: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let status = match status {
            None => None,
            Some(s) => Some(ExecutionStatus::parse(&s.to_ascii_uppercase()).ok_or_else(|| {
                invalid_argument(
                    py,
                    "status",
                    format!("{s:?} is not one of QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED"),
                )
            })?),
        };
        let prompt_id = prompt_id.map(|p| parse_id::<PromptId>(py, "prompt_id", &p)).transpose()?;
        let filter = ExecutionFilter { status, prompt_id, since, until };
        let page = PageRequest::new(Some(parse_limit(py, limit)?), cursor.as_deref()).py_err(py)?;
        let engine = self.engine()?.clone();
        let user = self.user;
        let page =
            block_on(py, async move { engine.list_executions(user, filter, page).await })?.py_err(py)?;
        to_py(py, &page)
    }

    /// Aggregated metrics of this user's executions created in `[since, until)`.
    #[pyo3(signature = (*, since = None, until = None, prompt_id = None, version = None))]
    fn metrics<'py>(
        &self,
        py: Python<'py>,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        prompt_id: Option<String>,
        version: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let prompt_id = prompt_id.map(|p| parse_id::<PromptId>(py, "prompt_id", &p)).transpose()?;
        let prompt_version = parse_version(py, version)?;
        let query = MetricsQuery { since, until, prompt_id, prompt_version };
        let engine = self.engine()?.clone();
        let user = self.user;
        let report = block_on(py, async move { engine.metrics(user, query).await })?.py_err(py)?;
        to_py(py, &report)
    }

    /// State-change events of this user's executions (of one with `execution_id`), from now
    /// on. `timeout`: seconds to wait for each next event before the iteration ends.
    #[pyo3(signature = (execution_id = None, *, timeout = None))]
    fn events(
        &self,
        py: Python<'_>,
        execution_id: Option<String>,
        timeout: Option<f64>,
    ) -> PyResult<EventStream> {
        let id = execution_id.map(|e| parse_id::<ExecutionId>(py, "execution_id", &e)).transpose()?;
        let timeout = parse_timeout(py, "timeout", timeout)?;
        let engine = self.engine()?.clone();
        let user = self.user;
        // One execution: engine::follow ends the stream after its final event (at once when
        // it is already final).
        let stream = match id {
            Some(id) => block_on(py, async move { engine.follow(user, id).await })?.py_err(py)?.events,
            None => engine.subscribe(user, None),
        };
        Ok(EventStream::new(stream, timeout))
    }

    /// The engine's health: store reachability, queue depth, providers.
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let engine = self.engine()?.clone();
        let report = block_on(py, async move { engine.health().await })?;
        to_py(py, &report)
    }

    fn __repr__(&self) -> String {
        format!("NativeEngine(user={:?}, closed={})", self.email, self.closed.load(Ordering::Relaxed))
    }
}
