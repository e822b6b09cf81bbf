//! The local chunk index: where on disk this client has each chunk of its
//! files, so a new version is built from what is already here (the
//! previous version of the path, a renamed or copied file) and only the
//! rest is fetched. Rows are hints, never trusted: a reader re-hashes the
//! bytes it takes. A multi-chunk file's rows are written with its index
//! entry and dropped when that entry goes or changes hash; a one-chunk
//! file needs none, its chunk being the whole file (found by file hash).

use sqlx::{QueryBuilder, Row, Sqlite, Transaction};
use vidsync_protocol::chunking::{ChunkRef, CHUNK_MAX};
use vidsync_protocol::{ContentHash, ProjectPath};

use super::LocalState;
use crate::Result;

/// Where a chunk (or a whole file) may be read: `len` bytes of the file
/// at `path` from `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkSource {
    pub path: String,
    pub offset: u64,
    pub len: u64,
}

/// Rows per INSERT statement.
const ROWS_PER_INSERT: usize = 200;

/// The rows of multi-chunk files holding any of `n` chunks. `INDEXED BY`:
/// without statistics SQLite chose to scan the project's part of the
/// primary key instead (building a 256 MiB file of 4,096 chunks from its
/// previous version took 1.5 CPU-s in these lookups, and a project of many
/// files made it worse for every chunk). Only placeholders are formatted in.
pub(super) fn chunk_sources_sql(n: usize) -> String {
    format!(
        "SELECT hash, path, offset, len FROM chunk_index INDEXED BY chunk_index_by_hash
         WHERE project_id = ? AND hash IN ({})",
        vec!["?"; n].join(",")
    )
}

/// One-chunk files that are any of `n` chunks (by file hash), up to a
/// size; `INDEXED BY` for the same reason (the size bound made SQLite scan
/// the project's files even with statistics).
pub(super) fn whole_sources_sql(n: usize) -> String {
    format!(
        "SELECT hash, path, size FROM file_index INDEXED BY file_index_by_hash
         WHERE project_id = ? AND hash IN ({}) AND size <= ?",
        vec!["?"; n].join(",")
    )
}

/// Sources tried for one chunk before it is fetched instead.
const MAX_SOURCES: i64 = 4;

