//! Hostile-input fuzz targets for variable definitions and execution inputs.
//!
//! Arbitrary JSON into `VariableDefinition` and `check_definitions`; arbitrary (and deeply
//! nested, huge, numerous) inputs into `validate_inputs`. Properties: no panic, no hang,
//! bounded memory, only the documented error kinds, every problem named.
//!
//! Long mode: `PROPTEST_CASES=100000 cargo test -p formaops-core --release --test fuzz_variables`.

mod fuzz_support;

use formaops_core::Error;
use formaops_core::variables::{
    InputLimits, VariableDefinition, VariableType, check_definitions, validate_inputs,
};
use fuzz_support::{arb_json, bounded, config, hostile_string};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn arb_kind() -> impl Strategy<Value = VariableType> {
    prop::sample::select(vec![
        VariableType::String,
        VariableType::Number,
        VariableType::Integer,
        VariableType::Boolean,
        VariableType::Enum,
        VariableType::Json,
    ])
}

fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z_][a-z0-9_]{0,12}",
        1 => ".{0,20}",
        1 => hostile_string(),
        1 => prop::sample::select(vec!["loop", "self", "range", "v0", "true", "none", "__class__", "a.b", "a-b", "1a"])
            .prop_map(str::to_string),
    ]
}

/// A well-typed definition with arbitrary field contents.
fn arb_definition() -> impl Strategy<Value = VariableDefinition> {
    (
        arb_name(),
        arb_kind(),
        any::<bool>(),
        prop::option::of(".{0,30}"),
        prop::option::of(arb_json(3)),
        prop::option::of(prop::collection::vec(".{0,10}", 0..6)),
        prop::option::of(arb_json(4)),
        prop::option::of(prop_oneof![0usize..100, Just(usize::MAX)]),
    )
        .prop_map(|(name, kind, required, description, default_value, values, schema, max_length)| {
            VariableDefinition {
                name,
                kind,
                required,
                description,
                default_value,
                values,
                schema,
                max_length,
            }
        })
}

fn check_definitions_outcome(defs: Vec<VariableDefinition>, limits: InputLimits) -> bool {
    bounded("check_definitions", move || match check_definitions(&defs, &limits) {
        Ok(()) => true,
        Err(Error::InvalidPrompt { problems }) => {
            assert!(!problems.is_empty(), "InvalidPrompt without problems");
            for p in &problems {
                assert!(
                    !p.field.is_empty() && !p.code.as_str().is_empty() && !p.message.is_empty(),
                    "vague problem {p:?}"
                );
            }
            false
        }
        Err(other) => panic!("check_definitions returned an undocumented error kind: {other:?}"),
    })
}

/// Validates, checks the documented contract of the answer, and returns it.
fn validate(defs: Vec<VariableDefinition>, inputs: Map<String, Value>, limits: InputLimits) {
    bounded("validate_inputs", move || match validate_inputs(&defs, &inputs, &limits) {
        Ok(out) => {
            for d in defs.iter().filter(|d| d.required) {
                assert!(
                    out.contains_key(&d.name),
                    "required variable {:?} missing from accepted inputs",
                    d.name
                );
            }
            for (k, v) in &out {
                if let Value::String(s) = v {
                    assert!(s.len() <= limits.max_value_bytes, "accepted {k:?} of {} bytes", s.len());
                }
            }
        }
        Err(Error::InvalidInputs { problems }) => {
            assert!(!problems.is_empty(), "InvalidInputs without problems");
            for p in &problems {
                assert!(
                    !p.field.is_empty() && !p.code.as_str().is_empty() && !p.message.is_empty(),
                    "vague problem {p:?}"
                );
            }
        }
        Err(other) => panic!("validate_inputs returned an undocumented error kind: {other:?}"),
    });
}

fn small_limits() -> InputLimits {
    InputLimits { max_value_bytes: 256, max_total_bytes: 2048, max_variables: 8 }
}

