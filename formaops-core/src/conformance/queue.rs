//! The queue: idempotent enqueue, claim order, leases, rescue, depth.

use std::collections::HashSet;

use chrono::Duration;

use super::fixtures::{
    completed, enqueue_one, execution, is_not_found, ms, new_prompt, new_user, now, provider, result,
};
use crate::execution::{Execution, ExecutionMetrics, ExecutionStatus};
use crate::ids::ExecutionId;
use crate::store::{EnqueueOutcome, Store};

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
    let first = store.claim("w1", &prov, 2, at, lease).await.unwrap();
    assert_eq!(first.iter().map(|e| e.id).collect::<Vec<_>>(), vec![b.id, d.id], "queue_key, then id");
    for e in &first {
        assert_eq!(e.status, ExecutionStatus::Running);
        assert_eq!(e.attempts, 1);
        assert_eq!(e.lease_owner.as_deref(), Some("w1"));
        assert_eq!(e.lease_expires_at, Some(lease));
        assert_eq!(e.started_at, Some(at));
    }
    let rest = store.claim("w1", &prov, 10, at, lease).await.unwrap();
    assert_eq!(
        rest.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![c.id, a.id],
        "run_after in the future waits"
    );
    assert!(store.claim("w1", &prov, 10, at, lease).await.unwrap().is_empty());
    let due = store.claim("w1", &prov, 10, later.run_after, lease).await.unwrap();
    assert_eq!(
        due.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![later.id],
        "claimable once run_after passed"
    );
    let theirs = store.claim("w2", &other_prov, 10, at, lease).await.unwrap();
    assert_eq!(theirs.iter().map(|e| e.id).collect::<Vec<_>>(), vec![elsewhere.id], "provider filter");
    assert_eq!(store.get_execution(user.id, a.id).await.unwrap().status, ExecutionStatus::Running);
}

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
                let got = store.claim(&worker, &prov, 7, now(), lease).await.unwrap();
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

pub async fn lease_rescue(store: &dyn Store) {
    let user = new_user(store).await;
    let p = new_prompt(store, user.id, "lease").await;
    let prov = provider();
    let t = now() - Duration::seconds(10);
    let mut e = execution(user.id, p.id, &prov, 0, t);
    e.max_attempts = 2;
    let mut late = execution(user.id, p.id, &prov, 1, t);
    late.deadline_at = now() + ms(500);
    let alive = execution(user.id, p.id, &prov, 2, t);
    store.enqueue(&[e.clone(), late.clone(), alive.clone()]).await.unwrap();

    let at = now();
    let expired_lease = at - ms(1);
    let claimed = store.claim("w-dead", &prov, 2, at, expired_lease).await.unwrap();
    assert_eq!(claimed.len(), 2);
    store.claim("w-alive", &prov, 1, at, at + Duration::minutes(5)).await.unwrap();

    let rescued = store.rescue_expired(at).await.unwrap();
    let mine: Vec<&Execution> = rescued.iter().filter(|r| r.user_id == user.id).collect();
    assert_eq!(mine.len(), 2, "only expired leases are rescued");
    let r = mine.iter().find(|r| r.id == e.id).expect("rescued");
    assert_eq!(r.status, ExecutionStatus::Queued, "attempts left and before the deadline: requeued");
    assert_eq!(r.run_after, at);
    assert_eq!(r.error.as_ref().map(|x| x.code.as_str()), Some("lease_expired"));
    assert_eq!(store.get_execution(user.id, alive.id).await.unwrap().status, ExecutionStatus::Running);

    // The requeued one runs its second (last) attempt and loses its lease again: FAILED.
    let at2 = now() + ms(1);
    let again = store.claim("w-dead", &prov, 1, at2, at2 - ms(1)).await.unwrap();
    assert_eq!(again.iter().map(|x| x.id).collect::<Vec<_>>(), vec![e.id]);
    assert_eq!(again[0].attempts, 2);
    let rescued = store.rescue_expired(at2).await.unwrap();
    let r = rescued.iter().find(|r| r.id == e.id).expect("rescued again");
    assert_eq!(r.status, ExecutionStatus::Failed, "no attempts left: failed");
    assert!(r.finished_at.is_some());
    // A dead worker's late result is refused.
    let stale = result(&e, "w-dead", completed(ExecutionMetrics::default(), None));
    assert_eq!(store.finish(&[stale]).await.unwrap(), vec![false]);

    // Past the deadline: failed even with attempts left.
    let r = store.get_execution(user.id, late.id).await.unwrap();
    assert_eq!(r.status, ExecutionStatus::Queued);
    let at3 = late.deadline_at + ms(1);
    store.claim("w-dead", &prov, 1, at3, at3 - ms(1)).await.unwrap();
    let rescued = store.rescue_expired(at3 + ms(1)).await.unwrap();
    let r = rescued.iter().find(|r| r.id == late.id).expect("rescued after the deadline");
    assert_eq!(r.status, ExecutionStatus::Failed, "deadline passed: failed");
}

pub async fn extend_leases(store: &dyn Store) {
    let user = new_user(store).await;
    let p = new_prompt(store, user.id, "extend").await;
    let prov = provider();
    let e = execution(user.id, p.id, &prov, 0, now() - Duration::seconds(1));
    enqueue_one(store, &e).await;
    let at = now();
    store.claim("w-a", &prov, 1, at, at + ms(100)).await.unwrap();
    assert!(
        store.extend_leases("w-b", &[e.id], at + Duration::hours(1)).await.unwrap().is_empty(),
        "not w-b's"
    );
    let unknown = ExecutionId::new();
    let held = store.extend_leases("w-a", &[e.id, unknown], at + Duration::hours(1)).await.unwrap();
    assert_eq!(held, vec![e.id]);
    let rescued = store.rescue_expired(at + Duration::minutes(1)).await.unwrap();
    assert!(rescued.iter().all(|r| r.id != e.id), "an extended lease is not rescued");
    assert_eq!(
        store.get_execution(user.id, e.id).await.unwrap().lease_expires_at,
        Some(at + Duration::hours(1))
    );
}

pub async fn queue_depth(store: &dyn Store) {
    let user = new_user(store).await;
    let p = new_prompt(store, user.id, "depth").await;
    let prov = provider();
    let t = now() - Duration::seconds(1);
    let batch: Vec<Execution> = (0..5).map(|i| execution(user.id, p.id, &prov, i, t)).collect();
    store.enqueue(&batch).await.unwrap();
    assert_eq!(store.queue_depth(Some(user.id)).await.unwrap(), 5);
    assert!(store.queue_depth(None).await.unwrap() >= 5);
    store.claim("w", &prov, 2, now(), now() + Duration::minutes(1)).await.unwrap();
    store.cancel(user.id, batch[4].id, now()).await.unwrap();
    assert_eq!(store.queue_depth(Some(user.id)).await.unwrap(), 2);
}
