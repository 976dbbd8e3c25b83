//! Scale benchmark: listing and metrics with many executions in Postgres.
//!
//! Bulk-loads `FORMAOPS_BENCH_ROWS` executions (default 10,000,000) for `FORMAOPS_BENCH_USERS`
//! users (default 10, so 1,000,000 each) server-side with `INSERT ... SELECT generate_series`,
//! into a database `formaops_bench_<rows>` on the server named by `DATABASE_URL` (default the
//! local one). A loaded database is reused by later runs; `FORMAOPS_BENCH_RELOAD=1` reloads it.
//! Then measures, for one user, over `FORMAOPS_BENCH_QUERIES` (default 200) queries each:
//! the first page of 50 newest executions, a page of 50 deep in the history (keyset cursor at
//! 90 % depth), the metrics report and the metrics series (minute and hour buckets), both read
//! from the rollups. The bulk load bypasses the store, so after it the rollups are rebuilt with
//! the store's one-time backfill (timed).
//!
//! ```text
//! cargo bench -p formaops-store --bench scale
//! FORMAOPS_BENCH_ROWS=1000000 cargo bench -p formaops-store --bench scale
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark binary: failing loudly is right

mod support;

use std::str::FromStr;
use std::time::{Duration, Instant};

use formaops_core::ids::UserId;
use formaops_core::metrics::{Granularity, MetricsQuery, MetricsSeriesQuery};
use formaops_core::page::{Cursor, PageRequest};
use formaops_core::store::{ExecutionFilter, Store};
use formaops_store::PgStore;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, Row};
use support::env_u64;

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pct = |q: f64| {
        let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1].as_secs_f64() * 1000.0
    };
    println!(
        "{label:<28} n={:<4} p50={:>8.3} ms  p99={:>8.3} ms  max={:>8.3} ms",
        samples.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
}

