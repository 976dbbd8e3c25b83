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
    (
        "external_identities_pkey",
        "external_identities.issuer, external_identities.subject",
        "this external identity already exists",
    ),
    ("credentials_token_hash_key", "credentials.token_hash", "a credential with this token already exists"),
    (
        "prompts_active_name_key",
        "prompts.user_id, prompts.name",
        "an active prompt with this name already exists",
    ),
    ("datasets_name_key", "datasets.user_id, datasets.name", "a dataset with this name already exists"),
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

/// Maps a sqlx error; `context` names the operation for logs. An [`Error::Unavailable`] or
/// [`Error::Internal`] keeps the sqlx error as its `source`.
pub(crate) fn map_err(context: &'static str, err: sqlx::Error) -> Error {
    match classify(context, &err) {
        Error::Unavailable { message, source: None } => Error::unavailable_from(message, err),
        Error::Internal { message, source: None } => Error::internal_from(message, err),
        other => other,
    }
}

fn classify(context: &'static str, err: &sqlx::Error) -> Error {
    match err {
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
            // Postgres: the database named in the URL does not exist.
            if code == "3D000" {
                return missing_postgres_database(db.message());
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

/// `database "x" does not exist` from Postgres, with the command that creates it.
fn missing_postgres_database(message: &str) -> Error {
    let name = message.split('"').nth(1).filter(|n| !n.is_empty());
    let advice = match name {
        Some(n) => {
            format!("database \"{n}\" does not exist: create it with `createdb {n}` (or CREATE DATABASE)")
        }
        None => format!("{message}: create it with `createdb <name>` (or CREATE DATABASE)"),
    };
    Error::invalid_argument("database url", advice)
}

/// Maps a failure to open the SQLite database file `path`: a file that cannot be opened or
/// created (SQLITE_CANTOPEN) says why and what to do; anything else goes to [`map_err`].
pub(crate) fn sqlite_open_err(path: &std::path::Path, err: sqlx::Error) -> Error {
    let cant_open = match &err {
        // The primary result code is the low byte of an extended one.
        sqlx::Error::Database(db) => {
            db.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| c & 0xff == 14)
        }
        _ => false,
    };
    if !cant_open {
        return map_err("open sqlite database", err);
    }
    // `sqlite:////abs.db` can leave a leading `//`; show the path as people write it.
    let path: std::path::PathBuf = path.components().collect();
    let path = path.as_path();
    let file = path.display();
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let message = match dir {
        Some(d) if !d.exists() => {
            format!(
                "the directory {} does not exist: create it first (the database file {file} is created in it)",
                d.display()
            )
        }
        _ if path.is_dir() => format!("{file} is a directory: name a database file"),
        _ => format!(
            "cannot open or create the database file {file}: check the permissions of the file and its directory"
        ),
    };
    Error::invalid_argument("database url", message)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_sqlite_directory_is_named_with_what_to_do() {
        let dir = std::env::temp_dir().join(format!("formaops-missing-{}", std::process::id()));
        let path = dir.join("x.db");
        let err = sqlx::Error::Database(Box::new(FakeDbError { code: "14" }));
        let text = sqlite_open_err(&path, err).to_string();
        assert!(
            text.contains(&format!("the directory {} does not exist: create it first", dir.display())),
            "{text}"
        );
    }

    #[test]
    fn outages_and_internal_errors_keep_the_sqlx_cause() {
        use std::error::Error as _;
        let busy = map_err("claim", sqlx::Error::Database(Box::new(FakeDbError { code: "5" })));
        assert!(matches!(busy, Error::Unavailable { .. }), "{busy}");
        let cause = busy.source().map(|s| s.to_string()).unwrap_or_default();
        assert!(cause.contains("unable to open database file"), "{cause}");
        let odd = map_err("claim", sqlx::Error::Database(Box::new(FakeDbError { code: "XX000" })));
        assert!(matches!(odd, Error::Internal { .. }) && odd.source().is_some(), "{odd}");
        let closed = map_err("claim", sqlx::Error::PoolClosed);
        assert!(closed.source().is_some_and(|s| s.to_string().contains("closed")), "{closed}");
    }

    #[test]
    fn a_missing_postgres_database_says_how_to_create_it() {
        let text = missing_postgres_database("database \"foo\" does not exist").to_string();
        assert_eq!(
            text,
            "invalid database url: database \"foo\" does not exist: create it with `createdb foo` (or CREATE DATABASE)"
        );
    }

    #[derive(Debug)]
    struct FakeDbError {
        code: &'static str,
    }

    impl std::fmt::Display for FakeDbError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "unable to open database file")
        }
    }

    impl std::error::Error for FakeDbError {}

    impl sqlx::error::DatabaseError for FakeDbError {
        fn message(&self) -> &str {
            "unable to open database file"
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.code.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }
}
