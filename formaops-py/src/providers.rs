//! The providers an engine opened from Python runs on.
//!
//! - `mock`: the deterministic mock of `formaops_core` (echoes the last user message), with
//!   `mock_latency_ms`, `mock_reply` and `mock_faults` set from Python.
//! - `openai`: the OpenAI-compatible provider, configured through
//!   [`ProviderSettings`] (`api_key`, else
//!   the `OPENAI_API_KEY` variable; `base_url`, else `OPENAI_BASE_URL`, else OpenAI's). The
//!   mock stays registered beside it, so a prompt can still name `provider="mock"`.
//!
//! `mock_faults` is a list of dicts, each one fault and when it strikes:
//!
//! ```text
//! {"fault": "server_error", "first": 2}              the first 2 calls fail (status 500)
//! {"fault": "rate_limited", "calls": [0, 3], "retry_after": 0.1}
//! {"fault": "bad_request", "rate": 0.25, "seed": 7}  a seeded quarter of the other calls
//! ```
//!
//! Faults: `rate_limited` (`retry_after` seconds), `server_error` (`status`, default 500),
//! `timeout`, `connection`, `malformed_response` (all transient), `bad_request`, `auth`
//! (permanent).

use std::sync::Arc;
use std::time::Duration;

use formaops_core::provider::LlmProvider;
use formaops_core::provider::config::{ProviderEntry, ProviderKind, ProviderSettings, Secret};
use formaops_core::provider::mock::{MockFault, MockProvider};
use formaops_core::{Error, Result};
use serde_json::{Map, Value};

use crate::open::OpenOptions;

/// Most entries in `mock_faults`.
pub const MAX_FAULT_SPECS: usize = 100;
/// Most call numbers in one `calls` list.
pub const MAX_FAULT_CALLS: usize = 10_000;
/// Longest simulated latency (10 minutes).
pub const MAX_MOCK_LATENCY: Duration = Duration::from_secs(600);

/// One registered provider: name, implementation, own concurrency bound.
pub type Registered = (String, Arc<dyn LlmProvider>, Option<usize>);

/// Builds the providers to register; `options.provider` is among them.
pub fn build(options: &OpenOptions) -> Result<Vec<Registered>> {
    match options.provider.as_str() {
        "mock" => {
            if options.base_url.is_some() || options.api_key.is_some() {
                return Err(Error::invalid_argument(
                    "provider",
                    "base_url and api_key apply to provider=\"openai\", not \"mock\"",
                ));
            }
            Ok(vec![("mock".to_string(), mock(options)?, None)])
        }
        "openai" => {
            let mut entry = ProviderEntry::new(ProviderKind::Openai);
            entry.base_url = options.base_url.clone();
            match &options.api_key {
                Some(key) => entry.api_key = Some(Secret::new(key.clone())),
                None => {
                    entry.api_key_env = Some(formaops_core::provider::config::OPENAI_API_KEY_ENV.to_string())
                }
            }
            let mut settings = ProviderSettings::default().with_env_defaults();
            if entry.base_url.is_none() {
                // OPENAI_BASE_URL from the environment, when set.
                entry.base_url = settings.providers.get("openai").and_then(|e| e.base_url.clone());
            }
            settings.providers.insert("openai".to_string(), entry);
            let mut built: Vec<Registered> = settings
                .build()
                .map_err(|e| Error::invalid_argument(format!("provider {}", e.field), e.to_string()))?
                .into_iter()
                .filter(|(name, _, _)| name != "mock")
                .collect();
            built.push(("mock".to_string(), mock(options)?, None));
            Ok(built)
        }
        other => Err(Error::invalid_argument(
            "provider",
            format!("{other:?} is not a provider; use \"mock\" or \"openai\""),
        )),
    }
}

fn mock(options: &OpenOptions) -> Result<Arc<dyn LlmProvider>> {
    if options.mock_latency > MAX_MOCK_LATENCY {
        return Err(Error::invalid_argument("mock_latency_ms", "must be at most 600000 (10 minutes)"));
    }
    let mut provider = MockProvider::new().with_latency(options.mock_latency);
    if let Some(reply) = &options.mock_reply {
        provider = provider.with_reply(reply.clone());
    }
    if let Some(faults) = &options.mock_faults {
        let Value::Array(specs) = faults else {
            return Err(Error::invalid_argument("mock_faults", "must be a list of dicts"));
        };
        if specs.len() > MAX_FAULT_SPECS {
            return Err(Error::invalid_argument("mock_faults", format!("at most {MAX_FAULT_SPECS} entries")));
        }
        for (i, spec) in specs.iter().enumerate() {
            provider = apply_fault(provider, spec, &format!("mock_faults[{i}]"))?;
        }
    }
    Ok(Arc::new(provider))
}

