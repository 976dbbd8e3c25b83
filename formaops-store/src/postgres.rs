//! [`PgStore`]: the Postgres backend, for production and for several processes sharing one
//! database.
//!
//! - Batches are single statements over arrays (`INSERT ... SELECT FROM UNNEST(...)`,
//!   `UPDATE ... FROM UNNEST(...)`), one transaction per batch, committed before returning.
//! - With [`Durability::Relaxed`], execution writes (enqueue, claim, finish, rescue, lease
//!   extensions) use a second pool whose sessions run with `synchronous_commit = off`; users,
//!   credentials, prompts, labels and cancellations always wait for the flush.
//! - Claims lock candidate rows with `FOR UPDATE SKIP LOCKED`, so concurrent claimers in any
//!   number of processes never receive the same execution and never wait on each other.
//! - `finish` only updates a row that is RUNNING under the reporting worker's lease: the
//!   database itself guarantees at most one final result per execution.
//! - Events are relayed with `pg_notify` on channel [`EVENTS_CHANNEL`], tagged with this
//!   store's node id so a process skips its own; [`Store::remote_events`](formaops_core::store::Store::remote_events) listens with a
//!   [`PgListener`] and reconnects after a connection loss, logging the gap (its events are
//!   lost: delivery is best effort, and waiters re-read the store on their own).
//! - Cache invalidations (revoked credentials, moved prompt pointers, engine heartbeats)
//!   travel on their own channel, [`INVALIDATIONS_CHANNEL`], to every process including the
//!   sender; after a listener's connection loss the stream yields `Invalidation::All` at the
//!   loss and again in place of the first message after it (the gap's messages are lost).

use std::collections::{HashMap, HashSet, VecDeque};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use formaops_core::events::ExecutionEvent;
use formaops_core::execution::{AttemptResult, Execution};
use formaops_core::ids::ExecutionId;
use formaops_core::store::{EnqueueOutcome, ExtendLeasesParams, Invalidation};
use formaops_core::{Error, Result};
use futures::stream::BoxStream;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use uuid::Uuid;

use crate::MAX_BATCH;
use crate::error::DbResultExt;
use crate::health::FailFastPool;
use crate::options::{Durability, StoreOptions};
use crate::rows::{ExecutionColumns, FinishColumns};
use crate::sql::{executions, impl_store, rollups};

/// The NOTIFY channel execution events travel on.
pub const EVENTS_CHANNEL: &str = "formaops_events";
/// The NOTIFY channel cache invalidations travel on.
pub const INVALIDATIONS_CHANNEL: &str = "formaops_invalidations";
/// Postgres refuses NOTIFY payloads of 8000 bytes or more; we stay well below.
const MAX_NOTIFY_BYTES: usize = 7_000;
/// Longest error message relayed in an event; longer ones are cut (clients re-read state).
const MAX_RELAYED_MESSAGE: usize = 1_000;
/// How long callers wait for a connection before getting `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default pool size.
const DEFAULT_POOL_SIZE: u32 = 10;
/// Pause before a listener retries after its connection failed.
const LISTENER_RETRY: Duration = Duration::from_secs(1);
/// "(created_at, id) before the cursor `(#1, #2)`": a row comparison, which the planner turns
/// into one range on the listing indexes.
pub(crate) const KEYSET: &str = "(created_at, id) < (#1, #2)";

/// An event as relayed between processes.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    node: Uuid,
    event: ExecutionEvent,
}

/// The Postgres [`Store`](formaops_core::store::Store).
#[derive(Debug, Clone)]
pub struct PgStore {
    /// Fails at once while the database is known to be down (see `health`).
    pool: FailFastPool,
    /// Execution writes (enqueue, claim, finish, rescue, lease extensions): `pool` itself
    /// with strict durability; with relaxed, a second pool of the same size whose sessions
    /// run with `synchronous_commit = off`.
    executions: FailFastPool,
    /// When execution writes are answered.
    durability: Durability,
    /// Tags this store's relayed events so its own listener skips them.
    node: Uuid,
}

