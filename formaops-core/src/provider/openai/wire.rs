//! The OpenAI chat-completions wire format: request bodies, replies, stream chunks, errors.
//!
//! Only the fields FormaOps uses are modelled; unknown fields are ignored so newer servers
//! and compatible servers with extensions still parse.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::execution::TokenUsage;
use crate::provider::{CompletionRequest, Message, ResponseSchema};

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
    pub(crate) fn new(request: &'a CompletionRequest, stream: bool) -> Self {
        let p = &request.parameters;
        Self {
            model: &request.model,
            messages: &request.messages,
            temperature: p.temperature,
            top_p: p.top_p,
            max_completion_tokens: p.max_completion_tokens,
            stop: &p.stop,
            seed: p.seed,
            response_format: request.response_schema.as_ref().map(ResponseFormat::json_schema),
            stream,
            stream_options: stream.then_some(StreamOptions { include_usage: true }),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct ResponseFormat<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub json_schema: JsonSchemaFormat<'a>,
}

impl<'a> ResponseFormat<'a> {
    fn json_schema(schema: &'a ResponseSchema) -> Self {
        Self {
            kind: "json_schema",
            json_schema: JsonSchemaFormat {
                name: &schema.name,
                schema: &schema.schema,
                strict: schema.strict,
            },
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

/// A non-streamed reply.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatResponse {
    #[serde(default)]
    pub model: Option<String>,
    pub choices: Vec<Choice>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Choice {
    pub message: ChoiceMessage,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChoiceMessage {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub refusal: Option<String>,
}

/// One `data:` event of a streamed reply.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatChunk {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Some servers report a failure mid-stream as an event carrying `error`.
    #[serde(default)]
    pub error: Option<ErrorBody>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChunkChoice {
    #[serde(default)]
    pub delta: Option<Delta>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Delta {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub refusal: Option<String>,
}

/// `usage` as OpenAI reports it. Compatible servers often send only the two counts, and
/// some send `null` for the details.
#[derive(Debug, Deserialize)]
pub(crate) struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: Option<u64>,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(default)]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PromptTokensDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CompletionTokensDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

impl Usage {
    pub(crate) fn into_token_usage(self) -> TokenUsage {
        let input = self.prompt_tokens;
        let output = self.completion_tokens;
        TokenUsage {
            input,
            output,
            cached: self.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0),
            reasoning: self.completion_tokens_details.and_then(|d| d.reasoning_tokens).unwrap_or(0),
            total: self.total_tokens.unwrap_or_else(|| input.saturating_add(output)),
            estimated: false,
        }
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

    /// The error's `type` or `code`, for classifying errors sent inside a stream.
    pub(crate) fn is_rate_limit(&self) -> bool {
        match self {
            Self::Text(_) => false,
            Self::Object { kind, code, .. } => {
                kind.as_deref().is_some_and(|k| k.contains("rate_limit"))
                    || code.as_ref().and_then(Value::as_str).is_some_and(|c| c.contains("rate_limit"))
            }
        }
    }
}
