//! Bearer tokens: minting, hashing, issuing sessions and API keys, authenticating.
//!
//! A token is 256 random bits from the operating system's CSPRNG (via `rand`'s thread RNG,
//! seeded from the OS), base64url-encoded with a prefix naming its kind (`fos_` sessions,
//! `fok_` API keys). The store keeps only its SHA-256, so a database leak reveals no usable
//! token.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use sha2::{Digest, Sha256};

use super::{Credential, CredentialKind, User};
use crate::ids::{CredentialId, UserId};
use crate::store::Store;
use crate::{Error, Result};

/// Longest bearer token looked at; anything longer is refused without hashing.
pub const MAX_TOKEN_BYTES: usize = 256;
/// Most API keys one user may hold.
pub const MAX_API_KEYS: usize = 100;
/// Longest API key name (characters).
pub const MAX_KEY_NAME_CHARS: usize = 100;
/// Longest API key lifetime (days).
pub const MAX_KEY_DAYS: u32 = 3650;

/// `bytes` random bytes from the OS-seeded CSPRNG, base64url without padding.
pub(crate) fn random_base64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(&mut buf[..]);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A fresh random secret: 256 bits, base64url, with a prefix naming its kind.
pub fn mint(kind: CredentialKind) -> String {
    let prefix = match kind {
        CredentialKind::Session => "fos_",
        CredentialKind::ApiKey => "fok_",
    };
    format!("{prefix}{}", random_base64(32))
}

/// SHA-256 of a token: what the store keeps.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Issues a credential for `user`: stores its hash, returns the secret (shown once) and the
/// stored credential. `ttl`: lifetime, none when `None`.
///
/// # Errors
/// [`Error::InvalidArgument`] on field `ttl` when the expiry overflows; store errors.
pub async fn issue(
    store: &dyn Store,
    user: UserId,
    kind: CredentialKind,
    name: Option<String>,
    ttl: Option<Duration>,
) -> Result<(String, Credential)> {
    let token = mint(kind);
    let now = Utc::now();
    let expires_at = match ttl {
        Some(ttl) => Some(
            chrono::Duration::from_std(ttl)
                .ok()
                .and_then(|ttl| now.checked_add_signed(ttl))
                .ok_or_else(|| Error::invalid_argument("ttl", "the expiry is out of range"))?,
        ),
        None => None,
    };
    let credential = Credential {
        id: CredentialId::new(),
        user_id: user,
        kind,
        name,
        token_hash: hash(&token),
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    store.create_credential(&credential).await?;
    Ok((token, credential))
}

/// Creates an API key named `name` (trimmed; 1 to [`MAX_KEY_NAME_CHARS`] characters) that
/// expires after `expires_in_days` (1 to [`MAX_KEY_DAYS`]; never when `None`). A user holds
/// at most [`MAX_API_KEYS`]. Returns the secret (shown once) and the stored key.
///
/// # Errors
/// [`Error::InvalidArgument`] on `name` or `expiresInDays`; [`Error::Conflict`] when the user
/// already holds [`MAX_API_KEYS`] keys; store errors.
pub async fn create_api_key(
    store: &dyn Store,
    user: UserId,
    name: &str,
    expires_in_days: Option<u32>,
) -> Result<(String, Credential)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_KEY_NAME_CHARS {
        return Err(Error::invalid_argument(
            "name",
            format!("name must have 1 to {MAX_KEY_NAME_CHARS} characters"),
        ));
    }
    if !crate::text::is_storable(name) {
        return Err(Error::invalid_argument("name", format!("name {}", crate::text::MESSAGE)));
    }
    let ttl = match expires_in_days {
        None => None,
        Some(d) if (1..=MAX_KEY_DAYS).contains(&d) => Some(Duration::from_secs(u64::from(d) * 86_400)),
        Some(_) => {
            return Err(Error::invalid_argument(
                "expiresInDays",
                format!("expiresInDays must be between 1 and {MAX_KEY_DAYS}"),
            ));
        }
    };
    if store.list_credentials(user, CredentialKind::ApiKey).await?.len() >= MAX_API_KEYS {
        return Err(Error::conflict(format!("at most {MAX_API_KEYS} API keys per user; revoke one first")));
    }
    issue(store, user, CredentialKind::ApiKey, Some(name.to_string()), ttl).await
}

/// Looks a token up in the store: the user and credential it belongs to. A server
/// authenticates through [`FormaOps::authenticate`](crate::engine::FormaOps::authenticate),
/// which caches the answer.
///
/// # Errors
/// [`Error::Unauthenticated`] for an empty, oversized, unknown, expired or revoked token;
/// store errors.
pub async fn authenticate(store: &dyn Store, token: &str) -> Result<(User, Credential)> {
    store.authenticate(&checked_hash(token)?, Utc::now()).await?.ok_or(Error::Unauthenticated)
}

/// The hash a token is looked up by, after the checks every lookup makes first (not empty,
/// at most [`MAX_TOKEN_BYTES`]).
///
/// # Errors
/// [`Error::Unauthenticated`] for an empty or oversized token.
pub fn checked_hash(token: &str) -> Result<Vec<u8>> {
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(Error::Unauthenticated);
    }
    Ok(hash(token))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::MemoryStore;
    use crate::user::account::create_user;

    #[test]
    fn tokens_are_random_and_prefixed() {
        let a = mint(CredentialKind::Session);
        let b = mint(CredentialKind::Session);
        assert_ne!(a, b);
        assert!(a.starts_with("fos_"));
        assert_eq!(a.len(), 4 + 43);
        assert!(mint(CredentialKind::ApiKey).starts_with("fok_"));
        assert_eq!(hash(&a).len(), 32);
    }

    #[tokio::test]
    async fn api_keys_authenticate_and_obey_their_limits() {
        let store = MemoryStore::new();
        let user = create_user(&store, "ann@x.io", "correct horse", false).await.unwrap();
        let (token, key) = create_api_key(&store, user.id, " ci ", Some(30)).await.unwrap();
        assert_eq!(key.name.as_deref(), Some("ci"));
        assert!(key.expires_at.is_some());
        let (who, cred) = authenticate(&store, &token).await.unwrap();
        assert_eq!((who.id, cred.id), (user.id, key.id));
        for bad in ["", "   "] {
            let e = create_api_key(&store, user.id, bad, None).await.unwrap_err();
            assert!(matches!(e, Error::InvalidArgument { ref field, .. } if field == "name"), "{e:?}");
        }
        let e = create_api_key(&store, user.id, "x", Some(MAX_KEY_DAYS + 1)).await.unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
        for bad in ["", "fos_nope", &"x".repeat(MAX_TOKEN_BYTES + 1)] {
            assert!(matches!(authenticate(&store, bad).await, Err(Error::Unauthenticated)));
        }
    }
}