impl PgStore {
    /// Connects with a pool of the default size and strict durability, and applies
    /// migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, StoreOptions::default()).await
    }

    /// Connects with a pool of the default size and `options`, and applies migrations.
    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<Self> {
        Self::connect_sized(url, DEFAULT_POOL_SIZE, options).await
    }

    /// Connects with a pool of `size` connections and applies migrations.
    pub async fn connect_with_pool_size(url: &str, size: u32) -> Result<Self> {
        Self::connect_sized(url, size, StoreOptions::default()).await
    }

    async fn connect_sized(url: &str, size: u32, store_options: StoreOptions) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| Error::invalid_argument("database url", format!("not a Postgres URL: {e}")))?
            .application_name("formaops");
        let pool = PgPoolOptions::new()
            .max_connections(size.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .db("connect to postgres")?;
        Self::from_pool_with(pool, store_options).await
    }

    /// Uses an existing pool (its options are the caller's) with strict durability and
    /// applies migrations.
    pub async fn from_pool(pool: PgPool) -> Result<Self> {
        Self::from_pool_with(pool, StoreOptions::default()).await
    }

    /// Uses an existing pool with `options` and applies migrations. With relaxed durability,
    /// execution writes get a second pool with the same connect options and size, plus
    /// `synchronous_commit = off` (opened lazily).
    pub async fn from_pool_with(pool: PgPool, options: StoreOptions) -> Result<Self> {
        sqlx::migrate!("./migrations/postgres").run(&pool).await.map_err(|e| {
            tracing::error!(error = %e, "postgres migration failed");
            Error::internal(format!("applying Postgres migrations failed: {e}"))
        })?;
        rollups::pg::backfill(&pool, Utc::now()).await?;
        let executions = match options.durability {
            Durability::Strict => None,
            Durability::Relaxed => {
                let connect = (*pool.connect_options()).clone().options([("synchronous_commit", "off")]);
                Some(
                    PgPoolOptions::new()
                        .max_connections(pool.options().get_max_connections())
                        .acquire_timeout(pool.options().get_acquire_timeout())
                        .connect_lazy_with(connect),
                )
            }
        };
        let pool = FailFastPool::new(pool);
        let executions = executions.map_or_else(|| pool.clone(), FailFastPool::new);
        Ok(Self { pool, executions, durability: options.durability, node: Uuid::now_v7() })
    }

    /// When this store's execution writes are answered.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// The pool, for tools (benchmarks, data generators) that need raw access.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// This store's node id (tags relayed events).
    pub fn node_id(&self) -> Uuid {
        self.node
    }

    /// Closes the pools, waiting for connections to be returned.
    pub async fn close(&self) {
        self.executions.close().await;
        self.pool.close().await;
    }
}

fn json_text(v: &Option<Value>) -> Option<String> {
    v.as_ref().map(Value::to_string)
}

/// Column arrays of a batch of new executions, for `UNNEST`.
#[derive(Default)]
struct InsertArrays {
    id: Vec<Uuid>,
    user_id: Vec<Uuid>,
    prompt_id: Vec<Uuid>,
    prompt_version: Vec<i64>,
    inputs: Vec<String>,
    priority: Vec<&'static str>,
    status: Vec<&'static str>,
    validate_output: Vec<bool>,
    provider: Vec<String>,
    model: Vec<String>,
    output: Vec<Option<String>>,
    validated_output: Vec<Option<String>>,
    validation: Vec<Option<String>>,
    validation_passed: Vec<Option<bool>>,
    error: Vec<Option<String>>,
    latency_ms: Vec<Option<i64>>,
    provider_latency_ms: Vec<Option<i64>>,
    queue_ms: Vec<Option<i64>>,
    tokens_input: Vec<Option<i64>>,
    tokens_output: Vec<Option<i64>>,
    tokens_cached: Vec<Option<i64>>,
    tokens_reasoning: Vec<Option<i64>>,
    tokens_total: Vec<Option<i64>>,
    tokens_estimated: Vec<Option<bool>>,
    cost_usd: Vec<Option<Decimal>>,
    attempts: Vec<i64>,
    max_attempts: Vec<i64>,
    retry_of: Vec<Option<Uuid>>,
    idempotency_key: Vec<Option<String>>,
    created_at: Vec<DateTime<Utc>>,
    run_after: Vec<DateTime<Utc>>,
    deadline_at: Vec<DateTime<Utc>>,
    started_at: Vec<Option<DateTime<Utc>>>,
    finished_at: Vec<Option<DateTime<Utc>>>,
    queue_key: Vec<i64>,
    lease_owner: Vec<Option<String>>,
    lease_expires_at: Vec<Option<DateTime<Utc>>>,
    label: Vec<Option<String>>,
}

