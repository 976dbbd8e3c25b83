//! The sandbox around minijinja: the places where minijinja 3.1 builds text from a container
//! (or walks one) before charging fuel are replaced by filters that check the size, depth and
//! indentation of the result first.

use crate::variables::MAX_JSON_DEPTH;

/// Deepest nesting of lists and maps a render may turn into text (`{{ value }}`, `tojson`,
/// `string`, `pprint`, ...): inputs nest at most [`MAX_JSON_DEPTH`] levels, a template may
/// wrap them in a few more. Formatting recurses once per level, so this bounds its stack.
pub const MAX_VALUE_DEPTH: usize = 2 * MAX_JSON_DEPTH;

/// Most items [`ensure_formattable`] visits in one value.
const MAX_VISITED_ITEMS: usize = 100_000;

/// Closes the places where minijinja 3.1 builds text from a container (or walks a container)
/// before charging fuel for it: `{{ list }}` output and the `string`, `tojson`, `pprint`,
/// `join`, `sum`, `min` and `max` filters check the value's size first; `format`, `chain` and
/// `debug` are removed.
pub(super) fn harden(env: &mut minijinja::Environment<'static>, max_bytes: usize) {
    use minijinja::value::{Kwargs, ValueKind};
    use minijinja::{State, Value as V};

    env.remove_global("debug");
    env.remove_filter("format");
    env.remove_filter("chain");
    // Printed values are spelled as JSON (the inputs' own language), not as Python: `null`,
    // `true` / `false`, and valid JSON for lists and maps. Filters still see the real values.
    env.set_formatter(move |out, state, value| {
        if value.as_object().is_some() {
            ensure_formattable(value, max_bytes)?;
        }
        match value.kind() {
            ValueKind::None => out.write_str("null")?,
            ValueKind::Bool => out.write_str(if value.is_true() { "true" } else { "false" })?,
            ValueKind::Seq | ValueKind::Map => {
                let json = serde_json::to_string(value).map_err(|e| {
                    minijinja::Error::new(minijinja::ErrorKind::BadSerialization, e.to_string())
                })?;
                state.consume_fuel(fuel_for(json.len()))?;
                out.write_str(&json)?;
            }
            _ => minijinja::escape_formatter(out, state, value)?,
        }
        Ok(())
    });
    env.add_filter("string", move |state: &State, value: V| {
        ensure_formattable(&value, max_bytes)?;
        minijinja::filters::string(state, &value)
    });
    // Pretty-printing multiplies the text by its indentation: the bound is checked before
    // anything is built, and the result is charged fuel like minijinja's own filters.
    env.add_filter("tojson", move |state: &State, value: V, indent: Option<V>, kwargs: Kwargs| {
        let size = ensure_formattable(&value, max_bytes)?;
        let width = tojson_indent(indent.as_ref(), &kwargs)?;
        if width > 0 && size.pretty(width) > max_bytes {
            return Err(too_big_or(&format!(
                "tojson with indent {width} would build more than {max_bytes} bytes"
            )));
        }
        let out = minijinja::filters::tojson(&value, indent, kwargs)?;
        state.consume_fuel(fuel_for(out.as_str().map_or(0, str::len)))?;
        Ok(out)
    });
    env.add_filter("pprint", move |state: &State, value: V| {
        let size = ensure_formattable(&value, max_bytes)?;
        if size.pretty(PPRINT_INDENT) > max_bytes {
            return Err(too_big_or(&format!("pprint would build more than {max_bytes} bytes")));
        }
        let out = minijinja::filters::pprint(&value);
        state.consume_fuel(fuel_for(out.len()))?;
        Ok::<_, minijinja::Error>(out)
    });
    env.add_filter("min", move |state: &State, value: V, kwargs: Kwargs| {
        ensure_formattable(&value, max_bytes)?;
        minijinja::filters::min(state, value, kwargs)
    });
    env.add_filter("max", move |state: &State, value: V, kwargs: Kwargs| {
        ensure_formattable(&value, max_bytes)?;
        minijinja::filters::max(state, value, kwargs)
    });
    env.add_filter("join", move |value: V, joiner: Option<&str>, kwargs: Kwargs| {
        let attribute: Option<String> = kwargs.get("attribute")?;
        kwargs.assert_all_used()?;
        bounded_join(&value, joiner.unwrap_or(""), attribute.as_deref(), max_bytes)
    });
    env.add_filter("sum", move |value: V, kwargs: Kwargs| {
        let start: Option<V> = kwargs.get("start")?;
        kwargs.assert_all_used()?;
        let start = start.unwrap_or_else(|| V::from(0));
        let mut int_total: Option<i64> = if start.is_integer() { start.as_i64() } else { None };
        let mut float_total = f64::try_from(start).map_err(|_| too_big_or("sum only adds numbers"))?;
        for (i, item) in value.try_iter()?.enumerate() {
            if i >= MAX_VISITED_ITEMS {
                return Err(too_big_or("sum: too many items"));
            }
            if !matches!(item.kind(), ValueKind::Number) {
                return Err(too_big_or("sum only adds numbers"));
            }
            int_total = match (int_total, item.as_i64()) {
                (Some(a), Some(b)) if item.is_integer() => a.checked_add(b),
                _ => None,
            };
            float_total += f64::try_from(item).map_err(|_| too_big_or("sum only adds numbers"))?;
        }
        Ok(match int_total {
            Some(i) => V::from(i),
            None => V::from(float_total),
        })
    });
}

/// Indentation of `pprint` (Rust's pretty `Debug` form) per nesting level.
const PPRINT_INDENT: usize = 4;

/// Fuel for `bytes` bytes of built text (minijinja charges one fuel per 64 bytes).
fn fuel_for(bytes: usize) -> u64 {
    u64::try_from(bytes / 64).unwrap_or(u64::MAX)
}

