//! Replies as real servers send them (issue 14 items 1, 2, 3, 13): off-spec fields read for
//! what they carry, bad answers told apart from good ones, error messages kept intact, and
//! the structured-output form each server accepts.
#![allow(clippy::unwrap_used)]

mod openai_support;

use formaops_core::provider::openai::OpenAiProvider;
use formaops_core::provider::{
    Completion, LlmProvider, PartialOutput, ProviderError, ProviderErrorKind, ResponseSchema,
    StructuredOutput,
};
use openai_support::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn chat() -> wiremock::MockBuilder {
    Mock::given(method("POST")).and(path("/v1/chat/completions"))
}

/// A server answering every call with `body` (HTTP 200), and its base URL.
async fn serving(body: Value) -> (MockServer, String) {
    serving_template(ResponseTemplate::new(200).set_body_json(body)).await
}

async fn serving_template(template: ResponseTemplate) -> (MockServer, String) {
    let server = MockServer::start().await;
    chat().respond_with(template).mount(&server).await;
    let base = format!("{}/v1", server.uri());
    (server, base)
}

async fn calls(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

/// A reply whose first choice's message is `message`, finishing with `finish`.
fn reply_with(message: Value, finish: Option<&str>) -> Value {
    let mut body = reply("", None);
    body["choices"][0]["message"] = message;
    body["choices"][0]["finish_reason"] = finish.map_or(Value::Null, |f| json!(f));
    body
}

async fn complete(body: Value) -> (Result<Completion, ProviderError>, usize) {
    let (server, base) = serving(body).await;
    let result = provider(&base).complete(request("gpt-4o-mini")).await;
    (result, calls(&server).await)
}

// ----- 1. one off-spec field never fails the whole reply -----

#[tokio::test]
async fn usage_with_null_or_odd_counts_keeps_the_text() {
    // (usage, estimated?, (input, output)): `None` counts are estimates.
    let cases = [
        (json!({"prompt_tokens": null, "completion_tokens": null, "total_tokens": null}), true, None),
        (json!({"prompt_tokens": 9, "completion_tokens": null}), true, None),
        (json!({"prompt_tokens": null, "completion_tokens": 2, "total_tokens": 11}), true, None),
        (json!("n/a"), true, None),
        (json!([1, 2]), true, None),
        (json!({"prompt_tokens": "9", "completion_tokens": "2"}), false, Some((9, 2))),
        (
            json!({"prompt_tokens": 9.0, "completion_tokens": 2, "prompt_tokens_details": 0}),
            false,
            Some((9, 2)),
        ),
        (
            json!({"prompt_tokens": 9, "completion_tokens": 2,
                "completion_tokens_details": {"reasoning_tokens": null}}),
            false,
            Some((9, 2)),
        ),
    ];
    for (usage, estimated, counts) in cases {
        let counts: Option<(u64, u64)> = counts;
        let (result, calls) = complete(reply("hello world", Some(usage.clone()))).await;
        let completion = result.unwrap_or_else(|e| panic!("{usage}: {e}"));
        assert_eq!(calls, 1, "{usage}");
        assert_eq!(completion.text, "hello world", "{usage}");
        let u = completion.usage;
        assert_eq!(u.estimated, estimated, "{usage}");
        match counts {
            Some((input, output)) => {
                assert_eq!((u.input, u.output, u.total), (input, output, input + output))
            }
            // "hello world" is 2 tokens; the two request messages a dozen or so.
            None => assert!(u.output == 2 && u.input > 10 && u.total == u.input + u.output, "{usage}: {u:?}"),
        }
    }
}

#[tokio::test]
async fn content_as_parts_gives_the_text_and_keeps_thinking_apart() {
    let cases = [
        (
            json!([{"type": "thinking", "thinking": "The capital is well known."}, {"type": "text", "text": "Paris"}]),
            Some("The capital is well known."),
        ),
        (json!([{"type": "text", "text": "Par"}, {"type": "text", "text": "is"}]), None),
        (json!(["Par", "is"]), None),
        (
            json!([{"type": "reasoning", "text": "hmm"}, {"type": "output_text", "text": "Paris"}]),
            Some("hmm"),
        ),
        (json!([{"type": "image_url", "image_url": {"url": "x"}}, {"text": "Paris"}]), None),
    ];
    for (content, thinking) in cases {
        let message = json!({"role": "assistant", "content": content.clone()});
        let (result, calls) = complete(reply_with(message, Some("stop"))).await;
        let completion = result.unwrap_or_else(|e| panic!("{content}: {e}"));
        assert_eq!(calls, 1);
        assert_eq!(completion.text, "Paris", "{content}");
        assert_eq!(completion.reasoning.as_deref(), thinking, "{content}");
    }
    // `reasoning_content` (DeepSeek, vLLM) and `reasoning` are kept apart from the answer too.
    for field in ["reasoning_content", "reasoning"] {
        let message = json!({"role": "assistant", "content": "Paris", field: "Think first."});
        let completion = complete(reply_with(message, Some("stop"))).await.0.unwrap();
        assert_eq!(completion.text, "Paris");
        assert_eq!(completion.reasoning.as_deref(), Some("Think first."));
    }
}

#[tokio::test]
async fn an_error_body_with_http_200_keeps_the_message_and_is_classified() {
    let cases = [
        (
            json!({"error": {"message": "upstream model overloaded"}}),
            ProviderErrorKind::ServerError,
            "upstream model overloaded",
        ),
        (
            json!({"error": {"message": "The server is overloaded", "type": "server_error"}}),
            ProviderErrorKind::ServerError,
            "The server is overloaded",
        ),
        (
            json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}),
            ProviderErrorKind::RateLimited,
            "Rate limit reached",
        ),
        (
            json!({"error": {"message": "slow down", "code": 429}}),
            ProviderErrorKind::RateLimited,
            "slow down",
        ),
        (
            json!({"error": {"message": "Invalid value for 'model'", "type": "invalid_request_error"}}),
            ProviderErrorKind::BadRequest,
            "Invalid value for 'model'",
        ),
        (
            json!({"error": {"message": "Incorrect API key", "code": "invalid_api_key"}}),
            ProviderErrorKind::Auth,
            "Incorrect API key",
        ),
        (
            json!({"object": "error", "message": "max_tokens is too large", "type": "BadRequestError", "code": 400}),
            ProviderErrorKind::BadRequest,
            "max_tokens is too large",
        ),
        (json!({"error": "model is loading"}), ProviderErrorKind::ServerError, "model is loading"),
    ];
    for (body, kind, words) in cases {
        let (result, calls) = complete(body.clone()).await;
        let err = result.unwrap_err();
        assert_eq!(calls, 1);
        assert_eq!(err.kind, kind, "{body}: {}", err.message);
        assert!(err.message.contains(words), "{body}: {}", err.message);
        assert!(!err.message.contains("missing field"), "{}", err.message);
    }
}

