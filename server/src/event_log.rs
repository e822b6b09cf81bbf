//! The per-project event log in SQLite: reading the facts an append needs
//! (head, known `change_id`s, current versions), writing what
//! [`numbering::number`] decided, and paging events out.
//!
//! An append runs on a connection of its own, in one transaction, under the
//! store's writer lock. If anything fails on that connection (a full disk, an
//! I/O error, a failed `COMMIT`), the connection is closed, never handed back
//! to the pool: SQLite may have rolled the transaction back by itself while
//! sqlx still counts it as open, and a connection in that state turns the next
//! `BEGIN` into a savepoint whose "commit" stores nothing. The `200` goes out
//! only after `COMMIT` returned, which with WAL and `synchronous=FULL` means
//! the rows are on disk.

use std::collections::{BTreeMap, HashMap};

use futures_util::TryStreamExt;
use sqlx::pool::PoolConnection;
use sqlx::{Connection, Row, Sqlite, SqliteConnection};
use vidsync_protocol::{Change, ContentHash, Op, Origin, ProjectEvent, ProjectPath};

use crate::blob_store::KnownSizes;
use crate::clock::now_rfc3339;
use crate::db::{Db, DbError, DbResult, User};
use crate::numbering::{self, Conflicts, Facts, Fresh};

/// change_ids or paths looked up per statement (SQLite allows 32,766 parameters).
const LOOKUP_CHUNK: usize = 1000;
/// Rows inserted per statement (11 parameters each for events).
const INSERT_CHUNK: usize = 1000;

const EVENT_COLUMNS: &str =
    "e.seq, e.path, e.op, e.hash, e.size, e.mtime, e.client_id, e.user_name, e.created_at";

/// Result of an append: the event for every change in request order (an
/// already-known `change_id` gives back its first event), the new head, and
/// the events that are new and must be broadcast.
pub struct Appended {
    pub events: Vec<ProjectEvent>,
    pub head_seq: u64,
    pub fresh: Vec<ProjectEvent>,
}

/// Why an append appended nothing.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// A `base_hash` was stale (409).
    #[error("{}", .0.message)]
    Conflict(Conflicts),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for AppendError {
    fn from(e: sqlx::Error) -> Self {
        AppendError::Db(e.into())
    }
}

impl Db {
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
    ) -> Result<Appended, AppendError> {
        let writer = self.writer.lock().await;
        self.append_locked(&writer, project_id, user, client_id, changes, after_commit)
            .await
    }

    /// The writer lock, for a caller that reads the log and then appends
    /// what it read decided ([`Self::append_locked`]) with no append in
    /// between (restore).
    pub async fn lock_writer(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writer.lock().await
    }

    /// [`Self::append`] under a writer lock the caller already holds.
    pub async fn append_locked(
        &self,
        _writer: &tokio::sync::MutexGuard<'_, ()>,
        project_id: &str,
        user: &User,
        client_id: &str,
        changes: &[Change],
        after_commit: impl FnOnce(&[ProjectEvent]),
    ) -> Result<Appended, AppendError> {
        let mut conn = self.pool.acquire().await.map_err(DbError::from)?;
        let origin = Origin {
            client_id: client_id.to_string(),
            user: user.name.clone(),
        };
        let result = append_on(&mut conn, project_id, &origin, changes).await;
        if let Err(AppendError::Db(e)) = &result {
            // Whatever state it is in, this connection is not reused.
            tracing::debug!(%e, "append failed: closing its connection");
            discard(conn).await;
        }
        let (events, head_seq, fresh) = result?;
        after_commit(&fresh);
        Ok(Appended {
            events,
            head_seq,
            fresh,
        })
    }

    /// For the blob store's start-up check: every size the log gives each
    /// (project, hash), and every project id.
    pub async fn blob_sizes(&self) -> DbResult<(KnownSizes, Vec<String>)> {
        let mut known = KnownSizes::new();
        let mut rows = sqlx::query(
            "SELECT DISTINCT project_id, hash, size FROM events WHERE hash IS NOT NULL",
        )
        .fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            let project: String = r.get(0);
            let hash = r
                .get::<String, _>(1)
                .parse::<ContentHash>()
                .map_err(|e| DbError::Corrupt(format!("event hash in {project}: {e}")))?;
            let size = r.get::<Option<i64>, _>(2).unwrap_or(-1) as u64;
            known.entry((project, hash)).or_default().push(size);
        }
        drop(rows);
        let projects = sqlx::query("SELECT id FROM projects")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok((known, projects))
    }

    /// Events with `seq > since`, oldest first, at most `limit`.
    pub async fn events_since(
        &self,
        project_id: &str,
        since: u64,
        limit: u32,
    ) -> DbResult<Vec<ProjectEvent>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM events e
             WHERE e.project_id = ? AND e.seq > ? ORDER BY e.seq LIMIT ?"
        )))
        .bind(project_id)
        .bind(since.min(i64::MAX as u64) as i64)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| event_from_row(project_id, r)).collect()
    }
}

