//! The OpenAI-compatible provider: `POST {base_url}/chat/completions` over one pooled
//! reqwest client, for OpenAI itself and for compatible servers (vLLM, llama.cpp server,
//! Ollama's `/v1`, gateways).
//!
//! - Parameters map one to one: `temperature`, `top_p`, `max_completion_tokens`, `stop`,
//!   `seed`; a [`ResponseSchema`](crate::provider::ResponseSchema) becomes
//!   `response_format: {type: "json_schema", json_schema: {name, schema, strict}}`.
//! - Usage is read with cached and reasoning tokens; when the server sends none it is
//!   estimated with tiktoken (`o200k_base`, or `cl100k_base` for models known to use it) and
//!   marked `estimated`.
//! - Errors are classified: 408, 409, 429, 5xx, timeouts, connection failures and cut
//!   streams are transient, with `Retry-After` / `retry-after-ms` captured; other 4xx are
//!   permanent with the server's message preserved. An error object sent with HTTP 200 is
//!   classified by its `type` / `code`. A reply that cannot be read is permanent, quoting its
//!   start. The provider never retries: the engine does.
//! - Replies are read leniently (null counts, content parts, reasoning apart from the
//!   answer), and judged: a refusal, a content-filter stop, tool calls only or no answer text
//!   are permanent errors of their own kind, with what came back in the error's details.
//! - The API key lives in a [`Secret`]: redacted in `Debug`, marked sensitive in the HTTP
//!   client, and scrubbed from any error message a server echoes it in (when it looks like a
//!   secret: placeholders like `x` are left alone so server words stay intact).
//! - Every call ends by the request's deadline (or the configured timeout, if sooner), and
//!   reads at most [`OpenAiConfig::max_response_bytes`] of any reply.
//!
//! ```no_run
//! use formaops_core::provider::config::Secret;
//! use formaops_core::provider::openai::{OpenAiConfig, OpenAiProvider};
//!
//! let mut config = OpenAiConfig::new("http://127.0.0.1:11434/v1"); // Ollama, no key
//! config.name = "local".to_string();
//! let local = OpenAiProvider::new(config)?;
//!
//! let mut config = OpenAiConfig::new("https://api.openai.com/v1");
//! config.api_key = std::env::var("OPENAI_API_KEY").ok().map(Secret::new);
//! let openai = OpenAiProvider::new(config)?;
//! # Ok::<(), formaops_core::provider::config::ProviderConfigError>(())
//! ```

mod estimate;
mod status;
mod stream;
mod wire;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Url;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;

use super::error::ProviderConfigError;
use super::secret::Secret;
use super::{
    Completion, CompletionRequest, LlmProvider, PartialOutput, ProviderError, ProviderErrorKind,
    StructuredOutput,
};
use serde_json::{Value, json};
use status::{classify_status, classify_status_code, retry_after};
use wire::{ChatRequest, ChatResponse, ContentText, ErrorBody, ErrorEnvelope, Usage};

/// Default upper bound of one call (the request's deadline may be shorter).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Default bound on establishing a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle connection is kept for reuse: less than the 5-second keep-alive of
/// llama.cpp's `llama-server` (cpp-httplib) and of uvicorn (vLLM, llama-cpp-python's server).
/// A connection kept longer may be closed by the server just as a request is written on it,
/// which fails that attempt with "connection closed before message completed" (seen against
/// `llama-server` in the real-model run; see RELIABILITY.md). Busy connections never idle
/// this long; an idle one costs a new connection (and TLS handshake) on the next call.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// Default cap on the bytes read from one reply (streamed or not).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// Cap on the bytes read from an error reply.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// Longest error message kept from a server, in characters.
const MAX_ERROR_MESSAGE_CHARS: usize = 2_000;
/// Longest excerpt of an unreadable reply kept in the error, in characters.
const MAX_EXCERPT_CHARS: usize = 300;
/// Longest refusal, reasoning or partial output kept in an error's details, in characters.
const MAX_DETAIL_CHARS: usize = 4_000;
/// Shortest API key scrubbed from messages. Shorter keys (`x`, `none`, `EMPTY`: placeholders
/// local servers accept) are no secret, and replacing them would mangle the server's words.
pub const MIN_REDACTED_KEY_CHARS: usize = 8;
/// Longest `Retry-After` honoured; larger values are clamped to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3_600);

