//! The OpenAI chat-completions wire types, and their translation to a core
//! [`ChatRequest`]. Fields the endpoint does not know are ignored.

use formaops_core::engine::{ChatParameters, ChatRequest};
use formaops_core::execution::{Execution, Priority, TokenUsage};
use formaops_core::provider::{Message, ResponseSchema, Role};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::errors::OpenAiError;

/// `POST /chat/completions` body. Besides OpenAI's fields: `inputs` (a managed prompt's
/// variables), `priority`, `validate_output` and `idempotency_key` (the SDK's `extra_body`).
#[derive(Debug, Deserialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    #[serde(default)]
    pub messages: Vec<WireMessage>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_completion_tokens: Option<u32>,
    /// Deprecated by OpenAI; used when `max_completion_tokens` is absent.
    pub max_tokens: Option<u32>,
    pub stop: Option<Stop>,
    pub seed: Option<i64>,
    /// Read by [`response_format`], which names the wrong field in its errors.
    pub response_format: Option<Value>,
    pub n: Option<u32>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub inputs: Option<Map<String, Value>>,
    pub priority: Option<String>,
    pub validate_output: Option<bool>,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// Longest `response_format.json_schema.name` (OpenAI's limit).
pub const MAX_SCHEMA_NAME_CHARS: usize = 64;

/// Translates `response_format`: `{"type": "text"}` (or `null`) asks for nothing,
/// `{"type": "json_object"}` for JSON mode, `{"type": "json_schema", "json_schema": {"name",
/// "schema", "strict"}}` for a schema; the provider's `structured_output` setting decides what
/// is sent. Anything else is a 400 naming the field.
pub fn response_format(value: Value) -> Result<Option<ResponseSchema>, OpenAiError> {
    const PARAM: &str = "response_format";
    let bad = |param: &str, message: String| Err(OpenAiError::bad_request(Some(param), message));
    let mut format = match value {
        Value::Null => return Ok(None),
        Value::Object(o) => o,
        _ => return bad(PARAM, format!("{PARAM}: expected an object such as {{\"type\": \"json_object\"}}")),
    };
    let kind = match format.remove("type") {
        Some(Value::String(k)) => k,
        Some(_) => return bad("response_format.type", "response_format.type: expected a string".into()),
        None => return bad("response_format.type", "response_format.type is required".into()),
    };
    match kind.as_str() {
        "text" => Ok(None),
        "json_object" => Ok(Some(ResponseSchema::json_object())),
        "json_schema" => {
            const FIELD: &str = "response_format.json_schema";
            let Some(Value::Object(mut spec)) = format.remove("json_schema") else {
                return bad(FIELD, format!("{FIELD}: an object with `name` and `schema` is required"));
            };
            let name = match spec.remove("name") {
                Some(Value::String(n))
                    if !n.is_empty()
                        && n.chars().count() <= MAX_SCHEMA_NAME_CHARS
                        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
                {
                    n
                }
                _ => {
                    return bad(
                        "response_format.json_schema.name",
                        format!(
                            "{FIELD}.name: 1 to {MAX_SCHEMA_NAME_CHARS} letters, digits, `_` or `-` is required"
                        ),
                    );
                }
            };
            let schema = match spec.remove("schema") {
                Some(s @ Value::Object(_)) => s,
                _ => {
                    return bad(
                        "response_format.json_schema.schema",
                        format!("{FIELD}.schema: a JSON Schema object is required"),
                    );
                }
            };
            let strict = match spec.remove("strict") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => b,
                Some(_) => {
                    return bad(
                        "response_format.json_schema.strict",
                        format!("{FIELD}.strict: expected a boolean"),
                    );
                }
            };
            Ok(Some(ResponseSchema { name, schema, strict }))
        }
        other => {
            // Echoed bounded: the body limit is the only bound on a caller's string.
            let shown: String = other.chars().take(MAX_SCHEMA_NAME_CHARS).collect();
            bad(
                "response_format.type",
                format!(
                    "response_format.type: {shown:?} is not supported (text, json_object or json_schema)"
                ),
            )
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Deserialize)]
pub struct WireMessage {
    pub role: String,
    #[serde(default)]
    pub content: Value,
}

fn message(i: usize, m: WireMessage) -> Result<Message, OpenAiError> {
    let param = format!("messages[{i}]");
    let role = match m.role.as_str() {
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(OpenAiError::bad_request(
                Some(&param),
                format!("{param}.role: {other:?} is not supported (system, developer, user or assistant)"),
            ));
        }
    };
    let content = match m.content {
        Value::String(s) => s,
        Value::Array(parts) => {
            let mut text = String::new();
            for part in parts {
                match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    _ => {
                        return Err(OpenAiError::bad_request(
                            Some(&param),
                            format!("{param}.content: only text parts are supported"),
                        ));
                    }
                }
            }
            text
        }
        _ => {
            return Err(OpenAiError::bad_request(
                Some(&param),
                format!("{param}.content: expected a string or a list of text parts"),
            ));
        }
    };
    Ok(Message { role, content })
}

