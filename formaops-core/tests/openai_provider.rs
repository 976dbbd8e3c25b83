//! The OpenAI-compatible provider against a fake server speaking the real wire format.
// Test helpers outside #[test] functions panic on purpose when the fixture itself breaks.
#![allow(clippy::unwrap_used)]

mod openai_support;

use std::time::Duration;

use formaops_core::provider::openai::OpenAiProvider;
use formaops_core::provider::{LlmProvider, ProviderErrorKind, ResponseSchema};
use openai_support::*;
use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn server() -> MockServer {
    MockServer::start().await
}

fn base(server: &MockServer) -> String {
    format!("{}/v1", server.uri())
}

fn chat() -> wiremock::MockBuilder {
    Mock::given(method("POST")).and(path("/v1/chat/completions"))
}

#[tokio::test]
async fn success_reads_usage_with_cached_and_reasoning_tokens() {
    let server = server().await;
    chat()
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(reply("Hello, Ada!", Some(full_usage()))))
        .expect(1)
        .mount(&server)
        .await;

    let completion = provider(&base(&server)).complete(request("gpt-4o-mini")).await.unwrap();
    assert_eq!(completion.text, "Hello, Ada!");
    assert_eq!(completion.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    let usage = completion.usage;
    assert_eq!((usage.input, usage.output, usage.total), (120, 45, 165));
    assert_eq!((usage.cached, usage.reasoning), (64, 20));
    assert!(!usage.estimated);
}

#[tokio::test]
async fn usage_without_details_or_total_is_completed() {
    let server = server().await;
    chat()
        .respond_with(ResponseTemplate::new(200).set_body_json(reply(
            "ok",
            Some(json!({"prompt_tokens": 7, "completion_tokens": 3, "prompt_tokens_details": null})),
        )))
        .mount(&server)
        .await;
    let usage = provider(&base(&server)).complete(request("llama3")).await.unwrap().usage;
    assert_eq!((usage.input, usage.output, usage.total, usage.cached, usage.reasoning), (7, 3, 10, 0, 0));
    assert!(!usage.estimated);
}

#[tokio::test]
async fn missing_usage_is_estimated_with_tiktoken() {
    let server = server().await;
    chat()
        .respond_with(ResponseTemplate::new(200).set_body_json(reply("hello world", None)))
        .mount(&server)
        .await;

    let usage = provider(&base(&server)).complete(request("gpt-4o-mini")).await.unwrap().usage;
    assert!(usage.estimated);
    // "hello world" is 2 tokens in o200k_base.
    assert_eq!(usage.output, 2);
    // Two messages of a few tokens each plus the chat framing.
    assert!(usage.input > 10 && usage.input < 40, "input estimate {}", usage.input);
    assert_eq!(usage.total, usage.input + usage.output);
}

#[tokio::test]
async fn rate_limit_carries_retry_after_and_the_next_call_succeeds() {
    let server = server().await;
    chat()
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3").set_body_json(
            json!({"error": {
                "message": "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3.",
                "type": "requests", "param": null, "code": "rate_limit_exceeded"}}),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    chat()
        .respond_with(ResponseTemplate::new(200).set_body_json(reply("second", Some(full_usage()))))
        .mount(&server)
        .await;

    let provider = provider(&base(&server));
    let err = provider.complete(request("gpt-4o-mini")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::RateLimited);
    assert!(err.is_transient());
    assert_eq!(err.status, Some(429));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    assert!(err.message.contains("Rate limit reached"), "{}", err.message);
    assert!(err.message.contains("rate_limit_exceeded"), "{}", err.message);

    // The provider itself does not retry: exactly one request so far.
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    let completion = provider.complete(request("gpt-4o-mini")).await.unwrap();
    assert_eq!(completion.text, "second");
}

#[tokio::test]
async fn retry_after_ms_wins_over_retry_after() {
    let server = server().await;
    chat()
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after-ms", "1500")
                .insert_header("retry-after", "2")
                .set_body_json(json!({"error": {"message": "slow down"}})),
        )
        .mount(&server)
        .await;
    let err = provider(&base(&server)).complete(request("m")).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_millis(1500)));
}

#[tokio::test]
async fn server_errors_are_transient_then_success() {
    for status in [500u16, 502, 503, 408, 409] {
        let server = server().await;
        chat()
            .respond_with(ResponseTemplate::new(status).insert_header("retry-after", "1").set_body_json(
                json!({"error": {"message": "The server is overloaded", "type": "server_error"}}),
            ))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        chat()
            .respond_with(ResponseTemplate::new(200).set_body_json(reply("fine", None)))
            .mount(&server)
            .await;

        let provider = provider(&base(&server));
        let err = provider.complete(request("m")).await.unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::ServerError, "HTTP {status}");
        assert!(err.is_transient());
        assert_eq!(err.status, Some(status));
        assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
        assert!(err.message.contains("The server is overloaded (type: server_error)"), "{}", err.message);
        assert_eq!(provider.complete(request("m")).await.unwrap().text, "fine");
    }
}

