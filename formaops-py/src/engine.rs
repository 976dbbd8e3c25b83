//! `NativeEngine`: the engine as Python sees it, one method per engine operation.
//!
//! Every method copies its arguments into owned Rust values while holding the GIL, then runs
//! the engine with the GIL released ([`crate::runtime::block_on`]) or, for `*_async`, as an
//! asyncio awaitable. A method and its `_async` twin share one parsed `Call`, so they check
//! the same arguments, raise the same errors and return the same result. Results are plain
//! dicts in the snake_case view of [`crate::convert`]; the `formaops` Python package wraps
//! them in dataclasses.
//!
//! # Layout
//!
//! - this file: `NativeEngine`, its Python methods, and how a call is run (blocking with the
//!   GIL released, or as an awaitable);
//! - `args`: argument parsing (ids, versions, pages, priorities, timeouts, ...);
//! - `call`: the `Call` type, one engine call with its arguments parsed;
//! - `prompts`, `executions`, `datasets`: the `*_call` of each operation, by area.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use formaops_core::engine::FormaOps;
use formaops_core::ids::UserId;
use pyo3::prelude::*;
use serde_json::Value;

use crate::convert::{Keys, json_to_py, opt_count, opt_mapping_list, opt_str, to_py};
use crate::error::{IntoPyResult, UnavailableError, to_py_err};
use crate::events::{EventStream, ProgressStream};
use crate::open::{OpenOptions, open_engine};
use crate::providers::ProviderOptions;
use crate::runtime::{block_on, runtime};

mod args;
mod call;
mod datasets;
mod executions;
mod prompts;

use args::{Arg, timeout_arg};
use datasets::{
    cancel_experiment_call, create_dataset_call, create_dataset_from_executions_call, dataset_rows_call,
    datasets_call, delete_dataset_call, experiment_results_call, experiments_call, follow_experiment_call,
    get_dataset_call, get_experiment_call, start_experiment_call,
};
use executions::{
    Run, cancel_call, events_call, execute_call, get_execution_call, health_call, list_executions_call,
    metrics_call, metrics_series_call, retry_call, wait_call,
};
use prompts::{
    archive_prompt_call, create_prompt_call, delete_label_call, diff_call, get_prompt_call,
    label_history_call, labels_call, list_prompts_call, render_call, set_label_call,
    set_promotion_guard_call, update_prompt_call, validate_inputs_call, versions_call,
};

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

impl NativeEngine {
    /// `close`: checks `grace`, marks the engine closed and returns the shutdown to await
    /// (None when it was closed already, so closing twice is not an error).
    fn shutdown(
        &self,
        py: Python<'_>,
        grace: Arg<'_>,
    ) -> PyResult<Option<impl Future<Output = ()> + Send + 'static>> {
        let grace = timeout_arg(py, grace.as_ref(), "grace")?;
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(None);
        }
        let engine = self.engine.clone();
        Ok(Some(async move {
            match grace {
                Some(g) => engine.shutdown_within(g).await,
                None => engine.shutdown().await,
            }
        }))
    }

    fn engine(&self) -> PyResult<&FormaOps> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(UnavailableError::new_err("the engine is closed"));
        }
        Ok(&self.engine)
    }

    /// Runs one engine call with the GIL released. `call` gets a clone of the engine and the
    /// user this engine acts as; an engine error becomes its Python exception. Arguments are
    /// converted before, with the GIL held, so a closed engine is reported after a bad
    /// argument.
    fn run<T, Fut>(&self, py: Python<'_>, call: impl FnOnce(FormaOps, UserId) -> Fut) -> PyResult<T>
    where
        Fut: Future<Output = formaops_core::Result<T>> + Send,
        T: Send,
    {
        let fut = call(self.engine()?.clone(), self.user);
        block_on(py, fut)?.py_err(py)
    }

    /// [`run`](Self::run), with the result converted to Python (snake_case dicts).
    fn run_to_py<'py, T, Fut>(
        &self,
        py: Python<'py>,
        call: impl FnOnce(FormaOps, UserId) -> Fut,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        Fut: Future<Output = formaops_core::Result<T>> + Send,
        T: serde::Serialize + Send,
    {
        let value = self.run(py, call)?;
        to_py(py, &value)
    }

    /// One engine call as an asyncio awaitable that resolves to the result converted to
    /// Python (or raises its exception).
    fn run_async<'py, T, Fut>(
        &self,
        py: Python<'py>,
        call: impl FnOnce(FormaOps, UserId) -> Fut,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        Fut: Future<Output = formaops_core::Result<T>> + Send + 'static,
        T: serde::Serialize + Send + 'static,
    {
        self.run_async_with(py, call, |py, value| Ok(to_py(py, &value)?.unbind()))
    }

    /// [`run_async`](Self::run_async) with the result converted by `convert` (GIL held).
    fn run_async_with<'py, T, Fut>(
        &self,
        py: Python<'py>,
        call: impl FnOnce(FormaOps, UserId) -> Fut,
        convert: impl FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        Fut: Future<Output = formaops_core::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let fut = call(self.engine()?.clone(), self.user);
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let result = fut.await;
            Python::attach(|py| match result {
                Ok(value) => convert(py, value),
                Err(e) => Err(to_py_err(py, e)),
            })
        })
    }
}

