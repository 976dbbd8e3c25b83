//! Group commit: concurrent requests gathered into one store call.
//!
//! A batcher task takes the first waiting request, then every other already waiting (up to
//! `max_batch`), makes one store call for all of them and answers each caller only after that
//! call returned. While a call is in flight new requests queue up, so under load batches grow
//! by themselves and the store sees one transaction per batch instead of one per request.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

type Request<I, O> = (I, oneshot::Sender<Result<O>>);

/// The sending side of a batcher.
#[derive(Debug)]
pub(crate) struct Batcher<I, O> {
    tx: mpsc::Sender<Request<I, O>>,
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Spawns the batcher task. `call` handles one batch and must answer one output per input,
    /// in order. The task ends when every `Batcher` handle is dropped.
    pub(crate) fn spawn<F, Fut>(name: &'static str, capacity: usize, max_batch: usize, call: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<O>>> + Send,
    {
        let (tx, mut rx) = mpsc::channel::<Request<I, O>>(capacity.max(1));
        let max_batch = max_batch.max(1);
        tokio::spawn(async move {
            let mut inputs = Vec::with_capacity(max_batch);
            let mut replies = Vec::with_capacity(max_batch);
            while let Some((input, reply)) = rx.recv().await {
                inputs.push(input);
                replies.push(reply);
                while inputs.len() < max_batch {
                    match rx.try_recv() {
                        Ok((input, reply)) => {
                            inputs.push(input);
                            replies.push(reply);
                        }
                        Err(_) => break,
                    }
                }
                let n = inputs.len();
                match call(std::mem::replace(&mut inputs, Vec::with_capacity(max_batch))).await {
                    Ok(outputs) if outputs.len() == n => {
                        for (reply, out) in replies.drain(..).zip(outputs) {
                            let _ = reply.send(Ok(out));
                        }
                    }
                    Ok(outputs) => {
                        tracing::error!(
                            batcher = name,
                            expected = n,
                            got = outputs.len(),
                            "store answered a batch with the wrong number of results"
                        );
                        for reply in replies.drain(..) {
                            let _ = reply.send(Err(Error::internal(format!(
                                "{name}: store answered a batch with the wrong number of results"
                            ))));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(batcher = name, error = %e, size = n, "batched store call failed");
                        for reply in replies.drain(..) {
                            let _ = reply.send(Err(replicate(&e)));
                        }
                    }
                }
            }
        });
        Self { tx }
    }

    /// Submits one request and waits until its batch committed.
    pub(crate) async fn call(&self, input: I) -> Result<O> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((input, reply)).await.map_err(|_| Error::ShuttingDown)?;
        rx.await.map_err(|_| Error::internal("batcher stopped before answering"))?
    }
}

/// The same error for every caller of a failed batch.
fn replicate(e: &Error) -> Error {
    match e {
        Error::Unavailable { message, .. } => Error::unavailable(message.clone()),
        Error::Conflict { message } => Error::conflict(message.clone()),
        Error::ShuttingDown => Error::ShuttingDown,
        other => Error::internal(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_calls_share_batches_and_get_their_own_answers() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let b = Arc::new(Batcher::spawn("test", 1024, 64, move |xs: Vec<u32>| {
            c.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::task::yield_now().await;
                Ok(xs.into_iter().map(|x| x * 2).collect())
            }
        }));
        let handles: Vec<_> = (0..500u32)
            .map(|i| {
                let b = b.clone();
                tokio::spawn(async move { (i, b.call(i).await.unwrap()) })
            })
            .collect();
        for h in handles {
            let (i, out) = h.await.unwrap();
            assert_eq!(out, i * 2);
        }
        assert!(calls.load(Ordering::SeqCst) < 500, "no batching happened");
    }

    #[tokio::test]
    async fn a_failed_batch_fails_every_caller() {
        let b = Batcher::spawn("test", 16, 16, |_: Vec<u32>| async {
            Err::<Vec<u32>, _>(Error::unavailable("db down"))
        });
        assert!(matches!(b.call(1).await, Err(Error::Unavailable { .. })));
    }
}
