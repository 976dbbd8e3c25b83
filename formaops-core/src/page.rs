//! Cursor pagination shared by every list operation.
//!
//! Cursors are opaque to callers. Inside they are keyset positions (`created_at`, `id` of the
//! last item), so a page deep in the history costs the same as the first: no OFFSET.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

/// Largest page a caller may ask for.
pub const MAX_PAGE_SIZE: u32 = 200;
/// Page size when a caller names none.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// A request for one page, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Most items to return, 1 to [`MAX_PAGE_SIZE`].
    pub limit: u32,
    /// Start after this position; `None` for the first (newest) page.
    pub after: Option<Cursor>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self { limit: DEFAULT_PAGE_SIZE, after: None }
    }
}

impl PageRequest {
    /// Validates a caller's `limit` and `cursor`.
    pub fn new(limit: Option<u32>, cursor: Option<&str>) -> Result<Self> {
        let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if limit == 0 || limit > MAX_PAGE_SIZE {
            return Err(Error::invalid_argument("limit", format!("must be between 1 and {MAX_PAGE_SIZE}")));
        }
        let after = cursor.map(Cursor::decode).transpose()?;
        Ok(Self { limit, after })
    }
}

/// A keyset position: items strictly older than (`created_at`, `id`) come next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Creation time of the last item seen.
    pub created_at: DateTime<Utc>,
    /// Id of the last item seen (breaks ties between equal times).
    pub id: Uuid,
}

impl Cursor {
    /// Encodes as `<micros since epoch>_<uuid simple>`; opaque to callers.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.created_at.timestamp_micros(), self.id.simple())
    }

    /// Decodes what [`Cursor::encode`] produced; anything else is
    /// [`Error::InvalidArgument`] on `cursor`.
    pub fn decode(s: &str) -> Result<Self> {
        let bad = || Error::invalid_argument("cursor", "not a cursor returned by this API");
        let (micros, id) = s.split_once('_').ok_or_else(bad)?;
        let micros: i64 = micros.parse().map_err(|_| bad())?;
        let created_at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
        let id = Uuid::parse_str(id).map_err(|_| bad())?;
        Ok(Self { created_at, id })
    }
}

/// One page of items, newest first, and the cursor for the next (older) page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// At most the requested number of items, newest first.
    pub items: Vec<T>,
    /// Pass back as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` fetched items: the extra one only says that more
    /// exist. `key` gives each item's keyset position.
    pub fn from_overfetch(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> Cursor) -> Self {
        let limit = limit as usize;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|last| key(last).encode())
        } else {
            None
        };
        Self { items, next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let c = Cursor {
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn bad_cursor_and_limit_are_named() {
        assert!(
            matches!(Cursor::decode("nope"), Err(Error::InvalidArgument { field, .. }) if field == "cursor")
        );
        assert!(
            matches!(PageRequest::new(Some(0), None), Err(Error::InvalidArgument { field, .. }) if field == "limit")
        );
        assert!(PageRequest::new(Some(MAX_PAGE_SIZE + 1), None).is_err());
    }
}
