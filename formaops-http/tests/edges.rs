//! The edges of the HTTP stack, over a real listener (`server::serve_on`, the loop the binary
//! runs) where hyper's own behaviour matters, and through the router where it does not:
//! declared and streamed bodies over the limit, long URIs, large headers, malformed
//! requests, and connections that never finish their headers.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use support::TestApp;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Serves the test app (body limit 64 KiB) on a loopback port.
async fn listen(app: &TestApp, header_timeout: Duration) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.router.clone();
    tokio::spawn(formaops_http::server::serve_on(listener, router, header_timeout, std::future::pending()));
    addr
}

/// A raw answer: status, and the body parsed as JSON when it is JSON.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: Value,
}

impl Raw {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<no error code>")
    }
}

/// Reads one response (head, and a `Content-Length` body) within `within`.
async fn read_response(stream: &mut TcpStream, within: Duration) -> Raw {
    let mut buf = Vec::new();
    let deadline = Instant::now() + within;
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 8192];
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| {
                panic!("no response within {within:?}; got {:?}", String::from_utf8_lossy(&buf))
            })
            .unwrap();
        assert!(n > 0, "connection closed before a response; got {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 8192];
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, stream.read(&mut chunk)).await.expect("body in time").unwrap();
        assert!(n > 0, "connection closed inside the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or(Value::Null);
    Raw { status, head, body }
}

async fn send(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Whether the server closes the connection within `within` (reads until EOF or reset).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut chunk = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_body_over_the_limit_is_refused_at_once() {
    let app = TestApp::new().await;
    let addr = listen(&app, Duration::from_secs(10)).await;
    let started = Instant::now();
    let mut stream = send(
        addr,
        format!(
            "POST /api/prompts HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n0123456789",
            app.alice
        )
        .as_bytes(),
    )
    .await;
    let r = read_response(&mut stream, Duration::from_secs(3)).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.code(), "payload_too_large", "{r:?}");
    assert_eq!(r.body["error"]["details"]["limitBytes"], 64 * 1024);
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());

    // Just over the limit, without credentials: still 413 before anything else.
    let mut stream = send(
        addr,
        format!("PUT /api/prompts/x HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", 64 * 1024 + 1)
            .as_bytes(),
    )
    .await;
    let r = read_response(&mut stream, Duration::from_secs(3)).await;
    assert_eq!((r.status, r.code()), (413, "payload_too_large"), "{r:?}");
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_by_the_router() {
    let app = TestApp::new().await;
    let req = Request::post("/api/prompts")
        .header("authorization", format!("Bearer {}", app.alice))
        .header("content-type", "application/json")
        .header("content-length", "1000000000000")
        .body(Body::from("0123456789"))
        .unwrap();
    let r = app.request(req).await.expect(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "payload_too_large");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("65536 bytes"), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_limit_is_413() {
    let app = TestApp::new().await;
    let addr = listen(&app, Duration::from_secs(10)).await;
    let mut stream = send(
        addr,
        format!(
            "POST /api/prompts HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
            app.alice
        )
        .as_bytes(),
    )
    .await;
    // 80 KiB in 8 KiB chunks, never finished: the answer must not wait for the end.
    let chunk = format!("2000\r\n{}\r\n", "x".repeat(0x2000));
    for _ in 0..10 {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let r = read_response(&mut stream, Duration::from_secs(3)).await;
    assert_eq!((r.status, r.code()), (413, "payload_too_large"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_uris_and_large_headers_answer_in_our_shape() {
    let app = TestApp::new().await;
    let addr = listen(&app, Duration::from_secs(10)).await;

    let long = format!("/api/prompts?q={}", "a".repeat(10 * 1024));
    let mut stream = send(addr, format!("GET {long} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()).await;
    let r = read_response(&mut stream, Duration::from_secs(3)).await;
    assert_eq!((r.status, r.code()), (414, "uri_too_long"), "{r:?}");
    assert!(r.head.to_ascii_lowercase().contains("x-request-id"), "{}", r.head);

    let big = "b".repeat(40 * 1024);
    let mut stream =
        send(addr, format!("GET /api/health HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n").as_bytes()).await;
    let r = read_response(&mut stream, Duration::from_secs(3)).await;
    assert_eq!((r.status, r.code()), (431, "headers_too_large"), "{r:?}");

    // More fields than hyper's default of 100.
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let mut stream =
        send(addr, format!("GET /api/health HTTP/1.1\r\nHost: t\r\n{many}\r\n").as_bytes()).await;
    let r = read_response(&mut stream, Duration::from_secs(3)).await;
    assert_eq!((r.status, r.code()), (431, "headers_too_large"), "{r:?}");

    // Within the limits: answered normally on the same kind of connection.
    let mut stream = send(addr, b"GET /api/health HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let r = read_response(&mut stream, Duration::from_secs(3)).await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn the_router_answers_uri_and_header_limits_in_our_shape() {
    let app = TestApp::new().await;
    let long = format!("/api/prompts?q={}", "a".repeat(10 * 1024));
    let r = app.request(Request::get(long).body(Body::empty()).unwrap()).await;
    assert_eq!((r.status, r.code()), (StatusCode::URI_TOO_LONG, "uri_too_long"), "{}", r.text);

    let mut req = Request::get("/api/health");
    for i in 0..101 {
        req = req.header(format!("x-h{i}"), "v");
    }
    let r = app.request(req.body(Body::empty()).unwrap()).await;
    assert_eq!((r.status, r.code()), (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_only_hyper_can_answer_still_gets_the_right_status() {
    // Not HTTP, or beyond the parser's own caps: hyper answers before our code runs (with an
    // empty body, as the README says) and closes the connection.
    let app = TestApp::new().await;
    let addr = listen(&app, Duration::from_secs(10)).await;
    let mut stream = send(addr, b"G@T / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(read_response(&mut stream, Duration::from_secs(3)).await.status, 400);
    assert!(closed_within(&mut stream, Duration::from_secs(3)).await);

    let huge = format!("/{}", "a".repeat(70 * 1024));
    let mut stream = send(addr, format!("GET {huge} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()).await;
    assert_eq!(read_response(&mut stream, Duration::from_secs(3)).await.status, 414);

    let huge = "b".repeat(300 * 1024);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The server may close before reading all of it.
    let _ = stream.write_all(format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {huge}\r\n\r\n").as_bytes()).await;
    assert_eq!(read_response(&mut stream, Duration::from_secs(3)).await.status, 431);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_headers_and_idle_connections_are_closed_after_the_header_timeout() {
    let app = TestApp::new().await;
    let addr = listen(&app, Duration::from_secs(1)).await;
    let started = Instant::now();
    let mut half = Vec::new();
    for _ in 0..20 {
        half.push(send(addr, b"GET /api/health HTTP/1.1\r\nHost: t\r\nX-Slow: ").await);
    }
    for stream in &mut half {
        assert!(closed_within(stream, Duration::from_secs(4)).await, "a half-sent request was kept open");
    }
    assert!(started.elapsed() >= Duration::from_millis(900), "closed too early: {:?}", started.elapsed());

    // Idle keep-alive after a complete request: closed too.
    let mut stream = send(addr, b"GET /api/health HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(read_response(&mut stream, Duration::from_secs(3)).await.status, 200);
    assert!(closed_within(&mut stream, Duration::from_secs(4)).await, "an idle connection was kept open");

    // A client that keeps up is served as usual.
    let mut stream = send(addr, b"GET /api/health HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(read_response(&mut stream, Duration::from_secs(3)).await.status, 200);
}
