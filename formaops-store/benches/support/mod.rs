//! Shared by the store benches: runs a workload once per backend named in
//! `FORMAOPS_BENCH_BACKENDS` (default `postgres,sqlite`) and per durability named in
//! `FORMAOPS_BENCH_DURABILITY` (default `strict`; `strict,relaxed` runs both), each on a fresh
//! database that is dropped afterwards. Postgres comes from `DATABASE_URL` (default: the local
//! server). Also the engine the engine-level benches drive and their prompt, and the knobs'
//! parsing.
#![allow(dead_code)] // each bench uses part of it

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

use formaops_core::engine::{EngineConfig, FormaOps};
use formaops_core::ids::UserId;
use formaops_core::prompt::{Prompt, PromptSpec};
use formaops_core::provider::mock::MockProvider;
use formaops_core::store::Store;
use formaops_store::{Durability, PgStore, SqliteStore, StoreOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Executor};

/// The knob `name` from the environment (`_` separators allowed: `10_000`), else `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

/// An engine on `store` with the zero-latency mock provider (`mock`) and room for 512 provider
/// calls at once, so the store, not the provider, is what is measured.
pub async fn mock_engine(store: Arc<dyn Store>) -> FormaOps {
    let config = EngineConfig { provider_concurrency: 512, ..EngineConfig::default() };
    FormaOps::builder(store)
        .provider("mock", Arc::new(MockProvider::new()))
        .config(config)
        .start()
        .await
        .unwrap()
}

/// Creates the benches' prompt `bench` (`Summarize: {{ text }}`, one required string `text`,
/// on the mock provider's `gpt-4o-mini`) with the output rules `validations` (a JSON array),
/// for a new user: that user and the prompt.
pub async fn bench_prompt(engine: &FormaOps, validations: serde_json::Value) -> (UserId, Prompt) {
    let user = UserId::new();
    let spec: PromptSpec = serde_json::from_value(serde_json::json!({
        "name": "bench", "template": "Summarize: {{ text }}",
        "variables": [{"name": "text", "type": "string", "required": true}],
        "validations": validations,
        "model": {"provider": "mock", "model": "gpt-4o-mini"}
    }))
    .unwrap();
    let (prompt, _) = engine.create_prompt(user, spec).await.unwrap();
    (user, prompt)
}

/// Runs `run` on each backend and durability the environment names (see the module docs),
/// with the backend's label (`postgres strict`, `sqlite relaxed`, ...) and a store on a fresh
/// database; Postgres pools hold up to `max_connections`.
pub async fn for_each_backend<F, Fut>(db_prefix: &str, max_connections: u32, run: F)
where
    F: Fn(&'static str, Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let backends = std::env::var("FORMAOPS_BENCH_BACKENDS").unwrap_or_else(|_| "postgres,sqlite".into());
    let durabilities: Vec<Durability> = std::env::var("FORMAOPS_BENCH_DURABILITY")
        .unwrap_or_else(|_| "strict".into())
        .split(',')
        .map(|d| Durability::parse(d).expect("FORMAOPS_BENCH_DURABILITY: strict, relaxed or both"))
        .collect();
    for durability in durabilities {
        let options = StoreOptions::with_durability(durability);
        if backends.contains("postgres") {
            let label = match durability {
                Durability::Strict => "postgres strict",
                Durability::Relaxed => "postgres relaxed",
            };
            postgres(db_prefix, max_connections, options, |store| run(label, store)).await;
        }
        if backends.contains("sqlite") {
            let label = match durability {
                Durability::Strict => "sqlite strict",
                Durability::Relaxed => "sqlite relaxed",
            };
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite:///{}", dir.path().join("bench.db").display());
            let store = Arc::new(SqliteStore::connect_with(&url, options).await.unwrap());
            run(label, store.clone()).await;
            store.close().await;
        }
    }
}

async fn postgres<F, Fut>(db_prefix: &str, max_connections: u32, options: StoreOptions, run: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin = PgConnectOptions::from_str(&url).expect("DATABASE_URL");
    let name = format!("{db_prefix}_{}", uuid::Uuid::new_v4().simple());
    let mut conn = admin.connect().await.expect("connect to Postgres (set DATABASE_URL)");
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .connect_with(admin.clone().database(&name))
        .await
        .unwrap();
    let store = Arc::new(PgStore::from_pool_with(pool, options).await.unwrap());
    run(store.clone()).await;
    store.close().await;
    conn.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).await.unwrap();
}
