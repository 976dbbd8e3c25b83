//! [`MemoryStore`]: the in-memory [`Store`], for tests, benchmarks, embedding and the
//! zero-config engine. Nothing survives the process.
//!
//! One mutex guards the state; every operation is short. The queue is indexed so that a
//! claim costs O(log n): per provider, ready executions sit in a `BTreeSet` ordered by
//! (`queue_key`, id), and executions waiting for their `run_after` in another ordered by
//! (`run_after`, id), moved to the ready set when due.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::memory_lab::LabState;

mod rollups;
use super::{
    ClaimParams, EnqueueOutcome, ExecutionFilter, ExtendLeasesParams, PromptFilter, RescueDecision,
    RescueFate, Store, VersionPageRequest,
};
use crate::dataset::{Dataset, DatasetRow};
use crate::error::{Error, Result};
use crate::execution::{AttemptResult, Execution, ExecutionStatus};
use crate::experiment::{Experiment, ExperimentRun, ExperimentStatus};
use crate::ids::{CredentialId, DatasetId, ExecutionId, ExperimentId, PromptId, UserId};
use crate::metrics::rollup::{FinalExecution, RollupDelta, RollupKey};
use crate::metrics::{MetricsQuery, MetricsReport, MetricsSeries, MetricsSeriesQuery};
use crate::page::{Cursor, Page, PageRequest};
use crate::prompt::{Label, LabelMove, LabelSettings, Prompt, PromptStatus, PromptVersion};
use crate::user::{Credential, CredentialKind, ExternalIdentity, User, UserWithPassword};

/// The in-memory store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    lab: Mutex<LabState>,
}

#[derive(Debug, Default)]
struct ProviderQueue {
    ready: BTreeSet<(i64, ExecutionId)>,
    delayed: BTreeSet<(DateTime<Utc>, ExecutionId)>,
}

#[derive(Debug, Default)]
struct State {
    users: HashMap<UserId, (User, String)>,
    users_by_email: HashMap<String, UserId>,
    identities: HashMap<(String, String), ExternalIdentity>,
    credentials: HashMap<CredentialId, Credential>,
    credentials_by_hash: HashMap<Vec<u8>, CredentialId>,
    prompts: HashMap<PromptId, Prompt>,
    versions: HashMap<PromptId, Vec<PromptVersion>>,
    prompts_by_user: HashMap<UserId, BTreeSet<(DateTime<Utc>, PromptId)>>,
    executions: HashMap<ExecutionId, Execution>,
    executions_by_user: HashMap<UserId, BTreeSet<(DateTime<Utc>, ExecutionId)>>,
    idempotency: HashMap<(UserId, String), ExecutionId>,
    queues: HashMap<String, ProviderQueue>,
    queued_by_user: HashMap<UserId, u64>,
    running: HashSet<ExecutionId>,
    labels: HashMap<PromptId, Vec<Label>>,
    label_moves: HashMap<PromptId, Vec<LabelMove>>,
    label_settings: HashMap<PromptId, LabelSettings>,
    rollups: BTreeMap<RollupKey, RollupDelta>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| Error::internal("memory store lock poisoned"))
    }

    fn lab(&self) -> Result<MutexGuard<'_, LabState>> {
        self.lab.lock().map_err(|_| Error::internal("memory store lock poisoned"))
    }
}

fn cursor_of(created_at: DateTime<Utc>, id: uuid::Uuid) -> Cursor {
    Cursor { created_at, id }
}

impl State {
    fn active_name_taken(&self, user: UserId, name: &str, except: Option<PromptId>) -> bool {
        self.prompts.values().any(|p| {
            p.user_id == user && p.status == PromptStatus::Active && p.name == name && Some(p.id) != except
        })
    }

    fn owned_prompt(&self, user: UserId, id: PromptId) -> Result<&Prompt> {
        self.prompts.get(&id).filter(|p| p.user_id == user).ok_or_else(|| Error::not_found("prompt", id))
    }

    /// Puts a QUEUED execution into its provider's ready or delayed index.
    fn index_queued(&mut self, e: &Execution) {
        let q = self.queues.entry(e.provider.clone()).or_default();
        q.delayed.insert((e.run_after, e.id));
        *self.queued_by_user.entry(e.user_id).or_default() += 1;
    }

