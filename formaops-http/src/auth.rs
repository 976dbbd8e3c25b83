//! Authentication: Argon2id passwords, opaque session tokens and API keys, login throttling,
//! and the [`AuthUser`] extractor.
//!
//! - Passwords are hashed with Argon2id, OWASP parameters (m = 19456 KiB, t = 2, p = 1), on
//!   the blocking pool so hashing never stalls the async workers.
//! - A token is 256 random bits from the operating system's CSPRNG (via `rand`'s thread RNG,
//!   seeded from the OS), base64url-encoded with a prefix (`fos_` sessions, `fok_` API keys).
//!   The store keeps only its SHA-256, so a database leak reveals no usable token.
//! - A request authenticates with `Authorization: Bearer <token>` or the `formaops_session`
//!   cookie (HttpOnly, SameSite=Strict) set at login.
//! - Unknown email and wrong password answer the same 401 body, and both run one Argon2
//!   verification (against a dummy hash for unknown users) so timing does not tell them apart.
//! - Login is throttled per account (normalised email, known or not): after
//!   [`LoginThrottle::MAX_FAILURES`] failures within the window, 429 with `Retry-After` until
//!   the oldest failure leaves the window. The throttle is per process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use formaops_core::ids::{CredentialId, UserId};
use formaops_core::store::Store;
use formaops_core::user::{Credential, CredentialKind, User};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::error::ApiError;
use crate::state::AppState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "formaops_session";
/// Longest password accepted (bytes): bounds the hashing work one request can ask for.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Shortest password accepted when creating a user.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest email accepted.
pub const MAX_EMAIL_BYTES: usize = 254;
/// Longest bearer token looked at; anything longer is refused without hashing.
const MAX_TOKEN_BYTES: usize = 256;

/// Password hashes computed at once, process-wide. Each Argon2id run holds 19 MiB and a CPU
/// core for tens of milliseconds; a login flood queues here instead of exhausting memory
/// through the blocking pool.
fn hashing_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        tokio::sync::Semaphore::new(cores.clamp(1, 16))
    })
}

fn argon2() -> Argon2<'static> {
    // `Params::DEFAULT` is the OWASP recommendation: m = 19456 KiB, t = 2, p = 1, Argon2id v19.
    Argon2::default()
}

/// Hashes a password (Argon2id, random salt) to a PHC string. CPU-heavy: runs on the
/// blocking pool.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    let _permit = hashing_permits().acquire().await.map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(move || {
        argon2().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(ApiError::internal)
    })
    .await
    .map_err(ApiError::internal)?
}

/// Verifies a password against a PHC string on the blocking pool. A malformed stored hash
/// counts as a mismatch (and is logged).
pub async fn verify_password(password: String, phc: String) -> bool {
    let Ok(_permit) = hashing_permits().acquire().await else { return false };
    tokio::task::spawn_blocking(move || match argon2().verify_password(password.as_bytes(), phc.as_str()) {
        Ok(()) => true,
        Err(argon2::password_hash::Error::PasswordInvalid) => false,
        Err(e) => {
            tracing::error!(error = %e, "stored password hash could not be checked");
            false
        }
    })
    .await
    .unwrap_or(false)
}

