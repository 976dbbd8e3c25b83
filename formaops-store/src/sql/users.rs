//! Users and credentials.

use chrono::{DateTime, Utc};
use formaops_core::ids::{CredentialId, UserId};
use formaops_core::user::{Credential, CredentialKind, ExternalIdentity, User, UserWithPassword};
use formaops_core::{Error, Result};
use uuid::Uuid;

use super::{Ts, corrupt, ts};
use crate::MAX_CREDENTIALS;
use crate::error::DbResultExt;

const INSERT_USER: &str =
    "INSERT INTO users (id, email, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4, $5)";
const USER_BY_EMAIL: &str = "SELECT * FROM users WHERE email = $1";
pub(crate) const USER_BY_ID: &str = "SELECT * FROM users WHERE id = $1";
const COUNT_USERS: &str = "SELECT COUNT(*) FROM users";
const INSERT_CREDENTIAL: &str = "INSERT INTO credentials (id, user_id, kind, name, token_hash, created_at, \
    expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub(crate) const AUTHENTICATE: &str = "SELECT c.*, u.email AS u_email, u.is_admin AS u_is_admin, \
    u.created_at AS u_created_at FROM credentials c JOIN users u ON u.id = c.user_id \
    WHERE c.token_hash = $1 AND c.revoked_at IS NULL AND (c.expires_at IS NULL OR c.expires_at > $2)";
const REVOKE_CREDENTIAL: &str = "UPDATE credentials SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND user_id IS NOT DISTINCT FROM $3";
const LIST_CREDENTIALS: &str = "SELECT * FROM credentials WHERE user_id = $1 AND kind = $2 \
    AND revoked_at IS NULL ORDER BY created_at DESC, id DESC LIMIT $3";
const USER_BY_IDENTITY: &str = "SELECT u.* FROM external_identities i JOIN users u ON u.id = i.user_id \
    WHERE i.issuer = $1 AND i.subject = $2";
const INSERT_IDENTITY: &str = "INSERT INTO external_identities (issuer, subject, user_id, email, created_at) VALUES ($1, $2, $3, $4, $5)";

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    password_hash: String,
    is_admin: bool,
    created_at: Ts,
}

impl UserRow {
    fn user(&self) -> User {
        User {
            id: UserId(self.id),
            email: self.email.clone(),
            is_admin: self.is_admin,
            created_at: self.created_at.0,
        }
    }
}

#[derive(sqlx::FromRow)]
struct CredentialRow {
    id: Uuid,
    user_id: Uuid,
    kind: String,
    name: Option<String>,
    token_hash: Vec<u8>,
    created_at: Ts,
    expires_at: Option<Ts>,
    revoked_at: Option<Ts>,
}

impl TryFrom<CredentialRow> for Credential {
    type Error = Error;

    fn try_from(r: CredentialRow) -> Result<Self> {
        Ok(Credential {
            id: CredentialId(r.id),
            user_id: UserId(r.user_id),
            kind: CredentialKind::parse(&r.kind)
                .ok_or_else(|| corrupt("kind", format!("is unknown: {}", r.kind)))?,
            name: r.name,
            token_hash: r.token_hash,
            created_at: r.created_at.0,
            expires_at: r.expires_at.map(|t| t.0),
            revoked_at: r.revoked_at.map(|t| t.0),
        })
    }
}

#[derive(sqlx::FromRow)]
struct AuthRow {
    #[sqlx(flatten)]
    credential: CredentialRow,
    u_email: String,
    u_is_admin: bool,
    u_created_at: Ts,
}

