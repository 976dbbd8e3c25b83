//! In-process overhead of `FormaOps::execute`: memory store, zero-latency mock provider, so
//! everything but a real provider call (validation, group-commit enqueue, scheduling, claim,
//! render, finish, events, wait) is measured.
//!
//! `cargo bench -p formaops-core --bench engine` prints per-execution p50/p99 (hdrhistogram)
//! and executions/s for one task on a current-thread runtime and for many concurrent tasks on
//! a two-worker multi-thread runtime, then runs the criterion benches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use formaops_core::engine::{EngineConfig, ExecuteRequest, FormaOps};
use formaops_core::execution::ExecutionStatus;
use formaops_core::ids::UserId;
use formaops_core::prompt::PromptSpec;
use formaops_core::provider::mock::MockProvider;
use formaops_core::store::MemoryStore;
use hdrhistogram::Histogram;
use serde_json::json;

/// Concurrent `execute` calls in the multi-thread runs.
const CONCURRENCY: usize = 256;

async fn setup() -> (FormaOps, UserId, ExecuteRequest) {
    let config = EngineConfig { provider_concurrency: CONCURRENCY, ..EngineConfig::default() };
    let engine = FormaOps::builder(Arc::new(MemoryStore::new()))
        .provider("mock", Arc::new(MockProvider::new()))
        .config(config)
        .start()
        .await
        .unwrap();
    let user = UserId::new();
    let spec: PromptSpec = serde_json::from_value(json!({
        "name": "bench",
        "template": "Summarize for {{ audience }}: {{ text }}",
        "variables": [
            {"name": "audience", "type": "string", "required": true},
            {"name": "text", "type": "string", "required": true}
        ],
        "model": {"provider": "mock", "model": "gpt-4o-mini"}
    }))
    .unwrap();
    let (prompt, _) = engine.create_prompt(user, spec).await.unwrap();
    let inputs =
        json!({"audience": "engineers", "text": "FormaOps executes prompts through a durable queue."});
    let request = ExecuteRequest {
        prompt_id: prompt.id,
        inputs: inputs.as_object().unwrap().clone(),
        ..Default::default()
    };
    (engine, user, request)
}

async fn one(engine: &FormaOps, user: UserId, request: &ExecuteRequest) {
    let done = engine.execute(user, request.clone()).await.unwrap();
    debug_assert_eq!(done.status, ExecutionStatus::Completed);
    assert!(done.output.is_some());
}

fn report(name: &str, hist: &Histogram<u64>, total: Duration) {
    let n = hist.len();
    println!(
        "{name}: n={n} p50={:.1}us p90={:.1}us p99={:.1}us max={:.1}us throughput={:.0} executions/s",
        hist.value_at_quantile(0.50) as f64 / 1000.0,
        hist.value_at_quantile(0.90) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0,
        n as f64 / total.as_secs_f64()
    );
}

fn percentiles_single(n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (engine, user, request) = setup().await;
        for _ in 0..n / 10 {
            one(&engine, user, &request).await;
        }
        let mut hist = Histogram::<u64>::new(3).unwrap();
        let start = Instant::now();
        for _ in 0..n {
            let t = Instant::now();
            one(&engine, user, &request).await;
            hist.record(t.elapsed().as_nanos() as u64).unwrap();
        }
        report("execute/current_thread/sequential", &hist, start.elapsed());
        engine.shutdown().await;
    });
}

fn percentiles_concurrent(n: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let (engine, user, request) = setup().await;
        let run = |count: usize| {
            let tasks: Vec<_> = (0..CONCURRENCY)
                .map(|_| {
                    let (engine, request) = (engine.clone(), request.clone());
                    tokio::spawn(async move {
                        let mut hist = Histogram::<u64>::new(3).unwrap();
                        for _ in 0..count / CONCURRENCY {
                            let t = Instant::now();
                            one(&engine, user, &request).await;
                            hist.record(t.elapsed().as_nanos() as u64).unwrap();
                        }
                        hist
                    })
                })
                .collect();
            async move {
                let mut all = Histogram::<u64>::new(3).unwrap();
                for t in tasks {
                    all.add(t.await.unwrap()).unwrap();
                }
                all
            }
        };
        run(n / 10).await;
        let start = Instant::now();
        let hist = run(n).await;
        report(&format!("execute/multi_thread(2)/{CONCURRENCY}_concurrent"), &hist, start.elapsed());
        engine.shutdown().await;
    });
}

fn criterion_benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (engine, user, request) = rt.block_on(setup());
    c.bench_function("execute/current_thread", |b| {
        b.to_async(&rt).iter(|| one(&engine, user, &request));
    });
    rt.block_on(engine.shutdown());

    let mt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (engine, user, request) = mt.block_on(setup());
    // Time per execution with CONCURRENCY tasks sharing the work.
    c.bench_function(&format!("execute/multi_thread(2)/{CONCURRENCY}_concurrent"), |b| {
        b.to_async(&mt).iter_custom(|iters| {
            let (engine, request) = (engine.clone(), request.clone());
            async move {
                let per_task = (iters as usize).div_ceil(CONCURRENCY);
                let start = Instant::now();
                let tasks: Vec<_> = (0..CONCURRENCY)
                    .map(|_| {
                        let (engine, request) = (engine.clone(), request.clone());
                        tokio::spawn(async move {
                            for _ in 0..per_task {
                                one(&engine, user, &request).await;
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
                start.elapsed().div_f64((per_task * CONCURRENCY) as f64 / iters as f64)
            }
        });
    });
    mt.block_on(engine.shutdown());
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = criterion_benches
}

fn main() {
    let n = std::env::var("FORMAOPS_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    percentiles_single(n);
    percentiles_concurrent(n);
    benches();
    Criterion::default().configure_from_args().final_summary();
}
