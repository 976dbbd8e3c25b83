//! The durability setting is applied where it says: on Postgres, execution writes (enqueue,
//! claim, lease extension, finish, rescue) commit with `synchronous_commit = off` when
//! relaxed while users, credentials and prompts always commit synchronously; on SQLite, the
//! writer runs with `synchronous = NORMAL` when relaxed and `FULL` when strict.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use formaops_core::conformance::rescue_now;
use formaops_core::execution::{
    AttemptOutcome, AttemptResult, Execution, ExecutionMetrics, NewExecution, Priority,
};
use formaops_core::ids::{CredentialId, PromptId, UserId};
use formaops_core::prompt::{ModelConfig, Prompt, PromptStatus, PromptVersion};
use formaops_core::store::{ClaimParams, ExtendLeasesParams, Store};
use formaops_core::user::{Credential, CredentialKind, User};
use formaops_store::{Durability, PgStore, StoreOptions};
use sqlx::PgPool;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn execution(user: UserId, n: i64) -> Execution {
    let created = t0() + Duration::milliseconds(n);
    Execution::queued(NewExecution {
        user_id: user,
        prompt_id: PromptId::new(),
        prompt_version: 1,
        inputs: serde_json::Map::new(),
        priority: Priority::Normal,
        validate_output: false,
        provider: "mock".into(),
        model: "m".into(),
        max_attempts: 3,
        retry_of: None,
        idempotency_key: None,
        created_at: created,
        deadline_at: created + Duration::hours(1),
        queue_key: n,
    })
}

/// Records, per statement, which table was written and the transaction's
/// `synchronous_commit` (a trigger runs inside the writing transaction).
const RECORDER: &[&str] = &[
    "CREATE TABLE sync_seen (seq bigserial, tbl text NOT NULL, setting text NOT NULL)",
    "CREATE FUNCTION record_sync() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
     INSERT INTO sync_seen (tbl, setting) VALUES (TG_TABLE_NAME, current_setting('synchronous_commit')); \
     RETURN NULL; END $$",
    "CREATE TRIGGER sync_executions AFTER INSERT OR UPDATE ON executions \
     FOR EACH STATEMENT EXECUTE FUNCTION record_sync()",
    "CREATE TRIGGER sync_users AFTER INSERT OR UPDATE ON users \
     FOR EACH STATEMENT EXECUTE FUNCTION record_sync()",
    "CREATE TRIGGER sync_credentials AFTER INSERT OR UPDATE ON credentials \
     FOR EACH STATEMENT EXECUTE FUNCTION record_sync()",
    "CREATE TRIGGER sync_prompts AFTER INSERT OR UPDATE ON prompts \
     FOR EACH STATEMENT EXECUTE FUNCTION record_sync()",
];

/// The (table, synchronous_commit) of every write since the last call, then forgets them.
async fn seen(pool: &PgPool) -> Vec<(String, String)> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("DELETE FROM sync_seen RETURNING tbl, setting").fetch_all(pool).await.unwrap();
    assert!(!rows.is_empty(), "the call wrote nothing the recorder saw");
    rows
}

