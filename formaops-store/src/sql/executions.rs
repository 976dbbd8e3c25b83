//! The execution row and the queue statements both backends share.

use chrono::{DateTime, Utc};
use formaops_core::execution::{
    Execution, ExecutionError, ExecutionMetrics, ExecutionStatus, Priority, TokenUsage,
};
use formaops_core::ids::{ExecutionId, PromptId, UserId};
use formaops_core::metrics::rollup::FinalExecution;
use formaops_core::page::{Cursor, Page, PageRequest};
use formaops_core::store::{ClaimParams, ExecutionFilter, RescueDecision};
use formaops_core::{Error, Result};
use serde_json::Value;
use uuid::Uuid;

use super::{Doc, Money, Ts, corrupt, from_doc, ts, u32_of, u64_of};
use crate::error::DbResultExt;
use crate::rows::RescueColumns;
use crate::{MAX_BATCH, MAX_CLAIM, MAX_RESCUE};

pub(crate) const GET_EXECUTION: &str =
    "SELECT * FROM executions WHERE id = $1 AND user_id IS NOT DISTINCT FROM $2";
pub(crate) const BY_IDEMPOTENCY_KEY: &str =
    "SELECT * FROM executions WHERE user_id = $1 AND idempotency_key = $2";
pub(crate) const CANCEL: &str = "UPDATE executions SET status = 'CANCELLED', finished_at = $1, lease_owner = NULL, \
    lease_expires_at = NULL WHERE id = $2 AND user_id IS NOT DISTINCT FROM $3 AND status = 'QUEUED' RETURNING *";
pub(crate) const STATUS_OF: &str =
    "SELECT status FROM executions WHERE id = $1 AND user_id IS NOT DISTINCT FROM $2";
pub(crate) const QUEUE_DEPTH_OF: &str =
    "SELECT COUNT(*) FROM executions WHERE status = 'QUEUED' AND user_id = $1";
const QUEUE_DEPTH: &str = "SELECT COUNT(*) FROM executions WHERE status = 'QUEUED'";
/// Claims: `$1` worker, `$2` lease_until, `$3` now, `$4` provider, `$5` limit; the backend adds
/// how candidate rows are locked (`{lock}`: `FOR UPDATE SKIP LOCKED` on Postgres, nothing on
/// SQLite, whose single writer already serialises claims).
pub(crate) const CLAIM_PG: &str = "UPDATE executions SET status = 'RUNNING', lease_owner = $1, \
    lease_expires_at = $2, attempts = attempts + 1, started_at = COALESCE(started_at, $3) \
    WHERE id IN (SELECT id FROM executions WHERE status = 'QUEUED' AND provider = $4 \
    AND run_after <= $3 ORDER BY queue_key, id LIMIT $5 FOR UPDATE SKIP LOCKED) RETURNING *";
pub(crate) const CLAIM_SQLITE: &str = "UPDATE executions SET status = 'RUNNING', lease_owner = $1, \
    lease_expires_at = $2, attempts = attempts + 1, started_at = COALESCE(started_at, $3) \
    WHERE id IN (SELECT id FROM executions WHERE status = 'QUEUED' AND provider = $4 \
    AND run_after <= $3 ORDER BY queue_key, id LIMIT $5) RETURNING *";
/// RUNNING executions whose lease expired before `$1`, earliest expiry first, at most `$2`.
pub(crate) const EXPIRED_LEASES: &str = "SELECT * FROM executions WHERE status = 'RUNNING' \
    AND lease_expires_at < $1 ORDER BY lease_expires_at, id LIMIT $2";
/// Writes one rescue decision, only while the execution is still RUNNING on the listed attempt
/// with the listed lease expiry.
pub(crate) const RESCUE: &str = "UPDATE executions SET status = $1, run_after = COALESCE($2, run_after), \
    finished_at = $3, error = $4, lease_owner = NULL, lease_expires_at = NULL \
    WHERE id = $5 AND status = 'RUNNING' AND attempts = $6 AND lease_expires_at = $7 RETURNING *";
