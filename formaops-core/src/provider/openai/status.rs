//! How an HTTP answer is classified: the status code's error kind and the wait a provider
//! asked for (`retry-after-ms`, `Retry-After`).

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::MAX_RETRY_AFTER;
use crate::provider::ProviderErrorKind;

/// 429 -> rate limited; 408, 409, 5xx -> server error (transient); 401, 403 -> auth;
/// anything else -> bad request (permanent).
pub(super) fn classify_status(status: StatusCode) -> ProviderErrorKind {
    classify_status_code(status.as_u16())
}

pub(super) fn classify_status_code(status: u16) -> ProviderErrorKind {
    match status {
        429 => ProviderErrorKind::RateLimited,
        408 | 409 | 500..=599 => ProviderErrorKind::ServerError,
        401 | 403 => ProviderErrorKind::Auth,
        _ => ProviderErrorKind::BadRequest,
    }
}

/// `retry-after-ms` (milliseconds) when present, else `Retry-After` in seconds or as an
/// HTTP-date; clamped to [`MAX_RETRY_AFTER`].
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_at(headers, chrono::Utc::now())
}

pub(super) fn retry_after_at(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(clamp_secs(ms / 1000.0));
    }
    let value = text("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| clamp_secs(secs));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

pub(super) fn clamp_secs(secs: f64) -> Duration {
    if secs >= MAX_RETRY_AFTER.as_secs_f64() { MAX_RETRY_AFTER } else { Duration::from_secs_f64(secs) }
}
