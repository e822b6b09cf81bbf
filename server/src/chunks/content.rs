//! Where a file's content is: a manifest (chunks), a legacy whole blob of
//! an old data dir, or a single chunk with the file's hash. Manifests live
//! in the `manifests` table (migration 0003).

use std::collections::HashMap;
use std::path::PathBuf;

use futures_util::TryStreamExt;
use sqlx::Row;
use vidsync_protocol::chunking::{
    pack_entries, unpack_entries, Manifest, ManifestEntry, PACKED_ENTRY_BYTES,
};
use vidsync_protocol::ContentHash;

use crate::db::{Db, DbError, DbResult};
use crate::AppState;

/// How the content of one hash is stored.
pub enum Content {
    Chunks(Manifest),
    /// A legacy whole blob, or a whole `PUT` not cut into chunks yet.
    Whole {
        path: PathBuf,
        size: u64,
    },
    /// A one-chunk file: the chunk named by the file's hash.
    OneChunk {
        size: u64,
    },
}

/// A stored row's entries (whole entries only: a row is written by
/// [`pack_entries`] and never partly).
fn stored_entries(bytes: &[u8]) -> Vec<ManifestEntry> {
    let whole = bytes.len() - bytes.len() % PACKED_ENTRY_BYTES;
    unpack_entries(&bytes[..whole]).unwrap_or_default()
}

pub async fn manifest_row(
    state: &AppState,
    project_id: &str,
    hash: &ContentHash,
) -> DbResult<Option<Manifest>> {
    let row = sqlx::query("SELECT size, chunks FROM manifests WHERE project_id = ? AND hash = ?")
        .bind(project_id)
        .bind(hash.to_hex())
        .fetch_optional(&state.db.pool)
        .await?;
    Ok(row.map(|r| Manifest {
        hash: *hash,
        size: r.get::<i64, _>(0) as u64,
        chunks: stored_entries(&r.get::<Vec<u8>, _>(1)),
    }))
}

/// The size of every chunk the manifests of a project list (the start-up
/// check's reference: a manifest is stored only once its chunks are).
pub async fn manifest_chunk_sizes(
    db: &Db,
    project_id: &str,
) -> DbResult<HashMap<ContentHash, u32>> {
    let mut sizes = HashMap::new();
    let mut rows = sqlx::query("SELECT chunks FROM manifests WHERE project_id = ?")
        .bind(project_id)
        .fetch(&db.pool);
    while let Some(r) = rows.try_next().await? {
        for e in stored_entries(&r.get::<Vec<u8>, _>(0)) {
            sizes.insert(e.hash, e.size);
        }
    }
    Ok(sizes)
}

/// Stores checked manifests in one transaction (an existing one is kept).
pub async fn insert_manifests(
    state: &AppState,
    project_id: &str,
    manifests: &[Manifest],
) -> DbResult<()> {
    let now = crate::clock::now_rfc3339();
    let mut tx = state.db.pool.begin().await?;
    for m in manifests {
        sqlx::query(
            "INSERT OR IGNORE INTO manifests (project_id, hash, size, chunks, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(project_id)
        .bind(m.hash.to_hex())
        .bind(m.size as i64)
        .bind(pack_entries(&m.chunks))
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Which of `hashes` have a manifest in the project (one query per 500).
pub async fn manifests_present(
    state: &AppState,
    project_id: &str,
    hashes: &[ContentHash],
) -> DbResult<std::collections::HashSet<ContentHash>> {
    let mut out = std::collections::HashSet::new();
    for part in hashes.chunks(500) {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT hash FROM manifests WHERE project_id = ",
        );
        q.push_bind(project_id).push(" AND hash IN (");
        let mut list = q.separated(", ");
        for h in part {
            list.push_bind(h.to_hex());
        }
        list.push_unseparated(")");
        for row in q.build().fetch_all(&state.db.pool).await? {
            let hex: String = row.get(0);
            if let Ok(h) = hex.parse() {
                out.insert(h);
            }
        }
    }
    Ok(out)
}

/// Finds the content of `hash`: whole blob, else manifest, else a
/// single chunk with that hash.
pub async fn locate(
    state: &AppState,
    project_id: &str,
    hash: &ContentHash,
) -> DbResult<Option<Content>> {
    // The whole copy is looked for first: a whole upload is cut into chunks
    // (chunks, then manifest, then the whole copy removed), so when the
    // whole copy is found gone, its manifest or chunk is already there.
    // The other order answered 404 for a GET that fell between the two.
    let legacy = state.blobs.path_of(project_id, hash);
    if let Ok(meta) = tokio::fs::metadata(&legacy).await {
        return Ok(Some(Content::Whole {
            path: legacy,
            size: meta.len(),
        }));
    }
    if let Some(m) = manifest_row(state, project_id, hash).await? {
        return Ok(Some(Content::Chunks(m)));
    }
    let (store, pid, h) = (state.chunks.clone(), project_id.to_string(), *hash);
    let one = tokio::task::spawn_blocking(move || store.size_of(&pid, &h))
        .await
        .map_err(|e| DbError::Corrupt(format!("looking for a chunk: {e}")))?;
    Ok(one.map(|size| Content::OneChunk { size }))
}
