//! Scheduling under load: exactly-once execution of 10,000 submissions with bounded provider
//! concurrency, priority order, the aging bound, and rescue of a crashed worker's leases.

mod engine_common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use engine_common::*;
use formaops_core::engine::{EngineConfig, ExecuteRequest, FormaOps};
use formaops_core::execution::{ExecutionStatus, Priority};
use formaops_core::ids::UserId;
use formaops_core::provider::mock::MockProvider;
use formaops_core::store::{MemoryStore, Store};

fn priority_of(i: usize) -> Priority {
    [Priority::Low, Priority::Normal, Priority::High][i % 3]
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_submissions_run_exactly_once_in_priority_order() {
    const N: usize = 10_000;
    const CONCURRENCY: usize = 8;
    let mock = Arc::new(MockProvider::new().with_latency(Duration::from_millis(10)).recording());
    let cfg = EngineConfig { provider_concurrency: CONCURRENCY, ..config() };
    let engine = engine_with(mock.clone(), cfg).await;
    let user = UserId::new();
    let p = prompt(&engine, user).await;

    let mut ids = Vec::with_capacity(N);
    for i in 0..N {
        let prio = priority_of(i);
        let req = ExecuteRequest { priority: prio, ..request(p, &format!("{}-{i}", prio.as_str())) };
        ids.push(engine.submit(user, req).await.unwrap().id);
    }
    let started_during_submission = mock.calls() as usize;
    let mut max_in_flight = 0;
    for id in &ids {
        let done = engine.wait(user, *id, None).await.unwrap();
        assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
        assert_eq!(done.attempts, 1);
        max_in_flight = max_in_flight.max(engine.health().await.providers[0].in_flight);
    }
    assert!(max_in_flight <= CONCURRENCY);

    // Exactly once: every rendered prompt reached the provider once.
    let log = mock.call_log();
    assert_eq!(log.len(), N);
    let mut per_execution: HashMap<&str, usize> = HashMap::new();
    for line in &log {
        *per_execution.entry(line.as_str()).or_default() += 1;
    }
    assert_eq!(per_execution.len(), N);
    assert!(per_execution.values().all(|n| *n == 1));

    // Once everything was queued, HIGH ran before any NORMAL, NORMAL before any LOW: no HIGH
    // waited behind a queued LOW.
    assert!(started_during_submission <= 2 * CONCURRENCY, "{started_during_submission} started early");
    let rank = |line: &String| {
        let word = line.trim_start_matches("Say ");
        Priority::parse(word.split('-').next().unwrap()).unwrap().rank()
    };
    let ranks: Vec<i64> = log[started_during_submission..].iter().map(rank).collect();
    let first_low = ranks.iter().position(|r| *r == 0).unwrap();
    let last_high = ranks.iter().rposition(|r| *r == 2).unwrap();
    assert!(last_high < first_low, "a HIGH started (at {last_high}) after a queued LOW (at {first_low})");
    assert!(ranks.windows(2).all(|w| w[0] >= w[1]), "priority order broken");
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn low_priority_does_not_starve_under_constant_high_load() {
    // One call at a time, 1 s each, while a HIGH arrives every 500 ms: HIGH alone exceeds
    // capacity, so without aging the LOW would never run. With step = 10 s the bound says the
    // LOW runs before every HIGH that arrived more than 2 * step after it.
    let step = Duration::from_secs(10);
    let mock = Arc::new(MockProvider::new().with_latency(Duration::from_secs(1)));
    let cfg = EngineConfig {
        provider_concurrency: 1,
        priority_step: step,
        execution_timeout: Duration::from_secs(600),
        ..config()
    };
    let engine = engine_with(mock, cfg).await;
    let user = UserId::new();
    let p = prompt(&engine, user).await;
    let mut highs = Vec::new();
    for i in 0..4 {
        let req = ExecuteRequest { priority: Priority::High, ..request(p, &format!("h{i}")) };
        highs.push(engine.submit(user, req).await.unwrap().id);
    }
    let low =
        engine.submit(user, ExecuteRequest { priority: Priority::Low, ..request(p, "low") }).await.unwrap();
    for i in 4..120 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let req = ExecuteRequest { priority: Priority::High, ..request(p, &format!("h{i}")) };
        highs.push(engine.submit(user, req).await.unwrap().id);
    }
    let low = engine.wait(user, low.id, Some(Duration::from_secs(600))).await.unwrap();
    assert_eq!(low.status, ExecutionStatus::Completed, "the LOW execution starved");
    let low_start = low.started_at.unwrap();
    let bound = low.created_at + chrono::Duration::from_std(2 * step).unwrap();
    let mut later_highs = 0;
    for id in highs {
        let h = engine.wait(user, id, Some(Duration::from_secs(600))).await.unwrap();
        if h.created_at > bound {
            later_highs += 1;
            assert!(h.started_at.unwrap() > low_start, "a HIGH that arrived after the bound ran first");
        }
    }
    assert!(later_highs > 50, "the load did not outlast the bound");
    // And the LOW did wait for the HIGHs that arrived before the bound: aging, not FIFO.
    assert!(low_start - low.created_at >= chrono::Duration::seconds(20));
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_crashed_workers_executions_are_rescued_by_another() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let lease = Duration::from_secs(3);
    let hanging = Arc::new(MockProvider::new().with_latency(Duration::from_secs(1000)));
    let a = FormaOps::builder(store.clone())
        .provider("mock", hanging.clone())
        .config(EngineConfig { lease, shutdown_grace: Duration::ZERO, ..config() })
        .start()
        .await
        .unwrap();
    let user = UserId::new();
    let p = prompt(&a, user).await;
    let e = a.submit(user, request(p, "survive")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(hanging.calls(), 1);
    // The heartbeat keeps the lease alive well past its length...
    tokio::time::sleep(4 * lease).await;
    assert_eq!(a.get_execution(user, e.id).await.unwrap().status, ExecutionStatus::Running);
    // ...until the worker dies (grace 0: its attempt is abandoned, heartbeats stop).
    a.shutdown().await;

    let healthy = Arc::new(MockProvider::new());
    let b = FormaOps::builder(store.clone())
        .provider("mock", healthy.clone())
        .config(EngineConfig { lease, ..config() })
        .start()
        .await
        .unwrap();
    let done = b.wait(user, e.id, Some(Duration::from_secs(60))).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.attempts, 2);
    assert_eq!(done.output.as_deref(), Some("Say survive"));
    assert_eq!(healthy.calls(), 1);
    b.shutdown().await;
}
