//! Failing fast while the database is down.
//!
//! Without this, every call during an outage waits the pool's whole acquire timeout (the pool
//! retries the refused connection until then) before it fails. [`FailFastPool`] wraps the
//! Postgres pool: an error that looks like an outage (connection refused or lost, acquire
//! timeout, Postgres shutting down) starts a probe that opens one connection of its own,
//! outside the pool. If the probe fails too, the database is marked down: every call then
//! fails at once with an error that maps to [`formaops_core::Error::Unavailable`], and the
//! probe retries every [`PROBE_INTERVAL`] until the database answers, which marks it up
//! again. A probe that succeeds at once (a busy pool, one dropped connection) marks nothing.
//!
//! Queries use `&FailFastPool` like `&PgPool` (it implements [`sqlx::Executor`]), and
//! [`FailFastPool::begin`] starts transactions. It dereferences to the pool for everything
//! else (listeners, closing); those calls bypass the check.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt as _;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use sqlx::postgres::{PgPool, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{ConnectOptions as _, Connection as _, Describe, Either, Execute, Executor, Postgres, SqlStr};

/// Pause between probes while the database is down.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// Longest a probe waits for its connection.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The error of a call refused because the database is known to be down.
#[derive(Debug, thiserror::Error)]
#[error("the database is unreachable; failing at once until it answers again")]
pub(crate) struct DatabaseDown;

/// Whether an I/O error is our own fail-fast refusal.
pub(crate) fn is_fail_fast(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<DatabaseDown>())
}

fn database_down() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::NotConnected, DatabaseDown))
}

/// Whether `err` may mean the database is unreachable (a probe decides).
fn suggests_outage(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(e) => !is_fail_fast(e),
        sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    down: AtomicBool,
    probing: AtomicBool,
}

/// A Postgres pool that fails at once while the database is known to be down.
#[derive(Debug, Clone)]
pub struct FailFastPool {
    inner: Arc<Inner>,
}

impl FailFastPool {
    pub fn new(pool: PgPool) -> Self {
        Self {
            inner: Arc::new(Inner { pool, down: AtomicBool::new(false), probing: AtomicBool::new(false) }),
        }
    }

    /// Whether the database is currently known to be down.
    pub fn is_down(&self) -> bool {
        self.inner.down.load(Ordering::Acquire)
    }

    fn check(&self) -> Result<(), sqlx::Error> {
        if self.is_down() { Err(database_down()) } else { Ok(()) }
    }

    /// Looks at an error; one that suggests an outage starts the probe (unless one runs).
    fn observe(&self, err: &sqlx::Error) {
        if !suggests_outage(err) || self.inner.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner.probing.store(false, Ordering::Release);
            return;
        };
        runtime.spawn(probe(Arc::downgrade(&self.inner)));
    }

    /// Starts a transaction (fails at once while the database is down).
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
        self.check()?;
        let r = self.inner.pool.begin().await;
        if let Err(e) = &r {
            self.observe(e);
        }
        r
    }
}

impl std::ops::Deref for FailFastPool {
    type Target = PgPool;

    fn deref(&self) -> &PgPool {
        &self.inner.pool
    }
}

/// Connects outside the pool until the database answers; marks it down meanwhile. Ends when
/// the database answers, the pool is closed, or the pool is dropped.
async fn probe(inner: Weak<Inner>) {
    loop {
        let Some(state) = inner.upgrade() else { return };
        if state.pool.is_closed() {
            state.probing.store(false, Ordering::Release);
            return;
        }
        let options = state.pool.connect_options();
        let answered = match tokio::time::timeout(PROBE_TIMEOUT, options.connect()).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                true
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "database probe failed");
                false
            }
            Err(_) => false,
        };
        if answered {
            if state.down.swap(false, Ordering::AcqRel) {
                tracing::info!("the database answers again");
            }
            state.probing.store(false, Ordering::Release);
            return;
        }
        if !state.down.swap(true, Ordering::AcqRel) {
            tracing::warn!("the database is unreachable; failing requests at once until it answers");
        }
        drop(state);
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

impl<'p> Executor<'p> for &'_ FailFastPool {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if let Err(e) = self.check() {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        let this = self.clone();
        (&self.inner.pool)
            .fetch_many(query)
            .map(move |r| {
                if let Err(e) = &r {
                    this.observe(e);
                }
                r
            })
            .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if let Err(e) = self.check() {
            return Box::pin(async move { Err(e) });
        }
        let this = self.clone();
        let fut = (&self.inner.pool).fetch_optional(query);
        Box::pin(async move {
            let r = fut.await;
            if let Err(e) = &r {
                this.observe(e);
            }
            r
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'p: 'e,
    {
        if let Err(e) = self.check() {
            return Box::pin(async move { Err(e) });
        }
        (&self.inner.pool).prepare_with(sql, parameters)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>>
    where
        'p: 'e,
    {
        (&self.inner.pool).describe(sql)
    }
}
