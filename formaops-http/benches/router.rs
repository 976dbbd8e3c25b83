//! What the HTTP layer adds to a request, in process: the same operation through the full
//! router (middleware, auth lookup, JSON in and out) and directly on the engine, over the
//! in-memory store and the zero-latency mock provider. The difference is the server's own
//! cost, without sockets.
//!
//! `cargo bench -p formaops-http --bench router`

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use formaops_core::engine::{EngineConfig, ExecuteRequest, FormaOps};
use formaops_core::store::{MemoryStore, Store};
use formaops_core::user::{Accounts, LoginThrottle, account, token};
use formaops_http::{AppState, HttpSettings};
use serde_json::json;
use tower::ServiceExt as _;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (router, engine, user, token, prompt, execution) = rt.block_on(async {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let user = account::create_user(store.as_ref(), "b@x.y", "bench password", false).await.unwrap();
        let engine = formaops_http::server::register_providers(
            FormaOps::builder(store.clone()),
            &Default::default(),
            false,
        )
        .unwrap()
        .config(EngineConfig::default())
        .start()
        .await
        .unwrap();
        let auth = std::sync::Arc::new(Accounts::new(LoginThrottle::default()).await.unwrap());
        let state = AppState::new(engine.clone(), auth, HttpSettings::default());
        let (token, _) =
            token::issue(store.as_ref(), user.id, formaops_core::user::CredentialKind::Session, None, None)
                .await
                .unwrap();
        let spec = serde_json::from_value(json!({
            "name": "bench", "template": "Hello {{ name }}",
            "variables": [{"name": "name", "type": "string", "required": true}],
        }))
        .unwrap();
        let (prompt, _) = engine.create_prompt(user.id, spec).await.unwrap();
        let request = ExecuteRequest {
            prompt_id: prompt.id,
            inputs: json!({"name": "x"}).as_object().unwrap().clone(),
            ..Default::default()
        };
        let execution = engine.execute(user.id, request).await.unwrap();
        (formaops_http::router(state), engine, user.id, token, prompt.id, execution.id)
    });

    let mut group = c.benchmark_group("get_execution");
    group.bench_function("engine", |b| {
        b.to_async(&rt).iter(|| async { engine.get_execution(user, execution).await.unwrap() });
    });
    group.bench_function("router", |b| {
        b.to_async(&rt).iter(|| async {
            let req = Request::get(format!("/api/executions/{execution}"))
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            let res = router.clone().oneshot(req).await.unwrap();
            assert!(res.status().is_success());
            axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap()
        });
    });
    group.finish();

    let mut group = c.benchmark_group("execute_sync");
    group.bench_function("engine", |b| {
        b.to_async(&rt).iter(|| async {
            let request = ExecuteRequest {
                prompt_id: prompt,
                inputs: json!({"name": "x"}).as_object().unwrap().clone(),
                ..Default::default()
            };
            engine.execute(user, request).await.unwrap()
        });
    });
    group.bench_function("router", |b| {
        b.to_async(&rt).iter(|| async {
            let req = Request::post(format!("/api/prompts/{prompt}/execute"))
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Body::from(r#"{"inputs":{"name":"x"}}"#))
                .unwrap();
            let res = router.clone().oneshot(req).await.unwrap();
            assert!(res.status().is_success());
            axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap()
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