proptest! {
    #![proptest_config(config(100))]

    /// Arbitrary JSON never panics the definition parser nor the checker.
    #[test]
    fn arbitrary_json_definitions(raw in prop::collection::vec(arb_json(4), 0..6)) {
        let parsed: Vec<VariableDefinition> =
            raw.into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect();
        check_definitions_outcome(parsed, InputLimits::default());
    }

    /// Definition-shaped JSON (right keys, wrong everything else) gets further into the parser.
    #[test]
    fn definition_shaped_json(
        name in arb_json(1), kind in arb_json(1), required in arb_json(1),
        default in arb_json(3), values in arb_json(2), schema in arb_json(4), max_length in arb_json(1),
    ) {
        let raw = json!({
            "name": name, "type": kind, "required": required, "defaultValue": default,
            "values": values, "schema": schema, "maxLength": max_length,
        });
        if let Ok(d) = serde_json::from_value::<VariableDefinition>(raw) {
            check_definitions_outcome(vec![d], InputLimits::default());
        }
    }

    /// Well-typed definitions with arbitrary contents, then arbitrary inputs against them.
    #[test]
    fn definitions_then_inputs(
        defs in prop::collection::vec(arb_definition(), 0..8),
        inputs in prop::collection::vec((arb_name(), arb_json(4)), 0..10),
        small in any::<bool>(),
    ) {
        let limits = if small { small_limits() } else { InputLimits::default() };
        if check_definitions_outcome(defs.clone(), limits) {
            validate(defs, inputs.into_iter().collect(), limits);
        }
    }

    /// Inputs named like the declared variables (so type checks run) with arbitrary values.
    #[test]
    fn typed_inputs(
        kinds in prop::collection::vec((arb_kind(), any::<bool>()), 1..6),
        values in prop::collection::vec(prop::option::of(arb_json(3)), 1..6),
    ) {
        let defs: Vec<VariableDefinition> = kinds
            .iter()
            .enumerate()
            .map(|(i, (kind, required))| VariableDefinition {
                name: format!("v{i}"),
                kind: *kind,
                required: *required,
                description: None,
                default_value: None,
                values: (*kind == VariableType::Enum).then(|| vec!["a".to_string(), "b".to_string()]),
                schema: None,
                max_length: None,
            })
            .collect();
        let inputs: Map<String, Value> = values
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (format!("v{i}"), v)))
            .collect();
        if check_definitions_outcome(defs.clone(), InputLimits::default()) {
            validate(defs, inputs, InputLimits::default());
        }
    }
}

/// Builds `[[[...]]]` (or `{"a":{"a":...}}`) `depth` levels deep without recursion.
fn nested(depth: usize, object: bool) -> Value {
    let mut v = json!("leaf");
    for _ in 0..depth {
        v = if object { json!({ "a": v }) } else { Value::Array(vec![v]) };
    }
    v
}

/// Drops a deep value iteratively (serde_json's recursive drop could overflow the test thread
/// on its own, which would blame the wrong code).
fn drop_deep(v: Value) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(a) => stack.extend(a),
            Value::Object(o) => stack.extend(o.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

/// Depths an adapter can deliver: serde_json (REST bodies, the Python bindings' JSON) stops
/// parsing at 128 levels, so deeper values only exist if an embedding program builds them
/// itself. The REST suite (reliability/) sends 10,000 levels over HTTP.
#[test]
fn deeply_nested_json_inputs_are_bounded() {
    for (depth, object) in [(64, false), (127, false), (127, true)] {
        for schema in [
            None,
            Some(json!({"type": "array"})),
            Some(
                json!({"$ref": "#/$defs/n", "$defs": {"n": {"items": {"$ref": "#/$defs/n"}, "properties": {"a": {"$ref": "#/$defs/n"}}}}}),
            ),
        ] {
            bounded(&format!("nested {depth} object={object} schema={}", schema.is_some()), move || {
                let defs = vec![VariableDefinition {
                    name: "j".into(),
                    kind: VariableType::Json,
                    required: true,
                    description: None,
                    default_value: None,
                    values: None,
                    schema,
                    max_length: None,
                }];
                let mut inputs = Map::new();
                inputs.insert("j".into(), nested(depth, object));
                let result = validate_inputs(&defs, &inputs, &InputLimits::default());
                if let Err(e) = &result {
                    assert!(matches!(e, Error::InvalidInputs { .. }), "undocumented error kind: {e:?}");
                }
                if let Ok(out) = result {
                    for (_, v) in out {
                        drop_deep(v);
                    }
                }
                for (_, v) in inputs {
                    drop_deep(v);
                }
            });
        }
    }
}

#[test]
fn thousands_of_variables_and_huge_values_are_rejected_cleanly() {
    let limits = InputLimits::default();
    // Thousands of declared variables: over max_variables.
    let defs: Vec<VariableDefinition> = (0..5_000)
        .map(|i| VariableDefinition {
            name: format!("v{i}"),
            kind: VariableType::String,
            required: false,
            description: None,
            default_value: None,
            values: None,
            schema: None,
            max_length: None,
        })
        .collect();
    match check_definitions(&defs, &limits) {
        Err(Error::InvalidPrompt { problems }) => {
            assert!(
                problems.iter().any(|p| p.code == "too_large" || p.message.contains("variables")),
                "{problems:?}"
            )
        }
        other => panic!("5000 variable definitions were not rejected: {other:?}"),
    }
    // Thousands of inputs against one declared variable.
    let one = vec![defs[0].clone()];
    let inputs: Map<String, Value> = (0..5_000).map(|i| (format!("v{i}"), json!("x"))).collect();
    assert!(
        matches!(validate_inputs(&one, &inputs, &limits), Err(Error::InvalidInputs { .. })),
        "5000 inputs were accepted"
    );
    // One value far over max_value_bytes.
    let mut huge = Map::new();
    huge.insert("v0".into(), Value::String("x".repeat(limits.max_value_bytes * 16)));
    match validate_inputs(&one, &huge, &limits) {
        Err(Error::InvalidInputs { problems }) => {
            assert!(problems.iter().any(|p| p.field.contains("v0")), "problem does not name v0: {problems:?}")
        }
        other => {
            panic!("a {} byte value was accepted: {:?}", limits.max_value_bytes * 16, other.map(|m| m.len()))
        }
    }
}
