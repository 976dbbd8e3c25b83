//! The fast path of a synchronous execute: when the receiving process has a free slot for the
//! provider and knows of no queued work waiting for it, the request runs the execution itself
//! instead of queueing it for a claim loop.
//!
//! 1. The execution is built RUNNING, first attempt, leased by this process
//!    ([`Execution::start_attempt`]) and written by the enqueue group commit: that row is the
//!    durable acceptance record. The provider call starts at the same moment; with an
//!    idempotency key it starts only once the write is committed, since a repeated key must
//!    not call the provider again.
//! 2. The attempt's result is written by the finish group commit, as a claimed attempt's is
//!    (`worker::record_attempt`).
//! 3. The answer is built from memory ([`Execution::apply_attempt`]): nothing is read back.
//!
//! So a synchronous execution costs two group-committed writes, no claim and no read. A crash
//! mid-call leaves a leased RUNNING execution that the rescuer handles like any other
//! (`rescue`). An attempt that ends in a retry goes back to the queue and the caller waits for
//! it as on the queue path.
//!
//! # Priorities
//!
//! The fast path jumps the queue, so it is taken only while the provider's `Backlog` says
//! this process's claim loop last found the queue drained and nothing was queued here since
//! (an enqueue, a retry coming due). Work that other processes queue is seen at their next claim
//! poll (within [`POLL_INTERVAL`](super::POLL_INTERVAL)); until then the fast path may run
//! ahead of it.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::clock::chrono_dur;
use super::state::{Inner, ProviderSlot};
use super::worker;
use crate::error::{Error, Result};
use crate::execution::Execution;
use crate::store::EnqueueOutcome;

/// A provider slot for the fast path, when the rule above allows it and one is free now.
pub(super) fn admit(slot: &ProviderSlot) -> Option<OwnedSemaphorePermit> {
    if slot.backlog.may_wait() {
        return None;
    }
    slot.permits.clone().try_acquire_owned().ok()
}

/// How a fast-path run ended.
#[derive(Debug)]
pub(super) enum Ran {
    /// Final (COMPLETED or FAILED), built from memory.
    Done(Execution),
    /// Written but not final (a retry was queued, or the result could not be recorded): the
    /// caller waits for it through the store.
    Pending(Execution),
    /// The idempotency key was already used: the first execution, nothing was called.
    Existing(Box<Execution>),
}

/// Runs `exec` (a new QUEUED execution) on this process with `permit`. The attempt runs in its
/// own task, so a caller that goes away does not abandon a half-written execution.
pub(super) async fn run(
    inner: &Arc<Inner>,
    slot: &Arc<ProviderSlot>,
    permit: OwnedSemaphorePermit,
    mut exec: Execution,
) -> Result<Ran> {
    let now = inner.clock.now();
    exec.start_attempt(&inner.config.worker_id, now, now + chrono_dur(inner.config.lease));
    let id = exec.id;
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn({
        let (inner, slot) = (inner.clone(), slot.clone());
        async move {
            let ran = attempt(&inner, &slot, exec, permit).await;
            if let Ok(mut tasks) = inner.tasks.lock() {
                tasks.remove(&id);
            }
            let _ = tx.send(ran);
        }
    });
    if !task.is_finished()
        && let Ok(mut tasks) = inner.tasks.lock()
    {
        tasks.insert(id, task.abort_handle());
    }
    let ran = rx.await;
    if let Ok(mut tasks) = inner.tasks.lock() {
        tasks.remove(&id);
    }
    match ran {
        Ok(ran) => ran,
        Err(_) if inner.shutting_down() => Err(Error::ShuttingDown),
        Err(_) => Err(Error::internal("the execution's attempt stopped before answering")),
    }
}

