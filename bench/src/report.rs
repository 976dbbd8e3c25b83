//! Turns a directory of run and search results into one JSON summary and a markdown report.
//!
//! Runs are paired by their tags: `store` (sqlite, postgres, ...), `mock_ms` (the mock's
//! latency), `path` (`direct` = the mock called by the generator, `via` = through FormaOps'
//! REST execute, `openai` = the same prompt through the OpenAI-compatible endpoint) and
//! `rate`. Added latency is the difference of percentiles, via minus direct (and openai minus
//! via), measured in the same harness run (a difference of percentiles, not a percentile of
//! differences).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::loadgen::{RunResult, SearchResult};

/// Most result files one report reads.
const MAX_FILES: usize = 10_000;
/// Largest result file read.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// A scale measurement written by the scale step of `scripts/bench.sh` (any producer may
/// write `{"kind": "scale", "rows": [...]}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleRow {
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// The target as text (`<= 10 ms`), if there is one.
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub met: Option<bool>,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ScaleFile {
    kind: String,
    rows: Vec<ScaleRow>,
}

/// Everything read from a results directory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Collected {
    pub meta: Option<Value>,
    pub runs: Vec<RunResult>,
    pub searches: Vec<SearchResult>,
    pub scale: Vec<ScaleRow>,
}

/// One added-latency row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddedRow {
    pub store: String,
    pub mock_ms: String,
    pub rate: f64,
    pub direct_p50_us: f64,
    pub direct_p99_us: f64,
    pub via_p50_us: f64,
    pub via_p90_us: f64,
    pub via_p99_us: f64,
    pub via_p999_us: f64,
    pub via_max_us: f64,
    pub added_p50_us: f64,
    pub added_p99_us: f64,
    pub via_achieved_rps: f64,
    pub via_errors: u64,
    pub via_dropped: u64,
    pub direct_errors: u64,
    pub server_cpu_per_exec_us: Option<f64>,
    pub server_peak_rss_mib: Option<f64>,
    pub machine_cpu_busy_pct: Option<f64>,
}

/// The OpenAI-compatible endpoint next to REST execute: the same prompt and inputs, same
/// server, same offered load, run one after the other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAiRow {
    pub store: String,
    pub mock_ms: String,
    pub rate: f64,
    /// The mock called directly at this rate, when that run exists.
    pub direct_p50_us: Option<f64>,
    pub direct_p99_us: Option<f64>,
    pub rest_p50_us: f64,
    pub rest_p90_us: f64,
    pub rest_p99_us: f64,
    pub openai_p50_us: f64,
    pub openai_p90_us: f64,
    pub openai_p99_us: f64,
    /// OpenAI endpoint minus REST execute, p50 and p99.
    pub openai_minus_rest_p50_us: f64,
    pub openai_minus_rest_p99_us: f64,
    /// OpenAI endpoint minus the mock called directly (its added latency over the mock).
    pub openai_added_p50_us: Option<f64>,
    pub openai_added_p99_us: Option<f64>,
    pub rest_errors: u64,
    pub openai_errors: u64,
    pub rest_dropped: u64,
    pub openai_dropped: u64,
    pub rest_cpu_per_exec_us: Option<f64>,
    pub openai_cpu_per_exec_us: Option<f64>,
    pub machine_cpu_busy_pct: Option<f64>,
}

/// A target from the issue, evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetRow {
    pub target: String,
    pub measured: String,
    /// `None` when the figure was not measured in this run.
    pub met: Option<bool>,
}

/// The combined summary written as `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub meta: Option<Value>,
    pub added: Vec<AddedRow>,
    /// The OpenAI-compatible endpoint next to REST execute (runs tagged `path=openai`).
    #[serde(default)]
    pub openai: Vec<OpenAiRow>,
    pub sustainable: Vec<SustainableRow>,
    pub peak_rss_mib: BTreeMap<String, f64>,
    pub targets: Vec<TargetRow>,
    /// FormaOps next to the peers measured in the same run (runs tagged with a peer's store).
    #[serde(default)]
    pub peers: Vec<PeerRow>,
    pub scale: Vec<ScaleRow>,
    /// Fixed-rate runs with errors (label: count). Quick mode fails when this is not empty.
    pub runs_with_errors: BTreeMap<String, u64>,
    pub runs: Vec<RunResult>,
    pub searches: Vec<SearchResult>,
}

/// One search, summarised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SustainableRow {
    pub store: String,
    pub mock_ms: String,
    pub path: String,
    pub best_rate: Option<f64>,
    pub first_failing_rate: Option<f64>,
    pub limited_by_max_rate: bool,
    pub p99_bound_us: f64,
    pub at_best_p50_us: Option<f64>,
    pub at_best_p99_us: Option<f64>,
    pub at_best_cpu_per_exec_us: Option<f64>,
    pub at_best_machine_busy_pct: Option<f64>,
}

fn tag<'a>(tags: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    tags.get(key).map_or("", String::as_str)
}

