//! Chunks on disk, per project, named by their BLAKE3 hash:
//! `<data-dir>/chunks/<project dir>/<2 hex>/<hash>`. Same "always whole"
//! rule as blobs: written to a temp file, flushed, synced, length and hash
//! checked, renamed into place, directory synced. A chunk found damaged
//! (wrong size or bytes, at start-up: [`super::check`], or when read) is
//! moved to `<data-dir>/quarantine/`: from then on it is missing, never
//! served, and the next upload of it stores it again. Chunks smaller than
//! the chunker's minimum are rows of one table instead ([`super::small`]),
//! under the same rules; a small chunk stored as a file by an older server
//! is still found and served. Blocking (run it in `spawn_blocking`); HTTP
//! lives in [`super::routes`].

use std::collections::{BTreeSet, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vidsync_protocol::chunking::CHUNK_MAX;
use vidsync_protocol::ContentHash;

use super::small::{is_small, SmallChunks};
use crate::auth::random_hex;
use crate::blob_store::{hash_file, move_to_quarantine};

#[derive(Clone)]
pub struct ChunkStore {
    pub(super) root: PathBuf,
    tmp: PathBuf,
    /// Shared with the blob store: damaged files kept for a look.
    quarantine: PathBuf,
    /// Chunks under the chunker's minimum size.
    pub(crate) small: Arc<SmallChunks>,
}

/// Deletes a temp file unless it was moved into place.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl ChunkStore {
    pub fn open(data_dir: &Path) -> std::io::Result<ChunkStore> {
        let root = data_dir.join("chunks");
        std::fs::create_dir_all(&root)?;
        std::fs::create_dir_all(data_dir.join("tmp"))?;
        Ok(ChunkStore {
            root,
            tmp: data_dir.join("tmp"),
            quarantine: data_dir.join("quarantine"),
            small: Arc::new(SmallChunks::open(&data_dir.join(super::small::FILE))?),
        })
    }

    pub(crate) fn project_dir(&self, project_id: &str) -> PathBuf {
        // A URL segment never names a directory: hash it to a fixed form.
        let dir = blake3::hash(project_id.as_bytes()).to_hex();
        self.root.join(&dir[..32])
    }

    pub fn path_of(&self, project_id: &str, hash: &ContentHash) -> PathBuf {
        let hex = hash.to_hex();
        self.project_dir(project_id).join(&hex[..2]).join(hex)
    }

    /// The size of a stored chunk, if it is stored. A row or file that
    /// cannot be read counts as absent: the sender uploads it again.
    pub fn size_of(&self, project_id: &str, hash: &ContentHash) -> Option<u64> {
        self.stored_size(project_id, hash).unwrap_or_else(|e| {
            tracing::warn!(chunk = %hash, error = %e, "reading the small-chunk table");
            None
        })
    }

    /// [`Self::size_of`], with the error when the table cannot be read
    /// (for callers to whom "absent" would be a wrong answer: retention).
    pub fn stored_size(
        &self,
        project_id: &str,
        hash: &ContentHash,
    ) -> std::io::Result<Option<u64>> {
        if let Some(n) = self.small.size(project_id, hash)? {
            return Ok(Some(n));
        }
        Ok(std::fs::metadata(self.path_of(project_id, hash))
            .ok()
            .map(|m| m.len()))
    }

    /// Stores `bytes` as chunk `hash` (already verified by the caller, and
    /// checked again here). Returns whether it was written now: a stored
    /// copy of the same length is kept, one of another length (damaged) is
    /// replaced.
    pub fn put(&self, project_id: &str, hash: &ContentHash, bytes: &[u8]) -> std::io::Result<bool> {
        let dest = self.path_of(project_id, hash);
        if std::fs::metadata(&dest).is_ok_and(|m| m.len() == bytes.len() as u64) {
            return Ok(false);
        }
        if ContentHash::from(blake3::hash(bytes)) != *hash {
            return Err(std::io::Error::other(format!(
                "chunk bytes do not hash to {hash}"
            )));
        }
        self.put_hashed(project_id, hash, bytes)
    }

    /// [`Self::put`] for bytes the caller has just hashed to `hash`.
    pub fn put_hashed(
        &self,
        project_id: &str,
        hash: &ContentHash,
        bytes: &[u8],
    ) -> std::io::Result<bool> {
        if is_small(bytes.len()) {
            let (stored, _) = self.small.insert_many(project_id, &[(hash, bytes)])?;
            return Ok(stored > 0);
        }
        let dest = self.path_of(project_id, hash);
        if stored_whole(&dest, hash, bytes.len()) {
            return Ok(false);
        }
        let (mut guard, file) = self.write_temp(bytes)?;
        file.sync_all()?;
        drop(file);
        let parent = dest.parent().map(Path::to_path_buf).unwrap_or_default();
        std::fs::create_dir_all(&parent)?;
        if let Some(tmp) = &guard.0 {
            std::fs::rename(tmp, &dest)?;
        }
        guard.0 = None;
        std::fs::File::open(&parent)?.sync_all()?;
        Ok(true)
    }

    /// Stores many chunks the caller has just hashed, durably, with two
    /// flushes of the filesystem for the whole batch instead of two
    /// `fsync`s per chunk (a 500-file upload spent most of its time in
    /// them): every temp file is written and its length checked, all are
    /// synced, renamed into place, and the renames synced. Same rule as
    /// [`Self::put_hashed`]: a chunk under its hash name is always whole.
    /// Small chunks go into their table in one transaction.
    /// Returns how many were written now and how many were already there.
    pub fn put_many<'a>(
        &self,
        project_id: &str,
        chunks: impl IntoIterator<Item = (&'a ContentHash, &'a [u8])>,
    ) -> std::io::Result<(u64, u64)> {
        let (small, big): (Vec<_>, Vec<_>) =
            chunks.into_iter().partition(|(_, b)| is_small(b.len()));
        // Files first: on a full disk they are what fails, and then no row
        // of the batch was written either.
        let (stored, present) = self.put_files(project_id, big)?;
        let (more, also) = self.small.insert_many(project_id, &small)?;
        Ok((stored + more, present + also))
    }

    /// [`Self::put_many`] for the chunks kept as files.
    fn put_files(
        &self,
        project_id: &str,
        chunks: Vec<(&ContentHash, &[u8])>,
    ) -> std::io::Result<(u64, u64)> {
        let mut present = 0u64;
        let mut seen = HashSet::new();
        // (temp guard, destination), in order.
        let mut written: Vec<(TempGuard, PathBuf)> = Vec::new();
        for (hash, bytes) in chunks {
            let dest = self.path_of(project_id, hash);
            // The same chunk twice in one batch is stored once.
            if seen.contains(&dest) || stored_whole(&dest, hash, bytes.len()) {
                present += 1;
                continue;
            }
            let (guard, _file) = self.write_temp(bytes)?;
            seen.insert(dest.clone());
            written.push((guard, dest));
        }
        let stored = written.len() as u64;
        if written.is_empty() {
            return Ok((0, present));
        }
        sync_filesystem(
            &self.tmp,
            written.iter().filter_map(|(g, _)| g.0.as_deref()),
        )?;
        let mut parents = BTreeSet::new();
        for (mut guard, dest) in written {
            let parent = dest.parent().map(Path::to_path_buf).unwrap_or_default();
            if !parents.contains(&parent) {
                std::fs::create_dir_all(&parent)?;
                parents.insert(parent);
            }
            if let Some(tmp) = &guard.0 {
                // On an error, this and the later temp files are removed.
                std::fs::rename(tmp, &dest)?;
            }
            guard.0 = None;
        }
        sync_filesystem(&self.root, parents.iter().map(PathBuf::as_path))?;
        Ok((stored, present))
    }

    /// Writes `bytes` to a new temp file (flushed, not synced) and checks
    /// the length on disk; the guard removes the file unless it is moved
    /// into place.
    fn write_temp(&self, bytes: &[u8]) -> std::io::Result<(TempGuard, std::fs::File)> {
        let tmp_path = self.tmp.join(format!("chunk-{}", random_hex(12)));
        let guard = TempGuard(Some(tmp_path.clone()));
        let mut file = std::fs::File::create(&tmp_path)?;
        file.write_all(bytes)?;
        file.flush()?;
        let on_disk = file.metadata()?.len();
        if on_disk != bytes.len() as u64 {
            return Err(std::io::Error::other(format!(
                "{on_disk} bytes on disk after writing {}",
                bytes.len()
            )));
        }
        Ok((guard, file))
    }

    /// Whether chunk `hash` is stored with its `size`. One of another size
    /// is quarantined (and so `false`): a stat, no read.
    pub fn intact(&self, project_id: &str, hash: &ContentHash, size: u64) -> std::io::Result<bool> {
        match self.small.size(project_id, hash)? {
            Some(n) if n == size => return Ok(true),
            Some(n) => {
                let why = format!("{n} bytes, not {size}");
                self.quarantine_row(project_id, hash, &why)?;
                return Ok(false);
            }
            None => {}
        }
        let path = self.path_of(project_id, hash);
        match std::fs::metadata(&path) {
            Ok(m) if m.len() == size => Ok(true),
            Ok(m) => {
                let why = format!("{} bytes, not {size}", m.len());
                self.quarantine(&path, Some(hash), &why)?;
                Ok(false)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads a whole chunk and checks that its bytes hash to `hash`; `None`
    /// when it is not stored, or is damaged (then it is quarantined).
    pub fn read_checked(
        &self,
        project_id: &str,
        hash: &ContentHash,
    ) -> std::io::Result<Option<Vec<u8>>> {
        if let Some(bytes) = self.small.get(project_id, hash)? {
            let got = ContentHash::of(&bytes);
            if got == *hash {
                return Ok(Some(bytes));
            }
            if !self.quarantine_row(project_id, hash, &format!("its bytes hash to {got}"))? {
                // Stored whole again meanwhile.
                return self.small.get(project_id, hash);
            }
            return Ok(None);
        }
        let path = self.path_of(project_id, hash);
        let mut out = Vec::new();
        match std::fs::File::open(&path) {
            Ok(f) => f.take(CHUNK_MAX as u64 + 1).read_to_end(&mut out)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let got = ContentHash::from(blake3::hash(&out));
        if got == *hash {
            return Ok(Some(out));
        }
        let why = format!("its bytes hash to {got}");
        self.quarantine(&path, Some(hash), &why)?;
        Ok(None)
    }

    /// Moves a damaged small-chunk row to quarantine: its bytes are written
    /// out as a file there, the row deleted, unless the row holds whole
    /// bytes by then (an upload stored it again meanwhile). Returns whether
    /// it was moved.
    pub(super) fn quarantine_row(
        &self,
        project_id: &str,
        hash: &ContentHash,
        reason: &str,
    ) -> std::io::Result<bool> {
        let removed = self
            .small
            .remove_if_damaged(project_id, hash, |b| ContentHash::of(b) != *hash)?;
        let Some(bytes) = removed else {
            return Ok(false);
        };
        std::fs::create_dir_all(&self.quarantine)?;
        let dest = self
            .quarantine
            .join(format!("{}.{}", hash.to_hex(), random_hex(4)));
        std::fs::write(&dest, &bytes)?;
        tracing::warn!(
            chunk = %hash, moved_to = %dest.display(), %reason,
            "damaged small chunk quarantined: no longer served, clients upload it again"
        );
        Ok(true)
    }

    /// Moves a damaged chunk file to quarantine. When it should be chunk
    /// `hash`, the moved file is checked again: an upload may have replaced
    /// the damaged copy with a whole one just before the move, and a whole
    /// chunk goes back (it is never lost to a race).
    pub(super) fn quarantine(
        &self,
        path: &Path,
        hash: Option<&ContentHash>,
        reason: &str,
    ) -> std::io::Result<()> {
        let dest = match move_to_quarantine(&self.quarantine, path) {
            Ok(dest) => dest,
            // Quarantined (or replaced) by someone else meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if let Some(hash) = hash {
            let small = std::fs::metadata(&dest)?.len() <= CHUNK_MAX as u64;
            if small && hash_file(&dest)? == *hash {
                std::fs::rename(&dest, path)?;
                return Ok(());
            }
        }
        tracing::warn!(
            chunk = %path.display(), moved_to = %dest.display(), %reason,
            "damaged chunk quarantined: no longer served, clients upload it again"
        );
        Ok(())
    }
}

/// Whether `dest` already holds a chunk of `len` bytes. One of another
/// length is damaged: said so, and to be replaced.
fn stored_whole(dest: &Path, hash: &ContentHash, len: usize) -> bool {
    match std::fs::metadata(dest) {
        Ok(m) if m.len() == len as u64 => true,
        Ok(m) => {
            tracing::warn!(chunk = %hash, stored = m.len(), whole = len, "replacing a damaged stored chunk");
            false
        }
        Err(_) => false,
    }
}

/// Makes what was written under `dir` durable: on Linux one `syncfs(2)` of
/// `dir`'s filesystem (it reports a failed write-back since Linux 5.8);
/// elsewhere an `fsync` of each of `each` (files, or directories whose
/// entries changed).
fn sync_filesystem<'a>(dir: &Path, each: impl Iterator<Item = &'a Path>) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let _ = each;
        let d = std::fs::File::open(dir)?;
        rustix::fs::syncfs(&d).map_err(std::io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        for p in each {
            std::fs::File::open(p)?.sync_all()?;
        }
        Ok(())
    }
}
