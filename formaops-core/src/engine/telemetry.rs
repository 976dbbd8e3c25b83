//! Operator telemetry: `metrics` facade instruments (no-op until the host installs a recorder,
//! as the server does for Prometheus) and OpenTelemetry GenAI attribute names on trace events.
//!
//! Labels never carry user data: only the provider name, the model name and the outcome.
//!
//! | instrument | kind | meaning |
//! |---|---|---|
//! | `formaops_attempts_total{provider, outcome}` | counter | attempts ended: `completed`, `failed`, `retry` |
//! | `formaops_execution_latency_seconds{provider}` | histogram | acceptance to final state |
//! | `formaops_provider_latency_seconds{provider}` | histogram | the provider call of the final attempt |
//! | `formaops_added_latency_seconds{provider}` | histogram | total minus provider time: what FormaOps adds (queue wait included) |
//! | `formaops_queue_wait_seconds{provider}` | histogram | acceptance to first claim |
//! | `formaops_tokens_total{provider, direction}` | counter | `input` / `output` tokens of completed executions |

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::execution::{AttemptOutcome, Execution};

/// Records one ended attempt. `provider_time` is the precise duration of the provider call
/// (zero when none was made); `finished_at` the instant the attempt ended.
pub(crate) fn record_attempt(
    exec: &Execution,
    outcome: &AttemptOutcome,
    provider_time: Duration,
    finished_at: DateTime<Utc>,
) {
    let provider = exec.provider.clone();
    let label = match outcome {
        AttemptOutcome::Completed { .. } => "completed",
        AttemptOutcome::Failed { .. } => "failed",
        AttemptOutcome::Retry { .. } => "retry",
    };
    ::metrics::counter!("formaops_attempts_total", "provider" => provider.clone(), "outcome" => label)
        .increment(1);
    if matches!(outcome, AttemptOutcome::Retry { .. }) {
        return;
    }
    let total = (finished_at - exec.created_at).to_std().unwrap_or_default();
    let added = total.saturating_sub(provider_time);
    ::metrics::histogram!("formaops_execution_latency_seconds", "provider" => provider.clone())
        .record(total.as_secs_f64());
    ::metrics::histogram!("formaops_provider_latency_seconds", "provider" => provider.clone())
        .record(provider_time.as_secs_f64());
    ::metrics::histogram!("formaops_added_latency_seconds", "provider" => provider.clone())
        .record(added.as_secs_f64());
    if let Some(started) = exec.started_at {
        let wait = (started - exec.created_at).to_std().unwrap_or_default();
        ::metrics::histogram!("formaops_queue_wait_seconds", "provider" => provider.clone())
            .record(wait.as_secs_f64());
    }
    if let AttemptOutcome::Completed { metrics: m, .. } = outcome {
        let usage = &m.token_usage;
        ::metrics::counter!("formaops_tokens_total", "provider" => provider.clone(), "direction" => "input")
            .increment(usage.input);
        ::metrics::counter!("formaops_tokens_total", "provider" => provider, "direction" => "output")
            .increment(usage.output);
        tracing::debug!(
            execution = %exec.id,
            gen_ai.request.model = %exec.model,
            gen_ai.usage.input_tokens = usage.input,
            gen_ai.usage.output_tokens = usage.output,
            latency_ms = m.latency_ms,
            provider_latency_ms = m.provider_latency_ms,
            "execution completed"
        );
    }
}
