//! Small chunks (under [`CHUNK_MIN`] bytes: a small file whole, or the
//! tail of a bigger one) are rows of one SQLite table,
//! `<data-dir>/small-chunks.db`, not a file each.
//!
//! Why: a burst of 2,000 small files is 2,000 such chunks. As files, each
//! cost a temp file, a rename and its directory entries, and a batch two
//! `syncfs` of the whole file system (which also write out whatever else
//! is dirty there). The server spent 48–64 ms storing a batch of 500. As
//! rows, a batch is one transaction: one write of the WAL and one `fsync`
//! of it (WAL, `synchronous=FULL`), the same durability as the event log.
//!
//! The rules of the chunk store hold for rows too: a row is written only
//! with bytes that hash to its key (the caller hashed them), a row is whole
//! or absent (a transaction), and a row found damaged when read is moved to
//! `<data-dir>/quarantine/` (its bytes written out as a file, the row
//! deleted) in one transaction that reads it again first.
//!
//! Blocking, like the rest of [`super::store`]: one writer connection, and
//! reader connections kept for reuse (WAL lets them read while it writes).

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use vidsync_protocol::chunking::CHUNK_MIN;
use vidsync_protocol::ContentHash;

/// The table's file, in the data directory.
pub const FILE: &str = "small-chunks.db";

/// The `store_layout` row (in `vidsync.db`) the server writes once it has
/// made [`FILE`]: from then on a start without the file is refused (a
/// restore that left it out would serve every small file as missing).
pub const MADE: &str = "small-chunks.db made";

/// Whether a chunk of `len` bytes is kept as a row. Every chunk cut from
/// the inside of a file is at least [`CHUNK_MIN`]; only whole small files
/// and tails are smaller.
pub fn is_small(len: usize) -> bool {
    len < CHUNK_MIN as usize
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS small_chunks (
    project_id TEXT NOT NULL,
    hash BLOB NOT NULL,
    bytes BLOB NOT NULL,
    -- Unix seconds: retention keeps a young chunk no manifest or event
    -- names yet (an upload in flight), as it keeps a young chunk file.
    stored_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, hash)
)";

/// At most this many reader connections are open (each holds file
/// descriptors and its own page cache); a read waits for a free one.
const READERS: usize = 8;

/// A stored row, as the start-up check and retention see it.
pub struct Row {
    pub hash: ContentHash,
    pub size: u64,
    pub stored_at: i64,
}

pub struct SmallChunks {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Readers>,
    /// Signalled when a reader connection is handed back.
    freed: Condvar,
}

#[derive(Default)]
struct Readers {
    idle: Vec<Connection>,
    open: usize,
}

/// SQLite's "database or disk is full" becomes the I/O error a full disk
/// gives, so the routes answer it as they answer a full disk (507).
fn io_error(e: rusqlite::Error) -> std::io::Error {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => {
            std::io::Error::new(std::io::ErrorKind::StorageFull, e)
        }
        _ => std::io::Error::other(e),
    }
}

