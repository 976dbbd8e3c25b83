//! Workers: one claim loop per provider, bounded by a semaphore (the provider's concurrency),
//! and a lease heartbeat for the executions this process holds (expired leases: `rescue`).
//!
//! A claim loop takes one permit (waiting while the provider is saturated), claims as many
//! executions as there are free permits in one store call and runs each in its own task with a
//! permit of its own, returned when its result is committed. It holds only the first permit
//! while the claim runs, so the fast path (`fastpath`) is not shut out by a claim in flight; a
//! claimed execution whose permit was taken meanwhile waits for the next free one. When the queue is empty the loop
//! sleeps until a submit wakes it, a retry timer fires, or [`POLL_INTERVAL`] passes (the last
//! picks up work enqueued by other processes).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;

use super::clock::chrono_dur;
use super::retry;
use super::state::{Inner, ProviderSlot};
use super::telemetry;
use crate::events::{EventKind, ExecutionEvent};
use crate::execution::{
    AttemptOutcome, AttemptResult, Execution, ExecutionError, ExecutionErrorCode, ExecutionMetrics,
    TokenUsage,
};
use crate::provider::{CompletionRequest, ProviderError, ResponseSchema};
use crate::store::{ClaimParams, ExtendLeasesParams};

/// How often an idle claim loop looks at the store without being woken.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Most executions one claim takes.
pub const MAX_CLAIM_BATCH: usize = 256;
/// Pause after a failed store call in a background loop.
const STORE_ERROR_PAUSE: Duration = Duration::from_millis(500);

fn millis_between(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    u64::try_from((to - from).num_milliseconds()).unwrap_or(0)
}

/// Waits until `stop` says true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

pub(crate) async fn claim_loop(inner: Arc<Inner>, slot: Arc<ProviderSlot>, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            break;
        }
        let mut first = Some(tokio::select! {
            p = slot.permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stopped(&mut stop) => break,
        });
        // Claim as many as there are free slots, but hold only the first while the claim runs:
        // the others stay free for synchronous executes on the fast path meanwhile.
        let wanted = (1 + slot.permits.available_permits()).min(MAX_CLAIM_BATCH);
        let notified = slot.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let now = inner.clock.now();
        let lease_until = now + chrono_dur(inner.config.lease);
        let seen = slot.backlog.claim_started();
        let claimed = match inner
            .store
            .claim(ClaimParams {
                worker: &inner.config.worker_id,
                provider: &slot.name,
                limit: wanted as u32,
                now,
                lease_until,
            })
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(provider = %slot.name, error = %e, "claim failed");
                drop(first);
                tokio::select! {
                    _ = tokio::time::sleep(STORE_ERROR_PAUSE) => continue,
                    _ = stopped(&mut stop) => break,
                }
            }
        };
        let full = claimed.len() == wanted;
        slot.backlog.claim_ended(seen, full);
        if let Ok(mut held) = inner.held.lock() {
            held.extend(claimed.iter().map(|e| e.id));
        }
        for exec in claimed {
            let permit = first.take().or_else(|| slot.permits.clone().try_acquire_owned().ok());
            let (inner2, slot2) = (inner.clone(), slot.clone());
            let id = exec.id;
            let handle = tokio::spawn(async move {
                // A slot taken by the fast path during the claim: wait for the next free one
                // (the lease is held and renewed meanwhile).
                let permit = match permit {
                    Some(p) => p,
                    None => match slot2.permits.clone().acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => return,
                    },
                };
                run_attempt(inner2, slot2, exec, permit).await;
            });
            if let Ok(mut tasks) = inner.tasks.lock() {
                tasks.insert(id, handle.abort_handle());
            }
        }
        drop(first);
        if !full {
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = stopped(&mut stop) => break,
            }
        }
    }
}

async fn run_attempt(
    inner: Arc<Inner>,
    slot: Arc<ProviderSlot>,
    exec: Execution,
    permit: OwnedSemaphorePermit,
) {
    publish_running(&inner, &exec);
    let attempt = attempt_outcome(&inner, &slot, &exec).await;
    record_attempt(&inner, &slot, &exec, attempt, permit).await;
    if let Ok(mut tasks) = inner.tasks.lock() {
        tasks.remove(&exec.id);
    }
}

/// Announces that an attempt of `exec` started.
pub(super) fn publish_running(inner: &Inner, exec: &Execution) {
    inner.events.publish(ExecutionEvent::new(
        exec.id,
        exec.user_id,
        EventKind::Running,
        exec.attempts,
        inner.clock.now(),
    ));
}

