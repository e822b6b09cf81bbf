//! The server's store: users, tokens, projects, members, invites and the
//! per-project event log, in SQLite (WAL, `synchronous=FULL`) through sqlx.
//!
//! The event log is append-only. `seq` is assigned inside the append
//! transaction from `projects.head_seq`, so it is gap-free per project, also
//! across restarts and crashes. Appends are serialised by one writer lock so
//! that commit order is seq order, which the live feed relies on.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tokio::sync::Mutex;
use vidsync_protocol::{Change, ContentHash, Op, Origin, Project, ProjectEvent, ProjectPath, Role};

use crate::now_rfc3339;

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

/// change_ids looked up per statement (SQLite allows 32,766 parameters).
const LOOKUP_CHUNK: usize = 1000;
/// Events inserted per statement (11 parameters each).
const INSERT_CHUNK: usize = 1000;

/// A user, as the auth layer hands it to handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
}

/// Result of an append: the event for every change in request order (an
/// already-known `change_id` gives back its first event), the new head, and
/// the events that are new and must be broadcast.
pub struct Appended {
    pub events: Vec<ProjectEvent>,
    pub head_seq: u64,
    pub fresh: Vec<ProjectEvent>,
}

#[derive(Clone)]
pub struct Db {
    pool: SqlitePool,
    /// One appender at a time: commit order is then seq order, and the
    /// broadcast that follows each commit happens before the next commit.
    writer: std::sync::Arc<Mutex<()>>,
}

impl Db {
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
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
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

