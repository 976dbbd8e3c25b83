//! Two "processes" (two PgStore pools, each with its own workers and rescuer) share one
//! Postgres queue of 2,000 executions; one process is killed abruptly midway while holding
//! leases. Every execution must end exactly once, COMPLETED or FAILED, none lost.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use formaops_core::conformance::rescue_now;
use formaops_core::execution::{
    AttemptOutcome, AttemptResult, Execution, ExecutionError, ExecutionMetrics, ExecutionStatus,
    NewExecution, Priority,
};
use formaops_core::ids::{ExecutionId, PromptId, UserId};
use formaops_core::metrics::MetricsQuery;
use formaops_core::store::{ClaimParams, Store};
use tokio::task::JoinHandle;

const TOTAL: usize = 2_000;
const LEASE_MS: i64 = 1_500;

fn execution(user: UserId, n: usize) -> Execution {
    let now = Utc::now();
    Execution::queued(NewExecution {
        user_id: user,
        prompt_id: PromptId::new(),
        prompt_version: 1,
        inputs: serde_json::Map::new(),
        priority: Priority::Normal,
        validate_output: false,
        provider: "mock".into(),
        model: "m".into(),
        max_attempts: 5,
        retry_of: None,
        // Every 50th execution fails permanently (by its key), the rest complete.
        idempotency_key: Some(format!("{n}")),
        created_at: now,
        deadline_at: now + Duration::minutes(10),
        queue_key: n as i64,
    })
}

type Applied = Arc<Mutex<Vec<(ExecutionId, ExecutionStatus)>>>;

/// One worker: claim, "run", finish; records the final results the store applied.
fn worker(store: Arc<dyn Store>, name: String, applied: Applied, hold: StdDuration) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let now = Utc::now();
            let claimed = store
                .claim(ClaimParams {
                    worker: &name,
                    provider: "mock",
                    limit: 10,
                    now,
                    lease_until: now + Duration::milliseconds(LEASE_MS),
                })
                .await
                .unwrap();
            if claimed.is_empty() {
                tokio::time::sleep(StdDuration::from_millis(20)).await;
                continue;
            }
            tokio::time::sleep(hold).await;
            let results: Vec<AttemptResult> = claimed
                .iter()
                .map(|e| {
                    let fails =
                        e.idempotency_key.as_deref().and_then(|k| k.parse::<usize>().ok()).unwrap() % 50 == 0;
                    let outcome = if fails {
                        AttemptOutcome::Failed {
                            error: ExecutionError {
                                code: formaops_core::execution::ExecutionErrorCode::BadRequest,
                                message: "no".into(),
                                transient: false,
                                details: None,
                            },
                            metrics: None,
                        }
                    } else {
                        AttemptOutcome::Completed {
                            output: "ok".into(),
                            validated_output: None,
                            validation: None,
                            metrics: ExecutionMetrics::default(),
                        }
                    };
                    AttemptResult {
                        id: e.id,
                        user_id: e.user_id,
                        worker: name.clone(),
                        outcome,
                        finished_at: Utc::now(),
                        finish_reason: None,
                    }
                })
                .collect();
            let flags = store.finish(&results).await.unwrap();
            let mut log = applied.lock().unwrap();
            for (r, ok) in results.iter().zip(flags) {
                if ok {
                    let status = match r.outcome {
                        AttemptOutcome::Completed { .. } => ExecutionStatus::Completed,
                        _ => ExecutionStatus::Failed,
                    };
                    log.push((r.id, status));
                }
            }
        }
    })
}

fn rescuer(store: Arc<dyn Store>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            rescue_now(store.as_ref(), Utc::now()).await;
            tokio::time::sleep(StdDuration::from_millis(200)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_one_killed_every_execution_ends_exactly_once() {
    let Some(db) = common::PgTestDb::create().await else { return };
    let a: Arc<dyn Store> = Arc::new(db.store_with_pool(5).await);
    let b: Arc<dyn Store> = Arc::new(db.store_with_pool(5).await);
    let user = UserId::new();
    let execs: Vec<Execution> = (0..TOTAL).map(|n| execution(user, n)).collect();
    for chunk in execs.chunks(250) {
        a.enqueue(chunk).await.unwrap();
    }

    let applied: Applied = Arc::new(Mutex::new(Vec::new()));
    let mut process_a = vec![rescuer(a.clone())];
    let mut process_b = vec![rescuer(b.clone())];
    for i in 0..2 {
        process_a.push(worker(a.clone(), format!("a-{i}"), applied.clone(), StdDuration::from_millis(2)));
        // b's workers hold their claims longer, so killing b strands leases.
        process_b.push(worker(b.clone(), format!("b-{i}"), applied.clone(), StdDuration::from_millis(250)));
    }

    // Midway: kill b abruptly (no graceful shutdown, leases left behind).
    tokio::time::timeout(StdDuration::from_secs(60), async {
        while applied.lock().unwrap().len() < TOTAL / 2 {
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        }
    })
    .await
    .expect("half the executions finish");
    for t in &process_b {
        t.abort();
    }
    for t in process_b {
        let _ = t.await;
    }
    let stranded: u64 = {
        let r = a.metrics(user, &MetricsQuery::default()).await.unwrap();
        r.summary.counts.running
    };

    // Final in the store, and logged by the worker that applied it (a worker logs a batch just
    // after its finish commits: stopping it in between would lose log lines, not results).
    tokio::time::timeout(StdDuration::from_secs(90), async {
        loop {
            let c = a.metrics(user, &MetricsQuery::default()).await.unwrap().summary.counts;
            let logged: HashSet<ExecutionId> = applied.lock().unwrap().iter().map(|(id, _)| *id).collect();
            if c.completed + c.failed == TOTAL as u64 && logged.len() == TOTAL {
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
    })
    .await
    .expect("every execution reaches a final state, applied and logged by a worker");
    for t in process_a {
        t.abort();
    }

    // Exactly one applied final result per execution, matching the stored state.
    let log = applied.lock().unwrap().clone();
    let mut per_id: HashMap<ExecutionId, Vec<ExecutionStatus>> = HashMap::new();
    for (id, status) in log {
        per_id.entry(id).or_default().push(status);
    }
    assert_eq!(per_id.len(), TOTAL, "every execution finished");
    assert!(per_id.values().all(|v| v.len() == 1), "no execution finished twice");
    let c = a.metrics(user, &MetricsQuery::default()).await.unwrap().summary.counts;
    assert_eq!(c.failed, (TOTAL / 50) as u64);
    assert_eq!(c.completed, (TOTAL - TOTAL / 50) as u64);
    assert_eq!(c.queued + c.running, 0);
    let mut rerun = 0;
    for e in &execs {
        let stored = a.get_execution(user, e.id).await.unwrap();
        assert_eq!(Some(&stored.status), per_id[&e.id].first());
        if stored.attempts > 1 {
            rerun += 1;
        }
    }
    // b's workers hold each claim for 250 ms of every ~270 ms, so it dies holding leases:
    // those executions were rescued and run again by a.
    assert!(rerun > 0, "the killed process held no lease (stranded {stranded})");
    eprintln!("killed process b with {stranded} executions RUNNING; all {TOTAL} ended exactly once");
}
