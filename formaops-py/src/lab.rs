//! Arguments of the dataset and experiment methods of `NativeEngine` (GIL held): rows,
//! versions or labels, the match rule. Values are checked by core; here only Python types
//! are (TypeError naming the argument) and text is parsed (ValidationError naming it).

use std::str::FromStr;

use formaops_core::dataset::{self, DatasetRow};
use formaops_core::experiment::{MAX_TARGETS, MatchRule, TargetRef};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyInt, PySequence, PyString};
use serde_json::Value;

use crate::convert::{Keys, opt_int, opt_mapping_list, opt_str, str_arg, type_error};
use crate::error::{invalid_argument, to_py_err};

/// Dataset rows: a list of `{"inputs": {...}, "expected"?: ...}` (keys kept as given), read
/// and checked by core ([`dataset::rows_from_values`]: every bad row listed as `rows[i]`).
pub fn rows_arg(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Vec<DatasetRow>> {
    if obj.is_none() {
        return Err(type_error("rows", "a list of mappings (dicts)", obj));
    }
    let values = match opt_mapping_list(Some(obj), "rows", Keys::Raw)? {
        Some(Value::Array(values)) => values,
        _ => return Err(type_error("rows", "a list of mappings (dicts)", obj)),
    };
    dataset::rows_from_values(values).map_err(|e| to_py_err(py, e))
}

/// `versions`: a list of version numbers (`int`) and labels (`str`, a number as text counts
/// as the number). At most `MAX_TARGETS + 1` are read, so core's count check reports a list
/// that is too long without reading all of it.
pub fn versions_arg(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Vec<TargetRef>> {
    let expected = "a list of version numbers (int) or labels (str)";
    let is_sequence = !obj.is_instance_of::<PyString>()
        && !obj.is_instance_of::<PyBytes>()
        && !obj.is_instance_of::<PyByteArray>()
        && obj.cast::<PySequence>().is_ok();
    if !is_sequence {
        return Err(type_error("versions", expected, obj));
    }
    let mut out = Vec::new();
    for (i, item) in obj.try_iter()?.take(MAX_TARGETS + 1).enumerate() {
        let item = item?;
        let at = format!("versions[{i}]");
        if item.is_instance_of::<PyString>() {
            out.push(TargetRef::Name(str_arg(&item, &at)?));
        } else if item.is_instance_of::<PyInt>() && !item.is_instance_of::<PyBool>() {
            let v = opt_int(Some(&item), &at)?.unwrap_or_default();
            let v = u32::try_from(v).ok().filter(|v| *v >= 1).ok_or_else(|| {
                invalid_argument(py, &at, format!("{v} is not a version number (1 or more)"))
            })?;
            out.push(TargetRef::Number(v));
        } else {
            return Err(type_error(&at, "a version number (int) or a label (str)", &item));
        }
    }
    Ok(out)
}

/// `match`: `exact`, `json_equal`, `contains` or `regex`.
pub fn match_arg(py: Python<'_>, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<MatchRule>> {
    let Some(value) = opt_str(obj, "match")? else { return Ok(None) };
    MatchRule::from_str(&value.to_ascii_lowercase()).map(Some).map_err(|_| {
        invalid_argument(py, "match", format!("{value:?} is not one of exact, json_equal, contains, regex"))
    })
}
