//! The FormaOps engine: the spec's data flow in one place.
//!
//! validate inputs -> persist as QUEUED -> schedule by priority -> render -> call the provider
//! with a deadline -> retry transient failures -> validate output -> record result and
//! metrics -> publish events.
//!
//! # Layout
//!
//! - this module: the [`FormaOps`] facade; each method delegates to one of the modules below;
//! - `config`: [`EngineConfig`], [`BackoffPolicy`] and the engine's limits;
//! - `builder`: [`FormaOpsBuilder`] and `start`, which wires everything together;
//! - `state`: the state all clones of an engine share, and the provider slots;
//! - `clock`: wall-clock time that follows tokio's (paused-time tests);
//! - `cache`: versions compiled once; [`freshness`]: the per-node caches of credentials,
//!   prompt pointers and labels, and their staleness bound; `invalidate`: keeping them true
//!   across nodes; `credentials`: authentication from the cache, revocation;
//! - `prompts`: prompt CRUD and the checks a version must pass;
//! - `submit`: submit, execute, wait, retry, cancel and idempotency;
//! - [`chat`]: chat calls (the OpenAI-compatible front door); `chat_input`: what a chat call
//!   stores in an execution's inputs;
//! - `fastpath`: a synchronous execute run by the receiving process (two writes, no read);
//!   `backlog`: what this process knows of a provider's queue (the fast path's priority rule);
//! - `follow`: one execution until it is final ([`Follow`]);
//! - `health`: the engine's [`HealthReport`];
//! - [`scheduler`]: the claim order (priority with aging) and its starvation bound;
//! - [`retry`]: backoff with full jitter, Retry-After, attempts and the shared deadline;
//! - `worker`: claim loops per provider, attempts, lease heartbeats;
//! - [`partial`]: streamed provider calls and their coalesced `partial` events;
//! - [`rescue`]: expired leases, decided through [`retry`] and written by the store;
//! - `events`: the event bus and per-execution waiters;
//! - `batch`: group commit of enqueues and of attempt results;
//! - `datasets`, `experiments`: datasets, and experiments run through the queue.
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

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use serde_json::{Map, Value};

use crate::error::Result;
use crate::events::ExecutionEvent;
use crate::execution::Execution;
use crate::ids::{ExecutionId, PromptId, UserId};
use crate::page::{Page, PageRequest};
use crate::prompt::{Prompt, PromptSpec, PromptUpdate, PromptVersion};
use crate::provider::Message;
use crate::store::{ExecutionFilter, PromptFilter, Store, VersionPageRequest};

mod backlog;
mod batch;
mod builder;
mod cache;
pub mod chat;
mod chat_input;
mod clock;
mod config;
mod credentials;
mod datasets;
mod events;
mod experiments;
mod fastpath;
mod follow;
pub mod freshness;
mod health;
mod invalidate;
mod labels;
mod lookups;
mod metrics;
pub mod partial;
mod prompts;
pub mod rescue;
pub mod retry;
pub mod scheduler;
mod state;
mod submit;
mod telemetry;
mod worker;

pub use builder::FormaOpsBuilder;
pub use chat::{ChatModel, ChatParameters, ChatRequest};
pub use config::{
    BackoffPolicy, COMPILED_CACHE_SIZE, EngineConfig, MAX_ATTEMPTS_LIMIT, MAX_DESCRIPTION_CHARS,
    MAX_IDEMPOTENCY_KEY_BYTES, MAX_PROMPT_NAME_CHARS, MAX_UPDATE_ATTEMPTS, check_idempotency_key,
};
pub use datasets::MAX_EXECUTIONS_SCANNED;
pub use events::{BUS_CAPACITY, RELAY_CAPACITY};
pub use experiments::PROGRESS_INTERVAL;
pub use follow::Follow;
pub use health::{HealthReport, ProviderHealth};
pub use state::FormaOps;
pub use submit::ExecuteRequest;
pub use worker::{MAX_CLAIM_BATCH, POLL_INTERVAL};

use config::check_page;

impl FormaOps {
    /// A builder over `store`: register providers and a configuration, then
    /// [`start`](FormaOpsBuilder::start).
    pub fn builder(store: Arc<dyn Store>) -> FormaOpsBuilder {
        FormaOpsBuilder::new(store)
    }

    /// The store the engine reads and writes (shared by all clones of the engine).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    // ----- prompts -----

