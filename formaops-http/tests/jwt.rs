//! Sign-in with a JWT of a trusted issuer, through the real router: a valid token reaches
//! only its own user's data; bad tokens are 401.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use formaops_core::user::jwt::{
    Algorithm, DEFAULT_LEEWAY_SECS, IssuerConfig, JwtVerifier, KeySource, account_name,
};
use formaops_http::HttpSettings;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};
use support::TestApp;

const ISS: &str = "https://project.supabase.co/auth/v1";
const SECRET: &str = "router-test-secret-of-32-bytes-at-least";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn token_with(claims: Value) -> String {
    encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn token(sub: &str) -> String {
    token_with(
        json!({"iss": ISS, "aud": "authenticated", "sub": sub, "email": "alice@example.com", "exp": now() + 600}),
    )
}

async fn app() -> TestApp {
    let issuer = IssuerConfig {
        issuer: ISS.into(),
        audience: vec!["authenticated".into()],
        algorithms: vec![Algorithm::HS256],
        keys: KeySource::Secret(SECRET.as_bytes().to_vec()),
        leeway_secs: DEFAULT_LEEWAY_SECS,
    };
    let jwt = Some(Arc::new(JwtVerifier::new(vec![issuer]).unwrap()));
    TestApp::with(true, HttpSettings { jwt, ..support::settings() }).await
}

#[tokio::test]
async fn a_jwt_user_reaches_only_its_own_data() {
    let app = app().await;
    let (ann, other) = (token("sub-ann"), token("sub-other"));
    let me = app.get("/api/auth/me", &ann).await.expect(StatusCode::OK);
    assert_eq!(me.body["email"], account_name(ISS, "sub-ann").as_str(), "{}", me.text);
    let id = app.prompt(&ann, "jwt-prompt").await;
    let alice_prompt = app.prompt(&app.alice, "alice-prompt").await;

    // A second token of the same subject is the same user.
    let again = token("sub-ann");
    let list = app.get("/api/prompts", &again).await.expect(StatusCode::OK);
    let ids: Vec<&str> =
        list.body["items"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![id.as_str()], "only its own prompt, not alice's (same email claim)");

    // Another subject, and the local user with the same email, see nothing of it.
    let list = app.get("/api/prompts", &other).await.expect(StatusCode::OK);
    assert!(list.body["items"].as_array().unwrap().is_empty(), "{}", list.text);
    app.get(&format!("/api/prompts/{id}"), &other).await.expect(StatusCode::NOT_FOUND);
    app.get(&format!("/api/prompts/{id}"), &app.alice).await.expect(StatusCode::NOT_FOUND);
    app.get(&format!("/api/prompts/{alice_prompt}"), &ann).await.expect(StatusCode::NOT_FOUND);

    // Logging out revokes nothing for a JWT.
    app.call(Method::POST, "/api/auth/logout", Some(&ann), None).await.expect(StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn bad_tokens_are_401() {
    let app = app().await;
    let base = json!({"iss": ISS, "aud": "authenticated", "sub": "s", "exp": now() + 600});
    let with = |k: &str, v: Value| {
        let mut c = base.clone();
        c[k] = v;
        token_with(c)
    };
    let good = token_with(base.clone());
    let tampered = format!("{}x", &good[..good.len() - 1]);
    let bad = [
        with("exp", json!(now() - 300)),
        with("nbf", json!(now() + 300)),
        with("iss", json!("https://evil.example")),
        with("aud", json!("anon")),
        tampered,
        encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            &base,
            &EncodingKey::from_secret(b"wrong secret"),
        )
        .unwrap(),
    ];
    for t in &bad {
        let r = app.call(Method::GET, "/api/prompts", Some(t), None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{t}: {}", r.text);
    }
    app.get("/api/prompts", &good).await.expect(StatusCode::OK);
}

#[tokio::test]
async fn without_issuers_jwts_are_refused() {
    let app = TestApp::new().await;
    let r = app.call(Method::GET, "/api/prompts", Some(&token("s")), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
}
