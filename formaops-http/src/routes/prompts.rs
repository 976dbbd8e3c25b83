//! `/api/prompts`: create, list, get (any version), update (a new immutable version),
//! archive, and version history.
//!
//! `DELETE` archives: the prompt leaves the default list (`?status=ARCHIVED` lists archived
//! ones), cannot be executed or updated, and its name is free again; its versions and
//! executions stay readable by id.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use formaops_core::ids::PromptId;
use formaops_core::page::{Page, PageRequest};
use formaops_core::prompt::{ModelConfig, Prompt, PromptSpec, PromptStatus, PromptUpdate, PromptVersion};
use formaops_core::store::{PromptFilter, VersionPageRequest};
use formaops_core::validation::ValidationRule;
use formaops_core::variables::VariableDefinition;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, AppJson, AppQuery, ErrorBody};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_prompts, create_prompt))
        .routes(routes!(get_prompt, update_prompt, archive_prompt))
        .routes(routes!(list_versions))
}

/// Parses a path id; a malformed one is "not found", exactly like a missing one.
pub(crate) fn prompt_id(id: &str) -> ApiResult<PromptId> {
    id.parse().map_err(|_| ApiError::not_found("prompt", id))
}

/// The spec's `CreatePromptRequest`, plus optional system template and model.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePromptRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// User message template (minijinja syntax, e.g. `Summarise {{ text }}`).
    pub template: String,
    #[serde(default)]
    pub system_template: Option<String>,
    /// `[{name, type: string|number|integer|boolean|enum|json, required, description?, defaultValue?}]`
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub variables: Vec<VariableDefinition>,
    /// `[{type: json|json_schema|regex|min_length|max_length|contains|not_contains, ...}]`
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub validations: Vec<ValidationRule>,
    /// `{provider?, model, parameters?}`; the server's default provider and model when omitted.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub model: Option<ModelConfig>,
    /// Labels to put on version 1; omitted: `["production"]`; `[]`: none.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
}

impl From<CreatePromptRequest> for PromptSpec {
    fn from(r: CreatePromptRequest) -> Self {
        Self {
            name: r.name,
            description: r.description,
            template: r.template,
            system_template: r.system_template,
            variables: r.variables,
            validations: r.validations,
            model: r.model,
            labels: r.labels,
        }
    }
}

/// An update: every field optional, omitted ones carried over; always writes a new version.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdatePromptRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub system_template: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub variables: Option<Vec<VariableDefinition>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub validations: Option<Vec<ValidationRule>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub model: Option<ModelConfig>,
    /// Optimistic concurrency: 409 unless this is still the current version.
    #[serde(default)]
    pub expected_version: Option<u32>,
}

impl From<UpdatePromptRequest> for PromptUpdate {
    fn from(r: UpdatePromptRequest) -> Self {
        Self {
            name: r.name,
            description: r.description,
            template: r.template,
            system_template: r.system_template,
            variables: r.variables,
            validations: r.validations,
            model: r.model,
            expected_version: r.expected_version,
        }
    }
}

/// A prompt with one of its versions (the current one unless `?version=N`).
///
/// The one HTTP-only shape of this module, because the wire truly differs here: the engine
/// answers a `(Prompt, PromptVersion)` pair, and REST sends it as one object, the core
/// [`Prompt`]'s fields with the core [`PromptVersion`] under `version` (the Python `Prompt`
/// has the same `version` field). Lists and archive answer the core [`Prompt`] itself.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromptDto {
    #[serde(flatten)]
    pub prompt: Prompt,
    /// The version shown below (`currentVersion` unless another was asked for).
    pub version: PromptVersion,
}