/// One stored execution.
#[derive(sqlx::FromRow)]
pub(crate) struct ExecutionRow {
    id: Uuid,
    user_id: Uuid,
    prompt_id: Uuid,
    prompt_version: i32,
    label: Option<String>,
    inputs: Doc,
    priority: String,
    status: String,
    validate_output: bool,
    finish_reason: Option<String>,
    provider: String,
    model: String,
    output: Option<String>,
    validated_output: Option<Doc>,
    validation: Option<Doc>,
    error: Option<Doc>,
    latency_ms: Option<i64>,
    provider_latency_ms: Option<i64>,
    queue_ms: Option<i64>,
    tokens_input: Option<i64>,
    tokens_output: Option<i64>,
    tokens_cached: Option<i64>,
    tokens_reasoning: Option<i64>,
    tokens_total: Option<i64>,
    tokens_estimated: Option<bool>,
    cost_usd: Option<Money>,
    attempts: i32,
    max_attempts: i32,
    retry_of: Option<Uuid>,
    idempotency_key: Option<String>,
    created_at: Ts,
    run_after: Ts,
    deadline_at: Ts,
    started_at: Option<Ts>,
    finished_at: Option<Ts>,
    queue_key: i64,
    lease_owner: Option<String>,
    lease_expires_at: Option<Ts>,
}

impl ExecutionRow {
    /// The execution's id.
    pub(crate) fn id(&self) -> Uuid {
        self.id
    }
}

fn opt_u64(col: &str, v: Option<i64>) -> Result<u64> {
    v.map(|v| u64_of(col, v)).transpose().map(Option::unwrap_or_default)
}

fn status_of(s: &str) -> Result<ExecutionStatus> {
    ExecutionStatus::parse(s).ok_or_else(|| corrupt("status", format!("is unknown: {s}")))
}

impl TryFrom<ExecutionRow> for Execution {
    type Error = Error;

    fn try_from(r: ExecutionRow) -> Result<Self> {
        let inputs = match r.inputs.0 {
            Value::Object(map) => map,
            _ => return Err(corrupt("inputs", "is not a JSON object")),
        };
        let metrics = match r.latency_ms {
            None => None,
            Some(latency) => Some(ExecutionMetrics {
                latency_ms: u64_of("latency_ms", latency)?,
                provider_latency_ms: opt_u64("provider_latency_ms", r.provider_latency_ms)?,
                queue_ms: opt_u64("queue_ms", r.queue_ms)?,
                token_usage: TokenUsage {
                    input: opt_u64("tokens_input", r.tokens_input)?,
                    output: opt_u64("tokens_output", r.tokens_output)?,
                    cached: opt_u64("tokens_cached", r.tokens_cached)?,
                    reasoning: opt_u64("tokens_reasoning", r.tokens_reasoning)?,
                    total: opt_u64("tokens_total", r.tokens_total)?,
                    estimated: r.tokens_estimated.unwrap_or(false),
                },
                cost_usd: r.cost_usd.map(|m| m.0),
            }),
        };
        let error: Option<ExecutionError> = r.error.map(|v| from_doc("error", v)).transpose()?;
        Ok(Execution {
            id: ExecutionId(r.id),
            user_id: UserId(r.user_id),
            prompt_id: PromptId(r.prompt_id),
            prompt_version: u32_of("prompt_version", r.prompt_version)?,
            label: r.label,
            inputs,
            priority: Priority::parse(&r.priority)
                .ok_or_else(|| corrupt("priority", format!("is unknown: {}", r.priority)))?,
            status: status_of(&r.status)?,
            validate_output: r.validate_output,
            finish_reason: r.finish_reason,
            provider: r.provider,
            model: r.model,
            output: r.output,
            validated_output: r.validated_output.map(|d| d.0),
            validation: r.validation.map(|v| from_doc("validation", v)).transpose()?,
            error,
            metrics,
            attempts: u32_of("attempts", r.attempts)?,
            max_attempts: u32_of("max_attempts", r.max_attempts)?,
            retry_of: r.retry_of.map(ExecutionId),
            idempotency_key: r.idempotency_key,
            created_at: r.created_at.0,
            run_after: r.run_after.0,
            deadline_at: r.deadline_at.0,
            started_at: r.started_at.map(|t| t.0),
            finished_at: r.finished_at.map(|t| t.0),
            queue_key: r.queue_key,
            lease_owner: r.lease_owner,
            lease_expires_at: r.lease_expires_at.map(|t| t.0),
        })
    }
}

