//! The SQL both backends share: each query text once, rows decoded by `#[derive(FromRow)]`
//! types, and query functions written once and instantiated for Postgres (`pg`) and SQLite
//! (`lite`) by `for_each_backend!`.
//!
//! The two schemas store a few values differently (Postgres `timestamptz`, `jsonb` and
//! `numeric`; SQLite INTEGER microseconds, JSON text and decimal text). The column types
//! [`Ts`], [`Doc`] and [`Money`] encode and decode each in its backend's form, so one row type
//! and one bind serve both. What truly differs (Postgres `UNNEST` batches, `SKIP LOCKED`,
//! NOTIFY, its metrics SQL; SQLite's single writer) stays in the backend modules.
//!
//! - `users`: users and credentials;
//! - `prompts`: prompts and versions;
//! - `executions`: the execution row and the queue's shared statements;
//! - `labels`: label pointers, their moves and settings;
//! - `lab`: datasets with their rows, experiments with their runs.
//! - `rollups`: the metrics rollups (grouped upserts with every final-state write, the report
//!   and the series read from them, the one-time backfill).
//!
//! # Plans that do not depend on statistics
//!
//! A connection keeps a prepared statement's generic plan, and a plan chosen while the tables
//! were empty and unanalysed lives on as they grow. Two rules keep those plans right at any
//! size (checked by `tests/plans.rs` on a million rows):
//! - a lookup by primary key writes its owner check as `user_id IS NOT DISTINCT FROM $n`
//!   (the same truth for the never-null `user_id`, but no index can serve it), so the primary
//!   key is the only index that can drive the lookup — never an index led by `user_id`,
//!   which would read every row of the user;
//! - each execution listing has an index with its equality columns and its order
//!   (`(user_id, created_at, id)`, `(user_id, status, created_at, id)`,
//!   `(user_id, prompt_id, created_at, id)`), so it reads one page of rows and sorts none.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use formaops_core::{Error, Result};
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::types::Json;
use sqlx::{Postgres, Sqlite};

