//! Dataset and experiment calls: the arguments of each operation parsed once into a
//! [`Call`], shared by the blocking method and its `_async` twin.

use formaops_core::dataset::{Dataset, DatasetRow, FromExecutions};
use formaops_core::experiment::{Comparison, Experiment, ExperimentProgress, ExperimentSpec};
use formaops_core::ids::{DatasetId, ExperimentId};
use formaops_core::page::Page;
use futures::stream::BoxStream;
use pyo3::prelude::*;

use super::args::{Arg, id_arg, limit_arg, opt_priority, page_arg, status_arg, version_arg};
use super::call::{Call, call};
use crate::convert::{bool_arg, opt_count, opt_datetime, opt_str, str_arg};
use crate::error::invalid_argument;
use crate::lab::{match_arg, rows_arg, versions_arg};

/// An experiment with its progress under `progress` (the dict of `get_experiment`).
#[derive(serde::Serialize)]
pub(super) struct ExperimentView {
    #[serde(flatten)]
    experiment: Experiment,
    progress: ExperimentProgress,
}

impl From<(Experiment, ExperimentProgress)> for ExperimentView {
    fn from((experiment, progress): (Experiment, ExperimentProgress)) -> Self {
        Self { experiment, progress }
    }
}

pub(super) fn create_dataset_call(
    py: Python<'_>,
    name: &Bound<'_, PyAny>,
    rows: &Bound<'_, PyAny>,
) -> PyResult<Call<Dataset>> {
    let name = str_arg(name, "name")?;
    let rows = rows_arg(py, rows)?;
    Ok(call(move |e, user| async move { e.create_dataset(user, &name, rows).await }))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn create_dataset_from_executions_call(
    py: Python<'_>,
    name: &Bound<'_, PyAny>,
    prompt_id: &Bound<'_, PyAny>,
    status: Arg<'_>,
    version: Arg<'_>,
    since: Arg<'_>,
    until: Arg<'_>,
    limit: Arg<'_>,
    expected_from_output: Arg<'_>,
) -> PyResult<Call<Dataset>> {
    let req = FromExecutions {
        name: str_arg(name, "name")?,
        prompt_id: id_arg(py, prompt_id, "prompt_id")?,
        status: status_arg(py, status.as_ref())?,
        version: version_arg(py, version.as_ref(), "version")?,
        since: opt_datetime(since.as_ref(), "since")?,
        until: opt_datetime(until.as_ref(), "until")?,
        limit: opt_count(limit.as_ref(), "limit")?,
        expected_from_output: bool_arg(expected_from_output.as_ref(), "expected_from_output", false)?,
    };
    Ok(call(move |e, user| async move { e.create_dataset_from_executions(user, req).await }))
}

pub(super) fn datasets_call(
    py: Python<'_>,
    limit: Arg<'_>,
    cursor: Arg<'_>,
) -> PyResult<Call<Page<Dataset>>> {
    let page = page_arg(py, limit.as_ref(), cursor.as_ref())?;
    Ok(call(move |e, user| async move { e.list_datasets(user, page).await }))
}

pub(super) fn get_dataset_call(py: Python<'_>, dataset_id: &Bound<'_, PyAny>) -> PyResult<Call<Dataset>> {
    let id: DatasetId = id_arg(py, dataset_id, "dataset_id")?;
    Ok(call(move |e, user| async move { e.get_dataset(user, id).await }))
}

/// Rows by index; `next_cursor` is the last index returned when the page is full.
pub(super) fn dataset_rows_call(
    py: Python<'_>,
    dataset_id: &Bound<'_, PyAny>,
    limit: Arg<'_>,
    cursor: Arg<'_>,
) -> PyResult<Call<Page<DatasetRow>>> {
    let id: DatasetId = id_arg(py, dataset_id, "dataset_id")?;
    let limit = limit_arg(py, limit.as_ref())?;
    let after = match opt_str(cursor.as_ref(), "cursor")? {
        None => None,
        Some(c) => Some(
            c.parse::<u32>()
                .map_err(|_| invalid_argument(py, "cursor", "not a cursor returned by dataset_rows()"))?,
        ),
    };
    Ok(call(move |e, user| async move {
        let items = e.dataset_rows(user, id, after, limit).await?;
        let next_cursor =
            (items.len() == limit as usize).then(|| items.last().map(|r| r.index.to_string())).flatten();
        Ok(Page { items, next_cursor })
    }))
}

pub(super) fn delete_dataset_call(py: Python<'_>, dataset_id: &Bound<'_, PyAny>) -> PyResult<Call<()>> {
    let id: DatasetId = id_arg(py, dataset_id, "dataset_id")?;
    Ok(call(move |e, user| async move { e.delete_dataset(user, id).await }))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn start_experiment_call(
    py: Python<'_>,
    prompt_id: &Bound<'_, PyAny>,
    dataset_id: &Bound<'_, PyAny>,
    versions: &Bound<'_, PyAny>,
    priority: Arg<'_>,
    concurrency: Arg<'_>,
    r#match: Arg<'_>,
    validate_output: Arg<'_>,
) -> PyResult<Call<ExperimentView>> {
    let spec = ExperimentSpec {
        prompt_id: id_arg(py, prompt_id, "prompt_id")?,
        dataset_id: id_arg(py, dataset_id, "dataset_id")?,
        versions: versions_arg(py, versions)?,
        priority: opt_priority(py, priority.as_ref())?,
        concurrency: opt_count(concurrency.as_ref(), "concurrency")?,
        match_rule: match_arg(py, r#match.as_ref())?,
        validate_output: bool_arg(validate_output.as_ref(), "validate_output", false)?,
    };
    Ok(call(move |e, user| async move {
        let x = e.start_experiment(user, spec).await?;
        e.get_experiment(user, x.id).await.map(ExperimentView::from)
    }))
}

pub(super) fn get_experiment_call(
    py: Python<'_>,
    experiment_id: &Bound<'_, PyAny>,
) -> PyResult<Call<ExperimentView>> {
    let id: ExperimentId = id_arg(py, experiment_id, "experiment_id")?;
    Ok(call(move |e, user| async move { e.get_experiment(user, id).await.map(ExperimentView::from) }))
}

pub(super) fn experiments_call(
    py: Python<'_>,
    limit: Arg<'_>,
    cursor: Arg<'_>,
) -> PyResult<Call<Page<Experiment>>> {
    let page = page_arg(py, limit.as_ref(), cursor.as_ref())?;
    Ok(call(move |e, user| async move { e.list_experiments(user, page).await }))
}

pub(super) fn experiment_results_call(
    py: Python<'_>,
    experiment_id: &Bound<'_, PyAny>,
) -> PyResult<Call<Comparison>> {
    let id: ExperimentId = id_arg(py, experiment_id, "experiment_id")?;
    Ok(call(move |e, user| async move { e.experiment_results(user, id).await }))
}

pub(super) fn cancel_experiment_call(
    py: Python<'_>,
    experiment_id: &Bound<'_, PyAny>,
) -> PyResult<Call<ExperimentView>> {
    let id: ExperimentId = id_arg(py, experiment_id, "experiment_id")?;
    Ok(call(move |e, user| async move { e.cancel_experiment(user, id).await.map(ExperimentView::from) }))
}

pub(super) fn follow_experiment_call(
    py: Python<'_>,
    experiment_id: &Bound<'_, PyAny>,
) -> PyResult<Call<BoxStream<'static, ExperimentProgress>>> {
    let id: ExperimentId = id_arg(py, experiment_id, "experiment_id")?;
    Ok(call(move |e, user| async move { e.follow_experiment(user, id).await }))
}
