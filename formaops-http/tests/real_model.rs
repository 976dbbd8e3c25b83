//! FormaOps against a real model: llama.cpp's `llama-server` serving SmolLM2-135M-Instruct on
//! loopback. Long mode, not in CI: run `scripts/real-model.sh`, which builds the server, fetches
//! the model, starts it and runs this test with `REAL_MODEL_URL` set. Results are quoted in
//! RELIABILITY.md ("Real model").
//!
//! The real router and engine (memory store) call the server through a byte-for-byte TCP tee
//! on loopback, which keeps every reply the server sent, so each execution's token counts are
//! checked against the `usage` the server itself reported.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use formaops_core::engine::{EngineConfig, FormaOps};
use formaops_core::provider::config::{ProviderEntry, ProviderSettings};
use formaops_core::store::{MemoryStore, Store};
use formaops_core::user::account;
use serde_json::{Value, json};
use support::{PASSWORD, TestApp};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Longest wait for one phase (a 135M model on two shared cores: ~4-30 tokens/s).
const PHASE_TIMEOUT: Duration = Duration::from_secs(900);

/// Everything the server sent, per connection.
type Replies = Arc<Mutex<Vec<Arc<Mutex<Vec<u8>>>>>>;

/// Copies `from` to `to`, recording every byte in `buf`.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    buf: Arc<Mutex<Vec<u8>>>,
) {
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                buf.lock().unwrap().extend_from_slice(&chunk[..n]);
                if to.write_all(&chunk[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// A TCP tee in front of `upstream`: forwards bytes both ways and records what each side sent
/// (requests, replies).
async fn tee(upstream: String) -> (String, Replies, Replies) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (requests, replies): (Replies, Replies) = (Arc::default(), Arc::default());
    let (all_requests, all_replies) = (requests.clone(), replies.clone());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&upstream).await else { continue };
            let (sent, got) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
            all_requests.lock().unwrap().push(sent.clone());
            all_replies.lock().unwrap().push(got.clone());
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pipe(cr, sw, sent));
            tokio::spawn(pipe(sr, cw, got));
        }
    });
    (format!("http://{addr}/v1"), requests, replies)
}

/// Bytes recorded so far, per connection.
fn sizes(bufs: &Replies) -> Vec<usize> {
    bufs.lock().unwrap().iter().map(|b| b.lock().unwrap().len()).collect()
}

/// Everything recorded after the `before` snapshot of [`sizes`], as text.
fn text_since(bufs: &Replies, before: &[usize]) -> String {
    let mut out = String::new();
    for (i, b) in bufs.lock().unwrap().iter().enumerate() {
        let b = b.lock().unwrap();
        out.push_str(&String::from_utf8_lossy(&b[before.get(i).copied().unwrap_or(0)..]));
    }
    out
}

