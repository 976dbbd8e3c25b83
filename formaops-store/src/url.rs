//! Database URLs: the one grammar every FormaOps entry point accepts (server, CLI, Python),
//! and their redaction for logs and messages.
//!
//! | URL | database |
//! |---|---|
//! | `postgres://user:password@host:port/db` (or `postgresql://`) | Postgres (the URL is handed to sqlx as is) |
//! | `sqlite:///relative/path.db` | an SQLite file relative to the working directory |
//! | `sqlite:////absolute/path.db` | an SQLite file at an absolute path |
//! | `sqlite://`, `sqlite::memory:`, `sqlite:///:memory:` | an SQLite database in memory |
//! | `memory://` | the in-process [`MemoryStore`](formaops_core::store::MemoryStore) (nothing persisted) |
//!
//! The SQLite forms follow SQLAlchemy: `sqlite://`, an empty host, then `/` and the path, so
//! a third slash starts a relative path and a fourth an absolute one. Also accepted, as
//! before: `sqlite://relative.db` (no third slash, relative) and `sqlite:path`. A relative
//! path is resolved against the working directory when the store opens (see
//! [`SqliteUrl::resolve`]); messages then name the absolute file. The path is
//! percent-decoded (`%3F` for a `?` in a file name); the query parameters are sqlx's
//! (`mode=ro|rw|rwc|memory`, `cache`, `immutable`, `vfs`).
//!
//! [`redact`] hides passwords (in the user info and in `password=` query parameters) and
//! keeps the rest, so a URL can be logged. [`DatabaseUrl`]'s `Display` and `Debug` are
//! redacted too.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use formaops_core::{Error, Result};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use sqlx::sqlite::SqliteConnectOptions;

/// The field name errors about a database URL carry.
const FIELD: &str = "database url";
/// What a hidden secret is replaced with.
const HIDDEN: &str = "***";
/// Characters of an SQLite path that must be percent-encoded in a URL.
const PATH_ESCAPES: &AsciiSet = &CONTROLS.add(b'%').add(b'?').add(b'#');

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid_argument(FIELD, message)
}

/// A parsed database URL: which store, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `memory://`: the in-process memory store.
    Memory,
    /// `sqlite:...`: an SQLite file or an in-memory SQLite database.
    Sqlite(SqliteUrl),
    /// `postgres://...` / `postgresql://...`.
    Postgres(PostgresUrl),
}

impl DatabaseUrl {
    /// Parses `url` (surrounding whitespace ignored). Relative SQLite paths stay relative
    /// until [`DatabaseUrl::resolve`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the accepted forms; the message never contains a
    /// password.
    pub fn parse(url: &str) -> Result<Self> {
        let url = url.trim();
        if url == "memory://" || url == "memory" {
            Ok(Self::Memory)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(PostgresUrl(url.to_string())))
        } else if url.starts_with("sqlite:") {
            SqliteUrl::parse(url).map(Self::Sqlite)
        } else {
            Err(invalid(format!(
                "{:?} is not a database URL: use postgres://user@host/db, sqlite:///relative.db, \
                 sqlite:////absolute.db, sqlite:// (in memory) or memory://",
                redact(url)
            )))
        }
    }

    /// The same URL with a relative SQLite path joined to `cwd` (a pure function: the
    /// process's working directory is not read).
    #[must_use]
    pub fn resolve(self, cwd: &Path) -> Self {
        match self {
            Self::Sqlite(s) => Self::Sqlite(s.resolve(cwd)),
            other => other,
        }
    }
}

impl FromStr for DatabaseUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// Redacted: a Postgres password is shown as `***`.
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory://"),
            Self::Sqlite(s) => s.fmt(f),
            Self::Postgres(p) => f.write_str(&redact(&p.0)),
        }
    }
}

/// An SQLite database: a file or memory, and sqlx's query parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteUrl {
    /// The database file (relative to the working directory until resolved); `None` for an
    /// in-memory database.
    pub file: Option<PathBuf>,
    /// The query string without its `?` (`mode`, `cache`, `immutable`, `vfs`), if any.
    pub params: Option<String>,
}