fn too_big_or(message: &str) -> minijinja::Error {
    minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message.to_string())
}

/// What [`ensure_formattable`] found out about a value's text form.
#[derive(Debug, Clone, Copy)]
struct FormatSize {
    /// Approximate length of the compact text form, in bytes.
    bytes: usize,
    /// Items, map keys and values visited (each may start a line when pretty-printed).
    items: usize,
    /// Deepest nesting of lists and maps.
    depth: usize,
}

impl FormatSize {
    /// Upper bound of the pretty-printed form when every item starts a new line indented by
    /// `indent` bytes per nesting level.
    fn pretty(self, indent: usize) -> usize {
        let per_line = indent.saturating_mul(self.depth.saturating_add(1)).saturating_add(1);
        self.bytes.saturating_add(self.items.saturating_add(1).saturating_mul(per_line))
    }
}

/// Fails unless `value` formats to at most about `max_bytes` bytes and nests at most
/// [`MAX_VALUE_DEPTH`] levels, visiting at most [`MAX_VISITED_ITEMS`] items (lazy sequences
/// are only pulled that far). Iterative: a deep value cannot exhaust the stack here.
fn ensure_formattable(
    value: &minijinja::Value,
    max_bytes: usize,
) -> std::result::Result<FormatSize, minijinja::Error> {
    use minijinja::value::ValueKind;
    let too_big = || {
        too_big_or(&format!(
            "value is too large to turn into text (limit {max_bytes} bytes, {MAX_VISITED_ITEMS} items)"
        ))
    };
    let mut stack = vec![(value.clone(), 0usize)];
    let mut size = FormatSize { bytes: 0, items: 1, depth: 0 };
    while let Some((v, depth)) = stack.pop() {
        match v.kind() {
            ValueKind::String => size.bytes = size.bytes.saturating_add(v.as_str().map_or(0, str::len) + 2),
            ValueKind::Bytes => {
                size.bytes = size.bytes.saturating_add(v.as_bytes().map_or(0, <[u8]>::len).saturating_mul(4))
            }
            ValueKind::Seq | ValueKind::Iterable | ValueKind::Map => {
                if depth >= MAX_VALUE_DEPTH {
                    return Err(too_big_or(&format!(
                        "value is nested more than {MAX_VALUE_DEPTH} levels deep to turn into text"
                    )));
                }
                size.depth = size.depth.max(depth + 1);
                size.bytes = size.bytes.saturating_add(2);
                let is_map = v.kind() == ValueKind::Map;
                for item in v.try_iter()? {
                    size.items += if is_map { 2 } else { 1 };
                    if size.items > MAX_VISITED_ITEMS {
                        return Err(too_big());
                    }
                    if is_map {
                        let val = v.get_item(&item)?;
                        stack.push((val, depth + 1));
                    }
                    stack.push((item, depth + 1));
                }
            }
            _ => size.bytes = size.bytes.saturating_add(24),
        }
        if size.bytes > max_bytes {
            return Err(too_big());
        }
    }
    Ok(size)
}

/// The indentation `tojson` pretty-prints with (its `indent` argument, positional or
/// keyword: `true` is 2, `false` or none is compact).
fn tojson_indent(
    indent: Option<&minijinja::Value>,
    kwargs: &minijinja::value::Kwargs,
) -> std::result::Result<usize, minijinja::Error> {
    let indent = match indent {
        Some(v) => Some(v.clone()),
        None => kwargs.peek::<Option<minijinja::Value>>("indent")?,
    };
    Ok(match indent {
        None => 0,
        Some(v) if v.kind() == minijinja::value::ValueKind::Bool && v.is_true() => 2,
        Some(v) if v.kind() == minijinja::value::ValueKind::Bool => 0,
        Some(v) => usize::try_from(v)?,
    })
}

/// `join` that stops as soon as the result would exceed `max_bytes` or visit too many items.
fn bounded_join(
    value: &minijinja::Value,
    joiner: &str,
    attribute: Option<&str>,
    max_bytes: usize,
) -> std::result::Result<minijinja::Value, minijinja::Error> {
    use std::fmt::Write;
    let too_big = || too_big_or(&format!("join result is larger than {max_bytes} bytes"));
    if let Some(s) = value.as_str() {
        // Joining a string joins its characters.
        let n = s.chars().count();
        if s.len().saturating_add(joiner.len().saturating_mul(n)) > max_bytes {
            return Err(too_big());
        }
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 {
                out.push_str(joiner);
            }
            out.push(c);
        }
        return Ok(minijinja::Value::from(out));
    }
    let mut out = String::new();
    for (i, item) in value.try_iter()?.enumerate() {
        if i >= MAX_VISITED_ITEMS {
            return Err(too_big());
        }
        let item = match attribute {
            Some(path) => {
                let mut v = item;
                for part in path.split('.') {
                    v = match part.parse::<i64>() {
                        Ok(idx) => v.get_item(&minijinja::Value::from(idx))?,
                        Err(_) => v.get_attr(part)?,
                    };
                }
                v
            }
            None => item,
        };
        if i > 0 {
            if out.len().saturating_add(joiner.len()) > max_bytes {
                return Err(too_big());
            }
            out.push_str(joiner);
        }
        match item.as_str() {
            Some(s) => {
                if out.len().saturating_add(s.len()) > max_bytes {
                    return Err(too_big());
                }
                out.push_str(s);
            }
            None => {
                if item.is_undefined() {
                    continue;
                }
                ensure_formattable(&item, max_bytes.saturating_sub(out.len()))?;
                write!(out, "{item}").map_err(|_| too_big())?;
            }
        }
    }
    Ok(minijinja::Value::from(out))
}