#[tokio::test]
async fn unauthorized_is_permanent_with_the_message_and_without_the_key() {
    let server = server().await;
    chat()
        .respond_with(ResponseTemplate::new(401).insert_header("retry-after", "5").set_body_json(json!({"error": {
            "message": format!("Incorrect API key provided: {KEY}. You can find your API key at https://platform.openai.com."),
            "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})))
        .expect(1)
        .mount(&server)
        .await;

    let err = provider(&base(&server)).complete(request("m")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Auth);
    assert!(!err.is_transient());
    assert_eq!(err.status, Some(401));
    assert_eq!(err.retry_after(), None, "permanent errors carry no retry hint");
    assert!(err.message.contains("Incorrect API key provided"), "{}", err.message);
    assert!(err.message.contains("invalid_api_key"), "{}", err.message);
    assert!(!err.message.contains(KEY), "{}", err.message);
    assert!(!err.to_string().contains(KEY));
    assert!(!format!("{err:?}").contains(KEY));
}

#[tokio::test]
async fn other_client_errors_are_permanent_bad_requests() {
    for (status, body) in [
        (
            400u16,
            json!({"error": {"message": "Invalid 'messages': empty array.", "type": "invalid_request_error",
            "param": "messages", "code": "empty_array"}}),
        ),
        (
            404,
            json!({"error": {"message": "The model `gpt-9` does not exist", "type": "invalid_request_error",
            "param": null, "code": "model_not_found"}}),
        ),
        (422, json!({"error": "unprocessable: temperature out of range"})),
    ] {
        let server = server().await;
        chat().respond_with(ResponseTemplate::new(status).set_body_json(body)).mount(&server).await;
        let err = provider(&base(&server)).complete(request("gpt-9")).await.unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::BadRequest, "HTTP {status}");
        assert!(!err.is_transient());
        assert_eq!(err.status, Some(status));
        let expected = match status {
            400 => {
                "Invalid 'messages': empty array. (type: invalid_request_error, code: empty_array, param: messages)"
            }
            404 => "The model `gpt-9` does not exist",
            _ => "unprocessable: temperature out of range",
        };
        assert!(err.message.contains(expected), "{}", err.message);
    }
}

#[tokio::test]
async fn forbidden_is_auth_and_a_non_json_error_body_is_kept() {
    let server = server().await;
    chat()
        .respond_with(ResponseTemplate::new(403).set_body_string("<html>blocked by gateway</html>"))
        .mount(&server)
        .await;
    let err = provider(&base(&server)).complete(request("m")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Auth);
    assert!(
        err.message.contains("HTTP 403") && err.message.contains("blocked by gateway"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn malformed_json_is_a_malformed_response() {
    let server = server().await;
    chat()
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(r#"{"choices": [{"message": {"content": "hi""#, "application/json"),
        )
        .mount(&server)
        .await;
    // JSON cut midway: the transfer ended early, a (transient) connection fault.
    let err = provider(&base(&server)).complete(request("m")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Connection);
    assert!(err.message.contains("ended midway"), "{}", err.message);

    let server = self::server().await;
    chat()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"choices": []})))
        .mount(&server)
        .await;
    let err = provider(&base(&server)).complete(request("m")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::MalformedResponse);
    assert!(err.message.contains("no choices"), "{}", err.message);
}

#[tokio::test]
async fn a_refusal_is_a_permanent_error_naming_it() {
    let server = server().await;
    let mut body = reply("", None);
    body["choices"][0]["message"] =
        json!({"role": "assistant", "content": null, "refusal": "I can't help with that."});
    chat().respond_with(ResponseTemplate::new(200).set_body_json(body)).mount(&server).await;
    let err = provider(&base(&server)).complete(request("m")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Refused);
    assert!(!err.is_transient());
    assert!(err.message.contains("refused: I can't help with that."), "{}", err.message);
}

#[tokio::test]
async fn an_oversized_reply_is_refused_without_reading_it_all() {
    let server = server().await;
    let big = "x".repeat(64 * 1024);
    chat().respond_with(ResponseTemplate::new(200).set_body_json(reply(&big, None))).mount(&server).await;
    let mut config = config(&base(&server), None);
    config.max_response_bytes = 16 * 1024;
    let err = OpenAiProvider::new(config).unwrap().complete(request("m")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::MalformedResponse);
    assert!(err.message.contains("16384 byte limit"), "{}", err.message);
}

#[tokio::test]
async fn a_slow_reply_past_the_deadline_is_a_timeout() {
    let server = server().await;
    chat()
        .respond_with(
            ResponseTemplate::new(200).set_body_json(reply("late", None)).set_delay(Duration::from_secs(30)),
        )
        .mount(&server)
        .await;
    // Build the provider first so the deadline covers only the call.
    let provider = provider(&base(&server));
    let mut req = request("m");
    req.deadline = Instant::now() + Duration::from_secs(2);
    let err = provider.complete(req).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Timeout);
    assert!(err.is_transient());
    assert!(err.message.contains("no complete reply within"), "{}", err.message);
}

#[tokio::test]
async fn the_configured_timeout_caps_a_later_deadline() {
    let server = server().await;
    chat()
        .respond_with(
            ResponseTemplate::new(200).set_body_json(reply("late", None)).set_delay(Duration::from_secs(30)),
        )
        .mount(&server)
        .await;
    let mut config = config(&base(&server), None);
    config.timeout = Duration::from_millis(200);
    let err = OpenAiProvider::new(config).unwrap().complete(request("m")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Timeout);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_already_passed_fails_without_a_request() {
    let server = server().await;
    let mut req = request("m");
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(req.deadline <= Instant::now());
    req.deadline = Instant::now();
    let err = provider(&base(&server)).complete(req).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Timeout);
    assert_eq!(server.received_requests().await.unwrap().len(), 0);
}

#[tokio::test]
async fn connection_refused_is_a_transient_connection_error() {
    // Bind then drop a listener so the port is (almost certainly) closed.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = provider(&format!("http://127.0.0.1:{port}/v1")).complete(request("m")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Connection);
    assert!(err.is_transient());
    assert!(err.message.contains("sending the request"), "{}", err.message);
    assert!(!err.message.contains(KEY));
}

#[tokio::test]
async fn a_connection_cut_mid_body_is_a_connection_error() {
    let body = reply("this reply never arrives whole", None).to_string();
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len() + 100
    );
    let base = raw_server(head, body.into_bytes()).await;
    let err = provider(&base).complete(request("m")).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Connection, "{}", err.message);
    assert!(err.message.contains("reading the reply"), "{}", err.message);
}