fn executions(rows: Vec<ExecutionRow>) -> Result<Vec<Execution>> {
    rows.into_iter().map(Execution::try_from).collect()
}

/// Claimed executions in claim order (`RETURNING` order is unspecified).
fn sort_claimed(claimed: &mut [Execution]) {
    claimed.sort_by(|a, b| a.queue_key.cmp(&b.queue_key).then(a.id.cmp(&b.id)));
}

/// Appends the listing's WHERE clauses after `user_id = $1`, numbering placeholders from `$2`;
/// `keyset` is the backend's "(created_at, id) before the cursor" with `#1` and `#2` for the
/// cursor's two values.
pub(crate) fn list_sql(filter: &ExecutionFilter, page: &PageRequest, keyset: &str) -> String {
    let mut sql = String::from("SELECT * FROM executions WHERE user_id = $1");
    let mut n = 1;
    let mut param = || {
        n += 1;
        format!("${n}")
    };
    if filter.status.is_some() {
        sql.push_str(&format!(" AND status = {}", param()));
    }
    if filter.prompt_id.is_some() {
        sql.push_str(&format!(" AND prompt_id = {}", param()));
    }
    if filter.since.is_some() {
        sql.push_str(&format!(" AND created_at >= {}", param()));
    }
    if filter.until.is_some() {
        sql.push_str(&format!(" AND created_at < {}", param()));
    }
    if page.after.is_some() {
        let (a, b) = (param(), param());
        sql.push_str(" AND ");
        sql.push_str(&keyset.replace("#1", &a).replace("#2", &b));
    }
    sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT {}", param()));
    sql
}

