//! The engine streams from providers that stream: the output's deltas are published as
//! ordered `partial` events (coalesced), concatenating to the final output, before
//! `completed`; a stream cut midway is retried, and the follower sees the retry.
#![allow(clippy::unwrap_used)]

mod engine_common;
mod openai_support;

use std::sync::Arc;
use std::time::Duration;

use engine_common::{config, inputs, prompt, request};
use formaops_core::engine::ExecuteRequest;
use formaops_core::events::{EventKind, ExecutionEvent};
use formaops_core::execution::{Execution, ExecutionStatus};
use formaops_core::ids::UserId;
use formaops_core::prompt::PromptSpec;
use formaops_core::provider::mock::{MockFault, MockProvider};
use futures::StreamExt;
use futures::stream::BoxStream;
use openai_support::{delta_chunk, finish_chunk, full_usage, sse, usage_chunk};
use serde_json::{Value, json};
use wiremock::ResponseTemplate;

/// The events of one execution up to its final one.
async fn until_final(events: &mut BoxStream<'static, ExecutionEvent>) -> Vec<ExecutionEvent> {
    let mut out = Vec::new();
    while let Some(e) = tokio::time::timeout(Duration::from_secs(10), events.next()).await.unwrap() {
        let last = e.is_final();
        out.push(e);
        if last {
            break;
        }
    }
    out
}

fn kinds(events: &[ExecutionEvent]) -> Vec<EventKind> {
    let mut kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    kinds.dedup();
    kinds
}

fn deltas(events: &[ExecutionEvent], attempt: u32) -> String {
    events
        .iter()
        .filter(|e| e.kind == EventKind::Partial && e.attempt == attempt)
        .map(|e| e.delta.as_deref().unwrap())
        .collect()
}

async fn run_mock(mock: MockProvider, word: &str) -> (Execution, Vec<ExecutionEvent>) {
    let engine = engine_common::engine_with(Arc::new(mock), config()).await;
    let user = UserId::new();
    let prompt_id = prompt(&engine, user).await;
    let mut events = engine.subscribe(user, None);
    let done = engine.execute(user, request(prompt_id, word)).await.unwrap();
    let seen = until_final(&mut events).await;
    engine.shutdown().await;
    (done, seen)
}

#[tokio::test]
async fn a_streaming_mock_publishes_coalesced_partial_events_that_make_the_output() {
    let word = "the quick brown fox jumps over the lazy dog, twice over";
    // "Say " and 55 characters: 15 pieces of 4 over 300 ms, one every 20 ms.
    let mock = MockProvider::new().streaming().with_latency(Duration::from_millis(300));
    let (done, seen) = run_mock(mock, word).await;
    assert_eq!(done.status, ExecutionStatus::Completed);
    let output = done.output.unwrap();
    assert_eq!(output, format!("Say {word}"));
    assert_eq!(
        kinds(&seen),
        [EventKind::Queued, EventKind::Running, EventKind::Partial, EventKind::Completed]
    );
    assert_eq!(deltas(&seen, 1), output, "the deltas concatenate to the output");
    let partials: Vec<&ExecutionEvent> = seen.iter().filter(|e| e.kind == EventKind::Partial).collect();
    assert!(partials.len() >= 3, "{} partial events", partials.len());
    assert!(partials.len() < output.len().div_ceil(4), "coalesced: {} partial events", partials.len());
    assert!(partials.iter().all(|e| e.status == ExecutionStatus::Running && e.attempt == 1));
}

#[tokio::test]
async fn a_fast_stream_is_coalesced_into_few_events() {
    // 64 pieces with no latency: far fewer events than pieces.
    let word = "x".repeat(1_000);
    let (done, seen) = run_mock(MockProvider::new().streaming(), &word).await;
    let partials = seen.iter().filter(|e| e.kind == EventKind::Partial).count();
    assert!((1..=4).contains(&partials), "{partials} partial events for 64 pieces");
    assert_eq!(deltas(&seen, 1), done.output.unwrap());
}

