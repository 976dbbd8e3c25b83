//! The core's shared Store conformance suite, against SQLite (temp file) and Postgres (fresh
//! database per run).

mod common;

use formaops_store::{Durability, StoreOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_conformance_suite() {
    let db = common::SqliteTestDb::new();
    let store = db.store().await;
    formaops_core::conformance::run_all(&store).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_conformance_suite() {
    let Some(db) = common::PgTestDb::create().await else { return };
    let store = db.store().await;
    formaops_core::conformance::run_all(&store).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relaxed_sqlite_passes_the_conformance_suite() {
    let db = common::SqliteTestDb::new();
    let store = db.store_with(StoreOptions::with_durability(Durability::Relaxed)).await;
    formaops_core::conformance::run_all(&store).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relaxed_postgres_passes_the_conformance_suite() {
    let Some(db) = common::PgTestDb::create().await else { return };
    let store = db.store_with(10, StoreOptions::with_durability(Durability::Relaxed)).await;
    formaops_core::conformance::run_all(&store).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_engine_refuses_unstorable_text() {
    let db = common::SqliteTestDb::new();
    let store = std::sync::Arc::new(db.store().await);
    formaops_core::conformance::engine_refuses_unstorable_text(store.clone()).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_engine_refuses_unstorable_text() {
    let Some(db) = common::PgTestDb::create().await else { return };
    let store = std::sync::Arc::new(db.store().await);
    formaops_core::conformance::engine_refuses_unstorable_text(store.clone()).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_engine_applies_concurrent_updates() {
    let db = common::SqliteTestDb::new();
    let store = std::sync::Arc::new(db.store().await);
    formaops_core::conformance::engine_applies_concurrent_updates(store.clone()).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_engine_applies_concurrent_updates() {
    let Some(db) = common::PgTestDb::create().await else { return };
    let store = std::sync::Arc::new(db.store().await);
    formaops_core::conformance::engine_applies_concurrent_updates(store.clone()).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_engine_credential_cache() {
    let db = common::SqliteTestDb::new();
    let store = std::sync::Arc::new(db.store().await);
    formaops_core::conformance::engine_credential_cache(store.clone()).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_engine_credential_cache() {
    let Some(db) = common::PgTestDb::create().await else { return };
    let store = std::sync::Arc::new(db.store().await);
    formaops_core::conformance::engine_credential_cache(store.clone()).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_engine_pointer_cache() {
    let db = common::SqliteTestDb::new();
    let store = std::sync::Arc::new(db.store().await);
    formaops_core::conformance::engine_pointer_cache(store.clone()).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_engine_pointer_cache() {
    let Some(db) = common::PgTestDb::create().await else { return };
    let store = std::sync::Arc::new(db.store().await);
    formaops_core::conformance::engine_pointer_cache(store.clone()).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_engine_fast_path() {
    let db = common::SqliteTestDb::new();
    let store = std::sync::Arc::new(db.store().await);
    formaops_core::conformance::engine_fast_path(store.clone()).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_engine_fast_path() {
    let Some(db) = common::PgTestDb::create().await else { return };
    let store = std::sync::Arc::new(db.store().await);
    formaops_core::conformance::engine_fast_path(store.clone()).await;
    store.close().await;
}
