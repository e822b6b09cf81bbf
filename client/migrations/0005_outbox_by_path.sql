-- The outbox is looked up by path (the last queued version of a path, and
-- the rows a path's applied version makes moot). With only (project_id, id)
-- each lookup walked the project's whole outbox: a share of 10,000 files
-- spent ~12 CPU-s in SQLite (quadratic).
CREATE INDEX outbox_by_path ON outbox(project_id, path, id);
