//! Rules checked through an engine running on the store under test.

use serde_json::json;

use super::fixtures::new_user;
use crate::error::Error;
use crate::execution::ExecutionStatus;
use crate::page::PageRequest;
use crate::store::Store;

/// Concurrent updates of one prompt without `expectedVersion` all apply, each as its own
/// version; a stale `expectedVersion` is still a conflict. Runs an engine on `store`.
pub async fn engine_applies_concurrent_updates(store: std::sync::Arc<dyn Store>) {
    use crate::engine::FormaOps;
    use crate::prompt::{PromptSpec, PromptUpdate};

    let engine = FormaOps::builder(store.clone()).start().await.unwrap();
    let user = new_user(store.as_ref()).await.id;
    let spec: PromptSpec = serde_json::from_value(json!({"name": "race", "template": "v0"})).unwrap();
    let (prompt, _) = engine.create_prompt(user, spec).await.unwrap();
    for writers in [2usize, 10, 16] {
        let before = engine.get_prompt(user, prompt.id, None).await.unwrap().0.current_version;
        let tasks: Vec<_> = (0..writers)
            .map(|i| {
                let engine = engine.clone();
                let update = PromptUpdate { template: Some(format!("w{writers}-{i}")), ..Default::default() };
                tokio::spawn(async move { engine.update_prompt(user, prompt.id, update).await })
            })
            .collect();
        let mut versions = Vec::new();
        for t in tasks {
            let (_, v) = t.await.unwrap().unwrap_or_else(|e| panic!("{writers} writers: {e}"));
            versions.push(v.version);
        }
        versions.sort_unstable();
        let want: Vec<u32> = (before + 1..=before + writers as u32).collect();
        assert_eq!(versions, want, "{writers} concurrent updates: each its own version");
        let (p, _) = engine.get_prompt(user, prompt.id, None).await.unwrap();
        assert_eq!(p.current_version, before + writers as u32);
        let mut templates = std::collections::HashSet::new();
        for v in want {
            templates.insert(engine.get_prompt(user, prompt.id, Some(v)).await.unwrap().1.template);
        }
        assert_eq!(templates.len(), writers, "every update's template kept");
    }
    let stale =
        PromptUpdate { template: Some("late".into()), expected_version: Some(1), ..Default::default() };
    assert!(matches!(engine.update_prompt(user, prompt.id, stale).await, Err(Error::Conflict { .. })));
    engine.shutdown().await;
}

