//! Authentication from the per-node credential cache, and revocation that every node sees
//! within [`STALE_BOUND`](super::freshness::STALE_BOUND).

use super::FormaOps;
use crate::error::{Error, Result};
use crate::ids::{CredentialId, UserId};
use crate::store::Invalidation;
use crate::user::{Credential, User, token};

impl FormaOps {
    /// The user and credential (session or API key) of a bearer token, from this engine's
    /// cache when it holds a fresh entry, else from the store (see
    /// [`freshness`](super::freshness) for how stale an entry can be). Expiry is checked on
    /// every call; unknown tokens are never cached.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for an empty, oversized, unknown, expired or revoked token;
    /// store errors.
    pub async fn authenticate(&self, token: &str) -> Result<(User, Credential)> {
        let hash = token::checked_hash(token)?;
        let caches = &self.inner.caches;
        let now = self.inner.clock.now();
        if let Some(hit) = caches.credential(&hash, now) {
            return Ok(hit);
        }
        let read = caches.read_start();
        let found = self.inner.store.authenticate(&hash, now).await?.ok_or(Error::Unauthenticated)?;
        caches.put_credential(&hash, found.clone(), read);
        Ok(found)
    }

    /// Revokes one of the user's credentials (a logout, an API key revoked): refused by this
    /// engine at once, and by every other engine sharing the store within
    /// [`STALE_BOUND`](super::freshness::STALE_BOUND). Revoking twice is not an error.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing or another user's credential;
    /// [`Error::Unavailable`] when the store is down or the revocation could not be announced
    /// to other nodes (it is committed; revoking again announces it again).
    pub async fn revoke_credential(&self, user: UserId, id: CredentialId) -> Result<()> {
        self.inner.store.revoke_credential(user, id, self.inner.clock.now()).await?;
        self.inner.invalidate(Invalidation::Credential { user_id: user, id }).await
    }
}
