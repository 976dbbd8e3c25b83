//! [`ApiError`]: the one error body of the REST API, and the mapping from core errors.
//!
//! Every error answers `{"error": {"code", "message", "details"}}` with a stable `code` word.
//! The mapping from [`formaops_core::Error`] lives only here. Internal errors are answered
//! with a generic message and logged in full; nothing else about the server leaks.

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use formaops_core::Error as CoreError;
use formaops_core::provider::{ProviderError, ProviderErrorKind};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use utoipa::ToSchema;

/// The error body: `{"error": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable word (`not_found`, `invalid_inputs`, `unauthorized`, ...).
    pub code: String,
    /// For people.
    pub message: String,
    /// Structured context: the list of problems for validation errors, the provider error
    /// kind for provider failures, `null` otherwise.
    #[schema(value_type = Option<Object>)]
    pub details: Value,
}

/// An error answered by the API.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
    /// `Retry-After` to send, for 429 and some 503s.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: Value::Null, retry_after: None }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// 401 with one generic message: never says whether a user exists.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing, invalid or expired credentials")
    }

    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", format!("invalid {field}: {message}"))
            .with_details(json!({ "field": field }))
    }

    /// A 404 for a path id, with the same message the core uses for a missing row.
    pub fn not_found(kind: &'static str, id: &str) -> Self {
        CoreError::not_found(kind, id).into()
    }

    /// 500 with a generic message; `cause` is logged, never answered.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal server error")
    }

    pub fn rate_limited(retry_after: Duration) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many attempts; try again later")
            .with_retry_after(retry_after)
    }

    fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
                details: self.details.clone(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(after) = self.retry_after {
            // Whole seconds, rounded up, at least 1.
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                response.headers_mut().insert(RETRY_AFTER, v);
            }
        }
        response
    }
}

fn provider_status(e: &ProviderError) -> (StatusCode, &'static str) {
    match e.kind {
        ProviderErrorKind::NotConfigured => (StatusCode::BAD_GATEWAY, "provider_not_configured"),
        ProviderErrorKind::RateLimited
        | ProviderErrorKind::ServerError
        | ProviderErrorKind::Timeout
        | ProviderErrorKind::Connection
        | ProviderErrorKind::MalformedResponse
        | ProviderErrorKind::Auth
        | ProviderErrorKind::BadRequest => (StatusCode::BAD_GATEWAY, "provider_error"),
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        // `formaops_core::Error` is `#[non_exhaustive]`, so a match from this crate must end in
        // a catch-all; every variant known today is listed explicitly above it, and the
        // catch-all answers 500 (logged) so a new variant is noticed, never silently mapped.
        match e {
            CoreError::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            CoreError::Conflict { message } => Self::new(StatusCode::CONFLICT, "conflict", message),
            CoreError::InvalidInputs { ref problems } => {
                let details = json!({ "problems": problems });
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_inputs", e.to_string())
                    .with_details(details)
            }
            CoreError::InvalidPrompt { ref problems } => {
                let details = json!({ "problems": problems });
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_prompt", e.to_string())
                    .with_details(details)
            }
            CoreError::InvalidArgument { ref field, .. } => {
                let details = json!({ "field": field });
                Self::new(StatusCode::BAD_REQUEST, "invalid_argument", e.to_string()).with_details(details)
            }
            CoreError::IdempotencyKeyReused { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused", e.to_string())
            }
            CoreError::Render { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "render_error", e.to_string())
            }
            CoreError::Provider(ref p) => {
                let (status, code) = provider_status(p);
                let details = json!({
                    "kind": p.kind.as_str(),
                    "transient": p.is_transient(),
                    "status": p.status,
                });
                Self::new(status, code, e.to_string()).with_details(details)
            }
            CoreError::Unavailable { ref message, .. } => {
                tracing::warn!(%message, "dependency unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the service is temporarily unavailable",
                )
                .with_retry_after(Duration::from_secs(1))
            }
            CoreError::Unauthenticated => Self::unauthorized(),
            CoreError::RateLimited { retry_after } => Self::rate_limited(retry_after),
            CoreError::ShuttingDown => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "the server is shutting down")
            }
            CoreError::Internal { message, .. } => Self::internal(message),
            other => Self::internal(other),
        }
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonSyntaxError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("malformed JSON: {}", e.body_text()),
        ),
        JsonRejection::JsonDataError(e) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", e.body_text())
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a request body with `Content-Type: application/json`",
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        other => ApiError::new(StatusCode::BAD_REQUEST, "malformed_body", other.body_text()),
    }
}

/// 413 in our shape.
pub fn too_large() -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
}

/// 413 in our shape, naming the limit (bytes).
pub fn too_large_for(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body is larger than the limit of {limit} bytes"),
    )
    .with_details(json!({ "limitBytes": limit }))
}

/// `axum::Json` whose rejections answer in our error shape (400 malformed JSON, 415, 413,
/// 422 for a well-formed body of the wrong shape).
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(r) => Err(json_rejection(r)),
        }
    }
}

impl<T: Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` whose rejection answers 400 in our shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for AppQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_argument", e.body_text()))
            }
            Err(other) => Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_argument", other.body_text())),
        }
    }
}

/// Fallback for unknown routes: 404 in our shape.
pub async fn route_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route")
}

/// Middleware: error responses produced outside handlers (405 from the router, 408 from the
/// timeout layer, 413 from the body limit) get our JSON shape too.
pub async fn normalize_errors(req: Request, next: axum::middleware::Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let err = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            ApiError::new(status, "method_not_allowed", "this route does not accept that method")
        }
        StatusCode::REQUEST_TIMEOUT => ApiError::new(status, "timeout", "the request took too long"),
        StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        StatusCode::NOT_FOUND => ApiError::new(status, "route_not_found", "no such route"),
        s if s.is_server_error() => ApiError::new(status, "internal", "internal server error"),
        _ => ApiError::new(status, "bad_request", status.canonical_reason().unwrap_or("bad request")),
    };
    let mut out = err.into_response();
    // Keep headers such as x-request-id and Allow set by inner layers.
    for (name, value) in response.headers() {
        if name != CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}
