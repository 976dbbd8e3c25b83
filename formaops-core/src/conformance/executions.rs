//! Executions: reads and filters, finishing attempts, cancelling.

use chrono::Duration;
use rust_decimal::Decimal;

use super::fixtures::{
    completed, enqueue_one, err, execution, is_conflict, is_not_found, ms, new_prompt, new_user, now,
    provider, result,
};
use crate::execution::{
    AttemptOutcome, Execution, ExecutionErrorCode, ExecutionMetrics, ExecutionStatus, TokenUsage,
};
use crate::ids::ExecutionId;
use crate::page::{Cursor, PageRequest};
use crate::store::{ClaimParams, EnqueueOutcome, ExecutionFilter, Store};

/// Listing executions: newest first, keyset pages, every filter.
pub async fn execution_pagination_and_filters(store: &dyn Store) {
    let user = new_user(store).await;
    let pa = new_prompt(store, user.id, "a").await;
    let pb = new_prompt(store, user.id, "b").await;
    let prov = provider();
    let t = now() - Duration::minutes(30);
    let mut all = Vec::new();
    for i in 0..13i64 {
        let p = if i % 3 == 0 { pb.id } else { pa.id };
        all.push(execution(user.id, p, &prov, i, t + ms(i / 2)));
    }
    let outcomes = store.enqueue(&all).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == EnqueueOutcome::Created));
    all.sort_by_key(|e| std::cmp::Reverse((e.created_at, e.id)));

    let collect = |filter: ExecutionFilter, limit: u32| async move {
        let mut got = Vec::new();
        let mut page = PageRequest { limit, after: None };
        loop {
            let res = store.list_executions(user.id, &filter, page).await.unwrap();
            assert!(res.items.len() <= limit as usize);
            got.extend(res.items.iter().map(|e| e.id));
            match res.next_cursor {
                Some(c) => page.after = Some(Cursor::decode(&c).unwrap()),
                None => break,
            }
        }
        got
    };
    let ids = |f: &dyn Fn(&Execution) -> bool| all.iter().filter(|e| f(e)).map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(
        collect(ExecutionFilter::default(), 4).await,
        ids(&|_| true),
        "executions newest first, no gaps"
    );
    let by_prompt = ExecutionFilter { prompt_id: Some(pb.id), ..Default::default() };
    assert_eq!(collect(by_prompt, 2).await, ids(&|e| e.prompt_id == pb.id));
    let (since, until) = (t + ms(2), t + ms(5));
    let window = ExecutionFilter { since: Some(since), until: Some(until), ..Default::default() };
    assert_eq!(collect(window, 2).await, ids(&|e| e.created_at >= since && e.created_at < until));
    // Status filter: cancel two.
    store.cancel(user.id, all[0].id, now()).await.unwrap();
    store.cancel(user.id, all[5].id, now()).await.unwrap();
    let cancelled = ExecutionFilter { status: Some(ExecutionStatus::Cancelled), ..Default::default() };
    assert_eq!(collect(cancelled, 1).await, vec![all[0].id, all[5].id]);
    let queued = ExecutionFilter { status: Some(ExecutionStatus::Queued), ..Default::default() };
    assert_eq!(collect(queued, 5).await.len(), 11);
}

