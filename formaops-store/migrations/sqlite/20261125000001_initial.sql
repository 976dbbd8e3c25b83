-- FormaOps schema, SQLite. Timestamps are INTEGER microseconds since the Unix epoch (UTC),
-- ids 16-byte BLOB UUIDs, money an exact decimal string (TEXT), JSON as TEXT.
-- The executions table is also the durable queue.

CREATE TABLE users (
    id            BLOB PRIMARY KEY NOT NULL,
    email         TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE credentials (
    id         BLOB PRIMARY KEY NOT NULL,
    user_id    BLOB    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('session', 'api_key')),
    name       TEXT,
    token_hash BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);
CREATE UNIQUE INDEX credentials_token_hash_key ON credentials (token_hash);
CREATE INDEX credentials_user_kind_idx ON credentials (user_id, kind, created_at DESC, id DESC);

CREATE TABLE prompts (
    id              BLOB PRIMARY KEY NOT NULL,
    user_id         BLOB    NOT NULL,
    name            TEXT    NOT NULL,
    description     TEXT,
    status          TEXT    NOT NULL CHECK (status IN ('ACTIVE', 'ARCHIVED')),
    current_version INTEGER NOT NULL CHECK (current_version >= 1),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX prompts_active_name_key ON prompts (user_id, name) WHERE status = 'ACTIVE';
CREATE INDEX prompts_user_status_idx ON prompts (user_id, status, created_at DESC, id DESC);

CREATE TABLE prompt_versions (
    prompt_id       BLOB    NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    version         INTEGER NOT NULL CHECK (version >= 1),
    template        TEXT    NOT NULL,
    system_template TEXT,
    variables       TEXT    NOT NULL,
    validations     TEXT    NOT NULL,
    model           TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    author          BLOB    NOT NULL,
    PRIMARY KEY (prompt_id, version)
);

CREATE TABLE executions (
    id                  BLOB PRIMARY KEY NOT NULL,
    user_id             BLOB    NOT NULL,
    prompt_id           BLOB    NOT NULL,
    prompt_version      INTEGER NOT NULL,
    inputs              TEXT    NOT NULL,
    priority            TEXT    NOT NULL CHECK (priority IN ('LOW', 'NORMAL', 'HIGH')),
    status              TEXT    NOT NULL
        CHECK (status IN ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED')),
    validate_output     INTEGER NOT NULL,
    provider            TEXT    NOT NULL,
    model               TEXT    NOT NULL,
    output              TEXT,
    validated_output    TEXT,
    validation          TEXT,
    validation_passed   INTEGER,
    error               TEXT,
    latency_ms          INTEGER,
    provider_latency_ms INTEGER,
    queue_ms            INTEGER,
    tokens_input        INTEGER,
    tokens_output       INTEGER,
    tokens_cached       INTEGER,
    tokens_reasoning    INTEGER,
    tokens_total        INTEGER,
    tokens_estimated    INTEGER,
    cost_usd            TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    max_attempts        INTEGER NOT NULL,
    retry_of            BLOB,
    idempotency_key     TEXT,
    created_at          INTEGER NOT NULL,
    run_after           INTEGER NOT NULL,
    deadline_at         INTEGER NOT NULL,
    started_at          INTEGER,
    finished_at         INTEGER,
    queue_key           INTEGER NOT NULL,
    lease_owner         TEXT,
    lease_expires_at    INTEGER
);
CREATE UNIQUE INDEX executions_idempotency_key ON executions (user_id, idempotency_key);
CREATE INDEX executions_user_created_idx ON executions (user_id, created_at DESC, id DESC);
CREATE INDEX executions_user_status_idx ON executions (user_id, status);
CREATE INDEX executions_prompt_created_idx ON executions (prompt_id, created_at);
CREATE INDEX executions_claim_idx ON executions (provider, queue_key, id) WHERE status = 'QUEUED';
CREATE INDEX executions_lease_idx ON executions (lease_expires_at) WHERE status = 'RUNNING';
