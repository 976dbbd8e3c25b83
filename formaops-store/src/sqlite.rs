//! [`SqliteStore`]: the zero-configuration, single-node backend.
//!
//! Storage conventions: timestamps are INTEGER microseconds since the Unix epoch (UTC), ids
//! 16-byte BLOB UUIDs, JSON is TEXT, money is an exact decimal string.
//!
//! Concurrency: SQLite has one writer at a time. Every write goes through a pool of exactly
//! one connection, so a claim (`UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING *`) can
//! never interleave with another write and no execution is handed out twice. Reads use a
//! separate pool of connections (WAL mode lets them proceed while the writer commits). An
//! in-memory database (`sqlite::memory:`) is a single connection for both.
//!
//! Durability: WAL with `synchronous = FULL` ([`Durability::Strict`]): every committed batch
//! is on disk before `enqueue`/`finish` return. [`Durability::Relaxed`] sets the writer's
//! `synchronous = NORMAL`: commits do not wait for the WAL to reach the disk, and an
//! operating-system crash can roll back the last transactions (never corrupt the file).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use formaops_core::events::ExecutionEvent;
use formaops_core::execution::{AttemptResult, Execution};
use formaops_core::ids::ExecutionId;
use formaops_core::store::{EnqueueOutcome, ExtendLeasesParams};
use formaops_core::{Error, Result};
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::Arguments;
use sqlx::sqlite::{SqliteArguments, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::MAX_BATCH;
use crate::error::{DbResultExt, sqlite_open_err};
use crate::options::{Durability, StoreOptions};
use crate::rows::{self, FinishColumns};
use crate::sql::{executions, impl_store, rollups};

/// How long a connection waits on a locked database, and how long callers wait for a
/// connection, before the operation fails as unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Reader connections for a file database.
const READERS: u32 = 4;
/// "(created_at, id) before the cursor `(#1, #2)`", as SQLite's planner walks the listing
/// indexes with it.
const KEYSET: &str = "(created_at < #1 OR (created_at = #1 AND id < #2))";

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn opt_micros(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(micros)
}

fn json_text(v: &Option<Value>) -> Option<String> {
    v.as_ref().map(Value::to_string)
}

fn decimal_text(d: Option<Decimal>) -> Option<String> {
    d.map(|d| d.normalize().to_string())
}

/// The SQLite [`Store`](formaops_core::store::Store).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Exactly one connection: SQLite's single writer.
    writer: SqlitePool,
    /// Readers (the writer pool itself for an in-memory database).
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite:///relative.db`,
    /// `sqlite:////absolute.db` or `sqlite://` in memory: see [`crate::url`]) with strict
    /// durability and applies migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, StoreOptions::default()).await
    }

    /// [`SqliteStore::connect`] with `store_options` (relaxed durability: the writer runs
    /// with `synchronous = NORMAL`).
    pub async fn connect_with(url: &str, store_options: StoreOptions) -> Result<Self> {
        let url = crate::url::SqliteUrl::parse(url)?.in_working_dir()?;
        let options = url
            .connect_options()?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let in_memory = url.is_memory();
        let path = options.get_filename().to_owned();
        let writer_sync = match store_options.durability {
            Durability::Strict => SqliteSynchronous::Full,
            Durability::Relaxed => SqliteSynchronous::Normal,
        };
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(BUSY_TIMEOUT)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone().synchronous(writer_sync))
            .await
            .map_err(|e| sqlite_open_err(&path, e))?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await.map_err(|e| {
            tracing::error!(error = %e, "sqlite migration failed");
            Error::internal(format!("applying SQLite migrations failed: {e}"))
        })?;
        rollups::lite::backfill(&writer, Utc::now()).await?;
        let reader = if in_memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(READERS)
                .acquire_timeout(BUSY_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(|e| sqlite_open_err(&path, e))?
        };
        Ok(Self { writer, reader })
    }

    /// The writer connection's `PRAGMA synchronous` (1 NORMAL, 2 FULL), for tests and health
    /// reports.
    ///
    /// # Errors
    /// The database's, as `Unavailable`.
    pub async fn writer_synchronous(&self) -> Result<i64> {
        sqlx::query_scalar("PRAGMA synchronous").fetch_one(&self.writer).await.db("read PRAGMA synchronous")
    }

    /// Closes both pools, waiting for connections to be returned.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// Binds every column of a new execution, in the order of [`INSERT_EXECUTION`].
