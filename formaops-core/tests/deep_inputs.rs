//! Deep inputs of every shape: a user controls how deeply a template, a JSON value or a JSON
//! Schema nests, and the parser, the analyses, validation and destructors all recurse once per
//! level. A stack overflow aborts the whole process (it cannot be caught), so every such depth
//! must be refused before anything recurses on it.
//!
//! Every case runs on a thread with a small stack ([`STACK`], half the 2 MiB of a Tokio worker
//! thread, in an unoptimised build whose stack frames are several times larger than a release
//! build's): a case at the limits must still fit, a case past them must end in a clean error.

mod common;
mod fuzz_support;

use common::{object, var, version};
use formaops_core::Error;
use formaops_core::template::{
    CompiledPrompt, MAX_BLOCK_DEPTH, MAX_EXPRESSION_DEPTH, TemplateLimits, check_version,
};
use formaops_core::validation::{CompiledRules, ValidationRule};
use formaops_core::variables::{
    InputLimits, MAX_JSON_DEPTH, VariableType, check_definitions, validate_inputs,
};
use fuzz_support::config;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Stack of the threads the cases run on.
const STACK: usize = 1024 * 1024;

/// Runs `f` on a thread with a [`STACK`]-byte stack; a panic is re-raised here.
fn small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let handle = std::thread::Builder::new()
        .name("small-stack".to_string())
        .stack_size(STACK)
        .spawn(f)
        .expect("spawn a small-stack thread");
    match handle.join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// The deep template shapes: `(prefix, middle, suffix)` repeated `n` times around a core.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Neg,
    Not,
    Plus,
    Concat,
    And,
    Mul,
    Compare,
    Filter,
    Attr,
    Subscript,
    Call,
    Parens,
    List,
    Map,
    IfExpr,
    IfBlock,
    ForBlock,
    Elif,
    SetBlock,
    MacroBlock,
}

const SHAPES: &[Shape] = &[
    Shape::Neg,
    Shape::Not,
    Shape::Plus,
    Shape::Concat,
    Shape::And,
    Shape::Mul,
    Shape::Compare,
    Shape::Filter,
    Shape::Attr,
    Shape::Subscript,
    Shape::Call,
    Shape::Parens,
    Shape::List,
    Shape::Map,
    Shape::IfExpr,
    Shape::IfBlock,
    Shape::ForBlock,
    Shape::Elif,
    Shape::SetBlock,
    Shape::MacroBlock,
];

impl Shape {
    fn is_block(self) -> bool {
        matches!(self, Shape::IfBlock | Shape::ForBlock | Shape::Elif | Shape::SetBlock | Shape::MacroBlock)
    }

    /// The limit that applies to the shape.
    fn limit(self) -> usize {
        if self.is_block() { MAX_BLOCK_DEPTH } else { MAX_EXPRESSION_DEPTH }
    }
}

/// A template of `shape` nested `n` levels deep, using only the variable `x`.
fn deep_template(shape: Shape, n: usize) -> String {
    let expr = |open: &str, core: &str, close: &str| {
        format!("{{{{ {}{core}{} }}}}", open.repeat(n), close.repeat(n))
    };
    match shape {
        Shape::Neg => expr("-", "1", ""),
        Shape::Not => expr("not ", "x", ""),
        Shape::Plus => expr("", "1", " + 1"),
        Shape::Concat => expr("", "x", " ~ x"),
        Shape::And => expr("", "x", " and x"),
        Shape::Mul => expr("", "1", " * 1"),
        Shape::Compare => expr("", "x", " == x"),
        Shape::Filter => expr("", "x", "|abs"),
        Shape::Attr => expr("", "x", ".a"),
        Shape::Subscript => expr("", "x", "[0]"),
        Shape::Call => expr("", "x", "()"),
        Shape::Parens => expr("(", "1", ")"),
        Shape::List => expr("[", "1", "]"),
        Shape::Map => expr("{'k': ", "1", "}"),
        Shape::IfExpr => expr("", "1", " if x else 1"),
        Shape::IfBlock => format!("{}x{}", "{% if x %}".repeat(n), "{% endif %}".repeat(n)),
        Shape::ForBlock => format!("{}x{}", "{% for i in x %}".repeat(n), "{% endfor %}".repeat(n)),
        Shape::Elif => format!("{{% if x %}}{}{{% endif %}}", "{% elif x %}y".repeat(n)),
        Shape::SetBlock => format!("{}x{}", "{% set s %}".repeat(n), "{% endset %}".repeat(n)),
        Shape::MacroBlock => format!("{}x{}", "{% macro m() %}".repeat(n), "{% endmacro %}".repeat(n)),
    }
}

