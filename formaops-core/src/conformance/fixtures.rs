//! Builders shared by the conformance checks: users, prompts, executions, results.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, json};

use crate::engine::{BackoffPolicy, rescue};
use crate::error::Error;
use crate::execution::{
    AttemptOutcome, AttemptResult, Execution, ExecutionError, ExecutionErrorCode, ExecutionMetrics,
    NewExecution, Priority,
};
use crate::ids::{PromptId, UserId};
use crate::prompt::{ModelConfig, Prompt, PromptStatus, PromptVersion};
use crate::store::{EnqueueOutcome, Store};
use crate::user::User;
use crate::validation::ValidationVerdict;

/// Now, at the microsecond precision every store keeps.
pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap()
}

pub(super) fn ms(n: i64) -> Duration {
    Duration::milliseconds(n)
}

/// A fresh user with a unique email.
pub async fn new_user(store: &dyn Store) -> User {
    let id = UserId::new();
    let user =
        User { id, email: format!("{}@conformance.test", id.0.simple()), is_admin: false, created_at: now() };
    store.create_user(&user, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").await.unwrap();
    user
}

/// A provider name no other test uses.
pub(super) fn provider() -> String {
    format!("conf-{}", uuid::Uuid::new_v4().simple())
}

pub(super) fn prompt_pair(user: UserId, name: &str, created_at: DateTime<Utc>) -> (Prompt, PromptVersion) {
    let id = PromptId::new();
    let prompt = Prompt {
        id,
        user_id: user,
        name: name.to_string(),
        description: None,
        status: PromptStatus::Active,
        current_version: 1,
        created_at,
        updated_at: created_at,
    };
    (prompt, version_of(id, user, 1, created_at))
}

pub(super) fn version_of(id: PromptId, user: UserId, n: u32, at: DateTime<Utc>) -> PromptVersion {
    PromptVersion {
        prompt_id: id,
        version: n,
        template: format!("v{n}: {{{{ x }}}}"),
        system_template: None,
        variables: Vec::new(),
        validations: Vec::new(),
        model: ModelConfig { provider: None, model: "mock".into(), parameters: Default::default() },
        created_at: at,
        author: user,
    }
}

pub(super) async fn new_prompt(store: &dyn Store, user: UserId, name: &str) -> Prompt {
    let (p, v) = prompt_pair(user, name, now());
    store.insert_prompt(&p, &v).await.unwrap();
    p
}

/// A QUEUED execution, runnable now, deadline in an hour.
pub fn execution(
    user: UserId,
    prompt: PromptId,
    provider: &str,
    queue_key: i64,
    created_at: DateTime<Utc>,
) -> Execution {
    let mut inputs = Map::new();
    inputs.insert("x".into(), json!("1"));
    Execution::queued(NewExecution {
        user_id: user,
        prompt_id: prompt,
        prompt_version: 1,
        inputs,
        priority: Priority::Normal,
        validate_output: false,
        provider: provider.to_string(),
        model: "mock".into(),
        max_attempts: 3,
        retry_of: None,
        idempotency_key: None,
        created_at,
        deadline_at: created_at + Duration::hours(1),
        queue_key,
    })
}

/// One rescue pass at `now` with no backoff (a requeued execution is due at once).
pub async fn rescue_now(store: &dyn Store, now: DateTime<Utc>) -> Vec<Execution> {
    let no_backoff = BackoffPolicy { base: std::time::Duration::ZERO, max: std::time::Duration::ZERO };
    rescue::rescue_expired(store, &no_backoff, now).await.unwrap()
}

pub(super) async fn enqueue_one(store: &dyn Store, e: &Execution) {
    let out = store.enqueue(std::slice::from_ref(e)).await.unwrap();
    assert_eq!(out, vec![EnqueueOutcome::Created], "enqueue of a new execution must create it");
}

pub(super) fn completed(m: ExecutionMetrics, validation: Option<ValidationVerdict>) -> AttemptOutcome {
    AttemptOutcome::Completed { output: "out".into(), validated_output: None, validation, metrics: m }
}

pub(super) fn result(e: &Execution, worker: &str, outcome: AttemptOutcome) -> AttemptResult {
    AttemptResult { id: e.id, user_id: e.user_id, worker: worker.into(), outcome, finished_at: now() }
}

pub(super) fn err(code: ExecutionErrorCode) -> ExecutionError {
    ExecutionError { code, message: format!("{code} happened"), transient: true }
}

pub(super) fn is_not_found<T: std::fmt::Debug>(r: crate::Result<T>) -> bool {
    matches!(r, Err(Error::NotFound { .. }))
}

pub(super) fn is_conflict<T: std::fmt::Debug>(r: crate::Result<T>) -> bool {
    matches!(r, Err(Error::Conflict { .. }))
}
