//! The FormaOps engine: the spec's data flow in one place.
//!
//! validate inputs -> persist as QUEUED -> schedule by priority -> render -> call the provider
//! with a deadline -> retry transient failures -> validate output -> record result and
//! metrics -> publish events.
//!
//! # Layout
//!
//! - this module: the [`FormaOps`] facade, its configuration and builder, prompt CRUD and
//!   submission;
//! - [`scheduler`]: the claim order (priority with aging) and its starvation bound;
//! - [`retry`]: backoff with full jitter, Retry-After, attempts and the shared deadline;
//! - `worker`: claim loops per provider, attempts, lease heartbeats;
//! - [`rescue`]: expired leases, decided through [`retry`] and written by the store;
//! - `events`: the event bus and per-execution waiters;
//! - `batch`: group commit of enqueues and of attempt results.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use formaops_core::engine::{ExecuteRequest, FormaOps};
//! use formaops_core::ids::UserId;
//! use formaops_core::prompt::PromptSpec;
//! use formaops_core::store::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> formaops_core::Result<()> {
//! // No provider registered: the deterministic mock answers under the name "mock".
//! let engine = FormaOps::builder(Arc::new(MemoryStore::new())).start().await?;
//! let user = UserId::new();
//! let spec: PromptSpec = serde_json::from_value(serde_json::json!({
//!     "name": "greet", "template": "Hello {{ name }}!",
//!     "variables": [{"name": "name", "type": "string", "required": true}],
//!     "model": {"model": "mock"}
//! })).expect("a valid spec");
//! let (prompt, _) = engine.create_prompt(user, spec).await?;
//! let mut inputs = serde_json::Map::new();
//! inputs.insert("name".into(), "Ada".into());
//! let done = engine
//!     .execute(user, ExecuteRequest { prompt_id: prompt.id, inputs, ..Default::default() })
//!     .await?;
//! assert_eq!(done.output.as_deref(), Some("Hello Ada!"));
//! engine.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;

use crate::error::{Error, Problem, ProblemCode, Result};
use crate::events::{EventKind, ExecutionEvent};
use crate::execution::{AttemptResult, Execution, ExecutionStatus, NewExecution, Priority};
use crate::ids::{ExecutionId, PromptId, UserId};
use crate::metrics::{MetricsQuery, MetricsReport};
use crate::page::{MAX_PAGE_SIZE, Page, PageRequest};
use crate::pricing::PriceTable;
use crate::prompt::{ModelConfig, Prompt, PromptSpec, PromptStatus, PromptUpdate, PromptVersion};
use crate::provider::config::{MAX_CONCURRENCY as MAX_PROVIDER_CONCURRENCY, MOCK_PROVIDER, zero_config_mock};
use crate::provider::{LlmProvider, Message};
use crate::store::{EnqueueOutcome, ExecutionFilter, PromptFilter, Store, VersionPageRequest};
use crate::template::{CompiledPrompt, TemplateLimits};
use crate::validation::CompiledRules;
use crate::variables::{self, InputLimits};

mod batch;
pub mod chat;
mod events;
mod follow;
pub mod rescue;
pub mod retry;
pub mod scheduler;
mod telemetry;
mod worker;

pub use chat::{ChatModel, ChatParameters, ChatRequest};
pub use events::{BUS_CAPACITY, RELAY_CAPACITY};
pub use follow::Follow;
pub use worker::{MAX_CLAIM_BATCH, POLL_INTERVAL};

use batch::Batcher;
use events::EventBus;
use worker::{ProviderSlot, chrono_dur};

/// Retry backoff: exponential from `base`, capped at `max`, with full jitter; a provider's
/// Retry-After replaces the computed delay (still capped by the execution deadline).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    pub base: Duration,
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self { base: Duration::from_millis(500), max: Duration::from_secs(30) }
    }
}

