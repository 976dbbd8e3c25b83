//! Chat requests: how a chat-completions call (the OpenAI-compatible endpoint) becomes an
//! execution. The wire format is the adapter's; every decision is here.
//!
//! - `formaops::<name>` runs the caller's ACTIVE prompt of that name at the version its
//!   `production` label points at (its newest version when it has no `production` label),
//!   `formaops::<name>@<label>` the version `label` points at (`latest`: the newest), and
//!   `formaops::<name>:<version>` a pinned version.
//! - `<provider>/<model>` sends the caller's messages unchanged to a configured provider. The
//!   execution belongs to an implicit prompt of the caller named
//!   `passthrough:<provider>/<model>` (created on first use, no variables), so it is listed,
//!   filtered and aggregated in metrics like any other prompt's execution.
//! - The caller's messages follow the rendered ones of a managed prompt; the request's
//!   sampling parameters replace the version's one by one.
//!
//! The caller's messages and parameters travel with the execution in its inputs under the
//! reserved key [`CHAT_INPUT`] (never a valid variable name), so every store keeps them
//! without a schema change, and a retry or a rescue re-sends the same call.

use std::time::Duration;

use serde_json::{Map, Value};

use super::{ExecuteRequest, FormaOps};
use crate::error::{Error, Result};
use crate::execution::{Execution, Priority};
use crate::ids::{PromptId, UserId};
use crate::page::PageRequest;
use crate::prompt::label::{PRODUCTION, check_label_name};
use crate::prompt::{ModelConfig, ModelParameters, Prompt, PromptSpec, PromptStatus};
use crate::provider::{Message, ResponseSchema};
use crate::store::PromptFilter;

/// Prefix of a managed prompt's model name.
pub const MANAGED_PREFIX: &str = "formaops::";
/// Name prefix of the implicit pass-through prompts.
pub const PASSTHROUGH_PREFIX: &str = "passthrough:";
pub use super::chat_input::{CHAT_INPUT, ChatExtras, ChatParameters};

/// What a chat request's `model` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatModel {
    /// A managed prompt by name: a pinned version, or the version a label points at, or
    /// (neither) its `production` label, else its newest version.
    Managed {
        /// The prompt's name, as written after `formaops::` (matched after trimming).
        name: String,
        /// The pinned version (`:<n>`, from 1).
        version: Option<u32>,
        /// The label (`@<label>`); never set together with `version`.
        label: Option<String>,
    },
    /// A provider's model, called with the caller's messages as they are.
    PassThrough {
        /// A configured provider's name (before the first `/`).
        provider: String,
        /// The model name sent to it (everything after the first `/`).
        model: String,
    },
}

impl ChatModel {
    /// Parses a `model` string.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on `model` naming what is wrong.
    pub fn parse(model: &str) -> Result<Self> {
        let bad = |m: &str| Err(Error::invalid_argument("model", m));
        if let Some(rest) = model.strip_prefix(MANAGED_PREFIX) {
            if let Some((name, label)) = rest.rsplit_once('@') {
                if name.trim().is_empty() {
                    return bad("`formaops::` must be followed by a prompt name");
                }
                check_label_name("model", label)?;
                return Ok(Self::Managed {
                    name: name.to_string(),
                    version: None,
                    label: Some(label.to_string()),
                });
            }
            let (name, version) = match rest.rsplit_once(':') {
                Some((n, v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                    let v: u32 =
                        v.parse().map_err(|_| Error::invalid_argument("model", "version out of range"))?;
                    if v == 0 {
                        return bad("versions count from 1");
                    }
                    (n, Some(v))
                }
                _ => (rest, None),
            };
            if name.trim().is_empty() {
                return bad("`formaops::` must be followed by a prompt name");
            }
            return Ok(Self::Managed { name: name.to_string(), version, label: None });
        }
        match model.split_once('/') {
            Some((p, m)) if !p.is_empty() && !m.trim().is_empty() => {
                Ok(Self::PassThrough { provider: p.to_string(), model: m.to_string() })
            }
            _ => bad("expected `formaops::<prompt name>` or `<provider>/<model>`"),
        }
    }

    /// The name of the implicit prompt of a pass-through model:
    /// `passthrough:<provider>/<model>`.
    pub fn passthrough_name(provider: &str, model: &str) -> String {
        format!("{PASSTHROUGH_PREFIX}{provider}/{model}")
    }
}

/// A chat-completions call, translated from the wire by an adapter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    /// The `model` string, parsed by [`ChatModel::parse`].
    pub model: String,
    /// The caller's conversation: sent after a managed prompt's rendered messages, or alone
    /// for a pass-through (which needs at least one).
    pub messages: Vec<Message>,
    /// Variable values of a managed prompt (ignored for a pass-through, which has none).
    pub inputs: Map<String, Value>,
    /// Overrides of the version's sampling parameters, checked at submission.
    pub parameters: ChatParameters,
    /// Structured-output schema to send, when the version's rules give none (or validation
    /// is off).
    pub response_schema: Option<ResponseSchema>,
    /// `NORMAL` when not given.
    pub priority: Option<Priority>,
    /// Managed prompts only; false when not given.
    pub validate_output: Option<bool>,
    /// As [`ExecuteRequest::idempotency_key`].
    pub idempotency_key: Option<String>,
}