#[tokio::test]
async fn a_reply_that_cannot_be_read_is_permanent_with_an_excerpt() {
    let cases = [
        (
            ResponseTemplate::new(200).set_body_raw("<html>bad gateway page</html>", "text/html"),
            "<html>bad gateway page",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"id": "x", "object": "chat.completion"})),
            "chat.completion",
        ),
        (ResponseTemplate::new(200).set_body_json(json!({"choices": [{"index": 0}]})), "\"index\""),
        (ResponseTemplate::new(200), "(empty body)"),
    ];
    for (template, excerpt) in cases {
        let (server, base) = serving_template(template).await;
        let err = provider(&base).complete(request("m")).await.unwrap_err();
        assert_eq!(calls(&server).await, 1);
        assert_eq!(err.kind, ProviderErrorKind::MalformedResponse, "{}", err.message);
        assert!(!err.is_transient(), "an unreadable reply is not retried: {}", err.message);
        assert!(err.message.contains(excerpt), "{}", err.message);
    }
    // JSON that stops midway is a transfer cut short: a connection fault, tried again.
    for cut in ["{\"choices\": [", "{\"id\": \"chatcmpl-x\", \"choices\": [ {\"m"] {
        let (_server, base) =
            serving_template(ResponseTemplate::new(200).set_body_raw(cut, "application/json")).await;
        let err = provider(&base).complete(request("m")).await.unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::Connection, "{}", err.message);
        assert!(err.is_transient(), "{}", err.message);
        assert!(err.message.contains(cut), "{}", err.message);
    }
    // A long reply is quoted only in part.
    let (_server, base) =
        serving_template(ResponseTemplate::new(200).set_body_string("z".repeat(50_000))).await;
    let err = provider(&base).complete(request("m")).await.unwrap_err();
    assert!(err.message.len() < 2_100, "{} chars", err.message.len());
}

// ----- 2. bad answers never look like good ones -----

#[tokio::test]
async fn the_finish_reason_is_kept_and_length_marks_a_truncated_output() {
    let message = json!({"role": "assistant", "content": "The capital of France is"});
    let completion = complete(reply_with(message, Some("length"))).await.0.unwrap();
    assert_eq!(completion.text, "The capital of France is");
    assert_eq!(completion.finish_reason.as_deref(), Some("length"));
    assert!(completion.truncated());

    let completion = complete(reply("Paris.", None)).await.0.unwrap();
    assert_eq!(completion.finish_reason.as_deref(), Some("stop"));
    assert!(!completion.truncated());

    let message = json!({"role": "assistant", "content": "Paris."});
    let completion = complete(reply_with(message, None)).await.0.unwrap();
    assert_eq!(completion.finish_reason, None);
    assert!(!completion.truncated());
}

