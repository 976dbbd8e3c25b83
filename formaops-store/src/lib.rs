//! # formaops-store
//!
//! Postgres and SQLite implementations of the FormaOps [`Store`]: prompts, versions, users
//! and credentials, and the executions table that is also the durable queue.
//!
//! [`connect`] picks the backend from the URL and applies migrations:
//!
//! - `postgres://...` / `postgresql://...`: [`PgStore`], for production and for several
//!   processes sharing one database (claims use `FOR UPDATE SKIP LOCKED`; execution events
//!   are relayed between processes with `LISTEN/NOTIFY`).
//! - `sqlite://path/to/file.db` or `sqlite::memory:`: [`SqliteStore`], the zero-configuration
//!   single-node backend (the file is created if missing).
//!
//! Every batch handed to `enqueue` or `finish` is one transaction, committed before the call
//! returns: callers that batch concurrent work get group commit without giving up
//! durability. Database outages surface as [`formaops_core::Error::Unavailable`] after at
//! most a few seconds (the pools' acquire timeout), and the pools reconnect by themselves when
//! the database returns.
//!
//! # Layout
//!
//! - [`postgres`]: [`PgStore`], the Postgres backend and the cross-process event relay.
//! - [`sqlite`]: [`SqliteStore`], the SQLite backend.
//! - `sql`: the queries both backends share, each written once, with `FromRow` row types;
//! - `rows`: domain -> column values shared by both (metrics aggregate in
//!   `formaops_core::metrics::aggregate`).
//! - `error`: sqlx errors -> core errors (constraint names -> `Conflict`, outages ->
//!   `Unavailable`, never SQL text to callers).
//! - `migrations/postgres`, `migrations/sqlite`: the schema of each backend.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> formaops_core::Result<()> {
//! let store = formaops_store::connect("sqlite::memory:").await?;
//! store.ping().await?;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use formaops_core::metrics::MetricsQuery;
use formaops_core::page::Page;
use formaops_core::prompt::PromptVersion;
use formaops_core::store::Store;
use formaops_core::{Error, Result};

mod error;
pub mod postgres;
mod rows;
mod sql;
pub mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Most executions (or results, or lease ids) accepted in one batch call.
pub const MAX_BATCH: usize = 10_000;
/// Most executions handed out by one `claim`.
pub const MAX_CLAIM: u32 = 1_000;
/// Most expired leases listed by one `expired_leases` call; callers call again for more.
pub const MAX_RESCUE: u32 = 1_000;
/// Most credentials of one kind listed for a user.
pub(crate) const MAX_CREDENTIALS: i64 = 1_000;

/// Which backend a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Postgres,
    Sqlite,
}

fn backend_of(url: &str) -> Result<Backend> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else {
        Err(Error::invalid_argument(
            "database url",
            "must start with postgres://, postgresql://, sqlite:// or be sqlite::memory:",
        ))
    }
}

/// Connects to the database named by `url`, applies pending migrations, and returns the
/// store.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    Ok(match backend_of(url)? {
        Backend::Postgres => Arc::new(PgStore::connect(url).await?),
        Backend::Sqlite => Arc::new(SqliteStore::connect(url).await?),
    })
}

/// Applies pending migrations to the database named by `url` and closes the connection.
pub async fn migrate(url: &str) -> Result<()> {
    match backend_of(url)? {
        Backend::Postgres => PgStore::connect(url).await?.close().await,
        Backend::Sqlite => SqliteStore::connect(url).await?.close().await,
    }
    Ok(())
}

/// A page of versions from up to `limit + 1` rows, newest first.
pub(crate) fn version_page(mut items: Vec<PromptVersion>, limit: u32) -> Page<PromptVersion> {
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|v| v.version.to_string())
    } else {
        None
    };
    Page { items, next_cursor }
}

/// The version filter of a metrics query: it applies only together with a prompt.
pub(crate) fn metrics_version(q: &MetricsQuery) -> Option<u32> {
    q.prompt_id.and(q.prompt_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_is_chosen_by_scheme() {
        assert_eq!(backend_of("postgres://u@h/db").unwrap(), Backend::Postgres);
        assert_eq!(backend_of("postgresql://u@h/db").unwrap(), Backend::Postgres);
        assert_eq!(backend_of("sqlite://x.db").unwrap(), Backend::Sqlite);
        assert_eq!(backend_of("sqlite::memory:").unwrap(), Backend::Sqlite);
        assert!(matches!(backend_of("mysql://x"), Err(Error::InvalidArgument { .. })));
    }
}
