//! Query plans that do not depend on table statistics.
//!
//! A connection caches a prepared statement's generic plan; a plan chosen while the tables
//! were empty and never analysed (every young database; Postgres with autovacuum off) is then
//! used for the life of the connection. The hot statements (`formaops_store::hot_statements`)
//! must pick a plan on those empty tables that still reads a handful of pages when one user
//! has a million executions — a lookup by id by the primary key, never by scanning the user's
//! rows. This test prepares each statement on empty, unanalysed tables with
//! `plan_cache_mode = force_generic_plan`, loads the data (autovacuum off, no ANALYZE), then
//! runs each cached plan under `EXPLAIN (ANALYZE, BUFFERS)` (writes rolled back) and bounds the
//! pages it touched. `FORMAOPS_PLAN_ROWS` changes the row count (default 1,000,000).

mod common;

use common::PgTestDb;
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection, Executor, Row};

/// Most buffer pages one execution of a hot statement may touch: a primary-key lookup reads
/// about 4, a page of 50 listed executions about 60.
const MAX_PAGES: i64 = 120;

const USER: &str = "'00000000-0000-0000-0000-00000000000a'::uuid";
const PROMPT: &str = "'00000000-0000-0000-0000-0000000000b0'::uuid";

/// The id of the `n`-th loaded execution.
fn execution(n: u64) -> String {
    format!("'00000000-0000-0000-0001-{n:012x}'::uuid")
}

/// The arguments each statement is executed with (SQL literals): the big user's rows.
fn arguments(name: &str) -> Option<String> {
    let (u, p) = (USER, PROMPT);
    let done = execution(7); // COMPLETED
    let queued = execution(100_001); // QUEUED (1, 100,001, ...)
    let running = execution(50_000); // RUNNING with an expired lease (every 50,000th)
    let ints = "ARRAY[1]::int8[]";
    Some(match name {
        "get_execution" | "status_of" => format!("{done}, {u}"),
        "by_idempotency_key" => format!("{u}, 'key-7'"),
        "cancel" => format!("now(), {queued}, {u}"),
        "queue_depth_of" => u.to_string(),
        "claim" => "'worker', now() + interval '1 minute', now(), 'mock', 2".to_string(),
        "expired_leases" => "now(), 10".to_string(),
        "rescue" => format!("'QUEUED', NULL, NULL, NULL, {running}, 1, now() - interval '1 hour'"),
        "finish" => format!(
            "ARRAY[{running}], ARRAY[{u}], ARRAY['worker'], ARRAY['COMPLETED'], ARRAY['out'], \
             ARRAY[NULL]::text[], ARRAY[NULL]::text[], ARRAY[NULL]::bool[], ARRAY[NULL]::text[], \
             {ints}, {ints}, {ints}, {ints}, {ints}, {ints}, {ints}, {ints}, ARRAY[false], \
             ARRAY[NULL]::numeric[], ARRAY[NULL]::timestamptz[], ARRAY[now()], ARRAY['stop']"
        ),
        "list" => format!("{u}, 50"),
        "list_next_page" => format!("{u}, now() - interval '1 day', {}, 50", execution(86_400)),
        "list_by_status" => format!("{u}, 'FAILED', 50"),
        "list_by_prompt" => format!("{u}, {p}, 50"),
        "authenticate" => "'\\x00'::bytea, now()".to_string(),
        "user_by_id" => u.to_string(),
        "get_prompt" | "prompt_status" | "prompt_version_of" => format!("{p}, {u}"),
        "get_version" => format!("{p}, {u}, 1"),
        "next_version" => format!("'p', NULL, 2, now(), {p}, {u}, 1"),
        "set_prompt_status" => format!("'ARCHIVED', now(), {p}, {u}"),
        "get_label" => format!("{p}, {u}, 'production'"),
        "list_labels" => p.to_string(),
        _ => return None,
    })
}

