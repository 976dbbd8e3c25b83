//! The engine's state at one moment ([`HealthReport`]), for health endpoints and probes.

use serde::{Deserialize, Serialize};

use super::state::Inner;

/// What [`FormaOps::health`](super::FormaOps::health) reports: the engine's state at one
/// moment, serialised in camelCase (`storeOk`, `queueDepth`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    /// Whether the store answered [`Store::ping`](crate::store::Store::ping).
    pub store_ok: bool,
    /// The ping's error message when `store_ok` is false.
    pub store_error: Option<String>,
    /// QUEUED executions of all users; `None` when the store is down or the count failed.
    pub queue_depth: Option<u64>,
    /// Whether this engine runs workers ([`EngineConfig::run_workers`](super::EngineConfig::run_workers)) and is not shutting
    /// down.
    pub workers_running: bool,
    /// Every registered provider, sorted by name.
    pub providers: Vec<ProviderHealth>,
    /// Whether [`FormaOps::shutdown`](super::FormaOps::shutdown) has begun: no new work is accepted.
    pub shutting_down: bool,
}

/// One provider's state in [`HealthReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderHealth {
    /// The name the provider is registered under (what versions name in `model.provider`).
    pub name: String,
    /// Attempts on this provider running in this process now (at most `concurrency`).
    pub in_flight: usize,
    /// Most concurrent calls this process makes to the provider.
    pub concurrency: usize,
}

/// Builds the report: pings the store, counts the queue when the store answered.
pub(super) async fn report(inner: &Inner) -> HealthReport {
    let (store_ok, store_error) = match inner.store.ping().await {
        Ok(()) => (true, None),
        Err(e) => (false, Some(e.to_string())),
    };
    let queue_depth = if store_ok { inner.store.queue_depth(None).await.ok() } else { None };
    let mut providers: Vec<ProviderHealth> = inner
        .providers
        .values()
        .map(|s| ProviderHealth {
            name: s.name.clone(),
            in_flight: s.in_flight(),
            concurrency: s.concurrency,
        })
        .collect();
    providers.sort_by(|a, b| a.name.cmp(&b.name));
    HealthReport {
        store_ok,
        store_error,
        queue_depth,
        workers_running: inner.config.run_workers && !inner.shutting_down(),
        providers,
        shutting_down: inner.shutting_down(),
    }
}