#[pymethods]
impl NativeEngine {
    /// Opens an engine on a store and a provider, acting as one local user (created on first
    /// open; `user` picks it by email).
    #[staticmethod]
    #[pyo3(signature = (
        url = None,
        *,
        provider = None,
        base_url = None,
        api_key = None,
        user = None,
        mock_latency_ms = None,
        mock_reply = None,
        mock_faults = None,
        max_attempts = None,
        execution_timeout = None,
        concurrency = None,
        prices_file = None,
        durability = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn open(
        py: Python<'_>,
        url: Arg<'_>,
        provider: Arg<'_>,
        base_url: Arg<'_>,
        api_key: Arg<'_>,
        user: Arg<'_>,
        mock_latency_ms: Arg<'_>,
        mock_reply: Arg<'_>,
        mock_faults: Arg<'_>,
        max_attempts: Arg<'_>,
        execution_timeout: Arg<'_>,
        concurrency: Arg<'_>,
        prices_file: Arg<'_>,
        durability: Arg<'_>,
    ) -> PyResult<Self> {
        let options = OpenOptions {
            url: opt_str(url.as_ref(), "url")?.unwrap_or_else(|| "memory://".to_owned()),
            providers: ProviderOptions {
                provider: opt_str(provider.as_ref(), "provider")?.unwrap_or_else(|| "mock".to_owned()),
                base_url: opt_str(base_url.as_ref(), "base_url")?,
                api_key: opt_str(api_key.as_ref(), "api_key")?,
                mock_latency: Duration::from_millis(
                    opt_count::<u64>(mock_latency_ms.as_ref(), "mock_latency_ms")?.unwrap_or(0),
                ),
                mock_reply: opt_str(mock_reply.as_ref(), "mock_reply")?,
                mock_faults: opt_mapping_list(mock_faults.as_ref(), "mock_faults", Keys::Raw)?,
            },
            user: opt_str(user.as_ref(), "user")?,
            max_attempts: opt_count(max_attempts.as_ref(), "max_attempts")?,
            execution_timeout: timeout_arg(py, execution_timeout.as_ref(), "execution_timeout")?,
            concurrency: opt_count(concurrency.as_ref(), "concurrency")?,
            prices_file: opt_str(prices_file.as_ref(), "prices_file")?.map(PathBuf::from),
            durability: opt_str(durability.as_ref(), "durability")?,
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

    /// Stops the workers, letting running executions finish within the grace period
    /// (`grace` seconds, else the engine's); running calls not finished by then are
    /// abandoned and stay recoverable in a persistent store.
    #[pyo3(signature = (*, grace = None))]
    fn close(&self, py: Python<'_>, grace: Arg<'_>) -> PyResult<()> {
        match self.shutdown(py, grace)? {
            Some(shutdown) => block_on(py, shutdown),
            None => Ok(()),
        }
    }

    /// `close` as an asyncio awaitable (resolving to None at once when already closed).
    #[pyo3(signature = (*, grace = None))]
    fn close_async<'py>(&self, py: Python<'py>, grace: Arg<'py>) -> PyResult<Bound<'py, PyAny>> {
        let shutdown = self.shutdown(py, grace)?;
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            if let Some(shutdown) = shutdown {
                shutdown.await;
            }
            Ok(())
        })
    }

    // ----- prompts -----
    //
    // Each method and its `_async` twin run the same `*_call` (see the module docs); only how
    // the call is awaited differs.

