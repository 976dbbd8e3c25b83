//! Hostile-input fuzz targets for templates: compile + render of arbitrary strings and of
//! generated minijinja constructs, and template-injection payloads used as variable values.
//!
//! Properties: no panic, no hang (every case finishes under the engine's fuel, recursion and
//! output limits), bounded memory, errors of the documented kinds only, and variable values
//! are data: they render verbatim and are never evaluated.
//!
//! Long mode: `PROPTEST_CASES=100000 cargo test -p formaops-core --release --test fuzz_template`.

mod fuzz_support;

use chrono::Utc;
use formaops_core::Error;
use formaops_core::ids::{PromptId, UserId};
use formaops_core::prompt::{ModelConfig, PromptVersion};
use formaops_core::provider::Role;
use formaops_core::template::{CompiledPrompt, TemplateLimits};
use formaops_core::variables::{InputLimits, VariableDefinition, VariableType, validate_inputs};
use fuzz_support::{bounded, config};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn def(name: &str, kind: VariableType) -> VariableDefinition {
    VariableDefinition {
        name: name.to_string(),
        kind,
        required: true,
        description: None,
        default_value: None,
        values: None,
        schema: None,
        max_length: None,
    }
}

fn version(template: String, system: Option<String>, variables: Vec<VariableDefinition>) -> PromptVersion {
    PromptVersion {
        prompt_id: PromptId::new(),
        version: 1,
        template,
        system_template: system,
        variables,
        validations: Vec::new(),
        model: ModelConfig::default(),
        created_at: Utc::now(),
        author: UserId::new(),
    }
}

fn standard_defs() -> Vec<VariableDefinition> {
    vec![def("v0", VariableType::String), def("v1", VariableType::Number), def("items", VariableType::Json)]
}

fn standard_inputs(s: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("v0".into(), Value::String(s.to_string()));
    m.insert("v1".into(), json!(3));
    m.insert("items".into(), json!([1, "two", {"three": 3}, [4]]));
    m
}

/// Compiles and renders; checks that every outcome is one the API documents.
fn compile_and_render(template: String, system: Option<String>, limits: TemplateLimits, value: String) {
    let label: String = template.chars().take(80).collect();
    bounded(&label, move || {
        let v = version(template, system, standard_defs());
        let compiled = match CompiledPrompt::compile(&v, &limits) {
            Ok(c) => c,
            Err(Error::InvalidPrompt { problems }) => {
                assert!(!problems.is_empty(), "InvalidPrompt without problems");
                for p in &problems {
                    assert!(!p.message.is_empty(), "problem without message: {p:?}");
                }
                return;
            }
            Err(other) => panic!("compile returned an undocumented error kind: {other:?}"),
        };
        match CompiledPrompt::render(&compiled, &standard_inputs(&value)) {
            Ok(messages) => {
                assert!(!messages.is_empty() && messages.len() <= 2, "{} messages", messages.len());
                for m in &messages {
                    assert!(
                        m.content.len() <= limits.max_output_bytes,
                        "rendered {} bytes > max_output_bytes {}",
                        m.content.len(),
                        limits.max_output_bytes
                    );
                }
            }
            Err(Error::Render { message }) => assert!(!message.is_empty()),
            Err(other) => panic!("render returned an undocumented error kind: {other:?}"),
        }
    });
}

/// Template soup: jinja tokens, keywords and random text glued together.
fn template_soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        4 => prop::sample::select(vec![
            "{{", "}}", "{%", "%}", "{#", "#}", "{%-", "-%}", " ", "\n", "(", ")", "[", "]", ",",
            ".", "|", "~", "*", "**", "+", "-", "/", "//", "%", "'", "\"", ":", "=", "==",
            "for", "in", "endfor", "if", "else", "elif", "endif", "set", "endset", "macro",
            "endmacro", "call", "endcall", "caller()", "filter", "endfilter", "raw", "endraw",
            "include", "import", "from", "extends", "block", "endblock", "with", "endwith",
            "recursive", "loop", "loop(", "loop.index", "self", "super()", "namespace(", "range(",
            "10**9", "999999999999999999999", "1e308", "v0", "v1", "items", "x", "upper", "join",
            "tojson", "replace", "length", "list", "map", "attribute", "safe", "escape", "format",
            "debug()", "lipsum(", "dict(", "cycler(", "joiner()", "none", "true", "undefined",
            "continue", "break", "do", "autoescape", "endautoescape", "sort", "reverse", "batch(",
            "slice(", "indent(", "wordcount", "trim", "int", "float", "abs", "round", "sum",
        ])
        .prop_map(str::to_string),
        1 => ".{0,8}",
        1 => any::<u32>().prop_map(|n| n.to_string()),
    ];
    prop::collection::vec(token, 0..60).prop_map(|t| t.concat())
}

