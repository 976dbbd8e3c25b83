//! Configuration of the `formaops` binary: command-line flags, environment variables and an
//! optional TOML file, in that order of precedence, then built-in defaults.
//!
//! | setting | flag | environment | TOML key | default |
//! |---|---|---|---|---|
//! | config file | `--config` | `FORMAOPS_CONFIG` | | none |
//! | database | `--database-url` | `DATABASE_URL` | `database_url` | `sqlite:///formaops.db` (in the working directory, created if missing) |
//! | durability | `--durability` | `FORMAOPS_DURABILITY` | `durability` | `strict` (`relaxed`: execution writes answered before their flush; `formaops_store::options`) |
//! | listen address | `--bind` | `FORMAOPS_BIND` | `bind` | `127.0.0.1:8080` |
//! | body limit (bytes) | `--body-limit` | `FORMAOPS_BODY_LIMIT` | `body_limit` | 1 MiB |
//! | request timeout (s) | `--request-timeout` | `FORMAOPS_REQUEST_TIMEOUT` | `request_timeout` | 60 |
//! | header timeout (s) | `--header-timeout` | `FORMAOPS_HEADER_TIMEOUT` | `header_timeout` | 10 |
//! | CORS origins | `--cors-origin` (repeat) | `FORMAOPS_CORS_ORIGINS` (comma-separated) | `cors_origins` | none (CORS off) |
//! | run workers | `--workers` | `FORMAOPS_WORKERS` | `workers` | true |
//! | session lifetime (h) | `--session-ttl-hours` | `FORMAOPS_SESSION_TTL_HOURS` | `session_ttl_hours` | 168 |
//! | `Secure` cookie | `--cookie-secure` | `FORMAOPS_COOKIE_SECURE` | `cookie_secure` | false |
//! | log format | `--log-format` | `FORMAOPS_LOG_FORMAT` | | `text` (`json` for structured) |
//! | failing mock | `--mock-fail-provider` | `FORMAOPS_MOCK_FAIL_PROVIDER` | `mock_fail_provider` | false |
//! | model prices file | `--prices-file` | `FORMAOPS_PRICES_FILE` | `prices_file` (relative to the config file) | none (the built-in table) |
//! | LLM providers | | `OPENAI_API_KEY`, `OPENAI_BASE_URL` | `default`, `[providers.NAME]` | `mock` only |
//! | trusted JWT issuers | | `FORMAOPS_JWT_*` (one issuer) | `[[jwt.issuers]]` | none (JWTs refused) |
//!
//! Log levels follow `RUST_LOG` (default `info`). Providers: the mock provider is always
//! registered as `mock`; an OpenAI-compatible provider named `openai` is added from
//! `OPENAI_API_KEY` / `OPENAI_BASE_URL` and becomes the default provider when configured.
//! The file names more, with the keys of `formaops_core::provider::config::ProviderSettings`
//! at its top level (the README's example; an `[llm]` section holding the same keys also
//! works, but not both):
//!
//! ```toml
//! default = "local"
//! [providers.local]
//! kind = "openai"
//! base_url = "http://127.0.0.1:11434/v1"
//! ```
//!
//! A prices file (`formaops_core::pricing`: USD per 1M tokens, with effective dates) extends
//! the built-in price table; it is read once at start-up, and a bad file stops the start with
//! an error naming the file, the line and what is wrong.
//!
//! The first admin comes
//! from `FORMAOPS_ADMIN_EMAIL` / `FORMAOPS_ADMIN_PASSWORD` (environment only, never flags).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use formaops_core::pricing::PriceTable;
use formaops_core::provider::config::{ProviderEntry, ProviderSettings};
use formaops_core::user::jwt::{IssuerConfig, JwtSettings};
use formaops_store::{Durability, StoreOptions};
use serde::Deserialize;

/// Default database: an SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:///formaops.db";
/// Default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Default body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// Largest configurable body limit: 64 MiB.
pub const MAX_BODY_LIMIT: usize = 64 * 1024 * 1024;
/// Default request timeout in seconds.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 60;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Where the database is: shared by every subcommand.
#[derive(Debug, Clone, Default, Args)]
pub struct DbArgs {
    /// TOML configuration file.
    #[arg(long, env = "FORMAOPS_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Database URL: `sqlite:///relative.db` (to the working directory), `sqlite:////absolute.db`,
    /// `sqlite://` (in memory), `memory://` or `postgres://user:password@host:port/db`
    /// (default: `sqlite:///formaops.db`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,
    /// Log format.
    #[arg(long, env = "FORMAOPS_LOG_FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
}