impl InsertArrays {
    fn push(&mut self, e: &Execution) -> Result<()> {
        let c = ExecutionColumns::of(e)?;
        let r = c.result;
        self.id.push(e.id.0);
        self.user_id.push(e.user_id.0);
        self.prompt_id.push(e.prompt_id.0);
        self.prompt_version.push(c.prompt_version);
        self.inputs.push(c.inputs.to_string());
        self.priority.push(c.priority);
        self.status.push(c.status);
        self.validate_output.push(e.validate_output);
        self.provider.push(e.provider.clone());
        self.model.push(e.model.clone());
        self.output.push(r.output);
        self.validated_output.push(json_text(&r.validated_output));
        self.validation.push(json_text(&r.validation));
        self.validation_passed.push(r.validation_passed);
        self.error.push(json_text(&r.error));
        self.latency_ms.push(r.latency_ms);
        self.provider_latency_ms.push(r.provider_latency_ms);
        self.queue_ms.push(r.queue_ms);
        self.tokens_input.push(r.tokens_input);
        self.tokens_output.push(r.tokens_output);
        self.tokens_cached.push(r.tokens_cached);
        self.tokens_reasoning.push(r.tokens_reasoning);
        self.tokens_total.push(r.tokens_total);
        self.tokens_estimated.push(r.tokens_estimated);
        self.cost_usd.push(r.cost_usd);
        self.attempts.push(c.attempts);
        self.max_attempts.push(c.max_attempts);
        self.retry_of.push(e.retry_of.map(|x| x.0));
        self.idempotency_key.push(e.idempotency_key.clone());
        self.created_at.push(e.created_at);
        self.run_after.push(e.run_after);
        self.deadline_at.push(e.deadline_at);
        self.started_at.push(e.started_at);
        self.finished_at.push(e.finished_at);
        self.queue_key.push(e.queue_key);
        self.lease_owner.push(e.lease_owner.clone());
        self.lease_expires_at.push(e.lease_expires_at);
        self.label.push(e.label.clone());
        Ok(())
    }
}

const INSERT_EXECUTIONS: &str = "INSERT INTO executions (id, user_id, prompt_id, prompt_version, inputs, \
    priority, status, validate_output, provider, model, output, validated_output, validation, \
    validation_passed, error, latency_ms, provider_latency_ms, queue_ms, tokens_input, tokens_output, \
    tokens_cached, tokens_reasoning, tokens_total, tokens_estimated, cost_usd, attempts, max_attempts, \
    retry_of, idempotency_key, created_at, run_after, deadline_at, started_at, finished_at, queue_key, \
    lease_owner, lease_expires_at, label) \
    SELECT id, user_id, prompt_id, prompt_version, inputs::jsonb, priority, status, validate_output, \
    provider, model, output, validated_output::jsonb, validation::jsonb, validation_passed, error::jsonb, \
    latency_ms, provider_latency_ms, queue_ms, tokens_input, tokens_output, tokens_cached, \
    tokens_reasoning, tokens_total, tokens_estimated, cost_usd, attempts, max_attempts, retry_of, \
    idempotency_key, created_at, run_after, deadline_at, started_at, finished_at, queue_key, lease_owner, \
    lease_expires_at, label \
    FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::int8[], $5::text[], $6::text[], $7::text[], \
    $8::bool[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bool[], $15::text[], \
    $16::int8[], $17::int8[], $18::int8[], $19::int8[], $20::int8[], $21::int8[], $22::int8[], $23::int8[], \
    $24::bool[], $25::numeric[], $26::int8[], $27::int8[], $28::uuid[], $29::text[], $30::timestamptz[], \
    $31::timestamptz[], $32::timestamptz[], $33::timestamptz[], $34::timestamptz[], $35::int8[], \
    $36::text[], $37::timestamptz[], $38::text[]) \
    AS t(id, user_id, prompt_id, prompt_version, inputs, priority, status, validate_output, provider, \
    model, output, validated_output, validation, validation_passed, error, latency_ms, \
    provider_latency_ms, queue_ms, tokens_input, tokens_output, tokens_cached, tokens_reasoning, \
    tokens_total, tokens_estimated, cost_usd, attempts, max_attempts, retry_of, idempotency_key, \
    created_at, run_after, deadline_at, started_at, finished_at, queue_key, lease_owner, \
    lease_expires_at, label) \
    ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING id";

