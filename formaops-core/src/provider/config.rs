//! Configuration of several named providers at once (`openai`, `local`, `mock`, ...).
//!
//! [`ProviderSettings`] is plain serde data, meant to be read from a TOML (or JSON) file by
//! the server and completed from the environment. [`ProviderSettings::build`] turns it into
//! `(name, provider, concurrency)` triples ready for
//! [`FormaOpsBuilder::provider_with_concurrency`](crate::engine::FormaOpsBuilder::provider_with_concurrency).
//! A prompt version picks one of them by name with
//! [`ModelConfig::provider`](crate::prompt::ModelConfig::provider).
//!
//! ```toml
//! default = "openai"
//!
//! [providers.openai]
//! kind = "openai"
//! api_key_env = "OPENAI_API_KEY"
//! concurrency = 16
//!
//! [providers.local]
//! kind = "openai"
//! base_url = "http://127.0.0.1:11434/v1"
//! timeout_ms = 120000
//! concurrency = 2
//! structured_output = "json_object"   # json_schema (default) | json_object | none
//! ```
//!
//! A `kind = "mock"` entry takes the mock's own options (see [`MockSpec`] for the fault
//! grammar):
//!
//! ```toml
//! [providers.flaky]
//! kind = "mock"
//! latency_ms = 50
//! stream = true              # report the reply in pieces (default false)
//! faults = [{ fault = "server_error", status = 503, rate = 0.3, seed = 7 }]
//! ```
//!
//! Environment: [`ProviderSettings::with_env_defaults`] adds an `openai` provider when
//! `OPENAI_API_KEY` or `OPENAI_BASE_URL` is set and the settings do not already name one.
//!
//! This is the one place that adds the zero-config [`MOCK_PROVIDER`] ([`zero_config_mock`]):
//! every build includes it unless an entry of that name replaces it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

pub use super::error::ProviderConfigError;
use super::mock::{FaultSpec, MockSpec};
pub use super::secret::Secret;
use super::{LlmProvider, StructuredOutput};

/// Environment variable holding the OpenAI API key.
pub const OPENAI_API_KEY_ENV: &str = "OPENAI_API_KEY";
/// Environment variable overriding the OpenAI base URL (e.g. a local compatible server).
pub const OPENAI_BASE_URL_ENV: &str = "OPENAI_BASE_URL";
/// The OpenAI API base URL used when none is configured.
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// Name of the zero-config mock provider.
pub const MOCK_PROVIDER: &str = "mock";

/// Most providers one settings value may name.
pub const MAX_PROVIDERS: usize = 64;
/// Longest provider name, in characters (ASCII, so also bytes).
pub const MAX_PROVIDER_NAME_LEN: usize = 64;
/// Most extra headers per provider.
pub const MAX_EXTRA_HEADERS: usize = 64;
/// Largest concurrency bound of one provider: the one limit for the provider files, the
/// engine's default (`EngineConfig::provider_concurrency`) and every adapter.
pub const MAX_CONCURRENCY: usize = 10_000;
/// Longest per-call timeout a provider may be configured with (one hour).
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;

/// Which implementation a named provider uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any server speaking the OpenAI chat-completions wire format.
    Openai,
    /// The deterministic in-process mock.
    Mock,
}

/// One named provider as configured. `Debug` shows header names, not their values, and
/// never the key.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderEntry {
    /// The implementation; the options below marked "kind `mock`" are refused for `openai`
    /// and the others for `mock`.
    pub kind: ProviderKind,
    /// Base URL of the API (`https://api.openai.com/v1`, `http://127.0.0.1:8000/v1`).
    /// Default: [`DEFAULT_OPENAI_BASE_URL`].
    #[serde(default)]
    pub base_url: Option<String>,
    /// The API key itself. Prefer `api_key_env` so the key stays out of files.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// Name of the environment variable holding the API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Sent as `OpenAI-Organization`.
    #[serde(default)]
    pub organization: Option<String>,
    /// Sent as `OpenAI-Project`.
    #[serde(default)]
    pub project: Option<String>,
    /// Upper bound of one call, in milliseconds (the engine's deadline may be shorter).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Concurrent calls to this provider. `None`: the engine's default.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Headers sent with every request (gateways, `api-key` for Azure-style endpoints).
    /// Their values are treated as secrets in logs.
    #[serde(default)]
    pub extra_headers: BTreeMap<String, String>,
    /// Whether calls stream (the engine then publishes `partial` events). Kind `openai`:
    /// sends `stream: true`; default true, turn off for servers without SSE support. Kind
    /// `mock`: reports its reply in pieces; default false.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Which structured-output form the server accepts: `json_schema` (default),
    /// `json_object` or `none` (see [`StructuredOutput`]).
    #[serde(default)]
    pub structured_output: Option<StructuredOutput>,
    /// Kind `mock`: latency of every call in milliseconds.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Kind `mock`: a fixed reply instead of the echo.
    #[serde(default)]
    pub reply: Option<String>,
    /// Kind `mock`: injected faults.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
}

