//! The shared [`Store`] conformance suite (feature `conformance`).
//!
//! Every backend calls [`run_all`] (or the functions one by one). Each function creates its
//! own users, prompts and a provider name of its own, so the suite runs against a shared
//! database, in any order, next to other data. Failures panic with a message naming the
//! broken rule (this is test code).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, json};

use crate::engine::BackoffPolicy;
use crate::engine::rescue;
use crate::error::Error;
use crate::execution::{
    AttemptOutcome, AttemptResult, Execution, ExecutionError, ExecutionErrorCode, ExecutionMetrics,
    ExecutionStatus, NewExecution, Priority, TokenUsage,
};
use crate::ids::{CredentialId, ExecutionId, PromptId, UserId};
use crate::metrics::{MetricsAggregator, MetricsQuery, MetricsReport, MetricsSample};
use crate::page::{Cursor, PageRequest};
use crate::prompt::{ModelConfig, Prompt, PromptStatus, PromptVersion};
use crate::store::{
    ClaimParams, EnqueueOutcome, ExecutionFilter, ExtendLeasesParams, PromptFilter, RescueFate, Store,
    VersionPageRequest,
};
use crate::user::{Credential, CredentialKind, User};
use crate::validation::ValidationVerdict;

/// Runs every conformance check.
pub async fn run_all(store: &dyn Store) {
    users_and_credentials(store).await;
    prompts_and_versions(store).await;
    prompt_names(store).await;
    owner_isolation(store).await;
    prompt_pagination(store).await;
    execution_pagination_and_filters(store).await;
    enqueue_idempotency(store).await;
    failed_enqueue_commits_nothing(store).await;
    claim_order_and_filters(store).await;
    no_double_claim(store).await;
    lease_rescue(store).await;
    rescue_decisions_are_guarded(store).await;
    extend_leases(store).await;
    finish_rules(store).await;
    cancel_rules(store).await;
    queue_depth(store).await;
    metrics(store).await;
}

// ----- helpers -----

/// Now, at the microsecond precision every store keeps.
pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap()
}

fn ms(n: i64) -> Duration {
    Duration::milliseconds(n)
}

