//! Conversion between Python objects and JSON values, and the key style of each side.
//!
//! Python sees the core types as their serde JSON form with two changes: object keys are
//! `snake_case` (the JSON API's `camelCase` renamed) and RFC 3339 timestamps are timezone-aware
//! `datetime` objects. User data (execution inputs, parsed outputs, JSON Schemas, default
//! values) is passed through untouched: its keys are never renamed.
//!
//! Python values are walked into [`serde_json::Value`] directly (no JSON text round trip);
//! the walk is bounded in depth so a self-referencing list cannot overflow the stack.

use chrono::{DateTime, Utc};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDateTime, PyDict, PyFloat, PyInt, PyList, PyMapping, PyMappingMethods,
    PySequence, PyString, PyTuple, PyTzInfo, PyTzInfoAccess,
};
use serde_json::{Map, Number, Value};

use crate::error::invalid_argument;
use crate::keys::{camel_to_snake, is_raw_key, is_timestamp_key, snake_to_camel};

/// Deepest nesting accepted from Python (lists and dicts inside each other): the core's JSON
/// depth limit plus the few levels an argument wraps user data in (`variables[i].schema`), so
/// the core names the exact problem. Bounded here because converting and dropping recurse.
pub const MAX_DEPTH: usize = formaops_core::variables::MAX_JSON_DEPTH + 4;

/// How object keys are renamed while converting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// Keys are user data: kept as they are, at every depth.
    Raw,
    /// Python -> JSON: `snake_case` keys become `camelCase`, except under user-data keys ([`crate::keys`]).
    ToCamel,
    /// JSON -> Python: `camelCase` keys become `snake_case`, except under user-data keys ([`crate::keys`]); timestamp
    /// values become `datetime`.
    ToSnake,
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".to_string())
}

/// Converts a Python value (None, bool, int, float, str, list, tuple, dict with str keys)
/// into JSON. `path` names the argument in error messages.
pub fn py_to_json(obj: &Bound<'_, PyAny>, keys: Keys, path: &str) -> PyResult<Value> {
    to_json(obj, keys, path, 0)
}

