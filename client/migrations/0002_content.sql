-- The hash of each path as of the newest event this client has taken in:
-- the version both sides last agreed on, against which local edits are told.
CREATE TABLE synced (
    project_id TEXT NOT NULL,
    path       TEXT NOT NULL,
    hash       TEXT NOT NULL,
    PRIMARY KEY (project_id, path)
) WITHOUT ROWID;

-- Conflict copies this client made (shown as `conflict (n)` while they exist).
CREATE TABLE conflicts (
    project_id TEXT NOT NULL,
    path       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (project_id, path)
) WITHOUT ROWID;
