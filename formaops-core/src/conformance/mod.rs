//! The shared [`Store`] conformance suite (feature `conformance`).
//!
//! Every backend calls [`run_all`] (or the functions one by one). Each function creates its
//! own users, prompts and a provider name of its own, so the suite runs against a shared
//! database, in any order, next to other data. Failures panic with a message naming the
//! broken rule (this is test code).
//!
//! One file per area: `users`, `prompts`, `executions`, `queue`, `leases`, `metrics`,
//! `engine`, `fastpath`, `caches`, `labels`, `lab` (datasets and experiments); the builders they share are in `fixtures`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::store::Store;

mod caches;
mod engine;
mod executions;
mod fastpath;
mod fixtures;
pub mod lab;
pub mod labels;
mod leases;
mod metrics;
mod prompts;
mod queue;
mod users;

pub use caches::{engine_credential_cache, engine_pointer_cache};
pub use engine::{engine_applies_concurrent_updates, engine_refuses_unstorable_text};
pub use executions::{cancel_rules, execution_pagination_and_filters, finish_rules};
pub use fastpath::engine_fast_path;
pub use fixtures::{execution, new_user, now, rescue_now};
pub use leases::{extend_leases, lease_rescue, rescue_decisions_are_guarded};
pub use metrics::{metrics, rollups};
pub use prompts::{owner_isolation, prompt_names, prompt_pagination, prompts_and_versions};
pub use queue::{
    claim_order_and_filters, enqueue_idempotency, failed_enqueue_commits_nothing, no_double_claim,
    queue_depth,
};
pub use users::{external_identities, users_and_credentials};

/// Runs every conformance check.
pub async fn run_all(store: &dyn Store) {
    users_and_credentials(store).await;
    external_identities(store).await;
    prompts_and_versions(store).await;
    prompt_names(store).await;
    owner_isolation(store).await;
    prompt_pagination(store).await;
    execution_pagination_and_filters(store).await;
    enqueue_idempotency(store).await;
    failed_enqueue_commits_nothing(store).await;
    claim_order_and_filters(store).await;
    no_double_claim(store).await;
    lease_rescue(store).await;
    rescue_decisions_are_guarded(store).await;
    extend_leases(store).await;
    finish_rules(store).await;
    cancel_rules(store).await;
    queue_depth(store).await;
    metrics(store).await;
    rollups(store).await;
    labels::labels(store).await;
    labels::label_moves_are_atomic(store).await;
    lab::datasets(store).await;
    lab::experiments(store).await;
}
