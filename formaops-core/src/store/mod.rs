//! Persistence: the [`Store`] trait every backend implements, and the in-memory backend.
//!
//! The executions table is the queue: the engine enqueues, claims with a lease, finishes and
//! rescues through this trait, so the same durability rules hold on every backend. Every
//! user-facing read and write takes the owner's [`UserId`] and must never touch another
//! user's rows: a row of another user is reported exactly as a missing one
//! ([`Error::NotFound`](crate::Error::NotFound)).
//!
//! Every implementation must pass the shared conformance suite in
//! `formaops_core::conformance` (feature `conformance`).

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

use crate::dataset::{Dataset, DatasetRow};
use crate::error::Result;
use crate::events::ExecutionEvent;
use crate::execution::{AttemptResult, Execution, ExecutionError, ExecutionStatus};
use crate::experiment::{Experiment, ExperimentRun, ExperimentStatus};
use crate::ids::{CredentialId, DatasetId, ExecutionId, ExperimentId, PromptId, UserId};
use crate::metrics::{MetricsQuery, MetricsReport, MetricsSeries, MetricsSeriesQuery};
use crate::page::{Page, PageRequest};
use crate::prompt::{Label, LabelMove, LabelSettings, Prompt, PromptStatus, PromptVersion};
use crate::user::{Credential, CredentialKind, ExternalIdentity, User, UserWithPassword};
use serde::{Deserialize, Serialize};

#[cfg(test)]
pub(crate) mod counting;
pub mod memory;
mod memory_lab;

pub use memory::MemoryStore;

/// Filter for listing prompts. `status: None` lists ACTIVE prompts only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromptFilter {
    /// Only prompts in this status (ACTIVE when `None`).
    pub status: Option<PromptStatus>,
}

/// Filter for listing executions; every field narrows the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionFilter {
    /// Only executions in this status.
    pub status: Option<ExecutionStatus>,
    /// Only executions of this prompt.
    pub prompt_id: Option<PromptId>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created strictly before.
    pub until: Option<DateTime<Utc>>,
}

/// What [`Store::enqueue`] did with one execution.
#[derive(Debug, Clone, PartialEq)]
pub enum EnqueueOutcome {
    /// Inserted as given.
    Created,
    /// The user already has an execution with this idempotency key: that one, unchanged;
    /// nothing was inserted.
    Existing(Box<Execution>),
}

/// What [`Store::claim`] takes: up to `limit` QUEUED executions of `provider` due at `now`,
/// leased to `worker` until `lease_until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimParams<'a> {
    /// The lease owner (the claiming process's worker id).
    pub worker: &'a str,
    /// Only executions that run on this provider.
    pub provider: &'a str,
    /// Most executions to claim.
    pub limit: u32,
    /// The claim time: only executions with `run_after <= now` are due.
    pub now: DateTime<Utc>,
    /// When the new leases expire unless extended.
    pub lease_until: DateTime<Utc>,
}

/// What [`Store::extend_leases`] takes: the leases of `ids` that `worker` still holds are
/// extended to `lease_until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtendLeasesParams<'a> {
    /// The lease owner; leases another worker holds are left alone.
    pub worker: &'a str,
    /// The executions whose leases to extend.
    pub ids: &'a [ExecutionId],
    /// The new expiry.
    pub lease_until: DateTime<Utc>,
}

/// The engine's decision about one execution whose lease expired (see [`Store::rescue`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RescueDecision {
    /// The execution decided about.
    pub id: ExecutionId,
    /// The attempt the expired lease belongs to, as listed.
    pub attempts: u32,
    /// The expired lease's expiry, as listed.
    pub lease_expires_at: DateTime<Utc>,
    /// Requeue or fail.
    pub fate: RescueFate,
    /// Recorded either way (code `lease_expired`).
    pub error: ExecutionError,
}