/// Configuration of one OpenAI-compatible endpoint.
#[derive(Clone)]
pub struct OpenAiConfig {
    /// Name for logs and error messages (`openai`, `local`).
    pub name: String,
    /// Base URL; `/chat/completions` is appended to its path (a query string is kept).
    pub base_url: String,
    /// Sent as `Authorization: Bearer ...`. `None` sends no `Authorization` header (local
    /// servers).
    pub api_key: Option<Secret>,
    /// Sent as `OpenAI-Organization`.
    pub organization: Option<String>,
    /// Sent as `OpenAI-Project`.
    pub project: Option<String>,
    /// Upper bound of one call; the request's deadline wins when sooner.
    pub timeout: Duration,
    /// Upper bound on establishing a connection.
    pub connect_timeout: Duration,
    /// Headers sent with every request (they may override the ones above). Values are
    /// treated as secrets: never shown in `Debug`, marked sensitive in the client.
    pub extra_headers: Vec<(String, String)>,
    /// Whether `complete_streaming` sends `stream: true`. When false it makes an ordinary
    /// call and reports the whole text once.
    pub stream: bool,
    /// Most bytes read from one reply.
    pub max_response_bytes: usize,
    /// Which structured-output form the server accepts (default `json_schema`).
    pub structured_output: StructuredOutput,
}

impl OpenAiConfig {
    /// A configuration for `base_url` with no key and default limits.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            name: "openai".to_string(),
            base_url: base_url.into(),
            api_key: None,
            organization: None,
            project: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            extra_headers: Vec::new(),
            stream: true,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            structured_output: StructuredOutput::default(),
        }
    }
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.extra_headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("OpenAiConfig")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .field("organization", &self.organization)
            .field("project", &self.project)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("extra_headers", &header_names)
            .field("stream", &self.stream)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("structured_output", &self.structured_output)
            .finish()
    }
}

/// An [`LlmProvider`] for any OpenAI-compatible chat-completions endpoint.
pub struct OpenAiProvider {
    name: String,
    endpoint: Url,
    client: reqwest::Client,
    /// Kept only to scrub it from messages a server might echo it in.
    api_key: Option<Secret>,
    timeout: Duration,
    stream: bool,
    max_response_bytes: usize,
    structured_output: StructuredOutput,
}

impl fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiProvider")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint.as_str())
            .field("api_key", &self.api_key)
            .field("timeout", &self.timeout)
            .field("stream", &self.stream)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish_non_exhaustive()
    }
}

