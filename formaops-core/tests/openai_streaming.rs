//! Streamed completions (`stream: true`, SSE) against a fake server.
// Test helpers outside #[test] functions panic on purpose when the fixture itself breaks.
#![allow(clippy::unwrap_used)]

mod openai_support;

use std::sync::Mutex;
use std::time::Duration;

use formaops_core::provider::openai::OpenAiProvider;
use formaops_core::provider::{LlmProvider, PartialOutput, ProviderErrorKind};
use openai_support::*;
use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn chat() -> wiremock::MockBuilder {
    Mock::given(method("POST")).and(path("/v1/chat/completions"))
}

fn sse_response(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")
}

async fn mount_sse(body: String) -> (MockServer, String) {
    let server = MockServer::start().await;
    chat().respond_with(sse_response(body)).mount(&server).await;
    let base = format!("{}/v1", server.uri());
    (server, base)
}

/// Collects partial outputs.
#[derive(Default)]
struct Partials(Mutex<Vec<String>>);

impl Partials {
    fn push(&self, p: PartialOutput) {
        self.0.lock().unwrap().push(p.delta);
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[tokio::test]
async fn a_streamed_reply_reports_deltas_and_takes_usage_from_the_final_chunk() {
    let body = sse(
        &[
            delta_chunk("Hel"),
            delta_chunk("lo, "),
            delta_chunk("Ada!"),
            finish_chunk(),
            usage_chunk(full_usage()),
        ],
        true,
    );
    let (server, base) = mount_sse(body).await;
    let partials = Partials::default();
    let completion =
        provider(&base).complete_streaming(request("gpt-4o-mini"), &|p| partials.push(p)).await.unwrap();

    assert_eq!(completion.text, "Hello, Ada!");
    assert_eq!(partials.take(), ["Hel", "lo, ", "Ada!"]);
    assert_eq!(completion.model.as_deref(), Some("gpt-4o-mini"));
    let usage = completion.usage;
    assert_eq!(
        (usage.input, usage.output, usage.total, usage.cached, usage.reasoning),
        (120, 45, 165, 64, 20)
    );
    assert!(!usage.estimated);

    let body: Value = server.received_requests().await.unwrap()[0].body_json().unwrap();
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    let accept = server.received_requests().await.unwrap()[0].headers.get("accept").cloned();
    assert_eq!(accept.unwrap(), "text/event-stream");
}

#[tokio::test]
async fn a_stream_without_usage_is_estimated() {
    let (_server, base) =
        mount_sse(sse(&[delta_chunk("hello"), delta_chunk(" world"), finish_chunk()], true)).await;
    let completion = provider(&base).complete_streaming(request("gpt-4o-mini"), &|_| {}).await.unwrap();
    assert_eq!(completion.text, "hello world");
    assert!(completion.usage.estimated);
    assert_eq!(completion.usage.output, 2);
}

#[tokio::test]
async fn a_stream_ending_before_finish_or_done_is_a_transient_connection_error() {
    let (_server, base) = mount_sse(sse(&[delta_chunk("Hel"), delta_chunk("lo")], false)).await;
    let partials = Partials::default();
    let err = provider(&base).complete_streaming(request("m"), &|p| partials.push(p)).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Connection);
    assert!(err.is_transient());
    assert!(err.message.contains("ended before the reply was complete"), "{}", err.message);
    assert!(err.message.contains("after 5 characters"), "{}", err.message);
    assert_eq!(partials.take(), ["Hel", "lo"]);
}

#[tokio::test]
async fn a_connection_cut_mid_stream_is_a_transient_connection_error() {
    // Chunked transfer encoding whose last chunk never comes: the socket just closes.
    let event = format!("data: {}\n\n", delta_chunk("Hel"));
    let body = format!("{:x}\r\n{event}\r\n", event.len());
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        .to_string();
    let base = raw_server(head, body.into_bytes()).await;
    let partials = Partials::default();
    let err = provider(&base).complete_streaming(request("m"), &|p| partials.push(p)).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Connection, "{}", err.message);
    assert!(err.is_transient());
    assert_eq!(partials.take(), ["Hel"]);
}

