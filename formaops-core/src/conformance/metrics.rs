//! The metrics report.

use chrono::Duration;
use rust_decimal::Decimal;

use super::fixtures::{
    completed, enqueue_one, err, execution, ms, new_prompt, new_user, now, provider, rescue_now, result,
};
use std::collections::BTreeMap;

use crate::execution::{
    AttemptOutcome, Execution, ExecutionErrorCode, ExecutionMetrics, ExecutionStatus, TokenUsage,
};
use crate::ids::UserId;
use crate::metrics::rollup::{RELATIVE_ACCURACY, report_window};
use crate::metrics::{
    Granularity, MetricsAggregator, MetricsQuery, MetricsReport, MetricsSample, MetricsSeriesQuery,
    MetricsSummary,
};
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
    assert_eq!(s.cost_usd, Some(Decimal::new(8, 3)), "8 priced completions at 0.001 + a failure at 0");
    assert_eq!(s.unpriced_executions, 2);
    assert_eq!((s.validated, s.validation_passed), (4, 3));
    assert_eq!(s.validation_pass_rate, Some(0.75));
    // 11 final latencies: 10..=100 and 1000; nearest rank, within the rollups' 1 %.
    assert!(close(s.latency_ms.p50, Some(60.0)), "{:?}", s.latency_ms);
    assert!(close(s.latency_ms.p99, Some(1000.0)), "{:?}", s.latency_ms);
    assert_eq!(r.queue_depth, 1);
    assert_eq!(r.by_prompt.len(), 2);
    assert_eq!(r.by_prompt[0].prompt_id, pa.id, "most executions first");
    assert_eq!(r.by_prompt[0].summary.counts.completed, 10);
    assert_eq!(r.by_prompt[1].summary.counts.total, 2);

    let only_b = MetricsQuery { prompt_id: Some(pb.id), ..q };
    let rb = store.metrics(user.id, &only_b).await.unwrap();
    assert_eq!((rb.summary.counts.failed, rb.summary.counts.total), (1, 2));
    assert_eq!(rb.summary.validation_pass_rate, None);
    assert_eq!(rb.summary.cost_usd, Some(Decimal::ZERO), "a priced zero is a known zero");
    let v2 = MetricsQuery { prompt_version: Some(2), ..only_b };
    let empty = store.metrics(user.id, &v2).await.unwrap().summary;
    assert_eq!(empty.counts.total, 0);
    assert_eq!(empty.cost_usd, None, "nothing priced: the cost is unknown, not 0");
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
        assert_agrees(&report, &exact(store, user.id, &query).await, &format!("{query:?}"));
    }
    assert_eq!(store.metrics(user.id, &MetricsQuery::default()).await.unwrap().summary.counts.total, 16);
}

/// Whether a rollup percentile is within the stated error of the exact one.
fn close(got: Option<f64>, exact: Option<f64>) -> bool {
    match (got, exact) {
        (None, None) => true,
        (Some(g), Some(e)) => (g - e).abs() <= RELATIVE_ACCURACY * e.abs() + 1e-9,
        _ => false,
    }
}

/// A rollup summary agrees with the exact one: everything equal but the percentiles, which
/// are within 1 %.
fn assert_summary_agrees(got: &MetricsSummary, exact: &MetricsSummary, what: &str) {
    assert_eq!(got.counts, exact.counts, "{what}: counts");
    assert_eq!(got.tokens, exact.tokens, "{what}: tokens");
    assert_eq!(got.cost_usd, exact.cost_usd, "{what}: cost");
    assert_eq!(got.unpriced_executions, exact.unpriced_executions, "{what}: unpriced");
    assert_eq!((got.validated, got.validation_passed), (exact.validated, exact.validation_passed), "{what}");
    assert_eq!(got.validation_pass_rate, exact.validation_pass_rate, "{what}: pass rate");
    for (g, e) in [(got.latency_ms, exact.latency_ms), (got.provider_latency_ms, exact.provider_latency_ms)] {
        for (a, b) in [(g.p50, e.p50), (g.p95, e.p95), (g.p99, e.p99)] {
            assert!(close(a, b), "{what}: percentile {a:?} vs exact {b:?}");
        }
    }
}

/// The exact answers for a query: the core aggregation, and per version and per label.
struct Exact {
    report: MetricsReport,
    /// Whether the query names a prompt (only then are there breakdowns).
    scoped: bool,
    by_version: BTreeMap<u32, MetricsSummary>,
    by_label: BTreeMap<Option<String>, MetricsSummary>,
}

