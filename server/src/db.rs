//! The server's store: users, tokens, projects, members, invites and the
//! per-project event log, in SQLite (WAL, `synchronous=FULL`) through sqlx.
//!
//! The event log lives in `event_log`. It is append-only. `seq` is assigned inside the append
//! transaction from `projects.head_seq`, so it is gap-free per project, also
//! across restarts and crashes. Appends are serialised by one writer lock so
//! that commit order is seq order, which the live feed relies on.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Row, SqlitePool};
use tokio::sync::Mutex;
use vidsync_protocol::{Project, Role};

use crate::clock::now_rfc3339;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
    #[error("unsupported database URL {0:?}: only sqlite: URLs are supported in this version")]
    Unsupported(String),
    #[error("no user named {0:?}")]
    NoSuchUser(String),
}

pub type DbResult<T> = Result<T, DbError>;

/// SQLite's result code for "database or disk is full".
const SQLITE_FULL: &str = "13";

impl DbError {
    /// The disk (or the database's size limit) is full: nothing was stored.
    pub fn is_storage_full(&self) -> bool {
        match self {
            DbError::Sqlx(sqlx::Error::Database(e)) => e.code().as_deref() == Some(SQLITE_FULL),
            DbError::Sqlx(sqlx::Error::Io(e)) => crate::error::is_storage_full(e),
            _ => false,
        }
    }
}

/// A user, as the auth layer hands it to handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
}

/// The schema's migrations, carried in the binary; run at every start.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone)]
pub struct Db {
    pub(crate) pool: SqlitePool,
    /// One appender at a time: commit order is then seq order, and the
    /// broadcast that follows each commit happens before the next commit.
    pub(crate) writer: std::sync::Arc<Mutex<()>>,
}

