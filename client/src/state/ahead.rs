//! Versions taken ahead of the feed after a 409 (see the `taken_ahead`
//! migration): which path, up to which seq, so the feed does not apply
//! them, or anything older for that path, a second time.

use std::collections::HashMap;

use sqlx::Row;

use super::LocalState;
use crate::Result;

impl LocalState {
    /// Path → the seq of the version taken ahead, for one project.
    pub async fn taken_ahead(&self, project_id: &str) -> Result<HashMap<String, u64>> {
        let rows = sqlx::query("SELECT path, seq FROM taken_ahead WHERE project_id = ?")
            .bind(project_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1) as u64))
            .collect())
    }

    /// Remembers that `path`'s version of event `seq` was taken ahead.
    pub async fn set_taken_ahead(&self, project_id: &str, path: &str, seq: u64) -> Result<()> {
        sqlx::query(
            "INSERT INTO taken_ahead (project_id, path, seq) VALUES (?, ?, ?)
             ON CONFLICT(project_id, path) DO UPDATE SET seq = MAX(seq, excluded.seq)",
        )
        .bind(project_id)
        .bind(path)
        .bind(seq as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets what the saved cursor `upto` has passed.
    pub async fn drop_taken_ahead(&self, project_id: &str, upto: u64) -> Result<()> {
        sqlx::query("DELETE FROM taken_ahead WHERE project_id = ? AND seq <= ?")
            .bind(project_id)
            .bind(upto as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
