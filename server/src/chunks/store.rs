//! Chunks on disk, per project, named by their BLAKE3 hash:
//! `<data-dir>/chunks/<project dir>/<2 hex>/<hash>`. Same "always whole"
//! rule as blobs: written to a temp file, flushed, synced, length and hash
//! checked, renamed into place, directory synced. Blocking (run it in
//! `spawn_blocking`); HTTP lives in [`super::routes`].

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use vidsync_protocol::ContentHash;

use crate::auth::random_hex;

#[derive(Clone)]
pub struct ChunkStore {
    root: PathBuf,
    tmp: PathBuf,
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
        let store = ChunkStore {
            root: data_dir.join("chunks"),
            tmp: data_dir.join("tmp"),
        };
        std::fs::create_dir_all(&store.root)?;
        std::fs::create_dir_all(&store.tmp)?;
        Ok(store)
    }

    pub fn path_of(&self, project_id: &str, hash: &ContentHash) -> PathBuf {
        // A URL segment never names a directory: hash it to a fixed form.
        let dir = blake3::hash(project_id.as_bytes()).to_hex();
        let hex = hash.to_hex();
        self.root.join(&dir[..32]).join(&hex[..2]).join(hex)
    }

    /// The size of a stored chunk, if it is stored.
    pub fn size_of(&self, project_id: &str, hash: &ContentHash) -> Option<u64> {
        std::fs::metadata(self.path_of(project_id, hash))
            .ok()
            .map(|m| m.len())
    }

    /// Stores `bytes` as chunk `hash` (already verified by the caller, and
    /// checked again here). Returns whether it was written now.
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
        let dest = self.path_of(project_id, hash);
        if std::fs::metadata(&dest).is_ok_and(|m| m.len() == bytes.len() as u64) {
            return Ok(false);
        }
        let tmp_path = self.tmp.join(format!("chunk-{}", random_hex(12)));
        let mut guard = TempGuard(Some(tmp_path.clone()));
        let mut file = std::fs::File::create(&tmp_path)?;
        file.write_all(bytes)?;
        file.flush()?;
        file.sync_all()?;
        let on_disk = file.metadata()?.len();
        drop(file);
        if on_disk != bytes.len() as u64 {
            return Err(std::io::Error::other(format!(
                "{on_disk} bytes on disk after writing {}",
                bytes.len()
            )));
        }
        let parent = dest.parent().map(Path::to_path_buf).unwrap_or_default();
        std::fs::create_dir_all(&parent)?;
        std::fs::rename(&tmp_path, &dest)?;
        guard.0 = None;
        std::fs::File::open(&parent)?.sync_all()?;
        Ok(true)
    }

    /// Reads a whole chunk.
    pub fn read(&self, project_id: &str, hash: &ContentHash) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        std::fs::File::open(self.path_of(project_id, hash))?.read_to_end(&mut out)?;
        Ok(out)
    }
}
