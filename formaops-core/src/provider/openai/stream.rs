//! Reading a streamed reply: server-sent chat-completion chunks, tolerant of the framing real
//! servers send (comments, `data:` without a space, CRLF, `[DONE]`), an error mid-stream (its
//! message kept, with the text received so far), and a cut stream (transient). A server that
//! ignores `stream: true` and answers one JSON document is read whole.

use eventsource_stream::{EventStreamError, Eventsource};
use futures::StreamExt;
use reqwest::header;
use serde_json::json;
use tokio::time::Instant;

use super::wire::{ChatChunk, ContentText};
use super::{OpenAiProvider, ReadError, ReplyParts};
use crate::provider::{Completion, CompletionRequest, PartialOutput, ProviderError, ProviderErrorKind};

impl OpenAiProvider {
    pub(super) async fn stream_inner(
        &self,
        request: &CompletionRequest,
        on_partial: &(dyn Fn(PartialOutput) + Send + Sync),
        started: Instant,
    ) -> Result<Completion, ProviderError> {
        let body = self.body(request, true)?;
        let mut response = self.send(body, true).await?;

        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let cap = self.max_response_bytes;
        if content_type.starts_with("text/event-stream") {
            let mut seen = 0usize;
            let bytes = response.bytes_stream().map(move |chunk| match chunk {
                Ok(bytes) => {
                    seen = seen.saturating_add(bytes.len());
                    if seen > cap { Err(ReadError::TooLarge) } else { Ok(bytes) }
                }
                Err(e) => Err(ReadError::Transport(e)),
            });
            return self.read_events(bytes, request, on_partial, started).await;
        }
        // A server that ignores `stream: true` answers with one JSON document; one that
        // streams under another content type (or none) is read whole, then as events.
        let body = self.read_reply(&mut response).await?;
        let looks_like_events = {
            let start = body.trim_ascii_start();
            [b"data:".as_slice(), b":", b"event:", b"id:", b"retry:"].iter().any(|p| start.starts_with(p))
        };
        if looks_like_events && !content_type.contains("json") {
            let bytes = futures::stream::iter([Ok::<_, ReadError>(body)]);
            return self.read_events(bytes, request, on_partial, started).await;
        }
        let completion = self.parse_reply(&body, request, started)?;
        on_partial(PartialOutput { delta: completion.text.clone() });
        Ok(completion)
    }

    /// Reads a stream of server-sent chat-completion chunks (capped by the byte stream).
    async fn read_events<B, S>(
        &self,
        bytes: S,
        request: &CompletionRequest,
        on_partial: &(dyn Fn(PartialOutput) + Send + Sync),
        started: Instant,
    ) -> Result<Completion, ProviderError>
    where
        B: AsRef<[u8]>,
        S: futures::Stream<Item = Result<B, ReadError>> + Send,
    {
        let cap = self.max_response_bytes;
        let events = bytes.eventsource();
        let mut events = std::pin::pin!(events);

        let mut parts = ReplyParts::default();
        let mut finished = false;
        let mut done = false;
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(EventStreamError::Transport(ReadError::TooLarge)) => {
                    return Err(self.malformed(format!("the stream exceeded the {cap} byte limit")));
                }
                Err(EventStreamError::Transport(ReadError::Transport(e))) => {
                    return Err(self.transport_error("reading the stream", e));
                }
                Err(EventStreamError::Utf8(e)) => {
                    return Err(self.malformed(format!("the stream is not UTF-8: {e}")));
                }
                Err(EventStreamError::Parser(e)) => {
                    return Err(self.malformed(format!("the stream is not server-sent events: {e}")));
                }
            };
            let data = event.data.trim();
            if data == "[DONE]" {
                done = true;
                break;
            }
            if data.is_empty() {
                continue;
            }
            let mut chunk: ChatChunk = serde_json::from_str(data).map_err(|e| {
                self.unreadable(
                    format_args!("a stream event is not a chat-completions chunk ({e})"),
                    data.as_bytes(),
                )
            })?;
            if let Some(error) = chunk.error_body() {
                let mut error = self.error_in_reply(&error, "in the stream");
                if !parts.content.text.is_empty() {
                    let sent = self.detail(&parts.content.text);
                    error = error.with_details(json!({ "partialOutput": sent }));
                }
                return Err(error);
            }
            if chunk.model.is_some() {
                parts.model = chunk.model;
            }
            if let Some(choice) = chunk.choices.and_then(|c| c.into_iter().next()) {
                if let Some(delta) = choice.delta {
                    if let Some(content) = delta.content {
                        let mut piece = ContentText::default();
                        piece.add(content);
                        if !piece.text.is_empty() {
                            parts.content.text.push_str(&piece.text);
                            on_partial(PartialOutput { delta: piece.text });
                        }
                        parts.content.reasoning.push_str(&piece.reasoning);
                    }
                    for thought in [delta.reasoning_content, delta.reasoning].into_iter().flatten() {
                        parts.content.reasoning.push_str(&thought);
                    }
                    if let Some(r) = delta.refusal {
                        parts.refusal.push_str(&r);
                    }
                    parts.add_tool_calls(delta.tool_calls);
                    parts.add_tool_calls(delta.function_call);
                }
                if choice.finish_reason.is_some() {
                    finished = true;
                    parts.finish_reason = choice.finish_reason;
                }
            }
            if chunk.usage.is_some() {
                parts.usage = chunk.usage;
            }
        }
        if !done && !finished {
            return Err(ProviderError::new(
                ProviderErrorKind::Connection,
                format!(
                    "{}: the stream ended before the reply was complete (no finish_reason or [DONE]) \
                     after {} characters",
                    self.name,
                    parts.content.text.chars().count()
                ),
            ));
        }
        self.judge(parts, request, started)
    }
}
