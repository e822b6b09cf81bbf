//! Several state changes in one transaction: a look that found many
//! differences plans and records them all, then commits once (one WAL
//! commit instead of one per file). The same statements back the
//! one-at-a-time methods of [`LocalState`].

use std::collections::HashMap;

use sqlx::{Row, Sqlite, SqliteConnection, Transaction};
use vidsync_protocol::chunking::ChunkRef;
use vidsync_protocol::{Change, ContentHash, ProjectPath};

use super::{set_index, IndexEntry, LocalState};
use crate::Result;

/// The queued changes of some paths (a JSON list), oldest first. `INDEXED
/// BY`: without statistics SQLite walked the project's whole outbox in `id`
/// order (`outbox_by_project`, which gives the order) on every look, 33
/// times slower with 10,000 changes queued.
pub(super) const QUEUED_AT: &str = "SELECT path, hash FROM outbox INDEXED BY outbox_by_path
     WHERE project_id = ? AND failed IS NULL
       AND path IN (SELECT value FROM json_each(?))
     ORDER BY id";

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
    /// in one transaction, as if one after another: each path ends with
    /// what its last write set. Done for all paths at once (a few queries
    /// over JSON lists instead of five or more per event).
    pub async fn write_applied(
        &self,
        project_id: &str,
        writes: &[crate::apply::StateWrite],
    ) -> Result<()> {
        let started = std::time::Instant::now();
        let ends = path_ends(writes);
        let mut tx = self.pool.begin().await?;
        let mut entries = Vec::new();
        let mut bases = Vec::with_capacity(ends.len());
        for (path, end) in &ends {
            if let Some((entry, _)) = end.index {
                entries.push((*path, entry));
            }
            bases.push((*path, end.base));
        }
        let applied: Vec<&str> = entries.iter().map(|(p, _)| *p).collect();
        set_index_many(&mut tx, project_id, &entries).await?;
        set_bases_many(&mut tx, project_id, &bases).await?;
        // An applied path's queued changes are moot.
        drop_queued_many(&mut tx, project_id, &applied).await?;
        // Set-aside events are rare: found for all paths at once, then
        // dropped path by path.
        let aside = paths_in(&mut tx, "set_aside", project_id, &applied).await?;
        for path in aside {
            if let Some(seq) = ends.get(path.as_str()).and_then(|e| e.applied_seq) {
                sqlx::query(super::aside::CLEAR_ASIDE)
                    .bind(project_id)
                    .bind(&path)
                    .bind(seq as i64)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for (path, end) in &ends {
            if let Some((Some(e), chunks)) = end.index {
                if chunks.len() > 1 {
                    super::set_chunks_in(&mut tx, project_id, path, &e.hash, chunks).await?;
                }
            }
        }
        tx.commit().await?;
        tracing::debug!(n = writes.len(), took = ?started.elapsed(), "applied events written");
        Ok(())
    }
}

/// Sets the index entries of many distinct paths (`None`: removed), and
/// drops their chunk rows of any other version.
async fn set_index_many(
    c: &mut SqliteConnection,
    project_id: &str,
    entries: &[(&str, Option<&IndexEntry>)],
) -> Result<()> {
    let (mut set, mut gone) = (Vec::new(), Vec::new());
    for (path, entry) in entries {
        match entry {
            Some(e) => set.push(serde_json::json!([
                path,
                e.size as i64,
                e.mtime_ns,
                e.hash.to_hex()
            ])),
            None => gone.push(*path),
        }
    }
    sqlx::query(
        "INSERT INTO file_index (project_id, path, size, mtime_ns, hash)
         SELECT ?1, value->>0, value->>1, value->>2, value->>3 FROM json_each(?2) WHERE true
         ON CONFLICT(project_id, path) DO UPDATE
         SET size = excluded.size, mtime_ns = excluded.mtime_ns, hash = excluded.hash",
    )
    .bind(project_id)
    .bind(json_list(&set)?)
    .execute(&mut *c)
    .await?;
    for_paths(
        c,
        "DELETE FROM file_index WHERE project_id = ?1
         AND path IN (SELECT value FROM json_each(?2))",
        project_id,
        &gone,
    )
    .await?;
    // Chunk rows are kept for multi-chunk files only: found for all paths
    // at once, then dropped path by path.
    let paths: Vec<&str> = entries.iter().map(|(p, _)| *p).collect();
    let chunked = paths_in(c, "chunk_index", project_id, &paths).await?;
    let hash_of: HashMap<&str, Option<String>> = entries
        .iter()
        .map(|(p, e)| (*p, e.map(|e| e.hash.to_hex())))
        .collect();
    for path in chunked {
        let Some(hash) = hash_of.get(path.as_str()) else {
            continue;
        };
        sqlx::query(
            "DELETE FROM chunk_index WHERE project_id = ? AND path = ? AND (? IS NULL OR file_hash != ?)",
        )
        .bind(project_id)
        .bind(&path)
        .bind(hash)
        .bind(hash)
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

/// Sets the agreed versions of many distinct paths (`None`: none).
async fn set_bases_many(
    c: &mut SqliteConnection,
    project_id: &str,
    bases: &[(&str, Option<ContentHash>)],
) -> Result<()> {
    let (mut set, mut unset) = (Vec::new(), Vec::new());
    for (path, base) in bases {
        match base {
            Some(h) => set.push(serde_json::json!([path, h.to_hex()])),
            None => unset.push(*path),
        }
    }
    sqlx::query(
        "INSERT INTO synced (project_id, path, hash)
         SELECT ?1, value->>0, value->>1 FROM json_each(?2) WHERE true
         ON CONFLICT(project_id, path) DO UPDATE SET hash = excluded.hash",
    )
    .bind(project_id)
    .bind(json_list(&set)?)
    .execute(&mut *c)
    .await?;
    for_paths(
        c,
        "DELETE FROM synced WHERE project_id = ?1
         AND path IN (SELECT value FROM json_each(?2))",
        project_id,
        &unset,
    )
    .await?;
    Ok(())
}

/// Drops what is queued (and not failed) for `paths`.
async fn drop_queued_many(
    c: &mut SqliteConnection,
    project_id: &str,
    paths: &[&str],
) -> Result<()> {
    for_paths(
        c,
        "DELETE FROM outbox WHERE project_id = ?1 AND failed IS NULL
         AND path IN (SELECT value FROM json_each(?2))",
        project_id,
        paths,
    )
    .await
}

/// Queues `changes`, in order.
async fn queue_many(c: &mut SqliteConnection, project_id: &str, changes: &[Change]) -> Result<()> {
    let now = crate::now_rfc3339();
    let rows: Vec<serde_json::Value> = changes
        .iter()
        .map(|c| {
            let (base_set, base) = match &c.base_hash {
                None => (0, None),
                Some(b) => (1, b.map(|h| h.to_hex())),
            };
            serde_json::json!([
                c.change_id.as_deref().unwrap_or_default(),
                c.path.as_str(),
                c.op.as_str(),
                c.hash.map(|h| h.to_hex()),
                c.size.map(|s| s as i64),
                c.mtime.as_deref(),
                base_set,
                base,
            ])
        })
        .collect();
    sqlx::query(
        "INSERT INTO outbox (project_id, change_id, path, op, hash, size, mtime, created_at, base_set, base)
         SELECT ?1, value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, ?2, value->>6, value->>7
         FROM json_each(?3) ORDER BY key",
    )
    .bind(project_id)
    .bind(now)
    .bind(json_list(&rows)?)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Runs `sql` for `paths`: `?1` is the project, `?2` the paths as a JSON
/// list (`path IN (SELECT value FROM json_each(?2))`).
async fn for_paths(
    c: &mut SqliteConnection,
    sql: &'static str,
    project_id: &str,
    paths: &[&str],
) -> Result<()> {
    sqlx::query(sql)
        .bind(project_id)
        .bind(json_list(paths)?)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// The SQL of [`paths_in`] for `table`.
pub(super) fn paths_in_sql(table: &str) -> String {
    format!(
        "SELECT DISTINCT path FROM {table} WHERE project_id = ?1
         AND path IN (SELECT value FROM json_each(?2))"
    )
}

/// Which of `paths` have rows in `table` (a constant name).
async fn paths_in(
    c: &mut SqliteConnection,
    table: &'static str,
    project_id: &str,
    paths: &[&str],
) -> Result<Vec<String>> {
    // `table` is one of this file's constant names, never input.
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(paths_in_sql(table)))
        .bind(project_id)
        .bind(json_list(paths)?)
        .fetch_all(&mut *c)
        .await?)
}

/// `items` as a JSON array, for `json_each` in a query.
pub(super) fn json_list<T: serde::Serialize>(items: &[T]) -> Result<String> {
    Ok(serde_json::to_string(items).map_err(|e| sqlx::Error::Encode(Box::new(e)))?)
}

impl LocalState {
    /// After the server took a batch: its rows leave the outbox and the
    /// posted versions become the agreed ones, in one transaction (a crash
    /// between the two would leave a path with nothing queued and an old
    /// base: its next change would go up against the wrong base and come
    /// back a conflict). `bases`: distinct paths, each with what it now is.
    pub async fn posted(
        &self,
        project_id: &str,
        ids: &[i64],
        bases: &[(&str, Option<ContentHash>)],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))")
            .bind(json_list(ids)?)
            .execute(&mut *tx)
            .await?;
        set_bases_many(&mut tx, project_id, bases).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl LocalState {
    /// The agreed versions of `paths` that have one, in one query.
    pub async fn bases_of(
        &self,
        project_id: &str,
        paths: &[&str],
    ) -> Result<HashMap<String, ContentHash>> {
        let mut c = self.pool.acquire().await?;
        bases_in(&mut c, project_id, paths).await
    }
}

async fn bases_in(
    c: &mut SqliteConnection,
    project_id: &str,
    paths: &[&str],
) -> Result<HashMap<String, ContentHash>> {
    let mut bases = HashMap::new();
    if paths.is_empty() {
        return Ok(bases);
    }
    let rows = sqlx::query(
        "SELECT path, hash FROM synced
         WHERE project_id = ? AND path IN (SELECT value FROM json_each(?))",
    )
    .bind(project_id)
    .bind(json_list(paths)?)
    .fetch_all(&mut *c)
    .await?;
    for r in rows {
        if let Ok(h) = r.get::<String, _>(1).parse() {
            bases.insert(r.get(0), h);
        }
    }
    Ok(bases)
}

/// What a run of state writes leaves for one path.
#[derive(Default)]
struct PathEnd<'a> {
    /// Set by an `Applied`: the index entry (`None`: gone) and its chunks.
    index: Option<(Option<&'a IndexEntry>, &'a [ChunkRef])>,
    /// The agreed version (every write sets it).
    base: Option<ContentHash>,
    /// The last `Applied`'s seq: set-aside events for the path up to it go.
    applied_seq: Option<u64>,
}

/// Folds `writes`, in order, into what each path ends with.
fn path_ends(writes: &[crate::apply::StateWrite]) -> HashMap<&str, PathEnd<'_>> {
    use crate::apply::StateWrite;
    let mut ends: HashMap<&str, PathEnd> = HashMap::new();
    for w in writes {
        match w {
            StateWrite::Applied {
                path,
                entry,
                base,
                seq,
                chunks,
            } => {
                let end = ends.entry(path.as_str()).or_default();
                end.index = Some((entry.as_ref(), chunks.as_slice()));
                end.base = *base;
                end.applied_seq = Some(end.applied_seq.map_or(*seq, |s| s.max(*seq)));
            }
            StateWrite::Base { path, hash } => {
                ends.entry(path.as_str()).or_default().base = *hash;
            }
        }
    }
    ends
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
        known.bases = bases_in(&mut self.tx, project_id, paths).await?;
        let list = json_list(paths)?;
        // Oldest first, so each path ends with its last queued change.
        let rows = sqlx::query(QUEUED_AT)
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

    /// What a look found, recorded for many distinct paths at once: their
    /// index entries, the agreed versions of those back at them (their
    /// queued changes dropped), and the changes to queue, in order.
    pub async fn record_many(
        &mut self,
        project_id: &str,
        index: &[(&str, Option<&IndexEntry>)],
        agreed: &[(&str, Option<ContentHash>)],
        queue: &[Change],
    ) -> Result<()> {
        set_index_many(&mut self.tx, project_id, index).await?;
        set_bases_many(&mut self.tx, project_id, agreed).await?;
        let back: Vec<&str> = agreed.iter().map(|(p, _)| *p).collect();
        drop_queued_many(&mut self.tx, project_id, &back).await?;
        queue_many(&mut self.tx, project_id, queue).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::StateWrite;

    fn h(s: &str) -> ContentHash {
        ContentHash::of(s.as_bytes())
    }
    fn p(s: &str) -> ProjectPath {
        ProjectPath::new(s.to_string()).unwrap()
    }
    fn entry(s: &str) -> IndexEntry {
        IndexEntry {
            size: s.len() as u64,
            mtime_ns: 7,
            hash: h(s),
        }
    }
    fn chunks(s: &str, n: u32) -> Vec<ChunkRef> {
        (0..n)
            .map(|i| ChunkRef {
                offset: i as u64 * 10,
                len: 10,
                hash: h(&format!("{s}{i}")),
            })
            .collect()
    }

    /// The writes of a run land as if written one after another: each
    /// path ends with its last write; only what an `Applied` clears goes.
    #[tokio::test]
    async fn applied_writes_end_as_if_written_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let state = LocalState::open(dir.path()).await.unwrap();
        let pid = "p";
        // Before: "a" has a queued change and two set-aside events (seq 3
        // and 9); "b" has chunk rows of an old version; "d" is indexed and
        // agreed; "keep" has a queued change no write touches.
        let mut b = state.batch().await.unwrap();
        for path in ["a", "keep"] {
            let change: Change = serde_json::from_value(serde_json::json!({
                "op": "update", "path": path, "hash": h("mine").to_hex(), "size": 4,
                "change_id": format!("c-{path}"),
            }))
            .unwrap();
            b.record(pid, &p(path), Some(&change), Some(&entry("mine")))
                .await
                .unwrap();
        }
        b.set_chunks(pid, &p("b"), &h("old"), &chunks("old", 3))
            .await
            .unwrap();
        b.record(pid, &p("d"), None, Some(&entry("d")))
            .await
            .unwrap();
        b.commit().await.unwrap();
        state.set_base(pid, "d", Some(&h("d"))).await.unwrap();
        state.set_aside(pid, 3, "a", "r", None).await.unwrap();
        state.set_aside(pid, 9, "a", "r", None).await.unwrap();

        let writes = vec![
            StateWrite::Applied {
                path: p("a"),
                entry: Some(entry("a1")),
                base: Some(h("a1")),
                seq: 5,
                chunks: vec![],
            },
            StateWrite::Applied {
                path: p("b"),
                entry: Some(entry("b2")),
                base: Some(h("b2")),
                seq: 6,
                chunks: chunks("b2", 2),
            },
            StateWrite::Base {
                path: p("c"),
                hash: Some(h("c3")),
            },
            StateWrite::Applied {
                path: p("d"),
                entry: None,
                base: None,
                seq: 7,
                chunks: vec![],
            },
            // A later write of the same path wins.
            StateWrite::Base {
                path: p("a"),
                hash: Some(h("a4")),
            },
        ];
        state.write_applied(pid, &writes).await.unwrap();

        let index = state.index(pid).await.unwrap();
        assert_eq!(index.get("a"), Some(&entry("a1")));
        assert_eq!(index.get("b"), Some(&entry("b2")));
        assert_eq!(index.get("d"), None, "a delete drops the entry");
        assert_eq!(state.base(pid, "a").await.unwrap(), Some(h("a4")));
        assert_eq!(state.base(pid, "b").await.unwrap(), Some(h("b2")));
        assert_eq!(state.base(pid, "c").await.unwrap(), Some(h("c3")));
        assert_eq!(state.base(pid, "d").await.unwrap(), None);
        let queued: Vec<String> = state
            .outbox_batch(pid, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|q| q.change.path.to_string())
            .collect();
        assert_eq!(queued, ["keep"], "an applied path's queued change is moot");
        let aside: Vec<u64> = sqlx::query_scalar::<_, i64>(
            "SELECT seq FROM set_aside WHERE project_id = 'p' ORDER BY seq",
        )
        .fetch_all(&state.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s as u64)
        .collect();
        assert_eq!(aside, [9], "set-aside events up to the applied seq go");
        assert!(state
            .chunks_of(pid, "b", &h("old"))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            state.chunks_of(pid, "b", &h("b2")).await.unwrap(),
            chunks("b2", 2)
        );
    }

    /// A look's records land at once: index entries, a path back at its
    /// agreed version loses its queued change, new changes queue in order.
    #[tokio::test]
    async fn a_look_is_recorded_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let state = LocalState::open(dir.path()).await.unwrap();
        let pid = "p";
        let change = |path: &str, what: &str| -> Change {
            serde_json::from_value(serde_json::json!({
                "op": "update", "path": path, "hash": h(what).to_hex(), "size": 4,
                "change_id": format!("c-{path}-{what}"),
            }))
            .unwrap()
        };
        let mut b = state.batch().await.unwrap();
        b.record(
            pid,
            &p("back"),
            Some(&change("back", "x")),
            Some(&entry("x")),
        )
        .await
        .unwrap();
        b.commit().await.unwrap();

        let mut b = state.batch().await.unwrap();
        let (e1, e2) = (entry("back"), entry("n2"));
        let index = [("back", Some(&e1)), ("n2", Some(&e2)), ("gone", None)];
        let agreed = [("back", Some(h("back")))];
        let queue = [change("n2", "n2"), change("n1", "n1")];
        b.record_many(pid, &index, &agreed, &queue).await.unwrap();
        b.commit().await.unwrap();

        let ix = state.index(pid).await.unwrap();
        assert_eq!(ix.get("back"), Some(&e1));
        assert_eq!(ix.get("n2"), Some(&e2));
        assert!(!ix.contains_key("gone"));
        assert_eq!(state.base(pid, "back").await.unwrap(), Some(h("back")));
        let queued: Vec<String> = state
            .outbox_batch(pid, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|q| q.change.path.to_string())
            .collect();
        assert_eq!(queued, ["n2", "n1"], "queued in order; 'back' is moot");
    }
}

