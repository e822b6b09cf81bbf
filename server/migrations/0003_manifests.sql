-- Content v2: a file's manifest (its ordered chunks), per project. `chunks`
-- is the entries packed back to back: 32-byte raw BLAKE3 hash then the
-- chunk's size as u32 big-endian (36 bytes an entry). Written only once every
-- chunk is stored and their concatenation hashes to `hash`.
CREATE TABLE manifests (
    project_id TEXT NOT NULL REFERENCES projects(id),
    hash       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    chunks     BLOB NOT NULL,
    PRIMARY KEY (project_id, hash)
) WITHOUT ROWID;
