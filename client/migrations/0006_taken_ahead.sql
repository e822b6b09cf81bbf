-- Versions taken ahead of the feed: after a 409 the client takes the
-- path's current version (event `seq`) before its cursor reaches it. Until
-- the cursor passes `seq`, the feed's events for that path up to `seq` are
-- already reflected (or superseded by what the user did since) and must
-- not be applied again. Rows at or below the saved cursor are dropped.
CREATE TABLE taken_ahead (
    project_id TEXT NOT NULL,
    path       TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (project_id, path)
) WITHOUT ROWID;
