//! The open-loop load generator.
//!
//! A dedicated OS thread walks the [`Schedule`] and, at each request's due time, hands the
//! request to the tokio runtime, whether or not earlier requests have answered. Latency is
//! measured from the due time, so when the server falls behind the queueing shows up in the
//! percentiles instead of silently lowering the offered rate (coordinated omission). The
//! number of requests in flight is bounded; a request that finds the bound reached is dropped
//! and counted, and a run with drops does not pass.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use hdrhistogram::Histogram;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::loopback::loopback_url;
use crate::schedule::Schedule;
use crate::stats::{self, LatencySummary, MachineCpu, ProcSample};

/// Most requests in flight one run may allow.
pub const MAX_IN_FLIGHT: usize = 65_536;
/// Longest per-request timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);
/// Error messages kept per run, for diagnosis.
const ERROR_SAMPLES: usize = 5;
/// Longest error sample kept.
const ERROR_SAMPLE_CHARS: usize = 300;
/// Delay between preparing a run and its first due time.
const START_DELAY: Duration = Duration::from_millis(20);

/// One open-loop run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub label: String,
    /// Free-form key/values copied into the result (`store`, `path`, `mock_ms`, ...).
    pub tags: BTreeMap<String, String>,
    pub url: Url,
    pub method: Method,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    /// Requests per second.
    pub rate: f64,
    pub duration: Duration,
    pub max_in_flight: usize,
    /// Per-request timeout (connect to end of body).
    pub timeout: Duration,
    /// Required status; any 2xx when `None`.
    pub expect_status: Option<u16>,
    /// A byte string the response body must contain.
    pub expect_body: Option<String>,
    /// Process whose CPU time and peak RSS are sampled around the run.
    pub server_pid: Option<u32>,
}

impl RunConfig {
    /// A POST-less GET run with defaults: 512 in flight, 10 s timeout, any 2xx.
    pub fn new(url: &str, rate: f64, duration_secs: f64) -> Result<Self> {
        let duration = Duration::try_from_secs_f64(duration_secs)
            .with_context(|| format!("duration {duration_secs}s"))?;
        let config = Self {
            label: String::new(),
            tags: BTreeMap::new(),
            url: loopback_url(url)?,
            method: Method::GET,
            headers: HeaderMap::new(),
            body: None,
            rate,
            duration,
            max_in_flight: 512,
            timeout: Duration::from_secs(10),
            expect_status: None,
            expect_body: None,
            server_pid: None,
        };
        config.check()?;
        Ok(config)
    }

    /// Checks every bound (the URL is checked again: fields are public).
    pub fn check(&self) -> Result<()> {
        loopback_url(self.url.as_str())?;
        Schedule::new(self.rate, self.duration)?;
        if self.max_in_flight == 0 || self.max_in_flight > MAX_IN_FLIGHT {
            bail!("max in flight {}: must be 1..={MAX_IN_FLIGHT}", self.max_in_flight);
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            bail!("timeout {:?}: must be > 0 and <= {MAX_TIMEOUT:?}", self.timeout);
        }
        if let Some(s) = self.expect_status {
            StatusCode::from_u16(s).with_context(|| format!("expected status {s}"))?;
        }
        if self.expect_body.as_ref().is_some_and(String::is_empty) {
            bail!("expected body substring is empty");
        }
        Ok(())
    }

    /// Sets `Authorization: Bearer <token>` (the token is marked sensitive).
    pub fn bearer(&mut self, token: &str) -> Result<()> {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .context("bearer token contains characters not allowed in a header")?;
        value.set_sensitive(true);
        self.headers.insert(reqwest::header::AUTHORIZATION, value);
        Ok(())
    }
}

