//! Streamed replies framed as real servers frame them: comments, `data:` without a space,
//! CRLF (and CR) line endings, `[DONE]` in its forms, an error object mid-stream, a stream cut
//! midway, and usage in a chunk with no choices. Several inputs of each kind, against a
//! loopback fake server.
#![allow(clippy::unwrap_used)]

mod openai_support;

use std::sync::Mutex;

use formaops_core::provider::{Completion, LlmProvider, ProviderError, ProviderErrorKind};
use openai_support::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Streams `body` (sent as is, `text/event-stream`) through the provider; returns the result
/// and the partial outputs reported.
async fn stream(body: &str) -> (Result<Completion, ProviderError>, Vec<String>) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body.to_string(), "text/event-stream"))
        .mount(&server)
        .await;
    stream_from(&format!("{}/v1", server.uri())).await
}

async fn stream_from(base: &str) -> (Result<Completion, ProviderError>, Vec<String>) {
    let partials = Mutex::new(Vec::new());
    let result = provider(base)
        .complete_streaming(request("gpt-4o-mini"), &|p| partials.lock().unwrap().push(p.delta))
        .await;
    (result, partials.into_inner().unwrap())
}

fn d(text: &str) -> String {
    delta_chunk(text).to_string()
}

fn fin() -> String {
    finish_chunk().to_string()
}

fn use_(usage: Value) -> String {
    usage_chunk(usage).to_string()
}

/// Asserts the stream read as "Hello" in the pieces "Hel", "lo".
async fn reads_hello(body: &str) {
    let (result, partials) = stream(body).await;
    let completion = result.unwrap_or_else(|e| panic!("{e} for {body:?}"));
    assert_eq!(completion.text, "Hello", "{body:?}");
    assert_eq!(partials, ["Hel", "lo"], "{body:?}");
}

#[tokio::test]
async fn comments_are_skipped() {
    let (a, b, f) = (d("Hel"), d("lo"), fin());
    for body in [
        format!(": keep-alive\n\ndata: {a}\n\n: keep-alive\n\ndata: {b}\n\ndata: {f}\n\ndata: [DONE]\n\n"),
        format!(":\ndata: {a}\n\n:\n:\ndata: {b}\n\ndata: {f}\n\n"),
        format!(
            ": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\ndata: {a}\n\ndata: {b}\n: note inside an event\n\n\
             data: {f}\n\ndata: [DONE]\n\n"
        ),
        format!("data: {a}\n\ndata: {b}\n\ndata: {f}\n\ndata: [DONE]\n\n: trailing comment\n\n"),
    ] {
        reads_hello(&body).await;
    }
}

#[tokio::test]
async fn data_without_a_space_is_read() {
    let (a, b, f) = (d("Hel"), d("lo"), fin());
    for body in [
        format!("data:{a}\n\ndata:{b}\n\ndata:{f}\n\ndata:[DONE]\n\n"),
        format!("data:{a}\n\ndata: {b}\n\ndata:{f}\n\ndata: [DONE]\n\n"),
        format!("data:  {a}\n\ndata:\t{b}\n\ndata: {f}\n\ndata:[DONE]\n\n"),
        format!("event: message\ndata:{a}\n\nid: 2\ndata:{b}\n\nretry: 1000\ndata:{f}\n\ndata:[DONE]\n\n"),
    ] {
        reads_hello(&body).await;
    }
}

#[tokio::test]
async fn crlf_and_cr_line_endings_are_read() {
    let (a, b, f) = (d("Hel"), d("lo"), fin());
    for body in [
        format!("data: {a}\r\n\r\ndata: {b}\r\n\r\ndata: {f}\r\n\r\ndata: [DONE]\r\n\r\n"),
        format!("data: {a}\r\n\r\ndata: {b}\n\ndata: {f}\r\n\r\ndata: [DONE]\n\n"),
        format!(": ping\r\n\r\ndata:{a}\r\n\r\ndata:{b}\r\n\r\ndata:{f}\r\n\r\n"),
        format!("data: {a}\r\rdata: {b}\r\rdata: {f}\r\rdata: [DONE]\r\r"),
    ] {
        reads_hello(&body).await;
    }
}

