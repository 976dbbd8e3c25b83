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
//! - [`execution`]: executions, statuses, priorities, token usage, per-execution metrics.
//! - [`provider`]: the `LlmProvider` trait, the mock provider, the OpenAI-compatible one.
//! - [`store`]: the `Store` trait and the in-memory store.
//! - [`engine`]: the `FormaOps` engine: scheduler, workers, retries, events.
//! - [`pricing`]: the model price table and cost computation.
//! - [`metrics`]: aggregated metrics types.
//! - [`events`]: execution state-change events.
//! - [`page`]: cursor pagination.
//! - [`user`]: users and credentials as stored.
//! - `conformance` (feature `conformance`): the shared test suite every store passes.

pub mod engine;
pub mod error;
pub mod events;
pub mod execution;
pub mod ids;
pub mod metrics;
pub mod page;
pub mod pricing;
pub mod prompt;
pub mod provider;
pub mod store;
pub mod template;
pub mod user;
pub mod validation;
pub mod variables;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::{Error, Problem, Result};
