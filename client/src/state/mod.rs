//! `LocalState`: the client's durable memory in `state.db` (SQLite) in the
//! config directory — the outbox of changes not yet answered by the server,
//! the index of local files as last seen, and each project's cursor.
//! A change and the index update that goes with it are written in one
//! transaction, so a crash can neither lose a change nor queue it twice.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use vidsync_protocol::{Change, ContentHash, ProjectPath};

mod ahead;
mod aside;
mod batch;
mod chunks;
mod outbox;

pub use aside::SetAside;
pub(crate) use batch::{applied_in, base_in, set_base_in};
pub use batch::{Batch, Known};
pub(crate) use chunks::set_chunks_in;
pub use chunks::ChunkSource;

use crate::Result;

/// What the scanner remembers of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub size: u64,
    pub mtime_ns: i64,
    pub hash: ContentHash,
}

/// An outbox row: a change and whether the server refused it for good.
#[derive(Debug, Clone)]
pub struct Queued {
    pub id: i64,
    pub change: Change,
}

#[derive(Clone)]
pub struct LocalState {
    pub(crate) pool: SqlitePool,
}

impl LocalState {
    pub async fn open(dir: &Path) -> Result<LocalState> {
        std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
        let url = format!("sqlite://{}", dir.join("state.db").display());
        let opts = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode survives a crash of this process; after a
            // power loss the newest transactions may roll back, but the index
            // and the outbox roll back together and the start-up scan finds
            // those changes again.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A connection still inside a transaction (its COMMIT failed,
            // e.g. on a full disk, and the rollback did not end it) would
            // hold the write lock from the pool: every later write then
            // waits out the busy timeout and fails ("database is locked")
            // even once space is back. It is closed instead, as the
            // server's pool does (the ping runs after any queued rollback).
            .before_acquire(|conn, _| {
                use sqlx::Connection;
                Box::pin(async move { Ok(!conn.is_in_transaction()) })
            })
            .after_release(|conn, _| {
                use sqlx::Connection;
                Box::pin(async move {
                    conn.ping().await?;
                    Ok(!conn.is_in_transaction())
                })
            })
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(LocalState { pool })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn index(&self, project_id: &str) -> Result<HashMap<String, IndexEntry>> {
        let rows =
            sqlx::query("SELECT path, size, mtime_ns, hash FROM file_index WHERE project_id = ?")
                .bind(project_id)
                .fetch_all(&self.pool)
                .await?;
        index_rows(rows)
    }

    /// The index entries of `paths` and of everything under them (a path
    /// can be a directory): what a look at those paths compares with,
    /// without reading the whole index.
    pub async fn index_for(
        &self,
        project_id: &str,
        paths: &[&str],
    ) -> Result<HashMap<String, IndexEntry>> {
        if paths.is_empty() {
            return Ok(HashMap::new());
        }
        // Under "a" is the range ["a/", "a0"): '0' follows '/' in UTF-8.
        // CROSS JOIN keeps the list outside: left to itself SQLite put the
        // index outside and read the whole list again for each entry.
        let rows = sqlx::query(
            "SELECT f.path, f.size, f.mtime_ns, f.hash FROM json_each(?2) j
               CROSS JOIN file_index f ON f.project_id = ?1 AND f.path = j.value
             UNION
             SELECT f.path, f.size, f.mtime_ns, f.hash FROM json_each(?2) j
               CROSS JOIN file_index f ON f.project_id = ?1
                AND f.path >= j.value || '/' AND f.path < j.value || '0'",
        )
        .bind(project_id)
        .bind(batch::json_list(paths)?)
        .fetch_all(&self.pool)
        .await?;
        index_rows(rows)
    }

    pub async fn cursor(&self, project_id: &str) -> Result<u64> {
        let r = sqlx::query("SELECT last_seq FROM cursors WHERE project_id = ?")
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|r| r.get::<i64, _>(0) as u64).unwrap_or(0))
    }

    pub async fn set_cursor(&self, project_id: &str, seq: u64) -> Result<()> {
        sqlx::query(
            "INSERT INTO cursors (project_id, last_seq) VALUES (?, ?)
             ON CONFLICT(project_id) DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq)",
        )
        .bind(project_id)
        .bind(seq as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// After a remote event was applied to `path`: its index entry (None:
    /// gone), the agreed hash, and no queued change left for it — at once.
    pub async fn applied(
        &self,
        project_id: &str,
        path: &ProjectPath,
        entry: Option<&IndexEntry>,
        base: Option<&ContentHash>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        applied_in(&mut tx, project_id, path, entry, base).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks a path's index entry (if any) as needing a fresh look, with
    /// `hash` as what it is compared against: the next scan hashes the
    /// file, and sees a delete if it is gone.
    pub async fn index_stale(
        &self,
        project_id: &str,
        path: &str,
        hash: &ContentHash,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE file_index SET mtime_ns = -1, hash = ? WHERE project_id = ? AND path = ?",
        )
        .bind(hash.to_hex())
        .bind(project_id)
        .bind(path)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The hash both sides last agreed on for a path.
    pub async fn base(&self, project_id: &str, path: &str) -> Result<Option<ContentHash>> {
        let mut c = self.pool.acquire().await?;
        base_in(&mut c, project_id, path).await
    }

    pub async fn set_base(
        &self,
        project_id: &str,
        path: &str,
        hash: Option<&ContentHash>,
    ) -> Result<()> {
        let mut c = self.pool.acquire().await?;
        set_base_in(&mut c, project_id, path, hash).await
    }

    pub async fn add_conflict(&self, project_id: &str, path: &str) -> Result<()> {
        sqlx::query(
            "INSERT OR IGNORE INTO conflicts (project_id, path, created_at) VALUES (?, ?, ?)",
        )
        .bind(project_id)
        .bind(path)
        .bind(crate::now_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a conflict copy (resolved: the copy is gone or kept as an
    /// ordinary file).
    pub async fn remove_conflict(&self, project_id: &str, path: &str) -> Result<()> {
        sqlx::query("DELETE FROM conflicts WHERE project_id = ? AND path = ?")
            .bind(project_id)
            .bind(path)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn conflicts(&self, project_id: &str) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT path FROM conflicts WHERE project_id = ? ORDER BY created_at")
                .bind(project_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// Sets (or, with `None`, removes) the index entry of a path.
/// Index rows (path, size, mtime_ns, hash) as a map. A row that cannot be
/// read is an error, not a missing file: treating it as absent would queue
/// the file again as a create.
fn index_rows(rows: Vec<sqlx::sqlite::SqliteRow>) -> Result<HashMap<String, IndexEntry>> {
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        let path: String = r.get(0);
        let hash: String = r.get(3);
        let hash = hash.parse().map_err(|_| {
            crate::Error::Config(format!("local index: unreadable hash for {path}"))
        })?;
        out.insert(
            path,
            IndexEntry {
                size: r.get::<i64, _>(1) as u64,
                mtime_ns: r.get(2),
                hash,
            },
        );
    }
    Ok(out)
}

pub(crate) async fn set_index(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    project_id: &str,
    path: &ProjectPath,
    entry: Option<&IndexEntry>,
) -> Result<()> {
    chunks::drop_stale_chunks_in(tx, project_id, path, entry.map(|e| &e.hash)).await?;
    match entry {
        Some(e) => {
            sqlx::query(
                    "INSERT INTO file_index (project_id, path, size, mtime_ns, hash) VALUES (?, ?, ?, ?, ?)
                     ON CONFLICT(project_id, path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, hash = excluded.hash",
                )
                .bind(project_id)
                .bind(path.as_str())
                .bind(e.size as i64)
                .bind(e.mtime_ns)
                .bind(e.hash.to_hex())
                .execute(&mut **tx)
                .await?;
        }
        None => {
            sqlx::query("DELETE FROM file_index WHERE project_id = ? AND path = ?")
                .bind(project_id)
                .bind(path.as_str())
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The steps of SQLite's plan for `sql`, its parameters bound to `binds`.
    async fn plan(state: &LocalState, sql: &str, binds: &[&str]) -> Vec<String> {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
        for b in binds {
            q = q.bind(*b);
        }
        q.fetch_all(&state.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(3))
            .collect()
    }

    /// Lookups made per chunk, per look or per applied run use their
    /// indexes, not a pass over the project's rows, which is what SQLite
    /// chose by itself without statistics (the apps never run ANALYZE).
    #[tokio::test]
    async fn hot_lookups_use_their_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let state = LocalState::open(dir.path()).await.unwrap();
        for (sql, index) in [
            (chunks::chunk_sources_sql(3), "chunk_index_by_hash"),
            (chunks::whole_sources_sql(3), "file_index_by_hash"),
        ] {
            let steps = plan(&state, &sql, &["p", "a", "b", "c", "1"]).await;
            assert!(
                steps.iter().all(|step| step.contains(index)),
                "{sql}: {steps:?}"
            );
        }
        // A look's read of what is queued for its paths.
        let steps = plan(&state, batch::QUEUED_AT, &["p", r#"["a","b"]"#]).await;
        assert!(
            steps.iter().any(|s| s.contains("outbox_by_path")),
            "{steps:?}"
        );
        assert!(
            !steps.iter().any(|s| s.contains("outbox_by_project")),
            "{steps:?}"
        );
        // Set-aside events by path: found (as `paths_in` asks) and dropped.
        let found = batch::paths_in_sql("set_aside");
        for (sql, binds) in [
            (found.as_str(), &["p", r#"["a"]"#][..]),
            (aside::CLEAR_ASIDE, &["p", "a", "1"][..]),
        ] {
            let steps = plan(&state, sql, binds).await;
            assert!(
                steps.iter().any(|s| s.contains("set_aside_by_path")),
                "{sql}: {steps:?}"
            );
        }
    }
}
