//! Model prices and cost computation. INTERIM: lands with the engine work.

use std::collections::HashMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// USD per million tokens for one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelPrice {
    pub input_per_mtok: Decimal,
    pub output_per_mtok: Decimal,
    /// Price of cached input tokens; the input price when `None`.
    pub cached_input_per_mtok: Option<Decimal>,
}

/// Prices by model name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    pub models: HashMap<String, ModelPrice>,
}
