//! Hostile templates: each must end with an error (at compile or render time) instead of
//! hanging or exhausting memory. There are no timing assertions: the suite simply must finish
//! (each case is bounded by fuel, recursion and size limits, so it does so in milliseconds).
//! All cases run with the default limits, as the engine uses them.
//!
//! The two operations minijinja 3.1 performs before charging fuel (list concatenation with
//! `+`, which materialises 2^n items when doubled, and `~` with a container operand, which is
//! formatted in full) are rejected when the template is compiled unless their operands are
//! known to be bounded (see `formaops_core::template`).

mod common;

use common::{object, var, version};
use formaops_core::Error;
use formaops_core::template::{CompiledPrompt, TemplateLimits};
use formaops_core::variables::{InputLimits, VariableType, validate_inputs};
use serde_json::json;

/// Compiles and renders `template` with one string variable `s` of `s_len` bytes (the largest
/// a default-limited input can be) and returns the error it must produce.
fn must_fail(template: &str) -> Error {
    let s_len = InputLimits::default().max_value_bytes;
    let v = version(template, vec![var("s", VariableType::String)]);
    let inputs = object(json!({ "s": "y".repeat(s_len) }));
    let inputs = validate_inputs(&v.variables, &inputs, &InputLimits::default()).expect("inputs are valid");
    let compiled = match CompiledPrompt::compile(&v, &TemplateLimits::default()) {
        Ok(c) => c,
        Err(e) => return e,
    };
    match compiled.render(&inputs) {
        Ok(messages) => panic!(
            "hostile template rendered {} bytes instead of failing: {template}",
            messages.iter().map(|m| m.content.len()).sum::<usize>()
        ),
        Err(e) => e,
    }
}

fn render_message(template: &str) -> String {
    match must_fail(template) {
        Error::Render { message } => message,
        other => panic!("expected a render error for {template}, got {other}"),
    }
}

