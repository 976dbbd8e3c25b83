//! Lease expiry end to end: a worker dies holding an execution, the engine's rescuer requeues
//! it through the retry rule, and it runs again only after its backoff.

mod engine_common;

use std::sync::Arc;
use std::time::Duration;

use engine_common::*;
use formaops_core::engine::{BackoffPolicy, EngineConfig, FormaOps};
use formaops_core::events::EventKind;
use formaops_core::execution::ExecutionStatus;
use formaops_core::ids::UserId;
use formaops_core::provider::mock::MockProvider;
use formaops_core::store::{ClaimParams, MemoryStore, Store};
use futures::StreamExt;

#[tokio::test(start_paused = true)]
async fn a_rescued_execution_waits_its_backoff_before_it_runs_again() {
    let store = Arc::new(MemoryStore::new());
    let backoff = BackoffPolicy { base: Duration::from_secs(10), max: Duration::from_secs(10) };
    let lease = Duration::from_secs(2);
    let mock = Arc::new(MockProvider::new());

    // A node that only accepts work: the execution stays QUEUED for us to hand to a worker
    // that then dies (claims with a lease nobody renews).
    let api = FormaOps::builder(store.clone())
        .provider("mock", mock.clone())
        .config(EngineConfig { run_workers: false, ..config() })
        .start()
        .await
        .unwrap();
    let user = UserId::new();
    let p = prompt(&api, user).await;
    let queued = api.submit(user, request(p, "x")).await.unwrap();
    let claimed_at = queued.run_after;
    let lease_until = claimed_at + chrono::Duration::from_std(lease).unwrap();
    let dead = store
        .claim(ClaimParams { worker: "w-dead", provider: "mock", limit: 1, now: claimed_at, lease_until })
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 1);

    // A node with workers: its rescuer finds the expired lease.
    let engine = FormaOps::builder(store.clone())
        .provider("mock", mock.clone())
        .config(EngineConfig { backoff, lease, ..config() })
        .start()
        .await
        .unwrap();
    let mut events = engine.subscribe(user, Some(queued.id));
    let rescued = loop {
        let e = events.next().await.unwrap();
        if e.kind == EventKind::RetryScheduled {
            break e;
        }
    };
    assert_eq!(rescued.status, ExecutionStatus::Queued);
    assert_eq!(rescued.error.as_ref().map(|e| e.code.as_str()), Some("lease_expired"));
    let run_after = rescued.run_after.unwrap();
    assert!(rescued.at >= lease_until, "rescued only after the lease expired");
    let delay = (run_after - rescued.at).to_std().unwrap();
    // Full jitter over the backoff of attempt 1: (0, 10 s].
    assert!(!delay.is_zero() && delay <= backoff.max, "backoff {delay:?}");

    // Until run_after it is QUEUED and unclaimed, although a worker is idle.
    tokio::time::sleep(delay.saturating_sub(Duration::from_millis(5))).await;
    let waiting = store.get_execution(user, queued.id).await.unwrap();
    assert_eq!((waiting.status, waiting.attempts), (ExecutionStatus::Queued, 1));
    assert_eq!(mock.calls(), 0);

    // Then it runs its second attempt, no earlier than run_after.
    let running = loop {
        let e = events.next().await.unwrap();
        if e.kind == EventKind::Running {
            break e;
        }
    };
    assert_eq!(running.attempt, 2);
    assert!(running.at >= run_after, "claimed at {} before its run_after {run_after}", running.at);
    let done = engine.wait(user, queued.id, None).await.unwrap();
    assert_eq!((done.status, done.attempts), (ExecutionStatus::Completed, 2));
    assert_eq!(mock.calls(), 1);
    engine.shutdown().await;
    api.shutdown().await;
}
