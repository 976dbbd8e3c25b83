//! Hostile-input fuzz targets for output validation: arbitrary rules, regex patterns and JSON
//! Schemas compiled, then applied to arbitrary outputs.
//!
//! Properties: no panic, no hang, bounded memory, only the documented error kinds, a verdict
//! that is consistent (one outcome per rule, `passed` = all passed, every failure has a
//! reason), and no outbound fetch for a remote `$ref`.
//!
//! Long mode: `PROPTEST_CASES=100000 cargo test -p formaops-core --release --test fuzz_validation`.

mod fuzz_support;

use std::net::TcpListener;

use formaops_core::Error;
use formaops_core::validation::{CompiledRules, ValidationRule};
use fuzz_support::{arb_json, bounded, config, hostile_string, key_string};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Compiles `rules`; if they compile, checks `output` and the verdict's consistency.
fn compile_and_check(rules: Vec<ValidationRule>, output: String) {
    bounded("rules", move || {
        let compiled = match CompiledRules::compile(&rules) {
            Ok(c) => c,
            Err(Error::InvalidPrompt { problems }) => {
                assert!(!problems.is_empty(), "InvalidPrompt without problems");
                for p in &problems {
                    assert!(!p.field.is_empty() && !p.message.is_empty(), "vague problem {p:?}");
                }
                return;
            }
            Err(other) => panic!("compile returned an undocumented error kind: {other:?}"),
        };
        let (verdict, parsed) = compiled.check(&output);
        assert_eq!(verdict.results.len(), rules.len(), "one outcome per rule");
        assert_eq!(verdict.passed, verdict.results.iter().all(|r| r.passed), "passed = all rules passed");
        for (rule, outcome) in rules.iter().zip(&verdict.results) {
            assert_eq!(outcome.rule, rule.kind(), "outcomes in rule order");
            assert_eq!(
                outcome.passed,
                outcome.reason.is_none(),
                "a failure has a reason, a pass none: {outcome:?}"
            );
        }
        if parsed.is_some() {
            assert!(compiled.wants_json(), "validated output without a JSON rule");
        }
    });
}

fn arb_pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,30}",
        "[a-z()\\[\\]{}*+?|^$\\\\.0-9,]{0,30}",
        prop::sample::select(vec![
            "(a+)+$",
            "(a|a)*b",
            "(a*)*b",
            "a{1000}{1000}{1000}",
            "(?:a{100}){100}{100}",
            "\\p{L}{1000}",
            "[\\s\\S]*x[\\s\\S]*y",
            "(",
            "[",
            "\\",
            "a{99999999}",
            "(?<n>a)\\k<n>",
            "(?=a)",
            "\\1",
            "",
            "^$",
            "(?i)(?x) # comment",
            "\\u{10ffff}",
            "[^\\x00-\\x{10ffff}]",
        ])
        .prop_map(str::to_string),
    ]
}

/// JSON Schemas built from real keywords, including recursive and remote `$ref`s.
fn arb_schema() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(json!(true)),
        Just(json!(false)),
        Just(json!({})),
        prop::sample::select(vec![
            "string", "number", "integer", "object", "array", "boolean", "null", "bogus"
        ])
        .prop_map(|t| json!({"type": t})),
        arb_pattern().prop_map(|p| json!({"type": "string", "pattern": p})),
        Just(json!({"$ref": "#"})),
        Just(json!({"$ref": "#/$defs/missing"})),
        Just(json!({"$ref": "http://127.0.0.1:9/remote.json"})),
        Just(json!({"format": "email"})),
        Just(json!({"minLength": 18446744073709551615u64})),
        Just(json!({"multipleOf": 1e-308})),
        Just(json!({"const": {"a": [1, 2, {"b": null}]}})),
        Just(json!({"enum": [1, "a", null]})),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec((key_string(), inner.clone()), 0..4).prop_map(
                |p| json!({"type": "object", "properties": p.into_iter().collect::<serde_json::Map<_, _>>()})
            ),
            inner.clone().prop_map(|i| json!({"type": "array", "items": i})),
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| json!({"anyOf": v})),
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| json!({"allOf": v})),
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| json!({"oneOf": v})),
            inner.clone().prop_map(|i| json!({"not": i})),
            inner.clone().prop_map(|i| json!({"$defs": {"n": i}, "$ref": "#/$defs/n"})),
            inner.prop_map(
                |i| json!({"additionalProperties": i, "$schema": "http://json-schema.org/draft-07/schema#"})
            ),
        ]
    })
}

