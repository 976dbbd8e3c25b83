//! Executions: `POST /api/prompts/{id}/execute`, list, get, retry, cancel.
//!
//! Every answer is the core [`Execution`] itself, serialised as it is (the spec's
//! `ExecutionResponse`; the Python binding shows the same fields): there is no HTTP copy of
//! the record.
//!
//! Execute waits for the final state by default and answers 200 with the execution, whatever that state is: a provider failure is an execution that
//! ended `FAILED` (its `error` says why), not an HTTP error, because the execution exists and
//! can be retried. If the wait passes `sync_wait`, it answers 202 with the execution as it
//! is. `?mode=async` or `Prefer: respond-async` answers 202 at once with the QUEUED
//! execution and a `Location` to poll (or follow over SSE / WebSocket).

use axum::extract::{Path, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use formaops_core::engine::{ExecuteRequest, MAX_IDEMPOTENCY_KEY_BYTES, check_idempotency_key};
use formaops_core::execution::{Execution, ExecutionStatus, Priority};
use formaops_core::ids::{ExecutionId, PromptId};
use formaops_core::page::{Page, PageRequest};
use formaops_core::store::ExecutionFilter;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, AppJson, AppQuery, ErrorBody};
use crate::routes::prompts::prompt_id;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(execute))
        .routes(routes!(list_executions))
        .routes(routes!(get_execution))
        .routes(routes!(retry_execution))
        .routes(routes!(cancel_execution))
}

pub(crate) fn execution_id(id: &str) -> ApiResult<ExecutionId> {
    id.parse().map_err(|_| ApiError::not_found("execution", id))
}

/// The spec's `ExecutePromptRequest`, plus an optional pinned version.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecutePromptRequest {
    /// Variable values by name.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub inputs: Map<String, Value>,
    /// `LOW`, `NORMAL` (default) or `HIGH`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub priority: Option<Priority>,
    /// Apply the version's output validation rules (default false).
    #[serde(default)]
    pub validate_output: Option<bool>,
    /// Run this version instead of the current one.
    #[serde(default)]
    pub version: Option<u32>,
    /// Run the version this label points at (`production`, `staging`, `latest`, ...);
    /// exclusive with `version`. The execution records the version it resolved to.
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecuteQuery {
    /// `sync` (default: wait for the result) or `async` (202 at once).
    pub mode: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionPage {
    pub items: Vec<Execution>,
    pub next_cursor: Option<String>,
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    // The rule is core's; the error names the header.
    let bad = || {
        ApiError::bad_request(
            "Idempotency-Key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} visible ASCII characters"),
        )
    };
    let s = v.to_str().map_err(|_| bad())?;
    check_idempotency_key(s).map_err(|_| bad())?;
    Ok(Some(s.to_string()))
}

fn wants_async(headers: &HeaderMap, mode: Option<&str>) -> ApiResult<bool> {
    match mode {
        Some("async") => return Ok(true),
        Some("sync") => return Ok(false),
        Some(_) => return Err(ApiError::bad_request("mode", "sync or async")),
        None => {}
    }
    Ok(headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async")))
}

/// 200 for a final execution, 202 with `Location` otherwise.
fn execution_reply(e: Execution) -> Response {
    let status = if e.status.is_final() { StatusCode::OK } else { StatusCode::ACCEPTED };
    let location = format!("/api/executions/{}", e.id);
    let mut response = (status, AppJson(e)).into_response();
    if status == StatusCode::ACCEPTED
        && let Ok(v) = location.parse()
    {
        response.headers_mut().insert(LOCATION, v);
    }
    response
}

/// Executes a prompt. Inputs are validated before anything is queued (422 lists every
/// problem by variable name). Waits for the result unless `?mode=async` or
/// `Prefer: respond-async`. `Idempotency-Key` makes a repeat return the first execution
/// (same key, different body: 422).
#[utoipa::path(post, path = "/prompts/{id}/execute", tag = "executions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Prompt id"), ExecuteQuery,
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries of this request safe"),
        ("Prefer" = Option<String>, Header, description = "`respond-async` for 202 at once")),
    request_body = ExecutePromptRequest,
    responses(
        (status = 200, body = Execution, description = "Final state (COMPLETED or FAILED)"),
        (status = 202, body = Execution, description = "Accepted, not final yet; see Location"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The prompt is archived"),
        (status = 422, body = ErrorBody, description = "Invalid inputs, or an idempotency key reused with another body"),
        (status = 503, body = ErrorBody),
    ))]
