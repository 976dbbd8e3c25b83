//! The OpenAI-compatible endpoint: `POST /openai/v1/chat/completions` and
//! `GET /openai/v1/models`, authenticated with a FormaOps API key as the bearer token.
//!
//! Every call becomes an execution through the engine (see
//! [`formaops_core::engine::chat`] for the rules); this module only translates the wire
//! format. The reply carries the execution id in `x-formaops-execution-id`.
//!
//! Streaming (`stream: true`): the engine's `partial` events are forwarded as content chunks
//! as they come (see [`formaops_core::engine::partial`]); then a finish chunk, a usage chunk
//! when `stream_options.include_usage` is set, and `data: [DONE]`. The response starts with
//! the first partial event: an execution that ends before streaming anything (a provider
//! that does not stream, a failure) is answered as one chunk, or with its error status, as
//! without streaming. Once streaming has started, a failure (or the synchronous wait running
//! out) ends the stream with an `{"error": ...}` event, which the OpenAI SDKs raise. A retry
//! after part of the output was sent continues the text where it stopped when the retry
//! repeats it; when the retry's text differs, the stream ends with an `output_changed` error
//! (the execution's output is at `/api/executions/{id}`).

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use formaops_core::engine::chat::{MANAGED_PREFIX, PASSTHROUGH_PREFIX};
use formaops_core::engine::check_idempotency_key;
use formaops_core::execution::{Execution, ExecutionStatus};
use formaops_core::page::{MAX_PAGE_SIZE, PageRequest};
use formaops_core::prompt::PromptStatus;
use formaops_core::store::PromptFilter;
use serde_json::json;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;

pub mod errors;
pub mod wire;

use errors::OpenAiError;
use wire::{ChatCompletion, ChatCompletionRequest, ModelEntry, ModelList, Usage};

/// Response header carrying the execution id.
pub const EXECUTION_HEADER: HeaderName = HeaderName::from_static("x-formaops-execution-id");

/// The endpoint's routes, under `/openai/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openai/v1/chat/completions", post(chat_completions))
        .route("/openai/v1/models", get(list_models))
}

fn authenticated(auth: Result<AuthUser, ApiError>) -> Result<AuthUser, OpenAiError> {
    auth.map_err(OpenAiError::from)
}

fn idempotency_header(headers: &HeaderMap) -> Result<Option<String>, OpenAiError> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let s = v.to_str().ok().filter(|s| check_idempotency_key(s).is_ok()).ok_or_else(|| {
        OpenAiError::bad_request(
            Some("Idempotency-Key"),
            "the Idempotency-Key header must be 1 to 255 visible ASCII characters",
        )
    })?;
    Ok(Some(s.to_string()))
}

async fn chat_completions(
    State(state): State<AppState>,
    auth: Result<AuthUser, ApiError>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let auth = authenticated(auth)?;
    let request: ChatCompletionRequest = serde_json::from_slice(&body)
        .map_err(|e| OpenAiError::bad_request(None, format!("invalid request body: {e}")))?;
    let model = request.model.clone();
    let stream = request.stream;
    let include_usage = request.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let chat = request.into_core(idempotency_header(&headers)?)?;
    let engine = state.engine();
    let done = if stream {
        // Subscribed before submitting, so no partial event falls before the subscription.
        let events = engine.subscribe(auth.id(), None);
        let submitted = engine.submit_chat(auth.id(), chat).await?;
        if !submitted.status.is_final() {
            return streamed(&state, auth.id(), submitted, events, model, include_usage).await;
        }
        submitted
    } else {
        engine.execute_chat(auth.id(), chat, state.settings().sync_wait).await?
    };
    let id = done.id.to_string();
    let mut response = match final_error(&done) {
        Some(e) => return Err(e),
        None if stream => sse(&done, model, include_usage),
        None => axum::Json(ChatCompletion::from_execution(&done, model)).into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(EXECUTION_HEADER, v);
    }
    Ok(response)
}

/// The error answered for an execution that did not complete.
fn final_error(e: &Execution) -> Option<OpenAiError> {
    let (status, code, message) = match e.status {
        ExecutionStatus::Completed => return None,
        ExecutionStatus::Failed => {
            let (code, message) = e
                .error
                .as_ref()
                .map_or(("failed".to_string(), String::new()), |x| (x.code.to_string(), x.message.clone()));
            (StatusCode::BAD_GATEWAY, code, format!("execution {} failed: {message}", e.id))
        }
        ExecutionStatus::Cancelled => {
            (StatusCode::CONFLICT, "cancelled".to_string(), format!("execution {} was cancelled", e.id))
        }
        ExecutionStatus::Queued | ExecutionStatus::Running => (
            StatusCode::GATEWAY_TIMEOUT,
            "still_running".to_string(),
            format!(
                "execution {} is still {}; follow it at /api/executions/{}",
                e.id,
                e.status.as_str(),
                e.id
            ),
        ),
    };
    Some(OpenAiError {
        status,
        message,
        param: None,
        code,
        retry_after: None,
        execution: Some(e.id.to_string()),
    })
}

