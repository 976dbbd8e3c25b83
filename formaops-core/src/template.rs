//! Prompt templates on minijinja: compiled once per version, strict about undefined
//! variables, bounded in fuel, recursion and output size.
//!
//! # Limits ([`TemplateLimits`])
//!
//! - **Source size**: a template longer than `max_source_bytes` is rejected when saved.
//! - **Fuel**: minijinja charges fuel for every instruction *and* for every byte of data a
//!   template produces (strings built by `~`, `+`, `*`, filter results, captured `{% set %}`
//!   blocks and macro bodies, output) and every item a loop or filter visits; allocations of a
//!   known size are checked before they happen. One fuel pays for 64 bytes, so `fuel` bounds
//!   both the work and the memory of one render (the default, 100 000, allows about 6 MB of
//!   data in total). `{{ "x" * 1000000000 }}`, `range(10**9)` or a loop that doubles a string
//!   fail with "engine ran out of fuel" before allocating.
//! - **Recursion**: macro calls and nested blocks are limited to `max_recursion` levels.
//! - **Output**: a rendered message larger than `max_output_bytes` is an error.
//! - `range` is additionally limited by minijinja to 100 000 items, and string / list
//!   repetition to 100 MB before fuel is even considered.
//! - Turning a container into text happens in minijinja 3.1 *before* fuel is charged, so a
//!   few lazily built values (`[s] * 100000`, nested lists of references to one big input)
//!   could otherwise grow without bound. Here `{{ value }}` output and the `string`,
//!   `tojson`, `pprint`, `join`, `min` and `max` filters first check that the value would
//!   format to at most `max_output_bytes` (visiting at most 100 000 items); `sum` only adds
//!   numbers; `format`, `chain` and `debug` are not available.
//!
//! - **Unbounded operators** (code `unbounded`, rejected when the version is compiled): two
//!   minijinja 3.1 operators build data before fuel is charged and cannot be replaced through
//!   its API: list / tuple concatenation with `+` (lazy up to 32 levels, then materialised,
//!   so `{% set a = a + a %}` repeated builds 2^n items) and `~` with a container operand
//!   (formatted in full). A flow-insensitive check over the template's syntax tree (minijinja's
//!   `unstable_machinery` parser) gives every expression a kind: *scalar* (string, number,
//!   boolean: growth is charged fuel), *input* (a `json` input or a part or selection of one:
//!   bounded by the input limits) or *unknown* (anything the template may have built). `+` is
//!   rejected when neither operand is scalar and one is unknown; `~` when an operand is
//!   unknown. Every assignment anywhere counts (`set`, namespace attributes, loop targets,
//!   macro arguments), so doubling through a namespace, a loop or a chain of names is caught.
//!   Text concatenation of inputs, arithmetic (`ns.total = ns.total + item.n`), loops over
//!   inputs, macro output and string filters are unaffected; `items + more` of two `json`
//!   inputs is allowed once (its result is unknown).
//!
//! Undefined variables are errors ([`minijinja::UndefinedBehavior::Strict`]): an optional
//! variable that was not supplied must be guarded with `{% if name is defined %}` or
//! `name | default(...)`.
//!
//! # Declared variables
//!
//! [`CompiledPrompt::compile`] checks that every variable a template reads is declared
//! (`code: undeclared`, field `template` or `systemTemplate`); names the template defines
//! itself (`{% set %}`, loop variables, macros) and minijinja's global functions (`range`,
//! `dict`, `namespace`, ...) are not variables. [`check_version`] runs every check on a
//! version before it is saved and reports all problems at once.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::error::{Error, Problem, ProblemCode, Result};
use crate::prompt::PromptVersion;
use crate::provider::{Message, Role};
use crate::validation::CompiledRules;
use crate::variables::{InputLimits, InputValidator, VariableType, definition_problems};

/// Limits applied to every template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateLimits {
    /// Largest template source, in bytes.
    pub max_source_bytes: usize,
    /// Largest rendered output, in bytes.
    pub max_output_bytes: usize,
    /// minijinja fuel per render.
    pub fuel: u64,
    /// Deepest nesting of calls / includes.
    pub max_recursion: usize,
}

impl Default for TemplateLimits {
    fn default() -> Self {
        Self { max_source_bytes: 64 * 1024, max_output_bytes: 256 * 1024, fuel: 100_000, max_recursion: 32 }
    }
}

/// A version's templates (user and optional system), compiled once and reusable from many
/// threads.
#[derive(Debug)]
pub struct CompiledPrompt {
    env: minijinja::Environment<'static>,
    has_system: bool,
    max_output_bytes: usize,
    inputs: InputValidator,
}

const USER: &str = "user";
const SYSTEM: &str = "system";

/// Most `unbounded` problems reported per template.
const MAX_GROWTH_PROBLEMS: usize = 20;

/// Deepest nesting of arrays/objects converted into a render context.
const MAX_CONTEXT_DEPTH: usize = 64;