/// Recording attempt results (completed, retry, failed) and the rules that refuse them.
pub async fn finish_rules(store: &dyn Store) {
    let user = new_user(store).await;
    let p = new_prompt(store, user.id, "finish").await;
    let prov = provider();
    let t = now() - Duration::seconds(1);
    let ok = execution(user.id, p.id, &prov, 0, t);
    let retried = execution(user.id, p.id, &prov, 1, t);
    let failed = execution(user.id, p.id, &prov, 2, t);
    let queued = execution(user.id, p.id, &prov, 3, t);
    store.enqueue(&[ok.clone(), retried.clone(), failed.clone()]).await.unwrap();
    let at = now();
    let lease = at + Duration::minutes(5);
    assert_eq!(
        store
            .claim(ClaimParams { worker: "w", provider: &prov, limit: 3, now: at, lease_until: lease })
            .await
            .unwrap()
            .len(),
        3
    );
    enqueue_one(store, &queued).await;

    let metrics = ExecutionMetrics {
        latency_ms: 12,
        provider_latency_ms: 10,
        queue_ms: 1,
        token_usage: TokenUsage { input: 5, output: 7, cached: 0, reasoning: 0, total: 12, estimated: false },
        cost_usd: Some(Decimal::new(42, 6)),
    };
    let run_after = at + Duration::seconds(30);
    let results = vec![
        result(&ok, "intruder", completed(metrics.clone(), None)),
        result(&ok, "w", completed(metrics.clone(), None)),
        result(&ok, "w", completed(metrics.clone(), None)),
        result(
            &retried,
            "w",
            AttemptOutcome::Retry { error: err(ExecutionErrorCode::ServerError), run_after },
        ),
        result(
            &failed,
            "w",
            AttemptOutcome::Failed { error: err(ExecutionErrorCode::BadRequest), metrics: None },
        ),
        result(&queued, "w", completed(metrics.clone(), None)),
    ];
    let applied = store.finish(&results).await.unwrap();
    assert_eq!(applied, vec![false, true, false, true, true, false], "lease holder only, once, RUNNING only");

    let done = store.get_execution(user.id, ok.id).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.output.as_deref(), Some("out"));
    assert_eq!(done.metrics, Some(metrics));
    assert!(done.finished_at.is_some());
    assert_eq!(done.lease_owner, None);
    let r = store.get_execution(user.id, retried.id).await.unwrap();
    assert_eq!((r.status, r.run_after, r.attempts), (ExecutionStatus::Queued, run_after, 1));
    assert_eq!(r.error.map(|e| e.code.to_string()), Some("server_error".into()));
    assert!(
        store
            .claim(ClaimParams { worker: "w", provider: &prov, limit: 10, now: at, lease_until: lease })
            .await
            .unwrap()
            .iter()
            .all(|e| e.id != retried.id)
    );
    let again = store
        .claim(ClaimParams {
            worker: "w",
            provider: &prov,
            limit: 10,
            now: run_after,
            lease_until: run_after + Duration::minutes(5),
        })
        .await
        .unwrap();
    let again = again.into_iter().find(|e| e.id == retried.id).expect("retry claimable at run_after");
    assert_eq!(again.attempts, 2);
    assert_eq!(again.started_at, Some(at), "started_at is the first claim");
    let f = store.get_execution(user.id, failed.id).await.unwrap();
    assert_eq!(f.status, ExecutionStatus::Failed);
    assert_eq!(f.error.map(|e| e.code.to_string()), Some("bad_request".into()));
}

/// Only QUEUED executions can be cancelled.
pub async fn cancel_rules(store: &dyn Store) {
    let user = new_user(store).await;
    let p = new_prompt(store, user.id, "cancel").await;
    let prov = provider();
    let t = now() - Duration::seconds(1);
    let a = execution(user.id, p.id, &prov, 0, t);
    let b = execution(user.id, p.id, &prov, 1, t);
    store.enqueue(&[a.clone(), b.clone()]).await.unwrap();
    let at = now();
    let c = store.cancel(user.id, a.id, at).await.unwrap();
    assert_eq!(c.status, ExecutionStatus::Cancelled);
    assert_eq!(c.finished_at, Some(at));
    assert!(is_conflict(store.cancel(user.id, a.id, at).await), "cancelled twice");
    let claimed = store
        .claim(ClaimParams {
            worker: "w",
            provider: &prov,
            limit: 10,
            now: at,
            lease_until: at + Duration::minutes(1),
        })
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![b.id],
        "a cancelled execution is not claimed"
    );
    assert!(is_conflict(store.cancel(user.id, b.id, at).await), "RUNNING cannot be cancelled");
    assert!(is_not_found(store.cancel(user.id, ExecutionId::new(), at).await));
}
