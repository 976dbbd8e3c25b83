//! Datasets (with their rows) and experiments (with their runs), on both backends.
//!
//! Every query names the owner: lookups by id check `user_id`, and rows and runs are read
//! only after their dataset or experiment is found to be the user's.

use formaops_core::dataset::{Dataset, DatasetRow};
use formaops_core::execution::{Execution, Priority};
use formaops_core::experiment::{Experiment, ExperimentRun, ExperimentStatus, ExperimentTarget, MatchRule};
use formaops_core::ids::{DatasetId, ExecutionId, ExperimentId, PromptId, UserId};
use formaops_core::page::{Cursor, Page, PageRequest};
use formaops_core::{Error, Result};
use serde_json::Value;
use uuid::Uuid;

use super::executions::ExecutionRow;
use super::{Doc, Ts, corrupt, from_doc, ts, u32_of};
use crate::error::DbResultExt;

const INSERT_DATASET: &str =
    "INSERT INTO datasets (id, user_id, name, row_count, created_at) VALUES ($1, $2, $3, $4, $5)";
const GET_DATASET: &str = "SELECT * FROM datasets WHERE id = $1 AND user_id IS NOT DISTINCT FROM $2";
const DATASET_IN_USE: &str = "SELECT id FROM experiments WHERE dataset_id = $1 LIMIT 1";
const DELETE_ROWS: &str = "DELETE FROM dataset_rows WHERE dataset_id = $1";
const DELETE_DATASET: &str = "DELETE FROM datasets WHERE id = $1 AND user_id = $2";
const ROWS_AFTER: &str = "SELECT row_index, inputs, expected FROM dataset_rows WHERE dataset_id = $1 \
    AND row_index > $2 ORDER BY row_index LIMIT $3";
const INSERT_EXPERIMENT: &str = "INSERT INTO experiments (id, user_id, prompt_id, dataset_id, targets, priority, \
    concurrency, match_rule, validate_output, status, row_count, created_at, finished_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
const GET_EXPERIMENT: &str = "SELECT * FROM experiments WHERE id = $1 AND user_id IS NOT DISTINCT FROM $2";
const FINISH_EXPERIMENT: &str = "UPDATE experiments SET status = $1, finished_at = $2 \
    WHERE id = $3 AND user_id = $4 AND status = 'RUNNING'";
const RUNNING: &str = "SELECT * FROM experiments WHERE status = 'RUNNING' ORDER BY created_at, id LIMIT $1";
const INSERT_RUN: &str = "INSERT INTO experiment_runs (experiment_id, row_index, version, execution_id) \
    VALUES ($1, $2, $3, $4) ON CONFLICT (experiment_id, row_index, version) DO NOTHING";
const RUNS: &str = "SELECT r.row_index AS run_row, r.version AS run_version, e.* FROM experiment_runs r \
    JOIN executions e ON e.id = r.execution_id WHERE r.experiment_id = $1 AND e.user_id = $2 \
    ORDER BY r.row_index, r.version";
/// Rows per multi-row insert (4 parameters each, well under SQLite's limit).
const ROWS_PER_INSERT: usize = 500;

#[derive(sqlx::FromRow)]
struct DatasetDbRow {
    id: Uuid,
    user_id: Uuid,
    name: String,
    row_count: i32,
    created_at: Ts,
}

impl TryFrom<DatasetDbRow> for Dataset {
    type Error = Error;

    fn try_from(r: DatasetDbRow) -> Result<Self> {
        Ok(Dataset {
            id: DatasetId(r.id),
            user_id: UserId(r.user_id),
            name: r.name,
            row_count: u32_of("row_count", r.row_count)?,
            created_at: r.created_at.0,
        })
    }
}

#[derive(sqlx::FromRow)]
struct RowDbRow {
    row_index: i32,
    inputs: Doc,
    expected: Option<Doc>,
}