fn render_error(which: &str, e: &minijinja::Error) -> Error {
    let message = match e.kind() {
        minijinja::ErrorKind::OutOfFuel => {
            "the template does too much work or builds too much text (fuel exhausted)".to_string()
        }
        _ => e.to_string(),
    };
    match e.line() {
        Some(line) => Error::Render { message: format!("{which} template, line {line}: {message}") },
        None => Error::Render { message: format!("{which} template: {message}") },
    }
}

impl CompiledPrompt {
    /// Compiles a version's templates and checks them against its declared variables.
    /// Errors: [`crate::Error::InvalidPrompt`] naming each problem.
    pub fn compile(version: &PromptVersion, limits: &TemplateLimits) -> Result<Self> {
        let (compiled, problems) = Self::compile_all(version, limits);
        match compiled {
            Some(c) if problems.is_empty() => Ok(c),
            _ => Err(Error::InvalidPrompt { problems }),
        }
    }

    /// Compiles and lists every template problem (syntax, size, undeclared variables).
    fn compile_all(version: &PromptVersion, limits: &TemplateLimits) -> (Option<Self>, Vec<Problem>) {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_fuel(Some(limits.fuel));
        env.set_recursion_limit(limits.max_recursion);
        harden(&mut env, limits.max_output_bytes);
        // No loader: `include` / `extends` / `import` of other templates cannot resolve.
        let declared: HashMap<String, growth::Kind> = version
            .variables
            .iter()
            .map(|d| {
                let kind = match d.kind {
                    VariableType::Json => growth::Kind::Input,
                    _ => growth::Kind::Scalar,
                };
                (d.name.clone(), kind)
            })
            .collect();
        let mut problems = Vec::new();
        let mut ok = true;
        let sources = [
            (USER, "template", Some(&version.template)),
            (SYSTEM, "systemTemplate", version.system_template.as_ref()),
        ];
        for (name, field, source) in sources {
            let Some(source) = source else { continue };
            if source.len() > limits.max_source_bytes {
                ok = false;
                problems.push(Problem::new(
                    field,
                    ProblemCode::TooLarge,
                    format!(
                        "template is {} bytes, at most {} allowed",
                        source.len(),
                        limits.max_source_bytes
                    ),
                ));
                continue;
            }
            if let Err(e) = env.add_template_owned(name, source.clone()) {
                ok = false;
                problems.push(Problem::new(field, ProblemCode::Syntax, e.to_string()));
                continue;
            }
            let Ok(template) = env.get_template(name) else {
                ok = false;
                problems.push(Problem::new(field, ProblemCode::Syntax, "template could not be loaded"));
                continue;
            };
            let found = growth::check(source, &declared);
            for f in found.iter().take(MAX_GROWTH_PROBLEMS) {
                problems.push(Problem::new(
                    field,
                    ProblemCode::Unbounded,
                    format!("line {}: {}", f.line, f.message),
                ));
            }
            let mut undeclared: Vec<String> = template
                .undeclared_variables(false)
                .into_iter()
                .filter(|v| !version.variables.iter().any(|d| d.name == *v))
                .filter(|v| env.globals().all(|(g, _)| g != v))
                .collect();
            undeclared.sort();
            for v in undeclared {
                problems.push(Problem::new(
                    field,
                    ProblemCode::Undeclared,
                    format!("the template uses variable {v:?}, which is not declared"),
                ));
            }
        }
        let compiled = ok.then(|| Self {
            env,
            has_system: version.system_template.is_some(),
            max_output_bytes: limits.max_output_bytes,
            inputs: InputValidator::new(&version.variables),
        });
        (compiled, problems)
    }

    /// Validates raw inputs against the version's variables, exactly like
    /// [`crate::variables::validate_inputs`] but with the `json` variables' schemas compiled
    /// once, when the prompt was compiled.
    pub fn validate_inputs(
        &self,
        inputs: &Map<String, Value>,
        limits: &InputLimits,
    ) -> Result<Map<String, Value>> {
        self.inputs.validate(inputs, limits)
    }

    /// Renders the messages (system first when present, then user) from validated inputs.
    /// Errors: [`crate::Error::Render`].
    pub fn render(&self, inputs: &Map<String, Value>) -> Result<Vec<Message>> {
        let ctx = context(inputs)?;
        let mut messages = Vec::with_capacity(2);
        if self.has_system {
            messages.push(Message { role: Role::System, content: self.render_one(SYSTEM, "system", &ctx)? });
        }
        messages.push(Message { role: Role::User, content: self.render_one(USER, "user", &ctx)? });
        Ok(messages)
    }

    fn render_one(&self, name: &str, which: &str, ctx: &minijinja::Value) -> Result<String> {
        let t = self.env.get_template(name).map_err(|e| render_error(which, &e))?;
        let out = t.render(ctx).map_err(|e| render_error(which, &e))?;
        if out.len() > self.max_output_bytes {
            return Err(Error::Render {
                message: format!(
                    "{which} template: rendered output is {} bytes, more than the {}-byte limit",
                    out.len(),
                    self.max_output_bytes
                ),
            });
        }
        Ok(out)
    }
}

