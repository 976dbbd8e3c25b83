//! A test [`Store`] that counts every call by method name and delegates to another store, so a
//! test can assert that a hot path made no store reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

use super::{
    ClaimParams, EnqueueOutcome, ExecutionFilter, ExtendLeasesParams, Invalidation, PromptFilter,
    RescueDecision, Store, VersionPageRequest,
};
use crate::dataset::{Dataset, DatasetRow};
use crate::error::Result;
use crate::events::ExecutionEvent;
use crate::execution::{AttemptResult, Execution};
use crate::experiment::{Experiment, ExperimentRun, ExperimentStatus};
use crate::ids::{CredentialId, DatasetId, ExecutionId, ExperimentId, PromptId, UserId};
use crate::metrics::{MetricsQuery, MetricsReport, MetricsSeries, MetricsSeriesQuery};
use crate::page::{Page, PageRequest};
use crate::prompt::{Label, LabelMove, LabelSettings, Prompt, PromptStatus, PromptVersion};
use crate::user::{Credential, CredentialKind, ExternalIdentity, User, UserWithPassword};

/// Delegates every call to `inner`, counting it.
#[derive(Debug)]
pub(crate) struct CountingStore {
    inner: Arc<dyn Store>,
    calls: Mutex<HashMap<&'static str, usize>>,
}

impl CountingStore {
    pub(crate) fn new(inner: Arc<dyn Store>) -> Self {
        Self { inner, calls: Mutex::new(HashMap::new()) }
    }

    fn count(&self, method: &'static str) {
        if let Ok(mut calls) = self.calls.lock() {
            *calls.entry(method).or_default() += 1;
        }
    }

    /// Calls of `method` so far.
    pub(crate) fn calls(&self, method: &str) -> usize {
        self.calls.lock().map(|c| c.get(method).copied().unwrap_or(0)).unwrap_or(0)
    }

    /// Calls of every method so far.
    pub(crate) fn total(&self) -> usize {
        self.calls.lock().map(|c| c.values().sum()).unwrap_or(0)
    }
}

/// Implements `Store` for [`CountingStore`]: each listed method counts, then delegates.
macro_rules! counted {
    ($( fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )*) => {
        #[async_trait]
        impl Store for CountingStore {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    self.count(stringify!($name));
                    self.inner.$name($($arg),*).await
                }
            )*
        }
    };
}

counted! {
    fn create_user(&self, user: &User, password_hash: &str) -> Result<()>;
    fn user_by_email(&self, email: &str) -> Result<Option<UserWithPassword>>;
    fn get_user(&self, id: UserId) -> Result<Option<User>>;
    fn count_users(&self) -> Result<u64>;
    fn create_credential(&self, credential: &Credential) -> Result<()>;
    fn authenticate(&self, token_hash: &[u8], now: DateTime<Utc>) -> Result<Option<(User, Credential)>>;
    fn revoke_credential(&self, user: UserId, id: CredentialId, now: DateTime<Utc>) -> Result<()>;
    fn list_credentials(&self, user: UserId, kind: CredentialKind) -> Result<Vec<Credential>>;
    fn user_by_identity(&self, issuer: &str, subject: &str) -> Result<Option<User>>;
    fn create_identity_user(&self, user: &User, password_hash: &str, identity: &ExternalIdentity) -> Result<()>;
    fn insert_prompt(&self, prompt: &Prompt, first: &PromptVersion) -> Result<()>;
    fn insert_version(&self, prompt: &Prompt, version: &PromptVersion) -> Result<()>;
    fn get_prompt(&self, user: UserId, id: PromptId) -> Result<Prompt>;
    fn get_version(&self, user: UserId, id: PromptId, version: u32) -> Result<PromptVersion>;
    fn list_prompts(&self, user: UserId, filter: &PromptFilter, page: PageRequest) -> Result<Page<Prompt>>;
    fn list_versions(&self, user: UserId, id: PromptId, page: VersionPageRequest) -> Result<Page<PromptVersion>>;
    fn set_prompt_status(&self, user: UserId, id: PromptId, status: PromptStatus, now: DateTime<Utc>) -> Result<Prompt>;
    fn move_label(&self, user: UserId, m: &LabelMove) -> Result<()>;
    fn get_label(&self, user: UserId, id: PromptId, name: &str) -> Result<Option<u32>>;
    fn list_labels(&self, user: UserId, id: PromptId) -> Result<Vec<Label>>;
    fn label_history(&self, user: UserId, id: PromptId, name: Option<&str>) -> Result<Vec<LabelMove>>;
    fn label_settings(&self, user: UserId, id: PromptId) -> Result<LabelSettings>;
    fn set_label_settings(&self, user: UserId, id: PromptId, settings: LabelSettings) -> Result<()>;
    fn enqueue(&self, executions: &[Execution]) -> Result<Vec<EnqueueOutcome>>;
    fn claim(&self, params: ClaimParams<'_>) -> Result<Vec<Execution>>;
    fn extend_leases(&self, params: ExtendLeasesParams<'_>) -> Result<Vec<ExecutionId>>;
    fn finish(&self, results: &[AttemptResult]) -> Result<Vec<bool>>;
    fn expired_leases(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Execution>>;
    fn rescue(&self, decisions: &[RescueDecision]) -> Result<Vec<bool>>;
    fn cancel(&self, user: UserId, id: ExecutionId, now: DateTime<Utc>) -> Result<Execution>;
    fn get_execution(&self, user: UserId, id: ExecutionId) -> Result<Execution>;
    fn list_executions(&self, user: UserId, filter: &ExecutionFilter, page: PageRequest) -> Result<Page<Execution>>;
    fn queue_depth(&self, user: Option<UserId>) -> Result<u64>;
    fn metrics(&self, user: UserId, query: &MetricsQuery) -> Result<MetricsReport>;
    fn metrics_series(&self, user: UserId, query: &MetricsSeriesQuery) -> Result<MetricsSeries>;
    fn ping(&self) -> Result<()>;
    fn insert_dataset(&self, dataset: &Dataset, rows: &[DatasetRow]) -> Result<()>;
    fn get_dataset(&self, user: UserId, id: DatasetId) -> Result<Dataset>;
    fn list_datasets(&self, user: UserId, page: PageRequest) -> Result<Page<Dataset>>;
    fn delete_dataset(&self, user: UserId, id: DatasetId) -> Result<()>;
    fn dataset_rows(&self, user: UserId, id: DatasetId, after: Option<u32>, limit: u32) -> Result<Vec<DatasetRow>>;
    fn insert_experiment(&self, experiment: &Experiment) -> Result<()>;
    fn get_experiment(&self, user: UserId, id: ExperimentId) -> Result<Experiment>;
    fn list_experiments(&self, user: UserId, page: PageRequest) -> Result<Page<Experiment>>;
    fn finish_experiment(&self, user: UserId, id: ExperimentId, status: ExperimentStatus, at: DateTime<Utc>) -> Result<bool>;
    fn record_experiment_runs(&self, user: UserId, runs: &[ExperimentRun]) -> Result<()>;
    fn experiment_runs(&self, user: UserId, id: ExperimentId) -> Result<Vec<(ExperimentRun, Execution)>>;
    fn running_experiments(&self, limit: u32) -> Result<Vec<Experiment>>;
    fn relay_events(&self, events: &[ExecutionEvent]) -> Result<()>;
    fn remote_events(&self) -> Result<Option<BoxStream<'static, ExecutionEvent>>>;
    fn publish_invalidation(&self, invalidation: &Invalidation) -> Result<()>;
    fn remote_invalidations(&self) -> Result<Option<BoxStream<'static, Invalidation>>>;
}
