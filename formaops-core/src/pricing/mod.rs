//! Model prices and cost computation.
//!
//! Prices are USD per million tokens, with the instant from which each applies. Cost is
//! computed in decimal arithmetic: cached input tokens at the cached price, the rest of the
//! input at the input price, output at the output price, all at the price in effect at the
//! time given (the engine passes the time the execution's provider call completed, and stores
//! the result, so a later price change never rewrites a past execution's cost). A model with
//! no price in effect is *unpriced*: [`PriceTable::cost`] answers `None`, never a silent 0.
//!
//! The prices are data: the built-in table is the TOML file `prices.toml` next to this module
//! (with its `source` and `checked` date), embedded at build time, and an operator's file of
//! the same shape ([`PriceTable::load`]) extends it (or replaces it, with
//! `replace_builtin = true`) without a rebuild. The file's shape:
//!
//! ```toml
//! source = "https://platform.openai.com/docs/pricing"   # where the figures come from
//! checked = 2026-11-30                                   # when they were last checked
//! replace_builtin = false                                # operator files only; default false
//!
//! [[prices]]
//! model = "gpt-4o"                  # exact model name; a dated snapshot is its own model
//! effective_from = 2024-08-06       # a date (00:00 UTC) or an offset date-time
//! input_per_mtok = "2.50"           # USD per 1M input tokens, a decimal string
//! output_per_mtok = "10.00"         # USD per 1M output tokens (reasoning included)
//! cached_input_per_mtok = "1.25"    # optional; cached input at `input_per_mtok` without it
//! ```

use std::collections::HashMap;
use std::io::Read as _;
use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{Error, Result};
use crate::execution::TokenUsage;

/// The built-in price table, as TOML (see the module documentation for its shape).
pub const BUILTIN_PRICES_TOML: &str = include_str!("prices.toml");
/// Largest prices file, in bytes (1 MiB).
pub const MAX_PRICES_FILE_BYTES: u64 = 1024 * 1024;
/// Most `[[prices]]` entries in one file.
pub const MAX_PRICE_ENTRIES: usize = 10_000;
/// Longest model name in a prices file, in characters.
pub const MAX_MODEL_NAME_CHARS: usize = 200;
/// Most decimal places of a price.
pub const MAX_PRICE_DECIMALS: u32 = 12;
/// Highest price accepted in a file, USD per 1M tokens.
pub const MAX_PRICE_PER_MTOK: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// The name the settings use for a prices file (errors name it).
const FIELD: &str = "prices_file";

/// USD per million tokens for one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelPrice {
    /// USD per million (uncached) input tokens.
    pub input_per_mtok: Decimal,
    /// USD per million output tokens (reasoning tokens included).
    pub output_per_mtok: Decimal,
    /// Price of cached input tokens; the input price when `None`.
    pub cached_input_per_mtok: Option<Decimal>,
}

impl ModelPrice {
    /// The cost of `usage` at this price; `None` only if the arithmetic overflows (a price
    /// far beyond any real one, set through the Rust API).
    pub fn cost(&self, usage: &TokenUsage) -> Option<Decimal> {
        let cached = usage.cached.min(usage.input);
        let uncached = usage.input - cached;
        let cached_price = self.cached_input_per_mtok.unwrap_or(self.input_per_mtok);
        let total = Decimal::from(uncached)
            .checked_mul(self.input_per_mtok)?
            .checked_add(Decimal::from(cached).checked_mul(cached_price)?)?
            .checked_add(Decimal::from(usage.output).checked_mul(self.output_per_mtok)?)?;
        total.checked_div(Decimal::from(1_000_000u32)).map(|d| d.normalize())
    }
}

/// One price of a model and the instant from which it applies (until the model's next one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatedPrice {
    /// The first instant the price applies.
    pub effective_from: DateTime<Utc>,
    /// The price.
    pub price: ModelPrice,
}