    /// Validates and stores a new prompt with version 1, labelled `production` unless
    /// `spec.labels` says otherwise. The name is stored trimmed.
    ///
    /// # Errors
    /// [`Error::InvalidPrompt`](crate::Error::InvalidPrompt) listing every problem with the
    /// name (empty, over [`MAX_PROMPT_NAME_CHARS`] characters, control characters), the
    /// description (over [`MAX_DESCRIPTION_CHARS`] characters), the template, variables,
    /// rules, provider or model; [`Error::InvalidArgument`](crate::Error::InvalidArgument)
    /// for a bad label name; [`Error::Conflict`](crate::Error::Conflict) when an active
    /// prompt of the user already has the name; store errors
    /// ([`Error::Unavailable`](crate::Error::Unavailable)).
    pub async fn create_prompt(&self, user: UserId, spec: PromptSpec) -> Result<(Prompt, PromptVersion)> {
        labels::check_initial_labels(spec.labels.as_deref())?;
        let initial_labels = spec.labels.clone();
        let created = prompts::create_prompt(&self.inner, user, spec).await?;
        self.set_initial_labels(user, created.0.id, initial_labels.as_deref()).await?;
        Ok(created)
    }

    /// Writes a new version (omitted fields carried over from the latest version).
    ///
    /// Without `expected_version`, an update that loses the race for the next version number
    /// to a concurrent one is retried on top of the new latest version (at most
    /// [`MAX_UPDATE_ATTEMPTS`] times), so concurrent updates all apply, each as its own
    /// version. With `expected_version`, a stale version is a conflict.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for a missing or another user's prompt;
    /// [`Error::Conflict`](crate::Error::Conflict) when it is archived, when
    /// `expected_version` is stale, or when the new name is taken by another active prompt;
    /// [`Error::InvalidPrompt`](crate::Error::InvalidPrompt) as for
    /// [`create_prompt`](Self::create_prompt); store errors.
    pub async fn update_prompt(
        &self,
        user: UserId,
        id: PromptId,
        update: PromptUpdate,
    ) -> Result<(Prompt, PromptVersion)> {
        prompts::update_prompt(&self.inner, user, id, update).await
    }

    /// The prompt and the given version (the current one when `None`), of any status.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for a missing or another user's prompt,
    /// or a version it does not have; store errors.
    pub async fn get_prompt(
        &self,
        user: UserId,
        id: PromptId,
        version: Option<u32>,
    ) -> Result<(Prompt, PromptVersion)> {
        prompts::get_prompt(&self.inner, user, id, version).await
    }

    /// One page of the user's prompts, newest first by (`createdAt`, `id`), optionally only
    /// those of one status.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) on `limit` outside 1 to
    /// [`MAX_PAGE_SIZE`](crate::page::MAX_PAGE_SIZE); store errors.
    pub async fn list_prompts(
        &self,
        user: UserId,
        filter: PromptFilter,
        page: PageRequest,
    ) -> Result<Page<Prompt>> {
        prompts::list_prompts(&self.inner, user, filter, page).await
    }

    /// One page of a prompt's versions, newest first; the next cursor is the last version
    /// number returned.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) on `limit` outside 1 to
    /// [`MAX_PAGE_SIZE`](crate::page::MAX_PAGE_SIZE); [`Error::NotFound`](crate::Error::NotFound)
    /// for a missing or another user's prompt; store errors.
    pub async fn list_versions(
        &self,
        user: UserId,
        id: PromptId,
        page: VersionPageRequest,
    ) -> Result<Page<PromptVersion>> {
        prompts::list_versions(&self.inner, user, id, page).await
    }

    /// Archives a prompt: history and executions stay readable; no new executions or
    /// versions, and its name is free for a new prompt. Archiving twice is not an error.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for a missing or another user's prompt;
    /// store errors.
    pub async fn archive_prompt(&self, user: UserId, id: PromptId) -> Result<Prompt> {
        prompts::archive_prompt(&self.inner, user, id).await
    }

    /// Validates inputs against a version: the complete typed set, defaults filled in.
    ///
    /// # Errors
    /// [`Error::InvalidInputs`](crate::Error::InvalidInputs) listing every problem (missing,
    /// wrong type, unknown, too large), each naming its `inputs.<name>` path.
    pub fn validate_inputs(
        &self,
        version: &PromptVersion,
        inputs: &Map<String, Value>,
    ) -> Result<Map<String, Value>> {
        prompts::validate_inputs(&self.inner, version, inputs)
    }

    /// Validates inputs and renders a version's messages without executing: the system
    /// message first when the version has a system template, then the user message.
    ///
    /// # Errors
    /// [`Error::InvalidInputs`](crate::Error::InvalidInputs) as for
    /// [`validate_inputs`](Self::validate_inputs); [`Error::InvalidPrompt`](crate::Error::InvalidPrompt)
    /// when the version does not compile; [`Error::Render`](crate::Error::Render) when
    /// rendering fails (fuel or output size limit).
    pub fn render(&self, version: &PromptVersion, inputs: &Map<String, Value>) -> Result<Vec<Message>> {
        prompts::render(&self.inner, version, inputs)
    }

    // ----- executions -----