pub(crate) const FINISH_EXECUTIONS: &str = "UPDATE executions e SET status = r.status, output = r.output, \
    validated_output = r.validated_output::jsonb, validation = r.validation::jsonb, \
    validation_passed = r.validation_passed, error = r.error::jsonb, latency_ms = r.latency_ms, \
    provider_latency_ms = r.provider_latency_ms, queue_ms = r.queue_ms, tokens_input = r.tokens_input, \
    tokens_output = r.tokens_output, tokens_cached = r.tokens_cached, \
    tokens_reasoning = r.tokens_reasoning, tokens_total = r.tokens_total, \
    tokens_estimated = r.tokens_estimated, cost_usd = r.cost_usd, \
    run_after = COALESCE(r.run_after, e.run_after), finished_at = r.finished_at, lease_owner = NULL, \
    lease_expires_at = NULL, finish_reason = r.finish_reason \
    FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
    $8::bool[], $9::text[], $10::int8[], $11::int8[], $12::int8[], $13::int8[], $14::int8[], $15::int8[], \
    $16::int8[], $17::int8[], $18::bool[], $19::numeric[], $20::timestamptz[], $21::timestamptz[], \
    $22::text[]) \
    AS r(id, user_id, worker, status, output, validated_output, validation, validation_passed, error, \
    latency_ms, provider_latency_ms, queue_ms, tokens_input, tokens_output, tokens_cached, \
    tokens_reasoning, tokens_total, tokens_estimated, cost_usd, run_after, finished_at, finish_reason) \
    WHERE e.id = r.id AND e.user_id IS NOT DISTINCT FROM r.user_id AND e.status = 'RUNNING' AND e.lease_owner = r.worker \
    RETURNING e.id, e.prompt_id, e.prompt_version, e.label, e.created_at";

/// Serialises an event for NOTIFY, dropping what does not fit: `delta` always (clients
/// re-read state), then a long error message is cut, then the error is dropped.
fn notify_payload(node: Uuid, event: &ExecutionEvent) -> Result<String> {
    let mut event = event.clone();
    event.delta = None;
    let encode = |event: &ExecutionEvent| {
        serde_json::to_string(&Envelope { node, event: event.clone() })
            .map_err(|e| Error::internal(format!("cannot encode event: {e}")))
    };
    let payload = encode(&event)?;
    if payload.len() < MAX_NOTIFY_BYTES {
        return Ok(payload);
    }
    if let Some(err) = event.error.as_mut() {
        let cut = err.message.char_indices().nth(MAX_RELAYED_MESSAGE).map(|(i, _)| i);
        if let Some(i) = cut {
            err.message.truncate(i);
        }
    }
    let payload = encode(&event)?;
    if payload.len() < MAX_NOTIFY_BYTES {
        return Ok(payload);
    }
    event.error = None;
    encode(&event)
}

fn decode_notification(payload: &str, own_node: Uuid) -> Option<ExecutionEvent> {
    match serde_json::from_str::<Envelope>(payload) {
        Ok(env) if env.node == own_node => None,
        Ok(env) => Some(env.event),
        Err(e) => {
            tracing::warn!(error = %e, "ignoring an undecodable event notification");
            None
        }
    }
}

/// Packs events into as few NOTIFY payloads as fit: each payload is a JSON array of
/// [`notify_payload`] envelopes, under [`MAX_NOTIFY_BYTES`]. One NOTIFY per ~20 events instead
/// of one per event (every NOTIFY costs the committing backend a queue insert under a
/// cluster-wide lock, and every listening process a wake-up and a decode).
fn notify_batches(node: Uuid, events: &[ExecutionEvent]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut current = String::with_capacity(MAX_NOTIFY_BYTES);
    for event in events {
        let one = notify_payload(node, event)?;
        // `[` + `,`-separated envelopes + `]`.
        if !current.is_empty() && current.len() + 1 + one.len() + 1 >= MAX_NOTIFY_BYTES {
            current.push(']');
            out.push(std::mem::replace(&mut current, String::with_capacity(MAX_NOTIFY_BYTES)));
        }
        current.push(if current.is_empty() { '[' } else { ',' });
        current.push_str(&one);
    }
    if !current.is_empty() {
        current.push(']');
        out.push(current);
    }
    Ok(out)
}

/// Decodes a notification holding one envelope or an array of them (see [`notify_batches`]);
/// skips this node's own events and anything undecodable.
fn decode_notifications(payload: &str, own_node: Uuid) -> Vec<ExecutionEvent> {
    if !payload.trim_start().starts_with('[') {
        return decode_notification(payload, own_node).into_iter().collect();
    }
    match serde_json::from_str::<Vec<Envelope>>(payload) {
        Ok(envs) => envs.into_iter().filter(|e| e.node != own_node).map(|e| e.event).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "ignoring an undecodable event notification");
            Vec::new()
        }
    }
}

