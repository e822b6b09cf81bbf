//! Several state changes in one transaction: a look that found many
//! differences plans and records them all, then commits once (one WAL
//! commit instead of one per file). The same statements back the
//! one-at-a-time methods of [`LocalState`].

use std::collections::HashMap;

use sqlx::{Row, Sqlite, SqliteConnection, Transaction};
use vidsync_protocol::{Change, ContentHash, ProjectPath};

use super::{set_index, IndexEntry, LocalState};
use crate::Result;

/// An open transaction on the local state; dropped without
/// [`Batch::commit`], nothing of it is kept.
pub struct Batch {
    tx: Transaction<'static, Sqlite>,
}

impl LocalState {
    pub async fn batch(&self) -> Result<Batch> {
        Ok(Batch {
            tx: self.pool.begin().await?,
        })
    }
}

impl LocalState {
    /// Writes what applying events did (see [`crate::apply::StateWrite`]),
    /// in order, in one transaction.
    pub async fn write_applied(
        &self,
        project_id: &str,
        writes: &[crate::apply::StateWrite],
    ) -> Result<()> {
        use crate::apply::StateWrite;
        let started = std::time::Instant::now();
        let mut tx = self.pool.begin().await?;
        for w in writes {
            match w {
                StateWrite::Applied {
                    path,
                    entry,
                    base,
                    seq,
                    chunks,
                } => {
                    applied_in(&mut tx, project_id, path, entry.as_ref(), base.as_ref()).await?;
                    sqlx::query(
                        "DELETE FROM set_aside WHERE project_id = ? AND path = ? AND seq <= ?",
                    )
                    .bind(project_id)
                    .bind(path.as_str())
                    .bind(*seq as i64)
                    .execute(&mut *tx)
                    .await?;
                    if let (Some(e), true) = (entry, chunks.len() > 1) {
                        super::set_chunks_in(&mut tx, project_id, path.as_str(), &e.hash, chunks)
                            .await?;
                    }
                }
                StateWrite::Base { path, hash } => {
                    set_base_in(&mut tx, project_id, path.as_str(), hash.as_ref()).await?;
                }
            }
        }
        tx.commit().await?;
        tracing::debug!(n = writes.len(), took = ?started.elapsed(), "applied events written");
        Ok(())
    }
}

/// What planning a local change needs, for many paths at once: the agreed
/// version of each path that has one, and the last change queued for each
/// path that has one (`None`: a delete).
#[derive(Debug, Default)]
pub struct Known {
    pub bases: HashMap<String, ContentHash>,
    pub queued: HashMap<String, Option<ContentHash>>,
}

impl Batch {
    /// [`Batch::base`] and [`Batch::last_queued`] of many paths in two
    /// queries instead of two per path.
    pub async fn known(&mut self, project_id: &str, paths: &[&str]) -> Result<Known> {
        let mut known = Known::default();
        if paths.is_empty() {
            return Ok(known);
        }
        let list = serde_json::to_string(paths).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let rows = sqlx::query(
            "SELECT path, hash FROM synced
             WHERE project_id = ? AND path IN (SELECT value FROM json_each(?))",
        )
        .bind(project_id)
        .bind(&list)
        .fetch_all(&mut *self.tx)
        .await?;
        for r in rows {
            if let Ok(h) = r.get::<String, _>(1).parse() {
                known.bases.insert(r.get(0), h);
            }
        }
        // Oldest first, so each path ends with its last queued change.
        let rows = sqlx::query(
            "SELECT path, hash FROM outbox
             WHERE project_id = ? AND failed IS NULL
               AND path IN (SELECT value FROM json_each(?))
             ORDER BY id",
        )
        .bind(project_id)
        .bind(&list)
        .fetch_all(&mut *self.tx)
        .await?;
        for r in rows {
            let hash = r
                .get::<Option<String>, _>(1)
                .and_then(|h| h.parse::<ContentHash>().ok());
            known.queued.insert(r.get(0), hash);
        }
        Ok(known)
    }

    pub async fn base(&mut self, project_id: &str, path: &str) -> Result<Option<ContentHash>> {
        base_in(&mut self.tx, project_id, path).await
    }

    pub async fn last_queued(
        &mut self,
        project_id: &str,
        path: &str,
    ) -> Result<Option<Option<ContentHash>>> {
        last_queued_in(&mut self.tx, project_id, path).await
    }