/// A fresh user with a unique email.
pub async fn new_user(store: &dyn Store) -> User {
    let id = UserId::new();
    let user =
        User { id, email: format!("{}@conformance.test", id.0.simple()), is_admin: false, created_at: now() };
    store.create_user(&user, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").await.unwrap();
    user
}

/// A provider name no other test uses.
fn provider() -> String {
    format!("conf-{}", uuid::Uuid::new_v4().simple())
}

fn prompt_pair(user: UserId, name: &str, created_at: DateTime<Utc>) -> (Prompt, PromptVersion) {
    let id = PromptId::new();
    let prompt = Prompt {
        id,
        user_id: user,
        name: name.to_string(),
        description: None,
        status: PromptStatus::Active,
        current_version: 1,
        created_at,
        updated_at: created_at,
    };
    (prompt, version_of(id, user, 1, created_at))
}

fn version_of(id: PromptId, user: UserId, n: u32, at: DateTime<Utc>) -> PromptVersion {
    PromptVersion {
        prompt_id: id,
        version: n,
        template: format!("v{n}: {{{{ x }}}}"),
        system_template: None,
        variables: Vec::new(),
        validations: Vec::new(),
        model: ModelConfig { provider: None, model: "mock".into(), parameters: Default::default() },
        created_at: at,
        author: user,
    }
}

async fn new_prompt(store: &dyn Store, user: UserId, name: &str) -> Prompt {
    let (p, v) = prompt_pair(user, name, now());
    store.insert_prompt(&p, &v).await.unwrap();
    p
}

/// A QUEUED execution, runnable now, deadline in an hour.
pub fn execution(
    user: UserId,
    prompt: PromptId,
    provider: &str,
    queue_key: i64,
    created_at: DateTime<Utc>,
) -> Execution {
    let mut inputs = Map::new();
    inputs.insert("x".into(), json!("1"));
    Execution::queued(NewExecution {
        user_id: user,
        prompt_id: prompt,
        prompt_version: 1,
        inputs,
        priority: Priority::Normal,
        validate_output: false,
        provider: provider.to_string(),
        model: "mock".into(),
        max_attempts: 3,
        retry_of: None,
        idempotency_key: None,
        created_at,
        deadline_at: created_at + Duration::hours(1),
        queue_key,
    })
}

/// One rescue pass at `now` with no backoff (a requeued execution is due at once).
pub async fn rescue_now(store: &dyn Store, now: DateTime<Utc>) -> Vec<Execution> {
    let no_backoff = BackoffPolicy { base: std::time::Duration::ZERO, max: std::time::Duration::ZERO };
    rescue::rescue_expired(store, &no_backoff, now).await.unwrap()
}

async fn enqueue_one(store: &dyn Store, e: &Execution) {
    let out = store.enqueue(std::slice::from_ref(e)).await.unwrap();
    assert_eq!(out, vec![EnqueueOutcome::Created], "enqueue of a new execution must create it");
}

fn completed(m: ExecutionMetrics, validation: Option<ValidationVerdict>) -> AttemptOutcome {
    AttemptOutcome::Completed { output: "out".into(), validated_output: None, validation, metrics: m }
}

fn result(e: &Execution, worker: &str, outcome: AttemptOutcome) -> AttemptResult {
    AttemptResult { id: e.id, user_id: e.user_id, worker: worker.into(), outcome, finished_at: now() }
}

fn err(code: ExecutionErrorCode) -> ExecutionError {
    ExecutionError { code, message: format!("{code} happened"), transient: true }
}

fn is_not_found<T: std::fmt::Debug>(r: crate::Result<T>) -> bool {
    matches!(r, Err(Error::NotFound { .. }))
}

fn is_conflict<T: std::fmt::Debug>(r: crate::Result<T>) -> bool {
    matches!(r, Err(Error::Conflict { .. }))
}

// ----- users and credentials -----

/// Users and credentials: create, look up, authenticate and revoke.
pub async fn users_and_credentials(store: &dyn Store) {
    let user = new_user(store).await;
    assert!(store.count_users().await.unwrap() >= 1);
    assert_eq!(store.get_user(user.id).await.unwrap(), Some(user.clone()));
    assert_eq!(store.get_user(UserId::new()).await.unwrap(), None);
    let found = store.user_by_email(&user.email).await.unwrap().expect("user by email");
    assert_eq!(found.user, user);
    assert!(found.password_hash.starts_with("$argon2id$"));
    assert!(store.user_by_email("nobody@conformance.invalid").await.unwrap().is_none());
    let dup = User { id: UserId::new(), ..user.clone() };
    assert!(is_conflict(store.create_user(&dup, "h").await), "duplicate email must be a conflict");

    let t = now();
    let hash = uuid::Uuid::new_v4().as_bytes().to_vec();
    let session = Credential {
        id: CredentialId::new(),
        user_id: user.id,
        kind: CredentialKind::Session,
        name: None,
        token_hash: hash.clone(),
        created_at: t,
        expires_at: Some(t + Duration::hours(1)),
        revoked_at: None,
    };
    store.create_credential(&session).await.unwrap();
    let (u, c) = store.authenticate(&hash, t).await.unwrap().expect("a valid session authenticates");
    assert_eq!((u.id, c.id), (user.id, session.id));
    assert!(store.authenticate(&hash, t + Duration::hours(2)).await.unwrap().is_none(), "expired session");
    assert!(store.authenticate(b"no such token hash", t).await.unwrap().is_none());

    let key_hash = uuid::Uuid::new_v4().as_bytes().to_vec();
    let key = Credential {
        id: CredentialId::new(),
        kind: CredentialKind::ApiKey,
        name: Some("ci".into()),
        token_hash: key_hash.clone(),
        expires_at: None,
        created_at: t + ms(1),
        ..session.clone()
    };
    store.create_credential(&key).await.unwrap();
    assert!(
        store.authenticate(&key_hash, t + Duration::days(3650)).await.unwrap().is_some(),
        "keys without expiry"
    );
    let keys = store.list_credentials(user.id, CredentialKind::ApiKey).await.unwrap();
    assert_eq!(keys.iter().map(|c| c.id).collect::<Vec<_>>(), vec![key.id]);

    let other = new_user(store).await;
    assert!(is_not_found(store.revoke_credential(other.id, key.id, t).await), "another user's credential");
    assert!(store.authenticate(&key_hash, t).await.unwrap().is_some(), "a refused revoke changes nothing");
    store.revoke_credential(user.id, key.id, t).await.unwrap();
    store.revoke_credential(user.id, key.id, t).await.unwrap();
    assert!(store.authenticate(&key_hash, t).await.unwrap().is_none(), "revoked key");
    assert!(store.list_credentials(user.id, CredentialKind::ApiKey).await.unwrap().is_empty());
    assert!(is_not_found(store.revoke_credential(user.id, CredentialId::new(), t).await));
    store.ping().await.unwrap();
}

// ----- prompts -----

/// Prompts and versions: insert, append versions, read back.
pub async fn prompts_and_versions(store: &dyn Store) {
    let user = new_user(store).await;
    let t = now();
    let (p, v1) = prompt_pair(user.id, "versions", t);
    store.insert_prompt(&p, &v1).await.unwrap();
    assert_eq!(store.get_prompt(user.id, p.id).await.unwrap(), p);
    assert_eq!(store.get_version(user.id, p.id, 1).await.unwrap(), v1);
    assert!(is_not_found(store.get_version(user.id, p.id, 2).await));
    assert!(is_not_found(store.get_version(user.id, p.id, 0).await));

    for n in 2..=5u32 {
        let at = t + ms(i64::from(n));
        let prompt = Prompt { current_version: n, updated_at: at, ..p.clone() };
        store.insert_version(&prompt, &version_of(p.id, user.id, n, at)).await.unwrap();
    }
    // A second writer that read version 4 loses the race.
    let stale = Prompt { current_version: 5, ..p.clone() };
    assert!(is_conflict(store.insert_version(&stale, &version_of(p.id, user.id, 5, t)).await), "lost race");
    let skip = Prompt { current_version: 7, ..p.clone() };
    assert!(
        is_conflict(store.insert_version(&skip, &version_of(p.id, user.id, 7, t)).await),
        "skipped version"
    );
    let got = store.get_prompt(user.id, p.id).await.unwrap();
    assert_eq!(got.current_version, 5);
    assert_eq!(store.get_version(user.id, p.id, 3).await.unwrap().template, "v3: {{ x }}");

    // Versions page newest first, no gaps.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store.list_versions(user.id, p.id, VersionPageRequest { limit: 2, before }).await.unwrap();
        seen.extend(page.items.iter().map(|v| v.version));
        match page.next_cursor {
            Some(c) => before = Some(c.parse().expect("version cursor is the version number")),
            None => break,
        }
    }
    assert_eq!(seen, vec![5, 4, 3, 2, 1]);

    // Archive: readable, no new versions; restore.
    let archived = store.set_prompt_status(user.id, p.id, PromptStatus::Archived, t + ms(10)).await.unwrap();
    assert_eq!(archived.status, PromptStatus::Archived);
    assert_eq!(archived.updated_at, t + ms(10));
    let next = Prompt { current_version: 6, ..got.clone() };
    assert!(
        is_conflict(store.insert_version(&next, &version_of(p.id, user.id, 6, t)).await),
        "archived prompt"
    );
    assert_eq!(store.get_version(user.id, p.id, 5).await.unwrap().version, 5);
    let restored = store.set_prompt_status(user.id, p.id, PromptStatus::Active, t + ms(11)).await.unwrap();
    assert_eq!(restored.status, PromptStatus::Active);
    assert!(is_not_found(store.get_prompt(user.id, PromptId::new()).await));
}

