-- The current-state index: for each path of a project, the seq of its newest
-- event (a delete included). Kept in the append transaction, so the conflict
-- check (base_hash) reads one row per path instead of scanning the log, and a
-- project's tree costs O(files), not O(events).
CREATE TABLE current_versions (
    project_id TEXT NOT NULL REFERENCES projects(id),
    path       TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (project_id, path)
) WITHOUT ROWID;

INSERT INTO current_versions (project_id, path, seq)
    SELECT project_id, path, MAX(seq) FROM events GROUP BY project_id, path;

-- `--max-projects-per-user` counts a user's projects on every create.
CREATE INDEX projects_by_owner ON projects(owner_id);
