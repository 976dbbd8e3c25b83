//! The metrics rollups on both backends: the grouped upsert every final-state write runs in
//! its transaction, the report and the series read from them, and the one-time backfill of
//! executions that were final before the rollups existed. What is rolled up, and how rows
//! merge, is core's (`formaops_core::metrics::rollup`); this file only stores and reads it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use formaops_core::Result;
use formaops_core::execution::{AttemptResult, Execution, ExecutionStatus};
use formaops_core::ids::{PromptId, UserId};
use formaops_core::metrics::rollup::{
    FinalExecution, LatencyHistogram, LiveCount, LiveCounts, RollupDelta, RollupGroups, RollupKey,
    RollupReport, RollupRow, SeriesBuilder, cover, epoch, far_future, group_deltas, report_window,
};
use formaops_core::metrics::{MetricsQuery, MetricsReport, MetricsSeries, MetricsSeriesQuery, TokenTotals};
use futures::TryStreamExt;
use uuid::Uuid;

use super::executions::ExecutionRow;
use super::{SumMoney, Ts, corrupt, u32_of, u64_of};
use crate::error::DbResultExt;

/// Rollup rows per upsert statement (18 values each: far below both backends' bind limits).
const ROLLUP_CHUNK: usize = 1_000;
/// Histogram rows per upsert statement (9 values each).
const LATENCY_CHUNK: usize = 3_000;
/// Executions per backfill step.
const BACKFILL_CHUNK: usize = 5_000;
/// Rollup keys the backfill groups in memory before writing them, so each row is written once
/// per flush rather than once per step (rewriting the same rows once per step, in one
/// transaction, left the rollup tables ~30x their size on a 1M-execution load, and every
/// sequential scan of them slow). Executions are read in id order, which is creation order for
/// UUIDv7 ids, so a flush covers a stretch of time and most keys are written once. A key holds
/// two latency histograms, one entry per distinct 1 % latency bucket seen (typically tens to a
/// few hundred), which bounds the memory this takes.
const BACKFILL_FLUSH_KEYS: usize = 2_000;

/// How a missing label is stored (the key columns are NOT NULL; `''` is never a label name).
fn label_col(label: &Option<String>) -> &str {
    label.as_deref().unwrap_or("")
}

