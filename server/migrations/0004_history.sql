-- History (issue 13): every version of a path, and the tree as of any seq,
-- by index seeks instead of log scans: (project, path, seq) finds a path's
-- newest event at or before a seq in O(log events).
CREATE INDEX events_by_path ON events(project_id, path, seq);

-- Content the retention collector removed, so that asking for it answers
-- 410 `gone` rather than 404 (and a restore of it is refused).
CREATE TABLE collected (
    project_id   TEXT NOT NULL REFERENCES projects(id),
    hash         TEXT NOT NULL,
    collected_at TEXT NOT NULL,
    PRIMARY KEY (project_id, hash)
) WITHOUT ROWID;

-- When a manifest was stored: one no event names yet is an upload in
-- flight, which the collector leaves alone for its grace period. NULL (rows
-- from before this migration) counts as old.
ALTER TABLE manifests ADD COLUMN created_at TEXT;
