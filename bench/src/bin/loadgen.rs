//! `loadgen`: open-loop load generator, sustainable-rate search and report.
//!
//! ```text
//! loadgen run --url http://127.0.0.1:8081/v1/chat/completions --method POST \
//!     --body '{"model":"m","messages":[]}' --rate 1000 --duration 10 --json-out r.json
//! loadgen search --url ... --start-rate 1000 --max-rate 20000 --p99-bound-ms 50
//! loadgen report --dir bench-results/20261125T200000Z
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use clap::{Args, Parser, Subcommand};
use formaops_bench::loadgen::{self, RunConfig, SearchConfig};
use formaops_bench::loopback::{loopback_url, parse_header};
use formaops_bench::report;
use reqwest::Method;

/// Largest request body accepted from a file or the command line.
const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Parser)]
#[command(about = "Open-loop HTTP load generator for loopback targets")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One run at a constant arrival rate.
    Run {
        #[command(flatten)]
        target: Target,
        /// Requests per second.
        #[arg(long)]
        rate: f64,
        /// Seconds of scheduled arrivals.
        #[arg(long)]
        duration: f64,
    },
    /// Highest rate with 0 errors, 0 drops and p99 under a bound: doubles, then bisects.
    Search {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 1000.0)]
        start_rate: f64,
        #[arg(long, default_value_t = 20_000.0)]
        max_rate: f64,
        /// Seconds per step.
        #[arg(long, default_value_t = 5.0)]
        step_duration: f64,
        #[arg(long, default_value_t = 8)]
        max_steps: u32,
        /// p99 (from the scheduled send time) a rate must stay under to pass.
        #[arg(long, default_value_t = 50.0)]
        p99_bound_ms: f64,
        /// Stop bisecting when the gap is at most this fraction of the passing rate.
        #[arg(long, default_value_t = 0.1)]
        precision: f64,
        /// Pause between steps so the target drains.
        #[arg(long, default_value_t = 1000)]
        cooldown_ms: u64,
    },
    /// Summarises a results directory into report.json and report.md.
    Report {
        #[arg(long)]
        dir: PathBuf,
        /// Exit with status 1 when a fixed-rate run had errors.
        #[arg(long)]
        check: bool,
    },
}

#[derive(Debug, Args)]
struct Target {
    /// Loopback URL.
    #[arg(long)]
    url: String,
    #[arg(long, default_value = "GET")]
    method: String,
    /// Request body.
    #[arg(long, conflicts_with = "body_file")]
    body: Option<String>,
    #[arg(long)]
    body_file: Option<PathBuf>,
    /// `Name: value`, repeatable.
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Name of an environment variable holding a bearer token (kept off the command line).
    #[arg(long)]
    bearer_env: Option<String>,
    #[arg(long, default_value_t = 512)]
    max_in_flight: usize,
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Required status (default: any 2xx).
    #[arg(long)]
    expect_status: Option<u16>,
    /// A substring every response body must contain.
    #[arg(long)]
    expect_body: Option<String>,
    /// Process to sample for CPU time and peak RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Seconds of unrecorded load at the same rate before measuring.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    #[arg(long, default_value = "")]
    label: String,
    /// `key=value`, repeatable; copied into the result (the report pairs runs by tags).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Where to write the JSON result.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Runtime worker threads of the generator.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,
}

