//! Focused behaviour tests of both SQL stores (the shared conformance suite runs in
//! `conformance.rs`). Every test runs against SQLite (temp file) and Postgres (fresh database).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use formaops_core::Error;
use formaops_core::conformance::rescue_now;
use formaops_core::events::{EventKind, ExecutionEvent};
use formaops_core::execution::{
    AttemptOutcome, AttemptResult, Execution, ExecutionError, ExecutionMetrics, ExecutionStatus,
    NewExecution, Priority, TokenUsage,
};
use formaops_core::ids::{CredentialId, ExecutionId, PromptId, UserId};
use formaops_core::metrics::{Granularity, MetricsQuery, MetricsSeriesQuery};
use formaops_core::page::PageRequest;
use formaops_core::prompt::{ModelConfig, Prompt, PromptStatus, PromptVersion};
use formaops_core::store::{
    ClaimParams, EnqueueOutcome, ExecutionFilter, ExtendLeasesParams, PromptFilter, Store, VersionPageRequest,
};
use formaops_core::user::{Credential, CredentialKind, User};
use formaops_core::validation::{RuleOutcome, ValidationVerdict};
use futures::StreamExt;
use rust_decimal::Decimal;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn execution(user: UserId, n: i64) -> Execution {
    let created = t0() + Duration::milliseconds(n);
    Execution::queued(NewExecution {
        user_id: user,
        prompt_id: PromptId::new(),
        prompt_version: 1,
        inputs: serde_json::json!({"topic": "rust", "n": n}).as_object().unwrap().clone(),
        priority: Priority::Normal,
        validate_output: true,
        provider: "mock".into(),
        model: "gpt-4o-mini".into(),
        max_attempts: 3,
        retry_of: None,
        idempotency_key: None,
        created_at: created,
        deadline_at: created + Duration::hours(1),
        queue_key: n,
    })
}

fn completed(e: &Execution, worker: &str, cost: Option<Decimal>) -> AttemptResult {
    AttemptResult {
        id: e.id,
        user_id: e.user_id,
        worker: worker.into(),
        outcome: AttemptOutcome::Completed {
            output: "{\"ok\":true}".into(),
            validated_output: Some(serde_json::json!({"ok": true})),
            validation: Some(ValidationVerdict {
                passed: true,
                results: vec![RuleOutcome { rule: "json".into(), passed: true, reason: None }],
            }),
            metrics: ExecutionMetrics {
                latency_ms: 120,
                provider_latency_ms: 100,
                queue_ms: 5,
                token_usage: TokenUsage {
                    input: 10,
                    output: 4,
                    cached: 2,
                    reasoning: 1,
                    total: 14,
                    estimated: false,
                },
                cost_usd: cost,
            },
        },
        finished_at: t0() + Duration::seconds(10),
        finish_reason: Some("stop".into()),
    }
}

fn prompt(user: UserId, name: &str) -> (Prompt, PromptVersion) {
    let p = Prompt {
        id: PromptId::new(),
        user_id: user,
        name: name.into(),
        description: Some("d".into()),
        status: PromptStatus::Active,
        current_version: 1,
        created_at: t0(),
        updated_at: t0(),
    };
    let v = PromptVersion {
        prompt_id: p.id,
        version: 1,
        template: "Hello {{ name }}".into(),
        system_template: None,
        variables: vec![],
        validations: vec![],
        model: ModelConfig::default(),
        created_at: t0(),
        author: user,
    };
    (p, v)
}

/// `worker`'s claim of up to `limit` executions on the mock provider, due at `now`, leased
/// until `lease_until`.
fn claim_params(worker: &str, limit: u32, now: DateTime<Utc>, lease_until: DateTime<Utc>) -> ClaimParams<'_> {
    ClaimParams { worker, provider: "mock", limit, now, lease_until }
}

