//! The in-memory store's datasets and experiments (see [`super::MemoryStore`]): kept apart
//! from the queue's state, under their own lock, taken after the queue's when both are held.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use crate::dataset::{Dataset, DatasetRow};
use crate::error::{Error, Result};
use crate::experiment::{Experiment, ExperimentRun, ExperimentStatus};
use crate::ids::{DatasetId, ExecutionId, ExperimentId, UserId};
use crate::page::{Cursor, Page, PageRequest};

/// Datasets, their rows, experiments and their runs.
#[derive(Debug, Default)]
pub(super) struct LabState {
    datasets: HashMap<DatasetId, (Dataset, Vec<DatasetRow>)>,
    experiments: HashMap<ExperimentId, Experiment>,
    /// Per experiment, (row, version) -> execution.
    runs: HashMap<ExperimentId, BTreeMap<(u32, u32), ExecutionId>>,
}

fn newest_first<T: Clone>(
    mut items: Vec<T>,
    page: PageRequest,
    key: impl Fn(&T) -> (DateTime<Utc>, uuid::Uuid),
) -> Page<T> {
    items.sort_by_key(|t| std::cmp::Reverse(key(t)));
    let items: Vec<T> = items
        .into_iter()
        .filter(|t| page.after.is_none_or(|c| key(t) < (c.created_at, c.id)))
        .take(page.limit as usize + 1)
        .collect();
    Page::from_overfetch(items, page.limit, |t| {
        let (created_at, id) = key(t);
        Cursor { created_at, id }
    })
}

impl LabState {
    pub(super) fn insert_dataset(&mut self, d: &Dataset, rows: &[DatasetRow]) -> Result<()> {
        if self.datasets.values().any(|(x, _)| x.user_id == d.user_id && x.name == d.name) {
            return Err(Error::conflict(format!("a dataset named {:?} already exists", d.name)));
        }
        self.datasets.insert(d.id, (d.clone(), rows.to_vec()));
        Ok(())
    }

    fn owned_dataset(&self, user: UserId, id: DatasetId) -> Result<&(Dataset, Vec<DatasetRow>)> {
        self.datasets
            .get(&id)
            .filter(|(d, _)| d.user_id == user)
            .ok_or_else(|| Error::not_found("dataset", id))
    }

    pub(super) fn get_dataset(&self, user: UserId, id: DatasetId) -> Result<Dataset> {
        Ok(self.owned_dataset(user, id)?.0.clone())
    }

    pub(super) fn list_datasets(&self, user: UserId, page: PageRequest) -> Page<Dataset> {
        let mine =
            self.datasets.values().filter(|(d, _)| d.user_id == user).map(|(d, _)| d.clone()).collect();
        newest_first(mine, page, |d| (d.created_at, d.id.0))
    }

    pub(super) fn delete_dataset(&mut self, user: UserId, id: DatasetId) -> Result<()> {
        self.owned_dataset(user, id)?;
        if let Some(x) = self.experiments.values().find(|x| x.dataset_id == id) {
            return Err(Error::conflict(format!("dataset {id} is used by experiment {}", x.id)));
        }
        self.datasets.remove(&id);
        Ok(())
    }

    pub(super) fn dataset_rows(
        &self,
        user: UserId,
        id: DatasetId,
        after: Option<u32>,
        limit: u32,
    ) -> Result<Vec<DatasetRow>> {
        let (_, rows) = self.owned_dataset(user, id)?;
        Ok(rows.iter().filter(|r| after.is_none_or(|a| r.index > a)).take(limit as usize).cloned().collect())
    }

    pub(super) fn insert_experiment(&mut self, x: &Experiment) -> Result<()> {
        self.owned_dataset(x.user_id, x.dataset_id)?;
        self.experiments.insert(x.id, x.clone());
        Ok(())
    }

    pub(super) fn get_experiment(&self, user: UserId, id: ExperimentId) -> Result<Experiment> {
        self.experiments
            .get(&id)
            .filter(|x| x.user_id == user)
            .cloned()
            .ok_or_else(|| Error::not_found("experiment", id))
    }

    pub(super) fn list_experiments(&self, user: UserId, page: PageRequest) -> Page<Experiment> {
        let mine = self.experiments.values().filter(|x| x.user_id == user).cloned().collect();
        newest_first(mine, page, |x| (x.created_at, x.id.0))
    }

    pub(super) fn finish_experiment(
        &mut self,
        user: UserId,
        id: ExperimentId,
        status: ExperimentStatus,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let x = self
            .experiments
            .get_mut(&id)
            .filter(|x| x.user_id == user)
            .ok_or_else(|| Error::not_found("experiment", id))?;
        if x.status != ExperimentStatus::Running {
            return Ok(false);
        }
        x.status = status;
        x.finished_at = Some(at);
        Ok(true)
    }

    pub(super) fn record_runs(&mut self, user: UserId, runs: &[ExperimentRun]) -> Result<()> {
        for r in runs {
            self.get_experiment(user, r.experiment_id)?;
        }
        for r in runs {
            self.runs.entry(r.experiment_id).or_default().entry((r.row, r.version)).or_insert(r.execution_id);
        }
        Ok(())
    }

    /// The runs of the user's experiment, by (row, version).
    pub(super) fn runs(&self, user: UserId, id: ExperimentId) -> Result<Vec<ExperimentRun>> {
        self.get_experiment(user, id)?;
        Ok(self
            .runs
            .get(&id)
            .map(|m| {
                m.iter()
                    .map(|(&(row, version), &execution_id)| ExperimentRun {
                        experiment_id: id,
                        row,
                        version,
                        execution_id,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    pub(super) fn running_experiments(&self, limit: u32) -> Vec<Experiment> {
        let mut v: Vec<Experiment> =
            self.experiments.values().filter(|x| x.status == ExperimentStatus::Running).cloned().collect();
        v.sort_by_key(|x| (x.created_at, x.id));
        v.truncate(limit as usize);
        v
    }
}
