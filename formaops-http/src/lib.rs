//! # formaops-http
//!
//! The FormaOps REST server: an axum adapter over the core engine, and the `formaops`
//! binary (`serve`, `migrate`, `users create`). It translates JSON to core types and core
//! errors to HTTP; every rule lives in `formaops-core`.
//!
//! # Layout
//!
//! - [`config`]: flags, environment and TOML file, resolved into [`config::Config`].
//! - [`error`]: [`error::ApiError`], the one error body, and the core-error mapping;
//!   [`error::AppJson`] / [`error::AppQuery`] extractors that answer in that shape.
//! - [`limits`]: URI, header and declared-body limits answered in our error shape.
//! - [`cli`]: `formaops experiment run`, a REST client with a progress bar.
//! - [`auth`]: bearer token and session cookie, the [`auth::AuthUser`] and
//!   [`auth::ClientAddr`] extractors (account rules are in `formaops_core::user`).
//! - [`state`]: [`state::AppState`] shared by handlers.
//! - [`routes`]: one module per area (`auth`, `prompts`, `executions`, `events`, `system`).
//! - [`openapi`](mod@openapi): the OpenAPI 3.1 document and the offline Swagger UI.
//! - [`console`]: the embedded web console at `/` (static files, SPA fallback, CSP).
//! - [`server`]: wiring for the binary: store, providers, engine, first admin, graceful
//!   shutdown.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use formaops_http::config::{Config, DbArgs, ServeArgs};
//! let config = Config::resolve(&DbArgs::default(), &ServeArgs::default())?;
//! formaops_http::serve(config).await
//! # }
//! ```

pub mod auth;
pub mod cli;
pub mod config;
pub mod console;
pub mod error;
pub mod limits;
pub mod openai;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod state;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

pub use server::serve;
pub use state::{AppState, HttpSettings};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// All API routes with their OpenAPI description.
fn api() -> OpenApiRouter<AppState> {
    let rest = OpenApiRouter::new()
        .merge(routes::executions::router())
        .merge(routes::events::router())
        .merge(routes::system::router());
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/api/auth", routes::auth::router())
        .nest("/api/prompts", routes::prompts::router().merge(routes::labels::router()))
        .nest("/api/datasets", routes::lab::datasets_router())
        .nest("/api/experiments", routes::lab::experiments_router())
        .nest("/api", rest)
}

/// The OpenAPI document, as served at `/api/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}

/// Records `http_request_duration_seconds{method, route, status}` (route is the matched
/// pattern, never the raw path, so labels stay few and carry no ids).
async fn track_duration(req: Request, next: Next) -> Response {
    let start = std::time::Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().as_str().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route, "status" => status)
        .record(start.elapsed().as_secs_f64());
    response
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("prefer"),
            ])
            .expose_headers([REQUEST_ID, axum::http::header::LOCATION, axum::http::header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

/// The whole HTTP application: API routes, OpenAPI document and docs page, Prometheus
/// text, and the middleware stack (request id, tracing, error shape, metrics, CORS, timeout,
/// body limit).
pub fn router(state: AppState) -> Router {
    let settings = state.settings().clone();
    let (api, openapi) = api().split_for_parts();
    let openapi = openapi::with_common_responses(openapi);
    let mut app = api
        .merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", openapi))
        .route("/metrics", get(routes::system::prometheus))
        .merge(openai::router())
        .fallback(console::fallback)
        .layer(DefaultBodyLimit::max(settings.body_limit))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, settings.request_timeout))
        .layer(middleware::from_fn(track_duration));
    if let Some(cors) = cors(&settings.cors_origins) {
        app = app.layer(cors);
    }
    app.layer(middleware::from_fn_with_state(settings.body_limit, limits::check_request))
        .layer(middleware::from_fn(error::normalize_errors))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // The path only: query strings may carry a WebSocket token.
            let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}
