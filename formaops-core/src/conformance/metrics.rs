//! The metrics report.

use chrono::Duration;
use rust_decimal::Decimal;

use super::fixtures::{
    completed, enqueue_one, err, execution, ms, new_prompt, new_user, now, provider, result,
};
use crate::execution::{AttemptOutcome, ExecutionErrorCode, ExecutionMetrics, TokenUsage};
use crate::ids::UserId;
use crate::metrics::{MetricsAggregator, MetricsQuery, MetricsReport, MetricsSample};
use crate::page::{Cursor, PageRequest};
use crate::store::{ClaimParams, ExecutionFilter, Store};
use crate::validation::ValidationVerdict;

/// Metrics over a known set of executions: counts, latency percentiles, tokens, cost,
/// validation and the time window.
pub async fn metrics(store: &dyn Store) {
    let user = new_user(store).await;
    let pa = new_prompt(store, user.id, "ma").await;
    let pb = new_prompt(store, user.id, "mb").await;
    let prov = provider();
    let t = now() - Duration::minutes(5);
    // 10 completed on A with latency 10..=100 ms, 2 of them unpriced, 4 validated (3 pass);
    // 1 failed on B; 1 queued on B; 1 outside the window.
    let mut batch = Vec::new();
    for i in 0..10i64 {
        batch.push(execution(user.id, pa.id, &prov, i, t + ms(i)));
    }
    let failed = execution(user.id, pb.id, &prov, 10, t + ms(10));
    let queued = execution(user.id, pb.id, &prov, 11, t + ms(11));
    let outside = execution(user.id, pa.id, &prov, 12, t - Duration::hours(2));
    batch.push(failed.clone());
    batch.push(outside.clone());
    store.enqueue(&batch).await.unwrap();
    let at = now();
    let claimed = store
        .claim(ClaimParams {
            worker: "w",
            provider: &prov,
            limit: 100,
            now: at,
            lease_until: at + Duration::minutes(5),
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 12);
    enqueue_one(store, &queued).await;
    let mut results = Vec::new();
    for (i, e) in batch.iter().enumerate().take(10) {
        let i = i as u64;
        let m = ExecutionMetrics {
            latency_ms: (i + 1) * 10,
            provider_latency_ms: (i + 1) * 5,
            queue_ms: 1,
            token_usage: TokenUsage {
                input: 10,
                output: 5,
                cached: 2,
                reasoning: 0,
                total: 15,
                estimated: false,
            },
            cost_usd: if i < 2 { None } else { Some(Decimal::new(1, 3)) },
        };
        let validation = (i < 4).then(|| ValidationVerdict { passed: i != 0, results: Vec::new() });
        results.push(result(e, "w", completed(m, validation)));
    }
    let fm = ExecutionMetrics {
        latency_ms: 1000,
        provider_latency_ms: 0,
        cost_usd: Some(Decimal::ZERO),
        ..Default::default()
    };
    results.push(result(
        &failed,
        "w",
        AttemptOutcome::Failed { error: err(ExecutionErrorCode::Auth), metrics: Some(fm) },
    ));
    results.push(result(&outside, "w", completed(ExecutionMetrics::default(), None)));
    assert!(store.finish(&results).await.unwrap().iter().all(|x| *x));

    let q = MetricsQuery {
        since: Some(t - Duration::minutes(1)),
        until: Some(now() + Duration::minutes(1)),
        ..Default::default()
    };
    let r = store.metrics(user.id, &q).await.unwrap();
    let s = &r.summary;
    assert_eq!((s.counts.completed, s.counts.failed, s.counts.queued, s.counts.total), (10, 1, 1, 12));
    assert_eq!(s.tokens.input, 100);
    assert_eq!(s.tokens.output, 50);
    assert_eq!(s.tokens.cached, 20);
    assert_eq!(s.tokens.total, 150);
    assert_eq!(s.cost_usd, Decimal::new(8, 3), "8 priced completions at 0.001 + a failure at 0");
    assert_eq!(s.unpriced_executions, 2);
    assert_eq!((s.validated, s.validation_passed), (4, 3));
    assert_eq!(s.validation_pass_rate, Some(0.75));
    // 11 final latencies: 10..=100 and 1000; nearest rank.
    assert_eq!(s.latency_ms.p50, Some(60.0));
    assert_eq!(s.latency_ms.p99, Some(1000.0));
    assert_eq!(r.queue_depth, 1);
    assert_eq!(r.by_prompt.len(), 2);
    assert_eq!(r.by_prompt[0].prompt_id, pa.id, "most executions first");
    assert_eq!(r.by_prompt[0].summary.counts.completed, 10);
    assert_eq!(r.by_prompt[1].summary.counts.total, 2);

    let only_b = MetricsQuery { prompt_id: Some(pb.id), ..q };
    let rb = store.metrics(user.id, &only_b).await.unwrap();
    assert_eq!((rb.summary.counts.failed, rb.summary.counts.total), (1, 2));
    assert_eq!(rb.summary.validation_pass_rate, None);
    let v2 = MetricsQuery { prompt_version: Some(2), ..only_b };
    assert_eq!(store.metrics(user.id, &v2).await.unwrap().summary.counts.total, 0);
    let everything = store.metrics(user.id, &MetricsQuery::default()).await.unwrap();
    assert_eq!(everything.summary.counts.total, 13);

    // A running, a cancelled and a retried execution too; then every query's report must be
    // what the core aggregation makes of the same executions.
    let (running, cancelled, retried) = (
        execution(user.id, pb.id, &prov, 20, t + ms(20)),
        execution(user.id, pa.id, &prov, 21, t + ms(21)),
        execution(user.id, pa.id, &prov, 22, t + ms(22)),
    );
    store.enqueue(&[running.clone(), retried.clone()]).await.unwrap();
    assert_eq!(
        store
            .claim(ClaimParams {
                worker: "w",
                provider: &prov,
                limit: 10,
                now: at,
                lease_until: at + Duration::minutes(5)
            })
            .await
            .unwrap()
            .len(),
        3
    );
    let retry =
        AttemptOutcome::Retry { error: err(ExecutionErrorCode::Timeout), run_after: at + Duration::hours(1) };
    assert_eq!(store.finish(&[result(&retried, "w", retry)]).await.unwrap(), vec![true]);
    enqueue_one(store, &cancelled).await;
    store.cancel(user.id, cancelled.id, at).await.unwrap();
    for query in [
        q,
        only_b,
        v2,
        MetricsQuery::default(),
        MetricsQuery { prompt_id: Some(pa.id), ..Default::default() },
    ] {
        let report = store.metrics(user.id, &query).await.unwrap();
        assert_eq!(report, core_report(store, user.id, &query, report.queue_depth).await, "{query:?}");
    }
    assert_eq!(store.metrics(user.id, &MetricsQuery::default()).await.unwrap().summary.counts.total, 16);
}

/// The core aggregation ([`MetricsAggregator`]) of the user's executions that `query` selects,
/// read through the store's listing.
async fn core_report(
    store: &dyn Store,
    user: UserId,
    query: &MetricsQuery,
    queue_depth: u64,
) -> MetricsReport {
    let filter = ExecutionFilter {
        prompt_id: query.prompt_id,
        since: query.since,
        until: query.until,
        ..Default::default()
    };
    let version = query.prompt_id.and(query.prompt_version);
    let mut aggregator = MetricsAggregator::new();
    let mut page = PageRequest { limit: 100, after: None };
    loop {
        let got = store.list_executions(user, &filter, page).await.unwrap();
        for e in got.items.iter().filter(|e| version.is_none_or(|v| e.prompt_version == v)) {
            aggregator.add(&MetricsSample::of(e));
        }
        match got.next_cursor {
            Some(c) => page.after = Some(Cursor::decode(&c).unwrap()),
            None => break,
        }
    }
    aggregator.finish(query, queue_depth)
}
