//! The engine over the OpenAI provider and a loopback fake: what a reply really was ends up on
//! the execution (finish reason, truncation in the rule's reason, refusal details), and a bad
//! or unreadable reply is paid for once.
#![allow(clippy::unwrap_used)]

mod engine_common;
mod openai_support;

use std::sync::Arc;

use engine_common::{config, inputs};
use formaops_core::engine::{ExecuteRequest, FormaOps};
use formaops_core::execution::{Execution, ExecutionStatus};
use formaops_core::ids::UserId;
use formaops_core::prompt::PromptSpec;
use formaops_core::provider::openai::OpenAiProvider;
use formaops_core::store::MemoryStore;
use openai_support::{KEY, reply};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Runs one validated execution (a `json` rule) against a server answering `body`; returns
/// it and the number of provider calls made.
async fn run(body: ResponseTemplate) -> (Execution, usize) {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/chat/completions")).respond_with(body).mount(&server).await;
    let provider =
        OpenAiProvider::new(openai_support::config(&format!("{}/v1", server.uri()), Some(KEY))).unwrap();
    let engine = FormaOps::builder(Arc::new(MemoryStore::new()))
        .provider("fake", Arc::new(provider))
        .config(config())
        .start()
        .await
        .unwrap();
    let user = UserId::new();
    let spec: PromptSpec = serde_json::from_value(json!({
        "name": "capital",
        "template": "Answer about {{ word }} as JSON",
        "variables": [{"name": "word", "type": "string", "required": true}],
        "validations": [{"type": "json"}],
        "model": {"model": "gpt-4o-mini", "provider": "fake"}
    }))
    .unwrap();
    let (prompt, _) = engine.create_prompt(user, spec).await.unwrap();
    let request = ExecuteRequest {
        prompt_id: prompt.id,
        inputs: inputs("France"),
        validate_output: true,
        ..Default::default()
    };
    let done = engine.execute(user, request).await.unwrap();
    engine.shutdown().await;
    let calls = server.received_requests().await.unwrap().len();
    (done, calls)
}

fn with_message(message: Value, finish: &str) -> ResponseTemplate {
    let mut body = reply("", None);
    body["choices"][0]["message"] = message;
    body["choices"][0]["finish_reason"] = json!(finish);
    ResponseTemplate::new(200).set_body_json(body)
}

#[tokio::test]
async fn a_truncated_output_is_visible_and_its_json_rule_says_it_was_cut() {
    let (done, calls) =
        run(with_message(json!({"role": "assistant", "content": "{\"capital\": \"Par"}), "length")).await;
    assert_eq!(calls, 1);
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.finish_reason.as_deref(), Some("length"));
    let verdict = done.validation.unwrap();
    assert!(!verdict.passed);
    let reason = verdict.results[0].reason.as_deref().unwrap();
    assert!(reason.contains("cut at the token limit"), "{reason}");

    let (done, _) =
        run(ResponseTemplate::new(200).set_body_json(reply("{\"capital\": \"Paris\"}", None))).await;
    assert_eq!(done.finish_reason.as_deref(), Some("stop"));
    assert!(done.validation.as_ref().unwrap().passed);
    let json = serde_json::to_value(&done).unwrap();
    assert_eq!(json["finishReason"], "stop", "the REST record carries it");
}

#[tokio::test]
async fn bad_answers_fail_once_with_their_own_code_and_details() {
    let calls_json =
        json!([{"id": "call_1", "type": "function", "function": {"name": "get_capital", "arguments": "{}"}}]);
    let cases = [
        (
            json!({"role": "assistant", "content": "", "refusal": "I can't help with that."}),
            "stop",
            "refused",
            "refusal",
        ),
        (
            json!({"role": "assistant", "content": null, "tool_calls": calls_json}),
            "tool_calls",
            "tool_calls_only",
            "toolCalls",
        ),
        (
            json!({"role": "assistant", "content": null, "reasoning_content": "Let me think"}),
            "length",
            "empty_output",
            "reasoning",
        ),
        (
            json!({"role": "assistant", "content": "Here is"}),
            "content_filter",
            "content_filtered",
            "partialOutput",
        ),
    ];
    for (message, finish, code, detail) in cases {
        let (done, calls) = run(with_message(message, finish)).await;
        assert_eq!(calls, 1, "{code}: never retried");
        assert_eq!(done.status, ExecutionStatus::Failed, "{code}");
        assert_eq!(done.finish_reason.as_deref(), Some(finish), "{code}");
        let error = done.error.unwrap();
        assert_eq!(error.code, code);
        assert!(!error.transient);
        assert!(
            error.details.as_ref().is_some_and(|d| d.get(detail).is_some()),
            "{code}: {:?}",
            error.details
        );
    }
}

#[tokio::test]
async fn an_off_spec_reply_is_read_and_an_unreadable_one_is_paid_once() {
    let (done, calls) = run(ResponseTemplate::new(200).set_body_json(reply(
        "{\"capital\": \"Paris\"}",
        Some(json!({"prompt_tokens": null, "completion_tokens": null, "total_tokens": null})),
    )))
    .await;
    assert_eq!((done.status, calls), (ExecutionStatus::Completed, 1));
    assert!(done.metrics.unwrap().token_usage.estimated);

    let (done, calls) = run(ResponseTemplate::new(200).set_body_raw("<html>oops</html>", "text/html")).await;
    assert_eq!((done.status, calls), (ExecutionStatus::Failed, 1));
    let error = done.error.unwrap();
    assert_eq!(error.code, "malformed_response");
    assert!(error.message.contains("<html>oops</html>"), "{}", error.message);
}
