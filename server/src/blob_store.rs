//! File content on disk, addressed by BLAKE3 hash, per project under
//! `<data-dir>/blobs/<project dir>/<2 hex>/<hash>`.
//!
//! Owns the rule "a file under its hash name is always whole": an upload is
//! streamed to a temp file while hashed, flushed (so a late write error such
//! as ENOSPC is seen), its length checked against what was received, synced,
//! and only then renamed into place (and the directory synced). At start-up
//! every stored blob is checked: one whose size matches no event that names
//! its hash, or (when no event names it yet) whose bytes do not hash to its
//! name, is moved to `<data-dir>/quarantine/` and so no longer served.
//! HTTP lives in `blobs`; this module knows nothing of requests.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use vidsync_protocol::ContentHash;

use crate::auth::random_hex;

#[derive(Clone)]
pub struct BlobStore {
    root: PathBuf,
    tmp: PathBuf,
    quarantine: PathBuf,
    pub max_bytes: u64,
}

/// Why an upload was not stored.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("the body was cut off: {0}")]
    Body(String),
    #[error("blob is over the server's limit of {0} bytes")]
    TooLarge(u64),
    #[error("the uploaded bytes hash to {got}, not {want}")]
    WrongHash { got: ContentHash, want: ContentHash },
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// What a successful upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Written now (also when it replaced a damaged copy).
    New(u64),
    /// A whole copy was already there.
    Existing,
}

/// Sizes the event log gives each (project, hash): the start-up check's
/// reference. Key: (project id, hash).
pub type KnownSizes = HashMap<(String, ContentHash), Vec<u64>>;

/// Deletes a temp file unless it was moved into place.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> PutError {
    move |source| PutError::Io { context, source }
}

impl BlobStore {
    pub fn open(data_dir: &Path, max_bytes: u64) -> std::io::Result<BlobStore> {
        let store = BlobStore {
            root: data_dir.join("blobs"),
            tmp: data_dir.join("tmp"),
            quarantine: data_dir.join("quarantine"),
            max_bytes,
        };
        std::fs::create_dir_all(&store.root)?;
        std::fs::create_dir_all(&store.tmp)?;
        // Leftovers of uploads cut short by a crash.
        for entry in std::fs::read_dir(&store.tmp)? {
            let _ = std::fs::remove_file(entry?.path());
        }
        Ok(store)
    }

    pub(crate) fn project_dir(&self, project_id: &str) -> PathBuf {
        // Project ids are server-made hex strings, but never trust a URL
        // segment with the file system: hash it into a fixed-form name.
        let dir = blake3::hash(project_id.as_bytes()).to_hex();
        self.root.join(&dir[..32])
    }

    pub fn path_of(&self, project_id: &str, hash: &ContentHash) -> PathBuf {
        let hex = hash.to_hex();
        self.project_dir(project_id).join(&hex[..2]).join(hex)
    }

    /// Whether a blob is stored (and so may be served).
    pub async fn contains(&self, project_id: &str, hash: &ContentHash) -> bool {
        tokio::fs::try_exists(self.path_of(project_id, hash))
            .await
            .unwrap_or(false)
    }