impl OpenAiProvider {
    /// Builds the provider and its connection pool (no request is sent).
    ///
    /// # Errors
    /// A [`ProviderConfigError`] naming the provider and the field: `base_url` (not an
    /// http or https URL with a host, or carrying credentials), `timeout` or `max_response_bytes` (zero), `api_key`,
    /// `openai-organization`, `openai-project` or `extra_headers` (not sendable in an HTTP
    /// header), `client` (the HTTP client cannot be built).
    pub fn new(config: OpenAiConfig) -> Result<Self, ProviderConfigError> {
        let name = config.name.clone();
        let err = |field: &str, message: String| ProviderConfigError::new(name.clone(), field, message);

        let endpoint = chat_completions_url(&config.base_url).map_err(|m| err("base_url", m))?;
        if config.timeout.is_zero() {
            return Err(err("timeout", "must be greater than zero".to_string()));
        }
        if config.max_response_bytes == 0 {
            return Err(err("max_response_bytes", "must be greater than zero".to_string()));
        }

        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = &config.api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
                err("api_key", "contains characters that cannot be sent in an HTTP header".to_string())
            })?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        for (header_name, value) in
            [("openai-organization", &config.organization), ("openai-project", &config.project)]
        {
            if let Some(value) = value {
                let value = HeaderValue::from_str(value).map_err(|_| {
                    err(header_name, "contains characters that cannot be sent in an HTTP header".to_string())
                })?;
                headers.insert(HeaderName::from_static(header_name), value);
            }
        }
        for (key, value) in &config.extra_headers {
            let header_name = HeaderName::from_bytes(key.as_bytes())
                .map_err(|_| err("extra_headers", format!("{key:?} is not a valid header name")))?;
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                err("extra_headers", format!("the value of {key} cannot be sent in an HTTP header"))
            })?;
            value.set_sensitive(true);
            headers.insert(header_name, value);
        }

        let client = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("formaops/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| err("client", format!("cannot build the HTTP client: {e}")))?;

        Ok(Self {
            name: config.name,
            endpoint,
            client,
            api_key: config.api_key,
            timeout: config.timeout,
            stream: config.stream,
            max_response_bytes: config.max_response_bytes,
            structured_output: config.structured_output,
        })
    }

    /// The URL calls are posted to.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// The instant this call must end by: the request's deadline or the configured timeout.
    fn deadline(&self, request: &CompletionRequest, started: Instant) -> Result<Instant, ProviderError> {
        let deadline = request.deadline.min(started + self.timeout);
        if deadline <= started {
            return Err(ProviderError::new(
                ProviderErrorKind::Timeout,
                format!("{}: the deadline passed before the call started", self.name),
            ));
        }
        Ok(deadline)
    }

    fn timeout_error(&self, started: Instant, deadline: Instant) -> ProviderError {
        ProviderError::new(
            ProviderErrorKind::Timeout,
            format!(
                "{}: no complete reply within {} ms",
                self.name,
                deadline.saturating_duration_since(started).as_millis()
            ),
        )
    }

    fn body(&self, request: &CompletionRequest, stream: bool) -> Result<Vec<u8>, ProviderError> {
        serde_json::to_vec(&ChatRequest::new(request, stream, self.structured_output)).map_err(|e| {
            ProviderError::new(ProviderErrorKind::BadRequest, format!("cannot encode the request: {e}"))
        })
    }

    /// Sends the request and turns any non-2xx status into a classified error.
    async fn send(&self, body: Vec<u8>, stream: bool) -> Result<reqwest::Response, ProviderError> {
        let accept = if stream { "text/event-stream" } else { "application/json" };
        let response = self
            .client
            .post(self.endpoint.clone())
            .header(header::ACCEPT, accept)
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error("sending the request", e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        Err(self.status_error(response).await)
    }

    async fn status_error(&self, mut response: reqwest::Response) -> ProviderError {
        let status = response.status();
        let kind = classify_status(status);
        let retry_after = if kind.is_transient() { retry_after(response.headers()) } else { None };
        // The status decides the error; a body that cannot be read only loses the detail.
        let body = read_capped(&mut response, MAX_ERROR_BODY_BYTES).await.unwrap_or_default();
        let detail = match serde_json::from_slice::<ErrorEnvelope>(&body) {
            Ok(envelope) => envelope.error.describe(),
            Err(_) if body.is_empty() => "(empty body)".to_string(),
            Err(_) => String::from_utf8_lossy(&body).into_owned(),
        };
        let message = format!("{} answered HTTP {}: {}", self.name, status.as_u16(), detail);
        ProviderError::new(kind, self.sanitize(message))
            .with_status(status.as_u16())
            .with_retry_after(retry_after)
    }

    fn transport_error(&self, phase: &str, error: reqwest::Error) -> ProviderError {
        let kind =
            if error.is_timeout() { ProviderErrorKind::Timeout } else { ProviderErrorKind::Connection };
        let error = error.without_url();
        let mut message = format!("{}: {phase}: {error}", self.name);
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        ProviderError::new(kind, self.sanitize(message))
    }

    /// Removes the API key wherever a server or a library echoed it, drops control
    /// characters and bounds the length.
    fn sanitize(&self, message: String) -> String {
        let mut message = match &self.api_key {
            Some(key) if is_secret_looking(key.expose()) => message.replace(key.expose(), "[REDACTED]"),
            _ => message,
        };
        if message.chars().any(|c| c.is_control()) {
            message = message.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        }
        if let Some((cut, _)) = message.char_indices().nth(MAX_ERROR_MESSAGE_CHARS) {
            message.truncate(cut);
            message.push_str("...");
        }
        message
    }

    fn malformed(&self, what: impl fmt::Display) -> ProviderError {
        ProviderError::new(
            ProviderErrorKind::MalformedResponse,
            self.sanitize(format!("{}: {what}", self.name)),
        )
    }

    /// A reply that cannot be read: permanent, with an excerpt of what came back.
    fn unreadable(&self, what: impl fmt::Display, body: &[u8]) -> ProviderError {
        let text = String::from_utf8_lossy(body);
        let excerpt = truncate_chars(text.trim(), MAX_EXCERPT_CHARS);
        let shown = if excerpt.is_empty() { "(empty body)".to_string() } else { excerpt.clone() };
        self.malformed(format!("{what}; the reply began: {shown}"))
            .with_details(json!({ "excerpt": self.sanitize(excerpt) }))
    }

    /// A string kept in an error's details: the key scrubbed, the length bounded.
    fn detail(&self, text: &str) -> String {
        let text = match &self.api_key {
            Some(key) if is_secret_looking(key.expose()) => text.replace(key.expose(), "[REDACTED]"),
            _ => text.to_string(),
        };
        truncate_chars(&text, MAX_DETAIL_CHARS)
    }

    /// An error object the server sent with a success status (HTTP 200, or inside a
    /// stream): its message kept, classified by its `type` / `code`.
    fn error_in_reply(&self, error: &ErrorBody, where_: &str) -> ProviderError {
        let message = format!("{} sent an error {where_}: {}", self.name, error.describe());
        ProviderError::new(error.classify(), self.sanitize(message))
    }

    /// Parses a non-streamed reply into a completion.
    fn parse_reply(
        &self,
        body: &[u8],
        request: &CompletionRequest,
        started: Instant,
    ) -> Result<Completion, ProviderError> {
        let mut reply: ChatResponse = serde_json::from_slice(body).map_err(|e| {
            if e.is_eof() && !body.trim_ascii().is_empty() {
                // JSON that stops midway: the transfer was cut, not a reply the server would
                // send again, so it is a connection fault and tried again.
                let mut cut = self.unreadable(format_args!("the reply's JSON ended midway ({e})"), body);
                cut.kind = ProviderErrorKind::Connection;
                return cut;
            }
            self.unreadable(format_args!("the reply is not chat-completions JSON ({e})"), body)
        })?;
        if let Some(error) = reply.error_body() {
            return Err(self.error_in_reply(&error, "with HTTP 200"));
        }
        let Some(choice) = reply.choices.take().and_then(|c| c.into_iter().next()) else {
            return Err(self.unreadable("the reply has no choices", body));
        };
        let Some(message) = choice.message else {
            return Err(self.unreadable("the reply's choice has no message", body));
        };
        let mut parts = ReplyParts {
            finish_reason: choice.finish_reason,
            model: reply.model,
            usage: reply.usage,
            ..ReplyParts::default()
        };
        if let Some(content) = message.content {
            parts.content.add(content);
        }
        for thought in [message.reasoning_content, message.reasoning].into_iter().flatten() {
            parts.content.reasoning.push_str(&thought);
        }
        parts.refusal = message.refusal.unwrap_or_default();
        parts.add_tool_calls(message.tool_calls);
        parts.add_tool_calls(message.function_call);
        self.judge(parts, request, started)
    }

    /// Turns what a reply carried into a completion, or into the error that tells a bad
    /// answer apart from a good one: a content-filter stop, a refusal, tool calls only, or no
    /// answer text are permanent errors of their own kind, never an empty success.
    fn judge(
        &self,
        parts: ReplyParts,
        request: &CompletionRequest,
        started: Instant,
    ) -> Result<Completion, ProviderError> {
        let ReplyParts { content, refusal, tool_calls, finish_reason, model, usage } = parts;
        let ContentText { text, reasoning } = content;
        let finish = finish_reason.as_deref();
        let fail = |kind: ProviderErrorKind, message: String, mut details: serde_json::Map<String, Value>| {
            if let Some(reason) = finish {
                details.insert("finishReason".to_string(), Value::String(reason.to_string()));
            }
            Err(ProviderError::new(kind, self.sanitize(format!("{}: {message}", self.name)))
                .with_details(Value::Object(details))
                .with_finish_reason(finish_reason.clone()))
        };
        let answered = !text.trim().is_empty();
        let mut details = serde_json::Map::new();
        if !text.is_empty() {
            details.insert("partialOutput".to_string(), Value::String(self.detail(&text)));
        }
        if finish == Some("content_filter") {
            return fail(
                ProviderErrorKind::ContentFiltered,
                "the provider's content filter stopped the output (finish_reason \"content_filter\")"
                    .to_string(),
                details,
            );
        }
        if !refusal.trim().is_empty() {
            details.insert("refusal".to_string(), Value::String(self.detail(&refusal)));
            return fail(ProviderErrorKind::Refused, format!("the model refused: {refusal}"), details);
        }
        let tool_finish = matches!(finish, Some("tool_calls" | "function_call"));
        if !answered && (!tool_calls.is_empty() || tool_finish) {
            let names: Vec<&str> = tool_calls
                .iter()
                .filter_map(|c| c.pointer("/function/name").or_else(|| c.get("name")).and_then(Value::as_str))
                .collect();
            let message = format!(
                "the model answered only with {} tool call(s){} and no text",
                tool_calls.len(),
                if names.is_empty() { String::new() } else { format!(" ({})", names.join(", ")) }
            );
            details.insert("toolCalls".to_string(), Value::Array(tool_calls));
            return fail(ProviderErrorKind::ToolCallsOnly, message, details);
        }
        if !answered {
            let why = match (reasoning.trim().is_empty(), finish) {
                (false, Some("length")) => "the model spent its token limit on reasoning and gave no answer \
                     (finish_reason \"length\"; raise maxCompletionTokens)"
                    .to_string(),
                (false, _) => "the model gave only reasoning and no answer".to_string(),
                (true, Some(reason)) => format!("the reply has no answer text (finish_reason {reason:?})"),
                (true, None) => "the reply has no answer text".to_string(),
            };
            if !reasoning.is_empty() {
                details.insert("reasoning".to_string(), Value::String(self.detail(&reasoning)));
            }
            return fail(ProviderErrorKind::EmptyOutput, why, details);
        }
        let usage = match usage.and_then(Usage::into_token_usage) {
            Some(usage) => usage,
            None => estimate::estimate_usage(request, &format!("{reasoning}{text}")),
        };
        Ok(Completion {
            text,
            usage,
            latency: started.elapsed(),
            model,
            finish_reason,
            reasoning: (!reasoning.is_empty()).then_some(reasoning),
        })
    }

    async fn complete_inner(
        &self,
        request: &CompletionRequest,
        started: Instant,
    ) -> Result<Completion, ProviderError> {
        let body = self.body(request, false)?;
        let mut response = self.send(body, false).await?;
        let body = self.read_reply(&mut response).await?;
        self.parse_reply(&body, request, started)
    }

    async fn read_reply(&self, response: &mut reqwest::Response) -> Result<Vec<u8>, ProviderError> {
        read_capped(response, self.max_response_bytes).await.map_err(|e| match e {
            ReadError::TooLarge => {
                self.malformed(format!("the reply is larger than the {} byte limit", self.max_response_bytes))
            }
            ReadError::Transport(e) => self.transport_error("reading the reply", e),
        })
    }

    fn log_outcome(&self, request: &CompletionRequest, result: &Result<Completion, ProviderError>) {
        match result {
            Ok(c) => tracing::debug!(
                provider = %self.name,
                gen_ai.request.model = %request.model,
                gen_ai.usage.input_tokens = c.usage.input,
                gen_ai.usage.output_tokens = c.usage.output,
                estimated = c.usage.estimated,
                latency_ms = c.latency.as_millis() as u64,
                "completion"
            ),
            Err(e) => tracing::debug!(
                provider = %self.name,
                gen_ai.request.model = %request.model,
                kind = e.kind.as_str(),
                status = e.status,
                error = %e.message,
                "completion failed"
            ),
        }
    }
}

