//! A mock OpenAI-compatible chat completions server.
//!
//! `POST /v1/chat/completions` answers, after a fixed latency, with a realistic body (id,
//! choices, finish reason, usage with token details) or, when the request says
//! `"stream": true`, the same as server-sent events ending in `data: [DONE]`. The response
//! text is fixed at start-up; per request the server only parses `model`/`stream` out of the
//! body, sleeps, and formats the id and model into a pre-built template, so it costs little
//! CPU next to the system under test.
//!
//! Control endpoints for the harness: `GET /_bench/stats` (requests answered, current
//! latency) and `PUT /_bench/latency?ms=N` (changes the latency for later requests).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};

/// Longest latency the mock accepts.
pub const MAX_LATENCY_MS: u64 = 60_000;
/// Longest model name echoed back.
const MAX_MODEL_CHARS: usize = 200;

/// Mock configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockConfig {
    pub latency_ms: u64,
    /// The assistant's reply.
    pub content: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            content: r#"{"sentiment":"positive","confidence":0.93,"summary":"The customer is happy with the fast delivery."}"#
                .to_string(),
            prompt_tokens: 42,
            completion_tokens: 24,
        }
    }
}

/// Shared state of the mock.
#[derive(Debug)]
pub struct MockState {
    latency_ms: AtomicU64,
    requests: AtomicU64,
    /// `{"id":"chatcmpl-bench-` ... then the counter, then [`Self::mid`], the model, then
    /// [`Self::tail`].
    mid: String,
    tail: String,
    stream_content: String,
    stream_usage: String,
    created: u64,
}

impl MockState {
    pub fn new(config: &MockConfig) -> anyhow::Result<Arc<Self>> {
        if config.latency_ms > MAX_LATENCY_MS {
            anyhow::bail!("latency {} ms above the mock's maximum {MAX_LATENCY_MS} ms", config.latency_ms);
        }
        let created =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let content = serde_json::to_string(&config.content)?;
        let usage = serde_json::json!({
            "prompt_tokens": config.prompt_tokens,
            "completion_tokens": config.completion_tokens,
            "total_tokens": u64::from(config.prompt_tokens) + u64::from(config.completion_tokens),
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0
            }
        });
        let usage = serde_json::to_string(&usage)?;
        Ok(Arc::new(Self {
            latency_ms: AtomicU64::new(config.latency_ms),
            requests: AtomicU64::new(0),
            mid: format!("\",\"object\":\"chat.completion\",\"created\":{created},\"model\":"),
            tail: format!(
                ",\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":{content},\
                 \"refusal\":null,\"annotations\":[]}},\"logprobs\":null,\"finish_reason\":\"stop\"}}],\
                 \"usage\":{usage},\"service_tier\":\"default\",\"system_fingerprint\":\"fp_formaops_bench\"}}"
            ),
            stream_content: content,
            stream_usage: usage,
            created,
        }))
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn completion_body(&self, n: u64, model_json: &str) -> String {
        let mut s = String::with_capacity(64 + self.mid.len() + model_json.len() + self.tail.len());
        s.push_str("{\"id\":\"chatcmpl-bench-");
        s.push_str(&n.to_string());
        s.push_str(&self.mid);
        s.push_str(model_json);
        s.push_str(&self.tail);
        s
    }

    fn stream_body(&self, n: u64, model_json: &str) -> String {
        let head = format!(
            "{{\"id\":\"chatcmpl-bench-{n}\",\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":{model_json}",
            self.created
        );
        format!(
            "data: {head},\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":{content}}},\"finish_reason\":null}}]}}\n\n\
             data: {head},\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\n\
             data: {head},\"choices\":[],\"usage\":{usage}}}\n\n\
             data: [DONE]\n\n",
            content = self.stream_content,
            usage = self.stream_usage,
        )
    }
}

/// The fields of a chat completion request the mock looks at; the rest is skipped unparsed.
#[derive(Deserialize)]
struct ChatRequest {
    model: String,
    #[allow(dead_code)]
    messages: serde::de::IgnoredAny,
    #[serde(default)]
    stream: bool,
}

fn openai_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({
        "error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}
    });
    (status, Json(body)).into_response()
}

