-- Datasets and experiments (issue 15). A dataset is a named list of input rows owned by a
-- user; an experiment runs versions of a prompt over a dataset, each (row, version) pair
-- recorded with the execution that runs it. A dataset used by an experiment is kept.
CREATE TABLE datasets (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL,
    name       text        NOT NULL,
    row_count  integer     NOT NULL CHECK (row_count >= 0),
    created_at timestamptz NOT NULL,
    CONSTRAINT datasets_name_key UNIQUE (user_id, name)
);
CREATE INDEX datasets_user_idx ON datasets (user_id, created_at, id);

CREATE TABLE dataset_rows (
    dataset_id uuid    NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    row_index  integer NOT NULL CHECK (row_index >= 0),
    inputs     jsonb   NOT NULL,
    expected   jsonb,
    PRIMARY KEY (dataset_id, row_index)
);

CREATE TABLE experiments (
    id              uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL,
    prompt_id       uuid        NOT NULL REFERENCES prompts (id),
    dataset_id      uuid        NOT NULL REFERENCES datasets (id),
    targets         jsonb       NOT NULL,
    priority        text        NOT NULL CHECK (priority IN ('LOW', 'NORMAL', 'HIGH')),
    concurrency     integer     NOT NULL CHECK (concurrency >= 1),
    match_rule      text,
    validate_output boolean     NOT NULL,
    status          text        NOT NULL CHECK (status IN ('RUNNING', 'COMPLETED', 'CANCELLED')),
    row_count       integer     NOT NULL,
    created_at      timestamptz NOT NULL,
    finished_at     timestamptz
);
CREATE INDEX experiments_user_idx ON experiments (user_id, created_at, id);
CREATE INDEX experiments_running_idx ON experiments (created_at, id) WHERE status = 'RUNNING';
CREATE INDEX experiments_dataset_idx ON experiments (dataset_id);

CREATE TABLE experiment_runs (
    experiment_id uuid    NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    row_index     integer NOT NULL,
    version       integer NOT NULL,
    execution_id  uuid    NOT NULL,
    PRIMARY KEY (experiment_id, row_index, version)
);
