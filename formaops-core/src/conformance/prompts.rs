//! Prompts and their versions: names, history, ownership, pagination.

use chrono::Duration;

use super::fixtures::{
    completed, enqueue_one, execution, is_conflict, is_not_found, ms, new_prompt, new_user, now, prompt_pair,
    provider, result, version_of,
};
use crate::execution::{AttemptResult, ExecutionMetrics, ExecutionStatus};
use crate::ids::PromptId;
use crate::metrics::MetricsQuery;
use crate::page::{Cursor, PageRequest};
use crate::prompt::{Prompt, PromptStatus};
use crate::store::{ClaimParams, ExecutionFilter, PromptFilter, Store, VersionPageRequest};

/// Prompts and versions: insert, append versions, read back.
pub async fn prompts_and_versions(store: &dyn Store) {
    let user = new_user(store).await;
    let t = now();
    let (p, v1) = prompt_pair(user.id, "versions", t);
    store.insert_prompt(&p, &v1).await.unwrap();
    assert_eq!(store.get_prompt(user.id, p.id).await.unwrap(), p);
    assert_eq!(store.get_version(user.id, p.id, 1).await.unwrap(), v1);
    assert!(is_not_found(store.get_version(user.id, p.id, 2).await));
    assert!(is_not_found(store.get_version(user.id, p.id, 0).await));

    for n in 2..=5u32 {
        let at = t + ms(i64::from(n));
        let prompt = Prompt { current_version: n, updated_at: at, ..p.clone() };
        store.insert_version(&prompt, &version_of(p.id, user.id, n, at)).await.unwrap();
    }
    // A second writer that read version 4 loses the race.
    let stale = Prompt { current_version: 5, ..p.clone() };
    assert!(is_conflict(store.insert_version(&stale, &version_of(p.id, user.id, 5, t)).await), "lost race");
    let skip = Prompt { current_version: 7, ..p.clone() };
    assert!(
        is_conflict(store.insert_version(&skip, &version_of(p.id, user.id, 7, t)).await),
        "skipped version"
    );
    let got = store.get_prompt(user.id, p.id).await.unwrap();
    assert_eq!(got.current_version, 5);
    assert_eq!(store.get_version(user.id, p.id, 3).await.unwrap().template, "v3: {{ x }}");

    // Versions page newest first, no gaps.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store.list_versions(user.id, p.id, VersionPageRequest { limit: 2, before }).await.unwrap();
        seen.extend(page.items.iter().map(|v| v.version));
        match page.next_cursor {
            Some(c) => before = Some(c.parse().expect("version cursor is the version number")),
            None => break,
        }
    }
    assert_eq!(seen, vec![5, 4, 3, 2, 1]);

    // Archive: readable, no new versions; restore.
    let archived = store.set_prompt_status(user.id, p.id, PromptStatus::Archived, t + ms(10)).await.unwrap();
    assert_eq!(archived.status, PromptStatus::Archived);
    assert_eq!(archived.updated_at, t + ms(10));
    let next = Prompt { current_version: 6, ..got.clone() };
    assert!(
        is_conflict(store.insert_version(&next, &version_of(p.id, user.id, 6, t)).await),
        "archived prompt"
    );
    assert_eq!(store.get_version(user.id, p.id, 5).await.unwrap().version, 5);
    let restored = store.set_prompt_status(user.id, p.id, PromptStatus::Active, t + ms(11)).await.unwrap();
    assert_eq!(restored.status, PromptStatus::Active);
    assert!(is_not_found(store.get_prompt(user.id, PromptId::new()).await));
}

/// Active prompt names are unique per user; archiving frees a name.
pub async fn prompt_names(store: &dyn Store) {
    let user = new_user(store).await;
    let first = new_prompt(store, user.id, "same").await;
    let (dup, dv) = prompt_pair(user.id, "same", now());
    assert!(is_conflict(store.insert_prompt(&dup, &dv).await), "duplicate active name");
    // Another user may use the name.
    let other = new_user(store).await;
    new_prompt(store, other.id, "same").await;
    // Renaming into a taken name is a conflict.
    let second = new_prompt(store, user.id, "second").await;
    let renamed = Prompt { name: "same".into(), current_version: 2, ..second.clone() };
    assert!(is_conflict(store.insert_version(&renamed, &version_of(second.id, user.id, 2, now())).await));
    // Archiving frees the name; restoring the archived one then conflicts.
    store.set_prompt_status(user.id, first.id, PromptStatus::Archived, now()).await.unwrap();
    let (again, av) = prompt_pair(user.id, "same", now());
    store.insert_prompt(&again, &av).await.unwrap();
    assert!(is_conflict(store.set_prompt_status(user.id, first.id, PromptStatus::Active, now()).await));
    assert_eq!(store.get_prompt(user.id, first.id).await.unwrap().status, PromptStatus::Archived);
}

