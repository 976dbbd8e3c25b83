//! Conformance: datasets (rows kept in order, names unique per user, paging, delete rules) and
//! experiments (status compare-and-set, runs recorded once, runs joined with their
//! executions, the running list), with owner isolation throughout.

use serde_json::json;

use super::fixtures::{
    enqueue_one, execution, is_conflict, is_not_found, ms, new_prompt, new_user, now, provider,
};
use crate::dataset::{Dataset, DatasetRow};
use crate::execution::Priority;
use crate::experiment::{Experiment, ExperimentRun, ExperimentStatus, ExperimentTarget, MatchRule};
use crate::ids::{DatasetId, ExecutionId, ExperimentId, PromptId, UserId};
use crate::page::PageRequest;
use crate::store::Store;

fn rows(n: u32) -> Vec<DatasetRow> {
    (0..n)
        .map(|i| DatasetRow {
            index: i,
            inputs: json!({"x": format!("row {i}"), "n": i}).as_object().cloned().unwrap_or_default(),
            expected: (i % 2 == 0).then(|| json!({"even": i})),
        })
        .collect()
}

fn dataset(user: UserId, name: &str, n: u32, at: chrono::DateTime<chrono::Utc>) -> Dataset {
    Dataset { id: DatasetId::new(), user_id: user, name: name.to_string(), row_count: n, created_at: at }
}

fn experiment(user: UserId, prompt: PromptId, dataset: &Dataset) -> Experiment {
    Experiment {
        id: ExperimentId::new(),
        user_id: user,
        prompt_id: prompt,
        dataset_id: dataset.id,
        targets: vec![
            ExperimentTarget { requested: "1".into(), version: 1 },
            ExperimentTarget { requested: "production".into(), version: 1 },
        ],
        priority: Priority::Low,
        concurrency: 4,
        match_rule: Some(MatchRule::JsonEqual),
        validate_output: true,
        status: ExperimentStatus::Running,
        row_count: dataset.row_count,
        created_at: now(),
        finished_at: None,
    }
}

/// Datasets: rows round-trip in order with their expected values, names are unique per user
/// (not across users), rows and lists page, and another user sees nothing.
pub async fn datasets(store: &dyn Store) {
    let user = new_user(store).await;
    let other = new_user(store).await;
    let t = now();
    let d = dataset(user.id, "replay", 5, t);
    store.insert_dataset(&d, &rows(5)).await.unwrap();
    assert_eq!(store.get_dataset(user.id, d.id).await.unwrap(), d);
    assert!(is_not_found(store.get_dataset(other.id, d.id).await));
    assert!(is_conflict(store.insert_dataset(&dataset(user.id, "replay", 1, t), &rows(1)).await));
    // The same name for another user is fine.
    store.insert_dataset(&dataset(other.id, "replay", 1, t), &rows(1)).await.unwrap();

    let all = store.dataset_rows(user.id, d.id, None, 100).await.unwrap();
    assert_eq!(all, rows(5), "rows come back whole, by index");
    let page = store.dataset_rows(user.id, d.id, Some(1), 2).await.unwrap();
    assert_eq!(page.iter().map(|r| r.index).collect::<Vec<_>>(), vec![2, 3]);
    assert!(store.dataset_rows(user.id, d.id, Some(4), 10).await.unwrap().is_empty());
    assert!(is_not_found(store.dataset_rows(other.id, d.id, None, 10).await));

    let d2 = dataset(user.id, "second", 1, t + ms(1));
    let d3 = dataset(user.id, "third", 1, t + ms(2));
    store.insert_dataset(&d2, &rows(1)).await.unwrap();
    store.insert_dataset(&d3, &rows(1)).await.unwrap();
    let first = store.list_datasets(user.id, PageRequest { limit: 2, after: None }).await.unwrap();
    assert_eq!(first.items.iter().map(|d| d.id).collect::<Vec<_>>(), vec![d3.id, d2.id]);
    let cursor = first.next_cursor.expect("a second page");
    let rest = store.list_datasets(user.id, PageRequest::new(Some(2), Some(&cursor)).unwrap()).await.unwrap();
    assert_eq!(rest.items.iter().map(|d| d.id).collect::<Vec<_>>(), vec![d.id]);
    assert_eq!(rest.next_cursor, None);

    assert!(is_not_found(store.delete_dataset(other.id, d2.id).await));
    store.delete_dataset(user.id, d2.id).await.unwrap();
    assert!(is_not_found(store.get_dataset(user.id, d2.id).await));
    assert!(is_not_found(store.dataset_rows(user.id, d2.id, None, 10).await));
    // The name is free again.
    store.insert_dataset(&dataset(user.id, "second", 1, t), &rows(1)).await.unwrap();
}

