//! End-to-end scenarios against a running server.

use std::time::Duration;

use serde_json::{Value, json};

use crate::client::Api;

/// Polls an execution until it is final (at most `within`).
pub async fn wait_final(api: &Api, id: &str, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let e = api.get(&format!("/api/executions/{id}")).await.expect(200);
        if ["COMPLETED", "FAILED", "CANCELLED"].contains(&e["status"].as_str().unwrap_or("")) {
            return e;
        }
        assert!(tokio::time::Instant::now() < deadline, "execution {id} not final within {within:?}: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The flow: login, create a prompt, update it twice, execute sync and async, follow
/// executions over SSE and WebSocket, retry a failed one, list with pagination, metrics,
/// logout then the old token is refused. `failing_provider` names a provider that fails
/// permanently (the server's `mock-fail`).
pub async fn full_flow(base: &str, email: &str, password: &str, failing_provider: &str) {
    let anon = Api::new(base);
    anon.get("/api/auth/me").await.expect(401);
    let api = anon.login(email, password).await;
    assert_eq!(api.get("/api/auth/me").await.expect(200)["email"], email);

    // Prompt, then two updates.
    let created = api
        .post(
            "/api/prompts",
            json!({
                "name": "e2e-summary",
                "description": "end to end",
                "template": "Summarise {{ text }} in {{ words }} words.",
                "variables": [
                    {"name": "text", "type": "string", "required": true},
                    {"name": "words", "type": "number", "required": false, "defaultValue": 20},
                ],
            }),
        )
        .await
        .expect(201);
    let pid = created["id"].as_str().expect("prompt id").to_string();
    for t in ["v2: {{ text }} ({{ words }})", "v3: {{ text }} ({{ words }})"] {
        api.put(&format!("/api/prompts/{pid}"), json!({"template": t})).await.expect(200);
    }
    let p = api.get(&format!("/api/prompts/{pid}")).await.expect(200);
    assert_eq!(p["currentVersion"], 3);
    assert_eq!(p["version"]["template"], "v3: {{ text }} ({{ words }})");
    let v1 = api.get(&format!("/api/prompts/{pid}?version=1")).await.expect(200);
    assert_eq!(v1["version"]["template"], "Summarise {{ text }} in {{ words }} words.");
    let page = api.get(&format!("/api/prompts/{pid}/versions?limit=2")).await.expect(200);
    assert_eq!(page["items"][0]["version"], 3);
    assert_eq!(page["items"][1]["version"], 2);
    let cursor = page["nextCursor"].as_str().expect("a second page");
    let page2 = api.get(&format!("/api/prompts/{pid}/versions?limit=2&cursor={cursor}")).await.expect(200);
    assert_eq!(page2["items"][0]["version"], 1);

    // Invalid inputs are refused before queueing.
    let bad = api.post(&format!("/api/prompts/{pid}/execute"), json!({"inputs": {"words": "many"}})).await;
    assert_eq!(bad.status.as_u16(), 422, "{}", bad.body);
    assert_eq!(bad.code(), "invalid_inputs");

    // Sync.
    let sync = api
        .post(
            &format!("/api/prompts/{pid}/execute"),
            json!({"inputs": {"text": "hello"}, "priority": "HIGH"}),
        )
        .await
        .expect(200);
    assert_eq!(sync["status"], "COMPLETED", "{sync}");
    assert!(sync["output"].as_str().is_some_and(|o| !o.is_empty()));
    assert_eq!(sync["promptVersion"], 3);
    assert!(sync["metrics"]["latencyMs"].is_u64());
    assert!(sync["metrics"]["tokenUsage"]["total"].as_u64().unwrap_or(0) > 0);

    // Async, followed over SSE.
    let accepted = api
        .send(
            reqwest::Method::POST,
            &format!("/api/prompts/{pid}/execute?mode=async"),
            Some(json!({"inputs": {"text": "async"}})),
            &[],
        )
        .await;
    assert_eq!(accepted.status.as_u16(), 202, "{}", accepted.body);
    let eid = accepted.body["id"].as_str().expect("execution id").to_string();
    assert_eq!(accepted.headers["location"].to_str().unwrap_or(""), format!("/api/executions/{eid}"));
    let (frames, ended) =
        api.sse(&format!("/api/executions/events?executionId={eid}"), Duration::from_secs(30)).await;
    assert!(ended, "the SSE stream of one execution ends after its final event: {frames:?}");
    assert_eq!(frames.first().map(|f| f.0.as_str()), Some("snapshot"), "{frames:?}");
    let last = frames.last().expect("frames");
    let last_status = if last.0 == "snapshot" { &last.1["execution"]["status"] } else { &last.1["status"] };
    assert_eq!(last_status, "COMPLETED", "{frames:?}");
    assert_eq!(wait_final(&api, &eid, Duration::from_secs(30)).await["status"], "COMPLETED");

    // Async, followed over WebSocket.
    let ws_exec = api
        .post(&format!("/api/prompts/{pid}/execute?mode=async"), json!({"inputs": {"text": "ws"}}))
        .await
        .expect(202);
    let ws_id = ws_exec["id"].as_str().expect("execution id").to_string();
    let (frames, closed) = api
        .websocket(&format!("&executionId={ws_id}"), Duration::from_secs(30))
        .await
        .expect("WebSocket upgrade");
    assert!(closed, "the server closes the socket after the final event: {frames:?}");
    assert_eq!(frames.first().map(|f| f["kind"].clone()), Some(json!("snapshot")), "{frames:?}");
    let last = frames.last().expect("frames");
    let last_status = if last["kind"] == "snapshot" { &last["execution"]["status"] } else { &last["status"] };
    assert_eq!(last_status, "COMPLETED", "{frames:?}");

    // A permanently failing execution, retried.
    let failing = api
        .post(
            "/api/prompts",
            json!({"name": "e2e-failing", "template": "fail", "model": {"provider": failing_provider, "model": "mock"}}),
        )
        .await
        .expect(201);
    let fid = failing["id"].as_str().expect("prompt id").to_string();
    let failed = api.post(&format!("/api/prompts/{fid}/execute"), json!({})).await.expect(200);
    assert_eq!(failed["status"], "FAILED", "{failed}");
    let failed_id = failed["id"].as_str().expect("id").to_string();
    let again = api.post(&format!("/api/executions/{eid}/retry"), json!({})).await;
    assert_eq!(again.status.as_u16(), 409, "only FAILED executions can be retried");
    let retry = api.post(&format!("/api/executions/{failed_id}/retry"), json!({})).await.expect(202);
    assert_eq!(retry["retryOf"], failed_id.as_str());
    let retry_id = retry["id"].as_str().expect("id").to_string();
    assert_eq!(wait_final(&api, &retry_id, Duration::from_secs(30)).await["status"], "FAILED");

    // List with pagination: 5 executions (sync, async, ws, failed, retry).
    let mut ids = Vec::new();
    let mut path = "/api/executions?limit=2".to_string();
    loop {
        let page = api.get(&path).await.expect(200);
        for e in page["items"].as_array().expect("items") {
            ids.push(e["id"].as_str().expect("id").to_string());
        }
        match page["nextCursor"].as_str() {
            Some(c) => path = format!("/api/executions?limit=2&cursor={c}"),
            None => break,
        }
        assert!(ids.len() <= 10, "pagination does not end");
    }
    assert_eq!(ids.len(), 5, "{ids:?}");
    let mut dedup = ids.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), 5, "no execution twice");
    let failed_only = api.get("/api/executions?status=FAILED").await.expect(200);
    assert_eq!(failed_only["items"].as_array().map(Vec::len), Some(2));
    let by_prompt = api.get(&format!("/api/executions?promptId={pid}")).await.expect(200);
    assert_eq!(by_prompt["items"].as_array().map(Vec::len), Some(3));

    // Metrics.
    let m = api.get("/api/metrics").await.expect(200);
    assert_eq!(m["counts"]["total"], 5, "{m}");
    assert_eq!(m["counts"]["completed"], 3, "{m}");
    assert_eq!(m["counts"]["failed"], 2, "{m}");
    let prom =
        reqwest::get(format!("{base}/metrics")).await.expect("GET /metrics").text().await.unwrap_or_default();
    assert!(prom.contains("http_request_duration_seconds"), "{prom}");
    let health = api.get("/api/health").await.expect(200);
    assert_eq!(health["database"], true);

    // Archive keeps history readable.
    api.delete(&format!("/api/prompts/{pid}")).await.expect(200);
    assert_eq!(api.get(&format!("/api/prompts/{pid}")).await.expect(200)["status"], "ARCHIVED");
    api.get(&format!("/api/executions/{eid}")).await.expect(200);

    // Logout: the old token is refused.
    api.post("/api/auth/logout", json!({})).await.expect(204);
    let after = api.get("/api/prompts").await;
    assert_eq!(after.status.as_u16(), 401);
    assert_eq!(after.code(), "unauthorized");
}

