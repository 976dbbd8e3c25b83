//! [`FormaOpsBuilder`]: provider registration and [`start`](FormaOpsBuilder::start), which
//! wires the store, the batchers, the event relay and the background loops together.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, Semaphore, mpsc, watch};

use super::backlog::Backlog;
use super::batch::Batcher;
use super::cache::VersionCache;
use super::clock::Clock;
use super::config::{ENQUEUE_QUEUE, EngineConfig, MAX_BATCH};
use super::events::{EventBus, RELAY_CAPACITY};
use super::freshness::Caches;
use super::state::{FormaOps, Inner, ProviderSlot};
use super::{invalidate, rescue, worker};
use crate::error::{Error, Result};
use crate::events::{EventKind, ExecutionEvent};
use crate::execution::{AttemptResult, Execution, ExecutionStatus};
use crate::provider::LlmProvider;
use crate::provider::config::{MAX_CONCURRENCY as MAX_PROVIDER_CONCURRENCY, MOCK_PROVIDER, zero_config_mock};
use crate::store::{EnqueueOutcome, Store};

/// Builds a [`FormaOps`].
#[derive(Debug)]
pub struct FormaOpsBuilder {
    store: Arc<dyn Store>,
    providers: HashMap<String, (Arc<dyn LlmProvider>, Option<usize>)>,
    config: Option<EngineConfig>,
}

impl FormaOpsBuilder {
    pub(super) fn new(store: Arc<dyn Store>) -> Self {
        Self { store, providers: HashMap::new(), config: None }
    }

    /// Registers a provider under `name` (what versions name in `model.provider`), with the
    /// configuration's [`provider_concurrency`](EngineConfig::provider_concurrency). A second
    /// registration under the same name replaces the first.
    pub fn provider(mut self, name: impl Into<String>, provider: Arc<dyn LlmProvider>) -> Self {
        self.providers.insert(name.into(), (provider, None));
        self
    }

    /// Registers a provider with its own concurrency bound: at most `concurrency` calls to
    /// it at once from this process (1 to
    /// [`MAX_CONCURRENCY`](crate::provider::config::MAX_CONCURRENCY), checked by
    /// [`start`](Self::start)).
    pub fn provider_with_concurrency(
        mut self,
        name: impl Into<String>,
        provider: Arc<dyn LlmProvider>,
        concurrency: usize,
    ) -> Self {
        self.providers.insert(name.into(), (provider, Some(concurrency)));
        self
    }