/// Flags of `formaops serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "FORMAOPS_BIND")]
    pub bind: Option<SocketAddr>,
    /// Largest request body in bytes.
    #[arg(long, env = "FORMAOPS_BODY_LIMIT")]
    pub body_limit: Option<usize>,
    /// Request timeout in seconds (a synchronous execute answers 202 a little before it).
    #[arg(long, env = "FORMAOPS_REQUEST_TIMEOUT")]
    pub request_timeout: Option<u64>,
    /// Seconds a client has to send a request's headers; also how long an idle keep-alive
    /// connection stays open.
    #[arg(long, env = "FORMAOPS_HEADER_TIMEOUT")]
    pub header_timeout: Option<u64>,
    /// Allowed CORS origin (repeat, or comma-separated in the environment). CORS is off
    /// without any.
    #[arg(long = "cors-origin", env = "FORMAOPS_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Whether this process executes queued work (false: an API-only node).
    #[arg(long, env = "FORMAOPS_WORKERS")]
    pub workers: Option<bool>,
    /// Session lifetime in hours.
    #[arg(long, env = "FORMAOPS_SESSION_TTL_HOURS")]
    pub session_ttl_hours: Option<u64>,
    /// Mark the session cookie `Secure` (serve over HTTPS).
    #[arg(long, env = "FORMAOPS_COOKIE_SECURE")]
    pub cookie_secure: Option<bool>,
    /// Also register `mock-fail`, a mock provider whose every call fails permanently (for
    /// trying failures and retries).
    #[arg(long, env = "FORMAOPS_MOCK_FAIL_PROVIDER")]
    pub mock_fail_provider: Option<bool>,
    /// Model prices file (TOML, USD per 1M tokens with effective dates) extending the
    /// built-in price table.
    #[arg(long, env = "FORMAOPS_PRICES_FILE")]
    pub prices_file: Option<PathBuf>,
    /// When an execution is answered: `strict` (after its final state is flushed to disk) or
    /// `relaxed` (once committed; a database crash can lose the last moments of execution
    /// records) (default: strict).
    #[arg(long, env = "FORMAOPS_DURABILITY", value_parser = parse_durability)]
    pub durability: Option<Durability>,
}

/// clap's parser for `--durability` / `FORMAOPS_DURABILITY` (the grammar is formaops-store's).
fn parse_durability(s: &str) -> Result<Durability, String> {
    Durability::parse(s).map_err(|e| e.to_string())
}

/// The TOML file: every key optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    /// `strict` or `relaxed` (`formaops_store::Durability`).
    pub durability: Option<Durability>,
    pub bind: Option<SocketAddr>,
    pub body_limit: Option<usize>,
    pub request_timeout: Option<u64>,
    pub header_timeout: Option<u64>,
    pub cors_origins: Option<Vec<String>>,
    pub workers: Option<bool>,
    pub session_ttl_hours: Option<u64>,
    pub cookie_secure: Option<bool>,
    pub mock_fail_provider: Option<bool>,
    /// Model prices file extending the built-in table; a relative path is relative to this
    /// file's directory.
    pub prices_file: Option<PathBuf>,
    /// Provider for prompt versions that name none (`ProviderSettings::default`).
    pub default: Option<String>,
    /// Named LLM providers (`[providers.NAME]`); see `formaops_core::provider::config`.
    pub providers: Option<BTreeMap<String, ProviderEntry>>,
    /// The same two keys under an `[llm]` section (`[llm]`, `[llm.providers.NAME]`).
    pub llm: Option<ProviderSettings>,
    /// Trusted JWT issuers (`[[jwt.issuers]]`); see `formaops_core::user::jwt`.
    pub jwt: Option<JwtSettings>,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }

    /// The file's providers: top-level `default` / `[providers.NAME]`, or an `[llm]` section.
    ///
    /// # Errors
    /// When both forms are given.
    pub fn provider_settings(&mut self) -> anyhow::Result<ProviderSettings> {
        let top = self.default.is_some() || self.providers.is_some();
        match self.llm.take() {
            Some(_) if top => anyhow::bail!(
                "providers are configured both at the top level (`default`, `[providers.NAME]`) and \
                 under `[llm]`: use one"
            ),
            Some(llm) => Ok(llm),
            None => Ok(ProviderSettings {
                default: self.default.take(),
                providers: self.providers.take().unwrap_or_default(),
            }),
        }
    }
}