#[async_trait]
impl LlmProvider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    /// True unless the provider's `stream` setting is off.
    fn streams(&self) -> bool {
        self.stream
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion, ProviderError> {
        let started = Instant::now();
        let deadline = self.deadline(&request, started)?;
        let result = match tokio::time::timeout_at(deadline, self.complete_inner(&request, started)).await {
            Ok(result) => result,
            Err(_) => Err(self.timeout_error(started, deadline)),
        };
        self.log_outcome(&request, &result);
        result
    }

    async fn complete_streaming(
        &self,
        request: CompletionRequest,
        on_partial: &(dyn Fn(PartialOutput) + Send + Sync),
    ) -> Result<Completion, ProviderError> {
        if !self.stream {
            let completion = self.complete(request).await?;
            on_partial(PartialOutput { delta: completion.text.clone() });
            return Ok(completion);
        }
        let started = Instant::now();
        let deadline = self.deadline(&request, started)?;
        let result =
            match tokio::time::timeout_at(deadline, self.stream_inner(&request, on_partial, started)).await {
                Ok(result) => result,
                Err(_) => Err(self.timeout_error(started, deadline)),
            };
        self.log_outcome(&request, &result);
        result
    }
}

/// `{base_url}/chat/completions`, keeping any query string.
fn chat_completions_url(base_url: &str) -> Result<Url, String> {
    let mut url = Url::parse(base_url.trim()).map_err(|e| format!("{base_url:?} is not a URL: {e}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!("scheme {:?} is not supported; use http or https", url.scheme()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; use api_key or extra_headers".to_string());
    }
    if url.host().is_none() {
        return Err("has no host".to_string());
    }
    url.set_fragment(None);
    let path = format!("{}/chat/completions", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url)
}

