//! The queue: idempotent enqueue, claim order, no double claim, depth.

use std::collections::HashSet;

use chrono::Duration;

use super::fixtures::{enqueue_one, execution, is_not_found, ms, new_prompt, new_user, now, provider};
use crate::execution::{Execution, ExecutionStatus};
use crate::ids::ExecutionId;
use crate::store::{ClaimParams, EnqueueOutcome, Store};

/// Enqueue with an idempotency key returns the existing execution instead of a second one.
pub async fn enqueue_idempotency(store: &dyn Store) {
    let user = new_user(store).await;
    let p = new_prompt(store, user.id, "idem").await;
    let prov = provider();
    let t = now();
    let mut first = execution(user.id, p.id, &prov, 0, t);
    first.idempotency_key = Some("key-1".into());
    let mut second = execution(user.id, p.id, &prov, 1, t);
    second.idempotency_key = Some("key-1".into());
    // In one batch: the second sees the first.
    let out = store.enqueue(&[first.clone(), second.clone()]).await.unwrap();
    assert_eq!(out[0], EnqueueOutcome::Created);
    match &out[1] {
        EnqueueOutcome::Existing(e) => assert_eq!(e.id, first.id),
        other => panic!("same key in one batch must return the first execution, got {other:?}"),
    }
    // Later, too.
    let mut third = execution(user.id, p.id, &prov, 2, t);
    third.idempotency_key = Some("key-1".into());
    match store.enqueue(std::slice::from_ref(&third)).await.unwrap().pop() {
        Some(EnqueueOutcome::Existing(e)) => assert_eq!(e.id, first.id),
        other => panic!("repeated key must return the first execution, got {other:?}"),
    }
    assert!(
        is_not_found(store.get_execution(user.id, second.id).await),
        "nothing inserted for a repeated key"
    );
    // Another user's key space is separate.
    let other = new_user(store).await;
    let po = new_prompt(store, other.id, "idem").await;
    let mut theirs = execution(other.id, po.id, &prov, 3, t);
    theirs.idempotency_key = Some("key-1".into());
    enqueue_one(store, &theirs).await;
    assert_eq!(store.queue_depth(Some(user.id)).await.unwrap(), 1);
}

/// A batch the store refuses changes nothing, so the engine may commit its items again one
/// by one (the group commit isolates a failing item that way).
pub async fn failed_enqueue_commits_nothing(store: &dyn Store) {
    let user = new_user(store).await;
    let p = new_prompt(store, user.id, "atomic").await;
    let prov = provider();
    let t = now();
    let a = execution(user.id, p.id, &prov, 0, t);
    let b = execution(user.id, p.id, &prov, 1, t);
    assert!(store.enqueue(&[a.clone(), b.clone(), a.clone()]).await.is_err(), "a duplicate id must fail");
    assert!(is_not_found(store.get_execution(user.id, a.id).await), "a failed batch must commit nothing");
    assert!(is_not_found(store.get_execution(user.id, b.id).await), "a failed batch must commit nothing");
    let out = store.enqueue(&[a.clone(), b.clone()]).await.unwrap();
    assert_eq!(out, vec![EnqueueOutcome::Created, EnqueueOutcome::Created]);
}

