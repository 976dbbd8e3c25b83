//! HTTP routes, one module per area. Each exposes `router()`, an
//! [`OpenApiRouter`](utoipa_axum::router::OpenApiRouter) whose handlers carry their OpenAPI
//! description.

pub mod auth;
pub mod events;
pub mod executions;
pub mod lab;
pub mod labels;
pub mod prompts;
pub mod system;
