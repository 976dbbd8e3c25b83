#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};

use super::*;
use crate::store::MemoryStore;

const RSA_A: &str = include_str!("rsa_a.pem");
const RSA_A_PUBLIC: &str = include_str!("rsa_a.pub.pem");
const RSA_B: &str = include_str!("rsa_b.pem");
const EC_A: &str = include_str!("ec_a.pem");
const ISS: &str = "https://project.supabase.co/auth/v1";
const SECRET: &str = "a-test-secret-of-at-least-32-bytes-long";

fn now() -> i64 {
    Utc::now().timestamp()
}

fn claims(iss: &str, aud: &str, sub: &str) -> Value {
    json!({"iss": iss, "aud": aud, "sub": sub, "email": "Ann@Example.com", "exp": now() + 600, "iat": now()})
}

fn rsa(pem: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()
}

fn mint(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, key).unwrap()
}

fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, alg).unwrap();
    jwk.common.key_id = Some(kid.to_string());
    jwk
}

fn hs_issuer() -> IssuerConfig {
    IssuerConfig {
        issuer: ISS.into(),
        audience: vec!["authenticated".into()],
        algorithms: vec![Algorithm::HS256],
        keys: KeySource::Secret(SECRET.as_bytes().to_vec()),
        leeway_secs: DEFAULT_LEEWAY_SECS,
    }
}

/// A JWKS served on loopback; counts its fetches.
struct JwksServer {
    url: String,
    keys: Arc<Mutex<JwkSet>>,
    fetches: Arc<AtomicUsize>,
}

async fn jwks_server(keys: Vec<Jwk>) -> JwksServer {
    let keys = Arc::new(Mutex::new(JwkSet { keys }));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (k, f) = (keys.clone(), fetches.clone());
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let (k, f) = (k.clone(), f.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                let set = k.lock().unwrap().clone();
                axum::Json(set)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    JwksServer { url: format!("http://{addr}/jwks.json"), keys, fetches }
}

fn url_issuer(url: &str, algorithms: Vec<Algorithm>) -> IssuerConfig {
    IssuerConfig {
        issuer: ISS.into(),
        audience: vec!["authenticated".into()],
        algorithms,
        keys: KeySource::JwksUrl(url.into()),
        leeway_secs: DEFAULT_LEEWAY_SECS,
    }
}

async fn refused(v: &JwtVerifier, token: &str) {
    let e = v.verify(token).await.unwrap_err();
    assert!(matches!(e, Error::Unauthenticated), "{e:?}");
}

#[tokio::test]
async fn hs256_valid_and_invalid_tokens() {
    let v = JwtVerifier::new(vec![hs_issuer()]).unwrap();
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let good = claims(ISS, "authenticated", "user-1");
    let c = v.verify(&mint(Algorithm::HS256, None, &key, &good)).await.unwrap();
    assert_eq!((c.iss.as_str(), c.sub.as_str()), (ISS, "user-1"));
    assert_eq!(c.email.as_deref(), Some("Ann@Example.com"));

    // Expired beyond the leeway; within the leeway still accepted.
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 120);
    refused(&v, &mint(Algorithm::HS256, None, &key, &expired)).await;
    let mut just_expired = good.clone();
    just_expired["exp"] = json!(now() - 5);
    v.verify(&mint(Algorithm::HS256, None, &key, &just_expired)).await.unwrap();
    // Not yet valid.
    let mut early = good.clone();
    early["nbf"] = json!(now() + 300);
    refused(&v, &mint(Algorithm::HS256, None, &key, &early)).await;
    // Wrong iss, wrong aud, no sub, no exp.
    refused(&v, &mint(Algorithm::HS256, None, &key, &claims("https://evil.example", "authenticated", "u")))
        .await;
    refused(&v, &mint(Algorithm::HS256, None, &key, &claims(ISS, "anon", "u"))).await;
    let mut no_sub = good.clone();
    no_sub.as_object_mut().unwrap().remove("sub");
    refused(&v, &mint(Algorithm::HS256, None, &key, &no_sub)).await;
    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    refused(&v, &mint(Algorithm::HS256, None, &key, &no_exp)).await;
    // Another secret, a tampered signature, a tampered payload.
    refused(&v, &mint(Algorithm::HS256, None, &EncodingKey::from_secret(b"another secret entirely"), &good))
        .await;
    let token = mint(Algorithm::HS256, None, &key, &good);
    let (rest, sig) = token.rsplit_once('.').unwrap();
    let flipped = match sig.strip_prefix('A') {
        Some(rest) => format!("B{rest}"),
        None => format!("A{}", &sig[1..]),
    };
    refused(&v, &format!("{rest}.{flipped}")).await;
    let parts: Vec<&str> = token.split('.').collect();
    let other = mint(Algorithm::HS256, None, &key, &claims(ISS, "authenticated", "user-2"));
    let other_payload = other.split('.').nth(1).unwrap();
    refused(&v, &format!("{}.{}.{}", parts[0], other_payload, parts[2])).await;
    // HS512 is not on the allow-list even with the right secret.
    refused(&v, &mint(Algorithm::HS512, None, &key, &good)).await;
}

