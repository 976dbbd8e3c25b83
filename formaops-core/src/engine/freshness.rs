//! The per-node caches of mutable data (credentials, prompt pointers, labels, prompt names,
//! the users of external identities) and the one rule that bounds how stale they can be.
//!
//! # The bound
//!
//! A revoked credential, a new current version, an archived prompt or a moved label is seen
//! at once by the node that made the change (it invalidates its own caches after the write
//! commits), and by every other node sharing the store within [`STALE_BOUND`] (1 s) of the
//! commit of the invalidation the writer publishes right after its write:
//!
//! - an entry verified (read from the store) less than [`STALE_BOUND`] ago is served: its
//!   read began after any change older than the bound had committed;
//! - an older entry is served only while the invalidation listener is known to deliver: the
//!   node's own heartbeat, sent at most [`STALE_BOUND`] ago, came back. The store delivers
//!   invalidations in commit order, so every invalidation committed before that heartbeat
//!   was applied before it; otherwise the entry is read again;
//! - a read that raced an invalidation is not cached (a generation counter, bumped by every
//!   invalidation, must be unchanged between the start of the read and the insert);
//! - when the listener lost messages (a reconnect), everything is dropped;
//! - no entry is served after [`MAX_CACHE_AGE`], whatever the listener says.
//!
//! A store no other process shares (memory, SQLite: single node) has no listener: local
//! invalidation is complete, and entries live up to [`MAX_CACHE_AGE`].
//!
//! Only positive results are cached: an unknown token or a missing label is read from the
//! store every time, so a key or label created a moment ago on another node works at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::ids::{PromptId, UserId};
use crate::prompt::PromptStatus;
use crate::store::Invalidation;
use crate::user::{Credential, User};

/// Longest time a change made on one node can go unseen on another (see the module docs).
pub const STALE_BOUND: Duration = Duration::from_secs(1);
/// No cached entry is served longer than this after it was read.
pub const MAX_CACHE_AGE: Duration = Duration::from_secs(60);
/// How often an engine sends its listener heartbeat (well under [`STALE_BOUND`]).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(250);
/// Most credentials cached per engine.
pub const MAX_CACHED_CREDENTIALS: usize = 10_000;
/// Most prompt pointers (and, separately, labels and prompt names) cached per engine.
pub const MAX_CACHED_POINTERS: usize = 10_000;
/// Most users of external identities (JWT sign-ins) cached per engine.
pub const MAX_CACHED_IDENTITIES: usize = 10_000;

/// What decides whether a cached entry may be served: the listener's state and the
/// invalidation generation.
#[derive(Debug)]
pub(crate) struct Freshness {
    /// Whether other processes share the store (there is an invalidation channel).
    shared: bool,
    /// This engine's random node number (tags its heartbeats).
    pub(crate) node: u64,
    epoch: Instant,
    /// Microseconds after `epoch` at which the last heartbeat heard back was sent; 0: none
    /// since the listener (re)connected.
    heard_us: AtomicU64,
    /// Bumped by every invalidation.
    generation: AtomicU64,
}

impl Freshness {
    pub(crate) fn new(shared: bool) -> Self {
        Self {
            shared,
            node: rand::random(),
            epoch: Instant::now(),
            heard_us: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        }
    }

