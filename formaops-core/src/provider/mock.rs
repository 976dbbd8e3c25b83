//! A deterministic, fast provider for tests, benchmarks and the zero-config default.
//!
//! It echoes the last user message (or a scripted reply, or a reply function), reports token
//! counts of about four characters per token, and can inject latency and faults: on the
//! first calls ([`MockProvider::fail_first`]), on chosen call numbers
//! ([`MockProvider::fail_on`]), or at a seeded rate ([`MockProvider::fail_at_rate`]). It
//! honours the request deadline: a simulated latency past the deadline ends in a
//! [`ProviderErrorKind::Timeout`] at the deadline.
//!
//! The faults are data too: a [`MockSpec`] (latency, reply, a list of [`FaultSpec`]) is
//! deserialisable, so the server's provider file (`kind = "mock"`) and Python's `mock_faults`
//! configure the same fake through the same grammar:
//!
//! ```text
//! {"fault": "server_error", "first": 2}              the first 2 calls fail (status 500)
//! {"fault": "rate_limited", "calls": [0, 3], "retry_after": 0.1}
//! {"fault": "bad_request", "rate": 0.25, "seed": 7}  a seeded quarter of the other calls
//! {"fault": "timeout", "first": 1, "after": 0.5}     the first call hangs 0.5 s, then times out
//! ```
//!
//! It can stream ([`MockProvider::streaming`]; `stream = true` on a `kind = "mock"` provider
//! entry): [`LlmProvider::complete_streaming`] then reports the reply in pieces of about
//! [`MOCK_STREAM_PIECE_CHARS`] characters (at most [`MAX_MOCK_STREAM_PIECES`] pieces), the
//! call's latency spread evenly over them, and a `connection` fault cuts the stream after half
//! of the pieces (the other faults strike before the first piece, as an HTTP error would).
//!
//! Faults: `rate_limited` (`retry_after` seconds), `server_error` (`status`, default 500),
//! `timeout` (`after` seconds, default: until the call's deadline), `connection` (all
//! transient), `malformed_response`, `bad_request`, `auth` (permanent). Each names exactly
//! one of `first`, `calls`, `rate` (with an optional `seed`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::{
    Completion, CompletionRequest, LlmProvider, PartialOutput, ProviderError, ProviderErrorKind, Role,
};
use crate::error::{Error, Result};
use crate::execution::TokenUsage;