fn assert_agrees(got: &MetricsReport, exact: &Exact, what: &str) {
    let e = &exact.report;
    assert_summary_agrees(&got.summary, &e.summary, what);
    assert_eq!(got.queue_depth, e.queue_depth, "{what}: queue depth");
    let ids: Vec<_> = got.by_prompt.iter().map(|p| p.prompt_id).collect();
    assert_eq!(ids, e.by_prompt.iter().map(|p| p.prompt_id).collect::<Vec<_>>(), "{what}: prompts");
    for (g, x) in got.by_prompt.iter().zip(&e.by_prompt) {
        assert_summary_agrees(&g.summary, &x.summary, what);
    }
    let total = e.summary.counts.total as f64;
    if !exact.scoped {
        assert!(got.by_version.is_empty() && got.by_label.is_empty(), "{what}: breakdowns need a prompt");
        return;
    }
    assert_eq!(got.by_version.len(), exact.by_version.len(), "{what}: versions");
    for (g, (v, x)) in got.by_version.iter().zip(&exact.by_version) {
        assert_eq!(g.version, *v, "{what}");
        assert!((g.share - x.counts.total as f64 / total).abs() < 1e-9, "{what}: share of v{v}");
        assert_summary_agrees(&g.summary, x, &format!("{what} v{v}"));
    }
    assert_eq!(got.by_label.len(), exact.by_label.len(), "{what}: labels");
    for (g, (l, x)) in got.by_label.iter().zip(&exact.by_label) {
        assert_eq!(&g.label, l, "{what}");
        assert!((g.share - x.counts.total as f64 / total).abs() < 1e-9, "{what}: share of {l:?}");
        assert_summary_agrees(&g.summary, x, &format!("{what} {l:?}"));
    }
}

/// Every execution of the user, through the store's listing.
async fn all_executions(store: &dyn Store, user: UserId) -> Vec<Execution> {
    let mut out = Vec::new();
    let mut page = PageRequest { limit: 100, after: None };
    loop {
        let got = store.list_executions(user, &ExecutionFilter::default(), page).await.unwrap();
        out.extend(got.items);
        match got.next_cursor {
            Some(c) => page.after = Some(Cursor::decode(&c).unwrap()),
            None => return out,
        }
    }
}

/// The core aggregation ([`MetricsAggregator`]) of the user's executions that `query` selects
/// over the window the report reads ([`report_window`]: rounded outward to minutes).
async fn exact(store: &dyn Store, user: UserId, query: &MetricsQuery) -> Exact {
    let (since, until) = report_window(query);
    let version = query.prompt_id.and(query.prompt_version);
    let mut all = MetricsAggregator::new();
    let mut by_version: BTreeMap<u32, MetricsAggregator> = BTreeMap::new();
    let mut by_label: BTreeMap<Option<String>, MetricsAggregator> = BTreeMap::new();
    for e in all_executions(store, user).await.iter().filter(|e| {
        e.created_at >= since
            && e.created_at < until
            && query.prompt_id.is_none_or(|p| p == e.prompt_id)
            && version.is_none_or(|v| e.prompt_version == v)
    }) {
        let s = MetricsSample::of(e);
        all.add(&s);
        by_version.entry(e.prompt_version).or_default().add(&s);
        by_label.entry(e.label.clone()).or_default().add(&s);
    }
    let depth = store.queue_depth(Some(user)).await.unwrap();
    Exact {
        report: all.finish(query, depth),
        scoped: query.prompt_id.is_some(),
        by_version: by_version.into_iter().map(|(k, a)| (k, a.finish(query, 0).summary)).collect(),
        by_label: by_label.into_iter().map(|(k, a)| (k, a.finish(query, 0).summary)).collect(),
    }
}

