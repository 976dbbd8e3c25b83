//! # formaops-py
//!
//! The native module `formaops._formaops` behind the Python package `formaops`: a thin PyO3
//! layer over [`formaops_core`] and [`formaops_store`]. It decides no rule; it copies Python
//! arguments into owned Rust values, runs the engine with the GIL released on one shared
//! tokio runtime (or as asyncio awaitables), and hands results back as dicts.
//!
//! # Layout
//!
//! - [`engine`]: `NativeEngine`, one method per engine operation.
//! - [`events`]: `EventStream` and `ProgressStream`, events and experiment progress as
//!   iterators and async iterators.
//! - [`lab`]: arguments of the dataset and experiment methods.
//! - [`open`]: opening a store and engine from Python arguments; the implicit local user.
//! - [`providers`]: building the `mock` or `openai` provider from Python arguments.
//! - [`convert`]: Python objects <-> JSON values, timestamps.
//! - [`keys`]: key styles (`snake_case` / `camelCase`), user-data and timestamp keys.
//! - [`error`]: the exception hierarchy and the one mapping from core errors.
//! - [`runtime`]: the shared runtime and the GIL-releasing blocking bridge.
//!
//! The Python API (`formaops.Engine`, dataclass results) lives in `python/formaops/`; its type
//! stubs are `python/formaops/_formaops.pyi`, checked against this module by `mypy.stubtest`.

use pyo3::prelude::*;

pub mod convert;
pub mod engine;
pub mod error;
pub mod events;
pub mod keys;
pub mod lab;
pub mod open;
pub mod providers;
pub mod runtime;

/// The native module.
#[pymodule]
fn _formaops(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("DEFAULT_USER_EMAIL", open::DEFAULT_USER_EMAIL)?;
    // The statuses after which an execution changes no more: core's one `is_final` rule.
    let final_statuses: Vec<&str> = formaops_core::execution::ExecutionStatus::ALL
        .into_iter()
        .filter(|s| s.is_final())
        .map(|s| s.as_str())
        .collect();
    m.add("FINAL_STATUSES", pyo3::types::PyTuple::new(m.py(), final_statuses)?)?;
    m.add_class::<engine::NativeEngine>()?;
    m.add_class::<events::EventStream>()?;
    m.add_class::<events::ProgressStream>()?;
    error::register(m)?;
    Ok(())
}
