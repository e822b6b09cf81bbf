//! The applier: makes a receiving folder follow the project's events.
//!
//! It plans, then acts. [`plan`] is a pure function from (the event, what is
//! on disk, the version both sides last agreed on) to what to do, tested on
//! every case below; [`Applier`] does the I/O. Remote content is downloaded
//! to a temp file beside its target (resumable with `Range`), checked
//! against its hash, synced to disk and renamed over the target, so no
//! partial file ever stands under the real name. A local edit that a remote
//! change would overwrite is first kept as
//! `name.sync-conflict-YYYYMMDD-HHMMSS-<client>.ext`. Nothing is written
//! outside the folder: paths are `ProjectPath`s and no symlink inside the
//! folder is followed.

use std::path::{Path, PathBuf};

use vidsync_protocol::{ContentHash, Op, ProjectEvent, ProjectPath};

use crate::api::{ApiClient, DownloadError};
use crate::scan::{self, TEMP_PREFIX};
use crate::state::{IndexEntry, LocalState};

/// What to do with one remote event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Nothing on disk to change.
    Nothing,
    /// The disk already holds the remote version: just remember it.
    Adopt,
    /// Write the remote version; first keep the local file as a conflict copy.
    Write { keep_local: bool },
    /// Remove the file; or, if it was edited locally, keep it as a conflict copy.
    Delete { keep_local: bool },
}

/// Decides what a remote event does to a path, given the hash on disk
/// (`None`: no file) and the hash both sides last agreed on.
pub fn plan(
    op: Op,
    remote: Option<ContentHash>,
    disk: Option<ContentHash>,
    base: Option<ContentHash>,
) -> Plan {
    match (op, disk) {
        (Op::Delete, None) => Plan::Nothing,
        (Op::Delete, Some(d)) => Plan::Delete {
            keep_local: base != Some(d),
        },
        // A local delete loses to a remote write: the file comes back.
        (_, None) => Plan::Write { keep_local: false },
        (_, Some(d)) if Some(d) == remote => Plan::Adopt,
        (_, Some(d)) => Plan::Write {
            keep_local: base != Some(d),
        },
    }
}

/// The name a conflict copy of `path` takes.
pub fn conflict_name(path: &ProjectPath, client_id: &str, at: time::OffsetDateTime) -> String {
    let name = path.components().last().unwrap_or("file");
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], Some(&name[i + 1..])),
        _ => (name, None),
    };
    let stamp = format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        at.year(),
        at.month() as u8,
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    match ext {
        Some(ext) => format!("{stem}.sync-conflict-{stamp}-{client_id}.{ext}"),
        None => format!("{stem}.sync-conflict-{stamp}-{client_id}"),
    }
}

/// What an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Nothing,
    Adopted,
    Wrote { conflict: Option<String> },
    Deleted { conflict: Option<String> },
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
    #[error("event {0} has no hash")]
    NoHash(u64),
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> ApplyError + '_ {
    move |e| ApplyError::Io(p.display().to_string(), e)
}

/// Applies one project's events to one folder.
#[derive(Clone)]
pub struct Applier {
    pub api: ApiClient,
    pub state: LocalState,
    pub root: PathBuf,
    pub project_id: String,
    pub client_id: String,
}

