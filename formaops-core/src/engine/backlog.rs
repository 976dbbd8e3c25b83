//! What one process knows about a provider's queue: enough for the fast path (`fastpath`) to
//! tell whether queued work may be waiting, without asking the store.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What one process knows about a provider's queue, for the fast path's priority rule.
#[derive(Debug)]
pub(crate) struct Backlog {
    /// Bumped after each commit that made work claimable here (a local enqueue, a retry due).
    queued: AtomicU64,
    /// The `queued` count read before the last claim that came back short: the queue held no
    /// claimable work then.
    drained: AtomicU64,
    /// The last claim filled every slot it asked for (more may wait), or none ran yet.
    full: AtomicBool,
}

impl Default for Backlog {
    fn default() -> Self {
        // Nothing is known before the first claim: work queued before a restart may wait.
        Self { queued: AtomicU64::new(0), drained: AtomicU64::new(0), full: AtomicBool::new(true) }
    }
}

impl Backlog {
    /// Work became claimable (after its commit).
    pub(crate) fn note_queued(&self) {
        self.queued.fetch_add(1, Ordering::SeqCst);
    }

    /// Read before a claim; hand the value to [`Backlog::claim_ended`].
    pub(crate) fn claim_started(&self) -> u64 {
        self.queued.load(Ordering::SeqCst)
    }

    /// A claim that started at `seen` returned; `full` when it filled every slot it asked for.
    pub(crate) fn claim_ended(&self, seen: u64, full: bool) {
        if !full {
            self.drained.fetch_max(seen, Ordering::SeqCst);
        }
        self.full.store(full, Ordering::SeqCst);
    }

    /// Whether queued work may be waiting for this provider.
    pub(crate) fn may_wait(&self) -> bool {
        self.full.load(Ordering::SeqCst)
            || self.queued.load(Ordering::SeqCst) > self.drained.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_closes_the_fast_path_until_a_claim_finds_the_queue_drained() {
        let b = Backlog::default();
        assert!(b.may_wait(), "before the first claim, work queued before a restart may wait");
        let seen = b.claim_started();
        b.claim_ended(seen, false);
        assert!(!b.may_wait(), "a short claim drained the queue");
        b.note_queued();
        assert!(b.may_wait(), "work queued since");
        let seen = b.claim_started();
        b.claim_ended(seen, true);
        assert!(b.may_wait(), "a full claim: more may wait");
        let seen = b.claim_started();
        // Work queued while that claim ran (after it read the count) may not have been seen.
        b.note_queued();
        b.claim_ended(seen, false);
        assert!(b.may_wait(), "queued during the claim: still waiting");
        let seen = b.claim_started();
        b.claim_ended(seen, false);
        assert!(!b.may_wait());
    }
}
