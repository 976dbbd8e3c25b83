//! Datasets and experiments end to end on the memory store: a dataset from past executions,
//! two versions compared side by side with a match rule, progress to the end, cancel, and a
//! restart mid-experiment that does not run finished rows again.

#![allow(clippy::unwrap_used)]

mod engine_common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use engine_common::*;
use formaops_core::Error;
use formaops_core::dataset::{FromExecutions, parse_jsonl};
use formaops_core::engine::FormaOps;
use formaops_core::execution::{ExecutionStatus, Priority};
use formaops_core::experiment::{ExperimentSpec, ExperimentStatus, MatchRule, TargetRef};
use formaops_core::ids::{PromptId, UserId};
use formaops_core::prompt::PromptUpdate;
use formaops_core::provider::mock::MockProvider;
use formaops_core::store::{MemoryStore, Store};
use futures::StreamExt;

fn spec(
    prompt_id: PromptId,
    dataset_id: formaops_core::ids::DatasetId,
    versions: Vec<TargetRef>,
    concurrency: u32,
) -> ExperimentSpec {
    ExperimentSpec {
        prompt_id,
        dataset_id,
        versions,
        priority: None,
        concurrency: Some(concurrency),
        match_rule: Some(MatchRule::Exact),
        validate_output: false,
    }
}

async fn engine_on(store: Arc<MemoryStore>, mock: Arc<MockProvider>) -> FormaOps {
    FormaOps::builder(store).provider("mock", mock).config(config()).start().await.unwrap()
}

