//! The one place where FormaOps errors become Python exceptions.
//!
//! ```text
//! FormaOpsError                 base of everything raised by formaops
//! ├── ValidationError           bad inputs, prompt definition or argument; .problems
//! ├── NotFoundError             missing, or owned by another user
//! ├── ConflictError             contradicts current state (duplicate name, retry of a
//! │                             non-failed execution, reused idempotency key, lost race)
//! ├── ProviderError             the LLM provider failed; .transient, .kind, .status
//! └── UnavailableError          the database is unreachable or the engine is shutting down
//! ```
//!
//! `ValidationError.problems` is a list of dicts `{"field", "code", "message"}`, one per
//! problem, so callers can act on them as data.

use formaops_core::{Error, Problem, ProblemCode};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::keys::{camel_to_snake, is_raw_key};

pyo3::create_exception!(
    formaops,
    FormaOpsError,
    pyo3::exceptions::PyException,
    "Base class of every error raised by formaops."
);
pyo3::create_exception!(
    formaops,
    ValidationError,
    FormaOpsError,
    "Inputs, a prompt definition or an argument are invalid; `.problems` lists each problem."
);
pyo3::create_exception!(
    formaops,
    NotFoundError,
    FormaOpsError,
    "The prompt or execution does not exist (or belongs to another user)."
);
pyo3::create_exception!(formaops, ConflictError, FormaOpsError, "The request contradicts the current state.");
pyo3::create_exception!(
    formaops,
    ProviderError,
    FormaOpsError,
    "The LLM provider failed; `.transient` says whether trying again may succeed."
);
pyo3::create_exception!(
    formaops,
    UnavailableError,
    FormaOpsError,
    "A dependency (the database) is unavailable, or the engine is shutting down."
);

/// Registers the exception classes on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("FormaOpsError", py.get_type::<FormaOpsError>())?;
    m.add("ValidationError", py.get_type::<ValidationError>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    m.add("ConflictError", py.get_type::<ConflictError>())?;
    m.add("ProviderError", py.get_type::<ProviderError>())?;
    m.add("UnavailableError", py.get_type::<UnavailableError>())?;
    // Class-level defaults, so the attributes exist even on instances raised by user code.
    let empty = pyo3::types::PyTuple::empty(py);
    py.get_type::<ValidationError>().setattr("problems", empty)?;
    let provider = py.get_type::<ProviderError>();
    provider.setattr("transient", false)?;
    provider.setattr("kind", py.None())?;
    provider.setattr("status", py.None())?;
    provider.setattr("retry_after", py.None())?;
    Ok(())
}

/// A `ValidationError` carrying `problems`.
fn validation_error(py: Python<'_>, message: String, problems: &[Problem]) -> PyErr {
    let err = ValidationError::new_err(message);
    let attach = || -> PyResult<()> {
        let list = PyList::empty(py);
        for p in problems {
            let d = PyDict::new(py);
            d.set_item("field", &p.field)?;
            d.set_item("code", p.code.as_str())?;
            d.set_item("message", &p.message)?;
            list.append(d)?;
        }
        err.value(py).setattr("problems", list)?;
        Ok(())
    };
    match attach() {
        Ok(()) => err,
        Err(e) => e,
    }
}

/// A `ValidationError` with one problem (an argument the binding itself rejects).
pub fn invalid_argument(py: Python<'_>, field: &str, message: impl Into<String>) -> PyErr {
    to_py_err(py, Error::invalid_argument(field, message))
}

// ----- Python spelling of field names -----

/// A problem's field path as the Python user spelled it: `variables[0].defaultValue` ->
/// `variables[0].default_value`. Segments under user data (`inputs.myVar`, a JSON Schema,
/// a default value) keep their spelling, as [`convert`](crate::convert) keeps those keys.
pub fn python_field(field: &str) -> String {
    let mut out = String::with_capacity(field.len() + 4);
    let mut raw = false;
    for (i, segment) in field.split('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        if raw {
            out.push_str(segment);
            continue;
        }
        let (name, index) = segment.split_at(segment.find('[').unwrap_or(segment.len()));
        out.push_str(&camel_to_snake(name));
        out.push_str(index);
        raw = is_raw_key(name);
    }
    out
}

