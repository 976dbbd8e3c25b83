//! Real-time execution events: `GET /api/executions/events` (Server-Sent Events) and
//! `GET /api/ws` (WebSocket, one JSON text frame per event).
//!
//! Both carry the caller's own executions only, or one execution with `?executionId=`
//! (404 if it is not the caller's). With `executionId`, the stream starts with a `snapshot`
//! of the execution as it is (so nothing that happened before subscribing is lost) and ends
//! after the execution's final event. Event frames are the core's `ExecutionEvent` in camelCase
//! (`executionId`, `kind`, `status`, `attempt`, `at`, `error?`, `runAfter?`, `delta?`); the SSE
//! event name is the `kind`.
//!
//! Browsers cannot set headers on a WebSocket, so `/api/ws` also accepts the token as
//! `?token=` (besides the bearer header and the session cookie, which browsers do send).
//! Prefer the cookie: query strings can end up in proxy logs.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use formaops_core::events::ExecutionEvent;
use formaops_core::ids::{ExecutionId, UserId};
use formaops_core::user::token;
use futures::stream::{self, BoxStream, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{AuthUser, token_from_headers};
use crate::error::{ApiError, ApiResult, AppQuery, ErrorBody};
use crate::routes::executions::execution_id;
use crate::state::AppState;

/// Largest message accepted from a WebSocket client (clients need not send anything).
const MAX_WS_MESSAGE: usize = 4096;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sse)).routes(routes!(ws))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventsQuery {
    /// Follow one execution only.
    pub execution_id: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WsQuery {
    /// Follow one execution only.
    pub execution_id: Option<String>,
    /// The bearer token, for clients that cannot set headers (browsers).
    pub token: Option<String>,
}

/// One item of an event stream.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
enum Item {
    /// The execution as it was when the stream started (`?executionId=` only).
    Snapshot(Box<SnapshotFrame>),
    Event(Box<ExecutionEvent>),
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotFrame {
    kind: &'static str,
    execution: serde_json::Value,
}

impl Item {
    fn name(&self) -> &'static str {
        match self {
            Self::Snapshot(_) => "snapshot",
            Self::Event(e) => kind_name(e),
        }
    }
}

fn kind_name(e: &ExecutionEvent) -> &'static str {
    use formaops_core::events::EventKind;
    match e.kind {
        EventKind::Queued => "queued",
        EventKind::Running => "running",
        EventKind::RetryScheduled => "retry_scheduled",
        EventKind::Partial => "partial",
        EventKind::Completed => "completed",
        EventKind::Failed => "failed",
        EventKind::Cancelled => "cancelled",
    }
}

/// The caller's event stream: for one execution, a snapshot first and the end after its
/// final event; otherwise every event of the caller's executions, endless.
async fn event_stream(
    state: &AppState,
    user: UserId,
    execution: Option<ExecutionId>,
) -> ApiResult<BoxStream<'static, Item>> {
    let Some(id) = execution else {
        let events = state.engine().subscribe(user, None);
        return Ok(events.map(|e| Item::Event(Box::new(e))).boxed());
    };
    // The snapshot, then events up to and including the final one (engine::follow).
    let follow = state.engine().follow(user, id).await?;
    let snapshot = serde_json::to_value(&follow.snapshot).map_err(ApiError::internal)?;
    let first =
        stream::iter([Item::Snapshot(Box::new(SnapshotFrame { kind: "snapshot", execution: snapshot }))]);
    Ok(first.chain(follow.events.map(|e| Item::Event(Box::new(e)))).boxed())
}

fn parse_execution(id: Option<&str>) -> ApiResult<Option<ExecutionId>> {
    id.map(execution_id).transpose()
}

/// Server-Sent Events of the caller's executions.
#[utoipa::path(get, path = "/executions/events", tag = "events", security(("bearer" = [])),
    params(EventsQuery),
    responses((status = 200, content_type = "text/event-stream", description = "Event stream"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn sse(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<EventsQuery>,
) -> ApiResult<Response> {
    let execution = parse_execution(q.execution_id.as_deref())?;
    let items = event_stream(&state, auth.id(), execution).await?.take_until(state.shutting_down());
    let events = items.map(|item| {
        let event = Event::default().event(item.name());
        Ok::<_, Infallible>(
            event.json_data(&item).unwrap_or_else(|_| Event::default().comment("unserializable event")),
        )
    });
    let keep_alive = KeepAlive::new().interval(state.settings().keep_alive);
    Ok(Sse::new(events).keep_alive(keep_alive).into_response())
}

/// Authentication for the WebSocket route: header or cookie, else `?token=`.
struct WsAuth(AuthUser);

impl FromRequestParts<AppState> for WsAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = match token_from_headers(&parts.headers) {
            Some(t) => t,
            None => {
                let AppQuery(q) = AppQuery::<WsQuery>::from_request_parts(parts, state).await?;
                q.token.ok_or_else(ApiError::unauthorized)?
            }
        };
        let (user, credential) = token::authenticate(state.store().as_ref(), &token).await?;
        Ok(Self(AuthUser { user, credential }))
    }
}

/// WebSocket of the caller's execution events (JSON text frames).
#[utoipa::path(get, path = "/ws", tag = "events", security(("bearer" = [])),
    params(WsQuery),
    responses((status = 101, description = "Switching protocols"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn ws(
    State(state): State<AppState>,
    WsAuth(auth): WsAuth,
    AppQuery(q): AppQuery<WsQuery>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let execution = parse_execution(q.execution_id.as_deref())?;
    let items = event_stream(&state, auth.id(), execution).await?.take_until(state.shutting_down()).boxed();
    let keep_alive = state.settings().keep_alive;
    Ok(upgrade
        .max_message_size(MAX_WS_MESSAGE)
        .on_upgrade(move |socket| pump(socket, items, keep_alive))
        .into_response())
}

/// Forwards items to the socket until the stream ends, the client goes away, or a send
/// fails; pings every `keep_alive`.
async fn pump(mut socket: WebSocket, mut items: BoxStream<'static, Item>, keep_alive: Duration) {
    let mut ping = tokio::time::interval(keep_alive);
    ping.tick().await;
    loop {
        tokio::select! {
            item = items.next() => {
                let Some(item) = item else { break };
                let Ok(text) = serde_json::to_string(&item) else { continue };
                if socket.send(Message::text(text)).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