/// What one reply carried, gathered from a whole reply or from a stream's chunks.
#[derive(Debug, Default)]
struct ReplyParts {
    content: ContentText,
    refusal: String,
    tool_calls: Vec<Value>,
    finish_reason: Option<String>,
    model: Option<String>,
    usage: Option<Usage>,
}

impl ReplyParts {
    /// Adds `tool_calls` (an array) or a `function_call` (one object); `null` adds nothing.
    fn add_tool_calls(&mut self, calls: Option<Value>) {
        match calls {
            Some(Value::Array(calls)) => self.tool_calls.extend(calls),
            Some(Value::Null) | None => {}
            Some(call) => self.tool_calls.push(call),
        }
    }
}

/// Whether an API key is a real secret worth scrubbing from messages: at least
/// [`MIN_REDACTED_KEY_CHARS`] characters with a digit or an upper-case letter (every issued
/// key has them). Placeholders (`x`, `EMPTY`, `sk-no-key-required`) are not: replacing them
/// would only mangle the server's words. The key is never sent anywhere but the
/// `Authorization` header, which is marked sensitive either way.
fn is_secret_looking(key: &str) -> bool {
    key.chars().count() >= MIN_REDACTED_KEY_CHARS
        && key.chars().any(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
}

/// The first `max` characters of `text`, with `...` when cut.
fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

#[derive(Debug)]
enum ReadError {
    TooLarge,
    Transport(reqwest::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge => f.write_str("the reply is too large"),
            Self::Transport(e) => write!(f, "{e}"),
        }
    }
}

