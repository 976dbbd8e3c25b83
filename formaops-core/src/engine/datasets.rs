//! Datasets: create (from rows, or from past executions of a prompt), read, page, delete.
//! The rules (names, limits, parsers) live in [`crate::dataset`].

use crate::dataset::{self, Dataset, DatasetRow, FromExecutions, MAX_DATASET_ROWS};
use crate::error::{Error, Result};
use crate::execution::ExecutionStatus;
use crate::ids::{DatasetId, UserId};
use crate::page::{MAX_PAGE_SIZE, Page, PageRequest};
use crate::store::ExecutionFilter;

use super::FormaOps;
use super::chat_input::CHAT_INPUT;
use super::config::check_page;

/// Most executions read while building a dataset from past executions.
pub const MAX_EXECUTIONS_SCANNED: usize = 100_000;

impl FormaOps {
    /// Stores a dataset of `rows` (numbered `0..` in the order given) under `name`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on a bad name, no rows or too many
    /// ([`MAX_DATASET_ROWS`]); [`Error::InvalidInputs`] listing every row that is too large
    /// or holds a NUL character; [`Error::Conflict`] when the user has a dataset of that
    /// name; store errors.
    pub async fn create_dataset(&self, user: UserId, name: &str, rows: Vec<DatasetRow>) -> Result<Dataset> {
        let name = dataset::check_name(name)?;
        let rows = dataset::check_rows(rows)?;
        let d = Dataset {
            id: DatasetId::new(),
            user_id: user,
            name,
            row_count: u32::try_from(rows.len()).unwrap_or(u32::MAX),
            created_at: self.inner.clock.now(),
        };
        self.inner.store.insert_dataset(&d, &rows).await?;
        Ok(d)
    }

    /// Stores a dataset of the inputs of past executions of a prompt (newest first), filtered
    /// as the executions list is, plus `version`; chat calls are skipped. With
    /// `expected_from_output`, a COMPLETED execution's output becomes the row's expected output.
    ///
    /// # Errors
    /// As [`create_dataset`](Self::create_dataset); [`Error::NotFound`] for a missing or
    /// another user's prompt; [`Error::InvalidArgument`] on `limit` (0 or over
    /// [`MAX_DATASET_ROWS`]), on `since` not before `until`, or when no execution matches.
    pub async fn create_dataset_from_executions(&self, user: UserId, req: FromExecutions) -> Result<Dataset> {
        let name = dataset::check_name(&req.name)?;
        let limit = req.limit.map_or(MAX_DATASET_ROWS, |l| l as usize);
        if limit == 0 || limit > MAX_DATASET_ROWS {
            return Err(Error::invalid_argument(
                "limit",
                format!("must be between 1 and {MAX_DATASET_ROWS}"),
            ));
        }
        crate::metrics::check_window(req.since, req.until)?;
        self.inner.store.get_prompt(user, req.prompt_id).await?;
        let filter = ExecutionFilter {
            status: req.status,
            prompt_id: Some(req.prompt_id),
            since: req.since,
            until: req.until,
        };
        let mut rows = Vec::new();
        let mut page = PageRequest { limit: MAX_PAGE_SIZE, after: None };
        let mut scanned = 0;
        'pages: loop {
            let got = self.inner.store.list_executions(user, &filter, page).await?;
            for e in got.items {
                scanned += 1;
                if req.version.is_some_and(|v| v != e.prompt_version) || e.inputs.contains_key(CHAT_INPUT) {
                    continue;
                }
                let expected = (req.expected_from_output && e.status == ExecutionStatus::Completed)
                    .then(|| e.output.map(serde_json::Value::String))
                    .flatten();
                rows.push(DatasetRow { index: 0, inputs: e.inputs, expected });
                if rows.len() >= limit {
                    break 'pages;
                }
            }
            match got.next_cursor {
                Some(c) if scanned < MAX_EXECUTIONS_SCANNED => {
                    page = PageRequest::new(Some(MAX_PAGE_SIZE), Some(&c))?
                }
                _ => break,
            }
        }
        if rows.is_empty() {
            return Err(Error::invalid_argument("filters", "no execution of the prompt matches"));
        }
        self.create_dataset(user, &name, rows).await
    }

    /// One of the user's datasets.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing or another user's dataset; store errors.
    pub async fn get_dataset(&self, user: UserId, id: DatasetId) -> Result<Dataset> {
        self.inner.store.get_dataset(user, id).await
    }

    /// One page of the user's datasets, newest first.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on `limit` outside 1 to [`MAX_PAGE_SIZE`]; store errors.
    pub async fn list_datasets(&self, user: UserId, page: PageRequest) -> Result<Page<Dataset>> {
        check_page(page.limit)?;
        self.inner.store.list_datasets(user, page).await
    }

    /// Deletes a dataset and its rows.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing or another user's dataset; [`Error::Conflict`] when an
    /// experiment uses it; store errors.
    pub async fn delete_dataset(&self, user: UserId, id: DatasetId) -> Result<()> {
        self.inner.store.delete_dataset(user, id).await
    }

    /// Up to `limit` rows with index above `after`, by index.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on `limit` outside 1 to [`MAX_PAGE_SIZE`];
    /// [`Error::NotFound`] for a missing or another user's dataset; store errors.
    pub async fn dataset_rows(
        &self,
        user: UserId,
        id: DatasetId,
        after: Option<u32>,
        limit: u32,
    ) -> Result<Vec<DatasetRow>> {
        check_page(limit)?;
        self.inner.store.dataset_rows(user, id, after, limit).await
    }

    /// Every row of a dataset, by index (read in pages).
    pub(super) async fn all_rows(&self, user: UserId, id: DatasetId) -> Result<Vec<DatasetRow>> {
        let mut rows: Vec<DatasetRow> = Vec::new();
        loop {
            let after = rows.last().map(|r| r.index);
            let page = self.inner.store.dataset_rows(user, id, after, ROWS_PER_READ).await?;
            let n = page.len();
            rows.extend(page);
            if n < ROWS_PER_READ as usize || rows.len() > MAX_DATASET_ROWS {
                return Ok(rows);
            }
        }
    }
}

/// Rows read per store call when a whole dataset is read.
pub(super) const ROWS_PER_READ: u32 = 1000;
