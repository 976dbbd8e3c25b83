//! The OpenAI chat-completions wire format: request bodies, replies, stream chunks, errors.
//!
//! Only the fields FormaOps uses are modelled; unknown fields are ignored so newer servers
//! and compatible servers with extensions still parse.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::execution::TokenUsage;
use crate::provider::{CompletionRequest, Message, ProviderErrorKind, ResponseSchema, StructuredOutput};

/// `POST /chat/completions` body, borrowing from the request.
#[derive(Debug, Serialize)]
pub(crate) struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: &'a [Message],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
}

impl<'a> ChatRequest<'a> {
    pub(crate) fn new(request: &'a CompletionRequest, stream: bool, structured: StructuredOutput) -> Self {
        let p = &request.parameters;
        Self {
            model: &request.model,
            messages: &request.messages,
            temperature: p.temperature,
            top_p: p.top_p,
            max_completion_tokens: p.max_completion_tokens,
            stop: &p.stop,
            seed: p.seed,
            response_format: request.response_schema.as_ref().and_then(|schema| match structured {
                StructuredOutput::JsonSchema if schema.is_json_object() => Some(ResponseFormat::JSON_OBJECT),
                StructuredOutput::JsonSchema => Some(ResponseFormat::json_schema(schema)),
                StructuredOutput::JsonObject => Some(ResponseFormat::JSON_OBJECT),
                StructuredOutput::None => None,
            }),
            stream,
            stream_options: stream.then_some(StreamOptions { include_usage: true }),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct ResponseFormat<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<JsonSchemaFormat<'a>>,
}

impl<'a> ResponseFormat<'a> {
    /// `{"type": "json_object"}`: JSON mode, for servers without `json_schema`.
    const JSON_OBJECT: Self = Self { kind: "json_object", json_schema: None };

    fn json_schema(schema: &'a ResponseSchema) -> Self {
        Self {
            kind: "json_schema",
            json_schema: Some(JsonSchemaFormat {
                name: &schema.name,
                schema: &schema.schema,
                strict: schema.strict,
            }),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct JsonSchemaFormat<'a> {
    pub name: &'a str,
    pub schema: &'a Value,
    pub strict: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct StreamOptions {
    pub include_usage: bool,
}

/// Deserializes `T` when the value has its shape, else `None`: one off-spec field (a count
/// sent as `null` or a string, a detail object in an unknown form) never fails the reply.
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

/// [`lenient`] for struct-shaped fields: only a JSON object is read (serde would otherwise
/// take an array as the struct's fields in order).
fn lenient_object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    match Value::deserialize(deserializer)? {
        value @ Value::Object(_) => Ok(serde_json::from_value(value).ok()),
        _ => Ok(None),
    }
}

/// A token count as servers really send it: a number (an integral float too), a numeric
/// string, or `null` (unknown).
fn lenient_count<'de, D>(deserializer: D) -> Result<Option<u64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(match Value::deserialize(deserializer)? {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64().filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0).map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// A non-streamed reply. Every field is optional and read leniently; what is missing is
/// judged by the provider (no choices, an `error` body sent with HTTP 200).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ChatResponse {
    #[serde(default, deserialize_with = "lenient")]
    pub model: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub choices: Option<Vec<Choice>>,
    #[serde(default, deserialize_with = "lenient_object")]
    pub usage: Option<Usage>,
    /// An error body sent with a 2xx status.
    #[serde(default, deserialize_with = "lenient")]
    pub error: Option<ErrorBody>,
    /// vLLM-style errors: `{"object": "error", "message": ..., "type": ..., "code": 400}`.
    #[serde(default, deserialize_with = "lenient")]
    pub object: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub message: Option<String>,
    #[serde(default, rename = "type", deserialize_with = "lenient")]
    pub kind: Option<String>,
    #[serde(default)]
    pub code: Option<Value>,
}

impl ChatResponse {
    /// The error this reply carries instead of choices, if any.
    pub(crate) fn error_body(&mut self) -> Option<ErrorBody> {
        if let Some(error) = self.error.take() {
            return Some(error);
        }
        (self.object.as_deref() == Some("error")).then(|| ErrorBody::Object {
            message: self.message.take(),
            kind: self.kind.take(),
            param: None,
            code: self.code.take(),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Choice {
    #[serde(default, deserialize_with = "lenient_object")]
    pub message: Option<ChoiceMessage>,
    #[serde(default, deserialize_with = "lenient")]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ChoiceMessage {
    #[serde(default, deserialize_with = "lenient")]
    pub content: Option<Content>,
    #[serde(default, deserialize_with = "lenient")]
    pub refusal: Option<String>,
    /// DeepSeek, vLLM and others: the model's thinking, apart from the answer.
    #[serde(default, deserialize_with = "lenient")]
    pub reasoning_content: Option<String>,
    /// OpenRouter, Ollama and others name it `reasoning`.
    #[serde(default, deserialize_with = "lenient")]
    pub reasoning: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Value>,
    /// The deprecated single `function_call`.
    #[serde(default)]
    pub function_call: Option<Value>,
}

/// `content` as a string, or as an array of typed parts (`{"type": "text", "text": ...}`,
/// `{"type": "thinking", "thinking": ...}`, ...).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Content {
    Text(String),
    Parts(Vec<Value>),
}

/// Text and thinking taken apart.
#[derive(Debug, Default)]
pub(crate) struct ContentText {
    pub text: String,
    pub reasoning: String,
}

impl ContentText {
    pub(crate) fn add(&mut self, content: Content) {
        match content {
            Content::Text(text) => self.text.push_str(&text),
            Content::Parts(parts) => {
                for part in parts {
                    self.add_part(&part);
                }
            }
        }
    }

    fn add_part(&mut self, part: &Value) {
        let field = |name: &str| part.get(name).and_then(Value::as_str);
        match part {
            Value::String(text) => self.text.push_str(text),
            Value::Object(_) => match field("type") {
                Some("thinking" | "reasoning" | "redacted_thinking") => {
                    let thought = field("thinking").or_else(|| field("reasoning")).or_else(|| field("text"));
                    if let Some(thought) = thought {
                        self.reasoning.push_str(thought);
                    }
                }
                // `text`, `output_text`, or an untyped part with a `text`.
                Some("text" | "output_text") | None => {
                    if let Some(text) = field("text") {
                        self.text.push_str(text);
                    }
                }
                // Images, audio and other parts carry no answer text.
                Some(_) => {}
            },
            _ => {}
        }
    }
}

/// One `data:` event of a streamed reply.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatChunk {
    #[serde(default, deserialize_with = "lenient")]
    pub model: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub choices: Option<Vec<ChunkChoice>>,
    #[serde(default, deserialize_with = "lenient_object")]
    pub usage: Option<Usage>,
    /// Some servers report a failure mid-stream as an event carrying `error`.
    #[serde(default, deserialize_with = "lenient")]
    pub error: Option<ErrorBody>,
    /// Older vLLM servers send the error itself: `{"object": "error", "message": ...}`.
    #[serde(default, deserialize_with = "lenient")]
    pub object: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub message: Option<String>,
    #[serde(default, rename = "type", deserialize_with = "lenient")]
    pub kind: Option<String>,
    #[serde(default)]
    pub code: Option<Value>,
}

impl ChatChunk {
    /// The error this event carries instead of a delta, if any.
    pub(crate) fn error_body(&mut self) -> Option<ErrorBody> {
        if let Some(error) = self.error.take() {
            return Some(error);
        }
        (self.object.as_deref() == Some("error")).then(|| ErrorBody::Object {
            message: self.message.take(),
            kind: self.kind.take(),
            param: None,
            code: self.code.take(),
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChunkChoice {
    #[serde(default, deserialize_with = "lenient_object")]
    pub delta: Option<Delta>,
    #[serde(default, deserialize_with = "lenient")]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Delta {
    #[serde(default, deserialize_with = "lenient")]
    pub content: Option<Content>,
    #[serde(default, deserialize_with = "lenient")]
    pub refusal: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub reasoning_content: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub reasoning: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Value>,
    #[serde(default)]
    pub function_call: Option<Value>,
}

/// `usage` as OpenAI reports it. Compatible servers often send only the two counts, some
/// send `null` for the details, and some `null` for the counts themselves.
#[derive(Debug, Deserialize)]
pub(crate) struct Usage {
    #[serde(default, deserialize_with = "lenient_count")]
    pub prompt_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_count")]
    pub completion_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_count")]
    pub total_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_object")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(default, deserialize_with = "lenient_object")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PromptTokensDetails {
    #[serde(default, deserialize_with = "lenient_count")]
    pub cached_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CompletionTokensDetails {
    #[serde(default, deserialize_with = "lenient_count")]
    pub reasoning_tokens: Option<u64>,
}

impl Usage {
    /// The reported usage, or `None` when the server did not say how many tokens went in
    /// and out (then the caller estimates).
    pub(crate) fn into_token_usage(self) -> Option<TokenUsage> {
        let input = self.prompt_tokens?;
        let output = self.completion_tokens?;
        Some(TokenUsage {
            input,
            output,
            cached: self.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0),
            reasoning: self.completion_tokens_details.and_then(|d| d.reasoning_tokens).unwrap_or(0),
            total: self.total_tokens.unwrap_or_else(|| input.saturating_add(output)),
            estimated: false,
        })
    }
}

/// `{"error": {...}}` (OpenAI, vLLM) or `{"error": "text"}` (Ollama, some gateways).
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum ErrorBody {
    Object {
        #[serde(default)]
        message: Option<String>,
        #[serde(default, rename = "type")]
        kind: Option<String>,
        #[serde(default)]
        param: Option<Value>,
        #[serde(default)]
        code: Option<Value>,
    },
    Text(String),
}

impl ErrorBody {
    /// `message (type: t, code: c, param: p)`, omitting what the server did not send.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Object { message, kind, param, code } => {
                let mut out = message.clone().unwrap_or_else(|| "(no message)".to_string());
                let mut details = Vec::new();
                if let Some(kind) = kind {
                    details.push(format!("type: {kind}"));
                }
                for (label, value) in [("code", code), ("param", param)] {
                    match value {
                        Some(Value::String(s)) => details.push(format!("{label}: {s}")),
                        Some(Value::Null) | None => {}
                        Some(other) => details.push(format!("{label}: {other}")),
                    }
                }
                if !details.is_empty() {
                    out.push_str(" (");
                    out.push_str(&details.join(", "));
                    out.push(')');
                }
                out
            }
        }
    }

    /// Classifies an error body sent without an error status (HTTP 200, or inside a
    /// stream) by its `type` and `code`: a numeric code as the HTTP status it names; rate
    /// limits; authentication; invalid requests (permanent); everything else (overloaded,
    /// server errors, unknown) as a transient server error.
    pub(crate) fn classify(&self) -> ProviderErrorKind {
        let Self::Object { kind, code, .. } = self else {
            return ProviderErrorKind::ServerError;
        };
        let status = match code {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        if let Some(status) = status.and_then(|s| u16::try_from(s).ok()).filter(|s| (400..600).contains(s)) {
            return super::classify_status_code(status);
        }
        let words = [kind.as_deref(), code.as_ref().and_then(Value::as_str)];
        let has = |needles: &[&str]| {
            words.iter().flatten().any(|w| {
                let w = w.to_ascii_lowercase();
                needles.iter().any(|n| w.contains(n))
            })
        };
        if has(&["rate_limit", "ratelimit", "too_many"]) {
            ProviderErrorKind::RateLimited
        } else if has(&["auth", "api_key", "permission"]) {
            ProviderErrorKind::Auth
        } else if has(&["invalid", "bad_request", "badrequest", "not_found", "notfound", "context_length"]) {
            ProviderErrorKind::BadRequest
        } else {
            ProviderErrorKind::ServerError
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::prompt::ModelParameters;

    fn sent(schema: ResponseSchema, structured: StructuredOutput) -> Value {
        let request = CompletionRequest {
            model: "m".to_string(),
            messages: Vec::new(),
            parameters: ModelParameters::default(),
            response_schema: Some(schema),
            deadline: tokio::time::Instant::now() + Duration::from_secs(1),
        };
        serde_json::to_value(ChatRequest::new(&request, false, structured))
            .map(|v| v.get("response_format").cloned().unwrap_or(Value::Null))
            .unwrap_or(Value::Null)
    }

    #[test]
    fn json_mode_is_sent_as_json_object() {
        let mode = ResponseSchema::json_object();
        assert!(mode.is_json_object());
        assert_eq!(sent(mode.clone(), StructuredOutput::JsonSchema), json!({"type": "json_object"}));
        assert_eq!(sent(mode.clone(), StructuredOutput::JsonObject), json!({"type": "json_object"}));
        assert_eq!(sent(mode, StructuredOutput::None), Value::Null);
        let schema = ResponseSchema { name: "out".into(), schema: json!({"type": "object"}), strict: true };
        assert!(!schema.is_json_object());
        assert_eq!(
            sent(schema, StructuredOutput::JsonSchema),
            json!({"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": true}})
        );
    }
}
