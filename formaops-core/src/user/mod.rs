//! Users and their credentials (sessions and API keys), and every account rule.
//!
//! - This module: the records as the store keeps them ([`User`], [`Credential`]).
//! - [`account`]: email normalisation, the password policy, Argon2id hashing on the blocking
//!   pool, creating users, and login ([`Accounts`]).
//! - [`token`]: minting and hashing bearer tokens, issuing sessions and API keys,
//!   authenticating a token.
//! - [`throttle`]: the login throttle policy (per source address, never a lockout switch).
//! - `jwt` (feature `jwt`): sign-in with JWTs of trusted issuers (Supabase Auth, OIDC),
//!   users found or created by their [`ExternalIdentity`].
//!
//! Credentials are stored only as SHA-256 hashes of the secret token; the token itself is
//! shown once, when created. Passwords are stored as Argon2id PHC strings.
//! Every adapter (the REST server, the `formaops` binary, Python) calls these functions;
//! none hashes, mints or normalises on its own.

pub mod account;
#[cfg(feature = "jwt")]
pub mod jwt;
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
    pub id: UserId,
    pub email: String,
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
}

/// A user with the password hash, for login.
#[derive(Clone, PartialEq, Eq)]
pub struct UserWithPassword {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    Session,
    ApiKey,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::ApiKey => "api_key",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "session" => Some(Self::Session),
            "api_key" => Some(Self::ApiKey),
            _ => None,
        }
    }
}

/// A session or API key. `token_hash` is SHA-256 of the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    pub id: CredentialId,
    pub user_id: UserId,
    pub kind: CredentialKind,
    /// A label for API keys; `None` for sessions.
    pub name: Option<String>,
    #[serde(skip)]
    pub token_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An external identity: who (issuer, subject) is which FormaOps user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalIdentity {
    pub issuer: String,
    pub subject: String,
    pub user_id: UserId,
    /// The `email` claim when the identity was first seen.
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
}