/// Rollups agree with the exact aggregation across minutes, hours and days, per version and
/// label, through finish, cancel and rescue; the series agrees bucket by bucket.
pub async fn rollups(store: &dyn Store) {
    let user = new_user(store).await;
    let p = new_prompt(store, user.id, "rollups").await;
    let other = new_prompt(store, user.id, "rollups-other").await;
    let prov = provider();
    let at = now();
    let base = at - Duration::hours(31);
    // 40 executions every 47 minutes over 30.5 hours: versions 1 and 2, labels production,
    // staging and none; a quarter on another prompt.
    let mut made = Vec::new();
    for i in 0..40i64 {
        let prompt = if i % 4 == 3 { other.id } else { p.id };
        let mut e = execution(user.id, prompt, &prov, i, base + Duration::minutes(47 * i) + ms(i));
        e.prompt_version = if i % 3 == 0 { 2 } else { 1 };
        e.label = match i % 3 {
            0 => Some("staging".to_string()),
            1 => Some("production".to_string()),
            _ => None,
        };
        e.max_attempts = 1;
        made.push(e);
    }
    // i % 8 == 5: cancelled; i % 8 == 6: left QUEUED; i % 8 == 7: rescued to FAILED; the rest
    // finished (every fifth FAILED by the worker).
    let (claimed_now, later): (Vec<_>, Vec<_>) = made.iter().cloned().partition(|e| {
        let i = e.queue_key % 8;
        i != 5 && i != 6
    });
    store.enqueue(&claimed_now).await.unwrap();
    let claimed = store
        .claim(ClaimParams { worker: "w", provider: &prov, limit: 100, now: at, lease_until: at - ms(1) })
        .await
        .unwrap();
    assert_eq!(claimed.len(), claimed_now.len());
    store.enqueue(&later).await.unwrap();
    let mut results = Vec::new();
    for e in claimed_now.iter().filter(|e| e.queue_key % 8 != 7) {
        let i = e.queue_key as u64;
        let m = ExecutionMetrics {
            latency_ms: (i * 137) % 900 + i,
            provider_latency_ms: (i * 61) % 400,
            queue_ms: 1,
            token_usage: TokenUsage {
                input: i,
                output: 2 * i,
                cached: i / 2,
                reasoning: 0,
                total: 3 * i,
                estimated: false,
            },
            cost_usd: (!i.is_multiple_of(6)).then(|| Decimal::new(i as i64, 4)),
        };
        let outcome = if i.is_multiple_of(5) {
            AttemptOutcome::Failed { error: err(ExecutionErrorCode::Auth), metrics: Some(m) }
        } else {
            completed(
                m,
                (i.is_multiple_of(2))
                    .then(|| ValidationVerdict { passed: i.is_multiple_of(4), results: Vec::new() }),
            )
        };
        results.push(result(e, "w", outcome));
    }
    assert!(store.finish(&results).await.unwrap().iter().all(|x| *x));
    for e in made.iter().filter(|e| e.queue_key % 8 == 5) {
        store.cancel(user.id, e.id, at).await.unwrap();
    }
    let rescued = rescue_now(store, at).await;
    let mine: Vec<_> = rescued.iter().filter(|e| e.user_id == user.id).collect();
    assert_eq!(mine.len(), 5, "the leases of i % 8 == 7 expired");
    assert!(mine.iter().all(|e| e.status == ExecutionStatus::Failed));

    let window = MetricsQuery {
        since: Some(base - Duration::minutes(3) - ms(500)),
        until: Some(at + Duration::minutes(2)),
        ..Default::default()
    };
    for query in [
        window,
        MetricsQuery { since: Some(base + Duration::hours(7) + ms(1)), ..window },
        MetricsQuery { prompt_id: Some(p.id), ..window },
        MetricsQuery { prompt_id: Some(p.id), prompt_version: Some(2), ..window },
        MetricsQuery { prompt_id: Some(p.id), ..Default::default() },
        MetricsQuery::default(),
    ] {
        let got = store.metrics(user.id, &query).await.unwrap();
        assert_agrees(&got, &exact(store, user.id, &query).await, &format!("{query:?}"));
    }
    let r = store.metrics(user.id, &MetricsQuery { prompt_id: Some(p.id), ..window }).await.unwrap();
    assert_eq!(r.by_version.iter().map(|v| v.version).collect::<Vec<_>>(), vec![1, 2]);
    let labels: Vec<_> = r.by_label.iter().map(|l| l.label.as_deref()).collect();
    assert_eq!(labels, vec![None, Some("production"), Some("staging")]);
    assert!((r.by_version.iter().map(|v| v.share).sum::<f64>() - 1.0).abs() < 1e-9);
    assert_eq!(r.summary.counts.total, 30);

    // The series: each hour's point is the exact aggregation of the hour's final executions.
    let all = all_executions(store, user.id).await;
    for label in [None, Some("staging")] {
        let q = MetricsSeriesQuery {
            bucket: Granularity::Hour,
            since: Some(Granularity::Hour.floor(base)),
            until: Some(Granularity::Hour.ceil(at)),
            prompt_id: label.map(|_| p.id),
            prompt_version: None,
            label: label.map(str::to_string),
        };
        let series = store.metrics_series(user.id, &q).await.unwrap();
        let mut points = 0;
        for pt in &series.points {
            let end = pt.start + Duration::hours(1);
            let mut a = MetricsAggregator::new();
            for e in all.iter().filter(|e| {
                e.created_at >= pt.start
                    && e.created_at < end
                    && e.status.is_final()
                    && label.is_none_or(|l| e.label.as_deref() == Some(l) && e.prompt_id == p.id)
            }) {
                a.add(&MetricsSample::of(e));
            }
            let x = a.finish(&MetricsQuery::default(), 0).summary;
            assert_summary_agrees(&pt.summary, &x, &format!("{label:?} at {}", pt.start));
            points += pt.summary.counts.total;
        }
        let finals = all
            .iter()
            .filter(|e| {
                e.status.is_final()
                    && label.is_none_or(|l| e.label.as_deref() == Some(l) && e.prompt_id == p.id)
            })
            .count() as u64;
        assert_eq!(points, finals, "{label:?}: every final execution is in one point");
    }
    // Another user sees none of it.
    let stranger = new_user(store).await;
    assert_eq!(store.metrics(stranger.id, &MetricsQuery::default()).await.unwrap().summary.counts.total, 0);
}
