//! `/api/auth`: login, logout, me, and API keys.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use formaops_core::Error as CoreError;
use formaops_core::ids::CredentialId;
use formaops_core::user::token;
use formaops_core::user::{Credential, CredentialKind, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{AuthUser, ClientAddr, clear_cookie, session_cookie};
use crate::error::{ApiError, ApiResult, AppJson, ErrorBody};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
}

/// A user as shown to clients.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDto {
    #[schema(value_type = String, format = Uuid)]
    pub id: formaops_core::ids::UserId,
    pub email: String,
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserDto {
    fn from(u: User) -> Self {
        Self { id: u.id, email: u.email, is_admin: u.is_admin, created_at: u.created_at }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    /// Bearer token (also set as the `formaops_session` HttpOnly cookie).
    pub token: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub user: UserDto,
}

/// Logs in with email and password.
#[utoipa::path(post, path = "/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse, description = "Logged in; also sets the session cookie"),
        (status = 401, body = ErrorBody, description = "Unknown email or wrong password (indistinguishable)"),
        (status = 429, body = ErrorBody, description = "Too many failed attempts from this client address (for this account, or in all); see Retry-After"),
    ))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(source): ClientAddr,
    AppJson(body): AppJson<LoginRequest>,
) -> ApiResult<Response> {
    let store = state.store().as_ref();
    let user = state.auth().login(store, &body.email, &body.password, source).await?;
    let ttl = state.settings().session_ttl;
    let (token, credential) = token::issue(store, user.id, CredentialKind::Session, None, Some(ttl)).await?;
    tracing::info!(user_id = %user.id, "login");
    let cookie = session_cookie(&token, ttl, state.settings().cookie_secure);
    let body = LoginResponse { token, expires_at: credential.expires_at, user: user.into() };
    let mut response = AppJson(body).into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    Ok(response)
}

/// Revokes the credential this request authenticated with (the session, or the API key if
/// one was used) and clears the cookie. A JWT of a trusted issuer is not revoked here.
#[utoipa::path(post, path = "/logout", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, body = ErrorBody),
    ))]
async fn logout(State(state): State<AppState>, auth: AuthUser) -> ApiResult<Response> {
    // A JWT has no stored credential: it ends at its expiry (sign out at its issuer).
    if let Some(credential) = &auth.credential {
        state.engine().revoke_credential(auth.id(), credential.id).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(SET_COOKIE, clear_cookie(state.settings().cookie_secure));
    Ok(response)
}

/// The caller.
#[utoipa::path(get, path = "/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserDto), (status = 401, body = ErrorBody)))]
async fn me(auth: AuthUser) -> AppJson<UserDto> {
    AppJson(auth.user.into())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// A label to recognise the key by.
    pub name: String,
    /// Lifetime in days; no expiry when omitted.
    pub expires_in_days: Option<u32>,
}

/// An API key (never its secret, except once at creation).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyDto {
    #[schema(value_type = String, format = Uuid)]
    pub id: CredentialId,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The secret: present only in the creation response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl ApiKeyDto {
    fn new(c: Credential, token: Option<String>) -> Self {
        Self { id: c.id, name: c.name, created_at: c.created_at, expires_at: c.expires_at, token }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyList {
    pub items: Vec<ApiKeyDto>,
}

/// The caller's API keys.
#[utoipa::path(get, path = "/keys", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = ApiKeyList), (status = 401, body = ErrorBody)))]
async fn list_keys(State(state): State<AppState>, auth: AuthUser) -> ApiResult<AppJson<ApiKeyList>> {
    let keys = state.store().list_credentials(auth.id(), CredentialKind::ApiKey).await?;
    Ok(AppJson(ApiKeyList { items: keys.into_iter().map(|c| ApiKeyDto::new(c, None)).collect() }))
}

/// Creates an API key; the secret is in this response only.
#[utoipa::path(post, path = "/keys", tag = "auth", security(("bearer" = [])),
    request_body = CreateKeyRequest,
    responses(
        (status = 201, body = ApiKeyDto),
        (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Too many keys"),
        (status = 422, body = ErrorBody),
    ))]
async fn create_key(
    State(state): State<AppState>,
    auth: AuthUser,
    AppJson(body): AppJson<CreateKeyRequest>,
) -> ApiResult<(StatusCode, AppJson<ApiKeyDto>)> {
    let created =
        token::create_api_key(state.store().as_ref(), auth.id(), &body.name, body.expires_in_days).await;
    let (token, credential) = created.map_err(|e| match e {
        // A field of the JSON body: 422 like every other body field.
        CoreError::InvalidArgument { field, message } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_argument", message)
                .with_details(serde_json::json!({ "field": field }))
        }
        other => other.into(),
    })?;
    Ok((StatusCode::CREATED, AppJson(ApiKeyDto::new(credential, Some(token)))))
}

/// Revokes one of the caller's API keys.
#[utoipa::path(delete, path = "/keys/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path, description = "API key id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_key(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: CredentialId = id.parse().map_err(|_| ApiError::not_found("api key", &id))?;
    // Only API keys are revocable here: a session id answers 404 like a missing key.
    let keys = state.store().list_credentials(auth.id(), CredentialKind::ApiKey).await?;
    if !keys.iter().any(|k| k.id == id) {
        return Err(ApiError::not_found("api key", &id.to_string()));
    }
    state.engine().revoke_credential(auth.id(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
