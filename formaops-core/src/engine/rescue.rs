//! Lease expiry: what happens to an execution whose worker stopped renewing its lease.
//!
//! The engine decides, the store writes. A rescuer lists expired leases
//! ([`Store::expired_leases`], a bounded batch), decides each execution's fate here with the
//! engine's one retry rule ([`retry::schedule`]: a lost lease is a transient failure of the
//! attempt), and hands every decision to the store in one call ([`Store::rescue`]), which
//! writes a decision only while the lease it was made for is still the execution's lease.
//!
//! - attempts left and time before the deadline: QUEUED again with `run_after = now +
//!   backoff` (full jitter, like any other retry);
//! - otherwise FAILED at `now`, the error saying why.
//!
//! Either way the error has code `lease_expired` and is transient.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::config::BackoffPolicy;
use super::retry;
use super::state::Inner;
use super::worker::stopped;
use crate::error::Result;
use crate::events::{EventKind, ExecutionEvent};
use crate::execution::{Execution, ExecutionError, ExecutionStatus};
use crate::store::{RescueDecision, RescueFate, Store};

/// Most expired leases one rescue pass lists and decides.
pub const RESCUE_BATCH: u32 = 1_000;

/// The error recorded on a rescued execution.
pub fn lease_expired_error() -> ExecutionError {
    ExecutionError {
        code: crate::execution::ExecutionErrorCode::LeaseExpired,
        message: "the worker running this execution stopped renewing its lease".to_string(),
        transient: true,
        details: None,
    }
}

/// The fate of `e`, whose lease expired, decided at `now`; `unit` is the jitter draw in
/// `[0, 1]` (see [`retry::retry_delay`]).
pub fn decide(policy: &BackoffPolicy, e: &Execution, now: DateTime<Utc>, unit: f64) -> RescueDecision {
    let mut error = lease_expired_error();
    let fate = match retry::schedule(policy, e.attempts, e.max_attempts, now, e.deadline_at, None, unit) {
        Ok(run_after) => RescueFate::Requeue { run_after },
        Err(why) => {
            error.message = why.explain(&error.message, e.attempts);
            RescueFate::Fail { finished_at: now }
        }
    };
    RescueDecision {
        id: e.id,
        attempts: e.attempts,
        lease_expires_at: e.lease_expires_at.unwrap_or(now),
        fate,
        error,
    }
}

/// `e` as the store leaves it once `decision` is applied.
pub fn apply(e: &Execution, decision: &RescueDecision) -> Execution {
    let mut e = e.clone();
    e.lease_owner = None;
    e.lease_expires_at = None;
    e.error = Some(decision.error.clone());
    match decision.fate {
        RescueFate::Requeue { run_after } => {
            e.status = ExecutionStatus::Queued;
            e.run_after = run_after;
        }
        RescueFate::Fail { finished_at } => {
            e.status = ExecutionStatus::Failed;
            e.finished_at = Some(finished_at);
        }
    }
    e
}