impl SqliteUrl {
    /// Parses an `sqlite:` URL (see the [module](self) for the forms).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `url` is not an `sqlite:` URL, its path is not UTF-8
    /// once percent-decoded, or a query parameter is unknown or has a bad value.
    pub fn parse(url: &str) -> Result<Self> {
        let url = url.trim();
        let rest = url
            .strip_prefix("sqlite:")
            .ok_or_else(|| invalid(format!("{:?} is not an sqlite: URL", redact(url))))?;
        let (location, params) = match rest.split_once('?') {
            Some((location, params)) => (location, Some(params)),
            None => (rest, None),
        };
        let path = match location.strip_prefix("//") {
            // SQLAlchemy's form: an empty host, then `/` and the path (`sqlite:///rel.db`,
            // `sqlite:////abs.db`); without the third slash the rest is a relative path, as
            // it always was here (`sqlite://rel.db`).
            Some(after_host) => after_host.strip_prefix('/').unwrap_or(after_host),
            // `sqlite:rel.db`, `sqlite:/abs.db`, `sqlite::memory:`.
            None => location,
        };
        let path = percent_decode_str(path)
            .decode_utf8()
            .map_err(|_| invalid("the SQLite path is not UTF-8 once percent-decoded"))?;
        let file = (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(&*path));
        let parsed = Self { file, params: params.filter(|p| !p.is_empty()).map(str::to_string) };
        parsed.connect_options()?;
        Ok(parsed)
    }

    /// The same URL with a relative path joined to `cwd` (pure: the process's working
    /// directory is not read).
    #[must_use]
    pub fn resolve(mut self, cwd: &Path) -> Self {
        if let Some(file) = &self.file
            && file.is_relative()
        {
            self.file = Some(cwd.join(file));
        }
        self
    }

    /// [`SqliteUrl::resolve`] against the process's working directory (read only when the
    /// path is relative).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the path is relative and the working directory cannot
    /// be read.
    pub fn in_working_dir(self) -> Result<Self> {
        match &self.file {
            Some(file) if file.is_relative() => {
                let cwd = std::env::current_dir().map_err(|e| {
                    invalid(format!(
                        "the SQLite path {} is relative but the working directory is unreadable ({e}); \
                         use an absolute path (sqlite:////absolute/path.db)",
                        file.display()
                    ))
                })?;
                Ok(self.resolve(&cwd))
            }
            _ => Ok(self),
        }
    }

    /// Whether the database lives in memory (no file, or `mode=memory`).
    pub fn is_memory(&self) -> bool {
        self.file.is_none()
            || self.params.as_deref().is_some_and(|p| {
                url::form_urlencoded::parse(p.as_bytes()).any(|(k, v)| k == "mode" && v == "memory")
            })
    }

    /// sqlx's options for this database: the file exactly as named here (sqlx's own URL
    /// parser would read `sqlite:///x.db` as `/x.db`), the query parameters as sqlx reads
    /// them.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an unknown query parameter or a bad value.
    pub fn connect_options(&self) -> Result<SqliteConnectOptions> {
        let query = self.params.as_deref().map(|p| format!("?{p}")).unwrap_or_default();
        // Only the query goes through sqlx's parser; the file is set directly, so nothing of
        // the path is re-interpreted.
        let base =
            if self.file.is_some() { format!("sqlite:{query}") } else { format!("sqlite::memory:{query}") };
        let options = SqliteConnectOptions::from_str(&base)
            .map_err(|e| invalid(format!("bad SQLite URL parameter: {e}")))?;
        Ok(match &self.file {
            Some(file) => options.filename(file),
            None => options,
        })
    }
}

/// The canonical form: `sqlite:///relative.db`, `sqlite:////absolute.db`, `sqlite://`.
impl fmt::Display for SqliteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sqlite://")?;
        if let Some(file) = &self.file {
            write!(f, "/{}", utf8_percent_encode(&file.to_string_lossy(), PATH_ESCAPES))?;
        }
        if let Some(params) = &self.params {
            write!(f, "?{params}")?;
        }
        Ok(())
    }
}

/// A Postgres URL, kept verbatim for sqlx (which reads libpq's URL form). `Debug` is
/// redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    /// The URL as given, password included: for the driver only, never for a message.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PostgresUrl").field(&redact(&self.0)).finish()
    }
}

/// Whether a query parameter carries a secret (`password`, `sslpassword`, ...).
fn is_secret_key(key: &str) -> bool {
    key.to_ascii_lowercase().contains("password")
}