/// Reads every `*.json` result in `dir` (except `report.json`); `meta.json` becomes `meta`.
pub fn collect(dir: &Path) -> Result<Collected> {
    let mut out = Collected::default();
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading results directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .take(MAX_FILES + 1)
        .collect();
    if paths.len() > MAX_FILES {
        anyhow::bail!("{}: more than {MAX_FILES} result files", dir.display());
    }
    paths.sort();
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "report.json" {
            continue;
        }
        let size = std::fs::metadata(&path)?.len();
        if size > MAX_FILE_BYTES {
            anyhow::bail!("{}: {size} bytes, above {MAX_FILE_BYTES}", path.display());
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let value: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if name == "meta.json" {
            out.meta = Some(value);
            continue;
        }
        match value.get("kind").and_then(Value::as_str) {
            Some("search") => out.searches.push(
                serde_json::from_value(value)
                    .with_context(|| format!("{}: not a search result", path.display()))?,
            ),
            Some("scale") => {
                let f: ScaleFile = serde_json::from_value(value)
                    .with_context(|| format!("{}: not a scale file", path.display()))?;
                out.scale.extend(f.rows);
            }
            _ => out.runs.push(
                serde_json::from_value(value)
                    .with_context(|| format!("{}: not a run result", path.display()))?,
            ),
        }
    }
    Ok(out)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Pairs runs, summarises searches and evaluates the issue's targets.
pub fn build(c: Collected) -> Report {
    let mut added = Vec::new();
    let key = |r: &RunResult| {
        (
            tag(&r.tags, "store").to_string(),
            tag(&r.tags, "mock_ms").to_string(),
            tag(&r.tags, "rate").to_string(),
        )
    };
    for via in c.runs.iter().filter(|r| tag(&r.tags, "path") == "via") {
        let Some(direct) = c.runs.iter().find(|d| tag(&d.tags, "path") == "direct" && key(d) == key(via))
        else {
            continue;
        };
        let (store, mock_ms, _) = key(via);
        added.push(AddedRow {
            store,
            mock_ms,
            rate: via.target_rate,
            direct_p50_us: direct.latency.p50_us,
            direct_p99_us: direct.latency.p99_us,
            via_p50_us: via.latency.p50_us,
            via_p90_us: via.latency.p90_us,
            via_p99_us: via.latency.p99_us,
            via_p999_us: via.latency.p999_us,
            via_max_us: via.latency.max_us,
            added_p50_us: via.latency.p50_us - direct.latency.p50_us,
            added_p99_us: via.latency.p99_us - direct.latency.p99_us,
            via_achieved_rps: via.achieved_rps,
            via_errors: via.errors.total,
            via_dropped: via.dropped,
            direct_errors: direct.errors.total,
            server_cpu_per_exec_us: via.server.and_then(|s| s.cpu_per_ok_us),
            server_peak_rss_mib: via.server.map(|s| mib(s.vm_hwm_kib)),
            machine_cpu_busy_pct: via.machine_cpu_busy_pct,
        });
    }
    added.sort_by(|a, b| {
        (&a.store, a.mock_ms.parse::<u64>().unwrap_or(0), a.rate as u64).cmp(&(
            &b.store,
            b.mock_ms.parse::<u64>().unwrap_or(0),
            b.rate as u64,
        ))
    });

    let mut openai = Vec::new();
    for o in c.runs.iter().filter(|r| tag(&r.tags, "path") == "openai") {
        let Some(rest) = c.runs.iter().find(|d| tag(&d.tags, "path") == "via" && key(d) == key(o)) else {
            continue;
        };
        let direct = c.runs.iter().find(|d| tag(&d.tags, "path") == "direct" && key(d) == key(o));
        let (store, mock_ms, _) = key(o);
        openai.push(OpenAiRow {
            store,
            mock_ms,
            rate: o.target_rate,
            direct_p50_us: direct.map(|d| d.latency.p50_us),
            direct_p99_us: direct.map(|d| d.latency.p99_us),
            rest_p50_us: rest.latency.p50_us,
            rest_p90_us: rest.latency.p90_us,
            rest_p99_us: rest.latency.p99_us,
            openai_p50_us: o.latency.p50_us,
            openai_p90_us: o.latency.p90_us,
            openai_p99_us: o.latency.p99_us,
            openai_minus_rest_p50_us: o.latency.p50_us - rest.latency.p50_us,
            openai_minus_rest_p99_us: o.latency.p99_us - rest.latency.p99_us,
            openai_added_p50_us: direct.map(|d| o.latency.p50_us - d.latency.p50_us),
            openai_added_p99_us: direct.map(|d| o.latency.p99_us - d.latency.p99_us),
            rest_errors: rest.errors.total,
            openai_errors: o.errors.total,
            rest_dropped: rest.dropped,
            openai_dropped: o.dropped,
            rest_cpu_per_exec_us: rest.server.and_then(|s| s.cpu_per_ok_us),
            openai_cpu_per_exec_us: o.server.and_then(|s| s.cpu_per_ok_us),
            machine_cpu_busy_pct: o.machine_cpu_busy_pct,
        });
    }
    openai.sort_by(|a, b| {
        (&a.store, a.mock_ms.parse::<u64>().unwrap_or(0), a.rate as u64).cmp(&(
            &b.store,
            b.mock_ms.parse::<u64>().unwrap_or(0),
            b.rate as u64,
        ))
    });

    let sustainable: Vec<SustainableRow> = c
        .searches
        .iter()
        .map(|s| {
            let best = s.best();
            SustainableRow {
                store: tag(&s.tags, "store").to_string(),
                mock_ms: tag(&s.tags, "mock_ms").to_string(),
                path: tag(&s.tags, "path").to_string(),
                best_rate: s.best_rate,
                first_failing_rate: s.first_failing_rate,
                limited_by_max_rate: s.limited_by_max_rate,
                p99_bound_us: s.criteria.p99_bound_us,
                at_best_p50_us: best.map(|b| b.latency.p50_us),
                at_best_p99_us: best.map(|b| b.latency.p99_us),
                at_best_cpu_per_exec_us: best.and_then(|b| b.server.and_then(|s| s.cpu_per_ok_us)),
                at_best_machine_busy_pct: best.and_then(|b| b.machine_cpu_busy_pct),
            }
        })
        .collect();

    // Peak RSS per store: the largest VmHWM seen by any run or search step through FormaOps.
    let mut peak_rss_mib: BTreeMap<String, f64> = BTreeMap::new();
    let via_runs = c
        .runs
        .iter()
        .chain(c.searches.iter().flat_map(|s| s.steps.iter().map(|st| &st.result)))
        .filter(|r| tag(&r.tags, "path") == "via");
    for r in via_runs {
        if let Some(s) = r.server {
            let e = peak_rss_mib.entry(tag(&r.tags, "store").to_string()).or_insert(0.0);
            *e = e.max(mib(s.vm_hwm_kib));
        }
    }

    let runs_with_errors: BTreeMap<String, u64> = c
        .runs
        .iter()
        // A peer past its knee fails requests: that is its measurement, not a FormaOps error
        // (its errors are in the added-latency table).
        .filter(|r| r.errors.total > 0 && !is_peer(tag(&r.tags, "store")))
        .map(|r| (if r.label.is_empty() { r.url.clone() } else { r.label.clone() }, r.errors.total))
        .collect();

    let fixed_sustained = fixed_rate_sustained(&c.runs, &c.searches);
    let targets = targets(&added, &sustainable, &fixed_sustained, &peak_rss_mib, &c.scale);
    let peers = peer_rows(&added);
    Report {
        meta: c.meta,
        added,
        openai,
        sustainable,
        peak_rss_mib,
        targets,
        peers,
        scale: c.scale,
        runs_with_errors,
        runs: c.runs,
        searches: c.searches,
    }
}

/// Per store, the highest fixed-rate run through FormaOps that meets the search's criteria
/// (0 errors, 0 drops, p99 under the store's search bound, or 100 ms without a search). On a
/// noisy machine a search can stop low on a stall while a higher fixed rate passed cleanly.
fn fixed_rate_sustained(runs: &[RunResult], searches: &[SearchResult]) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = BTreeMap::new();
    for r in runs.iter().filter(|r| tag(&r.tags, "path") == "via") {
        let store = tag(&r.tags, "store");
        let bound = searches
            .iter()
            .find(|s| tag(&s.tags, "store") == store)
            .map_or(100_000.0, |s| s.criteria.p99_bound_us);
        if r.clean() && r.latency.p99_us <= bound {
            let e = out.entry(store.to_string()).or_insert(0.0);
            *e = e.max(r.target_rate);
        }
    }
    out
}

