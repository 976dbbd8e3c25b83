//! # formaops-e2e
//!
//! End-to-end harness: start the real `formaops` binary on a fresh database (SQLite file or a
//! new Postgres database), then drive it over HTTP like any client would.
//!
//! # Layout
//!
//! - [`server`]: spawn the binary on a free port, read its address, stop it with SIGTERM.
//! - [`postgres`]: a fresh Postgres database per run, dropped afterwards.
//! - [`client`]: a small JSON client ([`client::Api`]), an SSE reader and a minimal
//!   WebSocket reader.
//! - [`scenarios`]: the scenarios themselves, public async functions taking a running
//!   server; `formaops-http/tests/e2e.rs` runs them against SQLite and Postgres.

pub mod client;
pub mod postgres;
pub mod scenarios;
pub mod server;

/// Email and password of the admin the server creates on first start (from the environment).
pub const ADMIN_EMAIL: &str = "admin@e2e.test";
pub const ADMIN_PASSWORD: &str = "e2e admin password";
