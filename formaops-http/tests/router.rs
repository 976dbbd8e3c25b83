//! Every endpoint and every error status, through the real router (`oneshot`), over the
//! in-memory store and the mock provider.

#![allow(clippy::unwrap_used)]

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use support::{PASSWORD, TestApp};

// ----- auth -----

#[tokio::test]
async fn login_returns_token_user_and_cookie() {
    let app = TestApp::new().await;
    let r = app
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"email": " Alice@Example.com ", "password": PASSWORD})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(r.body["user"]["email"], "alice@example.com");
    let token = r.body["token"].as_str().unwrap();
    assert!(token.starts_with("fos_"));
    let cookie = r.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.contains(&format!("formaops_session={token}")), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");

    // The cookie alone authenticates.
    let req = Request::get("/api/auth/me")
        .header("cookie", format!("formaops_session={token}"))
        .body(Body::empty());
    let me = app.request(req.unwrap()).await.expect(StatusCode::OK);
    assert_eq!(me.body["email"], "alice@example.com");
    assert!(me.body.get("passwordHash").is_none());
}

#[tokio::test]
async fn unknown_user_and_wrong_password_are_indistinguishable() {
    let app = TestApp::new().await;
    let wrong = app
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"email": "alice@example.com", "password": "nope nope"})),
        )
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let unknown = app
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"email": "carol@example.com", "password": "nope nope"})),
        )
        .await
        .expect(StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.text, unknown.text);
    assert_eq!(wrong.code(), "unauthorized");
}

#[tokio::test]
async fn login_is_throttled_per_account_and_source() {
    let app = TestApp::new().await;
    let bad = json!({"email": "alice@example.com", "password": "wrong password"});
    for _ in 0..5 {
        app.call(Method::POST, "/api/auth/login", None, Some(bad.clone()))
            .await
            .expect(StatusCode::UNAUTHORIZED);
    }
    // Even the right password is refused while throttled.
    let good = json!({"email": "alice@example.com", "password": PASSWORD});
    let r = app
        .call(Method::POST, "/api/auth/login", None, Some(good))
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.code(), "rate_limited");
    let after: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&after), "{after}");
    // Another account is unaffected.
    app.login("bob@example.com").await;
}

/// A login request from the TCP peer `peer`, as `into_make_service_with_connect_info` passes it.
fn login_from(peer: &str, email: &str, password: &str) -> Request<Body> {
    let peer: std::net::SocketAddr = peer.parse().unwrap();
    let mut req = Request::post("/api/auth/login")
        .header("content-type", "application/json")
        .body(Body::from(json!({"email": email, "password": password}).to_string()))
        .unwrap();
    req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
    req
}

#[tokio::test]
async fn an_attacker_cannot_lock_the_owner_out() {
    let app = TestApp::new().await;
    let attacker = "203.0.113.7:50000";
    let failures = formaops_core::user::LoginThrottle::MAX_FAILURES_PER_ACCOUNT;
    for _ in 0..failures {
        let r = app.request(login_from(attacker, "alice@example.com", "wrong password")).await;
        r.expect(StatusCode::UNAUTHORIZED);
    }
    // The attacker's address is throttled, whatever it sends (another port is the same source)...
    let r = app
        .request(login_from("203.0.113.7:50001", "alice@example.com", PASSWORD))
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.code(), "rate_limited");
    let after: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&after), "{after}");
    // ... while the owner, from elsewhere, logs in.
    let r = app.request(login_from("198.51.100.2:40000", "alice@example.com", PASSWORD)).await;
    r.expect(StatusCode::OK);
    let r = app.request(login_from("[2001:db8::1]:40000", "alice@example.com", PASSWORD)).await;
    r.expect(StatusCode::OK);
}

#[tokio::test]
async fn one_address_trying_many_accounts_is_throttled() {
    let app = TestApp::new().await;
    let sprayer = "203.0.113.9:50000";
    for i in 0..formaops_core::user::LoginThrottle::MAX_FAILURES_PER_SOURCE {
        let r = app.request(login_from(sprayer, &format!("user{i}@example.com"), "wrong password")).await;
        r.expect(StatusCode::UNAUTHORIZED);
    }
    let r = app
        .request(login_from(sprayer, "bob@example.com", PASSWORD))
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key("retry-after"));
    app.request(login_from("198.51.100.3:1", "bob@example.com", PASSWORD)).await.expect(StatusCode::OK);
}

