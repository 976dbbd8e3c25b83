//! A deterministic, fast provider for tests, benchmarks and the zero-config default.
//!
//! It echoes the last user message (or a scripted reply, or a reply function), reports token
//! counts of about four characters per token, and can inject latency and faults: on the
//! first calls ([`MockProvider::fail_first`]), on chosen call numbers
//! ([`MockProvider::fail_on`]), or at a seeded rate ([`MockProvider::fail_at_rate`]). It
//! honours the request deadline: a simulated latency past the deadline ends in a
//! [`ProviderErrorKind::Timeout`] at the deadline.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{Completion, CompletionRequest, LlmProvider, ProviderError, ProviderErrorKind, Role};
use crate::execution::TokenUsage;

/// A fault the mock can inject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MockFault {
    /// 429, with the given Retry-After.
    RateLimited { retry_after: Option<Duration> },
    /// A 5xx status (500, 502, 503, ...).
    ServerError { status: u16 },
    /// The call hangs until its deadline, then times out.
    Timeout,
    /// The connection fails.
    Connection,
    /// The reply cannot be parsed.
    MalformedResponse,
    /// 400: the request is wrong (permanent).
    BadRequest,
    /// 401: bad credentials (permanent).
    Auth,
}

type ReplyFn = Arc<dyn Fn(&CompletionRequest) -> String + Send + Sync>;

#[derive(Clone)]
enum Reply {
    Echo,
    Fixed(String),
    Func(ReplyFn),
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Echo => f.write_str("Echo"),
            Self::Fixed(s) => f.debug_tuple("Fixed").field(s).finish(),
            Self::Func(_) => f.write_str("Func(..)"),
        }
    }
}

#[derive(Debug, Clone)]
struct Rate {
    /// Probability in parts per million.
    ppm: u64,
    seed: u64,
    fault: MockFault,
}

/// The mock provider. Cheap to share (`Arc`); counts its calls.
#[derive(Debug)]
pub struct MockProvider {
    name: String,
    reply: Reply,
    latency: Duration,
    /// Faults by 0-based call number.
    scheduled: BTreeMap<u64, MockFault>,
    rate: Option<Rate>,
    record: bool,
    calls: AtomicU64,
    log: Mutex<Vec<String>>,
}

impl Default for MockProvider {
    fn default() -> Self {
        Self::new()
    }
}

/// Most calls `fail_first` / `fail_on` may schedule (a bound on the schedule's memory).
pub const MAX_SCHEDULED_FAULTS: u64 = 1_000_000;

impl MockProvider {
    /// An echoing provider with no latency and no faults.
    pub fn new() -> Self {
        Self {
            name: "mock".to_string(),
            reply: Reply::Echo,
            latency: Duration::ZERO,
            scheduled: BTreeMap::new(),
            rate: None,
            record: false,
            calls: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
        }
    }

    /// Answers every call with `text`.
    pub fn with_reply(mut self, text: impl Into<String>) -> Self {
        self.reply = Reply::Fixed(text.into());
        self
    }

    /// Answers every call with `f(request)`.
    pub fn with_reply_fn(mut self, f: impl Fn(&CompletionRequest) -> String + Send + Sync + 'static) -> Self {
        self.reply = Reply::Func(Arc::new(f));
        self
    }

    /// Every call takes `latency` (on the tokio clock, so paused-time tests stay instant).
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// The first `n` calls fail with `fault` (capped at [`MAX_SCHEDULED_FAULTS`]).
    pub fn fail_first(self, n: u64, fault: MockFault) -> Self {
        self.fail_on(0..n.min(MAX_SCHEDULED_FAULTS), fault)
    }

    /// The calls with these 0-based numbers fail with `fault`.
    pub fn fail_on(mut self, calls: impl IntoIterator<Item = u64>, fault: MockFault) -> Self {
        for n in calls.into_iter().take(MAX_SCHEDULED_FAULTS as usize) {
            self.scheduled.insert(n, fault.clone());
        }
        self
    }

    /// Calls not otherwise scheduled fail with `fault` with probability `rate` (clamped to
    /// 0..=1), decided by a hash of `seed` and the call number: the same seed gives the same
    /// faults on the same calls.
    pub fn fail_at_rate(mut self, rate: f64, seed: u64, fault: MockFault) -> Self {
        let ppm = if rate.is_nan() { 0 } else { (rate.clamp(0.0, 1.0) * 1_000_000.0) as u64 };
        self.rate = Some(Rate { ppm, seed, fault });
        self
    }

    /// Records the last user message of every call (see [`MockProvider::call_log`]).
    pub fn recording(mut self) -> Self {
        self.record = true;
        self
    }