/// Claim order (ascending queue key, then id) and its provider and due-time filters.
pub async fn claim_order_and_filters(store: &dyn Store) {
    let user = new_user(store).await;
    let p = new_prompt(store, user.id, "order").await;
    let prov = provider();
    let other_prov = provider();
    let t = now() - Duration::seconds(5);
    let a = execution(user.id, p.id, &prov, 30, t);
    let b = execution(user.id, p.id, &prov, 10, t + ms(1));
    let c = execution(user.id, p.id, &prov, 20, t + ms(2));
    let d = execution(user.id, p.id, &prov, 10, t + ms(3)); // same key as b, later id
    let mut later = execution(user.id, p.id, &prov, 0, t + ms(4));
    later.run_after = now() + Duration::hours(1);
    let elsewhere = execution(user.id, p.id, &other_prov, -100, t);
    store
        .enqueue(&[a.clone(), b.clone(), c.clone(), d.clone(), later.clone(), elsewhere.clone()])
        .await
        .unwrap();

    let at = now();
    let lease = at + Duration::minutes(5);
    let first = store
        .claim(ClaimParams { worker: "w1", provider: &prov, limit: 2, now: at, lease_until: lease })
        .await
        .unwrap();
    assert_eq!(first.iter().map(|e| e.id).collect::<Vec<_>>(), vec![b.id, d.id], "queue_key, then id");
    for e in &first {
        assert_eq!(e.status, ExecutionStatus::Running);
        assert_eq!(e.attempts, 1);
        assert_eq!(e.lease_owner.as_deref(), Some("w1"));
        assert_eq!(e.lease_expires_at, Some(lease));
        assert_eq!(e.started_at, Some(at));
    }
    let rest = store
        .claim(ClaimParams { worker: "w1", provider: &prov, limit: 10, now: at, lease_until: lease })
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![c.id, a.id],
        "run_after in the future waits"
    );
    assert!(
        store
            .claim(ClaimParams { worker: "w1", provider: &prov, limit: 10, now: at, lease_until: lease })
            .await
            .unwrap()
            .is_empty()
    );
    let due = store
        .claim(ClaimParams {
            worker: "w1",
            provider: &prov,
            limit: 10,
            now: later.run_after,
            lease_until: lease,
        })
        .await
        .unwrap();
    assert_eq!(
        due.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![later.id],
        "claimable once run_after passed"
    );
    let theirs = store
        .claim(ClaimParams { worker: "w2", provider: &other_prov, limit: 10, now: at, lease_until: lease })
        .await
        .unwrap();
    assert_eq!(theirs.iter().map(|e| e.id).collect::<Vec<_>>(), vec![elsewhere.id], "provider filter");
    assert_eq!(store.get_execution(user.id, a.id).await.unwrap().status, ExecutionStatus::Running);
}

/// Concurrent claims never hand out one execution twice.
pub async fn no_double_claim(store: &dyn Store) {
    const N: usize = 300;
    const CLAIMERS: usize = 16;
    let user = new_user(store).await;
    let p = new_prompt(store, user.id, "race").await;
    let prov = provider();
    let t = now() - Duration::seconds(1);
    let batch: Vec<Execution> = (0..N).map(|i| execution(user.id, p.id, &prov, i as i64, t)).collect();
    store.enqueue(&batch).await.unwrap();
    let lease = now() + Duration::minutes(5);
    let claimers = (0..CLAIMERS).map(|w| {
        let prov = prov.clone();
        async move {
            let worker = format!("w{w}");
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim(ClaimParams {
                        worker: &worker,
                        provider: &prov,
                        limit: 7,
                        now: now(),
                        lease_until: lease,
                    })
                    .await
                    .unwrap();
                if got.is_empty() {
                    break;
                }
                assert!(got.iter().all(|e| e.lease_owner.as_deref() == Some(worker.as_str())));
                mine.extend(got.into_iter().map(|e| e.id));
                tokio::task::yield_now().await;
            }
            mine
        }
    });
    let results = futures::future::join_all(claimers).await;
    let total: usize = results.iter().map(Vec::len).sum();
    let distinct: HashSet<ExecutionId> = results.into_iter().flatten().collect();
    assert_eq!(total, N, "every execution claimed once ({total} claims for {N})");
    assert_eq!(distinct.len(), N, "no execution handed to two claimers");
}

/// Queue depth counts the executions waiting to run now.
pub async fn queue_depth(store: &dyn Store) {
    let user = new_user(store).await;
    let p = new_prompt(store, user.id, "depth").await;
    let prov = provider();
    let t = now() - Duration::seconds(1);
    let batch: Vec<Execution> = (0..5).map(|i| execution(user.id, p.id, &prov, i, t)).collect();
    store.enqueue(&batch).await.unwrap();
    assert_eq!(store.queue_depth(Some(user.id)).await.unwrap(), 5);
    assert!(store.queue_depth(None).await.unwrap() >= 5);
    store
        .claim(ClaimParams {
            worker: "w",
            provider: &prov,
            limit: 2,
            now: now(),
            lease_until: now() + Duration::minutes(1),
        })
        .await
        .unwrap();
    store.cancel(user.id, batch[4].id, now()).await.unwrap();
    assert_eq!(store.queue_depth(Some(user.id)).await.unwrap(), 2);
}
