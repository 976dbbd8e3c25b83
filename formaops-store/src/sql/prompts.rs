//! Prompts and versions.

use chrono::{DateTime, Utc};
use formaops_core::ids::{PromptId, UserId};
use formaops_core::page::{Cursor, Page, PageRequest};
use formaops_core::prompt::{Prompt, PromptStatus, PromptVersion};
use formaops_core::store::{PromptFilter, VersionPageRequest};
use formaops_core::{Error, Result};
use uuid::Uuid;

use super::{Doc, Ts, corrupt, from_doc, u32_of};
use crate::error::DbResultExt;
use crate::rows::VersionJson;

const INSERT_PROMPT: &str = "INSERT INTO prompts (id, user_id, name, description, status, current_version, \
    created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const INSERT_VERSION: &str = "INSERT INTO prompt_versions (prompt_id, version, template, system_template, \
    variables, validations, model, created_at, author) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub(crate) const NEXT_VERSION: &str = "UPDATE prompts SET name = $1, description = $2, current_version = $3, \
    updated_at = $4 WHERE id = $5 AND user_id IS NOT DISTINCT FROM $6 AND status = 'ACTIVE' AND current_version = $7";
pub(crate) const PROMPT_STATUS: &str =
    "SELECT status FROM prompts WHERE id = $1 AND user_id IS NOT DISTINCT FROM $2";
pub(crate) const GET_PROMPT: &str = "SELECT * FROM prompts WHERE id = $1 AND user_id IS NOT DISTINCT FROM $2";
pub(crate) const GET_VERSION: &str = "SELECT v.* FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id \
    WHERE v.prompt_id = $1 AND p.user_id IS NOT DISTINCT FROM $2 AND v.version = $3";
const LIST_VERSIONS: &str =
    "SELECT * FROM prompt_versions WHERE prompt_id = $1 AND version < $2 ORDER BY version DESC LIMIT $3";
pub(crate) const SET_STATUS: &str = "UPDATE prompts SET status = $1, updated_at = $2 WHERE id = $3 AND user_id IS NOT DISTINCT FROM $4 RETURNING *";

#[derive(sqlx::FromRow)]
struct PromptRow {
    id: Uuid,
    user_id: Uuid,
    name: String,
    description: Option<String>,
    status: String,
    current_version: i32,
    created_at: Ts,
    updated_at: Ts,
}

impl TryFrom<PromptRow> for Prompt {
    type Error = Error;

    fn try_from(r: PromptRow) -> Result<Self> {
        Ok(Prompt {
            id: PromptId(r.id),
            user_id: UserId(r.user_id),
            name: r.name,
            description: r.description,
            status: PromptStatus::parse(&r.status)
                .ok_or_else(|| corrupt("status", format!("is unknown: {}", r.status)))?,
            current_version: u32_of("current_version", r.current_version)?,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
        })
    }
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    prompt_id: Uuid,
    version: i32,
    template: String,
    system_template: Option<String>,
    variables: Doc,
    validations: Doc,
    model: Doc,
    created_at: Ts,
    author: Uuid,
}

impl TryFrom<VersionRow> for PromptVersion {
    type Error = Error;

    fn try_from(r: VersionRow) -> Result<Self> {
        Ok(PromptVersion {
            prompt_id: PromptId(r.prompt_id),
            version: u32_of("version", r.version)?,
            template: r.template,
            system_template: r.system_template,
            variables: from_doc("variables", r.variables)?,
            validations: from_doc("validations", r.validations)?,
            model: from_doc("model", r.model)?,
            created_at: r.created_at.0,
            author: UserId(r.author),
        })
    }
}

/// The listing query; `keyset` is the backend's "(created_at, id) before the cursor" with `#1`
/// and `#2` for the cursor's two values.
fn list_prompts_sql(after: bool, keyset: &str) -> String {
    let mut sql = String::from("SELECT * FROM prompts WHERE user_id = $1 AND status = $2");
    if after {
        sql.push_str(" AND ");
        sql.push_str(&keyset.replace("#1", "$3").replace("#2", "$4"));
        sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT $5");
    } else {
        sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT $3");
    }
    sql
}

