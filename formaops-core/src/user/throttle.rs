//! The login throttle: failed logins slow down their source, never the account's owner.
//!
//! A per-account lockout would hand anyone a switch to lock the owner out: five wrong
//! passwords from anywhere would refuse the right one for the whole window. So every count
//! here is keyed by the source of the attempts (the client address the adapter passes in;
//! IPv6 addresses count by their /64 prefix, which one client usually holds whole):
//!
//! - **per source and account**: after [`LoginThrottle::MAX_FAILURES_PER_ACCOUNT`] failures
//!   for one account from one source within [`LoginThrottle::WINDOW`], that source is refused
//!   for that account (even with the right password) until its oldest failure leaves the
//!   window; a success from that source clears the count;
//! - **per source**: after [`LoginThrottle::MAX_FAILURES_PER_SOURCE`] failures from one
//!   source, for any accounts, within the window, that source is refused for every account
//!   (this stops one address from trying a few passwords on many accounts); successes do not
//!   clear it.
//!
//! The owner logging in from another source is never refused. Attempts whose adapter knows
//! no address share one source. Counts live in process memory, per process, at most
//! [`LoginThrottle::MAX_TRACKED`] keys per table (beyond it the stalest key is forgotten), and
//! are kept with tokio's clock so tests can pause time. A refused attempt is not counted and
//! costs no password hash.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Where login attempts come from: an address (IPv6 cut to its /64), or unknown.
type Source = Option<IpAddr>;

fn source_of(addr: Option<IpAddr>) -> Source {
    addr.map(|ip| match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    })
}

/// Failure times per key, within one window, at most `max` kept per key.
#[derive(Debug)]
struct FailureLog<K> {
    max: usize,
    cap: usize,
    entries: HashMap<K, VecDeque<Instant>>,
}

impl<K: Hash + Eq + Clone> FailureLog<K> {
    fn new(max: usize, cap: usize) -> Self {
        Self { max: max.max(1), cap: cap.max(1), entries: HashMap::new() }
    }

    /// How long `key` must wait, if it reached `max` failures within `window`.
    fn wait(&mut self, key: &K, now: Instant, window: Duration) -> Option<Duration> {
        let entry = self.entries.get_mut(key)?;
        while entry.front().is_some_and(|t| now.duration_since(*t) >= window) {
            entry.pop_front();
        }
        if entry.is_empty() {
            self.entries.remove(key);
            return None;
        }
        if entry.len() >= self.max {
            let oldest = entry.front().copied()?;
            return Some(window.saturating_sub(now.duration_since(oldest)));
        }
        None
    }

    fn record(&mut self, key: &K, now: Instant, window: Duration) {
        if self.entries.len() >= self.cap && !self.entries.contains_key(key) {
            self.entries.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
            if self.entries.len() >= self.cap {
                let stalest =
                    self.entries.iter().min_by_key(|(_, q)| q.back().copied()).map(|(k, _)| k.clone());
                if let Some(k) = stalest {
                    self.entries.remove(&k);
                }
            }
        }
        let entry = self.entries.entry(key.clone()).or_default();
        entry.push_back(now);
        while entry.len() > self.max {
            entry.pop_front();
        }
    }

    fn clear(&mut self, key: &K) {
        self.entries.remove(key);
    }
}

#[derive(Debug)]
struct Tables {
    pairs: FailureLog<(Source, String)>,
    sources: FailureLog<Source>,
}

/// Failed-login counts per source and account and per source (see the module docs).
#[derive(Debug)]
pub struct LoginThrottle {
    window: Duration,
    tables: Mutex<Tables>,
}

impl LoginThrottle {
    /// Failures allowed for one account from one source per window.
    pub const MAX_FAILURES_PER_ACCOUNT: usize = 5;
    /// Failures allowed from one source, over all accounts, per window.
    pub const MAX_FAILURES_PER_SOURCE: usize = 50;
    /// The window.
    pub const WINDOW: Duration = Duration::from_secs(15 * 60);
    /// Most keys tracked per table; beyond it, expired entries are pruned and, if still
    /// full, the key whose last failure is oldest is forgotten, so memory stays bounded.
    pub const MAX_TRACKED: usize = 100_000;

    /// A throttle allowing `per_account` failures per source and account and `per_source`
    /// failures per source within `window` (each at least 1).
    pub fn new(per_account: usize, per_source: usize, window: Duration) -> Self {
        Self::with_capacity(per_account, per_source, window, Self::MAX_TRACKED)
    }

