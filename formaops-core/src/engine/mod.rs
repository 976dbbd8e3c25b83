//! The FormaOps engine: the spec's data flow in one place.
//!
//! validate inputs -> persist as QUEUED -> schedule by priority -> render -> call the provider
//! with a deadline -> retry transient failures -> validate output -> record result and
//! metrics -> publish events.
//!
//! INTERIM: the public API below is fixed; bodies land with the engine work.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::events::ExecutionEvent;
use crate::execution::{Execution, Priority};
use crate::ids::{ExecutionId, PromptId, UserId};
use crate::metrics::{MetricsQuery, MetricsReport};
use crate::page::{Page, PageRequest};
use crate::pricing::PriceTable;
use crate::prompt::{Prompt, PromptSpec, PromptUpdate, PromptVersion};
use crate::provider::{LlmProvider, Message};
use crate::store::{ExecutionFilter, PromptFilter, Store, VersionPageRequest};
use crate::template::TemplateLimits;
use crate::variables::InputLimits;

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
    pub async fn start(self) -> Result<FormaOps> {
        let _ = (self.store, self.providers, self.config);
        Err(Error::internal("engine not yet implemented"))
    }
}

/// The engine. Cheap to clone; all clones share one engine.
#[derive(Debug, Clone)]
pub struct FormaOps {
    store: Arc<dyn Store>,
}

#[allow(unused_variables)]
impl FormaOps {
    pub fn builder(store: Arc<dyn Store>) -> FormaOpsBuilder {
        FormaOpsBuilder { store, providers: HashMap::new(), config: None }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    // ----- prompts -----

    /// Validates and stores a new prompt with version 1.
    pub async fn create_prompt(&self, user: UserId, spec: PromptSpec) -> Result<(Prompt, PromptVersion)> {
        Err(Error::internal("not yet implemented"))
    }

    /// Writes a new version (omitted fields carried over).
    pub async fn update_prompt(
        &self,
        user: UserId,
        id: PromptId,
        update: PromptUpdate,
    ) -> Result<(Prompt, PromptVersion)> {
        Err(Error::internal("not yet implemented"))
    }

    /// The prompt and the given version (the current one when `None`).
    pub async fn get_prompt(
        &self,
        user: UserId,
        id: PromptId,
        version: Option<u32>,
    ) -> Result<(Prompt, PromptVersion)> {
        Err(Error::internal("not yet implemented"))
    }

    pub async fn list_prompts(
        &self,
        user: UserId,
        filter: PromptFilter,
        page: PageRequest,
    ) -> Result<Page<Prompt>> {
        Err(Error::internal("not yet implemented"))
    }

    pub async fn list_versions(
        &self,
        user: UserId,
        id: PromptId,
        page: VersionPageRequest,
    ) -> Result<Page<PromptVersion>> {
        Err(Error::internal("not yet implemented"))
    }

    /// Archives a prompt: history and executions stay readable; no new executions.
    pub async fn archive_prompt(&self, user: UserId, id: PromptId) -> Result<Prompt> {
        Err(Error::internal("not yet implemented"))
    }

    /// Validates inputs against a version: the complete typed set, defaults filled in.
    pub fn validate_inputs(
        &self,
        version: &PromptVersion,
        inputs: &Map<String, Value>,
    ) -> Result<Map<String, Value>> {
        Err(Error::internal("not yet implemented"))
    }

    /// Validates inputs and renders a version's messages without executing.
    pub fn render(&self, version: &PromptVersion, inputs: &Map<String, Value>) -> Result<Vec<Message>> {
        Err(Error::internal("not yet implemented"))
    }

    // ----- executions -----

    /// Validates and enqueues; returns the QUEUED execution (or, for a repeated idempotency
    /// key, the first execution in whatever state it is).
    pub async fn submit(&self, user: UserId, request: ExecuteRequest) -> Result<Execution> {
        Err(Error::internal("not yet implemented"))
    }

    /// `submit`, then wait for the final state.
    pub async fn execute(&self, user: UserId, request: ExecuteRequest) -> Result<Execution> {
        Err(Error::internal("not yet implemented"))
    }

    /// Waits until the execution is final (or `timeout` passes: then its current state).
    pub async fn wait(&self, user: UserId, id: ExecutionId, timeout: Option<Duration>) -> Result<Execution> {
        Err(Error::internal("not yet implemented"))
    }

    /// Re-runs a FAILED execution as a new execution linked by `retryOf` (same inputs, same
    /// pinned version). Any other status: `Conflict`.
    pub async fn retry(&self, user: UserId, id: ExecutionId) -> Result<Execution> {
        Err(Error::internal("not yet implemented"))
    }

    /// Cancels a QUEUED execution.
    pub async fn cancel(&self, user: UserId, id: ExecutionId) -> Result<Execution> {
        Err(Error::internal("not yet implemented"))
    }

    pub async fn get_execution(&self, user: UserId, id: ExecutionId) -> Result<Execution> {
        Err(Error::internal("not yet implemented"))
    }

    pub async fn list_executions(
        &self,
        user: UserId,
        filter: ExecutionFilter,
        page: PageRequest,
    ) -> Result<Page<Execution>> {
        Err(Error::internal("not yet implemented"))
    }

    pub async fn metrics(&self, user: UserId, query: MetricsQuery) -> Result<MetricsReport> {
        Err(Error::internal("not yet implemented"))
    }

    /// Every state change of the user's executions (of one execution with `Some`), from now
    /// on, including those made by other processes sharing the store. A subscriber that lags
    /// too far behind misses events (and should re-read state).
    pub fn subscribe(
        &self,
        user: UserId,
        execution: Option<ExecutionId>,
    ) -> BoxStream<'static, ExecutionEvent> {
        Box::pin(futures::stream::empty())
    }

    pub async fn health(&self) -> HealthReport {
        HealthReport {
            store_ok: false,
            store_error: None,
            queue_depth: None,
            workers_running: false,
            providers: Vec::new(),
            shutting_down: false,
        }
    }

    /// Stops claiming, lets running executions finish within the grace period, leaves the rest
    /// QUEUED (with their leases released or left to expire).
    pub async fn shutdown(&self) {}
}