#[tokio::test]
async fn a_stalled_stream_past_the_deadline_is_a_timeout() {
    let event = format!("data: {}\n\n", delta_chunk("Hel"));
    let body = format!("{:x}\r\n{event}\r\n", event.len());
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        .to_string();
    let base = raw_server_holding(head, body.into_bytes(), Duration::from_secs(30)).await;
    let provider = provider(&base);
    let mut req = request("m");
    // Long enough for the first event to arrive even on a loaded machine.
    req.deadline = Instant::now() + Duration::from_secs(2);
    let partials = Partials::default();
    let err = provider.complete_streaming(req, &|p| partials.push(p)).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Timeout);
    assert_eq!(partials.take(), ["Hel"]);
}

#[tokio::test]
async fn finish_reason_then_a_clean_close_without_done_is_accepted() {
    let (_server, base) = mount_sse(sse(&[delta_chunk("done"), finish_chunk()], false)).await;
    let completion = provider(&base).complete_streaming(request("m"), &|_| {}).await.unwrap();
    assert_eq!(completion.text, "done");
}

#[tokio::test]
async fn an_error_event_inside_the_stream_is_transient() {
    let error = json!({"error": {"message": "Rate limit reached", "type": "rate_limit_error", "code": "rate_limit_exceeded"}});
    let (_server, base) = mount_sse(sse(&[delta_chunk("Hel"), error], false)).await;
    let err = provider(&base).complete_streaming(request("m"), &|_| {}).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::RateLimited);
    assert!(err.message.contains("Rate limit reached"), "{}", err.message);

    let error = json!({"error": {"message": "upstream crashed", "type": "server_error"}});
    let (_server, base) = mount_sse(sse(&[error], false)).await;
    let err = provider(&base).complete_streaming(request("m"), &|_| {}).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::ServerError);
}

#[tokio::test]
async fn a_garbled_event_is_a_malformed_response() {
    let (_server, base) = mount_sse("data: {not json\n\n".to_string()).await;
    let err = provider(&base).complete_streaming(request("m"), &|_| {}).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::MalformedResponse);
}

#[tokio::test]
async fn a_stream_over_the_byte_cap_is_refused() {
    let chunks: Vec<Value> = (0..200).map(|_| delta_chunk(&"x".repeat(200))).collect();
    let (_server, base) = mount_sse(sse(&chunks, true)).await;
    let mut config = config(&base, None);
    config.max_response_bytes = 8 * 1024;
    let err =
        OpenAiProvider::new(config).unwrap().complete_streaming(request("m"), &|_| {}).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::MalformedResponse);
    assert!(err.message.contains("8192 byte limit"), "{}", err.message);
}

#[tokio::test]
async fn http_errors_on_a_streamed_call_are_classified() {
    let server = MockServer::start().await;
    chat()
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "2")
                .set_body_json(json!({"error": {"message": "Too many requests"}})),
        )
        .mount(&server)
        .await;
    let err = provider(&format!("{}/v1", server.uri()))
        .complete_streaming(request("m"), &|_| {})
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
}

#[tokio::test]
async fn a_server_answering_json_to_a_stream_request_still_works() {
    let server = MockServer::start().await;
    chat()
        .respond_with(ResponseTemplate::new(200).set_body_json(reply("whole", Some(full_usage()))))
        .mount(&server)
        .await;
    let partials = Partials::default();
    let completion = provider(&format!("{}/v1", server.uri()))
        .complete_streaming(request("m"), &|p| partials.push(p))
        .await
        .unwrap();
    assert_eq!(completion.text, "whole");
    assert_eq!(partials.take(), ["whole"]);
    assert_eq!(completion.usage.input, 120);
}

#[tokio::test]
async fn streaming_can_be_turned_off_per_provider() {
    let server = MockServer::start().await;
    chat().respond_with(ResponseTemplate::new(200).set_body_json(reply("plain", None))).mount(&server).await;
    let mut config = config(&format!("{}/v1", server.uri()), None);
    config.stream = false;
    let partials = Partials::default();
    let completion = OpenAiProvider::new(config)
        .unwrap()
        .complete_streaming(request("m"), &|p| partials.push(p))
        .await
        .unwrap();
    assert_eq!(completion.text, "plain");
    assert_eq!(partials.take(), ["plain"]);
    let body: Value = server.received_requests().await.unwrap()[0].body_json().unwrap();
    assert!(body.get("stream").is_none(), "{body}");
}
