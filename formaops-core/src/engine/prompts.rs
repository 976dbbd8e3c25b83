//! Prompt CRUD: create, update (a new version), read, list, archive; and the checks a
//! prompt's name, description and versions must pass before they are stored.

use serde_json::{Map, Value};

use super::config::{MAX_DESCRIPTION_CHARS, MAX_PROMPT_NAME_CHARS, check_page};
use super::state::Inner;
use crate::error::{Error, Problem, ProblemCode, Result};
use crate::ids::{PromptId, UserId};
use crate::page::{Page, PageRequest};
use crate::prompt::{Prompt, PromptSpec, PromptStatus, PromptUpdate, PromptVersion};
use crate::provider::Message;
use crate::store::{PromptFilter, VersionPageRequest};
use crate::variables;

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

pub(super) async fn update_prompt(
    inner: &Inner,
    user: UserId,
    id: PromptId,
    update: PromptUpdate,
) -> Result<(Prompt, PromptVersion)> {
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
    inner.store.insert_version(&prompt, &version).await?;
    Ok((prompt, version))
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
    inner.store.set_prompt_status(user, id, PromptStatus::Archived, inner.clock.now()).await
}

pub(super) fn validate_inputs(
    inner: &Inner,
    version: &PromptVersion,
    inputs: &Map<String, Value>,
) -> Result<Map<String, Value>> {
    variables::validate_inputs(&version.variables, inputs, &inner.config.input_limits)
}

pub(super) fn render(
    inner: &Inner,
    version: &PromptVersion,
    inputs: &Map<String, Value>,
) -> Result<Vec<Message>> {
    let inputs = validate_inputs(inner, version, inputs)?;
    inner.compile_and_cache(version)?.prompt.render(&inputs)
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