/// Active prompt names are unique per user; archiving frees a name.
pub async fn prompt_names(store: &dyn Store) {
    let user = new_user(store).await;
    let first = new_prompt(store, user.id, "same").await;
    let (dup, dv) = prompt_pair(user.id, "same", now());
    assert!(is_conflict(store.insert_prompt(&dup, &dv).await), "duplicate active name");
    // Another user may use the name.
    let other = new_user(store).await;
    new_prompt(store, other.id, "same").await;
    // Renaming into a taken name is a conflict.
    let second = new_prompt(store, user.id, "second").await;
    let renamed = Prompt { name: "same".into(), current_version: 2, ..second.clone() };
    assert!(is_conflict(store.insert_version(&renamed, &version_of(second.id, user.id, 2, now())).await));
    // Archiving frees the name; restoring the archived one then conflicts.
    store.set_prompt_status(user.id, first.id, PromptStatus::Archived, now()).await.unwrap();
    let (again, av) = prompt_pair(user.id, "same", now());
    store.insert_prompt(&again, &av).await.unwrap();
    assert!(is_conflict(store.set_prompt_status(user.id, first.id, PromptStatus::Active, now()).await));
    assert_eq!(store.get_prompt(user.id, first.id).await.unwrap().status, PromptStatus::Archived);
}

