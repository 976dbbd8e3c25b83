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
//! Durability: WAL with `synchronous = FULL`: every committed batch is on disk before
//! `enqueue`/`finish` return.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use formaops_core::events::ExecutionEvent;
use formaops_core::execution::{AttemptResult, Execution};
use formaops_core::ids::{CredentialId, ExecutionId, PromptId, UserId};
use formaops_core::metrics::{MetricsAggregator, MetricsQuery, MetricsReport};
use formaops_core::page::{Cursor, Page, PageRequest};
use formaops_core::prompt::{Prompt, PromptStatus, PromptVersion};
use formaops_core::store::{
    EnqueueOutcome, ExecutionFilter, PromptFilter, RescueDecision, Store, VersionPageRequest,
};
use formaops_core::user::{Credential, CredentialKind, User, UserWithPassword};
use formaops_core::{Error, Result};
use futures::TryStreamExt;
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Arguments, AssertSqlSafe, Row};
use uuid::Uuid;

use crate::error::DbResultExt;
use crate::rows::{self, EXPIRED_LEASES, FinishColumns, RESCUE_EXECUTION, RowAccess, corrupt};
use crate::{MAX_BATCH, MAX_CLAIM, MAX_CREDENTIALS, MAX_RESCUE};

/// How long a connection waits on a locked database, and how long callers wait for a
/// connection, before the operation fails as unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Reader connections for a file database.
const READERS: u32 = 4;

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

impl RowAccess for SqliteRow {
    fn uuid(&self, col: &str) -> Result<Uuid> {
        self.try_get(col).map_err(|e| corrupt(col, e))
    }
    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>> {
        self.try_get(col).map_err(|e| corrupt(col, e))
    }
    fn ts(&self, col: &str) -> Result<DateTime<Utc>> {
        self.opt_ts(col)?.ok_or_else(|| corrupt(col, "is NULL"))
    }
    fn opt_ts(&self, col: &str) -> Result<Option<DateTime<Utc>>> {
        let v: Option<i64> = self.try_get(col).map_err(|e| corrupt(col, e))?;
        v.map(|m| DateTime::from_timestamp_micros(m).ok_or_else(|| corrupt(col, "is out of range")))
            .transpose()
    }
    fn text(&self, col: &str) -> Result<String> {
        self.try_get(col).map_err(|e| corrupt(col, e))
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        self.try_get(col).map_err(|e| corrupt(col, e))
    }
    fn int(&self, col: &str) -> Result<i64> {
        self.try_get(col).map_err(|e| corrupt(col, e))
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        self.try_get(col).map_err(|e| corrupt(col, e))
    }
    fn boolean(&self, col: &str) -> Result<bool> {
        self.try_get(col).map_err(|e| corrupt(col, e))
    }
    fn opt_bool(&self, col: &str) -> Result<Option<bool>> {
        self.try_get(col).map_err(|e| corrupt(col, e))
    }
    fn opt_json(&self, col: &str) -> Result<Option<Value>> {
        let v: Option<String> = self.try_get(col).map_err(|e| corrupt(col, e))?;
        v.map(|s| serde_json::from_str(&s).map_err(|e| corrupt(col, e))).transpose()
    }
    fn opt_decimal(&self, col: &str) -> Result<Option<Decimal>> {
        let v: Option<String> = self.try_get(col).map_err(|e| corrupt(col, e))?;
        v.map(|s| Decimal::from_str(&s).map_err(|e| corrupt(col, e))).transpose()
    }
    fn bytes(&self, col: &str) -> Result<Vec<u8>> {
        self.try_get(col).map_err(|e| corrupt(col, e))
    }
}

