//! Claim order: priority with aging.
//!
//! Each execution gets a `queue_key` when it is accepted; stores claim the smallest key first
//! (ties by id, which is time-ordered). The key is the arrival time in microseconds, moved
//! earlier by the priority's rank times the aging step:
//!
//! `queue_key = arrival_us - rank * step_us`  (rank: LOW 0, NORMAL 1, HIGH 2)
//!
//! So HIGH is ordered before NORMAL before LOW among executions that arrive within `step` of
//! each other, FIFO within a priority, and nothing starves:
//!
//! **Bound.** An execution of rank `r` that arrived at `t` is claimed before every execution
//! of rank `r'` that arrives after `t + (r' - r) * step`. In particular a LOW execution never
//! waits behind HIGH work that arrived more than `2 * step` after it, nor behind NORMAL work
//! that arrived more than `step` after it: under a constant stream of HIGH load, a LOW
//! execution waits at most for the work that arrived before `t + 2 * step` (default step 30 s,
//! so 60 s of arrivals), then is next.
//!
//! Conversely, a HIGH execution never waits behind a LOW one that arrived less than `2 * step`
//! before it.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::execution::Priority;

/// The claim-order key of an execution of `priority` arriving at `arrival`.
pub fn queue_key(priority: Priority, arrival: DateTime<Utc>, step: Duration) -> i64 {
    let step_us = i64::try_from(step.as_micros()).unwrap_or(i64::MAX);
    arrival.timestamp_micros().saturating_sub(priority.rank().saturating_mul(step_us))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at(us: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(1_700_000_000_000_000 + us).unwrap()
    }

    const STEP: Duration = Duration::from_secs(30);

    #[test]
    fn priority_then_fifo() {
        let t = at(0);
        assert!(queue_key(Priority::High, t, STEP) < queue_key(Priority::Normal, t, STEP));
        assert!(queue_key(Priority::Normal, t, STEP) < queue_key(Priority::Low, t, STEP));
        assert!(queue_key(Priority::Low, at(1), STEP) > queue_key(Priority::Low, at(0), STEP));
    }

    proptest! {
        /// The documented bound: work of rank r arriving at t precedes work of rank r' that
        /// arrives after t + (r' - r) * step, and follows it when it arrives before.
        #[test]
        fn aging_bound(t1 in 0i64..10_000_000_000, dt in -200_000_000i64..200_000_000, a in 0usize..3, b in 0usize..3) {
            let ps = [Priority::Low, Priority::Normal, Priority::High];
            let (p1, p2) = (ps[a], ps[b]);
            let t2 = t1 + dt;
            let k1 = queue_key(p1, at(t1), STEP);
            let k2 = queue_key(p2, at(t2), STEP);
            let shift = (p2.rank() - p1.rank()) * STEP.as_micros() as i64;
            if t2 > t1 + shift {
                prop_assert!(k1 < k2);
            } else if t2 < t1 + shift {
                prop_assert!(k1 > k2);
            } else {
                prop_assert_eq!(k1, k2);
            }
        }
    }
}