fn fmt_us(v: f64) -> String {
    if v.abs() >= 10_000.0 { format!("{:.1} ms", v / 1000.0) } else { format!("{v:.0} µs") }
}

/// The systems a run can measure: FormaOps per store and durability (`sqlite`, `postgres`,
/// `sqlite-relaxed`, `postgres-relaxed`, `memory`) and peers (`litellm`), by their `store` tag.
pub const PEERS: &[&str] = &["litellm"];

fn is_peer(store: &str) -> bool {
    PEERS.contains(&store)
}

/// The issue's latency bounds for a FormaOps store tag at 1,000/s (mock 0 ms): `strict` p50
/// <= 1 ms, p99 <= 3 ms; `relaxed` p50 <= 0.3 ms, p99 <= 1 ms.
fn latency_bounds(store: &str) -> (f64, f64) {
    if store.ends_with("-relaxed") { (300.0, 1000.0) } else { (1000.0, 3000.0) }
}

fn targets(
    added: &[AddedRow],
    sustainable: &[SustainableRow],
    fixed: &BTreeMap<String, f64>,
    rss: &BTreeMap<String, f64>,
    scale: &[ScaleRow],
) -> Vec<TargetRow> {
    let mut out = Vec::new();
    let miss_by = |measured: f64, bound: f64| {
        if measured <= bound { String::new() } else { format!(" (missed by {})", fmt_us(measured - bound)) }
    };
    for store in ["postgres", "sqlite", "postgres-relaxed", "sqlite-relaxed"] {
        let (p50_bound, p99_bound) = latency_bounds(store);
        let row = added.iter().find(|r| r.store == store && r.mock_ms == "0" && r.rate == 1000.0);
        for (what, bound, value) in
            [("p50", p50_bound, row.map(|r| r.added_p50_us)), ("p99", p99_bound, row.map(|r| r.added_p99_us))]
        {
            let target = format!("added {what} at 1,000/s, {store} <= {}", fmt_us(bound));
            out.push(match (row, value) {
                (Some(r), Some(v)) => TargetRow {
                    target,
                    measured: format!("{}{}", fmt_us(v), miss_by(v, bound)),
                    met: Some(v <= bound && r.via_errors == 0),
                },
                _ => TargetRow { target, measured: "not measured".into(), met: None },
            });
        }
    }
    // Server CPU per execution at 1,000/s: what the server spends besides the provider call.
    for store in ["postgres", "sqlite", "postgres-relaxed", "sqlite-relaxed"] {
        let bound = 150.0;
        let target = format!("server CPU per execution at 1,000/s, {store} <= {}", fmt_us(bound));
        let row = added.iter().find(|r| r.store == store && r.mock_ms == "0" && r.rate == 1000.0);
        out.push(match row.and_then(|r| r.server_cpu_per_exec_us) {
            Some(v) => TargetRow {
                target,
                measured: format!("{}{}", fmt_us(v), miss_by(v, bound)),
                met: Some(v <= bound),
            },
            None => TargetRow { target, measured: "not measured".into(), met: None },
        });
    }
    let best = |store: &str| {
        sustainable
            .iter()
            .filter(|s| s.store == store && s.path == "via")
            .filter_map(|s| s.best_rate)
            .chain(fixed.get(store).copied())
            .fold(None, |acc: Option<f64>, r| Some(acc.map_or(r, |a| a.max(r))))
    };
    {
        let (store, goal) = ("postgres", 5000.0);
        let searched =
            sustainable.iter().any(|s| s.store == store && s.path == "via") || fixed.contains_key(store);
        let b = best(store);
        out.push(TargetRow {
            target: format!("durable synchronous executions/s on {store}, 0 errors >= {goal:.0}"),
            measured: match (searched, b) {
                (false, _) => "not measured".into(),
                (true, None) => "no rate passed".into(),
                (true, Some(r)) if r >= goal => format!("{r:.0}/s"),
                (true, Some(r)) => format!("{r:.0}/s (missed by {:.0}/s)", goal - r),
            },
            met: searched.then(|| b.is_some_and(|r| r >= goal)),
        });
    }
    for (store, peak) in rss.iter().filter(|(s, _)| !is_peer(s)) {
        out.push(TargetRow {
            target: format!("peak RSS of the server ({store}) <= 100 MB, over every run and search step"),
            measured: format!("{peak:.1} MiB"),
            met: Some(*peak * 1024.0 * 1024.0 <= 100e6),
        });
    }
    for s in scale.iter().filter(|s| s.target.is_some()) {
        out.push(TargetRow {
            target: format!("{} {}", s.name, s.target.as_deref().unwrap_or("")),
            measured: format!("{:.2} {}", s.value, s.unit),
            met: s.met,
        });
    }
    out
}

