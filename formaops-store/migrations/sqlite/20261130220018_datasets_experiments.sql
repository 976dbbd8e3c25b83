-- Datasets and experiments (issue 15). A dataset is a named list of input rows owned by a
-- user; an experiment runs versions of a prompt over a dataset, each (row, version) pair
-- recorded with the execution that runs it. A dataset used by an experiment is kept.
CREATE TABLE datasets (
    id         BLOB    PRIMARY KEY NOT NULL,
    user_id    BLOB    NOT NULL,
    name       TEXT    NOT NULL,
    row_count  INTEGER NOT NULL CHECK (row_count >= 0),
    created_at INTEGER NOT NULL,
    UNIQUE (user_id, name)
);
CREATE INDEX datasets_user_idx ON datasets (user_id, created_at, id);

CREATE TABLE dataset_rows (
    dataset_id BLOB    NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    row_index  INTEGER NOT NULL CHECK (row_index >= 0),
    inputs     TEXT    NOT NULL,
    expected   TEXT,
    PRIMARY KEY (dataset_id, row_index)
);

CREATE TABLE experiments (
    id              BLOB    PRIMARY KEY NOT NULL,
    user_id         BLOB    NOT NULL,
    prompt_id       BLOB    NOT NULL REFERENCES prompts (id),
    dataset_id      BLOB    NOT NULL REFERENCES datasets (id),
    targets         TEXT    NOT NULL,
    priority        TEXT    NOT NULL CHECK (priority IN ('LOW', 'NORMAL', 'HIGH')),
    concurrency     INTEGER NOT NULL CHECK (concurrency >= 1),
    match_rule      TEXT,
    validate_output INTEGER NOT NULL CHECK (validate_output IN (0, 1)),
    status          TEXT    NOT NULL CHECK (status IN ('RUNNING', 'COMPLETED', 'CANCELLED')),
    row_count       INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER
);
CREATE INDEX experiments_user_idx ON experiments (user_id, created_at, id);
CREATE INDEX experiments_running_idx ON experiments (created_at, id) WHERE status = 'RUNNING';
CREATE INDEX experiments_dataset_idx ON experiments (dataset_id);

CREATE TABLE experiment_runs (
    experiment_id BLOB    NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    row_index     INTEGER NOT NULL,
    version       INTEGER NOT NULL,
    execution_id  BLOB    NOT NULL,
    PRIMARY KEY (experiment_id, row_index, version)
);