async fn execute(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    AppQuery(q): AppQuery<ExecuteQuery>,
    headers: HeaderMap,
    AppJson(body): AppJson<ExecutePromptRequest>,
) -> ApiResult<Response> {
    let prompt_id = prompt_id(&id)?;
    let is_async = wants_async(&headers, q.mode.as_deref())?;
    let engine = state.engine();
    let request = ExecuteRequest {
        prompt_id,
        version: body.version,
        label: body.label,
        inputs: body.inputs,
        priority: body.priority.unwrap_or_default(),
        validate_output: body.validate_output.unwrap_or(false),
        idempotency_key: idempotency_key(&headers)?,
    };
    let execution = if is_async {
        engine.submit(auth.id(), request).await?
    } else {
        engine.execute_within(auth.id(), request, state.settings().sync_wait).await?
    };
    Ok(execution_reply(execution))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListExecutionsQuery {
    /// Page size, 1..=200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// `QUEUED`, `RUNNING`, `COMPLETED`, `FAILED` or `CANCELLED`.
    pub status: Option<String>,
    pub prompt_id: Option<String>,
    /// Created at or after (RFC 3339).
    pub since: Option<String>,
    /// Created before (RFC 3339).
    pub until: Option<String>,
}

pub(crate) fn parse_time(field: &str, s: Option<&str>) -> ApiResult<Option<DateTime<Utc>>> {
    s.map(|s| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| ApiError::bad_request(field, "an RFC 3339 timestamp such as 2026-01-31T12:00:00Z"))
    })
    .transpose()
}

/// The caller's executions, newest first.
#[utoipa::path(get, path = "/executions", tag = "executions", security(("bearer" = [])),
    params(ListExecutionsQuery),
    responses((status = 200, body = ExecutionPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_executions(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<ListExecutionsQuery>,
) -> ApiResult<AppJson<ExecutionPage>> {
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(ExecutionStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request("status", "QUEUED, RUNNING, COMPLETED, FAILED or CANCELLED")
        })?),
    };
    let prompt_id = match q.prompt_id.as_deref() {
        None => None,
        Some(s) => {
            Some(s.parse::<PromptId>().map_err(|_| ApiError::bad_request("promptId", "a prompt id (UUID)"))?)
        }
    };
    let filter = ExecutionFilter {
        status,
        prompt_id,
        since: parse_time("since", q.since.as_deref())?,
        until: parse_time("until", q.until.as_deref())?,
    };
    let page = PageRequest::new(q.limit, q.cursor.as_deref())?;
    let Page { items, next_cursor } = state.engine().list_executions(auth.id(), filter, page).await?;
    Ok(AppJson(ExecutionPage { items, next_cursor }))
}

/// One execution.
#[utoipa::path(get, path = "/executions/{id}", tag = "executions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Execution id")),
    responses((status = 200, body = Execution), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_execution(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<AppJson<Execution>> {
    let id = execution_id(&id)?;
    Ok(AppJson(state.engine().get_execution(auth.id(), id).await?))
}

/// Retries a FAILED execution as a new execution (`retryOf` links them), same inputs and
/// version; answers 202 with the new QUEUED execution.
#[utoipa::path(post, path = "/executions/{id}/retry", tag = "executions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Execution id")),
    responses((status = 202, body = Execution), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "Not FAILED")))]
async fn retry_execution(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = execution_id(&id)?;
    let e = state.engine().retry(auth.id(), id).await?;
    let location = format!("/api/executions/{}", e.id);
    let mut response = (StatusCode::ACCEPTED, AppJson(e)).into_response();
    if let Ok(v) = location.parse() {
        response.headers_mut().insert(LOCATION, v);
    }
    Ok(response)
}

/// Cancels a QUEUED execution.
#[utoipa::path(post, path = "/executions/{id}/cancel", tag = "executions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Execution id")),
    responses((status = 200, body = Execution), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "Not QUEUED")))]
async fn cancel_execution(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<AppJson<Execution>> {
    let id = execution_id(&id)?;
    Ok(AppJson(state.engine().cancel(auth.id(), id).await?))
}
