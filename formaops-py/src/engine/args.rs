//! Argument parsing (GIL held): Python values into owned Rust values.
//!
//! Python types are checked by the extractors of `crate::convert` (TypeError naming the
//! argument); the values are checked here (ValidationError naming the argument).

use std::str::FromStr;
use std::time::Duration;

use formaops_core::Error;
use formaops_core::execution::{ExecutionStatus, Priority};
use formaops_core::page::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PageRequest};
use formaops_core::prompt::VersionRef;
use pyo3::prelude::*;
use pyo3::types::PyString;
use serde_json::Value;

use crate::convert::{Keys, opt_int, opt_mapping_list, opt_seconds, opt_str, str_arg};
use crate::error::{IntoPyResult, invalid_argument, to_py_err};

/// An optional argument as PyO3 passes it (None when not given).
pub(super) type Arg<'py> = Option<Bound<'py, PyAny>>;

pub(super) fn parse_id<T: FromStr>(py: Python<'_>, field: &str, value: &str) -> PyResult<T> {
    T::from_str(value.trim()).map_err(|_| invalid_argument(py, field, format!("{value:?} is not a UUID")))
}

/// A required id (`str` holding a UUID).
pub(super) fn id_arg<T: FromStr>(py: Python<'_>, obj: &Bound<'_, PyAny>, field: &str) -> PyResult<T> {
    parse_id(py, field, &str_arg(obj, field)?)
}

/// An optional id.
pub(super) fn opt_id<T: FromStr>(
    py: Python<'_>,
    obj: Option<&Bound<'_, PyAny>>,
    field: &str,
) -> PyResult<Option<T>> {
    opt_str(obj, field)?.map(|s| parse_id(py, field, &s)).transpose()
}

pub(super) fn parse_timeout(py: Python<'_>, field: &str, seconds: Option<f64>) -> PyResult<Option<Duration>> {
    match seconds {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => {
            Duration::try_from_secs_f64(s).map(Some).map_err(|_| invalid_argument(py, field, "is too large"))
        }
        Some(s) => {
            Err(invalid_argument(py, field, format!("must be a finite number of seconds >= 0, not {s}")))
        }
    }
}

/// An optional duration in seconds.
pub(super) fn timeout_arg(
    py: Python<'_>,
    obj: Option<&Bound<'_, PyAny>>,
    field: &str,
) -> PyResult<Option<Duration>> {
    parse_timeout(py, field, opt_seconds(obj, field)?)
}

/// `priority`, NORMAL when not given.
pub(super) fn priority_arg(py: Python<'_>, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Priority> {
    Ok(opt_priority(py, obj)?.unwrap_or(Priority::Normal))
}

/// An optional `priority`.
pub(super) fn opt_priority(py: Python<'_>, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Priority>> {
    let Some(value) = opt_str(obj, "priority")? else { return Ok(None) };
    Priority::parse(&value.to_ascii_uppercase())
        .map(Some)
        .ok_or_else(|| invalid_argument(py, "priority", format!("{value:?} is not one of LOW, NORMAL, HIGH")))
}

/// An optional execution `status`.
pub(super) fn status_arg(
    py: Python<'_>,
    obj: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<ExecutionStatus>> {
    let Some(s) = opt_str(obj, "status")? else { return Ok(None) };
    ExecutionStatus::parse(&s.to_ascii_uppercase()).map(Some).ok_or_else(|| {
        invalid_argument(
            py,
            "status",
            format!("{s:?} is not one of QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED"),
        )
    })
}

/// `limit` and `cursor` of a list as a page request.
pub(super) fn page_arg(
    py: Python<'_>,
    limit: Option<&Bound<'_, PyAny>>,
    cursor: Option<&Bound<'_, PyAny>>,
) -> PyResult<PageRequest> {
    let limit = limit_arg(py, limit)?;
    let cursor = opt_str(cursor, "cursor")?;
    PageRequest::new(Some(limit), cursor.as_deref()).py_err(py)
}

pub(super) fn limit_arg(py: Python<'_>, obj: Option<&Bound<'_, PyAny>>) -> PyResult<u32> {
    match opt_int(obj, "limit")? {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(l) if (1..=i64::from(MAX_PAGE_SIZE)).contains(&l) => Ok(l as u32),
        Some(l) => Err(invalid_argument(py, "limit", format!("{l} is not between 1 and {MAX_PAGE_SIZE}"))),
    }
}

/// A version number (`version`, `expected_version`).
pub(super) fn version_arg(
    py: Python<'_>,
    obj: Option<&Bound<'_, PyAny>>,
    field: &str,
) -> PyResult<Option<u32>> {
    match opt_int(obj, field)? {
        None => Ok(None),
        Some(v) if v >= 1 && v <= i64::from(u32::MAX) => Ok(Some(v as u32)),
        Some(v) => Err(invalid_argument(py, field, format!("{v} is not a version number (1 or more)"))),
    }
}

/// A version number or a label name.
pub(super) fn version_ref_arg(py: Python<'_>, obj: &Bound<'_, PyAny>, field: &str) -> PyResult<VersionRef> {
    if obj.is_instance_of::<PyString>() {
        let s = str_arg(obj, field)?;
        return VersionRef::parse(field, &s).map_err(|e| to_py_err(py, e));
    }
    let v = version_arg(py, Some(obj), field)?
        .ok_or_else(|| invalid_argument(py, field, "a version number or a label is required"))?;
    Ok(VersionRef::Version(v))
}

/// Deserializes a JSON value into a core type, reporting serde's complaint as a problem of
/// `field`.
pub(super) fn from_json<T: serde::de::DeserializeOwned>(
    py: Python<'_>,
    field: &str,
    value: Value,
) -> PyResult<T> {
    serde_json::from_value(value).map_err(|e| to_py_err(py, Error::invalid_argument(field, e.to_string())))
}

/// A list of definitions (variables, validation rules).
pub(super) fn list_arg<T: serde::de::DeserializeOwned>(
    py: Python<'_>,
    field: &str,
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<Vec<T>>> {
    opt_mapping_list(value, field, Keys::ToCamel)?.map(|json| from_json(py, field, json)).transpose()
}
