//! Authentication as HTTP sees it: where the bearer token comes from, the session cookie,
//! the [`AuthUser`] and [`ClientAddr`] extractors.
//!
//! Every account rule (Argon2id passwords, token minting and hashing, email rules, the login
//! throttle) lives in [`formaops_core::user`]; this module only translates.
//!
//! - A request authenticates with `Authorization: Bearer <token>` or the `formaops_session`
//!   cookie (HttpOnly, SameSite=Strict) set at login.
//! - A bearer token shaped like a JWT goes to the configured issuers' verifier
//!   ([`formaops_core::user::jwt`]) when any issuer is configured; it has no stored credential.
//! - Login failures are throttled per client address ([`ClientAddr`], the TCP peer), see
//!   [`formaops_core::user::throttle`].

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use formaops_core::ids::UserId;
use formaops_core::user::{Credential, User, jwt};

use crate::error::ApiError;
use crate::state::AppState;

pub use formaops_core::user::account::MAX_PASSWORD_BYTES;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "formaops_session";

/// The bearer token of a request: `Authorization: Bearer` first, then the session cookie.
pub fn token_from_headers(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        let (scheme, rest) = v.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim().to_string());
    }
    for header in headers.get_all(COOKIE) {
        let Ok(s) = header.to_str() else { continue };
        for pair in s.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == SESSION_COOKIE
            {
                return Some(v.to_string());
            }
        }
    }
    None
}

/// `Set-Cookie` value for a new session.
pub fn session_cookie(token: &str, max_age: Duration, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        max_age.as_secs()
    ))
    .ok()
}

/// `Set-Cookie` value that clears the session cookie.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    let v = if secure {
        "formaops_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0; Secure"
    } else {
        "formaops_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
    };
    HeaderValue::from_static(v)
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user: User,
    /// The stored session or API key; `None` for a JWT of a trusted issuer.
    pub credential: Option<Credential>,
}

impl AuthUser {
    pub fn id(&self) -> UserId {
        self.user.id
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = token_from_headers(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        authenticate(state, &token).await
    }
}

/// The caller of a bearer token: a JWT of a trusted issuer (when any is configured), else a
/// stored session or API key.
///
/// # Errors
/// 401 for an unknown, expired, revoked or invalid token; store errors.
pub async fn authenticate(state: &AppState, token: &str) -> Result<AuthUser, ApiError> {
    if let Some(verifier) = state.settings().jwt.as_deref()
        && jwt::looks_like_jwt(token)
    {
        // Verified on every request; the (issuer, subject) -> user mapping comes from the
        // engine's per-node cache, so a known identity costs no store read.
        let user = state.engine().jwt_user(verifier, token).await?;
        return Ok(AuthUser { user, credential: None });
    }
    // From the engine's per-node cache; revocations reach it within 1 s on every node.
    let (user, credential) = state.engine().authenticate(token).await?;
    Ok(AuthUser { user, credential: Some(credential) })
}

/// The client's address: the TCP peer, when the server was started with connect info
/// (`into_make_service_with_connect_info`); `None` otherwise (e.g. in-process tests).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_from_bearer_or_cookie() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("a=b; formaops_session=tok1"));
        assert_eq!(token_from_headers(&h).as_deref(), Some("tok1"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer tok2"));
        assert_eq!(token_from_headers(&h).as_deref(), Some("tok2"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(token_from_headers(&h), None);
    }
}
