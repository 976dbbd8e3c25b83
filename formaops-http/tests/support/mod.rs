//! Router test harness: the real router over the in-memory store and the mock provider,
//! driven with `tower::ServiceExt::oneshot`.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use formaops_core::engine::{EngineConfig, FormaOps};
use formaops_core::provider::config::{ProviderEntry, ProviderSettings};
use formaops_core::provider::mock::MockSpec;
use formaops_core::store::{MemoryStore, Store};
use formaops_core::user::{Accounts, LoginThrottle, account};
use formaops_http::{AppState, HttpSettings};
use serde_json::{Value, json};
use tower::ServiceExt as _;

pub const PASSWORD: &str = "correct horse battery";
/// Provider whose every call fails permanently.
pub const FAILING_PROVIDER: &str = formaops_http::server::MOCK_FAIL_PROVIDER;
/// A mock that streams its reply in pieces over 200 ms (`partial` events).
pub const STREAMING_PROVIDER: &str = "mock-stream";

/// A router with two users logged in.
pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub store: Arc<dyn Store>,
    pub alice: String,
    pub bob: String,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<no error code>")
    }

    #[track_caller]
    pub fn expect(self, status: StatusCode) -> Self {
        assert_eq!(self.status, status, "body: {}", self.text);
        self
    }
}

pub fn settings() -> HttpSettings {
    HttpSettings { sync_wait: Duration::from_secs(10), body_limit: 64 * 1024, ..HttpSettings::default() }
}

pub async fn engine(store: Arc<dyn Store>, workers: bool) -> FormaOps {
    let config = EngineConfig { run_workers: workers, ..EngineConfig::default() };
    let mut providers = ProviderSettings::default();
    let mut streaming = ProviderEntry::mock(MockSpec { latency_ms: 200, ..MockSpec::default() });
    streaming.stream = Some(true);
    providers.providers.insert(STREAMING_PROVIDER.to_string(), streaming);
    formaops_http::server::register_providers(FormaOps::builder(store), &providers, true)
        .expect("providers")
        .config(config)
        .start()
        .await
        .expect("engine starts")
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with(true, settings()).await
    }

    pub async fn with(workers: bool, settings: HttpSettings) -> Self {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        account::create_user(store.as_ref(), "alice@example.com", PASSWORD, false).await.unwrap();
        account::create_user(store.as_ref(), "bob@example.com", PASSWORD, false).await.unwrap();
        let engine = engine(store.clone(), workers).await;
        Self::with_engine(store, engine, settings).await
    }

    /// The router over `engine` (built on `store`, which holds alice and bob), both logged in.
    pub async fn with_engine(store: Arc<dyn Store>, engine: FormaOps, settings: HttpSettings) -> Self {
        let auth = Arc::new(Accounts::new(LoginThrottle::default()).await.unwrap());
        let state = AppState::new(engine, auth, settings);
        let router = formaops_http::router(state.clone());
        let mut app = Self { router, state, store, alice: String::new(), bob: String::new() };
        app.alice = app.login("alice@example.com").await;
        app.bob = app.login("bob@example.com").await;
        app
    }

    pub async fn login(&self, email: &str) -> String {
        let r = self
            .call(Method::POST, "/api/auth/login", None, Some(json!({"email": email, "password": PASSWORD})))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["token"].as_str().unwrap().to_string()
    }

    pub async fn request(&self, req: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, headers, body, text }
    }

    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        self.call_with(method, path, token, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        };
        self.request(req.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Creates a prompt `name` with one required string variable `topic`; returns its id.
    pub async fn prompt(&self, token: &str, name: &str) -> String {
        self.prompt_with(
            token,
            json!({
                "name": name,
                "template": "Write about {{ topic }}.",
                "variables": [{"name": "topic", "type": "string", "required": true}],
            }),
        )
        .await
    }

    pub async fn prompt_with(&self, token: &str, body: Value) -> String {
        let r = self.post("/api/prompts", token, body).await.expect(StatusCode::CREATED);
        r.body["id"].as_str().unwrap().to_string()
    }
}
