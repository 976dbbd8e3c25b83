//! Execution, metrics, events and health calls: the arguments of each operation parsed once
//! into a [`Call`], shared by the blocking method and its `_async` twin (see the parent module).

use std::time::Duration;

use formaops_core::engine::{ExecuteRequest, HealthReport};
use formaops_core::events::ExecutionEvent;
use formaops_core::execution::Execution;
use formaops_core::ids::{ExecutionId, PromptId};
use formaops_core::metrics::{Granularity, MetricsQuery, MetricsReport, MetricsSeries, MetricsSeriesQuery};
use formaops_core::page::Page;
use formaops_core::store::ExecutionFilter;
use futures::StreamExt;
use futures::stream::BoxStream;
use pyo3::prelude::*;

use super::args::{Arg, id_arg, opt_id, page_arg, priority_arg, status_arg, timeout_arg, version_arg};
use super::call::{Call, call};
use crate::convert::{bool_arg, inputs_arg, opt_datetime, opt_str, str_arg};
use crate::error::invalid_argument;

/// What an execute-style call does with its request.
#[derive(Debug, Clone, Copy)]
pub(super) enum Run {
    /// Submit and wait for the final state (`execute`).
    ToEnd,
    /// Validate and enqueue only (`submit`).
    Enqueue,
}

/// `execute` and `submit`: the request, by version or by `label`.
#[allow(clippy::too_many_arguments)]
pub(super) fn execute_call(
    py: Python<'_>,
    run: Run,
    prompt_id: &Bound<'_, PyAny>,
    inputs: Arg<'_>,
    version: Arg<'_>,
    priority: Arg<'_>,
    validate_output: Arg<'_>,
    idempotency_key: Arg<'_>,
    label: Arg<'_>,
) -> PyResult<Call<Execution>> {
    let label = opt_str(label.as_ref(), "label")?;
    let request = ExecuteRequest {
        prompt_id: id_arg(py, prompt_id, "prompt_id")?,
        version: version_arg(py, version.as_ref(), "version")?,
        label: None,
        inputs: inputs_arg(inputs.as_ref(), "inputs")?,
        priority: priority_arg(py, priority.as_ref())?,
        validate_output: bool_arg(validate_output.as_ref(), "validate_output", false)?,
        idempotency_key: opt_str(idempotency_key.as_ref(), "idempotency_key")?,
    };
    Ok(call(move |e, user| async move {
        match (run, label) {
            (Run::ToEnd, Some(l)) => e.execute_label(user, request, &l).await,
            (Run::ToEnd, None) => e.execute(user, request).await,
            (Run::Enqueue, Some(l)) => e.submit_label(user, request, &l).await,
            (Run::Enqueue, None) => e.submit(user, request).await,
        }
    }))
}

/// `wait`: until the execution is final, or `timeout` seconds pass.
pub(super) fn wait_call(
    py: Python<'_>,
    execution_id: &Bound<'_, PyAny>,
    timeout: Arg<'_>,
) -> PyResult<Call<Execution>> {
    let id: ExecutionId = id_arg(py, execution_id, "execution_id")?;
    let timeout = timeout_arg(py, timeout.as_ref(), "timeout")?;
    Ok(call(move |e, user| async move { e.wait(user, id, timeout).await }))
}

pub(super) fn retry_call(py: Python<'_>, execution_id: &Bound<'_, PyAny>) -> PyResult<Call<Execution>> {
    let id: ExecutionId = id_arg(py, execution_id, "execution_id")?;
    Ok(call(move |e, user| async move { e.retry(user, id).await }))
}

pub(super) fn cancel_call(py: Python<'_>, execution_id: &Bound<'_, PyAny>) -> PyResult<Call<Execution>> {
    let id: ExecutionId = id_arg(py, execution_id, "execution_id")?;
    Ok(call(move |e, user| async move { e.cancel(user, id).await }))
}

