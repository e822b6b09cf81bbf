//! Retention (PROTOCOL.md v2): the content of every version is kept while it
//! was current at some moment of the last `--keep-versions-days` (so a
//! rewind to any time in that window finds its bytes), and the content of
//! each path's current version always; the rest is collected. Events are
//! never deleted: a collected hash is recorded in `collected`, and asking
//! for it answers 410 `gone`.
//!
//! Mark and sweep, per project, holding the event log's writer lock (no
//! append or restore decides meanwhile) and the content gate's write side.
//! What is kept besides the retained versions:
//! - content no event names yet (an upload in flight: chunks, a manifest, a
//!   whole file) younger than the grace period;
//! - content a client was told is present within the grace period (a
//!   "missing" answer, a `HEAD`, a re-upload): the client will post a change
//!   naming it without uploading it again. Routes that answer "present"
//!   hold the gate's read side while they look and record the claim, so a
//!   claim is either seen by the sweep or answered after it ("missing").
//!
//! The retention cutoff is computed from the `now` the caller passes (the
//! tests' injectable clock); the grace period is real time.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use futures_util::TryStreamExt;
use sqlx::Row;
use vidsync_protocol::chunking::{unpack_entries, PACKED_ENTRY_BYTES};
use vidsync_protocol::ContentHash;

use crate::db::{DbError, DbResult};
use crate::AppState;

/// Content clients were told is present, per project and hash, and when.
/// Claims older than the grace are dropped by the collector, and on insert
/// whenever the map has doubled since the last drop, so a busy server
/// between two collections holds at most about twice what one grace brings.
pub struct Claims {
    grace: Duration,
    inner: Mutex<ClaimMap>,
}

#[derive(Default)]
struct ClaimMap {
    by_project: HashMap<String, HashMap<ContentHash, Instant>>,
    len: usize,
    /// `len` right after the last drop of old claims.
    kept: usize,
}

impl ClaimMap {
    fn drop_older_than(&mut self, grace: Duration) {
        self.by_project.retain(|_, hashes| {
            hashes.retain(|_, at| at.elapsed() < grace);
            !hashes.is_empty()
        });
        self.len = self.by_project.values().map(HashMap::len).sum();
        self.kept = self.len;
    }
}

impl Claims {
    pub fn new(grace: Duration) -> Claims {
        Claims {
            grace,
            inner: Mutex::default(),
        }
    }

    pub fn claim<'a>(&self, project_id: &str, hashes: impl IntoIterator<Item = &'a ContentHash>) {
        let now = Instant::now();
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let project = match map.by_project.get_mut(project_id) {
            Some(p) => p,
            None => map.by_project.entry(project_id.to_string()).or_default(),
        };
        let before = project.len();
        for h in hashes {
            project.insert(*h, now);
        }
        let added = project.len() - before;
        map.len += added;
        if map.len > 2 * map.kept.max(10_000) {
            map.drop_older_than(self.grace);
        }
    }

    /// Drops claims older than the grace; the hashes of `project_id` still claimed.
    fn live(&self, project_id: &str) -> HashSet<ContentHash> {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.drop_older_than(self.grace);
        map.by_project
            .get(project_id)
            .map(|h| h.keys().copied().collect())
            .unwrap_or_default()
    }
}

/// What one collection removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Collected {
    pub manifests: u64,
    pub chunks: u64,
    pub blobs: u64,
    pub bytes: u64,
}

/// Collects every project's content that no retained version needs, with
/// versions superseded before `now - keep` out of retention.
pub async fn collect(state: &AppState, now: time::OffsetDateTime) -> DbResult<Collected> {
    let cutoff = now - time::Duration::seconds(state.retention.keep.as_secs() as i64);
    let projects: Vec<String> = sqlx::query("SELECT id FROM projects")
        .fetch_all(&state.db.pool)
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut total = Collected::default();
    for p in projects {
        let c = collect_project(state, &p, cutoff).await?;
        total.manifests += c.manifests;
        total.chunks += c.chunks;
        total.blobs += c.blobs;
        total.bytes += c.bytes;
    }
    metrics::counter!("vidsync_gc_runs_total").increment(1);
    metrics::counter!("vidsync_gc_bytes_collected_total").increment(total.bytes);
    if total != Collected::default() {
        tracing::info!(?total, "retention: old content collected");
    }
    Ok(total)
}

/// Runs [`collect`] every `interval` until the process ends.
pub async fn run(state: AppState, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = collect(&state, time::OffsetDateTime::now_utc()).await {
            tracing::warn!(error = %e, "retention: collection failed; tried again next time");
        }
    }
}

fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

