//! The OpenAI-compatible endpoint's parameters: `response_format` (what reaches the
//! provider, and the 400s naming the wrong field), `n`, and unknown fields; and the
//! `finish_reason` it reports for an output cut at the token limit.
//!
//! The provider here is a mock that answers with the structured-output request it was given
//! (`ResponseSchema` as JSON, `null` for none), so each reply shows what the engine sent on.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use formaops_core::engine::{EngineConfig, FormaOps};
use formaops_core::execution::TokenUsage;
use formaops_core::provider::mock::MockProvider;
use formaops_core::provider::{Completion, CompletionRequest, LlmProvider, ProviderError};
use formaops_core::store::{MemoryStore, Store};
use formaops_core::user::account;
use serde_json::{Value, json};
use support::{PASSWORD, TestApp};

const CHAT: &str = "/openai/v1/chat/completions";

/// A router whose provider `rec` answers with the response schema it received.
async fn app() -> TestApp {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    account::create_user(store.as_ref(), "alice@example.com", PASSWORD, false).await.unwrap();
    account::create_user(store.as_ref(), "bob@example.com", PASSWORD, false).await.unwrap();
    let rec = MockProvider::new()
        .with_reply_fn(|req| serde_json::to_string(&req.response_schema).unwrap_or_default());
    let engine = FormaOps::builder(store.clone())
        .provider("rec", Arc::new(rec))
        .provider("cut", Arc::new(CutAtTheLimit))
        .config(EngineConfig { default_provider: "rec".into(), ..EngineConfig::default() })
        .start()
        .await
        .unwrap();
    TestApp::with_engine(store, engine, support::settings()).await
}

/// Answers every call with an output cut at the token limit (`finish_reason: "length"`).
#[derive(Debug)]
struct CutAtTheLimit;

#[async_trait::async_trait]
impl LlmProvider for CutAtTheLimit {
    fn name(&self) -> &str {
        "cut"
    }

    async fn complete(&self, _request: CompletionRequest) -> Result<Completion, ProviderError> {
        let usage = TokenUsage { input: 5, output: 6, total: 11, ..TokenUsage::default() };
        let mut reply = Completion::new("The capital of France is", usage, Duration::ZERO, Some("m".into()));
        reply.finish_reason = Some("length".into());
        Ok(reply)
    }
}

fn call(response_format: Value) -> Value {
    json!({"model": "rec/m", "messages": [{"role": "user", "content": "hi"}], "response_format": response_format})
}

