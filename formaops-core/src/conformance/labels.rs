//! Conformance: labels (moves as compare-and-set, history, settings, owner isolation) and
//! resolution under concurrent moves.

use futures::future::join_all;

use super::fixtures::{is_conflict, is_not_found, ms, new_user, now, prompt_pair, version_of};
use crate::error::Error;
use crate::ids::{PromptId, UserId};
use crate::prompt::{LabelMove, LabelSettings, Prompt};
use crate::store::Store;

fn mv(p: PromptId, name: &str, from: Option<u32>, to: Option<u32>, actor: UserId) -> LabelMove {
    LabelMove { prompt_id: p, name: name.to_string(), from, to, actor, at: now() }
}

/// A prompt with versions 1..=n.
async fn prompt_with_versions(store: &dyn Store, user: UserId, name: &str, n: u32) -> Prompt {
    let t = now();
    let (p, v1) = prompt_pair(user, name, t);
    store.insert_prompt(&p, &v1).await.unwrap();
    let mut last = p;
    for k in 2..=n {
        let at = t + ms(i64::from(k));
        last = Prompt { current_version: k, updated_at: at, ..last };
        store.insert_version(&last, &version_of(last.id, user, k, at)).await.unwrap();
    }
    last
}

/// Moves as compare-and-set (create, move, delete), version checks, listing, history newest
/// first, settings, and owner isolation.
pub async fn labels(store: &dyn Store) {
    let user = new_user(store).await;
    let other = new_user(store).await;
    let p = prompt_with_versions(store, user.id, "labels", 3).await;
    assert_eq!(store.get_label(user.id, p.id, "production").await.unwrap(), None);
    assert!(store.list_labels(user.id, p.id).await.unwrap().is_empty());

    store.move_label(user.id, &mv(p.id, "production", None, Some(1), user.id)).await.unwrap();
    store.move_label(user.id, &mv(p.id, "staging", None, Some(2), user.id)).await.unwrap();
    assert_eq!(store.get_label(user.id, p.id, "production").await.unwrap(), Some(1));
    // Creating an existing label, or moving from a stale version, loses.
    assert!(is_conflict(store.move_label(user.id, &mv(p.id, "production", None, Some(2), user.id)).await));
    assert!(is_conflict(store.move_label(user.id, &mv(p.id, "production", Some(2), Some(3), user.id)).await));
    // A version the prompt does not have.
    assert!(is_not_found(
        store.move_label(user.id, &mv(p.id, "production", Some(1), Some(4), user.id)).await
    ));
    assert!(is_not_found(
        store.move_label(user.id, &mv(p.id, "production", Some(1), Some(0), user.id)).await
    ));
    // Promotion, then rollback.
    let promote = mv(p.id, "production", Some(1), Some(2), user.id);
    store.move_label(user.id, &promote).await.unwrap();
    let rollback = LabelMove { at: promote.at + ms(1), ..mv(p.id, "production", Some(2), Some(1), user.id) };
    store.move_label(user.id, &rollback).await.unwrap();
    assert_eq!(store.get_label(user.id, p.id, "production").await.unwrap(), Some(1));

    let labels = store.list_labels(user.id, p.id).await.unwrap();
    let names: Vec<(&str, u32)> = labels.iter().map(|l| (l.name.as_str(), l.version)).collect();
    assert_eq!(names, [("production", 1), ("staging", 2)]);
    assert_eq!(labels[0].updated_by, Some(user.id));
    assert_eq!(labels[0].updated_at, rollback.at);

    // Delete, then the history of everything, newest first.
    let delete = LabelMove { at: rollback.at + ms(1), ..mv(p.id, "staging", Some(2), None, user.id) };
    store.move_label(user.id, &delete).await.unwrap();
    assert_eq!(store.get_label(user.id, p.id, "staging").await.unwrap(), None);
    let history = store.label_history(user.id, p.id, Some("production")).await.unwrap();
    let steps: Vec<(Option<u32>, Option<u32>)> = history.iter().map(|m| (m.from, m.to)).collect();
    assert_eq!(steps, [(Some(2), Some(1)), (Some(1), Some(2)), (None, Some(1))]);
    assert_eq!(history[0], rollback);
    let all = store.label_history(user.id, p.id, None).await.unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0], delete);

    // Settings.
    assert_eq!(store.label_settings(user.id, p.id).await.unwrap(), LabelSettings::default());
    store.set_label_settings(user.id, p.id, LabelSettings { guard_production: true }).await.unwrap();
    assert!(store.label_settings(user.id, p.id).await.unwrap().guard_production);

    // Another user sees nothing and moves nothing.
    assert!(is_not_found(store.get_label(other.id, p.id, "production").await));
    assert!(is_not_found(store.list_labels(other.id, p.id).await));
    assert!(is_not_found(store.label_history(other.id, p.id, None).await));
    assert!(is_not_found(store.label_settings(other.id, p.id).await));
    assert!(is_not_found(store.set_label_settings(other.id, p.id, LabelSettings::default()).await));
    assert!(is_not_found(
        store.move_label(other.id, &mv(p.id, "production", Some(1), Some(2), other.id)).await
    ));
    assert_eq!(store.get_label(user.id, p.id, "production").await.unwrap(), Some(1));
}

/// Movers flip `production` between versions 1 and 2 while readers resolve it: every read
/// sees a whole version, and the history is one unbroken chain ending at the final pointer.
pub async fn label_moves_are_atomic(store: &dyn Store) {
    let user = new_user(store).await;
    let p = prompt_with_versions(store, user.id, "label-race", 2).await;
    store.move_label(user.id, &mv(p.id, "production", None, Some(1), user.id)).await.unwrap();

    let mover = || async {
        let mut applied = 0u32;
        for _ in 0..15 {
            let from = store.get_label(user.id, p.id, "production").await.unwrap();
            let to = if from == Some(1) { 2 } else { 1 };
            match store.move_label(user.id, &mv(p.id, "production", from, Some(to), user.id)).await {
                Ok(()) => applied += 1,
                Err(Error::Conflict { .. }) => {}
                Err(e) => panic!("label move failed: {e}"),
            }
        }
        applied
    };
    let reader = || async {
        for _ in 0..30 {
            let v = store.get_label(user.id, p.id, "production").await.unwrap();
            assert!(matches!(v, Some(1 | 2)), "a half-moved label was seen: {v:?}");
            tokio::task::yield_now().await;
        }
        0
    };
    let futs: Vec<futures::future::BoxFuture<'_, u32>> =
        vec![Box::pin(mover()), Box::pin(mover()), Box::pin(mover()), Box::pin(reader()), Box::pin(reader())];
    let applied: u32 = join_all(futs).await.into_iter().sum();
    assert!(applied > 0);

    let mut history = store.label_history(user.id, p.id, Some("production")).await.unwrap();
    history.reverse();
    assert_eq!(history.len() as u32, applied + 1, "one history row per applied move");
    for pair in history.windows(2) {
        assert_eq!(pair[1].from, pair[0].to, "the history is one chain: {history:?}");
    }
    let last = history.last().unwrap().to;
    assert_eq!(store.get_label(user.id, p.id, "production").await.unwrap(), last);
}
