-- Metrics rollups (formaops_core::metrics::rollup): per user, granularity (bucket width in
-- seconds: 60, 3600, 86400), bucket start, prompt, version and label ('' for none), the sums
-- of executions that became final; kept in the transaction of every final-state write.
-- Executions record the label they were resolved through. Costs are summed exactly as
-- integer pico-USD (1e-12 USD) here: SQLite has no exact decimal arithmetic.
ALTER TABLE executions ADD COLUMN label TEXT;

-- Live QUEUED/RUNNING counts of the metrics report read only non-final rows.
CREATE INDEX executions_live_idx ON executions (user_id, created_at) WHERE status IN ('QUEUED', 'RUNNING');

CREATE TABLE metric_rollups (
    user_id           BLOB    NOT NULL,
    granularity       INTEGER NOT NULL,
    bucket_start      INTEGER NOT NULL,
    prompt_id         BLOB    NOT NULL,
    prompt_version    INTEGER NOT NULL,
    label             TEXT    NOT NULL,
    completed         INTEGER NOT NULL,
    failed            INTEGER NOT NULL,
    cancelled         INTEGER NOT NULL,
    tokens_input      INTEGER NOT NULL,
    tokens_output     INTEGER NOT NULL,
    tokens_cached     INTEGER NOT NULL,
    tokens_total      INTEGER NOT NULL,
    cost_usd          INTEGER NOT NULL,
    priced            INTEGER NOT NULL,
    unpriced          INTEGER NOT NULL,
    validated         INTEGER NOT NULL,
    validation_passed INTEGER NOT NULL,
    PRIMARY KEY (user_id, granularity, bucket_start, prompt_id, prompt_version, label)
) WITHOUT ROWID;

-- Latency histograms: kind 0 total latency, 1 provider latency; idx the log-scale bucket.
CREATE TABLE metric_latency (
    user_id        BLOB    NOT NULL,
    granularity    INTEGER NOT NULL,
    bucket_start   INTEGER NOT NULL,
    prompt_id      BLOB    NOT NULL,
    prompt_version INTEGER NOT NULL,
    label          TEXT    NOT NULL,
    kind           INTEGER NOT NULL,
    idx            INTEGER NOT NULL,
    n              INTEGER NOT NULL,
    PRIMARY KEY (user_id, granularity, bucket_start, prompt_id, prompt_version, label, kind, idx)
) WITHOUT ROWID;

-- One row once the executions that were final before this migration are rolled up (done by
-- the store at connect, through the core rule).
CREATE TABLE metric_rollups_backfill (
    id      INTEGER PRIMARY KEY,
    done_at INTEGER NOT NULL
);