/// Replaces the chunk rows of `path` with `chunks` of the file `file_hash`.
/// A one-chunk file keeps no rows.
pub(crate) async fn set_chunks_in(
    tx: &mut Transaction<'_, Sqlite>,
    project_id: &str,
    path: &str,
    file_hash: &ContentHash,
    chunks: &[ChunkRef],
) -> Result<()> {
    sqlx::query("DELETE FROM chunk_index WHERE project_id = ? AND path = ?")
        .bind(project_id)
        .bind(path)
        .execute(&mut **tx)
        .await?;
    if chunks.len() < 2 {
        return Ok(());
    }
    let file_hash = file_hash.to_hex();
    for rows in chunks.chunks(ROWS_PER_INSERT) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT OR REPLACE INTO chunk_index (project_id, path, offset, len, hash, file_hash) ",
        );
        q.push_values(rows, |mut b, c| {
            b.push_bind(project_id)
                .push_bind(path)
                .push_bind(c.offset as i64)
                .push_bind(c.len as i64)
                .push_bind(c.hash.as_bytes().to_vec())
                .push_bind(&file_hash);
        });
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// With a path's index entry set to `hash` (or removed, `None`): its chunk
/// rows of any other version go.
pub(crate) async fn drop_stale_chunks_in(
    tx: &mut Transaction<'_, Sqlite>,
    project_id: &str,
    path: &ProjectPath,
    hash: Option<&ContentHash>,
) -> Result<()> {
    sqlx::query(
        "DELETE FROM chunk_index WHERE project_id = ? AND path = ? AND (? IS NULL OR file_hash != ?)",
    )
    .bind(project_id)
    .bind(path.as_str())
    .bind(hash.map(|h| h.to_hex()))
    .bind(hash.map(|h| h.to_hex()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl LocalState {
    /// Where each of the chunks `hashes` may be on disk (up to
    /// [`MAX_SOURCES`] places each): inside multi-chunk files, or as a whole
    /// one-chunk file. Hints only; re-hash what is read. One query of each
    /// kind per 500 hashes, not two per chunk (a 4,096-chunk file was 8,192
    /// round trips to the database thread).
    pub async fn chunk_sources(
        &self,
        project_id: &str,
        hashes: &[ContentHash],
    ) -> Result<std::collections::HashMap<ContentHash, Vec<ChunkSource>>> {
        let mut out: std::collections::HashMap<ContentHash, Vec<ChunkSource>> =
            std::collections::HashMap::new();
        let mut add = |hash: ContentHash, src: ChunkSource| {
            let srcs = out.entry(hash).or_default();
            if srcs.len() < MAX_SOURCES as usize {
                srcs.push(src);
            }
        };
        for part in hashes.chunks(500) {
            let sql = chunk_sources_sql(part.len());
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(project_id);
            for h in part {
                q = q.bind(h.as_bytes().to_vec());
            }
            for r in q.fetch_all(&self.pool).await? {
                let raw: Vec<u8> = r.get(0);
                let Ok(raw) = <[u8; 32]>::try_from(raw.as_slice()) else {
                    continue;
                };
                let src = ChunkSource {
                    path: r.get(1),
                    offset: r.get::<i64, _>(2) as u64,
                    len: r.get::<i64, _>(3) as u64,
                };
                add(ContentHash::from(blake3::Hash::from_bytes(raw)), src);
            }
            let sql = whole_sources_sql(part.len());
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(project_id);
            for h in part {
                q = q.bind(h.to_hex());
            }
            for r in q.bind(CHUNK_MAX as i64).fetch_all(&self.pool).await? {
                let Ok(hash) = r.get::<String, _>(0).parse::<ContentHash>() else {
                    continue;
                };
                let src = ChunkSource {
                    path: r.get(1),
                    offset: 0,
                    len: r.get::<i64, _>(2) as u64,
                };
                add(hash, src);
            }
        }
        Ok(out)
    }

    /// The chunks recorded for the file at `path` as version `file_hash`,
    /// in order (empty when none are).
    pub async fn chunks_of(
        &self,
        project_id: &str,
        path: &str,
        file_hash: &ContentHash,
    ) -> Result<Vec<ChunkRef>> {
        let rows = sqlx::query(
            "SELECT offset, len, hash FROM chunk_index
             WHERE project_id = ? AND path = ? AND file_hash = ? ORDER BY offset",
        )
        .bind(project_id)
        .bind(path)
        .bind(file_hash.to_hex())
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let raw: Vec<u8> = r.get(2);
            let Ok(raw) = <[u8; 32]>::try_from(raw.as_slice()) else {
                return Ok(Vec::new());
            };
            out.push(ChunkRef {
                offset: r.get::<i64, _>(0) as u64,
                len: r.get::<i64, _>(1) as u32,
                hash: ContentHash::from(blake3::Hash::from_bytes(raw)),
            });
        }
        Ok(out)
    }

    /// Which of `hashes` some local file was last seen with (one query per
    /// 500 hashes).
    pub async fn hashes_on_disk(
        &self,
        project_id: &str,
        hashes: &[ContentHash],
    ) -> Result<std::collections::HashSet<ContentHash>> {
        let mut out = std::collections::HashSet::new();
        for part in hashes.chunks(500) {
            let marks = vec!["?"; part.len()].join(",");
            let sql = format!(
                "SELECT DISTINCT hash FROM file_index WHERE project_id = ? AND hash IN ({marks})"
            );
            // Only placeholders are formatted in; the hashes are bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(project_id);
            for h in part {
                q = q.bind(h.to_hex());
            }
            for r in q.fetch_all(&self.pool).await? {
                let hex: String = r.get(0);
                if let Ok(h) = hex.parse() {
                    out.insert(h);
                }
            }
        }
        Ok(out)
    }

    /// Paths of local files last seen with the whole-file hash `hash`.
    pub async fn files_with_hash(
        &self,
        project_id: &str,
        hash: &ContentHash,
    ) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT path FROM file_index WHERE project_id = ? AND hash = ? LIMIT ?")
                .bind(project_id)
                .bind(hash.to_hex())
                .bind(MAX_SOURCES)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