/// Engine configuration. Every field has a production default.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Provider used when a version names none.
    pub default_provider: String,
    /// Attempts per execution, first included.
    pub max_attempts: u32,
    /// Deadline shared by all attempts, from acceptance.
    pub execution_timeout: Duration,
    /// Deadline of one provider call (capped by the execution deadline).
    pub attempt_timeout: Duration,
    pub backoff: BackoffPolicy,
    /// How long a claim is held without a heartbeat before another worker may rescue it.
    pub lease: Duration,
    /// Aging step of the scheduler: HIGH is ordered as if it arrived `2 * step` earlier,
    /// NORMAL `step` earlier, LOW as it arrived. So LOW never waits behind work that arrived
    /// more than `2 * step` after it.
    pub priority_step: Duration,
    /// Concurrent provider calls per provider, unless set for a provider at registration.
    pub provider_concurrency: usize,
    /// This process's worker id (lease owner). Unique per process.
    pub worker_id: String,
    /// Whether this engine runs workers (an API-only node can submit without executing).
    pub run_workers: bool,
    /// How long `shutdown` lets running executions finish.
    pub shutdown_grace: Duration,
    pub prices: PriceTable,
    pub template_limits: TemplateLimits,
    pub input_limits: InputLimits,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            default_provider: "mock".to_string(),
            max_attempts: 3,
            execution_timeout: Duration::from_secs(120),
            attempt_timeout: Duration::from_secs(60),
            backoff: BackoffPolicy::default(),
            lease: Duration::from_secs(30),
            priority_step: Duration::from_secs(30),
            provider_concurrency: 16,
            worker_id: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            run_workers: true,
            shutdown_grace: Duration::from_secs(30),
            prices: PriceTable::default(),
            template_limits: TemplateLimits::default(),
            input_limits: InputLimits::default(),
        }
    }
}

/// Most attempts per execution accepted in [`EngineConfig::max_attempts`].
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;
/// Longest idempotency key, in bytes. A key is 1 to this many visible ASCII characters (`!`
/// to `~`), so it travels unchanged in an HTTP header; see [`check_idempotency_key`].
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

/// The one rule for idempotency keys, for every adapter: 1 to [`MAX_IDEMPOTENCY_KEY_BYTES`]
/// visible ASCII characters.
///
/// # Errors
/// [`Error::InvalidArgument`] on `idempotencyKey`.
pub fn check_idempotency_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid_argument(
            "idempotencyKey",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} visible ASCII characters"),
        ));
    }
    Ok(())
}
/// Longest prompt name, in characters.
pub const MAX_PROMPT_NAME_CHARS: usize = 200;
/// Longest prompt description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 5_000;
/// Compiled versions kept in the engine's cache.
pub const COMPILED_CACHE_SIZE: usize = 4_096;
/// Submissions waiting for a group commit before `submit` callers wait for room.
const ENQUEUE_QUEUE: usize = 65_536;
/// Largest group commit.
const MAX_BATCH: usize = 512;
/// How often `wait` re-reads state even without an event (events from other processes are
/// best effort).
const WAIT_RECHECK: Duration = Duration::from_secs(2);

impl EngineConfig {
    fn check(&self) -> Result<()> {
        let bad = |field: &str, message: &str| Err(Error::invalid_argument(field, message));
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS_LIMIT {
            return bad("max_attempts", "must be between 1 and 100");
        }
        if self.provider_concurrency == 0 || self.provider_concurrency > MAX_PROVIDER_CONCURRENCY {
            return Err(Error::invalid_argument(
                "provider_concurrency",
                format!("must be between 1 and {MAX_PROVIDER_CONCURRENCY}"),
            ));
        }
        if self.execution_timeout.is_zero() || self.attempt_timeout.is_zero() || self.lease.is_zero() {
            return bad("timeouts", "execution_timeout, attempt_timeout and lease must be positive");
        }
        if self.worker_id.is_empty() {
            return bad("worker_id", "must not be empty");
        }
        Ok(())
    }
}

