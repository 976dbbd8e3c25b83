//! [`Call`]: what a blocking method and its `_async` twin share.
//!
//! Each operation parses its Python arguments once, into a `Call`; the blocking method runs it
//! with `NativeEngine::run_to_py` and the twin with `NativeEngine::run_async`, so the two
//! cannot drift apart (same checks, same errors, same result).

use std::future::Future;

use formaops_core::engine::FormaOps;
use formaops_core::ids::UserId;
use futures::FutureExt;
use futures::future::BoxFuture;

/// One engine call with its arguments parsed into owned values, not yet run.
pub(super) type Call<T> =
    Box<dyn FnOnce(FormaOps, UserId) -> BoxFuture<'static, formaops_core::Result<T>> + Send>;

pub(super) fn call<T, Fut>(f: impl FnOnce(FormaOps, UserId) -> Fut + Send + 'static) -> Call<T>
where
    Fut: Future<Output = formaops_core::Result<T>> + Send + 'static,
{
    Box::new(move |e, user| f(e, user).boxed())
}
