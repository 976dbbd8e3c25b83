//! The open-loop arrival schedule: request `i` is due at `start + i / rate`, whatever happened
//! to earlier requests.

use std::time::Duration;

use anyhow::{Result, bail};

/// Highest rate the generator accepts (requests per second).
pub const MAX_RATE: f64 = 1_000_000.0;
/// Longest run the generator accepts.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Most requests one run may schedule.
pub const MAX_REQUESTS: u64 = 50_000_000;

/// A constant-rate schedule of `count` requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate: f64,
    count: u64,
}

impl Schedule {
    /// `rate` requests per second for `duration`. Rejects rates and durations outside the
    /// generator's bounds and schedules with no request at all.
    pub fn new(rate: f64, duration: Duration) -> Result<Self> {
        if !rate.is_finite() || rate <= 0.0 || rate > MAX_RATE {
            bail!("rate {rate}/s: must be > 0 and <= {MAX_RATE}");
        }
        if duration.is_zero() || duration > MAX_DURATION {
            bail!("duration {duration:?}: must be > 0 and <= {MAX_DURATION:?}");
        }
        let count = (rate * duration.as_secs_f64()).floor();
        if count < 1.0 {
            bail!("rate {rate}/s for {duration:?} schedules no request");
        }
        if count > MAX_REQUESTS as f64 {
            bail!("rate {rate}/s for {duration:?} schedules more than {MAX_REQUESTS} requests");
        }
        // `count` is in [1, MAX_REQUESTS]: the conversion is exact.
        Ok(Self { rate, count: count as u64 })
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Number of requests in the schedule.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Offset from the start at which request `i` is due.
    pub fn offset(&self, i: u64) -> Duration {
        // i <= MAX_REQUESTS (5e7) and rate >= tiny: f64 keeps nanosecond precision well
        // below the timer's own resolution for every offset inside MAX_DURATION.
        Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// Length of the schedule (offset of the last request plus one interval).
    pub fn span(&self) -> Duration {
        self.offset(self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_evenly_spaced_and_independent_of_responses() {
        let s = Schedule::new(1000.0, Duration::from_secs(2)).unwrap();
        assert_eq!(s.count(), 2000);
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(1), Duration::from_millis(1));
        assert_eq!(s.offset(1500), Duration::from_millis(1500));
        assert_eq!(s.span(), Duration::from_secs(2));
    }

    #[test]
    fn fractional_rates() {
        let s = Schedule::new(2.5, Duration::from_secs(2)).unwrap();
        assert_eq!(s.count(), 5);
        assert_eq!(s.offset(1), Duration::from_millis(400));
        let s = Schedule::new(30_000.0, Duration::from_millis(100)).unwrap();
        assert_eq!(s.count(), 3000);
        let d = s.offset(3).as_nanos();
        assert!((99_999..=100_001).contains(&d), "{d}");
    }

    #[test]
    fn rejects_out_of_bounds() {
        assert!(Schedule::new(0.0, Duration::from_secs(1)).is_err());
        assert!(Schedule::new(-5.0, Duration::from_secs(1)).is_err());
        assert!(Schedule::new(f64::NAN, Duration::from_secs(1)).is_err());
        assert!(Schedule::new(f64::INFINITY, Duration::from_secs(1)).is_err());
        assert!(Schedule::new(2_000_000.0, Duration::from_secs(1)).is_err());
        assert!(Schedule::new(100.0, Duration::ZERO).is_err());
        assert!(Schedule::new(100.0, Duration::from_secs(7200)).is_err());
        assert!(Schedule::new(0.5, Duration::from_secs(1)).is_err());
        assert!(Schedule::new(1_000_000.0, Duration::from_secs(3600)).is_err());
    }
}
