//! The fast path of synchronous executes (`engine::fastpath`), through engines on the store
//! under test: the answer built from memory is what the store holds, no QUEUED step, a crash
//! mid-call is rescued, priorities hold while work waits, idempotency keys still return the
//! first execution and call the provider once.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::json;
use tokio::sync::Semaphore;

use super::fixtures::new_user;
use crate::engine::{EngineConfig, ExecuteRequest, FormaOps};
use crate::error::Error;
use crate::events::EventKind;
use crate::execution::{ExecutionStatus, Priority, TokenUsage};
use crate::ids::{PromptId, UserId};
use crate::prompt::PromptSpec;
use crate::provider::{Completion, CompletionRequest, LlmProvider, ProviderError};
use crate::store::Store;

/// A provider that records each call's last message and answers only when the test lets it
/// (`open`), or at once when built open.
#[derive(Debug)]
struct Gate {
    calls: Mutex<Vec<String>>,
    passes: Semaphore,
}

impl Gate {
    fn new(open: bool) -> Arc<Self> {
        let passes = if open { Semaphore::MAX_PERMITS } else { 0 };
        Arc::new(Self { calls: Mutex::new(Vec::new()), passes: Semaphore::new(passes) })
    }

    fn open(&self, n: usize) {
        self.passes.add_permits(n);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    async fn called(&self, n: usize) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while self.calls().len() < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{n} provider calls expected, saw {:?}", self.calls()));
    }
}

#[async_trait]
impl LlmProvider for Gate {
    fn name(&self) -> &str {
        "gate"
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion, ProviderError> {
        let text = request.messages.last().map(|m| m.content.clone()).unwrap_or_default();
        self.calls.lock().unwrap().push(text.clone());
        self.passes.acquire().await.unwrap().forget();
        let usage = TokenUsage { input: 7, output: 3, total: 10, ..TokenUsage::default() };
        Ok(Completion::new(format!("echo: {text}"), usage, Duration::from_millis(1), None))
    }
}

async fn engine(
    store: &Arc<dyn Store>,
    gate: &Arc<Gate>,
    concurrency: usize,
    config: EngineConfig,
) -> FormaOps {
    FormaOps::builder(store.clone())
        .provider_with_concurrency("gate", gate.clone(), concurrency)
        .config(EngineConfig { default_provider: "gate".into(), ..config })
        .start()
        .await
        .unwrap()
}

async fn prompt(engine: &FormaOps, user: UserId) -> PromptId {
    let spec: PromptSpec = serde_json::from_value(json!({
        "name": "fast", "template": "{{ word }}",
        "variables": [{"name": "word", "type": "string", "required": true}],
        "model": {"model": "gpt-4o-mini"}
    }))
    .unwrap();
    engine.create_prompt(user, spec).await.unwrap().0.id
}

fn request(prompt_id: PromptId, word: &str) -> ExecuteRequest {
    let mut inputs = serde_json::Map::new();
    inputs.insert("word".into(), json!(word));
    ExecuteRequest { prompt_id, inputs, ..Default::default() }
}

/// Waits until the engine is past its first claim (before it, queued work may wait, so the
/// fast path is closed).
async fn settled(engine: &FormaOps, user: UserId, prompt: PromptId) {
    let warm = engine.submit(user, request(prompt, "warm-up")).await.unwrap();
    let done = engine.wait(user, warm.id, Some(Duration::from_secs(10))).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed, "{done:?}");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// The whole fast-path suite; `store` is shared by the engines it starts.
pub async fn engine_fast_path(store: Arc<dyn Store>) {
    answer_from_memory_is_what_is_stored(&store).await;
    idempotency_keys_still_hold(&store).await;
    priorities_hold_while_work_waits(&store).await;
    a_crash_mid_call_is_rescued(&store).await;
}

async fn answer_from_memory_is_what_is_stored(store: &Arc<dyn Store>) {
    let gate = Gate::new(true);
    let engine = engine(store, &gate, 4, EngineConfig::default()).await;
    let user = new_user(store.as_ref()).await.id;
    let prompt = prompt(&engine, user).await;
    settled(&engine, user, prompt).await;
    let mut events = engine.subscribe(user, None);
    let done = engine.execute(user, request(prompt, "alpha")).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed, "{done:?}");
    assert_eq!(done.output.as_deref(), Some("echo: alpha"));
    assert_eq!(done.attempts, 1);
    assert!(done.started_at.is_some() && done.finished_at.is_some());
    assert_eq!(done.metrics.as_ref().map(|m| m.token_usage.total), Some(10));
    let stored = engine.get_execution(user, done.id).await.unwrap();
    assert_eq!(done, stored, "the answer built from memory is the stored execution");
    // The fast path writes the execution RUNNING: no QUEUED step is ever announced.
    let mut kinds = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(200), events.next()).await {
        if e.execution_id == done.id {
            kinds.push(e.kind);
        }
    }
    assert_eq!(kinds, vec![EventKind::Running, EventKind::Completed], "events of a fast-path execution");
    // Many at once: each answered, each stored as answered.
    let runs: Vec<_> = (0..40)
        .map(|i| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.execute(user, request(prompt, &format!("w{i}"))).await })
        })
        .collect();
    for (i, r) in runs.into_iter().enumerate() {
        let done = r.await.unwrap().unwrap();
        assert_eq!(done.output.as_deref(), Some(format!("echo: w{i}").as_str()));
        assert_eq!(done, engine.get_execution(user, done.id).await.unwrap());
    }
    engine.shutdown().await;
}

