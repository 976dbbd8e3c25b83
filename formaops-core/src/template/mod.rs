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
//! - **Nesting** (code `too_deep`, rejected before the template is parsed): parsing and every
//!   analysis of a template recurse once per level of its syntax tree, and a stack overflow
//!   aborts the process, so an expression may nest at most [`MAX_EXPRESSION_DEPTH`] levels
//!   (each operator of a chain like `1 + 1 + ...` or `x|f|g` is a level) and blocks at most
//!   [`MAX_BLOCK_DEPTH`]. A value the template builds from itself (`{% set ns.a = [ns.a] %}`
//!   in a loop) would nest without bound: rejected as `unbounded` past [`MAX_BUILT_NESTING`]
//!   levels; values deeper than [`MAX_VALUE_DEPTH`] are not turned into text.
//! - **Pretty-printing**: `tojson(indent=n)` and `pprint` check the size of their indented
//!   result before building it.
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
//! Undefined variables are errors ([`minijinja::UndefinedBehavior::SemiStrict`]): printing,
//! iterating, comparing or filtering one fails, testing it (`is defined`) or taking its truth
//! (`{% if note %}`) does not. An optional variable without a default is absent when omitted,
//! so every read of it must be guarded (`{% if note %}`, `{% if note is defined %}`,
//! `note | default("")`, ...): [`check_version`] refuses a version with an unguarded read
//! (code `unguarded`, naming the variable and the line; the rules are in `guard.rs`), and a
//! render that still meets an undefined value names the variables that were not given.
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
use crate::variables::{InputLimits, InputValidator, VariableType};

mod depth;
mod growth;
mod guard;
mod sandbox;
mod value;

pub use crate::prompt::check_version;
pub use depth::{MAX_BLOCK_DEPTH, MAX_EXPRESSION_DEPTH};
pub use growth::MAX_BUILT_NESTING;
pub use sandbox::MAX_VALUE_DEPTH;

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

