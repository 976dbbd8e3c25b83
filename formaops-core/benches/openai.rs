//! Client-side overhead of the OpenAI-compatible provider against a fake server on loopback.
//!
//! Run: `cargo bench -p formaops-core --bench openai` (Linux: reads `/proc` for CPU time).
//!
//! Method. The fake server (axum, canned reply) runs on its own OS thread with its own
//! single-threaded tokio runtime. The client runs on a current-thread runtime on the bench
//! thread, so every client-side instruction (request encoding, hyper, connection pool,
//! reply parsing) runs on threads other than the server's. "Client CPU" is the CPU time of
//! every thread of the process except the server thread (`/proc/self/task/*/schedstat`,
//! nanosecond resolution), so the fake's own time is excluded and nothing of the client is.
//! Kernel time of the loopback socket calls is counted on the side that makes them.
//!
//! 1. criterion, back to back: `iter_custom` returns the client CPU for `iters` calls, so the
//!    reported "time" is client CPU per call (complete with usage; complete without usage,
//!    tiktoken estimate; streamed reply of 10 deltas with a usage chunk). A last group
//!    reports wall time per call for context.
//! 2. paced at 1,000 calls/s for 5 s (the issue's target condition): total client CPU / calls,
//!    and the per-call distribution (p50, p99) from the bench thread's CPU clock read around
//!    each call, minus the measured cost of reading that clock.
//!
//! Without `--bench` (as under `cargo test --all-targets`) it runs each path a few times as
//! a smoke check and measures nothing.

use std::hint::black_box;
use std::sync::mpsc;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use criterion::Criterion;
use formaops_core::prompt::ModelParameters;
use formaops_core::provider::config::Secret;
use formaops_core::provider::openai::{OpenAiConfig, OpenAiProvider};
use formaops_core::provider::{CompletionRequest, LlmProvider, Message, Role};
use hdrhistogram::Histogram;
use tokio::runtime::Runtime;
use tokio::time::Instant;

const REPLY_WITH_USAGE: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello Ada! Lovelace wrote the first published algorithm intended for a machine, in her notes on the Analytical Engine.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":42,"completion_tokens":25,"total_tokens":67,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"system_fingerprint":"fp_1"}"#;

const REPLY_WITHOUT_USAGE: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"llama3.2","choices":[{"index":0,"message":{"role":"assistant","content":"Hello Ada! Lovelace wrote the first published algorithm intended for a machine, in her notes on the Analytical Engine."},"finish_reason":"stop"}]}"#;

fn stream_body() -> String {
    let mut body = String::new();
    for word in [
        "Hello ",
        "Ada! ",
        "Lovelace ",
        "wrote ",
        "the ",
        "first ",
        "published ",
        "algorithm ",
        "for ",
        "a machine.",
    ] {
        body.push_str(&format!(
            "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{word}\"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    body.push_str("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    body.push_str("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":42,\"completion_tokens\":12,\"total_tokens\":54}}\n\n");
    body.push_str("data: [DONE]\n\n");
    body
}

/// Nanoseconds on the CPU of one task, from `/proc/self/task/<tid>/schedstat`.
fn task_cpu_ns(path: &str) -> u64 {
    let text = std::fs::read_to_string(path).expect("read schedstat (Linux only)");
    text.split_whitespace().next().and_then(|v| v.parse().ok()).expect("parse schedstat")
}

/// CPU time of the calling thread.
fn thread_cpu_ns() -> u64 {
    task_cpu_ns("/proc/thread-self/schedstat")
}

/// CPU time of every thread of the process except `excluded_tid`.
fn process_cpu_ns_except(excluded_tid: &str) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc/self/task").expect("list threads") {
        let entry = entry.expect("thread entry");
        let tid = entry.file_name();
        if tid.to_str() == Some(excluded_tid) {
            continue;
        }
        // A thread may exit between listing and reading.
        if let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) {
            total += text.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    total
}

/// The calling thread's id, from `/proc/thread-self/stat`.
fn current_tid() -> String {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("read stat");
    stat.split_whitespace().next().expect("tid").to_string()
}

struct FakeServer {
    base_url: String,
    tid: String,
}

/// Starts the fake on its own thread and runtime; returns its base URL and thread id.
fn start_fake_server() -> FakeServer {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("server runtime");
        rt.block_on(async move {
            let stream = stream_body();
            let app = Router::new()
                .route(
                    "/usage/chat/completions",
                    post(|| async { ([(header::CONTENT_TYPE, "application/json")], REPLY_WITH_USAGE) }),
                )
                .route(
                    "/nousage/chat/completions",
                    post(|| async { ([(header::CONTENT_TYPE, "application/json")], REPLY_WITHOUT_USAGE) }),
                )
                .route(
                    "/stream/chat/completions",
                    post(move || {
                        let body = stream.clone();
                        async move { ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response() }
                    }),
                );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            tx.send(FakeServer { base_url: format!("http://{addr}"), tid: current_tid() }).expect("send");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    rx.recv().expect("fake server started")
}

fn provider(base_url: &str, path: &str) -> OpenAiProvider {
    let mut config = OpenAiConfig::new(format!("{base_url}/{path}"));
    config.api_key = Some(Secret::new("sk-bench"));
    OpenAiProvider::new(config).expect("provider")
}

fn request(model: &str) -> CompletionRequest {
    CompletionRequest {
        model: model.to_string(),
        messages: vec![
            Message { role: Role::System, content: "You are a concise assistant.".to_string() },
            Message {
                role: Role::User,
                content: "Say hello to Ada and tell me one fact about her.".to_string(),
            },
        ],
        parameters: ModelParameters {
            temperature: Some(0.2),
            max_completion_tokens: Some(128),
            ..Default::default()
        },
        response_schema: None,
        deadline: Instant::now() + Duration::from_secs(30),
    }
}

#[derive(Clone, Copy)]
enum Path {
    Usage,
    Estimated,
    Stream,
}

async fn call(provider: &OpenAiProvider, path: Path) {
    let result = match path {
        Path::Usage => provider.complete(request("gpt-4o-mini")).await,
        Path::Estimated => provider.complete(request("llama3.2")).await,
        Path::Stream => provider.complete_streaming(request("gpt-4o-mini"), &|p| drop(black_box(p))).await,
    };
    black_box(result.expect("call succeeds"));
}

fn criterion_benches(c: &mut Criterion, rt: &Runtime, server: &FakeServer) {
    let cases = [
        ("complete_with_usage", "usage", Path::Usage),
        ("complete_estimated_usage", "nousage", Path::Estimated),
        ("stream_10_deltas", "stream", Path::Stream),
    ];
    let mut group = c.benchmark_group("openai_client_cpu_per_call");
    group.sample_size(30).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(6));
    for (name, url_path, path) in cases {
        let provider = provider(&server.base_url, url_path);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = process_cpu_ns_except(&server.tid);
                rt.block_on(async {
                    for _ in 0..iters {
                        call(&provider, path).await;
                    }
                });
                Duration::from_nanos(process_cpu_ns_except(&server.tid) - start)
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("openai_wall_per_call");
    group.sample_size(30).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(4));
    let provider = provider(&server.base_url, "usage");
    group.bench_function("complete_with_usage", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            rt.block_on(async {
                for _ in 0..iters {
                    call(&provider, Path::Usage).await;
                }
            });
            start.elapsed()
        });
    });
    group.finish();
}