/// A second user tries every endpoint on the first user's ids and sees only 404s, and
/// nothing changes for the first user.
pub async fn cross_tenant(base: &str, owner: (&str, &str), other: (&str, &str)) {
    let alice = Api::new(base).login(owner.0, owner.1).await;
    let bob = Api::new(base).login(other.0, other.1).await;
    let p = alice
        .post(
            "/api/prompts",
            json!({"name": "private", "template": "secret {{ x }}", "variables": [{"name": "x", "type": "string", "required": true}]}),
        )
        .await
        .expect(201);
    let pid = p["id"].as_str().expect("id").to_string();
    let e =
        alice.post(&format!("/api/prompts/{pid}/execute"), json!({"inputs": {"x": "1"}})).await.expect(200);
    let eid = e["id"].as_str().expect("id").to_string();

    use reqwest::Method;
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/prompts/{pid}"), None),
        (Method::GET, format!("/api/prompts/{pid}?version=1"), None),
        (Method::PUT, format!("/api/prompts/{pid}"), Some(json!({"template": "pwned {{ x }}"}))),
        (Method::DELETE, format!("/api/prompts/{pid}"), None),
        (Method::GET, format!("/api/prompts/{pid}/versions"), None),
        (Method::POST, format!("/api/prompts/{pid}/execute"), Some(json!({"inputs": {"x": "2"}}))),
        (Method::GET, format!("/api/executions/{eid}"), None),
        (Method::POST, format!("/api/executions/{eid}/retry"), Some(json!({}))),
        (Method::POST, format!("/api/executions/{eid}/cancel"), Some(json!({}))),
        (Method::GET, format!("/api/executions/events?executionId={eid}"), None),
    ];
    for (method, path, body) in attempts {
        let r = bob.send(method.clone(), &path, body, &[]).await;
        assert_eq!(r.status.as_u16(), 404, "{method} {path} as another user: {}", r.body);
        assert_eq!(r.code(), "not_found", "{method} {path}");
    }
    // Lists and metrics show Bob nothing of Alice's.
    assert_eq!(bob.get("/api/prompts").await.expect(200)["items"].as_array().map(Vec::len), Some(0));
    assert_eq!(bob.get("/api/executions").await.expect(200)["items"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        bob.get(&format!("/api/executions?promptId={pid}")).await.expect(200)["items"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    assert_eq!(bob.get("/api/metrics").await.expect(200)["counts"]["total"], 0);
    // WebSocket: following Alice's execution is refused.
    let refused = bob.websocket(&format!("&executionId={eid}"), Duration::from_secs(5)).await;
    assert!(refused.as_ref().is_err_and(|head| head.starts_with("HTTP/1.1 404")), "{refused:?}");

    // Nothing changed.
    let p = alice.get(&format!("/api/prompts/{pid}")).await.expect(200);
    assert_eq!(p["currentVersion"], 1);
    assert_eq!(p["status"], "ACTIVE");
    assert_eq!(p["version"]["template"], "secret {{ x }}");
    let list = alice.get("/api/executions").await.expect(200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
}

/// One user's input that no store can hold fails no one else's request (issue 12, item 2):
/// 4 clients of `attacker` send NUL in a string input and in a key of a `json` input while 6
/// clients of `victim` submit valid executions, for `run_for`. Every attacker request is a
/// 422 naming the field, every victim request a 202, and the accepted executions complete.
pub async fn bad_input_fails_no_one_else(
    base: &str,
    attacker: (&str, &str),
    victim: (&str, &str),
    run_for: Duration,
) {
    use std::collections::BTreeMap;

    let bad = Api::new(base).login(attacker.0, attacker.1).await;
    let good = Api::new(base).login(victim.0, victim.1).await;
    let prompt = json!({
        "name": "isolation", "template": "{{ v | default('') }} {{ data | default('') }}",
        "variables": [{"name": "v", "type": "string"}, {"name": "data", "type": "json"}],
    });
    let bad_pid =
        bad.post("/api/prompts", prompt.clone()).await.expect(201)["id"].as_str().expect("id").to_string();
    let good_pid =
        good.post("/api/prompts", prompt).await.expect(201)["id"].as_str().expect("id").to_string();
    let until = tokio::time::Instant::now() + run_for;

    // Each client returns (status, what was wrong or the execution id) per request.
    let mut attackers = Vec::new();
    for i in 0..4u32 {
        let (api, path) = (bad.clone(), format!("/api/prompts/{bad_pid}/execute?mode=async"));
        attackers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while tokio::time::Instant::now() < until {
                let (inputs, field) = if (i + seen.len() as u32).is_multiple_of(2) {
                    (json!({"v": "x\u{0}y"}), "inputs.v")
                } else {
                    (json!({"data": {"k\u{0}": 1}}), "inputs.data")
                };
                let r = api.post(&path, json!({ "inputs": inputs })).await;
                let named = r.code() == "invalid_inputs"
                    && r.body["error"]["details"]["problems"][0]["field"] == field;
                seen.push((r.status.as_u16(), if named { String::new() } else { r.body.to_string() }));
            }
            seen
        }));
    }
    let mut victims = Vec::new();
    for i in 0..6 {
        let (api, path) = (good.clone(), format!("/api/prompts/{good_pid}/execute?mode=async"));
        victims.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while tokio::time::Instant::now() < until {
                let r = api
                    .post(&path, json!({"inputs": {"v": format!("ok {i}"), "data": {"n": seen.len()}}}))
                    .await;
                let id = r.body["id"].as_str().map_or_else(|| r.body.to_string(), str::to_string);
                seen.push((r.status.as_u16(), id));
            }
            seen
        }));
    }
    let tally = |all: &[(u16, String)]| {
        let mut by_status = BTreeMap::new();
        for (status, _) in all {
            *by_status.entry(*status).or_insert(0u32) += 1;
        }
        by_status
    };
    let mut refused = Vec::new();
    for a in attackers {
        refused.extend(a.await.expect("attacker client"));
    }
    let mut accepted = Vec::new();
    for v in victims {
        accepted.extend(v.await.expect("victim client"));
    }
    let (bad_tally, good_tally) = (tally(&refused), tally(&accepted));
    eprintln!("bad_input_fails_no_one_else: attacker {bad_tally:?}, victim {good_tally:?}");
    assert!(
        accepted.iter().all(|(status, _)| *status == 202),
        "the valid user's executes must all be 202, got {good_tally:?} (attacker {bad_tally:?}); first other: {:?}",
        accepted.iter().find(|(s, _)| *s != 202)
    );
    assert!(
        refused.iter().all(|(status, wrong)| *status == 422 && wrong.is_empty()),
        "NUL inputs must be 422 invalid_inputs naming the field, got {bad_tally:?}; first other: {:?}",
        refused.iter().find(|(s, w)| *s != 422 || !w.is_empty())
    );
    assert!(!refused.is_empty() && !accepted.is_empty(), "both users must have sent requests");
    for (_, id) in accepted.iter().rev().take(20) {
        assert_eq!(wait_final(&good, id, Duration::from_secs(30)).await["status"], "COMPLETED");
    }
}