impl FormaOps {
    /// The caller's ACTIVE prompt named `name` (exact match after trimming). When several
    /// share the name, the most recently updated one.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is none.
    pub async fn find_prompt_by_name(&self, user: UserId, name: &str) -> Result<Prompt> {
        let name = name.trim();
        let mut best: Option<Prompt> = None;
        let mut cursor: Option<String> = None;
        loop {
            let page = PageRequest::new(Some(crate::page::MAX_PAGE_SIZE), cursor.as_deref())?;
            let filter = PromptFilter { status: Some(PromptStatus::Active) };
            let got = self.inner.store.list_prompts(user, &filter, page).await?;
            for p in got.items {
                if p.name == name && best.as_ref().is_none_or(|b| p.updated_at > b.updated_at) {
                    best = Some(p);
                }
            }
            match got.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        best.ok_or_else(|| Error::not_found("prompt", name))
    }

    /// Names of the registered providers, sorted (the zero-config `mock` included when it
    /// was registered).
    pub fn provider_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.providers.keys().cloned().collect();
        names.sort();
        names
    }

    /// Translates a chat call into an [`ExecuteRequest`] (creating the implicit pass-through
    /// prompt on first use) and submits it. Returns the QUEUED execution.
    ///
    /// # Errors
    /// As [`FormaOps::submit`]; [`Error::InvalidArgument`] for a bad `model`, parameter or
    /// an empty conversation; [`Error::NotFound`] for an unknown prompt or provider.
    pub async fn submit_chat(&self, user: UserId, chat: ChatRequest) -> Result<Execution> {
        let (request, chat) = self.chat_request(user, chat).await?;
        super::submit::submit_chat(&self.inner, user, request, chat).await
    }

    /// [`FormaOps::submit_chat`] run to its end, waiting at most `wait` (see
    /// [`FormaOps::execute_within`]): the final execution, or its current state.
    ///
    /// # Errors
    /// As [`FormaOps::submit_chat`].
    pub async fn execute_chat(&self, user: UserId, chat: ChatRequest, wait: Duration) -> Result<Execution> {
        let (request, chat) = self.chat_request(user, chat).await?;
        super::submit::execute(&self.inner, user, request, chat, Some(wait)).await
    }

