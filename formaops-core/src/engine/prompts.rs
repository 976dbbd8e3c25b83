//! Prompt CRUD: create, update (a new version), read, list, archive; and the checks a
//! prompt's name, description and versions must pass before they are stored.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::cache::CompiledVersion;
use super::config::{MAX_DESCRIPTION_CHARS, MAX_PROMPT_NAME_CHARS, MAX_UPDATE_ATTEMPTS, check_page};
use super::state::Inner;
use crate::error::{Error, Problem, ProblemCode, Result};
use crate::ids::{PromptId, UserId};
use crate::page::{Page, PageRequest};
use crate::prompt::{Prompt, PromptSpec, PromptStatus, PromptUpdate, PromptVersion};
use crate::provider::Message;
use crate::store::Invalidation;
use crate::store::{PromptFilter, VersionPageRequest};

pub(super) async fn create_prompt(
    inner: &Inner,
    user: UserId,
    spec: PromptSpec,
) -> Result<(Prompt, PromptVersion)> {
    check_name(&spec.name)?;
    check_description(spec.description.as_deref())?;
    let now = inner.clock.now();
    let id = PromptId::new();
    let version = PromptVersion {
        prompt_id: id,
        version: 1,
        template: spec.template,
        system_template: spec.system_template,
        variables: spec.variables,
        validations: spec.validations,
        model: spec.model.unwrap_or_default(),
        created_at: now,
        author: user,
    };
    check_version(inner, &version)?;
    let prompt = Prompt {
        id,
        user_id: user,
        name: spec.name.trim().to_string(),
        description: spec.description,
        status: PromptStatus::Active,
        current_version: 1,
        created_at: now,
        updated_at: now,
    };
    inner.store.insert_prompt(&prompt, &version).await?;
    Ok((prompt, version))
}

/// Updates a prompt. Without `expected_version`, an update that loses the race for the next
/// version number to a concurrent update is tried again (at most [`MAX_UPDATE_ATTEMPTS`]
/// times), so concurrent updates all apply, each as its own version; with it, a stale
/// `expected_version` is a conflict.
pub(super) async fn update_prompt(
    inner: &Inner,
    user: UserId,
    id: PromptId,
    update: PromptUpdate,
) -> Result<(Prompt, PromptVersion)> {
    for _ in 1..MAX_UPDATE_ATTEMPTS {
        if let Some(done) = try_update_prompt(inner, user, id, update.clone(), true).await? {
            return Ok(done);
        }
        tokio::task::yield_now().await;
    }
    match try_update_prompt(inner, user, id, update, false).await? {
        Some(done) => Ok(done),
        None => Err(Error::internal("update_prompt: a lost race was not reported as a conflict")),
    }
}

/// One attempt of [`update_prompt`]: `None` when `retry` and the version number was taken by
/// a concurrent update (without `expected_version`).
async fn try_update_prompt(
    inner: &Inner,
    user: UserId,
    id: PromptId,
    update: PromptUpdate,
    retry: bool,
) -> Result<Option<(Prompt, PromptVersion)>> {
    let retry = retry && update.expected_version.is_none();
    let current = inner.store.get_prompt(user, id).await?;
    if current.status != PromptStatus::Active {
        return Err(Error::conflict(format!("prompt {id} is archived and cannot be updated")));
    }
    if let Some(expected) = update.expected_version
        && expected != current.current_version
    {
        return Err(Error::conflict(format!(
            "prompt {id} is at version {}, not the expected {expected}",
            current.current_version
        )));
    }
    if let Some(name) = &update.name {
        check_name(name)?;
    }
    check_description(update.description.as_deref())?;
    let base = inner.store.get_version(user, id, current.current_version).await?;
    let next = current
        .current_version
        .checked_add(1)
        .ok_or_else(|| Error::conflict(format!("prompt {id} has too many versions")))?;
    let now = inner.clock.now();
    let version = PromptVersion {
        prompt_id: id,
        version: next,
        template: update.template.unwrap_or(base.template),
        system_template: update.system_template.or(base.system_template),
        variables: update.variables.unwrap_or(base.variables),
        validations: update.validations.unwrap_or(base.validations),
        model: update.model.unwrap_or(base.model),
        created_at: now,
        author: user,
    };
    check_version(inner, &version)?;
    let prompt = Prompt {
        name: update.name.map(|n| n.trim().to_string()).unwrap_or(current.name),
        description: update.description.or(current.description),
        current_version: next,
        updated_at: now,
        ..current
    };
    match inner.store.insert_version(&prompt, &version).await {
        Ok(()) => {
            inner.invalidate(Invalidation::Prompt { user_id: user, id }).await?;
            Ok(Some((prompt, version)))
        }
        Err(e @ Error::Conflict { .. }) if retry => {
            // Lost the race when the prompt is still active and has moved on.
            let now = inner.store.get_prompt(user, id).await?;
            if now.status == PromptStatus::Active && now.current_version >= next { Ok(None) } else { Err(e) }
        }
        Err(e) => Err(e),
    }
}