impl Applier {
    /// Makes sure every directory between the root and `path` is a real
    /// directory inside the folder (creating missing ones); returns the
    /// parent directory. A symlink on the way is refused.
    fn safe_parent(&self, path: &ProjectPath) -> Result<PathBuf, ApplyError> {
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

    /// The hash of the file at `path` now (the index spares a re-hash when
    /// size and mtime still match).
    async fn disk_hash(
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
        Ok(Some((
            hash,
            IndexEntry {
                size,
                mtime_ns: mtime_ns(&meta),
                hash,
            },
        )))
    }

    /// Notes one of this client's own events: that version is agreed on.
    pub async fn note_own(&self, ev: &ProjectEvent) -> Result<(), ApplyError> {
        self.state
            .set_base(
                &self.project_id,
                ev.change.path.as_str(),
                ev.change.hash.as_ref(),
            )
            .await?;
        Ok(())
    }

    /// Applies a remote event; `progress` hears downloaded byte counts.
    pub async fn apply(
        &self,
        ev: &ProjectEvent,
        progress: impl FnMut(u64),
    ) -> Result<Applied, ApplyError> {
        let path = &ev.change.path;
        let parent = self.safe_parent(path)?;
        let target = path.under(&self.root);
        let disk = self.disk_hash(path).await?;
        let base = self.state.base(&self.project_id, path.as_str()).await?;
        let step = plan(
            ev.change.op,
            ev.change.hash,
            disk.as_ref().map(|d| d.0),
            base,
        );
        tracing::debug!(seq = ev.seq, %path, ?step, "applying");
        let base_after = ev.change.hash;
        let (done, entry) = match step {
            Plan::Nothing => (Applied::Nothing, None),
            Plan::Adopt => (Applied::Adopted, disk.map(|d| d.1)),
            Plan::Write { keep_local } => {
                let hash = ev.change.hash.ok_or(ApplyError::NoHash(ev.seq))?;
                let temp = parent.join(format!("{TEMP_PREFIX}{}", &hash.to_hex()[..24]));
                self.api
                    .download_blob(&self.project_id, &hash, &temp, progress)
                    .await?;
                let conflict = if keep_local {
                    Some(self.keep_local(path, &parent).await?)
                } else {
                    None
                };
                std::fs::rename(&temp, &target).map_err(io(&target))?;
                let meta = std::fs::metadata(&target).map_err(io(&target))?;
                (
                    Applied::Wrote { conflict },
                    Some(IndexEntry {
                        size: meta.len(),
                        mtime_ns: mtime_ns(&meta),
                        hash,
                    }),
                )
            }
            Plan::Delete { keep_local } => {
                let conflict = if keep_local {
                    Some(self.keep_local(path, &parent).await?)
                } else {
                    std::fs::remove_file(&target).map_err(io(&target))?;
                    self.remove_empty_dirs(&parent);
                    None
                };
                (Applied::Deleted { conflict }, None)
            }
        };
        // Index, agreed version, and the end of whatever was queued for this
        // path (moot now), in one transaction.
        self.state
            .applied(&self.project_id, path, entry.as_ref(), base_after.as_ref())
            .await?;
        Ok(done)
    }

    /// Renames the local file at `path` to a conflict copy beside it.
    async fn keep_local(&self, path: &ProjectPath, parent: &Path) -> Result<String, ApplyError> {
        let now = time::OffsetDateTime::now_utc();
        let mut name = conflict_name(path, &self.client_id, now);
        let mut n = 1;
        while parent.join(&name).exists() {
            name = format!("{}-{n}", conflict_name(path, &self.client_id, now));
            n += 1;
        }
        let from = path.under(&self.root);
        let to = parent.join(&name);
        std::fs::rename(&from, &to).map_err(io(&from))?;
        let rel = to
            .strip_prefix(&self.root)
            .unwrap_or(&to)
            .to_string_lossy()
            .to_string();
        self.state.add_conflict(&self.project_id, &rel).await?;
        tracing::warn!(path = %path, copy = %rel, "conflict: the local version is kept as a copy");
        Ok(rel)
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

fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Option<ContentHash> {
        Some(ContentHash::of(s.as_bytes()))
    }

    #[test]
    fn plan_covers_every_case() {
        use Op::*;
        // Deletes.
        assert_eq!(plan(Delete, None, None, h("a")), Plan::Nothing);
        assert_eq!(
            plan(Delete, None, h("a"), h("a")),
            Plan::Delete { keep_local: false }
        );
        assert_eq!(
            plan(Delete, None, h("edited"), h("a")),
            Plan::Delete { keep_local: true }
        );
        assert_eq!(
            plan(Delete, None, h("never synced"), None),
            Plan::Delete { keep_local: true }
        );
        // Writes.
        assert_eq!(
            plan(Create, h("r"), None, None),
            Plan::Write { keep_local: false }
        );
        assert_eq!(
            plan(Update, h("r"), None, h("a")),
            Plan::Write { keep_local: false },
            "remote edit beats local delete"
        );
        assert_eq!(plan(Update, h("r"), h("r"), h("a")), Plan::Adopt);
        assert_eq!(
            plan(Update, h("r"), h("a"), h("a")),
            Plan::Write { keep_local: false }
        );
        assert_eq!(
            plan(Update, h("r"), h("edited"), h("a")),
            Plan::Write { keep_local: true }
        );
        assert_eq!(
            plan(Create, h("r"), h("mine"), None),
            Plan::Write { keep_local: true },
            "same name made on both sides"
        );
    }

    #[test]
    fn conflict_names_keep_the_extension() {
        let at = time::macros::datetime!(2026-11-22 08:05:09 UTC);
        let p = |s: &str| ProjectPath::new(s).unwrap();
        assert_eq!(
            conflict_name(&p("a/report.final.txt"), "c_1", at),
            "report.final.sync-conflict-20261122-080509-c_1.txt"
        );
        assert_eq!(
            conflict_name(&p("Makefile"), "c_1", at),
            "Makefile.sync-conflict-20261122-080509-c_1"
        );
        assert_eq!(
            conflict_name(&p(".bashrc"), "c_1", at),
            ".bashrc.sync-conflict-20261122-080509-c_1"
        );
    }
}
