//! Hot-path lookups served from the per-node caches of [`freshness`](super::freshness), so a
//! request repeated within their bound makes no store read: the user of a JWT's (issuer,
//! subject), and the active prompt a chat call names.

use super::FormaOps;
use super::freshness::PromptPointer;
use crate::error::{Error, Result};
use crate::ids::{PromptId, UserId};
use crate::prompt::PromptStatus;
#[cfg(feature = "jwt")]
use crate::user::{User, jwt};

impl FormaOps {
    /// The user of a JWT of a trusted issuer. The token is verified on every call
    /// (signature, expiry, issuer, audience: no store access); its user, found or created by
    /// (issuer, subject) as [`jwt::sign_in`] does, comes from this engine's cache when it holds
    /// a fresh entry (see [`freshness`](super::freshness)).
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for a token that is not a valid JWT of a configured issuer,
    /// or an unusable subject; store errors.
    #[cfg(feature = "jwt")]
    pub async fn jwt_user(&self, verifier: &jwt::JwtVerifier, token: &str) -> Result<User> {
        let claims = verifier.verify(token).await?;
        let caches = &self.inner.caches;
        if let Some(user) = caches.identity(&claims.iss, &claims.sub) {
            return Ok(user);
        }
        let read = caches.read_start();
        let user = jwt::sign_in(self.inner.store.as_ref(), &claims).await?;
        caches.put_identity(&claims.iss, &claims.sub, user.clone(), read);
        Ok(user)
    }