fn label_of(col: String) -> Option<String> {
    (!col.is_empty()).then_some(col)
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// One stored rollup row.
#[derive(sqlx::FromRow)]
pub(crate) struct SumRow {
    bucket_start: Ts,
    prompt_id: Uuid,
    prompt_version: i32,
    label: String,
    completed: i64,
    failed: i64,
    cancelled: i64,
    tokens_input: i64,
    tokens_output: i64,
    tokens_cached: i64,
    tokens_total: i64,
    cost_usd: SumMoney,
    priced: i64,
    unpriced: i64,
    validated: i64,
    validation_passed: i64,
}

impl SumRow {
    fn delta(&self) -> Result<RollupDelta> {
        Ok(RollupDelta {
            completed: u64_of("completed", self.completed)?,
            failed: u64_of("failed", self.failed)?,
            cancelled: u64_of("cancelled", self.cancelled)?,
            tokens: TokenTotals {
                input: u64_of("tokens_input", self.tokens_input)?,
                output: u64_of("tokens_output", self.tokens_output)?,
                cached: u64_of("tokens_cached", self.tokens_cached)?,
                total: u64_of("tokens_total", self.tokens_total)?,
            },
            cost_usd: self.cost_usd.0,
            priced: u64_of("priced", self.priced)?,
            unpriced: u64_of("unpriced", self.unpriced)?,
            validated: u64_of("validated", self.validated)?,
            validation_passed: u64_of("validation_passed", self.validation_passed)?,
            latency: LatencyHistogram::new(),
            provider_latency: LatencyHistogram::new(),
        })
    }
}

/// Summed histogram buckets of one (prompt, version, label), for the report.
#[derive(sqlx::FromRow)]
pub(crate) struct LatencyRow {
    prompt_id: Uuid,
    prompt_version: i32,
    label: String,
    #[sqlx(flatten)]
    bucket: BucketCount,
}

/// Summed histogram buckets of one time bucket, for the series.
#[derive(sqlx::FromRow)]
pub(crate) struct SeriesLatencyRow {
    bucket_start: Ts,
    #[sqlx(flatten)]
    bucket: BucketCount,
}

/// One histogram bucket's count.
#[derive(sqlx::FromRow)]
pub(crate) struct BucketCount {
    kind: i32,
    idx: i32,
    n: i64,
}

impl BucketCount {
    fn delta(&self) -> Result<RollupDelta> {
        let mut d = RollupDelta::default();
        let h = if self.kind == 0 { &mut d.latency } else { &mut d.provider_latency };
        h.add_count(self.idx, u64_of("n", self.n)?);
        Ok(d)
    }
}

/// Live counts of one group.
#[derive(sqlx::FromRow)]
pub(crate) struct LiveRow {
    prompt_id: Uuid,
    prompt_version: i32,
    label: Option<String>,
    status: String,
    n: i64,
}

/// What a final-state write returns of each row it changed: enough to roll it up.
#[derive(sqlx::FromRow)]
pub(crate) struct AppliedRow {
    pub(crate) id: Uuid,
    prompt_id: Uuid,
    prompt_version: i32,
    label: Option<String>,
    created_at: Ts,
}

/// The executions among `results` that a finish applied (`applied`, by id) and made final.
pub(crate) fn collect_finals(
    results: &[AttemptResult],
    applied: &HashMap<Uuid, AppliedRow>,
    out: &mut Vec<FinalExecution>,
) -> Result<()> {
    for r in results {
        if let Some(a) = applied.get(&r.id.0) {
            let version = u32_of("prompt_version", a.prompt_version)?;
            out.extend(FinalExecution::of_result(
                r,
                PromptId(a.prompt_id),
                version,
                a.label.clone(),
                a.created_at.0,
            ));
        }
    }
    Ok(())
}

/// The final executions of a backfill step.
const BACKFILL_SELECT: &str = "SELECT * FROM executions WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED') \
    AND id > $1 ORDER BY id LIMIT $2";

for_each_backend! {
    /// Binds a rollup key's six columns (`user_id, granularity, bucket_start, prompt_id,
    /// prompt_version, label`, the leading columns of both rollup tables) into a row of a
    /// multi-row insert.
    fn bind_key(b: &mut sqlx::query_builder::Separated<'_, Db, &'static str>, k: &RollupKey) {
        b.push_bind(k.user_id.0)
            .push_bind(k.granularity.seconds())
            .push_bind(Ts(k.bucket_start))
            .push_bind(k.prompt_id.0)
            .push_bind(i64::from(k.prompt_version))
            .push_bind(label_col(&k.label).to_string());
    }

    /// Adds rows (already grouped by [`group_deltas`], in key order) to the rollups: one
    /// upsert per table (per chunk of a very large batch), on the caller's transaction.
    pub(crate) async fn upsert(conn: &mut <Db as sqlx::Database>::Connection, rows: &[RollupRow]) -> Result<()> {
        for chunk in rows.chunks(ROLLUP_CHUNK) {
            let mut q = sqlx::QueryBuilder::<Db>::new(
                "INSERT INTO metric_rollups (user_id, granularity, bucket_start, prompt_id, prompt_version, label, \
                 completed, failed, cancelled, tokens_input, tokens_output, tokens_cached, tokens_total, cost_usd, \
                 priced, unpriced, validated, validation_passed) ",
            );
            q.push_values(chunk, |mut b, r| {
                let d = &r.delta;
                bind_key(&mut b, &r.key);
                b.push_bind(i64_of(d.completed))
                    .push_bind(i64_of(d.failed))
                    .push_bind(i64_of(d.cancelled))
                    .push_bind(i64_of(d.tokens.input))
                    .push_bind(i64_of(d.tokens.output))
                    .push_bind(i64_of(d.tokens.cached))
                    .push_bind(i64_of(d.tokens.total))
                    .push_bind(SumMoney(d.cost_usd))
                    .push_bind(i64_of(d.priced))
                    .push_bind(i64_of(d.unpriced))
                    .push_bind(i64_of(d.validated))
                    .push_bind(i64_of(d.validation_passed));
            });
            q.push(
                " ON CONFLICT (user_id, granularity, bucket_start, prompt_id, prompt_version, label) DO UPDATE SET \
                 completed = metric_rollups.completed + excluded.completed, \
                 failed = metric_rollups.failed + excluded.failed, \
                 cancelled = metric_rollups.cancelled + excluded.cancelled, \
                 tokens_input = metric_rollups.tokens_input + excluded.tokens_input, \
                 tokens_output = metric_rollups.tokens_output + excluded.tokens_output, \
                 tokens_cached = metric_rollups.tokens_cached + excluded.tokens_cached, \
                 tokens_total = metric_rollups.tokens_total + excluded.tokens_total, \
                 cost_usd = metric_rollups.cost_usd + excluded.cost_usd, \
                 priced = metric_rollups.priced + excluded.priced, \
                 unpriced = metric_rollups.unpriced + excluded.unpriced, \
                 validated = metric_rollups.validated + excluded.validated, \
                 validation_passed = metric_rollups.validation_passed + excluded.validation_passed",
            );
            q.build().execute(&mut *conn).await.db("roll up metrics")?;
        }
        let buckets: Vec<(&RollupRow, i32, i32, u64)> = rows
            .iter()
            .flat_map(|r| {
                let total = r.delta.latency.buckets().map(move |(i, n)| (r, 0, i, n));
                total.chain(r.delta.provider_latency.buckets().map(move |(i, n)| (r, 1, i, n)))
            })
            .collect();
        for chunk in buckets.chunks(LATENCY_CHUNK) {
            let mut q = sqlx::QueryBuilder::<Db>::new(
                "INSERT INTO metric_latency (user_id, granularity, bucket_start, prompt_id, prompt_version, label, \
                 kind, idx, n) ",
            );
            q.push_values(chunk, |mut b, (r, kind, idx, n)| {
                bind_key(&mut b, &r.key);
                b.push_bind(*kind)
                    .push_bind(*idx)
                    .push_bind(i64_of(*n));
            });
            q.push(
                " ON CONFLICT (user_id, granularity, bucket_start, prompt_id, prompt_version, label, kind, idx) \
                 DO UPDATE SET n = metric_latency.n + excluded.n",
            );
            q.build().execute(&mut *conn).await.db("roll up latency")?;
        }
        Ok(())
    }

    /// Rolls up executions that just became final (no-op for none).
    pub(crate) async fn roll_up(conn: &mut <Db as sqlx::Database>::Connection, finals: &[FinalExecution]) -> Result<()> {
        if finals.is_empty() {
            return Ok(());
        }
        upsert(conn, &group_deltas(finals)).await
    }

    /// The metrics report from the rollups of the report's window and the live counts.
    pub(crate) async fn report(
        pool: &sqlx::Pool<Db>,
        user: UserId,
        query: &MetricsQuery,
        queue_depth: u64,
    ) -> Result<MetricsReport> {
        let (since, until) = report_window(query);
        let version = query.prompt_id.and(query.prompt_version);
        let scope = |q: &mut sqlx::QueryBuilder<Db>| {
            if let Some(p) = query.prompt_id {
                q.push(" AND prompt_id = ").push_bind(p.0);
            }
            if let Some(v) = version {
                q.push(" AND prompt_version = ").push_bind(i64::from(v));
            }
        };
        let ranges = |q: &mut sqlx::QueryBuilder<Db>| {
            q.push(" AND (");
            for (i, r) in cover(since, until).iter().enumerate() {
                if i > 0 {
                    q.push(" OR ");
                }
                q.push("(granularity = ").push_bind(r.granularity.seconds());
                q.push(" AND bucket_start >= ").push_bind(Ts(r.start));
                q.push(" AND bucket_start < ").push_bind(Ts(r.end)).push(")");
            }
            q.push(")");
        };
        let mut report = RollupReport::new();
        let mut q = sqlx::QueryBuilder::<Db>::new("SELECT * FROM metric_rollups WHERE user_id = ");
        q.push_bind(user.0);
        scope(&mut q);
        ranges(&mut q);
        let mut rows = q.build_query_as::<SumRow>().fetch(pool);
        while let Some(r) = rows.try_next().await.db("metrics")? {
            report.add(PromptId(r.prompt_id), u32_of("prompt_version", r.prompt_version)?, label_of(r.label.clone()), &r.delta()?);
        }
        drop(rows);
        let mut q = sqlx::QueryBuilder::<Db>::new(
            "SELECT prompt_id, prompt_version, label, CAST(kind AS INTEGER) AS kind, \
             idx, CAST(SUM(n) AS BIGINT) AS n FROM metric_latency WHERE user_id = ",
        );
        q.push_bind(user.0);
        scope(&mut q);
        ranges(&mut q);
        q.push(" GROUP BY prompt_id, prompt_version, label, kind, idx");
        let mut rows = q.build_query_as::<LatencyRow>().fetch(pool);
        while let Some(r) = rows.try_next().await.db("metrics latency")? {
            report.add(PromptId(r.prompt_id), u32_of("prompt_version", r.prompt_version)?, label_of(r.label.clone()), &r.bucket.delta()?);
        }
        drop(rows);
        let mut q = sqlx::QueryBuilder::<Db>::new(
            "SELECT prompt_id, prompt_version, label, status, COUNT(*) AS n FROM executions WHERE user_id = ",
        );
        q.push_bind(user.0);
        q.push(" AND status IN ('QUEUED', 'RUNNING') AND created_at >= ").push_bind(Ts(since));
        q.push(" AND created_at < ").push_bind(Ts(until));
        scope(&mut q);
        q.push(" GROUP BY prompt_id, prompt_version, label, status");
        let live: Vec<LiveRow> = q.build_query_as().fetch_all(pool).await.db("metrics live counts")?;
        for r in live {
            let n = u64_of("count", r.n)?;
            let counts = match ExecutionStatus::parse(&r.status) {
                Some(ExecutionStatus::Queued) => LiveCounts { queued: n, running: 0 },
                Some(ExecutionStatus::Running) => LiveCounts { queued: 0, running: n },
                _ => return Err(corrupt("status", format!("is not live: {}", r.status))),
            };
            report.add_live(&LiveCount {
                prompt_id: PromptId(r.prompt_id),
                prompt_version: u32_of("prompt_version", r.prompt_version)?,
                label: r.label,
                counts,
            });
        }
        Ok(report.finish(query, queue_depth))
    }

    /// The series from the rollups of `query.bucket` over the resolved window.
    pub(crate) async fn series(pool: &sqlx::Pool<Db>, user: UserId, query: &MetricsSeriesQuery) -> Result<MetricsSeries> {
        let (since, until) = (query.since.unwrap_or_else(epoch), query.until.unwrap_or_else(far_future));
        let scope = |q: &mut sqlx::QueryBuilder<Db>| {
            q.push(" AND granularity = ").push_bind(query.bucket.seconds());
            q.push(" AND bucket_start >= ").push_bind(Ts(since));
            q.push(" AND bucket_start < ").push_bind(Ts(until));
            if let Some(p) = query.prompt_id {
                q.push(" AND prompt_id = ").push_bind(p.0);
            }
            if let Some(v) = query.prompt_version {
                q.push(" AND prompt_version = ").push_bind(i64::from(v));
            }
            if let Some(l) = &query.label {
                q.push(" AND label = ").push_bind(l.clone());
            }
        };
        let mut series = SeriesBuilder::new();
        let mut q = sqlx::QueryBuilder::<Db>::new("SELECT * FROM metric_rollups WHERE user_id = ");
        q.push_bind(user.0);
        scope(&mut q);
        let mut rows = q.build_query_as::<SumRow>().fetch(pool);
        while let Some(r) = rows.try_next().await.db("metrics series")? {
            series.add(r.bucket_start.0, &r.delta()?);
        }
        drop(rows);
        let mut q = sqlx::QueryBuilder::<Db>::new(
            "SELECT bucket_start, CAST(kind AS INTEGER) AS kind, idx, CAST(SUM(n) AS BIGINT) AS n \
             FROM metric_latency WHERE user_id = ",
        );
        q.push_bind(user.0);
        scope(&mut q);
        q.push(" GROUP BY bucket_start, kind, idx");
        let mut rows = q.build_query_as::<SeriesLatencyRow>().fetch(pool);
        while let Some(r) = rows.try_next().await.db("metrics series latency")? {
            series.add(r.bucket_start.0, &r.bucket.delta()?);
        }
        drop(rows);
        Ok(series.finish(query.bucket, since, until))
    }

    /// Rolls up, once, the executions that were final before the rollups existed, in one
    /// transaction with the marker row (a second process waits on the marker and skips).
    /// Writes of final states by nodes running older code during the upgrade are not counted.
    /// Rows are grouped in memory over many steps ([`RollupGroups`]) so each is written about
    /// once.
    pub(crate) async fn backfill(pool: &sqlx::Pool<Db>, now: DateTime<Utc>) -> Result<()> {
        let mut tx = pool.begin().await.db("begin rollup backfill")?;
        let marked = sqlx::query("INSERT INTO metric_rollups_backfill (id, done_at) VALUES (1, $1) ON CONFLICT (id) DO NOTHING")
            .bind(Ts(now))
            .execute(&mut *tx)
            .await
            .db("mark rollup backfill")?;
        if marked.rows_affected() == 0 {
            return Ok(());
        }
        let mut after = Uuid::nil();
        let mut groups = RollupGroups::new();
        loop {
            let rows: Vec<ExecutionRow> = sqlx::query_as(BACKFILL_SELECT)
                .bind(after)
                .bind(BACKFILL_CHUNK as i64)
                .fetch_all(&mut *tx)
                .await
                .db("read executions to roll up")?;
            let Some(last) = rows.last().map(|r| r.id()) else { break };
            after = last;
            let execs = rows.into_iter().map(Execution::try_from).collect::<Result<Vec<_>>>()?;
            let finals: Vec<FinalExecution> = execs.iter().map(FinalExecution::of).collect();
            groups.add(&finals);
            if groups.len() >= BACKFILL_FLUSH_KEYS {
                upsert(&mut tx, &groups.take()).await?;
            }
        }
        if !groups.is_empty() {
            upsert(&mut tx, &groups.take()).await?;
        }
        tx.commit().await.db("commit rollup backfill")?;
        Ok(())
    }
}