/// A fault the mock can inject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MockFault {
    /// 429, with the given Retry-After.
    RateLimited {
        /// The delay reported as the provider's Retry-After; `None`: none sent (the engine's
        /// backoff applies).
        retry_after: Option<Duration>,
    },
    /// A 5xx status (500, 502, 503, ...).
    ServerError {
        /// The HTTP status reported (the grammar accepts 500 to 599).
        status: u16,
    },
    /// The call hangs for `after` (`None`: until its deadline, when sooner), then times out.
    Timeout {
        /// How long the call hangs before failing; the request's deadline wins when sooner.
        after: Option<Duration>,
    },
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
    /// Whether `complete_streaming` reports the reply in pieces.
    stream: bool,
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
            stream: false,
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

    /// Streams: [`LlmProvider::complete_streaming`] reports the reply in pieces (see the
    /// module docs) and [`LlmProvider::streams`] says true.
    pub fn streaming(mut self) -> Self {
        self.stream = true;
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

/// Characters in one streamed piece of the mock's reply (about one token), unless the reply
/// is so long that [`MAX_MOCK_STREAM_PIECES`] pieces need more.
pub const MOCK_STREAM_PIECE_CHARS: usize = 4;
/// Most pieces one streamed mock reply is reported in.
pub const MAX_MOCK_STREAM_PIECES: usize = 64;

/// `text` in pieces of [`MOCK_STREAM_PIECE_CHARS`] characters or more, at most
/// [`MAX_MOCK_STREAM_PIECES`] of them; their concatenation is `text`.
fn stream_pieces(text: &str) -> Vec<&str> {
    let chars = text.chars().count();
    let size = MOCK_STREAM_PIECE_CHARS.max(chars.div_ceil(MAX_MOCK_STREAM_PIECES));
    let mut pieces = Vec::new();
    let mut start = 0;
    for (n, (i, _)) in text.char_indices().enumerate() {
        if n > 0 && n % size == 0 {
            pieces.push(&text[start..i]);
            start = i;
        }
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
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
        MockFault::Timeout { .. } => ProviderError::new(K::Timeout, "mock: deadline reached"),
        MockFault::Connection => ProviderError::new(K::Connection, "mock: connection reset"),
        MockFault::MalformedResponse => ProviderError::new(K::MalformedResponse, "mock: malformed reply"),
        MockFault::BadRequest => ProviderError::new(K::BadRequest, "mock: bad request").with_status(400),
        MockFault::Auth => ProviderError::new(K::Auth, "mock: invalid credentials").with_status(401),
    }
}

/// Most entries in [`MockSpec::faults`].
pub const MAX_FAULT_SPECS: usize = 100;
/// Most call numbers in one `calls` list.
pub const MAX_FAULT_CALLS: usize = 10_000;
/// Longest simulated latency or timeout hang (10 minutes).
pub const MAX_MOCK_LATENCY: Duration = Duration::from_secs(600);

/// When a configured fault strikes.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultWhen {
    /// The first `n` calls.
    First(u64),
    /// The calls with these 0-based numbers.
    Calls(Vec<u64>),
    /// A seeded share `rate` (0..=1) of the calls not otherwise scheduled.
    Rate {
        /// Probability that a call fails, 0 to 1 (resolution: one in a million).
        rate: f64,
        /// Seed of the per-call draw: the same seed fails the same call numbers.
        seed: u64,
    },
}

/// One configured fault and when it strikes (see the module docs for the grammar).
/// Deserialises from a map and checks every field, naming the wrong one.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Value")]
pub struct FaultSpec {
    /// What goes wrong (the `fault` key and its options).
    pub fault: MockFault,
    /// Which calls it strikes (`first`, `calls` or `rate` with `seed`).
    pub when: FaultWhen,
}

const FAULT_KEYS: [&str; 8] = ["fault", "first", "calls", "rate", "seed", "retry_after", "status", "after"];

fn seconds(v: &Value) -> Option<Duration> {
    v.as_f64()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| *d <= MAX_MOCK_LATENCY)
}

impl FaultSpec {
    /// Parses one fault spec; errors are [`Error::InvalidArgument`] on `{at}.{key}` (or `at`
    /// for the spec as a whole).
    ///
    /// # Errors
    /// An unknown key or fault, a value of the wrong type or range, a key that does not apply
    /// to the fault, or not exactly one of `first`, `calls`, `rate`.
    pub fn parse(spec: &Value, at: &str) -> Result<Self> {
        let bad = |field: &str, message: &str| {
            Error::invalid_argument(format!("{at}.{field}"), message.to_string())
        };
        let Value::Object(spec) = spec else {
            return Err(Error::invalid_argument(at, "must be a map"));
        };
        for key in spec.keys() {
            if !FAULT_KEYS.contains(&key.as_str()) {
                return Err(bad(key, &format!("unknown key ({})", FAULT_KEYS.join(", "))));
            }
        }
        let fault = parse_fault(spec, at)?;
        let when = ["first", "calls", "rate"].iter().filter(|k| spec.contains_key(**k)).count();
        if when != 1 {
            return Err(Error::invalid_argument(at, "needs exactly one of first, calls, rate"));
        }
        if spec.contains_key("seed") && !spec.contains_key("rate") {
            return Err(bad("seed", "applies to rate only"));
        }
        let when = if let Some(first) = spec.get("first") {
            FaultWhen::First(first.as_u64().ok_or_else(|| bad("first", "must be an integer >= 0"))?)
        } else if let Some(calls) = spec.get("calls") {
            let calls = calls.as_array().ok_or_else(|| bad("calls", "must be a list of call numbers"))?;
            if calls.len() > MAX_FAULT_CALLS {
                return Err(bad("calls", &format!("at most {MAX_FAULT_CALLS} call numbers")));
            }
            let numbers = calls
                .iter()
                .map(|c| c.as_u64().ok_or_else(|| bad("calls", "call numbers are integers >= 0")))
                .collect::<Result<Vec<u64>>>()?;
            FaultWhen::Calls(numbers)
        } else {
            let rate = spec.get("rate").and_then(Value::as_f64).filter(|r| (0.0..=1.0).contains(r));
            let rate = rate.ok_or_else(|| bad("rate", "must be a number between 0 and 1"))?;
            let seed = match spec.get("seed") {
                None => 0,
                Some(s) => s.as_u64().ok_or_else(|| bad("seed", "must be an integer >= 0"))?,
            };
            FaultWhen::Rate { rate, seed }
        };
        Ok(Self { fault, when })
    }

