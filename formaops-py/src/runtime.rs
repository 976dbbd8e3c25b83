//! The shared tokio runtime and the blocking bridge.
//!
//! One multi-threaded runtime per process (the one `pyo3-async-runtimes` uses, so blocking and
//! asyncio calls share engine workers). Blocking calls run their future on the calling thread
//! with the GIL released, waking every [`SIGNAL_CHECK`] to let Python handle signals: Ctrl-C
//! interrupts a long `wait` or `execute` (the execution itself goes on in the engine).

use std::future::Future;
use std::time::Duration;

use pyo3::prelude::*;
use tokio::runtime::Runtime;

/// How often a blocking call re-takes the GIL to check for signals (KeyboardInterrupt).
pub const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// The process-wide runtime.
pub fn runtime() -> &'static Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}

/// Runs `fut` to completion with the GIL released. Returns `Err` only when a Python signal
/// handler raised (KeyboardInterrupt); the future is then dropped.
pub fn block_on<F>(py: Python<'_>, fut: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = runtime();
    let mut fut = std::pin::pin!(fut);
    loop {
        let slice =
            py.detach(|| rt.block_on(async { tokio::time::timeout(SIGNAL_CHECK, fut.as_mut()).await }));
        match slice {
            Ok(out) => return Ok(out),
            Err(_elapsed) => py.check_signals()?,
        }
    }
}