/// Wall-clock time that follows tokio's clock, so paused-time tests move both together.
/// Truncated to microseconds (what every store keeps, and what cursors encode).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base_utc: DateTime<Utc>,
    base: Instant,
}

impl Clock {
    fn new() -> Self {
        Self { base_utc: Utc::now(), base: Instant::now() }
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        let t = self.base_utc + chrono_dur(self.base.elapsed());
        DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
    }

    /// The tokio instant of a wall-clock time (the past maps to the clock's start).
    pub(crate) fn instant_at(&self, t: DateTime<Utc>) -> Instant {
        match (t - self.base_utc).to_std() {
            Ok(d) => self.base.checked_add(d).unwrap_or(self.base + Duration::from_secs(86_400 * 365)),
            Err(_) => self.base,
        }
    }
}

/// A request to execute a prompt (the spec's `ExecutePromptRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteRequest {
    pub prompt_id: PromptId,
    /// Pin a version; the current one when `None`.
    #[serde(default)]
    pub version: Option<u32>,
    #[serde(default)]
    pub inputs: Map<String, Value>,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default)]
    pub validate_output: bool,
    /// Repeating a request with the same key returns the first execution.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// What `health` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    pub store_ok: bool,
    pub store_error: Option<String>,
    pub queue_depth: Option<u64>,
    pub workers_running: bool,
    pub providers: Vec<ProviderHealth>,
    pub shutting_down: bool,
}

/// One provider's state in [`HealthReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderHealth {
    pub name: String,
    pub in_flight: usize,
    pub concurrency: usize,
}

/// Builds a [`FormaOps`].
#[derive(Debug)]
pub struct FormaOpsBuilder {
    store: Arc<dyn Store>,
    providers: HashMap<String, (Arc<dyn LlmProvider>, Option<usize>)>,
    config: Option<EngineConfig>,
}

impl FormaOpsBuilder {
    /// Registers a provider under `name`.
    pub fn provider(mut self, name: impl Into<String>, provider: Arc<dyn LlmProvider>) -> Self {
        self.providers.insert(name.into(), (provider, None));
        self
    }

    /// Registers a provider with its own concurrency bound.
    pub fn provider_with_concurrency(
        mut self,
        name: impl Into<String>,
        provider: Arc<dyn LlmProvider>,
        concurrency: usize,
    ) -> Self {
        self.providers.insert(name.into(), (provider, Some(concurrency)));
        self
    }

    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Starts the engine (workers, rescuer, event relay) on the current tokio runtime.
    ///
    /// When the default provider is `mock` and no provider of that name is registered, a
    /// [`zero_config_mock`] is registered under it (the zero-config engine).
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
                    if *o == EnqueueOutcome::Created {
                        ev.publish(queued_event(e));
                        if !woken.contains(&e.provider.as_str()) {
                            woken.push(&e.provider);
                        }
                    }
                }
                for name in woken {
                    if let Some(slot) = sl.get(name) {
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
            cache: Mutex::new(HashMap::new()),
            stop,
            background: Mutex::new(vec![relay_task]),
        });

        let mut background = Vec::new();
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
        Ok(FormaOps { inner })
    }
}

/// A version compiled once: templates and output rules.
#[derive(Debug)]
pub(crate) struct CompiledVersion {
    pub(crate) version: PromptVersion,
    pub(crate) prompt: CompiledPrompt,
    pub(crate) rules: CompiledRules,
}

