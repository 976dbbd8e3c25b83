//! The web console: the static single-page app built from `formaops-http/ui` (Vite writes
//! `ui/dist/`, which is committed), embedded in the binary and served at `/`.
//!
//! [`fallback`] is the router's fallback, so it only sees paths no API route matched:
//!
//! - `/api/...` and `/metrics` stay the API's: a JSON `route_not_found` 404, never the app.
//! - `GET`/`HEAD` of an embedded file answers it with its content type; files under
//!   `/assets/` have content hashes in their names and are `Cache-Control: immutable`.
//! - `GET`/`HEAD` of any other path without a file extension is a client route
//!   (`/prompts/...`, `/executions/...`): `index.html`, `no-cache` so a new build is picked
//!   up at once. A missing file (`/assets/x.js`) is a 404.
//!
//! Every console response carries a strict Content-Security-Policy: scripts, styles,
//! images, fonts and connections (fetch, WebSocket) from this origin only; no inline script,
//! no `eval`, no framing, no plugins. One exception is needed and kept narrow: CodeMirror 6
//! installs its theme as a `<style>` element (style-mod uses constructable stylesheets only
//! inside shadow roots), so `index.html` is answered with a fresh random nonce per response,
//! allowed in `style-src` and handed to the app in `<meta name="csp-nonce">` (the editor passes
//! it on through `EditorView.cspNonce`). No `'unsafe-inline'` anywhere: an injected `<style>`
//! or `style="..."` attribute is refused, and the browser suite fails on any CSP violation.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rust_embed::RustEmbed;

use crate::error::route_not_found;

/// The built console (`ui/dist/`), compiled into the binary in every profile.
#[derive(RustEmbed)]
#[folder = "ui/dist/"]
struct Assets;

/// The console's Content-Security-Policy, with the `style-src` nonce of `index.html` (other
/// files get none: they allow no inline style at all).
pub fn content_security_policy(style_nonce: Option<&str>) -> String {
    let nonce = style_nonce.map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'{nonce}; img-src 'self' data:; \
         font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// What the build leaves in `index.html` for the server to replace with the nonce.
const NONCE_PLACEHOLDER: &str = "__CSP_NONCE__";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const NO_CACHE: &str = "no-cache";

/// True for paths that belong to the API and must never be answered with the app.
fn is_server_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/") || path == "/metrics" || path.starts_with("/metrics/")
}

/// The router's fallback: console files and client routes, else the API's JSON 404.
pub async fn fallback(req: Request) -> Response {
    let path = req.uri().path();
    if is_server_path(path) || !(req.method() == Method::GET || req.method() == Method::HEAD) {
        return route_not_found().await.into_response();
    }
    let file = path.trim_start_matches('/');
    if !file.is_empty() && file != "index.html" && Assets::get(file).is_some() {
        return asset(file, req.headers());
    }
    let last = file.rsplit('/').next().unwrap_or("");
    if last.contains('.') {
        // Looks like a file that is not there: not a client route.
        return route_not_found().await.into_response();
    }
    index()
}

/// `index.html` with a fresh style nonce (never cached: the nonce is per response).
fn index() -> Response {
    let Some(content) = Assets::get("index.html") else {
        return missing();
    };
    let mut bytes = [0u8; 18];
    rand::fill(&mut bytes[..]);
    let nonce = URL_SAFE_NO_PAD.encode(bytes);
    let html = String::from_utf8_lossy(&content.data).replace(NONCE_PLACEHOLDER, &nonce);
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    security_headers(&mut headers, Some(&nonce));
    (headers, html).into_response()
}

fn missing() -> Response {
    crate::error::ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route").into_response()
}

/// One embedded file with its headers; `304` when `If-None-Match` names its hash.
fn asset(file: &str, request: &HeaderMap) -> Response {
    let Some(content) = Assets::get(file) else {
        return missing();
    };
    let etag = format!("\"{}\"", hex(&content.metadata.sha256_hash()[..16]));
    let cache = if file.starts_with("assets/") { IMMUTABLE } else { NO_CACHE };
    let mut headers = HeaderMap::new();
    let mime = content.metadata.mimetype();
    let mime = if mime.starts_with("text/") || mime == "application/javascript" {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    if let Ok(v) = HeaderValue::from_str(&mime) {
        headers.insert(CONTENT_TYPE, v);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(ETAG, v);
    }
    security_headers(&mut headers, None);
    let fresh = request
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == etag);
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, Body::from(content.data.into_owned())).into_response()
}

fn security_headers(headers: &mut HeaderMap, style_nonce: Option<&str>) {
    if let Ok(v) = HeaderValue::from_str(&content_security_policy(style_nonce)) {
        headers.insert(HeaderName::from_static("content-security-policy"), v);
    }
    headers.insert(HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff"));
    headers.insert(HeaderName::from_static("referrer-policy"), HeaderValue::from_static("same-origin"));
    headers.insert(HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY"));
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_are_never_the_console() {
        for p in ["/api", "/api/", "/api/nope", "/metrics"] {
            assert!(is_server_path(p), "{p}");
        }
        for p in ["/", "/prompts", "/apis", "/stats", "/metricsx"] {
            assert!(!is_server_path(p), "{p}");
        }
    }

    #[test]
    fn index_is_embedded() {
        assert!(Assets::get("index.html").is_some(), "run `npm run build` in formaops-http/ui");
    }
}
