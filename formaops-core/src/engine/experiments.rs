//! Experiments: start (targets resolved, rows validated, the experiment written), the runner
//! that submits row x version executions through the normal queue, resume at engine start,
//! progress, the comparison, and cancel. The rules live in [`crate::experiment`].
//!
//! The runner keeps at most `concurrency` of the experiment's executions in flight. Each pair
//! is submitted with the idempotency key [`run_key`], then recorded as a run: a runner that
//! restarts (after a crash, or on another node) skips pairs whose execution is final, waits
//! for the ones still in flight, and resubmits the rest, which returns any execution already
//! created, so no pair is paid for twice. Progress is read from the store, so any node can
//! report it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use tokio::task::JoinSet;

use super::datasets::ROWS_PER_READ;
use super::state::Inner;
use super::{ExecuteRequest, FormaOps, submit};
use crate::dataset::{DatasetRow, validate_rows};
use crate::error::{Error, Problem, Result};
use crate::execution::{Execution, ExecutionStatus, Priority};
use crate::experiment::{
    self, Comparison, Experiment, ExperimentProgress, ExperimentRun, ExperimentSpec, ExperimentStatus,
    ExperimentTarget, TargetRef, run_key,
};
use crate::ids::{ExecutionId, ExperimentId, UserId};
use crate::page::{Page, PageRequest};
use crate::prompt::PromptStatus;

use super::config::check_page;

/// How long a runner waits before retrying after a store or engine error.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How often progress is re-read for a follower.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);
/// Most running experiments resumed at engine start.
const MAX_RESUMED: u32 = 1000;

impl FormaOps {
    /// Starts an experiment: resolves the versions and labels (recorded with the experiment),
    /// validates every row against every version's variables, writes the experiment and
    /// starts its runner.
    ///
    /// # Errors
    /// [`Error::ShuttingDown`]; [`Error::InvalidArgument`] on `versions` or `concurrency`
    /// (see [`ExperimentSpec::check`]) or a bad label name; [`Error::NotFound`] for a missing
    /// or another user's prompt or dataset, a label or version the prompt does not have;
    /// [`Error::Conflict`] for an archived prompt; [`Error::InvalidInputs`] listing row
    /// problems as `rows[i].inputs.<variable>` (the message names the version);
    /// [`Error::InvalidPrompt`] when a version's provider is not configured; store errors.
    pub async fn start_experiment(&self, user: UserId, spec: ExperimentSpec) -> Result<Experiment> {
        let inner = &self.inner;
        if inner.shutting_down() {
            return Err(Error::ShuttingDown);
        }
        let concurrency = spec.check()?;
        let prompt = inner.store.get_prompt(user, spec.prompt_id).await?;
        if prompt.status != PromptStatus::Active {
            return Err(Error::conflict(format!("prompt {} is archived and cannot be executed", prompt.id)));
        }
        let dataset = inner.store.get_dataset(user, spec.dataset_id).await?;
        let mut targets: Vec<ExperimentTarget> = Vec::new();
        for (i, r) in spec.versions.iter().enumerate() {
            let field = format!("versions[{i}]");
            let version = match r {
                TargetRef::Number(0) => return Err(Error::invalid_argument(field, "versions count from 1")),
                TargetRef::Number(n) => *n,
                TargetRef::Name(s) => match crate::prompt::VersionRef::parse(&field, s)? {
                    crate::prompt::VersionRef::Version(v) => v,
                    crate::prompt::VersionRef::Label(l) => {
                        self.resolve_version(user, prompt.id, None, Some(&l)).await?
                    }
                },
            };
            if version > prompt.current_version {
                return Err(Error::not_found("prompt version", format!("{} v{version}", prompt.id)));
            }
            if !targets.iter().any(|t| t.version == version) {
                targets.push(ExperimentTarget { requested: r.as_text(), version });
            }
        }
        let rows = self.all_rows(user, dataset.id).await?;
        for t in &targets {
            let compiled = inner.compiled(user, prompt.id, t.version).await?;
            inner.provider_for(&compiled.version.model)?;
            let validator = compiled.prompt.input_validator();
            match validate_rows(validator, &rows, &inner.config.input_limits) {
                Ok(_) => {}
                Err(Error::InvalidInputs { problems }) => {
                    let problems = problems
                        .into_iter()
                        .map(|p| Problem { message: format!("version {}: {}", t.version, p.message), ..p })
                        .collect();
                    return Err(Error::InvalidInputs { problems });
                }
                Err(e) => return Err(e),
            }
        }
        let x = Experiment {
            id: ExperimentId::new(),
            user_id: user,
            prompt_id: prompt.id,
            dataset_id: dataset.id,
            targets,
            priority: spec.priority.unwrap_or(Priority::Low),
            concurrency,
            match_rule: spec.match_rule,
            validate_output: spec.validate_output,
            status: ExperimentStatus::Running,
            row_count: u32::try_from(rows.len()).unwrap_or(u32::MAX),
            created_at: inner.clock.now(),
            finished_at: None,
        };
        inner.store.insert_experiment(&x).await?;
        spawn_runner(&self.inner, x.clone());
        Ok(x)
    }

