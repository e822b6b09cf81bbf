-- Chunks under 16 KiB now live as rows of `small-chunks.db` beside this
-- database, not as files under `chunks/`. An older server would not look
-- there and would answer 404 for every small file. This migration exists
-- so that an older binary refuses this data directory (it does not know
-- migration 5) instead of serving it with content missing.
CREATE TABLE store_layout (
    name TEXT PRIMARY KEY,
    since TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO store_layout (name, since) VALUES ('small-chunks.db', datetime('now'));
