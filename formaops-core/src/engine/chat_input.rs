//! What a chat call adds to an execution, stored in its inputs under [`CHAT_INPUT`]: the
//! call's messages and parameter overrides ([`ChatExtras`], [`ChatParameters`]). A leaf of the
//! engine: the chat front door writes it, the worker reads it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::prompt::ModelParameters;
use crate::provider::{Message, ResponseSchema};

/// Reserved input key carrying a chat call's messages and parameters (see `engine::chat`);
/// never a valid variable name, so no caller's input can set it.
pub const CHAT_INPUT: &str = "$chat";

/// Per-call overrides of the version's model parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatParameters {
    /// Sampling temperature, 0 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Most tokens the model may generate, at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// Up to 4 stop sequences; `Some(vec![])` clears the version's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
    /// Sampling seed, for providers that honour one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
}

impl ChatParameters {
    /// The version's parameters with every field set here replacing its own.
    pub fn apply(&self, base: &ModelParameters) -> ModelParameters {
        ModelParameters {
            temperature: self.temperature.or(base.temperature),
            top_p: self.top_p.or(base.top_p),
            max_completion_tokens: self.max_completion_tokens.or(base.max_completion_tokens),
            stop: self.stop.clone().unwrap_or_else(|| base.stop.clone()),
            seed: self.seed.or(base.seed),
        }
    }

    pub(super) fn check(&self) -> Result<()> {
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(Error::invalid_argument("temperature", "must be between 0 and 2"));
        }
        if let Some(p) = self.top_p
            && !(0.0..=1.0).contains(&p)
        {
            return Err(Error::invalid_argument("top_p", "must be between 0 and 1"));
        }
        if self.max_completion_tokens == Some(0) {
            return Err(Error::invalid_argument("max_completion_tokens", "must be at least 1"));
        }
        if self.stop.as_ref().is_some_and(|s| s.len() > 4) {
            return Err(Error::invalid_argument("stop", "at most 4 sequences"));
        }
        Ok(())
    }
}

/// What a chat call adds to an execution (stored under [`CHAT_INPUT`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatExtras {
    /// Sent after the rendered messages (instead of them for a pass-through).
    #[serde(default)]
    pub messages: Vec<Message>,
    /// Pass-through: the rendered messages are not sent.
    #[serde(default)]
    pub replace: bool,
    /// The call's overrides of the version's sampling parameters.
    #[serde(default)]
    pub parameters: ChatParameters,
    /// The call's structured-output schema, sent when validation is off or the version's
    /// rules give none.
    #[serde(default)]
    pub response_schema: Option<ResponseSchema>,
}

impl ChatExtras {
    /// Splits an execution's inputs into the template's inputs and the chat extras, if any.
    pub(crate) fn split(
        inputs: &Map<String, Value>,
    ) -> (std::borrow::Cow<'_, Map<String, Value>>, Option<Self>) {
        match inputs.get(CHAT_INPUT) {
            None => (std::borrow::Cow::Borrowed(inputs), None),
            Some(v) => {
                let extras = serde_json::from_value(v.clone()).ok();
                let mut rest = inputs.clone();
                rest.remove(CHAT_INPUT);
                (std::borrow::Cow::Owned(rest), extras)
            }
        }
    }
}
