//! Sign-in with JSON Web Tokens of trusted issuers (Supabase Auth, any OIDC-style issuer).
//!
//! - The operator configures each trusted issuer ([`IssuerSettings`]): its `iss`, the accepted
//!   `aud`, an explicit algorithm allow-list, and its keys: an HMAC shared secret (Supabase's
//!   legacy JWT secret, read from an environment variable or a file, never logged) or a JWKS
//!   (ES256 / RS256 / ...) from a file or from an operator-configured URL. Keys never come
//!   from the token.
//! - [`JwtVerifier::verify`] checks a bearer token with `jsonwebtoken`: the signature, `exp`
//!   and `nbf` with [`DEFAULT_LEEWAY_SECS`] of leeway, `iss`, `aud`, and the algorithm against
//!   the issuer's allow-list *and* the key's family (an HS256 token can never be checked
//!   against an RSA or EC key, so a token "signed" with a public key is refused; `none` is
//!   never accepted). Every failure is [`Error::Unauthenticated`].
//! - A JWKS from a URL is fetched on first use, with a timeout and a size cap; a token whose
//!   `kid` is unknown refetches it at most once per [`DEFAULT_REFETCH_INTERVAL`] (key rotation).
//! - [`sign_in`] maps the verified identity to a FormaOps user, found or created by
//!   (issuer, `sub`). Two issuers never share a user, and an external identity never becomes
//!   the local user with the same email: its user row gets a name of its own
//!   (`"<sub> via <issuer>"`, see [`account_name`]), and the token's `email` claim is kept with
//!   the identity ([`ExternalIdentity`]).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
pub use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use super::account::NO_PASSWORD;
use super::{ExternalIdentity, User};
use crate::ids::UserId;
use crate::store::Store;
use crate::{Error, Result};

/// Leeway on `exp` and `nbf` (seconds) unless configured.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// Least time between two JWKS fetches of one issuer.
pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// Time limit of one JWKS fetch.
pub const JWKS_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS document accepted (bytes).
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Longest bearer token looked at as a JWT (bytes).
pub const MAX_JWT_BYTES: usize = 16 * 1024;

/// The `[jwt]` section of the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    /// The trusted issuers (`[[jwt.issuers]]`).
    #[serde(default)]
    pub issuers: Vec<IssuerSettings>,
}

/// The issuer configured by environment variables, if `FORMAOPS_JWT_ISSUER` is set:
/// `FORMAOPS_JWT_AUDIENCE` (comma-separated; default `authenticated`), `FORMAOPS_JWT_ALGORITHMS`
/// (comma-separated; default `HS256` with a secret, `RS256,ES256` with a JWKS), and one key
/// source: `FORMAOPS_JWT_SECRET` (the secret itself), `FORMAOPS_JWT_JWKS_URL` or
/// `FORMAOPS_JWT_JWKS_FILE`.
pub fn issuer_from_env(env: impl Fn(&str) -> Option<String>) -> Option<IssuerSettings> {
    let issuer = env("FORMAOPS_JWT_ISSUER")?;
    let list =
        |v: String| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect::<Vec<_>>();
    let secret_env = env("FORMAOPS_JWT_SECRET").map(|_| "FORMAOPS_JWT_SECRET".to_string());
    let default_algorithms =
        if secret_env.is_some() { vec!["HS256".into()] } else { vec!["RS256".into(), "ES256".into()] };
    Some(IssuerSettings {
        issuer,
        audience: Audience::Many(
            env("FORMAOPS_JWT_AUDIENCE").map_or_else(|| vec!["authenticated".into()], list),
        ),
        algorithms: env("FORMAOPS_JWT_ALGORITHMS").map_or(default_algorithms, list),
        secret_env,
        secret_file: None,
        jwks_url: env("FORMAOPS_JWT_JWKS_URL"),
        jwks_file: env("FORMAOPS_JWT_JWKS_FILE").map(PathBuf::from),
        leeway_secs: None,
    })
}

/// One trusted issuer, as configured (TOML `[[jwt.issuers]]`, or the environment).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSettings {
    /// The exact `iss` claim (Supabase: `https://<project>.supabase.co/auth/v1`).
    pub issuer: String,
    /// Accepted `aud` values (Supabase: `authenticated`): a string or a list.
    pub audience: Audience,
    /// Accepted algorithms, e.g. `["HS256"]` or `["ES256", "RS256"]`.
    pub algorithms: Vec<String>,
    /// Name of the environment variable holding the HMAC shared secret.
    pub secret_env: Option<String>,
    /// File holding the HMAC shared secret (surrounding whitespace is ignored).
    pub secret_file: Option<PathBuf>,
    /// URL of the issuer's JWKS (Supabase: `https://<project>.supabase.co/auth/v1/.well-known/jwks.json`).
    pub jwks_url: Option<String>,
    /// File holding the issuer's JWKS.
    pub jwks_file: Option<PathBuf>,
    /// Leeway on `exp` and `nbf` in seconds (default [`DEFAULT_LEEWAY_SECS`]).
    pub leeway_secs: Option<u64>,
}