/// Normalises an email for storage and lookup: trimmed, lowercase.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Checks an email and password for a new user.
pub fn check_new_user(email: &str, password: &str) -> Result<(), String> {
    if email.len() > MAX_EMAIL_BYTES {
        return Err(format!("email is longer than {MAX_EMAIL_BYTES} bytes"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err("email must look like name@domain".into());
    };
    if local.is_empty() || domain.is_empty() || email.chars().any(char::is_whitespace) {
        return Err("email must look like name@domain".into());
    }
    if !formaops_core::text::is_storable(email) {
        return Err(format!("email {}", formaops_core::text::MESSAGE));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!("password must have at least {MIN_PASSWORD_CHARS} characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("password must have at most {MAX_PASSWORD_BYTES} bytes"));
    }
    Ok(())
}

/// Creates a user with an Argon2id password hash. Duplicate email: `Conflict`.
pub async fn create_user(
    store: &dyn Store,
    email: &str,
    password: &str,
    is_admin: bool,
) -> Result<User, ApiError> {
    let email = normalize_email(email);
    check_new_user(&email, password)
        .map_err(|m| ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, "invalid_user", m))?;
    let hash = hash_password(password.to_string()).await?;
    let user = User { id: UserId::new(), email, is_admin, created_at: Utc::now() };
    store.create_user(&user, &hash).await?;
    Ok(user)
}

/// A fresh random secret: 256 bits, base64url, with a prefix naming its kind.
pub fn new_token(kind: CredentialKind) -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes[..]);
    let prefix = match kind {
        CredentialKind::Session => "fos_",
        CredentialKind::ApiKey => "fok_",
    };
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A random password for the generated admin account (192 bits, base64url).
pub fn random_password() -> String {
    let mut bytes = [0u8; 24];
    rand::fill(&mut bytes[..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a token: what the store keeps.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Issues a credential for `user`: stores its hash, returns the secret (shown once).
pub async fn issue_credential(
    store: &dyn Store,
    user: UserId,
    kind: CredentialKind,
    name: Option<String>,
    ttl: Option<Duration>,
) -> Result<(String, Credential), ApiError> {
    let token = new_token(kind);
    let now = Utc::now();
    let expires_at = match ttl {
        Some(ttl) => {
            let ttl = chrono::Duration::from_std(ttl).map_err(ApiError::internal)?;
            Some(
                now.checked_add_signed(ttl)
                    .ok_or_else(|| ApiError::internal("credential expiry overflows"))?,
            )
        }
        None => None,
    };
    let credential = Credential {
        id: CredentialId::new(),
        user_id: user,
        kind,
        name,
        token_hash: token_hash(&token),
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    store.create_credential(&credential).await?;
    Ok((token, credential))
}

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

/// Looks a token up: the user and credential, or 401.
pub async fn authenticate(store: &dyn Store, token: &str) -> Result<(User, Credential), ApiError> {
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(ApiError::unauthorized());
    }
    store.authenticate(&token_hash(token), Utc::now()).await?.ok_or_else(ApiError::unauthorized)
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
    pub credential: Credential,
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
        let (user, credential) = authenticate(state.store().as_ref(), &token).await?;
        Ok(Self { user, credential })
    }
}

/// Per-account login failure throttle (in process memory).
#[derive(Debug)]
pub struct LoginThrottle {
    window: Duration,
    max_failures: usize,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginThrottle {
    /// Failures allowed per window.
    pub const MAX_FAILURES: usize = 5;
    /// The window.
    pub const WINDOW: Duration = Duration::from_secs(15 * 60);
    /// Most accounts tracked at once; beyond it, expired entries are pruned and, if still
    /// full, the account whose last failure is oldest is forgotten, so memory stays bounded
    /// and a flood of made-up emails cannot lock everyone out.
    const MAX_TRACKED: usize = 100_000;

    pub fn new(max_failures: usize, window: Duration) -> Self {
        Self { window, max_failures: max_failures.max(1), failures: Mutex::new(HashMap::new()) }
    }

    /// `Some(wait)` when `account` must wait before trying again.
    pub fn check(&self, account: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.get_mut(account)?;
        while entry.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            entry.pop_front();
        }
        if entry.len() >= self.max_failures {
            let oldest = entry.front().copied()?;
            return Some(self.window.saturating_sub(now.duration_since(oldest)));
        }
        if entry.is_empty() {
            map.remove(account);
        }
        None
    }

    /// Records one failure.
    pub fn record_failure(&self, account: &str) {
        self.record_failure_capped(account, Self::MAX_TRACKED);
    }

    fn record_failure_capped(&self, account: &str, cap: usize) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= cap && !map.contains_key(account) {
            let window = self.window;
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
            if map.len() >= cap {
                let oldest = map.iter().min_by_key(|(_, q)| q.back().copied()).map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    map.remove(&k);
                }
            }
        }
        let entry = map.entry(account.to_string()).or_default();
        entry.push_back(now);
        while entry.len() > self.max_failures {
            entry.pop_front();
        }
    }

    /// Forgets failures after a successful login.
    pub fn clear(&self, account: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(account);
    }
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(Self::MAX_FAILURES, Self::WINDOW)
    }
}

