//! `EventStream` (execution events) and `ProgressStream` (experiment progress): streams as
//! Python iterators and async iterators.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use formaops_core::events::ExecutionEvent;
use formaops_core::experiment::ExperimentProgress;
use futures::StreamExt;
use futures::stream::BoxStream;
use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;
use tokio::sync::Mutex;

use crate::convert::to_py;
use crate::runtime::block_on;

/// Execution state-change events, as dicts. Iterating ends when no event arrives within the
/// timeout given to `events()`, or when the stream ends (for one execution, after its final
/// event: see `formaops_core::engine::FormaOps::follow`).
#[pyclass(module = "formaops._formaops", frozen)]
pub struct EventStream {
    inner: Arc<Inner<ExecutionEvent>>,
}

/// Experiment progress reports, as dicts: one now, then one on each change, ending after the
/// experiment is completed or cancelled with nothing in flight (see
/// `formaops_core::engine::FormaOps::follow_experiment`).
#[pyclass(module = "formaops._formaops", frozen)]
pub struct ProgressStream {
    inner: Arc<Inner<ExperimentProgress>>,
}

impl std::fmt::Debug for ProgressStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressStream").field("done", &self.inner.done.load(Ordering::Relaxed)).finish()
    }
}

struct Inner<T> {
    stream: Mutex<BoxStream<'static, T>>,
    timeout: Option<Duration>,
    done: AtomicBool,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("timeout", &self.inner.timeout)
            .field("done", &self.inner.done.load(Ordering::Relaxed))
            .finish()
    }
}

impl<T: serde::Serialize + Send + 'static> Inner<T> {
    fn new(stream: BoxStream<'static, T>, timeout: Option<Duration>) -> Arc<Self> {
        Arc::new(Self { stream: Mutex::new(stream), timeout, done: AtomicBool::new(false) })
    }

    /// The next item, or `None` when the stream ended (timeout, final item, closed).
    async fn next(&self) -> Option<T> {
        if self.done.load(Ordering::SeqCst) {
            return None;
        }
        let mut stream = self.stream.lock().await;
        let next = match self.timeout {
            Some(t) => tokio::time::timeout(t, stream.next()).await.ok().flatten(),
            None => stream.next().await,
        };
        if next.is_none() {
            self.done.store(true, Ordering::SeqCst);
        }
        next
    }
}

impl EventStream {
    pub fn new(stream: BoxStream<'static, ExecutionEvent>, timeout: Option<Duration>) -> Self {
        Self { inner: Inner::new(stream, timeout) }
    }
}

impl<T: serde::Serialize + Send + 'static> Inner<T> {
    /// The next item with the GIL released, as a dict; `None` (`StopIteration`) at the end.
    fn next_blocking<'py>(self: &Arc<Self>, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let inner = Arc::clone(self);
        match block_on(py, async move { inner.next().await })? {
            Some(item) => Ok(Some(to_py(py, &item)?)),
            None => Ok(None),
        }
    }

    /// An awaitable of the next item as a dict; `StopAsyncIteration` at the end.
    fn next_async<'py>(self: &Arc<Self>, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = Arc::clone(self);
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let next = inner.next().await;
            Python::attach(|py| match next {
                Some(item) => Ok(to_py(py, &item)?.unbind()),
                None => Err(PyStopAsyncIteration::new_err(())),
            })
        })
    }
}

impl ProgressStream {
    pub fn new(stream: BoxStream<'static, ExperimentProgress>) -> Self {
        Self { inner: Inner::new(stream, None) }
    }
}

/// The iterator and async-iterator protocol of a stream class holding an `inner: Inner<T>`:
/// items as dicts, the GIL released while waiting, `StopIteration` / `StopAsyncIteration` at
/// the end, `close()` to end early.
macro_rules! stream_protocol {
    ($class:ident) => {
        #[pymethods]
        impl $class {
            fn __iter__(slf: Py<Self>) -> Py<Self> {
                slf
            }

            /// The next item with the GIL released; `StopIteration` at the end.
            fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
                self.inner.next_blocking(py)
            }

            fn __aiter__(slf: Py<Self>) -> Py<Self> {
                slf
            }

            /// An awaitable of the next item; `StopAsyncIteration` at the end.
            fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                self.inner.next_async(py)
            }

            /// Ends the iteration; later calls to `next` stop at once.
            fn close(&self) {
                self.inner.done.store(true, Ordering::SeqCst);
            }
        }
    };
}

stream_protocol!(EventStream);
stream_protocol!(ProgressStream);