/// The SQLite [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Exactly one connection: SQLite's single writer.
    writer: SqlitePool,
    /// Readers (the writer pool itself for an in-memory database).
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path` or
    /// `sqlite::memory:`) and applies migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::invalid_argument("database url", format!("not a SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(BUSY_TIMEOUT)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await
            .db("open sqlite database")?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await.map_err(|e| {
            tracing::error!(error = %e, "sqlite migration failed");
            Error::internal(format!("applying SQLite migrations failed: {e}"))
        })?;
        let reader = if in_memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(READERS)
                .acquire_timeout(BUSY_TIMEOUT)
                .connect_with(options)
                .await
                .db("open sqlite database")?
        };
        Ok(Self { writer, reader })
    }

    /// Closes both pools, waiting for connections to be returned.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    async fn prompt_state(&self, user: UserId, id: PromptId) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT status FROM prompts WHERE id = $1 AND user_id = $2")
            .bind(id.0)
            .bind(user.0)
            .fetch_optional(&self.writer)
            .await
            .db("read prompt")
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
    Ok(a)
}

const INSERT_EXECUTION: &str = "INSERT INTO executions (id, user_id, prompt_id, prompt_version, inputs, \
    priority, status, validate_output, provider, model, output, validated_output, validation, \
    validation_passed, error, latency_ms, provider_latency_ms, queue_ms, tokens_input, tokens_output, \
    tokens_cached, tokens_reasoning, tokens_total, tokens_estimated, cost_usd, attempts, max_attempts, \
    retry_of, idempotency_key, created_at, run_after, deadline_at, started_at, finished_at, queue_key, \
    lease_owner, lease_expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, \
    ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
    ON CONFLICT (user_id, idempotency_key) DO NOTHING";

#[async_trait]
impl Store for SqliteStore {
    async fn create_user(&self, user: &User, password_hash: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user.id.0)
        .bind(&user.email)
        .bind(password_hash)
        .bind(user.is_admin)
        .bind(micros(user.created_at))
        .execute(&self.writer)
        .await
        .db("create user")?;
        Ok(())
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserWithPassword>> {
        let row = sqlx::query("SELECT * FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.reader)
            .await
            .db("find user by email")?;
        row.map(|r| {
            Ok(UserWithPassword { user: rows::user_from_row(&r)?, password_hash: r.text("password_hash")? })
        })
        .transpose()
    }

    async fn get_user(&self, id: UserId) -> Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await
            .db("get user")?;
        row.map(|r| rows::user_from_row(&r)).transpose()
    }

    async fn count_users(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.reader)
            .await
            .db("count users")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn create_credential(&self, c: &Credential) -> Result<()> {
        sqlx::query(
            "INSERT INTO credentials (id, user_id, kind, name, token_hash, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(c.id.0)
        .bind(c.user_id.0)
        .bind(c.kind.as_str())
        .bind(&c.name)
        .bind(&c.token_hash)
        .bind(micros(c.created_at))
        .bind(opt_micros(c.expires_at))
        .bind(opt_micros(c.revoked_at))
        .execute(&self.writer)
        .await
        .db("create credential")?;
        Ok(())
    }

    async fn authenticate(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<(User, Credential)>> {
        let row = sqlx::query(
            "SELECT c.*, u.email AS u_email, u.is_admin AS u_is_admin, u.created_at AS u_created_at \
             FROM credentials c JOIN users u ON u.id = c.user_id \
             WHERE c.token_hash = $1 AND c.revoked_at IS NULL AND (c.expires_at IS NULL OR c.expires_at > $2)",
        )
        .bind(token_hash)
        .bind(micros(now))
        .fetch_optional(&self.reader)
        .await
        .db("authenticate")?;
        let Some(r) = row else { return Ok(None) };
        let credential = rows::credential_from_row(&r)?;
        let user = User {
            id: credential.user_id,
            email: r.text("u_email")?,
            is_admin: r.boolean("u_is_admin")?,
            created_at: r.ts("u_created_at")?,
        };
        Ok(Some((user, credential)))
    }

    async fn revoke_credential(&self, user: UserId, id: CredentialId, now: DateTime<Utc>) -> Result<()> {
        let done = sqlx::query(
            "UPDATE credentials SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND user_id = $3",
        )
        .bind(micros(now))
        .bind(id.0)
        .bind(user.0)
        .execute(&self.writer)
        .await
        .db("revoke credential")?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("credential", id));
        }
        Ok(())
    }

    async fn list_credentials(&self, user: UserId, kind: CredentialKind) -> Result<Vec<Credential>> {
        let rows = sqlx::query(
            "SELECT * FROM credentials WHERE user_id = $1 AND kind = $2 AND revoked_at IS NULL \
             ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(user.0)
        .bind(kind.as_str())
        .bind(MAX_CREDENTIALS)
        .fetch_all(&self.reader)
        .await
        .db("list credentials")?;
        rows.iter().map(rows::credential_from_row).collect()
    }

    async fn insert_prompt(&self, prompt: &Prompt, first: &PromptVersion) -> Result<()> {
        let json = rows::VersionJson::of(first)?;
        let mut tx = self.writer.begin().await.db("begin")?;
        sqlx::query(
            "INSERT INTO prompts (id, user_id, name, description, status, current_version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(prompt.id.0)
        .bind(prompt.user_id.0)
        .bind(&prompt.name)
        .bind(&prompt.description)
        .bind(prompt.status.as_str())
        .bind(i64::from(prompt.current_version))
        .bind(micros(prompt.created_at))
        .bind(micros(prompt.updated_at))
        .execute(&mut *tx)
        .await
        .db("insert prompt")?;
        insert_version_row(&mut tx, first, &json).await?;
        tx.commit().await.db("commit")?;
        Ok(())
    }

    async fn insert_version(&self, prompt: &Prompt, version: &PromptVersion) -> Result<()> {
        let json = rows::VersionJson::of(version)?;
        let previous = i64::from(version.version) - 1;
        let mut tx = self.writer.begin().await.db("begin")?;
        let updated = sqlx::query(
            "UPDATE prompts SET name = $1, description = $2, current_version = $3, updated_at = $4 \
             WHERE id = $5 AND user_id = $6 AND status = 'ACTIVE' AND current_version = $7",
        )
        .bind(&prompt.name)
        .bind(&prompt.description)
        .bind(i64::from(version.version))
        .bind(micros(prompt.updated_at))
        .bind(prompt.id.0)
        .bind(prompt.user_id.0)
        .bind(previous)
        .execute(&mut *tx)
        .await
        .db("update prompt")?;
        if updated.rows_affected() == 0 {
            drop(tx);
            return match self.prompt_state(prompt.user_id, prompt.id).await? {
                None => Err(Error::not_found("prompt", prompt.id)),
                Some(s) if s == "ARCHIVED" => {
                    Err(Error::conflict(format!("prompt {} is archived", prompt.id)))
                }
                Some(_) => Err(Error::conflict(format!(
                    "prompt {} was updated concurrently: version {} is not the next version",
                    prompt.id, version.version
                ))),
            };
        }
        insert_version_row(&mut tx, version, &json).await?;
        tx.commit().await.db("commit")?;
        Ok(())
    }

    async fn get_prompt(&self, user: UserId, id: PromptId) -> Result<Prompt> {
        let row = sqlx::query("SELECT * FROM prompts WHERE id = $1 AND user_id = $2")
            .bind(id.0)
            .bind(user.0)
            .fetch_optional(&self.reader)
            .await
            .db("get prompt")?;
        row.map(|r| rows::prompt_from_row(&r)).transpose()?.ok_or_else(|| Error::not_found("prompt", id))
    }

    async fn get_version(&self, user: UserId, id: PromptId, version: u32) -> Result<PromptVersion> {
        let row = sqlx::query(
            "SELECT v.* FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id \
             WHERE v.prompt_id = $1 AND p.user_id = $2 AND v.version = $3",
        )
        .bind(id.0)
        .bind(user.0)
        .bind(i64::from(version))
        .fetch_optional(&self.reader)
        .await
        .db("get prompt version")?;
        row.map(|r| rows::version_from_row(&r))
            .transpose()?
            .ok_or_else(|| Error::not_found("prompt version", format!("{id} v{version}")))
    }

    async fn list_prompts(
        &self,
        user: UserId,
        filter: &PromptFilter,
        page: PageRequest,
    ) -> Result<Page<Prompt>> {
        let status = filter.status.unwrap_or(PromptStatus::Active);
        let mut sql = String::from("SELECT * FROM prompts WHERE user_id = ? AND status = ?");
        if page.after.is_some() {
            sql.push_str(" AND (created_at < ? OR (created_at = ? AND id < ?))");
        }
        sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT ?");
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(user.0).bind(status.as_str());
        if let Some(c) = page.after {
            q = q.bind(micros(c.created_at)).bind(micros(c.created_at)).bind(c.id);
        }
        let rows = q.bind(i64::from(page.limit) + 1).fetch_all(&self.reader).await.db("list prompts")?;
        let items = rows.iter().map(rows::prompt_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |p| Cursor { created_at: p.created_at, id: p.id.0 }))
    }

    async fn list_versions(
        &self,
        user: UserId,
        id: PromptId,
        page: VersionPageRequest,
    ) -> Result<Page<PromptVersion>> {
        if self.prompt_state(user, id).await?.is_none() {
            return Err(Error::not_found("prompt", id));
        }
        let before = page.before.map_or(i64::MAX, i64::from);
        let rows = sqlx::query(
            "SELECT * FROM prompt_versions WHERE prompt_id = $1 AND version < $2 ORDER BY version DESC LIMIT $3",
        )
        .bind(id.0)
        .bind(before)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(&self.reader)
        .await
        .db("list prompt versions")?;
        let items = rows.iter().map(rows::version_from_row).collect::<Result<Vec<_>>>()?;
        Ok(crate::version_page(items, page.limit))
    }

    async fn set_prompt_status(
        &self,
        user: UserId,
        id: PromptId,
        status: PromptStatus,
        now: DateTime<Utc>,
    ) -> Result<Prompt> {
        let row = sqlx::query(
            "UPDATE prompts SET status = $1, updated_at = $2 WHERE id = $3 AND user_id = $4 RETURNING *",
        )
        .bind(status.as_str())
        .bind(micros(now))
        .bind(id.0)
        .bind(user.0)
        .fetch_optional(&self.writer)
        .await
        .db("set prompt status")?;
        row.map(|r| rows::prompt_from_row(&r)).transpose()?.ok_or_else(|| Error::not_found("prompt", id))
    }

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
            let row = sqlx::query("SELECT * FROM executions WHERE user_id = $1 AND idempotency_key = $2")
                .bind(e.user_id.0)
                .bind(&e.idempotency_key)
                .fetch_optional(&mut *tx)
                .await
                .db("enqueue")?
                .ok_or_else(|| {
                    Error::internal("an idempotent insert was skipped but no row holds the key")
                })?;
            outcomes.push(EnqueueOutcome::Existing(Box::new(rows::execution_from_row(&row)?)));
        }
        tx.commit().await.db("commit enqueue")?;
        Ok(outcomes)
    }

    async fn claim(
        &self,
        worker: &str,
        provider: &str,
        limit: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Execution>> {
        let limit = limit.min(MAX_CLAIM);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "UPDATE executions SET status = 'RUNNING', lease_owner = $1, lease_expires_at = $2, \
             attempts = attempts + 1, started_at = COALESCE(started_at, $3) \
             WHERE id IN (SELECT id FROM executions WHERE status = 'QUEUED' AND provider = $4 \
             AND run_after <= $3 ORDER BY queue_key, id LIMIT $5) RETURNING *",
        )
        .bind(worker)
        .bind(micros(lease_until))
        .bind(micros(now))
        .bind(provider)
        .bind(i64::from(limit))
        .fetch_all(&self.writer)
        .await
        .db("claim")?;
        let mut claimed = rows.iter().map(rows::execution_from_row).collect::<Result<Vec<_>>>()?;
        rows::sort_claimed(&mut claimed);
        Ok(claimed)
    }

    async fn extend_leases(
        &self,
        worker: &str,
        ids: &[ExecutionId],
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<ExecutionId>> {
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
        let mut tx = self.writer.begin().await.db("begin")?;
        for (r, c) in results.iter().zip(columns) {
            let x = c.result;
            let done = sqlx::query(
                "UPDATE executions SET status = $1, output = $2, validated_output = $3, validation = $4, \
                 validation_passed = $5, error = $6, latency_ms = $7, provider_latency_ms = $8, queue_ms = $9, \
                 tokens_input = $10, tokens_output = $11, tokens_cached = $12, tokens_reasoning = $13, \
                 tokens_total = $14, tokens_estimated = $15, cost_usd = $16, run_after = COALESCE($17, run_after), \
                 finished_at = $18, lease_owner = NULL, lease_expires_at = NULL \
                 WHERE id = $19 AND user_id = $20 AND status = 'RUNNING' AND lease_owner = $21",
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
            .execute(&mut *tx)
            .await
            .db("finish")?;
            applied.push(done.rows_affected() == 1);
        }
        tx.commit().await.db("commit finish")?;
        Ok(applied)
    }

    async fn expired_leases(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Execution>> {
        let rows = sqlx::query(EXPIRED_LEASES)
            .bind(micros(now))
            .bind(i64::from(limit.min(MAX_RESCUE)))
            .fetch_all(&self.reader)
            .await
            .db("list expired leases")?;
        rows.iter().map(rows::execution_from_row).collect()
    }

    async fn rescue(&self, decisions: &[RescueDecision]) -> Result<Vec<bool>> {
        if decisions.len() > MAX_BATCH {
            return Err(Error::invalid_argument("decisions", format!("at most {MAX_BATCH} per call")));
        }
        let mut applied = Vec::with_capacity(decisions.len());
        let mut tx = self.writer.begin().await.db("begin")?;
        for d in decisions {
            let c = rows::RescueColumns::of(d)?;
            let done = sqlx::query(RESCUE_EXECUTION)
                .bind(c.status)
                .bind(opt_micros(c.run_after))
                .bind(opt_micros(c.finished_at))
                .bind(c.error.to_string())
                .bind(d.id.0)
                .bind(i64::from(d.attempts))
                .bind(micros(d.lease_expires_at))
                .execute(&mut *tx)
                .await
                .db("rescue expired leases")?;
            applied.push(done.rows_affected() == 1);
        }
        tx.commit().await.db("commit rescue")?;
        Ok(applied)
    }

    async fn cancel(&self, user: UserId, id: ExecutionId, now: DateTime<Utc>) -> Result<Execution> {
        let row = sqlx::query(
            "UPDATE executions SET status = 'CANCELLED', finished_at = $1, lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $2 AND user_id = $3 AND status = 'QUEUED' RETURNING *",
        )
        .bind(micros(now))
        .bind(id.0)
        .bind(user.0)
        .fetch_optional(&self.writer)
        .await
        .db("cancel execution")?;
        if let Some(r) = row {
            return rows::execution_from_row(&r);
        }
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM executions WHERE id = $1 AND user_id = $2")
                .bind(id.0)
                .bind(user.0)
                .fetch_optional(&self.writer)
                .await
                .db("cancel execution")?;
        match status {
            None => Err(Error::not_found("execution", id)),
            Some(s) => Err(Error::conflict(format!(
                "execution {id} is {s}; only a QUEUED execution can be cancelled"
            ))),
        }
    }

    async fn get_execution(&self, user: UserId, id: ExecutionId) -> Result<Execution> {
        let row = sqlx::query("SELECT * FROM executions WHERE id = $1 AND user_id = $2")
            .bind(id.0)
            .bind(user.0)
            .fetch_optional(&self.reader)
            .await
            .db("get execution")?;
        row.map(|r| rows::execution_from_row(&r))
            .transpose()?
            .ok_or_else(|| Error::not_found("execution", id))
    }

    async fn list_executions(
        &self,
        user: UserId,
        filter: &ExecutionFilter,
        page: PageRequest,
    ) -> Result<Page<Execution>> {
        let mut sql = String::from("SELECT * FROM executions WHERE user_id = ?");
        if filter.status.is_some() {
            sql.push_str(" AND status = ?");
        }
        if filter.prompt_id.is_some() {
            sql.push_str(" AND prompt_id = ?");
        }
        if filter.since.is_some() {
            sql.push_str(" AND created_at >= ?");
        }
        if filter.until.is_some() {
            sql.push_str(" AND created_at < ?");
        }
        if page.after.is_some() {
            sql.push_str(" AND (created_at < ? OR (created_at = ? AND id < ?))");
        }
        sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT ?");
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(user.0);
        if let Some(s) = filter.status {
            q = q.bind(s.as_str());
        }
        if let Some(p) = filter.prompt_id {
            q = q.bind(p.0);
        }
        if let Some(t) = filter.since {
            q = q.bind(micros(t));
        }
        if let Some(t) = filter.until {
            q = q.bind(micros(t));
        }
        if let Some(c) = page.after {
            q = q.bind(micros(c.created_at)).bind(micros(c.created_at)).bind(c.id);
        }
        let rows = q.bind(i64::from(page.limit) + 1).fetch_all(&self.reader).await.db("list executions")?;
        let items = rows.iter().map(rows::execution_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |e| Cursor { created_at: e.created_at, id: e.id.0 }))
    }

    async fn queue_depth(&self, user: Option<UserId>) -> Result<u64> {
        let n: i64 = match user {
            Some(u) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM executions WHERE status = 'QUEUED' AND user_id = $1")
                    .bind(u.0)
                    .fetch_one(&self.reader)
                    .await
            }
            None => {
                sqlx::query_scalar("SELECT COUNT(*) FROM executions WHERE status = 'QUEUED'")
                    .fetch_one(&self.reader)
                    .await
            }
        }
        .db("queue depth")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn metrics(&self, user: UserId, query: &MetricsQuery) -> Result<MetricsReport> {
        let version = crate::metrics_version(query);
        let mut sql = String::from(
            "SELECT prompt_id, status, latency_ms, provider_latency_ms, tokens_input, tokens_output, \
             tokens_cached, tokens_total, cost_usd, validation_passed FROM executions WHERE user_id = ?",
        );
        if query.since.is_some() {
            sql.push_str(" AND created_at >= ?");
        }
        if query.until.is_some() {
            sql.push_str(" AND created_at < ?");
        }
        if query.prompt_id.is_some() {
            sql.push_str(" AND prompt_id = ?");
        }
        if version.is_some() {
            sql.push_str(" AND prompt_version = ?");
        }
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(user.0);
        if let Some(t) = query.since {
            q = q.bind(micros(t));
        }
        if let Some(t) = query.until {
            q = q.bind(micros(t));
        }
        if let Some(p) = query.prompt_id {
            q = q.bind(p.0);
        }
        if let Some(v) = version {
            q = q.bind(i64::from(v));
        }
        let mut aggregator = MetricsAggregator::new();
        let mut stream = q.fetch(&self.reader);
        while let Some(row) = stream.try_next().await.db("metrics")? {
            aggregator.add(&rows::metrics_sample_from_row(&row)?);
        }
        drop(stream);
        let depth = self.queue_depth(Some(user)).await?;
        Ok(aggregator.finish(query, depth))
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

async fn insert_version_row(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    v: &PromptVersion,
    json: &rows::VersionJson,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO prompt_versions (prompt_id, version, template, system_template, variables, validations, \
         model, created_at, author) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(v.prompt_id.0)
    .bind(i64::from(v.version))
    .bind(&v.template)
    .bind(&v.system_template)
    .bind(json.variables.to_string())
    .bind(json.validations.to_string())
    .bind(json.model.to_string())
    .bind(micros(v.created_at))
    .bind(v.author.0)
    .execute(&mut **tx)
    .await
    .db("insert prompt version")?;
    Ok(())
}