    fn with_capacity(per_account: usize, per_source: usize, window: Duration, cap: usize) -> Self {
        let tables =
            Tables { pairs: FailureLog::new(per_account, cap), sources: FailureLog::new(per_source, cap) };
        Self { window, tables: Mutex::new(tables) }
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Some(wait)` when an attempt on `account` (canonical email) from `source` must wait.
    pub fn check(&self, source: Option<IpAddr>, account: &str) -> Option<Duration> {
        let source = source_of(source);
        let now = Instant::now();
        let mut t = self.tables();
        let pair = t.pairs.wait(&(source, account.to_string()), now, self.window);
        let whole = t.sources.wait(&source, now, self.window);
        pair.max(whole)
    }

    /// Records one failed attempt on `account` from `source`.
    pub fn record_failure(&self, source: Option<IpAddr>, account: &str) {
        let source = source_of(source);
        let now = Instant::now();
        let mut t = self.tables();
        t.pairs.record(&(source, account.to_string()), now, self.window);
        t.sources.record(&source, now, self.window);
    }

    /// Records a successful login: forgets this source's failures for this account.
    pub fn record_success(&self, source: Option<IpAddr>, account: &str) {
        let source = source_of(source);
        self.tables().pairs.clear(&(source, account.to_string()));
    }
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(Self::MAX_FAILURES_PER_ACCOUNT, Self::MAX_FAILURES_PER_SOURCE, Self::WINDOW)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn throttle_opens_after_the_window() {
        let t = LoginThrottle::new(3, 100, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(t.check(None, "a@x").is_none());
            t.record_failure(None, "a@x");
        }
        let wait = t.check(None, "a@x").unwrap();
        assert_eq!(wait, Duration::from_secs(60));
        assert!(t.check(None, "b@x").is_none(), "another account is not throttled");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(t.check(None, "a@x").unwrap(), Duration::from_secs(30));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(t.check(None, "a@x").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn another_source_is_never_throttled_by_an_attackers_failures() {
        let t = LoginThrottle::default();
        for _ in 0..LoginThrottle::MAX_FAILURES_PER_ACCOUNT * 10 {
            t.record_failure(ip("203.0.113.7"), "owner@x");
        }
        assert!(t.check(ip("203.0.113.7"), "owner@x").is_some());
        assert!(t.check(ip("198.51.100.2"), "owner@x").is_none(), "the owner elsewhere logs in");
        assert!(t.check(None, "owner@x").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn one_source_spraying_many_accounts_is_throttled() {
        let t = LoginThrottle::new(5, 10, Duration::from_secs(60));
        for i in 0..10 {
            assert!(t.check(ip("203.0.113.7"), &format!("u{i}@x")).is_none());
            t.record_failure(ip("203.0.113.7"), &format!("u{i}@x"));
        }
        assert_eq!(t.check(ip("203.0.113.7"), "fresh@x"), Some(Duration::from_secs(60)));
        // A success does not reset the per-source count.
        t.record_success(ip("203.0.113.7"), "u0@x");
        assert!(t.check(ip("203.0.113.7"), "fresh@x").is_some());
        assert!(t.check(ip("198.51.100.2"), "fresh@x").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn ipv6_counts_by_its_64_prefix() {
        let t = LoginThrottle::new(2, 100, Duration::from_secs(60));
        t.record_failure(ip("2001:db8:1:2::1"), "a@x");
        t.record_failure(ip("2001:db8:1:2::ffff"), "a@x");
        assert!(t.check(ip("2001:db8:1:2:aaaa::9"), "a@x").is_some());
        assert!(t.check(ip("2001:db8:1:3::1"), "a@x").is_none());
        // An IPv4-mapped address is the IPv4 source.
        t.record_failure(ip("192.0.2.1"), "b@x");
        t.record_failure(ip("::ffff:192.0.2.1"), "b@x");
        assert!(t.check(ip("192.0.2.1"), "b@x").is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_forgets_the_stalest_account() {
        let t = LoginThrottle::with_capacity(1, 100, Duration::from_secs(60), 2);
        t.record_failure(None, "old@x");
        tokio::time::advance(Duration::from_secs(1)).await;
        t.record_failure(None, "mid@x");
        tokio::time::advance(Duration::from_secs(1)).await;
        t.record_failure(None, "new@x");
        assert!(t.check(None, "old@x").is_none(), "evicted");
        assert!(t.check(None, "mid@x").is_some());
        assert!(t.check(None, "new@x").is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn success_clears_failures() {
        let t = LoginThrottle::new(2, 100, Duration::from_secs(60));
        t.record_failure(None, "a@x");
        t.record_success(None, "a@x");
        t.record_failure(None, "a@x");
        assert!(t.check(None, "a@x").is_none());
    }
}
