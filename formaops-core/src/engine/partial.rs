//! Streamed provider calls: the output's deltas published as `partial` events while an
//! attempt runs.
//!
//! The engine streams from every provider whose [`LlmProvider::streams`] says so (an
//! OpenAI-compatible provider with `stream = true`, the default; a mock with `stream = true`).
//! The provider reports pieces of the output as they arrive; they are coalesced before they
//! reach the event bus, so a fast stream does not flood it (a token per chunk at a few
//! hundred chunks a second would otherwise be as many events):
//!
//! - the first piece of an attempt is published at once (time to first token matters);
//! - later pieces wait, and are published together at most once per [`PARTIAL_INTERVAL`],
//!   or at once when the waiting text reaches [`PARTIAL_MAX_BYTES`];
//! - whatever still waits when the call ends (success or failure) is published before the
//!   attempt's outcome, so a follower sees every piece, in order, before `completed`,
//!   `failed` or `retry_scheduled`.
//!
//! Each `partial` event carries the attempt number and the new text (`delta`); the deltas of
//! one attempt concatenate to that attempt's output (the `completed` execution's `output`).
//! A stream that fails midway is a transient fault like any other, retried by the engine's
//! retry loop: a follower sees the failed attempt's partial events, then `retry_scheduled`,
//! then `running` and the next attempt's partial events from the beginning of its output (so
//! a follower assembling the text starts over on `running`, or whenever `attempt` changes).
//!
//! Partial events are delivered to followers of this process only: they are not relayed to
//! other processes sharing the database (the relay carries state changes; see
//! [`Store::relay_events`](crate::store::Store::relay_events)).

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::state::Inner;
use crate::events::{EventKind, ExecutionEvent};
use crate::execution::Execution;
use crate::provider::{Completion, CompletionRequest, LlmProvider, PartialOutput, ProviderError};

/// Least time between two `partial` events of one attempt (unless [`PARTIAL_MAX_BYTES`] are
/// waiting).
pub const PARTIAL_INTERVAL: Duration = Duration::from_millis(50);
/// Waiting text (bytes of UTF-8) that is published without waiting for [`PARTIAL_INTERVAL`].
pub const PARTIAL_MAX_BYTES: usize = 4 * 1024;

/// Runs one streamed call, ending by `deadline` (as [`ProviderError::deadline`]),
/// publishing its output as coalesced `partial` events of `exec`'s current attempt. Returns
/// once the call has ended and every piece is published.
pub(crate) async fn streamed_call(
    inner: &Inner,
    provider: &dyn LlmProvider,
    exec: &Execution,
    request: CompletionRequest,
    deadline: Instant,
) -> Result<Completion, ProviderError> {
    let (tx, rx) = mpsc::unbounded_channel::<String>();
    let call = async move {
        // The sender lives as long as the call; dropping it ends `coalesce`.
        let on_partial = move |p: PartialOutput| {
            if !p.delta.is_empty() {
                let _ = tx.send(p.delta);
            }
        };
        match tokio::time::timeout_at(deadline, provider.complete_streaming(request, &on_partial)).await {
            Ok(result) => result,
            Err(_) => Err(ProviderError::deadline()),
        }
    };
    let publish = |delta: String| {
        inner.events.publish(
            ExecutionEvent::new(exec.id, exec.user_id, EventKind::Partial, exec.attempts, inner.clock.now())
                .with_delta(Some(delta)),
        );
    };
    let (result, ()) = tokio::join!(call, coalesce(rx, publish));
    result
}

/// Publishes the pieces received on `rx`, coalesced as the module docs say, until the sender
/// is gone; then publishes what still waits.
pub(crate) async fn coalesce(mut rx: mpsc::UnboundedReceiver<String>, publish: impl Fn(String)) {
    let mut waiting = String::new();
    let mut last: Option<Instant> = None;
    loop {
        let due = last.filter(|_| !waiting.is_empty()).map(|at| at + PARTIAL_INTERVAL);
        tokio::select! {
            biased;
            piece = rx.recv() => {
                let Some(piece) = piece else { break };
                waiting.push_str(&piece);
                let now = Instant::now();
                if last.is_none_or(|at| now >= at + PARTIAL_INTERVAL) || waiting.len() >= PARTIAL_MAX_BYTES {
                    publish(std::mem::take(&mut waiting));
                    last = Some(now);
                }
            }
            () = sleep_until_opt(due), if due.is_some() => {
                publish(std::mem::take(&mut waiting));
                last = Some(Instant::now());
            }
        }
    }
    if !waiting.is_empty() {
        publish(waiting);
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Sends `pieces` with the given gaps (ms before each), returns what was published and
    /// when (ms after the start).
    async fn run(pieces: &[(u64, &str)]) -> Vec<(u64, String)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let start = Instant::now();
        let out = Mutex::new(Vec::new());
        let send = async move {
            for (gap, piece) in pieces {
                tokio::time::sleep(Duration::from_millis(*gap)).await;
                tx.send((*piece).to_string()).unwrap();
            }
        };
        let publish = |d: String| {
            let at = u64::try_from(start.elapsed().as_millis()).unwrap();
            out.lock().unwrap().push((at, d));
        };
        tokio::join!(send, coalesce(rx, publish));
        out.into_inner().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_piece_goes_at_once_and_the_rest_at_most_once_per_interval() {
        // 20 pieces 10 ms apart: the first at once, then one event per 50 ms.
        let pieces: Vec<(u64, &str)> = (0..20).map(|i| (if i == 0 { 0 } else { 10 }, "ab")).collect();
        let out = run(&pieces).await;
        let text: String = out.iter().map(|(_, d)| d.as_str()).collect();
        assert_eq!(text, "ab".repeat(20));
        assert_eq!(out[0], (0, "ab".to_string()));
        for pair in out.windows(2) {
            assert!(pair[1].0 - pair[0].0 >= 50 || pair[1].0 == 190, "{out:?}");
        }
        assert!(out.len() <= 1 + 190 / 50 + 1, "{out:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_text_is_published_when_the_interval_passes_without_new_pieces() {
        // A piece right after the first, then silence: it goes out 50 ms after the first.
        let out = run(&[(0, "a"), (5, "b"), (500, "c")]).await;
        assert_eq!(out, [(0, "a".to_string()), (50, "b".to_string()), (505, "c".to_string())]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_waiting_text_goes_at_once() {
        let big = "x".repeat(PARTIAL_MAX_BYTES);
        let out = run(&[(0, "a"), (1, &big), (1, "b"), (100, "c")]).await;
        assert_eq!(
            out,
            [(0, "a".to_string()), (1, big.clone()), (51, "b".to_string()), (102, "c".to_string())]
        );
    }
}