/// Another user's prompts and executions are `NotFound`, never shown.
pub async fn owner_isolation(store: &dyn Store) {
    let owner = new_user(store).await;
    let intruder = new_user(store).await;
    let p = new_prompt(store, owner.id, "private").await;
    let prov = provider();
    let e = execution(owner.id, p.id, &prov, 0, now());
    enqueue_one(store, &e).await;
    let (i, o) = (intruder.id, owner.id);

    assert!(is_not_found(store.get_prompt(i, p.id).await));
    assert!(is_not_found(store.get_version(i, p.id, 1).await));
    assert!(is_not_found(store.list_versions(i, p.id, VersionPageRequest { limit: 10, before: None }).await));
    assert!(is_not_found(store.set_prompt_status(i, p.id, PromptStatus::Archived, now()).await));
    let hijack = Prompt { user_id: i, current_version: 2, ..p.clone() };
    assert!(is_not_found(store.insert_version(&hijack, &version_of(p.id, i, 2, now())).await));
    assert!(
        store
            .list_prompts(i, &PromptFilter::default(), PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let archived = PromptFilter { status: Some(PromptStatus::Archived) };
    assert!(store.list_prompts(i, &archived, PageRequest::default()).await.unwrap().items.is_empty());
    assert!(is_not_found(store.get_execution(i, e.id).await));
    assert!(is_not_found(store.cancel(i, e.id, now()).await));
    let all = ExecutionFilter::default();
    assert!(store.list_executions(i, &all, PageRequest::default()).await.unwrap().items.is_empty());
    assert_eq!(store.queue_depth(Some(i)).await.unwrap(), 0);
    let m = store.metrics(i, &MetricsQuery::default()).await.unwrap();
    assert_eq!(m.summary.counts.total, 0);
    assert!(m.by_prompt.is_empty());
    // A finish claiming to be the intruder's is refused.
    let claimed = store
        .claim(ClaimParams {
            worker: "w-owner",
            provider: &prov,
            limit: 1,
            now: now(),
            lease_until: now() + Duration::minutes(5),
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let forged =
        AttemptResult { user_id: i, ..result(&e, "w-owner", completed(ExecutionMetrics::default(), None)) };
    assert_eq!(store.finish(&[forged]).await.unwrap(), vec![false]);

    // Nothing changed for the owner.
    let p_now = store.get_prompt(o, p.id).await.unwrap();
    assert_eq!((p_now.status, p_now.current_version), (PromptStatus::Active, 1));
    assert_eq!(store.get_execution(o, e.id).await.unwrap().status, ExecutionStatus::Running);
    assert_eq!(
        store.list_prompts(o, &PromptFilter::default(), PageRequest::default()).await.unwrap().items.len(),
        1
    );
}

/// Listing prompts: newest first, keyset pages, status filter.
pub async fn prompt_pagination(store: &dyn Store) {
    let user = new_user(store).await;
    let t = now() - Duration::minutes(10);
    let mut expected = Vec::new();
    for i in 0..11i64 {
        // Pairs share a created_at so ties are broken by id.
        let (p, v) = prompt_pair(user.id, &format!("p{i}"), t + ms(i / 2));
        store.insert_prompt(&p, &v).await.unwrap();
        expected.push(p);
    }
    store.set_prompt_status(user.id, expected[3].id, PromptStatus::Archived, now()).await.unwrap();
    assert_eq!(expected[3].name, "p3");
    expected.sort_by_key(|p| std::cmp::Reverse((p.created_at, p.id)));
    let archived_id = expected.iter().find(|p| p.name == "p3").map(|p| p.id).unwrap();
    let want: Vec<PromptId> = expected.iter().map(|p| p.id).filter(|id| *id != archived_id).collect();
    let mut got = Vec::new();
    let mut page = PageRequest { limit: 3, after: None };
    loop {
        let res = store.list_prompts(user.id, &PromptFilter::default(), page).await.unwrap();
        assert!(res.items.len() <= 3);
        got.extend(res.items.iter().map(|p| p.id));
        match res.next_cursor {
            Some(c) => page.after = Some(Cursor::decode(&c).unwrap()),
            None => break,
        }
    }
    assert_eq!(got, want, "pages of prompts: newest first, no duplicates, no gaps");
    let arch = store
        .list_prompts(user.id, &PromptFilter { status: Some(PromptStatus::Archived) }, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(arch.items.iter().map(|p| p.id).collect::<Vec<_>>(), vec![archived_id]);
    assert_eq!(arch.next_cursor, None);
}

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

// ----- the queue -----

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

// ----- through the engine -----

/// Text no store can hold (NUL) is refused by the engine before it reaches the store, with
/// the same error on every backend, naming the field; an output that cannot be stored fails
/// its execution instead of its group commit. Runs an engine (mock provider) on `store`.
pub async fn engine_refuses_unstorable_text(store: std::sync::Arc<dyn Store>) {
    use crate::engine::{ExecuteRequest, FormaOps};
    use crate::prompt::{PromptSpec, PromptUpdate};

    fn fields(r: crate::Result<impl std::fmt::Debug>) -> Vec<String> {
        match r {
            Err(Error::InvalidPrompt { problems } | Error::InvalidInputs { problems }) => {
                problems.into_iter().map(|p| format!("{} {}", p.field, p.code)).collect()
            }
            other => panic!("expected invalid prompt or inputs, got {other:?}"),
        }
    }
    let spec = |v: serde_json::Value| -> PromptSpec { serde_json::from_value(v).unwrap() };
    let engine = FormaOps::builder(store.clone()).start().await.unwrap();
    let user = new_user(store.as_ref()).await.id;

    let got = fields(
        engine
            .create_prompt(
                user,
                spec(json!({
                    "name": "nul", "description": "fine", "template": "a\0 {{ s }}",
                    "systemTemplate": "b\0",
                    "variables": [
                        {"name": "s", "type": "string", "description": "d\0", "defaultValue": "x\0"},
                        {"name": "e", "type": "enum", "values": ["ok", "n\0"]},
                        {"name": "j", "type": "json", "schema": {"properties": {"k\0": {}}}},
                    ],
                    "validations": [
                        {"type": "regex", "pattern": "p\0"},
                        {"type": "contains", "value": "c\0"},
                        {"type": "json_schema", "schema": {"const": ["z", "\0"]}},
                    ],
                    "model": {"model": "m\0", "parameters": {"stop": ["s\0"]}},
                })),
            )
            .await,
    );
    let want = [
        "template",
        "systemTemplate",
        "variables[0].description",
        "variables[0].defaultValue",
        "variables[1].values[1]",
        "variables[2].schema.properties",
        "validations[0].pattern",
        "validations[1].value",
        "validations[2].schema.const[1]",
        "model.model",
        "model.parameters.stop[0]",
    ];
    for field in want {
        let expected = format!("{field} {}", crate::text::CODE);
        assert!(got.contains(&expected), "{expected:?} missing from {got:?}");
    }
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (name, description) in [("n\0", None), ("ok", Some("d\0"))] {
        let s = spec(json!({"name": name, "description": description, "template": "t"}));
        let got = fields(engine.create_prompt(user, s).await);
        assert_eq!(got.len(), 1, "{got:?}");
    }

    let (prompt, _) = engine
        .create_prompt(
            user,
            spec(json!({
                "name": "inputs", "template": "{{ v }} {{ data }}",
                "variables": [
                    {"name": "v", "type": "string"},
                    {"name": "data", "type": "json"},
                ],
            })),
        )
        .await
        .unwrap();
    let request = |inputs: serde_json::Value| ExecuteRequest {
        prompt_id: prompt.id,
        inputs: inputs.as_object().unwrap().clone(),
        ..Default::default()
    };
    let code = crate::text::CODE;
    for (inputs, field) in [
        (json!({"v": "x\0y"}), "inputs.v".to_string()),
        (json!({"data": {"x\0y": 1}}), "inputs.data".to_string()),
        (json!({"data": {"a": [1, {"b": "\0"}]}}), "inputs.data.a[1].b".to_string()),
        (json!({"v": "ok", "data": ["\0"]}), "inputs.data[0]".to_string()),
    ] {
        let got = fields(engine.submit(user, request(inputs.clone())).await);
        assert_eq!(got, vec![format!("{field} {code}")], "inputs {inputs}");
    }
    let mut keyed = request(json!({"v": "ok"}));
    keyed.idempotency_key = Some("k\0".into());
    match engine.submit(user, keyed).await {
        Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "idempotencyKey"),
        other => panic!("expected an invalid idempotency key, got {other:?}"),
    }
    let filter = crate::store::ExecutionFilter { prompt_id: Some(prompt.id), ..Default::default() };
    let listed = store.list_executions(user, &filter, PageRequest::default()).await.unwrap();
    assert!(listed.items.is_empty(), "nothing was queued for refused inputs");

    // Valid text around the refusals works, on the same engine.
    let ok = engine
        .execute(user, request(json!({"v": "ünï \u{1} ok", "data": {"k": ["\\u0000 as text"]}})))
        .await
        .unwrap();
    assert_eq!(ok.status, ExecutionStatus::Completed, "{:?}", ok.error);

    // A template may still produce NUL at render time: the mock echoes it, and the output
    // that cannot be stored fails that execution (permanently), nothing else.
    let (echo, _) = engine
        .update_prompt(
            user,
            prompt.id,
            PromptUpdate { template: Some("x{{ \"\\u0000\" }}y".into()), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(echo.current_version, 2);
    let done =
        tokio::time::timeout(std::time::Duration::from_secs(20), engine.execute(user, request(json!({}))))
            .await
            .expect("the execution ends")
            .unwrap();
    assert_eq!(done.status, ExecutionStatus::Failed);
    assert_eq!(done.error.as_ref().map(|e| e.code.as_str()), Some("unstorable_output"));
    engine.shutdown().await;
}