    /// The configuration to run with; [`EngineConfig::default`] when never called.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Starts the engine (workers, rescuer, event relay) on the current tokio runtime.
    ///
    /// When the default provider is `mock` and no provider of that name is registered, a
    /// [`zero_config_mock`] is registered under it (the zero-config engine).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the configuration field out of range
    /// (`max_attempts` outside 1 to [`MAX_ATTEMPTS_LIMIT`](super::MAX_ATTEMPTS_LIMIT),
    /// `provider_concurrency` outside 1 to
    /// [`MAX_CONCURRENCY`](crate::provider::config::MAX_CONCURRENCY), a zero timeout or
    /// lease, an empty `worker_id`); errors of the store's
    /// [`remote_events`](Store::remote_events).
    pub async fn start(self) -> Result<FormaOps> {
        let config = self.config.unwrap_or_default();
        config.check()?;
        let mut providers = self.providers;
        if config.default_provider == MOCK_PROVIDER && !providers.contains_key(MOCK_PROVIDER) {
            let (name, provider, concurrency) = zero_config_mock();
            providers.insert(name, (provider, concurrency));
        }
        let mut slots = HashMap::with_capacity(providers.len());
        for (name, (provider, concurrency)) in providers {
            let concurrency = concurrency.unwrap_or(config.provider_concurrency);
            if concurrency == 0 || concurrency > MAX_PROVIDER_CONCURRENCY {
                return Err(Error::invalid_argument(
                    "provider_concurrency",
                    format!("provider {name:?}: must be between 1 and {MAX_PROVIDER_CONCURRENCY}"),
                ));
            }
            let slot = ProviderSlot {
                name: name.clone(),
                provider,
                permits: Arc::new(Semaphore::new(concurrency)),
                concurrency,
                wake: Notify::new(),
                backlog: Backlog::default(),
            };
            slots.insert(name, Arc::new(slot));
        }

        let store = self.store;
        let (relay_tx, mut relay_rx) = mpsc::channel::<ExecutionEvent>(RELAY_CAPACITY);
        let s = store.clone();
        let relay_task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while relay_rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                if let Err(e) = s.relay_events(&batch).await {
                    tracing::warn!(error = %e, dropped = batch.len(), "relaying events to other processes failed");
                }
                batch.clear();
            }
        });
        let slots = Arc::new(slots);
        let events = Arc::new(EventBus::new(Some(relay_tx)));
        let (s, ev, sl) = (store.clone(), events.clone(), slots.clone());
        let enqueuer = Batcher::spawn("enqueue", ENQUEUE_QUEUE, MAX_BATCH, move |batch: &[Execution]| {
            let (s, ev, sl) = (s.clone(), ev.clone(), sl.clone());
            Box::pin(async move {
                let outcomes = s.enqueue(batch).await?;
                // Announce before anyone can claim: the Queued event precedes Running.
                let mut woken: Vec<&str> = Vec::new();
                for (e, o) in batch.iter().zip(&outcomes) {
                    // A fast-path execution is written RUNNING: it publishes its own events.
                    if *o == EnqueueOutcome::Created && e.status == ExecutionStatus::Queued {
                        ev.publish(queued_event(e));
                        if !woken.contains(&e.provider.as_str()) {
                            woken.push(&e.provider);
                        }
                    }
                }
                for name in woken {
                    if let Some(slot) = sl.get(name) {
                        slot.backlog.note_queued();
                        slot.wake.notify_one();
                    }
                }
                Ok(outcomes)
            })
        });
        let s = store.clone();
        let finisher =
            Batcher::spawn("finish", ENQUEUE_QUEUE, MAX_BATCH, move |batch: &[AttemptResult]| {
                let s = s.clone();
                Box::pin(async move { s.finish(batch).await })
            });
        let (stop, stop_rx) = watch::channel(false);
        // A store other processes share has an invalidation channel (see `freshness`).
        let invalidations = store.remote_invalidations().await;
        let shared = !matches!(invalidations, Ok(None));
        let inner = Arc::new(Inner {
            store: store.clone(),
            config,
            clock: Clock::new(),
            providers: slots,
            events,
            enqueuer,
            finisher,
            held: Mutex::new(HashSet::new()),
            tasks: Mutex::new(HashMap::new()),
            cache: VersionCache::default(),
            caches: Caches::new(shared),
            stop,
            background: Mutex::new(vec![relay_task]),
        });

        let mut background = Vec::new();
        if shared {
            let weak = Arc::downgrade(&inner);
            background.push(tokio::spawn(invalidate::listen_loop(
                weak.clone(),
                invalidations,
                stop_rx.clone(),
            )));
            background.push(tokio::spawn(invalidate::heartbeat_loop(weak, stop_rx.clone())));
        }
        if let Some(mut remote) = store.remote_events().await? {
            let weak = Arc::downgrade(&inner);
            background.push(tokio::spawn(async move {
                use futures::StreamExt;
                while let Some(event) = remote.next().await {
                    let Some(inner) = weak.upgrade() else { break };
                    inner.events.deliver(&event);
                    if matches!(event.kind, EventKind::Queued | EventKind::RetryScheduled) {
                        // Work enqueued elsewhere may be ours to run.
                        for slot in inner.providers.values() {
                            slot.wake.notify_one();
                        }
                    }
                }
            }));
        }
        if inner.config.run_workers {
            for slot in inner.providers.values() {
                background.push(tokio::spawn(worker::claim_loop(
                    inner.clone(),
                    slot.clone(),
                    stop_rx.clone(),
                )));
            }
            background.push(tokio::spawn(worker::heartbeat_loop(inner.clone(), stop_rx.clone())));
            background.push(tokio::spawn(rescue::rescue_loop(inner.clone(), stop_rx.clone())));
        }
        if let Ok(mut b) = inner.background.lock() {
            b.extend(background);
        }
        let engine = FormaOps { inner };
        if engine.inner.config.run_workers {
            engine.resume_experiments();
        }
        Ok(engine)
    }
}

fn queued_event(e: &Execution) -> ExecutionEvent {
    ExecutionEvent::new(e.id, e.user_id, EventKind::Queued, e.attempts, e.created_at)
}
