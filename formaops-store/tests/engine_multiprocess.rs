//! Two engines ("processes": two `FormaOps` instances with their own worker ids, PgStore pools
//! and tokio runtimes) share one Postgres. 2,000 executions are submitted, half through each;
//! engine B's runtime is shut down abruptly midway (no graceful shutdown: its attempts, lease
//! heartbeats and pool die at once), so its leases expire and engine A's rescuer requeues
//! them. Every execution must end COMPLETED or FAILED, none lost, and the database holds one
//! final state per execution.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use formaops_core::engine::{EngineConfig, ExecuteRequest, FormaOps};
use formaops_core::execution::ExecutionStatus;
use formaops_core::ids::UserId;
use formaops_core::metrics::MetricsQuery;
use formaops_core::page::PageRequest;
use formaops_core::prompt::PromptSpec;
use formaops_core::provider::mock::{MockFault, MockProvider};
use formaops_core::store::ExecutionFilter;
use sqlx::postgres::PgPoolOptions;

const TOTAL: u64 = 2_000;

fn config(worker: &str) -> EngineConfig {
    EngineConfig {
        worker_id: worker.to_string(),
        lease: Duration::from_millis(1_500),
        provider_concurrency: 16,
        ..EngineConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_one_killed_every_execution_ends_once() {
    let Some(db) = common::PgTestDb::create().await else { return };
    let store_a = Arc::new(db.store_with_pool(8).await);
    // Every 97th call of A's provider fails permanently, so both final states occur.
    let provider_a = Arc::new(
        MockProvider::new()
            .with_latency(Duration::from_millis(2))
            .fail_on((1..100).map(|i| i * 97), MockFault::BadRequest),
    );
    let engine_a = FormaOps::builder(store_a.clone())
        .provider("mock", provider_a.clone())
        .config(config("engine-a"))
        .start()
        .await
        .unwrap();
    let user = UserId::new();
    let spec: PromptSpec = serde_json::from_value(serde_json::json!({
        "name": "mp", "template": "Say {{ word }}",
        "variables": [{"name": "word", "type": "string", "required": true}],
        "model": {"provider": "mock", "model": "gpt-4o-mini"}
    }))
    .unwrap();
    let (prompt, _) = engine_a.create_prompt(user, spec).await.unwrap();
    let request = |i: u64| ExecuteRequest {
        prompt_id: prompt.id,
        inputs: serde_json::json!({"word": format!("w{i}")}).as_object().cloned().unwrap(),
        ..Default::default()
    };

    // Engine B on its own runtime in its own thread: "another process".
    let (submitted_tx, submitted_rx) = mpsc::channel::<u64>();
    let (kill_tx, kill_rx) = mpsc::channel::<()>();
    let options = db.options.clone();
    let requests_b: Vec<ExecuteRequest> = (TOTAL / 2..TOTAL).map(request).collect();
    let process_b = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let provider_b = Arc::new(MockProvider::new().with_latency(Duration::from_millis(200)));
        let calls = provider_b.clone();
        rt.block_on(async move {
            let pool = PgPoolOptions::new().max_connections(4).connect_with(options).await.unwrap();
            let store_b = Arc::new(formaops_store::PgStore::from_pool(pool).await.unwrap());
            let engine_b = FormaOps::builder(store_b)
                .provider("mock", provider_b)
                .config(config("engine-b"))
                .start()
                .await
                .unwrap();
            for r in requests_b {
                engine_b.submit(user, r).await.unwrap();
            }
            // Keep the engine alive (not dropped, not shut down) until the kill.
            submitted_tx.send(TOTAL / 2).unwrap();
            std::mem::forget(engine_b);
        });
        kill_rx.recv().unwrap();
        let started_calls = calls.calls();
        // The abrupt end: every task of this "process" stops where it is.
        rt.shutdown_background();
        started_calls
    });

    for i in 0..TOTAL / 2 {
        engine_a.submit(user, request(i)).await.unwrap();
    }
    let from_b = tokio::task::spawn_blocking(move || submitted_rx.recv().unwrap()).await.unwrap();
    assert_eq!(from_b, TOTAL / 2);

    // Midway: kill B.
    tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let c = store_a_counts(&engine_a, user).await;
            if c >= TOTAL / 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a third of the executions finish");
    kill_tx.send(()).unwrap();
    let b_calls = tokio::task::spawn_blocking(move || process_b.join().unwrap()).await.unwrap();
    assert!(b_calls > 0, "engine B ran some executions before it was killed");

    tokio::time::timeout(Duration::from_secs(240), async {
        while store_a_counts(&engine_a, user).await < TOTAL {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("every execution reaches a final state after B died");

    let report = engine_a.metrics(user, MetricsQuery::default()).await.unwrap();
    let c = report.summary.counts;
    assert_eq!(c.total, TOTAL, "none lost, none duplicated");
    assert_eq!(c.completed + c.failed, TOTAL);
    assert!(c.failed > 0 && c.completed > 0);
    // Executions B held when it died ran again on A (attempts > 1), and each row is final once.
    let mut rerun = 0;
    let mut page = PageRequest { limit: 200, after: None };
    let mut seen = 0;
    loop {
        let p = engine_a.list_executions(user, ExecutionFilter::default(), page).await.unwrap();
        for e in &p.items {
            assert!(matches!(e.status, ExecutionStatus::Completed | ExecutionStatus::Failed));
            assert!(e.finished_at.is_some() && e.lease_owner.is_none());
            if e.attempts > 1 {
                rerun += 1;
            }
        }
        seen += p.items.len() as u64;
        match p.next_cursor {
            Some(c) => page = PageRequest::new(Some(200), Some(&c)).unwrap(),
            None => break,
        }
    }
    assert_eq!(seen, TOTAL);
    assert!(rerun > 0, "B died holding leases that A rescued");
    eprintln!("B made {b_calls} provider calls before it died; {rerun} executions ran again on A");
    engine_a.shutdown().await;
}

async fn store_a_counts(engine: &FormaOps, user: UserId) -> u64 {
    let c = engine.metrics(user, MetricsQuery::default()).await.unwrap().summary.counts;
    c.completed + c.failed
}
