//! Labels (promotion, rollback, the promotion guard), execution by label, and version diffs.
//! The rules live in [`crate::prompt::label`] and [`crate::prompt::diff`]; this file applies
//! them against the store.

use crate::error::{Error, Result};
use crate::execution::Execution;
use crate::ids::{PromptId, UserId};
use crate::prompt::label::{LATEST, PRODUCTION, check_label_name, check_settable_label, guard_problems};
use crate::prompt::{
    Label, LabelMove, LabelSettings, Prompt, PromptStatus, PromptVersion, VersionDiff, VersionRef,
    diff_versions,
};
use crate::store::Invalidation;

use super::state::Inner;
use super::{ExecuteRequest, FormaOps};

/// Checks the labels a new prompt asks for, before anything is written.
pub(super) fn check_initial_labels(labels: Option<&[String]>) -> Result<()> {
    for (i, name) in labels.unwrap_or_default().iter().enumerate() {
        check_settable_label(&format!("labels[{i}]"), name)?;
    }
    Ok(())
}

/// The version label `name` of the prompt points at (`latest`: the current version).
///
/// # Errors
/// [`Error::InvalidArgument`] on a bad name; [`Error::NotFound`] for a missing prompt or label.
pub(super) async fn resolve_label(inner: &Inner, user: UserId, id: PromptId, name: &str) -> Result<u32> {
    check_label_name("label", name)?;
    // Both from the per-node caches (see `freshness`): a moved label is seen elsewhere within
    // its bound.
    if name == LATEST {
        return Ok(inner.prompt_pointer(user, id).await?.current_version);
    }
    inner
        .label_version(user, id, name)
        .await?
        .ok_or_else(|| Error::not_found("label", format!("{name:?} of prompt {id}")))
}

/// How often a label move is retried after losing a race with a concurrent move.
const MOVE_ATTEMPTS: u32 = 5;

