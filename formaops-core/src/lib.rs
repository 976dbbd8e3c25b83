//! # formaops-core
//!
//! The FormaOps domain and every rule: versioned prompt templates with typed variables,
//! output validation, and the execution engine (durable priority queue, retries, metrics,
//! cost, events) behind the [`Store`](store::Store) and
//! [`LlmProvider`](provider::LlmProvider) traits. No SQL, no HTTP server, no Python: those
//! are adapters in other crates.
//!
//! # Layout
//!
//! - [`error`]: the crate's one error type, [`Error`].
//! - [`ids`]: typed UUID identifiers.
//! - [`prompt`]: prompts, immutable versions, model configuration.
//! - [`variables`]: typed variable definitions and input validation.
//! - [`template`]: minijinja templates, compiled once, with fuel and size limits.
//! - [`validation`]: output validation rules and verdicts.
//! - [`text`]: text every store can hold (no NUL), checked where input is validated.
//! - [`execution`]: executions, statuses, priorities, token usage, per-execution metrics.
//! - [`provider`]: the `LlmProvider` trait, the mock provider, the OpenAI-compatible one.
//! - [`dataset`]: datasets of input rows, their limits and parsers (JSONL, CSV).
//! - [`experiment`]: experiments over datasets, progress, comparisons and exports.
//! - [`store`]: the `Store` trait and the in-memory store.
//! - [`engine`]: the `FormaOps` engine: scheduler, workers, retries, events.
//! - [`pricing`]: the model price table and cost computation.
//! - [`metrics`]: aggregated metrics types.
//! - [`events`]: execution state-change events.
//! - [`page`]: cursor pagination.
//! - [`user`]: users and credentials, and every account rule: email, password policy,
//!   Argon2id, token minting and hashing, login throttling.
//! - `conformance` (feature `conformance`): the shared test suite every store passes.
//!
//! # Example: a prompt version, validated inputs, rendered messages
//!
//! ```rust
//! use formaops_core::ids::{PromptId, UserId};
//! use formaops_core::prompt::{ModelConfig, PromptVersion};
//! use formaops_core::provider::Role;
//! use formaops_core::template::{check_version, CompiledPrompt, TemplateLimits};
//! use formaops_core::validation::{CompiledRules, ValidationRule};
//! use formaops_core::variables::{validate_inputs, InputLimits, VariableDefinition};
//!
//! # fn main() -> formaops_core::Result<()> {
//! let variables: Vec<VariableDefinition> = serde_json::from_value(serde_json::json!([
//!     {"name": "topic", "type": "string", "required": true},
//!     {"name": "lines", "type": "integer", "defaultValue": 3},
//! ]))
//! .map_err(|e| formaops_core::Error::invalid_argument("variables", e.to_string()))?;
//! let version = PromptVersion {
//!     prompt_id: PromptId::new(),
//!     version: 1,
//!     template: "Write {{ lines }} lines about {{ topic }}.".into(),
//!     system_template: Some("You are a poet.".into()),
//!     variables,
//!     validations: vec![ValidationRule::MaxLength { value: 500 }],
//!     model: ModelConfig::default(),
//!     created_at: chrono::Utc::now(),
//!     author: UserId::new(),
//! };
//! // Before saving: every problem with the template, variables and rules at once.
//! check_version(&version, &TemplateLimits::default(), &InputLimits::default())?;
//!
//! // Once per version: compile the templates and the output rules.
//! let prompt = CompiledPrompt::compile(&version, &TemplateLimits::default())?;
//! let rules = CompiledRules::compile(&version.validations)?;
//!
//! // Per execution: validate the inputs (defaults filled in), then render.
//! let raw = serde_json::json!({"topic": "the sea"});
//! let inputs = validate_inputs(&version.variables, raw.as_object().expect("an object"), &InputLimits::default())?;
//! let messages = prompt.render(&inputs)?;
//! assert_eq!(messages[0].role, Role::System);
//! assert_eq!(messages[1].content, "Write 3 lines about the sea.");
//!
//! // A wrong input is reported by name, with every other problem.
//! let bad = serde_json::json!({"lines": "3"});
//! let err = validate_inputs(&version.variables, bad.as_object().expect("an object"), &InputLimits::default())
//!     .unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "invalid inputs: inputs.topic: required variable \"topic\" is missing; inputs.lines: expected integer, got string"
//! );
//!
//! // The model's reply is checked against the version's rules.
//! let (verdict, _parsed) = rules.check("The sea breathes, / grey and slow, / and forgets.");
//! assert!(verdict.passed);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod dataset;
pub mod engine;
pub mod error;
pub mod events;
pub mod execution;
pub mod experiment;
pub mod ids;
pub mod metrics;
pub mod page;
pub mod pricing;
pub mod prompt;
pub mod provider;
pub mod schema;
pub mod store;
pub mod template;
pub mod text;
pub mod user;
pub mod validation;
pub mod variables;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::{Error, Problem, ProblemCode, Result};
