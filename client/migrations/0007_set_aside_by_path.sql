-- Set-aside events are found and dropped by path (when a newer version of
-- the path is applied, or a retry succeeds). Without this index each of
-- those walked all of a project's set-aside rows: after a full disk set
-- thousands of events aside, a retry pass was quadratic.
CREATE INDEX set_aside_by_path ON set_aside(project_id, path, seq);