/// Where some of a table's prices come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceSource {
    /// `built-in`, or the path of the file read.
    pub origin: String,
    /// The file's `source` (the page the figures were taken from), if it gives one.
    pub source: Option<String>,
    /// The file's `checked` date, if it gives one.
    pub checked: Option<NaiveDate>,
    /// How many entries the file holds.
    pub entries: usize,
}

/// A prices file, parsed and checked ([`PriceFile::parse`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PriceFile {
    /// Where the figures come from (`source`), if the file says.
    pub source: Option<String>,
    /// When the figures were checked (`checked`), if the file says.
    pub checked: Option<NaiveDate>,
    /// Whether the file replaces the built-in table instead of extending it.
    pub replace_builtin: bool,
    /// The entries in file order: (model, price).
    pub entries: Vec<(String, DatedPrice)>,
}

/// Prices by model name, each model with its prices over time.
///
/// [`PriceTable::default`] is the built-in table (`prices.toml`: published OpenAI prices,
/// standard tier, and the mock provider's model `mock` at an explicit 0). Extend it with
/// [`PriceTable::set`] / [`PriceTable::set_from`] or an operator's file
/// ([`PriceTable::load`]); start from nothing with [`PriceTable::empty`].
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable {
    /// Each model's prices, sorted by `effective_from`, at most one per instant.
    models: HashMap<String, Vec<DatedPrice>>,
    sources: Vec<PriceSource>,
}

impl Default for PriceTable {
    fn default() -> Self {
        Self::builtin().clone()
    }
}

impl PriceTable {
    /// A table with no prices: every model is unpriced.
    pub fn empty() -> Self {
        Self { models: HashMap::new(), sources: Vec::new() }
    }

    /// The built-in table, parsed once. The embedded file is checked by a unit test; were it
    /// ever unreadable, the table would be empty (every model unpriced, never a wrong price)
    /// and the error logged.
    pub fn builtin() -> &'static PriceTable {
        static BUILTIN: OnceLock<PriceTable> = OnceLock::new();
        BUILTIN.get_or_init(|| match PriceFile::parse(BUILTIN_PRICES_TOML, "built-in") {
            Ok(file) => {
                let mut table = Self::empty();
                table.extend(file, "built-in");
                table
            }
            Err(e) => {
                tracing::error!(error = %e, "the built-in price table is unreadable: every model is unpriced");
                Self::empty()
            }
        })
    }

    /// The built-in table extended by the operator's prices file at `path` (or replaced by it,
    /// when the file says `replace_builtin = true`). An entry of the file replaces the
    /// built-in entry of the same model and `effective_from`, and adds to it otherwise.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on `prices_file`, naming the file and what is wrong (with
    /// the line and column where the fault is in the text): unreadable, larger than
    /// [`MAX_PRICES_FILE_BYTES`], not TOML, an unknown key, a price that is not a decimal
    /// string, a duplicate entry, more than [`MAX_PRICE_ENTRIES`] entries.
    pub fn load(path: &Path) -> Result<Self> {
        let origin = path.display().to_string();
        let text = read_limited(path, &origin)?;
        let file = PriceFile::parse(&text, &origin)?;
        let mut table = if file.replace_builtin { Self::empty() } else { Self::default() };
        table.extend(file, &origin);
        Ok(table)
    }

    /// Adds a file's entries: each replaces the entry of the same model and
    /// `effective_from`, and adds to the model's prices otherwise.
    pub fn extend(&mut self, file: PriceFile, origin: &str) {
        self.sources.push(PriceSource {
            origin: origin.to_string(),
            source: file.source,
            checked: file.checked,
            entries: file.entries.len(),
        });
        for (model, dated) in file.entries {
            self.insert(model, dated);
        }
    }

    /// Sets one model's price for all time, replacing every price it had.
    pub fn set(&mut self, model: impl Into<String>, price: ModelPrice) -> &mut Self {
        self.models
            .insert(model.into(), vec![DatedPrice { effective_from: DateTime::<Utc>::MIN_UTC, price }]);
        self
    }

    /// Adds a price of `model` that applies from `effective_from` (replacing the one that
    /// started at that same instant, if any).
    pub fn set_from(
        &mut self,
        model: impl Into<String>,
        effective_from: DateTime<Utc>,
        price: ModelPrice,
    ) -> &mut Self {
        self.insert(model.into(), DatedPrice { effective_from, price });
        self
    }

    fn insert(&mut self, model: String, dated: DatedPrice) {
        let prices = self.models.entry(model).or_default();
        match prices.binary_search_by(|p| p.effective_from.cmp(&dated.effective_from)) {
            Ok(i) => prices[i] = dated,
            Err(i) => prices.insert(i, dated),
        }
    }

    /// The price of `model` in effect at `at`: the latest one whose `effective_from` is not
    /// after `at`. By exact name only: a dated snapshot (`gpt-4o-2024-05-13`) has its own
    /// prices or none, never its alias's. `None` before the model's first price.
    pub fn price(&self, model: &str, at: DateTime<Utc>) -> Option<&ModelPrice> {
        let prices = self.models.get(model)?;
        let after = prices.partition_point(|p| p.effective_from <= at);
        after.checked_sub(1).map(|i| &prices[i].price)
    }

    /// Every price of `model`, oldest first (empty when unknown).
    pub fn prices(&self, model: &str) -> &[DatedPrice] {
        self.models.get(model).map_or(&[], Vec::as_slice)
    }

    /// The cost of `usage` on `model` at the price in effect at `at`; `None` when the model
    /// has no price then.
    pub fn cost(&self, model: &str, usage: &TokenUsage, at: DateTime<Utc>) -> Option<Decimal> {
        self.price(model, at).and_then(|p| p.cost(usage))
    }

    /// Where the table's prices come from, in the order they were added.
    pub fn sources(&self) -> &[PriceSource] {
        &self.sources
    }

    /// How many models have at least one price.
    pub fn model_count(&self) -> usize {
        self.models.len()
    }
}