pub(super) fn get_execution_call(
    py: Python<'_>,
    execution_id: &Bound<'_, PyAny>,
) -> PyResult<Call<Execution>> {
    let id: ExecutionId = id_arg(py, execution_id, "execution_id")?;
    Ok(call(move |e, user| async move { e.get_execution(user, id).await }))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn list_executions_call(
    py: Python<'_>,
    status: Arg<'_>,
    prompt_id: Arg<'_>,
    since: Arg<'_>,
    until: Arg<'_>,
    limit: Arg<'_>,
    cursor: Arg<'_>,
) -> PyResult<Call<Page<Execution>>> {
    let status = status_arg(py, status.as_ref())?;
    let prompt_id = opt_id::<PromptId>(py, prompt_id.as_ref(), "prompt_id")?;
    let since = opt_datetime(since.as_ref(), "since")?;
    let until = opt_datetime(until.as_ref(), "until")?;
    let filter = ExecutionFilter { status, prompt_id, since, until };
    let page = page_arg(py, limit.as_ref(), cursor.as_ref())?;
    Ok(call(move |e, user| async move { e.list_executions(user, filter, page).await }))
}

/// Aggregated metrics of the user's executions created in `[since, until)`.
pub(super) fn metrics_call(
    py: Python<'_>,
    since: Arg<'_>,
    until: Arg<'_>,
    prompt_id: Arg<'_>,
    version: Arg<'_>,
) -> PyResult<Call<MetricsReport>> {
    let since = opt_datetime(since.as_ref(), "since")?;
    let until = opt_datetime(until.as_ref(), "until")?;
    let prompt_id = opt_id::<PromptId>(py, prompt_id.as_ref(), "prompt_id")?;
    let prompt_version = version_arg(py, version.as_ref(), "version")?;
    let query = MetricsQuery { since, until, prompt_id, prompt_version };
    Ok(call(move |e, user| async move { e.metrics(user, query).await }))
}

/// A time series of the user's final executions, read from the rollups.
#[allow(clippy::too_many_arguments)]
pub(super) fn metrics_series_call(
    py: Python<'_>,
    bucket: &Bound<'_, PyAny>,
    since: Arg<'_>,
    until: Arg<'_>,
    prompt_id: Arg<'_>,
    version: Arg<'_>,
    label: Arg<'_>,
) -> PyResult<Call<MetricsSeries>> {
    let bucket = str_arg(bucket, "bucket")?
        .parse::<Granularity>()
        .map_err(|_| invalid_argument(py, "bucket", "one of minute, hour, day"))?;
    let query = MetricsSeriesQuery {
        bucket,
        since: opt_datetime(since.as_ref(), "since")?,
        until: opt_datetime(until.as_ref(), "until")?,
        prompt_id: opt_id::<PromptId>(py, prompt_id.as_ref(), "prompt_id")?,
        prompt_version: version_arg(py, version.as_ref(), "version")?,
        label: opt_str(label.as_ref(), "label")?,
    };
    Ok(call(move |e, user| async move { e.metrics_series(user, query).await }))
}

/// `events`: the subscription, and the `timeout` for each next event.
pub(super) fn events_call(
    py: Python<'_>,
    execution_id: Arg<'_>,
    timeout: Arg<'_>,
) -> PyResult<(Call<BoxStream<'static, ExecutionEvent>>, Option<Duration>)> {
    let id = opt_id::<ExecutionId>(py, execution_id.as_ref(), "execution_id")?;
    let timeout = timeout_arg(py, timeout.as_ref(), "timeout")?;
    let subscribe = call(move |e, user| async move {
        // One execution: first an event of its state when following began (as the REST
        // streams' snapshot frame; an execution already final yields its final event, so the
        // caller can tell "already done" from "nothing happened"), then engine::follow's
        // events, which end after the final one.
        match id {
            Some(id) => {
                let follow = e.follow(user, id).await?;
                let first =
                    futures::stream::once(std::future::ready(ExecutionEvent::of_state(&follow.snapshot)));
                Ok(first.chain(follow.events).boxed())
            }
            None => Ok(e.subscribe(user, None)),
        }
    });
    Ok((subscribe, timeout))
}

/// The engine's health (never fails: a store outage is part of the report).
pub(super) fn health_call() -> Call<HealthReport> {
    call(|e, _| async move { Ok(e.health().await) })
}