/// FormaOps next to each peer measured in the same run: per mock latency and rate, the added
/// latency of each system and the peer's over FormaOps' (a ratio above 1: the peer adds more);
/// per system, the highest sustainable rate and FormaOps' over the peer's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerRow {
    /// A FormaOps store tag (`postgres`, `sqlite-relaxed`, ...).
    pub store: String,
    /// The peer's store tag (`litellm`).
    pub peer: String,
    pub mock_ms: String,
    pub rate: f64,
    pub added_p50_us: f64,
    pub added_p99_us: f64,
    pub peer_added_p50_us: f64,
    pub peer_added_p99_us: f64,
    /// Peer added p50 / FormaOps added p50 (`None` when FormaOps' is not positive).
    pub p50_ratio: Option<f64>,
    pub p99_ratio: Option<f64>,
}

fn ratio(peer: f64, ours: f64) -> Option<f64> {
    (ours > 0.0).then(|| peer / ours)
}

fn peer_rows(added: &[AddedRow]) -> Vec<PeerRow> {
    let mut out = Vec::new();
    for p in added.iter().filter(|a| is_peer(&a.store)) {
        for a in added.iter().filter(|a| !is_peer(&a.store) && a.mock_ms == p.mock_ms && a.rate == p.rate) {
            out.push(PeerRow {
                store: a.store.clone(),
                peer: p.store.clone(),
                mock_ms: a.mock_ms.clone(),
                rate: a.rate,
                added_p50_us: a.added_p50_us,
                added_p99_us: a.added_p99_us,
                peer_added_p50_us: p.added_p50_us,
                peer_added_p99_us: p.added_p99_us,
                p50_ratio: ratio(p.added_p50_us, a.added_p50_us),
                p99_ratio: ratio(p.added_p99_us, a.added_p99_us),
            });
        }
    }
    out
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or("-".to_string(), f)
}

