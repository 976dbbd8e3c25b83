//! A fresh Postgres database per run.
//!
//! The server named by `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! must answer: the tests fail loudly when it does not, unless `FORMAOPS_SKIP_PG=1` says to
//! skip them knowingly.

use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

/// Default admin URL when `DATABASE_URL` is unset.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database created for one test; [`PgDatabase::drop_database`] removes it, and so does
/// dropping the value (also when a test panics).
#[derive(Debug)]
pub struct PgDatabase {
    admin_url: String,
    name: String,
    /// URL of the new database.
    pub url: String,
    dropped: bool,
}

/// `None` (after a loud notice) when `FORMAOPS_SKIP_PG=1`; panics when Postgres is
/// unreachable otherwise.
pub async fn create() -> Option<PgDatabase> {
    if std::env::var("FORMAOPS_SKIP_PG").is_ok_and(|v| v == "1") {
        eprintln!("!!! FORMAOPS_SKIP_PG=1: Postgres end-to-end test SKIPPED");
        return None;
    }
    let admin_url = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
        .unwrap_or_else(|| DEFAULT_URL.to_string());
    let mut conn = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
        panic!("Postgres is unreachable at DATABASE_URL ({e}); start it or set FORMAOPS_SKIP_PG=1 to skip knowingly")
    });
    let name = format!("formaops_e2e_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    let _ = conn.close().await;
    let url = replace_database(&admin_url, &name);
    Some(PgDatabase { admin_url, name, url, dropped: false })
}

impl PgDatabase {
    /// Drops the database (terminating leftover connections first).
    pub async fn drop_database(mut self) {
        drop_named(&self.admin_url, &self.name).await;
        self.dropped = true;
    }
}

async fn drop_named(admin_url: &str, name: &str) {
    let Ok(mut conn) = PgConnection::connect(admin_url).await else { return };
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // Not dropped explicitly (a test panicked): drop it from a thread with its own runtime.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(drop_named(&admin_url, &name));
            }
        })
        .join();
    }
}

/// `url` with its database name replaced by `name` (query string kept).
pub fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let prefix = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::replace_database;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(replace_database("postgres://u@h:5432/postgres", "x"), "postgres://u@h:5432/x");
        assert_eq!(
            replace_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
