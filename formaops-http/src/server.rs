//! Wiring for the binary: open the store, register providers, start the engine, create the
//! first admin, serve until SIGTERM/SIGINT, then shut down gracefully.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use formaops_core::engine::{EngineConfig, FormaOps, FormaOpsBuilder};
use formaops_core::provider::config::{ProviderEntry, ProviderSettings};
use formaops_core::provider::mock::MockSpec;
use formaops_core::store::Store;
use formaops_core::user::jwt::JwtVerifier;
use formaops_store::{StoreOptions, describe};

use crate::config::Config;
use crate::state::{AppState, HttpSettings};
use formaops_core::user::{Accounts, LoginThrottle, account};

/// Email of the generated admin when `FORMAOPS_ADMIN_EMAIL` is not set.
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@localhost";

/// Opens the store named by the URL with `options` (migrations applied).
pub async fn open_store(url: &str, options: StoreOptions) -> anyhow::Result<Arc<dyn Store>> {
    formaops_store::connect_with(url, options)
        .await
        .with_context(|| format!("opening the database {}", describe(url)))
}

/// Creates or upgrades the schema of the database named by the URL.
pub async fn migrate(url: &str) -> anyhow::Result<()> {
    formaops_store::migrate(url).await.with_context(|| format!("migrating the database {}", describe(url)))
}

/// Name of the always-failing mock provider registered with `mock_fail_provider`.
pub const MOCK_FAIL_PROVIDER: &str = "mock-fail";

/// Registers the configured providers (with the zero-config `mock` unless the settings name
/// their own), and with `mock_fail` the `mock-fail` provider whose every call fails
/// permanently (for trying failures and retries without a real provider).
pub fn register_providers(
    mut builder: FormaOpsBuilder,
    settings: &ProviderSettings,
    mock_fail: bool,
) -> anyhow::Result<FormaOpsBuilder> {
    let mut settings = settings.clone();
    if mock_fail {
        settings
            .providers
            .insert(MOCK_FAIL_PROVIDER.to_string(), ProviderEntry::mock(MockSpec::always_failing()));
    }
    for (name, provider, concurrency) in settings.build().context("configuring providers")? {
        builder = match concurrency {
            Some(c) => builder.provider_with_concurrency(name, provider, c),
            None => builder.provider(name, provider),
        };
    }
    Ok(builder)
}

/// Starts the engine on `store` with the configured providers.
pub async fn start_engine(store: Arc<dyn Store>, config: &Config) -> anyhow::Result<FormaOps> {
    let engine_config = EngineConfig {
        default_provider: config.providers.default_provider(),
        run_workers: config.workers,
        prices: config.prices.clone(),
        ..EngineConfig::default()
    };
    for s in config.prices.sources() {
        tracing::info!(
            origin = %s.origin,
            source = s.source.as_deref().unwrap_or("-"),
            checked = %s.checked.map_or_else(|| "-".to_string(), |d| d.to_string()),
            entries = s.entries,
            "model prices"
        );
    }
    tracing::info!(default_provider = %engine_config.default_provider, "starting the engine");
    register_providers(FormaOps::builder(store), &config.providers, config.mock_fail_provider)?
        .config(engine_config)
        .start()
        .await
        .context("starting the engine")
}

/// On an empty user table, creates the first admin: from `FORMAOPS_ADMIN_EMAIL` /
/// `FORMAOPS_ADMIN_PASSWORD`, or with a generated password printed once to stderr.
/// Returns the created email, if any.
pub async fn bootstrap_admin(store: &dyn Store) -> anyhow::Result<Option<String>> {
    if store.count_users().await.context("counting users")? > 0 {
        return Ok(None);
    }
    let email = std::env::var("FORMAOPS_ADMIN_EMAIL")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_EMAIL.to_string());
    let (password, generated) = match std::env::var("FORMAOPS_ADMIN_PASSWORD") {
        Ok(p) if !p.is_empty() => (p, false),
        _ => (account::random_password(), true),
    };
    match account::create_user(store, &email, &password, true).await {
        Ok(user) => {
            tracing::info!(email = %user.email, "created the first admin user");
            if generated {
                // Printed once, to the terminal that started the server; never logged.
                let mut err = std::io::stderr().lock();
                let _ = writeln!(
                    err,
                    "\n  First start: created admin user {}\n  password: {password}\n  (shown once; set FORMAOPS_ADMIN_PASSWORD to choose it)\n",
                    user.email
                );
            }
            Ok(Some(user.email))
        }
        // Another node of the cluster created it first.
        Err(formaops_core::Error::Conflict { .. }) => Ok(None),
        Err(e) => anyhow::bail!("creating the first admin ({email}): {e}"),
    }
}