#[tokio::test]
async fn the_request_body_maps_every_parameter_and_the_schema_field_by_field() {
    let server = server().await;
    chat().respond_with(ResponseTemplate::new(200).set_body_json(reply("{}", None))).mount(&server).await;

    let mut req = request("gpt-4o-2024-08-06");
    req.parameters.temperature = Some(0.25);
    req.parameters.top_p = Some(0.5);
    req.parameters.max_completion_tokens = Some(256);
    req.parameters.stop = vec!["\n\n".to_string(), "END".to_string()];
    req.parameters.seed = Some(42);
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}},
        "required": ["name"], "additionalProperties": false});
    req.response_schema =
        Some(ResponseSchema { name: "person".to_string(), schema: schema.clone(), strict: true });
    provider(&base(&server)).complete(req).await.unwrap();

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let body: Value = requests[0].body_json().unwrap();
    assert_eq!(body["model"], "gpt-4o-2024-08-06");
    assert_eq!(
        body["messages"],
        json!([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello to Ada."}])
    );
    assert_eq!(body["temperature"], 0.25);
    assert_eq!(body["top_p"], 0.5);
    assert_eq!(body["max_completion_tokens"], 256);
    assert_eq!(body["stop"], json!(["\n\n", "END"]));
    assert_eq!(body["seed"], 42);
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["name"], "person");
    assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    assert_eq!(body["response_format"]["json_schema"]["schema"], schema);
    assert!(body.get("max_tokens").is_none(), "the deprecated max_tokens is never sent");
    assert!(body.get("stream").is_none());
    assert!(body.get("stream_options").is_none());
    assert_eq!(body.as_object().unwrap().len(), 8, "no other fields: {body}");
}

#[tokio::test]
async fn unset_parameters_are_omitted() {
    let server = server().await;
    chat().respond_with(ResponseTemplate::new(200).set_body_json(reply("x", None))).mount(&server).await;
    provider(&base(&server)).complete(request("m")).await.unwrap();
    let body: Value = server.received_requests().await.unwrap()[0].body_json().unwrap();
    let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["messages", "model"]);
}

#[tokio::test]
async fn organization_project_and_extra_headers_are_sent() {
    let server = server().await;
    chat()
        .and(header("openai-organization", "org-123"))
        .and(header("openai-project", "proj_456"))
        .and(header("x-gateway-tenant", "acme"))
        .and(body_partial_json(json!({"model": "m"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(reply("ok", None)))
        .expect(1)
        .mount(&server)
        .await;
    let mut config = config(&base(&server), Some(KEY));
    config.organization = Some("org-123".to_string());
    config.project = Some("proj_456".to_string());
    config.extra_headers = vec![("x-gateway-tenant".to_string(), "acme".to_string())];
    let completion = OpenAiProvider::new(config).unwrap().complete(request("m")).await.unwrap();
    assert_eq!(completion.text, "ok");
}

#[tokio::test]
async fn no_authorization_header_without_a_key() {
    let server = server().await;
    chat().respond_with(ResponseTemplate::new(200).set_body_json(reply("local", None))).mount(&server).await;
    let provider = OpenAiProvider::new(config(&base(&server), None)).unwrap();
    assert_eq!(provider.complete(request("llama3.2")).await.unwrap().text, "local");
    let requests = server.received_requests().await.unwrap();
    assert!(requests[0].headers.get("authorization").is_none());
    assert!(requests[0].headers.get("openai-organization").is_none());
}