/// Enqueues `n` executions of a new user, then worker `w` claims `claimed` of them at
/// t0 + 1 s (30 s leases): the user, the executions (in queue order) and the claim time.
async fn enqueue_and_claim(s: &dyn Store, n: i64, claimed: u32) -> (UserId, Vec<Execution>, DateTime<Utc>) {
    let user = UserId::new();
    let execs: Vec<Execution> = (0..n).map(|i| execution(user, i)).collect();
    s.enqueue(&execs).await.unwrap();
    let now = t0() + Duration::seconds(1);
    s.claim(claim_params("w", claimed, now, now + Duration::seconds(30))).await.unwrap();
    (user, execs, now)
}

/// Eight workers (`w0`..`w7`, worker `w` on `stores[w % stores.len()]`) claim `limit` at a
/// time at `now` (60 s leases) until nothing is left: every id they received.
async fn claim_concurrently(stores: &[Arc<dyn Store>], limit: u32, now: DateTime<Utc>) -> Vec<ExecutionId> {
    let mut tasks = Vec::new();
    for w in 0..8 {
        let s = stores[w % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            let worker = format!("w{w}");
            let mut got = Vec::new();
            loop {
                let batch =
                    s.claim(claim_params(&worker, limit, now, now + Duration::seconds(60))).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|e| e.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

async fn users_and_credentials(s: &dyn Store) {
    let u = User { id: UserId::new(), email: "a@example.com".into(), is_admin: false, created_at: t0() };
    s.create_user(&u, "$argon2id$hash").await.unwrap();
    let dup = User { id: UserId::new(), ..u.clone() };
    assert!(matches!(s.create_user(&dup, "x").await, Err(Error::Conflict { .. })));
    let found = s.user_by_email("a@example.com").await.unwrap().unwrap();
    assert_eq!(found.user, u);
    assert_eq!(found.password_hash, "$argon2id$hash");
    assert_eq!(s.count_users().await.unwrap(), 1);
    let c = Credential {
        id: CredentialId::new(),
        user_id: u.id,
        kind: CredentialKind::ApiKey,
        name: Some("ci".into()),
        token_hash: vec![1, 2, 3],
        created_at: t0(),
        expires_at: Some(t0() + Duration::days(1)),
        revoked_at: None,
    };
    s.create_credential(&c).await.unwrap();
    let (au, ac) = s.authenticate(&[1, 2, 3], t0()).await.unwrap().unwrap();
    assert_eq!((au, ac), (u.clone(), c.clone()));
    assert!(s.authenticate(&[1, 2, 3], t0() + Duration::days(2)).await.unwrap().is_none(), "expired");
    assert_eq!(s.list_credentials(u.id, CredentialKind::ApiKey).await.unwrap(), vec![c.clone()]);
    assert!(matches!(s.revoke_credential(UserId::new(), c.id, t0()).await, Err(Error::NotFound { .. })));
    s.revoke_credential(u.id, c.id, t0()).await.unwrap();
    s.revoke_credential(u.id, c.id, t0()).await.unwrap();
    assert!(s.authenticate(&[1, 2, 3], t0()).await.unwrap().is_none(), "revoked");
    assert!(s.list_credentials(u.id, CredentialKind::ApiKey).await.unwrap().is_empty());
}

async fn prompts_and_versions(s: &dyn Store) {
    let user = UserId::new();
    let (p, v1) = prompt(user, "greet");
    s.insert_prompt(&p, &v1).await.unwrap();
    let (p2, v2) = prompt(user, "greet");
    assert!(matches!(s.insert_prompt(&p2, &v2).await, Err(Error::Conflict { .. })), "duplicate active name");
    // Another user may use the name.
    let (p3, v3) = prompt(UserId::new(), "greet");
    s.insert_prompt(&p3, &v3).await.unwrap();
    assert_eq!(s.get_prompt(user, p.id).await.unwrap(), p);
    assert!(matches!(s.get_prompt(p3.user_id, p.id).await, Err(Error::NotFound { .. })), "other user's");
    assert_eq!(s.get_version(user, p.id, 1).await.unwrap(), v1);

    let mut pv2 = p.clone();
    pv2.current_version = 2;
    pv2.updated_at = t0() + Duration::seconds(1);
    let next = PromptVersion { version: 2, template: "Hi {{ name }}".into(), ..v1.clone() };
    s.insert_version(&pv2, &next).await.unwrap();
    assert!(matches!(s.insert_version(&pv2, &next).await, Err(Error::Conflict { .. })), "lost race");
    let foreign = Prompt { user_id: UserId::new(), ..pv2.clone() };
    assert!(matches!(s.insert_version(&foreign, &next).await, Err(Error::NotFound { .. })));
    assert_eq!(s.get_prompt(user, p.id).await.unwrap().current_version, 2);

    let page = s.list_versions(user, p.id, VersionPageRequest { limit: 1, before: None }).await.unwrap();
    assert_eq!(page.items[0].version, 2);
    assert_eq!(page.next_cursor.as_deref(), Some("2"));
    let page = s.list_versions(user, p.id, VersionPageRequest { limit: 1, before: Some(2) }).await.unwrap();
    assert_eq!(page.items, vec![v1.clone()]);
    assert_eq!(page.next_cursor, None);

    // Archive frees the name; restore conflicts once it is taken.
    let archived = s.set_prompt_status(user, p.id, PromptStatus::Archived, t0()).await.unwrap();
    assert_eq!(archived.status, PromptStatus::Archived);
    s.insert_prompt(&p2, &v2).await.unwrap();
    assert!(matches!(
        s.set_prompt_status(user, p.id, PromptStatus::Active, t0()).await,
        Err(Error::Conflict { .. })
    ));
    let listed = s.list_prompts(user, &PromptFilter::default(), PageRequest::default()).await.unwrap();
    assert_eq!(listed.items.iter().map(|p| p.id).collect::<Vec<_>>(), vec![p2.id]);
    let listed = s
        .list_prompts(user, &PromptFilter { status: Some(PromptStatus::Archived) }, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
}

async fn enqueue_claim_finish(s: &dyn Store) {
    let user = UserId::new();
    let mut a = execution(user, 1);
    a.idempotency_key = Some("k1".into());
    a.metrics = None;
    let b = execution(user, 2);
    let out = s.enqueue(&[a.clone(), b.clone()]).await.unwrap();
    assert_eq!(out, vec![EnqueueOutcome::Created, EnqueueOutcome::Created]);
    assert_eq!(s.get_execution(user, a.id).await.unwrap(), a, "round trip");
    // Same key: the existing one comes back, nothing inserted.
    let mut again = execution(user, 3);
    again.idempotency_key = Some("k1".into());
    let out = s.enqueue(&[again.clone()]).await.unwrap();
    assert_eq!(out, vec![EnqueueOutcome::Existing(Box::new(a.clone()))]);
    assert!(matches!(s.get_execution(user, again.id).await, Err(Error::NotFound { .. })));
    assert_eq!(s.queue_depth(Some(user)).await.unwrap(), 2);

    // Not yet runnable: nothing claimed.
    assert!(s.claim(claim_params("w1", 10, t0(), t0() + Duration::seconds(30))).await.unwrap().is_empty());
    let now = t0() + Duration::seconds(1);
    let lease = now + Duration::seconds(30);
    let claimed = s.claim(claim_params("w1", 10, now, lease)).await.unwrap();
    assert_eq!(claimed.iter().map(|e| e.id).collect::<Vec<_>>(), vec![a.id, b.id], "queue_key order");
    assert!(claimed.iter().all(|e| e.status == ExecutionStatus::Running
        && e.attempts == 1
        && e.lease_owner.as_deref() == Some("w1")
        && e.lease_expires_at == Some(lease)
        && e.started_at == Some(now)));
    assert!(s.claim(claim_params("w2", 10, now, lease)).await.unwrap().is_empty());

    let later = lease + Duration::seconds(30);
    assert_eq!(
        s.extend_leases(ExtendLeasesParams { worker: "w1", ids: &[a.id, b.id], lease_until: later })
            .await
            .unwrap(),
        vec![a.id, b.id]
    );
    assert!(
        s.extend_leases(ExtendLeasesParams { worker: "w2", ids: &[a.id], lease_until: later })
            .await
            .unwrap()
            .is_empty()
    );

    // Wrong worker refused; right worker once; twice refused.
    let cost = Some(Decimal::new(123456789, 12));
    assert_eq!(s.finish(&[completed(&a, "w2", cost)]).await.unwrap(), vec![false]);
    let retry = AttemptResult {
        id: b.id,
        user_id: user,
        worker: "w1".into(),
        outcome: AttemptOutcome::Retry {
            error: ExecutionError {
                code: formaops_core::execution::ExecutionErrorCode::RateLimited,
                message: "429".into(),
                transient: true,
                details: None,
            },
            run_after: now + Duration::seconds(5),
        },
        finished_at: now,
        finish_reason: None,
    };
    assert_eq!(
        s.finish(&[completed(&a, "w1", cost), retry, completed(&a, "w1", cost)]).await.unwrap(),
        vec![true, true, false]
    );
    assert_eq!(s.finish(&[completed(&a, "w1", None)]).await.unwrap(), vec![false]);
    let done = s.get_execution(user, a.id).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.metrics.as_ref().unwrap().cost_usd, cost, "cost kept exactly");
    assert_eq!(done.validated_output, Some(serde_json::json!({"ok": true})));
    assert_eq!(done.lease_owner, None);
    let b2 = s.get_execution(user, b.id).await.unwrap();
    assert_eq!(b2.status, ExecutionStatus::Queued);
    assert_eq!(b2.run_after, now + Duration::seconds(5));
    assert_eq!(b2.error.as_ref().unwrap().code, "rate_limited");

    // Cancel: queued only; other users see NotFound.
    assert!(matches!(s.cancel(UserId::new(), b.id, now).await, Err(Error::NotFound { .. })));
    assert!(matches!(s.cancel(user, a.id, now).await, Err(Error::Conflict { .. })));
    assert_eq!(s.cancel(user, b.id, now).await.unwrap().status, ExecutionStatus::Cancelled);
    assert_eq!(s.queue_depth(Some(user)).await.unwrap(), 0);
}

async fn rescue_requeues_then_fails(s: &dyn Store) {
    let user = UserId::new();
    let mut e = execution(user, 1);
    e.max_attempts = 2;
    s.enqueue(&[e.clone()]).await.unwrap();
    let now = t0() + Duration::seconds(1);
    s.claim(claim_params("w1", 1, now, now + Duration::seconds(1))).await.unwrap();
    // Lease still valid: nothing to rescue.
    assert!(rescue_now(s, now).await.is_empty());
    let after = now + Duration::seconds(2);
    let rescued = rescue_now(s, after).await;
    assert_eq!(rescued.len(), 1);
    assert_eq!(rescued[0].status, ExecutionStatus::Queued);
    assert_eq!(rescued[0].run_after, after);
    assert_eq!(rescued[0].error.as_ref().unwrap().code, "lease_expired");
    // The old worker lost its lease.
    assert_eq!(s.finish(&[completed(&e, "w1", None)]).await.unwrap(), vec![false]);
    s.claim(claim_params("w2", 1, after, after + Duration::seconds(1))).await.unwrap();
    let rescued = rescue_now(s, after + Duration::seconds(5)).await;
    assert_eq!(rescued[0].status, ExecutionStatus::Failed, "attempts exhausted");
    assert_eq!(rescued[0].attempts, 2);
    assert!(rescued[0].finished_at.is_some());
}

async fn listing_is_keyset_paginated_and_isolated(s: &dyn Store) {
    let user = UserId::new();
    let other = UserId::new();
    let mut all: Vec<Execution> = (0..25).map(|i| execution(user, i / 2)).collect(); // equal timestamps too
    s.enqueue(&all).await.unwrap();
    s.enqueue(&[execution(other, 1)]).await.unwrap();
    all.sort_by_key(|e| std::cmp::Reverse((e.created_at, e.id)));
    let mut seen = Vec::new();
    let mut page = PageRequest { limit: 7, after: None };
    for _ in 0..10 {
        let p = s.list_executions(user, &ExecutionFilter::default(), page).await.unwrap();
        seen.extend(p.items.iter().map(|e| e.id));
        match p.next_cursor {
            Some(c) => page = PageRequest::new(Some(7), Some(&c)).unwrap(),
            None => break,
        }
    }
    assert_eq!(seen, all.iter().map(|e| e.id).collect::<Vec<_>>());
    let filtered = ExecutionFilter {
        since: Some(t0() + Duration::milliseconds(3)),
        until: Some(t0() + Duration::milliseconds(5)),
        ..Default::default()
    };
    let p = s.list_executions(user, &filtered, PageRequest::default()).await.unwrap();
    assert_eq!(p.items.len(), 4);
    let by_status = ExecutionFilter { status: Some(ExecutionStatus::Completed), ..Default::default() };
    assert!(s.list_executions(user, &by_status, PageRequest::default()).await.unwrap().items.is_empty());
    assert_eq!(s.queue_depth(None).await.unwrap(), 26);
}

async fn metrics_aggregate(s: &dyn Store) {
    let (user, execs, _) = enqueue_and_claim(s, 4, 3).await;
    let cost = Some(Decimal::new(1, 1)); // 0.1
    s.finish(&[
        completed(&execs[0], "w", cost),
        completed(&execs[1], "w", cost),
        completed(&execs[2], "w", None),
    ])
    .await
    .unwrap();
    let r = s.metrics(user, &MetricsQuery::default()).await.unwrap();
    assert_eq!(r.summary.counts.total, 4);
    assert_eq!(r.summary.counts.completed, 3);
    assert_eq!(r.summary.counts.queued, 1);
    assert_eq!(r.summary.cost_usd, Some(Decimal::new(2, 1)));
    assert_eq!(r.summary.unpriced_executions, 1);
    let p50 = r.summary.latency_ms.p50.unwrap();
    assert!((p50 - 120.0).abs() <= 1.2, "rollup percentiles are within 1 %: {p50}");
    assert_eq!(r.summary.tokens.input, 30);
    assert_eq!(r.summary.validation_pass_rate, Some(1.0));
    assert_eq!(r.queue_depth, 1);
    assert_eq!(r.by_prompt.len(), 4);
    let none = s.metrics(UserId::new(), &MetricsQuery::default()).await.unwrap();
    assert_eq!(none.summary.counts.total, 0);
    assert_eq!(none.summary.latency_ms.p50, None);
    // A version filter without a prompt does not apply (as in the memory store).
    let version_only = MetricsQuery { prompt_version: Some(7), ..Default::default() };
    assert_eq!(s.metrics(user, &version_only).await.unwrap().summary.counts.total, 4);
    let one =
        MetricsQuery { prompt_id: Some(execs[0].prompt_id), prompt_version: Some(1), ..Default::default() };
    assert_eq!(s.metrics(user, &one).await.unwrap().summary.counts.total, 1);
    let other_version = MetricsQuery { prompt_version: Some(2), ..one };
    assert_eq!(s.metrics(user, &other_version).await.unwrap().summary.counts.total, 0);
}

/// Many claimers at once never receive the same execution.
async fn concurrent_claims_never_collide(s: Arc<dyn Store>) {
    let user = UserId::new();
    let execs: Vec<Execution> = (0..400).map(|i| execution(user, i)).collect();
    s.enqueue(&execs).await.unwrap();
    let all = claim_concurrently(&[s], 7, t0() + Duration::seconds(1)).await;
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 400);
    assert_eq!(unique.len(), 400);
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::common::SqliteTestDb::new();
                    let store = db.store().await;
                    super::$name(&store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = crate::common::PgTestDb::create().await else { return };
                    let store = db.store().await;
                    super::$name(&store).await;
                    store.close().await;
                }
            )*
        }
    };
}