/// Everything login needs besides the store: the throttle and the dummy hash.
#[derive(Debug)]
pub struct Authenticator {
    pub throttle: LoginThrottle,
    /// An Argon2id hash of a random password, verified for unknown emails so that they take
    /// as long as a wrong password.
    dummy_hash: String,
}

impl Authenticator {
    pub async fn new(throttle: LoginThrottle) -> Result<Arc<Self>, ApiError> {
        let dummy_hash = hash_password(random_password()).await?;
        Ok(Arc::new(Self { throttle, dummy_hash }))
    }

    /// Checks email and password. Unknown user and wrong password both give 401 with the
    /// same body after one Argon2 verification; too many failures give 429.
    pub async fn login(&self, store: &dyn Store, email: &str, password: &str) -> Result<User, ApiError> {
        let account = normalize_email(email);
        if let Some(wait) = self.throttle.check(&account) {
            return Err(ApiError::rate_limited(wait));
        }
        // An email no store can hold belongs to no one (and must not reach the database).
        if password.len() > MAX_PASSWORD_BYTES
            || account.len() > MAX_EMAIL_BYTES
            || !formaops_core::text::is_storable(&account)
        {
            self.throttle.record_failure(&account);
            return Err(ApiError::unauthorized());
        }
        let found = store.user_by_email(&account).await?;
        let (phc, user) = match found {
            Some(u) => (u.password_hash, Some(u.user)),
            None => (self.dummy_hash.clone(), None),
        };
        let ok = verify_password(password.to_string(), phc).await;
        match (ok, user) {
            (true, Some(user)) => {
                self.throttle.clear(&account);
                Ok(user)
            }
            _ => {
                self.throttle.record_failure(&account);
                Err(ApiError::unauthorized())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn throttle_opens_after_the_window() {
        let t = LoginThrottle::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(t.check("a@x").is_none());
            t.record_failure("a@x");
        }
        let wait = t.check("a@x").unwrap();
        assert_eq!(wait, Duration::from_secs(60));
        assert!(t.check("b@x").is_none(), "another account is not throttled");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(t.check("a@x").unwrap(), Duration::from_secs(30));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(t.check("a@x").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_forgets_the_stalest_account() {
        let t = LoginThrottle::new(1, Duration::from_secs(60));
        t.record_failure_capped("old@x", 2);
        tokio::time::advance(Duration::from_secs(1)).await;
        t.record_failure_capped("mid@x", 2);
        tokio::time::advance(Duration::from_secs(1)).await;
        t.record_failure_capped("new@x", 2);
        assert!(t.check("old@x").is_none(), "evicted");
        assert!(t.check("mid@x").is_some());
        assert!(t.check("new@x").is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn success_clears_failures() {
        let t = LoginThrottle::new(2, Duration::from_secs(60));
        t.record_failure("a@x");
        t.clear("a@x");
        t.record_failure("a@x");
        assert!(t.check("a@x").is_none());
    }

    #[tokio::test]
    async fn hash_and_verify() {
        let h = hash_password("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("correct horse".into(), h.clone()).await);
        assert!(!verify_password("wrong horse".into(), h).await);
        assert!(!verify_password("x".into(), "not a phc string".into()).await);
    }

    #[test]
    fn tokens_are_random_and_prefixed() {
        let a = new_token(CredentialKind::Session);
        let b = new_token(CredentialKind::Session);
        assert_ne!(a, b);
        assert!(a.starts_with("fos_"));
        assert_eq!(a.len(), 4 + 43);
        assert!(new_token(CredentialKind::ApiKey).starts_with("fok_"));
        assert_eq!(token_hash(&a).len(), 32);
    }

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

    #[test]
    fn new_user_checks() {
        assert!(check_new_user("a@b.c", "12345678").is_ok());
        assert!(check_new_user("ab.c", "12345678").is_err());
        assert!(check_new_user("a@b.c", "short").is_err());
        assert!(check_new_user("a@b.c", &"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }
}
