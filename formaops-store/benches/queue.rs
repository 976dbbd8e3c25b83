//! Queue throughput of the stores alone: executions per second through
//! enqueue -> claim -> finish, every batch committed before the call returns.
//!
//! Producers enqueue batches (as the engine's group commit hands them over) while workers
//! claim batches and finish them with a completed result, until every execution is
//! COMPLETED. Reports the end-to-end rate per backend. Knobs (env): `FORMAOPS_BENCH_EXECUTIONS`
//! (default 50,000), `FORMAOPS_BENCH_BATCH` (default 100), `FORMAOPS_BENCH_PRODUCERS` (4),
//! `FORMAOPS_BENCH_WORKERS` (4), `FORMAOPS_BENCH_BACKENDS` (`postgres,sqlite`).
//!
//! ```text
//! cargo bench -p formaops-store --bench queue
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark binary: failing loudly is right

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chrono::{Duration, Utc};
use formaops_core::execution::{
    AttemptOutcome, AttemptResult, Execution, ExecutionMetrics, NewExecution, Priority, TokenUsage,
};
use formaops_core::ids::{PromptId, UserId};
use formaops_core::store::{ClaimParams, Store};
use rust_decimal::Decimal;
use support::env_u64;

fn execution(user: UserId, prompt: PromptId, n: i64) -> Execution {
    let now = Utc::now();
    Execution::queued(NewExecution {
        user_id: user,
        prompt_id: prompt,
        prompt_version: 1,
        inputs: serde_json::json!({"topic": "benchmarks"}).as_object().unwrap().clone(),
        priority: Priority::Normal,
        validate_output: false,
        provider: "mock".into(),
        model: "gpt-4o-mini".into(),
        max_attempts: 3,
        retry_of: None,
        idempotency_key: None,
        created_at: now,
        deadline_at: now + Duration::hours(1),
        queue_key: n,
    })
}

async fn run(label: &str, store: Arc<dyn Store>) {
    let total = env_u64("FORMAOPS_BENCH_EXECUTIONS", 50_000);
    let batch = env_u64("FORMAOPS_BENCH_BATCH", 100).max(1);
    let producers = env_u64("FORMAOPS_BENCH_PRODUCERS", 4).max(1);
    let workers = env_u64("FORMAOPS_BENCH_WORKERS", 4).max(1);
    let user = UserId::new();
    let prompt = PromptId::new();
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    let per_producer = total / producers;
    for p in 0..producers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut sent = 0;
            while sent < per_producer {
                let n = batch.min(per_producer - sent);
                let execs: Vec<Execution> =
                    (0..n).map(|i| execution(user, prompt, (p * per_producer + sent + i) as i64)).collect();
                store.enqueue(&execs).await.unwrap();
                sent += n;
            }
        }));
    }
    let expected = per_producer * producers;
    for w in 0..workers {
        let store = store.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let worker = format!("bench-{w}");
            while done.load(Ordering::Relaxed) < expected {
                let now = Utc::now();
                let claimed = store
                    .claim(ClaimParams {
                        worker: &worker,
                        provider: "mock",
                        limit: batch as u32,
                        now,
                        lease_until: now + Duration::seconds(60),
                    })
                    .await
                    .unwrap();
                if claimed.is_empty() {
                    tokio::task::yield_now().await;
                    continue;
                }
                let results: Vec<AttemptResult> = claimed
                    .iter()
                    .map(|e| AttemptResult {
                        id: e.id,
                        user_id: e.user_id,
                        worker: worker.clone(),
                        outcome: AttemptOutcome::Completed {
                            output: "Mock output".into(),
                            validated_output: None,
                            validation: None,
                            metrics: ExecutionMetrics {
                                latency_ms: 1,
                                provider_latency_ms: 0,
                                queue_ms: 1,
                                token_usage: TokenUsage {
                                    input: 10,
                                    output: 2,
                                    total: 12,
                                    ..Default::default()
                                },
                                cost_usd: Some(Decimal::new(27, 6)),
                            },
                        },
                        finished_at: Utc::now(),
                        finish_reason: None,
                    })
                    .collect();
                let applied = store.finish(&results).await.unwrap();
                done.fetch_add(applied.iter().filter(|a| **a).count() as u64, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let counts = store.metrics(user, &Default::default()).await.unwrap().summary.counts;
    assert_eq!(counts.completed, expected);
    println!(
        "{label:<9} {expected} executions enqueued+claimed+finished in {secs:.2} s = {:.0}/s \
         (batch {batch}, {producers} producers, {workers} workers)",
        expected as f64 / secs
    );
}

#[tokio::main]
async fn main() {
    support::for_each_backend("formaops_qbench", 10, run).await;
}