#[tokio::test]
async fn a_stream_cut_midway_is_retried_and_the_follower_sees_both_attempts() {
    let mock = MockProvider::new()
        .streaming()
        .with_latency(Duration::from_millis(200))
        .fail_first(1, MockFault::Connection);
    let (done, seen) = run_mock(mock, "hello streaming world").await;
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(done.attempts, 2);
    let output = done.output.unwrap();
    assert_eq!(
        kinds(&seen),
        [
            EventKind::Queued,
            EventKind::Running,
            EventKind::Partial,
            EventKind::RetryScheduled,
            EventKind::Running,
            EventKind::Partial,
            EventKind::Completed
        ]
    );
    let first = deltas(&seen, 1);
    assert!(!first.is_empty() && first.len() < output.len(), "{first:?}");
    assert!(output.starts_with(&first), "the cut attempt's text is a prefix: {first:?}");
    assert_eq!(deltas(&seen, 2), output, "the retry's deltas make the whole output");
    let retry = seen.iter().find(|e| e.kind == EventKind::RetryScheduled).unwrap();
    assert_eq!(retry.error.as_ref().unwrap().code.as_str(), "connection");
}

#[tokio::test]
async fn a_provider_that_does_not_stream_publishes_no_partial_events() {
    let (done, seen) = run_mock(MockProvider::new(), "plain").await;
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(kinds(&seen), [EventKind::Queued, EventKind::Running, EventKind::Completed]);
}

/// An execution of `model` against a loopback server answering `body`.
async fn run_openai(body: ResponseTemplate, model: &str) -> (Execution, Vec<ExecutionEvent>, Value) {
    let (server, engine) = openai_support::engine_on_fake(body, config()).await;
    let user = UserId::new();
    let spec: PromptSpec = serde_json::from_value(json!({
        "name": "greet",
        "template": "Say hello to {{ word }}",
        "variables": [{"name": "word", "type": "string", "required": true}],
        "model": {"model": model, "provider": "fake"}
    }))
    .unwrap();
    let (prompt, _) = engine.create_prompt(user, spec).await.unwrap();
    let mut events = engine.subscribe(user, None);
    let done = engine
        .execute(user, ExecuteRequest { prompt_id: prompt.id, inputs: inputs("Ada"), ..Default::default() })
        .await
        .unwrap();
    let seen = until_final(&mut events).await;
    engine.shutdown().await;
    let sent: Value = server.received_requests().await.unwrap()[0].body_json().unwrap();
    (done, seen, sent)
}

#[tokio::test]
async fn an_execution_against_a_streaming_server_streams_and_reads_usage_from_the_last_chunk() {
    let pieces = ["Hel", "lo, ", "Ada", "! How ", "are you?"];
    let mut chunks: Vec<Value> = pieces.iter().map(|p| delta_chunk(p)).collect();
    chunks.push(finish_chunk());
    chunks.push(usage_chunk(full_usage()));
    let body = ResponseTemplate::new(200).set_body_raw(sse(&chunks, true), "text/event-stream");
    let (done, seen, sent) = run_openai(body, "gpt-4o-mini").await;

    assert_eq!(sent["stream"], true, "{sent}");
    assert_eq!(sent["stream_options"], json!({"include_usage": true}), "{sent}");
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    let output = done.output.clone().unwrap();
    assert_eq!(output, pieces.concat());
    assert_eq!(
        kinds(&seen),
        [EventKind::Queued, EventKind::Running, EventKind::Partial, EventKind::Completed]
    );
    assert_eq!(deltas(&seen, 1), output);
    let usage = done.metrics.unwrap().token_usage;
    assert_eq!((usage.input, usage.output, usage.cached, usage.reasoning), (120, 45, 64, 20));
    assert!(!usage.estimated);
    assert_eq!(done.finish_reason.as_deref(), Some("stop"));
}

#[tokio::test]
async fn a_stream_without_a_usage_chunk_is_estimated() {
    let chunks = [delta_chunk("Hello"), delta_chunk(" Ada"), finish_chunk()];
    let body = ResponseTemplate::new(200).set_body_raw(sse(&chunks, true), "text/event-stream");
    let (done, seen, _) = run_openai(body, "gpt-4o-mini").await;
    assert_eq!(done.output.as_deref(), Some("Hello Ada"));
    assert_eq!(deltas(&seen, 1), "Hello Ada");
    let usage = done.metrics.unwrap().token_usage;
    assert!(usage.estimated);
    assert_eq!(usage.output, 2);
}
