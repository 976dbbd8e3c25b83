//! The engine's per-node caches on the store under test: what a node changes it sees at once,
//! what it caches it serves without the store, and what it must never cache.

use chrono::Duration;
use serde_json::json;

use super::fixtures::{new_user, now};
use crate::engine::{ExecuteRequest, FormaOps};
use crate::error::Error;
use crate::ids::CredentialId;
use crate::prompt::{PromptSpec, PromptUpdate};
use crate::store::Store;
use crate::user::{Credential, CredentialKind, token};

/// Credentials: a logout or revocation through the engine is refused at once on the same
/// node; a hit is served from the cache (a revocation written behind the engine's back is not
/// seen at once); an unknown token is never cached, so a key created after a failed lookup
/// works at once; expiry is checked on every hit. Runs an engine on `store`.
pub async fn engine_credential_cache(store: std::sync::Arc<dyn Store>) {
    let engine = FormaOps::builder(store.clone()).start().await.unwrap();
    let user = new_user(store.as_ref()).await;
    let (session, cred) =
        token::issue(store.as_ref(), user.id, CredentialKind::Session, None, None).await.unwrap();
    assert_eq!(engine.authenticate(&session).await.unwrap().1.id, cred.id);
    engine.revoke_credential(user.id, cred.id).await.unwrap();
    assert!(
        matches!(engine.authenticate(&session).await, Err(Error::Unauthenticated)),
        "a logout takes effect at once on the node that made it"
    );
    engine.revoke_credential(user.id, cred.id).await.unwrap();
    let other = new_user(store.as_ref()).await;
    assert!(
        matches!(engine.revoke_credential(other.id, cred.id).await, Err(Error::NotFound { .. })),
        "another user's credential cannot be revoked"
    );

    // Served from the cache: a revocation the engine did not make is not seen at once.
    let (key, kc) = token::create_api_key(store.as_ref(), user.id, "ci", None).await.unwrap();
    engine.authenticate(&key).await.unwrap();
    store.revoke_credential(user.id, kc.id, now()).await.unwrap();
    assert!(engine.authenticate(&key).await.is_ok(), "a fresh cache entry is served without the store");

    // Never a negative entry: a token refused once works as soon as it exists.
    let chosen = format!("fok_conformance_{}", uuid::Uuid::new_v4().simple());
    assert!(matches!(engine.authenticate(&chosen).await, Err(Error::Unauthenticated)));
    let created = now();
    let credential = Credential {
        id: CredentialId::new(),
        user_id: user.id,
        kind: CredentialKind::ApiKey,
        name: Some("late".into()),
        token_hash: token::hash(&chosen),
        created_at: created,
        expires_at: Some(created + Duration::milliseconds(1_000)),
        revoked_at: None,
    };
    store.create_credential(&credential).await.unwrap();
    assert_eq!(engine.authenticate(&chosen).await.unwrap().1.id, credential.id);
    // Expiry is checked on every hit, cached or not.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert!(matches!(engine.authenticate(&chosen).await, Err(Error::Unauthenticated)), "expired");
    for bad in ["", &"x".repeat(token::MAX_TOKEN_BYTES + 1)] {
        assert!(matches!(engine.authenticate(bad).await, Err(Error::Unauthenticated)));
    }
    engine.shutdown().await;
}

/// Prompt pointers and labels: an update, an archive or a label move made through the engine
/// is seen by the next submit at once; the cache is per owner; a version pinned above a
/// cached current version is looked up again. Runs an engine (mock provider) on `store`.
pub async fn engine_pointer_cache(store: std::sync::Arc<dyn Store>) {
    let engine = FormaOps::builder(store.clone()).start().await.unwrap();
    let user = new_user(store.as_ref()).await.id;
    let spec: PromptSpec = serde_json::from_value(json!({
        "name": "cached", "template": "one {{ x }}",
        "variables": [{"name": "x", "type": "string", "required": true}],
        "model": {"model": "mock"}
    }))
    .unwrap();
    let (prompt, _) = engine.create_prompt(user, spec).await.unwrap();
    let mut inputs = serde_json::Map::new();
    inputs.insert("x".into(), json!("a"));
    let request = ExecuteRequest { prompt_id: prompt.id, inputs: inputs.clone(), ..Default::default() };
    assert_eq!(engine.submit(user, request.clone()).await.unwrap().prompt_version, 1);
    assert!(
        matches!(
            engine.submit(new_user(store.as_ref()).await.id, request.clone()).await,
            Err(Error::NotFound { .. })
        ),
        "the cache is per owner"
    );
    let update = PromptUpdate { template: Some("two {{ x }}".into()), ..Default::default() };
    engine.update_prompt(user, prompt.id, update).await.unwrap();
    assert_eq!(engine.submit(user, request.clone()).await.unwrap().prompt_version, 2, "update seen at once");

    // Labels: a move is seen at once; a deleted label is gone at once.
    assert_eq!(engine.submit_label(user, request.clone(), "production").await.unwrap().prompt_version, 1);
    engine.set_label(user, prompt.id, "production", 2).await.unwrap();
    assert_eq!(engine.submit_label(user, request.clone(), "production").await.unwrap().prompt_version, 2);
    engine.set_label(user, prompt.id, "staging", 1).await.unwrap();
    assert_eq!(engine.submit_label(user, request.clone(), "staging").await.unwrap().prompt_version, 1);
    engine.delete_label(user, prompt.id, "staging").await.unwrap();
    assert!(matches!(
        engine.submit_label(user, request.clone(), "staging").await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(engine.submit_label(user, request.clone(), "latest").await.unwrap().prompt_version, 2);

    // A version written behind the engine's back: pinning it reads the pointer again.
    let (p, v2) = engine.get_prompt(user, prompt.id, None).await.unwrap();
    let v3 = crate::prompt::PromptVersion { version: 3, template: "three {{ x }}".into(), ..v2 };
    let p3 = crate::prompt::Prompt { current_version: 3, ..p };
    store.insert_version(&p3, &v3).await.unwrap();
    let pinned = ExecuteRequest { version: Some(3), ..request.clone() };
    assert_eq!(engine.submit(user, pinned).await.unwrap().prompt_version, 3);
    let missing = ExecuteRequest { version: Some(4), ..request.clone() };
    assert!(matches!(engine.submit(user, missing).await, Err(Error::NotFound { .. })));

    engine.archive_prompt(user, prompt.id).await.unwrap();
    assert!(
        matches!(engine.submit(user, request.clone()).await, Err(Error::Conflict { .. })),
        "an archive is seen at once"
    );
    engine.shutdown().await;
}
