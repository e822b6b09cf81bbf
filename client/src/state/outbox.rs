//! The outbox: changes not yet answered by the server, oldest first, each
//! with the base it was made from. A change and the index update that goes
//! with it are written in one transaction. A row that cannot be read back
//! is marked failed (visible as badge `error`), never silently skipped.

use sqlx::Row;
use vidsync_protocol::{Change, ContentHash, Op, ProjectPath};

use super::{LocalState, Queued};
use crate::Result;

impl LocalState {
    /// The oldest queued changes of a project that were not refused. A row
    /// that cannot be read is marked failed with the reason, so it shows.
    pub async fn outbox_batch(&self, project_id: &str, limit: u32) -> Result<Vec<Queued>> {
        self.outbox_batch_after(project_id, 0, limit).await
    }

    /// [`LocalState::outbox_batch`] of the rows after `after` (an id): the
    /// batch after one still in flight.
    pub async fn outbox_batch_after(
        &self,
        project_id: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Queued>> {
        let rows = sqlx::query(
            "SELECT id, change_id, path, op, hash, size, mtime, base_set, base FROM outbox
             WHERE project_id = ? AND failed IS NULL AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(project_id)
        .bind(after)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.get(0);
            match parse_row(&r) {
                Ok(change) => out.push(Queued { id, change }),
                Err(why) => {
                    tracing::error!(id, %why, "unreadable outbox row");
                    self.outbox_fail(&[id], &format!("an outbox row is unreadable: {why}"))
                        .await?;
                }
            }
        }
        Ok(out)
    }

    /// Drops a change whose content is gone (the file changed since): the
    /// next queued change of the same path, if any, takes over its base, so
    /// the chain of bases stays unbroken.
    pub async fn outbox_supersede(&self, id: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT project_id, path, base_set, base FROM outbox WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(r) = row {
            sqlx::query(
                "UPDATE outbox SET base_set = ?, base = ? WHERE id = (
                   SELECT MIN(id) FROM outbox WHERE project_id = ? AND path = ? AND id > ? AND failed IS NULL)",
            )
            .bind(r.get::<i64, _>(2))
            .bind(r.get::<Option<String>, _>(3))
            .bind(r.get::<String, _>(0))
            .bind(r.get::<String, _>(1))
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM outbox WHERE id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Drops what is still queued (not refused) for one path.
    pub async fn outbox_drop_path(&self, project_id: &str, path: &str) -> Result<()> {
        sqlx::query("DELETE FROM outbox WHERE project_id = ? AND path = ? AND failed IS NULL")
            .bind(project_id)
            .bind(path)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks changes as refused by the server (kept, not retried).
    pub async fn outbox_fail(&self, ids: &[i64], message: &str) -> Result<()> {
        sqlx::query("UPDATE outbox SET failed = ? WHERE id IN (SELECT value FROM json_each(?))")
            .bind(message)
            .bind(id_list(ids))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// (queued and not refused, the newest refusal message).
    /// The bytes of the versions waiting in a project's outbox.
    pub async fn outbox_bytes(&self, project_id: &str) -> Result<u64> {
        let r = sqlx::query(
            "SELECT COALESCE(SUM(size), 0) FROM outbox WHERE project_id = ?1 AND failed IS NULL",
        )
        .bind(project_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(r.get::<i64, _>(0).max(0) as u64)
    }

    pub async fn outbox_summary(&self, project_id: &str) -> Result<(u64, Option<String>)> {
        let r = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM outbox WHERE project_id = ?1 AND failed IS NULL),
                    (SELECT failed FROM outbox WHERE project_id = ?1 AND failed IS NOT NULL ORDER BY id DESC LIMIT 1)",
        )
        .bind(project_id)
        .fetch_one(&self.pool)
        .await?;
        Ok((r.get::<i64, _>(0) as u64, r.get(1)))
    }
}

/// One outbox row back into a `Change`, or why it cannot be.
fn parse_row(r: &sqlx::sqlite::SqliteRow) -> std::result::Result<Change, String> {
    let path = ProjectPath::new(r.get::<String, _>(2)).map_err(|e| format!("path: {e}"))?;
    let op_s: String = r.get(3);
    let op = Op::parse(op_s.as_str()).ok_or_else(|| format!("op {op_s:?}"))?;
    let hash_of = |s: Option<String>| {
        s.map(|h| h.parse::<ContentHash>())
            .transpose()
            .map_err(|e| format!("hash: {e}"))
    };
    let hash = hash_of(r.get(4))?;
    if op != Op::Delete && hash.is_none() {
        return Err(format!("{op_s} without a hash"));
    }
    let base_hash = match r.get::<i64, _>(7) {
        0 => None,
        _ => Some(hash_of(r.get(8))?),
    };
    Ok(Change {
        path,
        op,
        hash,
        size: r.get::<Option<i64>, _>(5).map(|s| s as u64),
        mtime: r.get(6),
        change_id: Some(r.get(1)),
        base_hash,
    })
}

/// Row ids as a JSON array, for `json_each` (one statement for any number).
fn id_list(ids: &[i64]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreadable_row_is_failed_visibly_not_counted_as_queued() {
        let dir = tempfile::tempdir().unwrap();
        let state = LocalState::open(dir.path()).await.unwrap();
        sqlx::query(
            "INSERT INTO outbox (project_id, change_id, path, op, hash, created_at)
             VALUES ('p', 'c1', '../escape', 'create', 'zz', 'now')",
        )
        .execute(&state.pool)
        .await
        .unwrap();
        assert_eq!(state.outbox_summary("p").await.unwrap().0, 1);
        let batch = state.outbox_batch("p", 10).await.unwrap();
        assert!(batch.is_empty());
        let (queued, failed) = state.outbox_summary("p").await.unwrap();
        assert_eq!(queued, 0, "no longer counted as queued");
        assert!(failed.unwrap().contains("unreadable"), "shown as an error");
    }

    #[tokio::test]
    async fn an_unreadable_index_row_is_an_error_not_an_empty_index() {
        let dir = tempfile::tempdir().unwrap();
        let state = LocalState::open(dir.path()).await.unwrap();
        sqlx::query(
            "INSERT INTO file_index (project_id, path, size, mtime_ns, hash) VALUES ('p', 'a', 1, 1, 'nothex')",
        )
        .execute(&state.pool)
        .await
        .unwrap();
        assert!(state.index("p").await.is_err());
    }
}
