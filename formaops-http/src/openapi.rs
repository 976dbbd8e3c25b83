//! The OpenAPI 3.1 document (generated from the handlers' annotations) and the interactive
//! docs page. Swagger UI's files are compiled into the binary (`vendored`), so `/api/docs`
//! works offline.

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// Document metadata; paths and schemas come from the routers.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "FormaOps",
        description = "Prompt operations: versioned prompt templates with typed variables, \
            executions through a durable priority queue, output validation and metrics. \
            Authenticate with `POST /api/auth/login`, then send `Authorization: Bearer <token>`. \
            Errors are `{\"error\": {\"code\", \"message\", \"details\"}}`."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Login, logout, the caller, API keys"),
        (name = "prompts", description = "Prompts and their immutable versions"),
        (name = "executions", description = "Executing prompts and reading executions"),
        (name = "events", description = "Real-time execution events (SSE, WebSocket)"),
        (name = "system", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
