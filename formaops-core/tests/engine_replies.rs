//! The engine over the OpenAI provider and a loopback fake: what a reply really was ends up on
//! the execution (finish reason, truncation in the rule's reason, refusal details), and a bad
//! or unreadable reply is paid for once.
#![allow(clippy::unwrap_used)]

mod engine_common;
mod openai_support;

use std::sync::Arc;

use engine_common::{config, inputs};
use formaops_core::engine::{ExecuteRequest, FormaOps};
use formaops_core::error::Error;
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
    let (server, engine) = openai_support::engine_on_fake(body, config()).await;
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

// ----- a json_schema rule's schema is sent strict only where strict mode accepts it -----

/// Runs one validated execution of a version with `rules` against a server answering
/// `{"city": "Paris"}`; returns the `response_format` the server received and the execution.
async fn sent_for(rules: Value) -> (Option<Value>, Execution) {
    let server = MockServer::start().await;
    let answer = ResponseTemplate::new(200).set_body_json(reply("{\"city\": \"Paris\"}", None));
    Mock::given(method("POST")).and(path("/v1/chat/completions")).respond_with(answer).mount(&server).await;
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
        "name": "city",
        "template": "Where is {{ word }}?",
        "variables": [{"name": "word", "type": "string", "required": true}],
        "validations": rules,
        "model": {"model": "gpt-4o-mini", "provider": "fake"}
    }))
    .unwrap();
    let (prompt, _) = engine.create_prompt(user, spec).await.unwrap();
    let request = ExecuteRequest {
        prompt_id: prompt.id,
        inputs: inputs("Louvre"),
        validate_output: true,
        ..Default::default()
    };
    let done = engine.execute(user, request).await.unwrap();
    engine.shutdown().await;
    let body: Value = server.received_requests().await.unwrap()[0].body_json().unwrap();
    (body.get("response_format").cloned(), done)
}

fn optional_zip() -> Value {
    json!({"type": "object", "required": ["city"],
           "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}})
}

fn closed_city() -> Value {
    json!({"type": "object", "additionalProperties": false, "required": ["city"],
           "properties": {"city": {"type": "string"}}})
}

#[tokio::test]
async fn strict_is_sent_only_for_schemas_that_fit_strict_mode() {
    let cases = [
        // (rule, strict sent): the inputs (optional property, array root) are sent
        // non-strict by default; a fitting schema strict unless the rule says false.
        (json!({"type": "json_schema", "schema": optional_zip()}), false),
        (json!({"type": "json_schema", "schema": {"type": "array", "items": {"type": "string"}}}), false),
        (json!({"type": "json_schema", "schema": closed_city()}), true),
        (json!({"type": "json_schema", "schema": closed_city(), "strict": "auto"}), true),
        (json!({"type": "json_schema", "schema": closed_city(), "strict": true}), true),
        (json!({"type": "json_schema", "schema": closed_city(), "strict": false}), false),
        (json!({"type": "json_schema", "schema": optional_zip(), "strict": false}), false),
    ];
    for (rule, strict) in cases {
        let (sent, done) = sent_for(json!([rule])).await;
        let sent = sent.unwrap();
        assert_eq!(sent["type"], "json_schema", "{rule}");
        assert_eq!(sent["json_schema"]["schema"], rule["schema"], "the schema is sent unchanged");
        assert_eq!(sent["json_schema"]["strict"], json!(strict), "{rule}");
        // The rule is checked on the output whatever was sent.
        let verdict = done.validation.unwrap();
        assert_eq!(verdict.results[0].rule, "json_schema");
        let is_array = rule["schema"]["type"] == "array";
        assert_eq!(verdict.passed, !is_array, "{rule}");
    }
}

#[tokio::test]
async fn strict_true_with_a_schema_strict_mode_refuses_is_refused_when_saved() {
    let engine = FormaOps::builder(Arc::new(MemoryStore::new())).config(config()).start().await.unwrap();
    let user = UserId::new();
    let nested = json!({"type": "object", "additionalProperties": false, "required": ["address"],
        "properties": {"address": {"type": "object", "additionalProperties": false,
                                   "properties": {"street": {"type": "string"}}}}});
    for (schema, path) in [(optional_zip(), "at the root"), (nested, "at /properties/address")] {
        let spec: PromptSpec = serde_json::from_value(json!({
            "name": "strict",
            "template": "hi",
            "validations": [{"type": "json"}, {"type": "json_schema", "schema": schema, "strict": true}]
        }))
        .unwrap();
        let Err(Error::InvalidPrompt { problems }) = engine.create_prompt(user, spec).await else {
            panic!("strict: true with an unfit schema must be refused")
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            (problems[0].field.as_str(), problems[0].code.as_str()),
            ("validations[1].schema", "schema")
        );
        let message = &problems[0].message;
        assert!(message.contains(path) && message.contains("not in `required`"), "{message}");
    }
    // The same schema with the default (auto) saves.
    let spec: PromptSpec = serde_json::from_value(json!({
        "name": "auto", "template": "hi", "validations": [{"type": "json_schema", "schema": optional_zip()}]
    }))
    .unwrap();
    assert!(engine.create_prompt(user, spec).await.is_ok());
    engine.shutdown().await;
}