    #[pyo3(signature = (
        name, template, *, description = None, system_template = None, variables = None,
        validations = None, model = None, parameters = None, provider = None, labels = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn create_prompt<'py>(
        &self,
        py: Python<'py>,
        name: &Bound<'py, PyAny>,
        template: &Bound<'py, PyAny>,
        description: Arg<'py>,
        system_template: Arg<'py>,
        variables: Arg<'py>,
        validations: Arg<'py>,
        model: Arg<'py>,
        parameters: Arg<'py>,
        provider: Arg<'py>,
        labels: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let call = create_prompt_call(
            py,
            name,
            template,
            description,
            system_template,
            variables,
            validations,
            model,
            parameters,
            provider,
            labels,
        )?;
        self.run_to_py(py, call)
    }

    /// `create_prompt` as an asyncio awaitable.
    #[pyo3(signature = (
        name, template, *, description = None, system_template = None, variables = None,
        validations = None, model = None, parameters = None, provider = None, labels = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn create_prompt_async<'py>(
        &self,
        py: Python<'py>,
        name: &Bound<'py, PyAny>,
        template: &Bound<'py, PyAny>,
        description: Arg<'py>,
        system_template: Arg<'py>,
        variables: Arg<'py>,
        validations: Arg<'py>,
        model: Arg<'py>,
        parameters: Arg<'py>,
        provider: Arg<'py>,
        labels: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let call = create_prompt_call(
            py,
            name,
            template,
            description,
            system_template,
            variables,
            validations,
            model,
            parameters,
            provider,
            labels,
        )?;
        self.run_async(py, call)
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
        prompt_id: &Bound<'py, PyAny>,
        name: Arg<'py>,
        description: Arg<'py>,
        template: Arg<'py>,
        system_template: Arg<'py>,
        variables: Arg<'py>,
        validations: Arg<'py>,
        model: Arg<'py>,
        parameters: Arg<'py>,
        provider: Arg<'py>,
        expected_version: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let call = update_prompt_call(
            py,
            prompt_id,
            name,
            description,
            template,
            system_template,
            variables,
            validations,
            model,
            parameters,
            provider,
            expected_version,
        )?;
        self.run_to_py(py, call)
    }

    /// `update_prompt` as an asyncio awaitable.
    #[pyo3(signature = (
        prompt_id, *, name = None, description = None, template = None, system_template = None,
        variables = None, validations = None, model = None, parameters = None, provider = None,
        expected_version = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn update_prompt_async<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        name: Arg<'py>,
        description: Arg<'py>,
        template: Arg<'py>,
        system_template: Arg<'py>,
        variables: Arg<'py>,
        validations: Arg<'py>,
        model: Arg<'py>,
        parameters: Arg<'py>,
        provider: Arg<'py>,
        expected_version: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let call = update_prompt_call(
            py,
            prompt_id,
            name,
            description,
            template,
            system_template,
            variables,
            validations,
            model,
            parameters,
            provider,
            expected_version,
        )?;
        self.run_async(py, call)
    }

    #[pyo3(signature = (prompt_id, version = None, *, label = None))]
    fn get_prompt<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        version: Arg<'py>,
        label: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, get_prompt_call(py, prompt_id, version, label)?)
    }

    /// `get_prompt` as an asyncio awaitable.
    #[pyo3(signature = (prompt_id, version = None, *, label = None))]
    fn get_prompt_async<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        version: Arg<'py>,
        label: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, get_prompt_call(py, prompt_id, version, label)?)
    }

    #[pyo3(signature = (*, status = None, limit = None, cursor = None))]
    fn list_prompts<'py>(
        &self,
        py: Python<'py>,
        status: Arg<'py>,
        limit: Arg<'py>,
        cursor: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, list_prompts_call(py, status, limit, cursor)?)
    }

    /// `list_prompts` as an asyncio awaitable.
    #[pyo3(signature = (*, status = None, limit = None, cursor = None))]
    fn list_prompts_async<'py>(
        &self,
        py: Python<'py>,
        status: Arg<'py>,
        limit: Arg<'py>,
        cursor: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, list_prompts_call(py, status, limit, cursor)?)
    }

    /// Versions of a prompt, newest first. `cursor` is a `next_cursor` from a previous page.
    #[pyo3(signature = (prompt_id, *, limit = None, cursor = None))]
    fn versions<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        limit: Arg<'py>,
        cursor: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, versions_call(py, prompt_id, limit, cursor)?)
    }

    /// `versions` as an asyncio awaitable.
    #[pyo3(signature = (prompt_id, *, limit = None, cursor = None))]
    fn versions_async<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        limit: Arg<'py>,
        cursor: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, versions_call(py, prompt_id, limit, cursor)?)
    }

    fn archive_prompt<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, archive_prompt_call(py, prompt_id)?)
    }

    /// `archive_prompt` as an asyncio awaitable.
    fn archive_prompt_async<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, archive_prompt_call(py, prompt_id)?)
    }

    // ----- labels -----

    /// Points label `name` at `version` (create, promote, roll back); the move is recorded.
    fn set_label<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        name: &Bound<'py, PyAny>,
        version: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, set_label_call(py, prompt_id, name, version)?)
    }

    /// `set_label` as an asyncio awaitable.
    fn set_label_async<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        name: &Bound<'py, PyAny>,
        version: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, set_label_call(py, prompt_id, name, version)?)
    }

    /// Deletes a label (recorded in the history).
    fn delete_label(
        &self,
        py: Python<'_>,
        prompt_id: &Bound<'_, PyAny>,
        name: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.run(py, delete_label_call(py, prompt_id, name)?)
    }

    /// `delete_label` as an asyncio awaitable (resolving to None).
    fn delete_label_async<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        name: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, delete_label_call(py, prompt_id, name)?)
    }

    /// The prompt's labels, the built-in `latest` first.
    fn labels<'py>(&self, py: Python<'py>, prompt_id: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, labels_call(py, prompt_id)?)
    }

    /// `labels` as an asyncio awaitable.
    fn labels_async<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, labels_call(py, prompt_id)?)
    }

    /// Every move of the prompt's labels (of one label with `label`), newest first.
    #[pyo3(signature = (prompt_id, *, label = None))]
    fn label_history<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        label: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, label_history_call(py, prompt_id, label)?)
    }

    /// `label_history` as an asyncio awaitable.
    #[pyo3(signature = (prompt_id, *, label = None))]
    fn label_history_async<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        label: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, label_history_call(py, prompt_id, label)?)
    }

    /// Turns the promotion guard of `production` on or off.
    fn set_promotion_guard(
        &self,
        py: Python<'_>,
        prompt_id: &Bound<'_, PyAny>,
        enabled: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.run(py, set_promotion_guard_call(py, prompt_id, enabled)?)
    }

    /// `set_promotion_guard` as an asyncio awaitable (resolving to None).
    fn set_promotion_guard_async<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        enabled: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, set_promotion_guard_call(py, prompt_id, enabled)?)
    }

    /// What changed between two versions, each a version number or a label.
    fn diff<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        from_: &Bound<'py, PyAny>,
        to: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, diff_call(py, prompt_id, from_, to)?)
    }

    /// `diff` as an asyncio awaitable.
    fn diff_async<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        from_: &Bound<'py, PyAny>,
        to: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, diff_call(py, prompt_id, from_, to)?)
    }

    // ----- inputs -----

    /// The validated inputs (defaults filled in) for a version, or ValidationError.
    #[pyo3(signature = (prompt_id, inputs = None, *, version = None))]
    fn validate_inputs<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        inputs: Arg<'py>,
        version: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let validated = self.run(py, validate_inputs_call(py, prompt_id, inputs, version)?)?;
        json_to_py(py, &Value::Object(validated), Keys::Raw)
    }

    /// `validate_inputs` as an asyncio awaitable.
    #[pyo3(signature = (prompt_id, inputs = None, *, version = None))]
    fn validate_inputs_async<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        inputs: Arg<'py>,
        version: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async_with(py, validate_inputs_call(py, prompt_id, inputs, version)?, |py, validated| {
            Ok(json_to_py(py, &Value::Object(validated), Keys::Raw)?.unbind())
        })
    }

    /// The rendered messages `[{"role", "content"}]` for a version, without executing.
    #[pyo3(signature = (prompt_id, inputs = None, *, version = None))]
    fn render<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        inputs: Arg<'py>,
        version: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, render_call(py, prompt_id, inputs, version)?)
    }

    /// `render` as an asyncio awaitable.
    #[pyo3(signature = (prompt_id, inputs = None, *, version = None))]
    fn render_async<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        inputs: Arg<'py>,
        version: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, render_call(py, prompt_id, inputs, version)?)
    }

    // ----- executions -----

    /// Submits and waits for the final state, with the GIL released.
    #[pyo3(signature = (
        prompt_id, inputs = None, *, version = None, priority = None, validate_output = None,
        idempotency_key = None, label = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn execute<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        inputs: Arg<'py>,
        version: Arg<'py>,
        priority: Arg<'py>,
        validate_output: Arg<'py>,
        idempotency_key: Arg<'py>,
        label: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let call = execute_call(
            py,
            Run::ToEnd,
            prompt_id,
            inputs,
            version,
            priority,
            validate_output,
            idempotency_key,
            label,
        )?;
        self.run_to_py(py, call)
    }

    /// `execute` as an asyncio awaitable.
    #[pyo3(signature = (
        prompt_id, inputs = None, *, version = None, priority = None, validate_output = None,
        idempotency_key = None, label = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn execute_async<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        inputs: Arg<'py>,
        version: Arg<'py>,
        priority: Arg<'py>,
        validate_output: Arg<'py>,
        idempotency_key: Arg<'py>,
        label: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let call = execute_call(
            py,
            Run::ToEnd,
            prompt_id,
            inputs,
            version,
            priority,
            validate_output,
            idempotency_key,
            label,
        )?;
        self.run_async(py, call)
    }

    /// Validates and enqueues; returns the QUEUED execution without waiting.
    #[pyo3(signature = (
        prompt_id, inputs = None, *, version = None, priority = None, validate_output = None,
        idempotency_key = None, label = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn submit<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        inputs: Arg<'py>,
        version: Arg<'py>,
        priority: Arg<'py>,
        validate_output: Arg<'py>,
        idempotency_key: Arg<'py>,
        label: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let call = execute_call(
            py,
            Run::Enqueue,
            prompt_id,
            inputs,
            version,
            priority,
            validate_output,
            idempotency_key,
            label,
        )?;
        self.run_to_py(py, call)
    }

    /// `submit` as an asyncio awaitable.
    #[pyo3(signature = (
        prompt_id, inputs = None, *, version = None, priority = None, validate_output = None,
        idempotency_key = None, label = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn submit_async<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        inputs: Arg<'py>,
        version: Arg<'py>,
        priority: Arg<'py>,
        validate_output: Arg<'py>,
        idempotency_key: Arg<'py>,
        label: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let call = execute_call(
            py,
            Run::Enqueue,
            prompt_id,
            inputs,
            version,
            priority,
            validate_output,
            idempotency_key,
            label,
        )?;
        self.run_async(py, call)
    }

    /// Waits until the execution is final, or `timeout` seconds pass (then its current state).
    #[pyo3(signature = (execution_id, timeout = None))]
    fn wait<'py>(
        &self,
        py: Python<'py>,
        execution_id: &Bound<'py, PyAny>,
        timeout: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, wait_call(py, execution_id, timeout)?)
    }

    /// `wait` as an asyncio awaitable.
    #[pyo3(signature = (execution_id, timeout = None))]
    fn wait_async<'py>(
        &self,
        py: Python<'py>,
        execution_id: &Bound<'py, PyAny>,
        timeout: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, wait_call(py, execution_id, timeout)?)
    }

    /// Re-runs a FAILED execution as a new one (ConflictError for any other status).
    fn retry<'py>(&self, py: Python<'py>, execution_id: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, retry_call(py, execution_id)?)
    }

    /// `retry` as an asyncio awaitable.
    fn retry_async<'py>(
        &self,
        py: Python<'py>,
        execution_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, retry_call(py, execution_id)?)
    }

    /// Cancels a QUEUED execution (ConflictError for any other status).
    fn cancel<'py>(&self, py: Python<'py>, execution_id: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, cancel_call(py, execution_id)?)
    }

    /// `cancel` as an asyncio awaitable.
    fn cancel_async<'py>(
        &self,
        py: Python<'py>,
        execution_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, cancel_call(py, execution_id)?)
    }

    fn get_execution<'py>(
        &self,
        py: Python<'py>,
        execution_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, get_execution_call(py, execution_id)?)
    }

    /// `get_execution` as an asyncio awaitable.
    fn get_execution_async<'py>(
        &self,
        py: Python<'py>,
        execution_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, get_execution_call(py, execution_id)?)
    }

    #[pyo3(signature = (*, status = None, prompt_id = None, since = None, until = None, limit = None, cursor = None))]
    #[allow(clippy::too_many_arguments)]
    fn list_executions<'py>(
        &self,
        py: Python<'py>,
        status: Arg<'py>,
        prompt_id: Arg<'py>,
        since: Arg<'py>,
        until: Arg<'py>,
        limit: Arg<'py>,
        cursor: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, list_executions_call(py, status, prompt_id, since, until, limit, cursor)?)
    }

    /// `list_executions` as an asyncio awaitable.
    #[pyo3(signature = (*, status = None, prompt_id = None, since = None, until = None, limit = None, cursor = None))]
    #[allow(clippy::too_many_arguments)]
    fn list_executions_async<'py>(
        &self,
        py: Python<'py>,
        status: Arg<'py>,
        prompt_id: Arg<'py>,
        since: Arg<'py>,
        until: Arg<'py>,
        limit: Arg<'py>,
        cursor: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, list_executions_call(py, status, prompt_id, since, until, limit, cursor)?)
    }

    /// Aggregated metrics of this user's executions created in `[since, until)`.
    #[pyo3(signature = (*, since = None, until = None, prompt_id = None, version = None))]
    fn metrics<'py>(
        &self,
        py: Python<'py>,
        since: Arg<'py>,
        until: Arg<'py>,
        prompt_id: Arg<'py>,
        version: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, metrics_call(py, since, until, prompt_id, version)?)
    }

    /// `metrics` as an asyncio awaitable.
    #[pyo3(signature = (*, since = None, until = None, prompt_id = None, version = None))]
    fn metrics_async<'py>(
        &self,
        py: Python<'py>,
        since: Arg<'py>,
        until: Arg<'py>,
        prompt_id: Arg<'py>,
        version: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, metrics_call(py, since, until, prompt_id, version)?)
    }

    /// A time series of this user's final executions in buckets of `bucket` (`minute`, `hour`,
    /// `day`), read from the rollups.
    #[pyo3(signature = (bucket, *, since = None, until = None, prompt_id = None, version = None, label = None))]
    #[allow(clippy::too_many_arguments)]
    fn metrics_series<'py>(
        &self,
        py: Python<'py>,
        bucket: &Bound<'py, PyAny>,
        since: Arg<'py>,
        until: Arg<'py>,
        prompt_id: Arg<'py>,
        version: Arg<'py>,
        label: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, metrics_series_call(py, bucket, since, until, prompt_id, version, label)?)
    }

    /// `metrics_series` as an asyncio awaitable.
    #[pyo3(signature = (bucket, *, since = None, until = None, prompt_id = None, version = None, label = None))]
    #[allow(clippy::too_many_arguments)]
    fn metrics_series_async<'py>(
        &self,
        py: Python<'py>,
        bucket: &Bound<'py, PyAny>,
        since: Arg<'py>,
        until: Arg<'py>,
        prompt_id: Arg<'py>,
        version: Arg<'py>,
        label: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, metrics_series_call(py, bucket, since, until, prompt_id, version, label)?)
    }

    /// State-change events of this user's executions (of one with `execution_id`), from now
    /// on. `timeout`: seconds to wait for each next event before the iteration ends.
    #[pyo3(signature = (execution_id = None, *, timeout = None))]
    fn events(&self, py: Python<'_>, execution_id: Arg<'_>, timeout: Arg<'_>) -> PyResult<EventStream> {
        let (subscribe, timeout) = events_call(py, execution_id, timeout)?;
        Ok(EventStream::new(self.run(py, subscribe)?, timeout))
    }

    /// `events` as an asyncio awaitable resolving to the stream (following one execution
    /// reads the store, so subscribing is awaited).
    #[pyo3(signature = (execution_id = None, *, timeout = None))]
    fn events_async<'py>(
        &self,
        py: Python<'py>,
        execution_id: Arg<'py>,
        timeout: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (subscribe, timeout) = events_call(py, execution_id, timeout)?;
        self.run_async_with(py, subscribe, move |py, stream| {
            Ok(Py::new(py, EventStream::new(stream, timeout))?.into_any())
        })
    }

    // ----- datasets -----

    /// Stores a dataset of `rows` (`[{"inputs": {...}, "expected"?: ...}]`, numbered from 0);
    /// every bad row is listed at once as `rows[i]`.
    fn create_dataset<'py>(
        &self,
        py: Python<'py>,
        name: &Bound<'py, PyAny>,
        rows: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, create_dataset_call(py, name, rows)?)
    }

    /// `create_dataset` as an asyncio awaitable.
    fn create_dataset_async<'py>(
        &self,
        py: Python<'py>,
        name: &Bound<'py, PyAny>,
        rows: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, create_dataset_call(py, name, rows)?)
    }

    /// Stores a dataset of the inputs of past executions of a prompt, newest first.
    #[pyo3(signature = (
        name, prompt_id, *, status = None, version = None, since = None, until = None, limit = None,
        expected_from_output = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn create_dataset_from_executions<'py>(
        &self,
        py: Python<'py>,
        name: &Bound<'py, PyAny>,
        prompt_id: &Bound<'py, PyAny>,
        status: Arg<'py>,
        version: Arg<'py>,
        since: Arg<'py>,
        until: Arg<'py>,
        limit: Arg<'py>,
        expected_from_output: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let call = create_dataset_from_executions_call(
            py,
            name,
            prompt_id,
            status,
            version,
            since,
            until,
            limit,
            expected_from_output,
        )?;
        self.run_to_py(py, call)
    }

    /// `create_dataset_from_executions` as an asyncio awaitable.
    #[pyo3(signature = (
        name, prompt_id, *, status = None, version = None, since = None, until = None, limit = None,
        expected_from_output = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn create_dataset_from_executions_async<'py>(
        &self,
        py: Python<'py>,
        name: &Bound<'py, PyAny>,
        prompt_id: &Bound<'py, PyAny>,
        status: Arg<'py>,
        version: Arg<'py>,
        since: Arg<'py>,
        until: Arg<'py>,
        limit: Arg<'py>,
        expected_from_output: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let call = create_dataset_from_executions_call(
            py,
            name,
            prompt_id,
            status,
            version,
            since,
            until,
            limit,
            expected_from_output,
        )?;
        self.run_async(py, call)
    }

    /// The user's datasets, newest first.
    #[pyo3(signature = (*, limit = None, cursor = None))]
    fn datasets<'py>(
        &self,
        py: Python<'py>,
        limit: Arg<'py>,
        cursor: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, datasets_call(py, limit, cursor)?)
    }

    /// `datasets` as an asyncio awaitable.
    #[pyo3(signature = (*, limit = None, cursor = None))]
    fn datasets_async<'py>(
        &self,
        py: Python<'py>,
        limit: Arg<'py>,
        cursor: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, datasets_call(py, limit, cursor)?)
    }

    fn get_dataset<'py>(
        &self,
        py: Python<'py>,
        dataset_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, get_dataset_call(py, dataset_id)?)
    }

    /// `get_dataset` as an asyncio awaitable.
    fn get_dataset_async<'py>(
        &self,
        py: Python<'py>,
        dataset_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, get_dataset_call(py, dataset_id)?)
    }

    /// Rows by index; `next_cursor` is the last index returned when the page is full.
    #[pyo3(signature = (dataset_id, *, limit = None, cursor = None))]
    fn dataset_rows<'py>(
        &self,
        py: Python<'py>,
        dataset_id: &Bound<'py, PyAny>,
        limit: Arg<'py>,
        cursor: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, dataset_rows_call(py, dataset_id, limit, cursor)?)
    }

    /// `dataset_rows` as an asyncio awaitable.
    #[pyo3(signature = (dataset_id, *, limit = None, cursor = None))]
    fn dataset_rows_async<'py>(
        &self,
        py: Python<'py>,
        dataset_id: &Bound<'py, PyAny>,
        limit: Arg<'py>,
        cursor: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, dataset_rows_call(py, dataset_id, limit, cursor)?)
    }

    /// Deletes a dataset and its rows (ConflictError while an experiment uses it).
    fn delete_dataset(&self, py: Python<'_>, dataset_id: &Bound<'_, PyAny>) -> PyResult<()> {
        self.run(py, delete_dataset_call(py, dataset_id)?)
    }

    /// `delete_dataset` as an asyncio awaitable (resolving to None).
    fn delete_dataset_async<'py>(
        &self,
        py: Python<'py>,
        dataset_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, delete_dataset_call(py, dataset_id)?)
    }

    // ----- experiments -----

    /// Starts an experiment running `versions` (numbers or labels) over a dataset; returns it
    /// with its progress.
    #[pyo3(signature = (
        prompt_id, dataset_id, versions, *, priority = None, concurrency = None, r#match = None,
        validate_output = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn start_experiment<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        dataset_id: &Bound<'py, PyAny>,
        versions: &Bound<'py, PyAny>,
        priority: Arg<'py>,
        concurrency: Arg<'py>,
        r#match: Arg<'py>,
        validate_output: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let call = start_experiment_call(
            py,
            prompt_id,
            dataset_id,
            versions,
            priority,
            concurrency,
            r#match,
            validate_output,
        )?;
        self.run_to_py(py, call)
    }

    /// `start_experiment` as an asyncio awaitable.
    #[pyo3(signature = (
        prompt_id, dataset_id, versions, *, priority = None, concurrency = None, r#match = None,
        validate_output = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn start_experiment_async<'py>(
        &self,
        py: Python<'py>,
        prompt_id: &Bound<'py, PyAny>,
        dataset_id: &Bound<'py, PyAny>,
        versions: &Bound<'py, PyAny>,
        priority: Arg<'py>,
        concurrency: Arg<'py>,
        r#match: Arg<'py>,
        validate_output: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let call = start_experiment_call(
            py,
            prompt_id,
            dataset_id,
            versions,
            priority,
            concurrency,
            r#match,
            validate_output,
        )?;
        self.run_async(py, call)
    }

    /// One experiment with its `progress` (`total`, `done`, `failed`, `in_flight`, `cost_usd`).
    fn get_experiment<'py>(
        &self,
        py: Python<'py>,
        experiment_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, get_experiment_call(py, experiment_id)?)
    }

    /// `get_experiment` as an asyncio awaitable.
    fn get_experiment_async<'py>(
        &self,
        py: Python<'py>,
        experiment_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, get_experiment_call(py, experiment_id)?)
    }

    /// The user's experiments, newest first.
    #[pyo3(signature = (*, limit = None, cursor = None))]
    fn experiments<'py>(
        &self,
        py: Python<'py>,
        limit: Arg<'py>,
        cursor: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, experiments_call(py, limit, cursor)?)
    }

    /// `experiments` as an asyncio awaitable.
    #[pyo3(signature = (*, limit = None, cursor = None))]
    fn experiments_async<'py>(
        &self,
        py: Python<'py>,
        limit: Arg<'py>,
        cursor: Arg<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, experiments_call(py, limit, cursor)?)
    }

    /// The side-by-side comparison as it is now.
    fn experiment_results<'py>(
        &self,
        py: Python<'py>,
        experiment_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, experiment_results_call(py, experiment_id)?)
    }

    /// `experiment_results` as an asyncio awaitable.
    fn experiment_results_async<'py>(
        &self,
        py: Python<'py>,
        experiment_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, experiment_results_call(py, experiment_id)?)
    }

    /// Cancels a running experiment (ConflictError once completed); returns it with its progress.
    fn cancel_experiment<'py>(
        &self,
        py: Python<'py>,
        experiment_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, cancel_experiment_call(py, experiment_id)?)
    }

    /// `cancel_experiment` as an asyncio awaitable.
    fn cancel_experiment_async<'py>(
        &self,
        py: Python<'py>,
        experiment_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, cancel_experiment_call(py, experiment_id)?)
    }

    /// The experiment's progress now and on each change, ending once it is completed or
    /// cancelled with nothing in flight.
    fn follow_experiment(
        &self,
        py: Python<'_>,
        experiment_id: &Bound<'_, PyAny>,
    ) -> PyResult<ProgressStream> {
        let stream = self.run(py, follow_experiment_call(py, experiment_id)?)?;
        Ok(ProgressStream::new(stream))
    }

    /// `follow_experiment` as an asyncio awaitable resolving to the stream (subscribing reads
    /// the store, so it is awaited too).
    fn follow_experiment_async<'py>(
        &self,
        py: Python<'py>,
        experiment_id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run_async_with(py, follow_experiment_call(py, experiment_id)?, |py, stream| {
            Ok(Py::new(py, ProgressStream::new(stream))?.into_any())
        })
    }

    /// The engine's health: store reachability, queue depth, providers.
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.run_to_py(py, health_call())
    }

    /// `health` as an asyncio awaitable.
    fn health_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.run_async(py, health_call())
    }

    fn __repr__(&self) -> String {
        format!("NativeEngine(user={:?}, closed={})", self.email, self.closed.load(Ordering::Relaxed))
    }
}