impl TryFrom<RowDbRow> for DatasetRow {
    type Error = Error;

    fn try_from(r: RowDbRow) -> Result<Self> {
        Ok(DatasetRow {
            index: u32_of("row_index", r.row_index)?,
            inputs: from_doc("inputs", r.inputs)?,
            expected: r.expected.map(|d| d.0),
        })
    }
}

#[derive(sqlx::FromRow)]
struct ExperimentDbRow {
    id: Uuid,
    user_id: Uuid,
    prompt_id: Uuid,
    dataset_id: Uuid,
    targets: Doc,
    priority: String,
    concurrency: i32,
    match_rule: Option<String>,
    validate_output: bool,
    status: String,
    row_count: i32,
    created_at: Ts,
    finished_at: Option<Ts>,
}

impl TryFrom<ExperimentDbRow> for Experiment {
    type Error = Error;

    fn try_from(r: ExperimentDbRow) -> Result<Self> {
        let targets: Vec<ExperimentTarget> = from_doc("targets", r.targets)?;
        Ok(Experiment {
            id: ExperimentId(r.id),
            user_id: UserId(r.user_id),
            prompt_id: PromptId(r.prompt_id),
            dataset_id: DatasetId(r.dataset_id),
            targets,
            priority: Priority::parse(&r.priority).ok_or_else(|| corrupt("priority", &r.priority))?,
            concurrency: u32_of("concurrency", r.concurrency)?,
            match_rule: r
                .match_rule
                .map(|m| m.parse::<MatchRule>().map_err(|_| corrupt("match_rule", &m)))
                .transpose()?,
            validate_output: r.validate_output,
            status: r.status.parse::<ExperimentStatus>().map_err(|_| corrupt("status", &r.status))?,
            row_count: u32_of("row_count", r.row_count)?,
            created_at: r.created_at.0,
            finished_at: r.finished_at.map(|t| t.0),
        })
    }
}

#[derive(sqlx::FromRow)]
struct RunDbRow {
    run_row: i32,
    run_version: i32,
    #[sqlx(flatten)]
    execution: ExecutionRow,
}

/// The listing query of `table` for one user, newest first; `keyset` as in
/// `prompts::list_prompts_sql`.
fn list_sql(table: &str, after: bool, keyset: &str) -> String {
    let mut sql = format!("SELECT * FROM {table} WHERE user_id = $1");
    if after {
        sql.push_str(" AND ");
        sql.push_str(&keyset.replace("#1", "$2").replace("#2", "$3"));
        sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT $4");
    } else {
        sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT $2");
    }
    sql
}

fn insert_rows_sql(n: usize) -> String {
    let mut sql = String::from("INSERT INTO dataset_rows (dataset_id, row_index, inputs, expected) VALUES ");
    for i in 0..n {
        if i > 0 {
            sql.push_str(", ");
        }
        let b = i * 4;
        sql.push_str(&format!("(${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4));
    }
    sql
}

fn i32_of(field: &str, v: u32) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::invalid_argument(field, format!("{v} is out of range")))
}

