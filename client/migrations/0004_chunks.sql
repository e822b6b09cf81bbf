-- Content v2: where this client has each chunk of its multi-chunk files,
-- so a new version is built from chunks already on disk (the previous
-- version, a renamed or copied file) and only the rest is fetched. A row
-- is a hint: its bytes are re-hashed when read, and a row whose file has
-- changed (`file_hash` no longer the file's hash) is dropped with the
-- file's index entry. One-chunk files need no row: their chunk hash is
-- their file hash, found through `file_index_by_hash`.
CREATE TABLE chunk_index (
    project_id TEXT NOT NULL,
    path       TEXT NOT NULL,
    offset     INTEGER NOT NULL,
    len        INTEGER NOT NULL,
    hash       BLOB NOT NULL,
    file_hash  TEXT NOT NULL,
    PRIMARY KEY (project_id, path, offset)
) WITHOUT ROWID;
CREATE INDEX chunk_index_by_hash ON chunk_index(project_id, hash);
CREATE INDEX file_index_by_hash ON file_index(project_id, hash);