// The methods whose SQL both backends share are written once, in `sql::impl_store!`.
impl_store! {
    PgStore, pg, reader: pool, writer: pool, executions: executions, claim: executions::CLAIM_PG, keyset: KEYSET;

    async fn enqueue(&self, executions: &[Execution]) -> Result<Vec<EnqueueOutcome>> {
        if executions.is_empty() {
            return Ok(Vec::new());
        }
        if executions.len() > MAX_BATCH {
            return Err(Error::invalid_argument("executions", format!("at most {MAX_BATCH} per batch")));
        }
        // One INSERT statement is atomic on its own: sent without BEGIN/COMMIT it is one round
        // trip and one commit. So the batch is checked for repeated ids first (nothing may be
        // written before an error), and the rows a key already named are read after the commit
        // (an ON CONFLICT DO NOTHING waits for a concurrent insert of the same key to end).
        let mut ids = HashSet::with_capacity(executions.len());
        if let Some(e) = executions.iter().find(|e| !ids.insert(e.id.0)) {
            return Err(Error::conflict(format!("execution {} appears twice in the batch", e.id)));
        }
        let mut a = InsertArrays::default();
        for e in executions {
            a.push(e)?;
        }
        let inserted: Vec<Uuid> = sqlx::query_scalar(INSERT_EXECUTIONS)
            .bind(a.id)
            .bind(a.user_id)
            .bind(a.prompt_id)
            .bind(a.prompt_version)
            .bind(a.inputs)
            .bind(a.priority)
            .bind(a.status)
            .bind(a.validate_output)
            .bind(a.provider)
            .bind(a.model)
            .bind(a.output)
            .bind(a.validated_output)
            .bind(a.validation)
            .bind(a.validation_passed)
            .bind(a.error)
            .bind(a.latency_ms)
            .bind(a.provider_latency_ms)
            .bind(a.queue_ms)
            .bind(a.tokens_input)
            .bind(a.tokens_output)
            .bind(a.tokens_cached)
            .bind(a.tokens_reasoning)
            .bind(a.tokens_total)
            .bind(a.tokens_estimated)
            .bind(a.cost_usd)
            .bind(a.attempts)
            .bind(a.max_attempts)
            .bind(a.retry_of)
            .bind(a.idempotency_key)
            .bind(a.created_at)
            .bind(a.run_after)
            .bind(a.deadline_at)
            .bind(a.started_at)
            .bind(a.finished_at)
            .bind(a.queue_key)
            .bind(a.lease_owner)
            .bind(a.lease_expires_at)
            .bind(a.label)
            .fetch_all(&self.executions)
            .await
            .db("enqueue")?;
        let inserted: HashSet<Uuid> = inserted.into_iter().collect();
        let mut outcomes = Vec::with_capacity(executions.len());
        for e in executions {
            if inserted.contains(&e.id.0) {
                outcomes.push(EnqueueOutcome::Created);
                continue;
            }
            // Not inserted: its key (or its id) was taken. Two executions of one batch with
            // one key: the first is inserted, the second finds it.
            let Some(key) = &e.idempotency_key else {
                return Err(Error::conflict(format!("execution {} already exists", e.id)));
            };
            let existing = executions::pg::by_idempotency_key(&self.executions, e.user_id, key).await?;
            outcomes.push(EnqueueOutcome::Existing(Box::new(existing)));
        }
        Ok(outcomes)
    }

    async fn extend_leases(&self, params: ExtendLeasesParams<'_>) -> Result<Vec<ExecutionId>> {
        let ExtendLeasesParams { worker, ids, lease_until } = params;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if ids.len() > MAX_BATCH {
            return Err(Error::invalid_argument("ids", format!("at most {MAX_BATCH} per call")));
        }
        let raw: Vec<Uuid> = ids.iter().map(|i| i.0).collect();
        let held: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE executions SET lease_expires_at = $1 \
             WHERE id = ANY($2) AND status = 'RUNNING' AND lease_owner = $3 RETURNING id",
        )
        .bind(lease_until)
        .bind(raw)
        .bind(worker)
        .fetch_all(&self.executions)
        .await
        .db("extend leases")?;
        let held: HashSet<Uuid> = held.into_iter().collect();
        Ok(ids.iter().copied().filter(|i| held.contains(&i.0)).collect())
    }

    async fn finish(&self, results: &[AttemptResult]) -> Result<Vec<bool>> {
        if results.is_empty() {
            return Ok(Vec::new());
        }
        if results.len() > MAX_BATCH {
            return Err(Error::invalid_argument("results", format!("at most {MAX_BATCH} per batch")));
        }
        let mut ids = HashSet::with_capacity(results.len());
        let distinct = results.iter().all(|r| ids.insert(r.id.0));
        let mut tx = self.executions.begin().await.db("begin")?;
        let mut finals = Vec::new();
        let flags = if distinct {
            // The common case: one statement for the whole batch.
            let applied = finish_rows(&mut tx, results).await?;
            let flags = results.iter().map(|r| applied.contains_key(&r.id.0)).collect();
            rollups::collect_finals(results, &applied, &mut finals)?;
            flags
        } else {
            // Several results for one execution: apply them in order, so each sees the state
            // the previous one left (a holder's result after an intruder's still applies).
            let mut flags = Vec::with_capacity(results.len());
            for r in results {
                let one = std::slice::from_ref(r);
                let applied = finish_rows(&mut tx, one).await?;
                flags.push(applied.contains_key(&r.id.0));
                rollups::collect_finals(one, &applied, &mut finals)?;
            }
            flags
        };
        rollups::pg::roll_up(&mut tx, &finals).await?;
        tx.commit().await.db("commit finish")?;
        Ok(flags)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.db("ping")?;
        Ok(())
    }

    async fn relay_events(&self, events: &[ExecutionEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        if events.len() > MAX_BATCH {
            return Err(Error::invalid_argument("events", format!("at most {MAX_BATCH} per call")));
        }
        let payloads = notify_batches(self.node, events)?;
        sqlx::query("SELECT pg_notify($1, p) FROM UNNEST($2::text[]) AS p")
            .bind(EVENTS_CHANNEL)
            .bind(payloads)
            .execute(&self.pool)
            .await
            .db("relay events")?;
        Ok(())
    }

    async fn remote_events(&self) -> Result<Option<BoxStream<'static, ExecutionEvent>>> {
        let mut listener = PgListener::connect_with(&self.pool).await.db("listen for events")?;
        listener.listen(EVENTS_CHANNEL).await.db("listen for events")?;
        let node = self.node;
        let state = (listener, VecDeque::<ExecutionEvent>::new());
        let stream = futures::stream::unfold(state, move |(mut listener, mut pending)| async move {
            loop {
                if let Some(event) = pending.pop_front() {
                    return Some((event, (listener, pending)));
                }
                // `try_recv`, not `recv`: `recv` reconnects silently, hiding the gap.
                match listener.try_recv().await {
                    Ok(Some(n)) => pending.extend(decode_notifications(n.payload(), node)),
                    Ok(None) => {
                        // The next call reconnects and re-listens. Events other processes
                        // relayed in between are lost: whoever waits on one of them re-reads
                        // the store on its own schedule, and workers poll for queued work.
                        tracing::warn!(
                            "event listener lost its connection; reconnecting (events relayed \
                             by other processes until it is back are lost)"
                        );
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "event listener cannot reconnect; retrying");
                        tokio::time::sleep(LISTENER_RETRY).await;
                    }
                }
            }
        });
        Ok(Some(Box::pin(stream)))
    }

    async fn publish_invalidation(&self, invalidation: &Invalidation) -> Result<()> {
        let payload = serde_json::to_string(invalidation)
            .map_err(|e| Error::internal(format!("encoding an invalidation failed: {e}")))?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(INVALIDATIONS_CHANNEL)
            .bind(payload)
            .execute(&self.pool)
            .await
            .db("publish invalidation")?;
        Ok(())
    }

    async fn remote_invalidations(&self) -> Result<Option<BoxStream<'static, Invalidation>>> {
        let mut listener = PgListener::connect_with(&self.pool).await.db("listen for invalidations")?;
        listener.listen(INVALIDATIONS_CHANNEL).await.db("listen for invalidations")?;
        // (listener, whether messages may have been lost since the last one delivered)
        let stream = futures::stream::unfold((listener, false), |(mut listener, gap)| async move {
            loop {
                // `try_recv`, not `recv`: `recv` reconnects silently, hiding the gap.
                match listener.try_recv().await {
                    Ok(None) => {
                        // The connection was lost; the next call reconnects and re-listens.
                        tracing::warn!("invalidation listener lost its connection; reconnecting");
                        return Some((Invalidation::All, (listener, true)));
                    }
                    Ok(Some(n)) => match serde_json::from_str::<Invalidation>(n.payload()) {
                        // The first message after a gap is replaced by `All`, which covers
                        // any invalidation (and a heartbeat comes again shortly).
                        Ok(_) if gap => return Some((Invalidation::All, (listener, false))),
                        Ok(inv) => return Some((inv, (listener, false))),
                        Err(e) => tracing::warn!(error = %e, "ignoring an undecodable invalidation"),
                    },
                    Err(e) => {
                        // Reconnecting failed; the next call tries again: `All` now, and
                        // again when the first message after the gap arrives.
                        tracing::warn!(error = %e, "invalidation listener cannot reconnect; retrying");
                        tokio::time::sleep(LISTENER_RETRY).await;
                        return Some((Invalidation::All, (listener, true)));
                    }
                }
            }
        });
        Ok(Some(Box::pin(stream)))
    }
}

