-- FormaOps schema, Postgres. Timestamps are timestamptz (UTC), ids uuid, money NUMERIC,
-- structured values jsonb. The executions table is also the durable queue.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text        NOT NULL,
    password_hash text        NOT NULL,
    is_admin      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
);

-- Sessions and API keys: only the SHA-256 of the secret is stored.
CREATE TABLE credentials (
    id         uuid PRIMARY KEY,
    user_id    uuid        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('session', 'api_key')),
    name       text,
    token_hash bytea       NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz,
    CONSTRAINT credentials_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX credentials_user_kind_idx ON credentials (user_id, kind, created_at DESC, id DESC);

CREATE TABLE prompts (
    id              uuid PRIMARY KEY,
    user_id         uuid        NOT NULL,
    name            text        NOT NULL,
    description     text,
    status          text        NOT NULL CHECK (status IN ('ACTIVE', 'ARCHIVED')),
    current_version integer     NOT NULL CHECK (current_version >= 1),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
-- One active prompt per (user, name); archived prompts free their name.
CREATE UNIQUE INDEX prompts_active_name_key ON prompts (user_id, name) WHERE status = 'ACTIVE';
CREATE INDEX prompts_user_status_idx ON prompts (user_id, status, created_at DESC, id DESC);

CREATE TABLE prompt_versions (
    prompt_id       uuid        NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    version         integer     NOT NULL CHECK (version >= 1),
    template        text        NOT NULL,
    system_template text,
    variables       jsonb       NOT NULL,
    validations     jsonb       NOT NULL,
    model           jsonb       NOT NULL,
    created_at      timestamptz NOT NULL,
    author          uuid        NOT NULL,
    PRIMARY KEY (prompt_id, version)
);

CREATE TABLE executions (
    id                  uuid PRIMARY KEY,
    user_id             uuid        NOT NULL,
    prompt_id           uuid        NOT NULL,
    prompt_version      integer     NOT NULL,
    inputs              jsonb       NOT NULL,
    priority            text        NOT NULL CHECK (priority IN ('LOW', 'NORMAL', 'HIGH')),
    status              text        NOT NULL
        CHECK (status IN ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED')),
    validate_output     boolean     NOT NULL,
    provider            text        NOT NULL,
    model               text        NOT NULL,
    output              text,
    validated_output    jsonb,
    validation          jsonb,
    validation_passed   boolean,
    error               jsonb,
    -- Metrics: latency_ms IS NULL means "no metrics recorded".
    latency_ms          bigint,
    provider_latency_ms bigint,
    queue_ms            bigint,
    tokens_input        bigint,
    tokens_output       bigint,
    tokens_cached       bigint,
    tokens_reasoning    bigint,
    tokens_total        bigint,
    tokens_estimated    boolean,
    -- NULL = unpriced (model not in the price table), never a silent 0.
    cost_usd            numeric,
    attempts            integer     NOT NULL DEFAULT 0,
    max_attempts        integer     NOT NULL,
    retry_of            uuid,
    idempotency_key     text,
    created_at          timestamptz NOT NULL,
    run_after           timestamptz NOT NULL,
    deadline_at         timestamptz NOT NULL,
    started_at          timestamptz,
    finished_at         timestamptz,
    queue_key           bigint      NOT NULL,
    lease_owner         text,
    lease_expires_at    timestamptz,
    CONSTRAINT executions_idempotency_key UNIQUE (user_id, idempotency_key)
);
-- Listing a user's executions newest first (keyset pagination).
CREATE INDEX executions_user_created_idx ON executions (user_id, created_at DESC, id DESC);
CREATE INDEX executions_user_status_idx ON executions (user_id, status);
CREATE INDEX executions_prompt_created_idx ON executions (prompt_id, created_at);
-- The claim: next QUEUED executions of a provider in queue_key order.
CREATE INDEX executions_claim_idx ON executions (provider, queue_key, id) WHERE status = 'QUEUED';
-- The rescuer: expired leases.
CREATE INDEX executions_lease_idx ON executions (lease_expires_at) WHERE status = 'RUNNING';