#[tokio::main]
async fn main() {
    let rows = env_u64("FORMAOPS_BENCH_ROWS", 10_000_000);
    let users = env_u64("FORMAOPS_BENCH_USERS", 10).max(1);
    let queries = env_u64("FORMAOPS_BENCH_QUERIES", 200).max(1);
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin = PgConnectOptions::from_str(&url).expect("DATABASE_URL");
    let name = format!("formaops_bench_{rows}");
    let reload = std::env::var("FORMAOPS_BENCH_RELOAD").as_deref() == Ok("1");

    let mut conn = admin.connect().await.expect("connect to Postgres (set DATABASE_URL)");
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    if exists && reload {
        conn.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).await.unwrap();
    }
    let fresh = !exists || reload;
    if fresh {
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
    }
    conn.close().await.unwrap();

    let pool =
        PgPoolOptions::new().max_connections(4).connect_with(admin.clone().database(&name)).await.unwrap();
    let mut store = PgStore::from_pool(pool.clone()).await.unwrap();
    // User k is the UUID ...-00000000000k; rows go round-robin to users.
    let user = UserId(uuid::Uuid::from_u128(1));
    let loaded: i64 = sqlx::query_scalar("SELECT count(*) FROM executions").fetch_one(&pool).await.unwrap();
    if fresh || loaded == 0 {
        println!("loading {rows} executions for {users} users into {name} ...");
        let started = Instant::now();
        let chunk = 1_000_000u64;
        let mut from = 0u64;
        while from < rows {
            let to = (from + chunk).min(rows);
            // Narrow rows: ids and created_at increase with i (like UUIDv7), 98 % COMPLETED
            // with metrics and a cost, 1 % FAILED, 1 % QUEUED.
            sqlx::query(
                "INSERT INTO executions (id, user_id, prompt_id, prompt_version, inputs, priority, status, \
                 validate_output, provider, model, latency_ms, provider_latency_ms, queue_ms, tokens_input, \
                 tokens_output, tokens_cached, tokens_reasoning, tokens_total, tokens_estimated, cost_usd, \
                 attempts, max_attempts, created_at, run_after, deadline_at, started_at, finished_at, queue_key) \
                 SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, \
                 ('00000000-0000-0000-0000-' || lpad(to_hex(i % $3 + 1), 12, '0'))::uuid, \
                 ('00000000-0000-0000-0001-' || lpad(to_hex(i % 20), 12, '0'))::uuid, 1, '{}'::jsonb, 'NORMAL', \
                 CASE WHEN i % 100 = 0 THEN 'FAILED' WHEN i % 100 = 1 THEN 'QUEUED' ELSE 'COMPLETED' END, \
                 false, 'mock', 'gpt-4o-mini', \
                 CASE WHEN i % 100 = 1 THEN NULL ELSE 50 + (i * 7919) % 950 END, \
                 CASE WHEN i % 100 = 1 THEN NULL ELSE 40 + (i * 7919) % 900 END, \
                 CASE WHEN i % 100 = 1 THEN NULL ELSE 1 END, \
                 CASE WHEN i % 100 = 1 THEN NULL ELSE 100 END, CASE WHEN i % 100 = 1 THEN NULL ELSE 20 END, \
                 CASE WHEN i % 100 = 1 THEN NULL ELSE 0 END, CASE WHEN i % 100 = 1 THEN NULL ELSE 0 END, \
                 CASE WHEN i % 100 = 1 THEN NULL ELSE 120 END, CASE WHEN i % 100 = 1 THEN NULL ELSE false END, \
                 CASE WHEN i % 100 = 1 THEN NULL ELSE 0.000027 END, 1, 3, \
                 timestamptz '2025-01-01' + i * interval '1 millisecond', \
                 timestamptz '2025-01-01' + i * interval '1 millisecond', \
                 timestamptz '2025-01-01' + i * interval '1 millisecond' + interval '1 hour', \
                 CASE WHEN i % 100 = 1 THEN NULL ELSE timestamptz '2025-01-01' + i * interval '1 millisecond' END, \
                 CASE WHEN i % 100 = 1 THEN NULL ELSE timestamptz '2025-01-01' + i * interval '1 millisecond' END, i \
                 FROM generate_series($1::int8, $2::int8 - 1) AS i",
            )
            .bind(from as i64)
            .bind(to as i64)
            .bind(users as i64)
            .execute(&pool)
            .await
            .unwrap();
            from = to;
            println!("  {from} rows, {:.0} s", started.elapsed().as_secs_f64());
        }
        sqlx::query("VACUUM ANALYZE executions").execute(&pool).await.unwrap();
        println!("loaded {rows} rows in {:.1} s", started.elapsed().as_secs_f64());
        for sql in [
            "DELETE FROM metric_rollups",
            "DELETE FROM metric_latency",
            "DELETE FROM metric_rollups_backfill",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        let started = Instant::now();
        store = PgStore::from_pool(pool.clone()).await.unwrap();
        sqlx::query("VACUUM ANALYZE metric_rollups, metric_latency").execute(&pool).await.unwrap();
        println!(
            "rolled up {rows} executions (one-time backfill) in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    } else {
        println!("reusing {name} with {loaded} executions");
    }
    let size: String = sqlx::query_scalar("SELECT pg_size_pretty(pg_database_size(current_database()))")
        .fetch_one(&pool)
        .await
        .unwrap();
    let user_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM executions WHERE user_id = $1")
        .bind(user.0)
        .fetch_one(&pool)
        .await
        .unwrap();
    println!("database size {size}; the measured user has {user_rows} executions");

    // A keyset cursor 90 % deep into the user's history (found once, with OFFSET, outside timing).
    let deep = sqlx::query(
        "SELECT created_at, id FROM executions WHERE user_id = $1 ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1",
    )
    .bind(user.0)
    .bind(user_rows * 9 / 10)
    .fetch_one(&pool)
    .await
    .unwrap();
    let deep = Cursor { created_at: deep.get("created_at"), id: deep.get("id") };

    let filter = ExecutionFilter::default();
    // Warm-up.
    for _ in 0..10 {
        store.list_executions(user, &filter, PageRequest { limit: 50, after: None }).await.unwrap();
        store.list_executions(user, &filter, PageRequest { limit: 50, after: Some(deep) }).await.unwrap();
    }
    let mut first = Vec::new();
    let mut deep_samples = Vec::new();
    for _ in 0..queries {
        let t = Instant::now();
        let p = store.list_executions(user, &filter, PageRequest { limit: 50, after: None }).await.unwrap();
        first.push(t.elapsed());
        assert_eq!(p.items.len(), 50);
        let t = Instant::now();
        let p =
            store.list_executions(user, &filter, PageRequest { limit: 50, after: Some(deep) }).await.unwrap();
        deep_samples.push(t.elapsed());
        assert_eq!(p.items.len(), 50);
    }
    summary("list first page (50)", first);
    summary("list deep page (50, 90%)", deep_samples);

    let metric_runs = env_u64("FORMAOPS_BENCH_METRIC_RUNS", 200).max(1);
    let mut metrics = Vec::new();
    for _ in 0..metric_runs {
        let t = Instant::now();
        let r = store.metrics(user, &MetricsQuery::default()).await.unwrap();
        metrics.push(t.elapsed());
        assert_eq!(r.summary.counts.total, user_rows as u64);
        assert!(r.summary.latency_ms.p99.is_some());
    }
    summary(&format!("metrics ({user_rows} executions)"), metrics);
    let rollup_rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM metric_rollups) + (SELECT count(*) FROM metric_latency)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    println!("rollup rows (all users, all granularities, with histogram buckets): {rollup_rows}");
    // The loaded history starts at 2025-01-01 (one execution per ms over all users).
    let start: chrono::DateTime<chrono::Utc> = "2025-01-01T00:00:00Z".parse().unwrap();
    for (bucket, span) in
        [(Granularity::Minute, chrono::Duration::hours(24)), (Granularity::Hour, chrono::Duration::days(60))]
    {
        let query = MetricsSeriesQuery {
            bucket,
            since: Some(start),
            until: Some(start + span),
            prompt_id: None,
            prompt_version: None,
            label: None,
        };
        let mut samples = Vec::new();
        for _ in 0..queries {
            let t = Instant::now();
            let s = store.metrics_series(user, &query).await.unwrap();
            samples.push(t.elapsed());
            let total: u64 = s.points.iter().map(|p| p.summary.counts.total).sum();
            assert!(total > 0 && total <= user_rows as u64);
        }
        summary(&format!("series by {bucket}"), samples);
    }
}