for_each_backend! {
    pub(crate) async fn insert_dataset(pool: &sqlx::Pool<Db>, d: &Dataset, rows: &[DatasetRow]) -> Result<()> {
        let mut tx = pool.begin().await.db("begin")?;
        sqlx::query(INSERT_DATASET)
            .bind(d.id.0)
            .bind(d.user_id.0)
            .bind(&d.name)
            .bind(i32_of("rowCount", d.row_count)?)
            .bind(Ts(d.created_at))
            .execute(&mut *tx)
            .await
            .db("insert dataset")?;
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let sql = insert_rows_sql(chunk.len());
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                q = q
                    .bind(d.id.0)
                    .bind(i32_of("index", r.index)?)
                    .bind(Doc(Value::Object(r.inputs.clone())))
                    .bind(r.expected.clone().map(Doc));
            }
            q.execute(&mut *tx).await.db("insert dataset rows")?;
        }
        tx.commit().await.db("commit")?;
        Ok(())
    }

    pub(crate) async fn get_dataset(
        ex: impl sqlx::Executor<'_, Database = Db>,
        user: UserId,
        id: DatasetId,
    ) -> Result<Dataset> {
        let row: Option<DatasetDbRow> =
            sqlx::query_as(GET_DATASET).bind(id.0).bind(user.0).fetch_optional(ex).await.db("get dataset")?;
        row.map(Dataset::try_from).transpose()?.ok_or_else(|| Error::not_found("dataset", id))
    }

    pub(crate) async fn list_datasets(
        pool: &sqlx::Pool<Db>,
        keyset: &str,
        user: UserId,
        page: PageRequest,
    ) -> Result<Page<Dataset>> {
        let sql = list_sql("datasets", page.after.is_some(), keyset);
        let mut q = sqlx::query_as::<_, DatasetDbRow>(sqlx::AssertSqlSafe(sql)).bind(user.0);
        if let Some(c) = page.after {
            q = q.bind(Ts(c.created_at)).bind(c.id);
        }
        let rows = q.bind(i64::from(page.limit) + 1).fetch_all(pool).await.db("list datasets")?;
        let items = rows.into_iter().map(Dataset::try_from).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |d| Cursor { created_at: d.created_at, id: d.id.0 }))
    }

    pub(crate) async fn delete_dataset(pool: &sqlx::Pool<Db>, user: UserId, id: DatasetId) -> Result<()> {
        let mut tx = pool.begin().await.db("begin")?;
        get_dataset(&mut *tx, user, id).await?;
        let used: Option<Uuid> =
            sqlx::query_scalar(DATASET_IN_USE).bind(id.0).fetch_optional(&mut *tx).await.db("dataset in use")?;
        if let Some(x) = used {
            return Err(Error::conflict(format!("dataset {id} is used by experiment {x}")));
        }
        sqlx::query(DELETE_ROWS).bind(id.0).execute(&mut *tx).await.db("delete dataset rows")?;
        sqlx::query(DELETE_DATASET).bind(id.0).bind(user.0).execute(&mut *tx).await.db("delete dataset")?;
        tx.commit().await.db("commit")?;
        Ok(())
    }

    pub(crate) async fn dataset_rows(
        pool: &sqlx::Pool<Db>,
        user: UserId,
        id: DatasetId,
        after: Option<u32>,
        limit: u32,
    ) -> Result<Vec<DatasetRow>> {
        get_dataset(pool, user, id).await?;
        let rows: Vec<RowDbRow> = sqlx::query_as(ROWS_AFTER)
            .bind(id.0)
            .bind(after.map_or(-1, i64::from))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .db("dataset rows")?;
        rows.into_iter().map(DatasetRow::try_from).collect()
    }

    pub(crate) async fn insert_experiment(pool: &sqlx::Pool<Db>, x: &Experiment) -> Result<()> {
        let mut tx = pool.begin().await.db("begin")?;
        get_dataset(&mut *tx, x.user_id, x.dataset_id).await?;
        let targets = serde_json::to_value(&x.targets).map_err(|e| Error::internal_from("encode targets", e))?;
        sqlx::query(INSERT_EXPERIMENT)
            .bind(x.id.0)
            .bind(x.user_id.0)
            .bind(x.prompt_id.0)
            .bind(x.dataset_id.0)
            .bind(Doc(targets))
            .bind(x.priority.as_str())
            .bind(i32_of("concurrency", x.concurrency)?)
            .bind(x.match_rule.map(<&'static str>::from))
            .bind(x.validate_output)
            .bind(<&'static str>::from(x.status))
            .bind(i32_of("rowCount", x.row_count)?)
            .bind(Ts(x.created_at))
            .bind(ts(x.finished_at))
            .execute(&mut *tx)
            .await
            .db("insert experiment")?;
        tx.commit().await.db("commit")?;
        Ok(())
    }

    pub(crate) async fn get_experiment(
        ex: impl sqlx::Executor<'_, Database = Db>,
        user: UserId,
        id: ExperimentId,
    ) -> Result<Experiment> {
        let row: Option<ExperimentDbRow> =
            sqlx::query_as(GET_EXPERIMENT).bind(id.0).bind(user.0).fetch_optional(ex).await.db("get experiment")?;
        row.map(Experiment::try_from).transpose()?.ok_or_else(|| Error::not_found("experiment", id))
    }

    pub(crate) async fn list_experiments(
        pool: &sqlx::Pool<Db>,
        keyset: &str,
        user: UserId,
        page: PageRequest,
    ) -> Result<Page<Experiment>> {
        let sql = list_sql("experiments", page.after.is_some(), keyset);
        let mut q = sqlx::query_as::<_, ExperimentDbRow>(sqlx::AssertSqlSafe(sql)).bind(user.0);
        if let Some(c) = page.after {
            q = q.bind(Ts(c.created_at)).bind(c.id);
        }
        let rows = q.bind(i64::from(page.limit) + 1).fetch_all(pool).await.db("list experiments")?;
        let items = rows.into_iter().map(Experiment::try_from).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |x| Cursor { created_at: x.created_at, id: x.id.0 }))
    }

    pub(crate) async fn finish_experiment(
        pool: &sqlx::Pool<Db>,
        user: UserId,
        id: ExperimentId,
        status: ExperimentStatus,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(FINISH_EXPERIMENT)
            .bind(<&'static str>::from(status))
            .bind(Ts(at))
            .bind(id.0)
            .bind(user.0)
            .execute(pool)
            .await
            .db("finish experiment")?;
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        get_experiment(pool, user, id).await.map(|_| false)
    }

    pub(crate) async fn record_runs(pool: &sqlx::Pool<Db>, user: UserId, runs: &[ExperimentRun]) -> Result<()> {
        let mut tx = pool.begin().await.db("begin")?;
        let mut checked: Vec<ExperimentId> = Vec::new();
        for r in runs {
            if !checked.contains(&r.experiment_id) {
                get_experiment(&mut *tx, user, r.experiment_id).await?;
                checked.push(r.experiment_id);
            }
            sqlx::query(INSERT_RUN)
                .bind(r.experiment_id.0)
                .bind(i32_of("row", r.row)?)
                .bind(i32_of("version", r.version)?)
                .bind(r.execution_id.0)
                .execute(&mut *tx)
                .await
                .db("record experiment run")?;
        }
        tx.commit().await.db("commit")?;
        Ok(())
    }

    pub(crate) async fn runs(
        pool: &sqlx::Pool<Db>,
        user: UserId,
        id: ExperimentId,
    ) -> Result<Vec<(ExperimentRun, Execution)>> {
        get_experiment(pool, user, id).await?;
        let rows: Vec<RunDbRow> =
            sqlx::query_as(RUNS).bind(id.0).bind(user.0).fetch_all(pool).await.db("experiment runs")?;
        rows.into_iter()
            .map(|r| {
                let e = Execution::try_from(r.execution)?;
                let run = ExperimentRun {
                    experiment_id: id,
                    row: u32_of("row_index", r.run_row)?,
                    version: u32_of("version", r.run_version)?,
                    execution_id: ExecutionId(e.id.0),
                };
                Ok((run, e))
            })
            .collect()
    }

    pub(crate) async fn running(pool: &sqlx::Pool<Db>, limit: u32) -> Result<Vec<Experiment>> {
        let rows: Vec<ExperimentDbRow> =
            sqlx::query_as(RUNNING).bind(i64::from(limit)).fetch_all(pool).await.db("running experiments")?;
        rows.into_iter().map(Experiment::try_from).collect()
    }
}
