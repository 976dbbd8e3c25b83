//! `/api/datasets` and `/api/experiments`: datasets of input rows (JSON, JSONL or CSV bodies,
//! or past executions), experiments over them, their progress (JSON and SSE), comparison and
//! exports. Translation only: the rules live in `formaops_core::dataset`,
//! `formaops_core::experiment` and the engine.

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use formaops_core::dataset::{self, Dataset, DatasetRow, FromExecutions};
use formaops_core::experiment::{self, Comparison, Experiment, ExperimentProgress, ExperimentSpec};
use formaops_core::ids::{DatasetId, ExperimentId};
use formaops_core::page::{Page, PageRequest};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, AppJson, AppQuery, ErrorBody};
use crate::state::AppState;

pub fn datasets_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_dataset, list_datasets))
        .routes(routes!(from_executions))
        .routes(routes!(get_dataset, delete_dataset))
        .routes(routes!(dataset_rows))
}

pub fn experiments_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_experiment, list_experiments))
        .routes(routes!(get_experiment))
        .routes(routes!(results))
        .routes(routes!(export))
        .routes(routes!(cancel))
        .routes(routes!(events))
}

fn dataset_id(id: &str) -> ApiResult<DatasetId> {
    id.parse().map_err(|_| ApiError::not_found("dataset", id))
}

fn experiment_id(id: &str) -> ApiResult<ExperimentId> {
    id.parse().map_err(|_| ApiError::not_found("experiment", id))
}

/// A JSON dataset body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateDatasetRequest {
    /// Unique among the caller's datasets.
    pub name: String,
    /// The rows, numbered from 0 in this order; `index` is ignored.
    pub rows: Vec<DatasetRow>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateDatasetQuery {
    /// The dataset's name, for JSONL and CSV bodies.
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PageQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatasetPage {
    pub items: Vec<Dataset>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RowPage {
    /// By index.
    pub items: Vec<DatasetRow>,
    /// The last index returned, when more rows may follow.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentPage {
    pub items: Vec<Experiment>,
    pub next_cursor: Option<String>,
}

/// An experiment with its progress.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentView {
    #[serde(flatten)]
    pub experiment: Experiment,
    pub progress: ExperimentProgress,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportQuery {
    /// `jsonl` (default) or `csv`.
    pub format: Option<String>,
}

fn created(body: impl Serialize) -> Response {
    (StatusCode::CREATED, AppJson(body)).into_response()
}

/// Creates a dataset. The body is JSON (`{"name", "rows": [{"inputs", "expected"?}]}`), JSONL
/// (`Content-Type: application/jsonl` or `application/x-ndjson`, one `{"inputs", "expected"?}`
/// per line) or CSV (`text/csv`: a header of variable names, an `expected` column for the
/// expected output); JSONL and CSV take the name from `?name=`. Every bad line or row is
/// listed (422, `details.problems`, fields `line N` or `rows[i]`); nothing is stored on error.
#[utoipa::path(post, path = "", tag = "datasets", security(("bearer" = [])),
    params(CreateDatasetQuery),
    request_body(content(
        (CreateDatasetRequest = "application/json"),
        (String = "application/jsonl"),
        (String = "text/csv"),
    )),
    responses((status = 201, body = Dataset), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "A dataset of this name exists"),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody, description = "Every bad line or row")))]
async fn create_dataset(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<CreateDatasetQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default();
    let text = || std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("body", "is not UTF-8 text"));
    let name =
        || q.name.clone().ok_or_else(|| ApiError::bad_request("name", "give the dataset's name as ?name="));
    let (name, rows) = match kind.as_str() {
        "application/json" => {
            let req: CreateDatasetRequest = serde_json::from_slice(&body).map_err(|e| {
                if e.is_syntax() || e.is_eof() {
                    ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("malformed JSON: {e}"))
                } else {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", e.to_string())
                }
            })?;
            (req.name, req.rows)
        }
        "application/jsonl" | "application/x-ndjson" | "application/ndjson" => {
            (name()?, dataset::parse_jsonl(text()?)?)
        }
        "text/csv" => (name()?, dataset::parse_csv(text()?)?),
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected `application/json`, `application/jsonl` or `text/csv`",
            ));
        }
    };
    let d = state.engine().create_dataset(auth.id(), &name, rows).await?;
    Ok(created(d))
}

