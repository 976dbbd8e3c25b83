-- Labels (issue 15): named pointers from a prompt to one of its versions, every move kept,
-- and per-prompt label settings (the promotion guard). A move updates the pointer and
-- inserts its history row in one transaction.
CREATE TABLE prompt_labels (
    prompt_id  BLOB    NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1),
    updated_at INTEGER NOT NULL,
    updated_by BLOB    NOT NULL,
    PRIMARY KEY (prompt_id, name),
    FOREIGN KEY (prompt_id, version) REFERENCES prompt_versions (prompt_id, version)
);

CREATE TABLE prompt_label_moves (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    prompt_id    BLOB    NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    from_version INTEGER,
    to_version   INTEGER,
    actor        BLOB    NOT NULL,
    moved_at     INTEGER NOT NULL
);
CREATE INDEX prompt_label_moves_prompt_idx ON prompt_label_moves (prompt_id, seq DESC);

CREATE TABLE prompt_label_settings (
    prompt_id        BLOB    PRIMARY KEY NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    guard_production INTEGER NOT NULL CHECK (guard_production IN (0, 1))
);