pub(super) async fn get_prompt(
    inner: &Inner,
    user: UserId,
    id: PromptId,
    version: Option<u32>,
) -> Result<(Prompt, PromptVersion)> {
    let prompt = inner.store.get_prompt(user, id).await?;
    let v = inner.store.get_version(user, id, version.unwrap_or(prompt.current_version)).await?;
    Ok((prompt, v))
}

pub(super) async fn list_prompts(
    inner: &Inner,
    user: UserId,
    filter: PromptFilter,
    page: PageRequest,
) -> Result<Page<Prompt>> {
    check_page(page.limit)?;
    inner.store.list_prompts(user, &filter, page).await
}

pub(super) async fn list_versions(
    inner: &Inner,
    user: UserId,
    id: PromptId,
    page: VersionPageRequest,
) -> Result<Page<PromptVersion>> {
    check_page(page.limit)?;
    inner.store.list_versions(user, id, page).await
}

pub(super) async fn archive_prompt(inner: &Inner, user: UserId, id: PromptId) -> Result<Prompt> {
    let archived = inner.store.set_prompt_status(user, id, PromptStatus::Archived, inner.clock.now()).await?;
    inner.invalidate(Invalidation::Prompt { user_id: user, id }).await?;
    Ok(archived)
}

/// Validates with the version's compiled validator (JSON Schemas compiled once per version).
pub(super) fn validate_inputs(
    inner: &Inner,
    version: &PromptVersion,
    inputs: &Map<String, Value>,
) -> Result<Map<String, Value>> {
    compiled(inner, version)?.prompt.validate_inputs(inputs, &inner.config.input_limits)
}

pub(super) fn render(
    inner: &Inner,
    version: &PromptVersion,
    inputs: &Map<String, Value>,
) -> Result<Vec<Message>> {
    let compiled = compiled(inner, version)?;
    let inputs = compiled.prompt.validate_inputs(inputs, &inner.config.input_limits)?;
    compiled.prompt.render(&inputs)
}

/// `version` compiled: from the cache when the cached compilation is of this very version,
/// else compiled afresh and not cached (a caller may pass a version it edited in memory,
/// which must never stand in for the stored one that executions use).
fn compiled(inner: &Inner, version: &PromptVersion) -> Result<Arc<CompiledVersion>> {
    match inner.cache.get((version.prompt_id, version.version)) {
        Some(hit) if hit.version == *version => Ok(hit),
        _ => CompiledVersion::compile(version, &inner.config.template_limits).map(Arc::new),
    }
}

/// Every check a version must pass before it is stored: the core rules'
/// [`template::check_version`](crate::template::check_version), plus a configured provider
/// and a model name.
fn check_version(inner: &Inner, version: &PromptVersion) -> Result<()> {
    let mut problems = match crate::template::check_version(
        version,
        &inner.config.template_limits,
        &inner.config.input_limits,
    ) {
        Ok(()) => Vec::new(),
        Err(Error::InvalidPrompt { problems }) => problems,
        Err(other) => return Err(other),
    };
    if let Err(Error::InvalidPrompt { problems: p }) = inner.provider_for(&version.model) {
        problems.extend(p);
    }
    if version.model.model.trim().is_empty() {
        problems.push(Problem::new("model.model", ProblemCode::Missing, "the model name must not be empty"));
    }
    if problems.is_empty() { Ok(()) } else { Err(Error::InvalidPrompt { problems }) }
}

fn check_name(name: &str) -> Result<()> {
    let problem = if name.trim().is_empty() {
        Some(Problem::new("name", ProblemCode::Missing, "the name must not be empty"))
    } else if name.chars().count() > MAX_PROMPT_NAME_CHARS {
        Some(Problem::new(
            "name",
            ProblemCode::TooLarge,
            format!("at most {MAX_PROMPT_NAME_CHARS} characters"),
        ))
    } else if name.chars().any(char::is_control) {
        Some(Problem::new("name", ProblemCode::Invalid, "control characters are not allowed"))
    } else {
        None
    };
    problem.map_or(Ok(()), |p| Err(Error::InvalidPrompt { problems: vec![p] }))
}

fn check_description(description: Option<&str>) -> Result<()> {
    match description {
        Some(d) if d.chars().count() > MAX_DESCRIPTION_CHARS => Err(Error::InvalidPrompt {
            problems: vec![Problem::new(
                "description",
                ProblemCode::TooLarge,
                format!("at most {MAX_DESCRIPTION_CHARS} characters"),
            )],
        }),
        Some(d) => crate::text::str_problem("description", d)
            .map_or(Ok(()), |p| Err(Error::InvalidPrompt { problems: vec![p] })),
        None => Ok(()),
    }
}