#[test]
fn huge_string_multiplication() {
    // Above minijinja's own 100 MB repeat cap.
    let m = render_message(r#"{{ "x" * 1000000000 }}"#);
    assert!(m.contains("too large") || m.contains("fuel"), "{m}");
    // Below that cap: fuel is checked before allocating.
    let m = render_message(r#"{{ "x" * 50000000 }}"#);
    assert!(m.contains("fuel"), "{m}");
    let m = render_message(r#"{{ s * 1000 }}"#);
    assert!(m.contains("fuel"), "{m}");
    let m = render_message(r#"{{ (s * 10) * 10 }}"#);
    assert!(m.contains("fuel"), "{m}");
}

#[test]
fn huge_list_multiplication() {
    let m = render_message(r#"{{ ([s] * 100000000) | join }}"#);
    assert!(m.contains("larger than"), "{m}");
    let m = render_message(r#"{{ ([1] * 1000000000) | length }}"#);
    assert!(m.contains("fuel") || m.contains("too large"), "{m}");
}

#[test]
fn huge_range() {
    let m = render_message(r#"{% for i in range(1000000000) %}{% endfor %}"#);
    assert!(m.contains("too many elements"), "{m}");
    let m = render_message(r#"{{ range(10 ** 9) | list | length }}"#);
    assert!(m.contains("too many elements") || m.contains("fuel"), "{m}");
    // Within minijinja's range cap, the loop still runs out of fuel.
    let m = render_message(r#"{% for i in range(100000) %}{{ i }}{% endfor %}"#);
    assert!(m.contains("fuel"), "{m}");
}

#[test]
fn nested_loops() {
    let m = render_message(
        r#"{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100000) %}{% endfor %}{% endfor %}{% endfor %}"#,
    );
    assert!(m.contains("fuel"), "{m}");
    let m = render_message(
        r#"{% for a in range(1000) %}{% for b in range(1000) %}{% if a == b %}{% continue %}{% endif %}{% endfor %}{% endfor %}"#,
    );
    assert!(m.contains("fuel"), "{m}");
}

#[test]
fn string_doubling_in_a_loop() {
    let m = render_message(
        r#"{% set ns = namespace(s=s) %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}"#,
    );
    assert!(m.contains("fuel"), "{m}");
    let m = render_message(
        r#"{% set ns = namespace(s="x") %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}"#,
    );
    assert!(m.contains("fuel") || m.contains("invalid operation"), "{m}");
}

#[test]
fn huge_containers_are_not_turned_into_text() {
    // Nested literals: 10^4 references to a 64 KB string, formatted only on demand.
    let nested = r#"{% set a = [s,s,s,s,s,s,s,s,s,s] %}{% set b = [a,a,a,a,a,a,a,a,a,a] %}{% set c = [b,b,b,b,b,b,b,b,b,b] %}{% set d = [c,c,c,c,c,c,c,c,c,c] %}"#;
    for tail in [
        "{{ d }}",
        "{{ d | string }}",
        "{{ d | tojson }}",
        "{{ d | pprint }}",
        "{{ d | join }}",
        "{{ d | max }}",
    ] {
        let m = render_message(&format!("{nested}{tail}"));
        assert!(m.contains("too large"), "{tail}: {m}");
    }
    let m = render_message(r#"{{ [s] * 100000 }}"#);
    assert!(m.contains("too large"), "{m}");
    let m = render_message(r#"{{ dict(a=[s] * 100000) | string }}"#);
    assert!(m.contains("too large"), "{m}");
    let m = render_message(r#"{{ ([s] * 100000) | sum(start="") }}"#);
    assert!(m.contains("only adds numbers"), "{m}");
    let m = render_message(r#"{{ ([1] * 1000000) | sum }}"#);
    assert!(m.contains("too many items"), "{m}");
}

#[test]
fn removed_helpers_are_unknown() {
    for t in [r#"{{ "%s" | format(s) }}"#, r#"{{ [s] | chain([s]) | list }}"#] {
        let m = render_message(t);
        assert!(m.contains("unknown"), "{t}: {m}");
    }
    let e = must_fail(r#"{{ debug() }}"#);
    assert!(matches!(&e, Error::InvalidPrompt { problems } if problems[0].code == "undeclared"), "{e}");
}

#[test]
fn captured_block_doubling() {
    let m = render_message(
        r#"{% set ns = namespace(s=s) %}{% for i in range(64) %}{% set b %}{{ ns.s }}{{ ns.s }}{% endset %}{% set ns.s = b %}{% endfor %}{{ ns.s }}"#,
    );
    assert!(m.contains("fuel"), "{m}");
}

#[test]
fn deep_recursion_via_macros() {
    let m = render_message(r#"{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"#);
    assert!(m.contains("recursion"), "{m}");
    // Two-way recursion.
    let e = must_fail(
        r#"{% macro a(n) %}{{ b(n) }}{% endmacro %}{% macro b(n) %}{{ a(n) }}{% endmacro %}{{ a(0) }}"#,
    );
    assert!(
        matches!(&e, Error::Render { message } if message.contains("recursion"))
            || matches!(&e, Error::InvalidPrompt { .. }),
        "{e}"
    );
    // Exponential fan-out within the recursion limit.
    let m = render_message(
        r#"{% macro f(n) %}{% if n < 10 %}{{ f(n + 1) }}{{ f(n + 1) }}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}{% endmacro %}{{ f(0) }}"#,
    );
    assert!(m.contains("fuel") || m.contains("recursion limit"), "{m}");
}

#[test]
fn recursive_loop() {
    let m = render_message(r#"{% for x in [[1], [2]] recursive %}{{ loop([x, x]) }}{% endfor %}"#);
    assert!(m.contains("recursion") || m.contains("fuel"), "{m}");
    // Each level wrapping the items in a new list: refused when compiled (nesting).
    let e = must_fail(r#"{% for x in [[1], [2]] recursive %}{{ loop([[x], [x]]) }}{% endfor %}"#);
    assert!(matches!(&e, Error::InvalidPrompt { problems } if problems[0].code == "unbounded"), "{e}");
}

#[test]
fn output_multiplying_arguments_are_checked_before_allocating() {
    // Issue 12 item 3: 1,000 items pretty-printed with a 600,000-space indent built > 1 GiB
    // before fuel ran out. The bound is checked before anything is serialised.
    let m = render_message(r#"{{ range(1000) | list | tojson(indent=600000) | length }}"#);
    assert!(m.contains("indent 600000") && m.contains("bytes"), "{m}");
    let m = render_message(r#"{{ range(1000) | list | tojson(600000) }}"#);
    assert!(m.contains("indent 600000"), "{m}");
    let m = render_message(r#"{{ [[[[s]]]] | tojson(indent=100000) }}"#);
    assert!(m.contains("indent 100000"), "{m}");
    let m = render_message(r#"{{ range(20000) | list | pprint }}"#);
    assert!(m.contains("pprint") || m.contains("too large"), "{m}");
    // The indent, center-like padding and repetition arguments minijinja checks itself first.
    let m = render_message(r#"{{ ("a\n" * 1000) | indent(100000000) }}"#);
    assert!(m.contains("fuel"), "{m}");
    let m = render_message(r#"{{ ([1] | batch(100000000, "x")) | length }}"#);
    assert!(m.contains("fuel"), "{m}");
    let m = render_message(r#"{{ ([1] | slice(100000000)) | length }}"#);
    assert!(m.contains("fuel"), "{m}");
    let m = render_message(r#"{{ ("ab" * 100000000) | length }}"#);
    assert!(m.contains("fuel") || m.contains("too large"), "{m}");
}

#[test]
fn ordinary_pretty_printing_still_works() {
    let v = version(
        "{{ j | tojson(indent=2) }}|{{ j | tojson(indent=true) }}|{{ j | tojson }}|{{ [1] | pprint }}",
        vec![var("j", VariableType::Json)],
    );
    let c = CompiledPrompt::compile(&v, &TemplateLimits::default()).expect("compiles");
    let inputs = object(json!({ "j": {"a": [1, 2]} }));
    let out = c.render(&inputs).expect("renders");
    assert_eq!(
        out[0].content,
        "{\n  \"a\": [\n    1,\n    2\n  ]\n}|{\n  \"a\": [\n    1,\n    2\n  ]\n}|{\"a\": [1, 2]}|[\n    1,\n]"
    );
}

#[test]
fn amplifying_filters() {
    // Quadratic: every position of a 64 KB string replaced by the string itself.
    let m = render_message(r#"{{ s | replace("", s) }}"#);
    assert!(m.contains("fuel"), "{m}");
    let m = render_message(r#"{{ s | replace("y", s) }}"#);
    assert!(m.contains("fuel"), "{m}");
    let m = render_message(r#"{{ range(100000) | join(s) }}"#);
    assert!(m.contains("larger than"), "{m}");
    let m = render_message(r#"{{ ((s ~ "\n") * 20) | indent(100000) }}"#);
    assert!(m.contains("fuel") || m.contains("byte limit"), "{m}");
    let m = render_message(r#"{{ ([s, s, s, s, s, s, s, s, s, s] * 10) | tojson }}"#);
    assert!(m.contains("too large"), "{m}");
    let m = render_message(r#"{{ range(100000) | list | sort(reverse=true) | join(",") }}"#);
    assert!(m.contains("fuel"), "{m}");
    let m = render_message(r#"{{ ([s] * 1000) | join }}"#);
    assert!(m.contains("larger than"), "{m}");
}

#[test]
fn output_larger_than_the_cap() {
    // 5 x 64 KB = 320 KB of output: within fuel, above the 256 KB output cap.
    let m = render_message(r#"{{ s }}{{ s }}{{ s }}{{ s }}{{ s }}"#);
    assert!(m.contains("byte limit") || m.contains("fuel"), "{m}");
}

#[test]
fn deeply_nested_syntax_is_rejected_at_compile() {
    // Every shape of deep nesting is covered by `tests/deep_inputs.rs`.
    let template = format!("{{{{ {}s{} }}}}", "(".repeat(5000), ")".repeat(5000));
    let e = must_fail(&template);
    assert!(matches!(&e, Error::InvalidPrompt { problems } if problems[0].code == "too_deep"), "{e}");
    let template = format!("{}{}", "{% if true %}".repeat(2000), "{% endif %}".repeat(2000));
    let e = must_fail(&template);
    assert!(matches!(&e, Error::InvalidPrompt { problems } if problems[0].code == "too_deep"), "{e}");
}

#[test]
fn includes_and_imports_cannot_reach_anything() {
    let e = must_fail(r#"{% include "/etc/passwd" %}"#);
    assert!(matches!(&e, Error::Render { message } if message.contains("not found")), "{e}");
    let e = must_fail(r#"{% extends "user" %}"#);
    assert!(matches!(&e, Error::Render { .. } | Error::InvalidPrompt { .. }), "{e}");
}

/// The error must be an `unbounded` problem of the template, found at compile time.
fn assert_unbounded(template: &str) {
    let e = must_fail(template);
    assert!(
        matches!(&e, Error::InvalidPrompt { problems }
            if problems.iter().any(|p| p.field == "template" && p.code == "unbounded")),
        "{template}: {e}"
    );
}

#[test]
fn list_doubling_is_rejected_at_compile() {
    // Through a namespace in a loop: 2^64 items once materialised.
    assert_unbounded(
        r#"{% set ns = namespace(l=[s]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}"#,
    );
    // A run of `set` lines, no loop at all.
    let mut t = String::from("{% set a = [s] %}");
    for _ in 0..64 {
        t.push_str("{% set a = a + a %}");
    }
    t.push_str("{{ a | length }}");
    assert_unbounded(&t);
    // Tuples concatenate too, and the doubling may go through other names.
    assert_unbounded(
        r#"{% set a = (s,) %}{% for i in range(64) %}{% set b = a %}{% set a = b + b %}{% endfor %}{{ a | length }}"#,
    );
    // Starting from a namespace attribute that only later becomes a list.
    assert_unbounded(
        r#"{% set ns = namespace(l="") %}{% set ns.l = [s] %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}"#,
    );
    // Through a loop variable and a macro argument.
    assert_unbounded(r#"{% for x in [[s]] %}{% set x = x + x %}{{ x | length }}{% endfor %}"#);
    assert_unbounded(r#"{% macro f(l) %}{{ f(l + l) }}{% endmacro %}{{ f([s]) }}"#);
    // A recursive loop can hand its next level any list.
    assert_unbounded(r#"{% for x in [[s]] recursive %}{{ "" ~ x }}{{ loop([[s] * 100000]) }}{% endfor %}"#);
}

#[test]
fn huge_container_concatenated_to_text_is_rejected_at_compile() {
    assert_unbounded(r#"{{ "" ~ ([s] * 100000) }}"#);
    assert_unbounded(r#"{% set l = [s] * 100000 %}{{ l ~ "" }}"#);
    assert_unbounded(
        r#"{% set a = [s,s,s,s,s,s,s,s,s,s] %}{% set b = [a,a,a,a,a,a,a,a,a,a] %}{% set c = [b,b,b,b,b,b,b,b,b,b] %}{{ "" ~ c }}"#,
    );
    assert_unbounded(r#"{% set d = dict(a=[s] * 100000) %}{{ "x" ~ d }}"#);
    assert_unbounded(r#"{% set ns = namespace(l=[s] * 100000) %}{{ "x" ~ ns.l }}"#);
}
