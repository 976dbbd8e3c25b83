//! A small JSON client over reqwest, an SSE reader and a minimal WebSocket reader.

use std::time::Duration;

use futures::StreamExt as _;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A reply: status, headers and the JSON body (`Null` when not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        self.body
    }

    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<none>")
    }
}

/// A client of one server, optionally logged in.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

impl Api {
    pub fn new(base: &str) -> Self {
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("reqwest client");
        Self { http, base: base.to_string(), token: None }
    }

    /// Logs in; returns a client carrying the token.
    pub async fn login(&self, email: &str, password: &str) -> Self {
        let r = self
            .send(Method::POST, "/api/auth/login", Some(json!({"email": email, "password": password})), &[])
            .await;
        let body = r.expect(200);
        let token = body["token"].as_str().expect("token").to_string();
        Self { token: Some(token), ..self.clone() }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp { status, headers, body }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(Method::POST, path, Some(body), &[]).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.send(Method::PUT, path, Some(body), &[]).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None, &[]).await
    }

    /// Reads an SSE stream until it ends or `within` passes; returns the `(event, data)`
    /// frames and whether the server ended the stream.
    pub async fn sse(&self, path: &str, within: Duration) -> (Vec<(String, Value)>, bool) {
        let mut req = self.http.get(format!("{}{path}", self.base)).timeout(within + Duration::from_secs(5));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("SSE request");
        assert_eq!(resp.status(), StatusCode::OK, "SSE status");
        let mut text = String::new();
        let mut stream = resp.bytes_stream();
        let read = async {
            while let Some(chunk) = stream.next().await {
                let Ok(chunk) = chunk else { break };
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
        };
        let ended = tokio::time::timeout(within, read).await.is_ok();
        (parse_sse(&text), ended)
    }

    /// Opens `/api/ws` (token in the query, as a browser would) and collects JSON text frames
    /// until the server closes or `within` passes. A minimal RFC 6455 client: enough for
    /// unmasked server text frames. `Ok` holds the frames and whether the server closed the
    /// socket; `Err` holds the response head when the upgrade is refused.
    pub async fn websocket(&self, query: &str, within: Duration) -> Result<(Vec<Value>, bool), String> {
        let host = self.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
        let token = self.token.clone().unwrap_or_default();
        let request = format!(
            "GET /api/ws?token={token}{query} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("handshake write");
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        let mut refused = None;
        let read = async {
            let mut chunk = [0u8; 8192];
            let mut upgraded = false;
            loop {
                let n = match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                if !upgraded {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    if !head.starts_with("HTTP/1.1 101") {
                        refused = Some(head);
                        return;
                    }
                    buf.drain(..end + 4);
                    upgraded = true;
                }
                // Parse complete frames.
                loop {
                    if buf.len() < 2 {
                        break;
                    }
                    let opcode = buf[0] & 0x0f;
                    let (len, offset) = match buf[1] & 0x7f {
                        126 if buf.len() >= 4 => (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
                        127 if buf.len() >= 10 => {
                            let mut b = [0u8; 8];
                            b.copy_from_slice(&buf[2..10]);
                            (usize::try_from(u64::from_be_bytes(b)).expect("frame length"), 10)
                        }
                        126 | 127 => break,
                        n => (usize::from(n), 2),
                    };
                    if buf.len() < offset + len {
                        break;
                    }
                    let payload: Vec<u8> = buf[offset..offset + len].to_vec();
                    buf.drain(..offset + len);
                    match opcode {
                        0x1 => frames.push(serde_json::from_slice(&payload).expect("JSON text frame")),
                        0x8 => return,
                        _ => {}
                    }
                }
            }
        };
        let closed = tokio::time::timeout(within, read).await.is_ok();
        match refused {
            Some(head) => Err(head),
            None => Ok((frames, closed)),
        }
    }
}

/// Parses SSE text into `(event, data)` frames (comments and keep-alives skipped).
pub fn parse_sse(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut event = String::from("message");
        let mut data = String::new();
        for line in block.lines() {
            if let Some(e) = line.strip_prefix("event:") {
                event = e.trim().to_string();
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push_str(d.trim());
            }
        }
        if let Ok(v) = serde_json::from_str(&data) {
            out.push((event, v));
        }
    }
    out
}
