//! The event bus: every execution state change, delivered to subscribers in this process, and
//! relayed to other processes through [`Store::relay_events`](crate::store::Store::relay_events).
//!
//! Subscribers get a filtered view of one tokio broadcast channel; a subscriber that lags more
//! than [`BUS_CAPACITY`] events behind misses the oldest ones (and should re-read state).
//! `wait` does not subscribe to the broadcast: it registers a one-shot waiter per execution,
//! woken by the final event, so thousands of concurrent `execute` calls cost O(1) per event.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::events::{EventKind, ExecutionEvent};
use crate::ids::{ExecutionId, UserId};

/// Events a slow subscriber may lag behind before it misses some.
pub const BUS_CAPACITY: usize = 4096;
/// Local events waiting to be relayed to other processes; beyond this, relaying drops events
/// (delivery across processes is best effort).
pub const RELAY_CAPACITY: usize = 65_536;

#[derive(Debug)]
pub(crate) struct EventBus {
    tx: broadcast::Sender<ExecutionEvent>,
    waiters: Mutex<HashMap<ExecutionId, Vec<oneshot::Sender<()>>>>,
    relay: Option<mpsc::Sender<ExecutionEvent>>,
}

impl EventBus {
    pub(crate) fn new(relay: Option<mpsc::Sender<ExecutionEvent>>) -> Self {
        let (tx, _) = broadcast::channel(BUS_CAPACITY);
        Self { tx, waiters: Mutex::new(HashMap::new()), relay }
    }

    /// Publishes a state change made by this process. `partial` events stay in this process:
    /// the relay carries state changes only (see `engine::partial`).
    pub(crate) fn publish(&self, event: ExecutionEvent) {
        self.deliver(&event);
        if event.kind == EventKind::Partial {
            return;
        }
        if let Some(relay) = &self.relay
            && relay.try_send(event).is_err()
        {
            tracing::warn!("event relay queue full or closed; an event was not relayed to other processes");
        }
    }

    /// Delivers an event (local or from another process) to this process's subscribers.
    pub(crate) fn deliver(&self, event: &ExecutionEvent) {
        if event.status.is_final() {
            let senders = self.waiters.lock().ok().and_then(|mut w| w.remove(&event.execution_id));
            for s in senders.into_iter().flatten() {
                let _ = s.send(());
            }
        }
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(event.clone());
        }
    }

    /// A receiver woken when `id` reaches a final state (or when the waiter is dropped).
    pub(crate) fn waiter(&self, id: ExecutionId) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = self.waiters.lock() {
            w.entry(id).or_default().push(tx);
        }
        rx
    }

    /// Forgets waiters of `id` that nobody listens to any more.
    pub(crate) fn forget_waiters(&self, id: ExecutionId) {
        if let Ok(mut w) = self.waiters.lock()
            && let Some(v) = w.get_mut(&id)
        {
            v.retain(|s| !s.is_closed());
            if v.is_empty() {
                w.remove(&id);
            }
        }
    }

    /// Events of one execution of `user`; `None` stands for events missed because this
    /// subscriber lagged more than [`BUS_CAPACITY`] behind.
    pub(crate) fn subscribe_one(
        &self,
        user: UserId,
        id: ExecutionId,
    ) -> BoxStream<'static, Option<ExecutionEvent>> {
        BroadcastStream::new(self.tx.subscribe())
            .filter_map(move |r| {
                let item = match r {
                    Ok(e) if e.user_id == user && e.execution_id == id => Some(Some(e)),
                    Ok(_) => None,
                    Err(BroadcastStreamRecvError::Lagged(_)) => Some(None),
                };
                futures::future::ready(item)
            })
            .boxed()
    }

    pub(crate) fn subscribe(
        &self,
        user: UserId,
        execution: Option<ExecutionId>,
    ) -> BoxStream<'static, ExecutionEvent> {
        BroadcastStream::new(self.tx.subscribe())
            .filter_map(move |r| {
                let keep =
                    r.ok().filter(|e| e.user_id == user && execution.is_none_or(|id| id == e.execution_id));
                futures::future::ready(keep)
            })
            .boxed()
    }
}