fn poisoned() -> std::io::Error {
    std::io::Error::other("the small-chunk store's lock was poisoned by a panic")
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

fn hash_of(blob: Vec<u8>) -> rusqlite::Result<ContentHash> {
    let bytes: [u8; 32] = blob.try_into().map_err(|b: Vec<u8>| {
        rusqlite::Error::FromSqlConversionFailure(
            b.len(),
            rusqlite::types::Type::Blob,
            "a chunk key is 32 bytes".into(),
        )
    })?;
    Ok(ContentHash::from(blake3::Hash::from_bytes(bytes)))
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl SmallChunks {
    pub fn open(path: &Path) -> std::io::Result<SmallChunks> {
        let conn = connect(path).map_err(io_error)?;
        conn.execute(SCHEMA, []).map_err(io_error)?;
        Ok(SmallChunks {
            path: path.to_path_buf(),
            writer: Mutex::new(conn),
            readers: Mutex::default(),
            freed: Condvar::new(),
        })
    }

    /// Runs `f` on a reader connection: an idle one, a new one while
    /// fewer than [`READERS`] are open, else the next one handed back.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> std::io::Result<T> {
        let conn = {
            let mut r = self.readers.lock().map_err(|_| poisoned())?;
            loop {
                if let Some(c) = r.idle.pop() {
                    break Some(c);
                }
                if r.open < READERS {
                    r.open += 1;
                    break None;
                }
                r = self.freed.wait(r).map_err(|_| poisoned())?;
            }
        };
        let conn = match conn {
            Some(c) => c,
            None => match connect(&self.path) {
                Ok(c) => c,
                Err(e) => {
                    if let Ok(mut r) = self.readers.lock() {
                        r.open -= 1;
                    }
                    self.freed.notify_one();
                    return Err(io_error(e));
                }
            },
        };
        let out = f(&conn).map_err(io_error);
        if let Ok(mut r) = self.readers.lock() {
            r.idle.push(conn);
        }
        self.freed.notify_one();
        out
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> std::io::Result<T> {
        let mut conn = self.writer.lock().map_err(|_| poisoned())?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(io_error)?;
        let out = f(&tx).map_err(io_error)?;
        tx.commit().map_err(io_error)?;
        Ok(out)
    }

    /// Stores chunks the caller has hashed, in one transaction: all are
    /// durable when this returns, or none was stored. A row that holds
    /// other bytes (damaged) is replaced; one that holds these is kept and
    /// its time refreshed (an upload in flight claims it again). Returns
    /// how many were written now and how many were there already (a chunk
    /// twice in one call counts once as written, then as there).
    pub fn insert_many(
        &self,
        project_id: &str,
        chunks: &[(&ContentHash, &[u8])],
    ) -> std::io::Result<(u64, u64)> {
        if chunks.is_empty() {
            return Ok((0, 0));
        }
        let at = now_secs();
        self.write(|tx| {
            let mut stored_bytes = tx.prepare_cached(
                "SELECT bytes FROM small_chunks WHERE project_id = ?1 AND hash = ?2",
            )?;
            let mut touch = tx.prepare_cached(
                "UPDATE small_chunks SET stored_at = ?3 WHERE project_id = ?1 AND hash = ?2",
            )?;
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO small_chunks (project_id, hash, bytes, stored_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            let (mut stored, mut present) = (0, 0);
            for (hash, bytes) in chunks {
                let key = &hash.as_bytes()[..];
                let held: Option<Vec<u8>> = stored_bytes
                    .query_row(params![project_id, key], |r| r.get(0))
                    .optional()?;
                match held {
                    Some(b) if b == *bytes => {
                        touch.execute(params![project_id, key, at])?;
                        present += 1;
                    }
                    held => {
                        if held.is_some() {
                            tracing::warn!(chunk = %hash, "replacing a damaged stored small chunk");
                        }
                        put.execute(params![project_id, key, bytes, at])?;
                        stored += 1;
                    }
                }
            }
            Ok((stored, present))
        })
    }

    /// The size of a stored row.
    pub fn size(&self, project_id: &str, hash: &ContentHash) -> std::io::Result<Option<u64>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT length(bytes) FROM small_chunks WHERE project_id = ?1 AND hash = ?2",
            )?
            .query_row(params![project_id, &hash.as_bytes()[..]], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map(|n| n.map(|n| n.max(0) as u64))
        })
    }

    /// The bytes of a stored row, unchecked.
    pub fn get(&self, project_id: &str, hash: &ContentHash) -> std::io::Result<Option<Vec<u8>>> {
        self.read(|c| {
            c.prepare_cached("SELECT bytes FROM small_chunks WHERE project_id = ?1 AND hash = ?2")?
                .query_row(params![project_id, &hash.as_bytes()[..]], |r| r.get(0))
                .optional()
        })
    }

    /// Every row of a project: hash, size and when it was stored.
    pub fn list(&self, project_id: &str) -> std::io::Result<Vec<Row>> {
        self.read(|c| {
            let mut q = c.prepare_cached(
                "SELECT hash, length(bytes), stored_at FROM small_chunks WHERE project_id = ?1",
            )?;
            let rows = q.query_map(params![project_id], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?, r.get(2)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (hash, size, stored_at) = row?;
                out.push(Row {
                    hash: hash_of(hash)?,
                    size: size.max(0) as u64,
                    stored_at,
                });
            }
            Ok(out)
        })
    }

    /// The projects that have rows.
    pub fn projects(&self) -> std::io::Result<Vec<String>> {
        self.read(|c| {
            let mut q = c.prepare("SELECT DISTINCT project_id FROM small_chunks")?;
            let rows = q.query_map([], |r| r.get(0))?;
            rows.collect()
        })
    }

    /// Deletes the row of `hash` if `damaged` says so of the bytes it holds
    /// now (read again in the deleting transaction, so an upload that just
    /// made it whole is never lost); returns the deleted bytes.
    pub fn remove_if_damaged(
        &self,
        project_id: &str,
        hash: &ContentHash,
        damaged: impl FnOnce(&[u8]) -> bool,
    ) -> std::io::Result<Option<Vec<u8>>> {
        self.write(|tx| {
            let key = &hash.as_bytes()[..];
            let bytes: Option<Vec<u8>> = tx
                .prepare_cached(
                    "SELECT bytes FROM small_chunks WHERE project_id = ?1 AND hash = ?2",
                )?
                .query_row(params![project_id, key], |r| r.get(0))
                .optional()?;
            match bytes {
                Some(b) if damaged(&b) => {
                    tx.prepare_cached(
                        "DELETE FROM small_chunks WHERE project_id = ?1 AND hash = ?2",
                    )?
                    .execute(params![project_id, key])?;
                    Ok(Some(b))
                }
                _ => Ok(None),
            }
        })
    }

    /// Deletes these rows (in one transaction); returns how many rows
    /// it deleted and their bytes.
    pub fn delete(&self, project_id: &str, hashes: &[ContentHash]) -> std::io::Result<(u64, u64)> {
        if hashes.is_empty() {
            return Ok((0, 0));
        }
        self.write(|tx| {
            let mut delete = tx.prepare_cached(
                "DELETE FROM small_chunks WHERE project_id = ?1 AND hash = ?2
                 RETURNING length(bytes)",
            )?;
            let (mut rows, mut bytes) = (0u64, 0u64);
            for h in hashes {
                let n: Option<i64> = delete
                    .query_row(params![project_id, &h.as_bytes()[..]], |r| r.get(0))
                    .optional()?;
                if let Some(n) = n {
                    rows += 1;
                    bytes += n.max(0) as u64;
                }
            }
            Ok((rows, bytes))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(s: &str) -> (ContentHash, Vec<u8>) {
        (ContentHash::of(s.as_bytes()), s.as_bytes().to_vec())
    }

    #[test]
    fn rows_are_stored_once_read_back_listed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let db = SmallChunks::open(&dir.path().join("small.db")).unwrap();
        let (a, b) = (chunk("alpha"), chunk("beta"));
        let batch = [(&a.0, &a.1[..]), (&b.0, &b.1[..]), (&a.0, &a.1[..])];
        assert_eq!(db.insert_many("p", &batch).unwrap(), (2, 1));
        assert_eq!(db.insert_many("p", &batch[..1]).unwrap(), (0, 1));
        assert_eq!(db.get("p", &a.0).unwrap(), Some(a.1.clone()));
        assert_eq!(db.size("p", &b.0).unwrap(), Some(4));
        // Per project: another project has none of them.
        assert_eq!(db.get("q", &a.0).unwrap(), None);
        assert_eq!(db.list("p").unwrap().len(), 2);
        assert_eq!(db.projects().unwrap(), vec!["p".to_string()]);
        // Not damaged: kept.
        assert_eq!(db.remove_if_damaged("p", &a.0, |_| false).unwrap(), None);
        assert_eq!(
            db.remove_if_damaged("p", &a.0, |_| true).unwrap(),
            Some(a.1.clone())
        );
        assert_eq!(db.get("p", &a.0).unwrap(), None);
        // a is gone already: one row deleted, b's 4 bytes.
        assert_eq!(db.delete("p", &[a.0, b.0]).unwrap(), (1, 4));
        assert!(db.list("p").unwrap().is_empty());

        // A row damaged in place (same key, other bytes) is replaced by
        // the next upload of its chunk, which counts as written.
        assert_eq!(db.insert_many("p", &batch[..1]).unwrap(), (1, 0));
        let conn = connect(&dir.path().join("small.db")).unwrap();
        conn.execute("UPDATE small_chunks SET bytes = x'00'", [])
            .unwrap();
        assert_eq!(db.insert_many("p", &batch[..1]).unwrap(), (1, 0));
        assert_eq!(db.get("p", &a.0).unwrap(), Some(a.1.clone()));
        assert_eq!(db.delete("p", &[a.0]).unwrap(), (1, 5));
        assert!(db.list("p").unwrap().is_empty());
    }
}
