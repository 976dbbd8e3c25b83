//! # formaops-store
//!
//! Postgres and SQLite implementations of the FormaOps [`Store`]: prompts, versions, users
//! and credentials, and the executions table that is also the durable queue.
//!
//! [`connect`] picks the backend from the URL (the grammar and its redaction for logs: [`url`])
//! and applies migrations:
//!
//! - `postgres://...` / `postgresql://...`: [`PgStore`], for production and for several
//!   processes sharing one database (claims use `FOR UPDATE SKIP LOCKED`; execution events
//!   are relayed between processes with `LISTEN/NOTIFY`).
//! - `sqlite:///relative/path.db`, `sqlite:////absolute/path.db` (SQLAlchemy's convention) or
//!   `sqlite://` (in memory): [`SqliteStore`], the zero-configuration single-node backend (the
//!   file is created if missing).
//! - `memory://`: core's [`MemoryStore`], nothing persisted.
//!
//! Every batch handed to `enqueue` or `finish` is one transaction, committed before the call
//! returns: callers that batch concurrent work get group commit without giving up
//! durability. [`connect_with`] takes [`StoreOptions`]: with [`Durability::Relaxed`],
//! execution writes are answered once committed rather than once flushed (what each mode
//! guarantees and what a crash can lose: [`options`]). Database outages surface as [`formaops_core::Error::Unavailable`]: the first
//! calls after the database goes away wait at most the pools' acquire timeout; once a probe
//! confirms the outage, Postgres calls fail at once until the database answers again
//! ([`health`]), and the pools reconnect by themselves.
//!
//! # Layout
//!
//! - [`postgres`]: [`PgStore`], the Postgres backend and the cross-process event relay.
//! - [`sqlite`]: [`SqliteStore`], the SQLite backend.
//! - [`options`]: [`StoreOptions`] and [`Durability`], chosen at connect time.
//! - [`url`]: the database URL grammar ([`DatabaseUrl`]), [`redact`] and [`describe`] for logs.
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

use formaops_core::Result;
use formaops_core::page::Page;
use formaops_core::prompt::PromptVersion;
use formaops_core::store::{MemoryStore, Store};

mod error;
pub mod health;
pub mod options;
pub mod postgres;
mod rows;
mod sql;
pub mod sqlite;
pub mod url;

pub use options::{Durability, StoreOptions};
pub use postgres::PgStore;
#[doc(hidden)]
pub use postgres::hot_statements;
pub use sqlite::SqliteStore;
pub use url::{DatabaseUrl, describe, redact};

/// Most executions (or results, or lease ids) accepted in one batch call.
pub const MAX_BATCH: usize = 10_000;
/// Most executions handed out by one `claim`.
pub const MAX_CLAIM: u32 = 1_000;
/// Most expired leases listed by one `expired_leases` call; callers call again for more.
pub const MAX_RESCUE: u32 = 1_000;
/// Most credentials of one kind listed for a user.
pub(crate) const MAX_CREDENTIALS: i64 = 1_000;

/// Connects to the database named by `url` (see [`url`] for the forms) with the default
/// [`StoreOptions`] (strict durability), applies pending migrations, and returns the store.
///
/// # Errors
/// [`formaops_core::Error::InvalidArgument`] for a URL outside the grammar; the backend's errors otherwise.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    connect_with(url, StoreOptions::default()).await
}

/// [`connect`] with `options` (for `memory://` they change nothing: nothing is persisted).
///
/// # Errors
/// As [`connect`].
pub async fn connect_with(url: &str, options: StoreOptions) -> Result<Arc<dyn Store>> {
    let url = url.trim();
    Ok(match DatabaseUrl::parse(url)? {
        DatabaseUrl::Memory => Arc::new(MemoryStore::new()),
        DatabaseUrl::Postgres(_) => Arc::new(PgStore::connect_with(url, options).await?),
        DatabaseUrl::Sqlite(_) => Arc::new(SqliteStore::connect_with(url, options).await?),
    })
}

/// Applies pending migrations to the database named by `url` and closes the connection
/// (nothing to do for `memory://`).
///
/// # Errors
/// As [`connect`].
pub async fn migrate(url: &str) -> Result<()> {
    let url = url.trim();
    match DatabaseUrl::parse(url)? {
        DatabaseUrl::Memory => {}
        DatabaseUrl::Postgres(_) => PgStore::connect(url).await?.close().await,
        DatabaseUrl::Sqlite(_) => SqliteStore::connect(url).await?.close().await,
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
