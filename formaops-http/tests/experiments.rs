//! Datasets and experiments through the real router over the in-memory store and the mock
//! provider: uploads (JSON, JSONL, CSV) with every bad line reported, a dataset from past
//! executions, an experiment of two versions with live progress (JSON and SSE), the
//! comparison, exports, cancel, and isolation between users.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use support::{Reply, TestApp};

async fn upload(app: &TestApp, token: &str, path: &str, kind: &str, body: &str) -> Reply {
    let req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", kind)
        .body(Body::from(body.to_string()))
        .unwrap();
    app.request(req).await
}

/// The `field` of each problem of an error answer.
fn problem_fields(r: &Reply) -> Vec<&str> {
    r.body["error"]["details"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect()
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

async fn wait_done(app: &TestApp, token: &str, id: &str) -> Value {
    for _ in 0..500 {
        let r = app.get(&format!("/api/experiments/{id}"), token).await.expect(StatusCode::OK);
        if r.body["status"] != "RUNNING" && r.body["progress"]["inFlight"] == 0 {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("experiment {id} did not finish");
}

#[tokio::test]
async fn uploads_list_rows_and_refusals() {
    let app = TestApp::new().await;
    let t = app.alice.as_str();
    let r = upload(
        &app,
        t,
        "/api/datasets?name=lines",
        "application/jsonl",
        "{\"inputs\": {\"topic\": \"owls\"}, \"expected\": \"x\"}\n{\"inputs\": {\"topic\": \"bats\"}}\n",
    )
    .await
    .expect(StatusCode::CREATED);
    assert_eq!(r.body["rowCount"], 2);
    let jsonl_id = r.body["id"].as_str().unwrap().to_string();
    let r =
        upload(&app, t, "/api/datasets?name=sheet", "text/csv", "topic,expected\nowls,x\nbats,y\ncats,z\n")
            .await
            .expect(StatusCode::CREATED);
    let csv_id = r.body["id"].as_str().unwrap().to_string();
    app.post("/api/datasets", t, json!({"name": "json", "rows": [{"inputs": {"topic": "a"}}]}))
        .await
        .expect(StatusCode::CREATED);

    // Every bad line, by number; nothing stored.
    let r = upload(
        &app,
        t,
        "/api/datasets?name=bad",
        "application/jsonl",
        "{\"inputs\": {}}\nnope\n{\"inputs\": 3}\n",
    )
    .await
    .expect(StatusCode::UNPROCESSABLE_ENTITY);
    let fields = problem_fields(&r);
    assert_eq!(fields, vec!["line 2", "line 3"]);
    let r = upload(&app, t, "/api/datasets?name=bad", "text/csv", "topic\na\nb,c\n\nd\ne,f,g\n")
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    let fields = problem_fields(&r);
    assert_eq!(fields, vec!["line 3", "line 6"]);
    app.get("/api/datasets", t).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .for_each(|d| assert_ne!(d["name"], "bad"));
    upload(&app, t, "/api/datasets", "text/csv", "topic\na\n").await.expect(StatusCode::BAD_REQUEST);
    upload(&app, t, "/api/datasets?name=x", "text/plain", "a")
        .await
        .expect(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = upload(&app, t, "/api/datasets?name=sheet", "text/csv", "topic\na\n")
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(r.code(), "conflict");

    // Lists and rows page.
    let r = app.get("/api/datasets?limit=2", t).await.expect(StatusCode::OK);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    let cursor = r.body["nextCursor"].as_str().unwrap().to_string();
    let r = app.get(&format!("/api/datasets?limit=2&cursor={cursor}"), t).await.expect(StatusCode::OK);
    assert_eq!(r.body["items"][0]["id"], jsonl_id.as_str());
    let r = app.get(&format!("/api/datasets/{csv_id}/rows?limit=2"), t).await.expect(StatusCode::OK);
    assert_eq!(r.body["items"][1]["inputs"]["topic"], "bats");
    assert_eq!(r.body["items"][1]["expected"], "y");
    assert_eq!(r.body["nextCursor"], "1");
    let r = app.get(&format!("/api/datasets/{csv_id}/rows?limit=2&cursor=1"), t).await.expect(StatusCode::OK);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["items"][0]["index"], 2);

    // Bob sees none of it.
    let b = app.bob.as_str();
    app.get(&format!("/api/datasets/{csv_id}"), b).await.expect(StatusCode::NOT_FOUND);
    app.call(Method::DELETE, &format!("/api/datasets/{csv_id}"), Some(b), None)
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(app.get("/api/datasets", b).await.body["items"], json!([]));
    app.call(Method::DELETE, &format!("/api/datasets/{csv_id}"), Some(t), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    app.get(&format!("/api/datasets/{csv_id}"), t).await.expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn experiment_from_past_executions_compared_and_exported() {
    let app = TestApp::new().await;
    let t = app.alice.as_str();
    let id = app.prompt(t, "compare").await;
    let base = format!("/api/prompts/{id}");
    for topic in ["owls", "bats"] {
        app.post(&format!("{base}/execute"), t, json!({"inputs": {"topic": topic}}))
            .await
            .expect(StatusCode::OK);
    }
    app.call(Method::PUT, &base, Some(t), Some(json!({"template": "Write twice about {{ topic }}."})))
        .await
        .expect(StatusCode::OK);
    app.call(Method::PUT, &format!("{base}/labels/staging"), Some(t), Some(json!({"version": 2})))
        .await
        .expect(StatusCode::OK);
    let r = app
        .post(
            "/api/datasets/from-executions",
            t,
            json!({"name": "prod", "promptId": id, "version": 1, "expectedFromOutput": true}),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(r.body["rowCount"], 2);
    let dataset = r.body["id"].as_str().unwrap().to_string();

    let r = app
        .post(
            "/api/experiments",
            t,
            json!({"promptId": id, "datasetId": dataset, "versions": ["production", "staging"], "match": "exact", "concurrency": 2}),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(r.body["priority"], "LOW");
    assert_eq!(
        r.body["targets"],
        json!([{"requested": "production", "version": 1}, {"requested": "staging", "version": 2}])
    );
    assert_eq!(r.body["progress"]["total"], 4);
    let x = r.body["id"].as_str().unwrap().to_string();

    // SSE progress ends once the experiment is done; its last event says so.
    let sse = app.get(&format!("/api/experiments/{x}/events"), t).await.expect(StatusCode::OK);
    let last: Value = sse
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str(d.trim()).unwrap())
        .next_back()
        .unwrap();
    assert_eq!((last["status"].as_str(), last["done"].as_u64()), (Some("COMPLETED"), Some(4)));
    assert!(sse.text.contains("event: progress"));
    let done = wait_done(&app, t, &x).await;
    assert_eq!(done["progress"]["done"], 4);

    let r = app.get(&format!("/api/experiments/{x}/results"), t).await.expect(StatusCode::OK);
    let results = r.body.clone();
    assert_eq!(r.body["versions"][0]["matchRate"], 1.0);
    assert_eq!(r.body["versions"][1]["matchRate"], 0.0);
    assert_eq!(r.body["versions"][1]["summary"]["counts"]["completed"], 2);
    assert!(r.body["versions"][0]["summary"]["latencyMs"]["p95"].is_number());
    assert_eq!(r.body["rows"][0]["results"][1]["output"], "Write twice about bats.");

    let r = app.get(&format!("/api/experiments/{x}/export?format=csv"), t).await.expect(StatusCode::OK);
    assert!(r.headers["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert_eq!(r.text.lines().count(), 5);
    assert!(r.text.starts_with("row,version,inputs,expected,status,output"));
    let r = app.get(&format!("/api/experiments/{x}/export"), t).await.expect(StatusCode::OK);
    assert_eq!(r.text.lines().count(), 4);
    app.get(&format!("/api/experiments/{x}/export?format=xml"), t).await.expect(StatusCode::BAD_REQUEST);

    // The OpenAPI document describes exactly what is sent.
    let doc = app.call(Method::GET, "/api/openapi.json", None, None).await.expect(StatusCode::OK).body;
    let schema = |name: &str| keys(&doc["components"]["schemas"][name]["properties"]);
    let listed = app.get("/api/experiments", t).await.body["items"][0].clone();
    assert_eq!(schema("Experiment"), keys(&listed));
    assert_eq!(schema("ExperimentProgress"), keys(&done["progress"]));
    assert_eq!(schema("Comparison"), keys(&results));
    assert_eq!(schema("VersionComparison"), keys(&results["versions"][0]));
    assert_eq!(schema("RowComparison"), keys(&results["rows"][0]));
    assert_eq!(schema("RowResult"), keys(&results["rows"][0]["results"][0]));
    let d = app.get(&format!("/api/datasets/{dataset}"), t).await.body;
    assert_eq!(schema("Dataset"), keys(&d));
    assert!(doc["paths"]["/api/experiments/{id}/events"]["get"].is_object());

    // Completed: cancel refused; listed; Bob sees nothing.
    app.call(Method::POST, &format!("/api/experiments/{x}/cancel"), Some(t), None)
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(app.get("/api/experiments", t).await.body["items"][0]["id"], x.as_str());
    let b = app.bob.as_str();
    app.get(&format!("/api/experiments/{x}"), b).await.expect(StatusCode::NOT_FOUND);
    app.get(&format!("/api/experiments/{x}/results"), b).await.expect(StatusCode::NOT_FOUND);
    app.get(&format!("/api/experiments/{x}/events"), b).await.expect(StatusCode::NOT_FOUND);
    app.post("/api/experiments", b, json!({"promptId": id, "datasetId": dataset, "versions": [1]}))
        .await
        .expect(StatusCode::NOT_FOUND);
    // A dataset in use is kept.
    app.call(Method::DELETE, &format!("/api/datasets/{dataset}"), Some(t), None)
        .await
        .expect(StatusCode::CONFLICT);
}

#[tokio::test]
async fn experiment_refusals_name_rows_and_fields() {
    let app = TestApp::new().await;
    let t = app.alice.as_str();
    let id = app.prompt(t, "strict").await;
    let r = upload(
        &app,
        t,
        "/api/datasets?name=rows",
        "application/jsonl",
        "{\"inputs\": {\"topic\": \"a\"}}\n{\"inputs\": {\"other\": 1}}\n",
    )
    .await
    .expect(StatusCode::CREATED);
    let d = r.body["id"].as_str().unwrap().to_string();
    let r = app
        .post("/api/experiments", t, json!({"promptId": id, "datasetId": d, "versions": [1]}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    let fields = problem_fields(&r);
    assert_eq!(fields, vec!["rows[1].inputs.other", "rows[1].inputs.topic"]);
    let r = app
        .post("/api/experiments", t, json!({"promptId": id, "datasetId": d, "versions": []}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["details"]["field"], "versions");
    app.post(
        "/api/experiments",
        t,
        json!({"promptId": id, "datasetId": d, "versions": [1], "concurrency": 0}),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
    app.post("/api/experiments", t, json!({"promptId": id, "datasetId": d, "versions": ["nope"]}))
        .await
        .expect(StatusCode::NOT_FOUND);
    app.post("/api/experiments", t, json!({"promptId": id, "datasetId": d, "versions": [9]}))
        .await
        .expect(StatusCode::NOT_FOUND);
    app.post(
        "/api/experiments",
        t,
        json!({"promptId": id, "datasetId": d, "versions": [1], "match": "fuzzy"}),
    )
    .await
    .expect(StatusCode::UNPROCESSABLE_ENTITY);
    app.get("/api/experiments/not-a-uuid", t).await.expect(StatusCode::NOT_FOUND);
}
