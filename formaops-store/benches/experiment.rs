//! An experiment of `FORMAOPS_BENCH_ROWS` rows (default 10,000) x 2 versions through the engine's
//! durable queue with the zero-latency mock provider, on Postgres and on SQLite: rows per second
//! from start to the last row final (each row x version one execution, submitted by the
//! experiment's runner at its concurrency cap), and the time to build the side-by-side
//! comparison (`experiment_results`) once it is done, median of 5.
//!
//! Knobs (env): `FORMAOPS_BENCH_ROWS`, `FORMAOPS_BENCH_CONCURRENCY` (the experiment's cap,
//! default 256, the most it allows), `FORMAOPS_BENCH_BACKENDS`, `FORMAOPS_BENCH_DURABILITY`,
//! `DATABASE_URL` (see `support`).
//!
//! ```text
//! cargo bench -p formaops-store --bench experiment
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark binary: failing loudly is right

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use formaops_core::dataset::DatasetRow;
use formaops_core::experiment::{ExperimentSpec, ExperimentStatus, TargetRef};
use formaops_core::prompt::PromptUpdate;
use formaops_core::store::Store;
use futures::StreamExt as _;
use serde_json::json;
use support::{bench_prompt, env_u64, mock_engine};

async fn run(label: &str, store: Arc<dyn Store>) {
    let rows = env_u64("FORMAOPS_BENCH_ROWS", 10_000);
    let concurrency = env_u64("FORMAOPS_BENCH_CONCURRENCY", 256) as u32;
    let engine = mock_engine(store).await;
    let (user, prompt) = bench_prompt(&engine, json!([{"type": "min_length", "value": 1}])).await;
    let update: PromptUpdate =
        serde_json::from_value(json!({"template": "Summarise briefly: {{ text }}"})).unwrap();
    engine.update_prompt(user, prompt.id, update).await.unwrap();
    let data: Vec<DatasetRow> = (0..rows)
        .map(|i| DatasetRow {
            inputs: json!({"text": format!("row {i}: FormaOps runs prompts.")}).as_object().cloned().unwrap(),
            expected: Some(json!("prompts")),
            ..Default::default()
        })
        .collect();
    let dataset = engine.create_dataset(user, "bench", data).await.unwrap();
    let started = Instant::now();
    let x = engine
        .start_experiment(
            user,
            ExperimentSpec {
                prompt_id: prompt.id,
                dataset_id: dataset.id,
                versions: vec![TargetRef::Number(1), TargetRef::Number(2)],
                priority: None,
                concurrency: Some(concurrency),
                match_rule: None,
                validate_output: true,
            },
        )
        .await
        .unwrap();
    let mut progress = engine.follow_experiment(user, x.id).await.unwrap();
    while let Some(p) = progress.next().await {
        if p.status != ExperimentStatus::Running && p.in_flight == 0 {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let (x, p) = engine.get_experiment(user, x.id).await.unwrap();
    assert_eq!((x.status, p.done), (ExperimentStatus::Completed, rows * 2), "{p:?}");
    let mut builds: Vec<Duration> = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let c = engine.experiment_results(user, x.id).await.unwrap();
        builds.push(t.elapsed());
        assert_eq!(c.rows.len() as u64, rows);
    }
    builds.sort();
    println!(
        "{label:<16} {rows} rows x 2 versions in {secs:.2} s = {:.0} rows/s ({:.0} executions/s, cap {concurrency}); \
         comparison built in {:.1} ms (median of 5; min {:.1}, max {:.1})",
        rows as f64 / secs,
        (rows * 2) as f64 / secs,
        builds[2].as_secs_f64() * 1000.0,
        builds[0].as_secs_f64() * 1000.0,
        builds[4].as_secs_f64() * 1000.0,
    );
    engine.shutdown().await;
}

#[tokio::main]
async fn main() {
    support::for_each_backend("formaops_xbench", 16, run).await;
}
