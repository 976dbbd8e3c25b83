//! The engine's clock: wall-clock time that follows tokio's clock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// Wall-clock time that follows tokio's clock, so paused-time tests move both together.
/// Truncated to microseconds (what every store keeps, and what cursors encode).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base_utc: DateTime<Utc>,
    base: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
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

/// A std duration as a chrono one (saturating).
pub(crate) fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