fn insert_args(e: &Execution) -> Result<SqliteArguments> {
    let c = rows::ExecutionColumns::of(e)?;
    let r = c.result;
    let mut a = SqliteArguments::default();
    let add = |res: std::result::Result<(), sqlx::error::BoxDynError>| {
        res.map_err(|err| Error::internal(format!("cannot bind execution column: {err}")))
    };
    add(a.add(e.id.0))?;
    add(a.add(e.user_id.0))?;
    add(a.add(e.prompt_id.0))?;
    add(a.add(c.prompt_version))?;
    add(a.add(c.inputs.to_string()))?;
    add(a.add(c.priority))?;
    add(a.add(c.status))?;
    add(a.add(e.validate_output))?;
    add(a.add(e.provider.clone()))?;
    add(a.add(e.model.clone()))?;
    add(a.add(r.output))?;
    add(a.add(json_text(&r.validated_output)))?;
    add(a.add(json_text(&r.validation)))?;
    add(a.add(r.validation_passed))?;
    add(a.add(json_text(&r.error)))?;
    add(a.add(r.latency_ms))?;
    add(a.add(r.provider_latency_ms))?;
    add(a.add(r.queue_ms))?;
    add(a.add(r.tokens_input))?;
    add(a.add(r.tokens_output))?;
    add(a.add(r.tokens_cached))?;
    add(a.add(r.tokens_reasoning))?;
    add(a.add(r.tokens_total))?;
    add(a.add(r.tokens_estimated))?;
    add(a.add(decimal_text(r.cost_usd)))?;
    add(a.add(c.attempts))?;
    add(a.add(c.max_attempts))?;
    add(a.add(e.retry_of.map(|r| r.0)))?;
    add(a.add(e.idempotency_key.clone()))?;
    add(a.add(micros(e.created_at)))?;
    add(a.add(micros(e.run_after)))?;
    add(a.add(micros(e.deadline_at)))?;
    add(a.add(opt_micros(e.started_at)))?;
    add(a.add(opt_micros(e.finished_at)))?;
    add(a.add(e.queue_key))?;
    add(a.add(e.lease_owner.clone()))?;
    add(a.add(opt_micros(e.lease_expires_at)))?;
    add(a.add(e.label.clone()))?;
    Ok(a)
}

const INSERT_EXECUTION: &str = "INSERT INTO executions (id, user_id, prompt_id, prompt_version, inputs, \
    priority, status, validate_output, provider, model, output, validated_output, validation, \
    validation_passed, error, latency_ms, provider_latency_ms, queue_ms, tokens_input, tokens_output, \
    tokens_cached, tokens_reasoning, tokens_total, tokens_estimated, cost_usd, attempts, max_attempts, \
    retry_of, idempotency_key, created_at, run_after, deadline_at, started_at, finished_at, queue_key, \
    lease_owner, lease_expires_at, label) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, \
    ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
    ON CONFLICT (user_id, idempotency_key) DO NOTHING";