/// The engine's shared state.
pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: EngineConfig,
    pub(crate) clock: Clock,
    pub(crate) providers: Arc<HashMap<String, Arc<ProviderSlot>>>,
    pub(crate) events: Arc<EventBus>,
    enqueuer: Batcher<Execution, EnqueueOutcome>,
    pub(crate) finisher: Batcher<AttemptResult, bool>,
    /// Executions this process holds a lease on (for heartbeats).
    pub(crate) held: Mutex<HashSet<ExecutionId>>,
    /// Running attempt tasks, aborted when the shutdown grace runs out.
    pub(crate) tasks: Mutex<HashMap<ExecutionId, AbortHandle>>,
    cache: Mutex<HashMap<(PromptId, u32), Arc<CompiledVersion>>>,
    stop: watch::Sender<bool>,
    background: Mutex<Vec<JoinHandle<()>>>,
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
    fn cached(&self, key: (PromptId, u32)) -> Option<Arc<CompiledVersion>> {
        self.cache.lock().ok().and_then(|c| c.get(&key).cloned())
    }

    fn compile_and_cache(&self, version: &PromptVersion) -> Result<Arc<CompiledVersion>> {
        let key = (version.prompt_id, version.version);
        if let Some(hit) = self.cached(key) {
            return Ok(hit);
        }
        let compiled = Arc::new(CompiledVersion {
            prompt: CompiledPrompt::compile(version, &self.config.template_limits)?,
            rules: CompiledRules::compile(&version.validations)?,
            version: version.clone(),
        });
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= COMPILED_CACHE_SIZE {
                // Versions are immutable, so any entry may go; drop an arbitrary one.
                if let Some(k) = cache.keys().next().copied() {
                    cache.remove(&k);
                }
            }
            cache.insert(key, compiled.clone());
        }
        Ok(compiled)
    }

    /// The compiled version (loaded from the store, as `user`, on a cache miss). Callers must
    /// already know that `user` owns the prompt or pass the execution's owner.
    pub(crate) async fn compiled(
        &self,
        user: UserId,
        id: PromptId,
        version: u32,
    ) -> Result<Arc<CompiledVersion>> {
        if let Some(hit) = self.cached((id, version)) {
            return Ok(hit);
        }
        let v = self.store.get_version(user, id, version).await?;
        self.compile_and_cache(&v)
    }

    fn provider_for(&self, model: &ModelConfig) -> Result<&Arc<ProviderSlot>> {
        let name = model.provider.as_deref().unwrap_or(&self.config.default_provider);
        self.providers.get(name).ok_or_else(|| Error::InvalidPrompt {
            problems: vec![Problem::new(
                "model.provider",
                ProblemCode::Unknown,
                format!("no provider named {name:?} is configured"),
            )],
        })
    }

    fn shutting_down(&self) -> bool {
        *self.stop.borrow()
    }

    fn publish_state(&self, e: &Execution, kind: EventKind) {
        self.events.publish(
            ExecutionEvent::new(e.id, e.user_id, kind, e.attempts, self.clock.now())
                .with_error(e.error.clone()),
        );
    }

    /// Enqueues a built execution (group commit); the batcher announces and wakes workers.
    async fn enqueue(&self, exec: Execution) -> Result<EnqueueOutcome> {
        self.enqueuer.call(exec).await
    }

    #[allow(clippy::too_many_arguments)]
    fn new_execution(
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

    /// Every check a version must pass before it is stored: the core rules'
    /// [`template::check_version`](crate::template::check_version), plus a configured provider
    /// and a model name.
    fn check_version(&self, version: &PromptVersion) -> Result<()> {
        let mut problems = match crate::template::check_version(
            version,
            &self.config.template_limits,
            &self.config.input_limits,
        ) {
            Ok(()) => Vec::new(),
            Err(Error::InvalidPrompt { problems }) => problems,
            Err(other) => return Err(other),
        };
        if let Err(Error::InvalidPrompt { problems: p }) = self.provider_for(&version.model) {
            problems.extend(p);
        }
        if version.model.model.trim().is_empty() {
            problems.push(Problem::new(
                "model.model",
                ProblemCode::Missing,
                "the model name must not be empty",
            ));
        }
        if problems.is_empty() { Ok(()) } else { Err(Error::InvalidPrompt { problems }) }
    }
}

