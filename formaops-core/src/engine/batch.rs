//! Group commit: concurrent requests gathered into one store call.
//!
//! A batcher task takes the first waiting request, then every other already waiting (up to
//! `max_batch`), makes one store call for all of them and answers each caller only after that
//! call returned. While a call is in flight new requests queue up, so under load batches grow
//! by themselves and the store sees one transaction per batch instead of one per request.
//!
//! # One item never fails the others
//!
//! Callers of one batch are usually different users, so a batch that fails because of one
//! item (a value the database refuses, a bug triggered by one row) must not fail the rest.
//! When the store call for n > 1 items fails, the batcher splits the batch in halves and
//! commits each half on its own, recursively, until the failing items stand alone: they get
//! the store's error, every other item its normal answer. One bad item in a batch of n costs
//! about 2·log2(n) extra store calls; a batch where every item fails costs 2n - 1. This relies
//! on the store call being all-or-nothing (one transaction), so a failed call changed nothing
//! and its items may be committed again.
//!
//! Errors that say nothing about the items are not split but answered to every caller at
//! once: [`Error::Unavailable`] (the database is down or the commit's outcome is unknown, so
//! retrying would only wait longer or commit twice) and [`Error::ShuttingDown`].

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

type Reply<O> = oneshot::Sender<Result<O>>;
type Request<I, O> = (I, Reply<O>);

/// The sending side of a batcher.
#[derive(Debug)]
pub(crate) struct Batcher<I, O> {
    tx: mpsc::Sender<Request<I, O>>,
}