/// The problems of compiling (and fully checking) a version whose user or system template is
/// `template`; `None` when it compiles.
fn compile_problems(template: String, system: bool) -> Option<Vec<(String, String, String)>> {
    small_stack(move || {
        let mut v = version("x", vec![var("x", VariableType::String)]);
        if system {
            v.system_template = Some(template);
        } else {
            v.template = template;
        }
        let limits = TemplateLimits { max_source_bytes: 1 << 20, ..TemplateLimits::default() };
        let compiled = CompiledPrompt::compile(&v, &limits).map(|_| ());
        let checked = check_version(&v, &limits, &InputLimits::default());
        match (compiled, checked) {
            (Ok(()), Ok(())) => None,
            (Err(Error::InvalidPrompt { problems }), Err(Error::InvalidPrompt { .. })) => {
                Some(problems.into_iter().map(|p| (p.field, p.code.to_string(), p.message)).collect())
            }
            (a, b) => panic!("compile and check_version disagree: {a:?} / {b:?}"),
        }
    })
}

fn is_too_deep(problems: &Option<Vec<(String, String, String)>>) -> bool {
    problems.as_ref().is_some_and(|p| p.iter().any(|(_, code, _)| code == "too_deep"))
}

#[test]
fn every_shape_past_the_limit_is_too_deep() {
    for &shape in SHAPES {
        for n in [shape.limit() + 1, 5_000, 30_000] {
            for system in [false, true] {
                let problems = compile_problems(deep_template(shape, n), system)
                    .unwrap_or_else(|| panic!("{shape:?} x {n} compiled"));
                let field = if system { "systemTemplate" } else { "template" };
                assert!(
                    problems.iter().any(|(f, code, message)| f == field
                        && code == "too_deep"
                        && message.contains(&shape.limit().to_string())),
                    "{shape:?} x {n}: {problems:?}"
                );
            }
        }
    }
}

/// The largest `n` for which `shape` passes the depth check.
fn deepest_accepted(shape: Shape) -> usize {
    (1..=shape.limit())
        .rev()
        .find(|&n| !is_too_deep(&compile_problems(deep_template(shape, n), false)))
        .unwrap_or_else(|| panic!("{shape:?}: no depth is accepted"))
}

#[test]
fn every_shape_at_the_limits_fits_the_stack() {
    // The deepest template of each shape the check lets through, its expressions inside as
    // many blocks as allowed: it may be refused for other reasons (minijinja's own bracket
    // limit), but it must not crash.
    let wrap = MAX_BLOCK_DEPTH - 1;
    for &shape in SHAPES {
        let n = deepest_accepted(shape);
        assert!(n >= shape.limit() / 5, "{shape:?}: only {n} levels accepted");
        let template = if shape.is_block() {
            deep_template(shape, n)
        } else {
            format!("{}{}{}", "{% if x %}".repeat(wrap), deep_template(shape, n), "{% endif %}".repeat(wrap))
        };
        let problems = compile_problems(template, false);
        assert!(!is_too_deep(&problems), "{shape:?} x {n}: {problems:?}");
    }
}

#[test]
fn the_reported_templates_are_refused() {
    let cases = [
        format!("{{{{ {}1 }}}}", "-".repeat(5_000)),
        format!("{{{{ {}1 }}}}", "not ".repeat(7_600)),
        format!("{{{{ 1{} }}}}", " + 1".repeat(7_500)),
        format!("{{{{ x{} }}}}", "|abs".repeat(8_100)),
        format!("{{{{ x{} }}}}", ".a".repeat(8_100)),
        format!("{{{{ x{} }}}}", "[0]".repeat(8_100)),
        format!("{{{{ x{} }}}}", "()".repeat(5_600)),
    ];
    for t in cases {
        let problems = compile_problems(t.clone(), false).expect("refused");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!((problems[0].0.as_str(), problems[0].1.as_str()), ("template", "too_deep"));
    }
}