/// Creates a dataset from past executions of a prompt (newest first), filtered as the
/// executions list is (`status`, `since`, `until`) and by `version`, at most `limit` rows;
/// with `expectedFromOutput`, completed executions' outputs become expected outputs.
#[utoipa::path(post, path = "/from-executions", tag = "datasets", security(("bearer" = [])),
    request_body = FromExecutions,
    responses((status = 201, body = Dataset), (status = 400, body = ErrorBody, description = "Bad filters, or nothing matches"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn from_executions(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(body): AppJson<FromExecutions>,
) -> ApiResult<Response> {
    Ok(created(state.engine().create_dataset_from_executions(auth.id(), body).await?))
}

/// The caller's datasets, newest first.
#[utoipa::path(get, path = "", tag = "datasets", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = DatasetPage), (status = 400, body = ErrorBody)))]
async fn list_datasets(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<PageQuery>,
) -> ApiResult<AppJson<DatasetPage>> {
    let page = PageRequest::new(q.limit, q.cursor.as_deref())?;
    let Page { items, next_cursor } = state.engine().list_datasets(auth.id(), page).await?;
    Ok(AppJson(DatasetPage { items, next_cursor }))
}

/// One dataset (its rows: `/rows`).
#[utoipa::path(get, path = "/{id}", tag = "datasets", security(("bearer" = [])),
    params(("id" = String, Path, description = "Dataset id")),
    responses((status = 200, body = Dataset), (status = 404, body = ErrorBody)))]
async fn get_dataset(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<AppJson<Dataset>> {
    Ok(AppJson(state.engine().get_dataset(auth.id(), dataset_id(&id)?).await?))
}

/// Deletes a dataset and its rows; refused (409) while an experiment uses it.
#[utoipa::path(delete, path = "/{id}", tag = "datasets", security(("bearer" = [])),
    params(("id" = String, Path, description = "Dataset id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Used by an experiment")))]
