//! Store settings chosen at connect time ([`StoreOptions`], passed to
//! [`connect_with`](crate::connect_with)).
//!
//! # Durability
//!
//! | mode | string | an execution write (enqueue, claim, finish, rescue, lease extension) returns | a crash can lose |
//! |---|---|---|---|
//! | [`Durability::Strict`] (default) | `strict` | after its transaction is flushed to disk | nothing committed |
//! | [`Durability::Relaxed`] | `relaxed` | once committed, before the flush | the last moments of execution writes |
//!
//! Relaxed never corrupts the database and never duplicates an execution: a lost write is a
//! whole transaction rolled back, so the execution is found as it was before it (queued
//! rather than running, running rather than finished; a running one is rescued when its lease
//! expires, as after any crash).
//!
//! - Postgres: execution writes go through a second pool whose sessions run with
//!   `synchronous_commit = off` (Postgres flushes them within `wal_writer_delay` × 3, 600 ms
//!   by default: its documentation, "Asynchronous Commit"). Users, credentials, prompts,
//!   labels and cancellations stay on the durable pool. A crash of the FormaOps process loses
//!   nothing; a crash of the Postgres server or the machine can lose those last writes.
//! - SQLite: the single writer connection runs with `synchronous = NORMAL` (WAL mode), so
//!   every write of that database is relaxed, prompts and credentials too. A crash of the
//!   process loses nothing; an operating-system crash or power loss can roll back the last
//!   transactions (SQLite's documentation, "PRAGMA synchronous").
//! - `memory://` keeps nothing anyway: the setting changes nothing.

use std::fmt;
use std::str::FromStr;

use formaops_core::{Error, Result};
use serde::{Deserialize, Deserializer};

/// When an execution write is answered: after its flush (`strict`) or once committed
/// (`relaxed`). See the [module](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Answered only after the final state is flushed to disk.
    #[default]
    Strict,
    /// Answered once committed; a crash can lose the last moments of execution writes.
    Relaxed,
}

impl Durability {
    /// Every mode, in the order of its documentation.
    pub const ALL: [Self; 2] = [Self::Strict, Self::Relaxed];

    /// The one string form: `strict` or `relaxed`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "strict",
            Self::Relaxed => "relaxed",
        }
    }

    /// Parses the string form (surrounding whitespace ignored, lowercase only).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on the field `durability`, naming the accepted values.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "strict" => Ok(Self::Strict),
            "relaxed" => Ok(Self::Relaxed),
            other => {
                let shown: String = other.chars().take(32).collect();
                Err(Error::invalid_argument(
                    "durability",
                    format!("{shown:?} is not a durability: use \"strict\" or \"relaxed\""),
                ))
            }
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Durability {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for Durability {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Settings of a store, chosen when it connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StoreOptions {
    /// When execution writes are answered (default [`Durability::Strict`]).
    pub durability: Durability,
}

impl StoreOptions {
    /// The defaults with `durability`.
    #[must_use]
    pub const fn with_durability(durability: Durability) -> Self {
        Self { durability }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_string_form_each_way() {
        for d in Durability::ALL {
            assert_eq!(Durability::parse(d.as_str()).unwrap(), d);
            assert_eq!(d.to_string(), d.as_str());
        }
        assert_eq!(Durability::default(), Durability::Strict);
        assert_eq!(" relaxed ".parse::<Durability>().unwrap(), Durability::Relaxed);
        for bad in ["", "Strict", "off", "fast"] {
            let e = Durability::parse(bad).unwrap_err().to_string();
            assert!(e.contains("durability") && e.contains("\"relaxed\""), "{e}");
        }
    }
}