/// Median cost of one `thread_cpu_ns()` read, subtracted from per-call figures.
fn clock_read_cost_ns() -> u64 {
    let mut costs: Vec<u64> = (0..2_000)
        .map(|_| {
            let a = thread_cpu_ns();
            let b = thread_cpu_ns();
            b - a
        })
        .collect();
    costs.sort_unstable();
    costs[costs.len() / 2]
}

/// `calls` calls paced at `rate` per second: (mean client CPU per call, per-call histogram).
fn paced(rt: &Runtime, server: &FakeServer, calls: u64, rate: u64) -> (f64, Histogram<u64>) {
    let provider = provider(&server.base_url, "usage");
    let read_cost = clock_read_cost_ns();
    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    let (cpu_ns, calls_done) = rt.block_on(async {
        // Warm the pool and the code paths.
        for _ in 0..50 {
            call(&provider, Path::Usage).await;
        }
        let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let start = process_cpu_ns_except(&server.tid);
        for _ in 0..calls {
            ticker.tick().await;
            let before = thread_cpu_ns();
            call(&provider, Path::Usage).await;
            let after = thread_cpu_ns();
            hist.record((after - before).saturating_sub(read_cost).max(1)).expect("record");
        }
        // The loop's own per-call clock reads are subtracted from the total too.
        let total = process_cpu_ns_except(&server.tid) - start;
        (total.saturating_sub(calls * 2 * read_cost), calls)
    });
    (cpu_ns as f64 / calls_done as f64, hist)
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let server = start_fake_server();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("client runtime");

    if !bench_mode {
        // Smoke check under `cargo test`: every path works against the fake.
        for (url_path, path) in
            [("usage", Path::Usage), ("nousage", Path::Estimated), ("stream", Path::Stream)]
        {
            let provider = provider(&server.base_url, url_path);
            rt.block_on(async {
                for _ in 0..3 {
                    call(&provider, path).await;
                }
            });
        }
        let (mean, hist) = paced(&rt, &server, 20, 1_000);
        assert!(mean > 0.0 && hist.len() == 20);
        println!("openai bench smoke check passed (run with `cargo bench` to measure)");
        return;
    }

    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &rt, &server);
    c.final_summary();

    let (mean_ns, hist) = paced(&rt, &server, 5_000, 1_000);
    println!(
        "paced 1000 calls/s, 5000 calls, complete_with_usage: client CPU per call mean {:.1} us \
         (all threads but the server's); bench thread per call p50 {:.1} us, p99 {:.1} us, max {:.1} us",
        mean_ns / 1_000.0,
        hist.value_at_quantile(0.5) as f64 / 1_000.0,
        hist.value_at_quantile(0.99) as f64 / 1_000.0,
        hist.max() as f64 / 1_000.0,
    );
}