/// Failures by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounts {
    pub total: u64,
    pub timeout: u64,
    pub connect: u64,
    /// Other transport failures (reset, malformed HTTP, body read).
    pub transport: u64,
    /// Unexpected statuses, by code.
    pub status: BTreeMap<u16, u64>,
    /// Expected status, but the body lacked the expected substring.
    pub body_mismatch: u64,
    /// Sent but not finished when the drain period ended.
    pub unfinished: u64,
}

/// CPU and memory of the sampled server process over a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ServerUsage {
    pub pid: u32,
    /// utime + stime spent during the run.
    pub cpu_seconds: f64,
    /// `cpu_seconds` divided by successful requests, in microseconds.
    pub cpu_per_ok_us: Option<f64>,
    /// Peak RSS (VmHWM), KiB, read after the run: the peak during the run when
    /// `peak_is_this_run`, else since the process started.
    pub vm_hwm_kib: u64,
    /// Whether the peak was reset just before the run ([`stats::reset_peak_rss`]).
    #[serde(default)]
    pub peak_is_this_run: bool,
    /// RSS after the run, KiB.
    pub vm_rss_kib: u64,
}

/// What one run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub label: String,
    pub tags: BTreeMap<String, String>,
    pub url: String,
    pub method: String,
    pub target_rate: f64,
    pub duration_s: f64,
    pub max_in_flight: usize,
    /// Requests in the schedule.
    pub scheduled: u64,
    /// Requests handed to the client (scheduled minus dropped).
    pub sent: u64,
    pub ok: u64,
    /// Requests not sent because `max_in_flight` were already in flight.
    pub dropped: u64,
    pub errors: ErrorCounts,
    /// From the first due time to the last completion.
    pub elapsed_s: f64,
    /// `ok / elapsed_s`.
    pub achieved_rps: f64,
    /// Successful requests, from the scheduled send time to the end of the body.
    pub latency: LatencySummary,
    /// Successful requests, from the actual send to the end of the body.
    pub service_time: LatencySummary,
    /// How late the generator dispatched requests relative to the schedule (its own error).
    pub dispatch_lag: LatencySummary,
    pub server: Option<ServerUsage>,
    /// Share of the machine's CPUs busy during the run (everything: server, generator,
    /// mock, database), percent.
    pub machine_cpu_busy_pct: Option<f64>,
    pub error_samples: Vec<String>,
}

impl RunResult {
    /// No error, no drop, every scheduled request answered.
    pub fn clean(&self) -> bool {
        self.errors.total == 0 && self.dropped == 0 && self.ok == self.scheduled
    }

    /// One human-readable line.
    pub fn human_line(&self) -> String {
        let l = &self.latency;
        let mut line = format!(
            "{label}: {rate}/s x {dur}s: ok {ok}/{sched}, errors {err}, dropped {drop}, achieved {ach:.0}/s | \
             latency us p50 {p50:.0} p90 {p90:.0} p99 {p99:.0} p99.9 {p999:.0} max {max:.0}",
            label = if self.label.is_empty() { "run" } else { &self.label },
            rate = self.target_rate,
            dur = self.duration_s,
            ok = self.ok,
            sched = self.scheduled,
            err = self.errors.total,
            drop = self.dropped,
            ach = self.achieved_rps,
            p50 = l.p50_us,
            p90 = l.p90_us,
            p99 = l.p99_us,
            p999 = l.p999_us,
            max = l.max_us,
        );
        if let Some(s) = &self.server {
            if let Some(cpu) = s.cpu_per_ok_us {
                line.push_str(&format!(" | server cpu/req {cpu:.0} us"));
            }
            line.push_str(&format!(", peak RSS {:.1} MiB", s.vm_hwm_kib as f64 / 1024.0));
        }
        if let Some(busy) = self.machine_cpu_busy_pct {
            line.push_str(&format!(" | machine busy {busy:.0}%"));
        }
        if let Some(first) = self.error_samples.first() {
            line.push_str(&format!(" | first error: {first}"));
        }
        line
    }
}

