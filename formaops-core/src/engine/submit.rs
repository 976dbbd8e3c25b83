//! The execution API: submit, execute, wait, retry and cancel, with the idempotency rule
//! (a repeated key returns the first execution, or `IdempotencyKeyReused`).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::chat_input::CHAT_INPUT;
use super::config::{WAIT_RECHECK, check_idempotency_key};
use super::fastpath::{self, Ran};
use super::state::{Inner, ProviderSlot};
use crate::error::{Error, Result};
use crate::events::EventKind;
use crate::execution::{Execution, ExecutionStatus, Priority};
use crate::ids::{ExecutionId, PromptId, UserId};
use crate::prompt::PromptStatus;
use crate::store::EnqueueOutcome;

/// A request to execute a prompt (the spec's `ExecutePromptRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteRequest {
    /// The caller's prompt to run; it must be ACTIVE.
    pub prompt_id: PromptId,
    /// Pin a version; the current one when `None`.
    #[serde(default)]
    pub version: Option<u32>,
    /// Run the version this label points at (`production`, `latest`, ...), resolved once at
    /// submission; the execution records both the version and the label. Exclusive with
    /// `version`.
    #[serde(default)]
    pub label: Option<String>,
    /// Variable values by name, validated against the version's variables (defaults filled
    /// in for what is omitted).
    #[serde(default)]
    pub inputs: Map<String, Value>,
    /// Claim order class; NORMAL when omitted.
    #[serde(default)]
    pub priority: Priority,
    /// Check the version's validation rules on the output (and send a JSON Schema rule as
    /// structured output); false when omitted.
    #[serde(default)]
    pub validate_output: bool,
    /// Repeating a request with the same key returns the first execution; the same key with
    /// a different request is refused. 1 to [`MAX_IDEMPOTENCY_KEY_BYTES`](super::MAX_IDEMPOTENCY_KEY_BYTES)
    /// visible ASCII characters.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

pub(super) async fn submit(inner: &Inner, user: UserId, request: ExecuteRequest) -> Result<Execution> {
    submit_inner(inner, user, request, None, false).await.map(|(e, _)| e)
}

/// `submit` of a chat call: `chat` (the encoded `ChatExtras`) joins the validated inputs.
pub(super) async fn submit_chat(
    inner: &Inner,
    user: UserId,
    request: ExecuteRequest,
    chat: Option<serde_json::Value>,
) -> Result<Execution> {
    submit_inner(inner, user, request, chat, false).await.map(|(e, _)| e)
}

/// `submit`; with `wake` set, also a receiver woken by the new execution's final event,
/// registered before the execution is enqueued (so no event can be missed and `execute`
/// needs no read before waiting). `None` when the request returned an existing execution.
async fn submit_inner(
    inner: &Inner,
    user: UserId,
    request: ExecuteRequest,
    chat: Option<serde_json::Value>,
    wake: bool,
) -> Result<(Execution, Option<oneshot::Receiver<()>>)> {
    let (exec, _) = prepare(inner, user, &request, chat).await?;
    queue(inner, &request, exec, wake).await
}

/// Checks `request` and builds its new QUEUED execution (inputs validated, version and label
/// resolved), with the provider slot it will run on. Writes nothing.
async fn prepare(
    inner: &Inner,
    user: UserId,
    request: &ExecuteRequest,
    chat: Option<serde_json::Value>,
) -> Result<(Execution, Arc<ProviderSlot>)> {
    if inner.shutting_down() {
        return Err(Error::ShuttingDown);
    }
    if let Some(key) = &request.idempotency_key {
        check_idempotency_key(key)?;
    }
    if request.idempotency_key.as_deref().is_some_and(|k| !crate::text::is_storable(k)) {
        return Err(Error::invalid_argument("idempotencyKey", crate::text::MESSAGE));
    }
    let id = request.prompt_id;
    // Owner, status and current version from the per-node cache (see `freshness`).
    let mut prompt = inner.prompt_pointer(user, id).await?;
    if request.version.is_some_and(|v| v > prompt.current_version) {
        // Maybe a version made a moment ago on another node: the cached pointer may lag.
        prompt = inner.read_prompt_pointer(user, id).await?;
    }
    if prompt.status != PromptStatus::Active {
        return Err(Error::conflict(format!("prompt {id} is archived and cannot be executed")));
    }
    let pinned = match (request.version, request.label.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid_argument(
                "version, label",
                "give either `version` or `label`, not both",
            ));
        }
        (None, Some(label)) => super::labels::resolve_label(inner, user, id, label).await?,
        (version, None) => version.unwrap_or(prompt.current_version),
    };
    if pinned == 0 || pinned > prompt.current_version {
        return Err(Error::not_found("prompt version", format!("{id} v{pinned}")));
    }
    // The owner was checked above, so the compiled version may come from the shared cache.
    let compiled = inner.compiled(user, id, pinned).await?;
    let mut inputs = compiled.prompt.validate_inputs(&request.inputs, &inner.config.input_limits)?;
    if let Some(chat) = chat {
        inputs.insert(CHAT_INPUT.to_string(), chat);
    }
    let slot = inner.provider_for(&compiled.version.model)?.clone();
    let mut exec = inner.new_execution(
        user,
        &compiled.version,
        &slot.name,
        inputs,
        request.priority,
        request.validate_output,
        request.idempotency_key.clone(),
        None,
    );
    exec.label = request.label.clone();
    Ok((exec, slot))
}