/// Reads a prices file of at most [`MAX_PRICES_FILE_BYTES`].
fn read_limited(path: &Path, origin: &str) -> Result<String> {
    let bad = |message: String| Error::invalid_argument(FIELD, format!("{origin}: {message}"));
    let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_PRICES_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_PRICES_FILE_BYTES {
        return Err(bad(format!("larger than {MAX_PRICES_FILE_BYTES} bytes")));
    }
    String::from_utf8(bytes)
        .map_err(|e| bad(format!("not UTF-8 text (at byte {})", e.utf8_error().valid_up_to())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    source: Option<String>,
    checked: Option<Spanned<toml::Value>>,
    #[serde(default)]
    replace_builtin: bool,
    #[serde(default)]
    prices: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    model: Spanned<String>,
    effective_from: Spanned<toml::Value>,
    input_per_mtok: Spanned<String>,
    output_per_mtok: Spanned<String>,
    cached_input_per_mtok: Option<Spanned<String>>,
}

impl PriceFile {
    /// Parses and checks a prices file's text; `origin` (a path, `built-in`) names it in
    /// errors.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on `prices_file`, as [`PriceTable::load`] describes.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let bad = |message: String| Error::invalid_argument(FIELD, format!("{origin}: {message}"));
        let at = |span: std::ops::Range<usize>, message: String| {
            let (line, column) = line_column(text, span.start);
            bad(format!("line {line}, column {column}: {message}"))
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| bad(e.to_string().trim_end().to_string()))?;
        if raw.prices.len() > MAX_PRICE_ENTRIES {
            return Err(bad(format!("{} entries; at most {MAX_PRICE_ENTRIES}", raw.prices.len())));
        }
        let checked = match raw.checked {
            None => None,
            Some(c) => match instant(c.get_ref()) {
                Some((t, true)) => Some(t.date_naive()),
                _ => return Err(at(c.span(), "checked: must be a date (2026-11-30)".to_string())),
            },
        };
        let mut entries = Vec::with_capacity(raw.prices.len());
        let mut seen: HashMap<(String, DateTime<Utc>), usize> = HashMap::new();
        for e in raw.prices {
            let model = e.model.get_ref().clone();
            if model.trim().is_empty()
                || model.chars().count() > MAX_MODEL_NAME_CHARS
                || model.chars().any(char::is_control)
            {
                return Err(at(
                    e.model.span(),
                    format!(
                        "model: must be 1 to {MAX_MODEL_NAME_CHARS} characters, without control characters"
                    ),
                ));
            }
            let effective_from = instant(e.effective_from.get_ref()).map(|(t, _)| t).ok_or_else(|| {
                at(
                    e.effective_from.span(),
                    "effective_from: must be a date (2026-12-01, 00:00 UTC) or a date-time with an offset \
                     (2026-12-01T09:00:00Z)"
                        .to_string(),
                )
            })?;
            let line = line_column(text, e.model.span().start).0;
            if let Some(first) = seen.insert((model.clone(), effective_from), line) {
                return Err(at(
                    e.model.span(),
                    format!(
                        "model {model:?} already has a price effective from {effective_from} (line {first})"
                    ),
                ));
            }
            let input =
                amount(&e.input_per_mtok, "input_per_mtok").map_err(|m| at(e.input_per_mtok.span(), m))?;
            let output =
                amount(&e.output_per_mtok, "output_per_mtok").map_err(|m| at(e.output_per_mtok.span(), m))?;
            let cached = match &e.cached_input_per_mtok {
                None => None,
                Some(c) => Some(amount(c, "cached_input_per_mtok").map_err(|m| at(c.span(), m))?),
            };
            let price =
                ModelPrice { input_per_mtok: input, output_per_mtok: output, cached_input_per_mtok: cached };
            entries.push((model, DatedPrice { effective_from, price }));
        }
        let source = raw.source.filter(|s| !s.trim().is_empty());
        Ok(Self { source, checked, replace_builtin: raw.replace_builtin, entries })
    }
}

/// A price in USD per 1M tokens: a decimal string (digits, optionally one point), 0 to [`MAX_PRICE_PER_MTOK`], at most
/// [`MAX_PRICE_DECIMALS`] decimal places.
fn amount(text: &Spanned<String>, field: &str) -> std::result::Result<Decimal, String> {
    let s = text.get_ref().trim();
    let shown: String = s.chars().take(40).collect();
    let wrong = || {
        format!(
            "{field}: {shown:?} is not a price; write USD per 1M tokens as a decimal string such as \"2.50\" \
             (0 to {MAX_PRICE_PER_MTOK}, at most {MAX_PRICE_DECIMALS} decimal places)"
        )
    };
    // Digits with at most one point inside: no sign, exponent or separator.
    let plain = s.split('.').count() <= 2
        && s.chars().all(|c| c.is_ascii_digit() || c == '.')
        && s.starts_with(|c: char| c.is_ascii_digit())
        && s.ends_with(|c: char| c.is_ascii_digit());
    if !plain {
        return Err(wrong());
    }
    let d = Decimal::from_str(s).map_err(|_| wrong())?;
    if d.is_sign_negative() || d > MAX_PRICE_PER_MTOK || d.normalize().scale() > MAX_PRICE_DECIMALS {
        return Err(wrong());
    }
    Ok(d)
}

/// The instant of a TOML date (00:00 UTC; `true`) or offset date-time (`false`), also when
/// written as a string. A local date-time or a bare time has no instant: `None`.
fn instant(value: &toml::Value) -> Option<(DateTime<Utc>, bool)> {
    let dt = match value {
        toml::Value::Datetime(d) => *d,
        toml::Value::String(s) => toml::value::Datetime::from_str(s.trim()).ok()?,
        _ => return None,
    };
    match (dt.date, dt.time, dt.offset) {
        (Some(d), None, None) => {
            let date = NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))?;
            Some((date.and_hms_opt(0, 0, 0)?.and_utc(), true))
        }
        (Some(_), Some(_), Some(_)) => {
            DateTime::parse_from_rfc3339(&dt.to_string()).ok().map(|t| (t.with_timezone(&Utc), false))
        }
        _ => None,
    }
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests;
