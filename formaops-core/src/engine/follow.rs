//! Following one execution until it is final: the one implementation behind the SSE and
//! WebSocket `?executionId=` streams and Python's `events(execution_id)`.
//!
//! [`FormaOps::follow`](super::FormaOps::follow) subscribes to the execution's events *before* reading its state, so
//! no change can fall between the snapshot and the first event (an event may repeat what the
//! snapshot already shows; it never goes missing). The event stream ends right after the
//! first final event ([`ExecutionEvent::is_final`]), and is empty when the snapshot is
//! already final. A follower that lags so far behind the event bus that it misses events
//! re-reads the execution: when it is final by then, the stream ends with an event made from
//! that state ([`ExecutionEvent::of_state`]), so a follower never waits forever for a final
//! event it missed.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::{self, BoxStream};

use super::state::Inner;
use crate::error::Result;
use crate::events::ExecutionEvent;
use crate::execution::Execution;
use crate::ids::{ExecutionId, UserId};

/// One execution followed: its state when following began, then its events up to the final one.
pub struct Follow {
    /// The execution as it was right after subscribing.
    pub snapshot: Execution,
    /// Every later event of the execution, ending after the final one (empty when
    /// `snapshot` is already final).
    pub events: BoxStream<'static, ExecutionEvent>,
}

impl std::fmt::Debug for Follow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follow").field("snapshot", &self.snapshot.id).finish_non_exhaustive()
    }
}

pub(super) async fn follow(inner: &Inner, user: UserId, id: ExecutionId) -> Result<Follow> {
    // Subscribe first, then read the state, so no change falls between the two.
    let events = inner.events.subscribe_one(user, id);
    let snapshot = inner.store.get_execution(user, id).await?;
    if snapshot.status.is_final() {
        return Ok(Follow { snapshot, events: stream::empty().boxed() });
    }
    let store = Arc::clone(&inner.store);
    let events = stream::unfold(Some(events), move |state| {
        let store = Arc::clone(&store);
        async move {
            let mut events = state?;
            loop {
                match events.next().await? {
                    Some(event) => {
                        let next = if event.is_final() { None } else { Some(events) };
                        return Some((event, next));
                    }
                    // Missed events: the state tells whether the final one was among them.
                    None => match store.get_execution(user, id).await {
                        Ok(now) if now.status.is_final() => {
                            return Some((ExecutionEvent::of_state(&now), None));
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, execution = %id, "re-reading a followed execution")
                        }
                    },
                }
            }
        }
    })
    .boxed();
    Ok(Follow { snapshot, events })
}
