//! JSON inputs as minijinja values, built directly (no serde round trip) and bounded in depth.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::variables::MAX_JSON_DEPTH;

/// A JSON object as a minijinja map: entries sorted by key (serde_json's map is ordered),
/// looked up by binary search. Built in one pass without an intermediate map; keys of up to
/// minijinja's small-string size are stored inline, without an allocation.
#[derive(Debug)]
struct JsonObject {
    entries: Vec<(minijinja::Value, minijinja::Value)>,
}

impl JsonObject {
    fn find(&self, key: &str) -> Option<minijinja::Value> {
        self.entries
            .binary_search_by(|(k, _)| k.as_str().unwrap_or_default().cmp(key))
            .ok()
            .and_then(|i| self.entries.get(i))
            .map(|(_, v)| v.clone())
    }
}

impl minijinja::value::Object for JsonObject {
    fn repr(self: &std::sync::Arc<Self>) -> minijinja::value::ObjectRepr {
        minijinja::value::ObjectRepr::Map
    }

    fn get_value(self: &std::sync::Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        self.find(key.as_str()?)
    }

    fn get_value_by_str(self: &std::sync::Arc<Self>, key: &str) -> Option<minijinja::Value> {
        self.find(key)
    }

    fn enumerate(self: &std::sync::Arc<Self>) -> minijinja::value::Enumerator {
        use minijinja::value::ObjectExt;
        self.mapped_enumerator(|this| Box::new(this.entries.iter().map(|(k, _)| k.clone())))
    }

    fn enumerator_len(self: &std::sync::Arc<Self>) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// Builds the render context from inputs without a serde round-trip.
pub(super) fn context(inputs: &Map<String, Value>) -> Result<minijinja::Value> {
    object_value(inputs, 0)
}

/// `child_depth` is the nesting depth of the object's values.
fn object_value(obj: &Map<String, Value>, child_depth: usize) -> Result<minijinja::Value> {
    let mut entries = Vec::with_capacity(obj.len());
    for (k, item) in obj {
        entries.push((minijinja::Value::from(k.as_str()), to_value(item, child_depth)?));
    }
    // serde_json's map iterates in key order unless its `preserve_order` feature is on.
    if !entries.is_sorted_by(|(a, _), (b, _)| a.as_str() <= b.as_str()) {
        entries.sort_by(|(a, _), (b, _)| a.as_str().cmp(&b.as_str()));
    }
    Ok(minijinja::Value::from_object(JsonObject { entries }))
}

fn to_value(v: &Value, depth: usize) -> Result<minijinja::Value> {
    if depth > MAX_JSON_DEPTH {
        return Err(Error::Render {
            message: format!("an input is nested deeper than {MAX_JSON_DEPTH} levels"),
        });
    }
    Ok(match v {
        Value::Null => minijinja::Value::from(()),
        Value::Bool(b) => minijinja::Value::from(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                minijinja::Value::from(i)
            } else if let Some(u) = n.as_u64() {
                minijinja::Value::from(u)
            } else {
                minijinja::Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => minijinja::Value::from(s.as_str()),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(to_value(item, depth + 1)?);
            }
            minijinja::Value::from(out)
        }
        Value::Object(obj) => object_value(obj, depth + 1)?,
    })
}