async fn chat_completions(State(state): State<Arc<MockState>>, body: Bytes) -> Response {
    let request: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return openai_error(StatusCode::BAD_REQUEST, &format!("invalid chat completion request: {e}"));
        }
    };
    if request.model.is_empty() || request.model.chars().count() > MAX_MODEL_CHARS {
        return openai_error(StatusCode::BAD_REQUEST, "model must be 1..=200 characters");
    }
    let latency = state.latency_ms.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let n = state.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let model_json = match serde_json::to_string(&request.model) {
        Ok(m) => m,
        Err(_) => return openai_error(StatusCode::BAD_REQUEST, "model is not valid text"),
    };
    if request.stream {
        let mut response = Response::new(Body::from(state.stream_body(n, &model_json)));
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        response
    } else {
        let mut response = Response::new(Body::from(state.completion_body(n, &model_json)));
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

/// What `GET /_bench/stats` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MockStats {
    pub requests: u64,
    pub latency_ms: u64,
}

async fn stats(State(state): State<Arc<MockState>>) -> Json<MockStats> {
    Json(MockStats { requests: state.requests(), latency_ms: state.latency_ms.load(Ordering::Relaxed) })
}

#[derive(Deserialize)]
struct LatencyQuery {
    ms: u64,
}

async fn set_latency(State(state): State<Arc<MockState>>, Query(q): Query<LatencyQuery>) -> Response {
    if q.ms > MAX_LATENCY_MS {
        return openai_error(StatusCode::BAD_REQUEST, "latency above 60000 ms");
    }
    state.latency_ms.store(q.ms, Ordering::Relaxed);
    StatusCode::NO_CONTENT.into_response()
}

/// The mock's routes.
pub fn router(state: Arc<MockState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/_bench/stats", get(stats))
        .route("/_bench/latency", put(set_latency))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    async fn serve(config: MockConfig) -> (String, Arc<MockState>) {
        let state = MockState::new(&config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), state)
    }

    #[tokio::test]
    async fn answers_like_openai() {
        let (base, state) = serve(MockConfig::default()).await;
        let client = reqwest::Client::new();
        let resp = client
            .post(format!("{base}/v1/chat/completions"))
            .json(
                &serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["model"], "gpt-4o-mini");
        assert_eq!(body["id"], "chatcmpl-bench-1");
        assert_eq!(body["choices"][0]["message"]["role"], "assistant");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        let content: Value =
            serde_json::from_str(body["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
        assert_eq!(content["sentiment"], "positive");
        assert_eq!(body["usage"]["prompt_tokens"], 42);
        assert_eq!(body["usage"]["completion_tokens"], 24);
        assert_eq!(body["usage"]["total_tokens"], 66);
        assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
        assert_eq!(state.requests(), 1);
    }

    #[tokio::test]
    async fn streams_when_asked() {
        let (base, _) = serve(MockConfig::default()).await;
        let text = reqwest::Client::new()
            .post(format!("{base}/v1/chat/completions"))
            .json(&serde_json::json!({"model": "m\"x", "messages": [], "stream": true}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 4, "{text}");
        assert_eq!(events[3], "data: [DONE]");
        let first: Value = serde_json::from_str(events[0].strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(first["model"], "m\"x");
        assert!(first["choices"][0]["delta"]["content"].as_str().unwrap().contains("positive"));
        let last: Value = serde_json::from_str(events[2].strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(last["usage"]["total_tokens"], 66);
    }

    #[tokio::test]
    async fn rejects_bad_requests_with_openai_errors() {
        let (base, state) = serve(MockConfig::default()).await;
        let client = reqwest::Client::new();
        for body in ["not json", r#"{"messages": []}"#, r#"{"model": "", "messages": []}"#] {
            let resp = client.post(format!("{base}/v1/chat/completions")).body(body).send().await.unwrap();
            assert_eq!(resp.status(), 400, "{body}");
            let v: Value = resp.json().await.unwrap();
            assert!(v["error"]["message"].is_string(), "{v}");
        }
        assert_eq!(state.requests(), 0);
    }

    #[tokio::test]
    async fn latency_is_adjustable() {
        let (base, _) = serve(MockConfig { latency_ms: 0, ..MockConfig::default() }).await;
        let client = reqwest::Client::new();
        assert_eq!(client.put(format!("{base}/_bench/latency?ms=30")).send().await.unwrap().status(), 204);
        assert_eq!(client.put(format!("{base}/_bench/latency?ms=99999")).send().await.unwrap().status(), 400);
        let stats: MockStats =
            client.get(format!("{base}/_bench/stats")).send().await.unwrap().json().await.unwrap();
        assert_eq!(stats.latency_ms, 30);
        let t = std::time::Instant::now();
        let resp = client
            .post(format!("{base}/v1/chat/completions"))
            .body(r#"{"model":"m","messages":[]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        // A lower bound only: the sleep must have happened (no upper bound on timing).
        assert!(t.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn refuses_excessive_latency() {
        assert!(
            MockState::new(&MockConfig { latency_ms: MAX_LATENCY_MS + 1, ..MockConfig::default() }).is_err()
        );
    }
}