/// Most items [`ensure_formattable`] visits in one value.
const MAX_VISITED_ITEMS: usize = 100_000;

/// Closes the places where minijinja 3.1 builds text from a container (or walks a container)
/// before charging fuel for it: `{{ list }}` output and the `string`, `tojson`, `pprint`,
/// `join`, `sum`, `min` and `max` filters check the value's size first; `format`, `chain` and
/// `debug` are removed.
fn harden(env: &mut minijinja::Environment<'static>, max_bytes: usize) {
    use minijinja::value::{Kwargs, ValueKind};
    use minijinja::{State, Value as V};

    env.remove_global("debug");
    env.remove_filter("format");
    env.remove_filter("chain");
    env.set_formatter(move |out, state, value| {
        if value.as_object().is_some() {
            ensure_formattable(value, max_bytes)?;
        }
        minijinja::escape_formatter(out, state, value)
    });
    env.add_filter("string", move |state: &State, value: V| {
        ensure_formattable(&value, max_bytes)?;
        minijinja::filters::string(state, &value)
    });
    env.add_filter("tojson", move |value: V, indent: Option<V>, kwargs: Kwargs| {
        ensure_formattable(&value, max_bytes)?;
        minijinja::filters::tojson(&value, indent, kwargs)
    });
    env.add_filter("pprint", move |value: V| {
        ensure_formattable(&value, max_bytes)?;
        Ok::<_, minijinja::Error>(minijinja::filters::pprint(&value))
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

fn too_big_or(message: &str) -> minijinja::Error {
    minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message.to_string())
}

/// Fails unless `value` formats to at most about `max_bytes` bytes, visiting at most
/// [`MAX_VISITED_ITEMS`] items (lazy sequences are only pulled that far).
fn ensure_formattable(
    value: &minijinja::Value,
    max_bytes: usize,
) -> std::result::Result<(), minijinja::Error> {
    use minijinja::value::ValueKind;
    let too_big = || {
        too_big_or(&format!(
            "value is too large to turn into text (limit {max_bytes} bytes, {MAX_VISITED_ITEMS} items)"
        ))
    };
    let mut stack = vec![value.clone()];
    let mut bytes = 0usize;
    let mut items = 1usize;
    while let Some(v) = stack.pop() {
        match v.kind() {
            ValueKind::String => bytes = bytes.saturating_add(v.as_str().map_or(0, str::len) + 2),
            ValueKind::Bytes => {
                bytes = bytes.saturating_add(v.as_bytes().map_or(0, <[u8]>::len).saturating_mul(4))
            }
            ValueKind::Seq | ValueKind::Iterable | ValueKind::Map => {
                bytes = bytes.saturating_add(2);
                let is_map = v.kind() == ValueKind::Map;
                for item in v.try_iter()? {
                    items += if is_map { 2 } else { 1 };
                    if items > MAX_VISITED_ITEMS {
                        return Err(too_big());
                    }
                    if is_map {
                        let val = v.get_item(&item)?;
                        stack.push(val);
                    }
                    stack.push(item);
                }
            }
            _ => bytes = bytes.saturating_add(24),
        }
        if bytes > max_bytes {
            return Err(too_big());
        }
    }
    Ok(())
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
fn context(inputs: &Map<String, Value>) -> Result<minijinja::Value> {
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
    if depth > MAX_CONTEXT_DEPTH {
        return Err(Error::Render {
            message: format!("an input is nested deeper than {MAX_CONTEXT_DEPTH} levels"),
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

/// Fully validates a version before it is saved: template sizes and syntax, variables used but
/// not declared, variable definitions (see [`crate::variables::check_definitions`]) and
/// output validation rules (see [`CompiledRules::compile`]).
///
/// Errors: one [`Error::InvalidPrompt`] listing every problem found.
pub fn check_version(
    version: &PromptVersion,
    template_limits: &TemplateLimits,
    input_limits: &InputLimits,
) -> Result<()> {
    let (_, mut problems) = CompiledPrompt::compile_all(version, template_limits);
    problems.extend(definition_problems(&version.variables, input_limits));
    let (_, rule_problems) = CompiledRules::compile_all(&version.validations);
    problems.extend(rule_problems);
    if problems.is_empty() { Ok(()) } else { Err(Error::InvalidPrompt { problems }) }
}

/// Compile-time check for the two ways a minijinja 3.1 template can build data without fuel
/// being charged first: list/tuple concatenation with `+` (lazy up to 32 levels, then
/// materialised item by item, so doubling builds 2^n items) and `~` with a container operand
/// (formatted in full before the result is charged).
///
/// The check infers, flow-insensitively (every assignment anywhere in the template counts),
/// a [`Kind`] for each expression and rejects `+` whose operands may both be containers
/// unless both come straight from inputs, and `~` whose operand may be a container that was
/// built inside the template.
mod growth {
    use std::collections::{HashMap, HashSet};

    use minijinja::machinery::ast::{BinOpKind, CallArg, Expr, Stmt};
    use minijinja::machinery::parse;
    use minijinja::syntax::SyntaxConfig;
    use minijinja::value::ValueKind;

    /// What an expression may evaluate to, from most to least known.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    pub(super) enum Kind {
        /// A string, number, boolean or none: growth of these is charged fuel.
        Scalar,
        /// A declared input or a part / selection of one: bounded by the input limits.
        Input,
        /// Anything, including a container the template built itself.
        Unknown,
    }

    /// Most passes of the fixpoint iteration (each pass that changes something raises at
    /// least one name's kind; a template this long-winded is rejected).
    const MAX_PASSES: usize = 256;

    /// Filters whose result is a string, number or boolean.
    const SCALAR_FILTERS: &[&str] = &[
        "abs",
        "bool",
        "capitalize",
        "center",
        "count",
        "e",
        "escape",
        "float",
        "indent",
        "int",
        "join",
        "length",
        "lower",
        "pprint",
        "replace",
        "round",
        "safe",
        "split_whitespace_count",
        "string",
        "striptags",
        "sum",
        "title",
        "tojson",
        "trim",
        "truncate",
        "upper",
        "urlencode",
        "wordcount",
    ];
    /// Filters that return items, or a reordering / selection, of their operand.
    const SELECTING_FILTERS: &[&str] = &[
        "dictsort",
        "first",
        "items",
        "last",
        "list",
        "max",
        "min",
        "reject",
        "rejectattr",
        "reverse",
        "select",
        "selectattr",
        "sort",
        "unique",
    ];
    /// Attributes of the `loop` variable that are numbers or booleans.
    const LOOP_SCALARS: &[&str] =
        &["index", "index0", "revindex", "revindex0", "first", "last", "length", "depth", "depth0"];

    /// A rejected operation: the template line and what is wrong.
    pub(super) struct Finding {
        pub(super) line: u16,
        pub(super) message: String,
    }

    struct Analysis<'s, 'd> {
        declared: &'d HashMap<String, Kind>,
        /// Kinds of names the template assigns (`set`, loop targets, macro arguments, ...).
        names: HashMap<&'s str, Kind>,
        /// Names assigned a `namespace(...)`, and names assigned anything else.
        namespaces: HashSet<&'s str>,
        other: HashSet<&'s str>,
        /// Kinds of namespace attributes, by attribute name (joined over all namespaces).
        attrs: HashMap<&'s str, Kind>,
        /// A namespace was built from something other than keyword arguments.
        opaque_namespace: bool,
        macros: HashSet<&'s str>,
        changed: bool,
        collect: bool,
        findings: Vec<Finding>,
    }

    /// Parses `source` and lists every unbounded operation. Syntax errors are left to the
    /// compiler (an empty list is returned).
    pub(super) fn check(source: &str, declared: &HashMap<String, Kind>) -> Vec<Finding> {
        let Ok(ast) = parse(source, "template", SyntaxConfig::default()) else { return Vec::new() };
        let mut a = Analysis {
            declared,
            names: HashMap::new(),
            namespaces: HashSet::new(),
            other: HashSet::new(),
            attrs: HashMap::new(),
            opaque_namespace: false,
            macros: HashSet::new(),
            changed: false,
            collect: false,
            findings: Vec::new(),
        };
        let mut converged = false;
        for _ in 0..MAX_PASSES {
            a.changed = false;
            a.stmt(&ast);
            if !a.changed {
                converged = true;
                break;
            }
        }
        if !converged {
            return vec![Finding {
                line: 1,
                message: "the template's assignments are too intricate to check for unbounded growth"
                    .to_string(),
            }];
        }
        a.collect = true;
        a.stmt(&ast);
        a.findings
    }

    fn raise<'s>(map: &mut HashMap<&'s str, Kind>, key: &'s str, kind: Kind, changed: &mut bool) {
        let entry = map.entry(key).or_insert_with(|| {
            *changed = true;
            kind
        });
        if kind > *entry {
            *entry = kind;
            *changed = true;
        }
    }

    fn is_call_to(e: &Expr<'_>, name: &str) -> bool {
        matches!(e, Expr::Call(c) if matches!(&c.expr, Expr::Var(v) if v.id == name))
    }

    impl<'s> Analysis<'s, '_> {
        fn stmts(&mut self, body: &[Stmt<'s>]) {
            for s in body {
                self.stmt(s);
            }
        }

        fn stmt(&mut self, s: &Stmt<'s>) {
            match s {
                Stmt::Template(t) => self.stmts(&t.children),
                Stmt::EmitExpr(e) => {
                    self.kind(&e.expr);
                }
                Stmt::EmitRaw(_) | Stmt::Continue(_) | Stmt::Break(_) => {}
                Stmt::ForLoop(f) => {
                    let iter = self.kind(&f.iter);
                    let item = if f.recursive {
                        // `loop(...)` may pass the next level anything.
                        Kind::Unknown
                    } else if is_call_to(&f.iter, "range") {
                        Kind::Scalar
                    } else {
                        iter
                    };
                    self.assign(&f.target, item);
                    if let Some(e) = &f.filter_expr {
                        self.kind(e);
                    }
                    self.stmts(&f.body);
                    self.stmts(&f.else_body);
                }
                Stmt::IfCond(i) => {
                    self.kind(&i.expr);
                    self.stmts(&i.true_body);
                    self.stmts(&i.false_body);
                }
                Stmt::WithBlock(w) => {
                    for (target, e) in &w.assignments {
                        let k = self.kind(e);
                        self.assign(target, k);
                    }
                    self.stmts(&w.body);
                }
                Stmt::Set(set) => {
                    if is_call_to(&set.expr, "namespace")
                        && let (Expr::Var(v), Expr::Call(c)) = (&set.target, &set.expr)
                    {
                        self.namespaces.insert(v.id);
                        for arg in &c.args {
                            match arg {
                                CallArg::Kwarg(name, e) => {
                                    let k = self.kind(e);
                                    raise(&mut self.attrs, name, k, &mut self.changed);
                                }
                                _ => self.opaque_namespace = true,
                            }
                        }
                        raise(&mut self.names, v.id, Kind::Unknown, &mut self.changed);
                    } else {
                        let k = self.kind(&set.expr);
                        self.assign(&set.target, k);
                    }
                }
                Stmt::SetBlock(b) => {
                    if let Some(f) = &b.filter {
                        self.kind(f);
                    }
                    self.stmts(&b.body);
                    self.assign(&b.target, Kind::Scalar);
                }
                Stmt::AutoEscape(a) => {
                    self.kind(&a.enabled);
                    self.stmts(&a.body);
                }
                Stmt::FilterBlock(f) => {
                    self.kind(&f.filter);
                    self.stmts(&f.body);
                }
                Stmt::Block(b) => self.stmts(&b.body),
                Stmt::Import(i) => {
                    self.kind(&i.expr);
                    self.assign(&i.name, Kind::Unknown);
                }
                Stmt::FromImport(i) => {
                    self.kind(&i.expr);
                    for (name, alias) in &i.names {
                        self.assign(alias.as_ref().unwrap_or(name), Kind::Unknown);
                    }
                }
                Stmt::Extends(e) => {
                    self.kind(&e.name);
                }
                Stmt::Include(i) => {
                    self.kind(&i.name);
                }
                Stmt::Macro(m) => {
                    self.macros.insert(m.name);
                    self.macro_decl(&m.args, &m.defaults, &m.body);
                }
                Stmt::CallBlock(c) => {
                    self.call_args(&c.call.args);
                    self.kind(&c.call.expr);
                    let m = &c.macro_decl;
                    self.macro_decl(&m.args, &m.defaults, &m.body);
                }
                Stmt::Do(d) => {
                    self.call_args(&d.call.args);
                    self.kind(&d.call.expr);
                }
            }
        }

        fn macro_decl(&mut self, args: &[Expr<'s>], defaults: &[Expr<'s>], body: &[Stmt<'s>]) {
            for d in defaults {
                self.kind(d);
            }
            for a in args {
                self.assign(a, Kind::Unknown);
            }
            self.stmts(body);
        }

        fn assign(&mut self, target: &Expr<'s>, kind: Kind) {
            match target {
                Expr::Var(v) => {
                    self.other.insert(v.id);
                    raise(&mut self.names, v.id, kind, &mut self.changed);
                }
                Expr::Tuple(t) => {
                    for item in &t.items {
                        self.assign(item, kind);
                    }
                }
                Expr::List(l) => {
                    for item in &l.items {
                        self.assign(item, kind);
                    }
                }
                Expr::GetAttr(g) => {
                    self.kind(&g.expr);
                    raise(&mut self.attrs, g.name, kind, &mut self.changed);
                }
                other => {
                    self.kind(other);
                }
            }
        }

        fn call_args(&mut self, args: &[CallArg<'s>]) -> Kind {
            let mut k = Kind::Scalar;
            for arg in args {
                let (CallArg::Pos(e) | CallArg::Kwarg(_, e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e)) =
                    arg;
                k = k.max(self.kind(e));
            }
            k
        }

        fn var(&self, id: &str) -> Kind {
            match (self.declared.get(id), self.names.get(id)) {
                (Some(d), Some(n)) => (*d).max(*n),
                (Some(k), None) | (None, Some(k)) => *k,
                (None, None) => Kind::Unknown,
            }
        }

        fn find(&mut self, line: u16, message: &str) {
            if self.collect {
                self.findings.push(Finding { line, message: message.to_string() });
            }
        }

        /// The kind of `e`, visiting (and, in the last pass, checking) every sub-expression.
        fn kind(&mut self, e: &Expr<'s>) -> Kind {
            match e {
                Expr::Var(v) => self.var(v.id),
                Expr::Const(c) => match c.value.kind() {
                    ValueKind::String
                    | ValueKind::Number
                    | ValueKind::Bool
                    | ValueKind::None
                    | ValueKind::Undefined => Kind::Scalar,
                    // Folded constants are small (minijinja folds at most 1 KB).
                    _ => Kind::Input,
                },
                Expr::Slice(s) => {
                    for b in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                        self.kind(b);
                    }
                    self.kind(&s.expr)
                }
                Expr::UnaryOp(u) => {
                    self.kind(&u.expr);
                    Kind::Scalar
                }
                Expr::BinOp(b) => {
                    let l = self.kind(&b.left);
                    let r = self.kind(&b.right);
                    let line = b.span().start_line;
                    match b.op {
                        BinOpKind::Add => {
                            if l == Kind::Scalar || r == Kind::Scalar {
                                Kind::Scalar
                            } else {
                                if l == Kind::Unknown || r == Kind::Unknown {
                                    self.find(
                                        line,
                                        "`+` between two values that may be lists: list \
                                         concatenation can grow without bound (join text with `~`; \
                                         only lists taken directly from inputs may be added)",
                                    );
                                }
                                Kind::Unknown
                            }
                        }
                        BinOpKind::Mul => {
                            if l == Kind::Scalar && r == Kind::Scalar {
                                Kind::Scalar
                            } else {
                                Kind::Unknown
                            }
                        }
                        BinOpKind::Concat => {
                            if l == Kind::Unknown || r == Kind::Unknown {
                                self.find(
                                    line,
                                    "`~` with an operand that may be a list or map built in the \
                                     template: it would be turned into text without a size limit \
                                     (use `| join` or `| string`)",
                                );
                            }
                            Kind::Scalar
                        }
                        BinOpKind::ScAnd | BinOpKind::ScOr => l.max(r),
                        _ => Kind::Scalar,
                    }
                }
                Expr::Compare(c) => {
                    self.kind(&c.expr);
                    for op in &c.ops {
                        self.kind(&op.expr);
                    }
                    Kind::Scalar
                }
                Expr::IfExpr(i) => {
                    self.kind(&i.test_expr);
                    let t = self.kind(&i.true_expr);
                    let f = i.false_expr.as_ref().map_or(Kind::Scalar, |f| self.kind(f));
                    t.max(f)
                }
                Expr::Filter(f) => {
                    let operand = f.expr.as_ref().map_or(Kind::Unknown, |e| self.kind(e));
                    let args = self.call_args(&f.args);
                    if SCALAR_FILTERS.contains(&f.name) {
                        Kind::Scalar
                    } else if matches!(f.name, "default" | "d") {
                        operand.max(args)
                    } else if SELECTING_FILTERS.contains(&f.name)
                        || (f.name == "map"
                            && f.args.iter().all(|a| matches!(a, CallArg::Kwarg("attribute", _))))
                    {
                        operand
                    } else {
                        Kind::Unknown
                    }
                }
                Expr::Test(t) => {
                    self.kind(&t.expr);
                    self.call_args(&t.args);
                    Kind::Scalar
                }
                Expr::GetAttr(g) => {
                    let base = self.kind(&g.expr);
                    match &g.expr {
                        Expr::Var(v)
                            if v.id == "loop"
                                && !self.names.contains_key("loop")
                                && LOOP_SCALARS.contains(&g.name) =>
                        {
                            Kind::Scalar
                        }
                        Expr::Var(v)
                            if self.namespaces.contains(v.id)
                                && !self.other.contains(v.id)
                                && !self.declared.contains_key(v.id)
                                && !self.opaque_namespace =>
                        {
                            self.attrs.get(g.name).copied().unwrap_or(Kind::Unknown)
                        }
                        _ => base,
                    }
                }
                Expr::GetItem(g) => {
                    self.kind(&g.subscript_expr);
                    self.kind(&g.expr)
                }
                Expr::Call(c) => {
                    self.call_args(&c.args);
                    match &c.expr {
                        // Macros return the text they render.
                        Expr::Var(v)
                            if (self.macros.contains(v.id) || v.id == "caller")
                                && !self.names.contains_key(v.id)
                                && !self.declared.contains_key(v.id) =>
                        {
                            Kind::Scalar
                        }
                        other => {
                            self.kind(other);
                            Kind::Unknown
                        }
                    }
                }
                Expr::List(l) => {
                    for item in &l.items {
                        self.kind(item);
                    }
                    Kind::Unknown
                }
                Expr::Tuple(t) => {
                    for item in &t.items {
                        self.kind(item);
                    }
                    Kind::Unknown
                }
                Expr::Map(m) => {
                    for item in m.keys.iter().chain(&m.values) {
                        self.kind(item);
                    }
                    Kind::Unknown
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ids::{PromptId, UserId};
    use crate::prompt::ModelConfig;
    use crate::validation::ValidationRule;
    use crate::variables::{VariableDefinition, VariableType};

    fn var(name: &str) -> VariableDefinition {
        VariableDefinition {
            name: name.to_string(),
            kind: VariableType::String,
            required: true,
            description: None,
            default_value: None,
            values: None,
            schema: None,
            max_length: None,
        }
    }

    fn version(template: &str, system: Option<&str>, vars: &[&str]) -> PromptVersion {
        PromptVersion {
            prompt_id: PromptId::new(),
            version: 1,
            template: template.to_string(),
            system_template: system.map(str::to_string),
            variables: vars.iter().map(|n| var(n)).collect(),
            validations: Vec::new(),
            model: ModelConfig::default(),
            created_at: chrono::Utc::now(),
            author: UserId::new(),
        }
    }

    fn inputs(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("object expected"),
        }
    }

    fn prompt_problems(r: Result<impl std::fmt::Debug>) -> Vec<(String, String)> {
        match r {
            Err(Error::InvalidPrompt { problems }) => {
                problems.into_iter().map(|p| (p.field, p.code.to_string())).collect()
            }
            other => panic!("expected InvalidPrompt, got {other:?}"),
        }
    }

    fn p(field: &str, code: &str) -> (String, String) {
        (field.to_string(), code.to_string())
    }

    #[test]
    fn renders_system_then_user() {
        let v = version("Write about {{ topic }}.", Some("You are {{ persona }}."), &["topic", "persona"]);
        let c = CompiledPrompt::compile(&v, &TemplateLimits::default()).expect("compiles");
        let m = c.render(&inputs(json!({"topic": "bees", "persona": "a poet"}))).expect("renders");
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].role, m[0].content.as_str()), (Role::System, "You are a poet."));
        assert_eq!((m[1].role, m[1].content.as_str()), (Role::User, "Write about bees."));
    }

    #[test]
    fn nested_json_values_render() {
        let v = version("{% for i in items %}{{ i.name }}={{ i.n }};{% endfor %}", None, &["items"]);
        let c = CompiledPrompt::compile(&v, &TemplateLimits::default()).expect("compiles");
        let m = c
            .render(&inputs(json!({"items": [{"name": "a", "n": 1}, {"name": "b", "n": 2.5}]})))
            .expect("renders");
        assert_eq!(m[0].content, "a=1;b=2.5;");
    }

    #[test]
    fn undeclared_variables_are_named() {
        let v = version(
            "{{ a }} {{ b }} {% set c = 1 %}{{ c }}{% for x in range(2) %}{{ x }}{% endfor %}",
            Some("{{ z }}"),
            &["a"],
        );
        let err = CompiledPrompt::compile(&v, &TemplateLimits::default()).expect_err("undeclared");
        let Error::InvalidPrompt { problems } = err else { panic!("wrong error") };
        let got: Vec<_> = problems.iter().map(|p| (p.field.as_str(), p.code.as_str())).collect();
        assert_eq!(got, vec![("template", "undeclared"), ("systemTemplate", "undeclared")]);
        assert!(problems[0].message.contains("\"b\""), "{}", problems[0].message);
        assert!(problems[1].message.contains("\"z\""), "{}", problems[1].message);
    }

    #[test]
    fn syntax_errors_are_reported_per_template() {
        let v = version("{% if %}", Some("{{ unclosed"), &[]);
        assert_eq!(
            prompt_problems(CompiledPrompt::compile(&v, &TemplateLimits::default())),
            vec![p("template", "syntax"), p("systemTemplate", "syntax")]
        );
    }

    #[test]
    fn oversized_source_is_rejected() {
        let limits = TemplateLimits { max_source_bytes: 10, ..TemplateLimits::default() };
        let v = version(&"x".repeat(11), None, &[]);
        assert_eq!(prompt_problems(CompiledPrompt::compile(&v, &limits)), vec![p("template", "too_large")]);
    }

    #[test]
    fn strict_undefined_fails_at_render() {
        let mut v = version("{{ note }}", None, &["note"]);
        v.variables[0].required = false;
        let c = CompiledPrompt::compile(&v, &TemplateLimits::default()).expect("compiles");
        let err = c.render(&Map::new()).expect_err("undefined");
        assert!(matches!(&err, Error::Render { message } if message.contains("undefined")), "{err}");
        let guarded = version("{% if note is defined %}{{ note }}{% else %}none{% endif %}", None, &["note"]);
        let c = CompiledPrompt::compile(&guarded, &TemplateLimits::default()).expect("compiles");
        assert_eq!(c.render(&Map::new()).expect("renders")[0].content, "none");
    }

    #[test]
    fn output_cap_applies() {
        let limits = TemplateLimits { max_output_bytes: 5, ..TemplateLimits::default() };
        let v = version("{{ s }}", None, &["s"]);
        let c = CompiledPrompt::compile(&v, &limits).expect("compiles");
        assert_eq!(c.render(&inputs(json!({"s": "12345"}))).expect("fits")[0].content, "12345");
        let err = c.render(&inputs(json!({"s": "123456"}))).expect_err("too big");
        assert!(matches!(&err, Error::Render { message } if message.contains("5-byte limit")), "{err}");
    }

    #[test]
    fn fuel_error_is_clear() {
        let v = version(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            None,
            &[],
        );
        let c = CompiledPrompt::compile(&v, &TemplateLimits::default()).expect("compiles");
        let err = c.render(&Map::new()).expect_err("fuel");
        assert!(matches!(&err, Error::Render { message } if message.contains("fuel exhausted")), "{err}");
    }

    #[test]
    fn legitimate_operators_pass_the_growth_check() {
        let mut v = version("", None, &["first", "last", "count", "items", "more", "user"]);
        v.variables[2].kind = VariableType::Integer;
        for i in 3..6 {
            v.variables[i].kind = VariableType::Json;
        }
        let cases = [
            (r#"{{ first ~ " " ~ last }}"#, "Ada Lovelace"),
            ("{{ count + 1 }} {{ count * 2 - 1 }}", "42 81"),
            (r#"{{ first + last }}"#, "AdaLovelace"),
            ("{{ (items + more) | length }}", "3"),
            (
                r#"{% for i in items %}{{ loop.index ~ ". " ~ i.name ~ "=" ~ i.n }};{% endfor %}"#,
                "1. a=1;2. b=2;",
            ),
            (
                "{% set ns = namespace(total=0) %}{% for i in items %}{% set ns.total = ns.total + i.n %}{% endfor %}{{ ns.total }}",
                "3",
            ),
            (r#"{% set full = first ~ " " ~ last %}{{ full ~ "!" }}"#, "Ada Lovelace!"),
            (r#"{{ user.name ~ " (" ~ user.tags | join(", ") ~ ")" }}"#, "Ada (x, y)"),
            (r#"{% macro b(t) %}[{{ t }}]{% endmacro %}{{ b(first) ~ b(last | upper) }}"#, "[Ada][LOVELACE]"),
            (r#"{{ "n=" ~ items | length ~ " " ~ (items | first).name }}"#, "n=2 a"),
            (r#"{% set s %}{{ first }}{% endset %}{{ s ~ s }}"#, "AdaAda"),
        ];
        let values = inputs(json!({
            "first": "Ada", "last": "Lovelace", "count": 41,
            "items": [{"name": "a", "n": 1}, {"name": "b", "n": 2}], "more": [3],
            "user": {"name": "Ada", "tags": ["x", "y"]}
        }));
        for (template, expected) in cases {
            v.template = template.to_string();
            let c = CompiledPrompt::compile(&v, &TemplateLimits::default())
                .unwrap_or_else(|e| panic!("{template}: {e}"));
            let m = c.render(&values).unwrap_or_else(|e| panic!("{template}: {e}"));
            assert_eq!(m[0].content, expected, "{template}");
        }
    }

    #[test]
    fn json_objects_behave_as_maps() {
        let mut v = version("", None, &["user"]);
        v.variables[0].kind = VariableType::Json;
        let values = inputs(json!({"user": {"name": "Ada", "tags": ["x"], "age": 36}}));
        let cases = [
            ("{{ user.name }} {{ user['age'] }} {{ user.tags[0] }}", "Ada 36 x"),
            ("{{ user | tojson }}", r#"{"age": 36, "name": "Ada", "tags": ["x"]}"#),
            ("{% for k, v in user | items %}{{ k }};{% endfor %}", "age;name;tags;"),
            ("{{ user | length }} {{ 'name' in user }} {{ 'x' in user }}", "3 True False"),
            ("{{ user.missing is defined }}", "False"),
        ];
        for (template, expected) in cases {
            v.template = template.to_string();
            let c = CompiledPrompt::compile(&v, &TemplateLimits::default())
                .unwrap_or_else(|e| panic!("{template}: {e}"));
            let m = c.render(&values).unwrap_or_else(|e| panic!("{template}: {e}"));
            assert_eq!(m[0].content, expected, "{template}");
        }
    }

    #[test]
    fn growth_problems_name_the_line() {
        let v = version("line one\n{% set a = [x] %}\n{% set a = a + a %}", None, &["x"]);
        let err = CompiledPrompt::compile(&v, &TemplateLimits::default()).expect_err("unbounded");
        let Error::InvalidPrompt { problems } = err else { panic!("wrong error") };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!((problems[0].field.as_str(), problems[0].code.as_str()), ("template", "unbounded"));
        assert!(problems[0].message.starts_with("line 3: `+`"), "{}", problems[0].message);
    }

    #[test]
    fn check_version_collects_every_problem() {
        let mut v = version("{{ a }} {{ missing }}", None, &["a", "a"]);
        v.variables[0].default_value = Some(json!(1));
        v.validations = vec![ValidationRule::Json, ValidationRule::Regex { pattern: "(".into() }];
        let got = prompt_problems(check_version(&v, &TemplateLimits::default(), &InputLimits::default()));
        assert_eq!(
            got,
            vec![
                p("template", "undeclared"),
                p("variables[0].defaultValue", "wrong_type"),
                p("variables[1].name", "duplicate"),
                p("validations[1].pattern", "invalid_regex"),
            ]
        );
        let ok = version("{{ a }}", None, &["a"]);
        check_version(&ok, &TemplateLimits::default(), &InputLimits::default()).expect("valid");
    }
}