async fn delete_dataset(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.engine().delete_dataset(auth.id(), dataset_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A dataset's rows by index; `nextCursor` is the last index returned.
#[utoipa::path(get, path = "/{id}/rows", tag = "datasets", security(("bearer" = [])),
    params(("id" = String, Path, description = "Dataset id"), PageQuery),
    responses((status = 200, body = RowPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn dataset_rows(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    AppQuery(q): AppQuery<PageQuery>,
) -> ApiResult<AppJson<RowPage>> {
    let limit = q.limit.unwrap_or(formaops_core::page::DEFAULT_PAGE_SIZE);
    let after = q
        .cursor
        .as_deref()
        .map(|c| c.parse::<u32>().map_err(|_| ApiError::bad_request("cursor", "is not a row cursor")))
        .transpose()?;
    let items = state.engine().dataset_rows(auth.id(), dataset_id(&id)?, after, limit).await?;
    let next_cursor =
        (items.len() == limit as usize).then(|| items.last().map(|r| r.index.to_string())).flatten();
    Ok(AppJson(RowPage { items, next_cursor }))
}

/// Starts an experiment: `versions` (numbers or labels, resolved now and recorded) run over
/// the dataset's rows through the queue (LOW priority unless `priority`), at most
/// `concurrency` at once (default 8), idempotent per row and version. Rows that a version
/// would refuse are listed (422, fields `rows[i].inputs.<variable>`).
#[utoipa::path(post, path = "", tag = "experiments", security(("bearer" = [])),
    request_body = ExperimentSpec,
    responses((status = 201, body = ExperimentView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "No such prompt, dataset, version or label"),
        (status = 409, body = ErrorBody, description = "The prompt is archived"),
        (status = 422, body = ErrorBody, description = "Rows a version refuses")))]
async fn start_experiment(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(body): AppJson<ExperimentSpec>,
) -> ApiResult<Response> {
    let x = state.engine().start_experiment(auth.id(), body).await?;
    let (experiment, progress) = state.engine().get_experiment(auth.id(), x.id).await?;
    let location = format!("/api/experiments/{}", x.id);
    let mut response = created(ExperimentView { experiment, progress });
    if let Ok(v) = location.parse() {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// The caller's experiments, newest first.
#[utoipa::path(get, path = "", tag = "experiments", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = ExperimentPage), (status = 400, body = ErrorBody)))]
async fn list_experiments(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<PageQuery>,
) -> ApiResult<AppJson<ExperimentPage>> {
    let page = PageRequest::new(q.limit, q.cursor.as_deref())?;
    let Page { items, next_cursor } = state.engine().list_experiments(auth.id(), page).await?;
    Ok(AppJson(ExperimentPage { items, next_cursor }))
}

/// One experiment with its progress (done, failed, in flight, total, cost so far).
#[utoipa::path(get, path = "/{id}", tag = "experiments", security(("bearer" = [])),
    params(("id" = String, Path, description = "Experiment id")),
    responses((status = 200, body = ExperimentView), (status = 404, body = ErrorBody)))]
async fn get_experiment(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<AppJson<ExperimentView>> {
    let (experiment, progress) = state.engine().get_experiment(auth.id(), experiment_id(&id)?).await?;
    Ok(AppJson(ExperimentView { experiment, progress }))
}

/// The side-by-side comparison: per version pass rate, match rate, latency percentiles (ms),
/// tokens and cost; per row each version's output, validation verdict and match.
#[utoipa::path(get, path = "/{id}/results", tag = "experiments", security(("bearer" = [])),
    params(("id" = String, Path, description = "Experiment id")),
    responses((status = 200, body = Comparison), (status = 404, body = ErrorBody)))]
async fn results(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<AppJson<Comparison>> {
    Ok(AppJson(state.engine().experiment_results(auth.id(), experiment_id(&id)?).await?))
}

/// The comparison as JSONL (one object per row and version) or CSV (the same columns).
#[utoipa::path(get, path = "/{id}/export", tag = "experiments", security(("bearer" = [])),
    params(("id" = String, Path, description = "Experiment id"), ExportQuery),
    responses((status = 200, content_type = "application/jsonl", body = String),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn export(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    AppQuery(q): AppQuery<ExportQuery>,
) -> ApiResult<Response> {
    let csv = match q.format.as_deref() {
        None | Some("jsonl") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::bad_request("format", "must be `jsonl` or `csv`")),
    };
    let c = state.engine().experiment_results(auth.id(), experiment_id(&id)?).await?;
    let (body, kind, ext) = if csv {
        (experiment::export_csv(&c)?, "text/csv; charset=utf-8", "csv")
    } else {
        (experiment::export_jsonl(&c)?, "application/jsonl", "jsonl")
    };
    let disposition = format!("attachment; filename=\"experiment-{}.{ext}\"", c.experiment.id);
    Ok(([(header::CONTENT_TYPE, kind.to_string()), (header::CONTENT_DISPOSITION, disposition)], body)
        .into_response())
}

/// Cancels an experiment: queued rows are cancelled, finished ones kept (409 once completed).
#[utoipa::path(post, path = "/{id}/cancel", tag = "experiments", security(("bearer" = [])),
    params(("id" = String, Path, description = "Experiment id")),
    responses((status = 200, body = ExperimentView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Already completed")))]
async fn cancel(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<AppJson<ExperimentView>> {
    let (experiment, progress) = state.engine().cancel_experiment(auth.id(), experiment_id(&id)?).await?;
    Ok(AppJson(ExperimentView { experiment, progress }))
}

/// Server-Sent Events of the experiment's progress: a `progress` event now and on every
/// change, the stream ending after the experiment is completed or cancelled with nothing in
/// flight.
#[utoipa::path(get, path = "/{id}/events", tag = "experiments", security(("bearer" = [])),
    params(("id" = String, Path, description = "Experiment id")),
    responses((status = 200, content_type = "text/event-stream", description = "`progress` events (ExperimentProgress)"),
        (status = 404, body = ErrorBody)))]
async fn events(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let stream = state.engine().follow_experiment(auth.id(), experiment_id(&id)?).await?;
    let events = stream.take_until(state.shutting_down()).map(|p| {
        Ok::<_, Infallible>(
            Event::default()
                .event("progress")
                .json_data(&p)
                .unwrap_or_else(|_| Event::default().comment("unserializable")),
        )
    });
    let keep_alive = KeepAlive::new().interval(state.settings().keep_alive);
    Ok(Sse::new(events).keep_alive(keep_alive).into_response())
}