/// Structured generator of (mostly valid) minijinja built from constructs that stress limits.
fn arb_expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        prop::sample::select(vec!["v0", "v1", "items", "loop.index", "x"]).prop_map(str::to_string),
        any::<i32>().prop_map(|n| n.to_string()),
        prop::sample::select(vec!["0", "1", "100000", "1000000000", "10**9", "10**18", "-1", "2**63"])
            .prop_map(str::to_string),
        "[a-z{}%#]{0,6}".prop_map(|s| format!("{s:?}")),
        Just("range(100000)".to_string()),
        Just("range(10**9)".to_string()),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} ~ {b})")),
            (inner.clone(), prop::sample::select(vec!["10", "1000", "100000", "10000000", "100000000"]))
                .prop_map(|(a, n)| format!("({a} * {n})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} + {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} ** {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} // {b})")),
            (
                inner.clone(),
                prop::sample::select(vec![
                    "upper",
                    "list",
                    "length",
                    "tojson",
                    "join",
                    "reverse",
                    "sort",
                    "unique",
                    "first",
                    "last",
                    "string",
                    "int",
                    "float",
                    "abs",
                    "trim",
                    "title",
                    "items",
                    "batch(3)",
                    "indent(1000)",
                    "center(100000)",
                    "replace('a', 'aaaaaaaaaa')",
                    "default('d')",
                    "join(', ')",
                    "map('upper')",
                    "select",
                    "sum",
                    "min",
                    "max",
                    "pprint",
                    "urlencode",
                ])
            )
                .prop_map(|(a, f)| format!("({a}|{f})")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("{a}[{b}]")),
        ]
    })
}

fn arb_block() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        "[a-zA-Z {}#%]{0,16}",
        arb_expr().prop_map(|e| format!("{{{{ {e} }}}}")),
        arb_expr().prop_map(|e| format!("{{% set x = {e} %}}")),
    ];
    leaf.prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            (arb_expr(), inner.clone()).prop_map(|(e, b)| format!("{{% for x in {e} %}}{b}{{% endfor %}}")),
            (arb_expr(), inner.clone(), inner.clone())
                .prop_map(|(e, a, b)| format!("{{% if {e} %}}{a}{{% else %}}{b}{{% endif %}}")),
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| v.concat()),
            inner
                .clone()
                .prop_map(|b| format!("{{% macro m(x) %}}{b}{{{{ m(x) }}}}{{% endmacro %}}{{{{ m(1) }}}}")),
            inner.clone().prop_map(|b| format!(
                "{{% for x in items recursive %}}{b}{{{{ loop([items, items, items]) }}}}{{% endfor %}}"
            )),
            inner.clone().prop_map(|b| format!("{{% filter upper %}}{b}{{% endfilter %}}")),
            inner.prop_map(|b| format!("{{% raw %}}{b}{{% endraw %}}")),
        ]
    })
}

fn tight_limits() -> TemplateLimits {
    TemplateLimits { max_source_bytes: 4096, max_output_bytes: 4096, fuel: 5_000, max_recursion: 8 }
}

proptest! {
    #![proptest_config(config(100))]

    #[test]
    fn arbitrary_strings_compile_and_render_within_limits(t in ".{0,400}", value in ".{0,64}") {
        compile_and_render(t, None, TemplateLimits::default(), value);
    }

    #[test]
    fn template_soup_compiles_and_renders_within_limits(
        t in template_soup(),
        s in prop::option::of(template_soup()),
        value in ".{0,64}",
    ) {
        compile_and_render(t, s, TemplateLimits::default(), value);
    }

    #[test]
    fn soup_under_tight_limits(t in template_soup(), value in ".{0,64}") {
        compile_and_render(t, None, tight_limits(), value);
    }
}

proptest! {
    // The structured generator builds expensive templates on purpose: fewer cases per run.
    #![proptest_config(config(25))]

    #[test]
    fn generated_constructs_render_within_limits(t in arb_block(), value in ".{0,64}") {
        compile_and_render(t, None, TemplateLimits::default(), value);
    }

    #[test]
    fn generated_constructs_under_tight_limits(t in arb_block(), value in ".{0,64}") {
        compile_and_render(t, None, tight_limits(), value);
    }
}

/// Templates written to exhaust something; each must end in an error or in bounded output.
#[test]
fn known_resource_attacks_are_bounded() {
    let attacks = [
        "{% for i in range(10**9) %}x{% endfor %}",
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        "{{ 'a' * 100000000 }}",
        "{% set x = 'a' * 100000000 %}{% set y = x ~ x ~ x ~ x %}{{ y|length }}",
        "{% set x = 'a' * 100000000 %}{{ (x ~ x ~ x ~ x ~ x ~ x ~ x ~ x)|length }}",
        "{{ [1] * 100000000 }}",
        "{{ ([1] * 1000000)|tojson }}",
        "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}",
        "{% for x in items recursive %}{{ loop([items, items]) }}{% endfor %}",
        "{{ v0|center(1000000000) }}",
        "{{ v0|indent(1000000000) }}",
        "{{ 'ab'|replace('', 'x' * 10000000) }}",
        "{{ 10**100000 }}",
        "{{ range(10**9)|list|length }}",
        "{{ self }}",
        "{{ debug() }}",
        "{% include 'user' %}",
        "{% extends 'user' %}",
        "{% import 'user' as u %}",
    ];
    for t in attacks {
        compile_and_render(t.to_string(), None, TemplateLimits::default(), "x".to_string());
        compile_and_render(t.to_string(), Some(t.to_string()), tight_limits(), "x".to_string());
    }
}

