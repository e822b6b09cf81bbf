-- Changes waiting to be posted, oldest first. A row leaves only when the
-- server has answered for it; `failed` holds a refusal that retrying won't fix.
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id TEXT NOT NULL,
    change_id  TEXT NOT NULL UNIQUE,
    path       TEXT NOT NULL,
    op         TEXT NOT NULL,
    hash       TEXT,
    size       INTEGER,
    mtime      TEXT,
    created_at TEXT NOT NULL,
    failed     TEXT
);
CREATE INDEX outbox_by_project ON outbox(project_id, id);

-- What this client last saw of each local file (the scanner's memory).
CREATE TABLE file_index (
    project_id TEXT NOT NULL,
    path       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    hash       TEXT NOT NULL,
    PRIMARY KEY (project_id, path)
) WITHOUT ROWID;

-- The last seq of each project's event log that this client has taken in.
CREATE TABLE cursors (
    project_id TEXT PRIMARY KEY,
    last_seq   INTEGER NOT NULL
);
