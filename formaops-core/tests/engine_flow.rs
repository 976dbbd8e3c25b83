//! The engine's flow end to end on the memory store and the mock provider: execution,
//! faults and retries, deadlines, retry(), idempotency, events, cancel, shutdown.

mod engine_common;

use std::sync::Arc;
use std::time::Duration;

use engine_common::*;
use formaops_core::Error;
use formaops_core::engine::{EngineConfig, ExecuteRequest};
use formaops_core::events::EventKind;
use formaops_core::execution::{ExecutionStatus, Priority};
use formaops_core::ids::UserId;
use formaops_core::metrics::MetricsQuery;
use formaops_core::page::PageRequest;
use formaops_core::prompt::PromptUpdate;
use formaops_core::provider::mock::{MockFault, MockProvider};
use futures::StreamExt;
use rust_decimal::Decimal;

#[tokio::test(start_paused = true)]
async fn execute_completes_with_output_tokens_and_cost() {
    let mock = Arc::new(MockProvider::new().with_latency(Duration::from_millis(250)));
    let engine = engine_with(mock.clone(), config()).await;
    let user = UserId::new();
    let p = prompt(&engine, user).await;
    let done = engine.execute(user, request(p, "hello")).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.output.as_deref(), Some("Say hello"));
    assert_eq!(done.attempts, 1);
    let m = done.metrics.unwrap();
    assert_eq!(m.provider_latency_ms, 250);
    assert!(m.latency_ms >= 250);
    assert_eq!(m.token_usage.output, 3);
    assert_eq!(m.cost_usd, Some(Decimal::ZERO));
    assert_eq!(mock.calls(), 1);
    // Visible through get/list/metrics.
    assert_eq!(engine.get_execution(user, done.id).await.unwrap().status, ExecutionStatus::Completed);
    let page = engine.list_executions(user, Default::default(), PageRequest::default()).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let report = engine.metrics(user, MetricsQuery::default()).await.unwrap();
    assert_eq!(report.summary.counts.completed, 1);
    assert_eq!(report.summary.unpriced_executions, 0);
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn unknown_model_is_unpriced() {
    let engine = engine_with(Arc::new(MockProvider::new()), config()).await;
    let user = UserId::new();
    let mut s = spec("local");
    s.model = Some(serde_json::from_value(serde_json::json!({"model": "my-llama"})).unwrap());
    let (p, _) = engine.create_prompt(user, s).await.unwrap();
    let done = engine.execute(user, request(p.id, "x")).await.unwrap();
    assert_eq!(done.metrics.unwrap().cost_usd, None);
    let report = engine.metrics(user, MetricsQuery::default()).await.unwrap();
    assert_eq!(report.summary.unpriced_executions, 1);
    assert_eq!(report.summary.cost_usd, None, "an unknown cost is not 0");
}