/// Enqueues the prepared `exec` (see `submit_inner` for `wake`).
async fn queue(
    inner: &Inner,
    request: &ExecuteRequest,
    exec: Execution,
    wake: bool,
) -> Result<(Execution, Option<oneshot::Receiver<()>>)> {
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
            Ok((same_request(request, &returned.inputs, *first)?, None))
        }
    }
}

/// The idempotency rule: `first` (the execution the key already named) when `request` (whose
/// validated inputs are `inputs`) asks for the same thing, else `IdempotencyKeyReused`.
fn same_request(
    request: &ExecuteRequest,
    inputs: &Map<String, Value>,
    first: Execution,
) -> Result<Execution> {
    let same = first.prompt_id == request.prompt_id
        && request.version.is_none_or(|v| v == first.prompt_version)
        && first.inputs == *inputs
        && first.priority == request.priority
        && first.validate_output == request.validate_output;
    if same {
        Ok(first)
    } else {
        Err(Error::IdempotencyKeyReused { key: request.idempotency_key.clone().unwrap_or_default() })
    }
}

/// Executes and waits until the execution is final, or until `timeout` passes (then its
/// current state). Runs on the fast path when this process may (see `fastpath`), else
/// through the queue.
pub(super) async fn execute(
    inner: &Arc<Inner>,
    user: UserId,
    request: ExecuteRequest,
    chat: Option<serde_json::Value>,
    timeout: Option<Duration>,
) -> Result<Execution> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let remaining = || deadline.map(|d| d.saturating_duration_since(Instant::now()));
    let (exec, slot) = prepare(inner, user, &request, chat).await?;
    if let Some(permit) = fastpath::admit(&slot) {
        let id = exec.id;
        let inputs = request.idempotency_key.is_some().then(|| exec.inputs.clone());
        let run = fastpath::run(inner, &slot, permit, exec);
        let ran = match deadline {
            None => run.await?,
            Some(d) => match tokio::time::timeout_at(d, run).await {
                Ok(ran) => ran?,
                // The attempt goes on in its own task; answer its current state.
                Err(_) => return wait(inner, user, id, Some(Duration::ZERO)).await,
            },
        };
        return match ran {
            Ran::Done(done) => Ok(done),
            Ran::Pending(e) => wait(inner, user, e.id, remaining()).await,
            Ran::Existing(first) => {
                let first = same_request(&request, &inputs.unwrap_or_default(), *first)?;
                if first.status.is_final() {
                    Ok(first)
                } else {
                    wait(inner, user, first.id, remaining()).await
                }
            }
        };
    }
    let (submitted, woken) = queue(inner, &request, exec, true).await?;
    if submitted.status.is_final() {
        return Ok(submitted);
    }
    if let Some(woken) = woken {
        // Registered before the enqueue: the execution cannot have finished unseen, so the
        // first read happens once it is final (or after the usual recheck interval).
        let recheck = Instant::now() + WAIT_RECHECK;
        let _ = tokio::time::timeout_at(deadline.map_or(recheck, |d| d.min(recheck)), woken).await;
        inner.events.forget_waiters(submitted.id);
    }
    wait(inner, user, submitted.id, remaining()).await
}

pub(super) async fn wait(
    inner: &Inner,
    user: UserId,
    id: ExecutionId,
    timeout: Option<Duration>,
) -> Result<Execution> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let woken = inner.events.waiter(id);
        let current = match inner.store.get_execution(user, id).await {
            Ok(e) => e,
            Err(e) => {
                drop(woken);
                inner.events.forget_waiters(id);
                return Err(e);
            }
        };
        if current.status.is_final() || deadline.is_some_and(|d| Instant::now() >= d) {
            drop(woken);
            inner.events.forget_waiters(id);
            return Ok(current);
        }
        let recheck = Instant::now() + WAIT_RECHECK;
        let until = deadline.map_or(recheck, |d| d.min(recheck));
        let _ = tokio::time::timeout_at(until, woken).await;
        inner.events.forget_waiters(id);
    }
}

pub(super) async fn retry(inner: &Inner, user: UserId, id: ExecutionId) -> Result<Execution> {
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
    let prompt = inner.prompt_pointer(user, original.prompt_id).await?;
    if prompt.status != PromptStatus::Active {
        return Err(Error::conflict(format!(
            "prompt {} is archived and cannot be executed",
            original.prompt_id
        )));
    }
    let compiled = inner.compiled(user, original.prompt_id, original.prompt_version).await?;
    let slot = inner.provider_for(&compiled.version.model)?;
    let mut exec = inner.new_execution(
        user,
        &compiled.version,
        &slot.name,
        original.inputs,
        original.priority,
        original.validate_output,
        None,
        Some(id),
    );
    exec.label = original.label;
    let returned = exec.clone();
    inner.enqueue(exec).await?;
    Ok(returned)
}

pub(super) async fn cancel(inner: &Inner, user: UserId, id: ExecutionId) -> Result<Execution> {
    let e = inner.store.cancel(user, id, inner.clock.now()).await?;
    inner.publish_state(&e, EventKind::Cancelled);
    Ok(e)
}
