//! Limits at the edge of the HTTP stack, answered in our error shape.
//!
//! The HTTP parser (hyper) is configured with caps *above* ours ([`PARSER_MAX_HEADERS`],
//! [`PARSER_MAX_HEADER_BYTES`]), so a request over one of our limits still reaches
//! [`check_request`], which answers it with `{"error": {...}}`:
//!
//! | limit | status | code |
//! |---|---|---|
//! | URI longer than [`MAX_URI_BYTES`] | 414 | `uri_too_long` |
//! | more than [`MAX_HEADERS`] header fields, or more than [`MAX_HEADER_BYTES`] of them | 431 | `headers_too_large` |
//! | `Content-Length` over the body limit | 413 (before any of the body is read) | `payload_too_large` |
//!
//! A body without `Content-Length` (chunked) is counted as it is read and answered 413 as
//! soon as it passes the limit. Requests beyond the parser's own caps, or that are not HTTP
//! at all, are answered by hyper before any of our code runs (see the README).

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use serde_json::json;

use crate::error::{ApiError, too_large_for};

/// Longest request URI (path and query) we answer; 414 beyond.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most header fields in one request; 431 beyond.
pub const MAX_HEADERS: usize = 100;
/// Most bytes of header fields (names, values and their separators); 431 beyond.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// hyper's cap on header fields: above [`MAX_HEADERS`] so that we answer first.
pub const PARSER_MAX_HEADERS: usize = 256;
/// hyper's cap on the request head: above [`MAX_HEADER_BYTES`] so that we answer first.
pub const PARSER_MAX_HEADER_BYTES: usize = 256 * 1024;
/// Default time a client has to send a request's headers (also the keep-alive idle limit).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

fn uri_len(req: &Request) -> usize {
    let uri = req.uri();
    uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |p| p.as_str().len())
}

/// Middleware: answers 414, 431 and 413 (declared length over `body_limit`) before the
/// request goes further; everything else passes through.
pub async fn check_request(State(body_limit): State<usize>, req: Request, next: Next) -> Response {
    if uri_len(&req) > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request URI is longer than {MAX_URI_BYTES} bytes"),
        )
        .with_details(json!({ "limitBytes": MAX_URI_BYTES }))
        .into_response();
    }
    let headers = req.headers();
    let header_bytes: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "the request has more than {MAX_HEADERS} header fields or {MAX_HEADER_BYTES} bytes of them"
            ),
        )
        .with_details(json!({ "maxFields": MAX_HEADERS, "limitBytes": MAX_HEADER_BYTES }))
        .into_response();
    }
    // hyper has already refused a Content-Length that is not a number, or two that differ.
    let declared =
        headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > body_limit as u64) {
        return too_large_for(body_limit).into_response();
    }
    next.run(req).await
}
