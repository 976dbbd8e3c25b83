//! Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with the
//! statuses the official SDKs map to their exception classes. Built from [`ApiError`], so
//! the mapping from core errors stays in one place.

use std::time::Duration;

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::ApiError;

/// An error answered by the OpenAI-compatible endpoint.
#[derive(Debug)]
pub struct OpenAiError {
    pub status: StatusCode,
    pub message: String,
    pub param: Option<String>,
    pub code: String,
    pub retry_after: Option<Duration>,
    /// Execution id, when one exists.
    pub execution: Option<String>,
}

impl OpenAiError {
    pub fn bad_request(param: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            param: param.map(str::to_string),
            code: "invalid_argument".into(),
            retry_after: None,
            execution: None,
        }
    }

    /// OpenAI's error `type` for a status.
    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            400 | 413 | 415 | 422 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            409 => "conflict_error",
            429 => "rate_limit_error",
            _ => "api_error",
        }
    }
}

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        // Validation problems are listed in the message (SDK users mostly see only that),
        // unless the message already lists each of them.
        let mut message = e.message;
        if let Some(problems) = e.details.get("problems").and_then(Value::as_array) {
            let listed: Vec<String> = problems
                .iter()
                .map(|p| {
                    let field = p.get("field").and_then(Value::as_str).unwrap_or("");
                    let msg = p.get("message").and_then(Value::as_str).unwrap_or("");
                    format!("{field}: {msg}")
                })
                .collect();
            if !listed.is_empty() && !listed.iter().all(|p| message.contains(p.as_str())) {
                message = format!("{message} ({})", listed.join("; "));
            }
        }
        let param = e.details.get("field").and_then(Value::as_str).map(str::to_string);
        Self {
            status: e.status,
            message,
            param,
            code: e.code.to_string(),
            retry_after: e.retry_after,
            execution: None,
        }
    }
}

impl From<formaops_core::Error> for OpenAiError {
    fn from(e: formaops_core::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "message": self.message,
            "type": self.kind(),
            "param": self.param,
            "code": self.code,
        }});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                response.headers_mut().insert(RETRY_AFTER, v);
            }
        }
        if let Some(id) = self.execution
            && let Ok(v) = HeaderValue::from_str(&id)
        {
            response.headers_mut().insert(super::EXECUTION_HEADER, v);
        }
        response
    }
}