async fn attempt(
    inner: &Arc<Inner>,
    slot: &Arc<ProviderSlot>,
    exec: Execution,
    permit: OwnedSemaphorePermit,
) -> Result<Ran> {
    let recorded = {
        let mut call = std::pin::pin!(worker::attempt_outcome(inner, slot, &exec));
        let mut early = None;
        let accepted = {
            let write = inner.enqueue(exec.clone());
            if exec.idempotency_key.is_some() {
                write.await
            } else {
                // The acceptance write and the provider call overlap.
                let mut write = std::pin::pin!(write);
                loop {
                    tokio::select! {
                        biased;
                        written = &mut write => break written,
                        outcome = &mut call, if early.is_none() => early = Some(outcome),
                    }
                }
            }
        };
        // Dropping `call` here abandons a provider call whose execution was never accepted.
        match accepted? {
            EnqueueOutcome::Existing(first) => return Ok(Ran::Existing(first)),
            EnqueueOutcome::Created => {}
        }
        if let Ok(mut held) = inner.held.lock() {
            held.insert(exec.id);
        }
        worker::publish_running(inner, &exec);
        let outcome = match early {
            Some(outcome) => outcome,
            None => call.await,
        };
        worker::record_attempt(inner, slot, &exec, outcome, permit).await
    };
    let Some(result) = recorded else {
        return Ok(Ran::Pending(exec));
    };
    let mut done = exec;
    done.apply_attempt(&result);
    Ok(if done.status.is_final() { Ran::Done(done) } else { Ran::Pending(done) })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::engine::{ExecuteRequest, FormaOps};
    use crate::execution::ExecutionStatus;
    use crate::ids::UserId;
    use crate::store::MemoryStore;
    use crate::store::counting::CountingStore;

    const METHODS: &[&str] = &[
        "enqueue",
        "claim",
        "finish",
        "get_execution",
        "extend_leases",
        "get_prompt",
        "get_version",
        "get_label",
        "list_prompts",
        "authenticate",
        "relay_events",
    ];

    fn counts(store: &CountingStore) -> BTreeMap<&'static str, usize> {
        METHODS.iter().map(|m| (*m, store.calls(m))).collect()
    }

    /// Store calls per method made by 20 synchronous executes after a warm-up.
    async fn calls_per_execute(run_workers_first: bool) -> (BTreeMap<&'static str, usize>, usize) {
        let store = Arc::new(CountingStore::new(Arc::new(MemoryStore::new())));
        let engine = FormaOps::builder(store.clone()).start().await.unwrap();
        let user = UserId::new();
        let spec = serde_json::from_value(json!({"name": "p", "template": "hi", "model": {"model": "mock"}}))
            .unwrap();
        let (prompt, _) = engine.create_prompt(user, spec).await.unwrap();
        let request = ExecuteRequest { prompt_id: prompt.id, ..Default::default() };
        let warm = engine.submit(user, request.clone()).await.unwrap();
        engine.wait(user, warm.id, Some(Duration::from_secs(5))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        if run_workers_first {
            // Something queued and not yet claimed closes the fast path.
            for slot in engine.inner.providers.values() {
                slot.backlog.note_queued();
            }
        }
        let (before, total) = (counts(&store), store.total());
        for _ in 0..20 {
            let done = engine.execute(user, request.clone()).await.unwrap();
            assert_eq!(done.status, ExecutionStatus::Completed);
        }
        let after = counts(&store);
        let per: BTreeMap<_, _> =
            after.iter().map(|(m, n)| (*m, n - before[m])).filter(|(_, n)| *n > 0).collect();
        engine.shutdown().await;
        (per, store.total() - total)
    }

    #[tokio::test]
    async fn a_fast_path_execute_is_two_writes_and_no_read() {
        let (per, total) = calls_per_execute(false).await;
        // Events are relayed to other processes in batches; the memory store has none to tell.
        let relayed = per.get("relay_events").copied().unwrap_or(0);
        assert!(relayed <= 40, "at most one relay per event: {relayed}");
        let writes: BTreeMap<_, _> = per.into_iter().filter(|(m, _)| *m != "relay_events").collect();
        assert_eq!(writes, BTreeMap::from([("enqueue", 20), ("finish", 20)]), "store calls of 20 executes");
        assert_eq!(total - relayed, 40, "nothing else either");
        // With work possibly waiting, the next execute is queued: a claim and a read-back
        // besides; that claim finds the queue drained and reopens the fast path for the rest.
        let (per, _) = calls_per_execute(true).await;
        let queued: Vec<_> =
            ["claim", "get_execution", "enqueue", "finish"].iter().map(|m| per.get(m).copied()).collect();
        assert_eq!(queued, [Some(1), Some(1), Some(20), Some(20)], "{per:?}");
    }
}
