//! The OpenAPI 3.1 document (generated from the handlers' annotations) and the interactive
//! docs page. Swagger UI's files are compiled into the binary (`vendored`), so `/api/docs`
//! works offline.

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

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
        (name = "datasets", description = "Datasets of input rows (JSON, JSONL, CSV, past executions)"),
        (name = "experiments", description = "Versions compared over a dataset: progress, results, exports"),
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

/// Documents the answers every operation can give besides its own: the shared middleware and
/// extractors produce them (malformed input, body limits, authentication, outages), so each
/// handler need not repeat them. Existing entries are kept.
pub fn with_common_responses(mut openapi: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            item.get.as_mut(),
            item.put.as_mut(),
            item.post.as_mut(),
            item.delete.as_mut(),
            item.patch.as_mut(),
        ];
        for op in operations.into_iter().flatten() {
            add_common_responses(op);
        }
    }
    openapi
}

fn add_common_responses(op: &mut Operation) {
    use crate::limits::{MAX_HEADER_BYTES, MAX_HEADERS, MAX_URI_BYTES};
    let mut common = vec![
        ("400", "Malformed request: bad JSON, query parameters, path ids or headers".to_string()),
        ("414", format!("Request URI longer than {MAX_URI_BYTES} bytes")),
        (
            "431",
            format!("More than {MAX_HEADERS} header fields, or more than {MAX_HEADER_BYTES} bytes of them"),
        ),
        ("503", "The database is unavailable or the server is shutting down".to_string()),
    ];
    if op.request_body.is_some() {
        common.push(("413", "Body larger than the configured limit".to_string()));
        common.push(("415", "Body is not `application/json`".to_string()));
        common.push(("422", "Body is JSON but not of the documented shape (`invalid_body`)".to_string()));
    }
    if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
        common.push(("401", "Missing, unknown, expired or revoked credential".to_string()));
    }
    for (status, description) in common {
        op.responses.responses.entry(status.to_string()).or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                    )
                    .build(),
            )
        });
    }
}
