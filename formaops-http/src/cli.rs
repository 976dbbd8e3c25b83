//! `formaops experiment run`: runs an experiment on a FormaOps server over its REST API, with a
//! live progress bar, and prints the side-by-side comparison.
//!
//! The command is a client: it needs the server's URL and an API key (flags or
//! `FORMAOPS_URL` / `FORMAOPS_API_KEY`), never the database. Steps:
//! 1. the prompt by name (`GET /api/prompts?name=`) or id;
//! 2. the dataset: an existing one by id, or a `.jsonl`/`.csv` file read with core's parsers
//!    (`formaops_core::dataset`, so a bad line is named before anything is sent) and uploaded
//!    as a new dataset named after the file;
//! 3. `POST /api/experiments`, then `GET /api/experiments/{id}` every `--poll-ms` for the
//!    progress bar (rows, rate, ETA, cost so far) until the experiment is final;
//! 4. `GET /api/experiments/{id}/results`: a table per version (pass rate, match rate, latency
//!    percentiles, tokens, cost), or with `--json` the whole comparison on stdout.
//!
//! Ctrl-C cancels the experiment on the server (queued rows cancelled, finished rows kept)
//! and exits with status 130.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use formaops_core::dataset::{self, DatasetRow};
use formaops_core::execution::Priority;
use formaops_core::experiment::{Comparison, Experiment, ExperimentProgress, ExperimentStatus, MatchRule};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The largest dataset file read (the server's own row and byte limits apply after).
pub const MAX_DATASET_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// `formaops experiment run` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ExperimentRunArgs {
    /// The server's base URL.
    #[arg(long, env = "FORMAOPS_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An API key (`fok_...`) of the user who owns the prompt.
    #[arg(long, env = "FORMAOPS_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// The prompt: its name, or its id.
    #[arg(long)]
    pub prompt: String,
    /// Versions and labels to compare, comma separated (`3,production`).
    #[arg(long, value_delimiter = ',', required = true)]
    pub versions: Vec<String>,
    /// A `.jsonl` or `.csv` file of input rows (uploaded as a new dataset), or a dataset id.
    #[arg(long)]
    pub dataset: String,
    /// Match each output against the row's expected output.
    #[arg(long = "match", value_parser = parse_match)]
    pub match_rule: Option<MatchRule>,
    /// Most executions in flight (the server's default when omitted).
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Queue priority (`LOW` when omitted).
    #[arg(long, value_parser = parse_priority)]
    pub priority: Option<Priority>,
    /// Check each output against its version's validation rules.
    #[arg(long)]
    pub validate_output: bool,
    /// Print the comparison as JSON on stdout (no progress bar, no table).
    #[arg(long)]
    pub json: bool,
    /// How often progress is read, in milliseconds (100..=60000).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub poll_ms: u64,
}

fn parse_match(s: &str) -> Result<MatchRule, String> {
    s.parse().map_err(|_| format!("unknown match rule {s:?} (exact, json_equal, contains, regex)"))
}

fn parse_priority(s: &str) -> Result<Priority, String> {
    s.to_uppercase().parse().map_err(|_| format!("unknown priority {s:?} (HIGH, NORMAL, LOW)"))
}

/// `POST /api/experiments` and `GET /api/experiments/{id}`: the experiment and its progress.
#[derive(Debug, Deserialize)]
struct ExperimentView {
    #[serde(flatten)]
    experiment: Experiment,
    progress: ExperimentProgress,
}

/// A REST client of one server, authenticated with one API key.
struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    fn new(base: &str, key: &str) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        anyhow::ensure!(
            base.starts_with("http://") || base.starts_with("https://"),
            "--url must start with http:// or https:// (got {base:?})"
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the HTTP client")?;
        Ok(Self { http, base, key: key.to_string() })
    }

    /// Calls the API; a non-2xx answer becomes an error carrying the server's error message.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<T> {
        self.call_with(method, path, &[], body).await
    }

    /// [`call`](Self::call) with query parameters (percent-encoded by reqwest).
    async fn call_with<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> anyhow::Result<T> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .query(query)
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.with_context(|| format!("{method} {path}: the server did not answer"))?;
        let status = res.status();
        let text = res.text().await.with_context(|| format!("{method} {path}: reading the answer"))?;
        if !status.is_success() {
            bail!("{method} {path}: {}", error_text(status, &text));
        }
        serde_json::from_str(&text).with_context(|| format!("{method} {path}: unexpected answer"))
    }
}