fn queued_event(e: &Execution) -> ExecutionEvent {
    ExecutionEvent::new(e.id, e.user_id, EventKind::Queued, e.attempts, e.created_at)
}

fn check_name(name: &str) -> Result<()> {
    let problem = if name.trim().is_empty() {
        Some(Problem::new("name", ProblemCode::Missing, "the name must not be empty"))
    } else if name.chars().count() > MAX_PROMPT_NAME_CHARS {
        Some(Problem::new(
            "name",
            ProblemCode::TooLarge,
            format!("at most {MAX_PROMPT_NAME_CHARS} characters"),
        ))
    } else if name.chars().any(char::is_control) {
        Some(Problem::new("name", ProblemCode::Invalid, "control characters are not allowed"))
    } else {
        None
    };
    problem.map_or(Ok(()), |p| Err(Error::InvalidPrompt { problems: vec![p] }))
}

fn check_description(description: Option<&str>) -> Result<()> {
    match description {
        Some(d) if d.chars().count() > MAX_DESCRIPTION_CHARS => Err(Error::InvalidPrompt {
            problems: vec![Problem::new(
                "description",
                ProblemCode::TooLarge,
                format!("at most {MAX_DESCRIPTION_CHARS} characters"),
            )],
        }),
        Some(d) => crate::text::str_problem("description", d)
            .map_or(Ok(()), |p| Err(Error::InvalidPrompt { problems: vec![p] })),
        None => Ok(()),
    }
}

fn check_page(limit: u32) -> Result<()> {
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(Error::invalid_argument("limit", format!("must be between 1 and {MAX_PAGE_SIZE}")));
    }
    Ok(())
}

/// The engine. Cheap to clone; all clones share one engine.
#[derive(Debug, Clone)]
pub struct FormaOps {
    inner: Arc<Inner>,
}

