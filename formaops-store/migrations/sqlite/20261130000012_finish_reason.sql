-- Why the model stopped (`stop`, `length`, `content_filter`, `tool_calls`, ...), as the
-- provider reported it for the last attempt that read a reply. NULL: no reply was read.
ALTER TABLE executions ADD COLUMN finish_reason TEXT;