/// A JSON value nested `n` levels: arrays or objects, alternating with `mix`.
fn deep_json(n: usize, mix: bool) -> String {
    let mut open = String::new();
    let mut close = String::new();
    for i in 0..n {
        if mix && i % 2 == 1 {
            open.push_str("{\"a\":");
            close.insert(0, '}');
        } else {
            open.push('[');
            close.insert(0, ']');
        }
    }
    format!("{open}1{close}")
}

#[test]
fn deep_json_inputs_are_refused_cleanly() {
    for n in [MAX_JSON_DEPTH, MAX_JSON_DEPTH + 2, 120, 126] {
        for mix in [false, true] {
            let ok = small_stack(move || {
                // serde_json parses at most 128 levels (the HTTP body limit).
                let value: Value = serde_json::from_str(&deep_json(n, mix)).expect("parses");
                let v = version("{{ j | tojson }}", vec![var("j", VariableType::Json)]);
                let inputs = object(json!({ "j": value }));
                match validate_inputs(&v.variables, &inputs, &InputLimits::default()) {
                    Ok(valid) => {
                        let c = CompiledPrompt::compile(&v, &TemplateLimits::default()).expect("compiles");
                        c.render(&valid).expect("renders");
                        true
                    }
                    Err(Error::InvalidInputs { problems }) => {
                        assert_eq!(problems[0].code, "too_large", "{problems:?}");
                        assert!(problems[0].message.contains("nested deeper"), "{problems:?}");
                        false
                    }
                    Err(e) => panic!("unexpected {e}"),
                }
            });
            assert_eq!(ok, n <= MAX_JSON_DEPTH, "depth {n}");
        }
    }
    // Deeper than serde_json's own limit: a parse error, never a crash.
    small_stack(|| assert!(serde_json::from_str::<Value>(&deep_json(100_000, true)).is_err()));
}

/// A JSON Schema nested `n` levels (`items` inside `items`, or `properties`).
fn deep_schema(n: usize, properties: bool) -> Value {
    let mut s = json!({"type": "integer"});
    for _ in 0..n {
        s = if properties {
            json!({"type": "object", "properties": {"a": s}})
        } else {
            json!({"type": "array", "items": s})
        };
    }
    s
}

#[test]
fn deep_schemas_are_refused_before_compiling() {
    for levels in [8, 20, 31, 40, 64, 120] {
        for properties in [false, true] {
            let (as_variable, as_rule) = small_stack(move || {
                let schema = deep_schema(levels, properties);
                let mut def = var("j", VariableType::Json);
                def.schema = Some(schema.clone());
                let as_variable = check_definitions(&[def], &InputLimits::default());
                let as_rule = CompiledRules::compile(&[ValidationRule::JsonSchema {
                    schema,
                    strict: Default::default(),
                }]);
                (as_variable.map_err(|e| e.to_string()), as_rule.map(|_| ()).map_err(|e| e.to_string()))
            });
            // `properties` nests two JSON levels per schema level.
            let json_depth = if properties { 2 * levels } else { levels };
            let expect_ok = json_depth < MAX_JSON_DEPTH;
            assert_eq!(as_variable.is_ok(), expect_ok, "{levels} {properties}: {as_variable:?}");
            assert_eq!(as_rule.is_ok(), expect_ok, "{levels} {properties}: {as_rule:?}");
            if !expect_ok {
                assert!(as_rule.unwrap_err().contains("nested deeper"));
            }
        }
    }
}

#[test]
fn deep_outputs_under_a_recursive_schema_are_checked_cleanly() {
    // The model's output is parsed by serde_json (at most 128 levels) and validated against a
    // recursive schema: validation recurses with the output.
    let verdicts = small_stack(|| {
        let schema = json!({"anyOf": [{"type": "integer"}, {"type": "array", "items": {"$ref": "#"}}]});
        let rules =
            CompiledRules::compile(&[ValidationRule::JsonSchema { schema, strict: Default::default() }])
                .expect("compiles");
        [10, 64, 126, 100_000].map(|n| rules.check(&deep_json(n, false)).0.passed)
    });
    assert!(verdicts[0] && verdicts[1] && verdicts[2], "{verdicts:?}");
    assert!(!verdicts[3], "unparseable output fails");
}