fn arb_rule() -> impl Strategy<Value = ValidationRule> {
    prop_oneof![
        Just(ValidationRule::Json),
        arb_schema().prop_map(|schema| ValidationRule::JsonSchema { schema, strict: Default::default() }),
        arb_json(4).prop_map(|schema| ValidationRule::JsonSchema { schema, strict: Default::default() }),
        arb_pattern().prop_map(|pattern| ValidationRule::Regex { pattern }),
        prop_oneof![any::<usize>(), 0usize..100].prop_map(|value| ValidationRule::MinLength { value }),
        prop_oneof![any::<usize>(), 0usize..100].prop_map(|value| ValidationRule::MaxLength { value }),
        prop_oneof![".{0,8}", hostile_string()].prop_map(|value| ValidationRule::Contains { value }),
        prop_oneof![".{0,8}", hostile_string()].prop_map(|value| ValidationRule::NotContains { value }),
    ]
}

/// Outputs: JSON (plain, fenced, truncated), and text.
fn arb_output() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,200}",
        hostile_string(),
        arb_json(4).prop_map(|v| v.to_string()),
        arb_json(4).prop_map(|v| format!("```json\n{v}\n```")),
        arb_json(4).prop_map(|v| format!(
            "  Here you go:\n```\n{}\n```  ",
            serde_json::to_string_pretty(&v).unwrap_or_default()
        )),
        (arb_json(4), any::<prop::sample::Index>()).prop_map(|(v, i)| {
            let s = v.to_string();
            let cut = i.index(s.len() + 1);
            s.char_indices()
                .map(|(b, _)| b)
                .take_while(|b| *b <= cut)
                .last()
                .map_or(String::new(), |b| s[..b].to_string())
        }),
        (1usize..20_000).prop_map(|n| "a".repeat(n) + "!"),
    ]
}

proptest! {
    #![proptest_config(config(100))]

    #[test]
    fn arbitrary_rules_on_arbitrary_outputs(rules in prop::collection::vec(arb_rule(), 0..5), output in arb_output()) {
        compile_and_check(rules, output);
    }

    /// Arbitrary JSON through the rule deserializer (the REST and Python adapters' path).
    #[test]
    fn arbitrary_json_rules(raw in prop::collection::vec(arb_json(4), 0..4), output in arb_output()) {
        let rules: Vec<ValidationRule> = raw.into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect();
        compile_and_check(rules, output);
    }

    #[test]
    fn rule_shaped_json(
        kind in prop::sample::select(vec!["json", "json_schema", "regex", "min_length", "max_length", "contains", "not_contains", "x"]),
        value in arb_json(2), schema in arb_json(4), pattern in arb_json(1), output in arb_output(),
    ) {
        let raw = json!({"type": kind, "value": value, "schema": schema, "pattern": pattern});
        for candidate in [raw.clone(), json!({"type": kind, "value": value}), json!({"type": kind, "schema": schema}), json!({"type": kind, "pattern": pattern})] {
            if let Ok(rule) = serde_json::from_value::<ValidationRule>(candidate) {
                compile_and_check(vec![rule], output.clone());
            }
        }
    }
}

/// A remote `$ref` must never cause an outbound request (server-side request forgery).
#[test]
fn remote_refs_are_never_fetched() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let schemas = [
        json!({"$ref": format!("http://127.0.0.1:{port}/schema.json")}),
        json!({"$schema": format!("http://127.0.0.1:{port}/meta.json"), "type": "object"}),
        json!({"properties": {"a": {"$ref": format!("http://127.0.0.1:{port}/a.json#/x")}}}),
        json!({"$id": format!("http://127.0.0.1:{port}/root.json"), "$ref": "other.json"}),
        json!({"$dynamicRef": format!("http://127.0.0.1:{port}/d.json")}),
    ];
    for schema in schemas {
        compile_and_check(
            vec![ValidationRule::JsonSchema { schema, strict: Default::default() }],
            r#"{"a": 1}"#.to_string(),
        );
    }
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("a remote $ref was fetched: connection from {peer}"),
        Err(e) => panic!("accept: {e}"),
    }
}

#[test]
fn catastrophic_regexes_are_bounded() {
    let evil = "a".repeat(50_000) + "!";
    for pattern in
        ["(a+)+$", "(a|a)*b", "(a*)*b", "^(a|aa)+$", "(.*a){20}", "a{1000}{1000}{1000}", "(\\w+\\s?)+$"]
    {
        compile_and_check(vec![ValidationRule::Regex { pattern: pattern.to_string() }], evil.clone());
    }
}

#[test]
fn huge_and_deep_outputs_are_bounded() {
    let deep_array = "[".repeat(10_000) + &"]".repeat(10_000);
    let deep_object = "{\"a\":".repeat(10_000) + "1" + &"}".repeat(10_000);
    let big = format!("[{}]", vec!["1"; 1_000_000].join(","));
    for output in [deep_array, deep_object, big] {
        compile_and_check(
            vec![
                ValidationRule::Json,
                ValidationRule::JsonSchema {
                    schema: json!({"items": {"$ref": "#"}}),
                    strict: Default::default(),
                },
            ],
            output,
        );
    }
}