for_each_backend! {
    pub(crate) async fn get_execution(
        ex: impl sqlx::Executor<'_, Database = Db>,
        user: UserId,
        id: ExecutionId,
    ) -> Result<Execution> {
        let row: Option<ExecutionRow> =
            sqlx::query_as(GET_EXECUTION).bind(id.0).bind(user.0).fetch_optional(ex).await.db("get execution")?;
        row.map(Execution::try_from).transpose()?.ok_or_else(|| Error::not_found("execution", id))
    }

    /// The user's execution holding `key` (after an idempotent insert was skipped).
    pub(crate) async fn by_idempotency_key(
        ex: impl sqlx::Executor<'_, Database = Db>,
        user: UserId,
        key: &str,
    ) -> Result<Execution> {
        let row: Option<ExecutionRow> = sqlx::query_as(BY_IDEMPOTENCY_KEY)
            .bind(user.0)
            .bind(key)
            .fetch_optional(ex)
            .await
            .db("enqueue")?;
        let row = row.ok_or_else(|| Error::internal("an idempotent insert was skipped but no row holds the key"))?;
        Execution::try_from(row)
    }

    /// Cancels and rolls the cancellation up, in one transaction.
    pub(crate) async fn cancel(pool: &sqlx::Pool<Db>, user: UserId, id: ExecutionId, now: DateTime<Utc>) -> Result<Execution> {
        let mut tx = pool.begin().await.db("begin")?;
        let row: Option<ExecutionRow> = sqlx::query_as(CANCEL)
            .bind(Ts(now))
            .bind(id.0)
            .bind(user.0)
            .fetch_optional(&mut *tx)
            .await
            .db("cancel execution")?;
        if let Some(r) = row {
            let e = Execution::try_from(r)?;
            rollups_db::roll_up(&mut tx, &[FinalExecution::of(&e)]).await?;
            tx.commit().await.db("commit cancel")?;
            return Ok(e);
        }
        drop(tx);
        let status: Option<String> =
            sqlx::query_scalar(STATUS_OF).bind(id.0).bind(user.0).fetch_optional(pool).await.db("cancel execution")?;
        match status {
            None => Err(Error::not_found("execution", id)),
            Some(s) => Err(Error::conflict(format!("execution {id} is {s}; only a QUEUED execution can be cancelled"))),
        }
    }

    /// Claims with `sql` ([`CLAIM_PG`] or [`CLAIM_SQLITE`]).
    pub(crate) async fn claim(
        ex: impl sqlx::Executor<'_, Database = Db>,
        sql: &'static str,
        params: ClaimParams<'_>,
    ) -> Result<Vec<Execution>> {
        let ClaimParams { worker, provider, limit, now, lease_until } = params;
        let limit = limit.min(MAX_CLAIM);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<ExecutionRow> = sqlx::query_as(sql)
            .bind(worker)
            .bind(Ts(lease_until))
            .bind(Ts(now))
            .bind(provider)
            .bind(i64::from(limit))
            .fetch_all(ex)
            .await
            .db("claim")?;
        let mut claimed = executions(rows)?;
        sort_claimed(&mut claimed);
        Ok(claimed)
    }

    pub(crate) async fn expired_leases(
        ex: impl sqlx::Executor<'_, Database = Db>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Execution>> {
        let rows: Vec<ExecutionRow> = sqlx::query_as(EXPIRED_LEASES)
            .bind(Ts(now))
            .bind(i64::from(limit.min(MAX_RESCUE)))
            .fetch_all(ex)
            .await
            .db("list expired leases")?;
        executions(rows)
    }

    pub(crate) async fn rescue(pool: &sqlx::Pool<Db>, decisions: &[RescueDecision]) -> Result<Vec<bool>> {
        if decisions.is_empty() {
            return Ok(Vec::new());
        }
        if decisions.len() > MAX_BATCH {
            return Err(Error::invalid_argument("decisions", format!("at most {MAX_BATCH} per call")));
        }
        let mut applied = Vec::with_capacity(decisions.len());
        let mut finals = Vec::new();
        let mut tx = pool.begin().await.db("begin")?;
        for d in decisions {
            let c = RescueColumns::of(d)?;
            let done: Option<ExecutionRow> = sqlx::query_as(RESCUE)
                .bind(c.status)
                .bind(ts(c.run_after))
                .bind(ts(c.finished_at))
                .bind(Doc(c.error))
                .bind(d.id.0)
                .bind(i64::from(d.attempts))
                .bind(Ts(d.lease_expires_at))
                .fetch_optional(&mut *tx)
                .await
                .db("rescue expired leases")?;
            applied.push(done.is_some());
            if let Some(e) = done.map(Execution::try_from).transpose()?.filter(|e| e.status.is_final()) {
                finals.push(FinalExecution::of(&e));
            }
        }
        rollups_db::roll_up(&mut tx, &finals).await?;
        tx.commit().await.db("commit rescue")?;
        Ok(applied)
    }

    /// Lists with [`list_sql`] (`keyset` is the backend's).
    pub(crate) async fn list_executions(
        ex: impl sqlx::Executor<'_, Database = Db>,
        keyset: &str,
        user: UserId,
        filter: &ExecutionFilter,
        page: PageRequest,
    ) -> Result<Page<Execution>> {
        let sql = list_sql(filter, &page, keyset);
        let mut q = sqlx::query_as::<_, ExecutionRow>(sqlx::AssertSqlSafe(sql)).bind(user.0);
        if let Some(s) = filter.status {
            q = q.bind(s.as_str());
        }
        if let Some(p) = filter.prompt_id {
            q = q.bind(p.0);
        }
        if let Some(t) = filter.since {
            q = q.bind(Ts(t));
        }
        if let Some(t) = filter.until {
            q = q.bind(Ts(t));
        }
        if let Some(c) = page.after {
            q = q.bind(Ts(c.created_at)).bind(c.id);
        }
        let rows = q.bind(i64::from(page.limit) + 1).fetch_all(ex).await.db("list executions")?;
        let items = executions(rows)?;
        Ok(Page::from_overfetch(items, page.limit, |e| Cursor { created_at: e.created_at, id: e.id.0 }))
    }

    /// QUEUED executions of one user, or of everyone.
    pub(crate) async fn queue_depth(ex: impl sqlx::Executor<'_, Database = Db>, user: Option<UserId>) -> Result<u64> {
        let n: i64 = match user {
            Some(u) => sqlx::query_scalar(QUEUE_DEPTH_OF).bind(u.0).fetch_one(ex).await,
            None => sqlx::query_scalar(QUEUE_DEPTH).fetch_one(ex).await,
        }
        .db("queue depth")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