/// What happens to an execution whose lease expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RescueFate {
    /// Back to QUEUED, claimable from `run_after` (after the retry backoff).
    Requeue {
        /// When the execution becomes claimable again.
        run_after: DateTime<Utc>,
    },
    /// FAILED at `finished_at`: no attempts or no time left.
    Fail {
        /// The recorded end time.
        finished_at: DateTime<Utc>,
    },
}

/// A message to the per-node caches of every process sharing a store (see
/// [`Store::publish_invalidation`] and `engine::freshness` for the bound it keeps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
#[non_exhaustive]
pub enum Invalidation {
    /// A credential (session or API key) was revoked: no node may accept it any more.
    #[serde(rename_all = "camelCase")]
    Credential {
        /// The credential's owner.
        user_id: UserId,
        /// The revoked credential.
        id: CredentialId,
    },
    /// A prompt's pointers changed (a new current version, its status, a label moved).
    #[serde(rename_all = "camelCase")]
    Prompt {
        /// The prompt's owner.
        user_id: UserId,
        /// The prompt.
        id: PromptId,
    },
    /// A listener heartbeat: an engine publishes its own and, hearing it back, knows every
    /// invalidation committed before it was sent has been delivered.
    #[serde(rename_all = "camelCase")]
    Heartbeat {
        /// The sending engine's random node number.
        node: u64,
        /// When it was sent: microseconds on the sending engine's own clock.
        sent_us: u64,
    },
    /// Drop everything: the channel lost messages (a listener reconnected). Produced by the
    /// store's listener, never published.
    All,
}

/// A page of versions, newest first: `before` is the version number to continue below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionPageRequest {
    /// Most versions to return.
    pub limit: u32,
    /// Only versions numbered below this; `None`: start at the newest.
    pub before: Option<u32>,
}

