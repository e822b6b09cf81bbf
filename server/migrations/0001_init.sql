-- Users and their API tokens. Tokens are stored as BLAKE3 hashes only.
CREATE TABLE users (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

CREATE TABLE projects (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    owner_id   INTEGER NOT NULL REFERENCES users(id),
    -- The seq of the newest event; bumped in the same transaction as the insert.
    head_seq   INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

CREATE TABLE members (
    project_id TEXT NOT NULL REFERENCES projects(id),
    user_id    INTEGER NOT NULL REFERENCES users(id),
    role       TEXT NOT NULL CHECK (role IN ('owner', 'member')),
    joined_at  TEXT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX members_by_user ON members(user_id);

CREATE TABLE invites (
    code       TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    created_by INTEGER NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

-- The event log: one row per appended change, seq 1..N per project with no gap.
CREATE TABLE events (
    project_id TEXT NOT NULL REFERENCES projects(id),
    seq        INTEGER NOT NULL,
    path       TEXT NOT NULL,
    op         TEXT NOT NULL CHECK (op IN ('create', 'update', 'delete')),
    hash       TEXT,
    size       INTEGER,
    mtime      TEXT,
    client_id  TEXT NOT NULL,
    change_id  TEXT,
    user_name  TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (project_id, seq)
) WITHOUT ROWID;

-- Idempotency: one event per (client_id, change_id) in a project.
CREATE UNIQUE INDEX events_by_change_id ON events(project_id, client_id, change_id)
    WHERE change_id IS NOT NULL;
