//! `EventStream`: execution events as a Python iterator and async iterator.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use formaops_core::events::ExecutionEvent;
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
    inner: Arc<Inner>,
}

struct Inner {
    stream: Mutex<BoxStream<'static, ExecutionEvent>>,
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

impl Inner {
    /// The next event, or `None` when the stream ended (timeout, final event, closed).
    async fn next(&self) -> Option<ExecutionEvent> {
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
        Self { inner: Arc::new(Inner { stream: Mutex::new(stream), timeout, done: AtomicBool::new(false) }) }
    }
}

#[pymethods]
impl EventStream {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// The next event with the GIL released; `StopIteration` at the end.
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let inner = Arc::clone(&self.inner);
        match block_on(py, async move { inner.next().await })? {
            Some(event) => Ok(Some(to_py(py, &event)?)),
            None => Ok(None),
        }
    }

    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// An awaitable of the next event; `StopAsyncIteration` at the end.
    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = Arc::clone(&self.inner);
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let next = inner.next().await;
            Python::attach(|py| match next {
                Some(event) => Ok(to_py(py, &event)?.unbind()),
                None => Err(PyStopAsyncIteration::new_err(())),
            })
        })
    }

    /// Ends the iteration; later calls to `next` stop at once.
    fn close(&self) {
        self.inner.done.store(true, Ordering::SeqCst);
    }
}
