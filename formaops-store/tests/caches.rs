//! Two engines ("nodes": two `FormaOps`, each on its own `PgStore` pool and node id) share one
//! Postgres. What one node changes (a revoked key, a moved label, a new version) the other
//! must see within `STALE_BOUND` (1 s), also while its invalidation listener is disconnected.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use formaops_core::engine::freshness::STALE_BOUND;
use formaops_core::engine::{ChatRequest, ExecuteRequest, FormaOps};
use formaops_core::ids::UserId;
use formaops_core::prompt::{PromptSpec, PromptUpdate};
use formaops_core::store::Store;
use formaops_core::user::{account, token};
use formaops_core::{Error, Result};
use formaops_store::PgStore;

/// Polls `check` until it holds; returns how long that took after `since`, or panics once
/// `STALE_BOUND` plus a margin for a busy machine has passed.
async fn within_bound<F, Fut>(since: Instant, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if check().await {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < STALE_BOUND + Duration::from_millis(250),
            "{what}: not seen within the bound"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn node(db: &common::PgTestDb) -> (Arc<PgStore>, FormaOps) {
    let store = Arc::new(db.store_with_pool(4).await);
    let engine = FormaOps::builder(store.clone()).start().await.unwrap();
    (store, engine)
}

fn refused(r: Result<impl std::fmt::Debug>) -> bool {
    matches!(r, Err(Error::Unauthenticated))
}

/// Lets both listeners hear a heartbeat, so cached entries outlive the 1 s young-entry rule
/// (otherwise the test would pass by re-reading, not by invalidation).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1_300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_node_is_refused_by_the_other_within_the_bound() {
    let Some(db) = common::PgTestDb::create().await else { return };
    let (store_a, a) = node(&db).await;
    let (_store_b, b) = node(&db).await;
    let user = account::create_user(store_a.as_ref(), "ann@x.io", "correct horse", false).await.unwrap();
    let (key, cred) = token::create_api_key(store_a.as_ref(), user.id, "ci", None).await.unwrap();
    assert_eq!(b.authenticate(&key).await.unwrap().1.id, cred.id);
    settle().await;
    assert!(b.authenticate(&key).await.is_ok(), "cached on B");
    let t = Instant::now();
    a.revoke_credential(user.id, cred.id).await.unwrap();
    assert!(refused(a.authenticate(&key).await), "refused at once on A");
    let took = within_bound(t, "revocation on B", || async { refused(b.authenticate(&key).await) }).await;
    println!("revocation seen by node B after {took:?}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_moved_and_a_version_added_on_one_node_are_seen_by_the_other() {
    let Some(db) = common::PgTestDb::create().await else { return };
    let (_store_a, a) = node(&db).await;
    let (_store_b, b) = node(&db).await;
    let user = UserId::new();
    let spec: PromptSpec = serde_json::from_value(serde_json::json!({
        "name": "p", "template": "v1", "model": {"model": "mock"}
    }))
    .unwrap();
    let (prompt, _) = a.create_prompt(user, spec).await.unwrap();
    a.update_prompt(user, prompt.id, PromptUpdate { template: Some("v2".into()), ..Default::default() })
        .await
        .unwrap();
    let request = ExecuteRequest { prompt_id: prompt.id, ..Default::default() };
    let on_b = |label: &'static str| {
        let (b, request) = (b.clone(), request.clone());
        async move { b.submit_label(user, request, label).await.unwrap().prompt_version }
    };
    assert_eq!(on_b("production").await, 1);
    assert_eq!(b.submit(user, request.clone()).await.unwrap().prompt_version, 2);
    settle().await;
    assert_eq!(on_b("production").await, 1, "cached on B");

    let t = Instant::now();
    a.set_label(user, prompt.id, "production", 2).await.unwrap();
    let took = within_bound(t, "label move on B", || async { on_b("production").await == 2 }).await;
    println!("label move seen by node B after {took:?}");

    let t = Instant::now();
    a.update_prompt(user, prompt.id, PromptUpdate { template: Some("v3".into()), ..Default::default() })
        .await
        .unwrap();
    let took = within_bound(t, "new version on B", || async {
        b.submit(user, request.clone()).await.unwrap().prompt_version == 3
    })
    .await;
    println!("new current version seen by node B after {took:?}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_production_move_and_a_rename_on_one_node_reach_chat_calls_on_the_other() {
    let Some(db) = common::PgTestDb::create().await else { return };
    let (_store_a, a) = node(&db).await;
    let (_store_b, b) = node(&db).await;
    let user = UserId::new();
    let spec: PromptSpec = serde_json::from_value(serde_json::json!({
        "name": "greet", "template": "v1", "model": {"model": "mock"}
    }))
    .unwrap();
    let (prompt, _) = a.create_prompt(user, spec).await.unwrap();
    a.update_prompt(user, prompt.id, PromptUpdate { template: Some("v2".into()), ..Default::default() })
        .await
        .unwrap();
    let on_b = || {
        let b = b.clone();
        async move {
            let chat = ChatRequest { model: "formaops::greet".into(), ..Default::default() };
            b.submit_chat(user, chat).await.map(|e| e.prompt_version)
        }
    };
    assert_eq!(on_b().await.unwrap(), 1, "production is on version 1");
    settle().await;
    assert_eq!(on_b().await.unwrap(), 1, "cached on B");

    let t = Instant::now();
    a.set_label(user, prompt.id, "production", 2).await.unwrap();
    let took = within_bound(t, "production move on B", || async { on_b().await.unwrap() == 2 }).await;
    println!("production move seen by chat calls on node B after {took:?}");

    settle().await;
    let t = Instant::now();
    let rename = PromptUpdate { name: Some("hello".into()), ..Default::default() };
    a.update_prompt(user, prompt.id, rename).await.unwrap();
    let took =
        within_bound(t, "rename on B", || async { matches!(on_b().await, Err(Error::NotFound { .. })) })
            .await;
    println!("rename seen by chat calls on node B after {took:?}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bound_holds_while_the_listener_is_disconnected() {
    let Some(db) = common::PgTestDb::create().await else { return };
    let (store_a, a) = node(&db).await;
    let (_store_b, b) = node(&db).await;
    let user = account::create_user(store_a.as_ref(), "bob@x.io", "correct horse", false).await.unwrap();
    let (key, cred) = token::create_api_key(store_a.as_ref(), user.id, "ci", None).await.unwrap();
    b.authenticate(&key).await.unwrap();
    settle().await;
    // Cut every invalidation listener of this database: the revocation's NOTIFY is lost.
    let cut: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
         AND query LIKE '%formaops_invalidations%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(store_a.pool())
    .await
    .unwrap();
    assert!(cut.len() >= 2, "both nodes listen: {cut:?}");
    for pid in &cut {
        sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(store_a.pool()).await.unwrap();
    }
    let t = Instant::now();
    a.revoke_credential(user.id, cred.id).await.unwrap();
    let took = within_bound(t, "revocation on B without a listener", || async {
        refused(b.authenticate(&key).await)
    })
    .await;
    println!("revocation seen by node B (listener cut) after {took:?}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidations_reach_every_process_including_the_sender() {
    use futures::StreamExt;
    let Some(db) = common::PgTestDb::create().await else { return };
    let (one, two) = (db.store().await, db.store().await);
    let mut heard = two.remote_invalidations().await.unwrap().expect("postgres is shared");
    let mut own = one.remote_invalidations().await.unwrap().expect("postgres is shared");
    let sent = formaops_core::store::Invalidation::Heartbeat { node: 7, sent_us: 42 };
    one.publish_invalidation(&sent).await.unwrap();
    for stream in [&mut heard, &mut own] {
        let got = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.unwrap();
        assert_eq!(got.as_ref(), Some(&sent));
    }
}
