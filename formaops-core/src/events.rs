//! Execution events: every state change, published to subscribers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::execution::{ExecutionError, ExecutionStatus};
use crate::ids::{ExecutionId, UserId};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Queued,
    Running,
    /// A transient failure; the execution is QUEUED again until `run_after`.
    RetryScheduled,
    /// Partial output while a completion streams (`delta` set).
    Partial,
    Completed,
    Failed,
    Cancelled,
}

/// One execution state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionEvent {
    pub execution_id: ExecutionId,
    pub user_id: UserId,
    pub kind: EventKind,
    /// The execution's status after the change.
    pub status: ExecutionStatus,
    pub attempt: u32,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ExecutionError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_after: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<String>,
}