fn apply_fault(provider: MockProvider, spec: &Value, at: &str) -> Result<MockProvider> {
    let bad =
        |field: &str, message: &str| Error::invalid_argument(format!("{at}.{field}"), message.to_string());
    let Value::Object(spec) = spec else {
        return Err(Error::invalid_argument(at, "must be a dict"));
    };
    for key in spec.keys() {
        if !["fault", "first", "calls", "rate", "seed", "retry_after", "status"].contains(&key.as_str()) {
            return Err(bad(key, "unknown key (fault, first, calls, rate, seed, retry_after, status)"));
        }
    }
    let fault = parse_fault(spec, at)?;
    let when = ["first", "calls", "rate"].iter().filter(|k| spec.contains_key(**k)).count();
    if when != 1 {
        return Err(Error::invalid_argument(at, "needs exactly one of first, calls, rate"));
    }
    if let Some(first) = spec.get("first") {
        let n = first.as_u64().ok_or_else(|| bad("first", "must be an integer >= 0"))?;
        return Ok(provider.fail_first(n, fault));
    }
    if let Some(calls) = spec.get("calls") {
        let calls = calls.as_array().ok_or_else(|| bad("calls", "must be a list of call numbers"))?;
        if calls.len() > MAX_FAULT_CALLS {
            return Err(bad("calls", &format!("at most {MAX_FAULT_CALLS} call numbers")));
        }
        let numbers = calls
            .iter()
            .map(|c| c.as_u64().ok_or_else(|| bad("calls", "call numbers are integers >= 0")))
            .collect::<Result<Vec<u64>>>()?;
        return Ok(provider.fail_on(numbers, fault));
    }
    let rate = spec.get("rate").and_then(Value::as_f64).filter(|r| (0.0..=1.0).contains(r));
    let rate = rate.ok_or_else(|| bad("rate", "must be a number between 0 and 1"))?;
    let seed = match spec.get("seed") {
        None => 0,
        Some(s) => s.as_u64().ok_or_else(|| bad("seed", "must be an integer >= 0"))?,
    };
    Ok(provider.fail_at_rate(rate, seed, fault))
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
                Some(v) => Some(
                    v.as_f64()
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .and_then(|s| Duration::try_from_secs_f64(s).ok())
                        .ok_or_else(|| bad("retry_after", "must be seconds >= 0"))?,
                ),
            };
            MockFault::RateLimited { retry_after }
        }
        "server_error" => {
            let status = match spec.get("status") {
                None => 500,
                Some(v) => v
                    .as_u64()
                    .filter(|s| (500..=599).contains(s))
                    .map(|s| s as u16)
                    .ok_or_else(|| bad("status", "must be a 5xx status"))?,
            };
            MockFault::ServerError { status }
        }
        "timeout" => MockFault::Timeout,
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
    if name != "rate_limited" && spec.contains_key("retry_after") {
        return Err(bad("retry_after", "applies to rate_limited only"));
    }
    if name != "server_error" && spec.contains_key("status") {
        return Err(bad("status", "applies to server_error only"));
    }
    Ok(fault)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(e: Error) -> String {
        match e {
            Error::InvalidArgument { field, .. } => field,
            other => format!("unexpected {other}"),
        }
    }

    #[test]
    fn fault_specs_are_checked_field_by_field() {
        let p = || MockProvider::new();
        assert!(apply_fault(p(), &json!({"fault": "timeout", "first": 1}), "f").is_ok());
        assert!(
            apply_fault(p(), &json!({"fault": "server_error", "status": 503, "calls": [0, 2]}), "f").is_ok()
        );
        assert!(apply_fault(p(), &json!({"fault": "auth", "rate": 0.5, "seed": 3}), "f").is_ok());
        let err = |v: Value| apply_fault(p(), &v, "f").err().map(field_of);
        assert_eq!(err(json!({"fault": "nope", "first": 1})).as_deref(), Some("f.fault"));
        assert_eq!(err(json!({"fault": "timeout"})).as_deref(), Some("f"));
        assert_eq!(err(json!({"fault": "timeout", "first": 1, "rate": 0.1})).as_deref(), Some("f"));
        assert_eq!(err(json!({"fault": "timeout", "rate": 2.0})).as_deref(), Some("f.rate"));
        assert_eq!(
            err(json!({"fault": "server_error", "status": 404, "first": 1})).as_deref(),
            Some("f.status")
        );
        assert_eq!(err(json!({"fault": "timeout", "status": 500, "first": 1})).as_deref(), Some("f.status"));
        assert_eq!(err(json!({"fault": "timeout", "first": -1})).as_deref(), Some("f.first"));
        assert_eq!(err(json!({"fault": "timeout", "first": 1, "typo": 1})).as_deref(), Some("f.typo"));
        assert_eq!(err(json!([1])).as_deref(), Some("f"));
    }
}