#[test]
fn values_built_from_themselves_are_refused() {
    // A namespace lets a loop nest a list in itself (and a chain of `set`s nests it once per
    // statement): formatting, comparing and dropping it recurse once per level.
    let cases = [
        "{% set ns = namespace(a=1) %}{% for i in range(9000) %}{% set ns.a = [ns.a] %}{% endfor %}{{ ns.a }}",
        "{% set ns = namespace(a=1) %}{% for i in range(9000) %}{% set ns.a = {'k': ns.a} %}{% endfor %}",
        "{% set ns = namespace(a=1) %}{% for i in range(9000) %}{% set ns.a = dict(k=ns.a) %}{% endfor %}",
        "{% set ns = namespace(a=1) %}{% for i in x %}{% set ns.a = (ns.a, 1)|list %}{% endfor %}",
        "{% set ns = namespace(a=1) %}{% for i in x %}{% set ns.a = [ns.a]|batch(1) %}{% endfor %}",
        "{% set ns = namespace(a=[]) %}{% for i in x %}{% set b = [ns.a] %}{% set ns.a = b %}{% endfor %}",
        "{% macro m(v) %}{{ m([v]) }}{% endmacro %}{{ m(1) }}",
    ];
    let mut chained = "{% set a = 1 %}".to_string();
    chained.push_str(&"{% set a = [a] %}".repeat(5000));
    for t in cases.iter().map(|t| t.to_string()).chain([chained]) {
        let problems = compile_problems(t.clone(), false).unwrap_or_else(|| panic!("compiled: {t}"));
        assert!(
            problems
                .iter()
                .any(|(f, code, m)| f == "template" && code == "unbounded" && m.contains("nested")),
            "{t}: {problems:?}"
        );
    }
    // Bounded nesting is fine.
    for t in [
        "{% set rows = [[x, x], [x, x]] %}{{ rows | tojson }}",
        "{% set ns = namespace(last=none) %}{% for i in x %}{% set ns.last = [i, loop.index] %}{% endfor %}",
        "{% set a = [x] %}{% set b = [a, a] %}{% set c = {'b': b} %}{{ c | tojson }}",
    ] {
        assert_eq!(compile_problems(t.to_string(), false), None, "{t}");
    }
}

proptest! {
    #![proptest_config(config(25))]

    /// Any shape, any depth, in either template, wrapped in ordinary text and expressions:
    /// a clean answer, never a crash; past the limit always `too_deep`.
    #[test]
    fn deep_templates_never_crash(
        shape in prop::sample::select(SHAPES),
        deep in any::<bool>(),
        k in 0usize..20_000,
        system in any::<bool>(),
        prefix in prop::sample::select(vec!["", "Hello {{ x }}\n", "{% if x %}a{% endif %}", "{% set y = [1, 2] %}"]),
    ) {
        let n = if deep { shape.limit() + 1 + k } else { 1 + k % (shape.limit() / 5) };
        let template = format!("{prefix}{}", deep_template(shape, n));
        let problems = compile_problems(template, system);
        let too_deep = is_too_deep(&problems);
        if deep {
            prop_assert!(too_deep, "{:?} x {}: {:?}", shape, n, problems);
        } else {
            prop_assert!(!too_deep, "{:?} x {}: {:?}", shape, n, problems);
        }
    }

    /// Deep JSON text of any mix: parsed as HTTP parses it, then validated and rendered.
    #[test]
    fn deep_json_never_crashes(n in 1usize..400, mix in any::<bool>()) {
        small_stack(move || {
            if let Ok(value) = serde_json::from_str::<Value>(&deep_json(n, mix)) {
                let v = version("{{ j | tojson(indent=2) }}", vec![var("j", VariableType::Json)]);
                let inputs = object(json!({ "j": value.clone() }));
                if let Ok(valid) = validate_inputs(&v.variables, &inputs, &InputLimits::default()) {
                    let c = CompiledPrompt::compile(&v, &TemplateLimits::default()).expect("compiles");
                    let _ = c.render(&valid);
                }
                let _ = CompiledRules::compile(&[ValidationRule::JsonSchema { schema: value, strict: Default::default() }]);
            }
        });
    }
}