/// Another user's prompts and executions are `NotFound`, never shown.
pub async fn owner_isolation(store: &dyn Store) {
    let owner = new_user(store).await;
    let intruder = new_user(store).await;
    let p = new_prompt(store, owner.id, "private").await;
    let prov = provider();
    let e = execution(owner.id, p.id, &prov, 0, now());
    enqueue_one(store, &e).await;
    let (i, o) = (intruder.id, owner.id);

    assert!(is_not_found(store.get_prompt(i, p.id).await));
    assert!(is_not_found(store.get_version(i, p.id, 1).await));
    assert!(is_not_found(store.list_versions(i, p.id, VersionPageRequest { limit: 10, before: None }).await));
    assert!(is_not_found(store.set_prompt_status(i, p.id, PromptStatus::Archived, now()).await));
    let hijack = Prompt { user_id: i, current_version: 2, ..p.clone() };
    assert!(is_not_found(store.insert_version(&hijack, &version_of(p.id, i, 2, now())).await));
    assert!(
        store
            .list_prompts(i, &PromptFilter::default(), PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let archived = PromptFilter { status: Some(PromptStatus::Archived) };
    assert!(store.list_prompts(i, &archived, PageRequest::default()).await.unwrap().items.is_empty());
    assert!(is_not_found(store.get_execution(i, e.id).await));
    assert!(is_not_found(store.cancel(i, e.id, now()).await));
    let all = ExecutionFilter::default();
    assert!(store.list_executions(i, &all, PageRequest::default()).await.unwrap().items.is_empty());
    assert_eq!(store.queue_depth(Some(i)).await.unwrap(), 0);
    let m = store.metrics(i, &MetricsQuery::default()).await.unwrap();
    assert_eq!(m.summary.counts.total, 0);
    assert!(m.by_prompt.is_empty());
    // A finish claiming to be the intruder's is refused.
    let claimed = store
        .claim(ClaimParams {
            worker: "w-owner",
            provider: &prov,
            limit: 1,
            now: now(),
            lease_until: now() + Duration::minutes(5),
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let forged =
        AttemptResult { user_id: i, ..result(&e, "w-owner", completed(ExecutionMetrics::default(), None)) };
    assert_eq!(store.finish(&[forged]).await.unwrap(), vec![false]);

    // Nothing changed for the owner.
    let p_now = store.get_prompt(o, p.id).await.unwrap();
    assert_eq!((p_now.status, p_now.current_version), (PromptStatus::Active, 1));
    assert_eq!(store.get_execution(o, e.id).await.unwrap().status, ExecutionStatus::Running);
    assert_eq!(
        store.list_prompts(o, &PromptFilter::default(), PageRequest::default()).await.unwrap().items.len(),
        1
    );
}

/// Listing prompts: newest first, keyset pages, status filter.
pub async fn prompt_pagination(store: &dyn Store) {
    let user = new_user(store).await;
    let t = now() - Duration::minutes(10);
    let mut expected = Vec::new();
    for i in 0..11i64 {
        // Pairs share a created_at so ties are broken by id.
        let (p, v) = prompt_pair(user.id, &format!("p{i}"), t + ms(i / 2));
        store.insert_prompt(&p, &v).await.unwrap();
        expected.push(p);
    }
    store.set_prompt_status(user.id, expected[3].id, PromptStatus::Archived, now()).await.unwrap();
    assert_eq!(expected[3].name, "p3");
    expected.sort_by_key(|p| std::cmp::Reverse((p.created_at, p.id)));
    let archived_id = expected.iter().find(|p| p.name == "p3").map(|p| p.id).unwrap();
    let want: Vec<PromptId> = expected.iter().map(|p| p.id).filter(|id| *id != archived_id).collect();
    let mut got = Vec::new();
    let mut page = PageRequest { limit: 3, after: None };
    loop {
        let res = store.list_prompts(user.id, &PromptFilter::default(), page).await.unwrap();
        assert!(res.items.len() <= 3);
        got.extend(res.items.iter().map(|p| p.id));
        match res.next_cursor {
            Some(c) => page.after = Some(Cursor::decode(&c).unwrap()),
            None => break,
        }
    }
    assert_eq!(got, want, "pages of prompts: newest first, no duplicates, no gaps");
    let arch = store
        .list_prompts(user.id, &PromptFilter { status: Some(PromptStatus::Archived) }, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(arch.items.iter().map(|p| p.id).collect::<Vec<_>>(), vec![archived_id]);
    assert_eq!(arch.next_cursor, None);
}