/// Writes the chunks of one streamed completion.
struct Chunks {
    id: String,
    created: i64,
    model: String,
    include_usage: bool,
}

impl Chunks {
    fn new(e: &Execution, model: String, include_usage: bool) -> Self {
        Self { id: wire::completion_id(e), created: e.created_at.timestamp(), model, include_usage }
    }

    fn chunk(&self, choices: serde_json::Value, usage: Option<&Usage>) -> String {
        let mut c = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "choices": choices});
        if self.include_usage {
            c["usage"] = json!(usage);
        }
        format!("data: {c}\n\n")
    }

    /// A content chunk; the first one also names the role.
    fn content(&self, text: &str, first: bool) -> String {
        let delta =
            if first { json!({"role": "assistant", "content": text}) } else { json!({"content": text}) };
        self.chunk(json!([{"index": 0, "delta": delta, "finish_reason": null}]), None)
    }

    /// The finish chunk, the usage chunk when asked for, and `[DONE]`.
    fn end(&self, e: &Execution) -> String {
        let mut out =
            self.chunk(json!([{"index": 0, "delta": {}, "finish_reason": wire::finish_reason(e)}]), None);
        if self.include_usage {
            let usage = e.metrics.as_ref().map(|m| Usage::from(&m.token_usage));
            out.push_str(&self.chunk(json!([]), usage.as_ref()));
        }
        out.push_str("data: [DONE]\n\n");
        out
    }

    /// An error event (the OpenAI SDKs raise it), then `[DONE]`.
    fn error(code: &str, message: &str) -> String {
        let body =
            json!({"error": {"message": message, "type": "server_error", "param": null, "code": code}});
        format!("data: {body}\n\ndata: [DONE]\n\n")
    }
}

fn event_stream_response(body: Body) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
}

fn sse(e: &Execution, model: String, include_usage: bool) -> Response {
    let chunks = Chunks::new(e, model, include_usage);
    let mut out = chunks.content(e.output.as_deref().unwrap_or_default(), true);
    out.push_str(&chunks.end(e));
    event_stream_response(Body::from(out))
}

/// What a streamed answer has sent so far, to continue it across retries.
struct Forwarded {
    /// Output text sent to the client.
    sent: String,
    /// The current attempt and its text so far.
    attempt: u32,
    text: String,
    /// A retry's text no longer continues what was sent.
    diverged: bool,
}

impl Forwarded {
    /// Takes one partial event; returns the text to send (possibly empty).
    fn take(&mut self, attempt: u32, delta: &str) -> String {
        if attempt != self.attempt {
            self.attempt = attempt;
            self.text.clear();
        }
        self.text.push_str(delta);
        if self.diverged {
            return String::new();
        }
        if let Some(new) = self.text.strip_prefix(self.sent.as_str()) {
            let new = new.to_string();
            self.sent.push_str(&new);
            new
        } else {
            // A retry still repeating what was sent, or saying something else.
            self.diverged = !self.sent.starts_with(self.text.as_str());
            String::new()
        }
    }

    /// The rest of a completed output, or `None` when it does not continue what was sent.
    fn rest<'a>(&self, output: &'a str) -> Option<&'a str> {
        output.strip_prefix(self.sent.as_str()).filter(|_| !self.diverged)
    }
}