async fn v2(engine: &FormaOps, user: UserId, p: PromptId) {
    let update: PromptUpdate =
        serde_json::from_value(serde_json::json!({"template": "Shout {{ word }}"})).unwrap();
    engine.update_prompt(user, p, update).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_past_inputs_against_two_versions_side_by_side() {
    let mock = Arc::new(MockProvider::new().recording());
    let store = Arc::new(MemoryStore::new());
    let engine = engine_on(store.clone(), mock.clone()).await;
    let user = UserId::new();
    let p = prompt(&engine, user).await;
    for w in ["a", "b", "c"] {
        engine.execute(user, request(p, w)).await.unwrap();
    }
    v2(&engine, user, p).await;
    let d = engine
        .create_dataset_from_executions(
            user,
            FromExecutions {
                name: "prod".into(),
                prompt_id: p,
                version: Some(1),
                expected_from_output: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(d.row_count, 3);
    let rows = engine.dataset_rows(user, d.id, None, 10).await.unwrap();
    assert_eq!(rows[0].inputs["word"], "c", "newest execution first");
    assert_eq!(rows[0].expected, Some(serde_json::json!("Say c")));
    let before = mock.calls();

    let x = engine
        .start_experiment(
            user,
            spec(p, d.id, vec![TargetRef::Name("production".into()), TargetRef::Number(2)], 2),
        )
        .await
        .unwrap();
    assert_eq!(x.priority, Priority::Low);
    assert_eq!((x.targets[0].requested.as_str(), x.targets[0].version), ("production", 1));
    assert_eq!(x.targets[1].version, 2);
    let mut progress = engine.follow_experiment(user, x.id).await.unwrap();
    let mut last = None;
    while let Some(p) = progress.next().await {
        assert!(p.done + p.failed <= p.total);
        last = Some(p);
    }
    let last = last.unwrap();
    assert_eq!(
        (last.status, last.done, last.failed, last.total, last.in_flight),
        (ExperimentStatus::Completed, 6, 0, 6, 0)
    );
    assert_eq!(mock.calls() - before, 6, "one provider call per row and version");

    let c = engine.experiment_results(user, x.id).await.unwrap();
    assert_eq!(c.versions[0].match_rate, Some(1.0), "v1 reproduces its own outputs");
    assert_eq!(c.versions[1].match_rate, Some(0.0));
    assert_eq!(c.versions[1].summary.counts.completed, 3);
    assert!(c.versions[1].summary.latency_ms.p50.is_some());
    assert_eq!(c.rows[0].results[1].output.as_deref(), Some("Shout c"));

    // A second engine on the same store finds nothing to resume.
    let again = engine_on(store.clone(), mock.clone()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(mock.calls() - before, 6);
    again.shutdown().await;

    // Bad rows are refused by row and variable before anything runs.
    let bad = engine
        .create_dataset(
            user,
            "bad",
            parse_jsonl("{\"inputs\": {\"word\": \"x\"}}\n{\"inputs\": {}}\n").unwrap(),
        )
        .await
        .unwrap();
    let err =
        engine.start_experiment(user, spec(p, bad.id, vec![TargetRef::Number(1)], 1)).await.unwrap_err();
    match err {
        Error::InvalidInputs { problems } => assert_eq!(problems[0].field, "rows[1].inputs.word"),
        other => panic!("expected InvalidInputs, got {other:?}"),
    }
    assert!(matches!(
        engine.start_experiment(user, spec(p, bad.id, vec![TargetRef::Name("staging".into())], 1)).await,
        Err(Error::NotFound { .. })
    ));
    // Another user sees nothing.
    assert!(matches!(engine.get_experiment(UserId::new(), x.id).await, Err(Error::NotFound { .. })));
    // A dataset in use is kept.
    assert!(matches!(engine.delete_dataset(user, d.id).await, Err(Error::Conflict { .. })));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_keeps_finished_rows_and_cancels_queued_ones() {
    let mock = Arc::new(MockProvider::new().with_latency(Duration::from_millis(40)));
    let engine = engine_on(Arc::new(MemoryStore::new()), mock.clone()).await;
    let user = UserId::new();
    let p = prompt(&engine, user).await;
    let jsonl: String = (0..40).map(|i| format!("{{\"inputs\": {{\"word\": \"w{i}\"}}}}\n")).collect();
    let d = engine.create_dataset(user, "many", parse_jsonl(&jsonl).unwrap()).await.unwrap();
    let x = engine.start_experiment(user, spec(p, d.id, vec![TargetRef::Number(1)], 2)).await.unwrap();
    loop {
        let (_, pr) = engine.get_experiment(user, x.id).await.unwrap();
        if pr.done >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (cancelled, _) = engine.cancel_experiment(user, x.id).await.unwrap();
    assert_eq!(cancelled.status, ExperimentStatus::Cancelled);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let runs = engine.store().experiment_runs(user, x.id).await.unwrap();
    assert!(runs.iter().all(|(_, e)| e.status.is_final()), "nothing left queued or running");
    let done = runs.iter().filter(|(_, e)| e.status == ExecutionStatus::Completed).count();
    assert!((2..40).contains(&done), "finished rows kept, the rest not run: {done}");
    assert_eq!(mock.calls() as usize, done, "no provider call for a cancelled row");
    // Cancelling again is fine; the comparison shows the cancelled rows.
    engine.cancel_experiment(user, x.id).await.unwrap();
    let c = engine.experiment_results(user, x.id).await.unwrap();
    assert_eq!(c.rows.len(), 40);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_experiment_does_not_run_finished_rows_again() {
    let mock = Arc::new(MockProvider::new().recording().with_latency(Duration::from_millis(30)));
    let store = Arc::new(MemoryStore::new());
    let first = engine_on(store.clone(), mock.clone()).await;
    let user = UserId::new();
    let p = prompt(&first, user).await;
    let jsonl: String = (0..20).map(|i| format!("{{\"inputs\": {{\"word\": \"w{i}\"}}}}\n")).collect();
    let d = first.create_dataset(user, "rows", parse_jsonl(&jsonl).unwrap()).await.unwrap();
    let x = first.start_experiment(user, spec(p, d.id, vec![TargetRef::Number(1)], 2)).await.unwrap();
    loop {
        let (_, pr) = first.get_experiment(user, x.id).await.unwrap();
        if pr.done >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.shutdown().await;
    let finished: HashMap<_, _> = store
        .experiment_runs(user, x.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, e)| e.status == ExecutionStatus::Completed)
        .map(|(r, e)| (r.row, e))
        .collect();
    let (stopped, pr) = first.get_experiment(user, x.id).await.unwrap();
    assert_eq!(stopped.status, ExperimentStatus::Running);
    assert!((6..20).contains(&pr.done), "stopped mid-way: {pr:?}");
    let calls_before = mock.calls();

    let second = engine_on(store.clone(), mock.clone()).await;
    let mut follow = second.follow_experiment(user, x.id).await.unwrap();
    let mut last = None;
    while let Some(p) = tokio::time::timeout(Duration::from_secs(20), follow.next()).await.unwrap() {
        last = Some(p);
    }
    let last = last.unwrap();
    assert_eq!((last.status, last.done, last.total), (ExperimentStatus::Completed, 20, 20));
    // Every row ran exactly once across both engines.
    assert_eq!(mock.calls(), 20, "no row paid twice");
    let log = mock.call_log();
    for i in 0..20 {
        assert_eq!(log.iter().filter(|m| **m == format!("Say w{i}")).count(), 1, "row {i} ran once");
    }
    assert_eq!(mock.calls() - calls_before, 20 - finished.len() as u64);
    for (row, e) in &finished {
        let now = store.get_execution(user, e.id).await.unwrap();
        assert_eq!((now.attempts, &now.output), (e.attempts, &e.output), "row {row} untouched");
    }
    second.shutdown().await;
}
