//! Translation of sqlx errors into the core [`Error`].
//!
//! Unique violations become [`Error::Conflict`] with a message naming what is duplicated
//! (recognised by constraint name on Postgres and by the constrained columns on SQLite);
//! connection loss, pool timeouts and a busy database become [`Error::Unavailable`]; anything
//! else is [`Error::Internal`], logged in full here and reported without SQL text.

use formaops_core::Error;

/// Which unique constraint a violation hit, by Postgres constraint name or SQLite message.
const UNIQUE_CONFLICTS: &[(&str, &str, &str)] = &[
    // (postgres constraint, sqlite "table.column" marker, message)
    ("users_email_key", "users.email", "a user with this email already exists"),
    ("credentials_token_hash_key", "credentials.token_hash", "a credential with this token already exists"),
    (
        "prompts_active_name_key",
        "prompts.user_id, prompts.name",
        "an active prompt with this name already exists",
    ),
    ("prompts_pkey", "prompts.id", "a prompt with this id already exists"),
    ("prompt_versions_pkey", "prompt_versions.prompt_id", "this prompt version already exists"),
    ("executions_pkey", "executions.id", "an execution with this id already exists"),
    ("users_pkey", "users.id", "a user with this id already exists"),
    ("credentials_pkey", "credentials.id", "a credential with this id already exists"),
    (
        "executions_idempotency_key",
        "executions.user_id, executions.idempotency_key",
        "an execution with this idempotency key already exists",
    ),
];

/// Maps a sqlx error; `context` names the operation for logs.
pub(crate) fn map_err(context: &'static str, err: sqlx::Error) -> Error {
    match &err {
        sqlx::Error::PoolTimedOut => {
            Error::unavailable("the database did not hand out a connection in time (is it running?)")
        }
        sqlx::Error::PoolClosed => Error::unavailable("the database pool is closed"),
        sqlx::Error::Io(e) if crate::health::is_fail_fast(e) => {
            Error::unavailable("the database is unreachable (failing at once until it answers again)")
        }
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => {
            tracing::warn!(operation = context, error = %err, "database connection failure");
            Error::unavailable("the database connection failed")
        }
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                let constraint = db.constraint();
                let message = db.message();
                for (pg, sqlite, text) in UNIQUE_CONFLICTS {
                    if constraint == Some(*pg) || (constraint.is_none() && message.contains(sqlite)) {
                        return Error::conflict(*text);
                    }
                }
                tracing::error!(operation = context, error = %err, "unmapped unique violation");
                return Error::conflict("a unique constraint was violated");
            }
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // Postgres: class 08 connection exceptions, 57P01..57P03 shutdown / cannot connect
            // now, 53300 too many connections, 40001/40P01 serialization / deadlock (retry).
            // SQLite: 5 SQLITE_BUSY, 6 SQLITE_LOCKED (and their extended codes).
            let transient_pg = code.starts_with("08")
                || matches!(code.as_str(), "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01");
            let transient_sqlite = matches!(code.as_str(), "5" | "6" | "261" | "262" | "517");
            if transient_pg || transient_sqlite {
                tracing::warn!(operation = context, error = %err, "database temporarily unavailable");
                return Error::unavailable("the database is temporarily unavailable");
            }
            // Postgres refuses NUL characters in text and jsonb.
            if matches!(code.as_str(), "22021" | "22P05") {
                return Error::invalid_argument("text", "contains a NUL character, which cannot be stored");
            }
            tracing::error!(operation = context, error = %err, "database error");
            Error::internal(format!("database error during {context} (code {code})"))
        }
        _ => {
            tracing::error!(operation = context, error = %err, "database error");
            Error::internal(format!("database error during {context}"))
        }
    }
}

/// Shorthand for `.map_err(|e| map_err(context, e))`.
pub(crate) trait DbResultExt<T> {
    fn db(self, context: &'static str) -> Result<T, Error>;
}

impl<T> DbResultExt<T> for Result<T, sqlx::Error> {
    fn db(self, context: &'static str) -> Result<T, Error> {
        self.map_err(|e| map_err(context, e))
    }
}
