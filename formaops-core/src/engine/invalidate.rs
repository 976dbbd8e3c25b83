//! Keeping the caches of [`freshness`](super::freshness) true: the cached reads (prompt
//! pointers, labels), local invalidation plus its announcement to other nodes, and the
//! listener and heartbeat tasks of a shared store.

use std::sync::Weak;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::watch;

use super::freshness::{HEARTBEAT_INTERVAL, PromptPointer, STALE_BOUND};
use super::state::Inner;
use crate::error::Result;
use crate::ids::{PromptId, UserId};
use crate::store::Invalidation;

/// Attempts to announce one invalidation before the change is reported as failed.
const PUBLISH_ATTEMPTS: u32 = 3;

impl Inner {
    /// The prompt's status and current version, from the cache or (as `user`) the store.
    /// A hit is an ownership check too: the cache is keyed by owner.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for a missing or another user's prompt;
    /// store errors.
    pub(crate) async fn prompt_pointer(&self, user: UserId, id: PromptId) -> Result<PromptPointer> {
        if let Some(hit) = self.caches.prompt(user, id) {
            return Ok(hit);
        }
        self.read_prompt_pointer(user, id).await
    }

    /// The prompt's pointer read from the store (and cached), bypassing the cache.
    pub(crate) async fn read_prompt_pointer(&self, user: UserId, id: PromptId) -> Result<PromptPointer> {
        let read = self.caches.read_start();
        let prompt = self.store.get_prompt(user, id).await?;
        let pointer = PromptPointer { status: prompt.status, current_version: prompt.current_version };
        self.caches.put_prompt(user, id, pointer, read);
        Ok(pointer)
    }

    /// The version the stored label `name` points at, `None` when the prompt has no such
    /// label (not cached, so a label set a moment ago elsewhere is found at once).
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) for a missing or another user's prompt;
    /// store errors.
    pub(crate) async fn label_version(&self, user: UserId, id: PromptId, name: &str) -> Result<Option<u32>> {
        if let Some(hit) = self.caches.label(user, id, name) {
            return Ok(Some(hit));
        }
        let read = self.caches.read_start();
        let found = self.store.get_label(user, id, name).await?;
        if let Some(v) = found {
            self.caches.put_label(user, id, name, v, read);
        }
        Ok(found)
    }

    /// Applies `invalidation` here at once, then announces it to every other node sharing the
    /// store. Call after the change committed.
    ///
    /// # Errors
    /// [`Error::Unavailable`](crate::Error::Unavailable) when the announcement could not be
    /// sent (the change itself is committed; repeating it announces it again).
    pub(crate) async fn invalidate(&self, invalidation: Invalidation) -> Result<()> {
        self.caches.apply(&invalidation);
        let mut attempt = 1;
        loop {
            match self.store.publish_invalidation(&invalidation).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= PUBLISH_ATTEMPTS => {
                    tracing::error!(error = %e, ?invalidation, "announcing a cache invalidation failed");
                    return Err(e);
                }
                Err(_) => {
                    attempt += 1;
                    tokio::time::sleep(STALE_BOUND / 10).await;
                }
            }
        }
    }
}

/// Applies every invalidation the store delivers, reconnecting (and dropping every cached
/// entry, since messages of the gap are lost) whenever the listener fails.
pub(crate) async fn listen_loop(
    inner: Weak<Inner>,
    first: Result<Option<BoxStream<'static, Invalidation>>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut next = Some(first);
    loop {
        let attempt = match next.take() {
            Some(a) => a,
            None => {
                let Some(strong) = inner.upgrade() else { return };
                let store = strong.store.clone();
                drop(strong);
                store.remote_invalidations().await
            }
        };
        match attempt {
            Ok(Some(mut stream)) => loop {
                tokio::select! {
                    item = stream.next() => {
                        let Some(item) = item else { break };
                        let Some(strong) = inner.upgrade() else { return };
                        strong.caches.apply(&item);
                    }
                    _ = stop.changed() => return,
                }
            },
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, "cache invalidation listener could not connect; retrying"),
        }
        let Some(strong) = inner.upgrade() else { return };
        strong.caches.apply(&Invalidation::All);
        drop(strong);
        tokio::select! {
            _ = tokio::time::sleep(STALE_BOUND) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Sends this engine's heartbeat every [`HEARTBEAT_INTERVAL`] (see `freshness`).
pub(crate) async fn heartbeat_loop(inner: Weak<Inner>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(inner) = inner.upgrade() else { return };
        let fresh = &inner.caches.fresh;
        let beat = Invalidation::Heartbeat { node: fresh.node, sent_us: fresh.now_us() };
        if let Err(e) = inner.store.publish_invalidation(&beat).await {
            tracing::debug!(error = %e, "cache heartbeat not sent");
        }
    }
}