for_each_backend! {
    pub(crate) async fn create_user(
        ex: impl sqlx::Executor<'_, Database = Db>,
        user: &User,
        password_hash: &str,
    ) -> Result<()> {
        sqlx::query(INSERT_USER)
            .bind(user.id.0)
            .bind(&user.email)
            .bind(password_hash)
            .bind(user.is_admin)
            .bind(Ts(user.created_at))
            .execute(ex)
            .await
            .db("create user")?;
        Ok(())
    }

    pub(crate) async fn user_by_email(
        ex: impl sqlx::Executor<'_, Database = Db>,
        email: &str,
    ) -> Result<Option<UserWithPassword>> {
        let row: Option<UserRow> =
            sqlx::query_as(USER_BY_EMAIL).bind(email).fetch_optional(ex).await.db("find user by email")?;
        Ok(row.map(|r| UserWithPassword { user: r.user(), password_hash: r.password_hash }))
    }

    pub(crate) async fn get_user(ex: impl sqlx::Executor<'_, Database = Db>, id: UserId) -> Result<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(USER_BY_ID).bind(id.0).fetch_optional(ex).await.db("get user")?;
        Ok(row.map(|r| r.user()))
    }

    pub(crate) async fn count_users(ex: impl sqlx::Executor<'_, Database = Db>) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(COUNT_USERS).fetch_one(ex).await.db("count users")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(crate) async fn create_credential(ex: impl sqlx::Executor<'_, Database = Db>, c: &Credential) -> Result<()> {
        sqlx::query(INSERT_CREDENTIAL)
            .bind(c.id.0)
            .bind(c.user_id.0)
            .bind(c.kind.as_str())
            .bind(&c.name)
            .bind(&c.token_hash)
            .bind(Ts(c.created_at))
            .bind(ts(c.expires_at))
            .bind(ts(c.revoked_at))
            .execute(ex)
            .await
            .db("create credential")?;
        Ok(())
    }

    pub(crate) async fn authenticate(
        ex: impl sqlx::Executor<'_, Database = Db>,
        token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<(User, Credential)>> {
        let row: Option<AuthRow> =
            sqlx::query_as(AUTHENTICATE).bind(token_hash).bind(Ts(now)).fetch_optional(ex).await.db("authenticate")?;
        let Some(r) = row else { return Ok(None) };
        let credential = Credential::try_from(r.credential)?;
        let user = User {
            id: credential.user_id,
            email: r.u_email,
            is_admin: r.u_is_admin,
            created_at: r.u_created_at.0,
        };
        Ok(Some((user, credential)))
    }

    pub(crate) async fn revoke_credential(
        ex: impl sqlx::Executor<'_, Database = Db>,
        user: UserId,
        id: CredentialId,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let done = sqlx::query(REVOKE_CREDENTIAL)
            .bind(Ts(now))
            .bind(id.0)
            .bind(user.0)
            .execute(ex)
            .await
            .db("revoke credential")?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("credential", id));
        }
        Ok(())
    }

    pub(crate) async fn list_credentials(
        ex: impl sqlx::Executor<'_, Database = Db>,
        user: UserId,
        kind: CredentialKind,
    ) -> Result<Vec<Credential>> {
        let rows: Vec<CredentialRow> = sqlx::query_as(LIST_CREDENTIALS)
            .bind(user.0)
            .bind(kind.as_str())
            .bind(MAX_CREDENTIALS)
            .fetch_all(ex)
            .await
            .db("list credentials")?;
        rows.into_iter().map(Credential::try_from).collect()
    }

    pub(crate) async fn user_by_identity(
        ex: impl sqlx::Executor<'_, Database = Db>,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(USER_BY_IDENTITY)
            .bind(issuer)
            .bind(subject)
            .fetch_optional(ex)
            .await
            .db("find user by external identity")?;
        Ok(row.map(|r| r.user()))
    }

    pub(crate) async fn create_identity(
        ex: impl sqlx::Executor<'_, Database = Db>,
        user: UserId,
        identity: &ExternalIdentity,
    ) -> Result<()> {
        sqlx::query(INSERT_IDENTITY)
            .bind(&identity.issuer)
            .bind(&identity.subject)
            .bind(user.0)
            .bind(&identity.email)
            .bind(Ts(identity.created_at))
            .execute(ex)
            .await
            .db("create external identity")?;
        Ok(())
    }
}