/// One audience or several.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// One accepted `aud`.
    One(String),
    /// Several accepted `aud` values.
    Many(Vec<String>),
}

impl Audience {
    fn values(&self) -> Vec<String> {
        match self {
            Self::One(a) => vec![a.clone()],
            Self::Many(a) => a.clone(),
        }
    }
}

/// The keys of an issuer, resolved from its settings.
#[derive(Clone)]
pub enum KeySource {
    /// An HMAC shared secret.
    Secret(Vec<u8>),
    /// A fixed key set (from a file).
    Jwks(JwkSet),
    /// A key set fetched from this URL.
    JwksUrl(String),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret(<redacted>)"),
            Self::Jwks(set) => write!(f, "Jwks({} keys)", set.keys.len()),
            Self::JwksUrl(url) => write!(f, "JwksUrl({url})"),
        }
    }
}

/// An issuer ready for [`JwtVerifier::new`].
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// The exact `iss`.
    pub issuer: String,
    /// Accepted `aud` values.
    pub audience: Vec<String>,
    /// The algorithm allow-list.
    pub algorithms: Vec<Algorithm>,
    /// Where the keys come from.
    pub keys: KeySource,
    /// Leeway on `exp` and `nbf` in seconds.
    pub leeway_secs: u64,
}

fn config_error(issuer: &str, message: impl std::fmt::Display) -> Error {
    Error::invalid_argument("jwt.issuers", format!("issuer {issuer:?}: {message}"))
}

impl IssuerSettings {
    /// Checks the settings and reads the keys (`env` looks up environment variables).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on field `jwt.issuers` naming the issuer and the problem: an
    /// empty or whitespace-containing issuer, no audience, an unknown or empty algorithm list,
    /// not exactly one key source, an HMAC algorithm without a secret or an asymmetric one with
    /// a secret, an unreadable secret or JWKS, a JWKS URL that is not http(s).
    pub fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> Result<IssuerConfig> {
        let iss = self.issuer.as_str();
        if iss.is_empty() || iss.chars().any(char::is_whitespace) {
            return Err(config_error(iss, "issuer must be non-empty and contain no whitespace"));
        }
        let audience = self.audience.values();
        if audience.is_empty() || audience.iter().any(String::is_empty) {
            return Err(config_error(iss, "audience must name at least one non-empty value"));
        }
        if self.algorithms.is_empty() {
            return Err(config_error(iss, "algorithms must list at least one algorithm"));
        }
        let mut algorithms = Vec::new();
        for name in &self.algorithms {
            let alg: Algorithm = name.parse().map_err(|_| {
                config_error(iss, format!("unknown algorithm {name:?} (e.g. HS256, RS256, ES256)"))
            })?;
            algorithms.push(alg);
        }
        let sources = [
            self.secret_env.is_some(),
            self.secret_file.is_some(),
            self.jwks_url.is_some(),
            self.jwks_file.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(config_error(iss, "set exactly one of secret_env, secret_file, jwks_url, jwks_file"));
        }
        let keys = if let Some(var) = &self.secret_env {
            let secret = env(var)
                .ok_or_else(|| config_error(iss, format!("environment variable {var} is not set")))?;
            KeySource::Secret(secret.trim().as_bytes().to_vec())
        } else if let Some(path) = &self.secret_file {
            let secret = std::fs::read_to_string(path)
                .map_err(|e| config_error(iss, format!("reading secret file {}: {e}", path.display())))?;
            KeySource::Secret(secret.trim().as_bytes().to_vec())
        } else if let Some(path) = &self.jwks_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| config_error(iss, format!("reading JWKS file {}: {e}", path.display())))?;
            let set: JwkSet = serde_json::from_str(&text).map_err(|e| {
                config_error(iss, format!("JWKS file {} is not a key set: {e}", path.display()))
            })?;
            KeySource::Jwks(set)
        } else if let Some(url) = &self.jwks_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(config_error(iss, "jwks_url must be an http(s) URL"));
            }
            KeySource::JwksUrl(url.clone())
        } else {
            return Err(config_error(iss, "no key source"));
        };
        let hmac = matches!(keys, KeySource::Secret(_));
        if let KeySource::Secret(s) = &keys
            && s.is_empty()
        {
            return Err(config_error(iss, "the shared secret is empty"));
        }
        for alg in &algorithms {
            if is_hmac(*alg) != hmac {
                return Err(config_error(
                    iss,
                    format!(
                        "algorithm {alg:?} does not fit the key source (HS* needs a secret, RS*/ES*/PS*/EdDSA a JWKS)"
                    ),
                ));
            }
        }
        Ok(IssuerConfig {
            issuer: self.issuer.clone(),
            audience,
            algorithms,
            keys,
            leeway_secs: self.leeway_secs.unwrap_or(DEFAULT_LEEWAY_SECS),
        })
    }
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// The claims FormaOps reads from a verified token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user's id at the issuer.
    pub sub: String,
    /// The user's email, if the issuer states it.
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Deserialize)]
struct IssOnly {
    iss: Option<String>,
}

