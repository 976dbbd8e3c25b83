//! Labels: pointers, their history of moves, and per-prompt label settings.
//!
//! A move is a compare-and-set on the pointer row plus the insert of its history row, in one
//! transaction, so a reader sees the label before or after a move, never in between.

use formaops_core::ids::{PromptId, UserId};
use formaops_core::prompt::{Label, LabelMove, LabelSettings};
use formaops_core::{Error, Result};
use uuid::Uuid;

use super::{Ts, u32_of};
use crate::error::DbResultExt;

pub(crate) const PROMPT_VERSION_OF: &str =
    "SELECT current_version FROM prompts WHERE id = $1 AND user_id IS NOT DISTINCT FROM $2";
const CREATE_LABEL: &str = "INSERT INTO prompt_labels (prompt_id, name, version, updated_at, updated_by) \
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (prompt_id, name) DO NOTHING";
const MOVE_LABEL: &str = "UPDATE prompt_labels SET version = $1, updated_at = $2, updated_by = $3 \
    WHERE prompt_id = $4 AND name = $5 AND version = $6";
const DELETE_LABEL: &str = "DELETE FROM prompt_labels WHERE prompt_id = $1 AND name = $2 AND version = $3";
const INSERT_MOVE: &str = "INSERT INTO prompt_label_moves (prompt_id, name, from_version, to_version, actor, \
    moved_at) VALUES ($1, $2, $3, $4, $5, $6)";
pub(crate) const GET_LABEL: &str = "SELECT p.id, l.version FROM prompts p LEFT JOIN prompt_labels l \
    ON l.prompt_id = p.id AND l.name = $3 WHERE p.id = $1 AND p.user_id IS NOT DISTINCT FROM $2";
pub(crate) const LIST_LABELS: &str =
    "SELECT name, version, updated_at, updated_by FROM prompt_labels WHERE prompt_id = $1 ORDER BY name";
const HISTORY: &str = "SELECT prompt_id, name, from_version, to_version, actor, moved_at FROM prompt_label_moves \
    WHERE prompt_id = $1 ORDER BY seq DESC LIMIT $2";
const HISTORY_OF: &str = "SELECT prompt_id, name, from_version, to_version, actor, moved_at \
    FROM prompt_label_moves WHERE prompt_id = $1 AND name = $3 ORDER BY seq DESC LIMIT $2";
const GET_SETTINGS: &str = "SELECT guard_production FROM prompt_label_settings WHERE prompt_id = $1";
const SET_SETTINGS: &str = "INSERT INTO prompt_label_settings (prompt_id, guard_production) VALUES ($1, $2) \
    ON CONFLICT (prompt_id) DO UPDATE SET guard_production = excluded.guard_production";

/// Most history rows returned (newest first).
pub(crate) const MAX_HISTORY: i64 = 1000;

#[derive(sqlx::FromRow)]
struct LabelRow {
    name: String,
    version: i32,
    updated_at: Ts,
    updated_by: Uuid,
}

#[derive(sqlx::FromRow)]
struct MoveRow {
    prompt_id: Uuid,
    name: String,
    from_version: Option<i32>,
    to_version: Option<i32>,
    actor: Uuid,
    moved_at: Ts,
}

impl TryFrom<MoveRow> for LabelMove {
    type Error = Error;

    fn try_from(r: MoveRow) -> Result<Self> {
        Ok(LabelMove {
            prompt_id: PromptId(r.prompt_id),
            name: r.name,
            from: r.from_version.map(|v| u32_of("from_version", v)).transpose()?,
            to: r.to_version.map(|v| u32_of("to_version", v)).transpose()?,
            actor: UserId(r.actor),
            at: r.moved_at.0,
        })
    }
}

fn lost_race(m: &LabelMove) -> Error {
    Error::conflict(format!("label {:?} of prompt {} was moved concurrently", m.name, m.prompt_id))
}