/// The resolved configuration.
#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    /// When execution writes are answered (strict: after their flush).
    pub durability: Durability,
    pub bind: SocketAddr,
    pub body_limit: usize,
    pub request_timeout: Duration,
    /// Time to send a request's headers, and the keep-alive idle limit.
    pub header_timeout: Duration,
    pub cors_origins: Vec<String>,
    pub workers: bool,
    pub session_ttl: Duration,
    pub cookie_secure: bool,
    pub log_format: LogFormat,
    /// Providers from the file, completed from `OPENAI_API_KEY` /
    /// `OPENAI_BASE_URL`.
    pub providers: ProviderSettings,
    pub mock_fail_provider: bool,
    /// Trusted JWT issuers: the file's `[[jwt.issuers]]`, then one from `FORMAOPS_JWT_*`.
    pub jwt_issuers: Vec<IssuerConfig>,
    /// Model prices: the built-in table, extended by the prices file when one is set.
    pub prices: PriceTable,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &formaops_store::redact(&self.database_url))
            .field("durability", &self.durability)
            .field("bind", &self.bind)
            .field("body_limit", &self.body_limit)
            .field("request_timeout", &self.request_timeout)
            .field("header_timeout", &self.header_timeout)
            .field("cors_origins", &self.cors_origins)
            .field("workers", &self.workers)
            .field("session_ttl", &self.session_ttl)
            .field("cookie_secure", &self.cookie_secure)
            .field("log_format", &self.log_format)
            .field("providers", &self.providers)
            .field("mock_fail_provider", &self.mock_fail_provider)
            .field("jwt_issuers", &self.jwt_issuers)
            .field("prices", &self.prices.sources())
            .finish()
    }
}

impl Config {
    /// Flags and environment over the file over defaults.
    pub fn resolve(db: &DbArgs, serve: &ServeArgs) -> anyhow::Result<Self> {
        let mut file = match &db.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        let providers = file.provider_settings()?;
        // The grammar (and creating a missing SQLite file) is formaops-store's.
        let database_url =
            db.database_url.clone().or(file.database_url).unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        let bind = match serve.bind.or(file.bind) {
            Some(b) => b,
            None => DEFAULT_BIND.parse().context("default bind address")?,
        };
        let body_limit = serve.body_limit.or(file.body_limit).unwrap_or(DEFAULT_BODY_LIMIT);
        anyhow::ensure!(
            (1..=MAX_BODY_LIMIT).contains(&body_limit),
            "body limit must be between 1 and {MAX_BODY_LIMIT} bytes, got {body_limit}"
        );
        let timeout = serve.request_timeout.or(file.request_timeout).unwrap_or(DEFAULT_REQUEST_TIMEOUT_SECS);
        anyhow::ensure!(
            (2..=3600).contains(&timeout),
            "request timeout must be 2 to 3600 seconds, got {timeout}"
        );
        let header_timeout = serve
            .header_timeout
            .or(file.header_timeout)
            .unwrap_or(crate::limits::DEFAULT_HEADER_TIMEOUT.as_secs());
        anyhow::ensure!(
            (1..=300).contains(&header_timeout),
            "header timeout must be 1 to 300 seconds, got {header_timeout}"
        );
        let ttl_hours = serve.session_ttl_hours.or(file.session_ttl_hours).unwrap_or(168);
        anyhow::ensure!((1..=24 * 365).contains(&ttl_hours), "session lifetime must be 1 to 8760 hours");
        let cors_origins = if serve.cors_origins.is_empty() {
            file.cors_origins.unwrap_or_default()
        } else {
            serve.cors_origins.clone()
        };
        for o in &cors_origins {
            anyhow::ensure!(
                o == "*" || o.starts_with("http://") || o.starts_with("https://"),
                "CORS origin {o:?} must be `*` or start with http:// or https://"
            );
        }
        let jwt_issuers = jwt_issuers(file.jwt.unwrap_or_default(), |k| std::env::var(k).ok())?;
        // A path in the file is relative to the file; a flag's or variable's to the working
        // directory.
        let prices_file = serve.prices_file.clone().or_else(|| {
            let in_file = file.prices_file.take()?;
            let dir = db.config.as_deref().and_then(Path::parent).unwrap_or(Path::new(""));
            Some(dir.join(in_file))
        });
        let prices = match &prices_file {
            Some(path) => PriceTable::load(path)?,
            None => PriceTable::default(),
        };
        Ok(Self {
            database_url,
            durability: serve.durability.or(file.durability).unwrap_or_default(),
            bind,
            body_limit,
            request_timeout: Duration::from_secs(timeout),
            header_timeout: Duration::from_secs(header_timeout),
            cors_origins,
            workers: serve.workers.or(file.workers).unwrap_or(true),
            session_ttl: Duration::from_secs(ttl_hours * 3600),
            cookie_secure: serve.cookie_secure.or(file.cookie_secure).unwrap_or(false),
            log_format: db.log_format.unwrap_or_default(),
            providers: providers.with_env_defaults(),
            mock_fail_provider: serve.mock_fail_provider.or(file.mock_fail_provider).unwrap_or(false),
            jwt_issuers,
            prices,
        })
    }