impl fmt::Debug for ProviderEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderEntry")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .field("api_key_env", &self.api_key_env)
            .field("organization", &self.organization)
            .field("project", &self.project)
            .field("timeout_ms", &self.timeout_ms)
            .field("concurrency", &self.concurrency)
            .field("extra_headers", &self.extra_headers.keys().collect::<Vec<_>>())
            .field("stream", &self.stream)
            .field("structured_output", &self.structured_output)
            .field("latency_ms", &self.latency_ms)
            .field("reply", &self.reply)
            .field("faults", &self.faults)
            .finish()
    }
}

impl ProviderEntry {
    /// An entry of the given kind with every option unset.
    pub fn new(kind: ProviderKind) -> Self {
        Self {
            kind,
            base_url: None,
            api_key: None,
            api_key_env: None,
            organization: None,
            project: None,
            timeout_ms: None,
            concurrency: None,
            extra_headers: BTreeMap::new(),
            stream: None,
            structured_output: None,
            latency_ms: None,
            reply: None,
            faults: Vec::new(),
        }
    }

    /// A `mock` entry configured by `spec`.
    pub fn mock(spec: MockSpec) -> Self {
        let mut entry = Self::new(ProviderKind::Mock);
        entry.latency_ms = Some(spec.latency_ms);
        entry.reply = spec.reply;
        entry.faults = spec.faults;
        entry
    }
}

/// Named providers, from a file and/or the environment.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// Provider used by prompt versions that name none. See
    /// [`ProviderSettings::default_provider`].
    #[serde(default)]
    pub default: Option<String>,
    /// Providers by name (1 to [`MAX_PROVIDER_NAME_LEN`] characters of `A-Z a-z 0-9 - _`),
    /// at most [`MAX_PROVIDERS`].
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderEntry>,
}

/// What [`ProviderSettings::build`] returns: `(name, provider, concurrency)`.
pub type BuiltProvider = (String, Arc<dyn LlmProvider>, Option<usize>);

impl ProviderSettings {
    /// Settings from the process environment only: an `openai` provider when
    /// `OPENAI_API_KEY` or `OPENAI_BASE_URL` is set (plus the `mock` every build adds).
    pub fn from_env() -> Self {
        Self::default().with_env_defaults()
    }

    /// Adds the `openai` provider described by `OPENAI_API_KEY` / `OPENAI_BASE_URL` unless an
    /// entry named `openai` exists already (a file's entry wins over the environment).
    pub fn with_env_defaults(self) -> Self {
        self.with_env_defaults_from(&|name| std::env::var(name).ok())
    }

    /// [`ProviderSettings::with_env_defaults`] over any variable lookup (for tests and
    /// embedders that keep their environment elsewhere).
    pub fn with_env_defaults_from(mut self, env: &dyn Fn(&str) -> Option<String>) -> Self {
        if self.providers.contains_key("openai") {
            return self;
        }
        let key_set = env(OPENAI_API_KEY_ENV).is_some_and(|v| !v.is_empty());
        let base_url = env(OPENAI_BASE_URL_ENV).filter(|v| !v.is_empty());
        if !key_set && base_url.is_none() {
            return self;
        }
        let mut entry = ProviderEntry::new(ProviderKind::Openai);
        entry.base_url = base_url;
        if key_set {
            entry.api_key_env = Some(OPENAI_API_KEY_ENV.to_string());
        }
        self.providers.insert("openai".to_string(), entry);
        self
    }