/// An execution is priced at the price in effect when its provider call completed (not when it
/// was queued or started), and its stored cost stays when a later price takes effect.
#[tokio::test(start_paused = true)]
async fn a_price_change_applies_from_its_date_and_never_rewrites_past_costs() {
    use formaops_core::pricing::{ModelPrice, PriceTable};
    let price = |usd: i64| ModelPrice {
        input_per_mtok: Decimal::new(usd, 0),
        output_per_mtok: Decimal::new(usd, 0),
        cached_input_per_mtok: None,
    };
    let now = chrono::Utc::now();
    let tomorrow = (now + chrono::Duration::days(1)).date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let mut prices = PriceTable::empty();
    prices.set_from("priced", now - chrono::Duration::days(365), price(1_000_000));
    prices.set_from("priced", tomorrow, price(3_000_000));
    // Each provider call takes 2 s.
    let mock = Arc::new(MockProvider::new().with_latency(Duration::from_secs(2)));
    let engine = engine_with(mock, EngineConfig { prices, ..config() }).await;
    let user = UserId::new();
    let mut s = spec("dated");
    s.model = Some(serde_json::from_value(serde_json::json!({"model": "priced"})).unwrap());
    let (p, _) = engine.create_prompt(user, s).await.unwrap();

    let today = engine.execute(user, request(p.id, "x")).await.unwrap();
    let tokens = today.metrics.as_ref().unwrap().token_usage.total;
    assert!(tokens > 0);
    // $1 per token in and out (1,000,000 per 1M) until tomorrow.
    assert_eq!(today.metrics.as_ref().unwrap().cost_usd, Some(Decimal::from(tokens)));

    // The engine's clock follows tokio's: move to 1 s before tomorrow 00:00 UTC, so the next
    // call starts under today's price and completes under tomorrow's.
    let wait = (tomorrow - chrono::Duration::seconds(1) - today.finished_at.unwrap()).to_std().unwrap();
    tokio::time::sleep(wait).await;
    let later = engine.execute(user, request(p.id, "x")).await.unwrap();
    assert!(later.started_at.unwrap() < tomorrow, "{:?}", later.started_at);
    assert!(later.finished_at.unwrap() >= tomorrow, "{:?}", later.finished_at);
    let later_tokens = later.metrics.as_ref().unwrap().token_usage.total;
    assert_eq!(later.metrics.unwrap().cost_usd, Some(Decimal::from(3 * later_tokens)));
    // The first execution's stored cost is unchanged.
    let stored = engine.get_execution(user, today.id).await.unwrap();
    assert_eq!(stored.metrics.unwrap().cost_usd, Some(Decimal::from(tokens)));
    engine.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn every_transient_fault_kind_recovers_within_max_attempts() {
    let faults = [
        MockFault::RateLimited { retry_after: None },
        MockFault::ServerError { status: 500 },
        MockFault::ServerError { status: 503 },
        MockFault::Timeout { after: None },
        MockFault::Connection,
    ];
    for fault in faults {
        let mock = Arc::new(MockProvider::new().fail_first(2, fault.clone()));
        let engine =
            engine_with(mock.clone(), EngineConfig { attempt_timeout: Duration::from_secs(5), ..config() })
                .await;
        let user = UserId::new();
        let p = prompt(&engine, user).await;
        let done = engine.execute(user, request(p, "x")).await.unwrap();
        assert_eq!(done.status, ExecutionStatus::Completed, "{fault:?}: {:?}", done.error);
        assert_eq!(done.attempts, 3, "{fault:?}");
        assert_eq!(mock.calls(), 3, "{fault:?}");
        engine.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn attempts_exhausted_fails_with_the_last_error() {
    let mock = Arc::new(MockProvider::new().fail_first(10, MockFault::ServerError { status: 502 }));
    let engine = engine_with(mock.clone(), config()).await;
    let user = UserId::new();
    let p = prompt(&engine, user).await;
    let done = engine.execute(user, request(p, "x")).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Failed);
    assert_eq!(done.attempts, 3);
    assert_eq!(mock.calls(), 3);
    let err = done.error.unwrap();
    assert_eq!(err.code, "server_error");
    assert!(err.message.contains("after 3 attempts"), "{}", err.message);
}

#[tokio::test(start_paused = true)]
async fn permanent_faults_are_not_retried() {
    for fault in [MockFault::BadRequest, MockFault::Auth, MockFault::MalformedResponse] {
        let mock = Arc::new(MockProvider::new().fail_first(1, fault.clone()));
        let engine = engine_with(mock.clone(), config()).await;
        let user = UserId::new();
        let p = prompt(&engine, user).await;
        let done = engine.execute(user, request(p, "x")).await.unwrap();
        assert_eq!(done.status, ExecutionStatus::Failed, "{fault:?}");
        assert_eq!(mock.calls(), 1, "{fault:?}");
        assert!(!done.error.unwrap().transient);
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_respected() {
    let mock = Arc::new(
        MockProvider::new()
            .fail_first(1, MockFault::RateLimited { retry_after: Some(Duration::from_secs(7)) }),
    );
    let engine = engine_with(mock.clone(), config()).await;
    let user = UserId::new();
    let p = prompt(&engine, user).await;
    let start = tokio::time::Instant::now();
    let done = engine.execute(user, request(p, "x")).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(7), "retried after {waited:?}");
    assert!(waited < Duration::from_secs(9), "retried after {waited:?}");
}

#[tokio::test(start_paused = true)]
async fn the_shared_deadline_holds() {
    // Every attempt times out at the attempt timeout (4 s); the execution deadline is 10 s:
    // whatever the attempts, the execution is FAILED by 10 s after acceptance.
    let mock = Arc::new(MockProvider::new().with_latency(Duration::from_secs(60)));
    let cfg = EngineConfig {
        max_attempts: 10,
        attempt_timeout: Duration::from_secs(4),
        execution_timeout: Duration::from_secs(10),
        ..config()
    };
    let engine = engine_with(mock.clone(), cfg).await;
    let user = UserId::new();
    let p = prompt(&engine, user).await;
    let start = tokio::time::Instant::now();
    let done = engine.execute(user, request(p, "x")).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Failed);
    assert_eq!(done.error.as_ref().unwrap().code, "timeout");
    assert!(start.elapsed() <= Duration::from_secs(10), "took {:?}", start.elapsed());
    assert!(done.attempts >= 2 && done.attempts < 10, "{} attempts", done.attempts);
    let f = done.finished_at.unwrap();
    assert!(f <= done.deadline_at);
}

#[tokio::test(start_paused = true)]
async fn retry_rules() {
    let mock = Arc::new(MockProvider::new().fail_first(1, MockFault::BadRequest));
    let engine = engine_with(mock.clone(), config()).await;
    let user = UserId::new();
    let p = prompt(&engine, user).await;
    let failed = engine.execute(user, request(p, "again")).await.unwrap();
    assert_eq!(failed.status, ExecutionStatus::Failed);
    // A new version does not change what the retry runs.
    engine
        .update_prompt(
            user,
            p,
            PromptUpdate { template: Some("Other {{ word }}".into()), ..Default::default() },
        )
        .await
        .unwrap();
    let again = engine.retry(user, failed.id).await.unwrap();
    assert_ne!(again.id, failed.id);
    assert_eq!(again.retry_of, Some(failed.id));
    assert_eq!(again.prompt_version, failed.prompt_version);
    assert_eq!(again.inputs, failed.inputs);
    let done = engine.wait(user, again.id, None).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.output.as_deref(), Some("Say again"));
    // Only FAILED can be retried; another user's is not found.
    assert!(matches!(engine.retry(user, done.id).await, Err(Error::Conflict { .. })));
    assert!(matches!(engine.retry(UserId::new(), failed.id).await, Err(Error::NotFound { .. })));
}

#[tokio::test(start_paused = true)]
async fn idempotency_keys() {
    let engine = engine_with(Arc::new(MockProvider::new()), config()).await;
    let user = UserId::new();
    let p = prompt(&engine, user).await;
    let req = ExecuteRequest { idempotency_key: Some("k1".into()), ..request(p, "x") };
    let first = engine.submit(user, req.clone()).await.unwrap();
    let second = engine.submit(user, req.clone()).await.unwrap();
    assert_eq!(first.id, second.id);
    for changed in [
        ExecuteRequest { priority: Priority::High, ..req.clone() },
        ExecuteRequest { validate_output: true, ..req.clone() },
        ExecuteRequest { inputs: inputs("y"), ..req.clone() },
    ] {
        assert!(matches!(engine.submit(user, changed).await, Err(Error::IdempotencyKeyReused { .. })));
    }
    // Keys are per user.
    let other = UserId::new();
    let p2 = prompt(&engine, other).await;
    let theirs = engine
        .submit(other, ExecuteRequest { idempotency_key: Some("k1".into()), ..request(p2, "x") })
        .await
        .unwrap();
    assert_ne!(theirs.id, first.id);
    // Concurrent duplicates land in the same group commit and still yield one execution.
    let mut handles = Vec::new();
    for _ in 0..20 {
        let (engine, req) =
            (engine.clone(), ExecuteRequest { idempotency_key: Some("k2".into()), ..req.clone() });
        handles.push(tokio::spawn(async move { engine.submit(user, req).await.unwrap().id }));
    }
    let mut ids = Vec::new();
    for h in handles {
        ids.push(h.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn events_sequence_for_a_retried_execution() {
    let mock = Arc::new(MockProvider::new().fail_first(1, MockFault::ServerError { status: 503 }));
    let engine = engine_with(mock, config()).await;
    let user = UserId::new();
    let p = prompt(&engine, user).await;
    let mut all = engine.subscribe(user, None);
    let mut others = engine.subscribe(UserId::new(), None);
    let done = engine.execute(user, request(p, "x")).await.unwrap();
    let mut kinds = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(10), all.next()).await {
        assert_eq!(e.execution_id, done.id);
        kinds.push((e.kind, e.attempt));
    }
    assert_eq!(
        kinds,
        vec![
            (EventKind::Queued, 0),
            (EventKind::Running, 1),
            (EventKind::RetryScheduled, 1),
            (EventKind::Running, 2),
            (EventKind::Completed, 2)
        ]
    );
    assert!(tokio::time::timeout(Duration::from_millis(10), others.next()).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn follow_ends_at_the_final_event() {
    let mock = Arc::new(
        MockProvider::new()
            .with_latency(Duration::from_secs(1))
            .fail_first(1, MockFault::ServerError { status: 503 }),
    );
    let engine = engine_with(mock, config()).await;
    let user = UserId::new();
    let p = prompt(&engine, user).await;
    let submitted = engine.submit(user, request(p, "x")).await.unwrap();
    let follow = engine.follow(user, submitted.id).await.unwrap();
    assert_eq!(follow.snapshot.id, submitted.id);
    // The stream ends by itself after the final event: no timeout needed.
    let events: Vec<_> = follow.events.collect().await;
    let last = events.last().unwrap();
    assert!(last.is_final() && last.kind == EventKind::Completed, "{events:?}");
    assert!(events[..events.len() - 1].iter().all(|e| !e.is_final()), "{events:?}");
    assert!(events.iter().any(|e| e.kind == EventKind::RetryScheduled), "{events:?}");

    // A final execution: the snapshot, and no events.
    let done = engine.follow(user, submitted.id).await.unwrap();
    assert_eq!(done.snapshot.status, ExecutionStatus::Completed);
    assert_eq!(done.events.count().await, 0);
    // Another user's execution is not found.
    assert!(matches!(engine.follow(UserId::new(), submitted.id).await, Err(Error::NotFound { .. })));
}

#[tokio::test(start_paused = true)]
async fn a_follower_that_missed_the_final_event_still_ends() {
    let mock = Arc::new(MockProvider::new().with_latency(Duration::from_secs(1)));
    let engine = engine_with(mock, EngineConfig { provider_concurrency: 10_000, ..config() }).await;
    let user = UserId::new();
    let p = prompt(&engine, user).await;
    let followed = engine.submit(user, request(p, "x")).await.unwrap();
    let follow = engine.follow(user, followed.id).await.unwrap();
    assert!(!follow.snapshot.status.is_final());
    // The follower reads nothing while its execution finishes and the bus overflows.
    engine.wait(user, followed.id, None).await.unwrap();
    let others = formaops_core::engine::BUS_CAPACITY / 2;
    let mut ids = Vec::with_capacity(others);
    for i in 0..others {
        ids.push(engine.submit(user, request(p, &i.to_string())).await.unwrap().id);
    }
    for id in ids {
        engine.wait(user, id, None).await.unwrap();
    }
    let events: Vec<_> = tokio::time::timeout(Duration::from_secs(60), follow.events.collect())
        .await
        .expect("the follow ends although its final event was dropped");
    let last = events.last().unwrap();
    assert_eq!((last.execution_id, last.kind), (followed.id, EventKind::Completed), "{events:?}");
}

#[tokio::test(start_paused = true)]
async fn cancel_and_archived_prompts() {
    let mock = Arc::new(MockProvider::new().with_latency(Duration::from_secs(1)));
    let engine = engine_with(mock, EngineConfig { provider_concurrency: 1, ..config() }).await;
    let user = UserId::new();
    let p = prompt(&engine, user).await;
    let first = engine.submit(user, request(p, "a")).await.unwrap();
    let second = engine.submit(user, request(p, "b")).await.unwrap();
    let mut events = engine.subscribe(user, Some(second.id));
    tokio::task::yield_now().await;
    let cancelled = engine.cancel(user, second.id).await.unwrap();
    assert_eq!(cancelled.status, ExecutionStatus::Cancelled);
    assert_eq!(events.next().await.unwrap().kind, EventKind::Cancelled);
    let done = engine.wait(user, first.id, None).await.unwrap();
    assert!(matches!(engine.cancel(user, done.id).await, Err(Error::Conflict { .. })));
    engine.archive_prompt(user, p).await.unwrap();
    assert!(matches!(engine.submit(user, request(p, "c")).await, Err(Error::Conflict { .. })));
    assert!(engine.get_execution(user, first.id).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn graceful_shutdown_finishes_running_and_leaves_queued() {
    let mock = Arc::new(MockProvider::new().with_latency(Duration::from_secs(2)));
    let engine = engine_with(mock.clone(), EngineConfig { provider_concurrency: 2, ..config() }).await;
    let user = UserId::new();
    let p = prompt(&engine, user).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(engine.submit(user, request(p, &i.to_string())).await.unwrap().id);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    engine.shutdown().await;
    let mut statuses = Vec::new();
    for id in &ids {
        statuses.push(engine.get_execution(user, *id).await.unwrap().status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == ExecutionStatus::Completed).count(), 2, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == ExecutionStatus::Queued).count(), 4, "{statuses:?}");
    assert_eq!(mock.calls(), 2);
    assert!(matches!(engine.submit(user, request(p, "late")).await, Err(Error::ShuttingDown)));
    assert!(engine.health().await.shutting_down);
}

#[tokio::test(start_paused = true)]
async fn limits_are_core_rules_for_every_adapter() {
    let engine = engine_with(Arc::new(MockProvider::new()), config()).await;
    let user = UserId::new();
    let p = prompt(&engine, user).await;
    let field = |r: Result<_, Error>| match r {
        Err(Error::InvalidArgument { field, .. }) => field,
        other => format!("unexpected {:?}", other.map(|_| ())),
    };
    // Idempotency keys: 1 to 255 visible ASCII characters.
    let long = "k".repeat(formaops_core::engine::MAX_IDEMPOTENCY_KEY_BYTES + 1);
    for bad in ["", "with space", "caf\u{e9}", long.as_str()] {
        let r = ExecuteRequest { idempotency_key: Some(bad.to_string()), ..request(p, "x") };
        assert_eq!(field(engine.submit(user, r).await.map(|_| ())), "idempotencyKey", "{bad:?}");
    }
    let ok = ExecuteRequest { idempotency_key: Some("order-42/~!".into()), ..request(p, "x") };
    engine.submit(user, ok).await.unwrap();
    // A version filter needs a prompt filter.
    let q = MetricsQuery { prompt_version: Some(1), ..Default::default() };
    assert_eq!(field(engine.metrics(user, q).await.map(|_| ())), "version");
    // `since` before `until`, for metrics and lists alike.
    let t = chrono::Utc::now();
    let q = MetricsQuery { since: Some(t), until: Some(t), ..Default::default() };
    assert_eq!(field(engine.metrics(user, q).await.map(|_| ())), "since");
    let f = formaops_core::store::ExecutionFilter { since: Some(t), until: Some(t), ..Default::default() };
    assert_eq!(field(engine.list_executions(user, f, PageRequest::default()).await.map(|_| ())), "since");
    // One provider concurrency bound.
    let too_many = formaops_core::provider::config::MAX_CONCURRENCY + 1;
    let started =
        formaops_core::engine::FormaOps::builder(Arc::new(formaops_core::store::MemoryStore::new()))
            .config(EngineConfig { provider_concurrency: too_many, ..config() })
            .start()
            .await;
    assert_eq!(field(started.map(|_| ())), "provider_concurrency");
}

#[tokio::test(start_paused = true)]
async fn invalid_submissions_are_refused_before_queueing() {
    let engine = engine_with(Arc::new(MockProvider::new()), config()).await;
    let user = UserId::new();
    let p = prompt(&engine, user).await;
    // Someone else's prompt is not found.
    assert!(matches!(engine.submit(UserId::new(), request(p, "x")).await, Err(Error::NotFound { .. })));
    // A version that does not exist.
    let req = ExecuteRequest { version: Some(9), ..request(p, "x") };
    assert!(matches!(engine.submit(user, req).await, Err(Error::NotFound { .. })));
    // An unknown provider is named.
    let mut s = spec("elsewhere");
    s.model = Some(serde_json::from_value(serde_json::json!({"provider": "nope", "model": "m"})).unwrap());
    match engine.create_prompt(user, s).await {
        Err(Error::InvalidPrompt { problems }) => assert!(problems[0].message.contains("nope")),
        other => panic!("{other:?}"),
    }
    assert_eq!(engine.store().queue_depth(Some(user)).await.unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn prompt_versions_and_expected_version() {
    let engine = engine_with(Arc::new(MockProvider::new()), config()).await;
    let user = UserId::new();
    let (p, v1) = engine.create_prompt(user, spec("versions")).await.unwrap();
    let (p2, v2) = engine
        .update_prompt(
            user,
            p.id,
            PromptUpdate { description: Some("d".into()), expected_version: Some(1), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(p2.current_version, 2);
    assert_eq!(v2.template, v1.template);
    assert_eq!(v2.variables, v1.variables);
    let stale = PromptUpdate { template: Some("x".into()), expected_version: Some(1), ..Default::default() };
    assert!(matches!(engine.update_prompt(user, p.id, stale).await, Err(Error::Conflict { .. })));
    let (_, got) = engine.get_prompt(user, p.id, Some(1)).await.unwrap();
    assert_eq!(got, v1);
    assert!(matches!(engine.create_prompt(user, spec("versions")).await, Err(Error::Conflict { .. })));
}

#[tokio::test(start_paused = true)]
async fn output_validation_verdict_is_stored_apart_from_status() {
    let mock = Arc::new(MockProvider::new().with_reply_fn(|r| {
        let last = &r.messages[r.messages.len() - 1].content;
        if last.contains("good") { r#"{"answer": 42}"#.to_string() } else { "not json".to_string() }
    }));
    let engine = engine_with(mock, config()).await;
    let user = UserId::new();
    let mut s = spec("validated");
    s.validations = serde_json::from_value(serde_json::json!([
        {"type": "json_schema", "schema": {"type": "object", "required": ["answer"]}}
    ]))
    .unwrap();
    let (p, _) = engine.create_prompt(user, s).await.unwrap();
    let good = engine
        .execute(user, ExecuteRequest { validate_output: true, ..request(p.id, "good") })
        .await
        .unwrap();
    assert_eq!(good.status, ExecutionStatus::Completed);
    assert!(good.validation.as_ref().unwrap().passed);
    assert_eq!(good.validated_output, Some(serde_json::json!({"answer": 42})));
    let bad =
        engine.execute(user, ExecuteRequest { validate_output: true, ..request(p.id, "bad") }).await.unwrap();
    assert_eq!(bad.status, ExecutionStatus::Completed, "a failed verdict does not fail the execution");
    let verdict = bad.validation.unwrap();
    assert!(!verdict.passed);
    assert!(verdict.results.iter().any(|r| !r.passed && r.reason.is_some()));
    assert_eq!(bad.validated_output, None);
    // Without validate_output no verdict is computed.
    let plain = engine.execute(user, request(p.id, "bad")).await.unwrap();
    assert_eq!(plain.validation, None);
    let report = engine.metrics(user, MetricsQuery::default()).await.unwrap();
    assert_eq!(report.summary.validation_pass_rate, Some(0.5));
}

#[tokio::test(start_paused = true)]
async fn health_reports_store_queue_and_providers() {
    let engine =
        engine_with(Arc::new(MockProvider::new()), EngineConfig { provider_concurrency: 4, ..config() })
            .await;
    let h = engine.health().await;
    assert!(h.store_ok && h.workers_running && !h.shutting_down);
    assert_eq!(h.queue_depth, Some(0));
    assert_eq!(h.providers.len(), 1);
    assert_eq!(
        (h.providers[0].name.as_str(), h.providers[0].concurrency, h.providers[0].in_flight),
        ("mock", 4, 0)
    );
    engine.shutdown().await;
    assert!(!engine.health().await.workers_running);
}