/// HTTP settings from the configuration.
pub fn http_settings(config: &Config) -> HttpSettings {
    HttpSettings {
        sync_wait: config.sync_wait(),
        session_ttl: config.session_ttl,
        cookie_secure: config.cookie_secure,
        body_limit: config.body_limit,
        request_timeout: config.request_timeout,
        cors_origins: config.cors_origins.clone(),
        ..HttpSettings::default()
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Runs the server until SIGTERM or SIGINT: stops accepting, ends event streams, lets
/// in-flight requests finish (bounded by the request timeout), then shuts the engine down
/// (running executions finish within its grace period; queued ones stay queued).
pub async fn serve(config: Config) -> anyhow::Result<()> {
    tracing::info!(
        database = %describe(&config.database_url),
        durability = %config.durability,
        bind = %config.bind,
        workers = config.workers,
        "starting"
    );
    let store = open_store(&config.database_url, config.store_options()).await?;
    bootstrap_admin(store.as_ref()).await?;
    let engine = start_engine(store, &config).await?;
    let authenticator = Arc::new(Accounts::new(LoginThrottle::default()).await?);
    let mut settings = http_settings(&config);
    if !config.jwt_issuers.is_empty() {
        let verifier = JwtVerifier::new(config.jwt_issuers.clone())?;
        tracing::info!(issuers = ?config.jwt_issuers.iter().map(|i| &i.issuer).collect::<Vec<_>>(), "JWT sign-in enabled");
        settings.jwt = Some(Arc::new(verifier));
    }
    let state = AppState::new(engine.clone(), authenticator, settings);
    let app = crate::router(state.clone());
    if let Some(handle) = state.prometheus().cloned() {
        // Drains recorded histogram samples even when nobody scrapes, so memory stays bounded.
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        });
    }

    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    let local = listener.local_addr().context("reading the bound address")?;
    tracing::info!(address = %local, "listening");
    // Machine-readable line for scripts and tests that bind port 0.
    println!("formaops listening on http://{local}");

    let signal_state = state.clone();
    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
    let server = serve_on(listener, app, config.header_timeout, async move {
        shutdown_signal().await;
        tracing::info!("shutdown signal received; draining");
        signal_state.begin_shutdown();
        let _ = drained_tx.send(());
    });
    let drain_limit = config.request_timeout + Duration::from_secs(5);
    let server = async move {
        let mut server = std::pin::pin!(server);
        tokio::select! {
            () = &mut server => Ok(()),
            () = async {
                let _ = drained_rx.await;
                tokio::time::sleep(drain_limit).await;
            } => {
                tracing::warn!("in-flight requests did not finish in time; closing");
                Ok(())
            }
        }
    };
    let result = server.await;
    engine.shutdown().await;
    tracing::info!("stopped");
    result
}

/// Serves `app` on `listener` over HTTP/1.1 (with upgrades, for WebSockets) until `shutdown`
/// completes, then stops accepting, lets open connections finish their current request and
/// returns when all are closed.
///
/// A client must send each request's headers within `header_timeout`, counted from when the
/// connection is ready for a request (so it also closes idle keep-alive connections);
/// otherwise the connection is closed. hyper's parser caps are set above the limits of
/// [`crate::limits`] so that those are answered in our error shape.
pub async fn serve_on<F>(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    header_timeout: Duration,
    shutdown: F,
) where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_headers(crate::limits::PARSER_MAX_HEADERS)
        .max_header_size(crate::limits::PARSER_MAX_HEADER_BYTES);
    // Connections hold a receiver each: the sender sees them all gone when they are closed.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        // Connect info: login throttling counts failures per client address.
        let with_peer = tower::ServiceExt::map_request(
            app.clone(),
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                req
            },
        );
        let service = hyper_util::service::TowerToHyperService::new(with_peer);
        let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service).with_upgrades();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                () = async { drop(stop.wait_for(|stop| *stop).await) } => {
                    conn.as_mut().graceful_shutdown();
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
            }
            drop(stop);
        });
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(true);
    stop_tx.closed().await;
}