/// Writes the items twice: in a module `pg` for Postgres and in `lite` for SQLite, each with
/// `Db` naming its database, so a query function is written once for both.
macro_rules! for_each_backend {
    ($($item:item)*) => {
        /// The shared queries on Postgres.
        pub(crate) mod pg {
            #[allow(unused_imports)]
            use super::*;
            #[allow(dead_code)]
            pub(crate) type Db = sqlx::Postgres;
            /// The rollups on this backend (final-state writes add to them).
            #[allow(unused_imports)]
            use crate::sql::rollups::pg as rollups_db;
            $($item)*
        }
        /// The shared queries on SQLite.
        pub(crate) mod lite {
            #[allow(unused_imports)]
            use super::*;
            #[allow(dead_code)]
            pub(crate) type Db = sqlx::Sqlite;
            /// The rollups on this backend (final-state writes add to them).
            #[allow(unused_imports)]
            use crate::sql::rollups::lite as rollups_db;
            $($item)*
        }
    };
}
/// Implements `Store` for a backend: every method whose SQL both backends share delegates to
/// the backend's instance (`pg` or `lite`) of the shared queries, reading on `self.$reader`
/// and writing on `self.$writer` (execution writes, claim and rescue, on `self.$executions`,
/// which a relaxed store commits without waiting for the flush: see `crate::Durability`); the
/// backend writes the methods that differ after the `;`.
macro_rules! impl_store {
    (
        $store:ty, $db:ident, reader: $reader:ident, writer: $writer:ident,
        executions: $executions:ident, claim: $claim:expr,
        keyset: $keyset:expr; $($own:tt)*
    ) => {
        #[async_trait::async_trait]
        impl formaops_core::store::Store for $store {
            async fn create_user(&self, user: &formaops_core::user::User, password_hash: &str) -> formaops_core::Result<()> {
                $crate::sql::users::$db::create_user(&self.$writer, user, password_hash).await
            }

            async fn user_by_email(&self, email: &str) -> formaops_core::Result<Option<formaops_core::user::UserWithPassword>> {
                $crate::sql::users::$db::user_by_email(&self.$reader, email).await
            }

            async fn get_user(&self, id: formaops_core::ids::UserId) -> formaops_core::Result<Option<formaops_core::user::User>> {
                $crate::sql::users::$db::get_user(&self.$reader, id).await
            }

            async fn count_users(&self) -> formaops_core::Result<u64> {
                $crate::sql::users::$db::count_users(&self.$reader).await
            }

            async fn create_credential(&self, c: &formaops_core::user::Credential) -> formaops_core::Result<()> {
                $crate::sql::users::$db::create_credential(&self.$writer, c).await
            }

            async fn authenticate(
                &self,
                token_hash: &[u8],
                now: chrono::DateTime<chrono::Utc>,
            ) -> formaops_core::Result<Option<(formaops_core::user::User, formaops_core::user::Credential)>> {
                $crate::sql::users::$db::authenticate(&self.$reader, token_hash, now).await
            }

            async fn revoke_credential(
                &self,
                user: formaops_core::ids::UserId,
                id: formaops_core::ids::CredentialId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> formaops_core::Result<()> {
                $crate::sql::users::$db::revoke_credential(&self.$writer, user, id, now).await
            }

            async fn list_credentials(
                &self,
                user: formaops_core::ids::UserId,
                kind: formaops_core::user::CredentialKind,
            ) -> formaops_core::Result<Vec<formaops_core::user::Credential>> {
                $crate::sql::users::$db::list_credentials(&self.$reader, user, kind).await
            }

            async fn user_by_identity(
                &self,
                issuer: &str,
                subject: &str,
            ) -> formaops_core::Result<Option<formaops_core::user::User>> {
                $crate::sql::users::$db::user_by_identity(&self.$reader, issuer, subject).await
            }

            async fn create_identity_user(
                &self,
                user: &formaops_core::user::User,
                password_hash: &str,
                identity: &formaops_core::user::ExternalIdentity,
            ) -> formaops_core::Result<()> {
                use $crate::error::DbResultExt;
                let mut tx = self.$writer.begin().await.db("begin")?;
                $crate::sql::users::$db::create_user(&mut *tx, user, password_hash).await?;
                $crate::sql::users::$db::create_identity(&mut *tx, user.id, identity).await?;
                tx.commit().await.db("commit")?;
                Ok(())
            }

            async fn insert_prompt(
                &self,
                prompt: &formaops_core::prompt::Prompt,
                first: &formaops_core::prompt::PromptVersion,
            ) -> formaops_core::Result<()> {
                use $crate::error::DbResultExt;
                let mut tx = self.$writer.begin().await.db("begin")?;
                $crate::sql::prompts::$db::insert_prompt(&mut tx, prompt, first).await?;
                tx.commit().await.db("commit")?;
                Ok(())
            }

            async fn insert_version(
                &self,
                prompt: &formaops_core::prompt::Prompt,
                version: &formaops_core::prompt::PromptVersion,
            ) -> formaops_core::Result<()> {
                $crate::sql::prompts::$db::insert_version(&self.$writer, prompt, version).await
            }

            async fn get_prompt(
                &self,
                user: formaops_core::ids::UserId,
                id: formaops_core::ids::PromptId,
            ) -> formaops_core::Result<formaops_core::prompt::Prompt> {
                $crate::sql::prompts::$db::get_prompt(&self.$reader, user, id).await
            }

            async fn get_version(
                &self,
                user: formaops_core::ids::UserId,
                id: formaops_core::ids::PromptId,
                version: u32,
            ) -> formaops_core::Result<formaops_core::prompt::PromptVersion> {
                $crate::sql::prompts::$db::get_version(&self.$reader, user, id, version).await
            }

            async fn list_prompts(
                &self,
                user: formaops_core::ids::UserId,
                filter: &formaops_core::store::PromptFilter,
                page: formaops_core::page::PageRequest,
            ) -> formaops_core::Result<formaops_core::page::Page<formaops_core::prompt::Prompt>> {
                $crate::sql::prompts::$db::list_prompts(&self.$reader, $keyset, user, filter, page).await
            }

            async fn list_versions(
                &self,
                user: formaops_core::ids::UserId,
                id: formaops_core::ids::PromptId,
                page: formaops_core::store::VersionPageRequest,
            ) -> formaops_core::Result<formaops_core::page::Page<formaops_core::prompt::PromptVersion>> {
                $crate::sql::prompts::$db::list_versions(&self.$reader, user, id, page).await
            }

            async fn set_prompt_status(
                &self,
                user: formaops_core::ids::UserId,
                id: formaops_core::ids::PromptId,
                status: formaops_core::prompt::PromptStatus,
                now: chrono::DateTime<chrono::Utc>,
            ) -> formaops_core::Result<formaops_core::prompt::Prompt> {
                $crate::sql::prompts::$db::set_prompt_status(&self.$writer, user, id, status, now).await
            }

            async fn move_label(
                &self,
                user: formaops_core::ids::UserId,
                m: &formaops_core::prompt::LabelMove,
            ) -> formaops_core::Result<()> {
                $crate::sql::labels::$db::move_label(&self.$writer, user, m).await
            }

            async fn get_label(
                &self,
                user: formaops_core::ids::UserId,
                id: formaops_core::ids::PromptId,
                name: &str,
            ) -> formaops_core::Result<Option<u32>> {
                $crate::sql::labels::$db::get_label(&self.$reader, user, id, name).await
            }

            async fn list_labels(
                &self,
                user: formaops_core::ids::UserId,
                id: formaops_core::ids::PromptId,
            ) -> formaops_core::Result<Vec<formaops_core::prompt::Label>> {
                $crate::sql::labels::$db::list_labels(&self.$reader, user, id).await
            }

            async fn label_history(
                &self,
                user: formaops_core::ids::UserId,
                id: formaops_core::ids::PromptId,
                name: Option<&str>,
            ) -> formaops_core::Result<Vec<formaops_core::prompt::LabelMove>> {
                $crate::sql::labels::$db::label_history(&self.$reader, user, id, name).await
            }

            async fn label_settings(
                &self,
                user: formaops_core::ids::UserId,
                id: formaops_core::ids::PromptId,
            ) -> formaops_core::Result<formaops_core::prompt::LabelSettings> {
                $crate::sql::labels::$db::label_settings(&self.$reader, user, id).await
            }

            async fn set_label_settings(
                &self,
                user: formaops_core::ids::UserId,
                id: formaops_core::ids::PromptId,
                settings: formaops_core::prompt::LabelSettings,
            ) -> formaops_core::Result<()> {
                $crate::sql::labels::$db::set_label_settings(&self.$writer, user, id, settings).await
            }

            async fn claim(
                &self,
                params: formaops_core::store::ClaimParams<'_>,
            ) -> formaops_core::Result<Vec<formaops_core::execution::Execution>> {
                $crate::sql::executions::$db::claim(&self.$executions, $claim, params).await
            }

            async fn expired_leases(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> formaops_core::Result<Vec<formaops_core::execution::Execution>> {
                $crate::sql::executions::$db::expired_leases(&self.$reader, now, limit).await
            }

            async fn rescue(
                &self,
                decisions: &[formaops_core::store::RescueDecision],
            ) -> formaops_core::Result<Vec<bool>> {
                $crate::sql::executions::$db::rescue(&self.$executions, decisions).await
            }

            async fn cancel(
                &self,
                user: formaops_core::ids::UserId,
                id: formaops_core::ids::ExecutionId,
                now: chrono::DateTime<chrono::Utc>,
            ) -> formaops_core::Result<formaops_core::execution::Execution> {
                $crate::sql::executions::$db::cancel(&self.$writer, user, id, now).await
            }

            async fn get_execution(
                &self,
                user: formaops_core::ids::UserId,
                id: formaops_core::ids::ExecutionId,
            ) -> formaops_core::Result<formaops_core::execution::Execution> {
                $crate::sql::executions::$db::get_execution(&self.$reader, user, id).await
            }

            async fn list_executions(
                &self,
                user: formaops_core::ids::UserId,
                filter: &formaops_core::store::ExecutionFilter,
                page: formaops_core::page::PageRequest,
            ) -> formaops_core::Result<formaops_core::page::Page<formaops_core::execution::Execution>> {
                $crate::sql::executions::$db::list_executions(&self.$reader, $keyset, user, filter, page).await
            }

            async fn queue_depth(&self, user: Option<formaops_core::ids::UserId>) -> formaops_core::Result<u64> {
                $crate::sql::executions::$db::queue_depth(&self.$reader, user).await
            }

            // datasets and experiments

            async fn insert_dataset(
                &self,
                dataset: &formaops_core::dataset::Dataset,
                rows: &[formaops_core::dataset::DatasetRow],
            ) -> formaops_core::Result<()> {
                $crate::sql::lab::$db::insert_dataset(&self.$writer, dataset, rows).await
            }

            async fn get_dataset(
                &self,
                user: formaops_core::ids::UserId,
                id: formaops_core::ids::DatasetId,
            ) -> formaops_core::Result<formaops_core::dataset::Dataset> {
                $crate::sql::lab::$db::get_dataset(&self.$reader, user, id).await
            }

            async fn list_datasets(
                &self,
                user: formaops_core::ids::UserId,
                page: formaops_core::page::PageRequest,
            ) -> formaops_core::Result<formaops_core::page::Page<formaops_core::dataset::Dataset>> {
                $crate::sql::lab::$db::list_datasets(&self.$reader, $keyset, user, page).await
            }

            async fn delete_dataset(
                &self,
                user: formaops_core::ids::UserId,
                id: formaops_core::ids::DatasetId,
            ) -> formaops_core::Result<()> {
                $crate::sql::lab::$db::delete_dataset(&self.$writer, user, id).await
            }

            async fn dataset_rows(
                &self,
                user: formaops_core::ids::UserId,
                id: formaops_core::ids::DatasetId,
                after: Option<u32>,
                limit: u32,
            ) -> formaops_core::Result<Vec<formaops_core::dataset::DatasetRow>> {
                $crate::sql::lab::$db::dataset_rows(&self.$reader, user, id, after, limit).await
            }

            async fn insert_experiment(
                &self,
                experiment: &formaops_core::experiment::Experiment,
            ) -> formaops_core::Result<()> {
                $crate::sql::lab::$db::insert_experiment(&self.$writer, experiment).await
            }

            async fn get_experiment(
                &self,
                user: formaops_core::ids::UserId,
                id: formaops_core::ids::ExperimentId,
            ) -> formaops_core::Result<formaops_core::experiment::Experiment> {
                $crate::sql::lab::$db::get_experiment(&self.$reader, user, id).await
            }

            async fn list_experiments(
                &self,
                user: formaops_core::ids::UserId,
                page: formaops_core::page::PageRequest,
            ) -> formaops_core::Result<formaops_core::page::Page<formaops_core::experiment::Experiment>> {
                $crate::sql::lab::$db::list_experiments(&self.$reader, $keyset, user, page).await
            }

            async fn finish_experiment(
                &self,
                user: formaops_core::ids::UserId,
                id: formaops_core::ids::ExperimentId,
                status: formaops_core::experiment::ExperimentStatus,
                at: chrono::DateTime<chrono::Utc>,
            ) -> formaops_core::Result<bool> {
                $crate::sql::lab::$db::finish_experiment(&self.$writer, user, id, status, at).await
            }

            async fn record_experiment_runs(
                &self,
                user: formaops_core::ids::UserId,
                runs: &[formaops_core::experiment::ExperimentRun],
            ) -> formaops_core::Result<()> {
                $crate::sql::lab::$db::record_runs(&self.$writer, user, runs).await
            }

            async fn experiment_runs(
                &self,
                user: formaops_core::ids::UserId,
                id: formaops_core::ids::ExperimentId,
            ) -> formaops_core::Result<Vec<(formaops_core::experiment::ExperimentRun, formaops_core::execution::Execution)>> {
                $crate::sql::lab::$db::runs(&self.$reader, user, id).await
            }

            async fn running_experiments(
                &self,
                limit: u32,
            ) -> formaops_core::Result<Vec<formaops_core::experiment::Experiment>> {
                $crate::sql::lab::$db::running(&self.$reader, limit).await
            }

            // metrics rollups
            async fn metrics(
                &self,
                user: formaops_core::ids::UserId,
                query: &formaops_core::metrics::MetricsQuery,
            ) -> formaops_core::Result<formaops_core::metrics::MetricsReport> {
                let depth = $crate::sql::executions::$db::queue_depth(&self.$reader, Some(user)).await?;
                $crate::sql::rollups::$db::report(&self.$reader, user, query, depth).await
            }

            async fn metrics_series(
                &self,
                user: formaops_core::ids::UserId,
                query: &formaops_core::metrics::MetricsSeriesQuery,
            ) -> formaops_core::Result<formaops_core::metrics::MetricsSeries> {
                $crate::sql::rollups::$db::series(&self.$reader, user, query).await
            }

            $($own)*
        }
    };
}
pub(crate) use impl_store;

pub(crate) mod executions;
pub(crate) mod lab;
pub(crate) mod labels;
pub(crate) mod prompts;
pub(crate) mod rollups;
pub(crate) mod users;

/// A stored value that does not decode: a bug or a hand-edited database.
pub(crate) fn corrupt(col: &str, what: impl std::fmt::Display) -> Error {
    Error::internal(format!("stored column {col} {what}"))
}

/// A timestamp column: `timestamptz` on Postgres, INTEGER microseconds on SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ts(pub DateTime<Utc>);

/// A JSON column: `jsonb` on Postgres, TEXT on SQLite.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Doc(pub Value);

/// A money column: `numeric` on Postgres, exact decimal TEXT on SQLite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Money(pub Decimal);

/// Implements `Type`, `Encode` and `Decode` of `$ty` on `$db` through `$repr`.
macro_rules! stored_as {
    ($ty:ty, $db:ty, $repr:ty, |$s:ident| $to:expr, |$r:ident| $from:expr) => {
        impl sqlx::Type<$db> for $ty {
            fn type_info() -> <$db as sqlx::Database>::TypeInfo {
                <$repr as sqlx::Type<$db>>::type_info()
            }
            fn compatible(ty: &<$db as sqlx::Database>::TypeInfo) -> bool {
                <$repr as sqlx::Type<$db>>::compatible(ty)
            }
        }
        impl<'q> sqlx::Encode<'q, $db> for $ty {
            fn encode_by_ref(
                &self,
                buf: &mut <$db as sqlx::Database>::ArgumentBuffer,
            ) -> std::result::Result<IsNull, BoxDynError> {
                let $s = self;
                let repr: $repr = $to;
                <$repr as sqlx::Encode<'q, $db>>::encode(repr, buf)
            }
        }
        impl<'r> sqlx::Decode<'r, $db> for $ty {
            fn decode(
                value: <$db as sqlx::Database>::ValueRef<'r>,
            ) -> std::result::Result<Self, BoxDynError> {
                let $r = <$repr as sqlx::Decode<'r, $db>>::decode(value)?;
                $from
            }
        }
    };
}

stored_as!(Ts, Postgres, DateTime<Utc>, |s| s.0, |r| Ok(Ts(r)));
stored_as!(Ts, Sqlite, i64, |s| s.0.timestamp_micros(), |r| DateTime::from_timestamp_micros(r)
    .map(Ts)
    .ok_or_else(|| format!("timestamp {r} is out of range").into()));
stored_as!(Doc, Postgres, Json<Value>, |s| Json(s.0.clone()), |r| Ok(Doc(r.0)));
stored_as!(Doc, Sqlite, String, |s| s.0.to_string(), |r| Ok(Doc(serde_json::from_str(&r)?)));
stored_as!(Money, Postgres, Decimal, |s| s.0, |r| Ok(Money(r)));
stored_as!(Money, Sqlite, String, |s| s.0.normalize().to_string(), |r| Ok(Money(Decimal::from_str(&r)?)));

/// A summed money column of the rollups: `numeric` on Postgres; INTEGER pico-USD (1e-12 USD)
/// on SQLite, whose sums must stay exact (a cost finer than 1e-12 USD is rounded to it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SumMoney(pub Decimal);

/// Pico-USD of a cost, saturating.
fn pico(d: Decimal) -> i64 {
    use rust_decimal::prelude::ToPrimitive;
    let saturated = if d.is_sign_negative() { i64::MIN } else { i64::MAX };
    d.checked_mul(Decimal::new(1_000_000_000_000, 0)).and_then(|x| x.round().to_i64()).unwrap_or(saturated)
}

stored_as!(SumMoney, Postgres, Decimal, |s| s.0, |r| Ok(SumMoney(r)));
stored_as!(SumMoney, Sqlite, i64, |s| pico(s.0), |r| Ok(SumMoney(Decimal::new(r, 12))));

/// An optional timestamp column value.
pub(crate) fn ts(t: Option<DateTime<Utc>>) -> Option<Ts> {
    t.map(Ts)
}

/// A non-negative integer column as `u32`.
pub(crate) fn u32_of(col: &str, v: i32) -> Result<u32> {
    u32::try_from(v).map_err(|_| corrupt(col, format!("is out of range: {v}")))
}

/// A non-negative integer column as `u64`.
pub(crate) fn u64_of(col: &str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| corrupt(col, format!("is negative: {v}")))
}

/// A JSON column as a domain value.
pub(crate) fn from_doc<T: serde::de::DeserializeOwned>(col: &str, v: Doc) -> Result<T> {
    serde_json::from_value(v.0).map_err(|e| corrupt(col, format!("does not decode: {e}")))
}