#[tokio::test]
async fn done_ends_the_stream_in_each_of_its_forms() {
    let (a, b, f) = (d("Hel"), d("lo"), fin());
    for body in [
        // [DONE] without any finish_reason.
        format!("data: {a}\n\ndata: {b}\n\ndata: [DONE]\n\n"),
        // Whatever follows [DONE] is never read.
        format!("data: {a}\n\ndata: {b}\n\ndata: {f}\n\ndata: [DONE]\n\ndata: {{not json\n\n"),
        // The last event without its blank line (the connection closes after a finish_reason).
        format!("data: {a}\n\ndata: {b}\n\ndata: {f}\n\ndata: [DONE]"),
        format!("data: {a}\n\ndata: {b}\n\ndata: {f}\n\ndata: [DONE]\n"),
        // Spaces around the marker.
        format!("data: {a}\n\ndata: {b}\n\ndata:  [DONE] \n\n"),
    ] {
        reads_hello(&body).await;
    }
}

#[tokio::test]
async fn an_error_object_mid_stream_keeps_its_message_and_is_classified() {
    let a = d("Hel");
    let cases = [
        (
            json!({"error": {"message": "Rate limit reached for gpt-4o-mini", "type": "rate_limit_error"}}),
            ProviderErrorKind::RateLimited,
            "Rate limit reached for gpt-4o-mini",
        ),
        (
            json!({"error": {"message": "This model's maximum context length is 8192 tokens",
                "type": "invalid_request_error", "code": "context_length_exceeded"}}),
            ProviderErrorKind::BadRequest,
            "maximum context length is 8192 tokens",
        ),
        (
            json!({"object": "error", "message": "upstream overloaded", "type": "InternalServerError", "code": 500}),
            ProviderErrorKind::ServerError,
            "upstream overloaded",
        ),
        (
            json!({"error": {"message": "Overloaded", "type": "overloaded_error"}}),
            ProviderErrorKind::ServerError,
            "Overloaded",
        ),
        (json!({"error": "model is loading, try later"}), ProviderErrorKind::ServerError, "model is loading"),
        (
            json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                "code": "invalid_api_key"}}),
            ProviderErrorKind::Auth,
            "Incorrect API key provided",
        ),
    ];
    for (error, kind, words) in cases {
        for framing in ["data: ", "event: error\ndata:"] {
            let body = format!("data: {a}\n\n{framing}{error}\n\ndata: [DONE]\n\n");
            let (result, partials) = stream(&body).await;
            let err = result.unwrap_err();
            assert_eq!(err.kind, kind, "{body:?}: {}", err.message);
            assert!(err.message.contains(words), "{}", err.message);
            assert!(err.message.contains("in the stream"), "{}", err.message);
            assert_eq!(err.details.as_ref().unwrap()["partialOutput"], "Hel", "the text so far is kept");
            assert_eq!(partials, ["Hel"]);
        }
    }
    // An error as the first event: no text, no partial output.
    let body = "data: {\"error\": {\"message\": \"server busy\", \"type\": \"server_error\"}}\n\n";
    let (result, partials) = stream(body).await;
    let err = result.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::ServerError);
    assert!(err.details.is_none());
    assert!(partials.is_empty());
}

#[tokio::test]
async fn a_stream_cut_midway_is_a_transient_connection_error() {
    let (a, b) = (d("Hel"), d("lo"));
    for body in [
        // Closed cleanly after some deltas: no finish_reason, no [DONE].
        format!("data: {a}\n\ndata: {b}\n\n"),
        format!("data: {a}\n\ndata: {b}\n\n: keep-alive\n\n"),
        // Closed in the middle of an event.
        format!("data: {a}\n\ndata: {b}\n\ndata: {{\"id\": \"c1\", \"cho"),
        format!("data: {a}\n\ndata: {b}\n\ndata: {}", fin()),
        // Closed before anything came.
        String::new(),
    ] {
        let (result, partials) = stream(&body).await;
        let err = result.unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::Connection, "{body:?}: {}", err.message);
        assert!(err.is_transient());
        assert!(partials.len() <= 2, "{partials:?}");
    }
    // A chunked transfer cut before its last chunk: the socket just closes.
    for events in [vec![a.clone()], vec![a.clone(), b.clone()]] {
        let mut body = String::new();
        for event in &events {
            let event = format!("data: {event}\n\n");
            body.push_str(&format!("{:x}\r\n{event}\r\n", event.len()));
        }
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            .to_string();
        let base = raw_server(head, body.into_bytes()).await;
        let (result, partials) = stream_from(&base).await;
        let err = result.unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::Connection, "{}", err.message);
        assert_eq!(partials.len(), events.len());
    }
}