impl FormaOps {
    pub fn builder(store: Arc<dyn Store>) -> FormaOpsBuilder {
        FormaOpsBuilder { store, providers: HashMap::new(), config: None }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    // ----- prompts -----

    /// Validates and stores a new prompt with version 1.
    pub async fn create_prompt(&self, user: UserId, spec: PromptSpec) -> Result<(Prompt, PromptVersion)> {
        check_name(&spec.name)?;
        check_description(spec.description.as_deref())?;
        let now = self.inner.clock.now();
        let id = PromptId::new();
        let version = PromptVersion {
            prompt_id: id,
            version: 1,
            template: spec.template,
            system_template: spec.system_template,
            variables: spec.variables,
            validations: spec.validations,
            model: spec.model.unwrap_or_default(),
            created_at: now,
            author: user,
        };
        self.inner.check_version(&version)?;
        let prompt = Prompt {
            id,
            user_id: user,
            name: spec.name.trim().to_string(),
            description: spec.description,
            status: PromptStatus::Active,
            current_version: 1,
            created_at: now,
            updated_at: now,
        };
        self.inner.store.insert_prompt(&prompt, &version).await?;
        Ok((prompt, version))
    }

    /// Writes a new version (omitted fields carried over).
    pub async fn update_prompt(
        &self,
        user: UserId,
        id: PromptId,
        update: PromptUpdate,
    ) -> Result<(Prompt, PromptVersion)> {
        let current = self.inner.store.get_prompt(user, id).await?;
        if current.status != PromptStatus::Active {
            return Err(Error::conflict(format!("prompt {id} is archived and cannot be updated")));
        }
        if let Some(expected) = update.expected_version
            && expected != current.current_version
        {
            return Err(Error::conflict(format!(
                "prompt {id} is at version {}, not the expected {expected}",
                current.current_version
            )));
        }
        if let Some(name) = &update.name {
            check_name(name)?;
        }
        check_description(update.description.as_deref())?;
        let base = self.inner.store.get_version(user, id, current.current_version).await?;
        let next = current
            .current_version
            .checked_add(1)
            .ok_or_else(|| Error::conflict(format!("prompt {id} has too many versions")))?;
        let now = self.inner.clock.now();
        let version = PromptVersion {
            prompt_id: id,
            version: next,
            template: update.template.unwrap_or(base.template),
            system_template: update.system_template.or(base.system_template),
            variables: update.variables.unwrap_or(base.variables),
            validations: update.validations.unwrap_or(base.validations),
            model: update.model.unwrap_or(base.model),
            created_at: now,
            author: user,
        };
        self.inner.check_version(&version)?;
        let prompt = Prompt {
            name: update.name.map(|n| n.trim().to_string()).unwrap_or(current.name),
            description: update.description.or(current.description),
            current_version: next,
            updated_at: now,
            ..current
        };
        self.inner.store.insert_version(&prompt, &version).await?;
        Ok((prompt, version))
    }

    /// The prompt and the given version (the current one when `None`).
    pub async fn get_prompt(
        &self,
        user: UserId,
        id: PromptId,
        version: Option<u32>,
    ) -> Result<(Prompt, PromptVersion)> {
        let prompt = self.inner.store.get_prompt(user, id).await?;
        let v = self.inner.store.get_version(user, id, version.unwrap_or(prompt.current_version)).await?;
        Ok((prompt, v))
    }

    pub async fn list_prompts(
        &self,
        user: UserId,
        filter: PromptFilter,
        page: PageRequest,
    ) -> Result<Page<Prompt>> {
        check_page(page.limit)?;
        self.inner.store.list_prompts(user, &filter, page).await
    }

    pub async fn list_versions(
        &self,
        user: UserId,
        id: PromptId,
        page: VersionPageRequest,
    ) -> Result<Page<PromptVersion>> {
        check_page(page.limit)?;
        self.inner.store.list_versions(user, id, page).await
    }

    /// Archives a prompt: history and executions stay readable; no new executions.
    pub async fn archive_prompt(&self, user: UserId, id: PromptId) -> Result<Prompt> {
        self.inner.store.set_prompt_status(user, id, PromptStatus::Archived, self.inner.clock.now()).await
    }

    /// Validates inputs against a version: the complete typed set, defaults filled in.
    pub fn validate_inputs(
        &self,
        version: &PromptVersion,
        inputs: &Map<String, Value>,
    ) -> Result<Map<String, Value>> {
        variables::validate_inputs(&version.variables, inputs, &self.inner.config.input_limits)
    }

    /// Validates inputs and renders a version's messages without executing.
    pub fn render(&self, version: &PromptVersion, inputs: &Map<String, Value>) -> Result<Vec<Message>> {
        let inputs = self.validate_inputs(version, inputs)?;
        self.inner.compile_and_cache(version)?.prompt.render(&inputs)
    }

    // ----- executions -----

    /// Validates and enqueues; returns the QUEUED execution (or, for a repeated idempotency
    /// key, the first execution in whatever state it is).
    pub async fn submit(&self, user: UserId, request: ExecuteRequest) -> Result<Execution> {
        self.submit_inner(user, request, None, false).await.map(|(e, _)| e)
    }

    /// `submit`; with `wake` set, also a receiver woken by the new execution's final event,
    /// registered before the execution is enqueued (so no event can be missed and `execute`
    /// needs no read before waiting). `None` when the request returned an existing execution.
    async fn submit_inner(
        &self,
        user: UserId,
        request: ExecuteRequest,
        chat: Option<Value>,
        wake: bool,
    ) -> Result<(Execution, Option<oneshot::Receiver<()>>)> {
        let inner = &self.inner;
        if inner.shutting_down() {
            return Err(Error::ShuttingDown);
        }
        if let Some(key) = &request.idempotency_key {
            check_idempotency_key(key)?;
        }
        if request.idempotency_key.as_deref().is_some_and(|k| !crate::text::is_storable(k)) {
            return Err(Error::invalid_argument("idempotencyKey", crate::text::MESSAGE));
        }
        let prompt = inner.store.get_prompt(user, request.prompt_id).await?;
        if prompt.status != PromptStatus::Active {
            return Err(Error::conflict(format!("prompt {} is archived and cannot be executed", prompt.id)));
        }
        let pinned = request.version.unwrap_or(prompt.current_version);
        if pinned == 0 || pinned > prompt.current_version {
            return Err(Error::not_found("prompt version", format!("{} v{pinned}", prompt.id)));
        }
        let compiled = inner.compiled(user, prompt.id, pinned).await?;
        let mut inputs = variables::validate_inputs(
            &compiled.version.variables,
            &request.inputs,
            &inner.config.input_limits,
        )?;
        if let Some(chat) = chat {
            inputs.insert(chat::CHAT_INPUT.to_string(), chat);
        }
        let slot = inner.provider_for(&compiled.version.model)?;
        let exec = inner.new_execution(
            user,
            &compiled.version,
            &slot.name,
            inputs,
            request.priority,
            request.validate_output,
            request.idempotency_key.clone(),
            None,
        );
        let returned = exec.clone();
        let woken = wake.then(|| inner.events.waiter(returned.id));
        let outcome = match inner.enqueue(exec).await {
            Ok(o) => o,
            Err(e) => {
                if woken.is_some() {
                    drop(woken);
                    inner.events.forget_waiters(returned.id);
                }
                return Err(e);
            }
        };
        match outcome {
            EnqueueOutcome::Created => Ok((returned, woken)),
            EnqueueOutcome::Existing(first) => {
                if woken.is_some() {
                    drop(woken);
                    inner.events.forget_waiters(returned.id);
                }
                let same = first.prompt_id == request.prompt_id
                    && request.version.is_none_or(|v| v == first.prompt_version)
                    && first.inputs == returned.inputs
                    && first.priority == request.priority
                    && first.validate_output == request.validate_output;
                if same {
                    Ok((*first, None))
                } else {
                    Err(Error::IdempotencyKeyReused { key: request.idempotency_key.unwrap_or_default() })
                }
            }
        }
    }

    /// `submit`, then wait for the final state.
    pub async fn execute(&self, user: UserId, request: ExecuteRequest) -> Result<Execution> {
        let (submitted, woken) = self.submit_inner(user, request, None, true).await?;
        if submitted.status.is_final() {
            return Ok(submitted);
        }
        if let Some(woken) = woken {
            // Registered before the enqueue: the execution cannot have finished unseen, so the
            // first read happens once it is final (or after the usual recheck interval).
            let _ = tokio::time::timeout(WAIT_RECHECK, woken).await;
            self.inner.events.forget_waiters(submitted.id);
        }
        self.wait(user, submitted.id, None).await
    }

    /// Waits until the execution is final (or `timeout` passes: then its current state).
    pub async fn wait(&self, user: UserId, id: ExecutionId, timeout: Option<Duration>) -> Result<Execution> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let woken = self.inner.events.waiter(id);
            let current = match self.inner.store.get_execution(user, id).await {
                Ok(e) => e,
                Err(e) => {
                    drop(woken);
                    self.inner.events.forget_waiters(id);
                    return Err(e);
                }
            };
            if current.status.is_final() || deadline.is_some_and(|d| Instant::now() >= d) {
                drop(woken);
                self.inner.events.forget_waiters(id);
                return Ok(current);
            }
            let recheck = Instant::now() + WAIT_RECHECK;
            let until = deadline.map_or(recheck, |d| d.min(recheck));
            let _ = tokio::time::timeout_at(until, woken).await;
            self.inner.events.forget_waiters(id);
        }
    }

    /// Re-runs a FAILED execution as a new execution linked by `retryOf` (same inputs, same
    /// pinned version). Any other status: `Conflict`.
    pub async fn retry(&self, user: UserId, id: ExecutionId) -> Result<Execution> {
        let inner = &self.inner;
        if inner.shutting_down() {
            return Err(Error::ShuttingDown);
        }
        let original = inner.store.get_execution(user, id).await?;
        if original.status != ExecutionStatus::Failed {
            return Err(Error::conflict(format!(
                "execution {id} is {}; only a FAILED execution can be retried",
                original.status.as_str()
            )));
        }
        let prompt = inner.store.get_prompt(user, original.prompt_id).await?;
        if prompt.status != PromptStatus::Active {
            return Err(Error::conflict(format!("prompt {} is archived and cannot be executed", prompt.id)));
        }
        let compiled = inner.compiled(user, original.prompt_id, original.prompt_version).await?;
        let slot = inner.provider_for(&compiled.version.model)?;
        let exec = inner.new_execution(
            user,
            &compiled.version,
            &slot.name,
            original.inputs,
            original.priority,
            original.validate_output,
            None,
            Some(id),
        );
        let returned = exec.clone();
        inner.enqueue(exec).await?;
        Ok(returned)
    }

    /// Cancels a QUEUED execution.
    pub async fn cancel(&self, user: UserId, id: ExecutionId) -> Result<Execution> {
        let e = self.inner.store.cancel(user, id, self.inner.clock.now()).await?;
        self.inner.publish_state(&e, EventKind::Cancelled);
        Ok(e)
    }

    pub async fn get_execution(&self, user: UserId, id: ExecutionId) -> Result<Execution> {
        self.inner.store.get_execution(user, id).await
    }

    pub async fn list_executions(
        &self,
        user: UserId,
        filter: ExecutionFilter,
        page: PageRequest,
    ) -> Result<Page<Execution>> {
        check_page(page.limit)?;
        crate::metrics::check_window(filter.since, filter.until)?;
        self.inner.store.list_executions(user, &filter, page).await
    }

    pub async fn metrics(&self, user: UserId, query: MetricsQuery) -> Result<MetricsReport> {
        query.check()?;
        self.inner.store.metrics(user, &query).await
    }

    /// Every state change of the user's executions (of one execution with `Some`), from now
    /// on, including those made by other processes sharing the store. A subscriber that lags
    /// too far behind misses events (and should re-read state).
    pub fn subscribe(
        &self,
        user: UserId,
        execution: Option<ExecutionId>,
    ) -> BoxStream<'static, ExecutionEvent> {
        self.inner.events.subscribe(user, execution)
    }

    pub async fn health(&self) -> HealthReport {
        let inner = &self.inner;
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

    /// Stops claiming, lets running executions finish within the grace period, leaves the rest
    /// QUEUED (with their leases released or left to expire).
    pub async fn shutdown(&self) {
        self.shutdown_within(self.inner.config.shutdown_grace).await;
    }

    /// [`shutdown`](Self::shutdown) with its own grace period instead of the configured one.
    /// `Duration::ZERO` abandons running attempts at once: their leases expire and another
    /// engine on the same store rescues them, as after a crash.
    pub async fn shutdown_within(&self, grace: Duration) {
        let inner = &self.inner;
        inner.stop.send_replace(true);
        let grace_end = Instant::now() + grace;
        // Every permit back means every running attempt has recorded its result.
        for slot in inner.providers.values() {
            let n = u32::try_from(slot.concurrency).unwrap_or(u32::MAX);
            if tokio::time::timeout_at(grace_end, slot.permits.acquire_many(n)).await.is_err() {
                break;
            }
        }
        let left: Vec<AbortHandle> =
            inner.tasks.lock().map(|mut t| t.drain().map(|(_, h)| h).collect()).unwrap_or_default();
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
            inner.background.lock().map(|mut b| b.drain(..).collect()).unwrap_or_default();
        for h in background {
            h.abort();
        }
    }
}
