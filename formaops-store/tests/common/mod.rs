//! Test databases: a fresh SQLite file per test, a fresh Postgres database per test.
//!
//! Postgres: `DATABASE_URL` names a server the tests may create databases on (CI:
//! `postgres://postgres@127.0.0.1:5432/postgres`); unset, that same local URL is tried. Each
//! test creates `formaops_test_<random>` and drops it when done, so runs never collide. When
//! no server answers the tests FAIL saying what is needed, unless `FORMAOPS_SKIP_PG=1`, in
//! which case they print a loud SKIPPED line.
#![allow(dead_code)]

use std::str::FromStr;
use std::time::Duration;

use formaops_store::{PgStore, SqliteStore, StoreOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};

pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A SQLite database in a temporary directory (removed on drop).
pub struct SqliteTestDb {
    _dir: tempfile::TempDir,
    pub url: String,
}

impl SqliteTestDb {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite:///{}", dir.path().join("formaops.db").display());
        Self { _dir: dir, url }
    }

    pub async fn store(&self) -> SqliteStore {
        SqliteStore::connect(&self.url).await.expect("open sqlite store")
    }

    pub async fn store_with(&self, options: StoreOptions) -> SqliteStore {
        SqliteStore::connect_with(&self.url, options).await.expect("open sqlite store")
    }
}

/// A fresh Postgres database, dropped (with FORCE) when this value is dropped.
pub struct PgTestDb {
    admin: PgConnectOptions,
    pub options: PgConnectOptions,
    pub name: String,
}

impl PgTestDb {
    /// `None` only when Postgres is unreachable and `FORMAOPS_SKIP_PG=1`.
    pub async fn create() -> Option<Self> {
        let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_string());
        let admin = PgConnectOptions::from_str(&url).expect("DATABASE_URL is not a Postgres URL");
        let mut conn = match tokio::time::timeout(Duration::from_secs(10), admin.connect()).await {
            Ok(Ok(c)) => c,
            failure => {
                let why = match failure {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_string(),
                };
                if std::env::var("FORMAOPS_SKIP_PG").as_deref() == Ok("1") {
                    eprintln!("!!! SKIPPED Postgres test: no server at {url} ({why}) and FORMAOPS_SKIP_PG=1");
                    return None;
                }
                panic!(
                    "Postgres tests need a server: set DATABASE_URL to one the tests may create databases on \
                     (tried {url}: {why}); e.g. `apt-get install postgresql && pg_ctlcluster 15 main start`. \
                     Set FORMAOPS_SKIP_PG=1 to skip them knowingly."
                );
            }
        };
        let name = format!("formaops_test_{}", uuid::Uuid::new_v4().simple());
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("CREATE DATABASE for the test");
        let _ = conn.close().await;
        let options = admin.clone().database(&name);
        Some(Self { admin, options, name })
    }

    pub async fn store(&self) -> PgStore {
        self.store_with_pool(10).await
    }

    pub async fn store_with_pool(&self, size: u32) -> PgStore {
        self.store_with(size, StoreOptions::default()).await
    }

    pub async fn store_with(&self, size: u32, options: StoreOptions) -> PgStore {
        let pool = PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(self.options.clone())
            .await
            .expect("connect to the test database");
        PgStore::from_pool_with(pool, options).await.expect("migrate the test database")
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop runs inside the test's runtime: use a thread with its own runtime.
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                if let Ok(mut conn) = admin.connect().await {
                    if let Err(e) = conn.execute(sqlx::AssertSqlSafe(sql)).await {
                        eprintln!("could not drop the test database: {e}");
                    }
                    let _ = conn.close().await;
                }
            });
        });
        let _ = handle.join();
    }
}