    /// Schedules this fault on `provider`.
    pub fn apply(&self, provider: MockProvider) -> MockProvider {
        match &self.when {
            FaultWhen::First(n) => provider.fail_first(*n, self.fault.clone()),
            FaultWhen::Calls(calls) => provider.fail_on(calls.iter().copied(), self.fault.clone()),
            FaultWhen::Rate { rate, seed } => provider.fail_at_rate(*rate, *seed, self.fault.clone()),
        }
    }
}

impl TryFrom<Value> for FaultSpec {
    type Error = Error;

    fn try_from(value: Value) -> Result<Self> {
        Self::parse(&value, "fault")
    }
}

fn parse_fault(spec: &Map<String, Value>, at: &str) -> Result<MockFault> {
    let bad =
        |field: &str, message: &str| Error::invalid_argument(format!("{at}.{field}"), message.to_string());
    let name =
        spec.get("fault").and_then(Value::as_str).ok_or_else(|| bad("fault", "missing (a fault name)"))?;
    let fault = match name {
        "rate_limited" => {
            let retry_after = match spec.get("retry_after") {
                None | Some(Value::Null) => None,
                Some(v) => Some(seconds(v).ok_or_else(|| bad("retry_after", "must be seconds, 0 to 600"))?),
            };
            MockFault::RateLimited { retry_after }
        }
        "server_error" => {
            let status = match spec.get("status") {
                None => 500,
                Some(v) => v
                    .as_u64()
                    .and_then(|s| u16::try_from(s).ok())
                    .filter(|s| (500..=599).contains(s))
                    .ok_or_else(|| bad("status", "must be a 5xx status"))?,
            };
            MockFault::ServerError { status }
        }
        "timeout" => {
            let after = match spec.get("after") {
                None | Some(Value::Null) => None,
                Some(v) => Some(seconds(v).ok_or_else(|| bad("after", "must be seconds, 0 to 600"))?),
            };
            MockFault::Timeout { after }
        }
        "connection" => MockFault::Connection,
        "malformed_response" => MockFault::MalformedResponse,
        "bad_request" => MockFault::BadRequest,
        "auth" => MockFault::Auth,
        other => {
            return Err(bad(
                "fault",
                &format!(
                    "{other:?} is not one of rate_limited, server_error, timeout, connection, malformed_response, bad_request, auth"
                ),
            ));
        }
    };
    for (key, owner) in [("retry_after", "rate_limited"), ("status", "server_error"), ("after", "timeout")] {
        if name != owner && spec.contains_key(key) {
            return Err(bad(key, &format!("applies to {owner} only")));
        }
    }
    Ok(fault)
}

/// The mock as configured: latency, a fixed reply (else it echoes), faults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockSpec {
    /// Latency of every call, in milliseconds (at most [`MAX_MOCK_LATENCY`]).
    #[serde(default)]
    pub latency_ms: u64,
    /// Answer every call with this text instead of echoing.
    #[serde(default)]
    pub reply: Option<String>,
    /// Faults, at most [`MAX_FAULT_SPECS`].
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
}

