-- Labels (issue 15): named pointers from a prompt to one of its versions, every move kept,
-- and per-prompt label settings (the promotion guard). A move updates the pointer and
-- inserts its history row in one transaction.
CREATE TABLE prompt_labels (
    prompt_id  uuid        NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    name       text        NOT NULL,
    version    integer     NOT NULL CHECK (version >= 1),
    updated_at timestamptz NOT NULL,
    updated_by uuid        NOT NULL,
    PRIMARY KEY (prompt_id, name),
    FOREIGN KEY (prompt_id, version) REFERENCES prompt_versions (prompt_id, version)
);

CREATE TABLE prompt_label_moves (
    seq          bigserial   PRIMARY KEY,
    prompt_id    uuid        NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    name         text        NOT NULL,
    from_version integer,
    to_version   integer,
    actor        uuid        NOT NULL,
    moved_at     timestamptz NOT NULL
);
CREATE INDEX prompt_label_moves_prompt_idx ON prompt_label_moves (prompt_id, seq DESC);

CREATE TABLE prompt_label_settings (
    prompt_id        uuid    PRIMARY KEY REFERENCES prompts (id) ON DELETE CASCADE,
    guard_production boolean NOT NULL
);
