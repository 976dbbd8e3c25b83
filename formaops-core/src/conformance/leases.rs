//! Leases: heartbeats extend them; expired ones are rescued as the engine decides.

use chrono::Duration;

use super::fixtures::{
    completed, enqueue_one, execution, ms, new_prompt, new_user, now, provider, rescue_now, result,
};
use crate::engine::{BackoffPolicy, rescue};
use crate::execution::{Execution, ExecutionMetrics, ExecutionStatus};
use crate::ids::ExecutionId;
use crate::store::{ClaimParams, ExtendLeasesParams, RescueFate, Store};

/// Executions whose lease expired are found and rescued (requeued or failed).
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
    let claimed = store
        .claim(ClaimParams {
            worker: "w-dead",
            provider: &prov,
            limit: 2,
            now: at,
            lease_until: expired_lease,
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    store
        .claim(ClaimParams {
            worker: "w-alive",
            provider: &prov,
            limit: 1,
            now: at,
            lease_until: at + Duration::minutes(5),
        })
        .await
        .unwrap();

    let rescued = rescue_now(store, at).await;
    let mine: Vec<&Execution> = rescued.iter().filter(|r| r.user_id == user.id).collect();
    assert_eq!(mine.len(), 2, "only expired leases are rescued");
    let r = mine.iter().find(|r| r.id == e.id).expect("rescued");
    assert_eq!(r.status, ExecutionStatus::Queued, "attempts left and before the deadline: requeued");
    assert_eq!(r.run_after, at);
    assert_eq!(r.error.as_ref().map(|x| x.code.as_str()), Some("lease_expired"));
    assert_eq!(store.get_execution(user.id, alive.id).await.unwrap().status, ExecutionStatus::Running);

    // The requeued one runs its second (last) attempt and loses its lease again: FAILED.
    let at2 = now() + ms(1);
    let again = store
        .claim(ClaimParams {
            worker: "w-dead",
            provider: &prov,
            limit: 1,
            now: at2,
            lease_until: at2 - ms(1),
        })
        .await
        .unwrap();
    assert_eq!(again.iter().map(|x| x.id).collect::<Vec<_>>(), vec![e.id]);
    assert_eq!(again[0].attempts, 2);
    let rescued = rescue_now(store, at2).await;
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
    store
        .claim(ClaimParams {
            worker: "w-dead",
            provider: &prov,
            limit: 1,
            now: at3,
            lease_until: at3 - ms(1),
        })
        .await
        .unwrap();
    let rescued = rescue_now(store, at3 + ms(1)).await;
    let r = rescued.iter().find(|r| r.id == late.id).expect("rescued after the deadline");
    assert_eq!(r.status, ExecutionStatus::Failed, "deadline passed: failed");
}

/// The store writes the engine's decisions, each only while the lease it was made for is
/// still the execution's lease: a finish, a heartbeat or another rescuer that came first wins.
pub async fn rescue_decisions_are_guarded(store: &dyn Store) {
    let user = new_user(store).await;
    let p = new_prompt(store, user.id, "guarded").await;
    let prov = provider();
    let t = now() - Duration::seconds(10);
    let finished = execution(user.id, p.id, &prov, 0, t);
    let extended = execution(user.id, p.id, &prov, 1, t);
    let backoff = execution(user.id, p.id, &prov, 2, t);
    store.enqueue(&[finished.clone(), extended.clone(), backoff.clone()]).await.unwrap();
    let at = now();
    assert_eq!(
        store
            .claim(ClaimParams {
                worker: "w-slow",
                provider: &prov,
                limit: 3,
                now: at,
                lease_until: at - ms(1)
            })
            .await
            .unwrap()
            .len(),
        3
    );

    let listed = store.expired_leases(at, 10_000).await.unwrap();
    let mine: Vec<&Execution> = listed.iter().filter(|e| e.user_id == user.id).collect();
    assert_eq!(mine.len(), 3, "every expired lease is listed");
    assert!(
        mine.iter().all(|e| e.status == ExecutionStatus::Running && e.lease_expires_at == Some(at - ms(1)))
    );
    assert_eq!(
        store
            .expired_leases(at - ms(1), 10_000)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.user_id == user.id)
            .count(),
        0,
        "a lease expiring at `now` is not expired yet"
    );
    let limited = store.expired_leases(at, 1).await.unwrap();
    assert_eq!(limited.len(), 1, "the listing is bounded");

    let policy =
        BackoffPolicy { base: std::time::Duration::from_secs(20), max: std::time::Duration::from_secs(20) };
    let decide = |e: &Execution| {
        let listed = mine.iter().find(|m| m.id == e.id).expect("listed");
        rescue::decide(&policy, listed, at, 1.0)
    };
    let decisions = vec![decide(&finished), decide(&extended), decide(&backoff)];
    assert_eq!(decisions[2].fate, RescueFate::Requeue { run_after: at + Duration::seconds(20) });

    // Between listing and writing: the slow worker finishes one and renews another.
    let done = result(&finished, "w-slow", completed(ExecutionMetrics::default(), None));
    assert_eq!(store.finish(&[done]).await.unwrap(), vec![true]);
    let held = store
        .extend_leases(ExtendLeasesParams {
            worker: "w-slow",
            ids: &[extended.id],
            lease_until: at + Duration::hours(1),
        })
        .await
        .unwrap();
    assert_eq!(held, vec![extended.id]);

    assert_eq!(store.rescue(&decisions).await.unwrap(), vec![false, false, true]);
    let f = store.get_execution(user.id, finished.id).await.unwrap();
    assert_eq!(f.status, ExecutionStatus::Completed, "a finish before the rescue write wins");
    assert_eq!(f.error, None);
    let x = store.get_execution(user.id, extended.id).await.unwrap();
    assert_eq!(x.status, ExecutionStatus::Running, "a renewed lease is not rescued");
    assert_eq!(x.lease_expires_at, Some(at + Duration::hours(1)));
    let b = store.get_execution(user.id, backoff.id).await.unwrap();
    assert_eq!(b.status, ExecutionStatus::Queued);
    assert_eq!(b.run_after, at + Duration::seconds(20), "requeued after the decided backoff");
    assert_eq!(b.error.as_ref().map(|e| e.code.as_str()), Some("lease_expired"));
    assert_eq!((b.lease_owner.as_deref(), b.lease_expires_at, b.finished_at), (None, None, None));

    // A second rescuer with the same (now stale) decision changes nothing.
    assert_eq!(store.rescue(&decisions[2..]).await.unwrap(), vec![false]);
    // Not claimable before its run_after; claimable from then on.
    assert!(
        store
            .claim(ClaimParams {
                worker: "w-next",
                provider: &prov,
                limit: 10,
                now: at + Duration::seconds(19),
                lease_until: at + Duration::hours(1)
            })
            .await
            .unwrap()
            .iter()
            .all(|e| e.id != backoff.id)
    );
    let again = store
        .claim(ClaimParams {
            worker: "w-next",
            provider: &prov,
            limit: 10,
            now: at + Duration::seconds(20),
            lease_until: at + Duration::hours(1),
        })
        .await
        .unwrap();
    assert!(again.iter().any(|e| e.id == backoff.id && e.attempts == 2));

    // Past the deadline: a failure decision, FAILED at the decision time.
    let late = at + Duration::hours(2);
    let listed = store.expired_leases(late, 10_000).await.unwrap();
    let e = listed.iter().find(|e| e.id == extended.id).expect("the renewed lease expired later");
    let d = rescue::decide(&policy, e, late, 1.0);
    assert_eq!(d.fate, RescueFate::Fail { finished_at: late });
    assert_eq!(store.rescue(&[d]).await.unwrap(), vec![true]);
    let x = store.get_execution(user.id, extended.id).await.unwrap();
    assert_eq!(x.status, ExecutionStatus::Failed);
    assert_eq!(x.finished_at, Some(late));
    assert_eq!(x.error.as_ref().map(|e| e.code.as_str()), Some("lease_expired"));
    assert_eq!((x.lease_owner.as_deref(), x.lease_expires_at), (None, None));
}