/// The markdown report.
pub fn markdown(r: &Report) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# FormaOps load harness results\n");
    if let Some(obj) = r.meta.as_ref().and_then(Value::as_object) {
        for (k, v) in obj {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            let _ = writeln!(md, "- {k}: {v}");
        }
        md.push('\n');
    }
    let _ = writeln!(md, "## Added latency (through FormaOps minus direct to the mock, same run)\n");
    let _ = writeln!(
        md,
        "Open-loop, latency from the scheduled send time. Added = percentile(via) - percentile(direct).\n"
    );
    let _ = writeln!(
        md,
        "| store | mock | rate/s | direct p50 | direct p99 | via p50 | via p90 | via p99 | via p99.9 | via max | **added p50** | **added p99** | achieved/s | errors (via/direct) | dropped | server CPU/exec | server peak RSS | machine busy |"
    );
    let _ = writeln!(
        md,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for a in &r.added {
        let _ = writeln!(
            md,
            "| {} | {} ms | {:.0} | {} | {} | {} | {} | {} | {} | {} | **{}** | **{}** | {:.0} | {}/{} | {} | {} | {} | {} |",
            a.store,
            a.mock_ms,
            a.rate,
            fmt_us(a.direct_p50_us),
            fmt_us(a.direct_p99_us),
            fmt_us(a.via_p50_us),
            fmt_us(a.via_p90_us),
            fmt_us(a.via_p99_us),
            fmt_us(a.via_p999_us),
            fmt_us(a.via_max_us),
            fmt_us(a.added_p50_us),
            fmt_us(a.added_p99_us),
            a.via_achieved_rps,
            a.via_errors,
            a.direct_errors,
            a.via_dropped,
            opt(a.server_cpu_per_exec_us, |v| format!("{v:.0} µs")),
            opt(a.server_peak_rss_mib, |v| format!("{v:.1} MiB")),
            opt(a.machine_cpu_busy_pct, |v| format!("{v:.0}%")),
        );
    }
    if !r.openai.is_empty() {
        let _ = writeln!(
            md,
            "\n## OpenAI-compatible endpoint next to REST execute (same prompt, same rate, same run)\n"
        );
        let _ = writeln!(
            md,
            "`POST /openai/v1/chat/completions` with `model: \"formaops::<name>\"` and `inputs`, run right after `POST /api/prompts/{{id}}/execute` at the same offered load. Difference = percentile(OpenAI) - percentile(REST); added over the mock = percentile(OpenAI) - percentile(direct).\n"
        );
        let _ = writeln!(
            md,
            "| store | mock | rate/s | REST p50 | REST p90 | REST p99 | OpenAI p50 | OpenAI p90 | OpenAI p99 | **OpenAI - REST p50** | **OpenAI - REST p99** | OpenAI added over mock p50 / p99 | errors (REST/OpenAI) | dropped (REST/OpenAI) | server CPU/exec (REST/OpenAI) | machine busy |"
        );
        let _ =
            writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for o in &r.openai {
            let _ = writeln!(
                md,
                "| {} | {} ms | {:.0} | {} | {} | {} | {} | {} | {} | **{}** | **{}** | {} / {} | {}/{} | {}/{} | {} / {} | {} |",
                o.store,
                o.mock_ms,
                o.rate,
                fmt_us(o.rest_p50_us),
                fmt_us(o.rest_p90_us),
                fmt_us(o.rest_p99_us),
                fmt_us(o.openai_p50_us),
                fmt_us(o.openai_p90_us),
                fmt_us(o.openai_p99_us),
                fmt_us(o.openai_minus_rest_p50_us),
                fmt_us(o.openai_minus_rest_p99_us),
                opt(o.openai_added_p50_us, fmt_us),
                opt(o.openai_added_p99_us, fmt_us),
                o.rest_errors,
                o.openai_errors,
                o.rest_dropped,
                o.openai_dropped,
                opt(o.rest_cpu_per_exec_us, |v| format!("{v:.0} µs")),
                opt(o.openai_cpu_per_exec_us, |v| format!("{v:.0} µs")),
                opt(o.machine_cpu_busy_pct, |v| format!("{v:.0}%")),
            );
        }
    }
    if !r.sustainable.is_empty() {
        let _ = writeln!(md, "\n## Highest sustainable rate (0 errors, 0 drops, p99 under the bound)\n");
        let _ = writeln!(
            md,
            "| store | mock | path | highest passing | lowest failing | p99 bound | p50 at best | p99 at best | server CPU/exec at best | machine busy at best |"
        );
        let _ = writeln!(md, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for s in &r.sustainable {
            let _ = writeln!(
                md,
                "| {} | {} ms | {} | {}{} | {} | {} | {} | {} | {} | {} |",
                s.store,
                s.mock_ms,
                s.path,
                opt(s.best_rate, |v| format!("{v:.0}/s")),
                if s.limited_by_max_rate { " (search max)" } else { "" },
                opt(s.first_failing_rate, |v| format!("{v:.0}/s")),
                fmt_us(s.p99_bound_us),
                opt(s.at_best_p50_us, fmt_us),
                opt(s.at_best_p99_us, fmt_us),
                opt(s.at_best_cpu_per_exec_us, |v| format!("{v:.0} µs")),
                opt(s.at_best_machine_busy_pct, |v| format!("{v:.0}%")),
            );
        }
    }
    if !r.peers.is_empty() {
        let _ = writeln!(md, "\n## FormaOps next to its peers (same mock, same rates, same run)\n");
        let _ = writeln!(
            md,
            "Added latency over the mock called directly; ratio = the peer's added latency / FormaOps' (above 1: the peer adds more).\n"
        );
        let _ = writeln!(
            md,
            "| FormaOps | peer | mock | rate/s | FormaOps added p50 | peer added p50 | **p50 ratio** | FormaOps added p99 | peer added p99 | **p99 ratio** |"
        );
        let _ = writeln!(md, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for p in &r.peers {
            let _ = writeln!(
                md,
                "| {} | {} | {} ms | {:.0} | {} | {} | **{}** | {} | {} | **{}** |",
                p.store,
                p.peer,
                p.mock_ms,
                p.rate,
                fmt_us(p.added_p50_us),
                fmt_us(p.peer_added_p50_us),
                opt(p.p50_ratio, |v| format!("{v:.1}x")),
                fmt_us(p.added_p99_us),
                fmt_us(p.peer_added_p99_us),
                opt(p.p99_ratio, |v| format!("{v:.1}x")),
            );
        }
        let via: Vec<&SustainableRow> = r.sustainable.iter().filter(|s| s.path == "via").collect();
        for peer in via.iter().filter(|s| is_peer(&s.store)) {
            for ours in via.iter().filter(|s| !is_peer(&s.store) && s.mock_ms == peer.mock_ms) {
                let _ = writeln!(
                    md,
                    "\nHighest sustainable rate, mock {} ms: FormaOps ({}) {}, {} {}: **{}** FormaOps' rate.",
                    ours.mock_ms,
                    ours.store,
                    opt(ours.best_rate, |v| format!("{v:.0}/s")),
                    peer.store,
                    opt(peer.best_rate, |v| format!("{v:.0}/s")),
                    match (ours.best_rate, peer.best_rate) {
                        (Some(o), Some(p)) if p > 0.0 => format!("{:.1}x", o / p),
                        _ => "-".to_string(),
                    },
                );
            }
        }
    }
    if !r.scale.is_empty() {
        let _ = writeln!(md, "\n## Scale\n");
        let _ = writeln!(md, "| measurement | value | target | met | note |");
        let _ = writeln!(md, "|---|---:|---|---|---|");
        for s in &r.scale {
            let _ = writeln!(
                md,
                "| {} | {:.2} {} | {} | {} | {} |",
                s.name,
                s.value,
                s.unit,
                s.target.as_deref().unwrap_or("-"),
                s.met.map_or("-", |m| if m { "met" } else { "MISSED" }),
                s.note.as_deref().unwrap_or(""),
            );
        }
    }
    let _ = writeln!(md, "\n## Targets (issue 18)\n");
    let _ = writeln!(md, "| target | measured | |");
    let _ = writeln!(md, "|---|---|---|");
    for t in &r.targets {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            t.target,
            t.measured,
            match t.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "not measured",
            }
        );
    }
    let _ = writeln!(md, "\n## Errors\n");
    if r.runs_with_errors.is_empty() {
        let _ = writeln!(md, "No fixed-rate run had an error.");
    } else {
        for (label, n) in &r.runs_with_errors {
            let _ = writeln!(md, "- {label}: {n} errors");
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::{ErrorCounts, SearchConfig, SearchStep, ServerUsage};
    use crate::stats::LatencySummary;

    fn run(store: &str, path: &str, rate: f64, p50: f64, p99: f64) -> RunResult {
        let tags: BTreeMap<String, String> = [
            ("store", store.to_string()),
            ("path", path.to_string()),
            ("mock_ms", "0".to_string()),
            ("rate", format!("{rate}")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        RunResult {
            label: format!("{store}/{path}/{rate}"),
            tags,
            url: "http://127.0.0.1/".into(),
            method: "POST".into(),
            target_rate: rate,
            duration_s: 1.0,
            max_in_flight: 10,
            scheduled: rate as u64,
            sent: rate as u64,
            ok: rate as u64,
            dropped: 0,
            errors: ErrorCounts::default(),
            elapsed_s: 1.0,
            achieved_rps: rate,
            latency: LatencySummary { count: rate as u64, p50_us: p50, p99_us: p99, ..Default::default() },
            service_time: LatencySummary::default(),
            dispatch_lag: LatencySummary::default(),
            server: (path != "direct").then_some(ServerUsage {
                pid: 1,
                cpu_seconds: 0.1,
                cpu_per_ok_us: Some(100.0),
                vm_hwm_kib: 50 * 1024,
                peak_is_this_run: true,
                vm_rss_kib: 40 * 1024,
            }),
            machine_cpu_busy_pct: Some(50.0),
            error_samples: Vec::new(),
        }
    }

    #[test]
    fn pairs_and_evaluates_targets() {
        let mut failing = run("postgres", "via", 1000.0, 900.0, 5000.0);
        failing.errors.total = 3;
        let c = Collected {
            meta: None,
            runs: vec![
                run("postgres", "direct", 1000.0, 100.0, 300.0),
                run("postgres", "via", 1000.0, 350.0, 1200.0),
                run("sqlite", "direct", 1000.0, 100.0, 300.0),
                run("sqlite", "via", 1000.0, 300.0, 900.0),
                run("sqlite", "via", 100.0, 300.0, 900.0), // no direct twin: not paired
            ],
            searches: vec![SearchResult {
                kind: "search".into(),
                label: String::new(),
                tags: [("store", "postgres"), ("path", "via"), ("mock_ms", "0")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                criteria: SearchConfig {
                    start_rate: 1000.0,
                    max_rate: 8000.0,
                    max_steps: 5,
                    p99_bound_us: 10_000.0,
                    precision: 0.1,
                },
                best_rate: Some(6000.0),
                first_failing_rate: Some(7000.0),
                limited_by_max_rate: false,
                steps: vec![
                    SearchStep {
                        rate: 6000.0,
                        passed: true,
                        result: run("postgres", "via", 6000.0, 400.0, 2000.0),
                    },
                    SearchStep { rate: 7000.0, passed: false, result: failing },
                ],
            }],
            scale: vec![],
        };
        let r = build(c);
        assert_eq!(r.added.len(), 2);
        let pg = r.added.iter().find(|a| a.store == "postgres").unwrap();
        assert_eq!(pg.added_p50_us, 250.0);
        assert_eq!(pg.added_p99_us, 900.0);
        let t = |prefix: &str| r.targets.iter().find(|t| t.target.starts_with(prefix)).unwrap().clone();
        assert_eq!(t("added p50").met, Some(true));
        assert_eq!(t("added p99").met, Some(true));
        assert_eq!(t("durable synchronous executions/s on postgres").met, Some(true));
        assert_eq!(t("added p50 at 1,000/s, sqlite <=").met, Some(true));
        // Relaxed durability was not run: its targets say so instead of passing.
        let relaxed = t("added p99 at 1,000/s, postgres-relaxed <= 1000 µs");
        assert_eq!((relaxed.met, relaxed.measured.as_str()), (None, "not measured"));
        assert_eq!(t("peak RSS of the server (postgres)").met, Some(true));
        assert_eq!(r.sustainable[0].at_best_p99_us, Some(2000.0));
        // Search steps that fail under overload are not "runs with errors".
        assert!(r.runs_with_errors.is_empty());
        let md = markdown(&r);
        assert!(md.contains("| postgres | 0 ms | 1000 |"), "{md}");
        assert!(md.contains("**250 µs**"), "{md}");
        assert!(md.contains("6000/s"), "{md}");
    }

    #[test]
    fn pairs_the_openai_endpoint_with_rest_execute() {
        let mut openai_err = run("sqlite", "openai", 1000.0, 700.0, 2500.0);
        openai_err.errors.total = 4;
        let r = build(Collected {
            meta: None,
            runs: vec![
                run("postgres", "direct", 100.0, 100.0, 300.0),
                run("postgres", "via", 100.0, 400.0, 1500.0),
                run("postgres", "openai", 100.0, 450.0, 1400.0),
                // No direct run at this rate: the difference to REST is still reported.
                run("sqlite", "via", 1000.0, 600.0, 2000.0),
                openai_err,
                // No REST run at this rate: not paired.
                run("sqlite", "openai", 100.0, 1.0, 2.0),
            ],
            searches: vec![],
            scale: vec![],
        });
        assert_eq!(r.openai.len(), 2, "{:?}", r.openai);
        let pg = &r.openai[0];
        assert_eq!((pg.store.as_str(), pg.rate), ("postgres", 100.0));
        assert_eq!(pg.openai_minus_rest_p50_us, 50.0);
        assert_eq!(pg.openai_minus_rest_p99_us, -100.0);
        assert_eq!(pg.openai_added_p50_us, Some(350.0));
        assert_eq!(pg.openai_added_p99_us, Some(1100.0));
        let sq = &r.openai[1];
        assert_eq!((sq.store.as_str(), sq.rate), ("sqlite", 1000.0));
        assert_eq!(sq.openai_added_p50_us, None);
        assert_eq!(sq.openai_errors, 4);
        // An OpenAI run's errors fail the quick check like any run's.
        assert_eq!(r.runs_with_errors.get("sqlite/openai/1000"), Some(&4));
        // The REST/direct pairing is not disturbed by the openai runs.
        assert_eq!(r.added.len(), 1);
        let md = markdown(&r);
        assert!(md.contains("OpenAI-compatible endpoint next to REST execute"), "{md}");
        assert!(md.contains("| postgres | 0 ms | 100 | 400 µs |"), "{md}");
        assert!(md.contains("**50 µs** | **-100 µs** | 350 µs / 1100 µs |"), "{md}");
        // A report without openai runs has no such section, and older report.json files
        // (without the field) still parse.
        let plain = build(Collected::default());
        assert!(!markdown(&plain).contains("OpenAI-compatible"));
        let mut v = serde_json::to_value(&plain).unwrap();
        v.as_object_mut().unwrap().remove("openai");
        assert!(serde_json::from_value::<Report>(v).is_ok());
    }

    #[test]
    fn reports_misses_and_errors() {
        let mut via = run("postgres", "via", 1000.0, 2000.0, 9000.0);
        via.errors.total = 2;
        let r = build(Collected {
            meta: None,
            runs: vec![run("postgres", "direct", 1000.0, 100.0, 300.0), via],
            searches: vec![],
            scale: vec![],
        });
        let p50 = r.targets.iter().find(|t| t.target.starts_with("added p50")).unwrap();
        assert_eq!(p50.met, Some(false));
        assert!(p50.measured.contains("missed by 900 µs"), "{}", p50.measured);
        assert_eq!(r.runs_with_errors.get("postgres/via/1000"), Some(&2));
    }

    #[test]
    fn sets_formaops_next_to_a_peer() {
        let search = |store: &str, best: f64| SearchResult {
            kind: "search".into(),
            label: String::new(),
            tags: [("store", store), ("path", "via"), ("mock_ms", "0")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            criteria: SearchConfig {
                start_rate: 100.0,
                max_rate: 8000.0,
                max_steps: 5,
                p99_bound_us: 100_000.0,
                precision: 0.1,
            },
            best_rate: Some(best),
            first_failing_rate: None,
            limited_by_max_rate: false,
            steps: vec![],
        };
        let r = build(Collected {
            meta: None,
            runs: vec![
                run("postgres", "direct", 100.0, 100.0, 300.0),
                run("postgres", "via", 100.0, 600.0, 2300.0),
                run("litellm", "direct", 100.0, 100.0, 300.0),
                {
                    // Past its knee a peer fails requests: not a FormaOps error.
                    let mut r = run("litellm", "via", 100.0, 10_100.0, 20_300.0);
                    r.errors.total = 7;
                    r
                },
                // A rate the peer did not run: no row.
                run("postgres", "direct", 1000.0, 100.0, 300.0),
                run("postgres", "via", 1000.0, 600.0, 2300.0),
            ],
            searches: vec![search("postgres", 3000.0), search("litellm", 120.0)],
            scale: vec![],
        });
        assert_eq!(r.peers.len(), 1, "{:?}", r.peers);
        let p = &r.peers[0];
        assert_eq!((p.store.as_str(), p.peer.as_str(), p.rate), ("postgres", "litellm", 100.0));
        assert_eq!((p.added_p50_us, p.peer_added_p50_us), (500.0, 10_000.0));
        assert_eq!(p.p50_ratio, Some(20.0));
        assert_eq!(p.p99_ratio, Some(10.0));
        assert!(r.runs_with_errors.is_empty());
        // A peer is not FormaOps: no RSS target for it.
        assert!(r.targets.iter().all(|t| !t.target.contains("litellm")));
        let md = markdown(&r);
        assert!(md.contains("| postgres | litellm | 0 ms | 100 | 500 µs | 10.0 ms | **20.0x** |"), "{md}");
        assert!(md.contains("FormaOps (postgres) 3000/s, litellm 120/s: **25.0x** FormaOps' rate."), "{md}");
    }

    #[test]
    fn collects_a_directory() {
        let dir = std::env::temp_dir().join(format!("formaops-bench-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = run("sqlite", "via", 100.0, 1.0, 2.0);
        std::fs::write(dir.join("a.json"), serde_json::to_string(&r).unwrap()).unwrap();
        std::fs::write(dir.join("meta.json"), r#"{"mode":"quick"}"#).unwrap();
        std::fs::write(
            dir.join("scale.json"),
            r#"{"kind":"scale","rows":[{"name":"listing p99 at 10M rows","value":4.2,"unit":"ms","target":"<= 10 ms","met":true}]}"#,
        )
        .unwrap();
        std::fs::write(dir.join("report.json"), "ignored").unwrap();
        std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
        let c = collect(&dir).unwrap();
        assert_eq!(c.runs.len(), 1);
        assert_eq!(c.scale.len(), 1);
        assert_eq!(c.meta.unwrap()["mode"], "quick");
        std::fs::write(dir.join("b.json"), "{not json").unwrap();
        assert!(collect(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