/// The persistence backend.
///
/// All methods are cancel-safe at the transaction level: an operation either commits whole
/// or not at all. Database outages surface as [`Error::Unavailable`](crate::Error::Unavailable).
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    // ----- users and credentials -----

    /// Inserts a user. The email is stored as given (callers normalise to lowercase).
    /// Duplicate email: `Conflict`.
    async fn create_user(&self, user: &User, password_hash: &str) -> Result<()>;

    /// The user with this (normalised) email, with the password hash, for login.
    async fn user_by_email(&self, email: &str) -> Result<Option<UserWithPassword>>;

    /// The user with this id; `None` when there is none.
    async fn get_user(&self, id: UserId) -> Result<Option<User>>;

    /// How many users exist.
    async fn count_users(&self) -> Result<u64>;

    /// Stores a session or API key (only its token hash).
    async fn create_credential(&self, credential: &Credential) -> Result<()>;

    /// The user and credential for a token hash, if the credential exists, is not revoked and
    /// has not expired at `now`.
    async fn authenticate(&self, token_hash: &[u8], now: DateTime<Utc>)
    -> Result<Option<(User, Credential)>>;

    /// Revokes one of the user's credentials. Another user's or a missing one: `NotFound`.
    /// Revoking twice is not an error.
    async fn revoke_credential(&self, user: UserId, id: CredentialId, now: DateTime<Utc>) -> Result<()>;

    /// The user's unrevoked credentials of one kind, newest first.
    async fn list_credentials(&self, user: UserId, kind: CredentialKind) -> Result<Vec<Credential>>;

    /// The user of an external identity (issuer, subject), if known.
    async fn user_by_identity(&self, issuer: &str, subject: &str) -> Result<Option<User>>;

    /// Inserts a user and its external identity, atomically. The identity already known, or
    /// the user's email taken: `Conflict`, and nothing is inserted.
    async fn create_identity_user(
        &self,
        user: &User,
        password_hash: &str,
        identity: &ExternalIdentity,
    ) -> Result<()>;

    // ----- prompts and versions -----

    /// Inserts a new prompt with its first version, atomically. A prompt of the same user with
    /// the same name that is not archived: `Conflict`.
    async fn insert_prompt(&self, prompt: &Prompt, first: &PromptVersion) -> Result<()>;

    /// Appends `version` and updates the prompt row to `prompt` (which carries
    /// `current_version == version.version`), atomically, only if the stored prompt is
    /// owned by `prompt.user_id`, ACTIVE, and its current version is `version.version - 1`.
    /// Missing or another user's: `NotFound`; archived, a lost race or a duplicate active
    /// name: `Conflict`.
    async fn insert_version(&self, prompt: &Prompt, version: &PromptVersion) -> Result<()>;

    /// One of the user's prompts (any status). Missing or another user's: `NotFound`.
    async fn get_prompt(&self, user: UserId, id: PromptId) -> Result<Prompt>;

    /// One version of one of the user's prompts. Missing or another user's: `NotFound`.
    async fn get_version(&self, user: UserId, id: PromptId, version: u32) -> Result<PromptVersion>;

    /// Newest first by (`created_at`, `id`).
    async fn list_prompts(
        &self,
        user: UserId,
        filter: &PromptFilter,
        page: PageRequest,
    ) -> Result<Page<Prompt>>;

    /// Newest version first; `next_cursor` is the last returned version number.
    async fn list_versions(
        &self,
        user: UserId,
        id: PromptId,
        page: VersionPageRequest,
    ) -> Result<Page<PromptVersion>>;

    /// Sets the status (archive / restore) and `updated_at`. Restoring a prompt whose name is
    /// now taken by an active prompt: `Conflict`.
    async fn set_prompt_status(
        &self,
        user: UserId,
        id: PromptId,
        status: PromptStatus,
        now: DateTime<Utc>,
    ) -> Result<Prompt>;

    // ----- labels -----

    /// Applies one label move and records it in the label's history, in one transaction, as
    /// a compare-and-set: only if the user's prompt exists and the label currently points at
    /// `m.from` (`None`: the label does not exist). `m.to: None` deletes the label; a target
    /// version the prompt does not have: `NotFound`. Missing or another user's prompt:
    /// `NotFound`; the label is not at `m.from` (a concurrent move won): `Conflict`. Readers
    /// see the label either before or after the move, never in between.
    async fn move_label(&self, user: UserId, m: &LabelMove) -> Result<()>;

    /// The version the label points at, `None` when the prompt has no such label. Missing or
    /// another user's prompt: `NotFound`. (The built-in `latest` is the engine's, not stored.)
    async fn get_label(&self, user: UserId, id: PromptId, name: &str) -> Result<Option<u32>>;

    /// The prompt's stored labels, by name.
    async fn list_labels(&self, user: UserId, id: PromptId) -> Result<Vec<Label>>;

    /// Moves of the prompt's labels (of one label when `name` is set), newest first.
    async fn label_history(&self, user: UserId, id: PromptId, name: Option<&str>) -> Result<Vec<LabelMove>>;

    /// The prompt's label settings (defaults when never set).
    async fn label_settings(&self, user: UserId, id: PromptId) -> Result<LabelSettings>;

    /// Stores the prompt's label settings. Missing or another user's prompt: `NotFound`.
    async fn set_label_settings(&self, user: UserId, id: PromptId, settings: LabelSettings) -> Result<()>;

    // ----- executions: the queue -----

    /// Inserts new executions, all committed before it returns (one transaction for the
    /// batch where the backend allows). Each is QUEUED, or RUNNING with a lease (the engine's
    /// fast path: an attempt this process already started, see
    /// [`Execution::start_attempt`](crate::execution::Execution::start_attempt)), stored as
    /// given. Outcomes are in input order; see [`EnqueueOutcome`] for idempotency keys.
    async fn enqueue(&self, executions: &[Execution]) -> Result<Vec<EnqueueOutcome>>;

    /// Claims up to `params.limit` QUEUED executions of `provider` whose `run_after <= now`, in
    /// ascending `queue_key` (then id) order, setting them RUNNING with the lease
    /// (`worker`, `lease_until`), `attempts + 1`, and `started_at` if unset. No execution is
    /// ever handed to two claimers at once.
    async fn claim(&self, params: ClaimParams<'_>) -> Result<Vec<Execution>>;

    /// Extends the leases `worker` still holds; returns the ids it still holds.
    async fn extend_leases(&self, params: ExtendLeasesParams<'_>) -> Result<Vec<ExecutionId>>;

    /// Applies finished attempts (batch, one transaction where the backend allows). Each is
    /// applied only if the execution is RUNNING under `result.worker`'s lease; the returned
    /// flags say which were. So at most one COMPLETED result per execution, and a worker
    /// that lost its lease cannot overwrite anything.
    async fn finish(&self, results: &[AttemptResult]) -> Result<Vec<bool>>;

    /// Up to `limit` RUNNING executions whose lease expired before `now` (`lease_expires_at <
    /// now`), earliest expiry first. Reads only: the engine decides each one's fate
    /// ([`crate::engine::rescue`]) and hands the decisions to [`Store::rescue`].
    async fn expired_leases(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Execution>>;

    /// Writes decided fates of executions listed by [`Store::expired_leases`] (one transaction
    /// where the backend allows). Each applies only if the execution is still RUNNING on the
    /// same attempt with the same lease expiry, so a concurrent `finish`, a heartbeat that
    /// extended the lease, or another rescuer that decided first wins; the returned flags say
    /// which applied. An applied decision clears the lease and sets `error`; a requeue sets
    /// QUEUED and `run_after`, a failure FAILED and `finished_at`.
    async fn rescue(&self, decisions: &[RescueDecision]) -> Result<Vec<bool>>;

    /// Cancels a QUEUED execution. Missing or another user's: `NotFound`; any other status:
    /// `Conflict`.
    async fn cancel(&self, user: UserId, id: ExecutionId, now: DateTime<Utc>) -> Result<Execution>;

    /// One of the user's executions. Missing or another user's: `NotFound`.
    async fn get_execution(&self, user: UserId, id: ExecutionId) -> Result<Execution>;

    /// Newest first by (`created_at`, `id`), keyset paginated.
    async fn list_executions(
        &self,
        user: UserId,
        filter: &ExecutionFilter,
        page: PageRequest,
    ) -> Result<Page<Execution>>;

    /// QUEUED executions of one user, or of everyone with `None`.
    async fn queue_depth(&self, user: Option<UserId>) -> Result<u64>;

    // ----- metrics rollups -----

    /// Aggregates of the user's executions (see [`crate::metrics`]), read from the rollups
    /// ([`crate::metrics::rollup`]) over [`report_window`](crate::metrics::rollup::report_window)
    /// — never by scanning final executions — plus the live QUEUED/RUNNING counts of the window.
    ///
    /// Every write that makes an execution final (`finish`, `cancel`, `rescue` to FAILED) adds
    /// it to the rollups in the same transaction, with one grouped upsert of
    /// [`group_deltas`](crate::metrics::rollup::group_deltas)' rows per batch.
    async fn metrics(&self, user: UserId, query: &MetricsQuery) -> Result<MetricsReport>;

    /// A time series of the user's final executions from the rollups of `query.bucket`, over
    /// `[query.since, query.until)`, which the engine has resolved onto bucket bounds
    /// ([`MetricsSeriesQuery::window`]); a `None` bound reads without that bound.
    async fn metrics_series(&self, user: UserId, query: &MetricsSeriesQuery) -> Result<MetricsSeries>;

    // ----- health -----

    /// Cheap reachability check, for health endpoints.
    async fn ping(&self) -> Result<()>;

    // ----- datasets and experiments -----

    /// Inserts a dataset with its rows (indexed `0..row_count`), atomically. Another dataset
    /// of the user with the same name: `Conflict`.
    async fn insert_dataset(&self, dataset: &Dataset, rows: &[DatasetRow]) -> Result<()>;

    /// One of the user's datasets. Missing or another user's: `NotFound`.
    async fn get_dataset(&self, user: UserId, id: DatasetId) -> Result<Dataset>;

    /// The user's datasets, newest first by (`created_at`, `id`), keyset paginated.
    async fn list_datasets(&self, user: UserId, page: PageRequest) -> Result<Page<Dataset>>;

    /// Deletes a dataset and its rows. Missing or another user's: `NotFound`; used by an
    /// experiment: `Conflict` (nothing deleted).
    async fn delete_dataset(&self, user: UserId, id: DatasetId) -> Result<()>;

    /// Up to `limit` rows of the user's dataset with index above `after` (from 0 when `None`),
    /// by index. Missing or another user's dataset: `NotFound`.
    async fn dataset_rows(
        &self,
        user: UserId,
        id: DatasetId,
        after: Option<u32>,
        limit: u32,
    ) -> Result<Vec<DatasetRow>>;

    /// Inserts an experiment. Its dataset missing or another user's: `NotFound`.
    async fn insert_experiment(&self, experiment: &Experiment) -> Result<()>;

    /// One of the user's experiments. Missing or another user's: `NotFound`.
    async fn get_experiment(&self, user: UserId, id: ExperimentId) -> Result<Experiment>;

    /// The user's experiments, newest first by (`created_at`, `id`), keyset paginated.
    async fn list_experiments(&self, user: UserId, page: PageRequest) -> Result<Page<Experiment>>;

    /// Sets a RUNNING experiment's final `status` and `finished_at`; `false` (nothing
    /// written) when it is no longer RUNNING. Missing or another user's: `NotFound`.
    async fn finish_experiment(
        &self,
        user: UserId,
        id: ExperimentId,
        status: ExperimentStatus,
        at: DateTime<Utc>,
    ) -> Result<bool>;

    /// Records runs of the user's experiments; a run whose (experiment, row, version) is
    /// already recorded is kept as it was.
    async fn record_experiment_runs(&self, user: UserId, runs: &[ExperimentRun]) -> Result<()>;

    /// The experiment's recorded runs with their executions as stored now, by (row, version).
    /// Missing or another user's experiment: `NotFound`.
    async fn experiment_runs(
        &self,
        user: UserId,
        id: ExperimentId,
    ) -> Result<Vec<(ExperimentRun, Execution)>>;

    /// Up to `limit` RUNNING experiments of every user, oldest first (for the engine to
    /// resume at start).
    async fn running_experiments(&self, limit: u32) -> Result<Vec<Experiment>>;

    // ----- cross-process events -----

    /// Publishes events to other processes sharing this store (Postgres: NOTIFY). Default:
    /// nothing to do (single process).
    async fn relay_events(&self, events: &[ExecutionEvent]) -> Result<()> {
        let _ = events;
        Ok(())
    }

    /// Events published by *other* processes through [`Store::relay_events`]. Default: none.
    /// Delivery is best effort: subscribers re-read state after a gap.
    async fn remote_events(&self) -> Result<Option<BoxStream<'static, ExecutionEvent>>> {
        Ok(None)
    }

    // caches

    /// Announces `invalidation` to every process sharing this store, this one included
    /// (Postgres: NOTIFY). Delivered in commit order with every other invalidation. Default:
    /// nothing to do (a store no other process shares).
    ///
    /// # Errors
    /// [`Error::Unavailable`](crate::Error::Unavailable) when it could not be sent.
    async fn publish_invalidation(&self, invalidation: &Invalidation) -> Result<()> {
        let _ = invalidation;
        Ok(())
    }

    /// Every invalidation published through [`Store::publish_invalidation`] by any process
    /// (this one included), in commit order. After the listener lost its connection the stream
    /// yields [`Invalidation::All`] (at the loss, and again in place of the first message after
    /// it), since messages of the gap are lost. `None`: this store is not shared by other
    /// processes (memory, SQLite), so local invalidation is complete.
    ///
    /// # Errors
    /// [`Error::Unavailable`](crate::Error::Unavailable) when the listener could not connect
    /// (the store *is* shared).
    async fn remote_invalidations(&self) -> Result<Option<BoxStream<'static, Invalidation>>> {
        Ok(None)
    }
}