    /// Translates a chat call into an [`ExecuteRequest`] and the encoded [`ChatExtras`]
    /// (`None` when it has none); the implicit pass-through prompt is created on first use.
    pub(super) async fn chat_request(
        &self,
        user: UserId,
        chat: ChatRequest,
    ) -> Result<(ExecuteRequest, Option<Value>)> {
        chat.parameters.check()?;
        let model = ChatModel::parse(&chat.model)?;
        // The label is resolved (and recorded on the execution) at submission. The name, the
        // prompt's pointer and its `production` label come from the per-node caches (see
        // `freshness`), so a repeated call makes no store read for them.
        let (prompt_id, version, label, inputs, replace) = match model {
            ChatModel::Managed { name, version, label } => {
                let (id, pointer) = self.active_prompt_named(user, &name).await?;
                let (version, label) = match (version, label) {
                    (Some(v), _) => (Some(v), None),
                    (None, Some(label)) => (None, Some(label)),
                    (None, None) => match self.inner.label_version(user, id, PRODUCTION).await? {
                        Some(_) => (None, Some(PRODUCTION.to_string())),
                        None => (Some(pointer.current_version), None),
                    },
                };
                (id, version, label, chat.inputs, false)
            }
            ChatModel::PassThrough { provider, model } => {
                if chat.messages.is_empty() {
                    return Err(Error::invalid_argument(
                        "messages",
                        "a pass-through call needs at least one message",
                    ));
                }
                if !chat.inputs.is_empty() {
                    return Err(Error::invalid_argument("inputs", "a pass-through model has no variables"));
                }
                let id = self.passthrough_prompt(user, &provider, &model).await?;
                (id, None, None, Map::new(), true)
            }
        };
        let request = ExecuteRequest {
            prompt_id,
            version,
            label,
            inputs,
            priority: chat.priority.unwrap_or_default(),
            validate_output: chat.validate_output.unwrap_or(false),
            idempotency_key: chat.idempotency_key,
        };
        let extras = ChatExtras {
            messages: chat.messages,
            replace,
            parameters: chat.parameters,
            response_schema: chat.response_schema,
        };
        let chat = if extras == ChatExtras::default() {
            None
        } else {
            Some(serde_json::to_value(&extras).map_err(|e| Error::internal_from("encoding a chat call", e))?)
        };
        Ok((request, chat))
    }

    /// The caller's implicit prompt for `provider/model`, created on first use.
    async fn passthrough_prompt(&self, user: UserId, provider: &str, model: &str) -> Result<PromptId> {
        if !self.inner.providers.contains_key(provider) {
            return Err(Error::not_found("provider", provider));
        }
        let name = ChatModel::passthrough_name(provider, model);
        match self.active_prompt_named(user, &name).await {
            Ok((id, _)) => return Ok(id),
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let spec = PromptSpec {
            name,
            description: Some("Created for calls to this model through the OpenAI-compatible endpoint; the caller's messages are sent as they are.".to_string()),
            template: "(pass-through: the caller's messages are sent instead of this template)".to_string(),
            system_template: None,
            variables: Vec::new(),
            validations: Vec::new(),
            labels: None,
            model: Some(ModelConfig {
                provider: Some(provider.to_string()),
                model: model.to_string(),
                parameters: ModelParameters::default(),
            }),
        };
        Ok(self.create_prompt(user, spec).await?.0.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_models() {
        assert_eq!(
            ChatModel::parse("formaops::greet").ok(),
            Some(ChatModel::Managed { name: "greet".into(), version: None, label: None })
        );
        assert_eq!(
            ChatModel::parse("formaops::a:b:3").ok(),
            Some(ChatModel::Managed { name: "a:b".into(), version: Some(3), label: None })
        );
        assert_eq!(
            ChatModel::parse("openai/gpt-4o-mini").ok(),
            Some(ChatModel::PassThrough { provider: "openai".into(), model: "gpt-4o-mini".into() })
        );
        assert_eq!(
            ChatModel::parse("formaops::a@b@staging").ok(),
            Some(ChatModel::Managed { name: "a@b".into(), version: None, label: Some("staging".into()) })
        );
        for bad in
            ["formaops::", "formaops::@production", "formaops::x@Prod Label", "gpt-4o", "/x", "formaops::x:0"]
        {
            assert!(matches!(ChatModel::parse(bad), Err(Error::InvalidArgument { .. })), "{bad}");
        }
    }

    #[test]
    fn parameters_override_one_by_one() {
        let base = ModelParameters { temperature: Some(0.1), seed: Some(7), ..Default::default() };
        let p = ChatParameters { temperature: Some(0.9), stop: Some(vec!["x".into()]), ..Default::default() };
        let got = p.apply(&base);
        assert_eq!(got.temperature, Some(0.9));
        assert_eq!(got.seed, Some(7));
        assert_eq!(got.stop, vec!["x".to_string()]);
    }
}