for_each_backend! {
    /// See `Store::move_label`.
    pub(crate) async fn move_label(pool: &sqlx::Pool<Db>, user: UserId, m: &LabelMove) -> Result<()> {
        let mut tx = pool.begin().await.db("begin")?;
        let current: Option<i32> = sqlx::query_scalar(PROMPT_VERSION_OF)
            .bind(m.prompt_id.0)
            .bind(user.0)
            .fetch_optional(&mut *tx)
            .await
            .db("read prompt")?;
        let current = current.ok_or_else(|| Error::not_found("prompt", m.prompt_id))?;
        if let Some(to) = m.to
            && (to == 0 || i64::from(to) > i64::from(current))
        {
            return Err(Error::not_found("prompt version", format!("{} v{to}", m.prompt_id)));
        }
        let at = Ts(m.at);
        let applied = match (m.from, m.to) {
            (None, Some(to)) => sqlx::query(CREATE_LABEL)
                .bind(m.prompt_id.0)
                .bind(&m.name)
                .bind(i64::from(to))
                .bind(at)
                .bind(m.actor.0)
                .execute(&mut *tx)
                .await
                .db("create label")?,
            (Some(from), Some(to)) => sqlx::query(MOVE_LABEL)
                .bind(i64::from(to))
                .bind(at)
                .bind(m.actor.0)
                .bind(m.prompt_id.0)
                .bind(&m.name)
                .bind(i64::from(from))
                .execute(&mut *tx)
                .await
                .db("move label")?,
            (Some(from), None) => sqlx::query(DELETE_LABEL)
                .bind(m.prompt_id.0)
                .bind(&m.name)
                .bind(i64::from(from))
                .execute(&mut *tx)
                .await
                .db("delete label")?,
            (None, None) => return Err(Error::internal("a label move needs a source or a target version")),
        };
        if applied.rows_affected() == 0 {
            return Err(lost_race(m));
        }
        sqlx::query(INSERT_MOVE)
            .bind(m.prompt_id.0)
            .bind(&m.name)
            .bind(m.from.map(i64::from))
            .bind(m.to.map(i64::from))
            .bind(m.actor.0)
            .bind(Ts(m.at))
            .execute(&mut *tx)
            .await
            .db("record label move")?;
        tx.commit().await.db("commit")?;
        Ok(())
    }

    /// `NotFound` unless the user owns the prompt.
    async fn check_owner(pool: &sqlx::Pool<Db>, user: UserId, id: PromptId) -> Result<()> {
        let found: Option<i32> =
            sqlx::query_scalar(PROMPT_VERSION_OF).bind(id.0).bind(user.0).fetch_optional(pool).await.db("read prompt")?;
        found.map(|_| ()).ok_or_else(|| Error::not_found("prompt", id))
    }

    /// See `Store::get_label`: one read, so it sees a whole move or none of it.
    pub(crate) async fn get_label(
        ex: impl sqlx::Executor<'_, Database = Db>,
        user: UserId,
        id: PromptId,
        name: &str,
    ) -> Result<Option<u32>> {
        let row: Option<(Uuid, Option<i32>)> = sqlx::query_as(GET_LABEL)
            .bind(id.0)
            .bind(user.0)
            .bind(name)
            .fetch_optional(ex)
            .await
            .db("get label")?;
        let (_, version) = row.ok_or_else(|| Error::not_found("prompt", id))?;
        version.map(|v| u32_of("version", v)).transpose()
    }

    pub(crate) async fn list_labels(pool: &sqlx::Pool<Db>, user: UserId, id: PromptId) -> Result<Vec<Label>> {
        check_owner(pool, user, id).await?;
        let rows: Vec<LabelRow> =
            sqlx::query_as(LIST_LABELS).bind(id.0).fetch_all(pool).await.db("list labels")?;
        rows.into_iter()
            .map(|r| {
                Ok(Label {
                    name: r.name,
                    version: u32_of("version", r.version)?,
                    updated_at: r.updated_at.0,
                    updated_by: Some(UserId(r.updated_by)),
                })
            })
            .collect()
    }

    /// Newest first, at most [`MAX_HISTORY`] moves.
    pub(crate) async fn label_history(
        pool: &sqlx::Pool<Db>,
        user: UserId,
        id: PromptId,
        name: Option<&str>,
    ) -> Result<Vec<LabelMove>> {
        check_owner(pool, user, id).await?;
        let q = sqlx::query_as::<_, MoveRow>(if name.is_some() { HISTORY_OF } else { HISTORY })
            .bind(id.0)
            .bind(MAX_HISTORY);
        let q = match name {
            Some(n) => q.bind(n),
            None => q,
        };
        let rows = q.fetch_all(pool).await.db("label history")?;
        rows.into_iter().map(LabelMove::try_from).collect()
    }

    pub(crate) async fn label_settings(pool: &sqlx::Pool<Db>, user: UserId, id: PromptId) -> Result<LabelSettings> {
        check_owner(pool, user, id).await?;
        let guard: Option<bool> =
            sqlx::query_scalar(GET_SETTINGS).bind(id.0).fetch_optional(pool).await.db("read label settings")?;
        Ok(LabelSettings { guard_production: guard.unwrap_or(false) })
    }

    pub(crate) async fn set_label_settings(
        pool: &sqlx::Pool<Db>,
        user: UserId,
        id: PromptId,
        settings: LabelSettings,
    ) -> Result<()> {
        check_owner(pool, user, id).await?;
        sqlx::query(SET_SETTINGS)
            .bind(id.0)
            .bind(settings.guard_production)
            .execute(pool)
            .await
            .db("write label settings")?;
        Ok(())
    }
}