/// `url` with every password replaced by `***` (the user info's password and any
/// `password`-like query parameter), everything else kept, for logs and messages.
///
/// SQLite and memory URLs hold no secret and come back unchanged. A URL that cannot be
/// parsed but may hold a secret (it has an `@` or a `password`) is reduced to its scheme.
pub fn redact(url: &str) -> String {
    let trimmed = url.trim();
    if trimmed.starts_with("sqlite:") || trimmed.starts_with("memory") {
        return url.to_string();
    }
    let may_hold_secret = trimmed.contains('@') || trimmed.to_ascii_lowercase().contains("password");
    let hide_all = || match trimmed.split_once("://") {
        Some((scheme, _)) => format!("{scheme}://{HIDDEN}"),
        None => HIDDEN.to_string(),
    };
    let Ok(mut parsed) = url::Url::parse(trimmed) else {
        return if may_hold_secret { hide_all() } else { url.to_string() };
    };
    // A password with an unescaped `/`, `?` or `#` can end the host early and leave the rest
    // of the user info in the path or fragment: show nothing of such a URL.
    if parsed.path().contains('@') || parsed.fragment().is_some() {
        return if may_hold_secret { hide_all() } else { url.to_string() };
    }
    let mut changed = false;
    if parsed.password().is_some() {
        if parsed.set_password(Some(HIDDEN)).is_err() {
            return hide_all();
        }
        changed = true;
    }
    if parsed.query_pairs().any(|(k, _)| is_secret_key(&k)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_key(&k) { HIDDEN.to_string() } else { v.into_owned() };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    if changed { parsed.to_string() } else { url.to_string() }
}

/// `url` as it will be opened, for logs and messages: a relative SQLite path joined to the
/// working directory (so the message names the real file), passwords hidden. A URL outside
/// the grammar is only [`redact`]ed.
pub fn describe(url: &str) -> String {
    match DatabaseUrl::parse(url) {
        Ok(DatabaseUrl::Sqlite(s)) => s.in_working_dir().map_or_else(|_| redact(url), |s| s.to_string()),
        Ok(other) => other.to_string(),
        Err(_) => redact(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(url: &str) -> SqliteUrl {
        match DatabaseUrl::parse(url).unwrap() {
            DatabaseUrl::Sqlite(s) => s,
            other => panic!("{url} parsed as {other:?}"),
        }
    }

    fn file(url: &str) -> PathBuf {
        sqlite(url).file.unwrap_or_else(|| panic!("{url} names no file"))
    }

    #[test]
    fn sqlite_paths_follow_sqlalchemy() {
        // Three slashes: relative; four: absolute.
        assert_eq!(file("sqlite:///fo.db"), PathBuf::from("fo.db"));
        assert_eq!(file("sqlite:///data/fo.db"), PathBuf::from("data/fo.db"));
        assert_eq!(file("sqlite:////abs/path.db"), PathBuf::from("/abs/path.db"));
        assert_eq!(file("sqlite:///../up.db"), PathBuf::from("../up.db"));
        // Kept from before: no third slash, or no slashes, is relative; one slash absolute.
        assert_eq!(file("sqlite://formaops.db"), PathBuf::from("formaops.db"));
        assert_eq!(file("sqlite:rel.db"), PathBuf::from("rel.db"));
        assert_eq!(file("sqlite:/abs.db"), PathBuf::from("/abs.db"));
        // Percent-decoded; the query is split off first.
        assert_eq!(file("sqlite:///a%3Fb%20c.db"), PathBuf::from("a?b c.db"));
        let s = sqlite("sqlite:///fo.db?mode=ro");
        assert_eq!(s.params.as_deref(), Some("mode=ro"));
        assert!(!s.is_memory());
        // Surrounding whitespace (a trailing newline from an env file) is ignored.
        assert_eq!(file(" sqlite:///fo.db\n"), PathBuf::from("fo.db"));
    }

    #[test]
    fn sqlite_in_memory_forms() {
        for url in ["sqlite://", "sqlite::memory:", "sqlite://:memory:", "sqlite:///:memory:", "sqlite:///"] {
            let s = sqlite(url);
            assert_eq!(s.file, None, "{url}");
            assert!(s.is_memory(), "{url}");
        }
        assert!(sqlite("sqlite://?mode=memory").is_memory());
        assert!(sqlite("sqlite:///x.db?mode=memory").is_memory());
        assert!(sqlite("sqlite:///x.db?cache=shared").file.is_some());
    }

    #[test]
    fn schemes_pick_the_store() {
        assert_eq!(DatabaseUrl::parse("memory://").unwrap(), DatabaseUrl::Memory);
        assert_eq!(DatabaseUrl::parse(" memory ").unwrap(), DatabaseUrl::Memory);
        for url in ["postgres://u@h/db", "postgresql://u@h:5433/db?sslmode=disable"] {
            match DatabaseUrl::parse(url).unwrap() {
                DatabaseUrl::Postgres(p) => assert_eq!(p.expose(), url),
                other => panic!("{url} parsed as {other:?}"),
            }
        }
        for bad in ["mysql://x", "", "formaops.db", "http://h/db", "sqlite3:///x.db"] {
            let err = DatabaseUrl::parse(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidArgument { ref field, .. } if field == FIELD),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn bad_sqlite_parameters_are_named() {
        let err = DatabaseUrl::parse("sqlite:///x.db?mode=bogus").unwrap_err().to_string();
        assert!(err.contains("mode"), "{err}");
        let err = DatabaseUrl::parse("sqlite:///x.db?colour=red").unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
        assert!(DatabaseUrl::parse("sqlite:///%FF.db").is_err());
    }

    #[test]
    fn relative_paths_resolve_against_the_given_directory() {
        let cwd = Path::new("/srv/app");
        let resolve = |url: &str| match DatabaseUrl::parse(url).unwrap().resolve(cwd) {
            DatabaseUrl::Sqlite(s) => s.file,
            other => panic!("{other:?}"),
        };
        assert_eq!(resolve("sqlite:///fo.db"), Some(PathBuf::from("/srv/app/fo.db")));
        assert_eq!(resolve("sqlite:///sub/fo.db"), Some(PathBuf::from("/srv/app/sub/fo.db")));
        assert_eq!(resolve("sqlite://fo.db"), Some(PathBuf::from("/srv/app/fo.db")));
        assert_eq!(resolve("sqlite:////abs/fo.db"), Some(PathBuf::from("/abs/fo.db")));
        assert_eq!(resolve("sqlite://"), None);
        assert_eq!(DatabaseUrl::parse("memory://").unwrap().resolve(cwd), DatabaseUrl::Memory);
    }

    #[test]
    fn sqlx_gets_the_resolved_file() {
        let s = sqlite("sqlite:///fo.db?mode=ro").resolve(Path::new("/srv/app"));
        let options = s.connect_options().unwrap();
        assert_eq!(options.get_filename(), Path::new("/srv/app/fo.db"));
        // sqlx itself would have read the same URL as the root's /fo.db: the reason for
        // translating.
        let raw = SqliteConnectOptions::from_str("sqlite:///fo.db").unwrap();
        assert_eq!(raw.get_filename(), Path::new("/fo.db"));
    }

    #[test]
    fn display_is_canonical_and_parses_back() {
        for (url, shown) in [
            ("sqlite://fo.db", "sqlite:///fo.db"),
            ("sqlite:////abs/fo.db?mode=ro", "sqlite:////abs/fo.db?mode=ro"),
            ("sqlite::memory:", "sqlite://"),
            ("sqlite:///a%3Fb.db", "sqlite:///a%3Fb.db"),
            ("memory://", "memory://"),
        ] {
            let parsed = DatabaseUrl::parse(url).unwrap();
            assert_eq!(parsed.to_string(), shown, "{url}");
            assert_eq!(DatabaseUrl::parse(shown).unwrap(), parsed, "{url}");
        }
    }

    #[test]
    fn redaction_hides_passwords_and_keeps_users() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgresql://u:s%40cr%2Fet@h/db"), "postgresql://u:***@h/db");
        assert_eq!(redact("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("postgres://h/db?user=u&password=secret&sslmode=disable"),
            "postgres://h/db?user=u&password=***&sslmode=disable"
        );
        assert_eq!(redact("postgres://h/db?sslpassword=secret"), "postgres://h/db?sslpassword=***");
        // Unescaped separators in a password: nothing but the scheme is shown.
        for url in ["postgres://u:pa/ss@h/db", "postgres://u:12/secret@h/db", "postgres://u:pa#secret@h/db"] {
            let shown = redact(url);
            assert!(!shown.contains("secret") && !shown.contains("pa/ss"), "{url} -> {shown}");
        }
        assert_eq!(redact("mysql://u:secret@h/db"), "mysql://u:***@h/db");
        // No secret: unchanged, character for character.
        assert_eq!(redact("sqlite:///tmp/a b@c:d.db"), "sqlite:///tmp/a b@c:d.db");
        assert_eq!(redact("memory://"), "memory://");
        assert_eq!(redact("formaops.db"), "formaops.db");
    }

    #[test]
    fn no_secret_in_display_debug_or_errors() {
        let url = DatabaseUrl::parse("postgres://u:secret@h/db").unwrap();
        assert_eq!(url.to_string(), "postgres://u:***@h/db");
        assert!(!format!("{url:?}").contains("secret"), "{url:?}");
        let err = DatabaseUrl::parse("mysql://u:secret@h/db").unwrap_err().to_string();
        assert!(!err.contains("secret") && err.contains("u:***@h"), "{err}");
    }

    #[test]
    fn describe_names_the_file_that_opens() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(describe("sqlite:///fo.db"), format!("sqlite:///{}", cwd.join("fo.db").display()));
        assert_eq!(describe("sqlite:////abs/fo.db"), "sqlite:////abs/fo.db");
        assert_eq!(describe("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(describe("mysql://u:secret@h/db"), "mysql://u:***@h/db");
    }

    #[tokio::test]
    async fn connect_opens_each_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abs.db");
        let store = crate::connect(&format!("sqlite:///{}", path.display())).await.unwrap();
        store.ping().await.unwrap();
        assert!(path.exists(), "sqlite:////abs creates the absolute file");
        crate::connect("memory://").await.unwrap().ping().await.unwrap();
        crate::connect("sqlite://").await.unwrap().ping().await.unwrap();
        crate::migrate("memory://").await.unwrap();
        assert!(matches!(crate::connect("mysql://x").await, Err(Error::InvalidArgument { .. })));
    }
}