fn to_json(obj: &Bound<'_, PyAny>, keys: Keys, path: &str, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!("{path}: nested deeper than {MAX_DEPTH} levels")));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::Number(u.into()));
        }
        return Err(PyValueError::new_err(format!("{path}: integer out of the 64-bit range")));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let v = f.value();
        return Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| PyValueError::new_err(format!("{path}: {v} is not a finite number")));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = Map::with_capacity(d.len());
        for (k, v) in d.iter() {
            insert_entry(&mut map, &k, &v, keys, path, depth)?;
        }
        return Ok(Value::Object(map));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        let mut out = Vec::with_capacity(l.len());
        for (i, item) in l.iter().enumerate() {
            out.push(to_json(&item, keys, &format!("{path}[{i}]"), depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        let mut out = Vec::with_capacity(t.len());
        for (i, item) in t.iter().enumerate() {
            out.push(to_json(&item, keys, &format!("{path}[{i}]"), depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    // Other mappings and sequences (MappingProxyType, OrderedDict subclasses, range, ...);
    // bytes are a sequence of ints to Python but never JSON.
    if let Ok(m) = obj.cast::<PyMapping>() {
        let mut map = Map::new();
        for item in m.items()?.iter() {
            let (k, v) = item.extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>()?;
            insert_entry(&mut map, &k, &v, keys, path, depth)?;
        }
        return Ok(Value::Object(map));
    }
    if let Ok(seq) = obj.cast::<PySequence>()
        && !obj.is_instance_of::<PyBytes>()
        && !obj.is_instance_of::<PyByteArray>()
    {
        let mut out = Vec::new();
        for (i, item) in seq.try_iter()?.enumerate() {
            out.push(to_json(&item?, keys, &format!("{path}[{i}]"), depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    Err(PyTypeError::new_err(format!(
        "{path}: {} is not JSON-compatible (use None, bool, int, float, str, list or dict)",
        type_name(obj)
    )))
}

/// Adds one `key: value` of a Python mapping to `map`, renaming the key as `keys` says.
fn insert_entry(
    map: &mut Map<String, Value>,
    k: &Bound<'_, PyAny>,
    v: &Bound<'_, PyAny>,
    keys: Keys,
    path: &str,
    depth: usize,
) -> PyResult<()> {
    let key = k
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("{path}: dict keys must be str, not {}", type_name(k))))?;
    let key = key.to_cow()?;
    let key: &str = &key;
    let (key, child_keys) = match keys {
        Keys::Raw => (key.to_owned(), Keys::Raw),
        Keys::ToCamel | Keys::ToSnake => {
            let camel = snake_to_camel(key);
            let child = if is_raw_key(&camel) { Keys::Raw } else { keys };
            (camel, child)
        }
    };
    let child_path = format!("{path}.{key}");
    let value = to_json(v, child_keys, &child_path, depth + 1)?;
    map.insert(key, value);
    Ok(())
}

// ----- method arguments -----
//
// Every argument of every method is extracted here, so a value of the wrong Python type is
// always a `TypeError` that names the argument and the type expected (PyO3's own extraction
// errors name the argument only in a note). `None` stands for "not given" where an argument
// is optional.

/// `name must be <expected>, not <type>`.
pub fn type_error(name: &str, expected: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    let got = if obj.is_none() { "None".to_string() } else { type_name(obj) };
    PyTypeError::new_err(format!("{name} must be {expected}, not {got}"))
}

/// The argument unless it is missing or `None`.
pub fn given<'a, 'py>(obj: Option<&'a Bound<'py, PyAny>>) -> Option<&'a Bound<'py, PyAny>> {
    obj.filter(|o| !o.is_none())
}

/// A required `str`.
pub fn str_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<String> {
    match obj.cast::<PyString>() {
        Ok(s) => Ok(s.to_cow()?.into_owned()),
        Err(_) => Err(type_error(name, "a str", obj)),
    }
}

/// An optional `str`.
pub fn opt_str(obj: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<String>> {
    given(obj).map(|o| str_arg(o, name)).transpose()
}

/// An optional `int` (`bool` is refused: `True` is not a count or a version).
pub fn opt_int(obj: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<i64>> {
    let Some(o) = given(obj) else { return Ok(None) };
    if !o.is_instance_of::<PyInt>() || o.is_instance_of::<PyBool>() {
        return Err(type_error(name, "an int", o));
    }
    o.extract::<i64>().map(Some).map_err(|_| invalid_argument(o.py(), name, "is out of the 64-bit range"))
}

/// An optional non-negative `int` that fits `T` (counts, milliseconds).
pub fn opt_count<T: TryFrom<i64>>(obj: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<T>> {
    let Some(o) = given(obj) else { return Ok(None) };
    let Some(i) = opt_int(Some(o), name)? else { return Ok(None) };
    T::try_from(i)
        .map(Some)
        .map_err(|_| invalid_argument(o.py(), name, format!("must be 0 or more and in range, not {i}")))
}

/// A `bool`, `default` when not given.
pub fn bool_arg(obj: Option<&Bound<'_, PyAny>>, name: &str, default: bool) -> PyResult<bool> {
    match given(obj) {
        None => Ok(default),
        Some(o) => o.cast::<PyBool>().map(|b| b.is_true()).map_err(|_| type_error(name, "a bool", o)),
    }
}

/// An optional number of seconds (`int` or `float`, not `bool`).
pub fn opt_seconds(obj: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<f64>> {
    let Some(o) = given(obj) else { return Ok(None) };
    if o.is_instance_of::<PyBool>() {
        return Err(type_error(name, "a number of seconds (int or float)", o));
    }
    if let Ok(f) = o.cast::<PyFloat>() {
        return Ok(Some(f.value()));
    }
    if o.is_instance_of::<PyInt>() {
        return o.extract::<f64>().map(Some);
    }
    Err(type_error(name, "a number of seconds (int or float)", o))
}

/// An optional timezone-aware `datetime`, in any time zone, as UTC.
pub fn opt_datetime(obj: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<DateTime<Utc>>> {
    let Some(o) = given(obj) else { return Ok(None) };
    let dt = o.cast::<PyDateTime>().map_err(|_| type_error(name, "a timezone-aware datetime", o))?;
    if dt.get_tzinfo().is_none() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a timezone-aware datetime (such as datetime.now(timezone.utc)), not a naive one"
        )));
    }
    let utc = dt.call_method1("astimezone", (PyTzInfo::utc(o.py())?,))?;
    utc.extract::<DateTime<Utc>>().map(Some)
}

/// An optional mapping (any `collections.abc.Mapping`) as a JSON object; keys renamed as
/// `keys` says.
pub fn opt_mapping(
    obj: Option<&Bound<'_, PyAny>>,
    name: &str,
    keys: Keys,
) -> PyResult<Option<Map<String, Value>>> {
    let Some(o) = given(obj) else { return Ok(None) };
    if o.cast::<PyMapping>().is_err() {
        return Err(type_error(name, "a mapping (dict)", o));
    }
    match py_to_json(o, keys, name)? {
        Value::Object(m) => Ok(Some(m)),
        _ => Err(type_error(name, "a mapping (dict)", o)),
    }
}

/// Execution inputs: a mapping of variable names to values (keys kept as given); empty when
/// not given.
pub fn inputs_arg(obj: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Map<String, Value>> {
    let Some(o) = given(obj) else { return Ok(Map::new()) };
    if o.cast::<PyMapping>().is_err() {
        return Err(type_error(name, "a mapping (dict) of variable names to values", o));
    }
    opt_mapping(Some(o), name, Keys::Raw).map(Option::unwrap_or_default)
}

/// An optional list (or other sequence, not a str) of mappings, as a JSON array.
pub fn opt_mapping_list(obj: Option<&Bound<'_, PyAny>>, name: &str, keys: Keys) -> PyResult<Option<Value>> {
    let Some(o) = given(obj) else { return Ok(None) };
    let is_sequence = !o.is_instance_of::<PyString>()
        && !o.is_instance_of::<PyBytes>()
        && !o.is_instance_of::<PyByteArray>()
        && o.cast::<PySequence>().is_ok();
    if !is_sequence {
        return Err(type_error(name, "a list of mappings (dicts)", o));
    }
    let mut out = Vec::new();
    for (i, item) in o.try_iter()?.enumerate() {
        let item = item?;
        let at = format!("{name}[{i}]");
        match opt_mapping(Some(&item), &at, keys)? {
            Some(m) => out.push(Value::Object(m)),
            None => return Err(type_error(&at, "a mapping (dict)", &item)),
        }
    }
    Ok(Some(Value::Array(out)))
}

/// Converts JSON into Python objects. With [`Keys::ToSnake`], keys are renamed and timestamp
/// strings become `datetime`.
pub fn json_to_py<'py>(py: Python<'py>, value: &Value, keys: Keys) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item, keys)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                match keys {
                    Keys::Raw | Keys::ToCamel => dict.set_item(k, json_to_py(py, v, keys)?)?,
                    Keys::ToSnake => {
                        let key = camel_to_snake(k);
                        let child = if is_raw_key(k) { Keys::Raw } else { keys };
                        let value = match v {
                            Value::String(s) if is_timestamp_key(k) => timestamp(py, s)?,
                            _ => json_to_py(py, v, child)?,
                        };
                        dict.set_item(key, value)?;
                    }
                }
            }
            dict.into_any()
        }
    })
}

fn timestamp<'py>(py: Python<'py>, s: &str) -> PyResult<Bound<'py, PyAny>> {
    match DateTime::parse_from_rfc3339(s) {
        Ok(t) => Ok(t.with_timezone(&Utc).into_pyobject(py)?.into_any()),
        // Not produced by our serializers; keep the text rather than fail a whole result.
        Err(_) => Ok(PyString::new(py, s).into_any()),
    }
}

/// Serializes a core value and converts it to its Python view (see the module docs).
pub fn to_py<'py, T: serde::Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_value(value)
        .map_err(|e| crate::error::FormaOpsError::new_err(format!("cannot convert a result: {e}")))?;
    json_to_py(py, &json, Keys::ToSnake)
}