/// Builds the HTTP client the generator uses: HTTP/1.1, no proxy, no TCP delay, a pool large
/// enough for every request in flight.
pub fn client(max_in_flight: usize) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(max_in_flight.min(MAX_IN_FLIGHT))
        .pool_idle_timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the HTTP client")
}

/// Runs one open-loop run with a fresh client.
pub async fn run(config: &RunConfig) -> Result<RunResult> {
    run_with(&client(config.max_in_flight)?, config).await
}

/// What a request task needs; shared by all of a run's tasks.
#[derive(Debug)]
struct Job {
    client: reqwest::Client,
    url: Url,
    method: Method,
    headers: HeaderMap,
    body: Option<Bytes>,
    timeout: Duration,
    expect_status: Option<u16>,
    expect_body: Option<Vec<u8>>,
}

#[derive(Debug)]
struct Recorder {
    latency: Histogram<u64>,
    service: Histogram<u64>,
    lag: Histogram<u64>,
    ok: u64,
    errors: ErrorCounts,
    samples: Vec<String>,
    last_done: Option<Instant>,
}

impl Recorder {
    fn error(&mut self, message: impl FnOnce() -> String) {
        self.errors.total += 1;
        if self.samples.len() < ERROR_SAMPLES {
            let mut m = message();
            if m.len() > ERROR_SAMPLE_CHARS {
                let mut cut = ERROR_SAMPLE_CHARS;
                while !m.is_char_boundary(cut) {
                    cut -= 1;
                }
                m.truncate(cut);
            }
            self.samples.push(m);
        }
    }
}

fn lock(m: &Mutex<Recorder>) -> MutexGuard<'_, Recorder> {
    // A panic while holding the lock cannot leave the counters inconsistent in a way that
    // matters more than losing the run: keep going with the data.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

enum Outcome {
    Ok,
    Status(u16),
    BodyMismatch,
    Timeout(String),
    Connect(String),
    Transport(String),
}

fn classify_error(e: &reqwest::Error) -> Outcome {
    // Strip the URL: it is loopback anyway, and keeps samples short.
    let msg = e.without_url_ref().to_string();
    if e.is_timeout() {
        Outcome::Timeout(msg)
    } else if e.is_connect() {
        Outcome::Connect(msg)
    } else {
        Outcome::Transport(msg)
    }
}

