-- v2: the base each queued change was made from (`base_set` = 0: no check
-- is sent; 1: `base` is sent, NULL meaning "the path must not exist").
ALTER TABLE outbox ADD COLUMN base_set INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN base TEXT;

-- Remote events this client could not apply and set aside, with the reason:
-- shown as badge `error` and by `vidsync status`, retried on a timer and at
-- start. A row leaves when a retry succeeds or a newer event for the path
-- is applied. `event` is the event as JSON (NULL when it was unreadable).
CREATE TABLE set_aside (
    project_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    path       TEXT NOT NULL,
    reason     TEXT NOT NULL,
    event      TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (project_id, seq)
) WITHOUT ROWID;