    pub async fn record(
        &mut self,
        project_id: &str,
        path: &ProjectPath,
        change: Option<&Change>,
        entry: Option<&IndexEntry>,
    ) -> Result<()> {
        record_in(&mut self.tx, project_id, path, change, entry).await
    }

    pub async fn applied(
        &mut self,
        project_id: &str,
        path: &ProjectPath,
        entry: Option<&IndexEntry>,
        base: Option<&ContentHash>,
    ) -> Result<()> {
        applied_in(&mut self.tx, project_id, path, entry, base).await
    }

    pub async fn set_chunks(
        &mut self,
        project_id: &str,
        path: &ProjectPath,
        file_hash: &ContentHash,
        chunks: &[vidsync_protocol::chunking::ChunkRef],
    ) -> Result<()> {
        super::set_chunks_in(&mut self.tx, project_id, path.as_str(), file_hash, chunks).await
    }

    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

pub(crate) async fn base_in(
    c: &mut SqliteConnection,
    project_id: &str,
    path: &str,
) -> Result<Option<ContentHash>> {
    let r = sqlx::query("SELECT hash FROM synced WHERE project_id = ? AND path = ?")
        .bind(project_id)
        .bind(path)
        .fetch_optional(&mut *c)
        .await?;
    Ok(r.and_then(|r| r.get::<String, _>(0).parse().ok()))
}

pub(crate) async fn last_queued_in(
    c: &mut SqliteConnection,
    project_id: &str,
    path: &str,
) -> Result<Option<Option<ContentHash>>> {
    let r = sqlx::query(
        "SELECT hash FROM outbox WHERE project_id = ? AND path = ? AND failed IS NULL
         ORDER BY id DESC LIMIT 1",
    )
    .bind(project_id)
    .bind(path)
    .fetch_optional(&mut *c)
    .await?;
    Ok(r.map(|r| {
        r.get::<Option<String>, _>(0)
            .and_then(|h| h.parse::<ContentHash>().ok())
    }))
}

/// Queues `change` (if any) and sets the index entry of `path`.
pub(crate) async fn record_in(
    tx: &mut Transaction<'static, Sqlite>,
    project_id: &str,
    path: &ProjectPath,
    change: Option<&Change>,
    entry: Option<&IndexEntry>,
) -> Result<()> {
    if let Some(c) = change {
        let (base_set, base) = match &c.base_hash {
            None => (0, None),
            Some(b) => (1, b.map(|h| h.to_hex())),
        };
        sqlx::query(
            "INSERT INTO outbox (project_id, change_id, path, op, hash, size, mtime, created_at, base_set, base)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(project_id)
        .bind(c.change_id.as_deref().unwrap_or_default())
        .bind(c.path.as_str())
        .bind(c.op.as_str())
        .bind(c.hash.map(|h| h.to_hex()))
        .bind(c.size.map(|s| s as i64))
        .bind(c.mtime.as_deref())
        .bind(crate::now_rfc3339())
        .bind(base_set)
        .bind(base)
        .execute(&mut **tx)
        .await?;
    }
    set_index(tx, project_id, path, entry).await
}

/// After a remote event was applied to `path`: its index entry (None:
/// gone), the agreed hash, and no queued change left for it.
pub(crate) async fn applied_in(
    tx: &mut Transaction<'static, Sqlite>,
    project_id: &str,
    path: &ProjectPath,
    entry: Option<&IndexEntry>,
    base: Option<&ContentHash>,
) -> Result<()> {
    set_index(tx, project_id, path, entry).await?;
    set_base_in(tx, project_id, path.as_str(), base).await?;
    sqlx::query("DELETE FROM outbox WHERE project_id = ? AND path = ? AND failed IS NULL")
        .bind(project_id)
        .bind(path.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Sets (or, with `None`, forgets) the hash both sides agreed on for a path.
pub(crate) async fn set_base_in(
    c: &mut SqliteConnection,
    project_id: &str,
    path: &str,
    hash: Option<&ContentHash>,
) -> Result<()> {
    match hash {
        Some(h) => {
            sqlx::query(
                "INSERT INTO synced (project_id, path, hash) VALUES (?, ?, ?)
                 ON CONFLICT(project_id, path) DO UPDATE SET hash = excluded.hash",
            )
            .bind(project_id)
            .bind(path)
            .bind(h.to_hex())
            .execute(&mut *c)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM synced WHERE project_id = ? AND path = ?")
                .bind(project_id)
                .bind(path)
                .execute(&mut *c)
                .await?;
        }
    }
    Ok(())
}