/// Only the lease owner extends its leases.
pub async fn extend_leases(store: &dyn Store) {
    let user = new_user(store).await;
    let p = new_prompt(store, user.id, "extend").await;
    let prov = provider();
    let e = execution(user.id, p.id, &prov, 0, now() - Duration::seconds(1));
    enqueue_one(store, &e).await;
    let at = now();
    store
        .claim(ClaimParams { worker: "w-a", provider: &prov, limit: 1, now: at, lease_until: at + ms(100) })
        .await
        .unwrap();
    assert!(
        store
            .extend_leases(ExtendLeasesParams {
                worker: "w-b",
                ids: &[e.id],
                lease_until: at + Duration::hours(1)
            })
            .await
            .unwrap()
            .is_empty(),
        "not w-b's"
    );
    let unknown = ExecutionId::new();
    let held = store
        .extend_leases(ExtendLeasesParams {
            worker: "w-a",
            ids: &[e.id, unknown],
            lease_until: at + Duration::hours(1),
        })
        .await
        .unwrap();
    assert_eq!(held, vec![e.id]);
    let rescued = rescue_now(store, at + Duration::minutes(1)).await;
    assert!(rescued.iter().all(|r| r.id != e.id), "an extended lease is not rescued");
    assert_eq!(
        store.get_execution(user.id, e.id).await.unwrap().lease_expires_at,
        Some(at + Duration::hours(1))
    );
}