both_backends!(
    users_and_credentials,
    prompts_and_versions,
    enqueue_claim_finish,
    rescue_requeues_then_fails,
    listing_is_keyset_paginated_and_isolated,
    metrics_aggregate,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_claims_never_collide() {
    let db = common::SqliteTestDb::new();
    concurrent_claims_never_collide(Arc::new(db.store().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_memory_works() {
    let s = formaops_store::connect("sqlite::memory:").await.unwrap();
    enqueue_claim_finish(s.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_claims_never_collide_across_pools() {
    let Some(db) = common::PgTestDb::create().await else { return };
    // Two pools: as two processes would.
    let a = Arc::new(db.store().await);
    let b = Arc::new(db.store().await);
    let user = UserId::new();
    let execs: Vec<Execution> = (0..400).map(|i| execution(user, i)).collect();
    a.enqueue(&execs).await.unwrap();
    let stores: [Arc<dyn Store>; 2] = [a.clone(), b.clone()];
    let all = claim_concurrently(&stores, 5, t0() + Duration::seconds(1)).await;
    assert_eq!(all.len(), 400);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 400);
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_events_cross_processes_but_not_back() {
    let Some(db) = common::PgTestDb::create().await else { return };
    let a = db.store().await;
    let b = db.store().await;
    let mut from_a = a.remote_events().await.unwrap().unwrap();
    let mut from_b = b.remote_events().await.unwrap().unwrap();
    let event = |kind| ExecutionEvent {
        delta: Some("partial text".into()),
        ..ExecutionEvent::new(ExecutionId::new(), UserId::new(), kind, 1, Utc::now())
    };
    let sent = event(EventKind::Running);
    a.relay_events(std::slice::from_ref(&sent)).await.unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), from_b.next()).await.unwrap().unwrap();
    assert_eq!(got, ExecutionEvent { delta: None, ..sent.clone() });
    // a does not hear its own event; b's next event reaches a.
    let back = event(EventKind::Completed);
    b.relay_events(std::slice::from_ref(&back)).await.unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), from_a.next()).await.unwrap().unwrap();
    assert_eq!(got.execution_id, back.execution_id, "a skipped its own and saw b's");
    drop((from_a, from_b));
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_events_resume_after_the_listener_lost_its_connection() {
    let Some(db) = common::PgTestDb::create().await else { return };
    let (a, b) = (db.store().await, db.store().await);
    let mut from_a = b.remote_events().await.unwrap().unwrap();
    let cut: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
         AND query LIKE '%formaops_events%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(a.pool())
    .await
    .unwrap();
    assert_eq!(cut.len(), 1, "one event listener: {cut:?}");
    sqlx::query("SELECT pg_terminate_backend($1)").bind(cut[0]).execute(a.pool()).await.unwrap();
    // Events relayed before the listener is back are lost; relay until one arrives.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let sent =
            ExecutionEvent::new(ExecutionId::new(), UserId::new(), EventKind::Completed, 1, Utc::now());
        a.relay_events(std::slice::from_ref(&sent)).await.unwrap();
        match tokio::time::timeout(std::time::Duration::from_millis(300), from_a.next()).await {
            Ok(Some(got)) => {
                assert_eq!(got.status, sent.status);
                break;
            }
            Ok(None) => panic!("the event stream ended at the connection loss"),
            Err(_) => assert!(std::time::Instant::now() < deadline, "no event after the reconnect"),
        }
    }
    drop(from_a);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn unreachable_postgres_is_unavailable() {
    // Nothing listens on port 1.
    let err = formaops_store::connect("postgres://postgres@127.0.0.1:1/x").await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn bad_url_is_named() {
    let err = formaops_store::connect("mysql://x").await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { ref field, .. } if field == "database url"), "{err:?}");
}

/// Postgres refuses NUL in text and jsonb. The engine refuses it before it gets here
/// (`formaops_core::text`); should one ever slip through, the refusal must be an error about
/// the items (not `Unavailable`), so the group commit isolates the item instead of failing
/// its whole batch, and the failed batch must have committed nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nul_is_an_item_error_and_commits_nothing() {
    let Some(db) = common::PgTestDb::create().await else { return };
    let s = db.store().await;
    let user = UserId::new();
    let good = execution(user, 1);
    let mut bad = execution(user, 2);
    bad.inputs.insert("v".into(), serde_json::json!("x\u{0}y"));
    let err = s.enqueue(&[good.clone(), bad]).await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    assert!(matches!(s.get_execution(user, good.id).await, Err(Error::NotFound { .. })));
    assert_eq!(s.enqueue(std::slice::from_ref(&good)).await.unwrap(), vec![EnqueueOutcome::Created]);
    s.close().await;
}

/// Finished and cancelled executions, then the report.
async fn some_final_executions(s: &dyn Store) -> (UserId, formaops_core::metrics::MetricsReport) {
    let (user, execs, now) = enqueue_and_claim(s, 5, 3).await;
    let cost = Some(Decimal::new(1, 1));
    let results =
        [completed(&execs[0], "w", cost), completed(&execs[1], "w", None), completed(&execs[2], "w", cost)];
    s.finish(&results).await.unwrap();
    s.cancel(user, execs[3].id, now).await.unwrap();
    let r = s.metrics(user, &MetricsQuery::default()).await.unwrap();
    assert_eq!((r.summary.counts.completed, r.summary.counts.cancelled, r.summary.counts.queued), (3, 1, 1));
    (user, r)
}

const FORGET_ROLLUPS: [&str; 3] =
    ["DELETE FROM metric_rollups", "DELETE FROM metric_latency", "DELETE FROM metric_rollups_backfill"];

/// A database whose executions were final before the rollups existed is rolled up once, when
/// a store opens it; opening it again adds nothing.
#[tokio::test]
async fn sqlite_rollups_are_backfilled_once() {
    let db = common::SqliteTestDb::new();
    let store = db.store().await;
    let (user, before) = some_final_executions(&store).await;
    store.close().await;
    let raw = sqlx::SqlitePool::connect(&db.url).await.unwrap();
    for sql in FORGET_ROLLUPS {
        sqlx::query(sql).execute(&raw).await.unwrap();
    }
    raw.close().await;
    for _ in 0..2 {
        let store = db.store().await;
        assert_eq!(store.metrics(user, &MetricsQuery::default()).await.unwrap(), before);
        store.close().await;
    }
}

/// Executions finished one a minute for `n` minutes, on three prompts with varied latencies:
/// the user, the report and the hour and day series over the whole history.
async fn many_final_executions(
    s: &dyn Store,
    n: i64,
) -> (UserId, formaops_core::metrics::MetricsReport, Vec<formaops_core::metrics::MetricsSeries>) {
    let user = UserId::new();
    let prompts = [PromptId::new(), PromptId::new(), PromptId::new()];
    let execs: Vec<Execution> = (0..n)
        .map(|i| {
            let mut e = execution(user, i);
            e.prompt_id = prompts[(i % 3) as usize];
            e.created_at = t0() + Duration::minutes(i) + Duration::milliseconds(i);
            e.run_after = e.created_at;
            e.deadline_at = e.created_at + Duration::days(30);
            e
        })
        .collect();
    let now = t0() + Duration::minutes(n + 1);
    for chunk in execs.chunks(1_000) {
        s.enqueue(chunk).await.unwrap();
        let claimed = s.claim(claim_params("w", 1_000, now, now + Duration::hours(1))).await.unwrap();
        assert_eq!(claimed.len(), chunk.len());
        let results: Vec<AttemptResult> = chunk
            .iter()
            .map(|e| {
                let mut r = completed(e, "w", (e.queue_key % 4 != 0).then(|| Decimal::new(e.queue_key, 6)));
                if let AttemptOutcome::Completed { metrics, .. } = &mut r.outcome {
                    metrics.latency_ms = 50 + (e.queue_key as u64 * 7_919) % 950;
                    metrics.provider_latency_ms = 40 + (e.queue_key as u64 * 7_919) % 900;
                }
                r
            })
            .collect();
        assert!(s.finish(&results).await.unwrap().iter().all(|x| *x));
    }
    let report = s.metrics(user, &MetricsQuery::default()).await.unwrap();
    assert_eq!(report.summary.counts.completed, n as u64);
    let mut series = Vec::new();
    for (bucket, span) in
        [(Granularity::Hour, Duration::hours(24 * 7)), (Granularity::Day, Duration::days(30))]
    {
        let q = MetricsSeriesQuery {
            bucket,
            since: Some(t0()),
            until: Some(t0() + span),
            prompt_id: None,
            prompt_version: None,
            label: None,
        };
        series.push(s.metrics_series(user, &q).await.unwrap());
    }
    (user, report, series)
}

async fn series_of(
    s: &dyn Store,
    user: UserId,
    like: &[formaops_core::metrics::MetricsSeries],
) -> Vec<formaops_core::metrics::MetricsSeries> {
    let mut out = Vec::new();
    for old in like {
        let q = MetricsSeriesQuery {
            bucket: old.bucket.unwrap(),
            since: old.since,
            until: old.until,
            prompt_id: None,
            prompt_version: None,
            label: None,
        };
        out.push(s.metrics_series(user, &q).await.unwrap());
    }
    out
}

/// A backfill of more executions than one step reads, with more rollup keys than it holds in
/// memory (so rows are written by several flushes, some hour and day rows by two), rebuilds
/// exactly the rollups the live writes made.
#[tokio::test]
async fn sqlite_backfill_over_many_steps_matches_the_live_rollups() {
    let db = common::SqliteTestDb::new();
    let store = db.store().await;
    let (user, report, series) = many_final_executions(&store, 6_000).await;
    store.close().await;
    let raw = sqlx::SqlitePool::connect(&db.url).await.unwrap();
    for sql in FORGET_ROLLUPS {
        sqlx::query(sql).execute(&raw).await.unwrap();
    }
    raw.close().await;
    let store = db.store().await;
    assert_eq!(store.metrics(user, &MetricsQuery::default()).await.unwrap(), report);
    assert_eq!(series_of(&store, user, &series).await, series);
    store.close().await;
}

#[tokio::test]
async fn postgres_backfill_over_many_steps_matches_the_live_rollups() {
    let Some(db) = common::PgTestDb::create().await else { return };
    let store = db.store().await;
    let (user, report, series) = many_final_executions(&store, 6_000).await;
    for sql in FORGET_ROLLUPS {
        sqlx::query(sql).execute(store.pool()).await.unwrap();
    }
    let again = formaops_store::PgStore::from_pool(store.pool().clone()).await.unwrap();
    assert_eq!(again.metrics(user, &MetricsQuery::default()).await.unwrap(), report);
    assert_eq!(series_of(&again, user, &series).await, series);
    store.close().await;
}

#[tokio::test]
async fn postgres_rollups_are_backfilled_once() {
    let Some(db) = common::PgTestDb::create().await else { return };
    let store = db.store().await;
    let (user, before) = some_final_executions(&store).await;
    for sql in FORGET_ROLLUPS {
        sqlx::query(sql).execute(store.pool()).await.unwrap();
    }
    let gone = store.metrics(user, &MetricsQuery::default()).await.unwrap();
    assert_eq!(gone.summary.counts.completed, 0, "the report reads the rollups only");
    for _ in 0..2 {
        let again = formaops_store::PgStore::from_pool(store.pool().clone()).await.unwrap();
        assert_eq!(again.metrics(user, &MetricsQuery::default()).await.unwrap(), before);
    }
    store.close().await;
}