/// Closes a connection that failed mid-append instead of pooling it again.
async fn discard(conn: PoolConnection<Sqlite>) {
    if let Err(e) = conn.close().await {
        tracing::debug!(%e, "closing a failed connection");
    }
}

type Outcome = (Vec<ProjectEvent>, u64, Vec<ProjectEvent>);

async fn append_on(
    conn: &mut SqliteConnection,
    project_id: &str,
    origin: &Origin,
    changes: &[Change],
) -> Result<Outcome, AppendError> {
    if conn.is_in_transaction() {
        return Err(DbError::Corrupt("pooled connection was inside a transaction".into()).into());
    }
    let now = now_rfc3339();
    // IMMEDIATE: the write lock is taken now, not at the first INSERT after
    // the reads — a deferred transaction whose snapshot another writer (a
    // manifest insert, the collector) committed past fails SQLITE_BUSY at
    // once, without waiting.
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let head: u64 = sqlx::query("SELECT head_seq FROM projects WHERE id = ?")
        .bind(project_id)
        .fetch_one(&mut *tx)
        .await?
        .get::<i64, _>(0) as u64;
    let known = known_events(&mut tx, project_id, &origin.client_id, changes).await?;
    let current = current_events(&mut tx, project_id, changes).await?;
    let facts = Facts {
        project_id,
        origin,
        now: &now,
        head,
        known: &known,
        current: &current,
    };
    let numbered = match numbering::number(&facts, changes) {
        Ok(n) => n,
        Err(conflicts) => {
            tx.rollback().await?;
            return Err(AppendError::Conflict(conflicts));
        }
    };
    insert_events(&mut tx, project_id, origin, &numbered.fresh).await?;
    if !numbered.fresh.is_empty() {
        sqlx::query("UPDATE projects SET head_seq = ? WHERE id = ?")
            .bind(numbered.head as i64)
            .bind(project_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    if conn.is_in_transaction() {
        // A COMMIT that left a transaction open stored nothing durable.
        return Err(DbError::Corrupt("transaction still open after COMMIT".into()).into());
    }
    let fresh = numbered.fresh.into_iter().map(|f| f.event).collect();
    Ok((numbered.events, numbered.head, fresh))
}

/// Events already appended for this client's `change_id`s (retries).
async fn known_events(
    conn: &mut SqliteConnection,
    project_id: &str,
    client_id: &str,
    changes: &[Change],
) -> DbResult<HashMap<String, ProjectEvent>> {
    let mut known = HashMap::new();
    let ids: Vec<&str> = changes
        .iter()
        .filter_map(|c| c.change_id.as_deref())
        .collect();
    for chunk in ids.chunks(LOOKUP_CHUNK) {
        let mut q = sqlx::QueryBuilder::new(format!(
            "SELECT {EVENT_COLUMNS}, e.change_id
             FROM events e INDEXED BY events_by_change_id WHERE e.project_id = "
        ));
        q.push_bind(project_id)
            .push(" AND e.client_id = ")
            .push_bind(client_id)
            // Spelled out: the partial index needs it to be usable.
            .push(" AND e.change_id IS NOT NULL AND e.change_id IN (");
        let mut sep = q.separated(", ");
        for id in chunk {
            sep.push_bind(*id);
        }
        q.push(")");
        for row in q.build().fetch_all(&mut *conn).await? {
            known.insert(row.get(9), event_from_row(project_id, &row)?);
        }
    }
    Ok(known)
}

/// The newest event of every path that carries a `base_hash`, from the
/// current-state index (one primary-key lookup per path).
async fn current_events(
    conn: &mut SqliteConnection,
    project_id: &str,
    changes: &[Change],
) -> DbResult<HashMap<ProjectPath, ProjectEvent>> {
    let mut paths: Vec<&str> = changes
        .iter()
        .filter(|c| c.base_hash.is_some())
        .map(|c| c.path.as_str())
        .collect();
    paths.sort_unstable();
    paths.dedup();
    let mut current = HashMap::new();
    for chunk in paths.chunks(LOOKUP_CHUNK) {
        let mut q = sqlx::QueryBuilder::new(format!(
            "SELECT {EVENT_COLUMNS} FROM current_versions c
             JOIN events e ON e.project_id = c.project_id AND e.seq = c.seq
             WHERE c.project_id = "
        ));
        q.push_bind(project_id).push(" AND c.path IN (");
        let mut sep = q.separated(", ");
        for path in chunk {
            sep.push_bind(*path);
        }
        q.push(")");
        for row in q.build().fetch_all(&mut *conn).await? {
            let ev = event_from_row(project_id, &row)?;
            current.insert(ev.change.path.clone(), ev);
        }
    }
    Ok(current)
}

/// Multi-row inserts of the fresh events, and the current-state index moved
/// to each path's newest one: one statement per chunk, not one per change.
async fn insert_events(
    conn: &mut SqliteConnection,
    project_id: &str,
    origin: &Origin,
    fresh: &[Fresh],
) -> DbResult<()> {
    for chunk in fresh.chunks(INSERT_CHUNK) {
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO events (project_id, seq, path, op, hash, size, mtime, client_id, change_id, user_name, created_at) ",
        );
        q.push_values(chunk, |mut row, f| {
            let c = &f.event.change;
            row.push_bind(project_id)
                .push_bind(f.event.seq as i64)
                .push_bind(c.path.as_str())
                .push_bind(c.op.as_str())
                .push_bind(c.hash.map(|h| h.to_hex()))
                .push_bind(c.size.map(|s| s as i64))
                .push_bind(c.mtime.as_deref())
                .push_bind(&origin.client_id)
                .push_bind(f.change_id.as_deref())
                .push_bind(&origin.user)
                .push_bind(&f.event.created_at);
        });
        q.build().execute(&mut *conn).await?;
    }
    // Newest seq per path (a path may change several times in one request).
    let newest: BTreeMap<&str, u64> = fresh
        .iter()
        .map(|f| (f.event.change.path.as_str(), f.event.seq))
        .collect();
    let newest: Vec<(&str, u64)> = newest.into_iter().collect();
    for chunk in newest.chunks(INSERT_CHUNK) {
        let mut q =
            sqlx::QueryBuilder::new("INSERT INTO current_versions (project_id, path, seq) ");
        q.push_values(chunk, |mut row, (path, seq)| {
            row.push_bind(project_id)
                .push_bind(*path)
                .push_bind(*seq as i64);
        });
        q.push(" ON CONFLICT(project_id, path) DO UPDATE SET seq = excluded.seq");
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

pub(crate) fn event_from_row(
    project_id: &str,
    r: &sqlx::sqlite::SqliteRow,
) -> DbResult<ProjectEvent> {
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