impl ChatCompletionRequest {
    /// The core request; `idempotency_header` wins over the body's `idempotency_key`.
    pub fn into_core(self, idempotency_header: Option<String>) -> Result<ChatRequest, OpenAiError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(OpenAiError::bad_request(Some("n"), "only n = 1 is supported"));
        }
        let messages =
            self.messages.into_iter().enumerate().map(|(i, m)| message(i, m)).collect::<Result<_, _>>()?;
        let response_schema = match self.response_format {
            None => None,
            Some(v) => response_format(v)?,
        };
        let priority = match self.priority.as_deref() {
            None => None,
            Some(p) => Some(Priority::parse(&p.to_ascii_uppercase()).ok_or_else(|| {
                OpenAiError::bad_request(Some("priority"), "priority must be LOW, NORMAL or HIGH")
            })?),
        };
        Ok(ChatRequest {
            model: self.model,
            messages,
            inputs: self.inputs.unwrap_or_default(),
            parameters: ChatParameters {
                temperature: self.temperature,
                top_p: self.top_p,
                max_completion_tokens: self.max_completion_tokens.or(self.max_tokens),
                stop: self.stop.map(|s| match s {
                    Stop::One(s) => vec![s],
                    Stop::Many(v) => v,
                }),
                seed: self.seed,
            },
            response_schema,
            priority,
            validate_output: self.validate_output,
            idempotency_key: idempotency_header.or(self.idempotency_key),
        })
    }
}

#[derive(Debug, Serialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: &'static str,
    pub created: i64,
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: Usage,
}

/// OpenAI's `finish_reason` for a completed execution: the provider's own word when it is one
/// of OpenAI's (`length` for an output cut at the token limit, `content_filter`, `tool_calls`,
/// `function_call`), else `stop` (including executions whose provider reported none, such as
/// the mock's).
pub fn finish_reason(e: &Execution) -> &'static str {
    match e.finish_reason.as_deref() {
        Some("length") => "length",
        Some("content_filter") => "content_filter",
        Some("tool_calls") => "tool_calls",
        Some("function_call") => "function_call",
        _ => "stop",
    }
}

#[derive(Debug, Serialize)]
pub struct Choice {
    pub index: u32,
    pub message: AssistantMessage,
    pub finish_reason: &'static str,
    pub logprobs: Option<Value>,
}

#[derive(Debug, Serialize)]
pub struct AssistantMessage {
    pub role: &'static str,
    pub content: String,
    pub refusal: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: PromptDetails,
    pub completion_tokens_details: CompletionDetails,
}

#[derive(Debug, Serialize)]
pub struct PromptDetails {
    pub cached_tokens: u64,
}

#[derive(Debug, Serialize)]
pub struct CompletionDetails {
    pub reasoning_tokens: u64,
}

impl From<&TokenUsage> for Usage {
    fn from(u: &TokenUsage) -> Self {
        Self {
            prompt_tokens: u.input,
            completion_tokens: u.output,
            total_tokens: u.total,
            prompt_tokens_details: PromptDetails { cached_tokens: u.cached },
            completion_tokens_details: CompletionDetails { reasoning_tokens: u.reasoning },
        }
    }
}

/// The completion id of an execution.
pub fn completion_id(e: &Execution) -> String {
    format!("chatcmpl-{}", e.id)
}

impl ChatCompletion {
    pub fn from_execution(e: &Execution, model: String) -> Self {
        let usage = e
            .metrics
            .as_ref()
            .map(|m| Usage::from(&m.token_usage))
            .unwrap_or_else(|| (&TokenUsage::default()).into());
        Self {
            id: completion_id(e),
            object: "chat.completion",
            created: e.created_at.timestamp(),
            model,
            choices: vec![Choice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant",
                    content: e.output.clone().unwrap_or_default(),
                    refusal: None,
                },
                finish_reason: finish_reason(e),
                logprobs: None,
            }],
            usage,
        }
    }
}

/// `GET /models` entry.
#[derive(Debug, Serialize)]
pub struct ModelEntry {
    pub id: String,
    pub object: &'static str,
    pub created: i64,
    pub owned_by: String,
}

#[derive(Debug, Serialize)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<ModelEntry>,
}