    /// The id and pointer (status, current version) of the caller's ACTIVE prompt named
    /// `name` (trimmed), from the per-node caches when fresh, else as
    /// [`find_prompt_by_name`](Self::find_prompt_by_name) finds it (then cached).
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is none; store errors.
    pub(super) async fn active_prompt_named(
        &self,
        user: UserId,
        name: &str,
    ) -> Result<(PromptId, PromptPointer)> {
        let name = name.trim();
        let caches = &self.inner.caches;
        if let Some(id) = caches.prompt_named(user, name) {
            match self.inner.prompt_pointer(user, id).await {
                Ok(p) if p.status == PromptStatus::Active => return Ok((id, p)),
                // Archived since (its invalidation is on its way): read the name afresh.
                Ok(_) | Err(Error::NotFound { .. }) => caches.forget_prompt_named(user, name),
                Err(e) => return Err(e),
            }
        }
        let read = caches.read_start();
        let prompt = self.find_prompt_by_name(user, name).await?;
        let pointer = PromptPointer { status: prompt.status, current_version: prompt.current_version };
        caches.put_prompt_named(user, name, prompt.id, read);
        caches.put_prompt(user, prompt.id, pointer, read);
        Ok((prompt.id, pointer))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::engine::ChatRequest;
    use crate::prompt::{PromptSpec, PromptUpdate};
    use crate::provider::mock::MockProvider;
    use crate::store::counting::CountingStore;
    use crate::store::{MemoryStore, Store};

    async fn engine() -> (Arc<CountingStore>, Arc<MemoryStore>, FormaOps) {
        let memory = Arc::new(MemoryStore::new());
        let store = Arc::new(CountingStore::new(memory.clone()));
        let config = crate::engine::EngineConfig { run_workers: false, ..Default::default() };
        let engine = FormaOps::builder(store.clone())
            .provider("mock", Arc::new(MockProvider::new()))
            .config(config)
            .start()
            .await
            .unwrap();
        (store, memory, engine)
    }

    fn spec(name: &str) -> PromptSpec {
        serde_json::from_value(json!({"name": name, "template": "hi", "model": {"model": "mock"}})).unwrap()
    }

    /// The (prompt, version, label) a chat call by `model` resolves to, and the store reads
    /// the resolution made.
    async fn resolve(
        engine: &FormaOps,
        store: &CountingStore,
        user: UserId,
        model: &str,
    ) -> Result<((PromptId, Option<u32>, Option<String>), usize)> {
        let before = store.calls("list_prompts") + store.calls("get_prompt") + store.calls("get_label");
        let chat = ChatRequest { model: model.into(), ..Default::default() };
        let (request, _) = engine.chat_request(user, chat).await?;
        let after = store.calls("list_prompts") + store.calls("get_prompt") + store.calls("get_label");
        Ok(((request.prompt_id, request.version, request.label), after - before))
    }

    #[tokio::test]
    async fn repeated_chat_calls_by_name_make_no_store_reads() {
        let (store, _, engine) = engine().await;
        let user = UserId::new();
        let (p, _) = engine.create_prompt(user, spec("greet")).await.unwrap();
        let production = Some("production".to_string());
        let (first, _) = resolve(&engine, &store, user, "formaops::greet").await.unwrap();
        assert_eq!(first, (p.id, None, production.clone()));
        let total = store.total();
        for _ in 0..3 {
            let (again, reads) = resolve(&engine, &store, user, "formaops:: greet ").await.unwrap();
            assert_eq!((again, reads), ((p.id, None, production.clone()), 0));
        }
        assert_eq!(store.total(), total, "no store call of any kind");
        // A pinned version and another label need no prompt read either.
        let (pinned, reads) = resolve(&engine, &store, user, "formaops::greet:1").await.unwrap();
        assert_eq!((pinned, reads), ((p.id, Some(1), None), 0));
    }

    #[tokio::test]
    async fn renames_archives_and_label_moves_are_seen_at_once() {
        let (store, _, engine) = engine().await;
        let user = UserId::new();
        let (p, _) = engine.create_prompt(user, spec("greet")).await.unwrap();
        resolve(&engine, &store, user, "formaops::greet").await.unwrap();

        // Without a production label: the current version, which moves with an update.
        engine.delete_label(user, p.id, "production").await.unwrap();
        let (got, _) = resolve(&engine, &store, user, "formaops::greet").await.unwrap();
        assert_eq!(got, (p.id, Some(1), None));
        let update = PromptUpdate { template: Some("v2".into()), ..Default::default() };
        engine.update_prompt(user, p.id, update).await.unwrap();
        let (got, _) = resolve(&engine, &store, user, "formaops::greet").await.unwrap();
        assert_eq!(got, (p.id, Some(2), None));
        engine.set_label(user, p.id, "production", 1).await.unwrap();
        let (got, _) = resolve(&engine, &store, user, "formaops::greet").await.unwrap();
        assert_eq!(got, (p.id, None, Some("production".into())));

        // A rename frees the name; a new prompt may take it.
        let rename = PromptUpdate { name: Some("hello".into()), ..Default::default() };
        engine.update_prompt(user, p.id, rename).await.unwrap();
        let gone = resolve(&engine, &store, user, "formaops::greet").await;
        assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
        assert_eq!(resolve(&engine, &store, user, "formaops::hello").await.unwrap().0.0, p.id);
        let (q, _) = engine.create_prompt(user, spec("greet")).await.unwrap();
        assert_eq!(resolve(&engine, &store, user, "formaops::greet").await.unwrap().0.0, q.id);

        // An archived prompt is not found by its name any more.
        engine.archive_prompt(user, q.id).await.unwrap();
        let gone = resolve(&engine, &store, user, "formaops::greet").await;
        assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
        // Another user's prompt is never found.
        let other = resolve(&engine, &store, UserId::new(), "formaops::hello").await;
        assert!(matches!(other, Err(Error::NotFound { .. })), "{other:?}");
    }

    #[tokio::test]
    async fn a_change_made_behind_the_engine_is_not_seen_until_invalidated() {
        // Proof that the cache, not the store, answers: a label moved directly in the store
        // (no invalidation) is not seen; the engine's own move is.
        let (_store, memory, engine) = engine().await;
        let user = UserId::new();
        let (p, _) = engine.create_prompt(user, spec("greet")).await.unwrap();
        engine.update_prompt(user, p.id, PromptUpdate::default()).await.unwrap();
        let chat = || ChatRequest { model: "formaops::greet".into(), ..Default::default() };
        let version = |e: &FormaOps| {
            let e = e.clone();
            async move { e.submit_chat(user, chat()).await.unwrap().prompt_version }
        };
        assert_eq!(version(&engine).await, 1);
        let m = crate::prompt::LabelMove {
            prompt_id: p.id,
            name: "production".into(),
            from: Some(1),
            to: Some(2),
            actor: user,
            at: chrono::Utc::now(),
        };
        memory.move_label(user, &m).await.unwrap();
        assert_eq!(version(&engine).await, 1, "served from the cache");
        engine.set_label(user, p.id, "production", 2).await.unwrap();
        assert_eq!(version(&engine).await, 2, "the engine's own move is seen at once");
    }

    #[cfg(feature = "jwt")]
    #[tokio::test]
    async fn a_repeated_jwt_makes_no_store_read() {
        use jsonwebtoken::{EncodingKey, Header, encode};
        const ISS: &str = "https://issuer.example";
        const SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes-long";
        let (store, _, engine) = engine().await;
        let verifier = jwt::JwtVerifier::new(vec![jwt::IssuerConfig {
            issuer: ISS.into(),
            audience: vec!["authenticated".into()],
            algorithms: vec![jwt::Algorithm::HS256],
            keys: jwt::KeySource::Secret(SECRET.to_vec()),
            leeway_secs: jwt::DEFAULT_LEEWAY_SECS,
        }])
        .unwrap();
        let mint_with = |secret: &[u8], sub: &str, exp: i64| {
            let claims = json!({"iss": ISS, "aud": "authenticated", "sub": sub, "exp": exp});
            encode(&Header::default(), &claims, &EncodingKey::from_secret(secret)).unwrap()
        };
        let mint = |sub: &str, exp: i64| mint_with(SECRET, sub, exp);
        let exp = chrono::Utc::now().timestamp() + 600;
        let token = mint("s1", exp);
        let user = engine.jwt_user(&verifier, &token).await.unwrap();
        assert_eq!(store.calls("create_identity_user"), 1);
        let total = store.total();
        for _ in 0..3 {
            assert_eq!(engine.jwt_user(&verifier, &token).await.unwrap(), user);
        }
        assert_eq!(store.total(), total, "no store call for a known identity");
        // Still verified on every call: an expired or forged token of the same subject fails.
        let expired = mint("s1", chrono::Utc::now().timestamp() - 3_600);
        assert!(matches!(engine.jwt_user(&verifier, &expired).await, Err(Error::Unauthenticated)));
        let forged = mint_with(b"another-secret-of-at-least-32-bytes-long", "s1", exp);
        assert!(matches!(engine.jwt_user(&verifier, &forged).await, Err(Error::Unauthenticated)));
        // Another subject is another user.
        let other = engine.jwt_user(&verifier, &mint("s2", exp)).await.unwrap();
        assert_ne!(other.id, user.id);
    }
}