#[cfg(test)]
mod posted_tests {
    use super::*;

    fn change(path: &str, hash: Option<&str>) -> Change {
        serde_json::from_value(serde_json::json!({
            "op": if hash.is_some() { "update" } else { "delete" },
            "path": path,
            "hash": hash.map(|s| ContentHash::of(s.as_bytes()).to_hex()),
            "size": hash.map(|s| s.len()),
            "change_id": format!("c-{path}"),
        }))
        .unwrap()
    }

    /// A posted batch leaves the outbox and its versions are agreed, in one
    /// go; rows not in the batch stay, and a delete forgets the base.
    #[tokio::test]
    async fn a_posted_batch_leaves_the_outbox_and_becomes_agreed() {
        let dir = tempfile::tempdir().unwrap();
        let state = LocalState::open(dir.path()).await.unwrap();
        let pid = "p";
        let h = |s: &str| ContentHash::of(s.as_bytes());
        state.set_base(pid, "gone", Some(&h("old"))).await.unwrap();
        let mut b = state.batch().await.unwrap();
        let queued = [
            change("a", Some("a1")),
            change("gone", None),
            change("later", Some("l1")),
        ];
        b.record_many(pid, &[], &[], &queued).await.unwrap();
        b.commit().await.unwrap();
        let rows = state.outbox_batch(pid, 10).await.unwrap();
        assert_eq!(rows.len(), 3);
        let ids: Vec<i64> = rows[..2].iter().map(|q| q.id).collect();
        state
            .posted(pid, &ids, &[("a", Some(h("a1"))), ("gone", None)])
            .await
            .unwrap();
        let left = state.outbox_batch(pid, 10).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].change.path.as_str(), "later");
        assert_eq!(state.base(pid, "a").await.unwrap(), Some(h("a1")));
        assert_eq!(state.base(pid, "gone").await.unwrap(), None);
        assert_eq!(state.base(pid, "later").await.unwrap(), None);
    }
}

