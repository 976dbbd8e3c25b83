-- Listing executions by status or by prompt, newest first, reads one page of rows: each filter
-- has an index with its equality columns and the listing order (see src/sql/mod.rs, "Plans
-- that do not depend on statistics"). They replace (user_id, status), whose listings sorted
-- all the user's rows of that status, and (prompt_id, created_at), whose listings combined two
-- bitmaps and sorted every execution of the prompt. Building them on a large table blocks
-- writes to executions for the duration of the build.
DROP INDEX executions_user_status_idx;
DROP INDEX executions_prompt_created_idx;
CREATE INDEX executions_user_status_created_idx ON executions (user_id, status, created_at DESC, id DESC);
CREATE INDEX executions_user_prompt_created_idx ON executions (user_id, prompt_id, created_at DESC, id DESC);
