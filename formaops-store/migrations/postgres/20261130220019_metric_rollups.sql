-- Metrics rollups (formaops_core::metrics::rollup): per user, granularity (bucket width in
-- seconds: 60, 3600, 86400), bucket start, prompt, version and label ('' for none), the sums
-- of executions that became final; kept in the transaction of every final-state write.
-- Executions record the label they were resolved through.
ALTER TABLE executions ADD COLUMN label text;

-- Live QUEUED/RUNNING counts of the metrics report read only non-final rows.
CREATE INDEX executions_live_idx ON executions (user_id, created_at) WHERE status IN ('QUEUED', 'RUNNING');

CREATE TABLE metric_rollups (
    user_id           uuid        NOT NULL,
    granularity       integer     NOT NULL,
    bucket_start      timestamptz NOT NULL,
    prompt_id         uuid        NOT NULL,
    prompt_version    integer     NOT NULL,
    label             text        NOT NULL,
    completed         bigint      NOT NULL,
    failed            bigint      NOT NULL,
    cancelled         bigint      NOT NULL,
    tokens_input      bigint      NOT NULL,
    tokens_output     bigint      NOT NULL,
    tokens_cached     bigint      NOT NULL,
    tokens_total      bigint      NOT NULL,
    cost_usd          numeric     NOT NULL,
    priced            bigint      NOT NULL,
    unpriced          bigint      NOT NULL,
    validated         bigint      NOT NULL,
    validation_passed bigint      NOT NULL,
    PRIMARY KEY (user_id, granularity, bucket_start, prompt_id, prompt_version, label)
);

-- Latency histograms: kind 0 total latency, 1 provider latency; idx the log-scale bucket.
CREATE TABLE metric_latency (
    user_id        uuid        NOT NULL,
    granularity    integer     NOT NULL,
    bucket_start   timestamptz NOT NULL,
    prompt_id      uuid        NOT NULL,
    prompt_version integer     NOT NULL,
    label          text        NOT NULL,
    kind           smallint    NOT NULL,
    idx            integer     NOT NULL,
    n              bigint      NOT NULL,
    PRIMARY KEY (user_id, granularity, bucket_start, prompt_id, prompt_version, label, kind, idx)
);

-- One row once the executions that were final before this migration are rolled up (done by
-- the store at connect, through the core rule).
CREATE TABLE metric_rollups_backfill (
    id      integer     PRIMARY KEY,
    done_at timestamptz NOT NULL
);