async fn idempotency_keys_still_hold(store: &Arc<dyn Store>) {
    let gate = Gate::new(true);
    let engine = engine(store, &gate, 8, EngineConfig::default()).await;
    let user = new_user(store.as_ref()).await.id;
    let prompt = prompt(&engine, user).await;
    settled(&engine, user, prompt).await;
    let before = gate.calls().len();
    let keyed = ExecuteRequest { idempotency_key: Some("fast-1".into()), ..request(prompt, "once") };
    // Concurrent repeats of one keyed request: one execution, one provider call.
    let runs: Vec<_> = (0..6)
        .map(|_| {
            let (engine, keyed) = (engine.clone(), keyed.clone());
            tokio::spawn(async move { engine.execute(user, keyed).await })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for r in runs {
        let done = r.await.unwrap().unwrap();
        assert_eq!(done.status, ExecutionStatus::Completed);
        ids.insert(done.id);
    }
    assert_eq!(ids.len(), 1, "one execution for one key");
    assert_eq!(gate.calls().len() - before, 1, "the provider is called once for one key");
    let again = engine.execute(user, keyed.clone()).await.unwrap();
    assert!(ids.contains(&again.id));
    let other = ExecuteRequest { idempotency_key: Some("fast-1".into()), ..request(prompt, "other") };
    assert!(matches!(engine.execute(user, other).await, Err(Error::IdempotencyKeyReused { .. })));
    assert_eq!(gate.calls().len() - before, 1);
    engine.shutdown().await;
}

async fn priorities_hold_while_work_waits(store: &Arc<dyn Store>) {
    // One provider slot: a running fast-path execution holds it while work queues up.
    let gate = Gate::new(false);
    let engine = engine(store, &gate, 1, EngineConfig::default()).await;
    let user = new_user(store.as_ref()).await.id;
    let prompt = prompt(&engine, user).await;
    gate.open(1);
    settled(&engine, user, prompt).await;
    let first = tokio::spawn({
        let engine = engine.clone();
        async move { engine.execute(user, request(prompt, "first")).await }
    });
    gate.called(2).await;
    let low = engine
        .submit(user, ExecuteRequest { priority: Priority::Low, ..request(prompt, "low") })
        .await
        .unwrap();
    let high = engine
        .submit(user, ExecuteRequest { priority: Priority::High, ..request(prompt, "high") })
        .await
        .unwrap();
    let mut events = engine.subscribe(user, None);
    let late = tokio::spawn({
        let engine = engine.clone();
        async move { engine.execute(user, request(prompt, "late")).await }
    });
    // With work waiting, a synchronous execute is queued (announced QUEUED), not run ahead.
    let queued = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let e = events.next().await.unwrap();
            if e.kind == EventKind::Queued && e.execution_id != low.id && e.execution_id != high.id {
                return e.execution_id;
            }
        }
    })
    .await
    .expect("the late synchronous execute was queued");
    gate.open(usize::from(u8::MAX));
    let first = first.await.unwrap().unwrap();
    let late = late.await.unwrap().unwrap();
    assert_eq!(late.id, queued);
    for id in [low.id, high.id] {
        let e = engine.wait(user, id, Some(Duration::from_secs(10))).await.unwrap();
        assert_eq!(e.status, ExecutionStatus::Completed, "{e:?}");
    }
    assert_eq!(first.status, ExecutionStatus::Completed);
    assert_eq!(late.status, ExecutionStatus::Completed);
    let order: Vec<String> = gate.calls().into_iter().skip(1).collect();
    assert_eq!(order, ["first", "high", "late", "low"], "claim order: priority, then arrival");
    engine.shutdown().await;
}

async fn a_crash_mid_call_is_rescued(store: &Arc<dyn Store>) {
    let lease = Duration::from_millis(600);
    let config = || EngineConfig { lease, ..EngineConfig::default() };
    // The first node starts the call and dies before it ends.
    let hung = Gate::new(false);
    let doomed = engine(store, &hung, 4, config()).await;
    let user = new_user(store.as_ref()).await.id;
    let prompt = prompt(&doomed, user).await;
    hung.open(1);
    settled(&doomed, user, prompt).await;
    let call = tokio::spawn({
        let doomed = doomed.clone();
        async move { doomed.execute(user, request(prompt, "crash")).await }
    });
    hung.called(2).await;
    let running = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let page = doomed.list_executions(user, Default::default(), Default::default()).await.unwrap();
            if let Some(e) = page.items.into_iter().find(|e| e.status == ExecutionStatus::Running) {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the fast-path execution is stored RUNNING while its call runs");
    assert_eq!(running.attempts, 1);
    doomed.shutdown_within(Duration::ZERO).await;
    assert!(call.await.unwrap().is_err(), "the caller of a dead node gets an error");
    // Another node rescues the leased RUNNING execution once its lease expires and runs it.
    let healthy = Gate::new(true);
    let rescuer = engine(store, &healthy, 4, config()).await;
    let done = rescuer.wait(user, running.id, Some(Duration::from_secs(20))).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Completed, "{done:?}");
    assert_eq!(done.attempts, 2, "the rescued execution ran a second attempt");
    assert_eq!(done.output.as_deref(), Some("echo: crash"));
    assert_eq!(healthy.calls(), ["crash"]);
    rescuer.shutdown().await;
}