#[tokio::test]
async fn alg_none_and_garbage_are_refused() {
    use base64::Engine as _;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let v = JwtVerifier::new(vec![hs_issuer()]).unwrap();
    let payload = b64(&claims(ISS, "authenticated", "u"));
    let none = b64(&json!({"alg": "none", "typ": "JWT"}));
    refused(&v, &format!("{none}.{payload}.")).await;
    refused(&v, &format!("{none}.{payload}.c2ln")).await;
    refused(&v, "fos_not-a-jwt").await;
    refused(&v, "a.b.c").await;
    refused(&v, &format!("{}.{}.{}", "a".repeat(MAX_JWT_BYTES), payload, "c")).await;
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let server = jwks_server(vec![jwk(&rsa(RSA_A), Algorithm::RS256, "a")]).await;
    let public_as_secret = EncodingKey::from_secret(RSA_A_PUBLIC.as_bytes());
    let forged = mint(Algorithm::HS256, Some("a"), &public_as_secret, &claims(ISS, "authenticated", "u"));
    // Refused by the allow-list...
    let v = JwtVerifier::new(vec![url_issuer(&server.url, vec![Algorithm::RS256])]).unwrap();
    refused(&v, &forged).await;
    // ... and by the key's family even if HS256 were (wrongly) allowed next to RS256.
    let v =
        JwtVerifier::new(vec![url_issuer(&server.url, vec![Algorithm::RS256, Algorithm::HS256])]).unwrap();
    refused(&v, &forged).await;
    // The genuine RS256 token passes.
    v.verify(&mint(Algorithm::RS256, Some("a"), &rsa(RSA_A), &claims(ISS, "authenticated", "u")))
        .await
        .unwrap();
}

