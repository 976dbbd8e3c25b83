//! Labels, promotion, the promotion guard, execution by label and diffs, through the real
//! router over the in-memory store and the mock provider.

#![allow(clippy::unwrap_used)]

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use support::TestApp;

fn labels_of(body: &Value) -> Vec<(String, u64)> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["name"].as_str().unwrap().to_string(), l["version"].as_u64().unwrap()))
        .collect()
}

fn pairs(v: &[(&str, u64)]) -> Vec<(String, u64)> {
    v.iter().map(|(n, k)| (n.to_string(), *k)).collect()
}

#[tokio::test]
async fn label_promote_execute_roll_back_and_history() {
    let app = TestApp::new().await;
    let t = app.alice.as_str();
    let id = app.prompt(t, "labelled").await;
    let base = format!("/api/prompts/{id}");

    // A new prompt has `production` on version 1; `latest` is built in.
    let r = app.get(&format!("{base}/labels"), t).await.expect(StatusCode::OK);
    assert_eq!(labels_of(&r.body), pairs(&[("latest", 1), ("production", 1)]));

    // An update leaves `production` where it is.
    app.call(Method::PUT, &base, Some(t), Some(json!({"template": "Write twice about {{ topic }}."})))
        .await
        .expect(StatusCode::OK);
    let r = app.get(&format!("{base}/labels"), t).await.expect(StatusCode::OK);
    assert_eq!(labels_of(&r.body), pairs(&[("latest", 2), ("production", 1)]));

    // Label v2 staging, read and execute by label.
    app.call(Method::PUT, &format!("{base}/labels/staging"), Some(t), Some(json!({"version": 2})))
        .await
        .expect(StatusCode::OK);
    let r = app.get(&format!("{base}?label=staging"), t).await.expect(StatusCode::OK);
    assert_eq!(r.body["version"]["version"], 2);
    let r = app.get(&format!("{base}?label=production"), t).await.expect(StatusCode::OK);
    assert_eq!(r.body["version"]["version"], 1);
    let exec = |label: &'static str| {
        let app = &app;
        let base = base.clone();
        async move {
            app.post(&format!("{base}/execute"), t, json!({"label": label, "inputs": {"topic": "owls"}}))
                .await
        }
    };
    let r = exec("production").await.expect(StatusCode::OK);
    assert_eq!(r.body["promptVersion"], 1);

    // Promote, execute, roll back, execute.
    app.call(Method::PUT, &format!("{base}/labels/production"), Some(t), Some(json!({"version": 2})))
        .await
        .expect(StatusCode::OK);
    assert_eq!(exec("production").await.expect(StatusCode::OK).body["promptVersion"], 2);
    app.call(Method::PUT, &format!("{base}/labels/production"), Some(t), Some(json!({"version": 1})))
        .await
        .expect(StatusCode::OK);
    assert_eq!(exec("production").await.expect(StatusCode::OK).body["promptVersion"], 1);
    assert_eq!(exec("latest").await.expect(StatusCode::OK).body["promptVersion"], 2);

    // Every move is listed, newest first, with who moved it.
    let r = app.get(&format!("{base}/label-history?label=production"), t).await.expect(StatusCode::OK);
    let steps: Vec<(Value, Value)> =
        r.body["items"].as_array().unwrap().iter().map(|m| (m["from"].clone(), m["to"].clone())).collect();
    assert_eq!(steps, [(json!(2), json!(1)), (json!(1), json!(2)), (Value::Null, json!(1))]);
    assert!(r.body["items"][0]["actor"].is_string());

    // Delete staging; then it resolves nowhere.
    app.call(Method::DELETE, &format!("{base}/labels/staging"), Some(t), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    app.get(&format!("{base}?label=staging"), t).await.expect(StatusCode::NOT_FOUND);
    exec("staging").await.expect(StatusCode::NOT_FOUND);
    app.call(Method::DELETE, &format!("{base}/labels/staging"), Some(t), None)
        .await
        .expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn label_errors() {
    let app = TestApp::new().await;
    let t = app.alice.as_str();
    let id = app.prompt(t, "label-errors").await;
    let base = format!("/api/prompts/{id}");

    // `version` and `label` are exclusive, in the body and in the query.
    let r = app
        .post(
            &format!("{base}/execute"),
            t,
            json!({"version": 1, "label": "production", "inputs": {"topic": "x"}}),
        )
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert!(r.text.contains("version") && r.text.contains("label"), "{}", r.text);
    let r = app.get(&format!("{base}?version=1&label=production"), t).await.expect(StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["details"]["field"], "version, label");

    // `latest` is built in; names are checked; versions must exist.
    let a = &app;
    let put = |name: &str, body: Value| {
        let path = format!("{base}/labels/{name}");
        async move { a.call(Method::PUT, &path, Some(t), Some(body)).await }
    };
    put("latest", json!({"version": 1})).await.expect(StatusCode::BAD_REQUEST);
    put("Prod", json!({"version": 1})).await.expect(StatusCode::BAD_REQUEST);
    put("staging", json!({"version": 9})).await.expect(StatusCode::NOT_FOUND);
    app.call(Method::DELETE, &format!("{base}/labels/latest"), Some(t), None)
        .await
        .expect(StatusCode::BAD_REQUEST);

    // Another user sees no labels.
    app.get(&format!("{base}/labels"), &app.bob).await.expect(StatusCode::NOT_FOUND);
    app.call(Method::PUT, &format!("{base}/labels/staging"), Some(&app.bob), Some(json!({"version": 1})))
        .await
        .expect(StatusCode::NOT_FOUND);

    // A prompt created with `"labels": []` has no production label.
    let bare = app.prompt_with(t, json!({"name": "bare", "template": "hi", "labels": []})).await;
    let r = app.get(&format!("/api/prompts/{bare}/labels"), t).await.expect(StatusCode::OK);
    assert_eq!(labels_of(&r.body), pairs(&[("latest", 1)]));
    app.post("/api/prompts", t, json!({"name": "bad-labels", "template": "hi", "labels": ["latest"]}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    app.get("/api/prompts?limit=200", t).await.expect(StatusCode::OK);
}

#[tokio::test]
async fn promotion_guard_refuses_with_reasons() {
    let app = TestApp::new().await;
    let t = app.alice.as_str();
    let id = app.prompt(t, "guarded").await;
    let base = format!("/api/prompts/{id}");
    let r = app.get(&format!("{base}/label-settings"), t).await.expect(StatusCode::OK);
    assert_eq!(r.body, json!({"guardProduction": false}));
    app.call(Method::PUT, &format!("{base}/label-settings"), Some(t), Some(json!({"guardProduction": true})))
        .await
        .expect(StatusCode::OK);

    // v2 adds a required variable without a default: refused, with the reason.
    app.call(
        Method::PUT,
        &base,
        Some(t),
        Some(json!({
            "template": "Write about {{ topic }} in {{ lang }}.",
            "variables": [{"name": "topic", "type": "string", "required": true},
                          {"name": "lang", "type": "string", "required": true}],
        })),
    )
    .await
    .expect(StatusCode::OK);
    let r = app
        .call(Method::PUT, &format!("{base}/labels/production"), Some(t), Some(json!({"version": 2})))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["error"]["details"]["problems"][0]["field"], "variables.lang");
    assert_eq!(r.body["error"]["details"]["problems"][0]["code"], "new_required");
    // Other labels are not guarded.
    app.call(Method::PUT, &format!("{base}/labels/staging"), Some(t), Some(json!({"version": 2})))
        .await
        .expect(StatusCode::OK);

    // v3 gives it a default: accepted.
    app.call(
        Method::PUT,
        &base,
        Some(t),
        Some(json!({
            "variables": [{"name": "topic", "type": "string", "required": true},
                          {"name": "lang", "type": "string", "required": true, "defaultValue": "English"}],
        })),
    )
    .await
    .expect(StatusCode::OK);
    app.call(Method::PUT, &format!("{base}/labels/production"), Some(t), Some(json!({"version": 3})))
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn diff_by_version_and_label() {
    let app = TestApp::new().await;
    let t = app.alice.as_str();
    let id = app.prompt(t, "diffed").await;
    let base = format!("/api/prompts/{id}");
    app.call(
        Method::PUT,
        &base,
        Some(t),
        Some(json!({
            "template": "Write a poem about {{ topic }}.",
            "systemTemplate": "Be brief.",
            "variables": [{"name": "topic", "type": "string", "required": true},
                          {"name": "tone", "type": "enum", "values": ["dry", "warm"]}],
            "validations": [{"type": "max_length", "value": 500}],
            "model": {"model": "gpt-4o", "parameters": {"temperature": 0.5}},
        })),
    )
    .await
    .expect(StatusCode::OK);

    let r = app.get(&format!("{base}/diff?from=production&to=2"), t).await.expect(StatusCode::OK);
    assert_eq!((r.body["from"].clone(), r.body["to"].clone()), (json!(1), json!(2)));
    let template = r.body["template"].as_str().unwrap();
    assert!(template.contains("-Write about {{ topic }}."), "{template}");
    assert!(template.contains("+Write a poem about {{ topic }}."), "{template}");
    assert!(r.body["systemTemplate"].as_str().unwrap().contains("+Be brief."));
    assert_eq!(r.body["variables"]["added"][0]["name"], "tone");
    assert_eq!(r.body["validations"]["added"][0]["type"], "max_length");
    let fields: Vec<&str> =
        r.body["model"].as_array().unwrap().iter().map(|c| c["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"model") && fields.contains(&"parameters.temperature"), "{fields:?}");

    let same = app.get(&format!("{base}/diff?from=latest&to=2"), t).await.expect(StatusCode::OK);
    assert_eq!(same.body["template"], "");
    app.get(&format!("{base}/diff?from=nope&to=2"), t).await.expect(StatusCode::NOT_FOUND);
    app.get(&format!("{base}/diff?from=1&to=7"), t).await.expect(StatusCode::NOT_FOUND);
    app.get(&format!("{base}/diff?from=Bad!&to=2"), t).await.expect(StatusCode::BAD_REQUEST);
    app.get(&format!("{base}/diff?from=1"), t).await.expect(StatusCode::BAD_REQUEST);
}
