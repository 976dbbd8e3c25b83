//! Model prices and cost computation.
//!
//! Prices are USD per million tokens. Cost is computed in decimal arithmetic: cached input
//! tokens at the cached price, the rest of the input at the input price, output at the output
//! price. A model missing from the table is *unpriced*: [`PriceTable::cost`] answers `None`,
//! never a silent 0.

use std::collections::HashMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::execution::TokenUsage;

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
    /// A price in thousandths of a dollar per million tokens (`150` = $0.150), exact.
    fn milli(input: i64, output: i64, cached: i64) -> Self {
        Self {
            input_per_mtok: Decimal::new(input, 3),
            output_per_mtok: Decimal::new(output, 3),
            cached_input_per_mtok: Some(Decimal::new(cached, 3)),
        }
    }

    /// The cost of `usage` at this price.
    pub fn cost(&self, usage: &TokenUsage) -> Decimal {
        let cached = usage.cached.min(usage.input);
        let uncached = usage.input - cached;
        let cached_price = self.cached_input_per_mtok.unwrap_or(self.input_per_mtok);
        let total = Decimal::from(uncached) * self.input_per_mtok
            + Decimal::from(cached) * cached_price
            + Decimal::from(usage.output) * self.output_per_mtok;
        (total / Decimal::from(1_000_000u32)).normalize()
    }
}

/// Prices by model name.
///
/// [`PriceTable::default`] holds the published prices of common OpenAI models (USD per 1M
/// tokens, standard tier) and the mock provider's model `mock` at an explicit 0. Override or
/// extend with [`PriceTable::set`]; start from nothing with [`PriceTable::empty`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    /// The price of each model, by the model name as requested or reported.
    pub models: HashMap<String, ModelPrice>,
}

/// (model, input, output, cached input), thousandths of USD per 1M tokens.
const DEFAULT_PRICES: &[(&str, i64, i64, i64)] = &[
    ("gpt-4o-mini", 150, 600, 75),
    ("gpt-4o", 2_500, 10_000, 1_250),
    ("gpt-4.1", 2_000, 8_000, 500),
    ("gpt-4.1-mini", 400, 1_600, 100),
    ("gpt-4.1-nano", 100, 400, 25),
    ("o3", 2_000, 8_000, 500),
    ("o3-mini", 1_100, 4_400, 550),
    ("o4-mini", 1_100, 4_400, 275),
    ("mock", 0, 0, 0),
];

impl Default for PriceTable {
    fn default() -> Self {
        let models = DEFAULT_PRICES
            .iter()
            .map(|&(name, i, o, c)| (name.to_string(), ModelPrice::milli(i, o, c)))
            .collect();
        Self { models }
    }
}

impl PriceTable {
    /// A table with no prices: every model is unpriced.
    pub fn empty() -> Self {
        Self { models: HashMap::new() }
    }

    /// Sets (or replaces) one model's price.
    pub fn set(&mut self, model: impl Into<String>, price: ModelPrice) -> &mut Self {
        self.models.insert(model.into(), price);
        self
    }

    /// The price of `model`: an exact match, else the model without a dated snapshot suffix
    /// (`gpt-4o-mini-2024-07-18` is priced as `gpt-4o-mini`).
    pub fn price(&self, model: &str) -> Option<&ModelPrice> {
        self.models.get(model).or_else(|| strip_snapshot_date(model).and_then(|base| self.models.get(base)))
    }

    /// The cost of `usage` on `model`; `None` when the model is unpriced.
    pub fn cost(&self, model: &str, usage: &TokenUsage) -> Option<Decimal> {
        self.price(model).map(|p| p.cost(usage))
    }
}

/// `name-YYYY-MM-DD` -> `name`.
fn strip_snapshot_date(model: &str) -> Option<&str> {
    let (base, date) = model.len().checked_sub(11).map(|i| model.split_at(i))?;
    let date = date.strip_prefix('-')?;
    let b = date.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() });
    (shape && !base.is_empty()).then_some(base)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn usage(input: u64, output: u64, cached: u64) -> TokenUsage {
        TokenUsage { input, output, cached, reasoning: 0, total: input + output, estimated: false }
    }

    #[test]
    fn gpt_4o_mini_cost_is_exact() {
        let t = PriceTable::default();
        // 1000 input of which 400 cached, 500 output:
        // 600 * 0.15 + 400 * 0.075 + 500 * 0.60 = 90 + 30 + 300 = 420 per 1M -> 0.00042
        let c = t.cost("gpt-4o-mini", &usage(1000, 500, 400));
        assert_eq!(c, Some(Decimal::from_str("0.00042").unwrap()));
    }

    #[test]
    fn gpt_4o_one_million_each() {
        let t = PriceTable::default();
        let c = t.cost("gpt-4o", &usage(1_000_000, 1_000_000, 0));
        assert_eq!(c, Some(Decimal::from_str("12.5").unwrap()));
    }

    #[test]
    fn unknown_model_is_unpriced_and_mock_is_zero() {
        let t = PriceTable::default();
        assert_eq!(t.cost("my-local-llama", &usage(10, 10, 0)), None);
        assert_eq!(t.cost("mock", &usage(10, 10, 0)), Some(Decimal::ZERO));
        assert_eq!(PriceTable::empty().cost("gpt-4o", &usage(1, 1, 0)), None);
    }

    #[test]
    fn snapshot_suffix_is_priced_as_base_model() {
        let t = PriceTable::default();
        assert_eq!(t.price("gpt-4o-mini-2024-07-18"), t.price("gpt-4o-mini"));
        assert_eq!(t.price("gpt-4o-mini-2024-07-1x"), None);
        assert_eq!(t.price("-2024-07-18"), None);
    }

    #[test]
    fn cached_beyond_input_is_capped_and_override_applies() {
        let mut t = PriceTable::default();
        t.set(
            "gpt-4o",
            ModelPrice {
                input_per_mtok: Decimal::ONE,
                output_per_mtok: Decimal::ONE,
                cached_input_per_mtok: None,
            },
        );
        // cached > input: all input at the (input) price, no negative count.
        assert_eq!(t.cost("gpt-4o", &usage(1_000_000, 0, 5_000_000)), Some(Decimal::ONE));
    }
}
