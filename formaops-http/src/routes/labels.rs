//! `/api/prompts/{id}/labels`, `/label-settings` and `/diff`: labels (promotion, rollback,
//! their history), the promotion guard, and version diffs. Translation only: the rules live
//! in `formaops_core::prompt::label` and `formaops_core::prompt::diff`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use formaops_core::ids::UserId;
use formaops_core::prompt::{Label, LabelMove, LabelSettings, VersionDiff, VersionRef};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::prompts::prompt_id;
use crate::auth::AuthUser;
use crate::error::{ApiResult, AppJson, AppQuery, ErrorBody};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_labels))
        .routes(routes!(set_label, delete_label))
        .routes(routes!(label_history))
        .routes(routes!(get_label_settings, put_label_settings))
        .routes(routes!(diff))
}

/// One label and the version it points at.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelDto {
    pub name: String,
    pub version: u32,
    pub updated_at: DateTime<Utc>,
    /// Who moved it last; absent for the built-in `latest`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub updated_by: Option<UserId>,
}

impl From<Label> for LabelDto {
    fn from(l: Label) -> Self {
        Self { name: l.name, version: l.version, updated_at: l.updated_at, updated_by: l.updated_by }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelList {
    /// `latest` first, then the prompt's labels by name.
    pub items: Vec<LabelDto>,
}

/// One move: created (`from` null), moved, or deleted (`to` null).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelMoveDto {
    pub name: String,
    pub from: Option<u32>,
    pub to: Option<u32>,
    /// Who moved it.
    #[schema(value_type = String, format = Uuid)]
    pub actor: UserId,
    pub at: DateTime<Utc>,
}

impl From<LabelMove> for LabelMoveDto {
    fn from(m: LabelMove) -> Self {
        Self { name: m.name, from: m.from, to: m.to, actor: m.actor, at: m.at }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelHistory {
    /// Newest first (at most 1000).
    pub items: Vec<LabelMoveDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetLabelRequest {
    /// The version the label will point at.
    pub version: u32,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only the moves of this label.
    pub label: Option<String>,
}

/// The prompt's label settings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSettingsDto {
    /// The promotion guard: refuse a move of `production` to a version that would refuse
    /// inputs the current production version accepts (default false).
    #[serde(default)]
    pub guard_production: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiffQuery {
    /// A version number or a label (`production`, `latest`, ...).
    pub from: String,
    /// A version number or a label.
    pub to: String,
}

/// What changed between two versions.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiffDto {
    pub from: u32,
    pub to: u32,
    /// Unified diff of the user template (empty when equal).
    pub template: String,
    /// Unified diff of the system template (empty when equal).
    pub system_template: String,
    /// `{added: [definition], removed: [definition], changed: [{name, from, to}]}`
    #[schema(value_type = Object)]
    pub variables: serde_json::Value,
    /// `{added: [rule], removed: [rule]}`
    #[schema(value_type = Object)]
    pub validations: serde_json::Value,
    /// `[{field, from, to}]` by dotted path (`model`, `parameters.temperature`, ...).
    #[schema(value_type = Vec<Object>)]
    pub model: serde_json::Value,
}

impl TryFrom<VersionDiff> for DiffDto {
    type Error = crate::error::ApiError;

    fn try_from(d: VersionDiff) -> ApiResult<Self> {
        let json = |v: serde_json::Result<serde_json::Value>| {
            v.map_err(|e| crate::error::ApiError::from(formaops_core::Error::internal(e.to_string())))
        };
        Ok(Self {
            from: d.from,
            to: d.to,
            template: d.template,
            system_template: d.system_template,
            variables: json(serde_json::to_value(&d.variables))?,
            validations: json(serde_json::to_value(&d.validations))?,
            model: json(serde_json::to_value(&d.model))?,
        })
    }
}

/// The prompt's labels, with the built-in `latest` (always the newest version).
#[utoipa::path(get, path = "/{id}/labels", tag = "prompts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Prompt id")),
    responses((status = 200, body = LabelList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_labels(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<AppJson<LabelList>> {
    let labels = state.engine().labels(auth.id(), prompt_id(&id)?).await?;
    Ok(AppJson(LabelList { items: labels.into_iter().map(Into::into).collect() }))
}

/// Points a label at a version: creates it, promotes, or rolls back. Every move is recorded.
/// `latest` cannot be set. With the promotion guard on, a move of `production` to a version
/// that would refuse inputs the current production version accepts is refused (422, each
/// reason in `details.problems`).
#[utoipa::path(put, path = "/{id}/labels/{name}", tag = "prompts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Prompt id"),
        ("name" = String, Path, description = "Label name, `[a-z0-9_-]{1,64}`")),
    request_body = SetLabelRequest,
    responses(
        (status = 200, body = LabelDto),
        (status = 400, body = ErrorBody, description = "A bad label name, or `latest`"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "No such prompt or version"),
        (status = 409, body = ErrorBody, description = "The prompt is archived"),
        (status = 422, body = ErrorBody, description = "Refused by the promotion guard, with the reasons"),
    ))]
async fn set_label(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, name)): Path<(String, String)>,
    AppJson(body): AppJson<SetLabelRequest>,
) -> ApiResult<AppJson<LabelDto>> {
    let label = state.engine().set_label(auth.id(), prompt_id(&id)?, &name, body.version).await?;
    Ok(AppJson(label.into()))
}

/// Deletes a label (recorded in the history). `latest` cannot be deleted.
#[utoipa::path(delete, path = "/{id}/labels/{name}", tag = "prompts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Prompt id"), ("name" = String, Path, description = "Label name")),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_label(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.engine().delete_label(auth.id(), prompt_id(&id)?, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every move of the prompt's labels (who, when, from, to), newest first.
#[utoipa::path(get, path = "/{id}/label-history", tag = "prompts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Prompt id"), HistoryQuery),
    responses((status = 200, body = LabelHistory), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn label_history(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    AppQuery(q): AppQuery<HistoryQuery>,
) -> ApiResult<AppJson<LabelHistory>> {
    let moves = state.engine().label_history(auth.id(), prompt_id(&id)?, q.label.as_deref()).await?;
    Ok(AppJson(LabelHistory { items: moves.into_iter().map(Into::into).collect() }))
}

/// The prompt's label settings (the promotion guard).
#[utoipa::path(get, path = "/{id}/label-settings", tag = "prompts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Prompt id")),
    responses((status = 200, body = LabelSettingsDto), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_label_settings(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<AppJson<LabelSettingsDto>> {
    let s = state.engine().label_settings(auth.id(), prompt_id(&id)?).await?;
    Ok(AppJson(LabelSettingsDto { guard_production: s.guard_production }))
}

/// Sets the prompt's label settings.
#[utoipa::path(put, path = "/{id}/label-settings", tag = "prompts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Prompt id")),
    request_body = LabelSettingsDto,
    responses((status = 200, body = LabelSettingsDto), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn put_label_settings(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    AppJson(body): AppJson<LabelSettingsDto>,
) -> ApiResult<AppJson<LabelSettingsDto>> {
    let settings = LabelSettings { guard_production: body.guard_production };
    state.engine().set_label_settings(auth.id(), prompt_id(&id)?, settings).await?;
    Ok(AppJson(body))
}

/// What changed between two versions (numbers or labels): unified diffs of the templates,
/// structured diffs of variables, validation rules and model settings.
#[utoipa::path(get, path = "/{id}/diff", tag = "prompts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Prompt id"), DiffQuery),
    responses((status = 200, body = DiffDto), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "No such prompt, version or label")))]
async fn diff(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    AppQuery(q): AppQuery<DiffQuery>,
) -> ApiResult<AppJson<DiffDto>> {
    let from = VersionRef::parse("from", &q.from)?;
    let to = VersionRef::parse("to", &q.to)?;
    let d = state.engine().diff(auth.id(), prompt_id(&id)?, &from, &to).await?;
    Ok(AppJson(d.try_into()?))
}