/// Runs every kind of write on `store` and checks the setting each committed with.
async fn writes_commit_with(store: &PgStore, execution_setting: &str) {
    let pool = store.pool();
    for sql in RECORDER {
        sqlx::query(sqlx::AssertSqlSafe(*sql)).execute(pool).await.unwrap();
    }
    let only = |rows: Vec<(String, String)>, table: &str, setting: &str, what: &str| {
        assert!(rows.iter().all(|(t, s)| t == table && s == setting), "{what}: {rows:?}");
    };

    // Users, credentials and prompts: always synchronous.
    let user = User { id: UserId::new(), email: "d@example.com".into(), is_admin: false, created_at: t0() };
    store.create_user(&user, "hash").await.unwrap();
    only(seen(pool).await, "users", "on", "create_user");
    let credential = Credential {
        id: CredentialId::new(),
        user_id: user.id,
        kind: CredentialKind::ApiKey,
        name: None,
        token_hash: vec![7; 32],
        created_at: t0(),
        expires_at: None,
        revoked_at: None,
    };
    store.create_credential(&credential).await.unwrap();
    only(seen(pool).await, "credentials", "on", "create_credential");
    store.revoke_credential(user.id, credential.id, t0()).await.unwrap();
    only(seen(pool).await, "credentials", "on", "revoke_credential");
    let prompt = Prompt {
        id: PromptId::new(),
        user_id: user.id,
        name: "p".into(),
        description: None,
        status: PromptStatus::Active,
        current_version: 1,
        created_at: t0(),
        updated_at: t0(),
    };
    let version = PromptVersion {
        prompt_id: prompt.id,
        version: 1,
        template: "Hi".into(),
        system_template: None,
        variables: vec![],
        validations: vec![],
        model: ModelConfig::default(),
        created_at: t0(),
        author: user.id,
    };
    store.insert_prompt(&prompt, &version).await.unwrap();
    only(seen(pool).await, "prompts", "on", "insert_prompt");

    // Execution writes: the mode's setting.
    let (a, b) = (execution(user.id, 1), execution(user.id, 2));
    store.enqueue(&[a.clone(), b.clone()]).await.unwrap();
    only(seen(pool).await, "executions", execution_setting, "enqueue");
    let now = t0() + Duration::seconds(1);
    let lease = now + Duration::seconds(30);
    let claimed = store
        .claim(ClaimParams { worker: "w", provider: "mock", limit: 10, now, lease_until: lease })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    only(seen(pool).await, "executions", execution_setting, "claim");
    let held = store
        .extend_leases(ExtendLeasesParams { worker: "w", ids: &[a.id], lease_until: lease })
        .await
        .unwrap();
    assert_eq!(held, vec![a.id]);
    only(seen(pool).await, "executions", execution_setting, "extend_leases");
    let result = AttemptResult {
        id: a.id,
        user_id: a.user_id,
        worker: "w".into(),
        outcome: AttemptOutcome::Completed {
            output: "out".into(),
            validated_output: None,
            validation: None,
            metrics: ExecutionMetrics::default(),
        },
        finished_at: now,
        finish_reason: None,
    };
    assert_eq!(store.finish(&[result]).await.unwrap(), vec![true]);
    only(seen(pool).await, "executions", execution_setting, "finish");
    // `b`'s lease expires: the rescuer requeues it.
    let rescued = rescue_now(store, lease + Duration::seconds(1)).await;
    assert_eq!(rescued.iter().map(|e| e.id).collect::<Vec<_>>(), vec![b.id]);
    only(seen(pool).await, "executions", execution_setting, "rescue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_relaxed_commits_only_execution_writes_asynchronously() {
    let Some(db) = common::PgTestDb::create().await else { return };
    let store = db.store_with(4, StoreOptions::with_durability(Durability::Relaxed)).await;
    assert_eq!(store.durability(), Durability::Relaxed);
    writes_commit_with(&store, "off").await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_strict_commits_every_write_synchronously() {
    let Some(db) = common::PgTestDb::create().await else { return };
    let store = db.store_with(4, StoreOptions::default()).await;
    assert_eq!(store.durability(), Durability::Strict);
    writes_commit_with(&store, "on").await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writer_synchronous_follows_the_durability() {
    let db = common::SqliteTestDb::new();
    let strict = db.store().await;
    assert_eq!(strict.writer_synchronous().await.unwrap(), 2, "FULL");
    strict.close().await;
    let relaxed = db.store_with(StoreOptions::with_durability(Durability::Relaxed)).await;
    assert_eq!(relaxed.writer_synchronous().await.unwrap(), 1, "NORMAL");
    // Still a working store: a write and its read-back.
    let e = execution(UserId::new(), 1);
    relaxed.enqueue(std::slice::from_ref(&e)).await.unwrap();
    assert_eq!(relaxed.get_execution(e.user_id, e.id).await.unwrap(), e);
    relaxed.close().await;
    // Through `connect_with`, the entry point the server and Python use.
    let store = formaops_store::connect_with(&db.url, StoreOptions::with_durability(Durability::Relaxed))
        .await
        .unwrap();
    assert_eq!(store.get_execution(e.user_id, e.id).await.unwrap(), e, "the relaxed write was kept");
}
