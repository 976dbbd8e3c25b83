//! The Rust side of the Python overhead benchmark: `FormaOps::execute` on the in-memory store
//! with the zero-latency mock provider, called the way the binding calls it (`block_on` from a
//! thread outside the runtime, on the same multi-threaded runtime configuration).
//!
//! ```text
//! LD_LIBRARY_PATH=$(python3 -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))') \
//!   cargo bench -p formaops-py --bench execute_overhead
//! ```
//!
//! Prints p50/p90/p99/mean per call in microseconds. Without `--bench` (as under
//! `cargo test --all-targets`) it runs a few iterations as a smoke test.

use std::time::{Duration, Instant};

use _formaops::open::{OpenOptions, open_engine};
use _formaops::providers::ProviderOptions;
use formaops_core::engine::ExecuteRequest;
use formaops_core::execution::ExecutionStatus;
use formaops_core::prompt::PromptSpec;
use formaops_core::variables::{VariableDefinition, VariableType};
use serde_json::{Map, Value};

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let idx = ((q * sorted.len() as f64) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(idx).map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let full = std::env::args().any(|a| a == "--bench");
    let (warmup, iterations) = if full { (2_000, 20_000) } else { (10, 50) };

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let opened = rt.block_on(open_engine(OpenOptions {
        url: "memory://".into(),
        providers: ProviderOptions {
            provider: "mock".into(),
            base_url: None,
            api_key: None,
            mock_latency: Duration::ZERO,
            mock_reply: None,
            mock_faults: None,
        },
        user: None,
        max_attempts: None,
        execution_timeout: None,
        concurrency: None,
        prices_file: None,
        durability: None,
    }))?;
    let engine = opened.engine;
    let user = opened.user;
    let spec = PromptSpec {
        name: "bench".into(),
        description: None,
        template: "Summarise {{ text }}".into(),
        system_template: None,
        variables: vec![VariableDefinition {
            name: "text".into(),
            kind: VariableType::String,
            required: true,
            description: None,
            default_value: None,
            values: None,
            schema: None,
            max_length: None,
        }],
        validations: Vec::new(),
        model: None,
        labels: None,
    };
    let (prompt, _) = rt.block_on(engine.create_prompt(user, spec))?;
    let mut inputs = Map::new();
    inputs.insert("text".into(), Value::String("a short benchmark input".into()));
    let request = ExecuteRequest { prompt_id: prompt.id, inputs, ..ExecuteRequest::default() };

    // FORMAOPS_BENCH_GAP_US: busy-wait this long between calls, as a Python caller spends time
    // converting results between calls (0: back to back).
    let gap = Duration::from_micros(
        std::env::var("FORMAOPS_BENCH_GAP_US").ok().and_then(|v| v.parse().ok()).unwrap_or(0),
    );
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..warmup + iterations {
        let idle = Instant::now();
        while idle.elapsed() < gap {
            std::hint::spin_loop();
        }
        let start = Instant::now();
        let execution = rt.block_on(engine.execute(user, request.clone()))?;
        let elapsed = start.elapsed();
        if execution.status != ExecutionStatus::Completed {
            return Err(format!("execution ended {:?}", execution.status).into());
        }
        if i >= warmup {
            samples.push(elapsed);
        }
    }
    samples.sort();
    let mean = samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64 * 1e6;
    println!(
        "rust execute ({iterations} calls, {} µs between calls): p50 {:.1} µs  p90 {:.1} µs  p99 {:.1} µs  mean {mean:.1} µs",
        gap.as_micros(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.90),
        percentile(&samples, 0.99),
    );
    rt.block_on(engine.shutdown());
    Ok(())
}
