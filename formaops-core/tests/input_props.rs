//! Property tests for input validation: any valid input set validates (and comes back with
//! defaults filled in); any single corruption is reported, alone, under that variable's name.

mod common;

use common::var;
use formaops_core::Error;
use formaops_core::variables::{
    InputLimits, VariableDefinition, VariableType, check_definitions, validate_inputs,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// One declared variable with a valid value for it (or `None`: omitted when optional).
#[derive(Debug, Clone)]
struct Case {
    def: VariableDefinition,
    value: Option<Value>,
}

fn kind() -> impl Strategy<Value = VariableType> {
    prop_oneof![
        Just(VariableType::String),
        Just(VariableType::Number),
        Just(VariableType::Integer),
        Just(VariableType::Boolean),
        Just(VariableType::Enum),
        Just(VariableType::Json),
    ]
}

fn value_for(kind: VariableType, values: Vec<String>) -> BoxedStrategy<Value> {
    match kind {
        VariableType::String => "\\PC{0,40}".prop_map(Value::from).boxed(),
        VariableType::Number => {
            prop_oneof![any::<i64>().prop_map(Value::from), (-1e12f64..1e12).prop_map(|f| json!(f)),].boxed()
        }
        VariableType::Integer => any::<i64>().prop_map(Value::from).boxed(),
        VariableType::Boolean => any::<bool>().prop_map(Value::from).boxed(),
        VariableType::Enum => proptest::sample::select(values).prop_map(Value::from).boxed(),
        VariableType::Json => prop_oneof![
            Just(Value::Null),
            any::<i32>().prop_map(Value::from),
            "[a-z]{0,8}".prop_map(Value::from),
            proptest::collection::vec(any::<u8>(), 0..5).prop_map(|v| json!(v)),
            ("[a-z]{1,5}", any::<bool>()).prop_map(|(k, b)| json!({ k: b })),
        ]
        .boxed(),
    }
}

fn case(index: usize) -> impl Strategy<Value = Case> {
    (kind(), any::<bool>(), any::<bool>(), any::<bool>(), proptest::collection::btree_set("[a-z]{1,6}", 1..4))
        .prop_flat_map(move |(kind, required, has_default, supplied, enum_values)| {
            let values: Vec<String> = enum_values.into_iter().collect();
            let mut def = var(&format!("v{index}"), kind);
            def.required = required;
            if kind == VariableType::Enum {
                def.values = Some(values.clone());
            }
            let default = value_for(kind, values.clone());
            let value = value_for(kind, values);
            (Just(def), Just(has_default), Just(supplied), default, value)
        })
        .prop_map(|(mut def, has_default, supplied, default, value)| {
            if has_default {
                def.default_value = Some(default);
            }
            // A required variable without a default must be supplied to be valid.
            let must_supply = def.required && def.default_value.is_none();
            Case { def, value: (supplied || must_supply).then_some(value) }
        })
}

fn cases() -> impl Strategy<Value = Vec<Case>> {
    (1usize..=8).prop_flat_map(|n| (0..n).map(case).collect::<Vec<_>>())
}

fn inputs_of(cases: &[Case]) -> Map<String, Value> {
    cases.iter().filter_map(|c| c.value.clone().map(|v| (c.def.name.clone(), v))).collect()
}

fn defs_of(cases: &[Case]) -> Vec<VariableDefinition> {
    cases.iter().map(|c| c.def.clone()).collect()
}

/// A value of the wrong JSON type for `kind` (None for `json`, which accepts any value).
fn wrong_value(kind: VariableType) -> Option<Value> {
    match kind {
        VariableType::String | VariableType::Enum => Some(json!(3)),
        VariableType::Number | VariableType::Integer => Some(json!("3")),
        VariableType::Boolean => Some(json!("true")),
        VariableType::Json => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_valid_input_set_validates(cases in cases()) {
        let defs = defs_of(&cases);
        let limits = InputLimits::default();
        prop_assert!(check_definitions(&defs, &limits).is_ok());
        let out = validate_inputs(&defs, &inputs_of(&cases), &limits);
        prop_assert!(out.is_ok(), "{out:?}");
        let out = out.unwrap_or_default();
        for c in &cases {
            let expected = c.value.clone().or_else(|| c.def.default_value.clone());
            prop_assert_eq!(out.get(&c.def.name), expected.as_ref(), "variable {}", c.def.name);
        }
        prop_assert!(out.keys().all(|k| cases.iter().any(|c| &c.def.name == k)));
    }

    #[test]
    fn a_single_corruption_is_reported_by_name(
        cases in cases(),
        pick in any::<prop::sample::Index>(),
        how in 0u8..4,
    ) {
        let defs = defs_of(&cases);
        let mut inputs = inputs_of(&cases);
        let target = &cases[pick.index(cases.len())].def;
        let (field, code) = match how {
            // An unknown variable.
            0 => {
                inputs.insert("zz_unknown".into(), json!(1));
                ("inputs.zz_unknown".to_string(), "unknown")
            }
            // A missing required variable (made required, default removed).
            1 => {
                let mut defs = defs.clone();
                let i = defs.iter().position(|d| d.name == target.name).unwrap_or(0);
                defs[i].required = true;
                defs[i].default_value = None;
                inputs.remove(&target.name);
                let err = validate_inputs(&defs, &inputs, &InputLimits::default());
                let problems = match err {
                    Err(Error::InvalidInputs { problems }) => problems,
                    other => return Err(TestCaseError::fail(format!("expected InvalidInputs, got {other:?}"))),
                };
                prop_assert_eq!(problems.len(), 1, "{:?}", problems);
                prop_assert_eq!(&problems[0].field, &format!("inputs.{}", target.name));
                prop_assert_eq!(problems[0].code.as_str(), "missing");
                return Ok(());
            }
            // A value of the wrong type (json accepts anything: make it too large instead).
            2 => match wrong_value(target.kind) {
                Some(v) => {
                    inputs.insert(target.name.clone(), v);
                    (format!("inputs.{}", target.name), "wrong_type")
                }
                None => {
                    inputs.insert(target.name.clone(), json!("x".repeat(InputLimits::default().max_value_bytes)));
                    (format!("inputs.{}", target.name), "too_large")
                }
            },
            // An oversized value (string-like types) or a value outside the type's domain.
            _ => match target.kind {
                VariableType::String | VariableType::Json => {
                    inputs.insert(target.name.clone(), json!("x".repeat(InputLimits::default().max_value_bytes + 1)));
                    (format!("inputs.{}", target.name), "too_large")
                }
                VariableType::Enum => {
                    inputs.insert(target.name.clone(), json!("NOT-A-VALUE"));
                    (format!("inputs.{}", target.name), "not_in_enum")
                }
                VariableType::Integer => {
                    inputs.insert(target.name.clone(), json!(0.5));
                    (format!("inputs.{}", target.name), "wrong_type")
                }
                VariableType::Number | VariableType::Boolean => {
                    inputs.insert(target.name.clone(), Value::Null);
                    (format!("inputs.{}", target.name), "wrong_type")
                }
            },
        };
        let problems = match validate_inputs(&defs, &inputs, &InputLimits::default()) {
            Err(Error::InvalidInputs { problems }) => problems,
            other => return Err(TestCaseError::fail(format!("expected InvalidInputs, got {other:?}"))),
        };
        prop_assert_eq!(problems.len(), 1, "{:?}", problems);
        prop_assert_eq!(&problems[0].field, &field);
        prop_assert_eq!(problems[0].code.as_str(), code);
    }
}
