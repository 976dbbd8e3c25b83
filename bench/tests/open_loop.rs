//! The generator against real loopback servers: the mock, a queueing server, a failing one.
#![allow(clippy::unwrap_used)] // test helpers

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use formaops_bench::loadgen::{RunConfig, SearchConfig, run, run_with, search};
use formaops_bench::mock::{MockConfig, MockState, router};
use tokio::sync::Mutex;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn chat_config(base: &str, rate: f64, secs: f64) -> RunConfig {
    let mut c = RunConfig::new(&format!("{base}/v1/chat/completions"), rate, secs).unwrap();
    c.method = reqwest::Method::POST;
    c.body = Some(axum::body::Bytes::from_static(
        br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#,
    ));
    c.expect_status = Some(200);
    c.expect_body = Some("\"finish_reason\":\"stop\"".into());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scheduled_request_is_sent_and_measured() {
    let state = MockState::new(&MockConfig::default()).unwrap();
    let base = serve(router(Arc::clone(&state))).await;
    let mut c = chat_config(&base, 200.0, 0.5);
    c.server_pid = Some(std::process::id());
    c.tags.insert("path".into(), "direct".into());
    let r = run(&c).await.unwrap();
    assert_eq!(r.scheduled, 100);
    assert_eq!(r.sent, 100);
    assert_eq!(r.ok, 100, "{}", r.human_line());
    assert_eq!(r.errors.total, 0);
    assert_eq!(r.dropped, 0);
    assert!(r.clean());
    assert_eq!(r.latency.count, 100);
    assert!(r.latency.p50_us > 0.0 && r.latency.p99_us >= r.latency.p50_us);
    assert!(r.latency.max_us >= r.latency.p999_us);
    assert_eq!(state.requests(), 100);
    // The schedule spans 0.5 s: the run cannot have finished sooner (open loop, not a burst).
    assert!(r.elapsed_s >= 0.49, "{}", r.elapsed_s);
    let server = r.server.unwrap();
    assert!(server.vm_hwm_kib > 0);
    assert_eq!(r.tags.get("path").map(String::as_str), Some("direct"));
    assert!(r.human_line().contains("ok 100/100"));
}

/// A server that handles one request at a time, 20 ms each. Requests arrive every 10 ms, so
/// they queue; latency from the scheduled send time must show the queue (a closed-loop
/// generator would report ~20 ms for every request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queueing_shows_in_latency_from_the_schedule() {
    let lock = Arc::new(Mutex::new(()));
    let app = Router::new().route(
        "/slow",
        get(move || {
            let lock = Arc::clone(&lock);
            async move {
                let _g = lock.lock().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                "ok"
            }
        }),
    );
    let base = serve(app).await;
    let c = RunConfig::new(&format!("{base}/slow"), 100.0, 0.3).unwrap();
    let r = run(&c).await.unwrap();
    assert_eq!(r.ok, 30, "{}", r.human_line());
    // The 30th request is due at 290 ms and cannot finish before 30 x 20 ms = 600 ms.
    assert!(r.latency.max_us >= 290_000.0, "{}", r.human_line());
    assert!(r.latency.p90_us >= 200_000.0, "{}", r.human_line());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_bound_drops_and_counts() {
    let app = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            "ok"
        }),
    );
    let base = serve(app).await;
    let mut c = RunConfig::new(&format!("{base}/slow"), 100.0, 0.2).unwrap();
    c.max_in_flight = 2;
    let r = run(&c).await.unwrap();
    assert_eq!(r.scheduled, 20);
    assert_eq!(r.sent + r.dropped, 20);
    assert!(r.dropped >= 10, "{}", r.human_line());
    assert_eq!(r.ok, r.sent);
    assert!(!r.clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_classified() {
    let app = Router::new()
        .route("/fail", get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "busy") }))
        .route("/wrong", post(|| async { r#"{"status":"FAILED"}"# }));
    let base = serve(app).await;
    let r = run(&RunConfig::new(&format!("{base}/fail"), 100.0, 0.1).unwrap()).await.unwrap();
    assert_eq!(r.ok, 0);
    assert_eq!(r.errors.status.get(&503), Some(&10));
    assert_eq!(r.errors.total, 10);
    assert_eq!(r.error_samples.len(), 5);

    let mut c = RunConfig::new(&format!("{base}/wrong"), 100.0, 0.1).unwrap();
    c.method = reqwest::Method::POST;
    c.expect_body = Some("\"status\":\"COMPLETED\"".into());
    let r = run(&c).await.unwrap();
    assert_eq!(r.errors.body_mismatch, 10);

    // Nothing listens on a port we just released.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = run(&RunConfig::new(&format!("http://127.0.0.1:{port}/"), 50.0, 0.1).unwrap()).await.unwrap();
    assert_eq!(r.errors.connect, 5, "{:?}", r.errors);
    assert_eq!(r.ok, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_are_errors() {
    let app = Router::new().route(
        "/hang",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        }),
    );
    let base = serve(app).await;
    let mut c = RunConfig::new(&format!("{base}/hang"), 20.0, 0.1).unwrap();
    c.timeout = Duration::from_millis(100);
    let r = run(&c).await.unwrap();
    assert_eq!(r.errors.timeout, 2, "{:?}", r.errors);
    assert_eq!(r.ok, 0);
}

/// The search against a server that can serve only one request at a time (~5 ms each): it
/// must find a finite limit below what doubling would reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_a_limit_on_a_real_server() {
    let lock = Arc::new(Mutex::new(()));
    let app = Router::new().route(
        "/one",
        get(move || {
            let lock = Arc::clone(&lock);
            async move {
                let _g = lock.lock().await;
                tokio::time::sleep(Duration::from_millis(5)).await;
                "ok"
            }
        }),
    );
    let base = serve(app).await;
    let client = formaops_bench::loadgen::client(64).unwrap();
    let base_cfg = RunConfig::new(&format!("{base}/one"), 50.0, 0.4).unwrap();
    let criteria = SearchConfig {
        start_rate: 50.0,
        max_rate: 3200.0,
        max_steps: 8,
        p99_bound_us: 100_000.0,
        precision: 0.2,
    };
    let r = search(&criteria, |rate| {
        let mut c = base_cfg.clone();
        c.rate = rate;
        c.max_in_flight = 64;
        let client = client.clone();
        async move { run_with(&client, &c).await }
    })
    .await
    .unwrap();
    // Capacity is at most 200/s (5 ms serialised): 3200/s cannot pass.
    assert!(r.first_failing_rate.is_some(), "{}", r.human_line());
    assert!(r.best_rate.unwrap_or(0.0) < 400.0, "{}", r.human_line());
    assert!(r.steps.len() <= 8);
}