/// Every `usage` object the server has sent so far, as (prompt_tokens, completion_tokens,
/// prompt_tokens_details.cached_tokens),
/// per connection in the order sent (connections are kept alive and reused).
fn server_usage(replies: &Replies) -> Vec<Vec<(u64, u64, u64)>> {
    let mut out = Vec::new();
    for buf in replies.lock().unwrap().iter() {
        let text = String::from_utf8_lossy(&buf.lock().unwrap()).to_string();
        let mut conn = Vec::new();
        for (at, _) in text.match_indices("\"usage\":") {
            let rest = &text[at + "\"usage\":".len()..];
            let Some(Ok(u)) = serde_json::Deserializer::from_str(rest).into_iter::<Value>().next() else {
                continue;
            };
            if let (Some(p), Some(c)) = (u["prompt_tokens"].as_u64(), u["completion_tokens"].as_u64()) {
                conn.push((p, c, u["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0)));
            }
        }
        out.push(conn);
    }
    out
}

/// The usages the server sent after `before` (a [`server_usage`] snapshot), sorted.
fn usage_since(replies: &Replies, before: &[Vec<(u64, u64, u64)>]) -> Vec<(u64, u64, u64)> {
    let mut new: Vec<(u64, u64, u64)> = server_usage(replies)
        .into_iter()
        .enumerate()
        .flat_map(|(i, conn)| conn.into_iter().skip(before.get(i).map_or(0, Vec::len)))
        .collect();
    new.sort_unstable();
    new
}

fn provider(base_url: &str, stream: bool) -> ProviderEntry {
    toml::from_str(&format!(
        "kind = \"openai\"\nbase_url = \"{base_url}\"\napi_key = \"sk-local\"\nstream = {stream}\n\
         structured_output = \"json_schema\"\ntimeout_ms = 600000\nconcurrency = 4\n"
    ))
    .unwrap()
}

async fn app(base_url: &str) -> TestApp {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    account::create_user(store.as_ref(), "alice@example.com", PASSWORD, false).await.unwrap();
    account::create_user(store.as_ref(), "bob@example.com", PASSWORD, false).await.unwrap();
    let mut providers = ProviderSettings::default();
    providers.providers.insert("llama".into(), provider(base_url, true));
    providers.providers.insert("llama-plain".into(), provider(base_url, false));
    let config = EngineConfig {
        max_attempts: 1,
        execution_timeout: PHASE_TIMEOUT,
        attempt_timeout: PHASE_TIMEOUT,
        ..EngineConfig::default()
    };
    let engine =
        formaops_http::server::register_providers(FormaOps::builder(store.clone()), &providers, false)
            .expect("providers")
            .config(config)
            .start()
            .await
            .expect("engine starts");
    TestApp::with_engine(store, engine, support::settings()).await
}

async fn wait_terminal(app: &TestApp, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let r = app.get(&format!("/api/executions/{id}"), &app.alice).await.expect(StatusCode::OK);
        if matches!(r.body["status"].as_str(), Some("COMPLETED" | "FAILED" | "CANCELLED")) {
            return r.body;
        }
        assert!(start.elapsed() < PHASE_TIMEOUT, "execution {id} did not finish: {}", r.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn submit(app: &TestApp, prompt: &str, inputs: Value, priority: &str) -> String {
    let r = app
        .post(
            &format!("/api/prompts/{prompt}/execute?mode=async"),
            &app.alice,
            json!({"inputs": inputs, "priority": priority, "validateOutput": true}),
        )
        .await
        .expect(StatusCode::ACCEPTED);
    r.body["id"].as_str().unwrap().to_string()
}

fn tokens(exec: &Value) -> (u64, u64, u64) {
    let u = &exec["metrics"]["tokenUsage"];
    assert_eq!(u["estimated"], false, "counts come from the server: {exec}");
    (u["input"].as_u64().unwrap(), u["output"].as_u64().unwrap(), u["cached"].as_u64().unwrap())
}

fn report(phase: &str, exec: &Value) {
    println!(
        "[{phase}] status={} finishReason={} attempts={} tokens(in/out/cached)={}/{}/{} \
         latencyMs={} output={:?}",
        exec["status"],
        exec["finishReason"],
        exec["attempts"],
        exec["metrics"]["tokenUsage"]["input"],
        exec["metrics"]["tokenUsage"]["output"],
        exec["metrics"]["tokenUsage"]["cached"],
        exec["metrics"]["latencyMs"],
        exec["output"].as_str().unwrap_or_default(),
    );
}

/// Runs one execution alone and checks its counts against the one reply the server sent.
async fn single(app: &TestApp, replies: &Replies, phase: &str, prompt: &str, inputs: Value) -> Value {
    let before = server_usage(replies);
    let id = submit(app, prompt, inputs, "NORMAL").await;
    let exec = wait_terminal(app, &id).await;
    report(phase, &exec);
    assert_eq!(exec["status"], "COMPLETED", "{exec}");
    let seen = usage_since(replies, &before);
    assert_eq!(seen.len(), 1, "one call, one usage: {seen:?}");
    assert_eq!(tokens(&exec), seen[0], "tokens match the server's usage");
    println!("[{phase}] server usage (prompt/completion/cached) = {}/{}/{}", seen[0].0, seen[0].1, seen[0].2);
    exec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "LONG MODE: needs a running llama-server (REAL_MODEL_URL); run scripts/real-model.sh"]
async fn real_model() {
    let upstream = std::env::var("REAL_MODEL_URL")
        .expect("REAL_MODEL_URL (host:port of llama-server) is set by scripts/real-model.sh");
    let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
    let (base_url, requests, replies) = tee(upstream).await;
    let app = app(&base_url).await;
    let params = json!({"temperature": 0, "seed": 7, "maxCompletionTokens": 24});
    let t0 = Instant::now();

    // 1. A plain prompt (no streaming).
    let plain = app
        .prompt_with(
            &app.alice,
            json!({
                "name": "plain",
                "template": "Answer in one short sentence: what is the capital of {{ country }}?",
                "variables": [{"name": "country", "type": "string", "required": true}],
                "model": {"provider": "llama-plain", "model": "smollm2", "parameters": params},
            }),
        )
        .await;
    let sent = sizes(&requests);
    let exec = single(&app, &replies, "plain", &plain, json!({"country": "France"})).await;
    let body = text_since(&requests, &sent);
    assert!(body.contains("/chat/completions") && !body.contains("\"stream\""), "{body}");
    assert!(!exec["output"].as_str().unwrap().trim().is_empty());

    // 2. A json_schema prompt: sent as response_format (strict fits this schema), and the rule
    //    is checked on the output.
    let schema = json!({
        "type": "object",
        // Only strict-mode keywords (no `maxLength`): sent with `strict: true`.
        "properties": {"city": {"type": "string", "description": "the city's name"}},
        "required": ["city"],
        "additionalProperties": false,
    });
    let structured = app
        .prompt_with(
            &app.alice,
            json!({
                "name": "structured",
                "template": "Give the capital of {{ country }} as JSON with the key \"city\".",
                "variables": [{"name": "country", "type": "string", "required": true}],
                "validations": [{"type": "json_schema", "schema": schema}],
                "model": {"provider": "llama-plain", "model": "smollm2",
                          "parameters": {"temperature": 0, "seed": 7, "maxCompletionTokens": 40}},
            }),
        )
        .await;
    let sent = sizes(&requests);
    let exec = single(&app, &replies, "json_schema", &structured, json!({"country": "France"})).await;
    let body = text_since(&requests, &sent);
    let sent_format = body.contains("\"response_format\"") && body.contains("\"json_schema\"");
    println!(
        "[json_schema] request carried response_format json_schema: {sent_format}, strict: {}",
        body.contains("\"strict\":true")
    );
    assert!(sent_format && body.contains("\"strict\":true"), "{body}");
    let out: Value = serde_json::from_str(exec["output"].as_str().unwrap()).expect("JSON output");
    assert!(out["city"].is_string(), "{out}");
    assert_eq!(exec["validation"]["passed"], true, "{exec}");

    // 3. Streaming: `partial` events over SSE carry the deltas; usage comes from the last chunk.
    let streamed = app
        .prompt_with(
            &app.alice,
            json!({
                "name": "streamed",
                // `style` is optional without a default: the template guards it.
                "template": "Write one sentence about {{ topic }}{% if style %} in a {{ style }} style{% endif %}.",
                "variables": [{"name": "topic", "type": "string", "required": true},
                              {"name": "style", "type": "string"}],
                "model": {"provider": "llama", "model": "smollm2", "parameters": params},
            }),
        )
        .await;
    let events = {
        use tower::ServiceExt as _;
        let req = axum::http::Request::get("/api/executions/events")
            .header("authorization", format!("Bearer {}", app.alice))
            .body(axum::body::Body::empty())
            .unwrap();
        app.router.clone().oneshot(req).await.unwrap().into_body().into_data_stream()
    };
    let before = server_usage(&replies);
    let sent = sizes(&requests);
    let id = submit(&app, &streamed, json!({"topic": "the sea"}), "HIGH").await;
    let mut text = String::new();
    let mut events = events;
    let read = async {
        use futures::StreamExt as _;
        while let Some(chunk) = events.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if text.contains("event: completed") || text.contains("event: failed") {
                break;
            }
        }
    };
    tokio::time::timeout(PHASE_TIMEOUT, read).await.expect("the streamed execution ends");
    let exec = wait_terminal(&app, &id).await;
    report("stream", &exec);
    assert_eq!(exec["status"], "COMPLETED", "{exec}");
    let frames: Vec<(String, Value)> = formaops_e2e::client::parse_sse(&text)
        .into_iter()
        .filter(|(_, v)| v["executionId"] == id.as_str())
        .collect();
    let partials: Vec<&Value> = frames.iter().filter(|(n, _)| n == "partial").map(|(_, v)| v).collect();
    let deltas: String = partials.iter().map(|v| v["delta"].as_str().unwrap()).collect();
    println!(
        "[stream] events: {} partial of {} ({:?} ...); deltas joined == output: {}",
        partials.len(),
        frames.len(),
        frames.iter().map(|(n, _)| n.as_str()).take(6).collect::<Vec<_>>(),
        deltas == exec["output"].as_str().unwrap()
    );
    assert!(partials.len() >= 2, "partial events observed: {frames:?}");
    let body = text_since(&requests, &sent);
    assert!(body.contains("\"stream\":true") && body.contains("\"include_usage\":true"), "{body}");
    assert_eq!(deltas, exec["output"].as_str().unwrap());
    let seen = usage_since(&replies, &before);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(tokens(&exec), seen[0], "streamed tokens match the usage of the last chunk");
    println!("[stream] server usage (prompt/completion/cached) = {}/{}/{}", seen[0].0, seen[0].1, seen[0].2);

    // 4. Twenty executions of mixed priority, streamed and not, submitted at once.
    let before = server_usage(&replies);
    let topics = ["rain", "bread", "maps", "owls", "salt"];
    let countries = ["Peru", "Japan", "Chad", "Norway"];
    let priorities = ["HIGH", "NORMAL", "LOW"];
    let mut ids = Vec::new();
    let t20 = Instant::now();
    for i in 0..20 {
        let (prompt, inputs) = if i % 2 == 0 {
            if i % 4 == 0 {
                (&streamed, json!({"topic": topics[i % topics.len()], "style": "plain"}))
            } else {
                (&streamed, json!({"topic": topics[i % topics.len()]}))
            }
        } else {
            (&plain, json!({"country": countries[i % countries.len()]}))
        };
        let p = priorities[i % 3];
        ids.push((submit(&app, prompt, inputs, p).await, p));
    }
    let mut ours = Vec::new();
    let mut done: Vec<(String, &str)> = Vec::new();
    // `style` omitted on half of them (guarded), given on the other half.
    for (id, p) in &ids {
        let exec = wait_terminal(&app, id).await;
        assert_eq!(exec["status"], "COMPLETED", "{exec}");
        ours.push(tokens(&exec));
        done.push((exec["finishedAt"].as_str().unwrap().to_string(), p));
    }
    let wall = t20.elapsed();
    let theirs = usage_since(&replies, &before);
    ours.sort_unstable();
    assert_eq!(ours, theirs, "the twenty executions' tokens are exactly the server's usages");
    done.sort();
    let mut rank: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, (_, p)) in done.iter().enumerate() {
        rank.entry(p).or_default().push(i + 1);
    }
    println!(
        "[mixed] 20 COMPLETED in {:.1} s; tokens in/out summed: ours {}/{} = server {}/{}; \
         completion order by priority: {rank:?}",
        wall.as_secs_f64(),
        ours.iter().map(|t| t.0).sum::<u64>(),
        ours.iter().map(|t| t.1).sum::<u64>(),
        theirs.iter().map(|t| t.0).sum::<u64>(),
        theirs.iter().map(|t| t.1).sum::<u64>(),
    );
    println!(
        "[total] {:.1} s, {} server replies read",
        t0.elapsed().as_secs_f64(),
        server_usage(&replies).iter().map(Vec::len).sum::<usize>()
    );
}