impl FormaOps {
    /// Points label `name` of the prompt at `version` (creating it, or moving it: promotion,
    /// rollback), recording the move. With the prompt's promotion guard on, a move of
    /// `production` is refused unless `version` accepts every input the current production
    /// version accepts. A move that loses a race with a concurrent move is retried (up to 5
    /// attempts in all).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on a bad label name or `latest` (built in, not settable);
    /// [`Error::NotFound`] for a missing or another user's prompt, or a version it does not
    /// have; [`Error::Conflict`] for an archived prompt, or when concurrent moves keep
    /// winning; [`Error::InvalidPrompt`] with the promotion guard's reasons; store errors.
    pub async fn set_label(&self, user: UserId, id: PromptId, name: &str, version: u32) -> Result<Label> {
        check_settable_label("label", name)?;
        let store = &self.inner.store;
        let prompt = store.get_prompt(user, id).await?;
        if prompt.status != PromptStatus::Active {
            return Err(Error::conflict(format!("prompt {id} is archived: its labels cannot move")));
        }
        let target = store.get_version(user, id, version).await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let from = store.get_label(user, id, name).await?;
            if name == PRODUCTION
                && let Some(current) = from
                && current != version
                && store.label_settings(user, id).await?.guard_production
            {
                let current = store.get_version(user, id, current).await?;
                let problems = guard_problems(&current.variables, &target.variables);
                if !problems.is_empty() {
                    return Err(Error::InvalidPrompt { problems });
                }
            }
            let at = self.inner.clock.now();
            let m =
                LabelMove { prompt_id: id, name: name.to_string(), from, to: Some(version), actor: user, at };
            match store.move_label(user, &m).await {
                Ok(()) => {
                    self.inner.invalidate(Invalidation::Prompt { user_id: user, id }).await?;
                    return Ok(Label { name: m.name, version, updated_at: at, updated_by: Some(user) });
                }
                Err(Error::Conflict { .. }) if attempt < MOVE_ATTEMPTS => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Deletes a label, recording the move.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on a bad label name or `latest`; [`Error::NotFound`] for a
    /// label the prompt does not have, or a missing or another user's prompt;
    /// [`Error::Conflict`] when concurrent moves keep winning; store errors.
    pub async fn delete_label(&self, user: UserId, id: PromptId, name: &str) -> Result<()> {
        check_settable_label("label", name)?;
        let store = &self.inner.store;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(from) = store.get_label(user, id, name).await? else {
                return Err(Error::not_found("label", format!("{name:?} of prompt {id}")));
            };
            let m = LabelMove {
                prompt_id: id,
                name: name.to_string(),
                from: Some(from),
                to: None,
                actor: user,
                at: self.inner.clock.now(),
            };
            match store.move_label(user, &m).await {
                Ok(()) => return self.inner.invalidate(Invalidation::Prompt { user_id: user, id }).await,
                Err(Error::Conflict { .. }) if attempt < MOVE_ATTEMPTS => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The prompt's labels: the built-in `latest` first, then the stored ones by name.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing or another user's prompt; store errors.
    pub async fn labels(&self, user: UserId, id: PromptId) -> Result<Vec<Label>> {
        let prompt = self.inner.store.get_prompt(user, id).await?;
        let mut labels = vec![Label {
            name: LATEST.to_string(),
            version: prompt.current_version,
            updated_at: prompt.updated_at,
            updated_by: None,
        }];
        labels.extend(self.inner.store.list_labels(user, id).await?);
        Ok(labels)
    }

    /// Every move of the prompt's labels (of one label when `name` is set), newest first.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on a bad label name; [`Error::NotFound`] for a missing or
    /// another user's prompt; store errors.
    pub async fn label_history(
        &self,
        user: UserId,
        id: PromptId,
        name: Option<&str>,
    ) -> Result<Vec<LabelMove>> {
        if let Some(n) = name {
            check_label_name("label", n)?;
        }
        self.inner.store.label_history(user, id, name).await
    }

    /// The prompt's label settings (the promotion guard); the defaults when never set.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing or another user's prompt; store errors.
    pub async fn label_settings(&self, user: UserId, id: PromptId) -> Result<LabelSettings> {
        self.inner.store.label_settings(user, id).await
    }

    /// Sets the prompt's label settings (the promotion guard).
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing or another user's prompt; store errors.
    pub async fn set_label_settings(
        &self,
        user: UserId,
        id: PromptId,
        settings: LabelSettings,
    ) -> Result<()> {
        self.inner.store.set_label_settings(user, id, settings).await
    }

    /// The version a request means: `version`, or the version `label` points at, or the
    /// current version when neither is given. The two are exclusive.
    ///
    /// A given `version` is returned as it is, unchecked.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when both are given or on a bad label name;
    /// [`Error::NotFound`] for a missing or another user's prompt (when it is read) or a
    /// label it does not have; store errors.
    pub async fn resolve_version(
        &self,
        user: UserId,
        id: PromptId,
        version: Option<u32>,
        label: Option<&str>,
    ) -> Result<u32> {
        match (version, label) {
            (Some(_), Some(_)) => {
                Err(Error::invalid_argument("version, label", "give either `version` or `label`, not both"))
            }
            (Some(v), None) => Ok(v),
            (None, None) => Ok(self.inner.prompt_pointer(user, id).await?.current_version),
            (None, Some(name)) => self.resolve_label(user, id, name).await,
        }
    }

    async fn resolve_label(&self, user: UserId, id: PromptId, name: &str) -> Result<u32> {
        resolve_label(&self.inner, user, id, name).await
    }

    async fn resolve_ref(&self, user: UserId, id: PromptId, r: &VersionRef) -> Result<u32> {
        match r {
            VersionRef::Version(v) => Ok(*v),
            VersionRef::Label(name) => self.resolve_label(user, id, name).await,
        }
    }

    /// The prompt and the version given by number or label (the current one when neither).
    ///
    /// # Errors
    /// As [`resolve_version`](Self::resolve_version), and [`Error::NotFound`] for a version
    /// the prompt does not have.
    pub async fn get_prompt_at(
        &self,
        user: UserId,
        id: PromptId,
        version: Option<u32>,
        label: Option<&str>,
    ) -> Result<(Prompt, PromptVersion)> {
        let v = self.resolve_version(user, id, version, label).await?;
        self.get_prompt(user, id, Some(v)).await
    }

    /// `submit` of the version `label` points at (resolved once; the execution records that
    /// version and the label). `request.version` must be unset.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `request.version` is set or on a bad label name;
    /// [`Error::NotFound`] for a label the prompt does not have; then as
    /// [`submit`](Self::submit).
    pub async fn submit_label(
        &self,
        user: UserId,
        mut request: ExecuteRequest,
        label: &str,
    ) -> Result<Execution> {
        request.label = Some(label.to_string());
        self.submit(user, request).await
    }

    /// `execute` of the version `label` points at (see [`FormaOps::submit_label`]).
    ///
    /// # Errors
    /// As [`submit_label`](Self::submit_label).
    pub async fn execute_label(
        &self,
        user: UserId,
        mut request: ExecuteRequest,
        label: &str,
    ) -> Result<Execution> {
        request.label = Some(label.to_string());
        self.execute(user, request).await
    }

    /// What changed between two versions of a prompt, each given by number or label.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on a bad label name; [`Error::NotFound`] for a missing or
    /// another user's prompt, a label it does not have or a version it does not have; store
    /// errors.
    pub async fn diff(
        &self,
        user: UserId,
        id: PromptId,
        from: &VersionRef,
        to: &VersionRef,
    ) -> Result<VersionDiff> {
        let a = self.resolve_ref(user, id, from).await?;
        let b = self.resolve_ref(user, id, to).await?;
        let store = &self.inner.store;
        let a = store.get_version(user, id, a).await?;
        let b = store.get_version(user, id, b).await?;
        Ok(diff_versions(&a, &b))
    }

    /// Puts a new prompt's initial labels on version 1: `production` unless `labels` says
    /// otherwise (`Some(vec![])`: none).
    pub(super) async fn set_initial_labels(
        &self,
        user: UserId,
        id: PromptId,
        labels: Option<&[String]>,
    ) -> Result<()> {
        let default = [PRODUCTION.to_string()];
        for name in labels.unwrap_or(&default) {
            self.set_label(user, id, name, 1).await?;
        }
        Ok(())
    }
}