/// Experiments: stored whole, the dataset must be the owner's, a used dataset cannot be
/// deleted, finishing is a compare-and-set from RUNNING, a run is recorded once, runs come
/// back with their executions as they are now, and the running list spans users.
pub async fn experiments(store: &dyn Store) {
    let user = new_user(store).await;
    let other = new_user(store).await;
    let prompt = new_prompt(store, user.id, "experiments").await;
    let d = dataset(user.id, "rows", 2, now());
    store.insert_dataset(&d, &rows(2)).await.unwrap();
    let x = experiment(user.id, prompt.id, &d);
    store.insert_experiment(&x).await.unwrap();
    assert_eq!(store.get_experiment(user.id, x.id).await.unwrap(), x);
    assert!(is_not_found(store.get_experiment(other.id, x.id).await));
    // Another user's dataset is not found.
    assert!(is_not_found(
        store
            .insert_experiment(&Experiment { id: ExperimentId::new(), user_id: other.id, ..x.clone() })
            .await
    ));
    assert!(is_conflict(store.delete_dataset(user.id, d.id).await), "a dataset in use is kept");

    let listed = store.list_experiments(user.id, PageRequest { limit: 10, after: None }).await.unwrap();
    assert_eq!(listed.items, vec![x.clone()]);
    assert!(
        store
            .list_experiments(other.id, PageRequest { limit: 10, after: None })
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(store.running_experiments(10_000).await.unwrap().iter().any(|r| r.id == x.id));

    // Runs: recorded once; joined with the executions as stored now.
    let p = provider();
    let e0 = execution(user.id, prompt.id, &p, 1, now());
    let e1 = execution(user.id, prompt.id, &p, 2, now());
    enqueue_one(store, &e0).await;
    enqueue_one(store, &e1).await;
    let r0 = ExperimentRun { experiment_id: x.id, row: 0, version: 1, execution_id: e0.id };
    let r1 = ExperimentRun { experiment_id: x.id, row: 1, version: 1, execution_id: e1.id };
    store.record_experiment_runs(user.id, &[r1, r0]).await.unwrap();
    let again = ExperimentRun { execution_id: ExecutionId::new(), ..r0 };
    store.record_experiment_runs(user.id, &[again]).await.unwrap();
    assert!(is_not_found(store.record_experiment_runs(other.id, &[r0]).await));
    store.cancel(user.id, e1.id, now()).await.unwrap();
    let runs = store.experiment_runs(user.id, x.id).await.unwrap();
    assert_eq!(
        runs.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        vec![r0, r1],
        "by (row, version), first record kept"
    );
    assert_eq!(runs[0].1.id, e0.id);
    assert_eq!(runs[1].1.status, crate::execution::ExecutionStatus::Cancelled, "executions as they are now");
    assert!(is_not_found(store.experiment_runs(other.id, x.id).await));

    // Finishing: only from RUNNING, only by the owner.
    let at = now();
    assert!(is_not_found(store.finish_experiment(other.id, x.id, ExperimentStatus::Cancelled, at).await));
    assert!(store.finish_experiment(user.id, x.id, ExperimentStatus::Cancelled, at).await.unwrap());
    assert!(!store.finish_experiment(user.id, x.id, ExperimentStatus::Completed, at).await.unwrap());
    let done = store.get_experiment(user.id, x.id).await.unwrap();
    assert_eq!((done.status, done.finished_at), (ExperimentStatus::Cancelled, Some(at)));
    assert!(!store.running_experiments(10_000).await.unwrap().iter().any(|r| r.id == x.id));
}