trait WithoutUrlRef {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrlRef for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut s = self.to_string();
        if let Some(url) = self.url() {
            s = s.replace(url.as_str(), "<url>");
        }
        // Include the source chain: reqwest's top-level message is often just "error sending
        // request".
        let mut source = std::error::Error::source(self);
        while let Some(inner) = source {
            s.push_str(": ");
            s.push_str(&inner.to_string());
            source = inner.source();
        }
        s
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

async fn one_request(
    job: Arc<Job>,
    rec: Arc<Mutex<Recorder>>,
    due: Instant,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let started = Instant::now();
    let mut request = job
        .client
        .request(job.method.clone(), job.url.clone())
        .headers(job.headers.clone())
        .timeout(job.timeout);
    if let Some(body) = &job.body {
        request = request.body(body.clone());
    }
    let outcome = match request.send().await {
        Ok(response) => {
            let status = response.status();
            match response.bytes().await {
                Ok(body) => {
                    let status_ok = match job.expect_status {
                        Some(s) => status.as_u16() == s,
                        None => status.is_success(),
                    };
                    if !status_ok {
                        Outcome::Status(status.as_u16())
                    } else if job.expect_body.as_deref().is_some_and(|n| !contains(&body, n)) {
                        Outcome::BodyMismatch
                    } else {
                        Outcome::Ok
                    }
                }
                Err(e) => classify_error(&e),
            }
        }
        Err(e) => classify_error(&e),
    };
    let done = Instant::now();
    let mut r = lock(&rec);
    stats::record(&mut r.lag, started.saturating_duration_since(due));
    r.last_done = Some(r.last_done.map_or(done, |d| d.max(done)));
    match outcome {
        Outcome::Ok => {
            r.ok += 1;
            stats::record(&mut r.latency, done.saturating_duration_since(due));
            stats::record(&mut r.service, done.saturating_duration_since(started));
        }
        Outcome::Status(code) => {
            *r.errors.status.entry(code).or_insert(0) += 1;
            r.error(|| format!("unexpected status {code}"));
        }
        Outcome::BodyMismatch => {
            r.errors.body_mismatch += 1;
            r.error(|| "response body lacks the expected substring".to_string());
        }
        Outcome::Timeout(m) => {
            r.errors.timeout += 1;
            r.error(|| m);
        }
        Outcome::Connect(m) => {
            r.errors.connect += 1;
            r.error(|| m);
        }
        Outcome::Transport(m) => {
            r.errors.transport += 1;
            r.error(|| m);
        }
    }
}

/// Runs one open-loop run with the given client (reuse one client across runs to keep its
/// connection pool warm).
pub async fn run_with(client: &reqwest::Client, config: &RunConfig) -> Result<RunResult> {
    config.check()?;
    let schedule = Schedule::new(config.rate, config.duration)?;
    let job = Arc::new(Job {
        client: client.clone(),
        url: config.url.clone(),
        method: config.method.clone(),
        headers: config.headers.clone(),
        body: config.body.clone(),
        timeout: config.timeout,
        expect_status: config.expect_status,
        expect_body: config.expect_body.as_ref().map(|s| s.as_bytes().to_vec()),
    });
    let rec = Arc::new(Mutex::new(Recorder {
        latency: stats::new_histogram()?,
        service: stats::new_histogram()?,
        lag: stats::new_histogram()?,
        ok: 0,
        errors: ErrorCounts::default(),
        samples: Vec::new(),
        last_done: None,
    }));
    let permits = u32::try_from(config.max_in_flight).context("max in flight")?;
    let semaphore = Arc::new(Semaphore::new(config.max_in_flight));

    // Without the reset, a run's peak would be the highest of every earlier run on this server.
    let peak_is_this_run = config.server_pid.is_some_and(stats::reset_peak_rss);
    let proc_before = config.server_pid.map(ProcSample::read).transpose()?;
    let machine_before = MachineCpu::read();
    let runtime = tokio::runtime::Handle::current();
    let start = Instant::now() + START_DELAY;

    let scheduler = {
        let job = Arc::clone(&job);
        let rec = Arc::clone(&rec);
        let semaphore = Arc::clone(&semaphore);
        std::thread::Builder::new()
            .name("loadgen-schedule".into())
            .spawn(move || {
                let (mut sent, mut dropped) = (0u64, 0u64);
                for i in 0..schedule.count() {
                    let due = start + schedule.offset(i);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    match Arc::clone(&semaphore).try_acquire_owned() {
                        Ok(permit) => {
                            sent += 1;
                            runtime.spawn(one_request(Arc::clone(&job), Arc::clone(&rec), due, permit));
                        }
                        Err(_) => dropped += 1,
                    }
                }
                (sent, dropped)
            })
            .context("starting the scheduler thread")?
    };
    let (sent, dropped) = tokio::task::spawn_blocking(move || scheduler.join())
        .await
        .context("joining the scheduler")?
        .map_err(|_| anyhow::anyhow!("the scheduler thread panicked"))?;

    // Drain: every request either finishes or hits its own timeout; allow a margin on top.
    let drained =
        tokio::time::timeout(config.timeout + Duration::from_secs(2), semaphore.acquire_many(permits))
            .await
            .is_ok();

    let machine_after = MachineCpu::read();
    let proc_after = config.server_pid.map(ProcSample::read).transpose()?;

    let mut r = lock(&rec);
    let finished = r.ok + r.errors.total;
    if !drained || finished < sent {
        let unfinished = sent.saturating_sub(finished);
        r.errors.unfinished += unfinished;
        r.errors.total += unfinished;
    }
    let elapsed = r.last_done.map_or(Duration::ZERO, |d| d.saturating_duration_since(start));
    let elapsed_s = elapsed.as_secs_f64();
    let achieved_rps = if elapsed_s > 0.0 { r.ok as f64 / elapsed_s } else { 0.0 };
    let server = match (config.server_pid, proc_before, proc_after) {
        (Some(pid), Some(before), Some(after)) => {
            let ticks = after.cpu_ticks.saturating_sub(before.cpu_ticks);
            let cpu_seconds = ticks as f64 / stats::clock_ticks_per_second() as f64;
            Some(ServerUsage {
                pid,
                cpu_seconds,
                cpu_per_ok_us: (r.ok > 0).then(|| cpu_seconds * 1e6 / r.ok as f64),
                vm_hwm_kib: after.vm_hwm_kib,
                peak_is_this_run,
                vm_rss_kib: after.vm_rss_kib,
            })
        }
        _ => None,
    };
    Ok(RunResult {
        label: config.label.clone(),
        tags: config.tags.clone(),
        url: config.url.to_string(),
        method: config.method.to_string(),
        target_rate: config.rate,
        duration_s: config.duration.as_secs_f64(),
        max_in_flight: config.max_in_flight,
        scheduled: schedule.count(),
        sent,
        ok: r.ok,
        dropped,
        errors: r.errors.clone(),
        elapsed_s,
        achieved_rps,
        latency: LatencySummary::from_histogram(&r.latency),
        service_time: LatencySummary::from_histogram(&r.service),
        dispatch_lag: LatencySummary::from_histogram(&r.lag),
        server,
        machine_cpu_busy_pct: match (machine_before, machine_after) {
            (Some(a), Some(b)) => a.busy_percent_until(&b),
            _ => None,
        },
        error_samples: r.samples.clone(),
    })
}

/// Criteria and bounds of a sustainable-rate search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SearchConfig {
    /// First rate tried.
    pub start_rate: f64,
    /// Highest rate tried.
    pub max_rate: f64,
    /// Most runs in the search (bounds its time: steps x (duration + cooldown)).
    pub max_steps: u32,
    /// A rate passes only with 0 errors, 0 drops and p99 (from the scheduled time) at most this.
    pub p99_bound_us: f64,
    /// The search stops when the gap between the best passing and the lowest failing rate
    /// is at most this fraction of the passing rate.
    pub precision: f64,
}

