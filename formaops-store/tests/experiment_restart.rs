//! An experiment survives a restart on SQLite and Postgres: the first engine (and its store) stops
//! mid-experiment, a new one opened on the same database resumes it, finished rows are not run
//! again and the rest complete. Provider calls are counted with the recording mock.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::Duration;

use formaops_core::dataset::parse_jsonl;
use formaops_core::engine::FormaOps;
use formaops_core::execution::ExecutionStatus;
use formaops_core::experiment::{ExperimentSpec, ExperimentStatus, TargetRef};
use formaops_core::ids::UserId;
use formaops_core::provider::mock::MockProvider;
use formaops_core::store::Store;
use futures::StreamExt;

async fn engine(store: Arc<dyn Store>, mock: Arc<MockProvider>) -> FormaOps {
    FormaOps::builder(store).provider("mock", mock).start().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_restart_mid_experiment_runs_each_row_once() {
    let db = common::SqliteTestDb::new();
    let first = Arc::new(db.store().await);
    restart_mid_experiment(first.clone(), || async { Arc::new(db.store().await) }).await;
    first.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_experiment_runs_each_row_once() {
    let Some(db) = common::PgTestDb::create().await else { return };
    let first = Arc::new(db.store().await);
    restart_mid_experiment(first.clone(), || async { Arc::new(db.store().await) }).await;
    first.close().await;
}

/// Runs an experiment on `store`, stops its engine mid-way, then resumes it with a new
/// engine on the store `reopen` opens on the same database.
async fn restart_mid_experiment<S, F, Fut>(store: Arc<S>, reopen: F)
where
    S: Store,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Arc<S>>,
{
    let mock = Arc::new(MockProvider::new().recording().with_latency(Duration::from_millis(30)));
    let first = engine(store.clone(), mock.clone()).await;
    let user = UserId::new();
    let spec = serde_json::from_value(serde_json::json!({
        "name": "restart", "template": "Say {{ word }}",
        "variables": [{"name": "word", "type": "string", "required": true}], "model": {"model": "mock"}
    }))
    .unwrap();
    let prompt = first.create_prompt(user, spec).await.unwrap().0.id;
    let jsonl: String = (0..24).map(|i| format!("{{\"inputs\": {{\"word\": \"w{i}\"}}}}\n")).collect();
    let d = first.create_dataset(user, "rows", parse_jsonl(&jsonl).unwrap()).await.unwrap();
    let x = first
        .start_experiment(
            user,
            ExperimentSpec {
                prompt_id: prompt,
                dataset_id: d.id,
                versions: vec![TargetRef::Name("production".into())],
                priority: None,
                concurrency: Some(3),
                match_rule: None,
                validate_output: false,
            },
        )
        .await
        .unwrap();
    while first.get_experiment(user, x.id).await.unwrap().1.done < 6 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.shutdown().await;
    let finished: Vec<_> = store
        .experiment_runs(user, x.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, e)| e.status == ExecutionStatus::Completed)
        .map(|(_, e)| e)
        .collect();
    assert!((6..24).contains(&finished.len()), "stopped mid-way: {}", finished.len());

    // A new process: a new store on the same database, a new engine.
    let reopened = reopen().await;
    let second = engine(reopened.clone(), mock.clone()).await;
    let mut follow = second.follow_experiment(user, x.id).await.unwrap();
    let mut last = None;
    while let Some(p) = tokio::time::timeout(Duration::from_secs(30), follow.next()).await.unwrap() {
        last = Some(p);
    }
    let last = last.unwrap();
    assert_eq!((last.status, last.done, last.failed, last.total), (ExperimentStatus::Completed, 24, 0, 24));
    assert_eq!(mock.calls(), 24, "each row paid once across both processes");
    let log = mock.call_log();
    for i in 0..24 {
        assert_eq!(log.iter().filter(|m| **m == format!("Say w{i}")).count(), 1, "row {i} ran once");
    }
    for e in finished {
        let now = reopened.get_execution(user, e.id).await.unwrap();
        assert_eq!((now.attempts, now.output), (e.attempts, e.output), "a finished row is untouched");
    }
    second.shutdown().await;
}