/// What the provider received, from a 200 reply.
async fn sent(app: &TestApp, body: Value) -> Value {
    let r = app.post(CHAT, &app.alice, body).await.expect(StatusCode::OK);
    serde_json::from_str(r.body["choices"][0]["message"]["content"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn response_format_reaches_the_provider() {
    let app = app().await;
    assert_eq!(sent(&app, call(json!({"type": "text"}))).await, Value::Null);
    assert_eq!(sent(&app, call(Value::Null)).await, Value::Null);
    let mut no_format = call(Value::Null);
    no_format.as_object_mut().unwrap().remove("response_format");
    assert_eq!(sent(&app, no_format).await, Value::Null);

    // JSON mode: a null schema, which the OpenAI provider sends as {"type": "json_object"}.
    let got = sent(&app, call(json!({"type": "json_object"}))).await;
    assert_eq!(got, json!({"name": "json_object", "schema": null, "strict": false}));

    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    let got = sent(
        &app,
        call(json!({"type": "json_schema",
            "json_schema": {"name": "place", "schema": schema, "strict": true, "description": "ignored"}})),
    )
    .await;
    assert_eq!(got, json!({"name": "place", "schema": schema, "strict": true}));
    let got =
        sent(&app, call(json!({"type": "json_schema", "json_schema": {"name": "p-1", "schema": {}}}))).await;
    assert_eq!(got, json!({"name": "p-1", "schema": {}, "strict": false}));
}

#[tokio::test]
async fn a_managed_prompt_passes_it_too_and_its_own_schema_rule_wins() {
    let app = app().await;
    let schema =
        json!({"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]});
    app.prompt_with(
        &app.alice,
        json!({"name": "scored", "template": "Score {{ x }}.",
            "variables": [{"name": "x", "type": "string", "required": true}],
            "validations": [{"type": "json_schema", "schema": schema}]}),
    )
    .await;
    let body = |validate: bool| {
        json!({"model": "formaops::scored", "inputs": {"x": "a"}, "validate_output": validate,
            "response_format": {"type": "json_object"}})
    };
    // Without output validation the caller's format is sent.
    assert_eq!(sent(&app, body(false)).await["name"], "json_object");
    // With it, the version's `json_schema` rule is what the provider is asked for.
    // (Sent non-strict: without `additionalProperties: false` the schema does not fit strict
    // mode, and the rule's `strict` is `auto`.)
    let got = sent(&app, body(true)).await;
    assert_eq!(got, json!({"name": "output", "schema": schema, "strict": false}));
}

#[tokio::test]
async fn a_bad_response_format_is_a_400_naming_the_field() {
    let app = app().await;
    let cases = [
        (json!({"type": "xml"}), "response_format.type", "\"xml\" is not supported"),
        (json!({"type": 3}), "response_format.type", "expected a string"),
        (json!({}), "response_format.type", "required"),
        (json!("json_object"), "response_format", "expected an object"),
        (json!({"type": "json_schema"}), "response_format.json_schema", "`name` and `schema`"),
        (
            json!({"type": "json_schema", "json_schema": {"schema": {}}}),
            "response_format.json_schema.name",
            "1 to 64",
        ),
        (
            json!({"type": "json_schema", "json_schema": {"name": "has space", "schema": {}}}),
            "response_format.json_schema.name",
            "letters, digits",
        ),
        (
            json!({"type": "json_schema", "json_schema": {"name": "n".repeat(65), "schema": {}}}),
            "response_format.json_schema.name",
            "1 to 64",
        ),
        (
            json!({"type": "json_schema", "json_schema": {"name": "x"}}),
            "response_format.json_schema.schema",
            "JSON Schema object",
        ),
        (
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {}, "strict": "yes"}}),
            "response_format.json_schema.strict",
            "boolean",
        ),
    ];
    let long = "x".repeat(10_000);
    let r = app.post(CHAT, &app.alice, call(json!({"type": long}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.len() < 1_000, "the echoed type is bounded: {} bytes", r.text.len());
    for (format, param, message) in cases {
        let r = app.post(CHAT, &app.alice, call(format.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{format}: {}", r.text);
        let e = &r.body["error"];
        assert_eq!(e["type"], "invalid_request_error", "{}", r.text);
        assert_eq!(e["param"], param, "{format}: {}", r.text);
        let text = e["message"].as_str().unwrap();
        assert!(text.contains(param) && text.contains(message), "{format}: {text}");
    }
    // Nothing was executed for a refused request.
    let list = app.get("/api/executions", &app.alice).await.expect(StatusCode::OK);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn n_must_be_one_and_unknown_fields_are_ignored() {
    let app = app().await;
    for n in [0, 2, 8] {
        let mut body = call(json!({"type": "text"}));
        body["n"] = json!(n);
        let r = app.post(CHAT, &app.alice, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "n = {n}: {}", r.text);
        assert_eq!(r.body["error"]["param"], "n");
        assert_eq!(r.body["error"]["type"], "invalid_request_error");
        assert!(r.body["error"]["message"].as_str().unwrap().contains("n = 1"), "{}", r.text);
    }
    let mut body = call(json!({"type": "text"}));
    body["n"] = json!(1);
    // Fields the endpoint does not know are ignored, as the README says.
    body["tools"] = json!([{"type": "function", "function": {"name": "f"}}]);
    body["logprobs"] = json!(true);
    body["user"] = json!("u-1");
    body["some_future_field"] = json!({"x": 1});
    assert_eq!(sent(&app, body).await, Value::Null);
}

#[tokio::test]
async fn an_output_cut_at_the_token_limit_finishes_with_length() {
    let app = app().await;
    let body = json!({"model": "cut/m", "messages": [{"role": "user", "content": "capital?"}]});
    let r = app.post(CHAT, &app.alice, body.clone()).await.expect(StatusCode::OK);
    assert_eq!(r.body["choices"][0]["finish_reason"], "length");
    assert_eq!(r.body["choices"][0]["message"]["content"], "The capital of France is");

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let r = app.post(CHAT, &app.alice, streamed).await.expect(StatusCode::OK);
    let finishes: Vec<Value> = r
        .text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|chunk| chunk["choices"][0].get("finish_reason").cloned())
        .filter(|reason| !reason.is_null())
        .collect();
    assert_eq!(finishes, vec![json!("length")], "{}", r.text);

    // A normal reply still finishes with `stop`.
    let r = app.post(CHAT, &app.alice, call(Value::Null)).await.expect(StatusCode::OK);
    assert_eq!(r.body["choices"][0]["finish_reason"], "stop");
}