    /// Validates and enqueues; returns the QUEUED execution (or, for a repeated idempotency
    /// key, the first execution in whatever state it is).
    ///
    /// # Errors
    /// [`Error::ShuttingDown`](crate::Error::ShuttingDown) once shutdown has begun;
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) on `idempotencyKey` (see
    /// [`check_idempotency_key`]); [`Error::NotFound`](crate::Error::NotFound) for a missing
    /// or another user's prompt, or a version it does not have;
    /// [`Error::Conflict`](crate::Error::Conflict) for an archived prompt;
    /// [`Error::InvalidInputs`](crate::Error::InvalidInputs) for bad inputs;
    /// [`Error::InvalidPrompt`](crate::Error::InvalidPrompt) when the version's provider is
    /// not configured; [`Error::IdempotencyKeyReused`](crate::Error::IdempotencyKeyReused)
    /// when the key was used for a different request; store errors.
    pub async fn submit(&self, user: UserId, request: ExecuteRequest) -> Result<Execution> {
        submit::submit(&self.inner, user, request).await
    }

    /// [`submit`](Self::submit), then wait for the final state, with no time limit of its
    /// own (a worker fails the execution once its deadline has passed).
    ///
    /// # Errors
    /// As [`submit`](Self::submit); store errors while waiting. A FAILED execution is not an
    /// error: it is returned with its `error`.
    pub async fn execute(&self, user: UserId, request: ExecuteRequest) -> Result<Execution> {
        submit::execute(&self.inner, user, request, None, None).await
    }

    /// [`FormaOps::execute`], waiting at most `wait`: the final execution, or its current
    /// state (QUEUED or RUNNING) when the wait ran out; it goes on running (follow it with
    /// [`FormaOps::wait`]). What `POST /api/prompts/{id}/execute` does without `mode=async`.
    ///
    /// # Errors
    /// As [`FormaOps::execute`].
    pub async fn execute_within(
        &self,
        user: UserId,
        request: ExecuteRequest,
        wait: Duration,
    ) -> Result<Execution> {
        submit::execute(&self.inner, user, request, None, Some(wait)).await
    }

    /// Waits until the execution is final (or `timeout` passes: then its current state).
    /// Re-reads the state at least every 2 seconds, so changes made by other processes are
    /// seen even when their events are lost.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for a missing or another user's
    /// execution; store errors.
    pub async fn wait(&self, user: UserId, id: ExecutionId, timeout: Option<Duration>) -> Result<Execution> {
        submit::wait(&self.inner, user, id, timeout).await
    }

    /// Re-runs a FAILED execution as a new execution linked by `retryOf` (same inputs, same
    /// pinned version). Any other status: `Conflict`.
    ///
    /// # Errors
    /// [`Error::ShuttingDown`](crate::Error::ShuttingDown);
    /// [`Error::NotFound`](crate::Error::NotFound) for a missing or another user's
    /// execution; [`Error::Conflict`](crate::Error::Conflict) when it is not FAILED or its
    /// prompt is archived; [`Error::InvalidPrompt`](crate::Error::InvalidPrompt) when its
    /// provider is no longer configured; store errors.
    pub async fn retry(&self, user: UserId, id: ExecutionId) -> Result<Execution> {
        submit::retry(&self.inner, user, id).await
    }

    /// Cancels a QUEUED execution (a retry waiting out its backoff included) and publishes
    /// its `Cancelled` event.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for a missing or another user's
    /// execution; [`Error::Conflict`](crate::Error::Conflict) in any other status; store
    /// errors.
    pub async fn cancel(&self, user: UserId, id: ExecutionId) -> Result<Execution> {
        submit::cancel(&self.inner, user, id).await
    }

    /// One of the user's executions, as stored now.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for a missing or another user's
    /// execution; store errors.
    pub async fn get_execution(&self, user: UserId, id: ExecutionId) -> Result<Execution> {
        self.inner.store.get_execution(user, id).await
    }

    /// One page of the user's executions, newest first by (`createdAt`, `id`), filtered by
    /// status, prompt and a `[since, until)` window on `createdAt`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) on `limit` outside 1 to
    /// [`MAX_PAGE_SIZE`](crate::page::MAX_PAGE_SIZE), or on `since` not before `until`;
    /// store errors.
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

    /// Follows the user's execution `id` until it is final: its state, then its events up to
    /// the final one (see [`Follow`]). Subscribes before reading, so no change falls between
    /// the snapshot and the first event; a follower that lagged and missed the final event
    /// ends with one made from the final state.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) when the execution does not exist or
    /// belongs to another user; store errors.
    pub async fn follow(&self, user: UserId, id: ExecutionId) -> Result<Follow> {
        follow::follow(&self.inner, user, id).await
    }

    /// The engine's state: store reachability, queue depth, workers and providers. Never
    /// fails: a store outage is reported in the [`HealthReport`].
    pub async fn health(&self) -> HealthReport {
        health::report(&self.inner).await
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
        self.inner.shutdown_within(grace).await;
    }
}