    /// The provider for versions that name none: `default` when set, else `openai` when
    /// configured, else `mock`.
    pub fn default_provider(&self) -> String {
        if let Some(name) = &self.default {
            return name.clone();
        }
        if self.providers.contains_key("openai") { "openai".to_string() } else { MOCK_PROVIDER.to_string() }
    }

    /// Builds every configured provider, reading `api_key_env` variables from the process
    /// environment. A `mock` provider is always included (unless an entry named `mock`
    /// replaces it). The concurrency is `None` where the entry sets none (the engine's
    /// default then applies).
    ///
    /// # Errors
    /// The first [`ProviderConfigError`] found, naming the provider and the field: more than
    /// [`MAX_PROVIDERS`] providers, a bad name, `concurrency` outside 1 to
    /// [`MAX_CONCURRENCY`], an option the entry's kind does not support, `api_key` and
    /// `api_key_env` both given, an unset `api_key_env` variable, `timeout_ms` outside 1 to
    /// [`MAX_TIMEOUT_MS`], more than [`MAX_EXTRA_HEADERS`] headers, a bad mock fault, an
    /// unusable base URL or header (see `OpenAiProvider::new`), an `openai` entry in a build
    /// without the `openai` feature, or a `default` that names no built provider.
    pub fn build(&self) -> Result<Vec<BuiltProvider>, ProviderConfigError> {
        self.build_with_env(&|name| std::env::var(name).ok())
    }

    /// [`ProviderSettings::build`] over any variable lookup.
    ///
    /// # Errors
    /// As [`ProviderSettings::build`].
    pub fn build_with_env(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<BuiltProvider>, ProviderConfigError> {
        if self.providers.len() > MAX_PROVIDERS {
            return Err(ProviderConfigError::new(
                "*",
                "providers",
                format!("{} providers configured; at most {MAX_PROVIDERS} are allowed", self.providers.len()),
            ));
        }
        let mut built = Vec::with_capacity(self.providers.len() + 1);
        for (name, entry) in &self.providers {
            validate_name(name)?;
            let concurrency = validate_concurrency(name, entry.concurrency)?;
            let provider = build_one(name, entry, env)?;
            built.push((name.clone(), provider, concurrency));
        }
        if !self.providers.contains_key(MOCK_PROVIDER) {
            built.push(zero_config_mock());
        }
        if let Some(default) = &self.default
            && !built.iter().any(|(name, _, _)| name == default)
        {
            return Err(ProviderConfigError::new(
                default.clone(),
                "default",
                "the default provider is not configured",
            ));
        }
        Ok(built)
    }
}

fn validate_name(name: &str) -> Result<(), ProviderConfigError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_PROVIDER_NAME_LEN
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ProviderConfigError::new(
            name,
            "name",
            format!("a provider name is 1 to {MAX_PROVIDER_NAME_LEN} characters of A-Z, a-z, 0-9, '-', '_'"),
        ))
    }
}

fn validate_concurrency(
    name: &str,
    concurrency: Option<usize>,
) -> Result<Option<usize>, ProviderConfigError> {
    match concurrency {
        Some(n) if n == 0 || n > MAX_CONCURRENCY => Err(ProviderConfigError::new(
            name,
            "concurrency",
            format!("must be between 1 and {MAX_CONCURRENCY}, got {n}"),
        )),
        other => Ok(other),
    }
}

/// The zero-config mock provider (deterministic, echoing, no network), named
/// [`MOCK_PROVIDER`]; the engine's default concurrency.
pub fn zero_config_mock() -> BuiltProvider {
    (MOCK_PROVIDER.to_string(), Arc::new(super::mock::MockProvider::new()), None)
}