/// A message with the camelCase field names it quotes in backticks (serde's "unknown field
/// `defaultValu`, expected one of `name`, `defaultValue`, ...", core's "`maxLength` only
/// applies to ...") in snake_case. A value quoted after "unknown variant" is the user's own
/// text and is kept.
pub fn python_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 8);
    let mut rest = message;
    while let Some(open) = rest.find('`') {
        let (before, after) = rest.split_at(open + 1);
        out.push_str(before);
        let Some(close) = after.find('`') else {
            rest = after;
            break;
        };
        let quoted = &after[..close];
        let is_name = quoted.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if is_name && !before.ends_with("unknown variant `") {
            out.push_str(&camel_to_snake(quoted));
        } else {
            out.push_str(quoted);
        }
        out.push('`');
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

fn python_problem(p: Problem) -> Problem {
    // Template problems quote the user's template (block names, tokens): kept as they are.
    let message = if matches!(p.field.as_str(), "template" | "systemTemplate") {
        p.message
    } else {
        python_message(&p.message)
    };
    Problem { field: python_field(&p.field), code: p.code, message }
}

/// The error with field names spelled for Python.
fn pythonize(error: Error) -> Error {
    match error {
        Error::InvalidInputs { problems } => {
            Error::InvalidInputs { problems: problems.into_iter().map(python_problem).collect() }
        }
        Error::InvalidPrompt { problems } => {
            Error::InvalidPrompt { problems: problems.into_iter().map(python_problem).collect() }
        }
        Error::InvalidArgument { field, message } => {
            Error::InvalidArgument { field: python_field(&field), message: python_message(&message) }
        }
        other => other,
    }
}

/// Maps a core error to its Python exception, with field names in Python's spelling.
pub fn to_py_err(py: Python<'_>, error: Error) -> PyErr {
    let error = pythonize(error);
    let message = error.to_string();
    match error {
        Error::NotFound { .. } => NotFoundError::new_err(message),
        Error::Conflict { .. } | Error::IdempotencyKeyReused { .. } => ConflictError::new_err(message),
        Error::InvalidInputs { problems } | Error::InvalidPrompt { problems } => {
            validation_error(py, message, &problems)
        }
        Error::InvalidArgument { field, message: detail } => {
            validation_error(py, message, &[Problem::new(field, ProblemCode::Invalid, detail)])
        }
        Error::Render { message: detail } => {
            validation_error(py, message, &[Problem::new("template", ProblemCode::Render, detail)])
        }
        Error::Provider(e) => {
            let err = ProviderError::new_err(message);
            let attach = || -> PyResult<()> {
                let value = err.value(py);
                value.setattr("transient", e.is_transient())?;
                value.setattr("kind", e.kind.as_str())?;
                value.setattr("status", e.status)?;
                value.setattr("retry_after", e.retry_after.map(|d| d.as_secs_f64()))?;
                Ok(())
            };
            match attach() {
                Ok(()) => err,
                Err(e) => e,
            }
        }
        Error::Unavailable { .. } | Error::ShuttingDown => UnavailableError::new_err(message),
        // Internal errors and variants added to core later.
        _ => FormaOpsError::new_err(message),
    }
}

/// `Result` mapping helper for core calls.
pub trait IntoPyResult<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for formaops_core::Result<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py_err(py, e))
    }
}

#[cfg(test)]
mod tests {
    use formaops_core::provider::{ProviderError as CoreProviderError, ProviderErrorKind};

    use super::*;

    fn mapped(error: Error) -> (String, Py<pyo3::exceptions::PyBaseException>) {
        Python::initialize();
        Python::attach(|py| {
            let err = to_py_err(py, error);
            let name = err.get_type(py).name().map(|n| n.to_string()).unwrap_or_default();
            (name, err.value(py).clone().unbind())
        })
    }

    fn attr<T: for<'a, 'py> pyo3::FromPyObject<'a, 'py>>(
        value: &Py<pyo3::exceptions::PyBaseException>,
        name: &str,
    ) -> T
    where
        for<'a, 'py> <T as pyo3::FromPyObject<'a, 'py>>::Error: std::fmt::Debug,
    {
        Python::attach(|py| value.bind(py).getattr(name).unwrap().extract::<T>().unwrap())
    }