    /// One of the user's experiments with its progress.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing or another user's experiment; store errors.
    pub async fn get_experiment(
        &self,
        user: UserId,
        id: ExperimentId,
    ) -> Result<(Experiment, ExperimentProgress)> {
        let x = self.inner.store.get_experiment(user, id).await?;
        let runs = self.inner.store.experiment_runs(user, id).await?;
        let p = experiment::progress(&x, &runs);
        Ok((x, p))
    }

    /// One page of the user's experiments, newest first.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on `limit` outside 1 to
    /// [`MAX_PAGE_SIZE`](crate::page::MAX_PAGE_SIZE); store errors.
    pub async fn list_experiments(&self, user: UserId, page: PageRequest) -> Result<Page<Experiment>> {
        check_page(page.limit)?;
        self.inner.store.list_experiments(user, page).await
    }

    /// The side-by-side result as it is now (a running experiment's unfinished rows show
    /// their current status).
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing or another user's experiment; store errors.
    pub async fn experiment_results(&self, user: UserId, id: ExperimentId) -> Result<Comparison> {
        let x = self.inner.store.get_experiment(user, id).await?;
        let rows = self.all_rows(user, x.dataset_id).await?;
        let runs = self.inner.store.experiment_runs(user, id).await?;
        Ok(experiment::compare(&x, &rows, &runs))
    }

    /// Cancels a running experiment: no more rows are submitted, queued ones are cancelled,
    /// finished ones are kept. Cancelling a cancelled experiment is not an error.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing or another user's experiment; [`Error::Conflict`]
    /// when it has completed; store errors.
    pub async fn cancel_experiment(
        &self,
        user: UserId,
        id: ExperimentId,
    ) -> Result<(Experiment, ExperimentProgress)> {
        let store = &self.inner.store;
        if !store.finish_experiment(user, id, ExperimentStatus::Cancelled, self.inner.clock.now()).await? {
            let x = store.get_experiment(user, id).await?;
            if x.status == ExperimentStatus::Completed {
                return Err(Error::conflict(format!(
                    "experiment {id} has completed and cannot be cancelled"
                )));
            }
        }
        cancel_queued(&self.inner, user, id).await?;
        self.get_experiment(user, id).await
    }

    /// The experiment's progress now, then each time it changes (read every
    /// [`PROGRESS_INTERVAL`]), ending after the first report of a completed or cancelled
    /// experiment with nothing in flight.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing or another user's experiment; store errors (on the
    /// first read; later read errors end the stream).
    pub async fn follow_experiment(
        &self,
        user: UserId,
        id: ExperimentId,
    ) -> Result<BoxStream<'static, ExperimentProgress>> {
        let (_, first) = self.get_experiment(user, id).await?;
        let engine = self.clone();
        let stream =
            futures::stream::unfold((Some(first), None::<ExperimentProgress>), move |(next, last)| {
                let engine = engine.clone();
                async move {
                    let mut next = next;
                    loop {
                        if let Some(p) = next.take() {
                            if last.as_ref() != Some(&p) {
                                let end = p.status != ExperimentStatus::Running && p.in_flight == 0;
                                return Some((p.clone(), (None, if end { None } else { Some(p) })));
                            }
                        } else if last.is_none() {
                            return None;
                        }
                        tokio::time::sleep(PROGRESS_INTERVAL).await;
                        next = Some(engine.get_experiment(user, id).await.ok()?.1);
                    }
                }
            });
        Ok(Box::pin(stream))
    }

    /// Starts runners for every RUNNING experiment (at engine start).
    pub(super) fn resume_experiments(&self) {
        let inner = self.inner.clone();
        let handle = tokio::spawn(async move {
            match inner.store.running_experiments(MAX_RESUMED).await {
                Ok(list) => {
                    for x in list {
                        tracing::info!(experiment = %x.id, "resuming experiment");
                        spawn_runner(&inner, x);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "listing running experiments to resume failed"),
            }
        });
        if let Ok(mut b) = self.inner.background.lock() {
            b.push(handle);
        }
    }
}

/// Cancels the experiment's QUEUED executions (others are left as they are).
async fn cancel_queued(inner: &Inner, user: UserId, id: ExperimentId) -> Result<()> {
    for (_, e) in inner.store.experiment_runs(user, id).await? {
        if e.status == ExecutionStatus::Queued {
            match submit::cancel(inner, user, e.id).await {
                Ok(_) | Err(Error::Conflict { .. } | Error::NotFound { .. }) => {}
                Err(err) => return Err(err),
            }
        }
    }
    Ok(())
}

fn spawn_runner(inner: &Arc<Inner>, x: Experiment) {
    let handle = tokio::spawn(run(inner.clone(), x));
    if let Ok(mut b) = inner.background.lock() {
        b.retain(|h| !h.is_finished());
        b.push(handle);
    }
}

