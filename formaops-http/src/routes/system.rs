//! `/api/health`, `/api/metrics` (the caller's aggregates) and `/metrics` (Prometheus text
//! for operators: no per-user labels).

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use formaops_core::engine::ProviderHealth;
use formaops_core::ids::PromptId;
use formaops_core::metrics::{Granularity, MetricsQuery, MetricsReport, MetricsSeries, MetricsSeriesQuery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, AppJson, AppQuery, ErrorBody};
use crate::routes::executions::parse_time;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(metrics)).routes(routes!(metrics_series))
}

/// One provider's state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderDto {
    pub name: String,
    pub in_flight: usize,
    pub concurrency: usize,
}

impl From<ProviderHealth> for ProviderDto {
    fn from(p: ProviderHealth) -> Self {
        Self { name: p.name, in_flight: p.in_flight, concurrency: p.concurrency }
    }
}

/// Readiness of this server.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthResponse {
    /// `ok`, or `unavailable` (then the status code is 503).
    pub status: String,
    /// Whether the database answered.
    pub database: bool,
    /// Executions waiting to run (all users); `null` when the database did not answer.
    pub queue_depth: Option<u64>,
    /// Whether this process runs workers.
    pub workers_running: bool,
    pub shutting_down: bool,
    pub providers: Vec<ProviderDto>,
    pub version: String,
    pub uptime_seconds: u64,
}

/// Health: 200 when ready, 503 when the database is unreachable or the server shuts down.
/// Needs no credentials (for load balancers); reveals no user data.
#[utoipa::path(get, path = "/health", tag = "system",
    responses((status = 200, body = HealthResponse), (status = 503, body = HealthResponse)))]
async fn health(State(state): State<AppState>) -> Response {
    let report = state.engine().health().await;
    if let Some(e) = &report.store_error {
        tracing::warn!(error = %e, "health: store unreachable");
    }
    let ready = report.store_ok && !report.shutting_down;
    let body = HealthResponse {
        status: if ready { "ok" } else { "unavailable" }.to_string(),
        database: report.store_ok,
        queue_depth: report.queue_depth,
        workers_running: report.workers_running,
        shutting_down: report.shutting_down,
        providers: report.providers.into_iter().map(Into::into).collect(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_seconds: state.uptime().as_secs(),
    };
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, AppJson(body)).into_response()
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsParams {
    /// Executions created at or after (RFC 3339).
    pub since: Option<String>,
    /// Executions created before (RFC 3339).
    pub until: Option<String>,
    /// One prompt only.
    pub prompt_id: Option<String>,
    /// One version of that prompt only (needs `promptId`).
    pub version: Option<u32>,
}

fn parse_prompt_id(s: Option<&str>) -> ApiResult<Option<PromptId>> {
    s.map(|s| s.parse().map_err(|_| ApiError::bad_request("promptId", "a prompt id (UUID)"))).transpose()
}

/// The caller's aggregates: counts by status, latency percentiles, tokens, cost, validation
/// pass rate, and the same per prompt; with `promptId`, also per version (`byVersion`) and per
/// label (`byLabel`), each with its `share` of the prompt's executions. Read from rollups: the
/// window is rounded outward to whole minutes (`since` down, `until` up) and percentiles are
/// within 1 % of the exact nearest-rank ones; QUEUED/RUNNING counts are live.
#[utoipa::path(get, path = "/metrics", tag = "system", security(("bearer" = [])),
    params(MetricsParams),
    responses((status = 200, body = MetricsReport),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn metrics(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<MetricsParams>,
) -> ApiResult<AppJson<MetricsReport>> {
    let prompt_id = parse_prompt_id(q.prompt_id.as_deref())?;
    let query = MetricsQuery {
        since: parse_time("since", q.since.as_deref())?,
        until: parse_time("until", q.until.as_deref())?,
        prompt_id,
        prompt_version: q.version,
    };
    Ok(AppJson(state.engine().metrics(auth.id(), query).await?))
}

/// `GET /metrics`: Prometheus text exposition. Refreshes the gauges read from the engine's
/// health (`formaops_database_up`, `formaops_queue_depth`, `formaops_provider_in_flight`,
/// `formaops_provider_concurrency`, `formaops_uptime_seconds`) before rendering.
pub async fn prometheus(State(state): State<AppState>) -> Response {
    match state.prometheus() {
        Some(handle) => {
            let report = state.engine().health().await;
            metrics::gauge!("formaops_database_up").set(if report.store_ok { 1.0 } else { 0.0 });
            if let Some(depth) = report.queue_depth {
                metrics::gauge!("formaops_queue_depth").set(depth as f64);
            }
            for p in &report.providers {
                metrics::gauge!("formaops_provider_in_flight", "provider" => p.name.clone())
                    .set(p.in_flight as f64);
                metrics::gauge!("formaops_provider_concurrency", "provider" => p.name.clone())
                    .set(p.concurrency as f64);
            }
            metrics::gauge!("formaops_uptime_seconds").set(state.uptime().as_secs_f64());
            handle.run_upkeep();
            ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response()
        }
        None => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "metrics exporter not installed")
                .into_response()
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeriesParams {
    /// Bucket width: `minute`, `hour` or `day`.
    pub bucket: String,
    /// Executions created at or after (RFC 3339), rounded down to the bucket; default: 60
    /// buckets before `until`.
    pub since: Option<String>,
    /// Executions created before (RFC 3339), rounded up to the bucket; default: now.
    pub until: Option<String>,
    /// One prompt only.
    pub prompt_id: Option<String>,
    /// One version of that prompt only (needs `promptId`).
    pub version: Option<u32>,
    /// Only executions run through this label (needs `promptId`).
    pub label: Option<String>,
}

/// A time series of the caller's final executions for charts: one point per bucket with
/// executions (counts by status, latency p50/p95/p99 within 1 %, tokens, cost), oldest first,
/// at most 1,500 points per answer (a longer window is refused: use a wider bucket).
#[utoipa::path(get, path = "/metrics/series", tag = "system", security(("bearer" = [])),
    params(SeriesParams),
    responses((status = 200, body = MetricsSeries),
        (status = 400, body = ErrorBody, description = "A bad `bucket`, window, filter, or too many points"),
        (status = 401, body = ErrorBody)))]
async fn metrics_series(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<SeriesParams>,
) -> ApiResult<AppJson<MetricsSeries>> {
    let bucket: Granularity =
        q.bucket.parse().map_err(|_| ApiError::bad_request("bucket", "one of minute, hour, day"))?;
    let query = MetricsSeriesQuery {
        bucket,
        since: parse_time("since", q.since.as_deref())?,
        until: parse_time("until", q.until.as_deref())?,
        prompt_id: parse_prompt_id(q.prompt_id.as_deref())?,
        prompt_version: q.version,
        label: q.label,
    };
    Ok(AppJson(state.engine().metrics_series(auth.id(), query).await?))
}