/// One rescue pass at `now`: lists up to [`RESCUE_BATCH`] expired leases, decides each with
/// `policy`, writes the decisions, and returns the new states of those the store applied
/// (a decision loses to a concurrent finish, heartbeat or rescuer).
pub async fn rescue_expired(
    store: &dyn Store,
    policy: &BackoffPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<Execution>> {
    let expired = store.expired_leases(now, RESCUE_BATCH).await?;
    if expired.is_empty() {
        return Ok(Vec::new());
    }
    let decisions: Vec<RescueDecision> =
        expired.iter().map(|e| decide(policy, e, now, rand::random())).collect();
    let applied = store.rescue(&decisions).await?;
    Ok(expired
        .iter()
        .zip(&decisions)
        .zip(applied)
        .filter(|(_, ok)| *ok)
        .map(|((e, d), _)| apply(e, d))
        .collect())
}

/// Rescues expired leases (any process's) every half lease, publishing what it decided and
/// waking the claim loop when a requeued execution becomes due.
pub(crate) async fn rescue_loop(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let every = (inner.config.lease / 2).max(Duration::from_millis(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped(&mut stop) => break,
        }
        let now = inner.clock.now();
        let rescued = match rescue_expired(inner.store.as_ref(), &inner.config.backoff, now).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "rescuing expired leases failed");
                continue;
            }
        };
        for e in rescued {
            let queued = e.status == ExecutionStatus::Queued;
            if queued && let Some(slot) = inner.providers.get(&e.provider) {
                let (slot, due) = (slot.clone(), inner.clock.instant_at(e.run_after));
                tokio::spawn(async move {
                    tokio::time::sleep_until(due).await;
                    slot.backlog.note_queued();
                    slot.wake.notify_one();
                });
            }
            let kind = if queued { EventKind::RetryScheduled } else { EventKind::Failed };
            inner.events.publish(
                ExecutionEvent::new(e.id, e.user_id, kind, e.attempts, now)
                    .with_error(e.error.clone())
                    .with_run_after(queued.then_some(e.run_after)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration as ChronoDuration;

    use super::*;
    use crate::ids::{ExecutionId, PromptId, UserId};

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn policy() -> BackoffPolicy {
        BackoffPolicy { base: Duration::from_secs(2), max: Duration::from_secs(30) }
    }

    fn running(attempts: u32, max_attempts: u32, deadline_in: i64) -> Execution {
        let mut e: Execution = serde_json::from_value(serde_json::json!({
            "id": ExecutionId::new(), "userId": UserId::new(), "promptId": PromptId::new(),
            "promptVersion": 1, "inputs": {}, "priority": "NORMAL", "status": "RUNNING",
            "validateOutput": false, "provider": "mock", "model": "mock",
            "attempts": attempts, "maxAttempts": max_attempts,
            "createdAt": t0(), "runAfter": t0(), "deadlineAt": t0() + ChronoDuration::seconds(deadline_in),
        }))
        .unwrap();
        e.lease_owner = Some("w-dead".into());
        e.lease_expires_at = Some(t0() - ChronoDuration::seconds(1));
        e
    }

    #[test]
    fn attempts_left_requeue_after_the_backoff() {
        let e = running(2, 3, 60);
        let d = decide(&policy(), &e, t0(), 1.0);
        // Attempt 2 failed: cap = 2 s * 2 = 4 s, and a draw of 1 takes all of it.
        assert_eq!(d.fate, RescueFate::Requeue { run_after: t0() + ChronoDuration::seconds(4) });
        assert_eq!(d.error.code, "lease_expired");
        assert!(d.error.transient);
        assert_eq!((d.id, d.attempts, d.lease_expires_at), (e.id, 2, t0() - ChronoDuration::seconds(1)));
        let after = apply(&e, &d);
        assert_eq!(after.status, ExecutionStatus::Queued);
        assert_eq!(after.run_after, t0() + ChronoDuration::seconds(4));
        assert_eq!((after.lease_owner, after.lease_expires_at, after.finished_at), (None, None, None));
    }

    #[test]
    fn no_attempts_or_no_time_left_fail() {
        let d = decide(&policy(), &running(3, 3, 60), t0(), 0.5);
        assert_eq!(d.fate, RescueFate::Fail { finished_at: t0() });
        assert!(d.error.message.contains("after 3 attempts"), "{}", d.error.message);
        // The backoff would end after the deadline.
        let d = decide(&policy(), &running(1, 3, 1), t0(), 1.0);
        assert_eq!(d.fate, RescueFate::Fail { finished_at: t0() });
        assert!(d.error.message.contains("deadline"), "{}", d.error.message);
        let failed = apply(&running(1, 3, 1), &d);
        assert_eq!(failed.status, ExecutionStatus::Failed);
        assert_eq!(failed.finished_at, Some(t0()));
    }
}