/// Asserts a permanent error of `kind` after one call, and returns it.
async fn bad_answer(message: Value, finish: Option<&str>, kind: ProviderErrorKind) -> ProviderError {
    let (result, calls) = complete(reply_with(message.clone(), finish)).await;
    let err = result.expect_err(&format!("{message} must not succeed"));
    assert_eq!(calls, 1);
    assert_eq!(err.kind, kind, "{message}: {}", err.message);
    assert!(!err.is_transient(), "{message}");
    assert_eq!(err.finish_reason.as_deref(), finish, "{message}");
    err
}

#[tokio::test]
async fn a_refusal_is_its_own_error_keeping_the_text() {
    for message in [
        json!({"role": "assistant", "content": null, "refusal": "I can't help with that."}),
        json!({"role": "assistant", "content": "", "refusal": "I can't help with that."}),
        json!({"role": "assistant", "refusal": "I can't help with that."}),
    ] {
        let err = bad_answer(message, Some("stop"), ProviderErrorKind::Refused).await;
        assert_eq!(err.kind.as_str(), "refused");
        assert!(err.message.contains("I can't help with that."), "{}", err.message);
        let details = err.details.unwrap();
        assert_eq!(details["refusal"], "I can't help with that.");
        assert_eq!(details["finishReason"], "stop");
    }
}

#[tokio::test]
async fn a_content_filter_stop_is_its_own_error() {
    for content in [json!(null), json!(""), json!("Here is how to")] {
        let message = json!({"role": "assistant", "content": content.clone()});
        let err = bad_answer(message, Some("content_filter"), ProviderErrorKind::ContentFiltered).await;
        assert_eq!(err.kind.as_str(), "content_filtered");
        assert!(err.message.contains("content filter"), "{}", err.message);
        if content == "Here is how to" {
            assert_eq!(err.details.unwrap()["partialOutput"], "Here is how to");
        }
    }
}

#[tokio::test]
async fn a_reply_with_only_tool_calls_is_its_own_error_keeping_the_calls() {
    let calls = json!([{"id": "call_1", "type": "function",
        "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]);
    for (message, finish) in [
        (json!({"role": "assistant", "content": null, "tool_calls": calls}), Some("tool_calls")),
        (json!({"role": "assistant", "content": "", "tool_calls": calls}), Some("stop")),
        (json!({"role": "assistant", "tool_calls": calls}), None),
    ] {
        let err = bad_answer(message, finish, ProviderErrorKind::ToolCallsOnly).await;
        assert_eq!(err.kind.as_str(), "tool_calls_only");
        assert!(err.message.contains("get_weather"), "{}", err.message);
        assert_eq!(err.details.unwrap()["toolCalls"], calls);
    }
    // The deprecated single `function_call`.
    let message = json!({"role": "assistant", "content": null,
        "function_call": {"name": "lookup", "arguments": "{}"}});
    let err = bad_answer(message, Some("function_call"), ProviderErrorKind::ToolCallsOnly).await;
    assert!(err.message.contains("lookup"), "{}", err.message);
}

#[tokio::test]
async fn no_answer_text_is_an_empty_output_error() {
    // Only reasoning, cut at the token limit: the message says what to do.
    let message =
        json!({"role": "assistant", "content": null, "reasoning_content": "Let me think step by step"});
    let err = bad_answer(message, Some("length"), ProviderErrorKind::EmptyOutput).await;
    assert_eq!(err.kind.as_str(), "empty_output");
    assert!(err.message.contains("token limit") && err.message.contains("reasoning"), "{}", err.message);
    assert_eq!(err.details.unwrap()["reasoning"], "Let me think step by step");

    for (content, finish) in [
        (json!(""), Some("stop")),
        (json!(null), Some("stop")),
        (json!("  \n "), Some("stop")),
        (json!([]), None),
        (json!([{"type": "thinking", "thinking": "hmm"}]), Some("stop")),
        (json!(""), Some("length")),
    ] {
        let message = json!({"role": "assistant", "content": content});
        bad_answer(message, finish, ProviderErrorKind::EmptyOutput).await;
    }
}

#[derive(Default)]
struct Partials(std::sync::Mutex<Vec<String>>);

impl Partials {
    fn push(&self, p: PartialOutput) {
        self.0.lock().unwrap().push(p.delta);
    }
}

async fn stream(chunks: &[Value]) -> Result<Completion, ProviderError> {
    let body = sse(chunks, true);
    let (_server, base) =
        serving_template(ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")).await;
    let partials = Partials::default();
    provider(&base).complete_streaming(request("m"), &|p| partials.push(p)).await
}

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

#[tokio::test]
async fn streamed_replies_are_judged_the_same_way() {
    let done = stream(&[delta_chunk("The capital"), chunk(json!({"content": " of"}), Some("length"))])
        .await
        .unwrap();
    assert_eq!(done.text, "The capital of");
    assert!(done.truncated());

    let thinking = stream(&[
        chunk(json!({"reasoning_content": "think"}), None),
        chunk(json!({"content": [{"type": "text", "text": "Paris"}]}), Some("stop")),
    ])
    .await
    .unwrap();
    assert_eq!((thinking.text.as_str(), thinking.reasoning.as_deref()), ("Paris", Some("think")));

    let err = stream(&[
        chunk(json!({"refusal": "I can't"}), None),
        chunk(json!({"refusal": " do that."}), Some("stop")),
    ])
    .await
    .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::Refused);
    assert_eq!(err.details.unwrap()["refusal"], "I can't do that.");

    let err = stream(&[chunk(
        json!({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "get_weather", "arguments": ""}}]}),
        Some("tool_calls"),
    )])
    .await
    .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::ToolCallsOnly);

    let err = stream(&[chunk(json!({"content": ""}), Some("content_filter"))]).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::ContentFiltered);

    let err = stream(&[chunk(json!({"reasoning_content": "hmm"}), Some("length"))]).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::EmptyOutput);

    // Null usage counts in the final chunk are estimated, the text kept.
    let done = stream(&[
        delta_chunk("hello world"),
        finish_chunk(),
        usage_chunk(json!({"prompt_tokens": null, "completion_tokens": null})),
    ])
    .await
    .unwrap();
    assert_eq!(done.text, "hello world");
    assert!(done.usage.estimated);
}