/// Answers a streamed call while the execution runs: waits for its first partial event (an
/// execution that ends first is answered as without streaming), then forwards them.
async fn streamed(
    state: &AppState,
    user: formaops_core::ids::UserId,
    submitted: Execution,
    events: futures::stream::BoxStream<'static, formaops_core::events::ExecutionEvent>,
    model: String,
    include_usage: bool,
) -> Result<Response, OpenAiError> {
    use formaops_core::events::EventKind;
    use futures::StreamExt as _;

    let id = submitted.id;
    let deadline = tokio::time::Instant::now() + state.settings().sync_wait;
    let mut events = events.filter(move |e| std::future::ready(e.execution_id == id)).boxed();
    let engine = state.engine().clone();
    let first = loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(e)) if e.kind == EventKind::Partial => break e,
            Ok(Some(e)) if !e.is_final() => continue,
            // Final, or the wait ran out: answer from the execution's state.
            _ => {
                let done = engine.get_execution(user, id).await?;
                let mut response = match final_error(&done) {
                    Some(e) => return Err(e),
                    None => sse(&done, model, include_usage),
                };
                if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
                    response.headers_mut().insert(EXECUTION_HEADER, v);
                }
                return Ok(response);
            }
        }
    };
    let chunks = Chunks::new(&submitted, model, include_usage);
    let mut forwarded =
        Forwarded { sent: String::new(), attempt: first.attempt, text: String::new(), diverged: false };
    let opening =
        chunks.content(&forwarded.take(first.attempt, first.delta.as_deref().unwrap_or_default()), true);
    let rest = futures::stream::unfold(Some((events, forwarded, chunks, engine)), move |state| async move {
        let (mut events, mut forwarded, chunks, engine) = state?;
        loop {
            match tokio::time::timeout_at(deadline, events.next()).await {
                Ok(Some(e)) if e.kind == EventKind::Partial => {
                    let new = forwarded.take(e.attempt, e.delta.as_deref().unwrap_or_default());
                    if new.is_empty() {
                        continue;
                    }
                    let chunk = chunks.content(&new, false);
                    return Some((chunk, Some((events, forwarded, chunks, engine))));
                }
                Ok(Some(e)) if !e.is_final() => continue,
                // Final, the end of the events, or the wait ran out: end from the state.
                _ => {}
            }
            let end = match engine.get_execution(user, id).await {
                Ok(done) => match (final_error(&done), done.output.as_deref()) {
                    (None, Some(output)) => match forwarded.rest(output) {
                        Some("") => chunks.end(&done),
                        Some(rest) => chunks.content(rest, false) + &chunks.end(&done),
                        None => Chunks::error(
                            "output_changed",
                            &format!(
                                "execution {id} was retried after part of its output was streamed, and the \
                                 retry's output differs; read it at /api/executions/{id}"
                            ),
                        ),
                    },
                    (None, None) => chunks.end(&done),
                    (Some(e), _) => Chunks::error(&e.code, &e.message),
                },
                Err(e) => Chunks::error("internal_error", &format!("reading execution {id} failed: {e}")),
            };
            return Some((end, None));
        }
    });
    let body = futures::stream::once(std::future::ready(opening))
        .chain(rest)
        .map(|chunk| Ok::<_, std::convert::Infallible>(Bytes::from(chunk)));
    let mut response = event_stream_response(Body::from_stream(body));
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert(EXECUTION_HEADER, v);
    }
    Ok(response)
}

async fn list_models(
    State(state): State<AppState>,
    auth: Result<AuthUser, ApiError>,
) -> Result<axum::Json<ModelList>, OpenAiError> {
    let auth = authenticated(auth)?;
    let engine = state.engine();
    let mut data = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = PageRequest::new(Some(MAX_PAGE_SIZE), cursor.as_deref())?;
        let filter = PromptFilter { status: Some(PromptStatus::Active) };
        let got = engine.list_prompts(auth.id(), filter, page).await?;
        for p in got.items {
            let id = match p.name.strip_prefix(PASSTHROUGH_PREFIX) {
                Some(m) => m.to_string(),
                None => format!("{MANAGED_PREFIX}{}", p.name),
            };
            data.push(ModelEntry {
                id,
                object: "model",
                created: p.created_at.timestamp(),
                owned_by: "formaops".into(),
            });
        }
        match got.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    for provider in engine.provider_names() {
        data.push(ModelEntry {
            id: format!("{provider}/*"),
            object: "model",
            created: 0,
            owned_by: provider,
        });
    }
    Ok(axum::Json(ModelList { object: "list", data }))
}

#[cfg(test)]
mod tests {
    use super::Forwarded;

    fn forwarded() -> Forwarded {
        Forwarded { sent: String::new(), attempt: 1, text: String::new(), diverged: false }
    }

    #[test]
    fn a_retry_that_repeats_the_text_continues_where_it_stopped() {
        let mut f = forwarded();
        assert_eq!(f.take(1, "Hel"), "Hel");
        assert_eq!(f.take(1, "lo "), "lo ");
        // Attempt 2 starts over: nothing new until it passes what was sent.
        assert_eq!(f.take(2, "He"), "");
        assert_eq!(f.take(2, "llo w"), "w");
        assert_eq!(f.take(2, "orld"), "orld");
        assert_eq!(f.rest("Hello world!"), Some("!"));
    }

    #[test]
    fn a_retry_that_says_something_else_stops_forwarding() {
        let mut f = forwarded();
        assert_eq!(f.take(1, "Hello"), "Hello");
        assert_eq!(f.take(2, "Goodbye"), "");
        assert!(f.diverged);
        assert_eq!(f.take(2, " and more"), "");
        assert_eq!(f.rest("Goodbye and more"), None);
        assert_eq!(f.rest("Hello anyway"), None);
    }
}
