//! The applier: makes a receiving folder follow the project's events.
//!
//! It plans, then acts: [`crate::plan::plan_remote`] decides from the event,
//! the disk and the version both sides last agreed on; [`Applier`] does the
//! I/O and looks at the disk again right before it replaces anything.
//! Remote content is downloaded to a temp file beside its target (resumable
//! with `Range`), checked against its hash, synced to disk and renamed over
//! the target, so no partial file ever stands under the real name. A local edit that a remote
//! change would overwrite is first kept as
//! `name.sync-conflict-YYYYMMDD-HHMMSS-<client>.ext`. Nothing is written
//! outside the folder: paths are `ProjectPath`s and no symlink inside the
//! folder is followed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use vidsync_protocol::{ContentHash, ProjectEvent, ProjectPath};

use crate::api::DownloadError;
use crate::content::Content;
use crate::plan::{plan_remote, Facts, Remote, RemoteAction};
use crate::scan::{self, mtime_ns, TEMP_PREFIX};
use crate::state::{IndexEntry, LocalState};
use crate::Mode;

/// What an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Nothing on disk changed; the event's version is agreed now.
    Agreed,
    /// Our own event, but the file moved on: look at it again.
    Recheck,
    Adopted,
    Wrote {
        conflict: Option<String>,
    },
    Deleted {
        conflict: Option<String>,
    },
    /// A `send` folder: not applied, by design.
    Ignored,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("refusing to write {0}: {1}")]
    Unsafe(String, &'static str),
    #[error("{0}")]
    Download(#[from] DownloadError),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error(transparent)]
    State(#[from] crate::Error),
    #[error("event {0} set aside: {1}")]
    SetAside(u64, &'static str),
}

impl ApplyError {
    /// Worth trying again soon without moving on (the server or the
    /// network is away, the local database is busy); anything else is set
    /// aside with its reason.
    pub fn retry_soon(&self) -> bool {
        match self {
            ApplyError::Download(DownloadError::Api(e)) => e.retryable(),
            ApplyError::State(_) => true,
            _ => false,
        }
    }
}

pub(crate) fn io(p: &Path) -> impl FnOnce(std::io::Error) -> ApplyError + '_ {
    move |e| ApplyError::Io(p.display().to_string(), e)
}

/// Applies one project's events to one folder.
#[derive(Clone)]
pub struct Applier {
    /// Where new versions are built from (local chunks, the server).
    pub content: Content,
    pub state: LocalState,
    pub root: PathBuf,
    pub project_id: String,
    pub client_id: String,
    pub mode: Mode,
    /// When set, the state writes of applied events are kept here and
    /// written together by [`Applier::flush`] (one transaction for a run of
    /// events instead of one or more each); `None`: written at once.
    pub deferred: Option<Arc<Mutex<Deferred>>>,
}

/// The state writes of applied events not written yet, in order, and the
/// agreed version they give each path (read before the database's).
#[derive(Default)]
pub struct Deferred {
    writes: Vec<StateWrite>,
    bases: HashMap<String, Option<ContentHash>>,
    /// Index entries read ahead for our own events coming back (see
    /// [`Applier::preload`]); a path the run wrote is left out.
    index: HashMap<String, IndexEntry>,
}

/// What applying one event writes to the local state.
pub enum StateWrite {
    /// Index entry, agreed version, the end of whatever was queued for this
    /// path and of set-aside events for it up to `seq`, and the new
    /// version's chunks (for the chunk index), at once.
    Applied {
        path: ProjectPath,
        entry: Option<IndexEntry>,
        base: Option<ContentHash>,
        seq: u64,
        chunks: Vec<vidsync_protocol::chunking::ChunkRef>,
    },
    /// Only the agreed version.
    Base {
        path: ProjectPath,
        hash: Option<ContentHash>,
    },
}

impl StateWrite {
    fn path(&self) -> &ProjectPath {
        match self {
            StateWrite::Applied { path, .. } | StateWrite::Base { path, .. } => path,
        }
    }
    fn base(&self) -> Option<ContentHash> {
        match self {
            StateWrite::Applied { base, .. } => *base,
            StateWrite::Base { hash, .. } => *hash,
        }
    }
}

/// How a download ended.
enum Placed {
    /// In place, with its index entry and the conflict copy made, if any.
    Done {
        entry: IndexEntry,
        conflict: Option<String>,
        /// The new version's chunks (for the chunk index).
        chunks: Vec<vidsync_protocol::chunking::ChunkRef>,
    },
    /// The file changed during the download: plan again from this.
    Moved(Option<(ContentHash, IndexEntry)>),
}

/// How many times the disk may move under a download before we give up
/// for now (the event is then retried later).
const REPLANS: usize = 3;

impl Applier {
    /// The version both sides last agreed on for `path` (a deferred write
    /// first, else the database).
    async fn agreed(&self, path: &ProjectPath) -> Result<Option<ContentHash>, ApplyError> {
        if let Some(d) = &self.deferred {
            if let Some(base) = d
                .lock()
                .ok()
                .and_then(|d| d.bases.get(path.as_str()).copied())
            {
                return Ok(base);
            }
        }
        Ok(self.state.base(&self.project_id, path.as_str()).await?)
    }

    /// Reads ahead, in one query each, what applying a group at once needs
    /// (with deferred writes only; on error each event reads its own):
    /// the agreed versions of `paths` (a path with a deferred write keeps
    /// that), and the index entries of `own`, the paths of our own events
    /// coming back, so that [`Applier::apply_as`] tells such a file is still
    /// the version we sent from its stat, as a look does, instead of hashing
    /// it (a path written in this run is left out: its entry in the
    /// database is old).
    pub async fn preload(&self, paths: &[&str], own: &[&str]) {
        let Some(d) = &self.deferred else {
            return;
        };
        let bases = self.state.bases_of(&self.project_id, paths).await;
        let entries = match own.is_empty() {
            true => Ok(HashMap::new()),
            false => self.state.index_for(&self.project_id, own).await,
        };
        let Ok(mut d) = d.lock() else {
            return;
        };
        match bases {
            Ok(bases) => {
                for p in paths {
                    d.bases
                        .entry(p.to_string())
                        .or_insert_with(|| bases.get(*p).copied());
                }
            }
            Err(e) => tracing::debug!(%e, "reading agreed versions ahead"),
        }
        match entries {
            Ok(entries) => {
                let written: std::collections::HashSet<&str> =
                    d.writes.iter().map(|w| w.path().as_str()).collect();
                let fresh: Vec<(String, IndexEntry)> = own
                    .iter()
                    .filter(|p| !written.contains(**p))
                    .filter_map(|p| entries.get(*p).map(|e| (p.to_string(), e.clone())))
                    .collect();
                d.index.extend(fresh);
            }
            Err(e) => tracing::debug!(%e, "reading index entries ahead"),
        }
    }

    /// Records what applying an event wrote: kept for [`Applier::flush`],
    /// or written now.
    async fn record(&self, w: StateWrite) -> Result<(), ApplyError> {
        if let Some(d) = &self.deferred {
            if let Ok(mut d) = d.lock() {
                d.index.remove(w.path().as_str());
                d.bases.insert(w.path().to_string(), w.base());
                d.writes.push(w);
                return Ok(());
            }
        }
        Ok(self
            .state
            .write_applied(&self.project_id, std::slice::from_ref(&w))
            .await?)
    }

    /// Writes the deferred state writes in one transaction. On failure they
    /// are kept (nothing of them was written) and `flush` may be called again.
    pub async fn flush(&self) -> Result<(), crate::Error> {
        let Some(d) = &self.deferred else {
            return Ok(());
        };
        let writes = match d.lock() {
            Ok(mut d) => std::mem::take(&mut d.writes),
            Err(_) => return Ok(()),
        };
        if writes.is_empty() {
            return Ok(());
        }
        match self.state.write_applied(&self.project_id, &writes).await {
            Ok(()) => {
                if let Ok(mut d) = d.lock() {
                    if d.writes.is_empty() {
                        d.bases.clear();
                        d.index.clear();
                    }
                }
                Ok(())
            }
            Err(e) => {
                if let Ok(mut d) = d.lock() {
                    let later = std::mem::replace(&mut d.writes, writes);
                    d.writes.extend(later);
                }
                Err(e)
            }
        }
    }

    /// Drops the deferred state writes (their events will be applied again).
    pub fn forget(&self) {
        if let Some(Ok(mut d)) = self.deferred.as_ref().map(|d| d.lock()) {
            d.writes.clear();
            d.bases.clear();
            d.index.clear();
        }
    }

    /// Makes sure every directory between the root and `path` is a real
    /// directory inside the folder (creating missing ones); returns the
    /// parent directory. A symlink on the way is refused.
    pub(crate) fn safe_parent(&self, path: &ProjectPath) -> Result<PathBuf, ApplyError> {
        let comps: Vec<&str> = path.components().collect();
        let mut dir = self.root.clone();
        for c in &comps[..comps.len().saturating_sub(1)] {
            dir.push(c);
            match std::fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(ApplyError::Unsafe(
                        path.to_string(),
                        "a directory on its way is a symlink",
                    ))
                }
                Ok(m) if !m.is_dir() => {
                    return Err(ApplyError::Unsafe(
                        path.to_string(),
                        "a file stands where a directory should be",
                    ))
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    match std::fs::create_dir(&dir) {
                        Ok(()) => {}
                        // Made meanwhile (another download into the same new directory).
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                            let m = std::fs::symlink_metadata(&dir).map_err(io(&dir))?;
                            if m.file_type().is_symlink() || !m.is_dir() {
                                return Err(ApplyError::Unsafe(
                                    path.to_string(),
                                    "a directory on its way is not a directory",
                                ));
                            }
                        }
                        Err(e) => return Err(io(&dir)(e)),
                    }
                }
                Err(e) => return Err(io(&dir)(e)),
            }
        }
        let target = path.under(&self.root);
        if let Ok(m) = std::fs::symlink_metadata(&target) {
            if m.file_type().is_symlink() {
                return Err(ApplyError::Unsafe(path.to_string(), "it is a symlink"));
            }
            if m.is_dir() {
                return Err(ApplyError::Unsafe(
                    path.to_string(),
                    "a directory stands there",
                ));
            }
        }
        Ok(dir)
    }

    /// [`Applier::disk_hash`], trusting an index entry read ahead whose
    /// size and mtime the file still has (the test a look makes).
    async fn disk_known(
        &self,
        path: &ProjectPath,
    ) -> Result<Option<(ContentHash, IndexEntry)>, ApplyError> {
        let known = self
            .deferred
            .as_ref()
            .and_then(|d| d.lock().ok()?.index.get(path.as_str()).cloned());
        if let Some(k) = known {
            let full = path.under(&self.root);
            if let Ok(meta) = std::fs::symlink_metadata(&full) {
                if meta.is_file() && scan::stat_matches(&k, &meta) {
                    return Ok(Some((k.hash, k)));
                }
            }
        }
        self.disk_hash(path).await
    }

    /// The hash of the file at `path` now, with its index entry.
    pub(crate) async fn disk_hash(
        &self,
        path: &ProjectPath,
    ) -> Result<Option<(ContentHash, IndexEntry)>, ApplyError> {
        let full = path.under(&self.root);
        let Ok(meta) = std::fs::symlink_metadata(&full) else {
            return Ok(None);
        };
        if !meta.is_file() {
            return Ok(None);
        }
        let f = full.clone();
        let (hash, size) = tokio::task::spawn_blocking(move || scan::hash_file(&f))
            .await
            .map_err(|e| ApplyError::Io(full.display().to_string(), std::io::Error::other(e)))?
            .map_err(io(&full))?;
        let entry = IndexEntry {
            size,
            mtime_ns: mtime_ns(&meta),
            hash,
        };
        Ok(Some((hash, entry)))
    }

    /// Applies a remote event (or our own, coming back): plans it from the
    /// disk and the agreed version, then acts, re-checking the disk right
    /// before anything is replaced. `progress` hears downloaded byte counts.
    pub async fn apply(
        &self,
        ev: &ProjectEvent,
        progress: impl FnMut(u64) + Send,
    ) -> Result<Applied, ApplyError> {
        let own = ev.origin.client_id == self.client_id;
        self.apply_as(ev, own, progress).await
    }

    /// [`Applier::apply`], planning the event as ours (`own`) or not.
    pub(crate) async fn apply_as(
        &self,
        ev: &ProjectEvent,
        own: bool,
        mut progress: impl FnMut(u64) + Send,
    ) -> Result<Applied, ApplyError> {
        let path = &ev.change.path;
        let remote = Remote {
            op: ev.change.op,
            hash: ev.change.hash,
            own,
        };
        let agreed = self.agreed(path).await?;
        let mut disk = match own {
            true => self.disk_known(path).await?,
            false => self.disk_hash(path).await?,
        };
        let mut temp: Option<PathBuf> = None;
        let mut built = Vec::new();
        for _ in 0..REPLANS {
            let facts = Facts {
                disk: disk.as_ref().map(|d| d.0),
                agreed,
            };
            let step = plan_remote(facts, remote, self.mode);
            tracing::debug!(seq = ev.seq, %path, ?step, "applying");
            let hash = ev.change.hash;
            let mut chunks = Vec::new();
            let (done, entry) = match step {
                RemoteAction::Ignore => return Ok(Applied::Ignored),
                RemoteAction::SetAside(why) => return Err(ApplyError::SetAside(ev.seq, why)),
                RemoteAction::Agree { recheck } => {
                    // Nothing to write when it is agreed already: our own
                    // post, recorded when its answer came, or a delete of a
                    // file that is not here and was not agreed.
                    if agreed != hash {
                        self.record(StateWrite::Base {
                            path: path.clone(),
                            hash,
                        })
                        .await?;
                    }
                    return Ok(if recheck {
                        Applied::Recheck
                    } else {
                        Applied::Agreed
                    });
                }
                RemoteAction::Adopt => (Applied::Adopted, disk.map(|d| d.1)),
                RemoteAction::Download { keep_local } => {
                    match self
                        .download(ev, &mut temp, &disk, keep_local, &mut progress, &mut built)
                        .await?
                    {
                        Placed::Moved(now) => {
                            disk = now;
                            continue;
                        }
                        Placed::Done {
                            entry,
                            conflict,
                            chunks: c,
                        } => {
                            chunks = c;
                            (Applied::Wrote { conflict }, Some(entry))
                        }
                    }
                }
                RemoteAction::Delete { keep_local } => (self.delete(path, keep_local).await?, None),
            };
            self.record(StateWrite::Applied {
                path: path.clone(),
                entry,
                base: hash,
                seq: ev.seq,
                chunks,
            })
            .await?;
            return Ok(done);
        }
        Err(ApplyError::Io(
            path.to_string(),
            std::io::Error::other("the file kept changing while it was being replaced"),
        ))
    }

    /// Downloads the event's version (once: `temp` keeps it between
    /// replans) and renames it over the target, unless the file moved on
    /// meanwhile (`Placed::Moved`, with what is there now).
    async fn download(
        &self,
        ev: &ProjectEvent,
        temp: &mut Option<PathBuf>,
        disk: &Option<(ContentHash, IndexEntry)>,
        keep_local: bool,
        progress: &mut (impl FnMut(u64) + Send),
        built: &mut Vec<vidsync_protocol::chunking::ChunkRef>,
    ) -> Result<Placed, ApplyError> {
        let path = &ev.change.path;
        let parent = self.safe_parent(path)?;
        let hash = ev
            .change
            .hash
            .ok_or(ApplyError::SetAside(ev.seq, "no hash"))?;
        let t = parent.join(temp_name(path, &hash));
        if temp.is_none() {
            let chunks = self
                .content
                .build(&hash, ev.change.size, &t, progress)
                .await?;
            *temp = Some(t.clone());
            *built = chunks;
        }
        // Re-check: the file may have changed while we downloaded.
        let now = self.disk_hash(path).await?;
        if now.as_ref().map(|d| d.0) != disk.as_ref().map(|d| d.0) {
            return Ok(Placed::Moved(now));
        }
        let conflict = match keep_local {
            true => Some(self.keep_local(path, &parent).await?),
            false => None,
        };
        let target = path.under(&self.root);
        // The stat of what we built, taken before the rename (which keeps
        // it): after the rename the target may already hold a user's write,
        // and its stat recorded with our hash would hide that write.
        let meta = std::fs::metadata(&t).map_err(io(&t))?;
        std::fs::rename(&t, &target).map_err(io(&target))?;
        let entry = IndexEntry {
            size: meta.len(),
            mtime_ns: settled_mtime(&meta),
            hash,
        };
        Ok(Placed::Done {
            entry,
            conflict,
            chunks: std::mem::take(built),
        })
    }

    /// Deletes the file at `path` (or, with `keep_local`, keeps it as a
    /// conflict copy instead) and the directories it leaves empty.
    async fn delete(&self, path: &ProjectPath, keep_local: bool) -> Result<Applied, ApplyError> {
        let parent = self.safe_parent(path)?;
        if keep_local {
            let copy = self.keep_local(path, &parent).await?;
            return Ok(Applied::Deleted {
                conflict: Some(copy),
            });
        }
        let target = path.under(&self.root);
        match std::fs::remove_file(&target) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&target)(e)),
            _ => {}
        }
        self.remove_empty_dirs(&parent);
        Ok(Applied::Deleted { conflict: None })
    }

    /// Removes directories left empty, from `dir` up to (not including) the root.
    fn remove_empty_dirs(&self, dir: &Path) {
        let mut d = dir.to_path_buf();
        while d != self.root && d.starts_with(&self.root) {
            if std::fs::remove_dir(&d).is_err() {
                break;
            }
            if !d.pop() {
                break;
            }
        }
    }
}

