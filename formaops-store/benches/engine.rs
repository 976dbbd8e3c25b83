//! Durable executions per second through the engine (`FormaOps::execute`) with the zero-latency
//! mock provider, on Postgres and on SQLite. Every execution is committed by the store before
//! `submit` acknowledges it (the engine's group commit batches concurrent submissions).
//!
//! Knobs (env): `FORMAOPS_BENCH_EXECUTIONS` (default 20,000), `FORMAOPS_BENCH_CLIENTS`
//! (concurrent callers, default 256), `FORMAOPS_BENCH_BACKENDS` (`postgres,sqlite`),
//! `FORMAOPS_BENCH_DURABILITY` (`strict`, `relaxed` or `strict,relaxed`: one run per store
//! durability, default `strict`), `DATABASE_URL` (server to create a throwaway database on).
//!
//! ```text
//! cargo bench -p formaops-store --bench engine
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark binary: failing loudly is right

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use formaops_core::engine::ExecuteRequest;
use formaops_core::execution::ExecutionStatus;
use formaops_core::store::Store;
use support::{bench_prompt, env_u64, mock_engine};

fn pct(sorted: &[Duration], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

async fn run(label: &str, store: Arc<dyn Store>) {
    let total = env_u64("FORMAOPS_BENCH_EXECUTIONS", 20_000);
    let clients = env_u64("FORMAOPS_BENCH_CLIENTS", 256).max(1);
    let engine = mock_engine(store).await;
    let (user, prompt) = bench_prompt(&engine, serde_json::json!([])).await;
    let inputs = serde_json::json!({"text": "FormaOps runs prompts."}).as_object().cloned().unwrap();
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (engine, issued, inputs) = (engine.clone(), issued.clone(), inputs.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while issued.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                let req =
                    ExecuteRequest { prompt_id: prompt.id, inputs: inputs.clone(), ..Default::default() };
                let done = engine.execute(user, req).await.unwrap();
                assert_eq!(done.status, ExecutionStatus::Completed);
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort();
    let report = engine.metrics(user, Default::default()).await.unwrap();
    assert_eq!(report.summary.counts.completed, total);
    println!(
        "{label:<16} {total} executions in {secs:.2} s = {:.0} executions/s ({clients} clients); \
         execute latency p50 {:.2} ms, p99 {:.2} ms",
        total as f64 / secs,
        pct(&latencies, 0.5),
        pct(&latencies, 0.99)
    );
    engine.shutdown().await;
}

#[tokio::main]
async fn main() {
    support::for_each_backend("formaops_ebench", 16, run).await;
}