/// Loads one user with `rows` executions (newest first by number: execution n was created n
/// seconds ago), one prompt of that user among 100,000 others of theirs, and a label.
fn load(rows: u64) -> String {
    format!(
        "INSERT INTO users (id, email, password_hash, is_admin, created_at) \
           VALUES ({USER}, 'big@example.com', '!', false, now());
         INSERT INTO prompts (id, user_id, name, description, status, current_version, created_at, updated_at) \
           SELECT ('00000000-0000-0000-0002-' || lpad(to_hex(g), 12, '0'))::uuid, {USER}, 'p' || g, NULL, \
           'ACTIVE', 1, now(), now() FROM generate_series(1, 100000) g;
         INSERT INTO prompts (id, user_id, name, description, status, current_version, created_at, updated_at) \
           VALUES ({PROMPT}, {USER}, 'p', NULL, 'ACTIVE', 1, now(), now());
         INSERT INTO prompt_versions (prompt_id, version, template, system_template, variables, validations, \
           model, created_at, author) VALUES ({PROMPT}, 1, 't', NULL, '[]', '[]', '{{}}', now(), {USER});
         INSERT INTO prompt_labels (prompt_id, name, version, updated_at, updated_by) \
           VALUES ({PROMPT}, 'production', 1, now(), {USER});
         INSERT INTO executions (id, user_id, prompt_id, prompt_version, inputs, priority, status, \
           validate_output, provider, model, attempts, max_attempts, idempotency_key, created_at, run_after, \
           deadline_at, queue_key, lease_owner, lease_expires_at) \
         SELECT ('00000000-0000-0000-0001-' || lpad(to_hex(g), 12, '0'))::uuid, {USER}, {PROMPT}, 1, '{{}}', \
           'NORMAL', \
           CASE WHEN g % 50000 = 0 THEN 'RUNNING' WHEN g % 100000 = 1 THEN 'QUEUED' \
                WHEN g % 997 = 0 THEN 'FAILED' ELSE 'COMPLETED' END, \
           false, 'mock', 'mock', 1, 3, 'key-' || g, now() - g * interval '1 second', \
           now() - interval '1 hour', now() + interval '1 hour', g, \
           CASE WHEN g % 50000 = 0 THEN 'gone' END, \
           CASE WHEN g % 50000 = 0 THEN now() - interval '1 hour' END \
         FROM generate_series(1, {rows}) g;"
    )
}

/// A plan as `Node(index) > child, child`, for the failure message.
fn outline(plan: &Value) -> String {
    let mut out = plan["Node Type"].as_str().unwrap_or("?").to_string();
    if let Some(index) = plan["Index Name"].as_str() {
        out.push_str(&format!("({index})"));
    }
    if let Some(children) = plan["Plans"].as_array() {
        let inner: Vec<String> = children.iter().map(outline).collect();
        out.push_str(&format!(" > [{}]", inner.join(", ")));
    }
    out
}

#[tokio::test]
async fn hot_plans_chosen_on_empty_tables_stay_cheap_at_a_million_rows() {
    let Some(db) = PgTestDb::create().await else { return };
    drop(db.store_with_pool(1).await); // migrates
    let rows: u64 =
        std::env::var("FORMAOPS_PLAN_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let mut conn = sqlx::PgConnection::connect_with(&db.options).await.unwrap();
    for table in ["users", "credentials", "prompts", "prompt_versions", "prompt_labels", "executions"] {
        conn.execute(AssertSqlSafe(format!("ALTER TABLE {table} SET (autovacuum_enabled = false)")))
            .await
            .unwrap();
    }
    conn.execute("SET plan_cache_mode = force_generic_plan").await.unwrap();

    // Prepared (and so planned for good) while every table is empty and never analysed.
    let statements = formaops_store::hot_statements();
    for (name, sql) in &statements {
        assert!(arguments(name).is_some(), "no test arguments for the hot statement {name}");
        conn.execute(AssertSqlSafe(format!("PREPARE {name} AS {sql}"))).await.unwrap();
    }

    sqlx::raw_sql(AssertSqlSafe(load(rows))).execute(&mut conn).await.unwrap();
    let analysed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(analysed, 0, "the tables must stay unanalysed for this test to mean anything");

    let mut too_costly = Vec::new();
    for (name, _) in &statements {
        let args = arguments(name).unwrap_or_default();
        conn.execute("BEGIN").await.unwrap();
        let explain = format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {name}({args})");
        let row = conn.fetch_one(AssertSqlSafe(explain)).await.unwrap();
        conn.execute("ROLLBACK").await.unwrap();
        let doc: Value = row.try_get(0).unwrap();
        let plan = &doc[0]["Plan"];
        let pages =
            ["Shared Hit Blocks", "Shared Read Blocks"].iter().filter_map(|k| plan[k].as_i64()).sum::<i64>();
        println!("{name}: {pages} pages");
        if pages > MAX_PAGES {
            too_costly.push(format!("{name}: {pages} pages: {}", outline(plan)));
        }
    }
    assert!(
        too_costly.is_empty(),
        "these cached plans touch more than {MAX_PAGES} pages at {rows} rows:\n{}",
        too_costly.join("\n\n")
    );
}