/// The temp file a version of `path` is built in, beside it: named by the
/// version and by the file's name, so a build that was cut off resumes in
/// it, and two files of the same content in one directory, built at once,
/// never share one (they did: one renamed it away under the other).
fn temp_name(path: &ProjectPath, hash: &ContentHash) -> String {
    let name = path.components().last().unwrap_or_default();
    let tag = ContentHash::of(name.as_bytes()).to_hex();
    format!("{TEMP_PREFIX}{}-{}", &hash.to_hex()[..24], &tag[..8])
}

/// How recent a placed file's mtime must be for a write landing right
/// after the rename to share it: file times come from a coarse clock (a
/// tick is up to 10 ms on Linux), so a same-size write in the same tick
/// leaves size and mtime as they were.
const RACY: std::time::Duration = std::time::Duration::from_millis(50);

/// The mtime to index for a file just placed: its own, or, when it is so
/// recent that such a write would keep it, -1 (as a stale entry): the next
/// look then hashes the file once instead of trusting its stat (git calls
/// these entries "racily clean").
pub(crate) fn settled_mtime(meta: &std::fs::Metadata) -> i64 {
    let m = mtime_ns(meta);
    match scan::written_lately(m, RACY) {
        true => -1,
        false => m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file written just now is indexed as stale (-1), so a write in the
    /// same clock tick cannot hide behind its stat; an older one keeps its
    /// own mtime.
    #[test]
    fn a_file_placed_just_now_is_indexed_to_be_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "x").unwrap();
        let fresh = std::fs::metadata(&f).unwrap();
        assert_eq!(settled_mtime(&fresh), -1);
        scan::age(&f);
        let settled = std::fs::metadata(&f).unwrap();
        assert_eq!(settled_mtime(&settled), mtime_ns(&settled));
        assert!(settled_mtime(&settled) > 0);
    }

    async fn applier(dir: &std::path::Path) -> Applier {
        let root = dir.join("folder");
        std::fs::create_dir_all(&root).unwrap();
        let state = LocalState::open(&dir.join("state")).await.unwrap();
        let api = crate::api::ApiClient::new("http://127.0.0.1:9", "t").unwrap();
        Applier {
            content: Content::new(api, state.clone(), root.clone(), "p".into()),
            state,
            root,
            project_id: "p".into(),
            client_id: "me".into(),
            mode: Mode::SendReceive,
            deferred: Some(Default::default()),
        }
    }

    fn own_event(path: &str, body: &[u8]) -> ProjectEvent {
        serde_json::from_value(serde_json::json!({
            "seq": 1,
            "project_id": "p",
            "change": {
                "op": "update",
                "path": path,
                "hash": ContentHash::of(body).to_hex(),
                "size": body.len(),
            },
            "origin": {"user": "u", "client_id": "me"},
            "created_at": "2026-12-06T00:00:00Z",
        }))
        .unwrap()
    }

    /// Our own event coming back is told from the file's stat and its
    /// index entry, as a look tells it: agreed while the file is as it was
    /// indexed; looked at again once it was written since, even at the
    /// same size.
    #[tokio::test]
    async fn an_own_event_is_agreed_from_the_index_and_rechecked_after_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let a = applier(dir.path()).await;
        let f = a.root.join("f.txt");
        std::fs::write(&f, "v1").unwrap();
        scan::age(&f);
        let meta = std::fs::metadata(&f).unwrap();
        let entry = IndexEntry {
            size: meta.len(),
            mtime_ns: mtime_ns(&meta),
            hash: ContentHash::of(b"v1"),
        };
        let path = ProjectPath::new("f.txt").unwrap();
        a.state
            .write_applied(
                "p",
                &[StateWrite::Applied {
                    path: path.clone(),
                    entry: Some(entry),
                    base: Some(ContentHash::of(b"v1")),
                    seq: 0,
                    chunks: vec![],
                }],
            )
            .await
            .unwrap();
        let ev = own_event("f.txt", b"v1");
        a.preload(&["f.txt"], &["f.txt"]).await;
        assert!(matches!(
            a.apply(&ev, |_| {}).await.unwrap(),
            Applied::Agreed
        ));
        // Same size, written later: the stat no longer matches.
        std::fs::write(&f, "v2").unwrap();
        a.forget();
        a.preload(&["f.txt"], &["f.txt"]).await;
        assert!(matches!(
            a.apply(&ev, |_| {}).await.unwrap(),
            Applied::Recheck
        ));
    }
}