impl Db {
    /// Whether the data directory's layout row `name` is written
    /// (`store_layout`, migration 0005).
    pub async fn layout_marked(&self, name: &str) -> DbResult<bool> {
        Ok(sqlx::query("SELECT 1 FROM store_layout WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// Writes the layout row `name`, once.
    pub async fn mark_layout(&self, name: &str) -> DbResult<()> {
        sqlx::query("INSERT OR IGNORE INTO store_layout (name, since) VALUES (?, ?)")
            .bind(name)
            .bind(now_rfc3339())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Opens (creating if needed) the SQLite database and runs migrations.
    pub async fn open(url: &str) -> DbResult<Db> {
        if !url.starts_with("sqlite:") {
            return Err(DbError::Unsupported(url.to_string()));
        }
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // A connection that sqlx still counts as inside a transaction
            // (a failed COMMIT or ROLLBACK, e.g. on a full disk) is closed,
            // never pooled again: see `event_log`.
            .before_acquire(|conn, _| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
            // The ping runs after any rollback a dropped transaction queued
            // on the connection's worker, so the count it leaves is final.
            .after_release(|conn, _| {
                Box::pin(async move {
                    conn.ping().await?;
                    Ok(!conn.is_in_transaction())
                })
            })
            .connect_with(opts)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Db {
            pool,
            writer: Default::default(),
        })
    }

    /// The sqlite URL for a data directory.
    pub fn url_for_data_dir(dir: &Path) -> String {
        format!("sqlite://{}", dir.join("vidsync.db").display())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn ping(&self) -> DbResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    // ----- users and tokens -------------------------------------------------

    /// Creates the user if needed and stores a new token for them.
    pub async fn add_user_token(&self, name: &str, token_hash: &str) -> DbResult<User> {
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO users (name, created_at) VALUES (?, ?) ON CONFLICT(name) DO NOTHING",
        )
        .bind(name)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        let id: i64 = sqlx::query("SELECT id FROM users WHERE name = ?")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
        sqlx::query("INSERT INTO tokens (token_hash, user_id, created_at) VALUES (?, ?, ?)")
            .bind(token_hash)
            .bind(id)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(User {
            id,
            name: name.to_string(),
        })
    }

    /// Revokes every token of a user; returns how many were live.
    pub async fn revoke_tokens(&self, name: &str) -> DbResult<u64> {
        let user = sqlx::query("SELECT id FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| DbError::NoSuchUser(name.to_string()))?;
        let id: i64 = user.get(0);
        let done = sqlx::query(
            "UPDATE tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
        )
        .bind(now_rfc3339())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn user_by_token_hash(&self, token_hash: &str) -> DbResult<Option<User>> {
        let row = sqlx::query(
            "SELECT u.id, u.name FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = ? AND t.revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| User {
            id: r.get(0),
            name: r.get(1),
        }))
    }

    // ----- projects and members ---------------------------------------------

    /// Creates a project owned by `owner`, unless they already own `max`
    /// (then `Ok(None)`); the count and the insert are one transaction.
    pub async fn create_project(
        &self,
        id: &str,
        name: &str,
        owner: &User,
        max: u32,
    ) -> DbResult<Option<Project>> {
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO projects (id, name, owner_id, head_seq, created_at)
             SELECT ?, ?, ?, 0, ? WHERE (SELECT COUNT(*) FROM projects WHERE owner_id = ?) < ?",
        )
        .bind(id)
        .bind(name)
        .bind(owner.id)
        .bind(&now)
        .bind(owner.id)
        .bind(max as i64)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO members (project_id, user_id, role, joined_at) VALUES (?, ?, 'owner', ?)",
        )
        .bind(id)
        .bind(owner.id)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(Project {
            id: id.to_string(),
            name: name.to_string(),
            owner: owner.name.clone(),
            role: Role::Owner,
            head_seq: 0,
            created_at: now,
            members: 1,
        }))
    }

    const PROJECT_COLUMNS: &'static str =
        "SELECT p.id, p.name, o.name, m.role, p.head_seq, p.created_at,
                (SELECT COUNT(*) FROM members x WHERE x.project_id = p.id)
         FROM members m JOIN projects p ON p.id = m.project_id JOIN users o ON o.id = p.owner_id";

    pub async fn projects_of(&self, user: &User) -> DbResult<Vec<Project>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{} WHERE m.user_id = ? ORDER BY p.created_at, p.id",
            Self::PROJECT_COLUMNS
        )))
        .bind(user.id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(project_from_row).collect()
    }

    /// The project as `user` sees it; `Err(Access::..)` says why not.
    pub async fn project_for(
        &self,
        project_id: &str,
        user: &User,
    ) -> DbResult<Result<Project, Access>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{} WHERE m.user_id = ? AND p.id = ?",
            Self::PROJECT_COLUMNS
        )))
        .bind(user.id)
        .bind(project_id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Ok(project_from_row(&r)?)),
            None => Ok(Err(self.why_not(project_id).await?)),
        }
    }

    /// The caller's role in a project, or why they have none.
    pub async fn role_in(&self, project_id: &str, user: &User) -> DbResult<Result<Role, Access>> {
        let row = sqlx::query("SELECT role FROM members WHERE project_id = ? AND user_id = ?")
            .bind(project_id)
            .bind(user.id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => Ok(Ok(parse_role(r.get::<String, _>(0).as_str())?)),
            None => Ok(Err(self.why_not(project_id).await?)),
        }
    }

    async fn why_not(&self, project_id: &str) -> DbResult<Access> {
        let exists = sqlx::query("SELECT 1 FROM projects WHERE id = ?")
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        Ok(if exists {
            Access::NotMember
        } else {
            Access::NoProject
        })
    }

    pub async fn head_seq(&self, project_id: &str) -> DbResult<u64> {
        let row = sqlx::query("SELECT head_seq FROM projects WHERE id = ?")
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get::<i64, _>(0) as u64).unwrap_or(0))
    }

    // ----- invites ----------------------------------------------------------

    pub async fn create_invite(
        &self,
        code: &str,
        project_id: &str,
        by: &User,
        expires_at: &str,
    ) -> DbResult<()> {
        sqlx::query("INSERT INTO invites (code, project_id, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?)")
            .bind(code)
            .bind(project_id)
            .bind(by.id)
            .bind(now_rfc3339())
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The project id and expiry of an invite code.
    pub async fn invite(&self, code: &str) -> DbResult<Option<(String, String)>> {
        let row = sqlx::query("SELECT project_id, expires_at FROM invites WHERE code = ?")
            .bind(code)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// Makes `user` a member (an owner stays owner).
    pub async fn add_member(&self, project_id: &str, user: &User) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO members (project_id, user_id, role, joined_at) VALUES (?, ?, 'member', ?)
             ON CONFLICT(project_id, user_id) DO NOTHING",
        )
        .bind(project_id)
        .bind(user.id)
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Why a user cannot see a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    NoProject,
    NotMember,
}

fn parse_role(s: &str) -> DbResult<Role> {
    match s {
        "owner" => Ok(Role::Owner),
        "member" => Ok(Role::Member),
        other => Err(DbError::Corrupt(format!("role {other:?}"))),
    }
}

fn project_from_row(r: &sqlx::sqlite::SqliteRow) -> DbResult<Project> {
    Ok(Project {
        id: r.get(0),
        name: r.get(1),
        owner: r.get(2),
        role: parse_role(r.get::<String, _>(3).as_str())?,
        head_seq: r.get::<i64, _>(4) as u64,
        created_at: r.get(5),
        members: r.get::<i64, _>(6) as u64,
    })
}