#[tokio::test]
async fn es256_from_a_jwks_file_and_unknown_kid() {
    let ec = EncodingKey::from_ec_pem(EC_A.as_bytes()).unwrap();
    let set = JwkSet { keys: vec![jwk(&ec, Algorithm::ES256, "ec-1")] };
    let dir = std::env::temp_dir().join(format!("formaops-jwks-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    std::fs::write(&path, serde_json::to_string(&set).unwrap()).unwrap();
    let settings: IssuerSettings = toml::from_str(&format!(
        "issuer = \"{ISS}\"\naudience = \"authenticated\"\nalgorithms = [\"ES256\"]\njwks_file = {:?}\n",
        path.display().to_string()
    ))
    .unwrap();
    let v = JwtVerifier::new(vec![settings.resolve(|_| None).unwrap()]).unwrap();
    let c = claims(ISS, "authenticated", "u");
    v.verify(&mint(Algorithm::ES256, Some("ec-1"), &ec, &c)).await.unwrap();
    refused(&v, &mint(Algorithm::ES256, Some("ec-2"), &ec, &c)).await;
    // The RSA key is not in the set, whatever its kid says.
    refused(&v, &mint(Algorithm::RS256, Some("ec-1"), &rsa(RSA_A), &c)).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn key_rotation_refetches_at_most_once_per_interval() {
    let server = jwks_server(vec![jwk(&rsa(RSA_A), Algorithm::RS256, "a")]).await;
    let interval = Duration::from_millis(400);
    let v = JwtVerifier::new(vec![url_issuer(&server.url, vec![Algorithm::RS256])])
        .unwrap()
        .with_refetch_interval(interval);
    let c = claims(ISS, "authenticated", "u");
    let token_a = mint(Algorithm::RS256, Some("a"), &rsa(RSA_A), &c);
    let token_b = mint(Algorithm::RS256, Some("b"), &rsa(RSA_B), &c);
    v.verify(&token_a).await.unwrap();
    v.verify(&token_a).await.unwrap();
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1, "the key set is fetched once, then cached");

    // The issuer rotates to key b.
    server.keys.lock().unwrap().keys = vec![jwk(&rsa(RSA_B), Algorithm::RS256, "b")];
    // Within the interval an unknown kid does not refetch, however often it is presented.
    for _ in 0..5 {
        refused(&v, &token_b).await;
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1, "refetching is rate-limited");
    // After the interval, one refetch picks up the new key.
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    v.verify(&token_b).await.unwrap();
    v.verify(&token_b).await.unwrap();
    assert_eq!(server.fetches.load(Ordering::SeqCst), 2);
    // The old key is gone with the old set.
    refused(&v, &token_a).await;
    assert_eq!(server.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn jwks_over_the_size_cap_is_refused() {
    let one = jwk(&rsa(RSA_A), Algorithm::RS256, "k");
    let big: Vec<Jwk> = (0..2000)
        .map(|i| {
            let mut k = one.clone();
            k.common.key_id = Some(format!("k{i}"));
            k
        })
        .collect();
    let server = jwks_server(big).await;
    let v = JwtVerifier::new(vec![url_issuer(&server.url, vec![Algorithm::RS256])]).unwrap();
    refused(&v, &mint(Algorithm::RS256, Some("k1"), &rsa(RSA_A), &claims(ISS, "authenticated", "u"))).await;
}

#[test]
fn settings_are_checked() {
    let base = IssuerSettings {
        issuer: ISS.into(),
        audience: Audience::One("authenticated".into()),
        algorithms: vec!["HS256".into()],
        secret_env: Some("SECRET_VAR".into()),
        secret_file: None,
        jwks_url: None,
        jwks_file: None,
        leeway_secs: None,
    };
    let env = |name: &str| (name == "SECRET_VAR").then(|| SECRET.to_string());
    let ok = base.resolve(env).unwrap();
    assert!(matches!(ok.keys, KeySource::Secret(ref s) if s == SECRET.as_bytes()));
    assert!(!format!("{ok:?}").contains(SECRET), "the secret is never printed");
    let err = |s: IssuerSettings| s.resolve(env).unwrap_err().to_string();
    assert!(
        err(IssuerSettings { secret_env: Some("UNSET_VAR".into()), ..base.clone() }).contains("UNSET_VAR")
    );
    assert!(err(IssuerSettings { algorithms: vec![], ..base.clone() }).contains("algorithms"));
    assert!(
        err(IssuerSettings { algorithms: vec!["none".into()], ..base.clone() }).contains("unknown algorithm")
    );
    assert!(
        err(IssuerSettings { algorithms: vec!["RS256".into()], ..base.clone() }).contains("does not fit")
    );
    assert!(
        err(IssuerSettings { jwks_url: Some("https://x/jwks.json".into()), ..base.clone() })
            .contains("exactly one")
    );
    assert!(
        err(IssuerSettings { secret_env: None, jwks_url: Some("file:///etc/passwd".into()), ..base.clone() })
            .contains("http(s)")
    );
    assert!(err(IssuerSettings { issuer: "a b".into(), ..base.clone() }).contains("whitespace"));
    assert!(err(IssuerSettings { audience: Audience::Many(vec![]), ..base.clone() }).contains("audience"));
    let twice = JwtVerifier::new(vec![ok.clone(), ok]).unwrap_err();
    assert!(twice.to_string().contains("twice"), "{twice}");
}

#[tokio::test]
async fn sign_in_maps_issuer_and_subject_to_distinct_users() {
    let store = MemoryStore::new();
    let local = super::super::account::ensure_user(&store, "ann@example.com").await.unwrap();
    let c = |iss: &str, sub: &str| Claims {
        iss: iss.into(),
        sub: sub.into(),
        email: Some("Ann@Example.com".into()),
    };
    let a = sign_in(&store, &c(ISS, "s1")).await.unwrap();
    assert_eq!(sign_in(&store, &c(ISS, "s1")).await.unwrap(), a, "found again by (iss, sub)");
    let other_issuer = sign_in(&store, &c("https://other.example", "s1")).await.unwrap();
    let other_sub = sign_in(&store, &c(ISS, "s2")).await.unwrap();
    let ids = [local.id, a.id, other_issuer.id, other_sub.id];
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 4, "the same email never merges accounts");
    assert_eq!(a.email, account_name(ISS, "s1"));
    assert!(!a.is_admin);
}
