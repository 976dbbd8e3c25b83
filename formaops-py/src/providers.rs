//! The providers an engine opened from Python runs on.
//!
//! - `mock`: the deterministic mock of `formaops_core` (echoes the last user message), with
//!   `mock_latency_ms`, `mock_reply` and `mock_faults` set from Python. `mock_faults` is a list
//!   of dicts in the mock's own fault grammar
//!   ([`FaultSpec`], documented in `formaops_core::provider::mock`), e.g.
//!   `{"fault": "server_error", "first": 2}` or `{"fault": "timeout", "first": 1, "after": 0.5}`.
//! - `openai`: the OpenAI-compatible provider, configured through
//!   [`ProviderSettings`] (`api_key`, else
//!   the `OPENAI_API_KEY` variable; `base_url`, else `OPENAI_BASE_URL`, else OpenAI's). The
//!   mock stays registered beside it, so a prompt can still name `provider="mock"`.
//!
//! Both go through [`ProviderSettings::build`], like the server's provider file.

use std::sync::Arc;

use formaops_core::provider::LlmProvider;
use formaops_core::provider::config::{MOCK_PROVIDER, ProviderEntry, ProviderKind, ProviderSettings, Secret};
use formaops_core::provider::mock::{FaultSpec, MAX_FAULT_SPECS, MockSpec};
use formaops_core::{Error, Result};
use serde_json::Value;

use crate::open::OpenOptions;

/// One registered provider: name, implementation, own concurrency bound.
pub type Registered = (String, Arc<dyn LlmProvider>, Option<usize>);

/// Builds the providers to register; `options.provider` is among them.
pub fn build(options: &OpenOptions) -> Result<Vec<Registered>> {
    let mut settings = match options.provider.as_str() {
        "mock" => {
            if options.base_url.is_some() || options.api_key.is_some() {
                return Err(Error::invalid_argument(
                    "provider",
                    "base_url and api_key apply to provider=\"openai\", not \"mock\"",
                ));
            }
            ProviderSettings::default()
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
            settings
        }
        other => {
            return Err(Error::invalid_argument(
                "provider",
                format!("{other:?} is not a provider; use \"mock\" or \"openai\""),
            ));
        }
    };
    settings.providers.insert(MOCK_PROVIDER.to_string(), ProviderEntry::mock(mock_spec(options)?));
    settings.build().map_err(|e| Error::invalid_argument(format!("provider {}", e.field), e.to_string()))
}

/// The mock's spec from the `mock_*` arguments; errors name those arguments.
fn mock_spec(options: &OpenOptions) -> Result<MockSpec> {
    let mut spec = MockSpec {
        latency_ms: u64::try_from(options.mock_latency.as_millis()).unwrap_or(u64::MAX),
        reply: options.mock_reply.clone(),
        faults: Vec::new(),
    };
    if let Some(faults) = &options.mock_faults {
        let Value::Array(specs) = faults else {
            return Err(Error::invalid_argument("mock_faults", "must be a list of dicts"));
        };
        if specs.len() > MAX_FAULT_SPECS {
            return Err(Error::invalid_argument("mock_faults", format!("at most {MAX_FAULT_SPECS} entries")));
        }
        for (i, fault) in specs.iter().enumerate() {
            spec.faults.push(FaultSpec::parse(fault, &format!("mock_faults[{i}]"))?);
        }
    }
    // The spec's own limits, reported under the Python argument's name (`mock_latency_ms`).
    spec.check().map_err(|e| match e {
        Error::InvalidArgument { field, message } => {
            Error::invalid_argument(format!("mock_{field}"), message)
        }
        other => other,
    })?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use serde_json::json;

    fn options(faults: Value) -> OpenOptions {
        OpenOptions {
            url: "memory://".into(),
            provider: "mock".into(),
            base_url: None,
            api_key: None,
            user: None,
            mock_latency: Duration::ZERO,
            mock_reply: None,
            mock_faults: Some(faults),
            max_attempts: None,
            execution_timeout: None,
            concurrency: None,
            prices_file: None,
        }
    }

    fn field_of(e: Error) -> String {
        match e {
            Error::InvalidArgument { field, .. } => field,
            other => format!("unexpected {other}"),
        }
    }

    #[test]
    fn errors_name_the_python_arguments() {
        assert!(build(&options(json!([{"fault": "timeout", "first": 1, "after": 0.1}]))).is_ok());
        let err = |o: &OpenOptions| build(o).err().map(field_of);
        assert_eq!(
            err(&options(json!([{"fault": "nope", "first": 1}]))).as_deref(),
            Some("mock_faults[0].fault")
        );
        assert_eq!(err(&options(json!({"fault": "timeout"}))).as_deref(), Some("mock_faults"));
        let mut slow = options(json!([]));
        slow.mock_latency = Duration::from_secs(3600);
        assert_eq!(err(&slow).as_deref(), Some("mock_latency_ms"));
    }
}
