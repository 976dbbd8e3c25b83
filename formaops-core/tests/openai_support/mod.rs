//! Shared helpers for the OpenAI provider tests: requests, providers, canned replies in the
//! real wire format, and a raw TCP server for replies wiremock cannot produce (a connection
//! cut mid-body).
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use formaops_core::engine::{EngineConfig, FormaOps};
use formaops_core::prompt::ModelParameters;
use formaops_core::provider::config::Secret;
use formaops_core::provider::openai::{OpenAiConfig, OpenAiProvider};
use formaops_core::provider::{CompletionRequest, Message, Role};
use formaops_core::store::MemoryStore;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const KEY: &str = "sk-test-0123456789abcdef";

pub fn request(model: &str) -> CompletionRequest {
    CompletionRequest {
        model: model.to_string(),
        messages: vec![
            Message { role: Role::System, content: "You are terse.".to_string() },
            Message { role: Role::User, content: "Say hello to Ada.".to_string() },
        ],
        parameters: ModelParameters::default(),
        response_schema: None,
        deadline: Instant::now() + Duration::from_secs(10),
    }
}

pub fn config(base_url: &str, key: Option<&str>) -> OpenAiConfig {
    let mut config = OpenAiConfig::new(base_url);
    config.api_key = key.map(Secret::new);
    config
}

pub fn provider(base_url: &str) -> OpenAiProvider {
    OpenAiProvider::new(config(base_url, Some(KEY))).unwrap()
}

/// A loopback OpenAI-compatible server answering every chat completion with `body`, and an
/// engine (memory store, `config`) with the OpenAI provider on it registered as `fake`. The
/// server is returned so a test can read the requests it received.
pub async fn engine_on_fake(body: ResponseTemplate, config: EngineConfig) -> (MockServer, FormaOps) {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/chat/completions")).respond_with(body).mount(&server).await;
    let provider = OpenAiProvider::new(self::config(&format!("{}/v1", server.uri()), Some(KEY))).unwrap();
    let engine = FormaOps::builder(Arc::new(MemoryStore::new()))
        .provider("fake", Arc::new(provider))
        .config(config)
        .start()
        .await
        .unwrap();
    (server, engine)
}

pub fn reply(text: &str, usage: Option<Value>) -> Value {
    let mut body = json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "system_fingerprint": "fp_1"
    });
    if let Some(usage) = usage {
        body["usage"] = usage;
    }
    body
}

pub fn full_usage() -> Value {
    json!({
        "prompt_tokens": 120,
        "completion_tokens": 45,
        "total_tokens": 165,
        "prompt_tokens_details": {"cached_tokens": 64, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 20, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
    })
}

/// One `data:` line per chunk, then optionally `[DONE]`.
pub fn sse(chunks: &[Value], done: bool) -> String {
    let mut body = String::new();
    for chunk in chunks {
        body.push_str("data: ");
        body.push_str(&chunk.to_string());
        body.push_str("\n\n");
    }
    if done {
        body.push_str("data: [DONE]\n\n");
    }
    body
}

pub fn delta_chunk(content: &str) -> Value {
    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]})
}

pub fn finish_chunk() -> Value {
    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
}

pub fn usage_chunk(usage: Value) -> Value {
    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
        "choices": [], "usage": usage})
}

/// A server that answers one connection with `head` (status line and headers), then the
/// `body` bytes, then closes the connection: a body shorter than its declared length is a
/// connection cut midway.
pub async fn raw_server(head: String, body: Vec<u8>) -> String {
    raw_server_holding(head, body, Duration::ZERO).await
}

/// [`raw_server`], keeping the connection open for `hold` after the body (a stalled server).
pub async fn raw_server_holding(head: String, body: Vec<u8>, hold: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        if let Ok((mut socket, _)) = listener.accept().await {
            // Read the request head and body (small) before answering.
            let mut buf = vec![0u8; 64 * 1024];
            let mut read = 0;
            loop {
                let Ok(n) = socket.read(&mut buf[read..]).await else { return };
                if n == 0 {
                    return;
                }
                read += n;
                let text = String::from_utf8_lossy(&buf[..read]);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if read >= end + 4 + length {
                        break;
                    }
                }
            }
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(&body).await;
            let _ = socket.flush().await;
            tokio::time::sleep(hold).await;
            // Dropping the socket closes the connection.
        }
    });
    format!("http://{addr}/v1")
}