impl MockSpec {
    /// A mock that fails every call permanently (`bad_request`): for trying failures and
    /// retries without a real provider.
    pub fn always_failing() -> Self {
        let fault = FaultSpec { fault: MockFault::BadRequest, when: FaultWhen::Rate { rate: 1.0, seed: 0 } };
        Self { faults: vec![fault], ..Self::default() }
    }

    /// Checks the limits; errors name `latency_ms` or `faults`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the latency or the number of faults is too large.
    pub fn check(&self) -> Result<()> {
        if Duration::from_millis(self.latency_ms) > MAX_MOCK_LATENCY {
            return Err(Error::invalid_argument(
                "latency_ms",
                format!("must be at most {} (10 minutes)", MAX_MOCK_LATENCY.as_millis()),
            ));
        }
        if self.faults.len() > MAX_FAULT_SPECS {
            return Err(Error::invalid_argument("faults", format!("at most {MAX_FAULT_SPECS} entries")));
        }
        Ok(())
    }

    /// The provider, named `name`.
    ///
    /// # Errors
    /// As [`MockSpec::check`].
    pub fn build(&self, name: &str) -> Result<MockProvider> {
        self.check()?;
        let mut provider =
            MockProvider::new().named(name).with_latency(Duration::from_millis(self.latency_ms));
        if let Some(reply) = &self.reply {
            provider = provider.with_reply(reply.clone());
        }
        Ok(self.faults.iter().fold(provider, |p, f| f.apply(p)))
    }
}

#[async_trait]
impl LlmProvider for MockProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion, ProviderError> {
        self.call(request, None).await
    }

    fn streams(&self) -> bool {
        self.stream
    }

    async fn complete_streaming(
        &self,
        request: CompletionRequest,
        on_partial: &(dyn Fn(PartialOutput) + Send + Sync),
    ) -> Result<Completion, ProviderError> {
        if !self.stream {
            let completion = self.call(request, None).await?;
            on_partial(PartialOutput { delta: completion.text.clone() });
            return Ok(completion);
        }
        self.call(request, Some(on_partial)).await
    }
}