/// Whether an error may pass if the runner tries again (store outage, shutdown).
fn is_transient(e: &Error) -> bool {
    matches!(e, Error::Unavailable { .. } | Error::ShuttingDown | Error::Internal { .. })
}

async fn run(inner: Arc<Inner>, x: Experiment) {
    loop {
        match run_once(&inner, &x).await {
            Ok(()) => return,
            Err(e) if inner.shutting_down() => {
                tracing::debug!(experiment = %x.id, error = %e, "experiment runner stops with the engine");
                return;
            }
            Err(e) if is_transient(&e) => {
                tracing::warn!(experiment = %x.id, error = %e, "experiment runner failed; retrying");
                tokio::time::sleep(RETRY_AFTER).await;
            }
            Err(e) => {
                tracing::error!(experiment = %x.id, error = %e, "experiment cannot go on; cancelling it");
                let now = inner.clock.now();
                if let Err(e) =
                    inner.store.finish_experiment(x.user_id, x.id, ExperimentStatus::Cancelled, now).await
                {
                    tracing::warn!(experiment = %x.id, error = %e, "marking the experiment cancelled failed");
                }
                let _ = cancel_queued(&inner, x.user_id, x.id).await;
                return;
            }
        }
    }
}

/// One pass over the experiment: every pair not final yet is submitted (or waited for).
async fn run_once(inner: &Arc<Inner>, x: &Experiment) -> Result<()> {
    let user = x.user_id;
    let recorded: HashMap<(u32, u32), Execution> = inner
        .store
        .experiment_runs(user, x.id)
        .await?
        .into_iter()
        .map(|(r, e)| ((r.row, r.version), e))
        .collect();
    let mut tasks: JoinSet<Result<()>> = JoinSet::new();
    let mut after = None;
    loop {
        let rows = inner.store.dataset_rows(user, x.dataset_id, after, ROWS_PER_READ).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.index);
        for row in rows {
            for t in &x.targets {
                let existing = recorded.get(&(row.index, t.version));
                if existing.is_some_and(|e| e.status.is_final()) {
                    continue;
                }
                while tasks.len() >= x.concurrency as usize {
                    joined(tasks.join_next().await)?;
                }
                if inner.shutting_down() {
                    return Err(Error::ShuttingDown);
                }
                if existing.is_none() && !still_running(inner, x).await? {
                    cancel_queued(inner, user, x.id).await?;
                    while let Some(r) = tasks.join_next().await {
                        joined(Some(r))?;
                    }
                    return Ok(());
                }
                let pair = Pair {
                    x: x.clone(),
                    row: row.clone(),
                    version: t.version,
                    existing: existing.map(|e| e.id),
                };
                tasks.spawn(run_pair(inner.clone(), pair));
            }
        }
    }
    while let Some(r) = tasks.join_next().await {
        joined(Some(r))?;
    }
    inner.store.finish_experiment(user, x.id, ExperimentStatus::Completed, inner.clock.now()).await?;
    Ok(())
}

fn joined(r: Option<std::result::Result<Result<()>, tokio::task::JoinError>>) -> Result<()> {
    match r {
        None => Ok(()),
        Some(Ok(r)) => r,
        Some(Err(e)) => Err(Error::internal_from("experiment task", e)),
    }
}

/// One (row, version) pair to run.
struct Pair {
    x: Experiment,
    row: DatasetRow,
    version: u32,
    existing: Option<ExecutionId>,
}

/// Whether the experiment is still RUNNING (a cancel from any node shows here).
async fn still_running(inner: &Inner, x: &Experiment) -> Result<bool> {
    Ok(inner.store.get_experiment(x.user_id, x.id).await?.status == ExperimentStatus::Running)
}

async fn run_pair(inner: Arc<Inner>, p: Pair) -> Result<()> {
    let user = p.x.user_id;
    let id = match p.existing {
        Some(id) => id,
        None => {
            let request = ExecuteRequest {
                prompt_id: p.x.prompt_id,
                version: Some(p.version),
                inputs: p.row.inputs,
                priority: p.x.priority,
                validate_output: p.x.validate_output,
                idempotency_key: Some(run_key(p.x.id, p.row.index, p.version)),
                // Pinned to the version its target resolved to when the experiment started.
                label: None,
            };
            let e = submit::submit(&inner, user, request).await?;
            let run = ExperimentRun {
                experiment_id: p.x.id,
                row: p.row.index,
                version: p.version,
                execution_id: e.id,
            };
            inner.store.record_experiment_runs(user, &[run]).await?;
            // A cancel writes the status, then cancels the recorded runs: either it saw this
            // run, or this read sees the cancel.
            if e.status == ExecutionStatus::Queued && !still_running(&inner, &p.x).await? {
                match submit::cancel(&inner, user, e.id).await {
                    Ok(_) | Err(Error::Conflict { .. }) => {}
                    Err(err) => return Err(err),
                }
            }
            e.id
        }
    };
    submit::wait(&inner, user, id, None).await?;
    Ok(())
}
