//! Users and credentials.

use chrono::Duration;

use super::fixtures::{is_conflict, is_not_found, ms, new_user, now};
use crate::ids::{CredentialId, UserId};
use crate::store::Store;
use crate::user::{Credential, CredentialKind, User};

/// Users and credentials: create, look up, authenticate and revoke.
pub async fn users_and_credentials(store: &dyn Store) {
    let user = new_user(store).await;
    assert!(store.count_users().await.unwrap() >= 1);
    assert_eq!(store.get_user(user.id).await.unwrap(), Some(user.clone()));
    assert_eq!(store.get_user(UserId::new()).await.unwrap(), None);
    let found = store.user_by_email(&user.email).await.unwrap().expect("user by email");
    assert_eq!(found.user, user);
    assert!(found.password_hash.starts_with("$argon2id$"));
    assert!(store.user_by_email("nobody@conformance.invalid").await.unwrap().is_none());
    let dup = User { id: UserId::new(), ..user.clone() };
    assert!(is_conflict(store.create_user(&dup, "h").await), "duplicate email must be a conflict");

    let t = now();
    let hash = uuid::Uuid::new_v4().as_bytes().to_vec();
    let session = Credential {
        id: CredentialId::new(),
        user_id: user.id,
        kind: CredentialKind::Session,
        name: None,
        token_hash: hash.clone(),
        created_at: t,
        expires_at: Some(t + Duration::hours(1)),
        revoked_at: None,
    };
    store.create_credential(&session).await.unwrap();
    let (u, c) = store.authenticate(&hash, t).await.unwrap().expect("a valid session authenticates");
    assert_eq!((u.id, c.id), (user.id, session.id));
    assert!(store.authenticate(&hash, t + Duration::hours(2)).await.unwrap().is_none(), "expired session");
    assert!(store.authenticate(b"no such token hash", t).await.unwrap().is_none());

    let key_hash = uuid::Uuid::new_v4().as_bytes().to_vec();
    let key = Credential {
        id: CredentialId::new(),
        kind: CredentialKind::ApiKey,
        name: Some("ci".into()),
        token_hash: key_hash.clone(),
        expires_at: None,
        created_at: t + ms(1),
        ..session.clone()
    };
    store.create_credential(&key).await.unwrap();
    assert!(
        store.authenticate(&key_hash, t + Duration::days(3650)).await.unwrap().is_some(),
        "keys without expiry"
    );
    let keys = store.list_credentials(user.id, CredentialKind::ApiKey).await.unwrap();
    assert_eq!(keys.iter().map(|c| c.id).collect::<Vec<_>>(), vec![key.id]);

    let other = new_user(store).await;
    assert!(is_not_found(store.revoke_credential(other.id, key.id, t).await), "another user's credential");
    assert!(store.authenticate(&key_hash, t).await.unwrap().is_some(), "a refused revoke changes nothing");
    store.revoke_credential(user.id, key.id, t).await.unwrap();
    store.revoke_credential(user.id, key.id, t).await.unwrap();
    assert!(store.authenticate(&key_hash, t).await.unwrap().is_none(), "revoked key");
    assert!(store.list_credentials(user.id, CredentialKind::ApiKey).await.unwrap().is_empty());
    assert!(is_not_found(store.revoke_credential(user.id, CredentialId::new(), t).await));
    store.ping().await.unwrap();
}