impl MockProvider {
    /// One call; with `on_partial`, the reply is reported in pieces as it "arrives".
    async fn call(
        &self,
        request: CompletionRequest,
        on_partial: Option<&(dyn Fn(PartialOutput) + Send + Sync)>,
    ) -> Result<Completion, ProviderError> {
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
        if let Some(MockFault::Timeout { after }) = fault {
            let until = after.map_or(request.deadline, |after| request.deadline.min(started + after));
            tokio::time::sleep_until(until).await;
            return Err(timeout());
        }
        // Sleeps until `at`, or fails with a timeout at the deadline when `at` is past it.
        let wait_until = |at: Instant| async move {
            if at > request.deadline {
                tokio::time::sleep_until(request.deadline).await;
                return Err(timeout());
            }
            // A timer rounds up to the next millisecond tick: a zero latency must not wait one.
            if at > Instant::now() {
                tokio::time::sleep_until(at).await;
            }
            Ok(())
        };
        if started >= request.deadline {
            return Err(timeout());
        }
        let cut_stream = on_partial.is_some() && fault == Some(&MockFault::Connection);
        if let Some(fault) = fault.filter(|_| !cut_stream) {
            wait_until(started + self.latency).await?;
            return Err(fault_error(fault));
        }
        let text = match &self.reply {
            Reply::Echo => last_user.map(|m| m.content.clone()).unwrap_or_default(),
            Reply::Fixed(s) => s.clone(),
            Reply::Func(f) => f(&request),
        };
        match on_partial {
            None => wait_until(started + self.latency).await?,
            Some(report) => {
                let pieces = stream_pieces(&text);
                let n = u32::try_from(pieces.len()).unwrap_or(u32::MAX).max(1);
                for (i, piece) in (1..).zip(&pieces) {
                    if cut_stream && i > n / 2 {
                        let sent: usize =
                            pieces.iter().take((i - 1) as usize).map(|p| p.chars().count()).sum();
                        return Err(ProviderError::new(
                            ProviderErrorKind::Connection,
                            format!("mock: the stream was cut after {sent} characters"),
                        ));
                    }
                    wait_until(started + self.latency * i / n).await?;
                    report(PartialOutput { delta: (*piece).to_string() });
                }
                if pieces.is_empty() {
                    wait_until(started + self.latency).await?;
                    if cut_stream {
                        return Err(fault_error(&MockFault::Connection));
                    }
                }
            }
        }
        let input: u64 = request.messages.iter().map(|m| estimate_tokens(&m.content) + 4).sum();
        let output = estimate_tokens(&text);
        let usage =
            TokenUsage { input, output, cached: 0, reasoning: 0, total: input + output, estimated: false };
        let mut completion = Completion::new(text, usage, started.elapsed(), Some(request.model));
        completion.finish_reason = Some("stop".to_string());
        Ok(completion)
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
        let m = MockProvider::new().fail_first(1, MockFault::Timeout { after: None });
        let start = Instant::now();
        let e = m.complete(request("x", Duration::from_millis(1500))).await.unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::Timeout);
        assert_eq!(start.elapsed(), Duration::from_millis(1500));
        // With `after`, the hang is that long (the deadline still bounds it).
        let m =
            MockProvider::new().fail_first(2, MockFault::Timeout { after: Some(Duration::from_millis(200)) });
        let start = Instant::now();
        let e = m.complete(request("x", Duration::from_secs(60))).await.unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::Timeout);
        assert_eq!(start.elapsed(), Duration::from_millis(200));
        let start = Instant::now();
        m.complete(request("x", Duration::from_millis(50))).await.unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_millis(50));
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

    fn field_of(e: Error) -> String {
        match e {
            Error::InvalidArgument { field, .. } => field,
            other => format!("unexpected {other}"),
        }
    }

    #[test]
    fn fault_specs_are_checked_field_by_field() {
        use serde_json::json;
        assert!(FaultSpec::parse(&json!({"fault": "timeout", "first": 1}), "f").is_ok());
        assert!(
            FaultSpec::parse(&json!({"fault": "server_error", "status": 503, "calls": [0, 2]}), "f").is_ok()
        );
        assert!(FaultSpec::parse(&json!({"fault": "auth", "rate": 0.5, "seed": 3}), "f").is_ok());
        let timeout = FaultSpec::parse(&json!({"fault": "timeout", "first": 1, "after": 0.25}), "f").unwrap();
        assert_eq!(timeout.fault, MockFault::Timeout { after: Some(Duration::from_millis(250)) });
        let err = |v: Value| FaultSpec::parse(&v, "f").err().map(field_of);
        assert_eq!(err(json!({"fault": "nope", "first": 1})).as_deref(), Some("f.fault"));
        assert_eq!(err(json!({"fault": "timeout"})).as_deref(), Some("f"));
        assert_eq!(err(json!({"fault": "timeout", "first": 1, "rate": 0.1})).as_deref(), Some("f"));
        assert_eq!(err(json!({"fault": "timeout", "rate": 2.0})).as_deref(), Some("f.rate"));
        assert_eq!(
            err(json!({"fault": "server_error", "status": 404, "first": 1})).as_deref(),
            Some("f.status")
        );
        assert_eq!(err(json!({"fault": "timeout", "status": 500, "first": 1})).as_deref(), Some("f.status"));
        assert_eq!(err(json!({"fault": "auth", "after": 1, "first": 1})).as_deref(), Some("f.after"));
        assert_eq!(err(json!({"fault": "timeout", "after": -1, "first": 1})).as_deref(), Some("f.after"));
        assert_eq!(err(json!({"fault": "timeout", "first": -1})).as_deref(), Some("f.first"));
        assert_eq!(err(json!({"fault": "timeout", "first": 1, "typo": 1})).as_deref(), Some("f.typo"));
        assert_eq!(err(json!([1])).as_deref(), Some("f"));
    }

    #[tokio::test]
    async fn a_spec_deserialises_and_builds_the_fake() {
        let spec: MockSpec = serde_json::from_value(serde_json::json!({
            "latency_ms": 5,
            "reply": "ok",
            "faults": [{"fault": "server_error", "status": 503, "first": 1}],
        }))
        .unwrap();
        let m = spec.build("flaky").unwrap();
        assert_eq!(m.name(), "flaky");
        let e = m.complete(request("x", Duration::from_secs(1))).await.unwrap_err();
        assert_eq!(e.status, Some(503));
        assert_eq!(m.complete(request("x", Duration::from_secs(1))).await.unwrap().text, "ok");
        let bad = serde_json::from_value::<MockSpec>(
            serde_json::json!({"faults": [{"fault": "nope", "first": 1}]}),
        );
        assert!(bad.unwrap_err().to_string().contains("nope"));
        let slow = MockSpec { latency_ms: 10_000_000, ..MockSpec::default() };
        assert_eq!(slow.build("m").err().map(field_of).as_deref(), Some("latency_ms"));
        let failing = MockSpec::always_failing().build("mock-fail").unwrap();
        assert!(!failing.complete(request("x", Duration::from_secs(1))).await.unwrap_err().is_transient());
    }

    #[tokio::test(start_paused = true)]
    async fn a_streaming_mock_reports_its_reply_in_pieces_over_its_latency() {
        let m = MockProvider::new().streaming().with_latency(Duration::from_millis(120));
        assert!(m.streams());
        assert!(!MockProvider::new().streams());
        let start = Instant::now();
        let seen = Mutex::new(Vec::new());
        let c = m
            .complete_streaming(request("hello streaming world", Duration::from_secs(1)), &|p| {
                seen.lock().unwrap().push((start.elapsed(), p.delta));
            })
            .await
            .unwrap();
        let seen = seen.into_inner().unwrap();
        let pieces: Vec<&str> = seen.iter().map(|(_, d)| d.as_str()).collect();
        assert_eq!(pieces, ["hell", "o st", "ream", "ing ", "worl", "d"]);
        assert_eq!(c.text, "hello streaming world");
        assert_eq!(seen[0].0, Duration::from_millis(20));
        assert_eq!(seen[5].0, Duration::from_millis(120));
        // Plain calls are unchanged, and a long reply comes in at most 64 pieces.
        assert_eq!(m.complete(request("abc", Duration::from_secs(1))).await.unwrap().text, "abc");
        assert_eq!(stream_pieces(&"é".repeat(1_000)).len(), MAX_MOCK_STREAM_PIECES - 1);
        assert_eq!(stream_pieces(&"é".repeat(1_000)).concat(), "é".repeat(1_000));
        assert!(stream_pieces("").is_empty());
    }

    #[tokio::test]
    async fn a_connection_fault_cuts_a_mock_stream_after_half_its_pieces() {
        let m = MockProvider::new().streaming().fail_first(1, MockFault::Connection);
        let seen = Mutex::new(String::new());
        let e = m
            .complete_streaming(request("abcdefghijklmnop", Duration::from_secs(1)), &|p| {
                seen.lock().unwrap().push_str(&p.delta);
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::Connection);
        assert!(e.message.contains("after 8 characters"), "{}", e.message);
        assert_eq!(*seen.lock().unwrap(), "abcdefgh");
        // Other faults strike before the first piece.
        let m = MockProvider::new().streaming().fail_first(1, MockFault::BadRequest);
        let e = m.complete_streaming(request("abcd", Duration::from_secs(1)), &|_| panic!("no piece")).await;
        assert_eq!(e.unwrap_err().kind, ProviderErrorKind::BadRequest);
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