    /// Microseconds since this engine's epoch (at least 1, so 0 can mean "none").
    pub(crate) fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX).max(1)
    }

    /// The generation to hand back to `insert` after a read.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// This engine's heartbeat sent at `sent_us` came back.
    pub(crate) fn heard(&self, sent_us: u64) {
        self.heard_us.fetch_max(sent_us, Ordering::SeqCst);
    }

    /// The listener lost its connection: until a heartbeat comes back, only young entries.
    pub(crate) fn lost(&self) {
        self.heard_us.store(0, Ordering::SeqCst);
    }

    /// Whether the listener provably delivered everything committed up to `STALE_BOUND` ago.
    pub(crate) fn listener_healthy(&self) -> bool {
        let heard = self.heard_us.load(Ordering::SeqCst);
        heard != 0 && self.now_us().saturating_sub(heard) < micros(STALE_BOUND)
    }

    /// Whether an entry read at `verified` may be served now.
    pub(crate) fn usable(&self, verified: Instant) -> bool {
        let age = verified.elapsed();
        if age >= MAX_CACHE_AGE {
            return false;
        }
        !self.shared || age < STALE_BOUND || self.listener_healthy()
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A bounded map of entries with the time they were read from the store.
#[derive(Debug)]
struct Bounded<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
    cap: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> Bounded<K, V> {
    fn new(cap: usize) -> Self {
        Self { entries: Mutex::new(HashMap::new()), cap }
    }

    fn get(&self, key: &K, fresh: &Freshness) -> Option<V> {
        let mut map = self.entries.lock().ok()?;
        let (value, verified) = map.get(key)?;
        if fresh.usable(*verified) {
            return Some(value.clone());
        }
        map.remove(key);
        None
    }

    /// Caches `value`, read from the store starting at `verified` when the generation was
    /// `generation`; nothing when an invalidation came in between.
    fn insert(&self, key: K, value: V, verified: Instant, generation: u64, fresh: &Freshness) {
        let Ok(mut map) = self.entries.lock() else { return };
        if fresh.generation() != generation {
            return;
        }
        if map.len() >= self.cap && !map.contains_key(&key) {
            // Drop what may no longer be served; if all may, an arbitrary entry.
            map.retain(|_, (_, at)| fresh.usable(*at));
            if map.len() >= self.cap
                && let Some(k) = map.keys().next().cloned()
            {
                map.remove(&k);
            }
        }
        map.insert(key, (value, verified));
    }

    fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        if let Ok(mut map) = self.entries.lock() {
            map.retain(|k, (v, _)| keep(k, v));
        }
    }

    fn clear(&self) {
        if let Ok(mut map) = self.entries.lock() {
            map.clear();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// What a submit needs to know about a prompt: whether it runs, and its current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PromptPointer {
    pub(crate) status: PromptStatus,
    pub(crate) current_version: u32,
}

/// The engine's caches of mutable data, and their freshness rule.
#[derive(Debug)]
pub(crate) struct Caches {
    pub(crate) fresh: Freshness,
    /// (user, credential) by SHA-256 of the token.
    credentials: Bounded<Vec<u8>, (User, Credential)>,
    /// By (owner, prompt): the owner is part of the key, so a hit is an ownership check.
    prompts: Bounded<(UserId, PromptId), PromptPointer>,
    /// Stored labels by (owner, prompt, name).
    labels: Bounded<(UserId, PromptId, String), u32>,
    /// The id of the owner's ACTIVE prompt by its (trimmed) name. Active names are unique per
    /// owner and a name only becomes free by a rename or an archive, both of which invalidate
    /// the prompt; every invalidation of a prompt drops all of its owner's names.
    names: Bounded<(UserId, String), PromptId>,
    /// The user of an external identity by (issuer, subject). Users cannot be deleted,
    /// disabled or changed and an identity never moves to another user (the store has no such
    /// write), so nothing invalidates an entry; it still obeys the freshness rule, so a
    /// future "disable user" only needs an invalidation that drops it.
    identities: Bounded<(String, String), User>,
}

/// A read in progress: when it began and the generation then.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadStart {
    at: Instant,
    generation: u64,
}

impl Caches {
    pub(crate) fn new(shared: bool) -> Self {
        Self {
            fresh: Freshness::new(shared),
            credentials: Bounded::new(MAX_CACHED_CREDENTIALS),
            prompts: Bounded::new(MAX_CACHED_POINTERS),
            labels: Bounded::new(MAX_CACHED_POINTERS),
            names: Bounded::new(MAX_CACHED_POINTERS),
            identities: Bounded::new(MAX_CACHED_IDENTITIES),
        }
    }

    /// Call before reading what will be cached.
    pub(crate) fn read_start(&self) -> ReadStart {
        ReadStart { at: Instant::now(), generation: self.fresh.generation() }
    }

    /// The cached user and credential of a token hash, if still valid at `now` (expiry is
    /// checked on every hit).
    pub(crate) fn credential(
        &self,
        hash: &[u8],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<(User, Credential)> {
        let key = hash.to_vec();
        let hit = self.credentials.get(&key, &self.fresh)?;
        if hit.1.revoked_at.is_some() || hit.1.expires_at.is_some_and(|e| e <= now) {
            self.credentials.retain(|k, _| *k != key);
            return None;
        }
        Some(hit)
    }

    pub(crate) fn put_credential(&self, hash: &[u8], found: (User, Credential), read: ReadStart) {
        self.credentials.insert(hash.to_vec(), found, read.at, read.generation, &self.fresh);
    }

    pub(crate) fn prompt(&self, user: UserId, id: PromptId) -> Option<PromptPointer> {
        self.prompts.get(&(user, id), &self.fresh)
    }

    pub(crate) fn put_prompt(&self, user: UserId, id: PromptId, p: PromptPointer, read: ReadStart) {
        self.prompts.insert((user, id), p, read.at, read.generation, &self.fresh);
    }

    pub(crate) fn label(&self, user: UserId, id: PromptId, name: &str) -> Option<u32> {
        self.labels.get(&(user, id, name.to_string()), &self.fresh)
    }

    pub(crate) fn put_label(&self, user: UserId, id: PromptId, name: &str, version: u32, read: ReadStart) {
        self.labels.insert((user, id, name.to_string()), version, read.at, read.generation, &self.fresh);
    }

    /// The id of the owner's active prompt named `name` (trimmed), if cached.
    pub(crate) fn prompt_named(&self, user: UserId, name: &str) -> Option<PromptId> {
        self.names.get(&(user, name.to_string()), &self.fresh)
    }

    pub(crate) fn put_prompt_named(&self, user: UserId, name: &str, id: PromptId, read: ReadStart) {
        self.names.insert((user, name.to_string()), id, read.at, read.generation, &self.fresh);
    }

    /// Drops a cached name that turned out not to name an active prompt any more.
    pub(crate) fn forget_prompt_named(&self, user: UserId, name: &str) {
        self.names.retain(|(u, n), _| *u != user || n != name);
    }

    /// The user of the external identity (issuer, subject), if cached.
    pub(crate) fn identity(&self, issuer: &str, subject: &str) -> Option<User> {
        self.identities.get(&(issuer.to_string(), subject.to_string()), &self.fresh)
    }

    pub(crate) fn put_identity(&self, issuer: &str, subject: &str, user: User, read: ReadStart) {
        let key = (issuer.to_string(), subject.to_string());
        self.identities.insert(key, user, read.at, read.generation, &self.fresh);
    }

    /// Applies one invalidation (local or from the listener).
    pub(crate) fn apply(&self, invalidation: &Invalidation) {
        match invalidation {
            Invalidation::Credential { id, .. } => {
                self.fresh.bump();
                self.credentials.retain(|_, (_, c)| c.id != *id);
            }
            Invalidation::Prompt { user_id, id } => {
                self.fresh.bump();
                self.prompts.retain(|k, _| *k != (*user_id, *id));
                self.labels.retain(|(u, p, _), _| (*u, *p) != (*user_id, *id));
                // A rename or an archive frees a name: drop every name of the owner.
                self.names.retain(|(u, _), _| u != user_id);
            }
            Invalidation::Heartbeat { node, sent_us } => {
                if *node == self.fresh.node {
                    self.fresh.heard(*sent_us);
                }
            }
            Invalidation::All => {
                self.fresh.lost();
                self.fresh.bump();
                self.credentials.clear();
                self.prompts.clear();
                self.labels.clear();
                self.names.clear();
                self.identities.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::Utc;

    use super::*;
    use crate::ids::CredentialId;
    use crate::user::CredentialKind;

    fn cred(user: UserId, expires_in: Option<chrono::Duration>) -> (User, Credential) {
        let now = Utc::now();
        let user = User { id: user, email: "a@x.io".into(), is_admin: false, created_at: now };
        let c = Credential {
            id: CredentialId::new(),
            user_id: user.id,
            kind: CredentialKind::ApiKey,
            name: None,
            token_hash: vec![1; 32],
            created_at: now,
            expires_at: expires_in.map(|d| now + d),
            revoked_at: None,
        };
        (user, c)
    }

    const ACTIVE_V1: PromptPointer = PromptPointer { status: PromptStatus::Active, current_version: 1 };

    #[tokio::test(start_paused = true)]
    async fn single_node_entries_live_until_invalidated_or_max_age() {
        let caches = Caches::new(false);
        let (u, c) = cred(UserId::new(), None);
        let id = c.id;
        caches.put_credential(b"h", (u.clone(), c), caches.read_start());
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(caches.credential(b"h", Utc::now()).is_some(), "no listener needed on a single node");
        caches.apply(&Invalidation::Credential { user_id: u.id, id });
        assert!(caches.credential(b"h", Utc::now()).is_none(), "a local revocation is seen at once");
        caches.put_credential(b"h", cred(u.id, None), caches.read_start());
        tokio::time::advance(MAX_CACHE_AGE).await;
        assert!(caches.credential(b"h", Utc::now()).is_none(), "nothing outlives MAX_CACHE_AGE");
    }

    #[tokio::test(start_paused = true)]
    async fn shared_store_entries_older_than_the_bound_need_a_recent_heartbeat() {
        let caches = Caches::new(true);
        let (u, p) = (UserId::new(), PromptId::new());
        caches.put_prompt(u, p, ACTIVE_V1, caches.read_start());
        tokio::time::advance(Duration::from_millis(900)).await;
        assert_eq!(caches.prompt(u, p), Some(ACTIVE_V1), "young entries are served");
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(caches.prompt(u, p), None, "no heartbeat heard: older than 1 s is re-read");

        caches.put_prompt(u, p, ACTIVE_V1, caches.read_start());
        tokio::time::advance(Duration::from_millis(1_500)).await;
        let sent = caches.fresh.now_us();
        caches.apply(&Invalidation::Heartbeat { node: caches.fresh.node, sent_us: sent });
        assert_eq!(caches.prompt(u, p), Some(ACTIVE_V1), "a heartbeat heard: older entries are served");
        tokio::time::advance(Duration::from_millis(1_100)).await;
        assert_eq!(caches.prompt(u, p), None, "the heartbeat is over 1 s old: re-read");

        caches.put_prompt(u, p, ACTIVE_V1, caches.read_start());
        tokio::time::advance(Duration::from_millis(1_500)).await;
        caches
            .apply(&Invalidation::Heartbeat { node: caches.fresh.node ^ 1, sent_us: caches.fresh.now_us() });
        assert_eq!(caches.prompt(u, p), None, "another node's heartbeat proves nothing");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_listener_drops_everything_and_waits_for_a_new_heartbeat() {
        let caches = Caches::new(true);
        let (u, p) = (UserId::new(), PromptId::new());
        caches.apply(&Invalidation::Heartbeat { node: caches.fresh.node, sent_us: caches.fresh.now_us() });
        caches.put_prompt(u, p, ACTIVE_V1, caches.read_start());
        caches.put_label(u, p, "production", 1, caches.read_start());
        caches.apply(&Invalidation::All);
        assert_eq!((caches.prompt(u, p), caches.label(u, p, "production")), (None, None));
        assert!(!caches.fresh.listener_healthy());
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_that_raced_an_invalidation_is_not_cached() {
        let caches = Caches::new(false);
        let (u, p) = (UserId::new(), PromptId::new());
        let read = caches.read_start();
        caches.apply(&Invalidation::Prompt { user_id: u, id: p });
        caches.put_prompt(u, p, ACTIVE_V1, read);
        assert_eq!(caches.prompt(u, p), None);
        caches.put_prompt(u, p, ACTIVE_V1, caches.read_start());
        assert_eq!(caches.prompt(u, p), Some(ACTIVE_V1));
        // Another user's key never hits.
        assert_eq!(caches.prompt(UserId::new(), p), None);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_credentials_are_not_served_and_prompt_invalidation_drops_its_labels() {
        let caches = Caches::new(false);
        let (u, c) = cred(UserId::new(), Some(chrono::Duration::milliseconds(1)));
        caches.put_credential(b"x", (u, c), caches.read_start());
        assert!(caches.credential(b"x", Utc::now() + chrono::Duration::seconds(1)).is_none());
        let (user, p, q) = (UserId::new(), PromptId::new(), PromptId::new());
        caches.put_label(user, p, "production", 2, caches.read_start());
        caches.put_label(user, q, "production", 3, caches.read_start());
        caches.apply(&Invalidation::Prompt { user_id: user, id: p });
        assert_eq!(caches.label(user, p, "production"), None);
        assert_eq!(caches.label(user, q, "production"), Some(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_prompt_invalidation_drops_its_owners_names_and_all_drops_identities() {
        let caches = Caches::new(false);
        let (ann, bob, p, q) = (UserId::new(), UserId::new(), PromptId::new(), PromptId::new());
        caches.put_prompt_named(ann, "a", p, caches.read_start());
        caches.put_prompt_named(ann, "b", q, caches.read_start());
        caches.put_prompt_named(bob, "a", q, caches.read_start());
        assert_eq!(caches.prompt_named(ann, "a"), Some(p));
        // Any change of one of Ann's prompts may free or take a name: all of hers go.
        caches.apply(&Invalidation::Prompt { user_id: ann, id: q });
        assert_eq!((caches.prompt_named(ann, "a"), caches.prompt_named(ann, "b")), (None, None));
        assert_eq!(caches.prompt_named(bob, "a"), Some(q), "another owner's names stay");
        caches.forget_prompt_named(bob, "a");
        assert_eq!(caches.prompt_named(bob, "a"), None);

        let (user, _) = cred(UserId::new(), None);
        caches.put_identity("iss", "sub", user.clone(), caches.read_start());
        assert_eq!(caches.identity("iss", "sub"), Some(user));
        assert_eq!(caches.identity("iss", "other"), None);
        caches.apply(&Invalidation::Credential { user_id: ann, id: CredentialId::new() });
        assert!(caches.identity("iss", "sub").is_some(), "revoking a credential leaves identities");
        caches.apply(&Invalidation::All);
        assert_eq!(caches.identity("iss", "sub"), None);
    }

    #[test]
    fn the_maps_are_bounded() {
        let fresh = Freshness::new(false);
        let map = Bounded::new(3);
        for i in 0..10u32 {
            map.insert(i, i, Instant::now(), fresh.generation(), &fresh);
        }
        assert_eq!(map.len(), 3);
        assert_eq!(map.get(&9, &fresh), Some(9), "the newest entry is kept");
    }
}