    /// The name reported by [`LlmProvider::name`] (default `mock`).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Calls so far, including failed ones.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The last user message of every call so far, in call order (only when
    /// [`MockProvider::recording`]).
    pub fn call_log(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn fault_for(&self, call: u64) -> Option<&MockFault> {
        if let Some(f) = self.scheduled.get(&call) {
            return Some(f);
        }
        let rate = self.rate.as_ref()?;
        (splitmix64(rate.seed ^ call.wrapping_mul(0x9E37_79B9_7F4A_7C15)) % 1_000_000 < rate.ppm)
            .then_some(&rate.fault)
    }
}

/// A small, well-mixed hash for the seeded fault rate.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// About four characters per token, at least one for non-empty text.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

fn fault_error(fault: &MockFault) -> ProviderError {
    use ProviderErrorKind as K;
    match fault {
        MockFault::RateLimited { retry_after } => ProviderError::new(K::RateLimited, "mock: rate limited")
            .with_status(429)
            .with_retry_after(*retry_after),
        MockFault::ServerError { status } => {
            ProviderError::new(K::ServerError, format!("mock: server error {status}")).with_status(*status)
        }
        MockFault::Timeout => ProviderError::new(K::Timeout, "mock: deadline reached"),
        MockFault::Connection => ProviderError::new(K::Connection, "mock: connection reset"),
        MockFault::MalformedResponse => ProviderError::new(K::MalformedResponse, "mock: malformed reply"),
        MockFault::BadRequest => ProviderError::new(K::BadRequest, "mock: bad request").with_status(400),
        MockFault::Auth => ProviderError::new(K::Auth, "mock: invalid credentials").with_status(401),
    }
}

#[async_trait]
impl LlmProvider for MockProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion, ProviderError> {
        let started = Instant::now();
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let last_user = request.messages.iter().rev().find(|m| m.role == Role::User);
        if self.record
            && let Ok(mut log) = self.log.lock()
        {
            log.push(last_user.map(|m| m.content.clone()).unwrap_or_default());
        }
        let timeout = || ProviderError::new(ProviderErrorKind::Timeout, "mock: deadline reached");
        let fault = self.fault_for(call);
        if fault == Some(&MockFault::Timeout) {
            tokio::time::sleep_until(request.deadline).await;
            return Err(timeout());
        }
        if !self.latency.is_zero() {
            if started + self.latency > request.deadline {
                tokio::time::sleep_until(request.deadline).await;
                return Err(timeout());
            }
            tokio::time::sleep(self.latency).await;
        } else if started >= request.deadline {
            return Err(timeout());
        }
        if let Some(fault) = fault {
            return Err(fault_error(fault));
        }
        let text = match &self.reply {
            Reply::Echo => last_user.map(|m| m.content.clone()).unwrap_or_default(),
            Reply::Fixed(s) => s.clone(),
            Reply::Func(f) => f(&request),
        };
        let input: u64 = request.messages.iter().map(|m| estimate_tokens(&m.content) + 4).sum();
        let output = estimate_tokens(&text);
        let usage =
            TokenUsage { input, output, cached: 0, reasoning: 0, total: input + output, estimated: false };
        Ok(Completion { text, usage, latency: started.elapsed(), model: Some(request.model) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::ModelParameters;
    use crate::provider::Message;

    fn request(text: &str, within: Duration) -> CompletionRequest {
        CompletionRequest {
            model: "mock".into(),
            messages: vec![
                Message { role: Role::System, content: "be brief".into() },
                Message { role: Role::User, content: text.into() },
            ],
            parameters: ModelParameters::default(),
            response_schema: None,
            deadline: Instant::now() + within,
        }
    }

    #[tokio::test]
    async fn echoes_and_counts_tokens() {
        let m = MockProvider::new();
        let c = m.complete(request("hello world!", Duration::from_secs(1))).await.unwrap();
        assert_eq!(c.text, "hello world!");
        assert_eq!(c.usage.output, 3);
        assert_eq!(c.usage.input, 2 + 4 + 3 + 4);
        assert_eq!(c.usage.total, c.usage.input + c.usage.output);
        assert_eq!(m.calls(), 1);
    }

    #[tokio::test]
    async fn scripted_faults_then_success() {
        let m = MockProvider::new()
            .with_reply("ok")
            .fail_first(2, MockFault::RateLimited { retry_after: Some(Duration::from_secs(3)) });
        let e = m.complete(request("x", Duration::from_secs(1))).await.unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::RateLimited);
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
        assert_eq!(e.status, Some(429));
        assert!(m.complete(request("x", Duration::from_secs(1))).await.is_err());
        assert_eq!(m.complete(request("x", Duration::from_secs(1))).await.unwrap().text, "ok");
        assert_eq!(m.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn latency_past_deadline_times_out_at_the_deadline() {
        let m = MockProvider::new().with_latency(Duration::from_secs(10));
        let start = Instant::now();
        let e = m.complete(request("x", Duration::from_secs(2))).await.unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::Timeout);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        let ok = m.complete(request("x", Duration::from_secs(20))).await.unwrap();
        assert_eq!(ok.latency, Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_fault_waits_for_the_deadline() {
        let m = MockProvider::new().fail_first(1, MockFault::Timeout);
        let start = Instant::now();
        let e = m.complete(request("x", Duration::from_millis(1500))).await.unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::Timeout);
        assert_eq!(start.elapsed(), Duration::from_millis(1500));
    }

    #[tokio::test]
    async fn seeded_rate_is_deterministic_and_near_the_rate() {
        let run = |seed| async move {
            let m = MockProvider::new().fail_at_rate(0.3, seed, MockFault::ServerError { status: 503 });
            let mut failed = Vec::new();
            for i in 0..1000u64 {
                if m.complete(request("x", Duration::from_secs(1))).await.is_err() {
                    failed.push(i);
                }
            }
            failed
        };
        let a = run(7).await;
        assert_eq!(a, run(7).await);
        assert_ne!(a, run(8).await);
        assert!((230..370).contains(&a.len()), "{} failures", a.len());
    }

    #[tokio::test]
    async fn permanent_faults_and_reply_fn_and_log() {
        let m = MockProvider::new()
            .recording()
            .with_reply_fn(|r| format!("{} msgs", r.messages.len()))
            .fail_on([1], MockFault::BadRequest);
        assert_eq!(m.complete(request("a", Duration::from_secs(1))).await.unwrap().text, "2 msgs");
        let e = m.complete(request("b", Duration::from_secs(1))).await.unwrap_err();
        assert!(!e.is_transient());
        assert_eq!(m.call_log(), vec!["a".to_string(), "b".to_string()]);
    }
}