fn build_one(
    name: &str,
    entry: &ProviderEntry,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn LlmProvider>, ProviderConfigError> {
    match entry.kind {
        ProviderKind::Mock => {
            let unsupported = [
                ("base_url", entry.base_url.is_some()),
                ("api_key", entry.api_key.is_some()),
                ("api_key_env", entry.api_key_env.is_some()),
                ("organization", entry.organization.is_some()),
                ("project", entry.project.is_some()),
                ("timeout_ms", entry.timeout_ms.is_some()),
                ("extra_headers", !entry.extra_headers.is_empty()),
                ("structured_output", entry.structured_output.is_some()),
            ];
            if let Some((field, _)) = unsupported.iter().find(|(_, set)| *set) {
                return Err(ProviderConfigError::new(name, *field, "not supported by kind \"mock\""));
            }
            let spec = MockSpec {
                latency_ms: entry.latency_ms.unwrap_or(0),
                reply: entry.reply.clone(),
                faults: entry.faults.clone(),
            };
            match spec.build(name) {
                Ok(mock) if entry.stream == Some(true) => Ok(Arc::new(mock.streaming())),
                Ok(mock) => Ok(Arc::new(mock)),
                Err(crate::Error::InvalidArgument { field, message }) => {
                    Err(ProviderConfigError::new(name, field, message))
                }
                Err(e) => Err(ProviderConfigError::new(name, "kind", e.to_string())),
            }
        }
        ProviderKind::Openai => {
            let unsupported = [
                ("latency_ms", entry.latency_ms.is_some()),
                ("reply", entry.reply.is_some()),
                ("faults", !entry.faults.is_empty()),
            ];
            if let Some((field, _)) = unsupported.iter().find(|(_, set)| *set) {
                return Err(ProviderConfigError::new(name, *field, "not supported by kind \"openai\""));
            }
            build_openai(name, entry, env)
        }
    }
}

#[cfg(feature = "openai")]
fn build_openai(
    name: &str,
    entry: &ProviderEntry,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn LlmProvider>, ProviderConfigError> {
    use super::openai::{OpenAiConfig, OpenAiProvider};

    let api_key = match (&entry.api_key, &entry.api_key_env) {
        (Some(_), Some(_)) => {
            return Err(ProviderConfigError::new(name, "api_key", "give api_key or api_key_env, not both"));
        }
        (Some(key), None) => Some(key.clone()),
        (None, Some(var)) => match env(var) {
            Some(value) if !value.is_empty() => Some(Secret::new(value)),
            _ => {
                return Err(ProviderConfigError::new(
                    name,
                    "api_key_env",
                    format!("environment variable {var} is not set"),
                ));
            }
        },
        (None, None) => None,
    };
    let mut config = OpenAiConfig::new(entry.base_url.as_deref().unwrap_or(DEFAULT_OPENAI_BASE_URL));
    config.name = name.to_string();
    config.api_key = api_key;
    config.organization = entry.organization.clone();
    config.project = entry.project.clone();
    if let Some(ms) = entry.timeout_ms {
        if ms == 0 || ms > MAX_TIMEOUT_MS {
            return Err(ProviderConfigError::new(
                name,
                "timeout_ms",
                format!("must be between 1 and {MAX_TIMEOUT_MS}, got {ms}"),
            ));
        }
        config.timeout = Duration::from_millis(ms);
    }
    if entry.extra_headers.len() > MAX_EXTRA_HEADERS {
        return Err(ProviderConfigError::new(
            name,
            "extra_headers",
            format!("{} headers given; at most {MAX_EXTRA_HEADERS} are allowed", entry.extra_headers.len()),
        ));
    }
    config.extra_headers = entry.extra_headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if let Some(stream) = entry.stream {
        config.stream = stream;
    }
    if let Some(structured_output) = entry.structured_output {
        config.structured_output = structured_output;
    }
    let provider = OpenAiProvider::new(config)?;
    Ok(Arc::new(provider))
}

#[cfg(not(feature = "openai"))]
fn build_openai(
    name: &str,
    _entry: &ProviderEntry,
    _env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn LlmProvider>, ProviderConfigError> {
    Err(ProviderConfigError::new(
        name,
        "kind",
        "this build of formaops-core has no OpenAI provider (feature \"openai\" is off)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
default = "local"

[providers.openai]
kind = "openai"
api_key_env = "TEST_OPENAI_KEY"
organization = "org-1"
project = "proj-1"
concurrency = 16

[providers.local]
kind = "openai"
base_url = "http://127.0.0.1:11434/v1"
timeout_ms = 120000
concurrency = 2
extra_headers = { "x-gateway" = "g1" }
stream = false
structured_output = "none"
"#;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    fn names(built: &[BuiltProvider]) -> Vec<(&str, Option<usize>)> {
        built.iter().map(|(n, _, c)| (n.as_str(), *c)).collect()
    }

    #[test]
    fn toml_file_builds_named_providers() {
        let settings: ProviderSettings = toml::from_str(EXAMPLE).unwrap();
        assert_eq!(settings.default_provider(), "local");
        let local = &settings.providers["local"];
        assert_eq!(local.base_url.as_deref(), Some("http://127.0.0.1:11434/v1"));
        assert_eq!(local.extra_headers.get("x-gateway").map(String::as_str), Some("g1"));
        assert_eq!(local.stream, Some(false));
        assert_eq!(local.structured_output, Some(StructuredOutput::None));
        assert_eq!(settings.providers["openai"].structured_output, None);
        for (text, form) in [
            ("json_schema", StructuredOutput::JsonSchema),
            ("json_object", StructuredOutput::JsonObject),
            ("none", StructuredOutput::None),
        ] {
            let settings: ProviderSettings =
                toml::from_str(&format!("[providers.a]\nkind = \"openai\"\nstructured_output = \"{text}\""))
                    .unwrap();
            assert_eq!(settings.providers["a"].structured_output, Some(form));
            assert!(settings.build_with_env(&env_of(&[])).is_ok());
        }
        assert!(
            toml::from_str::<ProviderSettings>(
                "[providers.a]\nkind = \"openai\"\nstructured_output = \"xml\""
            )
            .is_err()
        );
        let mock: ProviderSettings =
            toml::from_str("[providers.m]\nkind = \"mock\"\nstructured_output = \"none\"").unwrap();
        assert_eq!(mock.build_with_env(&env_of(&[])).err().unwrap().field, "structured_output");

        let built = settings.build_with_env(&env_of(&[("TEST_OPENAI_KEY", "sk-test")])).unwrap();
        let built_names = names(&built);
        assert!(built_names.contains(&("openai", Some(16))), "{built_names:?}");
        assert!(built_names.contains(&("local", Some(2))), "{built_names:?}");
        for (name, provider, _) in &built {
            assert_eq!(provider.name(), name);
            let debug = format!("{provider:?}");
            assert!(!debug.contains("sk-test"), "{debug}");
        }
    }

    #[test]
    fn a_mock_entry_takes_the_mock_spec() {
        let settings: ProviderSettings = toml::from_str(
            "[providers.flaky]\nkind = \"mock\"\nlatency_ms = 5\nreply = \"ok\"\n\
             faults = [{ fault = \"timeout\", first = 1, after = 0.5 }]",
        )
        .unwrap();
        let flaky = &settings.providers["flaky"];
        assert_eq!(flaky.faults.len(), 1);
        assert_eq!(
            flaky.faults[0].fault,
            super::super::mock::MockFault::Timeout { after: Some(Duration::from_millis(500)) }
        );
        let built = settings.build_with_env(&env_of(&[])).unwrap();
        let flaky = built.iter().find(|(name, _, _)| name == "flaky").unwrap();
        assert!(!flaky.1.streams(), "a mock streams only when asked");
        let streaming: ProviderSettings =
            toml::from_str("[providers.s]\nkind = \"mock\"\nstream = true").unwrap();
        let built = streaming.build_with_env(&env_of(&[])).unwrap();
        assert!(built.iter().find(|(name, _, _)| name == "s").unwrap().1.streams());
        // A bad fault does not parse, naming it; mock options do not apply to openai.
        let bad = toml::from_str::<ProviderSettings>(
            "[providers.m]\nkind = \"mock\"\nfaults = [{ fault = \"nope\", first = 1 }]",
        );
        assert!(bad.unwrap_err().to_string().contains("nope"));
        let openai: ProviderSettings =
            toml::from_str("[providers.o]\nkind = \"openai\"\nlatency_ms = 5").unwrap();
        let e = openai.build_with_env(&env_of(&[])).err().unwrap();
        assert_eq!(e.field, "latency_ms");
        let slow: ProviderSettings =
            toml::from_str("[providers.m]\nkind = \"mock\"\nlatency_ms = 999999999").unwrap();
        assert_eq!(slow.build_with_env(&env_of(&[])).err().unwrap().field, "latency_ms");
    }

    #[test]
    fn mock_is_always_there_and_can_be_configured_under_any_name() {
        let built = ProviderSettings::default().build_with_env(&env_of(&[])).unwrap();
        assert_eq!(names(&built), [("mock", None)]);

        let settings: ProviderSettings = toml::from_str(
            "[providers.mock]\nkind = \"mock\"\nconcurrency = 4\n[providers.fake]\nkind = \"mock\"",
        )
        .unwrap();
        let built = settings.build_with_env(&env_of(&[])).unwrap();
        assert_eq!(names(&built), [("fake", None), ("mock", Some(4))]);
        assert_eq!(built[0].1.name(), "fake");
    }

    #[test]
    fn missing_key_variable_is_named() {
        let settings: ProviderSettings = toml::from_str(EXAMPLE).unwrap();
        let err = settings.build_with_env(&env_of(&[])).unwrap_err();
        assert_eq!(err.provider, "openai");
        assert_eq!(err.field, "api_key_env");
        assert!(err.message.contains("TEST_OPENAI_KEY"), "{err}");
    }

    #[test]
    fn environment_adds_openai_when_key_or_base_url_is_set() {
        let none = ProviderSettings::default().with_env_defaults_from(&env_of(&[]));
        assert!(none.providers.is_empty());
        assert_eq!(none.default_provider(), "mock");

        let key = ProviderSettings::default().with_env_defaults_from(&env_of(&[("OPENAI_API_KEY", "sk-x")]));
        let entry = &key.providers["openai"];
        assert_eq!(entry.api_key_env.as_deref(), Some("OPENAI_API_KEY"));
        assert_eq!(entry.base_url, None);
        assert_eq!(key.default_provider(), "openai");
        let built = key.build_with_env(&env_of(&[("OPENAI_API_KEY", "sk-x")])).unwrap();
        assert!(names(&built).contains(&("openai", None)));

        let local = ProviderSettings::default()
            .with_env_defaults_from(&env_of(&[("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")]));
        let entry = &local.providers["openai"];
        assert_eq!(entry.api_key_env, None);
        assert_eq!(entry.base_url.as_deref(), Some("http://127.0.0.1:8000/v1"));
        assert!(local.build_with_env(&env_of(&[])).is_ok());
    }

    #[test]
    fn a_file_entry_wins_over_the_environment() {
        let settings: ProviderSettings = toml::from_str(EXAMPLE).unwrap();
        let merged =
            settings.clone().with_env_defaults_from(&env_of(&[("OPENAI_BASE_URL", "http://other/v1")]));
        assert_eq!(merged, settings);
    }

    #[test]
    fn bad_entries_are_refused_with_the_field_named() {
        let cases: &[(&str, &str)] = &[
            ("[providers.a]\nkind = \"openai\"\nconcurrency = 0", "concurrency"),
            ("[providers.a]\nkind = \"openai\"\ntimeout_ms = 0", "timeout_ms"),
            ("[providers.a]\nkind = \"openai\"\nbase_url = \"ftp://x\"", "base_url"),
            ("[providers.a]\nkind = \"openai\"\napi_key = \"k\"\napi_key_env = \"K\"", "api_key"),
            ("[providers.\"bad name\"]\nkind = \"openai\"", "name"),
            ("[providers.a]\nkind = \"mock\"\nbase_url = \"http://x\"", "base_url"),
            ("default = \"nope\"\n[providers.a]\nkind = \"openai\"", "default"),
        ];
        for (toml_text, field) in cases {
            let settings: ProviderSettings = toml::from_str(toml_text).unwrap();
            let err = settings.build_with_env(&env_of(&[])).unwrap_err();
            assert_eq!(err.field, *field, "{toml_text}: {err}");
        }
    }

    #[test]
    fn unknown_fields_and_kinds_do_not_parse() {
        assert!(
            toml::from_str::<ProviderSettings>("[providers.a]\nkind = \"openai\"\nbaseurl = \"x\"").is_err()
        );
        assert!(toml::from_str::<ProviderSettings>("[providers.a]\nkind = \"anthropic\"").is_err());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let settings: ProviderSettings =
            toml::from_str("[providers.a]\nkind = \"openai\"\napi_key = \"sk-inline-secret\"\nextra_headers = { h = \"hdr-secret\" }")
                .unwrap();
        let debug = format!("{settings:?}");
        assert!(!debug.contains("sk-inline-secret"), "{debug}");
        assert!(!debug.contains("hdr-secret"), "{debug}");
        assert_eq!(settings.providers["a"].api_key.as_ref().map(Secret::expose), Some("sk-inline-secret"));
    }
}
