//! The embedded web console through the real router: client routes get `index.html`,
//! hashed assets are immutable with their content type, every console response carries the
//! Content-Security-Policy, and nothing under `/api` or `/metrics` is ever the console.

#![allow(clippy::unwrap_used)]

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use support::TestApp;

fn script_asset(index: &str) -> String {
    let start = index.find("src=\"/assets/").expect("index.html names its script") + 5;
    let end = start + index[start..].find('"').unwrap();
    index[start..end].to_string()
}

#[tokio::test]
async fn client_routes_get_the_app_with_a_strict_csp_and_a_fresh_style_nonce() {
    let app = TestApp::new().await;
    for path in ["/", "/prompts", "/prompts/0190/edit", "/executions?status=FAILED", "/stats", "/login"] {
        let r = app.call(Method::GET, path, None, None).await.expect(StatusCode::OK);
        assert!(r.text.contains("<div id=\"root\">"), "{path}: {}", r.text);
        assert_eq!(r.headers["content-type"], "text/html; charset=utf-8", "{path}");
        assert_eq!(r.headers["cache-control"], "no-store", "{path}");
        let csp = r.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-"), "{csp}");
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
        // The style nonce of the policy is the one handed to the app, and no placeholder is left.
        let nonce = csp.split("'nonce-").nth(1).and_then(|s| s.split('\'').next()).unwrap();
        assert!(nonce.len() >= 22, "{csp}");
        assert!(r.text.contains(&format!("<meta name=\"csp-nonce\" content=\"{nonce}\"")), "{}", r.text);
        assert!(!r.text.contains("__CSP_NONCE__"));
    }
    // A new nonce per response.
    let a = app.call(Method::GET, "/", None, None).await;
    let b = app.call(Method::GET, "/", None, None).await;
    assert_ne!(a.headers["content-security-policy"], b.headers["content-security-policy"]);
    // No inline script in the page the CSP protects.
    let index = app.call(Method::GET, "/", None, None).await.text;
    assert!(!index.contains("<script>") && !index.contains("<script type=\"module\">"), "{index}");
}

#[tokio::test]
async fn hashed_assets_are_immutable_and_revalidate_by_etag() {
    let app = TestApp::new().await;
    let index = app.call(Method::GET, "/", None, None).await.text;
    let js = script_asset(&index);
    let r = app.call(Method::GET, &js, None, None).await.expect(StatusCode::OK);
    assert_eq!(r.headers["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(r.headers["cache-control"], "public, max-age=31536000, immutable");
    let csp = r.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("style-src 'self';"), "assets allow no inline style: {csp}");
    let etag = r.headers["etag"].to_str().unwrap().to_string();
    let again = Request::get(js.as_str()).header("if-none-match", &etag).body(Body::empty()).unwrap();
    app.request(again).await.expect(StatusCode::NOT_MODIFIED);
    // A missing file is a 404, not the app.
    let r = app.call(Method::GET, "/assets/missing-0000.js", None, None).await.expect(StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "route_not_found");
}

#[tokio::test]
async fn the_api_is_never_shadowed() {
    let app = TestApp::new().await;
    for path in ["/api", "/api/nope", "/api/prompts/x/nope"] {
        let r = app.call(Method::GET, path, None, None).await.expect(StatusCode::NOT_FOUND);
        assert_eq!(r.code(), "route_not_found", "{path}");
    }
    // Real API routes still answer as before.
    app.call(Method::GET, "/api/health", None, None).await.expect(StatusCode::OK);
    app.call(Method::GET, "/api/prompts", None, None).await.expect(StatusCode::UNAUTHORIZED);
    let doc = app.call(Method::GET, "/api/openapi.json", None, None).await.expect(StatusCode::OK);
    assert!(doc.body["paths"].is_object());
    // Other methods on client routes are not the app either.
    app.call(Method::POST, "/prompts", None, None).await.expect(StatusCode::NOT_FOUND);
}
