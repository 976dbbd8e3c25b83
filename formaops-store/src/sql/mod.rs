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
//! - `executions`: the execution row and the queue's shared statements.

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
            $($item)*
        }
        /// The shared queries on SQLite.
        pub(crate) mod lite {
            #[allow(unused_imports)]
            use super::*;
            #[allow(dead_code)]
            pub(crate) type Db = sqlx::Sqlite;
            $($item)*
        }
    };
}
pub(crate) mod executions;
pub(crate) mod prompts;
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