// ----- 3. key masking redacts secrets only -----

async fn not_found_with_key(key: &str, server_words: &str) -> ProviderError {
    let (_server, base) = serving_template(ResponseTemplate::new(404).set_body_json(
        json!({"error": {"message": server_words, "type": "invalid_request_error", "code": "model_not_found"}}),
    ))
    .await;
    OpenAiProvider::new(config(&base, Some(key))).unwrap().complete(request("m")).await.unwrap_err()
}

#[tokio::test]
async fn placeholder_keys_never_mangle_the_servers_words() {
    for (key, words) in [
        ("x", "The model `gpt-9` does not exist"),
        ("e", "The model `gpt-9` does not exist"),
        ("none", "none of the loaded models is named gpt-9"),
        ("EMPTY", "EMPTY model list: load a model first"),
        ("ollama", "model \"gpt-9\" not found, try pulling it first (ollama pull)"),
        ("sk-no-key-required", "sk-no-key-required is accepted, but the model does not exist"),
        ("not-needed", "a key is not-needed here; the model does not exist"),
    ] {
        let err = not_found_with_key(key, words).await;
        assert!(err.message.contains(words), "key {key:?}: {}", err.message);
        assert!(!err.message.contains("REDACTED"), "key {key:?}: {}", err.message);
    }
}

#[tokio::test]
async fn real_keys_are_still_never_shown() {
    for key in [KEY, "0123456789abcdef0123456789abcdef", "sk-proj-AbCdEfGh", "gsk_Secret123"] {
        let err =
            not_found_with_key(key, &format!("Incorrect API key provided: {key}. It does not exist")).await;
        assert!(!err.message.contains(key), "{}", err.message);
        assert!(
            err.message.contains("[REDACTED]") && err.message.contains("does not exist"),
            "{}",
            err.message
        );
    }
}

// ----- 13. the structured-output form a server accepts -----

async fn sent_response_format(form: Option<StructuredOutput>) -> Option<Value> {
    let (server, base) = serving(reply("{\"city\": \"Paris\"}", None)).await;
    let mut config = config(&base, None);
    if let Some(form) = form {
        config.structured_output = form;
    }
    let mut req = request("m");
    req.response_schema = Some(ResponseSchema {
        name: "output".to_string(),
        schema: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
            "additionalProperties": false}),
        strict: true,
    });
    let completion = OpenAiProvider::new(config).unwrap().complete(req).await.unwrap();
    assert_eq!(completion.text, "{\"city\": \"Paris\"}");
    let body: Value = server.received_requests().await.unwrap()[0].body_json().unwrap();
    body.get("response_format").cloned()
}

#[tokio::test]
async fn the_structured_output_setting_picks_what_is_sent() {
    let default = sent_response_format(None).await.unwrap();
    assert_eq!(default["type"], "json_schema");
    assert_eq!(default["json_schema"]["name"], "output");
    assert_eq!(sent_response_format(Some(StructuredOutput::JsonSchema)).await, Some(default));
    assert_eq!(
        sent_response_format(Some(StructuredOutput::JsonObject)).await,
        Some(json!({"type": "json_object"}))
    );
    assert_eq!(sent_response_format(Some(StructuredOutput::None)).await, None);
}