/// The server's `{"error": {"code", "message", "details"}}` as one line.
fn error_text(status: StatusCode, body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let e = &v["error"];
    match (e["code"].as_str(), e["message"].as_str()) {
        (Some(code), Some(msg)) => {
            let details =
                e.get("details").filter(|d| !d.is_null()).map(|d| format!(" {d}")).unwrap_or_default();
            format!("{status} {code}: {msg}{details}")
        }
        _ => format!("{status}"),
    }
}

async fn find_prompt(c: &Client, prompt: &str) -> anyhow::Result<String> {
    if uuid::Uuid::parse_str(prompt).is_ok() {
        return Ok(prompt.to_string());
    }
    let page: Value = c.call_with(Method::GET, "/api/prompts", &[("name", prompt)], None).await?;
    match page["items"].as_array().and_then(|items| items.first()).and_then(|p| p["id"].as_str()) {
        Some(id) => Ok(id.to_string()),
        None => bail!("no prompt named {prompt:?} (an archived prompt cannot run experiments)"),
    }
}

/// Reads a dataset file with core's parsers: every bad line is reported, nothing is sent.
fn read_rows(path: &Path) -> anyhow::Result<Vec<DatasetRow>> {
    let len = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len();
    anyhow::ensure!(
        len <= MAX_DATASET_FILE_BYTES,
        "{}: {len} bytes, above the {MAX_DATASET_FILE_BYTES}-byte limit",
        path.display()
    );
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let rows = match ext.as_deref() {
        Some("jsonl" | "ndjson") => dataset::parse_jsonl(&text),
        Some("csv") => dataset::parse_csv(&text),
        _ => bail!("{}: give a .jsonl or .csv file, or a dataset id", path.display()),
    };
    rows.map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

async fn dataset_id(c: &Client, dataset: &str) -> anyhow::Result<String> {
    if uuid::Uuid::parse_str(dataset).is_ok() {
        return Ok(dataset.to_string());
    }
    let path = PathBuf::from(dataset);
    let rows = read_rows(&path)?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("dataset");
    let name = format!("{stem} {}", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"));
    let created: Value =
        c.call(Method::POST, "/api/datasets", Some(&json!({ "name": name, "rows": rows }))).await?;
    created["id"].as_str().map(str::to_string).context("POST /api/datasets: no id in the answer")
}

fn bar(total: u64, hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:32} {pos}/{len} rows · {per_sec} · ETA {eta} · {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb
}

fn cost_text(cost: Option<f64>) -> String {
    cost.map_or_else(|| "unpriced".to_string(), |c| format!("${c:.4}"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{:.1}%", v * 100.0))
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.0} ms"))
}

/// The per-version comparison as a table.
pub fn comparison_table(c: &Comparison) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header([
        "version",
        "as",
        "done",
        "failed",
        "pass rate",
        "match rate",
        "p50",
        "p95",
        "p99",
        "tokens",
        "cost",
    ]);
    for v in &c.versions {
        let s = &v.summary;
        t.add_row([
            format!("v{}", v.version),
            v.requested.clone(),
            s.counts.completed.to_string(),
            (s.counts.failed + s.counts.cancelled).to_string(),
            pct(s.validation_pass_rate),
            pct(v.match_rate),
            ms(s.latency_ms.p50),
            ms(s.latency_ms.p95),
            ms(s.latency_ms.p99),
            s.tokens.total.to_string(),
            cost_text(s.cost_usd.and_then(|d| d.to_string().parse().ok())),
        ]);
    }
    t.to_string()
}

/// Runs `formaops experiment run`.
///
/// # Errors
/// Any step's failure, with the server's error message; a cancelled run (Ctrl-C) after the
/// cancel request is sent.
pub async fn run_experiment(args: ExperimentRunArgs) -> anyhow::Result<()> {
    let c = Client::new(&args.url, &args.api_key)?;
    let prompt_id = find_prompt(&c, &args.prompt).await?;
    let dataset_id = dataset_id(&c, &args.dataset).await?;
    // Each as text: the server reads "3" as version 3 and anything else as a label.
    let versions: Vec<&str> = args.versions.iter().map(|v| v.trim()).collect();
    let mut spec = json!({
        "promptId": prompt_id,
        "datasetId": dataset_id,
        "versions": versions,
        "validateOutput": args.validate_output,
    });
    if let Some(m) = args.match_rule {
        spec["match"] = json!(m);
    }
    if let Some(n) = args.concurrency {
        spec["concurrency"] = json!(n);
    }
    if let Some(p) = args.priority {
        spec["priority"] = json!(p);
    }
    let ExperimentView { experiment, .. } = c.call(Method::POST, "/api/experiments", Some(&spec)).await?;
    let id = experiment.id;
    if !args.json {
        let names: Vec<String> =
            experiment.targets.iter().map(|t| format!("{} (v{})", t.requested, t.version)).collect();
        eprintln!("experiment {id}: {} rows x {}", experiment.row_count, names.join(", "));
    }
    let pb = bar(experiment.total(), args.json);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let ExperimentView { progress: p, .. } =
            c.call(Method::GET, &format!("/api/experiments/{id}"), None).await?;
        pb.set_length(p.total);
        pb.set_position(p.done + p.failed);
        pb.set_message(format!(
            "{} failed · cost {}",
            p.failed,
            cost_text(p.cost_usd.and_then(|d| d.to_string().parse().ok()))
        ));
        if p.status != ExperimentStatus::Running {
            pb.finish();
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(args.poll_ms)) => {}
            _ = &mut interrupted => {
                pb.abandon_with_message("cancelling");
                let _: Value = c.call(Method::POST, &format!("/api/experiments/{id}/cancel"), None).await?;
                eprintln!("experiment {id} cancelled: queued rows cancelled, finished rows kept");
                std::process::exit(130);
            }
        }
    }
    let comparison: Comparison = c.call(Method::GET, &format!("/api/experiments/{id}/results"), None).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&comparison)?);
    } else {
        println!("{}", comparison_table(&comparison));
        println!(
            "experiment {id}: {}; rows and outputs: GET /api/experiments/{id}/results",
            comparison.experiment.status
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_name_what_they_accept() {
        assert_eq!(parse_priority("low"), Ok(Priority::Low));
        assert!(parse_priority("urgent").unwrap_err().contains("HIGH, NORMAL, LOW"));
        assert_eq!(parse_match("json_equal"), Ok(MatchRule::JsonEqual));
        assert!(parse_match("fuzzy").unwrap_err().contains("exact, json_equal, contains, regex"));
        assert!(Client::new("127.0.0.1:8080", "k").is_err(), "a URL without a scheme is refused");
    }

    #[test]
    fn server_errors_keep_code_message_and_details() {
        let body = r#"{"error":{"code":"not_found","message":"dataset x not found","details":null}}"#;
        assert_eq!(error_text(StatusCode::NOT_FOUND, body), "404 Not Found not_found: dataset x not found");
        let body = r#"{"error":{"code":"invalid_rows","message":"2 rows","details":{"problems":[1]}}}"#;
        assert_eq!(
            error_text(StatusCode::UNPROCESSABLE_ENTITY, body),
            r#"422 Unprocessable Entity invalid_rows: 2 rows {"problems":[1]}"#
        );
        assert_eq!(error_text(StatusCode::BAD_GATEWAY, "<html>"), "502 Bad Gateway");
    }

    #[test]
    fn dataset_files_are_read_with_the_core_parsers() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("rows.jsonl");
        std::fs::write(
            &good,
            "{\"inputs\":{\"name\":\"Ada\"}}\n{\"inputs\":{\"name\":\"Bo\"},\"expected\":\"hi\"}\n",
        )
        .unwrap();
        assert_eq!(read_rows(&good).unwrap().len(), 2);
        let bad = dir.path().join("bad.jsonl");
        std::fs::write(&bad, "{\"inputs\":{}}\nnot json\n").unwrap();
        let e = read_rows(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.jsonl") && e.contains("line 2"), "{e}");
        let other = dir.path().join("rows.txt");
        std::fs::write(&other, "x").unwrap();
        assert!(read_rows(&other).unwrap_err().to_string().contains(".jsonl or .csv"));
    }
}