    fn unindex_queued(&mut self, e: &Execution) {
        if let Some(q) = self.queues.get_mut(&e.provider) {
            q.delayed.remove(&(e.run_after, e.id));
            q.ready.remove(&(e.queue_key, e.id));
        }
        if let Some(n) = self.queued_by_user.get_mut(&e.user_id) {
            *n = n.saturating_sub(1);
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_user(&self, user: &User, password_hash: &str) -> Result<()> {
        let mut s = self.lock()?;
        if s.users_by_email.contains_key(&user.email) {
            return Err(Error::conflict(format!("a user with email {} already exists", user.email)));
        }
        if s.users.contains_key(&user.id) {
            return Err(Error::conflict(format!("user {} already exists", user.id)));
        }
        s.users_by_email.insert(user.email.clone(), user.id);
        s.users.insert(user.id, (user.clone(), password_hash.to_string()));
        Ok(())
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserWithPassword>> {
        let s = self.lock()?;
        Ok(s.users_by_email
            .get(email)
            .and_then(|id| s.users.get(id))
            .map(|(u, h)| UserWithPassword { user: u.clone(), password_hash: h.clone() }))
    }

    async fn get_user(&self, id: UserId) -> Result<Option<User>> {
        Ok(self.lock()?.users.get(&id).map(|(u, _)| u.clone()))
    }

    async fn count_users(&self) -> Result<u64> {
        Ok(self.lock()?.users.len() as u64)
    }

    async fn create_credential(&self, credential: &Credential) -> Result<()> {
        let mut s = self.lock()?;
        if !s.users.contains_key(&credential.user_id) {
            return Err(Error::not_found("user", credential.user_id));
        }
        if s.credentials.contains_key(&credential.id)
            || s.credentials_by_hash.contains_key(&credential.token_hash)
        {
            return Err(Error::conflict("credential already exists"));
        }
        s.credentials_by_hash.insert(credential.token_hash.clone(), credential.id);
        s.credentials.insert(credential.id, credential.clone());
        Ok(())
    }

    async fn authenticate(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<(User, Credential)>> {
        let s = self.lock()?;
        let Some(c) = s.credentials_by_hash.get(token_hash).and_then(|id| s.credentials.get(id)) else {
            return Ok(None);
        };
        if c.revoked_at.is_some() || c.expires_at.is_some_and(|e| e <= now) {
            return Ok(None);
        }
        Ok(s.users.get(&c.user_id).map(|(u, _)| (u.clone(), c.clone())))
    }

    async fn revoke_credential(&self, user: UserId, id: CredentialId, now: DateTime<Utc>) -> Result<()> {
        let mut s = self.lock()?;
        let c = s
            .credentials
            .get_mut(&id)
            .filter(|c| c.user_id == user)
            .ok_or_else(|| Error::not_found("credential", id))?;
        if c.revoked_at.is_none() {
            c.revoked_at = Some(now);
        }
        Ok(())
    }

    async fn list_credentials(&self, user: UserId, kind: CredentialKind) -> Result<Vec<Credential>> {
        let s = self.lock()?;
        let mut v: Vec<Credential> = s
            .credentials
            .values()
            .filter(|c| c.user_id == user && c.kind == kind && c.revoked_at.is_none())
            .cloned()
            .collect();
        v.sort_by_key(|c| std::cmp::Reverse((c.created_at, c.id)));
        Ok(v)
    }

    async fn user_by_identity(&self, issuer: &str, subject: &str) -> Result<Option<User>> {
        let s = self.lock()?;
        Ok(s.identities
            .get(&(issuer.to_string(), subject.to_string()))
            .and_then(|i| s.users.get(&i.user_id))
            .map(|(u, _)| u.clone()))
    }

    async fn create_identity_user(
        &self,
        user: &User,
        password_hash: &str,
        identity: &ExternalIdentity,
    ) -> Result<()> {
        let mut s = self.lock()?;
        let key = (identity.issuer.clone(), identity.subject.clone());
        if s.identities.contains_key(&key) {
            return Err(Error::conflict(format!("identity {} of {} already exists", key.1, key.0)));
        }
        if s.users_by_email.contains_key(&user.email) || s.users.contains_key(&user.id) {
            return Err(Error::conflict(format!("user {} already exists", user.email)));
        }
        s.users_by_email.insert(user.email.clone(), user.id);
        s.users.insert(user.id, (user.clone(), password_hash.to_string()));
        s.identities.insert(key, ExternalIdentity { user_id: user.id, ..identity.clone() });
        Ok(())
    }

    async fn insert_prompt(&self, prompt: &Prompt, first: &PromptVersion) -> Result<()> {
        let mut s = self.lock()?;
        if s.prompts.contains_key(&prompt.id) {
            return Err(Error::conflict(format!("prompt {} already exists", prompt.id)));
        }
        if prompt.status == PromptStatus::Active && s.active_name_taken(prompt.user_id, &prompt.name, None) {
            return Err(Error::conflict(format!("a prompt named {:?} already exists", prompt.name)));
        }
        if first.prompt_id != prompt.id || first.version != 1 || prompt.current_version != 1 {
            return Err(Error::internal("insert_prompt: the first version must be version 1 of the prompt"));
        }
        s.prompts_by_user.entry(prompt.user_id).or_default().insert((prompt.created_at, prompt.id));
        s.prompts.insert(prompt.id, prompt.clone());
        s.versions.insert(prompt.id, vec![first.clone()]);
        Ok(())
    }

    async fn insert_version(&self, prompt: &Prompt, version: &PromptVersion) -> Result<()> {
        let mut s = self.lock()?;
        let stored = s.owned_prompt(prompt.user_id, prompt.id)?;
        if stored.status != PromptStatus::Active {
            return Err(Error::conflict(format!("prompt {} is archived", prompt.id)));
        }
        if version.prompt_id != prompt.id
            || prompt.current_version != version.version
            || stored.current_version.checked_add(1) != Some(version.version)
        {
            return Err(Error::conflict(format!(
                "prompt {} is at version {}, not {}",
                prompt.id,
                stored.current_version,
                version.version.saturating_sub(1)
            )));
        }
        if s.active_name_taken(prompt.user_id, &prompt.name, Some(prompt.id)) {
            return Err(Error::conflict(format!("a prompt named {:?} already exists", prompt.name)));
        }
        let mut updated = prompt.clone();
        updated.status = PromptStatus::Active;
        s.prompts.insert(prompt.id, updated);
        s.versions.entry(prompt.id).or_default().push(version.clone());
        Ok(())
    }

    async fn get_prompt(&self, user: UserId, id: PromptId) -> Result<Prompt> {
        self.lock()?.owned_prompt(user, id).cloned()
    }

    async fn get_version(&self, user: UserId, id: PromptId, version: u32) -> Result<PromptVersion> {
        let s = self.lock()?;
        s.owned_prompt(user, id)?;
        let idx = (version as usize).checked_sub(1);
        idx.and_then(|i| s.versions.get(&id).and_then(|v| v.get(i)))
            .cloned()
            .ok_or_else(|| Error::not_found("prompt version", format!("{id} v{version}")))
    }

    async fn list_prompts(
        &self,
        user: UserId,
        filter: &PromptFilter,
        page: PageRequest,
    ) -> Result<Page<Prompt>> {
        let s = self.lock()?;
        let want = filter.status.unwrap_or(PromptStatus::Active);
        let mut items = Vec::new();
        if let Some(set) = s.prompts_by_user.get(&user) {
            let iter: Box<dyn Iterator<Item = &(DateTime<Utc>, PromptId)>> = match page.after {
                Some(c) => Box::new(set.range(..(c.created_at, PromptId(c.id))).rev()),
                None => Box::new(set.iter().rev()),
            };
            for (_, id) in iter {
                if let Some(p) = s.prompts.get(id).filter(|p| p.status == want) {
                    items.push(p.clone());
                    if items.len() > page.limit as usize {
                        break;
                    }
                }
            }
        }
        Ok(Page::from_overfetch(items, page.limit, |p| cursor_of(p.created_at, p.id.0)))
    }

    async fn list_versions(
        &self,
        user: UserId,
        id: PromptId,
        page: VersionPageRequest,
    ) -> Result<Page<PromptVersion>> {
        let s = self.lock()?;
        s.owned_prompt(user, id)?;
        if page.limit == 0 {
            return Err(Error::invalid_argument("limit", "must be at least 1"));
        }
        let all = s.versions.get(&id).map(Vec::as_slice).unwrap_or_default();
        let mut items: Vec<PromptVersion> = all
            .iter()
            .rev()
            .filter(|v| page.before.is_none_or(|b| v.version < b))
            .take(page.limit as usize + 1)
            .cloned()
            .collect();
        let next_cursor = if items.len() > page.limit as usize {
            items.truncate(page.limit as usize);
            items.last().map(|v| v.version.to_string())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn set_prompt_status(
        &self,
        user: UserId,
        id: PromptId,
        status: PromptStatus,
        now: DateTime<Utc>,
    ) -> Result<Prompt> {
        let mut s = self.lock()?;
        let p = s.owned_prompt(user, id)?.clone();
        if status == PromptStatus::Active
            && p.status != PromptStatus::Active
            && s.active_name_taken(user, &p.name, Some(id))
        {
            return Err(Error::conflict(format!("a prompt named {:?} already exists", p.name)));
        }
        let p = s.prompts.get_mut(&id).ok_or_else(|| Error::not_found("prompt", id))?;
        p.status = status;
        p.updated_at = now;
        Ok(p.clone())
    }

    async fn move_label(&self, user: UserId, m: &LabelMove) -> Result<()> {
        let mut s = self.lock()?;
        let current_version = s.owned_prompt(user, m.prompt_id)?.current_version;
        if let Some(to) = m.to
            && (to == 0 || to > current_version)
        {
            return Err(Error::not_found("prompt version", format!("{} v{to}", m.prompt_id)));
        }
        if m.from.is_none() && m.to.is_none() {
            return Err(Error::internal("a label move needs a source or a target version"));
        }
        let labels = s.labels.entry(m.prompt_id).or_default();
        let idx = labels.iter().position(|l| l.name == m.name);
        if idx.map(|i| labels[i].version) != m.from {
            return Err(Error::conflict(format!("label {:?} was moved concurrently", m.name)));
        }
        match (idx, m.to) {
            (Some(i), Some(to)) => {
                labels[i] =
                    Label { name: m.name.clone(), version: to, updated_at: m.at, updated_by: Some(m.actor) }
            }
            (Some(i), None) => {
                labels.remove(i);
            }
            (None, Some(to)) => {
                labels.push(Label {
                    name: m.name.clone(),
                    version: to,
                    updated_at: m.at,
                    updated_by: Some(m.actor),
                });
                labels.sort_by(|a, b| a.name.cmp(&b.name));
            }
            (None, None) => return Err(Error::internal("unreachable label move")),
        }
        s.label_moves.entry(m.prompt_id).or_default().push(m.clone());
        Ok(())
    }

    async fn get_label(&self, user: UserId, id: PromptId, name: &str) -> Result<Option<u32>> {
        let s = self.lock()?;
        s.owned_prompt(user, id)?;
        Ok(s.labels.get(&id).and_then(|ls| ls.iter().find(|l| l.name == name)).map(|l| l.version))
    }

    async fn list_labels(&self, user: UserId, id: PromptId) -> Result<Vec<Label>> {
        let s = self.lock()?;
        s.owned_prompt(user, id)?;
        Ok(s.labels.get(&id).cloned().unwrap_or_default())
    }

    async fn label_history(&self, user: UserId, id: PromptId, name: Option<&str>) -> Result<Vec<LabelMove>> {
        let s = self.lock()?;
        s.owned_prompt(user, id)?;
        let moves = s.label_moves.get(&id).map(Vec::as_slice).unwrap_or_default();
        Ok(moves.iter().rev().filter(|m| name.is_none_or(|n| m.name == n)).cloned().collect())
    }

    async fn label_settings(&self, user: UserId, id: PromptId) -> Result<LabelSettings> {
        let s = self.lock()?;
        s.owned_prompt(user, id)?;
        Ok(s.label_settings.get(&id).copied().unwrap_or_default())
    }

    async fn set_label_settings(&self, user: UserId, id: PromptId, settings: LabelSettings) -> Result<()> {
        let mut s = self.lock()?;
        s.owned_prompt(user, id)?;
        s.label_settings.insert(id, settings);
        Ok(())
    }

    async fn enqueue(&self, executions: &[Execution]) -> Result<Vec<EnqueueOutcome>> {
        let mut s = self.lock()?;
        // Validate the whole batch first so it applies all or nothing.
        let mut seen = HashSet::new();
        for e in executions {
            if s.executions.contains_key(&e.id) || !seen.insert(e.id) {
                return Err(Error::conflict(format!("execution {} already exists", e.id)));
            }
            let leased = e.status == ExecutionStatus::Running
                && e.lease_owner.is_some()
                && e.lease_expires_at.is_some();
            if e.status != ExecutionStatus::Queued && !leased {
                return Err(Error::internal(format!(
                    "enqueue: execution {} is neither QUEUED nor RUNNING with a lease",
                    e.id
                )));
            }
        }
        let mut out = Vec::with_capacity(executions.len());
        for e in executions {
            if let Some(key) = &e.idempotency_key {
                let k = (e.user_id, key.clone());
                if let Some(existing) = s.idempotency.get(&k).and_then(|id| s.executions.get(id)) {
                    out.push(EnqueueOutcome::Existing(Box::new(existing.clone())));
                    continue;
                }
                s.idempotency.insert(k, e.id);
            }
            if e.status == ExecutionStatus::Queued {
                s.index_queued(e);
            } else {
                s.running.insert(e.id);
            }
            s.executions_by_user.entry(e.user_id).or_default().insert((e.created_at, e.id));
            s.executions.insert(e.id, e.clone());
            out.push(EnqueueOutcome::Created);
        }
        Ok(out)
    }

    async fn claim(&self, params: ClaimParams<'_>) -> Result<Vec<Execution>> {
        let ClaimParams { worker, provider, limit, now, lease_until } = params;
        let mut guard = self.lock()?;
        let s = &mut *guard;
        let Some(q) = s.queues.get_mut(provider) else { return Ok(Vec::new()) };
        // Move due executions from the delayed index to the ready one.
        while let Some(&(run_after, id)) = q.delayed.first() {
            if run_after > now {
                break;
            }
            q.delayed.pop_first();
            if let Some(e) = s.executions.get(&id) {
                q.ready.insert((e.queue_key, id));
            }
        }
        let mut out = Vec::with_capacity(limit.min(1024) as usize);
        while out.len() < limit as usize {
            let Some((_, id)) = q.ready.pop_first() else { break };
            let Some(e) = s.executions.get_mut(&id).filter(|e| e.status == ExecutionStatus::Queued) else {
                continue;
            };
            e.start_attempt(worker, now, lease_until);
            if let Some(n) = s.queued_by_user.get_mut(&e.user_id) {
                *n = n.saturating_sub(1);
            }
            s.running.insert(id);
            out.push(e.clone());
        }
        Ok(out)
    }

    async fn extend_leases(&self, params: ExtendLeasesParams<'_>) -> Result<Vec<ExecutionId>> {
        let ExtendLeasesParams { worker, ids, lease_until } = params;
        let mut s = self.lock()?;
        let mut held = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(e) = s.executions.get_mut(id)
                && e.status == ExecutionStatus::Running
                && e.lease_owner.as_deref() == Some(worker)
            {
                e.lease_expires_at = Some(lease_until);
                held.push(*id);
            }
        }
        Ok(held)
    }

    async fn finish(&self, results: &[AttemptResult]) -> Result<Vec<bool>> {
        let mut guard = self.lock()?;
        let s = &mut *guard;
        let mut applied = Vec::with_capacity(results.len());
        let mut finals = Vec::new();
        for r in results {
            let Some(e) = s.executions.get_mut(&r.id) else {
                applied.push(false);
                continue;
            };
            if e.user_id != r.user_id
                || e.status != ExecutionStatus::Running
                || e.lease_owner.as_deref() != Some(r.worker.as_str())
            {
                applied.push(false);
                continue;
            }
            s.running.remove(&r.id);
            e.apply_attempt(r);
            if e.status == ExecutionStatus::Queued {
                let e = e.clone();
                s.index_queued(&e);
                applied.push(true);
                continue;
            }
            finals.push(FinalExecution::of(e));
            applied.push(true);
        }
        s.roll_up(&finals);
        Ok(applied)
    }

    async fn expired_leases(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Execution>> {
        let s = self.lock()?;
        let mut expired: Vec<&Execution> = s
            .running
            .iter()
            .filter_map(|id| s.executions.get(id))
            .filter(|e| e.lease_expires_at.is_some_and(|until| until < now))
            .collect();
        expired.sort_by_key(|e| (e.lease_expires_at, e.id));
        Ok(expired.into_iter().take(limit as usize).cloned().collect())
    }

    async fn rescue(&self, decisions: &[RescueDecision]) -> Result<Vec<bool>> {
        let mut guard = self.lock()?;
        let s = &mut *guard;
        let mut applied = Vec::with_capacity(decisions.len());
        let mut finals = Vec::new();
        for d in decisions {
            let Some(e) = s.executions.get_mut(&d.id).filter(|e| {
                e.status == ExecutionStatus::Running
                    && e.attempts == d.attempts
                    && e.lease_expires_at == Some(d.lease_expires_at)
            }) else {
                applied.push(false);
                continue;
            };
            s.running.remove(&d.id);
            e.lease_owner = None;
            e.lease_expires_at = None;
            e.error = Some(d.error.clone());
            match d.fate {
                RescueFate::Requeue { run_after } => {
                    e.status = ExecutionStatus::Queued;
                    e.run_after = run_after;
                    let e = e.clone();
                    s.index_queued(&e);
                }
                RescueFate::Fail { finished_at } => {
                    e.status = ExecutionStatus::Failed;
                    e.finished_at = Some(finished_at);
                    finals.push(FinalExecution::of(e));
                }
            }
            applied.push(true);
        }
        s.roll_up(&finals);
        Ok(applied)
    }

    async fn cancel(&self, user: UserId, id: ExecutionId, now: DateTime<Utc>) -> Result<Execution> {
        let mut s = self.lock()?;
        let e = s
            .executions
            .get(&id)
            .filter(|e| e.user_id == user)
            .cloned()
            .ok_or_else(|| Error::not_found("execution", id))?;
        if e.status != ExecutionStatus::Queued {
            return Err(Error::conflict(format!(
                "execution {id} is {} and only a QUEUED execution can be cancelled",
                e.status.as_str()
            )));
        }
        s.unindex_queued(&e);
        let e = s.executions.get_mut(&id).ok_or_else(|| Error::not_found("execution", id))?;
        e.status = ExecutionStatus::Cancelled;
        e.finished_at = Some(now);
        let e = e.clone();
        s.roll_up(&[FinalExecution::of(&e)]);
        Ok(e)
    }

    async fn get_execution(&self, user: UserId, id: ExecutionId) -> Result<Execution> {
        self.lock()?
            .executions
            .get(&id)
            .filter(|e| e.user_id == user)
            .cloned()
            .ok_or_else(|| Error::not_found("execution", id))
    }

    async fn list_executions(
        &self,
        user: UserId,
        filter: &ExecutionFilter,
        page: PageRequest,
    ) -> Result<Page<Execution>> {
        let s = self.lock()?;
        let mut items = Vec::new();
        if let Some(set) = s.executions_by_user.get(&user) {
            let iter: Box<dyn Iterator<Item = &(DateTime<Utc>, ExecutionId)>> = match page.after {
                Some(c) => Box::new(set.range(..(c.created_at, ExecutionId(c.id))).rev()),
                None => Box::new(set.iter().rev()),
            };
            for (created, id) in iter {
                if filter.until.is_some_and(|u| *created >= u) {
                    continue;
                }
                if filter.since.is_some_and(|since| *created < since) {
                    break;
                }
                let Some(e) = s.executions.get(id) else { continue };
                if filter.status.is_some_and(|st| st != e.status)
                    || filter.prompt_id.is_some_and(|p| p != e.prompt_id)
                {
                    continue;
                }
                items.push(e.clone());
                if items.len() > page.limit as usize {
                    break;
                }
            }
        }
        Ok(Page::from_overfetch(items, page.limit, |e| cursor_of(e.created_at, e.id.0)))
    }

    async fn queue_depth(&self, user: Option<UserId>) -> Result<u64> {
        let s = self.lock()?;
        Ok(match user {
            Some(u) => s.queued_by_user.get(&u).copied().unwrap_or(0),
            None => s.queued_by_user.values().sum(),
        })
    }

    async fn metrics(&self, user: UserId, query: &MetricsQuery) -> Result<MetricsReport> {
        Ok(self.lock()?.metrics(user, query))
    }

    async fn metrics_series(&self, user: UserId, query: &MetricsSeriesQuery) -> Result<MetricsSeries> {
        Ok(self.lock()?.metrics_series(user, query))
    }

    // ----- datasets and experiments -----

    async fn insert_dataset(&self, dataset: &Dataset, rows: &[DatasetRow]) -> Result<()> {
        self.lab()?.insert_dataset(dataset, rows)
    }

    async fn get_dataset(&self, user: UserId, id: DatasetId) -> Result<Dataset> {
        self.lab()?.get_dataset(user, id)
    }

    async fn list_datasets(&self, user: UserId, page: PageRequest) -> Result<Page<Dataset>> {
        Ok(self.lab()?.list_datasets(user, page))
    }

    async fn delete_dataset(&self, user: UserId, id: DatasetId) -> Result<()> {
        self.lab()?.delete_dataset(user, id)
    }

    async fn dataset_rows(
        &self,
        user: UserId,
        id: DatasetId,
        after: Option<u32>,
        limit: u32,
    ) -> Result<Vec<DatasetRow>> {
        self.lab()?.dataset_rows(user, id, after, limit)
    }

    async fn insert_experiment(&self, experiment: &Experiment) -> Result<()> {
        self.lab()?.insert_experiment(experiment)
    }

    async fn get_experiment(&self, user: UserId, id: ExperimentId) -> Result<Experiment> {
        self.lab()?.get_experiment(user, id)
    }

    async fn list_experiments(&self, user: UserId, page: PageRequest) -> Result<Page<Experiment>> {
        Ok(self.lab()?.list_experiments(user, page))
    }

    async fn finish_experiment(
        &self,
        user: UserId,
        id: ExperimentId,
        status: ExperimentStatus,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        self.lab()?.finish_experiment(user, id, status, at)
    }

    async fn record_experiment_runs(&self, user: UserId, runs: &[ExperimentRun]) -> Result<()> {
        self.lab()?.record_runs(user, runs)
    }

    async fn experiment_runs(
        &self,
        user: UserId,
        id: ExperimentId,
    ) -> Result<Vec<(ExperimentRun, Execution)>> {
        let s = self.lock()?;
        let runs = self.lab()?.runs(user, id)?;
        Ok(runs
            .into_iter()
            .filter_map(|r| s.executions.get(&r.execution_id).map(|e| (r, e.clone())))
            .collect())
    }

    async fn running_experiments(&self, limit: u32) -> Result<Vec<Experiment>> {
        Ok(self.lab()?.running_experiments(limit))
    }

    async fn ping(&self) -> Result<()> {
        self.lock().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance() {
        crate::conformance::run_all(&MemoryStore::new()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn engine_applies_concurrent_updates() {
        crate::conformance::engine_applies_concurrent_updates(std::sync::Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test]
    async fn engine_credential_cache() {
        crate::conformance::engine_credential_cache(std::sync::Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test]
    async fn engine_pointer_cache() {
        crate::conformance::engine_pointer_cache(std::sync::Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn engine_fast_path() {
        crate::conformance::engine_fast_path(std::sync::Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test]
    async fn engine_refuses_unstorable_text() {
        crate::conformance::engine_refuses_unstorable_text(std::sync::Arc::new(MemoryStore::new())).await;
    }
}
