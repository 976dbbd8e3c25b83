//! The OpenAI-compatible endpoint: `POST /openai/v1/chat/completions` and
//! `GET /openai/v1/models`, authenticated with a FormaOps API key as the bearer token.
//!
//! Every call becomes an execution through the engine (see
//! [`formaops_core::engine::chat`] for the rules); this module only translates the wire
//! format. The reply carries the execution id in `x-formaops-execution-id`.
//!
//! Streaming (`stream: true`): the engine does not stream from providers yet, so the answer
//! is sent, once the execution is final, as one content chunk, a finish chunk, a usage
//! chunk when `stream_options.include_usage` is set, and `data: [DONE]`.

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
    let submitted = engine.submit_chat(auth.id(), chat).await?;
    let done = if submitted.status.is_final() {
        submitted
    } else {
        engine.wait(auth.id(), submitted.id, Some(state.settings().sync_wait)).await?
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

fn sse(e: &Execution, model: String, include_usage: bool) -> Response {
    let id = wire::completion_id(e);
    let created = e.created_at.timestamp();
    let usage = e.metrics.as_ref().map(|m| Usage::from(&m.token_usage));
    let chunk = |choices: serde_json::Value, usage: Option<&Usage>| {
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices});
        if include_usage {
            c["usage"] = json!(usage);
        }
        format!("data: {c}\n\n")
    };
    let mut out = String::new();
    out.push_str(&chunk(
        json!([{"index": 0, "delta": {"role": "assistant", "content": e.output.clone().unwrap_or_default()}, "finish_reason": null}]),
        None,
    ));
    out.push_str(&chunk(json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]), None));
    if include_usage {
        out.push_str(&chunk(json!([]), usage.as_ref()));
    }
    out.push_str("data: [DONE]\n\n");
    let mut response = Response::new(Body::from(out));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
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
