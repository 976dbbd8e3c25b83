//! FormaOps load and scale harness (issue 8).
//!
//! Two binaries and the library they share:
//!
//! - `mock-openai`: an OpenAI-compatible fake (`POST /v1/chat/completions`, plain JSON or SSE
//!   when `"stream": true`) with a fixed, runtime-adjustable latency, bound to loopback only.
//! - `loadgen`: an open-loop load generator. Requests are scheduled at a constant arrival rate
//!   on a dedicated timer thread, independent of responses; latency is measured from the
//!   *scheduled* send time, so a slow server cannot hide queueing (coordinated omission is
//!   corrected). Subcommands: `run` (one rate), `search` (highest sustainable rate) and
//!   `report` (markdown + JSON summary of a directory of results).
//!
//! `scripts/bench.sh` orchestrates them against `formaops serve` on SQLite and Postgres.
//!
//! # Layout
//!
//! - [`loopback`]: refuses any target that is not a loopback address.
//! - [`schedule`]: the open-loop arrival schedule (pure arithmetic).
//! - [`stats`]: latency summaries from HDR histograms; `/proc` sampling (CPU, peak RSS).
//! - [`loadgen`]: one open-loop run and the sustainable-rate search.
//! - [`mock`]: the mock OpenAI router and its canned responses.
//! - [`report`]: pairs direct and through-FormaOps runs into added-latency tables.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use formaops_bench::loadgen::{RunConfig, run};
//! let config = RunConfig::new("http://127.0.0.1:8081/v1/chat/completions", 100.0, 2.0)?;
//! let result = run(&config).await?;
//! println!("{}", result.human_line());
//! # Ok(()) }
//! ```

pub mod loadgen;
pub mod loopback;
pub mod mock;
pub mod report;
pub mod schedule;
pub mod stats;
