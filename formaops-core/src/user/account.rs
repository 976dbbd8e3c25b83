//! Accounts: email normalisation, the password policy, Argon2id hashing, creating users,
//! and login.
//!
//! - Passwords are hashed with Argon2id, OWASP parameters (m = 19456 KiB, t = 2, p = 1), on
//!   tokio's blocking pool so hashing never stalls the async workers, and at most one per
//!   CPU core (up to 16) at once process-wide.
//! - Login: unknown email and wrong password fail alike ([`Error::Unauthenticated`]) after
//!   one Argon2 verification each (against a dummy hash for unknown users), so timing does
//!   not tell them apart. Failures are throttled per source address by [`LoginThrottle`].

use std::net::IpAddr;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use chrono::Utc;

use super::User;
use super::throttle::LoginThrottle;
use super::token;
use crate::ids::UserId;
use crate::store::Store;
use crate::{Error, Result};

/// Longest password accepted (bytes): bounds the hashing work one request can ask for.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Shortest password accepted when creating a user (characters).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest email accepted (bytes; the RFC 5321 path limit).
pub const MAX_EMAIL_BYTES: usize = 254;

/// Stored in place of a password hash for users created without a password (Python's local
/// user): never a valid PHC string, so no password verifies against it.
pub const NO_PASSWORD: &str = "!formaops-local-user-without-password";

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

/// Hashes a password (Argon2id, random salt) to a PHC string, on the blocking pool.
///
/// # Errors
/// [`Error::Internal`] when hashing fails or the blocking task is lost.
pub async fn hash_password(password: String) -> Result<String> {
    let _permit = hashing_permits().acquire().await.map_err(|e| Error::internal(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        argon2()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| Error::internal(format!("hashing a password: {e}")))
    })
    .await
    .map_err(|e| Error::internal(format!("hashing a password: {e}")))?
}

/// Verifies a password against a PHC string on the blocking pool. A malformed stored hash
/// counts as a mismatch (and is logged, except [`NO_PASSWORD`]).
pub async fn verify_password(password: String, phc: String) -> bool {
    let Ok(_permit) = hashing_permits().acquire().await else { return false };
    tokio::task::spawn_blocking(move || match argon2().verify_password(password.as_bytes(), phc.as_str()) {
        Ok(()) => true,
        Err(argon2::password_hash::Error::PasswordInvalid) => false,
        Err(_) if phc == NO_PASSWORD => false,
        Err(e) => {
            tracing::error!(error = %e, "stored password hash could not be checked");
            false
        }
    })
    .await
    .unwrap_or(false)
}

/// The form an email is stored and looked up in: trimmed, lowercase. No checks: use
/// [`normalize_email`] for a new account.
pub fn canonical_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Normalises ([`canonical_email`]) and checks an email for a new account.
///
/// # Errors
/// [`Error::InvalidArgument`] on field `email` when it is longer than [`MAX_EMAIL_BYTES`] or
/// does not look like `name@domain`.
pub fn normalize_email(email: &str) -> Result<String> {
    let email = canonical_email(email);
    if email.len() > MAX_EMAIL_BYTES {
        return Err(Error::invalid_argument(
            "email",
            format!("email is longer than {MAX_EMAIL_BYTES} bytes"),
        ));
    }
    let looks_right =
        email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
            && !email.chars().any(char::is_whitespace);
    if !looks_right {
        return Err(Error::invalid_argument("email", format!("{email:?} does not look like name@domain")));
    }
    if !crate::text::is_storable(&email) {
        return Err(Error::invalid_argument("email", format!("email {}", crate::text::MESSAGE)));
    }
    Ok(email)
}