#[cfg(test)]
mod index_for_tests {
    use super::*;

    /// A look at some paths reads their entries and those under them, and
    /// nothing beside them ("a0", "ab" and "a.txt" sort near "a/").
    #[tokio::test]
    async fn index_for_reads_a_path_and_what_is_under_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = LocalState::open(dir.path()).await.unwrap();
        let entry = |s: &str| IndexEntry {
            size: 1,
            mtime_ns: 1,
            hash: ContentHash::of(s.as_bytes()),
        };
        let all = ["a", "a/x", "a/y/z", "a.txt", "a0", "ab", "b/c", "bc"];
        let entries: Vec<IndexEntry> = all.iter().map(|p| entry(p)).collect();
        let rows: Vec<(&str, Option<&IndexEntry>)> =
            all.iter().copied().zip(entries.iter().map(Some)).collect();
        let mut b = state.batch().await.unwrap();
        b.record_many("p", &rows, &[], &[]).await.unwrap();
        b.commit().await.unwrap();
        let got = state.index_for("p", &["a", "bc", "nothing"]).await.unwrap();
        let mut keys: Vec<&str> = got.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, vec!["a", "a/x", "a/y/z", "bc"]);
        assert_eq!(got["a/y/z"], entry("a/y/z"));
        assert!(state.index_for("other", &["a"]).await.unwrap().is_empty());
    }
}
