//! Users and their credentials (sessions and API keys), and every account rule.
//!
//! - This module: the records as the store keeps them ([`User`], [`Credential`]).
//! - [`account`]: email normalisation, the password policy, Argon2id hashing on the blocking
//!   pool, creating users, and login ([`Accounts`]).
//! - [`token`]: minting and hashing bearer tokens, issuing sessions and API keys,
//!   authenticating a token.
//! - [`throttle`]: the login throttle policy (per source address, never a lockout switch).
//!
//! Credentials are stored only as SHA-256 hashes of the secret token; the token itself is
//! shown once, when created. Passwords are stored as Argon2id PHC strings.
//! Every adapter (the REST server, the `formaops` binary, Python) calls these functions;
//! none hashes, mints or normalises on its own.

pub mod account;
pub mod throttle;
pub mod token;

pub use account::Accounts;
pub use throttle::LoginThrottle;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{CredentialId, UserId};

/// A user as shown to clients (no secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The user's id.
    pub id: UserId,
    /// The email as [`account::normalize_email`] stores it; unique among users.
    pub email: String,
    /// Whether the user is an administrator.
    pub is_admin: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

/// A user with the password hash, for login.
#[derive(Clone, PartialEq, Eq)]
pub struct UserWithPassword {
    /// The user.
    pub user: User,
    /// Argon2id PHC string.
    pub password_hash: String,
}

impl std::fmt::Debug for UserWithPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserWithPassword")
            .field("user", &self.user)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// Kind of bearer credential.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::AsRefStr,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum CredentialKind {
    /// A login session (expires).
    Session,
    /// A named, long-lived API key (until revoked or expired).
    ApiKey,
}

impl CredentialKind {
    /// The word as serialised (`session`, `api_key`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The kind named by its serialised word; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

/// A session or API key. `token_hash` is SHA-256 of the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    /// The credential's id.
    pub id: CredentialId,
    /// Whose credential it is.
    pub user_id: UserId,
    /// Session or API key.
    pub kind: CredentialKind,
    /// A label for API keys; `None` for sessions.
    pub name: Option<String>,
    /// SHA-256 of the bearer secret (32 bytes); never serialised.
    #[serde(skip)]
    pub token_hash: Vec<u8>,
    /// When it was minted.
    pub created_at: DateTime<Utc>,
    /// When it stops working; `None`: never.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked; `None` while valid.
    pub revoked_at: Option<DateTime<Utc>>,
}
