//! Shared by the store benches: runs a workload once per backend named in
//! `FORMAOPS_BENCH_BACKENDS` (default `postgres,sqlite`), each on a fresh database that is
//! dropped afterwards. Postgres comes from `DATABASE_URL` (default: the local server).

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

use formaops_core::store::Store;
use formaops_store::{PgStore, SqliteStore};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Executor};

pub async fn for_each_backend<F, Fut>(db_prefix: &str, max_connections: u32, run: F)
where
    F: Fn(&'static str, Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let backends = std::env::var("FORMAOPS_BENCH_BACKENDS").unwrap_or_else(|_| "postgres,sqlite".into());
    if backends.contains("postgres") {
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
        let store = Arc::new(PgStore::from_pool(pool).await.unwrap());
        run("postgres", store.clone()).await;
        store.close().await;
        conn.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).await.unwrap();
    }
    if backends.contains("sqlite") {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:///{}", dir.path().join("bench.db").display());
        let store = Arc::new(SqliteStore::connect(&url).await.unwrap());
        run("sqlite", store.clone()).await;
        store.close().await;
    }
}