#[derive(Debug)]
struct JwksState {
    keys: JwkSet,
    last_fetch: Option<Instant>,
}

struct Issuer {
    config: IssuerConfig,
    secret: Option<DecodingKey>,
    /// Keys of a JWKS issuer; the lock is held across a fetch so concurrent misses fetch once.
    jwks: tokio::sync::Mutex<JwksState>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `config` redacts the secret; the decoding key is never printed.
        f.debug_struct("Issuer").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Verifies bearer JWTs against the configured issuers.
#[derive(Debug)]
pub struct JwtVerifier {
    issuers: Vec<Issuer>,
    client: reqwest::Client,
    refetch_interval: Duration,
}

/// Whether a bearer token has the shape of a JWS compact JWT (three non-empty base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    token.len() <= MAX_JWT_BYTES
        && parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

fn reject(reason: impl std::fmt::Display) -> Error {
    tracing::debug!(reason = %reason, "JWT refused");
    Error::Unauthenticated
}

impl JwtVerifier {
    /// A verifier for these issuers.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on field `jwt.issuers` when two share an `iss`;
    /// [`Error::Internal`] when the HTTP client cannot be built.
    pub fn new(issuers: Vec<IssuerConfig>) -> Result<Self> {
        let mut seen = HashSet::new();
        for i in &issuers {
            if !seen.insert(i.issuer.clone()) {
                return Err(config_error(&i.issuer, "is configured twice"));
            }
        }
        let client = reqwest::Client::builder()
            .timeout(JWKS_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::internal(format!("building the JWKS client: {e}")))?;
        let issuers = issuers
            .into_iter()
            .map(|config| {
                let secret = match &config.keys {
                    KeySource::Secret(s) => Some(DecodingKey::from_secret(s)),
                    _ => None,
                };
                let keys = match &config.keys {
                    KeySource::Jwks(set) => set.clone(),
                    _ => JwkSet { keys: Vec::new() },
                };
                Issuer { config, secret, jwks: tokio::sync::Mutex::new(JwksState { keys, last_fetch: None }) }
            })
            .collect();
        Ok(Self { issuers, client, refetch_interval: DEFAULT_REFETCH_INTERVAL })
    }

    /// Sets the least time between two JWKS fetches of one issuer (tests shorten it).
    #[must_use]
    pub fn with_refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    /// Whether any issuer is configured.
    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// Verifies a token and finds or creates its user ([`sign_in`]).
    ///
    /// # Errors
    /// As [`Self::verify`] and [`sign_in`].
    pub async fn authenticate(&self, store: &dyn Store, token: &str) -> Result<User> {
        let claims = self.verify(token).await?;
        sign_in(store, &claims).await
    }