#[tokio::test]
async fn usage_comes_from_a_chunk_with_no_choices() {
    let (a, b, f) = (d("Hel"), d("lo"), fin());
    let usage = use_(full_usage());
    let with_null_usage = |text: &str| {
        let mut chunk = delta_chunk(text);
        chunk["usage"] = Value::Null;
        chunk.to_string()
    };
    let choices_null = {
        let mut chunk = usage_chunk(full_usage());
        chunk["choices"] = Value::Null;
        chunk.to_string()
    };
    let no_choices =
        json!({"id": "c1", "object": "chat.completion.chunk", "usage": full_usage()}).to_string();
    for body in [
        format!("data: {a}\n\ndata: {b}\n\ndata: {f}\n\ndata: {usage}\n\ndata: [DONE]\n\n"),
        // OpenAI with include_usage: `usage: null` on every chunk until the last.
        format!(
            "data: {}\n\ndata: {}\n\ndata: {f}\n\ndata: {usage}\n\ndata: [DONE]\n\n",
            with_null_usage("Hel"),
            with_null_usage("lo")
        ),
        format!("data: {a}\n\ndata: {b}\n\ndata: {f}\n\ndata: {choices_null}\n\ndata: [DONE]\n\n"),
        format!("data: {a}\n\ndata: {b}\n\ndata: {f}\n\ndata: {no_choices}\n\n"),
        // Usage on the finish chunk itself.
        format!("data: {a}\n\ndata: {b}\n\ndata: {}\n\ndata: [DONE]\n\n", {
            let mut chunk = finish_chunk();
            chunk["usage"] = full_usage();
            chunk
        }),
    ] {
        let (result, partials) = stream(&body).await;
        let completion = result.unwrap_or_else(|e| panic!("{e} for {body:?}"));
        assert_eq!(completion.text, "Hello");
        assert_eq!(partials, ["Hel", "lo"]);
        let u = completion.usage;
        assert_eq!(
            (u.input, u.output, u.total, u.cached, u.reasoning, u.estimated),
            (120, 45, 165, 64, 20, false)
        );
    }
    // Servers reporting running totals on every chunk: the last one counts.
    let running = |n: u64| {
        let mut chunk = delta_chunk("x");
        chunk["usage"] = json!({"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n});
        chunk.to_string()
    };
    let body = format!(
        "data: {}\n\ndata: {}\n\ndata: {}\n\ndata: {f}\n\ndata: [DONE]\n\n",
        running(1),
        running(2),
        running(3)
    );
    let (result, _) = stream(&body).await;
    let u = result.unwrap().usage;
    assert_eq!((u.input, u.output, u.estimated), (10, 3, false));
    // A usage chunk whose counts are null: estimated, and marked so.
    let body = format!(
        "data: {a}\n\ndata: {b}\n\ndata: {f}\n\ndata: {}\n\ndata: [DONE]\n\n",
        use_(json!({"prompt_tokens": null, "completion_tokens": null, "total_tokens": null}))
    );
    let (result, _) = stream(&body).await;
    let u = result.unwrap().usage;
    assert!(u.estimated);
    assert!(u.input > 0 && u.output > 0, "{u:?}");
}

#[tokio::test]
async fn the_content_type_decides_how_a_reply_to_a_stream_request_is_read() {
    let body = format!("data: {}\n\ndata: {}\n\ndata: {}\n\ndata: [DONE]\n\n", d("Hel"), d("lo"), fin());
    // Events under another content type (a proxy rewrote it) are still events.
    for mime in ["text/plain", "application/octet-stream"] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body.clone(), mime))
            .mount(&server)
            .await;
        let (result, partials) = stream_from(&format!("{}/v1", server.uri())).await;
        assert_eq!(result.unwrap().text, "Hello", "{mime}");
        assert_eq!(partials, ["Hel", "lo"], "{mime}");
    }
    // Neither events nor JSON: an unreadable reply, permanent, quoting what came back.
    for (text, mime) in [("<html>oops</html>", "text/html"), ("upstream said no", "text/plain")] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(text, mime))
            .mount(&server)
            .await;
        let (result, partials) = stream_from(&format!("{}/v1", server.uri())).await;
        let err = result.unwrap_err();
        assert_eq!(err.kind, ProviderErrorKind::MalformedResponse, "{}", err.message);
        assert!(!err.is_transient());
        assert!(err.message.contains(text), "{}", err.message);
        assert!(partials.is_empty());
    }
}