    #[test]
    fn every_error_kind_has_its_exception() {
        let cases = [
            (Error::not_found("prompt", "x"), "NotFoundError"),
            (Error::conflict("dup"), "ConflictError"),
            (Error::IdempotencyKeyReused { key: "k".into() }, "ConflictError"),
            (Error::invalid_argument("limit", "too big"), "ValidationError"),
            (Error::Render { message: "out of fuel".into() }, "ValidationError"),
            (Error::unavailable("db down"), "UnavailableError"),
            (Error::ShuttingDown, "UnavailableError"),
            (Error::internal("bug"), "FormaOpsError"),
            (Error::Provider(CoreProviderError::new(ProviderErrorKind::Auth, "no")), "ProviderError"),
        ];
        for (error, expected) in cases {
            assert_eq!(mapped(error).0, expected);
        }
    }

    #[test]
    fn validation_problems_are_data() {
        let (name, value) = mapped(Error::InvalidInputs {
            problems: vec![
                Problem::new("inputs.a", ProblemCode::Missing, "required"),
                Problem::new("inputs.b", ProblemCode::WrongType, "expected number"),
            ],
        });
        assert_eq!(name, "ValidationError");
        let problems: Vec<std::collections::HashMap<String, String>> = attr(&value, "problems");
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0]["field"], "inputs.a");
        assert_eq!(problems[1]["code"], "wrong_type");
        assert_eq!(problems[1]["message"], "expected number");
        let (_, value) = mapped(Error::invalid_argument("cursor", "bad"));
        let problems: Vec<std::collections::HashMap<String, String>> = attr(&value, "problems");
        assert_eq!(problems[0]["field"], "cursor");
    }

    #[test]
    fn fields_are_spelled_for_python() {
        assert_eq!(python_field("variables[0].defaultValue"), "variables[0].default_value");
        assert_eq!(python_field("variables[2].maxLength"), "variables[2].max_length");
        assert_eq!(python_field("systemTemplate"), "system_template");
        assert_eq!(
            python_field("model.parameters.maxCompletionTokens"),
            "model.parameters.max_completion_tokens"
        );
        // User data keeps its spelling.
        assert_eq!(python_field("inputs.myVar"), "inputs.myVar");
        assert_eq!(
            python_field("variables[1].schema.properties.fooBar"),
            "variables[1].schema.properties.fooBar"
        );
        assert_eq!(python_field("variables[1].defaultValue.someKey"), "variables[1].default_value.someKey");
        assert_eq!(
            python_message("unknown field `defaultValu`, expected one of `name`, `defaultValue`"),
            "unknown field `default_valu`, expected one of `name`, `default_value`"
        );
        assert_eq!(
            python_message("unknown variant `myType`, expected `string`"),
            "unknown variant `myType`, expected `string`"
        );
        assert_eq!(python_message("odd ` quote"), "odd ` quote");
        let (_, value) = mapped(Error::InvalidPrompt {
            problems: vec![
                Problem::new("variables[0].defaultValue", ProblemCode::WrongType, "`maxLength` is 3"),
                Problem::new("systemTemplate", ProblemCode::Syntax, "Got `myBlock`, expected `endBlock`"),
            ],
        });
        let problems: Vec<std::collections::HashMap<String, String>> = attr(&value, "problems");
        assert_eq!(problems[0]["field"], "variables[0].default_value");
        assert_eq!(problems[0]["message"], "`max_length` is 3");
        assert_eq!(problems[1]["field"], "system_template");
        assert_eq!(problems[1]["message"], "Got `myBlock`, expected `endBlock`");
        let text = Python::attach(|py| value.bind(py).str().unwrap().to_string());
        assert!(text.contains("variables[0].default_value"), "{text}");
    }

    #[test]
    fn provider_errors_carry_transience() {
        let e = CoreProviderError::new(ProviderErrorKind::RateLimited, "slow down")
            .with_status(429)
            .with_retry_after(Some(std::time::Duration::from_millis(1500)));
        let (_, value) = mapped(Error::Provider(e));
        assert!(attr::<bool>(&value, "transient"));
        assert_eq!(attr::<String>(&value, "kind"), "rate_limited");
        assert_eq!(attr::<u16>(&value, "status"), 429);
        assert_eq!(attr::<f64>(&value, "retry_after"), 1.5);
        let (_, value) = mapped(Error::Provider(CoreProviderError::new(ProviderErrorKind::BadRequest, "no")));
        assert!(!attr::<bool>(&value, "transient"));
        assert_eq!(attr::<Option<u16>>(&value, "status"), None);
    }
}