/// Reads of optional variables without a default that are not guarded (see `guard.rs`), one
/// problem per variable and line: field `template` / `systemTemplate`, code `unguarded`.
/// Templates too large, too deep or unparsable are skipped (the compiler reports them).
pub(crate) fn unguarded_problems(version: &PromptVersion, limits: &TemplateLimits) -> Vec<Problem> {
    let optional: std::collections::HashSet<&str> = version
        .variables
        .iter()
        .filter(|d| !d.required && d.default_value.is_none())
        .map(|d| d.name.as_str())
        .collect();
    let mut problems = Vec::new();
    if optional.is_empty() {
        return problems;
    }
    let sources =
        [("template", Some(&version.template)), ("systemTemplate", version.system_template.as_ref())];
    for (field, source) in sources {
        let Some(source) = source else { continue };
        if source.len() > limits.max_source_bytes || depth::check(source).is_err() {
            continue;
        }
        for u in guard::check(source, &optional) {
            problems.push(Problem::new(
                field,
                ProblemCode::Unguarded,
                format!(
                    "line {}: optional variable `{1}` has no default and is read without a guard; \
                     when it is omitted the render fails. Guard it (`{{% if {1} %}}`, \
                     `{{% if {1} is defined %}}`, `{1} | default(\"\")`), give it a defaultValue \
                     or make it required",
                    u.line, u.name
                ),
            ));
        }
    }
    problems
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
    pub(crate) fn compile_all(
        version: &PromptVersion,
        limits: &TemplateLimits,
    ) -> (Option<Self>, Vec<Problem>) {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::SemiStrict);
        env.set_fuel(Some(limits.fuel));
        env.set_recursion_limit(limits.max_recursion);
        sandbox::harden(&mut env, limits.max_output_bytes);
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
            // Before anything parses the template: parsing and every analysis below recurse
            // once per level of nesting.
            if let Err(e) = depth::check(source) {
                ok = false;
                problems.push(Problem::new(field, ProblemCode::TooDeep, e.message()));
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

    /// The version's input validator (its `json` schemas compiled once).
    pub fn input_validator(&self) -> &InputValidator {
        &self.inputs
    }

    /// Renders the messages (system first when present, then user) from validated inputs.
    /// Errors: [`crate::Error::Render`].
    pub fn render(&self, inputs: &Map<String, Value>) -> Result<Vec<Message>> {
        let ctx = value::context(inputs)?;
        let mut messages = Vec::with_capacity(2);
        if self.has_system {
            messages.push(Message {
                role: Role::System,
                content: self.render_one(SYSTEM, "system", &ctx, inputs)?,
            });
        }
        messages.push(Message { role: Role::User, content: self.render_one(USER, "user", &ctx, inputs)? });
        Ok(messages)
    }

    fn render_one(
        &self,
        name: &str,
        which: &str,
        ctx: &minijinja::Value,
        inputs: &Map<String, Value>,
    ) -> Result<String> {
        let t = self.env.get_template(name).map_err(|e| render_error(which, &e))?;
        let out = t.render(ctx).map_err(|e| {
            let mut err = render_error(which, &e);
            if e.kind() == minijinja::ErrorKind::UndefinedError
                && let Error::Render { message } = &mut err
            {
                // Name the variables the template uses that were not given (optional ones
                // without a default): minijinja's message does not.
                let mut absent: Vec<String> =
                    t.undeclared_variables(false).into_iter().filter(|v| !inputs.contains_key(v)).collect();
                absent.sort();
                // Of those, the ones read without a guard (a version saved before the
                // save-time check); all of them if the check finds none.
                let names: std::collections::HashSet<&str> = absent.iter().map(String::as_str).collect();
                let mut unguarded: Vec<String> =
                    guard::check(t.source(), &names).into_iter().map(|u| u.name).collect();
                unguarded.sort();
                unguarded.dedup();
                if !unguarded.is_empty() {
                    absent = unguarded;
                }
                if !absent.is_empty() {
                    let names = absent.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ");
                    message.push_str(&format!(
                        " (not given: {names}; an optional variable without a default must be \
                         guarded, e.g. `{{% if {0} is defined %}}` or `{0} | default(\"\")`)",
                        absent[0]
                    ));
                }
            }
            err
        })?;
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

#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use super::*;
    use crate::ids::{PromptId, UserId};
    use crate::prompt::ModelConfig;
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

    /// A version whose variables are required strings named `vars`.
    pub(super) fn version(template: &str, system: Option<&str>, vars: &[&str]) -> PromptVersion {
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
            ("{{ user | length }} {{ 'name' in user }} {{ 'x' in user }}", "3 true false"),
            ("{{ user.missing is defined }}", "false"),
        ];
        for (template, expected) in cases {
            v.template = template.to_string();
            let c = CompiledPrompt::compile(&v, &TemplateLimits::default())
                .unwrap_or_else(|e| panic!("{template}: {e}"));
            let m = c.render(&values).unwrap_or_else(|e| panic!("{template}: {e}"));
            assert_eq!(m[0].content, expected, "{template}");
        }
    }

    /// Printed values are spelled as JSON, never the Python way; filters see real values.
    #[test]
    fn printed_values_are_spelled_as_json() {
        let mut v = version("", None, &["data"]);
        v.variables[0].kind = VariableType::Json;
        let cases = [
            (json!({"a": null, "b": true}), "{{ data }}", r#"{"a":null,"b":true}"#),
            (json!(null), "{{ data }}", "null"),
            (json!(true), "{{ data }}", "true"),
            (json!(false), "{{ data }}", "false"),
            (json!([1, null, "x", {"k": false}]), "{{ data }}", r#"[1,null,"x",{"k":false}]"#),
            (
                json!({"a": null, "b": [true]}),
                "{{ data.a }} {{ data.b }} {{ data.b[0] }}",
                "null [true] true",
            ),
            (json!("it's \"quoted\""), "{{ data }}", r#"it's "quoted""#),
            (json!(2.5), "{{ data }}", "2.5"),
            // Filters and tests work on the real values.
            (
                json!({"a": null, "b": true}),
                "{{ data.b is true }} {{ data.a is none }} {{ data | length }}",
                "true true 2",
            ),
            (json!([3, 1, 2]), "{{ data | sort | join(',') }} {{ data | sum }}", "1,2,3 6"),
            (json!({"a": null}), "{{ data | tojson }}", r#"{"a": null}"#),
            (json!(null), "{% if data %}yes{% else %}no{% endif %}", "no"),
        ];
        for (value, template, expected) in cases {
            v.template = template.to_string();
            let c = CompiledPrompt::compile(&v, &TemplateLimits::default())
                .unwrap_or_else(|e| panic!("{template}: {e}"));
            let m = c.render(&inputs(json!({ "data": value }))).unwrap_or_else(|e| panic!("{template}: {e}"));
            assert_eq!(m[0].content, expected, "{template} with {value}");
            if template == "{{ data }}" && !value.is_string() {
                let back: Value = serde_json::from_str(&m[0].content).expect("valid JSON");
                assert_eq!(back, value);
            }
        }
    }

    /// Of the omitted variables, the render error names the ones read without a guard.
    #[test]
    fn only_the_unguarded_omitted_variable_is_named() {
        let mut v = version("{% if a %}{{ a }}{% endif %}\n{{ b }}", None, &["a", "b"]);
        v.variables[0].required = false;
        v.variables[1].required = false;
        let c = CompiledPrompt::compile(&v, &TemplateLimits::default()).expect("compiles");
        let msg = c.render(&Map::new()).expect_err("undefined").to_string();
        assert!(msg.contains("line 2") && msg.contains("not given: `b`;"), "{msg}");
    }

    /// A missing optional variable is named in the render error, wherever it is used.
    #[test]
    fn a_missing_optional_variable_is_named() {
        let cases = [
            ("Hello {{ name }}.\n{{ note }}", "note"),
            ("{{ name }} {{ note | upper }}", "note"),
            ("{% for x in note %}{{ x }}{% endfor %}{{ name }}", "note"),
            ("{{ name ~ note.title }}", "note"),
        ];
        for (template, missing) in cases {
            let mut v = version(template, None, &["name", missing]);
            v.variables[1].required = false;
            let c = CompiledPrompt::compile(&v, &TemplateLimits::default()).expect("compiles");
            let err = c.render(&inputs(json!({"name": "Ada"}))).expect_err("undefined");
            let msg = err.to_string();
            assert!(msg.contains(&format!("`{missing}`")), "{template}: {msg}");
            assert!(!msg.contains("`name`"), "given variables are not named: {msg}");
            // Guarded uses render.
            v.template = format!("{{% if {missing} is defined %}}{template}{{% endif %}}{{{{ name }}}}");
            let c = CompiledPrompt::compile(&v, &TemplateLimits::default()).expect("compiles");
            assert_eq!(c.render(&inputs(json!({"name": "Ada"}))).unwrap()[0].content, "Ada");
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
}