for_each_backend! {
    /// Inserts the prompt row and its first version (in the caller's transaction).
    pub(crate) async fn insert_prompt(
        tx: &mut sqlx::Transaction<'_, Db>,
        prompt: &Prompt,
        first: &PromptVersion,
    ) -> Result<()> {
        let json = VersionJson::of(first)?;
        sqlx::query(INSERT_PROMPT)
            .bind(prompt.id.0)
            .bind(prompt.user_id.0)
            .bind(&prompt.name)
            .bind(&prompt.description)
            .bind(prompt.status.as_str())
            .bind(i64::from(prompt.current_version))
            .bind(Ts(prompt.created_at))
            .bind(Ts(prompt.updated_at))
            .execute(&mut **tx)
            .await
            .db("insert prompt")?;
        insert_version_row(tx, first, json).await
    }

    async fn insert_version_row(tx: &mut sqlx::Transaction<'_, Db>, v: &PromptVersion, json: VersionJson) -> Result<()> {
        sqlx::query(INSERT_VERSION)
            .bind(v.prompt_id.0)
            .bind(i64::from(v.version))
            .bind(&v.template)
            .bind(&v.system_template)
            .bind(Doc(json.variables))
            .bind(Doc(json.validations))
            .bind(Doc(json.model))
            .bind(Ts(v.created_at))
            .bind(v.author.0)
            .execute(&mut **tx)
            .await
            .db("insert prompt version")?;
        Ok(())
    }

    /// Appends `version` if the prompt is still ACTIVE at the version before it (see
    /// `Store::insert_version`), in one transaction.
    pub(crate) async fn insert_version(pool: &sqlx::Pool<Db>, prompt: &Prompt, version: &PromptVersion) -> Result<()> {
        let json = VersionJson::of(version)?;
        let mut tx = pool.begin().await.db("begin")?;
        let updated = sqlx::query(NEXT_VERSION)
            .bind(&prompt.name)
            .bind(&prompt.description)
            .bind(i64::from(version.version))
            .bind(Ts(prompt.updated_at))
            .bind(prompt.id.0)
            .bind(prompt.user_id.0)
            .bind(i64::from(version.version) - 1)
            .execute(&mut *tx)
            .await
            .db("update prompt")?;
        if updated.rows_affected() == 0 {
            drop(tx);
            return match prompt_status(pool, prompt.user_id, prompt.id).await? {
                None => Err(Error::not_found("prompt", prompt.id)),
                Some(s) if s == "ARCHIVED" => Err(Error::conflict(format!("prompt {} is archived", prompt.id))),
                Some(_) => Err(Error::conflict(format!(
                    "prompt {} was updated concurrently: version {} is not the next version",
                    prompt.id, version.version
                ))),
            };
        }
        insert_version_row(&mut tx, version, json).await?;
        tx.commit().await.db("commit")?;
        Ok(())
    }

    /// The stored status of the user's prompt, `None` when missing or another user's.
    pub(crate) async fn prompt_status(
        ex: impl sqlx::Executor<'_, Database = Db>,
        user: UserId,
        id: PromptId,
    ) -> Result<Option<String>> {
        sqlx::query_scalar(PROMPT_STATUS).bind(id.0).bind(user.0).fetch_optional(ex).await.db("read prompt")
    }

    pub(crate) async fn get_prompt(ex: impl sqlx::Executor<'_, Database = Db>, user: UserId, id: PromptId) -> Result<Prompt> {
        let row: Option<PromptRow> =
            sqlx::query_as(GET_PROMPT).bind(id.0).bind(user.0).fetch_optional(ex).await.db("get prompt")?;
        row.map(Prompt::try_from).transpose()?.ok_or_else(|| Error::not_found("prompt", id))
    }

    pub(crate) async fn get_version(
        ex: impl sqlx::Executor<'_, Database = Db>,
        user: UserId,
        id: PromptId,
        version: u32,
    ) -> Result<PromptVersion> {
        let row: Option<VersionRow> = sqlx::query_as(GET_VERSION)
            .bind(id.0)
            .bind(user.0)
            .bind(i64::from(version))
            .fetch_optional(ex)
            .await
            .db("get prompt version")?;
        row.map(PromptVersion::try_from)
            .transpose()?
            .ok_or_else(|| Error::not_found("prompt version", format!("{id} v{version}")))
    }

    pub(crate) async fn list_versions(
        pool: &sqlx::Pool<Db>,
        user: UserId,
        id: PromptId,
        page: VersionPageRequest,
    ) -> Result<Page<PromptVersion>> {
        if prompt_status(pool, user, id).await?.is_none() {
            return Err(Error::not_found("prompt", id));
        }
        let before = page.before.map_or(i64::from(i32::MAX), i64::from);
        let rows: Vec<VersionRow> = sqlx::query_as(LIST_VERSIONS)
            .bind(id.0)
            .bind(before)
            .bind(i64::from(page.limit) + 1)
            .fetch_all(pool)
            .await
            .db("list prompt versions")?;
        let items = rows.into_iter().map(PromptVersion::try_from).collect::<Result<Vec<_>>>()?;
        Ok(crate::version_page(items, page.limit))
    }

    /// Newest first, keyset paginated (`keyset` is the backend's, see [`list_prompts_sql`]).
    pub(crate) async fn list_prompts(
        ex: impl sqlx::Executor<'_, Database = Db>,
        keyset: &str,
        user: UserId,
        filter: &PromptFilter,
        page: PageRequest,
    ) -> Result<Page<Prompt>> {
        let status = filter.status.unwrap_or(PromptStatus::Active);
        let sql = list_prompts_sql(page.after.is_some(), keyset);
        let mut q = sqlx::query_as::<_, PromptRow>(sqlx::AssertSqlSafe(sql)).bind(user.0).bind(status.as_str());
        if let Some(c) = page.after {
            q = q.bind(Ts(c.created_at)).bind(c.id);
        }
        let rows = q.bind(i64::from(page.limit) + 1).fetch_all(ex).await.db("list prompts")?;
        let items = rows.into_iter().map(Prompt::try_from).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |p| Cursor { created_at: p.created_at, id: p.id.0 }))
    }

    pub(crate) async fn set_prompt_status(
        ex: impl sqlx::Executor<'_, Database = Db>,
        user: UserId,
        id: PromptId,
        status: PromptStatus,
        now: DateTime<Utc>,
    ) -> Result<Prompt> {
        let row: Option<PromptRow> = sqlx::query_as(SET_STATUS)
            .bind(status.as_str())
            .bind(Ts(now))
            .bind(id.0)
            .bind(user.0)
            .fetch_optional(ex)
            .await
            .db("set prompt status")?;
        row.map(Prompt::try_from).transpose()?.ok_or_else(|| Error::not_found("prompt", id))
    }
}