/// Records an attempt of `exec` (held under this process's lease) through the finish group
/// commit, releases its lease and provider permit, and publishes its end event. Returns the
/// result when the store applied it; `None` when the lease was lost or the write failed (the
/// lease then expires and the rescuer decides).
pub(super) async fn record_attempt(
    inner: &Inner,
    slot: &Arc<ProviderSlot>,
    exec: &Execution,
    (outcome, provider_time, finish_reason): (AttemptOutcome, Duration, Option<String>),
    permit: OwnedSemaphorePermit,
) -> Option<AttemptResult> {
    // What every store can record: an unstorable output fails here, not in the finish batch.
    let outcome = crate::text::storable_outcome(outcome);
    let finished_at = inner.clock.now();
    telemetry::record_attempt(exec, &outcome, provider_time, finished_at);
    let (kind, error, run_after) = match &outcome {
        AttemptOutcome::Completed { .. } => (EventKind::Completed, None, None),
        AttemptOutcome::Failed { error, .. } => (EventKind::Failed, Some(error.clone()), None),
        AttemptOutcome::Retry { error, run_after } => {
            (EventKind::RetryScheduled, Some(error.clone()), Some(*run_after))
        }
    };
    let result = AttemptResult {
        id: exec.id,
        user_id: exec.user_id,
        worker: inner.config.worker_id.clone(),
        outcome,
        finished_at,
        finish_reason,
    };
    let applied = inner.finisher.call(result.clone()).await;
    if let Ok(mut held) = inner.held.lock() {
        held.remove(&exec.id);
    }
    drop(permit);
    match applied {
        Ok(true) => {
            inner.events.publish(
                ExecutionEvent::new(exec.id, exec.user_id, kind, exec.attempts, finished_at)
                    .with_error(error)
                    .with_run_after(run_after),
            );
            if let Some(at) = run_after {
                let deadline = inner.clock.instant_at(at);
                let slot = slot.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until(deadline).await;
                    slot.backlog.note_queued();
                    slot.wake.notify_one();
                });
            }
            Some(result)
        }
        Ok(false) => {
            tracing::warn!(execution = %exec.id, "attempt result refused: the lease was lost");
            None
        }
        Err(e) => {
            tracing::warn!(execution = %exec.id, error = %e, "recording an attempt failed; the lease will expire and be rescued");
            None
        }
    }
}

/// The error of a provider call still running at its deadline.
fn exec_error(code: ExecutionErrorCode, message: impl Into<String>, transient: bool) -> ExecutionError {
    ExecutionError { code, message: message.into(), transient, details: None }
}

/// The attempt error for a transient store failure (loading the prompt version): reported as
/// `store_unavailable`, retried with the engine's backoff.
fn store_outage(e: &crate::Error) -> ExecutionError {
    exec_error(ExecutionErrorCode::StoreUnavailable, e.to_string(), true)
}

fn provider_exec_error(e: &ProviderError) -> ExecutionError {
    ExecutionError {
        details: e.details.clone(),
        ..exec_error(e.kind.into(), e.message.clone(), e.is_transient())
    }
}

/// Runs one attempt up to (not including) recording it; also returns the precise provider
/// call time (zero when no call was made) and the reply's finish reason (when one was read).
pub(super) async fn attempt_outcome(
    inner: &Inner,
    slot: &ProviderSlot,
    exec: &Execution,
) -> (AttemptOutcome, Duration, Option<String>) {
    let mut provider_time = Duration::ZERO;
    let mut finish_reason = None;
    let outcome = attempt_outcome_inner(inner, slot, exec, &mut provider_time, &mut finish_reason).await;
    (outcome, provider_time, finish_reason)
}