impl Target {
    fn config(&self, rate: f64, duration: f64) -> Result<RunConfig> {
        let mut c = RunConfig::new(&self.url, rate, duration)?;
        c.url = loopback_url(&self.url)?;
        c.method = Method::from_bytes(self.method.to_ascii_uppercase().as_bytes())
            .with_context(|| format!("method {:?}", self.method))?;
        c.body = match (&self.body, &self.body_file) {
            (Some(b), _) => {
                if b.len() as u64 > MAX_BODY_BYTES {
                    bail!("body above {MAX_BODY_BYTES} bytes");
                }
                Some(Bytes::from(b.clone().into_bytes()))
            }
            (None, Some(path)) => {
                let len =
                    std::fs::metadata(path).with_context(|| format!("body file {}", path.display()))?.len();
                if len > MAX_BODY_BYTES {
                    bail!("body file {} is {len} bytes, above {MAX_BODY_BYTES}", path.display());
                }
                Some(Bytes::from(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?))
            }
            (None, None) => None,
        };
        if c.body.is_some()
            && !self.headers.iter().any(|h| h.to_ascii_lowercase().starts_with("content-type"))
        {
            c.headers.insert(
                reqwest::header::CONTENT_TYPE,
                reqwest::header::HeaderValue::from_static("application/json"),
            );
        }
        for h in &self.headers {
            let (name, value) = parse_header(h)?;
            c.headers.insert(name, value);
        }
        if let Some(var) = &self.bearer_env {
            let token =
                std::env::var(var).with_context(|| format!("environment variable {var} (bearer token)"))?;
            c.bearer(&token)?;
        }
        c.max_in_flight = self.max_in_flight;
        c.timeout = Duration::from_millis(self.timeout_ms);
        c.expect_status = self.expect_status;
        c.expect_body = self.expect_body.clone();
        c.server_pid = self.server_pid;
        c.label = self.label.clone();
        c.tags = parse_tags(&self.tags)?;
        c.tags.insert("rate".into(), format!("{rate}"));
        c.check()?;
        Ok(c)
    }

    fn runtime(&self) -> Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(self.threads))
            .enable_all()
            .build()
            .context("building the runtime")
    }
}

fn parse_tags(tags: &[String]) -> Result<BTreeMap<String, String>> {
    tags.iter()
        .map(|t| {
            let (k, v) = t.split_once('=').with_context(|| format!("tag {t:?}: expected key=value"))?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

fn write_json(path: Option<&PathBuf>, value: &impl serde::Serialize) -> Result<()> {
    if let Some(path) = path {
        let text = serde_json::to_string_pretty(value)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Run { target, rate, duration } => {
            let config = target.config(rate, duration)?;
            let result = target.runtime()?.block_on(async {
                let client = loadgen::client(config.max_in_flight)?;
                if target.warmup > 0.0 {
                    let mut warm = config.clone();
                    warm.duration = Duration::try_from_secs_f64(target.warmup).context("warmup")?;
                    warm.server_pid = None;
                    loadgen::run_with(&client, &warm).await?;
                }
                loadgen::run_with(&client, &config).await
            })?;
            println!("{}", result.human_line());
            write_json(target.json_out.as_ref(), &result)
        }
        Command::Search {
            target,
            start_rate,
            max_rate,
            step_duration,
            max_steps,
            p99_bound_ms,
            precision,
            cooldown_ms,
        } => {
            let criteria = SearchConfig {
                start_rate,
                max_rate,
                max_steps,
                p99_bound_us: p99_bound_ms * 1000.0,
                precision,
            };
            criteria.check()?;
            let base = target.config(start_rate, step_duration)?;
            let cooldown = Duration::from_millis(cooldown_ms.min(60_000));
            let mut result = target.runtime()?.block_on(async {
                let client = loadgen::client(base.max_in_flight)?;
                if target.warmup > 0.0 {
                    let mut warm = base.clone();
                    warm.duration = Duration::try_from_secs_f64(target.warmup).context("warmup")?;
                    warm.server_pid = None;
                    loadgen::run_with(&client, &warm).await?;
                }
                loadgen::search(&criteria, |rate| {
                    let mut step = base.clone();
                    step.rate = rate;
                    step.tags.insert("rate".into(), format!("{rate}"));
                    step.label = format!("{} @{rate:.0}/s", base.label);
                    let client = client.clone();
                    async move {
                        tokio::time::sleep(cooldown).await;
                        let r = loadgen::run_with(&client, &step).await?;
                        println!("  step {}", r.human_line());
                        Ok(r)
                    }
                })
                .await
            })?;
            result.label = base.label.clone();
            result.tags = base.tags.clone();
            result.tags.remove("rate");
            println!("{}", result.human_line());
            write_json(target.json_out.as_ref(), &result)
        }
        Command::Report { dir, check } => {
            let r = report::build(report::collect(&dir)?);
            let md = report::markdown(&r);
            std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(&r)?)?;
            std::fs::write(dir.join("report.md"), &md)?;
            println!("{md}");
            if check && !r.runs_with_errors.is_empty() {
                bail!("{} fixed-rate run(s) had errors: {:?}", r.runs_with_errors.len(), r.runs_with_errors);
            }
            Ok(())
        }
    }
}
