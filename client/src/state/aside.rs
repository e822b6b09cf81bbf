//! Remote events set aside: not applied, kept with the reason so the
//! folder shows badge `error` and `vidsync status` lists them, retried on a
//! timer and at start. The cursor may move past a set-aside event because
//! the event itself is kept here.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use vidsync_protocol::ProjectEvent;

use super::LocalState;
use crate::Result;

/// Drops a path's set-aside events up to a seq. `INDEXED BY`: without
/// statistics SQLite walked the project's set-aside rows below the seq
/// (by primary key) even with the path index there.
pub(super) const CLEAR_ASIDE: &str = "DELETE FROM set_aside INDEXED BY set_aside_by_path
     WHERE project_id = ? AND path = ? AND seq <= ?";

/// One event not applied, and why.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAside {
    pub seq: u64,
    pub path: String,
    pub reason: String,
}

impl LocalState {
    /// Keeps `event` (None when unreadable) aside with `reason`.
    pub async fn set_aside(
        &self,
        project_id: &str,
        seq: u64,
        path: &str,
        reason: &str,
        event: Option<&ProjectEvent>,
    ) -> Result<()> {
        let json = event.and_then(|e| serde_json::to_string(e).ok());
        sqlx::query(
            "INSERT INTO set_aside (project_id, seq, path, reason, event, created_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT(project_id, seq) DO UPDATE SET reason = excluded.reason",
        )
        .bind(project_id)
        .bind(seq as i64)
        .bind(path)
        .bind(reason)
        .bind(json)
        .bind(crate::now_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// What is set aside for a project, oldest first.
    pub async fn aside_list(&self, project_id: &str) -> Result<Vec<SetAside>> {
        let rows = sqlx::query(
            "SELECT seq, path, reason FROM set_aside WHERE project_id = ? ORDER BY seq",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| SetAside {
                seq: r.get::<i64, _>(0) as u64,
                path: r.get(1),
                reason: r.get(2),
            })
            .collect())
    }

    /// The set-aside events that can be tried again, oldest first.
    pub async fn aside_events(&self, project_id: &str) -> Result<Vec<ProjectEvent>> {
        let rows = sqlx::query(
            "SELECT event FROM set_aside WHERE project_id = ? AND event IS NOT NULL ORDER BY seq",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .filter_map(|r| serde_json::from_str(&r.get::<String, _>(0)).ok())
            .collect())
    }

    /// Forgets set-aside events for `path` up to `seq` (a newer version of
    /// the path was applied, or the retry of that event succeeded).
    pub async fn aside_clear(&self, project_id: &str, path: &str, seq: u64) -> Result<()> {
        sqlx::query(CLEAR_ASIDE)
            .bind(project_id)
            .bind(path)
            .bind(seq as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
