//! [`AppState`]: what every handler shares (the engine, the authenticator, settings).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use formaops_core::engine::FormaOps;
use formaops_core::store::Store;
use formaops_core::user::jwt::JwtVerifier;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::sync::watch;
use tokio::time::Instant;

use formaops_core::user::Accounts;

/// Settings of the HTTP layer (the engine has its own).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// How long a synchronous execute waits for the final state before answering 202 with the
    /// execution as it is. Keep it below the request timeout.
    pub sync_wait: Duration,
    /// Lifetime of a login session.
    pub session_ttl: Duration,
    /// Whether the session cookie carries `Secure` (set it when served over HTTPS).
    pub cookie_secure: bool,
    /// Interval of SSE keep-alive comments and WebSocket pings.
    pub keep_alive: Duration,
    /// Largest request body in bytes (413 beyond).
    pub body_limit: usize,
    /// Time limit of one request (408 beyond); event streams are exempt once started.
    pub request_timeout: Duration,
    /// Allowed CORS origins; empty: no CORS headers at all.
    pub cors_origins: Vec<String>,
    /// Trusted JWT issuers; `None`: bearer JWTs are refused.
    pub jwt: Option<Arc<JwtVerifier>>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            sync_wait: Duration::from_secs(55),
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            cookie_secure: false,
            keep_alive: Duration::from_secs(15),
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(60),
            cors_origins: Vec::new(),
            jwt: None,
        }
    }
}

#[derive(Debug)]
struct Inner {
    engine: FormaOps,
    auth: Arc<Accounts>,
    settings: HttpSettings,
    started: Instant,
    prometheus: Option<PrometheusHandle>,
    shutdown: watch::Sender<bool>,
}

/// Shared state of the router. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

/// Buckets of the HTTP request duration histogram, in seconds.
const HTTP_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0,
];

/// Installs the process-wide Prometheus recorder once; later calls return the same handle.
/// `None` when another recorder was installed first (then `/metrics` answers 503).
pub fn prometheus_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), HTTP_BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "Prometheus recorder not installed; /metrics disabled");
                    None
                }
            }
        })
        .clone()
}

impl AppState {
    pub fn new(engine: FormaOps, auth: Arc<Accounts>, settings: HttpSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                engine,
                auth,
                settings,
                started: Instant::now(),
                prometheus: prometheus_handle(),
                shutdown: watch::Sender::new(false),
            }),
        }
    }

    pub fn engine(&self) -> &FormaOps {
        &self.inner.engine
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        self.inner.engine.store()
    }

    pub fn auth(&self) -> &Accounts {
        &self.inner.auth
    }

    pub fn settings(&self) -> &HttpSettings {
        &self.inner.settings
    }

    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    pub fn prometheus(&self) -> Option<&PrometheusHandle> {
        self.inner.prometheus.as_ref()
    }

    /// Signals every open event stream to end (server shutdown).
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Resolves once [`AppState::begin_shutdown`] was called.
    pub fn shutting_down(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.shutdown.subscribe();
        async move {
            let _ = rx.wait_for(|down| *down).await;
        }
    }
}