    /// Streams `body` to disk as blob `hash` of `project_id` (see the module
    /// doc for the steps that make the stored file whole).
    pub async fn put<S, E>(
        &self,
        project_id: &str,
        hash: ContentHash,
        mut body: S,
    ) -> Result<Stored, PutError>
    where
        S: Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let tmp_path = self.tmp.join(format!("upload-{}", random_hex(12)));
        let mut guard = TempGuard(Some(tmp_path.clone()));
        let mut file = tokio::fs::File::create(&tmp_path)
            .await
            .map_err(io("creating blob temp file"))?;
        let mut hasher = blake3::Hasher::new();
        let mut written: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| PutError::Body(e.to_string()))?;
            written += chunk.len() as u64;
            if written > self.max_bytes {
                return Err(PutError::TooLarge(self.max_bytes));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io("writing blob"))?;
        }
        let got = ContentHash::from(hasher.finalize());
        if got != hash {
            return Err(PutError::WrongHash { got, want: hash });
        }
        // tokio's File writes in the background: flush surfaces the error of
        // the last write (ENOSPC), which sync_all alone may not report.
        file.flush().await.map_err(io("writing blob"))?;
        file.sync_all().await.map_err(io("syncing blob"))?;
        let on_disk = file.metadata().await.map_err(io("checking blob"))?.len();
        drop(file);
        if on_disk != written {
            return Err(PutError::Io {
                context: "checking blob",
                source: std::io::Error::other(format!(
                    "{on_disk} bytes on disk after writing {written}"
                )),
            });
        }

        let dest = self.path_of(project_id, &hash);
        match tokio::fs::metadata(&dest).await {
            Ok(m) if m.len() == written => return Ok(Stored::Existing),
            Ok(m) => tracing::warn!(
                blob = %hash, stored = m.len(), whole = written,
                "replacing a damaged stored blob"
            ),
            Err(_) => {}
        }
        let parent = dest.parent().map(Path::to_path_buf).unwrap_or_default();
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(io("creating blob dir"))?;
        tokio::fs::rename(&tmp_path, &dest)
            .await
            .map_err(io("storing blob"))?;
        guard.0 = None;
        sync_dir(&parent).await.map_err(io("syncing blob dir"))?;
        Ok(Stored::New(written))
    }

    /// Checks every stored blob (see the module doc); returns how many were
    /// quarantined. Blocking: run before serving.
    pub fn check_all(&self, known: &KnownSizes, projects: &[String]) -> std::io::Result<usize> {
        let mut by_dir: HashMap<PathBuf, &str> = HashMap::new();
        for p in projects {
            by_dir.insert(self.project_dir(p), p);
        }
        let mut moved = 0;
        for project_dir in read_dirs(&self.root)? {
            let project = by_dir.get(&project_dir).copied();
            for prefix_dir in read_dirs(&project_dir)? {
                for entry in std::fs::read_dir(&prefix_dir)? {
                    let path = entry?.path();
                    if let Some(reason) = self.damage(&path, project, known)? {
                        self.quarantine(&path, &reason)?;
                        moved += 1;
                    }
                }
            }
        }
        Ok(moved)
    }

    /// Why a stored file is not a whole blob, if it is not.
    fn damage(
        &self,
        path: &Path,
        project: Option<&str>,
        known: &KnownSizes,
    ) -> std::io::Result<Option<String>> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Ok(hash) = name.parse::<ContentHash>() else {
            return Ok(Some("its name is not a hash".into()));
        };
        let len = std::fs::metadata(path)?.len();
        let sizes = project.and_then(|p| known.get(&(p.to_string(), hash)));
        match sizes {
            Some(sizes) if sizes.contains(&len) => Ok(None),
            Some(sizes) => Ok(Some(format!(
                "{len} bytes, but the log says {sizes:?} for this hash"
            ))),
            None => {
                let got = hash_file(path)?;
                Ok((got != hash).then(|| format!("its {len} bytes hash to {got}")))
            }
        }
    }

    fn quarantine(&self, path: &Path, reason: &str) -> std::io::Result<()> {
        let dest = move_to_quarantine(&self.quarantine, path)?;
        tracing::warn!(
            blob = %path.display(), moved_to = %dest.display(), %reason,
            "damaged blob quarantined: no longer served, clients upload it again"
        );
        Ok(())
    }
}

/// Moves a damaged file into `quarantine` (kept for a look, never served)
/// under its name plus a random suffix; returns where it went.
pub(crate) fn move_to_quarantine(quarantine: &Path, path: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(quarantine)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("blob");
    let dest = quarantine.join(format!("{name}.{}", random_hex(4)));
    std::fs::rename(path, &dest)?;
    Ok(dest)
}

pub(crate) fn read_dirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            out.push(entry.path());
        }
    }
    Ok(out)
}

pub(crate) fn hash_file(path: &Path) -> std::io::Result<ContentHash> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(ContentHash::from(hasher.finalize()))
}

/// Makes a rename in `dir` durable.
async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
        .await
        .map_err(std::io::Error::other)?
}