/// Payloads that would do something if a value were evaluated as a template.
const INJECTION_PAYLOADS: &[&str] = &[
    "{{ 7*7 }}",
    "{{7*7}}",
    "${7*7}",
    "{% for %}",
    "{% for i in range(10**9) %}x{% endfor %}",
    "{{ self }}",
    "{{ range(10**9) }}",
    "{{ range(10**9)|list }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ config.items() }}",
    "{{ v0 }}",
    "{{ debug() }}",
    "{% include 'user' %}",
    "{% extends 'user' %}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{% raw %}{{ 7*7 }}{% endraw %}",
    "{# comment #}",
    "{%- if true -%}yes{%- endif -%}",
    "}}{{",
    "{{",
    "%}",
    "{{ 'a' * 100000000 }}",
    "<script>alert(1)</script>",
    "&lt;&amp;&quot;",
    "\\{{ escaped }}",
    "{{ lipsum(1000000) }}",
];

fn var(name: &str, kind: VariableType) -> VariableDefinition {
    def(name, kind)
}

/// Validates inputs as the engine does, then renders; returns the user and system messages.
fn render_value(
    template: &str,
    system: Option<&str>,
    inputs: Map<String, Value>,
) -> (String, Option<String>) {
    let defs = vec![var("v", VariableType::String), var("obj", VariableType::Json)];
    let v = version(template.to_string(), system.map(str::to_string), defs.clone());
    let compiled = CompiledPrompt::compile(&v, &TemplateLimits::default()).expect("template compiles");
    let inputs = validate_inputs(&defs, &inputs, &InputLimits::default()).expect("inputs valid");
    let messages = compiled.render(&inputs).expect("renders");
    let user =
        messages.iter().find(|m| m.role == Role::User).map(|m| m.content.clone()).expect("user message");
    let system = messages.iter().find(|m| m.role == Role::System).map(|m| m.content.clone());
    (user, system)
}

fn inputs_with(value: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("v".into(), Value::String(value.to_string()));
    m.insert("obj".into(), json!({"k": value, "list": [value]}));
    m
}

#[test]
fn injection_payloads_as_values_render_literally() {
    for payload in INJECTION_PAYLOADS {
        let p = payload.to_string();
        bounded(payload, move || {
            let (user, system) = render_value(
                "<{{ v }}|{{ obj.k }}|{{ obj.list[0] }}|{% for x in obj.list %}{{ x }}{% endfor %}>",
                Some("sys:{{ v }}"),
                inputs_with(&p),
            );
            assert_eq!(user, format!("<{p}|{p}|{p}|{p}>"), "payload was not rendered verbatim");
            assert_eq!(system.as_deref(), Some(format!("sys:{p}").as_str()));
        });
    }
}

proptest! {
    #![proptest_config(config(100))]

    /// Any string value (including template syntax) appears verbatim in the output; one with
    /// a NUL character (which no store can hold) is refused by name instead.
    #[test]
    fn any_value_renders_verbatim(
        value in prop_oneof![".{0,200}", template_soup(), fuzz_support::hostile_string()]
    ) {
        if value.contains('\0') {
            let defs = vec![var("v", VariableType::String), var("obj", VariableType::Json)];
            let refused = validate_inputs(&defs, &inputs_with(&value), &InputLimits::default());
            let Err(Error::InvalidInputs { problems }) = refused else {
                return Err(TestCaseError::fail(format!("NUL input accepted: {refused:?}")));
            };
            let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
            prop_assert_eq!(fields, vec!["inputs.v", "inputs.obj.k"]);
            return Ok(());
        }
        let p = value.clone();
        let (user, system) = bounded("verbatim", move || render_value("[{{ v }}]", Some("{{ obj.k }}"), inputs_with(&p)));
        prop_assert_eq!(user, format!("[{value}]"));
        prop_assert_eq!(system, Some(value));
    }
}

/// Regression for a finding of the long fuzz run (2026-11-25, `PROPTEST_CASES=5000`):
/// converting a lazily repeated sequence to a string was bounded neither by fuel nor by
/// `max_output_bytes` (past the 30 s watchdog, peak RSS past 1.5 GiB). Such templates are now
/// rejected when compiled (`unbounded`), or fail fast.
#[test]
fn repeated_sequences_turned_into_strings_are_bounded() {
    for t in [
        "{{ (range(100000) * 1000) ~ 1 }}",
        "{% for x in v0 %}{{ ((items * 10000000) ~ 1) }}{% endfor %}",
        "{{ ((range(100000) * 1000) ~ 100000)|length }}",
    ] {
        compile_and_render(t.to_string(), None, TemplateLimits::default(), "x".to_string());
    }
}