async fn attempt_outcome_inner(
    inner: &Inner,
    slot: &ProviderSlot,
    exec: &Execution,
    provider_time: &mut Duration,
    finish_reason: &mut Option<String>,
) -> AttemptOutcome {
    let now = inner.clock.now();
    let metrics_at = |finished: DateTime<Utc>, provider: Duration, usage: TokenUsage| ExecutionMetrics {
        latency_ms: millis_between(exec.created_at, finished),
        provider_latency_ms: u64::try_from(provider.as_millis()).unwrap_or(u64::MAX),
        queue_ms: millis_between(exec.created_at, exec.started_at.unwrap_or(now)),
        token_usage: usage,
        cost_usd: inner.config.prices.cost(&exec.model, &usage, finished),
    };
    let failed = |error: ExecutionError, provider: Duration| AttemptOutcome::Failed {
        error,
        metrics: Some(metrics_at(inner.clock.now(), provider, TokenUsage::default())),
    };
    if now >= exec.deadline_at {
        return failed(
            exec_error(
                ExecutionErrorCode::DeadlineExceeded,
                "the execution deadline passed before this attempt",
                false,
            ),
            Duration::ZERO,
        );
    }
    let compiled = match inner.compiled(exec.user_id, exec.prompt_id, exec.prompt_version).await {
        Ok(c) => c,
        Err(e) if e.is_transient() => {
            return retry_or_fail(inner, exec, store_outage(&e), None, now, Duration::ZERO, &metrics_at);
        }
        Err(e) => {
            return failed(
                exec_error(ExecutionErrorCode::PromptUnavailable, e.to_string(), false),
                Duration::ZERO,
            );
        }
    };
    // A chat call's messages and parameters ride in the inputs (see `engine::chat`).
    let (inputs, chat) = super::chat_input::ChatExtras::split(&exec.inputs);
    let mut messages = match &chat {
        Some(c) if c.replace => Vec::new(),
        _ => match compiled.prompt.render(&inputs) {
            Ok(m) => m,
            Err(e) => {
                return failed(exec_error(ExecutionErrorCode::Render, e.to_string(), false), Duration::ZERO);
            }
        },
    };
    let mut parameters = compiled.version.model.parameters.clone();
    let mut chat_schema = None;
    if let Some(c) = chat {
        messages.extend(c.messages);
        parameters = c.parameters.apply(&parameters);
        chat_schema = c.response_schema;
    }
    let deadline_utc = (now + chrono_dur(inner.config.attempt_timeout)).min(exec.deadline_at);
    let deadline = inner.clock.instant_at(deadline_utc);
    let response_schema = match compiled.rules.structured_output() {
        Some((schema, strict)) if exec.validate_output => {
            Some(ResponseSchema { name: "output".to_string(), schema: schema.clone(), strict })
        }
        _ => None,
    };
    let response_schema = response_schema.or(chat_schema);
    let request =
        CompletionRequest { model: exec.model.clone(), messages, parameters, response_schema, deadline };
    let call_start = Instant::now();
    let result = if slot.provider.streams() {
        super::partial::streamed_call(inner, slot.provider.as_ref(), exec, request, deadline).await
    } else {
        match tokio::time::timeout_at(deadline, slot.provider.complete(request)).await {
            Ok(r) => r,
            Err(_) => Err(ProviderError::deadline()),
        }
    };
    let call_time = call_start.elapsed();
    *provider_time = call_time;
    match result {
        Ok(completion) => {
            let finished = inner.clock.now();
            let mut metrics = metrics_at(finished, completion.latency, completion.usage);
            if metrics.cost_usd.is_none()
                && let Some(reported) = &completion.model
            {
                metrics.cost_usd = inner.config.prices.cost(reported, &completion.usage, finished);
            }
            let (validation, validated_output) = if exec.validate_output {
                let (mut verdict, parsed) = compiled.rules.check(&completion.text);
                if completion.truncated() {
                    verdict.note_truncated();
                }
                (Some(verdict), parsed)
            } else {
                (None, None)
            };
            finish_reason.clone_from(&completion.finish_reason);
            AttemptOutcome::Completed { output: completion.text, validated_output, validation, metrics }
        }
        Err(e) => {
            finish_reason.clone_from(&e.finish_reason);
            let err = provider_exec_error(&e);
            retry_or_fail(inner, exec, err, e.retry_after, inner.clock.now(), call_time, &metrics_at)
        }
    }
}

/// Retries a failed attempt with backoff, or fails the execution; `retry_after` is a
/// provider's Retry-After. Whether to retry at all follows `error.transient`, whatever failed
/// (a store outage stays a store outage, never posing as a provider error).
fn retry_or_fail(
    inner: &Inner,
    exec: &Execution,
    error: ExecutionError,
    retry_after: Option<Duration>,
    now: DateTime<Utc>,
    call_time: Duration,
    metrics_at: &dyn Fn(DateTime<Utc>, Duration, TokenUsage) -> ExecutionMetrics,
) -> AttemptOutcome {
    let unit: f64 = rand::random();
    match retry::decide_failure(
        &inner.config.backoff,
        retry::Failure { transient: error.transient, retry_after },
        exec.attempts,
        exec.max_attempts,
        now,
        exec.deadline_at,
        unit,
    ) {
        Ok(run_after) => AttemptOutcome::Retry { error, run_after },
        Err(why) => {
            let mut error = error;
            error.message = why.explain(&error.message, exec.attempts);
            AttemptOutcome::Failed { error, metrics: Some(metrics_at(now, call_time, TokenUsage::default())) }
        }
    }
}

/// Extends the leases of executions this process runs, every third of the lease.
pub(crate) async fn heartbeat_loop(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let every = (inner.config.lease / 3).max(Duration::from_millis(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped(&mut stop) => break,
        }
        let ids: Vec<_> = match inner.held.lock() {
            Ok(h) => h.iter().copied().collect(),
            Err(_) => continue,
        };
        if ids.is_empty() {
            continue;
        }
        let until = inner.clock.now() + chrono_dur(inner.config.lease);
        match inner
            .store
            .extend_leases(ExtendLeasesParams {
                worker: &inner.config.worker_id,
                ids: &ids,
                lease_until: until,
            })
            .await
        {
            Ok(kept) if kept.len() < ids.len() => {
                tracing::warn!(lost = ids.len() - kept.len(), "leases lost; those results will be refused");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "extending leases failed"),
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ProviderErrorKind;

    #[test]
    fn a_store_outage_is_reported_as_one() {
        let e = store_outage(&crate::Error::unavailable("the database connection failed"));
        assert_eq!(e.code, ExecutionErrorCode::StoreUnavailable);
        assert_eq!(e.code.as_str(), "store_unavailable");
        assert!(e.transient);
        assert!(e.message.contains("the database connection failed"), "{}", e.message);
    }

    #[test]
    fn provider_errors_keep_their_kind() {
        let e = provider_exec_error(&ProviderError::new(ProviderErrorKind::Connection, "reset"));
        assert_eq!((e.code, e.transient), (ExecutionErrorCode::Connection, true));
    }
}