impl<I: Send + Sync + 'static, O: Send + 'static> Batcher<I, O> {
    /// Spawns the batcher task. `call` commits one batch, all or nothing, and must answer one
    /// output per input, in order. The task ends when every `Batcher` handle is dropped.
    pub(crate) fn spawn<F>(name: &'static str, capacity: usize, max_batch: usize, call: F) -> Self
    where
        F: for<'a> Fn(&'a [I]) -> BoxFuture<'a, Result<Vec<O>>> + Send + Sync + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<Request<I, O>>(capacity.max(1));
        let max_batch = max_batch.max(1);
        tokio::spawn(async move {
            let mut inputs = Vec::with_capacity(max_batch);
            let mut replies = Vec::with_capacity(max_batch);
            while let Some((input, reply)) = rx.recv().await {
                inputs.push(input);
                replies.push(Some(reply));
                while inputs.len() < max_batch {
                    match rx.try_recv() {
                        Ok((input, reply)) => {
                            inputs.push(input);
                            replies.push(Some(reply));
                        }
                        Err(_) => break,
                    }
                }
                settle(name, &call, &inputs, &mut replies).await;
                inputs.clear();
                replies.clear();
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

/// Commits `inputs` with `call` and answers every reply: in one call when it succeeds, else
/// by halves (see the module docs). Each caller is answered as soon as its part is settled.
async fn settle<I, O, F>(name: &'static str, call: &F, inputs: &[I], replies: &mut [Option<Reply<O>>])
where
    F: for<'a> Fn(&'a [I]) -> BoxFuture<'a, Result<Vec<O>>>,
{
    // Ranges still to commit; the earliest on top, so items keep their order.
    let mut pending = vec![(0, inputs.len())];
    while let Some((lo, hi)) = pending.pop() {
        let n = hi - lo;
        let answers: Vec<Result<O>> = match call(&inputs[lo..hi]).await {
            Ok(outputs) if outputs.len() == n => outputs.into_iter().map(Ok).collect(),
            Ok(outputs) => {
                tracing::error!(
                    batcher = name,
                    expected = n,
                    got = outputs.len(),
                    "store answered a batch with the wrong number of results"
                );
                (0..n)
                    .map(|_| {
                        Err(Error::internal(format!(
                            "{name}: store answered a batch with the wrong number of results"
                        )))
                    })
                    .collect()
            }
            Err(e) if n > 1 && !is_batch_wide(&e) => {
                tracing::warn!(batcher = name, error = %e, size = n, "batched store call failed; committing its halves separately");
                let mid = lo + n / 2;
                pending.push((mid, hi));
                pending.push((lo, mid));
                continue;
            }
            Err(e) if n == 1 => vec![Err(e)],
            Err(e) => {
                tracing::warn!(batcher = name, error = %e, size = n, "batched store call failed");
                (0..n).map(|_| Err(replicate(&e))).collect()
            }
        };
        for (reply, answer) in replies[lo..hi].iter_mut().zip(answers) {
            if let Some(reply) = reply.take() {
                let _ = reply.send(answer);
            }
        }
    }
}

/// Whether `e` is about the store rather than the batch's items (so splitting cannot help).
fn is_batch_wide(e: &Error) -> bool {
    matches!(e, Error::Unavailable { .. } | Error::ShuttingDown)
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
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use futures::FutureExt;

    use super::*;

    #[tokio::test]
    async fn concurrent_calls_share_batches_and_get_their_own_answers() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let b = Arc::new(Batcher::spawn("test", 1024, 64, move |xs: &[u32]| {
            c.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::task::yield_now().await;
                Ok(xs.iter().map(|x| x * 2).collect())
            }
            .boxed()
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

    /// A fake store: commits a batch all or nothing, refuses any batch holding a multiple of
    /// 7, and is slow enough that concurrent callers pile up into large batches.
    fn poisoned_store(
        committed: Arc<Mutex<Vec<u32>>>,
        calls: Arc<AtomicUsize>,
        biggest: Arc<AtomicUsize>,
    ) -> impl for<'a> Fn(&'a [u32]) -> BoxFuture<'a, Result<Vec<u32>>> + Send + Sync + 'static {
        move |xs: &[u32]| {
            calls.fetch_add(1, Ordering::SeqCst);
            biggest.fetch_max(xs.len(), Ordering::SeqCst);
            let committed = committed.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                if let Some(bad) = xs.iter().find(|x| *x % 7 == 0) {
                    return Err(Error::invalid_argument("text", format!("item {bad} cannot be stored")));
                }
                committed.lock().unwrap().extend_from_slice(xs);
                Ok(xs.iter().map(|x| x * 2).collect())
            }
            .boxed()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_item_fails_only_itself() {
        let committed = Arc::new(Mutex::new(Vec::new()));
        let (calls, biggest) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let b = Arc::new(Batcher::spawn(
            "test",
            4096,
            64,
            poisoned_store(committed.clone(), calls.clone(), biggest.clone()),
        ));
        let handles: Vec<_> = (1..=1000u32)
            .map(|i| {
                let b = b.clone();
                tokio::spawn(async move { (i, b.call(i).await) })
            })
            .collect();
        for h in handles {
            match h.await.unwrap() {
                (i, Ok(out)) => {
                    assert!(i % 7 != 0, "poisoned item {i} was committed");
                    assert_eq!(out, i * 2);
                }
                (i, Err(e)) => {
                    assert_eq!(i % 7, 0, "good item {i} failed: {e}");
                    // The store's own error, not a generic one.
                    assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
                }
            }
        }
        assert!(biggest.load(Ordering::SeqCst) > 1, "no batch formed, nothing was isolated");
        let committed = committed.lock().unwrap();
        let unique: HashSet<_> = committed.iter().collect();
        assert_eq!(unique.len(), committed.len(), "an item was committed twice");
        assert_eq!(committed.len(), (1..=1000u32).filter(|i| i % 7 != 0).count());
    }

    /// Holds the batcher in a first, slow call so that the following `n` calls form one batch.
    async fn one_batch_of<F>(call: F, n: u32) -> Vec<Result<u32>>
    where
        F: for<'a> Fn(&'a [u32]) -> BoxFuture<'a, Result<Vec<u32>>> + Send + Sync + 'static,
    {
        let b = Arc::new(Batcher::spawn("test", 64, 64, call));
        let first = {
            let b = b.clone();
            tokio::spawn(async move { b.call(u32::MAX).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let b = b.clone();
                tokio::spawn(async move { b.call(i).await })
            })
            .collect();
        let _ = first.await.unwrap();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn an_unavailable_store_fails_the_batch_without_splitting_it() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let out = one_batch_of(
            move |xs: &[u32]| {
                c.fetch_add(1, Ordering::SeqCst);
                let slow = xs.contains(&u32::MAX);
                async move {
                    if slow {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err::<Vec<u32>, _>(Error::unavailable("db down"))
                }
                .boxed()
            },
            16,
        )
        .await;
        assert!(out.iter().all(|r| matches!(r, Err(Error::Unavailable { .. }))));
        assert_eq!(calls.load(Ordering::SeqCst), 2, "the first call and one for the batch of 16");
    }

    #[tokio::test]
    async fn one_bad_item_costs_a_few_calls_not_one_per_item() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let out = one_batch_of(
            move |xs: &[u32]| {
                c.fetch_add(1, Ordering::SeqCst);
                let slow = xs.contains(&u32::MAX);
                let bad = xs.contains(&5);
                let doubled: Vec<u32> = xs.iter().map(|x| x.wrapping_mul(2)).collect();
                async move {
                    if slow {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    if bad { Err(Error::internal("row 5 broke the insert")) } else { Ok(doubled) }
                }
                .boxed()
            },
            16,
        )
        .await;
        for (i, r) in out.iter().enumerate() {
            match r {
                Ok(v) => assert_eq!(*v as usize, i * 2),
                Err(e) => assert_eq!(i, 5, "item {i} failed: {e}"),
            }
        }
        assert!(out[5].is_err());
        // 1 (first) + 1 (the batch) + 2 per level of the split (4 levels for 16).
        assert_eq!(calls.load(Ordering::SeqCst), 2 + 2 * 4);
    }
}
