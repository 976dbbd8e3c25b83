//! The state every clone of an engine shares: store, configuration, clock, provider slots,
//! event bus, batchers, held leases, running tasks and the compiled-version cache.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;

use super::backlog::Backlog;
use super::batch::Batcher;
use super::cache::{CompiledVersion, VersionCache};
use super::clock::{Clock, chrono_dur};
use super::config::EngineConfig;
use super::events::EventBus;
use super::freshness::Caches;
use super::scheduler;
use crate::error::{Error, Problem, ProblemCode, Result};
use crate::events::{EventKind, ExecutionEvent};
use crate::execution::{AttemptResult, Execution, NewExecution, Priority};
use crate::ids::{ExecutionId, PromptId, UserId};
use crate::prompt::{ModelConfig, PromptVersion};
use crate::provider::LlmProvider;
use crate::store::{EnqueueOutcome, Store};

/// The engine. Cheap to clone; all clones share one engine.
#[derive(Debug, Clone)]
pub struct FormaOps {
    pub(super) inner: Arc<Inner>,
}

/// One registered provider and its concurrency bound.
#[derive(Debug)]
pub(crate) struct ProviderSlot {
    pub(crate) name: String,
    pub(crate) provider: Arc<dyn LlmProvider>,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) concurrency: usize,
    pub(crate) wake: Notify,
    /// What this process knows of the provider's queue (the fast path's priority rule).
    pub(crate) backlog: Backlog,
}

impl ProviderSlot {
    pub(crate) fn in_flight(&self) -> usize {
        self.concurrency.saturating_sub(self.permits.available_permits())
    }
}

/// The engine's shared state.
pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: EngineConfig,
    pub(crate) clock: Clock,
    pub(crate) providers: Arc<HashMap<String, Arc<ProviderSlot>>>,
    pub(crate) events: Arc<EventBus>,
    pub(crate) enqueuer: Batcher<Execution, EnqueueOutcome>,
    pub(crate) finisher: Batcher<AttemptResult, bool>,
    /// Executions this process holds a lease on (for heartbeats).
    pub(crate) held: Mutex<HashSet<ExecutionId>>,
    /// Running attempt tasks, aborted when the shutdown grace runs out.
    pub(crate) tasks: Mutex<HashMap<ExecutionId, AbortHandle>>,
    pub(crate) cache: VersionCache,
    /// Credentials, prompt pointers and labels (see `freshness`).
    pub(crate) caches: Caches,
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) background: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("store", &self.store)
            .field("worker_id", &self.config.worker_id)
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Compiles `version` (or takes it from the cache).
    pub(crate) fn compile_and_cache(&self, version: &PromptVersion) -> Result<Arc<CompiledVersion>> {
        self.cache.get_or_compile(version, &self.config.template_limits)
    }

    /// The compiled version (loaded from the store, as `user`, on a cache miss). Callers must
    /// already know that `user` owns the prompt or pass the execution's owner.
    pub(crate) async fn compiled(
        &self,
        user: UserId,
        id: PromptId,
        version: u32,
    ) -> Result<Arc<CompiledVersion>> {
        if let Some(hit) = self.cache.get((id, version)) {
            return Ok(hit);
        }
        let v = self.store.get_version(user, id, version).await?;
        self.compile_and_cache(&v)
    }

    pub(crate) fn provider_for(&self, model: &ModelConfig) -> Result<&Arc<ProviderSlot>> {
        let name = model.provider.as_deref().unwrap_or(&self.config.default_provider);
        self.providers.get(name).ok_or_else(|| Error::InvalidPrompt {
            problems: vec![Problem::new(
                "model.provider",
                ProblemCode::Unknown,
                format!("no provider named {name:?} is configured"),
            )],
        })
    }

    pub(crate) fn shutting_down(&self) -> bool {
        *self.stop.borrow()
    }

    pub(crate) fn publish_state(&self, e: &Execution, kind: EventKind) {
        self.events.publish(
            ExecutionEvent::new(e.id, e.user_id, kind, e.attempts, self.clock.now())
                .with_error(e.error.clone()),
        );
    }

    /// Enqueues a built execution (group commit); the batcher announces and wakes workers.
    pub(crate) async fn enqueue(&self, exec: Execution) -> Result<EnqueueOutcome> {
        self.enqueuer.call(exec).await
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_execution(
        &self,
        user: UserId,
        version: &PromptVersion,
        provider: &str,
        inputs: Map<String, Value>,
        priority: Priority,
        validate_output: bool,
        idempotency_key: Option<String>,
        retry_of: Option<ExecutionId>,
    ) -> Execution {
        let now = self.clock.now();
        Execution::queued(NewExecution {
            user_id: user,
            prompt_id: version.prompt_id,
            prompt_version: version.version,
            inputs,
            priority,
            validate_output,
            provider: provider.to_string(),
            model: version.model.model.clone(),
            max_attempts: self.config.max_attempts,
            retry_of,
            idempotency_key,
            created_at: now,
            deadline_at: now + chrono_dur(self.config.execution_timeout),
            queue_key: scheduler::queue_key(priority, now, self.config.priority_step),
        })
    }

    /// Stops claiming, waits up to `grace` for running attempts, then abandons the rest.
    pub(crate) async fn shutdown_within(&self, grace: Duration) {
        self.stop.send_replace(true);
        let grace_end = Instant::now() + grace;
        // Every permit back means every running attempt has recorded its result.
        for slot in self.providers.values() {
            let n = u32::try_from(slot.concurrency).unwrap_or(u32::MAX);
            if tokio::time::timeout_at(grace_end, slot.permits.acquire_many(n)).await.is_err() {
                break;
            }
        }
        let left: Vec<AbortHandle> =
            self.tasks.lock().map(|mut t| t.drain().map(|(_, h)| h).collect()).unwrap_or_default();
        if !left.is_empty() {
            tracing::warn!(
                count = left.len(),
                "shutdown grace over; abandoning running attempts (their leases will expire)"
            );
        }
        for h in left {
            h.abort();
        }
        let background: Vec<JoinHandle<()>> =
            self.background.lock().map(|mut b| b.drain(..).collect()).unwrap_or_default();
        for h in background {
            h.abort();
        }
    }
}