    pub async fn create_project(&self, id: &str, name: &str, owner: &User) -> DbResult<Project> {
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO projects (id, name, owner_id, head_seq, created_at) VALUES (?, ?, ?, 0, ?)")
            .bind(id)
            .bind(name)
            .bind(owner.id)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO members (project_id, user_id, role, joined_at) VALUES (?, ?, 'owner', ?)",
        )
        .bind(id)
        .bind(owner.id)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Project {
            id: id.to_string(),
            name: name.to_string(),
            owner: owner.name.clone(),
            role: Role::Owner,
            head_seq: 0,
            created_at: now,
        })
    }

    const PROJECT_COLUMNS: &'static str =
        "SELECT p.id, p.name, o.name, m.role, p.head_seq, p.created_at
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

    // ----- the event log ----------------------------------------------------

    /// Appends `changes` in one transaction, all or none, and then — still
    /// holding the writer lock — hands the fresh events to `after_commit`, so
    /// that whatever it does (broadcast) happens in seq order.
    pub async fn append(
        &self,
        project_id: &str,
        user: &User,
        client_id: &str,
        changes: &[Change],
        after_commit: impl FnOnce(&[ProjectEvent]),
    ) -> DbResult<Appended> {
        let _writer = self.writer.lock().await;
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        let mut head: u64 = sqlx::query("SELECT head_seq FROM projects WHERE id = ?")
            .bind(project_id)
            .fetch_one(&mut *tx)
            .await?
            .get::<i64, _>(0) as u64;
        let origin = Origin {
            client_id: client_id.to_string(),
            user: user.name.clone(),
        };

        // Events already appended for this client's change_ids (retries).
        let mut known: HashMap<String, ProjectEvent> = HashMap::new();
        let ids: Vec<&str> = changes
            .iter()
            .filter_map(|c| c.change_id.as_deref())
            .collect();
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT seq, path, op, hash, size, mtime, client_id, user_name, created_at, change_id
                 FROM events INDEXED BY events_by_change_id WHERE project_id = ",
            );
            q.push_bind(project_id)
                .push(" AND client_id = ")
                .push_bind(client_id)
                // Spelled out: the partial index needs it to be usable.
                .push(" AND change_id IS NOT NULL AND change_id IN (");
            let mut sep = q.separated(", ");
            for id in chunk {
                sep.push_bind(*id);
            }
            q.push(")");
            for row in q.build().fetch_all(&mut *tx).await? {
                known.insert(row.get(9), event_from_row(project_id, &row)?);
            }
        }

        // Every change gets its event: a known one, the one made earlier in
        // this request for the same change_id, or a new one with the next seq.
        let mut events: Vec<ProjectEvent> = Vec::with_capacity(changes.len());
        let mut fresh: Vec<(ProjectEvent, Option<&str>)> = Vec::new();
        let mut in_batch: HashMap<&str, usize> = HashMap::new();
        for change in changes {
            if let Some(cid) = change.change_id.as_deref() {
                if let Some(ev) = known.get(cid) {
                    events.push(ev.clone());
                    continue;
                }
                if let Some(&i) = in_batch.get(cid) {
                    events.push(events[i].clone());
                    continue;
                }
                in_batch.insert(cid, events.len());
            }
            head += 1;
            let ev = ProjectEvent {
                seq: head,
                project_id: project_id.to_string(),
                change: Change {
                    change_id: None,
                    base_hash: None,
                    ..change.clone()
                },
                origin: origin.clone(),
                created_at: now.clone(),
            };
            fresh.push((ev.clone(), change.change_id.as_deref()));
            events.push(ev);
        }

        // Multi-row inserts: one statement per chunk, not one per change.
        for chunk in fresh.chunks(INSERT_CHUNK) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO events (project_id, seq, path, op, hash, size, mtime, client_id, change_id, user_name, created_at) ",
            );
            q.push_values(chunk, |mut row, (ev, change_id)| {
                let c = &ev.change;
                row.push_bind(project_id)
                    .push_bind(ev.seq as i64)
                    .push_bind(c.path.as_str())
                    .push_bind(c.op.as_str())
                    .push_bind(c.hash.map(|h| h.to_hex()))
                    .push_bind(c.size.map(|s| s as i64))
                    .push_bind(c.mtime.as_deref())
                    .push_bind(client_id)
                    .push_bind(*change_id)
                    .push_bind(&user.name)
                    .push_bind(&now);
            });
            q.build().execute(&mut *tx).await?;
        }
        let fresh: Vec<ProjectEvent> = fresh.into_iter().map(|(ev, _)| ev).collect();
        if !fresh.is_empty() {
            sqlx::query("UPDATE projects SET head_seq = ? WHERE id = ?")
                .bind(head as i64)
                .bind(project_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        after_commit(&fresh);
        Ok(Appended {
            events,
            head_seq: head,
            fresh,
        })
    }

    /// Events with `seq > since`, oldest first, at most `limit`.
    pub async fn events_since(
        &self,
        project_id: &str,
        since: u64,
        limit: u32,
    ) -> DbResult<Vec<ProjectEvent>> {
        let rows = sqlx::query(
            "SELECT seq, path, op, hash, size, mtime, client_id, user_name, created_at
             FROM events WHERE project_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(project_id)
        .bind(since.min(i64::MAX as u64) as i64)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| event_from_row(project_id, r)).collect()
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
    })
}

fn event_from_row(project_id: &str, r: &sqlx::sqlite::SqliteRow) -> DbResult<ProjectEvent> {
    let corrupt = |what: &str| DbError::Corrupt(format!("event in {project_id}: {what}"));
    let path = ProjectPath::new(r.get::<String, _>(1)).map_err(|e| corrupt(&e.to_string()))?;
    let op = Op::parse(r.get::<String, _>(2).as_str()).ok_or_else(|| corrupt("op"))?;
    let hash = r
        .get::<Option<String>, _>(3)
        .map(|h| h.parse::<ContentHash>())
        .transpose()
        .map_err(|e| corrupt(&e.to_string()))?;
    Ok(ProjectEvent {
        seq: r.get::<i64, _>(0) as u64,
        project_id: project_id.to_string(),
        change: Change {
            path,
            op,
            hash,
            size: r.get::<Option<i64>, _>(4).map(|s| s as u64),
            mtime: r.get(5),
            change_id: None,
            base_hash: None,
        },
        origin: Origin {
            client_id: r.get(6),
            user: r.get(7),
        },
        created_at: r.get(8),
    })
}