#[tokio::test]
async fn missing_or_bad_credentials_are_401() {
    let app = TestApp::new().await;
    for token in [None, Some("fos_not-a-real-token"), Some("")] {
        let r = app.call(Method::GET, "/api/prompts", token, None).await.expect(StatusCode::UNAUTHORIZED);
        assert_eq!(r.code(), "unauthorized");
    }
    let req = Request::get("/api/auth/me").header("authorization", "Basic YTpi").body(Body::empty()).unwrap();
    app.request(req).await.expect(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_revokes_the_session_server_side() {
    let app = TestApp::new().await;
    let token = app.login("alice@example.com").await;
    app.get("/api/auth/me", &token).await.expect(StatusCode::OK);
    let r =
        app.call(Method::POST, "/api/auth/logout", Some(&token), None).await.expect(StatusCode::NO_CONTENT);
    assert!(r.headers["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    app.get("/api/auth/me", &token).await.expect(StatusCode::UNAUTHORIZED);
    // Other sessions of the same user live on.
    app.get("/api/auth/me", &app.alice).await.expect(StatusCode::OK);
}

#[tokio::test]
async fn api_keys_create_list_use_revoke() {
    let app = TestApp::new().await;
    let created =
        app.post("/api/auth/keys", &app.alice, json!({"name": "ci"})).await.expect(StatusCode::CREATED);
    let key = created.body["token"].as_str().unwrap().to_string();
    let id = created.body["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("fok_"));
    assert_eq!(app.get("/api/auth/me", &key).await.expect(StatusCode::OK).body["email"], "alice@example.com");

    let list = app.get("/api/auth/keys", &app.alice).await.expect(StatusCode::OK);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert!(list.body["items"][0].get("token").is_none(), "the secret is shown once only");

    // Bob cannot see or revoke it.
    assert_eq!(app.get("/api/auth/keys", &app.bob).await.body["items"].as_array().unwrap().len(), 0);
    app.call(Method::DELETE, &format!("/api/auth/keys/{id}"), Some(&app.bob), None)
        .await
        .expect(StatusCode::NOT_FOUND);
    app.get("/api/auth/me", &key).await.expect(StatusCode::OK);

    app.call(Method::DELETE, &format!("/api/auth/keys/{id}"), Some(&app.alice), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    app.get("/api/auth/me", &key).await.expect(StatusCode::UNAUTHORIZED);

    let r = app
        .post("/api/auth/keys", &app.alice, json!({"name": ""}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "invalid_argument");
}

// ----- prompts -----

#[tokio::test]
async fn prompt_lifecycle_versions_and_archive() {
    let app = TestApp::new().await;
    let id = app.prompt(&app.alice, "summary").await;

    let got = app.get(&format!("/api/prompts/{id}"), &app.alice).await.expect(StatusCode::OK);
    assert_eq!(got.body["name"], "summary");
    assert_eq!(got.body["status"], "ACTIVE");
    assert_eq!(got.body["currentVersion"], 1);
    assert_eq!(got.body["version"]["version"], 1);
    assert_eq!(got.body["version"]["template"], "Write about {{ topic }}.");

    for (n, t) in [(2, "Two: {{ topic }}"), (3, "Three: {{ topic }}")] {
        let r = app
            .call(Method::PUT, &format!("/api/prompts/{id}"), Some(&app.alice), Some(json!({"template": t})))
            .await
            .expect(StatusCode::OK);
        assert_eq!(r.body["currentVersion"], n);
        assert_eq!(r.body["version"]["template"], t);
        assert_eq!(r.body["version"]["variables"][0]["name"], "topic", "omitted fields are carried over");
    }
    let v1 = app.get(&format!("/api/prompts/{id}?version=1"), &app.alice).await.expect(StatusCode::OK);
    assert_eq!(v1.body["version"]["template"], "Write about {{ topic }}.");
    assert_eq!(v1.body["currentVersion"], 3);
    app.get(&format!("/api/prompts/{id}?version=9"), &app.alice).await.expect(StatusCode::NOT_FOUND);
    app.get(&format!("/api/prompts/{id}?version=x"), &app.alice).await.expect(StatusCode::BAD_REQUEST);

    let versions =
        app.get(&format!("/api/prompts/{id}/versions?limit=2"), &app.alice).await.expect(StatusCode::OK);
    let nums: Vec<_> =
        versions.body["items"].as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!(nums, [3, 2]);
    let cursor = versions.body["nextCursor"].as_str().unwrap();
    let rest = app
        .get(&format!("/api/prompts/{id}/versions?limit=2&cursor={cursor}"), &app.alice)
        .await
        .expect(StatusCode::OK);
    assert_eq!(rest.body["items"][0]["version"], 1);
    assert!(rest.body["nextCursor"].is_null());

    // Stale expected version: 409.
    let r = app
        .call(
            Method::PUT,
            &format!("/api/prompts/{id}"),
            Some(&app.alice),
            Some(json!({"template": "x {{ topic }}", "expectedVersion": 1})),
        )
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(r.code(), "conflict");

    // Archive: out of the default list, readable by id, not executable, not updatable.
    let archived = app
        .call(Method::DELETE, &format!("/api/prompts/{id}"), Some(&app.alice), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(archived.body["status"], "ARCHIVED");
    let list = app.get("/api/prompts", &app.alice).await.expect(StatusCode::OK);
    assert!(list.body["items"].as_array().unwrap().is_empty());
    let list = app.get("/api/prompts?status=ARCHIVED", &app.alice).await.expect(StatusCode::OK);
    assert_eq!(list.body["items"][0]["id"], id.as_str());
    app.get(&format!("/api/prompts/{id}"), &app.alice).await.expect(StatusCode::OK);
    app.get(&format!("/api/prompts/{id}/versions"), &app.alice).await.expect(StatusCode::OK);
    let r = app
        .post(&format!("/api/prompts/{id}/execute"), &app.alice, json!({"inputs": {"topic": "x"}}))
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(r.code(), "conflict");
    app.call(
        Method::PUT,
        &format!("/api/prompts/{id}"),
        Some(&app.alice),
        Some(json!({"template": "y {{ topic }}"})),
    )
    .await
    .expect(StatusCode::CONFLICT);
    // The name is free again.
    app.prompt(&app.alice, "summary").await;
}

#[tokio::test]
async fn prompt_validation_errors() {
    let app = TestApp::new().await;
    app.prompt(&app.alice, "dup").await;
    let r = app
        .post("/api/prompts", &app.alice, json!({"name": "dup", "template": "hi"}))
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(r.code(), "conflict");

    // Undeclared variable: 422 naming the problem.
    let r = app
        .post("/api/prompts", &app.alice, json!({"name": "bad", "template": "Hello {{ who }}"}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "invalid_prompt");
    let problems = r.body["error"]["details"]["problems"].as_array().unwrap();
    assert!(!problems.is_empty(), "{}", r.text);
    assert!(r.text.contains("who"), "{}", r.text);

    // Unknown field: 422 invalid_body.
    let r = app
        .post("/api/prompts", &app.alice, json!({"name": "x", "template": "hi", "bogus": 1}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "invalid_body");
}

/// Issue 14 item 7: an optional variable without a default read without a guard is refused
/// when the version is saved (create and update), naming the variable, the template and the
/// line; guarded, the omitted variable renders at execution time.
#[tokio::test]
async fn unguarded_optional_variables_are_refused_when_saved() {
    let app = TestApp::new().await;
    let variables = json!([{"name": "topic", "type": "string", "required": true},
                           {"name": "note", "type": "string"}]);
    let refused = |r: support::Reply, field: &str, line: u32| {
        let r = r.expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.code(), "invalid_prompt");
        let problems = r.body["error"]["details"]["problems"].as_array().unwrap();
        assert_eq!(problems.len(), 1, "{}", r.text);
        assert_eq!(problems[0]["field"], field, "{}", r.text);
        assert_eq!(problems[0]["code"], "unguarded", "{}", r.text);
        let message = problems[0]["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("line {line}: optional variable `note`")), "{message}");
    };
    for (template, system, field, line) in [
        ("Write about {{ topic }}.\nNote: {{ note }}", None, "template", 2),
        ("{{ topic }}{% if note is defined %}{% endif %} {{ note | upper }}", None, "template", 1),
        (
            "{{ topic }}",
            Some("You are terse.\n\n{% for w in note %}{{ w }}{% endfor %}"),
            "systemTemplate",
            3,
        ),
    ] {
        let body =
            json!({"name": "n", "template": template, "systemTemplate": system, "variables": variables});
        refused(app.post("/api/prompts", &app.alice, body).await, field, line);
    }
    let guarded = "Write about {{ topic }}.{% if note %} Note: {{ note }}.{% endif %}";
    let id =
        app.prompt_with(&app.alice, json!({"name": "g", "template": guarded, "variables": variables})).await;
    let update = json!({"template": "{{ topic }}\n{{ note }}"});
    let r = app.call(Method::PUT, &format!("/api/prompts/{id}"), Some(&app.alice), Some(update)).await;
    refused(r, "template", 2);
    // Omitted and given: the guarded template renders both ways (the mock echoes the prompt).
    for (inputs, expected) in [
        (json!({"topic": "tides"}), "Write about tides."),
        (json!({"topic": "tides", "note": "short"}), "Write about tides. Note: short."),
    ] {
        let r = app
            .post(&format!("/api/prompts/{id}/execute"), &app.alice, json!({"inputs": inputs}))
            .await
            .expect(StatusCode::OK);
        assert_eq!(r.body["status"], "COMPLETED", "{}", r.text);
        assert_eq!(r.body["output"], expected, "{}", r.text);
    }
}

#[tokio::test]
async fn strict_json_schema_rules_that_strict_mode_refuses_are_422() {
    let app = TestApp::new().await;
    // An optional property: strict mode needs every property in `required`.
    let schema = json!({"type": "object", "required": ["city"],
                        "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}});
    let rule = |strict: Value| json!({"type": "json_schema", "schema": schema, "strict": strict});
    let r = app
        .post(
            "/api/prompts",
            &app.alice,
            json!({"name": "s", "template": "hi", "validations": [rule(json!(true))]}),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "invalid_prompt");
    let problem = &r.body["error"]["details"]["problems"][0];
    assert_eq!(problem["field"], "validations[0].schema", "{}", r.text);
    assert!(problem["message"].as_str().unwrap().contains("`zip` is not in `required`"), "{}", r.text);
    // `strict` is "auto", true or false only.
    let r = app
        .post(
            "/api/prompts",
            &app.alice,
            json!({"name": "s", "template": "hi", "validations": [rule(json!("yes"))]}),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "invalid_body");
    // Auto (the default) and false save, and read back as given.
    for (name, strict) in [("auto", json!("auto")), ("never", json!(false))] {
        let r = app
            .post(
                "/api/prompts",
                &app.alice,
                json!({"name": name, "template": "hi", "validations": [rule(strict)]}),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.text);
        assert!(r.text.contains("\"strict\":false") == (name == "never"), "{}", r.text);
    }
}

#[tokio::test]
async fn deep_templates_and_schemas_are_422_not_a_crash() {
    // Issue 12 item 1: each of these overflowed the worker's stack and aborted the server.
    let app = TestApp::new().await;
    let id = app.prompt(&app.alice, "deep").await;
    let deep = [
        format!("{{{{ {}1 }}}}", "-".repeat(5_000)),
        format!("{{{{ {}1 }}}}", "not ".repeat(7_600)),
        format!("{{{{ 1{} }}}}", " + 1".repeat(7_500)),
        format!("{{{{ topic{} }}}}", "|abs".repeat(8_100)),
        format!("{{{{ topic{} }}}}", "()".repeat(5_600)),
    ];
    let expect_too_deep = |r: &support::Reply, field: &str| {
        assert_eq!(r.code(), "invalid_prompt", "{}", r.text);
        let problems = r.body["error"]["details"]["problems"].as_array().unwrap();
        assert!(
            problems.iter().any(|p| p["field"] == field
                && p["code"] == "too_deep"
                && p["message"].as_str().unwrap().contains("100 levels")),
            "{}",
            r.text
        );
    };
    for t in &deep {
        let r = app
            .post("/api/prompts", &app.alice, json!({"name": "so", "template": t}))
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY);
        expect_too_deep(&r, "template");
        let r = app
            .post("/api/prompts", &app.alice, json!({"name": "so", "template": "hi", "systemTemplate": t}))
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY);
        expect_too_deep(&r, "systemTemplate");
        let r = app
            .call(Method::PUT, &format!("/api/prompts/{id}"), Some(&app.alice), Some(json!({"template": t})))
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY);
        expect_too_deep(&r, "template");
    }
    // A JSON Schema nested deeper than the limit (the body parser allows 128 levels).
    let mut schema = json!({"type": "integer"});
    for _ in 0..100 {
        schema = json!({"type": "array", "items": schema});
    }
    let r = app
        .post(
            "/api/prompts",
            &app.alice,
            json!({"name": "so", "template": "{{ j }}", "variables": [{"name": "j", "type": "json", "schema": schema}]}),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "invalid_prompt", "{}", r.text);
    assert!(r.text.contains("variables[0].schema") && r.text.contains("nested deeper"), "{}", r.text);
    // The server is still there.
    app.get(&format!("/api/prompts/{id}"), &app.alice).await.expect(StatusCode::OK);
}

#[tokio::test]
async fn malformed_json_missing_content_type_and_too_large() {
    let app = TestApp::new().await;
    let req = Request::post("/api/prompts")
        .header("authorization", format!("Bearer {}", app.alice))
        .header("content-type", "application/json")
        .body(Body::from("{\"name\": "))
        .unwrap();
    let r = app.request(req).await.expect(StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "malformed_json");

    let req = Request::post("/api/prompts")
        .header("authorization", format!("Bearer {}", app.alice))
        .body(Body::from("{}"))
        .unwrap();
    let r = app.request(req).await.expect(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.code(), "unsupported_media_type");

    // The test app's limit is 64 KiB.
    let big = json!({"name": "big", "template": "x".repeat(100 * 1024)});
    let r = app.post("/api/prompts", &app.alice, big).await.expect(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "payload_too_large");
}

#[tokio::test]
async fn prompt_list_paginates_and_validates_arguments() {
    let app = TestApp::new().await;
    for i in 0..5 {
        app.prompt(&app.alice, &format!("p{i}")).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/api/prompts?limit=2&cursor={c}"),
            None => "/api/prompts?limit=2".to_string(),
        };
        let page = app.get(&path, &app.alice).await.expect(StatusCode::OK);
        for p in page.body["items"].as_array().unwrap() {
            seen.push(p["name"].as_str().unwrap().to_string());
        }
        match page.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["p4", "p3", "p2", "p1", "p0"], "newest first, each once");

    for bad in [
        "/api/prompts?limit=0",
        "/api/prompts?limit=1000",
        "/api/prompts?cursor=zzz",
        "/api/prompts?status=NOPE",
        "/api/prompts?limit=abc",
        "/api/prompts?unknown=1",
    ] {
        let r = app.get(bad, &app.alice).await.expect(StatusCode::BAD_REQUEST);
        assert_eq!(r.code(), "invalid_argument", "{bad}: {}", r.text);
    }
    // Bob sees none of Alice's prompts.
    let r = app.get("/api/prompts", &app.bob).await.expect(StatusCode::OK);
    assert!(r.body["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn prompt_list_finds_one_prompt_by_name() {
    let app = TestApp::new().await;
    let id = app.prompt(&app.alice, "two words").await;
    app.prompt(&app.alice, "other").await;
    let r = app.get("/api/prompts?name=two%20words", &app.alice).await.expect(StatusCode::OK);
    let ids: Vec<&str> =
        r.body["items"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id.as_str()]);
    assert!(r.body["nextCursor"].is_null());
    // An exact name: no prefix match, and nobody else's prompt.
    for (path, who) in [("/api/prompts?name=two", &app.alice), ("/api/prompts?name=two%20words", &app.bob)] {
        let r = app.get(path, who).await.expect(StatusCode::OK);
        assert!(r.body["items"].as_array().unwrap().is_empty(), "{path}: {}", r.text);
    }
    let r = app.get("/api/prompts?name=x&status=ACTIVE", &app.alice).await.expect(StatusCode::BAD_REQUEST);
    assert!(r.text.contains("name"), "{}", r.text);
}

// ----- executions -----

#[tokio::test]
async fn execute_sync_returns_the_execution_response() {
    let app = TestApp::new().await;
    let id = app.prompt(&app.alice, "p").await;
    let r = app
        .post(
            &format!("/api/prompts/{id}/execute"),
            &app.alice,
            json!({"inputs": {"topic": "rust"}, "priority": "HIGH"}),
        )
        .await
        .expect(StatusCode::OK);
    let b = &r.body;
    assert_eq!(b["status"], "COMPLETED", "{}", r.text);
    assert!(b["output"].as_str().is_some_and(|o| !o.is_empty()));
    assert_eq!(b["promptId"], id.as_str());
    assert_eq!(b["promptVersion"], 1);
    assert_eq!(b["priority"], "HIGH");
    assert_eq!(b["inputs"]["topic"], "rust");
    assert!(b["metrics"]["latencyMs"].is_u64());
    assert!(b["metrics"]["tokenUsage"]["total"].as_u64().unwrap() > 0);
    assert!(b.get("validatedOutput").is_some());
    assert!(b["metrics"].get("costUsd").is_some());

    let exec_id = b["id"].as_str().unwrap();
    let got = app.get(&format!("/api/executions/{exec_id}"), &app.alice).await.expect(StatusCode::OK);
    assert_eq!(got.body["status"], "COMPLETED");
    assert_eq!(got.body["output"], b["output"]);
}

#[tokio::test]
async fn execute_async_answers_202_with_location() {
    let app = TestApp::new().await;
    let id = app.prompt(&app.alice, "p").await;
    let body = json!({"inputs": {"topic": "a"}});
    for (path, headers) in [
        (format!("/api/prompts/{id}/execute?mode=async"), vec![]),
        (format!("/api/prompts/{id}/execute"), vec![("prefer", "respond-async")]),
    ] {
        let r = app
            .call_with(Method::POST, &path, Some(&app.alice), Some(body.clone()), &headers)
            .await
            .expect(StatusCode::ACCEPTED);
        let exec_id = r.body["id"].as_str().unwrap().to_string();
        assert_eq!(r.headers["location"], format!("/api/executions/{exec_id}").as_str());
        assert!(
            ["QUEUED", "RUNNING", "COMPLETED"].contains(&r.body["status"].as_str().unwrap()),
            "{}",
            r.text
        );
        let done = app
            .state
            .engine()
            .wait(
                exec_id_owner(&app, "alice@example.com").await,
                exec_id.parse().unwrap(),
                Some(std::time::Duration::from_secs(10)),
            )
            .await
            .unwrap();
        assert_eq!(done.status.as_str(), "COMPLETED");
    }
    app.post(&format!("/api/prompts/{id}/execute?mode=later"), &app.alice, body)
        .await
        .expect(StatusCode::BAD_REQUEST);
}

async fn exec_id_owner(app: &TestApp, email: &str) -> formaops_core::ids::UserId {
    app.store.user_by_email(email).await.unwrap().unwrap().user.id
}

#[tokio::test]
async fn execute_validates_inputs_before_queueing() {
    let app = TestApp::new().await;
    let id = app
        .prompt_with(
            &app.alice,
            json!({
                "name": "typed",
                "template": "{{ topic }} {{ n }}",
                "variables": [
                    {"name": "topic", "type": "string", "required": true},
                    {"name": "n", "type": "number", "required": true},
                ],
            }),
        )
        .await;
    let r = app
        .post(&format!("/api/prompts/{id}/execute"), &app.alice, json!({"inputs": {"n": "not a number"}}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "invalid_inputs");
    let fields: Vec<_> = r.body["error"]["details"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap().to_string())
        .collect();
    assert!(fields.iter().any(|f| f.contains("topic")), "{fields:?}");
    assert!(fields.iter().any(|f| f.contains('n')), "{fields:?}");
    // Nothing was queued.
    let list = app.get("/api/executions", &app.alice).await.expect(StatusCode::OK);
    assert!(list.body["items"].as_array().unwrap().is_empty());

    app.post(&format!("/api/prompts/{id}/execute"), &app.alice, json!({"inputs": {}, "priority": "URGENT"}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
}

/// Text no store can hold (NUL) is refused with 422 naming the field, before anything is
/// stored, on every backend alike (the engine's rule; `formaops_core::text`).
#[tokio::test]
async fn nul_characters_are_refused_naming_the_field() {
    let app = TestApp::new().await;
    let id = app
        .prompt_with(
            &app.alice,
            json!({
                "name": "nul",
                "template": "{{ v | default('') }} {{ data | default('') }}",
                "variables": [{"name": "v", "type": "string"}, {"name": "data", "type": "json"}],
            }),
        )
        .await;
    let execute = format!("/api/prompts/{id}/execute");
    for (body, field) in [
        (r#"{"inputs": {"v": "x\u0000y"}}"#, "inputs.v"),
        (r#"{"inputs": {"data": {"x\u0000y": 1}}}"#, "inputs.data"),
        (r#"{"inputs": {"data": {"list": ["ok", "\u0000"]}}}"#, "inputs.data.list[1]"),
    ] {
        let body: Value = serde_json::from_str(body).unwrap();
        let r = app.post(&execute, &app.alice, body).await.expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.code(), "invalid_inputs");
        let problems = r.body["error"]["details"]["problems"].as_array().unwrap();
        assert_eq!(problems.len(), 1, "{}", r.text);
        assert_eq!(problems[0]["field"], field);
        assert_eq!(problems[0]["code"], formaops_core::text::CODE.as_str());
    }
    let list = app.get("/api/executions", &app.alice).await.expect(StatusCode::OK);
    assert!(list.body["items"].as_array().unwrap().is_empty(), "nothing was queued");

    let r = app
        .post("/api/prompts", &app.alice, json!({"name": "t", "template": "a\u{0}b"}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["error"]["details"]["problems"][0]["field"], "template");
    let r = app
        .call(
            Method::PUT,
            &format!("/api/prompts/{id}"),
            Some(&app.alice),
            Some(json!({"systemTemplate": "\u{0}"})),
        )
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["error"]["details"]["problems"][0]["field"], "systemTemplate");
    let r = app
        .post("/api/auth/keys", &app.alice, json!({"name": "ci\u{0}"}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "invalid_argument");
    // A login with such an email is an unknown account, like any other.
    app.call(Method::POST, "/api/auth/login", None, Some(json!({"email": "a\u{0}@x", "password": PASSWORD})))
        .await
        .expect(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn idempotency_key_returns_the_first_execution() {
    let app = TestApp::new().await;
    let id = app.prompt(&app.alice, "p").await;
    let path = format!("/api/prompts/{id}/execute");
    let body = json!({"inputs": {"topic": "same"}});
    let key = [("idempotency-key", "order-42")];
    let first = app
        .call_with(Method::POST, &path, Some(&app.alice), Some(body.clone()), &key)
        .await
        .expect(StatusCode::OK);
    let again =
        app.call_with(Method::POST, &path, Some(&app.alice), Some(body), &key).await.expect(StatusCode::OK);
    assert_eq!(first.body["id"], again.body["id"]);
    let r = app
        .call_with(Method::POST, &path, Some(&app.alice), Some(json!({"inputs": {"topic": "other"}})), &key)
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "idempotency_key_reused");
    let list = app.get("/api/executions", &app.alice).await.expect(StatusCode::OK);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);

    let bad = [("idempotency-key", "")];
    app.call_with(Method::POST, &path, Some(&app.alice), Some(json!({"inputs": {"topic": "x"}})), &bad)
        .await
        .expect(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn failed_executions_can_be_retried_others_cannot() {
    let app = TestApp::new().await;
    let ok = app.prompt(&app.alice, "ok").await;
    let failing = app
        .prompt_with(
            &app.alice,
            json!({
                "name": "failing",
                "template": "x",
                "model": {"provider": support::FAILING_PROVIDER, "model": "mock"},
            }),
        )
        .await;
    let done =
        app.post(&format!("/api/prompts/{ok}/execute"), &app.alice, json!({"inputs": {"topic": "t"}})).await;
    let done_id = done.body["id"].as_str().unwrap().to_string();
    let r = app
        .post(&format!("/api/executions/{done_id}/retry"), &app.alice, json!({}))
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(r.code(), "conflict");

    let failed = app
        .post(&format!("/api/prompts/{failing}/execute"), &app.alice, json!({}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(failed.body["status"], "FAILED", "{}", failed.text);
    assert!(failed.body["error"]["code"].is_string(), "{}", failed.text);
    let failed_id = failed.body["id"].as_str().unwrap();
    let retry = app
        .call(Method::POST, &format!("/api/executions/{failed_id}/retry"), Some(&app.alice), None)
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(retry.body["retryOf"], failed_id);
    assert_ne!(retry.body["id"], failed_id);
    assert!(retry.headers.contains_key("location"));

    let list = app.get("/api/executions?status=FAILED", &app.alice).await.expect(StatusCode::OK);
    assert!(list.body["items"].as_array().unwrap().iter().all(|e| e["status"] == "FAILED"));
    assert!(!list.body["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn cancel_a_queued_execution() {
    // No workers: executions stay QUEUED.
    let app = TestApp::with(false, support::settings()).await;
    let id = app.prompt(&app.alice, "p").await;
    let r = app
        .post(&format!("/api/prompts/{id}/execute?mode=async"), &app.alice, json!({"inputs": {"topic": "t"}}))
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(r.body["status"], "QUEUED");
    let exec = r.body["id"].as_str().unwrap();
    let c = app
        .call(Method::POST, &format!("/api/executions/{exec}/cancel"), Some(&app.alice), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(c.body["status"], "CANCELLED");
    let again =
        app.call(Method::POST, &format!("/api/executions/{exec}/cancel"), Some(&app.alice), None).await;
    assert_eq!(again.expect(StatusCode::CONFLICT).code(), "conflict");
}

#[tokio::test]
async fn sync_execute_answers_202_when_the_wait_runs_out() {
    let settings = formaops_http::HttpSettings {
        sync_wait: std::time::Duration::from_millis(50),
        ..support::settings()
    };
    let app = TestApp::with(false, settings).await;
    let id = app.prompt(&app.alice, "p").await;
    let r = app
        .post(&format!("/api/prompts/{id}/execute"), &app.alice, json!({"inputs": {"topic": "t"}}))
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(r.body["status"], "QUEUED");
    assert!(r.body["metrics"].is_null());
}

#[tokio::test]
async fn execution_list_filters_and_paginates() {
    let app = TestApp::new().await;
    let a = app.prompt(&app.alice, "a").await;
    let b = app.prompt(&app.alice, "b").await;
    for p in [&a, &a, &a, &b] {
        app.post(&format!("/api/prompts/{p}/execute"), &app.alice, json!({"inputs": {"topic": "t"}}))
            .await
            .expect(StatusCode::OK);
    }
    let only_a = app.get(&format!("/api/executions?promptId={a}"), &app.alice).await.expect(StatusCode::OK);
    assert_eq!(only_a.body["items"].as_array().unwrap().len(), 3);

    let p1 = app.get("/api/executions?limit=3", &app.alice).await.expect(StatusCode::OK);
    assert_eq!(p1.body["items"].as_array().unwrap().len(), 3);
    let c = p1.body["nextCursor"].as_str().unwrap();
    let p2 = app.get(&format!("/api/executions?limit=3&cursor={c}"), &app.alice).await.expect(StatusCode::OK);
    assert_eq!(p2.body["items"].as_array().unwrap().len(), 1);
    assert!(p2.body["nextCursor"].is_null());

    let future =
        app.get("/api/executions?since=2999-01-01T00:00:00Z", &app.alice).await.expect(StatusCode::OK);
    assert!(future.body["items"].as_array().unwrap().is_empty());
    let past = app.get("/api/executions?until=2000-01-01T00:00:00Z", &app.alice).await.expect(StatusCode::OK);
    assert!(past.body["items"].as_array().unwrap().is_empty());
    let completed = app.get("/api/executions?status=COMPLETED", &app.alice).await.expect(StatusCode::OK);
    assert_eq!(completed.body["items"].as_array().unwrap().len(), 4);

    for bad in [
        "/api/executions?status=DONE",
        "/api/executions?since=yesterday",
        "/api/executions?promptId=nope",
        "/api/executions?limit=0",
    ] {
        let r = app.get(bad, &app.alice).await.expect(StatusCode::BAD_REQUEST);
        assert_eq!(r.code(), "invalid_argument", "{bad}");
    }
}

// ----- events -----

#[tokio::test]
async fn sse_follows_one_execution_to_its_end() {
    let app = TestApp::new().await;
    let id = app.prompt(&app.alice, "p").await;
    let r = app
        .post(&format!("/api/prompts/{id}/execute?mode=async"), &app.alice, json!({"inputs": {"topic": "t"}}))
        .await
        .expect(StatusCode::ACCEPTED);
    let exec = r.body["id"].as_str().unwrap();
    // The stream ends after the final event, so the whole body can be read.
    let sse = app
        .get(&format!("/api/executions/events?executionId={exec}"), &app.alice)
        .await
        .expect(StatusCode::OK);
    assert!(sse.headers["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let frames: Vec<(String, Value)> = parse_sse(&sse.text);
    assert_eq!(frames[0].0, "snapshot", "{}", sse.text);
    assert_eq!(frames[0].1["execution"]["id"], exec);
    let last = frames.last().unwrap();
    let status = if last.0 == "snapshot" { &last.1["execution"]["status"] } else { &last.1["status"] };
    assert_eq!(status, "COMPLETED", "{}", sse.text);

    // Bob may not follow it.
    let r = app
        .get(&format!("/api/executions/events?executionId={exec}"), &app.bob)
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "not_found");
}

fn parse_sse(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut event = String::from("message");
        let mut data = String::new();
        for line in block.lines() {
            if let Some(e) = line.strip_prefix("event:") {
                event = e.trim().to_string();
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push_str(d.trim());
            }
        }
        if !data.is_empty() {
            out.push((event, serde_json::from_str(&data).unwrap()));
        }
    }
    out
}

#[tokio::test]
async fn websocket_requires_credentials() {
    let app = TestApp::new().await;
    let r = app.call(Method::GET, "/api/ws", None, None).await.expect(StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "unauthorized");
    app.call(Method::GET, "/api/ws?token=fos_bogus", None, None).await.expect(StatusCode::UNAUTHORIZED);
    // Authenticated but not an upgrade request: refused by the upgrade extractor, in our shape.
    let r = app.call(Method::GET, &format!("/api/ws?token={}", app.alice), None, None).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert!(r.body["error"]["code"].is_string(), "{}", r.text);
}

// ----- system -----

#[tokio::test]
async fn metrics_per_version_and_label_and_the_series() {
    let app = TestApp::new().await;
    let id = app.prompt(&app.alice, "p").await;
    let path = format!("/api/prompts/{id}/execute");
    app.post(&path, &app.alice, json!({"inputs": {"topic": "t"}, "label": "production"}))
        .await
        .expect(StatusCode::OK);
    let e = app.post(&path, &app.alice, json!({"inputs": {"topic": "u"}})).await.expect(StatusCode::OK);
    assert_eq!(e.body["label"], Value::Null, "run by the current version: no label");
    let m = app.get(&format!("/api/metrics?promptId={id}"), &app.alice).await.expect(StatusCode::OK);
    assert_eq!(m.body["byVersion"][0]["version"], 1, "{}", m.text);
    assert_eq!(m.body["byVersion"][0]["share"], 1.0);
    let labels = m.body["byLabel"].as_array().unwrap();
    assert_eq!(labels.len(), 2, "{}", m.text);
    assert_eq!((&labels[0]["label"], &labels[1]["label"]), (&Value::Null, &json!("production")));
    assert_eq!(labels[1]["share"], 0.5);
    assert_eq!(labels[1]["counts"]["completed"], 1);
    assert!(labels[1]["latencyMs"]["p99"].is_number());

    let s = app.get("/api/metrics/series?bucket=minute", &app.alice).await.expect(StatusCode::OK);
    assert_eq!(s.body["bucket"], "minute");
    let points = s.body["points"].as_array().unwrap();
    let total: u64 = points.iter().map(|p| p["counts"]["completed"].as_u64().unwrap()).sum();
    assert_eq!(total, 2, "{}", s.text);
    assert!(points[0]["start"].is_string() && points[0]["latencyMs"]["p50"].is_number());
    // A point has the report's summary shape, validation counts included.
    assert!(points[0]["validated"].is_u64() && points[0]["validationPassed"].is_u64(), "{}", s.text);
    let s = app
        .get(&format!("/api/metrics/series?bucket=hour&promptId={id}&label=production"), &app.alice)
        .await
        .expect(StatusCode::OK);
    assert_eq!(s.body["points"][0]["counts"]["total"], 1, "{}", s.text);
    let bob = app.get("/api/metrics/series?bucket=day", &app.bob).await.expect(StatusCode::OK);
    assert_eq!(bob.body["points"], json!([]), "series are per user");
    for (query, field) in [
        ("bucket=week", "bucket"),
        ("bucket=minute&since=2020-01-01T00:00:00Z", "since"),
        ("bucket=hour&label=production", "label"),
        ("bucket=hour&version=2", "version"),
    ] {
        let r = app
            .get(&format!("/api/metrics/series?{query}"), &app.alice)
            .await
            .expect(StatusCode::BAD_REQUEST);
        assert_eq!(r.body["error"]["details"]["field"], field, "{query}: {}", r.text);
    }
    app.get("/api/metrics/series", &app.alice).await.expect(StatusCode::BAD_REQUEST);
    app.call(Method::GET, "/api/metrics/series?bucket=day", None, None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn health_metrics_prometheus_openapi_docs() {
    let app = TestApp::new().await;
    let h = app.call(Method::GET, "/api/health", None, None).await.expect(StatusCode::OK);
    assert_eq!(h.body["status"], "ok");
    assert_eq!(h.body["database"], true);
    assert!(h.body["queueDepth"].is_u64());
    assert!(h.body["version"].is_string());
    assert!(h.body["uptimeSeconds"].is_u64());
    assert!(h.body["providers"].as_array().unwrap().iter().any(|p| p["name"] == "mock"));

    let id = app.prompt(&app.alice, "p").await;
    app.post(&format!("/api/prompts/{id}/execute"), &app.alice, json!({"inputs": {"topic": "t"}}))
        .await
        .expect(StatusCode::OK);
    let m = app.get("/api/metrics", &app.alice).await.expect(StatusCode::OK);
    assert_eq!(m.body["counts"]["completed"], 1, "{}", m.text);
    assert_eq!(m.body["byPrompt"][0]["promptId"], id.as_str());
    let m =
        app.get(&format!("/api/metrics?promptId={id}&version=1"), &app.alice).await.expect(StatusCode::OK);
    assert_eq!(m.body["counts"]["total"], 1);
    let bob = app.get("/api/metrics", &app.bob).await.expect(StatusCode::OK);
    assert_eq!(bob.body["counts"]["total"], 0, "metrics are per user");
    app.get("/api/metrics?version=1", &app.alice).await.expect(StatusCode::BAD_REQUEST);
    app.get("/api/metrics?since=soon", &app.alice).await.expect(StatusCode::BAD_REQUEST);
    // The window rule is core's, on every path that takes one.
    let window = "since=2030-01-02T00:00:00Z&until=2030-01-01T00:00:00Z";
    for path in [format!("/api/metrics?{window}"), format!("/api/executions?{window}")] {
        let r = app.get(&path, &app.alice).await.expect(StatusCode::BAD_REQUEST);
        assert_eq!(r.body["error"]["details"]["field"], "since", "{path}: {}", r.text);
    }
    app.call(Method::GET, "/api/metrics", None, None).await.expect(StatusCode::UNAUTHORIZED);

    let p = app.call(Method::GET, "/metrics", None, None).await.expect(StatusCode::OK);
    assert!(p.text.contains("http_request_duration_seconds"), "{}", p.text);
    assert!(p.text.contains("formaops_queue_depth"), "{}", p.text);
    assert!(p.text.contains("formaops_provider_in_flight{provider=\"mock\"}"), "{}", p.text);
    // The engine's own instruments: what FormaOps adds on top of the provider call.
    assert!(p.text.contains("formaops_added_latency_seconds_bucket{provider=\"mock\""), "{}", p.text);
    assert!(
        p.text.contains("formaops_attempts_total{provider=\"mock\",outcome=\"completed\"}"),
        "{}",
        p.text
    );
    assert!(!p.text.contains("alice"), "no user data in labels");
    assert!(!p.text.contains(&id), "no ids in labels");

    let doc = app.call(Method::GET, "/api/openapi.json", None, None).await.expect(StatusCode::OK);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/auth/login",
        "/api/prompts",
        "/api/prompts/{id}",
        "/api/prompts/{id}/execute",
        "/api/executions/{id}/retry",
        "/api/health",
        "/api/metrics",
        "/api/metrics/series",
    ] {
        assert!(doc.body["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }
    // Answers produced by shared middleware are documented on every operation.
    let create = &doc.body["paths"]["/api/prompts"]["post"]["responses"];
    for status in ["400", "401", "413", "414", "415", "422", "431", "503"] {
        assert!(create.get(status).is_some(), "POST /api/prompts does not document {status}");
    }
    let login = &doc.body["paths"]["/api/auth/login"]["post"]["responses"];
    assert!(login.get("422").is_some(), "a body of the wrong shape (422) is documented on login");
    let details = &doc.body["components"]["schemas"]["ErrorDetail"]["properties"]["details"];
    assert!(details.to_string().contains("null"), "details must be nullable: {details}");
    let docs = app.call(Method::GET, "/api/docs/", None, None).await.expect(StatusCode::OK);
    assert!(docs.text.contains("swagger"), "{}", &docs.text[..docs.text.len().min(200)]);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_our_shape() {
    let app = TestApp::new().await;
    let r = app.call(Method::GET, "/api/nope", None, None).await.expect(StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "route_not_found");
    let r = app
        .call(Method::PATCH, "/api/prompts", Some(&app.alice), None)
        .await
        .expect(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.code(), "method_not_allowed");
    assert!(r.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn request_ids_are_set_and_propagated() {
    let app = TestApp::new().await;
    let r = app.call(Method::GET, "/api/health", None, None).await;
    assert!(!r.headers["x-request-id"].to_str().unwrap().is_empty());
    let r = app.call_with(Method::GET, "/api/health", None, None, &[("x-request-id", "abc-123")]).await;
    assert_eq!(r.headers["x-request-id"], "abc-123");
}

#[tokio::test]
async fn health_is_503_after_shutdown() {
    let app = TestApp::new().await;
    app.state.engine().shutdown().await;
    let h = app.call(Method::GET, "/api/health", None, None).await.expect(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h.body["status"], "unavailable");
    assert_eq!(h.body["shuttingDown"], true);
    let id = app.prompt(&app.alice, "p").await;
    let r = app
        .post(&format!("/api/prompts/{id}/execute"), &app.alice, json!({"inputs": {"topic": "t"}}))
        .await
        .expect(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.code(), "shutting_down");
}

// ----- isolation -----

#[tokio::test]
async fn another_users_ids_answer_exactly_like_missing_ones() {
    let app = TestApp::new().await;
    let prompt = app.prompt(&app.alice, "secret").await;
    let exec = app
        .post(&format!("/api/prompts/{prompt}/execute"), &app.alice, json!({"inputs": {"topic": "t"}}))
        .await
        .expect(StatusCode::OK);
    let exec = exec.body["id"].as_str().unwrap().to_string();
    let missing_prompt = uuid::Uuid::now_v7().to_string();
    let missing_exec = uuid::Uuid::now_v7().to_string();

    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/prompts/{p}".into(), None),
        (Method::GET, "/api/prompts/{p}?version=1".into(), None),
        (Method::PUT, "/api/prompts/{p}".into(), Some(json!({"template": "pwned"}))),
        (Method::DELETE, "/api/prompts/{p}".into(), None),
        (Method::GET, "/api/prompts/{p}/versions".into(), None),
        (Method::POST, "/api/prompts/{p}/execute".into(), Some(json!({"inputs": {"topic": "t"}}))),
        (Method::GET, "/api/executions/{e}".into(), None),
        (Method::POST, "/api/executions/{e}/retry".into(), None),
        (Method::POST, "/api/executions/{e}/cancel".into(), None),
        (Method::GET, "/api/executions/events?executionId={e}".into(), None),
    ];
    for (method, template, body) in cases {
        let theirs = template.replace("{p}", &prompt).replace("{e}", &exec);
        let missing = template.replace("{p}", &missing_prompt).replace("{e}", &missing_exec);
        let a = app.call(method.clone(), &theirs, Some(&app.bob), body.clone()).await;
        let b = app.call(method.clone(), &missing, Some(&app.bob), body).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{method} {theirs}: {}", a.text);
        assert_eq!(b.status, StatusCode::NOT_FOUND, "{method} {missing}: {}", b.text);
        let strip = |r: &support::Reply, ids: [&str; 2]| {
            ids.iter().fold(r.text.clone(), |t, id| t.replace(id, "<id>"))
        };
        assert_eq!(
            strip(&a, [&prompt, &exec]),
            strip(&b, [&missing_prompt, &missing_exec]),
            "{method} {template}"
        );
    }
    // Nothing changed for Alice.
    let p = app.get(&format!("/api/prompts/{prompt}"), &app.alice).await.expect(StatusCode::OK);
    assert_eq!(p.body["currentVersion"], 1);
    assert_eq!(p.body["status"], "ACTIVE");
    let list = app.get("/api/executions", &app.alice).await.expect(StatusCode::OK);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert!(app.get("/api/executions", &app.bob).await.body["items"].as_array().unwrap().is_empty());
    // A malformed id is "not found" too.
    let r = app.get("/api/prompts/not-a-uuid", &app.bob).await.expect(StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "not_found");
}

#[tokio::test]
async fn sse_of_a_pending_execution_ends_right_after_its_final_event() {
    use tower::ServiceExt as _;
    // No workers: the execution stays QUEUED until cancelled.
    let app = TestApp::with(false, support::settings()).await;
    let id = app.prompt(&app.alice, "p").await;
    let r = app
        .post(&format!("/api/prompts/{id}/execute?mode=async"), &app.alice, json!({"inputs": {"topic": "t"}}))
        .await
        .expect(StatusCode::ACCEPTED);
    let exec = r.body["id"].as_str().unwrap().to_string();
    let req = Request::get(format!("/api/executions/events?executionId={exec}"))
        .header("authorization", format!("Bearer {}", app.alice))
        .body(Body::empty())
        .unwrap();
    // The handler subscribes before it answers, so the cancel below is seen.
    let response = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    app.call(Method::POST, &format!("/api/executions/{exec}/cancel"), Some(&app.alice), None)
        .await
        .expect(StatusCode::OK);
    let body = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        axum::body::to_bytes(response.into_body(), 1024 * 1024),
    )
    .await
    .expect("the stream ends after the final event")
    .unwrap();
    let frames = parse_sse(&String::from_utf8_lossy(&body));
    assert_eq!(frames[0].0, "snapshot");
    assert_eq!(frames[0].1["execution"]["status"], "QUEUED");
    let last = frames.last().unwrap();
    assert_eq!(last.0, "cancelled");
    assert_eq!(last.1["status"], "CANCELLED");
    assert_eq!(last.1["executionId"], exec.as_str());
}

/// `GET /api/executions/events` (all of the caller's executions) as `token`: the open stream.
async fn open_events(app: &TestApp, token: &str) -> axum::body::BodyDataStream {
    use tower::ServiceExt as _;
    let req = Request::get("/api/executions/events")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body().into_data_stream()
}

#[tokio::test]
async fn sse_of_all_executions_carries_only_the_callers_events() {
    let app = TestApp::with(false, support::settings()).await;
    let mine = app.prompt(&app.alice, "mine").await;
    let theirs = app.prompt(&app.bob, "theirs").await;
    let mut body = open_events(&app, &app.alice).await;
    let bob_exec = app
        .post(
            &format!("/api/prompts/{theirs}/execute?mode=async"),
            &app.bob,
            json!({"inputs": {"topic": "b"}}),
        )
        .await
        .expect(StatusCode::ACCEPTED);
    let alice_exec = app
        .post(
            &format!("/api/prompts/{mine}/execute?mode=async"),
            &app.alice,
            json!({"inputs": {"topic": "a"}}),
        )
        .await
        .expect(StatusCode::ACCEPTED);
    // Read frames until Alice's queued event shows up.
    let mut text = String::new();
    let alice_id = alice_exec.body["id"].as_str().unwrap().to_string();
    let read = async {
        use futures::StreamExt as _;
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if text.contains(&alice_id) {
                break;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read).await.expect("Alice's event arrives");
    assert!(!text.contains(bob_exec.body["id"].as_str().unwrap()), "Bob's event leaked: {text}");
    let frames = parse_sse(&text);
    assert!(frames.iter().all(|(_, v)| v["userId"] == frames[0].1["userId"]));
}

#[tokio::test]
async fn sse_carries_the_partial_output_of_a_streaming_provider() {
    let app = TestApp::new().await;
    let prompt = app
        .prompt_with(
            &app.alice,
            json!({
                "name": "streamed",
                "template": "Write a few words about {{ topic }}, please.",
                "variables": [{"name": "topic", "type": "string", "required": true}],
                "model": {"provider": support::STREAMING_PROVIDER, "model": "mock"},
            }),
        )
        .await;
    let mut body = open_events(&app, &app.alice).await;
    let r = app
        .post(
            &format!("/api/prompts/{prompt}/execute?mode=async"),
            &app.alice,
            json!({"inputs": {"topic": "streams"}}),
        )
        .await
        .expect(StatusCode::ACCEPTED);
    let exec = r.body["id"].as_str().unwrap().to_string();
    let mut text = String::new();
    let read = async {
        use futures::StreamExt as _;
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if text.contains("event: completed") {
                break;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read).await.expect("the execution completes");
    let frames: Vec<(String, Value)> =
        parse_sse(&text).into_iter().filter(|(_, v)| v["executionId"] == exec.as_str()).collect();
    let names: Vec<&str> = frames.iter().map(|(n, _)| n.as_str()).collect();
    let first_partial = names.iter().position(|n| *n == "partial").expect("partial events");
    assert!(names[..first_partial].contains(&"running"), "{names:?}");
    assert_eq!(names.last(), Some(&"completed"), "{names:?}");
    let streamed: String = frames
        .iter()
        .filter(|(n, _)| n == "partial")
        .map(|(_, v)| {
            assert_eq!(v["status"], "RUNNING");
            v["delta"].as_str().unwrap().to_string()
        })
        .collect();
    let done = app.get(&format!("/api/executions/{exec}"), &app.alice).await.expect(StatusCode::OK);
    assert_eq!(streamed, done.body["output"].as_str().unwrap());
    assert_eq!(streamed, "Write a few words about streams, please.");
}

#[tokio::test]
async fn cors_is_off_by_default_and_configurable() {
    async fn preflight(app: &TestApp) -> support::Reply {
        let req = Request::builder()
            .method(Method::OPTIONS)
            .uri("/api/prompts")
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .body(Body::empty())
            .unwrap();
        app.request(req).await
    }
    let off = TestApp::new().await;
    let r = preflight(&off).await;
    assert!(!r.headers.contains_key("access-control-allow-origin"), "{:?}", r.headers);

    let settings = formaops_http::HttpSettings {
        cors_origins: vec!["https://app.example".into()],
        ..support::settings()
    };
    let on = TestApp::with(true, settings).await;
    let r = preflight(&on).await;
    assert!(r.status.is_success(), "{}", r.status);
    assert_eq!(r.headers["access-control-allow-origin"], "https://app.example");
    let other =
        Request::get("/api/health").header("origin", "https://evil.example").body(Body::empty()).unwrap();
    let r = on.request(other).await;
    assert!(!r.headers.contains_key("access-control-allow-origin"));
}

// ----- one shape per record -----

/// Object keys, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

/// The REST answers are the core records themselves: their fields are the OpenAPI schema's,
/// the execution shows everything the Python binding shows (owner, idempotency key, retry and
/// deadline instants), and the field lists are the ones the Python dataclasses are checked
/// against (`formaops-py/tests/rest_fields.json`, read by `test_api_surface.py`). Run with
/// `FORMAOPS_WRITE_REST_FIELDS=1` to rewrite that file after a deliberate change.
#[tokio::test]
async fn rest_records_are_the_core_types_with_the_python_fields() {
    let app = TestApp::new().await;
    let id = app.prompt(&app.alice, "p").await;
    let exec = app
        .post(&format!("/api/prompts/{id}/execute"), &app.alice, json!({"inputs": {"topic": "t"}}))
        .await
        .expect(StatusCode::OK)
        .body;
    for field in ["userId", "idempotencyKey", "runAfter", "deadlineAt"] {
        assert!(exec.get(field).is_some(), "the execution must show {field}: {exec}");
    }
    for hidden in ["queueKey", "leaseOwner", "leaseExpiresAt"] {
        assert!(exec.get(hidden).is_none(), "{hidden} is internal: {exec}");
    }
    let prompt = app.get(&format!("/api/prompts/{id}"), &app.alice).await.expect(StatusCode::OK).body;
    let listed = app.get("/api/prompts", &app.alice).await.expect(StatusCode::OK).body;
    let versions =
        app.get(&format!("/api/prompts/{id}/versions"), &app.alice).await.expect(StatusCode::OK).body;
    let report = app.get("/api/metrics", &app.alice).await.expect(StatusCode::OK).body;

    // A prompt read alone carries its version; list items are the same record without it.
    let mut prompt_only = keys(&prompt);
    prompt_only.retain(|k| k != "version");
    assert_eq!(keys(&listed["items"][0]), prompt_only);
    assert_eq!(keys(&versions["items"][0]), keys(&prompt["version"]));

    // The OpenAPI document describes exactly what is sent.
    let doc = app.call(Method::GET, "/api/openapi.json", None, None).await.expect(StatusCode::OK).body;
    let schema = |name: &str| keys(&doc["components"]["schemas"][name]["properties"]);
    assert_eq!(schema("Execution"), keys(&exec));
    assert_eq!(schema("ExecutionMetrics"), keys(&exec["metrics"]));
    assert_eq!(schema("Prompt"), prompt_only);
    assert_eq!(schema("PromptVersion"), keys(&prompt["version"]));

    let records = [
        ("Execution", &exec),
        ("ExecutionMetrics", &exec["metrics"]),
        ("TokenUsage", &exec["metrics"]["tokenUsage"]),
        ("Prompt", &prompt),
        ("PromptVersion", &prompt["version"]),
        ("MetricsReport", &report),
        ("PromptMetrics", &report["byPrompt"][0]),
        ("StatusCounts", &report["counts"]),
        ("TokenTotals", &report["tokens"]),
        ("Percentiles", &report["latencyMs"]),
    ];
    let mut fields = serde_json::Map::new();
    for (name, value) in records {
        fields.insert(name.to_string(), json!(keys(value)));
    }
    let text = format!("{}\n", serde_json::to_string_pretty(&Value::Object(fields)).unwrap());
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../formaops-py/tests/rest_fields.json");
    if std::env::var_os("FORMAOPS_WRITE_REST_FIELDS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        committed, text,
        "the REST fields changed: rerun with FORMAOPS_WRITE_REST_FIELDS=1, then make the Python \
         dataclasses and stubs match (formaops-py/tests/test_api_surface.py checks them)"
    );
}