/// Text no store can hold (NUL) is refused by the engine before it reaches the store, with
/// the same error on every backend, naming the field; an output that cannot be stored fails
/// its execution instead of its group commit. Runs an engine (mock provider) on `store`.
pub async fn engine_refuses_unstorable_text(store: std::sync::Arc<dyn Store>) {
    use crate::engine::{ExecuteRequest, FormaOps};
    use crate::prompt::{PromptSpec, PromptUpdate};

    fn fields(r: crate::Result<impl std::fmt::Debug>) -> Vec<String> {
        match r {
            Err(Error::InvalidPrompt { problems } | Error::InvalidInputs { problems }) => {
                problems.into_iter().map(|p| format!("{} {}", p.field, p.code)).collect()
            }
            other => panic!("expected invalid prompt or inputs, got {other:?}"),
        }
    }
    let spec = |v: serde_json::Value| -> PromptSpec { serde_json::from_value(v).unwrap() };
    let engine = FormaOps::builder(store.clone()).start().await.unwrap();
    let user = new_user(store.as_ref()).await.id;

    let got = fields(
        engine
            .create_prompt(
                user,
                spec(json!({
                    "name": "nul", "description": "fine", "template": "a\0 {{ s }}",
                    "systemTemplate": "b\0",
                    "variables": [
                        {"name": "s", "type": "string", "description": "d\0", "defaultValue": "x\0"},
                        {"name": "e", "type": "enum", "values": ["ok", "n\0"]},
                        {"name": "j", "type": "json", "schema": {"properties": {"k\0": {}}}},
                    ],
                    "validations": [
                        {"type": "regex", "pattern": "p\0"},
                        {"type": "contains", "value": "c\0"},
                        {"type": "json_schema", "schema": {"const": ["z", "\0"]}},
                    ],
                    "model": {"model": "m\0", "parameters": {"stop": ["s\0"]}},
                })),
            )
            .await,
    );
    let want = [
        "template",
        "systemTemplate",
        "variables[0].description",
        "variables[0].defaultValue",
        "variables[1].values[1]",
        "variables[2].schema.properties",
        "validations[0].pattern",
        "validations[1].value",
        "validations[2].schema.const[1]",
        "model.model",
        "model.parameters.stop[0]",
    ];
    for field in want {
        let expected = format!("{field} {}", crate::text::CODE);
        assert!(got.contains(&expected), "{expected:?} missing from {got:?}");
    }
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (name, description) in [("n\0", None), ("ok", Some("d\0"))] {
        let s = spec(json!({"name": name, "description": description, "template": "t"}));
        let got = fields(engine.create_prompt(user, s).await);
        assert_eq!(got.len(), 1, "{got:?}");
    }

    let (prompt, _) = engine
        .create_prompt(
            user,
            spec(json!({
                "name": "inputs", "template": "{{ v | default('') }} {{ data | default('') }}",
                "variables": [
                    {"name": "v", "type": "string"},
                    {"name": "data", "type": "json"},
                ],
            })),
        )
        .await
        .unwrap();
    let request = |inputs: serde_json::Value| ExecuteRequest {
        prompt_id: prompt.id,
        inputs: inputs.as_object().unwrap().clone(),
        ..Default::default()
    };
    let code = crate::text::CODE;
    for (inputs, field) in [
        (json!({"v": "x\0y"}), "inputs.v".to_string()),
        (json!({"data": {"x\0y": 1}}), "inputs.data".to_string()),
        (json!({"data": {"a": [1, {"b": "\0"}]}}), "inputs.data.a[1].b".to_string()),
        (json!({"v": "ok", "data": ["\0"]}), "inputs.data[0]".to_string()),
    ] {
        let got = fields(engine.submit(user, request(inputs.clone())).await);
        assert_eq!(got, vec![format!("{field} {code}")], "inputs {inputs}");
    }
    let mut keyed = request(json!({"v": "ok"}));
    keyed.idempotency_key = Some("k\0".into());
    match engine.submit(user, keyed).await {
        Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "idempotencyKey"),
        other => panic!("expected an invalid idempotency key, got {other:?}"),
    }
    let filter = crate::store::ExecutionFilter { prompt_id: Some(prompt.id), ..Default::default() };
    let listed = store.list_executions(user, &filter, PageRequest::default()).await.unwrap();
    assert!(listed.items.is_empty(), "nothing was queued for refused inputs");

    // Valid text around the refusals works, on the same engine.
    let ok = engine
        .execute(user, request(json!({"v": "ünï \u{1} ok", "data": {"k": ["\\u0000 as text"]}})))
        .await
        .unwrap();
    assert_eq!(ok.status, ExecutionStatus::Completed, "{:?}", ok.error);

    // A template may still produce NUL at render time: the mock echoes it, and the output
    // that cannot be stored fails that execution (permanently), nothing else.
    let (echo, _) = engine
        .update_prompt(
            user,
            prompt.id,
            PromptUpdate { template: Some("x{{ \"\\u0000\" }}y".into()), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(echo.current_version, 2);
    let done =
        tokio::time::timeout(std::time::Duration::from_secs(20), engine.execute(user, request(json!({}))))
            .await
            .expect("the execution ends")
            .unwrap();
    assert_eq!(done.status, ExecutionStatus::Failed);
    assert_eq!(done.error.as_ref().map(|e| e.code.as_str()), Some("unstorable_output"));
    engine.shutdown().await;
}