impl SearchConfig {
    pub fn check(&self) -> Result<()> {
        Schedule::new(self.start_rate, Duration::from_secs(1))?;
        Schedule::new(self.max_rate, Duration::from_secs(1))?;
        if self.start_rate > self.max_rate {
            bail!("search: start rate {} above max rate {}", self.start_rate, self.max_rate);
        }
        if self.max_steps == 0 || self.max_steps > 50 {
            bail!("search: max steps {} must be 1..=50", self.max_steps);
        }
        if !(self.p99_bound_us.is_finite() && self.p99_bound_us > 0.0) {
            bail!("search: p99 bound {} us must be > 0", self.p99_bound_us);
        }
        if !(self.precision > 0.0 && self.precision < 1.0) {
            bail!("search: precision {} must be in (0, 1)", self.precision);
        }
        Ok(())
    }

    /// Whether a run at some rate counts as sustained.
    pub fn passes(&self, r: &RunResult) -> bool {
        r.clean() && r.latency.p99_us <= self.p99_bound_us
    }
}

/// One step of a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchStep {
    pub rate: f64,
    pub passed: bool,
    pub result: RunResult,
}

/// The outcome of a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    /// Always `"search"` (tells result files apart).
    pub kind: String,
    pub label: String,
    pub tags: BTreeMap<String, String>,
    pub criteria: SearchConfig,
    /// Highest rate that passed.
    pub best_rate: Option<f64>,
    /// Lowest rate that failed.
    pub first_failing_rate: Option<f64>,
    /// The best rate is `max_rate`: the real limit may be higher.
    pub limited_by_max_rate: bool,
    pub steps: Vec<SearchStep>,
}

