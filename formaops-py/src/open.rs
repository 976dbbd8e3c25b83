//! Opening an engine from Python arguments: the store from a URL, one provider, the local
//! user.
//!
//! In-process Python use does not authenticate: the engine acts as one local user, found by
//! email or created on first open ([`DEFAULT_USER_EMAIL`] unless `user=` names another), by
//! [`account::ensure_user`]: without a usable password, so nobody can log in as them over
//! REST until an administrator sets one.

use std::path::PathBuf;
use std::time::Duration;

use crate::providers::{self, ProviderOptions};
use formaops_core::engine::{EngineConfig, FormaOps};
use formaops_core::ids::UserId;
use formaops_core::pricing::PriceTable;
use formaops_core::user::account;
use formaops_core::{Error, Result};
use formaops_store::{Durability, StoreOptions};

/// The local user's email when `user=` is not given.
pub const DEFAULT_USER_EMAIL: &str = "local@formaops.localhost";

/// What `Engine.open` asks for.
pub struct OpenOptions {
    pub url: String,
    /// The provider arguments (`provider`, `base_url`, `api_key`, `mock_*`).
    pub providers: ProviderOptions,
    pub user: Option<String>,
    pub max_attempts: Option<u32>,
    pub execution_timeout: Option<Duration>,
    pub concurrency: Option<usize>,
    /// A prices file extending the built-in price table.
    pub prices_file: Option<PathBuf>,
    /// `strict` or `relaxed` (`formaops_store::Durability`; default strict).
    pub durability: Option<String>,
}

impl std::fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenOptions")
            .field("url", &formaops_store::redact(&self.url))
            .field("providers", &self.providers)
            .field("user", &self.user)
            .field("max_attempts", &self.max_attempts)
            .field("execution_timeout", &self.execution_timeout)
            .field("concurrency", &self.concurrency)
            .field("prices_file", &self.prices_file)
            .field("durability", &self.durability)
            .finish()
    }
}

/// An opened engine and the user it acts as.
#[derive(Debug)]
pub struct Opened {
    pub engine: FormaOps,
    pub user: UserId,
    pub email: String,
}

/// Opens the store, starts the engine with the chosen provider, ensures the local user.
pub async fn open_engine(options: OpenOptions) -> Result<Opened> {
    // Checked before anything is opened; the error names the Python argument.
    let email = account::normalize_email(options.user.as_deref().unwrap_or(DEFAULT_USER_EMAIL)).map_err(
        |e| match e {
            Error::InvalidArgument { message, .. } => Error::invalid_argument("user", message),
            other => other,
        },
    )?;
    if let Some(0) = options.max_attempts {
        return Err(Error::invalid_argument("max_attempts", "must be at least 1"));
    }
    if let Some(0) = options.concurrency {
        return Err(Error::invalid_argument("concurrency", "must be at least 1"));
    }
    // The grammar (and the field name of its error, `durability`) is formaops-store's.
    let durability = options.durability.as_deref().map(Durability::parse).transpose()?.unwrap_or_default();
    let prices = options.prices_file.as_deref().map(PriceTable::load).transpose()?;
    let providers = providers::build(&options.providers)?;
    // The URL grammar (memory://, SQLite paths, Postgres) is formaops-store's.
    let store = formaops_store::connect_with(&options.url, StoreOptions::with_durability(durability)).await?;
    let user = account::ensure_user(store.as_ref(), &email).await?;

    let mut config =
        EngineConfig { default_provider: options.providers.provider.clone(), ..EngineConfig::default() };
    if let Some(n) = options.max_attempts {
        config.max_attempts = n;
    }
    if let Some(t) = options.execution_timeout {
        config.execution_timeout = t;
    }
    if let Some(c) = options.concurrency {
        config.provider_concurrency = c;
    }
    if let Some(p) = prices {
        config.prices = p;
    }
    let mut builder = FormaOps::builder(store).config(config);
    for (name, provider, concurrency) in providers {
        builder = match concurrency {
            Some(c) => builder.provider_with_concurrency(name, provider, c),
            None => builder.provider(name, provider),
        };
    }
    let engine = builder.start().await?;
    Ok(Opened { engine, user: user.id, email })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_database_password() {
        let options = OpenOptions {
            url: "postgres://u:secret@h:5432/db".into(),
            providers: ProviderOptions {
                provider: "mock".into(),
                base_url: None,
                api_key: Some("sk-secret-key".into()),
                mock_latency: Duration::ZERO,
                mock_reply: None,
                mock_faults: None,
            },
            user: None,
            max_attempts: None,
            execution_timeout: None,
            concurrency: None,
            prices_file: None,
            durability: Some("relaxed".into()),
        };
        let shown = format!("{options:?}");
        assert!(shown.contains("postgres://u:***@h:5432/db") && !shown.contains("secret"), "{shown}");
        assert!(shown.contains("api_key: Some(\"<redacted>\")"), "{shown}");
    }
}
