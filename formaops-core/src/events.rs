//! Execution events: every state change, published to subscribers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::execution::{Execution, ExecutionError, ExecutionStatus};
use crate::ids::{ExecutionId, UserId};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Accepted and waiting for a worker.
    Queued,
    /// A worker claimed it and an attempt started.
    Running,
    /// A transient failure; the execution is QUEUED again until `run_after`.
    RetryScheduled,
    /// Partial output while a completion streams (`delta` set).
    Partial,
    /// Finished with an output.
    Completed,
    /// Finished without one (`error` set).
    Failed,
    /// Cancelled while queued.
    Cancelled,
}

impl EventKind {
    /// The execution's status right after an event of this kind.
    pub fn status(self) -> ExecutionStatus {
        match self {
            Self::Queued | Self::RetryScheduled => ExecutionStatus::Queued,
            Self::Running | Self::Partial => ExecutionStatus::Running,
            Self::Completed => ExecutionStatus::Completed,
            Self::Failed => ExecutionStatus::Failed,
            Self::Cancelled => ExecutionStatus::Cancelled,
        }
    }
}

/// One execution state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionEvent {
    /// The execution that changed.
    pub execution_id: ExecutionId,
    /// Its owner (events are only delivered to them).
    pub user_id: UserId,
    /// What happened.
    pub kind: EventKind,
    /// The execution's status after the change.
    pub status: ExecutionStatus,
    /// Attempts started so far (1-based once running).
    pub attempt: u32,
    /// When the change happened.
    pub at: DateTime<Utc>,
    /// Why the attempt failed, for `retry_scheduled` and `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ExecutionError>,
    /// When the retry may start, for `retry_scheduled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_after: Option<DateTime<Utc>>,
    /// The new output text, for `partial`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<String>,
}

impl EventKind {
    /// The kind of event that reports reaching `status`.
    pub fn of_status(status: ExecutionStatus) -> Self {
        match status {
            ExecutionStatus::Queued => Self::Queued,
            ExecutionStatus::Running => Self::Running,
            ExecutionStatus::Completed => Self::Completed,
            ExecutionStatus::Failed => Self::Failed,
            ExecutionStatus::Cancelled => Self::Cancelled,
        }
    }
}

impl ExecutionEvent {
    /// An event of `kind` about one attempt of an execution, at `at`. The status follows from
    /// the kind ([`EventKind::status`]); no error, retry instant or delta (see the `with_`
    /// methods).
    pub fn new(
        execution_id: ExecutionId,
        user_id: UserId,
        kind: EventKind,
        attempt: u32,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            execution_id,
            user_id,
            kind,
            status: kind.status(),
            attempt,
            at,
            error: None,
            run_after: None,
            delta: None,
        }
    }

    /// Whether the execution is final after this event (no further events follow); the
    /// one predicate every follower uses, see [`ExecutionStatus::is_final`].
    pub fn is_final(&self) -> bool {
        self.status.is_final()
    }

    /// An event reporting `e`'s current state (at its finish time, else its creation time),
    /// for a follower that missed the event itself.
    pub fn of_state(e: &Execution) -> Self {
        Self::new(
            e.id,
            e.user_id,
            EventKind::of_status(e.status),
            e.attempts,
            e.finished_at.or(e.started_at).unwrap_or(e.created_at),
        )
        .with_error(e.error.clone())
    }

    /// The same event carrying the failure that caused it.
    #[must_use]
    pub fn with_error(mut self, error: Option<ExecutionError>) -> Self {
        self.error = error;
        self
    }

    /// The same event carrying new output text (for `partial`).
    #[must_use]
    pub fn with_delta(mut self, delta: Option<String>) -> Self {
        self.delta = delta;
        self
    }

    /// The same event carrying the instant a scheduled retry becomes claimable.
    #[must_use]
    pub fn with_run_after(mut self, run_after: Option<DateTime<Utc>>) -> Self {
        self.run_after = run_after;
        self
    }
}