impl SearchResult {
    pub fn best(&self) -> Option<&RunResult> {
        let best = self.best_rate?;
        self.steps.iter().find(|s| s.passed && s.rate == best).map(|s| &s.result)
    }

    pub fn human_line(&self) -> String {
        let label = if self.label.is_empty() { "search" } else { &self.label };
        let best = self.best_rate.map_or("none".to_string(), |r| format!("{r:.0}/s"));
        let fail = self.first_failing_rate.map_or("none".to_string(), |r| format!("{r:.0}/s"));
        format!(
            "{label}: highest sustainable rate {best}{cap} (0 errors, p99 <= {:.0} us); lowest failing {fail}; {} steps",
            self.criteria.p99_bound_us,
            self.steps.len(),
            cap = if self.limited_by_max_rate { " (the search's max rate)" } else { "" },
        )
    }
}

/// Finds the highest rate that passes: doubles from `start_rate` until a rate fails (or
/// `max_rate` passes), then bisects between the best pass and the lowest failure. At most
/// `max_steps` runs. `run_at` runs one step at the given rate.
pub async fn search<F, Fut>(config: &SearchConfig, mut run_at: F) -> Result<SearchResult>
where
    F: FnMut(f64) -> Fut,
    Fut: Future<Output = Result<RunResult>>,
{
    config.check()?;
    let mut steps: Vec<SearchStep> = Vec::new();
    let mut best: Option<f64> = None;
    let mut fail: Option<f64> = None;
    let mut rate = config.start_rate;
    // Growth phase.
    while steps.len() < config.max_steps as usize {
        let result = run_at(rate).await?;
        let passed = config.passes(&result);
        steps.push(SearchStep { rate, passed, result });
        if !passed {
            fail = Some(rate);
            break;
        }
        best = Some(rate);
        if rate >= config.max_rate {
            break;
        }
        rate = (rate * 2.0).min(config.max_rate);
    }
    // Bisection phase.
    while steps.len() < config.max_steps as usize {
        let (Some(lo), Some(hi)) = (best.or(Some(0.0)), fail) else { break };
        if lo > 0.0 && (hi - lo) <= lo * config.precision {
            break;
        }
        let mid = ((lo + hi) / 2.0).round();
        if mid <= lo || mid >= hi || mid < 1.0 {
            break;
        }
        let result = run_at(mid).await?;
        let passed = config.passes(&result);
        steps.push(SearchStep { rate: mid, passed, result });
        if passed {
            best = Some(mid);
        } else {
            fail = Some(mid);
        }
    }
    Ok(SearchResult {
        kind: "search".to_string(),
        label: String::new(),
        tags: BTreeMap::new(),
        criteria: *config,
        best_rate: best,
        first_failing_rate: fail,
        limited_by_max_rate: best.is_some_and(|b| b >= config.max_rate),
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_result(rate: f64, capacity: f64) -> RunResult {
        let ok = (rate * 2.0) as u64;
        let over = rate > capacity;
        RunResult {
            label: String::new(),
            tags: BTreeMap::new(),
            url: "http://127.0.0.1/".into(),
            method: "GET".into(),
            target_rate: rate,
            duration_s: 2.0,
            max_in_flight: 10,
            scheduled: ok,
            sent: ok,
            ok,
            dropped: 0,
            errors: ErrorCounts::default(),
            elapsed_s: 2.0,
            achieved_rps: rate,
            latency: LatencySummary { p99_us: if over { 50_000.0 } else { 500.0 }, ..Default::default() },
            service_time: LatencySummary::default(),
            dispatch_lag: LatencySummary::default(),
            server: None,
            machine_cpu_busy_pct: None,
            error_samples: Vec::new(),
        }
    }

    fn cfg(start: f64, max: f64, steps: u32) -> SearchConfig {
        SearchConfig {
            start_rate: start,
            max_rate: max,
            max_steps: steps,
            p99_bound_us: 10_000.0,
            precision: 0.05,
        }
    }

    #[tokio::test]
    async fn search_converges_on_capacity() {
        let capacity = 7_300.0;
        let mut tried = Vec::new();
        let r = search(&cfg(1000.0, 100_000.0, 20), |rate| {
            tried.push(rate);
            std::future::ready(Ok(fake_result(rate, capacity)))
        })
        .await
        .unwrap();
        let best = r.best_rate.unwrap();
        let fail = r.first_failing_rate.unwrap();
        assert!(best <= capacity && fail > capacity, "{best} {fail}");
        assert!((fail - best) <= best * 0.05, "{best} {fail}");
        assert_eq!(&tried[..4], &[1000.0, 2000.0, 4000.0, 8000.0]);
        assert!(!r.limited_by_max_rate);
        assert_eq!(r.best().unwrap().target_rate, best);
    }

    #[tokio::test]
    async fn search_respects_max_rate_and_steps() {
        let r = search(&cfg(1000.0, 3000.0, 10), |rate| std::future::ready(Ok(fake_result(rate, 1e9))))
            .await
            .unwrap();
        assert_eq!(r.best_rate, Some(3000.0));
        assert!(r.limited_by_max_rate);
        assert_eq!(r.steps.len(), 3);

        let r = search(&cfg(1000.0, 1e6, 3), |rate| std::future::ready(Ok(fake_result(rate, 1e9))))
            .await
            .unwrap();
        assert_eq!(r.steps.len(), 3);
        assert_eq!(r.best_rate, Some(4000.0));
    }

    #[tokio::test]
    async fn search_with_nothing_passing() {
        let r = search(&cfg(1000.0, 1e5, 6), |rate| std::future::ready(Ok(fake_result(rate, 10.0))))
            .await
            .unwrap();
        assert_eq!(r.best_rate, None);
        assert!(r.first_failing_rate.unwrap() <= 1000.0);
        assert_eq!(r.steps.len(), 6);
    }

    #[tokio::test]
    async fn errors_or_drops_fail_a_step() {
        let c = cfg(100.0, 200.0, 5);
        let mut r = fake_result(100.0, 1e9);
        assert!(c.passes(&r));
        r.dropped = 1;
        assert!(!c.passes(&r));
        r.dropped = 0;
        r.errors.total = 1;
        assert!(!c.passes(&r));
        r.errors.total = 0;
        r.ok -= 1;
        assert!(!c.passes(&r));
    }

    #[test]
    fn config_bounds() {
        assert!(RunConfig::new("http://127.0.0.1:1/", 10.0, 1.0).is_ok());
        assert!(RunConfig::new("http://192.168.0.1:1/", 10.0, 1.0).is_err());
        assert!(RunConfig::new("http://127.0.0.1:1/", 10.0, -1.0).is_err());
        let mut c = RunConfig::new("http://127.0.0.1:1/", 10.0, 1.0).unwrap();
        c.max_in_flight = 0;
        assert!(c.check().is_err());
        c.max_in_flight = 1;
        c.timeout = Duration::ZERO;
        assert!(c.check().is_err());
        assert!(cfg(10.0, 5.0, 3).check().is_err());
        assert!(cfg(10.0, 50.0, 0).check().is_err());
    }

    #[test]
    fn substring() {
        assert!(contains(b"{\"status\":\"COMPLETED\"}", b"COMPLETED"));
        assert!(!contains(b"{\"status\":\"FAILED\"}", b"COMPLETED"));
        assert!(!contains(b"", b"x"));
    }
}
