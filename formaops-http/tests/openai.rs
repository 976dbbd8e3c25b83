//! The OpenAI-compatible endpoint through the real router, over the in-memory store and
//! the mock provider.

#![allow(clippy::unwrap_used)]

mod support;

use axum::http::StatusCode;
use serde_json::json;
use support::TestApp;

const CHAT: &str = "/openai/v1/chat/completions";

#[tokio::test]
async fn a_managed_prompt_by_name_answers_in_openai_shape() {
    let app = TestApp::new().await;
    app.prompt(&app.alice, "essay").await;
    let r = app
        .post(
            CHAT,
            &app.alice,
            json!({"model": "formaops::essay", "inputs": {"topic": "tides"}, "some_unknown_field": 1}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["object"], "chat.completion");
    assert_eq!(r.body["model"], "formaops::essay");
    assert_eq!(r.body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(r.body["choices"][0]["finish_reason"], "stop");
    let content = r.body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.contains("tides"), "{content}");
    assert!(r.body["usage"]["prompt_tokens_details"]["cached_tokens"].is_u64());
    assert!(r.body["usage"]["completion_tokens_details"]["reasoning_tokens"].is_u64());
    let id = r.headers["x-formaops-execution-id"].to_str().unwrap();
    let e = app.get(&format!("/api/executions/{id}"), &app.alice).await.expect(StatusCode::OK);
    assert_eq!(e.body["status"], "COMPLETED");

    // The caller's messages follow the rendered ones (the mock echoes the last user message).
    let r = app
        .post(
            CHAT,
            &app.alice,
            json!({"model": "formaops::essay", "inputs": {"topic": "tides"},
                "messages": [{"role": "user", "content": "and keep it short"}]}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["choices"][0]["message"]["content"], "and keep it short");

    // Pinned version; another user's prompt of that name does not exist for bob.
    app.post(CHAT, &app.alice, json!({"model": "formaops::essay:1", "inputs": {"topic": "x"}}))
        .await
        .expect(StatusCode::OK);
    let r = app.post(CHAT, &app.bob, json!({"model": "formaops::essay", "inputs": {"topic": "x"}})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(r.body["error"]["type"], "not_found_error");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("essay"));
}

#[tokio::test]
async fn errors_have_openai_shape_and_status() {
    let app = TestApp::new().await;
    app.prompt(&app.alice, "essay").await;
    let r = app.post(CHAT, &app.alice, json!({"model": "formaops::essay", "inputs": {}})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["error"]["type"], "invalid_request_error");
    let message = r.body["error"]["message"].as_str().unwrap();
    // Named once: the core message already lists the problem.
    assert_eq!(message.matches("inputs.topic").count(), 1, "{}", r.text);
    let r = app.post(CHAT, "fos_wrong", json!({"model": "formaops::essay"})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["error"]["type"], "authentication_error");
    let r = app
        .post(CHAT, &app.alice, json!({"model": "formaops::essay", "n": 2, "inputs": {"topic": "a"}}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["param"], "n");
    // Labels: a new prompt has `production` on version 1; an unknown label is not found.
    let r = app
        .post(CHAT, &app.alice, json!({"model": "formaops::essay@production", "inputs": {"topic": "a"}}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .post(CHAT, &app.alice, json!({"model": "formaops::essay@staging", "inputs": {"topic": "a"}}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("label \"staging\" of prompt "), "{message}");
    let r = app.post(CHAT, &app.alice, json!({"model": "formaops::essay@Not A Label"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = app
        .post(CHAT, &app.alice, json!({"model": "nope/x", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .post(
            CHAT,
            &app.alice,
            json!({"model": "mock-fail/x", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert_eq!(r.body["error"]["type"], "api_error");
    assert!(r.headers.contains_key("x-formaops-execution-id"));
}

#[tokio::test]
async fn pass_through_is_recorded_and_streams_with_usage() {
    let app = TestApp::new().await;
    let body = json!({"model": "mock/anything", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hello there"}]}],
        "temperature": 0.2, "max_tokens": 50, "stop": "END", "seed": 1});
    let r = app.post(CHAT, &app.alice, body.clone()).await.expect(StatusCode::OK);
    assert_eq!(r.body["model"], "mock/anything");
    let id = r.headers["x-formaops-execution-id"].to_str().unwrap().to_string();
    let e = app.get(&format!("/api/executions/{id}"), &app.alice).await.expect(StatusCode::OK);
    assert_eq!(e.body["provider"], "mock");
    assert_eq!(e.body["model"], "anything");

    let mut stream = body;
    stream["stream"] = json!(true);
    stream["stream_options"] = json!({"include_usage": true});
    let r = app.post(CHAT, &app.alice, stream).await.expect(StatusCode::OK);
    assert!(r.headers["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let events: Vec<&str> = r.text.split("\n\n").filter(|s| !s.is_empty()).collect();
    assert_eq!(events.last(), Some(&"data: [DONE]"));
    let usage: serde_json::Value =
        serde_json::from_str(events[events.len() - 2].trim_start_matches("data: ")).unwrap();
    assert_eq!(usage["object"], "chat.completion.chunk");
    assert!(usage["usage"]["total_tokens"].is_u64(), "{usage}");

    // Both calls are executions of one implicit prompt; models lists it and the providers.
    let list = app.get("/api/executions", &app.alice).await.expect(StatusCode::OK);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
    let models = app.get("/openai/v1/models", &app.alice).await.expect(StatusCode::OK);
    let ids: Vec<&str> =
        models.body["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"mock/anything") && ids.contains(&"mock/*"), "{ids:?}");
}

#[tokio::test]
async fn a_streaming_provider_is_forwarded_chunk_by_chunk() {
    let app = TestApp::new().await;
    let model = format!("{}/anything", support::STREAMING_PROVIDER);
    let text = "tell me something about rivers and their long journeys to the sea";
    let body = json!({"model": model, "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": text}]});
    let r = app.post(CHAT, &app.alice, body).await.expect(StatusCode::OK);
    assert!(r.headers["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let events: Vec<&str> = r.text.split("\n\n").filter(|s| !s.is_empty()).collect();
    assert_eq!(events.last(), Some(&"data: [DONE]"));
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    // Content chunks, then the finish chunk, then the usage chunk.
    let (usage, rest) = chunks.split_last().unwrap();
    let (finish, content) = rest.split_last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{usage}");
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert!(content.len() >= 2, "the text came in several chunks: {}", r.text);
    assert_eq!(content[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed: String =
        content.iter().map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap().to_string()).collect();
    assert_eq!(streamed, text);
    assert!(content.iter().all(|c| c["usage"].is_null() && c["object"] == "chat.completion.chunk"));
    let id = r.headers["x-formaops-execution-id"].to_str().unwrap();
    let e = app.get(&format!("/api/executions/{id}"), &app.alice).await.expect(StatusCode::OK);
    assert_eq!(e.body["output"], text);
}
