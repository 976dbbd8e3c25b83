//! Shared helpers of the proptest-driven fuzz targets (`tests/fuzz_*.rs`).
//!
//! cargo-fuzz needs a nightly toolchain, so the hostile-input targets are proptest properties
//! on stable. Each case runs on its own thread under a watchdog (a hang fails the case instead
//! of stalling the run) and the process's peak resident memory is checked after every case.
//!
//! Knobs (environment):
//! - `PROPTEST_CASES`: cases per property (proptest's own variable; default 256). The long mode
//!   of `scripts/reliability.sh full` sets 100000 for the cheap properties.
//! - `FUZZ_CASE_TIMEOUT_SECS`: watchdog per case (default 30). Far above what any bounded case
//!   needs; it exists to turn a hang into a failure, not to measure speed.
//! - `FUZZ_MAX_RSS_MIB`: ceiling on the process's peak resident memory (default 1536).

#![allow(dead_code)]

use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// proptest configuration: `PROPTEST_CASES` (default 256), scaled by `scale_percent` for the
/// expensive properties; no regression files written into the source tree.
pub fn config(scale_percent: u32) -> Config {
    let base = Config::default();
    let cases = (u64::from(base.cases) * u64::from(scale_percent) / 100).max(16);
    Config {
        cases: u32::try_from(cases).unwrap_or(u32::MAX),
        failure_persistence: None,
        // The watchdog below replaces proptest's fork-based timeout (one fork per case is too
        // slow for the long mode).
        timeout: 0,
        ..base
    }
}

/// Runs `f` on its own thread and fails the case if it does not return within the watchdog
/// time. A panic inside `f` is re-raised here, so proptest shrinks and reports it.
pub fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let limit = Duration::from_secs(env_u64("FUZZ_CASE_TIMEOUT_SECS", 30));
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("fuzz-case".to_string())
        .spawn(move || {
            let out = f();
            let _ = tx.send(());
            out
        })
        .expect("spawn fuzz case thread");
    match rx.recv_timeout(limit) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(v) => {
                assert_memory_bounded(what);
                v
            }
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("HANG: case {what:?} did not finish within {limit:?}")
        }
    }
}

/// Peak resident set size of this process in MiB (Linux); `None` elsewhere.
pub fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Fails when the process's peak resident memory went above `FUZZ_MAX_RSS_MIB`.
pub fn assert_memory_bounded(what: &str) {
    let limit = env_u64("FUZZ_MAX_RSS_MIB", 1536);
    if let Some(peak) = peak_rss_mib() {
        assert!(peak <= limit, "MEMORY: peak RSS {peak} MiB > {limit} MiB after case {what:?}");
    }
}

/// Arbitrary JSON, nested up to `depth` levels, with hostile-ish leaves (huge and tiny numbers,
/// control characters, template syntax, long strings).
pub fn arb_json(depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
        hostile_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(depth, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key_string(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// Object keys: mostly the words the FormaOps types use, sometimes anything.
pub fn key_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "name", "type", "required", "description", "defaultValue", "values", "schema",
            "maxLength", "pattern", "value", "properties", "items", "$ref", "$defs", "enum",
            "minLength", "minimum", "maximum", "anyOf", "allOf", "oneOf", "not", "const",
            "additionalProperties", "$schema", "$id", "format", "prefixItems", "contains",
        ])
        .prop_map(str::to_string),
        1 => ".{0,12}",
    ]
}

/// Strings that have broken parsers and template engines before.
pub fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "\0",
            "{{",
            "}}",
            "{%",
            "{{ 7*7 }}",
            "{% for %}",
            "\u{202e}",
            "\u{feff}",
            "\r\n\r\n",
            "' OR 1=1 --",
            "../../etc/passwd",
            "%s%s%s%n",
            "\\u0000",
            "😀",
            "a\u{0301}",
            "(a+)+$",
            "[",
            "\\",
        ])
        .prop_map(str::to_string),
        (prop::sample::select(vec!["a", "{", "%", "\u{10ffff}", "\\"]), 0usize..5000)
            .prop_map(|(s, n)| s.repeat(n)),
    ]
}