async fn collect_project(
    state: &AppState,
    project_id: &str,
    cutoff: time::OffsetDateTime,
) -> DbResult<Collected> {
    let writer = state.db.lock_writer().await;
    let gate = state.retention.gate.write().await;
    let grace = state.retention.grace;
    let claimed = state.retention.claims.live(project_id);

    // Mark: every hash an event names, and those a retained version needs.
    let mut named = HashSet::new();
    let mut needed = HashSet::new();
    {
        let mut rows = sqlx::query(
            "SELECT path, hash, created_at FROM events INDEXED BY events_by_path
             WHERE project_id = ? ORDER BY path, seq",
        )
        .bind(project_id)
        .fetch(&state.db.pool);
        // The previous event of the same path: retained when the one that
        // superseded it came at or after the cutoff.
        let mut prev: Option<(String, Option<ContentHash>)> = None;
        while let Some(r) = rows.try_next().await? {
            let path: String = r.get(0);
            let hash = r
                .get::<Option<String>, _>(1)
                .map(|h| h.parse::<ContentHash>())
                .transpose()
                .map_err(|e| DbError::Corrupt(format!("event hash in {project_id}: {e}")))?;
            let at = parse_time(&r.get::<String, _>(2));
            if let Some((p, Some(h))) = &prev {
                // Unparseable time: kept (never collect on a doubt).
                if p == &path && at.is_none_or(|t| t >= cutoff) {
                    needed.insert(*h);
                }
                if p != &path {
                    needed.insert(*h); // the path's current version
                }
            }
            if let Some(h) = hash {
                named.insert(h);
            }
            prev = Some((path, hash));
        }
        if let Some((_, Some(h))) = prev {
            needed.insert(h);
        }
    }
    let keep = |h: &ContentHash| needed.contains(h) || claimed.contains(h);

    let mut out = Collected::default();
    // Manifests: kept ones keep their chunks.
    let mut needed_chunks = HashSet::new();
    let mut drop_manifests = Vec::new();
    {
        let mut rows =
            sqlx::query("SELECT hash, chunks, created_at FROM manifests WHERE project_id = ?")
                .bind(project_id)
                .fetch(&state.db.pool);
        while let Some(r) = rows.try_next().await? {
            let Ok(hash) = r.get::<String, _>(0).parse::<ContentHash>() else {
                continue;
            };
            let created = r
                .get::<Option<String>, _>(2)
                .and_then(|s| parse_time(&s))
                .map(SystemTime::from);
            let in_flight = !named.contains(&hash) && created.is_some() && young(created, grace);
            if keep(&hash) || in_flight {
                let bytes: Vec<u8> = r.get(1);
                let whole = bytes.len() - bytes.len() % PACKED_ENTRY_BYTES;
                for e in unpack_entries(&bytes[..whole]).unwrap_or_default() {
                    needed_chunks.insert(e.hash);
                }
            } else {
                drop_manifests.push(hash);
            }
        }
    }
    let mut tx = state.db.pool.begin().await?;
    for h in &drop_manifests {
        sqlx::query("DELETE FROM manifests WHERE project_id = ? AND hash = ?")
            .bind(project_id)
            .bind(h.to_hex())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    out.manifests = drop_manifests.len() as u64;

    // Chunk files and whole blobs.
    let sweep = Sweep {
        needed,
        claimed,
        needed_chunks,
        named,
        grace,
        chunk_dir: state.chunks.project_dir(project_id),
        blob_dir: state.blobs.project_dir(project_id),
    };
    let (small, pid) = (state.chunks.small.clone(), project_id.to_string());
    let (sweep, swept) = tokio::task::spawn_blocking(move || {
        let mut out = Collected::default();
        let r = sweep
            .dir(&sweep.chunk_dir, true, &mut out)
            .and_then(|()| sweep.dir(&sweep.blob_dir, false, &mut out))
            .and_then(|()| sweep.rows(&small, &pid, &mut out));
        (sweep, r.map(|()| out))
    })
    .await
    .map_err(|e| DbError::Corrupt(format!("retention sweep: {e}")))?;
    match swept {
        Ok(c) => {
            out.chunks = c.chunks;
            out.blobs = c.blobs;
            out.bytes = c.bytes;
        }
        Err(e) => {
            tracing::warn!(project = %project_id, error = %e, "retention: sweeping content failed part way")
        }
    }
    let keep = |h: &ContentHash| sweep.keep(h);
    let named = &sweep.named;

    // Record what is gone for good: named hashes no form of content holds.
    // One whose store cannot be read now is not recorded (it may be there).
    let unheld: Vec<ContentHash> = named.iter().filter(|h| !keep(h)).copied().collect();
    let (chunks, blobs, pid) = (
        state.chunks.clone(),
        state.blobs.clone(),
        project_id.to_string(),
    );
    let unheld = tokio::task::spawn_blocking(move || {
        unheld
            .into_iter()
            .filter(|h| {
                !blobs.path_of(&pid, h).is_file()
                    && chunks.stored_size(&pid, h).is_ok_and(|s| s.is_none())
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| DbError::Corrupt(format!("retention: looking for content: {e}")))?;
    let now = crate::clock::now_rfc3339();
    let mut tx = state.db.pool.begin_with("BEGIN IMMEDIATE").await?;
    for h in &unheld {
        let manifest = sqlx::query("SELECT 1 FROM manifests WHERE project_id = ? AND hash = ?")
            .bind(project_id)
            .bind(h.to_hex())
            .fetch_optional(&mut *tx)
            .await?;
        if manifest.is_none() {
            sqlx::query(
                "INSERT OR IGNORE INTO collected (project_id, hash, collected_at) VALUES (?, ?, ?)",
            )
            .bind(project_id)
            .bind(h.to_hex())
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    drop(gate);
    drop(writer);
    Ok(out)
}

/// Whether retention collected the content of `hash` (so a request for it
/// answers 410, not 404).
pub async fn was_collected(
    state: &AppState,
    project_id: &str,
    hash: &ContentHash,
) -> DbResult<bool> {
    Ok(
        sqlx::query("SELECT 1 FROM collected WHERE project_id = ? AND hash = ?")
            .bind(project_id)
            .bind(hash.to_hex())
            .fetch_optional(&state.db.pool)
            .await?
            .is_some(),
    )
}

/// Retention settings and shared state.
pub struct Retention {
    pub keep: Duration,
    pub interval: Option<Duration>,
    pub grace: Duration,
    pub claims: Claims,
    /// Read side: a route that tells a client content is present; write
    /// side: a sweep.
    pub gate: tokio::sync::RwLock<()>,
}

/// Whether a file modified at `modified` is younger than `grace` (unknown:
/// young, never collect on a doubt).
fn young(modified: Option<SystemTime>, grace: Duration) -> bool {
    modified
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_none_or(|age| age < grace)
}

/// What a sweep of one project's files keeps.
struct Sweep {
    needed: HashSet<ContentHash>,
    claimed: HashSet<ContentHash>,
    needed_chunks: HashSet<ContentHash>,
    named: HashSet<ContentHash>,
    grace: Duration,
    chunk_dir: PathBuf,
    blob_dir: PathBuf,
}

impl Sweep {
    fn keep(&self, h: &ContentHash) -> bool {
        self.needed.contains(h) || self.claimed.contains(h)
    }

    /// Removes the small-chunk rows nothing keeps, by the rule the chunk
    /// files follow.
    fn rows(
        &self,
        small: &crate::chunks::small::SmallChunks,
        project_id: &str,
        out: &mut Collected,
    ) -> std::io::Result<()> {
        let gone: Vec<ContentHash> = small
            .list(project_id)?
            .into_iter()
            .filter(|r| {
                let at = std::time::UNIX_EPOCH
                    .checked_add(Duration::from_secs(r.stored_at.max(0) as u64));
                self.goes(&r.hash, true, at)
            })
            .map(|r| r.hash)
            .collect();
        let (rows, bytes) = small.delete(project_id, &gone)?;
        out.chunks += rows;
        out.bytes += bytes;
        Ok(())
    }

    /// Whether stored content `hash` (a chunk or a whole blob, stored at
    /// `stored`) is collected: nothing keeps it, and it is not an upload in
    /// flight (young, and no version names it yet).
    fn goes(&self, hash: &ContentHash, is_chunk: bool, stored: Option<SystemTime>) -> bool {
        !self.kept(hash, is_chunk) && (self.named.contains(hash) || !young(stored, self.grace))
    }

    /// Whether something keeps stored content `hash`, whatever its age.
    fn kept(&self, hash: &ContentHash, is_chunk: bool) -> bool {
        self.keep(hash) || (is_chunk && self.needed_chunks.contains(hash))
    }

    /// Removes the files under `dir` (`<2 hex>/<hash>`) nothing keeps.
    fn dir(&self, dir: &Path, is_chunk: bool, out: &mut Collected) -> std::io::Result<()> {
        let fans = match std::fs::read_dir(dir) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for fan in fans {
            let fan = fan?.path();
            if !fan.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&fan)? {
                let f = f?;
                let Ok(hash) = f.file_name().to_string_lossy().parse::<ContentHash>() else {
                    continue;
                };
                // What is kept costs no stat.
                if self.kept(&hash, is_chunk) {
                    continue;
                }
                let meta = f.metadata()?;
                if !self.goes(&hash, is_chunk, meta.modified().ok()) {
                    continue;
                }
                match std::fs::remove_file(f.path()) {
                    Ok(()) => {
                        out.bytes += meta.len();
                        if is_chunk {
                            out.chunks += 1;
                        } else {
                            out.blobs += 1;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}