impl PromptDto {
    fn new((prompt, version): (Prompt, PromptVersion)) -> Self {
        Self { prompt, version }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromptPage {
    pub items: Vec<Prompt>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionPage {
    pub items: Vec<PromptVersion>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListPromptsQuery {
    /// Page size, 1..=200 (default 50).
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// `ACTIVE` (default) or `ARCHIVED`.
    pub status: Option<String>,
    /// Only the ACTIVE prompt of exactly this name (trimmed): a page of 0 or 1 item. Not with
    /// `status` or `cursor`.
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetPromptQuery {
    /// A version number; the current version when omitted.
    pub version: Option<u32>,
    /// A label (`production`, `staging`, `latest`, ...); exclusive with `version`.
    pub label: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListVersionsQuery {
    /// Page size, 1..=200 (default 50).
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// The caller's prompts, newest first.
#[utoipa::path(get, path = "", tag = "prompts", security(("bearer" = [])),
    params(ListPromptsQuery),
    responses((status = 200, body = PromptPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_prompts(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<ListPromptsQuery>,
) -> ApiResult<AppJson<PromptPage>> {
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(
            PromptStatus::parse(s).ok_or_else(|| ApiError::bad_request("status", "ACTIVE or ARCHIVED"))?,
        ),
    };
    if let Some(name) = q.name.as_deref() {
        if q.status.is_some() || q.cursor.is_some() {
            return Err(ApiError::bad_request("name", "a name lookup takes no status or cursor"));
        }
        let items = match state.engine().find_prompt_by_name(auth.id(), name).await {
            Ok(p) => vec![p],
            Err(formaops_core::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        return Ok(AppJson(PromptPage { items, next_cursor: None }));
    }
    let page = PageRequest::new(q.limit, q.cursor.as_deref())?;
    let Page { items, next_cursor } =
        state.engine().list_prompts(auth.id(), PromptFilter { status }, page).await?;
    Ok(AppJson(PromptPage { items, next_cursor }))
}

/// Creates a prompt with version 1.
#[utoipa::path(post, path = "", tag = "prompts", security(("bearer" = [])),
    request_body = CreatePromptRequest,
    responses(
        (status = 201, body = PromptDto),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "An active prompt of this name exists"),
        (status = 422, body = ErrorBody, description = "Every problem with the definition"),
    ))]
async fn create_prompt(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(body): AppJson<CreatePromptRequest>,
) -> ApiResult<Response> {
    let created = state.engine().create_prompt(auth.id(), body.into()).await?;
    let location = format!("/api/prompts/{}", created.0.id);
    let mut response = (StatusCode::CREATED, AppJson(PromptDto::new(created))).into_response();
    if let Ok(v) = location.parse() {
        response.headers_mut().insert(LOCATION, v);
    }
    Ok(response)
}

/// A prompt with its current version, the version `?version=N`, or the version a label
/// points at (`?label=production`; `version` and `label` are exclusive: 400).
#[utoipa::path(get, path = "/{id}", tag = "prompts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Prompt id"), GetPromptQuery),
    responses((status = 200, body = PromptDto), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_prompt(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    AppQuery(q): AppQuery<GetPromptQuery>,
) -> ApiResult<AppJson<PromptDto>> {
    let id = prompt_id(&id)?;
    let found = state.engine().get_prompt_at(auth.id(), id, q.version, q.label.as_deref()).await?;
    Ok(AppJson(PromptDto::new(found)))
}

/// Writes a new immutable version; omitted fields are carried over.
#[utoipa::path(put, path = "/{id}", tag = "prompts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Prompt id")),
    request_body = UpdatePromptRequest,
    responses(
        (status = 200, body = PromptDto),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Archived, a concurrent update, or a duplicate name"),
        (status = 422, body = ErrorBody),
    ))]
async fn update_prompt(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    AppJson(body): AppJson<UpdatePromptRequest>,
) -> ApiResult<AppJson<PromptDto>> {
    let id = prompt_id(&id)?;
    Ok(AppJson(PromptDto::new(state.engine().update_prompt(auth.id(), id, body.into()).await?)))
}

/// Archives the prompt (history and executions stay readable).
#[utoipa::path(delete, path = "/{id}", tag = "prompts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Prompt id")),
    responses((status = 200, body = Prompt, description = "The archived prompt"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn archive_prompt(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<AppJson<Prompt>> {
    let id = prompt_id(&id)?;
    Ok(AppJson(state.engine().archive_prompt(auth.id(), id).await?))
}

/// Versions of a prompt, newest first.
#[utoipa::path(get, path = "/{id}/versions", tag = "prompts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Prompt id"), ListVersionsQuery),
    responses((status = 200, body = VersionPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_versions(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    AppQuery(q): AppQuery<ListVersionsQuery>,
) -> ApiResult<AppJson<VersionPage>> {
    let id = prompt_id(&id)?;
    // Validates `limit` the same way as every other list.
    let limit = PageRequest::new(q.limit, None)?.limit;
    let before = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            c.parse::<u32>()
                .map_err(|_| ApiError::bad_request("cursor", "not a cursor returned by this API"))?,
        ),
    };
    let Page { items, next_cursor } =
        state.engine().list_versions(auth.id(), id, VersionPageRequest { limit, before }).await?;
    Ok(AppJson(VersionPage { items, next_cursor }))
}