/// Applies finished attempts with distinct ids in one statement; returns the applied rows by id.
async fn finish_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    results: &[AttemptResult],
) -> Result<HashMap<Uuid, rollups::AppliedRow>> {
    let n = results.len();
    let (mut id, mut user, mut worker, mut status) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut output, mut validated, mut validation, mut passed, mut error) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut lat, mut plat, mut qms) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut tin, mut tout, mut tcached, mut treason, mut ttotal, mut test) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut cost, mut run_after, mut finished_at) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let mut finish_reason = Vec::with_capacity(n);
    for r in results {
        let c = FinishColumns::of(r)?;
        let x = c.result;
        id.push(r.id.0);
        user.push(r.user_id.0);
        worker.push(r.worker.clone());
        status.push(c.status);
        output.push(x.output);
        validated.push(json_text(&x.validated_output));
        validation.push(json_text(&x.validation));
        passed.push(x.validation_passed);
        error.push(json_text(&x.error));
        lat.push(x.latency_ms);
        plat.push(x.provider_latency_ms);
        qms.push(x.queue_ms);
        tin.push(x.tokens_input);
        tout.push(x.tokens_output);
        tcached.push(x.tokens_cached);
        treason.push(x.tokens_reasoning);
        ttotal.push(x.tokens_total);
        test.push(x.tokens_estimated);
        cost.push(x.cost_usd);
        run_after.push(c.run_after);
        finished_at.push(c.finished_at);
        finish_reason.push(c.finish_reason);
    }
    let applied: Vec<rollups::AppliedRow> = sqlx::query_as(FINISH_EXECUTIONS)
        .bind(id)
        .bind(user)
        .bind(worker)
        .bind(status)
        .bind(output)
        .bind(validated)
        .bind(validation)
        .bind(passed)
        .bind(error)
        .bind(lat)
        .bind(plat)
        .bind(qms)
        .bind(tin)
        .bind(tout)
        .bind(tcached)
        .bind(treason)
        .bind(ttotal)
        .bind(test)
        .bind(cost)
        .bind(run_after)
        .bind(finished_at)
        .bind(finish_reason)
        .fetch_all(&mut **tx)
        .await
        .db("finish")?;
    Ok(applied.into_iter().map(|a| (a.id, a)).collect())
}