/// Reads the whole body, failing as soon as it exceeds `cap` bytes.
async fn read_capped(response: &mut reqwest::Response, cap: usize) -> Result<Vec<u8>, ReadError> {
    if response.content_length().is_some_and(|len| len > cap as u64) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::with_capacity(response.content_length().map_or(8 * 1024, |n| n as usize));
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > cap {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::status::retry_after_at;
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn retry_after_reads_ms_seconds_and_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z").unwrap().to_utc();
        assert_eq!(retry_after_at(&headers(&[("retry-after", "7")]), now), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after_at(&headers(&[("retry-after", "1.5")]), now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after_at(&headers(&[("retry-after-ms", "250"), ("retry-after", "9")]), now),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_after_at(&headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:42 GMT")]), now),
            Some(Duration::from_secs(42))
        );
        // A date in the past means "now".
        assert_eq!(
            retry_after_at(&headers(&[("retry-after", "Wed, 21 Oct 2015 07:00:00 GMT")]), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after_at(&headers(&[("retry-after", "99999999999")]), now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after_at(&headers(&[("retry-after", "-3")]), now), None);
        assert_eq!(retry_after_at(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after_at(&headers(&[("retry-after-ms", "NaN")]), now), None);
        assert_eq!(retry_after_at(&HeaderMap::new(), now), None);
    }

    #[test]
    fn statuses_are_classified() {
        for (code, kind) in [
            (429, ProviderErrorKind::RateLimited),
            (408, ProviderErrorKind::ServerError),
            (409, ProviderErrorKind::ServerError),
            (500, ProviderErrorKind::ServerError),
            (503, ProviderErrorKind::ServerError),
            (401, ProviderErrorKind::Auth),
            (403, ProviderErrorKind::Auth),
            (400, ProviderErrorKind::BadRequest),
            (404, ProviderErrorKind::BadRequest),
            (422, ProviderErrorKind::BadRequest),
            (302, ProviderErrorKind::BadRequest),
        ] {
            assert_eq!(classify_status(reqwest::StatusCode::from_u16(code).unwrap()), kind, "HTTP {code}");
        }
    }

    #[test]
    fn endpoint_appends_path_and_keeps_query() {
        assert_eq!(
            chat_completions_url("https://api.openai.com/v1").unwrap().as_str(),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            chat_completions_url("http://127.0.0.1:8000/v1/").unwrap().as_str(),
            "http://127.0.0.1:8000/v1/chat/completions"
        );
        assert_eq!(
            chat_completions_url("https://gw.example/openai/deployments/x?api-version=2024-10-21")
                .unwrap()
                .as_str(),
            "https://gw.example/openai/deployments/x/chat/completions?api-version=2024-10-21"
        );
        assert!(chat_completions_url("ftp://example.com").is_err());
        assert!(chat_completions_url("not a url").is_err());
        assert!(chat_completions_url("https://user:pw@example.com/v1").is_err());
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let mut config = OpenAiConfig::new("https://api.openai.com/v1");
        config.api_key = Some(Secret::new("sk-very-secret-key"));
        config.extra_headers = vec![("api-key".to_string(), "azure-secret-value".to_string())];
        let debug = format!("{config:?}");
        assert!(!debug.contains("sk-very-secret-key"), "{debug}");
        assert!(!debug.contains("azure-secret-value"), "{debug}");
        assert!(debug.contains("api-key"), "{debug}");
        let provider = OpenAiProvider::new(config).unwrap();
        let debug = format!("{provider:?}");
        assert!(!debug.contains("sk-very-secret-key"), "{debug}");
        assert!(debug.contains("REDACTED"), "{debug}");
    }

    #[test]
    fn invalid_configuration_is_named() {
        let mut config = OpenAiConfig::new("http://localhost:1/v1");
        config.extra_headers = vec![("bad header".to_string(), "x".to_string())];
        let err = OpenAiProvider::new(config).unwrap_err();
        assert_eq!(err.field, "extra_headers");
        let mut config = OpenAiConfig::new("http://localhost:1/v1");
        config.api_key = Some(Secret::new("line\nbreak"));
        let err = OpenAiProvider::new(config).unwrap_err();
        assert_eq!(err.field, "api_key");
        assert!(!err.to_string().contains("line"), "{err}");
    }

    #[test]
    fn sanitize_scrubs_the_key_and_bounds_length() {
        let mut config = OpenAiConfig::new("http://localhost:1/v1");
        config.api_key = Some(Secret::new("sk-abc123"));
        let provider = OpenAiProvider::new(config).unwrap();
        let clean = provider.sanitize("bad key sk-abc123\nagain sk-abc123".to_string());
        assert_eq!(clean, "bad key [REDACTED] again [REDACTED]");
        let long = provider.sanitize("é".repeat(5_000));
        assert_eq!(long.chars().count(), MAX_ERROR_MESSAGE_CHARS + 3);
    }
}