    /// Verifies a token and returns its claims.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for any token that is not a valid JWT of a configured issuer
    /// (the reason is logged at debug level, never the token).
    pub async fn verify(&self, token: &str) -> Result<Claims> {
        if !looks_like_jwt(token) {
            return Err(reject("not a JWT"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| reject(format!("header: {e}")))?;
        // The issuer only selects the configuration; everything is verified below.
        let peek: IssOnly = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|e| reject(format!("claims: {e}")))?;
        let iss = peek.iss.ok_or_else(|| reject("no iss claim"))?;
        let issuer =
            self.issuers.iter().find(|i| i.config.issuer == iss).ok_or_else(|| reject("unknown issuer"))?;
        let alg = header.alg;
        if !issuer.config.algorithms.contains(&alg) {
            return Err(reject(format!("algorithm {alg:?} is not allowed for this issuer")));
        }
        let key = match &issuer.secret {
            Some(secret) => secret.clone(),
            None => {
                let jwk = self.find_key(issuer, header.kid.as_deref()).await?;
                if let Some(key_alg) = jwk.common.key_algorithm
                    && key_alg.to_string() != format!("{alg:?}")
                {
                    return Err(reject(format!("the key is for {key_alg}, the token uses {alg:?}")));
                }
                DecodingKey::from_jwk(&jwk).map_err(|e| reject(format!("unusable key: {e}")))?
            }
        };
        if key.family() != alg.family() {
            return Err(reject(format!("algorithm {alg:?} does not fit the issuer's key")));
        }
        let mut validation = Validation::new(alg);
        validation.leeway = issuer.config.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&issuer.config.issuer]);
        validation.set_audience(&issuer.config.audience);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| reject(e.to_string()))?;
        if data.claims.sub.is_empty() {
            return Err(reject("empty sub"));
        }
        Ok(data.claims)
    }

    /// The issuer's key for `kid`; refetches a URL key set when `kid` is unknown, at most once
    /// per `refetch_interval`.
    async fn find_key(&self, issuer: &Issuer, kid: Option<&str>) -> Result<Jwk> {
        let mut state = issuer.jwks.lock().await;
        if let Some(jwk) = pick(&state.keys, kid) {
            return Ok(jwk);
        }
        let KeySource::JwksUrl(url) = &issuer.config.keys else {
            return Err(reject("unknown kid"));
        };
        if state.last_fetch.is_some_and(|t| t.elapsed() < self.refetch_interval) {
            return Err(reject("unknown kid; the key set was fetched recently"));
        }
        state.last_fetch = Some(Instant::now());
        match self.fetch(url).await {
            Ok(keys) => state.keys = keys,
            Err(e) => {
                tracing::warn!(issuer = %issuer.config.issuer, url = %url, error = %e, "JWKS fetch failed");
                return Err(Error::Unauthenticated);
            }
        }
        pick(&state.keys, kid).ok_or_else(|| reject("unknown kid after refetching the key set"))
    }

    async fn fetch(&self, url: &str) -> std::result::Result<JwkSet, String> {
        let mut response = self.client.get(url).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        if response.content_length().is_some_and(|n| n > MAX_JWKS_BYTES as u64) {
            return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("not a key set: {e}"))
    }
}

/// The key named `kid`; without a `kid`, the only key of a one-key set.
fn pick(set: &JwkSet, kid: Option<&str>) -> Option<Jwk> {
    match kid {
        Some(kid) => set.find(kid).cloned(),
        None if set.keys.len() == 1 => set.keys.first().cloned(),
        None => None,
    }
}

/// The name (the `email` column) of the user of an external identity: `"<sub> via <iss>"`.
/// It contains whitespace, so it can never be a local account's email, and it is distinct for
/// every (issuer, subject) since configured issuers contain no whitespace.
pub fn account_name(issuer: &str, subject: &str) -> String {
    format!("{subject} via {issuer}")
}

/// Finds or creates the user of a verified identity, by (issuer, `sub`); safe against a
/// concurrent call.
///
/// # Errors
/// [`Error::Unauthenticated`] for an unusable `sub`; store errors.
pub async fn sign_in(store: &dyn Store, claims: &Claims) -> Result<User> {
    if claims.sub.len() > 255 || !crate::text::is_storable(&claims.sub) {
        return Err(reject("unusable sub"));
    }
    if let Some(user) = store.user_by_identity(&claims.iss, &claims.sub).await? {
        return Ok(user);
    }
    let now = Utc::now();
    let user = User {
        id: UserId::new(),
        email: account_name(&claims.iss, &claims.sub),
        is_admin: false,
        created_at: now,
    };
    let email = claims
        .email
        .as_deref()
        .filter(|e| e.len() <= super::account::MAX_EMAIL_BYTES && crate::text::is_storable(e))
        .map(super::account::canonical_email);
    let identity = ExternalIdentity {
        issuer: claims.iss.clone(),
        subject: claims.sub.clone(),
        user_id: user.id,
        email,
        created_at: now,
    };
    match store.create_identity_user(&user, NO_PASSWORD, &identity).await {
        Ok(()) => Ok(user),
        Err(Error::Conflict { .. }) => store
            .user_by_identity(&claims.iss, &claims.sub)
            .await?
            .ok_or_else(|| Error::internal("an external identity was reported as existing but is not found")),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