/// The statements on an execution's path (submit, claim, finish, read back, cancel, rescue),
/// the per-request lookups (credentials, prompts, versions, labels) and the first page of each
/// execution listing, by name: `(name, Postgres text)`.
///
/// For `tests/plans.rs`, which prepares each one on empty, never-analysed tables — the plan a
/// young database caches for the life of a connection — and checks that it still reads a
/// handful of pages when the executions table holds a million rows of one user.
#[doc(hidden)]
pub fn hot_statements() -> Vec<(&'static str, String)> {
    use formaops_core::execution::ExecutionStatus;
    use formaops_core::page::PageRequest;
    use formaops_core::store::ExecutionFilter;

    let list = |filter: ExecutionFilter, after: bool| {
        let after = after
            .then(|| formaops_core::page::Cursor { created_at: chrono::Utc::now(), id: uuid::Uuid::nil() });
        let page = PageRequest { limit: 50, after };
        crate::sql::executions::list_sql(&filter, &page, KEYSET)
    };
    let by_status = ExecutionFilter { status: Some(ExecutionStatus::Failed), ..ExecutionFilter::default() };
    let by_prompt = ExecutionFilter {
        prompt_id: Some(formaops_core::ids::PromptId(uuid::Uuid::nil())),
        ..ExecutionFilter::default()
    };
    vec![
        ("get_execution", crate::sql::executions::GET_EXECUTION.into()),
        ("by_idempotency_key", crate::sql::executions::BY_IDEMPOTENCY_KEY.into()),
        ("cancel", crate::sql::executions::CANCEL.into()),
        ("status_of", crate::sql::executions::STATUS_OF.into()),
        ("queue_depth_of", crate::sql::executions::QUEUE_DEPTH_OF.into()),
        ("claim", crate::sql::executions::CLAIM_PG.into()),
        ("expired_leases", crate::sql::executions::EXPIRED_LEASES.into()),
        ("rescue", crate::sql::executions::RESCUE.into()),
        ("finish", FINISH_EXECUTIONS.into()),
        ("list", list(ExecutionFilter::default(), false)),
        ("list_next_page", list(ExecutionFilter::default(), true)),
        ("list_by_status", list(by_status, false)),
        ("list_by_prompt", list(by_prompt, false)),
        ("authenticate", crate::sql::users::AUTHENTICATE.into()),
        ("user_by_id", crate::sql::users::USER_BY_ID.into()),
        ("get_prompt", crate::sql::prompts::GET_PROMPT.into()),
        ("prompt_status", crate::sql::prompts::PROMPT_STATUS.into()),
        ("get_version", crate::sql::prompts::GET_VERSION.into()),
        ("next_version", crate::sql::prompts::NEXT_VERSION.into()),
        ("set_prompt_status", crate::sql::prompts::SET_STATUS.into()),
        ("prompt_version_of", crate::sql::labels::PROMPT_VERSION_OF.into()),
        ("get_label", crate::sql::labels::GET_LABEL.into()),
        ("list_labels", crate::sql::labels::LIST_LABELS.into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use formaops_core::events::EventKind;
    use formaops_core::execution::{ExecutionError, ExecutionStatus};
    use formaops_core::ids::UserId;

    fn event(message_len: usize) -> ExecutionEvent {
        ExecutionEvent {
            execution_id: ExecutionId::new(),
            user_id: UserId::new(),
            kind: EventKind::Failed,
            status: ExecutionStatus::Failed,
            attempt: 1,
            at: Utc::now(),
            error: Some(ExecutionError {
                code: formaops_core::execution::ExecutionErrorCode::ServerError,
                message: "é".repeat(message_len),
                transient: false,
                details: None,
            }),
            run_after: None,
            delta: Some("d".repeat(20_000)),
        }
    }

    #[test]
    fn payloads_fit_notify_and_skip_own_node() {
        let node = Uuid::now_v7();
        for len in [0, 10, 5_000, 100_000] {
            let p = notify_payload(node, &event(len)).unwrap();
            assert!(p.len() < MAX_NOTIFY_BYTES, "payload of {} bytes", p.len());
            assert!(decode_notification(&p, node).is_none());
            let back = decode_notification(&p, Uuid::now_v7()).unwrap();
            assert_eq!(back.delta, None);
            assert_eq!(back.kind, EventKind::Failed);
        }
        assert!(decode_notification("not json", node).is_none());
    }

    #[test]
    fn batched_payloads_fit_notify_and_keep_every_event_in_order() {
        let node = Uuid::now_v7();
        let events: Vec<ExecutionEvent> =
            (0..200).map(|i| event(if i % 7 == 0 { 100_000 } else { i })).collect();
        let payloads = notify_batches(node, &events).unwrap();
        assert!(payloads.len() > 1 && payloads.len() < events.len(), "{} payloads", payloads.len());
        let mut back = Vec::new();
        for p in &payloads {
            assert!(p.len() < MAX_NOTIFY_BYTES, "payload of {} bytes", p.len());
            assert!(decode_notifications(p, node).is_empty(), "own events must be skipped");
            back.extend(decode_notifications(p, Uuid::now_v7()));
        }
        let ids: Vec<_> = back.iter().map(|e| e.execution_id).collect();
        assert_eq!(ids, events.iter().map(|e| e.execution_id).collect::<Vec<_>>());
        // A single-envelope payload (an older process) still decodes.
        let single = notify_payload(node, &events[1]).unwrap();
        assert_eq!(decode_notifications(&single, Uuid::now_v7()).len(), 1);
        assert!(decode_notifications("[not json", node).is_empty());
        assert!(notify_batches(node, &[]).unwrap().is_empty());
    }
}