    /// The store's settings.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions::with_durability(self.durability)
    }

    /// How long a synchronous execute waits before answering 202: a little under the
    /// request timeout.
    pub fn sync_wait(&self) -> Duration {
        self.request_timeout.saturating_sub(Duration::from_secs(2)).max(Duration::from_secs(1))
    }
}

/// The trusted JWT issuers: the file's, then the one from `FORMAOPS_JWT_*` (`env` looks up
/// environment variables), each checked and its keys read.
pub fn jwt_issuers(
    file: JwtSettings,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<IssuerConfig>> {
    let mut settings = file.issuers;
    settings.extend(formaops_core::user::jwt::issuer_from_env(&env));
    settings.into_iter().map(|s| s.resolve(&env).map_err(anyhow::Error::from)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Config::resolve(&DbArgs::default(), &ServeArgs::default()).unwrap();
        assert_eq!(c.database_url, "sqlite:///formaops.db");
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.body_limit, 1024 * 1024);
        assert!(c.workers);
        assert!(c.cors_origins.is_empty());
        assert_eq!(c.sync_wait(), Duration::from_secs(58));
        assert_eq!(c.header_timeout, Duration::from_secs(10));
        assert_eq!(c.durability, Durability::Strict);
    }

    #[test]
    fn durability_from_the_file_and_the_flag() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(&path, "durability = \"relaxed\"\n").unwrap();
        let db = DbArgs { config: Some(path.clone()), ..Default::default() };
        let c = Config::resolve(&db, &ServeArgs::default()).unwrap();
        assert_eq!(c.durability, Durability::Relaxed);
        assert_eq!(c.store_options().durability, Durability::Relaxed);
        assert!(format!("{c:?}").contains("durability: Relaxed"), "{c:?}");
        // The flag wins over the file.
        let serve = Cli::try_parse_from(["x", "--durability", "strict"]).unwrap().serve;
        assert_eq!(Config::resolve(&db, &serve).unwrap().durability, Durability::Strict);
        // A bad value names the setting and the accepted values: flag and file alike.
        let err = Cli::try_parse_from(["x", "--durability", "fast"]).err().unwrap().to_string();
        assert!(err.contains("--durability") && err.contains("\"relaxed\""), "{err}");
        std::fs::write(&path, "durability = \"fast\"\n").unwrap();
        let err = format!("{:#}", Config::resolve(&db, &ServeArgs::default()).unwrap_err());
        assert!(err.contains("durability") && err.contains("\"strict\""), "{err}");
    }

    /// Every ```toml block of the README, each loaded by the server's own loader.
    #[test]
    fn every_readme_toml_example_loads() {
        let readme = include_str!("../../README.md");
        let mut blocks = Vec::new();
        let mut current: Option<String> = None;
        for line in readme.lines() {
            match &mut current {
                None if line.trim_start().starts_with("```toml") => current = Some(String::new()),
                Some(block) if line.trim_start().starts_with("```") => {
                    blocks.push(std::mem::take(block));
                    current = None;
                }
                Some(block) => {
                    block.push_str(line);
                    block.push('\n');
                }
                None => {}
            }
        }
        assert!(!blocks.is_empty(), "the README has TOML examples");
        let dir = tempfile::tempdir().unwrap();
        for (i, block) in blocks.iter().enumerate() {
            let path = dir.path().join(format!("readme-{i}.toml"));
            std::fs::write(&path, block).unwrap();
            if block.contains("[[prices]]") {
                // A prices file: loaded as `prices_file` names one.
                let config = dir.path().join(format!("readme-{i}-config.toml"));
                std::fs::write(&config, format!("prices_file = \"readme-{i}.toml\"\n")).unwrap();
                let db = DbArgs { config: Some(config), ..Default::default() };
                let c = Config::resolve(&db, &ServeArgs::default())
                    .unwrap_or_else(|e| panic!("README TOML example {i} is refused: {e:#}\n{block}"));
                assert_eq!(c.prices.sources().len(), 2, "example {i}: built-in and the file");
                for line in block.lines().filter(|l| l.starts_with("model = ")) {
                    let model = line.split('"').nth(1).unwrap();
                    assert!(!c.prices.prices(model).is_empty(), "example {i}: {model} priced");
                }
                continue;
            }
            if block.contains("[[jwt.issuers]]") {
                // Issuers read their secrets from the environment: give every variable the
                // block names (not FormaOps' own single-issuer variables) a value.
                let file = FileConfig::load(&path)
                    .unwrap_or_else(|e| panic!("README TOML example {i} is refused: {e:#}\n{block}"));
                let env = |k: &str| (!k.starts_with("FORMAOPS_")).then(|| "a-test-secret".to_string());
                let issuers = jwt_issuers(file.jwt.unwrap_or_default(), env)
                    .unwrap_or_else(|e| panic!("README TOML example {i} is refused: {e:#}\n{block}"));
                assert!(!issuers.is_empty(), "example {i}: issuers read");
                continue;
            }
            let db = DbArgs { config: Some(path), ..Default::default() };
            let c = Config::resolve(&db, &ServeArgs::default())
                .unwrap_or_else(|e| panic!("README TOML example {i} is refused: {e:#}\n{block}"));
            for line in block.lines().filter(|l| l.starts_with("[providers.")) {
                let name = line.trim_start_matches("[providers.").trim_end_matches(']');
                assert!(c.providers.providers.contains_key(name), "example {i}: provider {name} read");
            }
            if let Some(line) = block.lines().find(|l| l.starts_with("default")) {
                let name = line.split('"').nth(1).unwrap();
                assert_eq!(c.providers.default.as_deref(), Some(name), "example {i}: default read");
            }
        }
    }

    #[test]
    fn providers_at_the_top_level_or_under_llm() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Config::resolve(
                &DbArgs { config: Some(path.clone()), ..Default::default() },
                &ServeArgs::default(),
            )
        };
        let entry = "kind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\n";
        let top = load(&format!("default = \"local\"\n[providers.local]\n{entry}")).unwrap();
        let llm = load(&format!("[llm]\ndefault = \"local\"\n[llm.providers.local]\n{entry}")).unwrap();
        for c in [&top, &llm] {
            assert_eq!(c.providers.default.as_deref(), Some("local"));
            assert!(c.providers.providers.contains_key("local"));
        }
        let only = load(&format!("[providers.a]\n{entry}")).unwrap();
        assert!(only.providers.providers.contains_key("a"));
        let both = load("default = \"a\"\n[llm]\ndefault = \"b\"\n").unwrap_err();
        assert!(format!("{both:#}").contains("[llm]"), "{both:#}");
    }

    #[test]
    fn a_prices_file_extends_the_builtin_table() {
        use chrono::TimeZone as _;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("conf")).unwrap();
        let config = dir.path().join("conf/f.toml");
        let prices = dir.path().join("conf/prices.toml");
        std::fs::write(&config, "prices_file = \"prices.toml\"\n").unwrap();
        std::fs::write(
            &prices,
            "[[prices]]\nmodel = \"llama\"\neffective_from = 2026-01-01\ninput_per_mtok = \"1\"\noutput_per_mtok = \"2\"\n",
        )
        .unwrap();
        let db = DbArgs { config: Some(config.clone()), ..Default::default() };
        // Relative to the configuration file, not the working directory.
        let c = Config::resolve(&db, &ServeArgs::default()).unwrap();
        let at = chrono::Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        assert!(c.prices.price("llama", at).is_some());
        assert!(c.prices.price("gpt-4o", at).is_some(), "the built-in prices stay");
        assert!(format!("{c:?}").contains("prices.toml"), "{c:?}");
        // The flag (or FORMAOPS_PRICES_FILE) wins over the file's key.
        let other = dir.path().join("other.toml");
        std::fs::write(&other, "replace_builtin = true\n").unwrap();
        let serve = ServeArgs { prices_file: Some(other), ..Default::default() };
        let c = Config::resolve(&db, &serve).unwrap();
        assert!(c.prices.price("gpt-4o", at).is_none() && c.prices.price("llama", at).is_none());
        // A bad file stops the start, naming the file, the line and the fault.
        std::fs::write(
            &prices,
            "[[prices]]\nmodel = \"llama\"\neffective_from = 2026-01-01\ninput_per_mtok = 1.5\n",
        )
        .unwrap();
        let err = format!("{:#}", Config::resolve(&db, &ServeArgs::default()).unwrap_err());
        assert!(err.contains(&prices.display().to_string()) && err.contains("line 4"), "{err}");
        let missing = ServeArgs { prices_file: Some(dir.path().join("nope.toml")), ..Default::default() };
        let err = format!("{:#}", Config::resolve(&db, &missing).unwrap_err());
        assert!(err.contains("nope.toml"), "{err}");
    }

    #[test]
    fn flags_beat_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(&path, "bind = \"0.0.0.0:9000\"\nbody_limit = 10\nworkers = false\n").unwrap();
        let db = DbArgs { config: Some(path.clone()), ..Default::default() };
        let serve = ServeArgs { body_limit: Some(20), ..Default::default() };
        let c = Config::resolve(&db, &serve).unwrap();
        assert_eq!(c.bind.to_string(), "0.0.0.0:9000");
        assert_eq!(c.body_limit, 20);
        assert!(!c.workers);

        std::fs::write(&path, "bogus = 1\n").unwrap();
        let err = Config::resolve(&db, &ServeArgs::default()).unwrap_err();
        assert!(format!("{err:#}").contains("bogus"), "{err:#}");
    }

    #[test]
    fn bad_values_are_named() {
        let serve = ServeArgs { body_limit: Some(0), ..Default::default() };
        assert!(Config::resolve(&DbArgs::default(), &serve).unwrap_err().to_string().contains("body limit"));
        let serve = ServeArgs { cors_origins: vec!["example.com".into()], ..Default::default() };
        assert!(Config::resolve(&DbArgs::default(), &serve).unwrap_err().to_string().contains("CORS"));
        let serve = ServeArgs { header_timeout: Some(0), ..Default::default() };
        assert!(
            Config::resolve(&DbArgs::default(), &serve).unwrap_err().to_string().contains("header timeout")
        );
    }

    #[test]
    fn debug_hides_the_database_password() {
        let db = DbArgs { database_url: Some("postgres://u:secret@h/db".into()), ..Default::default() };
        let shown = format!("{:?}", Config::resolve(&db, &ServeArgs::default()).unwrap());
        assert!(shown.contains("postgres://u:***@h/db") && !shown.contains("secret"), "{shown}");
    }

    #[test]
    fn the_readme_jwt_example_loads() {
        let readme = include_str!("../../README.md");
        let section = readme.split("## Sign in with Supabase").nth(1).expect("README section");
        let example = section.split("```toml\n").nth(1).and_then(|s| s.split("```").next()).expect("example");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(&path, example).unwrap();
        let file = FileConfig::load(&path).unwrap();
        let env = |k: &str| (k == "SUPABASE_JWT_SECRET").then(|| "a-secret".to_string());
        let issuers = jwt_issuers(file.jwt.unwrap(), env).unwrap();
        assert_eq!(issuers.len(), 2);
        assert_eq!(issuers[0].issuer, "https://your-project.supabase.co/auth/v1");
        assert_eq!(issuers[1].audience, vec!["formaops".to_string(), "authenticated".to_string()]);
        assert!(!format!("{issuers:?}").contains("a-secret"), "the secret is never printed");
        // Without the secret in the environment the file is refused, naming the variable.
        let err = jwt_issuers(FileConfig::load(&path).unwrap().jwt.unwrap(), |_| None).unwrap_err();
        assert!(err.to_string().contains("SUPABASE_JWT_SECRET"), "{err}");
    }

    #[test]
    fn one_issuer_from_the_environment() {
        let env = |k: &str| match k {
            "FORMAOPS_JWT_ISSUER" => Some("https://x.supabase.co/auth/v1".to_string()),
            "FORMAOPS_JWT_SECRET" => Some("s3cret".to_string()),
            _ => None,
        };
        let issuers = jwt_issuers(JwtSettings::default(), env).unwrap();
        assert_eq!(issuers.len(), 1);
        assert_eq!(issuers[0].audience, vec!["authenticated".to_string()]);
        assert_eq!(issuers[0].algorithms, vec![formaops_core::user::jwt::Algorithm::HS256]);
    }
}