/// The password policy for a new account: [`MIN_PASSWORD_CHARS`] characters to
/// [`MAX_PASSWORD_BYTES`] bytes.
///
/// # Errors
/// [`Error::InvalidArgument`] on field `password`.
pub fn check_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::invalid_argument(
            "password",
            format!("password must have at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::invalid_argument(
            "password",
            format!("password must have at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Creates a user with an Argon2id password hash.
///
/// # Errors
/// [`Error::InvalidArgument`] for a bad email or password; [`Error::Conflict`] when the
/// email is taken; store errors.
pub async fn create_user(store: &dyn Store, email: &str, password: &str, is_admin: bool) -> Result<User> {
    let email = normalize_email(email)?;
    check_password(password)?;
    let hash = hash_password(password.to_string()).await?;
    let user = User { id: UserId::new(), email, is_admin, created_at: Utc::now() };
    store.create_user(&user, &hash).await?;
    Ok(user)
}

/// Finds a user by email, creating it without a usable password ([`NO_PASSWORD`]) when
/// missing; safe against a concurrent call. Python's in-process engine acts as such a user.
///
/// # Errors
/// [`Error::InvalidArgument`] on field `email` for a bad email; store errors.
pub async fn ensure_user(store: &dyn Store, email: &str) -> Result<User> {
    let email = normalize_email(email)?;
    if let Some(found) = store.user_by_email(&email).await? {
        return Ok(found.user);
    }
    let user = User { id: UserId::new(), email: email.clone(), is_admin: false, created_at: Utc::now() };
    match store.create_user(&user, NO_PASSWORD).await {
        Ok(()) => Ok(user),
        Err(Error::Conflict { .. }) => store.user_by_email(&email).await?.map(|u| u.user).ok_or_else(|| {
            Error::internal(format!("user {email} was reported as existing but is not found"))
        }),
        Err(e) => Err(e),
    }
}

/// A random password for a generated account (192 bits, base64url).
pub fn random_password() -> String {
    token::random_base64(24)
}

/// Login: checks email and password, throttled by [`LoginThrottle`].
#[derive(Debug)]
pub struct Accounts {
    throttle: LoginThrottle,
    /// An Argon2id hash of a random password, verified for unknown emails so that they take
    /// as long as a wrong password.
    dummy_hash: String,
}

impl Accounts {
    /// Prepares login (computes the dummy hash once).
    ///
    /// # Errors
    /// [`Error::Internal`] when hashing fails.
    pub async fn new(throttle: LoginThrottle) -> Result<Self> {
        let dummy_hash = hash_password(random_password()).await?;
        Ok(Self { throttle, dummy_hash })
    }

    /// The throttle.
    pub fn throttle(&self) -> &LoginThrottle {
        &self.throttle
    }

    /// Checks email and password for a login attempt from `source` (the client's address as
    /// the adapter knows it; `None` when it knows none: all such attempts share one source).
    ///
    /// # Errors
    /// [`Error::RateLimited`] while `source` is throttled (see [`LoginThrottle`]), checked
    /// before the password; [`Error::Unauthenticated`] for an unknown email and a wrong
    /// password alike; store errors.
    pub async fn login(
        &self,
        store: &dyn Store,
        email: &str,
        password: &str,
        source: Option<IpAddr>,
    ) -> Result<User> {
        let account = canonical_email(email);
        if let Some(retry_after) = self.throttle.check(source, &account) {
            return Err(Error::RateLimited { retry_after });
        }
        if password.len() > MAX_PASSWORD_BYTES
            || account.len() > MAX_EMAIL_BYTES
            || !crate::text::is_storable(&account)
        {
            self.throttle.record_failure(source, &account);
            return Err(Error::Unauthenticated);
        }
        let found = store.user_by_email(&account).await?;
        let (phc, user) = match found {
            Some(u) => (u.password_hash, Some(u.user)),
            None => (self.dummy_hash.clone(), None),
        };
        let ok = verify_password(password.to_string(), phc).await;
        match (ok, user) {
            (true, Some(user)) => {
                self.throttle.record_success(source, &account);
                Ok(user)
            }
            _ => {
                self.throttle.record_failure(source, &account);
                Err(Error::Unauthenticated)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn hash_and_verify() {
        let h = hash_password("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("correct horse".into(), h.clone()).await);
        assert!(!verify_password("wrong horse".into(), h).await);
        assert!(!verify_password("x".into(), "not a phc string".into()).await);
        assert!(!verify_password(NO_PASSWORD.into(), NO_PASSWORD.into()).await);
    }

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(normalize_email(" Ann@Example.COM ").ok().as_deref(), Some("ann@example.com"));
        assert!(normalize_email("no-at-sign").is_err());
        assert!(normalize_email("@example.com").is_err());
        assert!(normalize_email("a@").is_err());
        assert!(normalize_email("a b@example.com").is_err());
        assert!(normalize_email(&format!("{}@x.io", "a".repeat(300))).is_err());
    }

    #[test]
    fn password_policy() {
        assert!(check_password("12345678").is_ok());
        assert!(check_password("short").is_err());
        assert!(check_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }

    #[tokio::test]
    async fn create_user_checks_and_refuses_duplicates() {
        let store = MemoryStore::new();
        let u = create_user(&store, " Ann@X.io ", "12345678", false).await.unwrap();
        assert_eq!(u.email, "ann@x.io");
        let dup = create_user(&store, "ann@x.io", "12345678", false).await.unwrap_err();
        assert!(matches!(dup, Error::Conflict { .. }), "{dup:?}");
        let bad = create_user(&store, "ab.c", "12345678", false).await.unwrap_err();
        assert!(matches!(bad, Error::InvalidArgument { ref field, .. } if field == "email"), "{bad:?}");
        let bad = create_user(&store, "b@x.io", "short", false).await.unwrap_err();
        assert!(matches!(bad, Error::InvalidArgument { ref field, .. } if field == "password"), "{bad:?}");
    }

    #[tokio::test]
    async fn ensure_user_creates_once_without_a_password() {
        let store = MemoryStore::new();
        let a = ensure_user(&store, "Local@X.io").await.unwrap();
        let b = ensure_user(&store, "local@x.io").await.unwrap();
        assert_eq!(a.id, b.id);
        let accounts = Accounts::new(LoginThrottle::default()).await.unwrap();
        let e = accounts.login(&store, "local@x.io", NO_PASSWORD, None).await.unwrap_err();
        assert!(matches!(e, Error::Unauthenticated), "{e:?}");
    }

    #[tokio::test]
    async fn login_checks_the_password() {
        let store = MemoryStore::new();
        create_user(&store, "ann@x.io", "correct horse", false).await.unwrap();
        let accounts = Accounts::new(LoginThrottle::default()).await.unwrap();
        assert_eq!(
            accounts.login(&store, " ANN@x.io", "correct horse", None).await.unwrap().email,
            "ann@x.io"
        );
        let wrong = accounts.login(&store, "ann@x.io", "wrong horse", None).await.unwrap_err();
        let unknown = accounts.login(&store, "bob@x.io", "wrong horse", None).await.unwrap_err();
        assert_eq!(wrong.to_string(), unknown.to_string());
        assert!(matches!(wrong, Error::Unauthenticated));
    }

    #[tokio::test]
    async fn an_attacker_elsewhere_never_locks_the_owner_out() {
        let store = MemoryStore::new();
        create_user(&store, "ann@x.io", "correct horse", false).await.unwrap();
        let accounts = Accounts::new(LoginThrottle::default()).await.unwrap();
        let attacker: IpAddr = "203.0.113.7".parse().unwrap();
        let owner: IpAddr = "198.51.100.2".parse().unwrap();
        for _ in 0..LoginThrottle::MAX_FAILURES_PER_ACCOUNT {
            let e = accounts.login(&store, "ann@x.io", "guess guess", Some(attacker)).await.unwrap_err();
            assert!(matches!(e, Error::Unauthenticated), "{e:?}");
        }
        // The attacker is throttled, even with the right password...
        let e = accounts.login(&store, "ann@x.io", "correct horse", Some(attacker)).await.unwrap_err();
        assert!(matches!(e, Error::RateLimited { .. }), "{e:?}");
        // ... the owner, elsewhere, is not.
        accounts.login(&store, "ann@x.io", "correct horse", Some(owner)).await.unwrap();
    }
}