// The methods whose SQL both backends share are written once, in `sql::impl_store!`.
impl_store! {
    SqliteStore, lite, reader: reader, writer: writer, executions: writer, claim: executions::CLAIM_SQLITE, keyset: KEYSET;

    async fn enqueue(&self, executions: &[Execution]) -> Result<Vec<EnqueueOutcome>> {
        if executions.len() > MAX_BATCH {
            return Err(Error::invalid_argument("executions", format!("at most {MAX_BATCH} per batch")));
        }
        let mut outcomes = Vec::with_capacity(executions.len());
        let mut tx = self.writer.begin().await.db("begin")?;
        for e in executions {
            let done =
                sqlx::query_with(INSERT_EXECUTION, insert_args(e)?).execute(&mut *tx).await.db("enqueue")?;
            if done.rows_affected() == 1 {
                outcomes.push(EnqueueOutcome::Created);
                continue;
            }
            let key = e.idempotency_key.as_deref().ok_or_else(|| {
                Error::internal("an insert was skipped but the execution has no idempotency key")
            })?;
            let existing = executions::lite::by_idempotency_key(&mut *tx, e.user_id, key).await?;
            outcomes.push(EnqueueOutcome::Existing(Box::new(existing)));
        }
        tx.commit().await.db("commit enqueue")?;
        Ok(outcomes)
    }

    async fn extend_leases(&self, params: ExtendLeasesParams<'_>) -> Result<Vec<ExecutionId>> {
        let ExtendLeasesParams { worker, ids, lease_until } = params;
        if ids.len() > MAX_BATCH {
            return Err(Error::invalid_argument("ids", format!("at most {MAX_BATCH} per call")));
        }
        let mut held = Vec::with_capacity(ids.len());
        let mut tx = self.writer.begin().await.db("begin")?;
        for id in ids {
            let done = sqlx::query(
                "UPDATE executions SET lease_expires_at = $1 WHERE id = $2 AND status = 'RUNNING' AND lease_owner = $3",
            )
            .bind(micros(lease_until))
            .bind(id.0)
            .bind(worker)
            .execute(&mut *tx)
            .await
            .db("extend leases")?;
            if done.rows_affected() == 1 {
                held.push(*id);
            }
        }
        tx.commit().await.db("commit extend leases")?;
        Ok(held)
    }

    async fn finish(&self, results: &[AttemptResult]) -> Result<Vec<bool>> {
        if results.len() > MAX_BATCH {
            return Err(Error::invalid_argument("results", format!("at most {MAX_BATCH} per batch")));
        }
        let columns = results.iter().map(FinishColumns::of).collect::<Result<Vec<_>>>()?;
        let mut applied = Vec::with_capacity(results.len());
        let mut finals = Vec::new();
        let mut tx = self.writer.begin().await.db("begin")?;
        for (r, c) in results.iter().zip(columns) {
            let x = c.result;
            let done: Option<rollups::AppliedRow> = sqlx::query_as(
                "UPDATE executions SET status = $1, output = $2, validated_output = $3, validation = $4, \
                 validation_passed = $5, error = $6, latency_ms = $7, provider_latency_ms = $8, queue_ms = $9, \
                 tokens_input = $10, tokens_output = $11, tokens_cached = $12, tokens_reasoning = $13, \
                 tokens_total = $14, tokens_estimated = $15, cost_usd = $16, run_after = COALESCE($17, run_after), \
                 finished_at = $18, lease_owner = NULL, lease_expires_at = NULL, finish_reason = $22 \
                 WHERE id = $19 AND user_id IS NOT DISTINCT FROM $20 AND status = 'RUNNING' AND lease_owner = $21 \
                 RETURNING id, prompt_id, prompt_version, label, created_at",
            )
            .bind(c.status)
            .bind(x.output)
            .bind(json_text(&x.validated_output))
            .bind(json_text(&x.validation))
            .bind(x.validation_passed)
            .bind(json_text(&x.error))
            .bind(x.latency_ms)
            .bind(x.provider_latency_ms)
            .bind(x.queue_ms)
            .bind(x.tokens_input)
            .bind(x.tokens_output)
            .bind(x.tokens_cached)
            .bind(x.tokens_reasoning)
            .bind(x.tokens_total)
            .bind(x.tokens_estimated)
            .bind(decimal_text(x.cost_usd))
            .bind(opt_micros(c.run_after))
            .bind(opt_micros(c.finished_at))
            .bind(r.id.0)
            .bind(r.user_id.0)
            .bind(&r.worker)
            .bind(c.finish_reason)
            .fetch_optional(&mut *tx)
            .await
            .db("finish")?;
            applied.push(done.is_some());
            if let Some(a) = done {
                rollups::collect_finals(std::slice::from_ref(r), &HashMap::from([(a.id, a)]), &mut finals)?;
            }
        }
        rollups::lite::roll_up(&mut tx, &finals).await?;
        tx.commit().await.db("commit finish")?;
        Ok(applied)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await.db("ping")?;
        Ok(())
    }

    async fn relay_events(&self, _events: &[ExecutionEvent]) -> Result<()> {
        // A SQLite database serves one process: nothing to relay.
        Ok(())
    }
}
