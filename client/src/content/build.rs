//! Building one version of a file in a temp file, from local bytes where
//! this client has them and fetched chunks for the rest (see the module
//! above). A temp file left by an earlier, interrupted build is kept as far
//! as its chunks check out, so a killed download resumes where it stopped.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use vidsync_protocol::chunking::{self, ChunkRef, Manifest, ManifestEntry, CHUNK_MAX, CHUNK_MIN};
use vidsync_protocol::{ContentHash, ProjectPath, MAX_FETCH_IDS};

use super::{Content, FETCH_BYTES};
use crate::api::{ApiError, DownloadError};

/// Where a build writes: the temp file, the whole-file hash so far, the
/// chunks placed.
struct Sink {
    file: std::fs::File,
    path: PathBuf,
    hasher: blake3::Hasher,
    at: u64,
    chunks: Vec<ChunkRef>,
}

impl Sink {
    fn put(&mut self, hash: ContentHash, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)?;
        self.hasher.update(bytes);
        self.chunks.push(ChunkRef {
            offset: self.at,
            len: bytes.len() as u32,
            hash,
        });
        self.at += bytes.len() as u64;
        Ok(())
    }
}

fn io_err(p: &Path) -> impl FnOnce(std::io::Error) -> DownloadError + '_ {
    move |e| DownloadError::Io(p.display().to_string(), e)
}

fn joined(p: &Path, e: tokio::task::JoinError) -> DownloadError {
    DownloadError::Io(p.display().to_string(), std::io::Error::other(e))
}

impl Content {
    /// Builds the version `hash` (`size` bytes) at `dest`, checked and
    /// synced to disk; returns its chunks (for the chunk index).
    /// `progress` hears the bytes placed, local or fetched.
    pub async fn build(
        &self,
        hash: &ContentHash,
        size: Option<u64>,
        dest: &Path,
        progress: &mut (impl FnMut(u64) + Send),
    ) -> Result<Vec<ChunkRef>, DownloadError> {
        // Fetched ahead (any file of at most one chunk's size that no local
        // file had when it was fetched).
        if let Some(bytes) = size
            .filter(|s| *s <= CHUNK_MAX as u64)
            .and(self.ahead(hash))
        {
            progress(bytes.len() as u64);
            return self.place(bytes, hash, dest).await;
        }
        if let Some(size) = size {
            if let Some(chunks) = self.copy_local(hash, size, dest).await? {
                tracing::debug!(%hash, "built from a local file with the same content");
                progress(size);
                return Ok(chunks);
            }
        }
        if let Some(size) = size.filter(|s| *s <= CHUNK_MIN as u64) {
            let bytes = match self.local_chunk(hash, size).await {
                Some(b) => b,
                None => match self.fetch_one(hash).await {
                    Ok(b) => b,
                    // Not (yet) a chunk on the server (a whole upload not
                    // cut yet, a v1 server): the blob route has it.
                    Err(DownloadError::Api(ApiError::Refused { status: 404, .. })) => {
                        return self.whole(hash, dest, progress).await;
                    }
                    Err(e) => return Err(e),
                },
            };
            progress(size);
            return self.place(bytes, hash, dest).await;
        }
        // Up to one chunk's worth, a whole GET is one round trip where a
        // manifest and a fetch are two, and there is little to reuse.
        if size.is_some_and(|s| s <= CHUNK_MAX as u64) {
            return self.whole(hash, dest, progress).await;
        }
        match self.api.manifest(&self.project_id, hash).await {
            Ok(Some(m)) => self.build_from(&m, hash, size, dest, progress).await,
            // No manifest: a whole blob from before chunking; fetch it whole.
            Ok(None) => self.whole(hash, dest, progress).await,
            Err(e) => Err(DownloadError::Api(e)),
        }
    }

    /// Writes a whole small file's `bytes` (at most one chunk's size) to
    /// `dest`, checked and synced; its chunks are cut in memory for the
    /// local chunk index.
    async fn place(
        &self,
        bytes: Bytes,
        hash: &ContentHash,
        dest: &Path,
    ) -> Result<Vec<ChunkRef>, DownloadError> {
        let mut sink = open_sink(dest, false)?;
        let h = *hash;
        if bytes.len() <= CHUNK_MIN as usize {
            // One small write, like the open above: a hop to a blocking
            // thread per file cost more than the write (a group of 128
            // files grew the pool by as many threads).
            sink.put(h, &bytes).map_err(io_err(dest))?;
            return self.finish(sink, hash).await;
        }
        let sink = tokio::task::spawn_blocking(move || {
            chunking::cut_each(&bytes[..], |c, b| sink.put(c.hash, b))?;
            Ok::<_, std::io::Error>(sink)
        })
        .await
        .map_err(|e| joined(dest, e))?
        .map_err(io_err(dest))?;
        self.finish(sink, hash).await
    }

    /// The v1 way: the whole blob (resuming with `Range`), checked, then cut
    /// for the chunk index.
    async fn whole(
        &self,
        hash: &ContentHash,
        dest: &Path,
        progress: &mut (impl FnMut(u64) + Send),
    ) -> Result<Vec<ChunkRef>, DownloadError> {
        self.api
            .download_blob(&self.project_id, hash, dest, &mut *progress)
            .await?;
        let d = dest.to_path_buf();
        let cut = tokio::task::spawn_blocking(move || crate::scan::cut_file(&d))
            .await
            .map_err(|e| joined(dest, e))?
            .map_err(io_err(dest))?;
        Ok(cut.chunks)
    }

    async fn fetch_one(&self, hash: &ContentHash) -> Result<Bytes, DownloadError> {
        let mut got = self.fetch(&[*hash]).await?;
        got.pop().ok_or(DownloadError::Mismatch(*hash))
    }

    /// Copies a local file whose index says it has this content, cutting
    /// it on the way; `None` when there is none (or none checks out).
    async fn copy_local(
        &self,
        hash: &ContentHash,
        size: u64,
        dest: &Path,
    ) -> Result<Option<Vec<ChunkRef>>, DownloadError> {
        let paths = self
            .state
            .files_with_hash(&self.project_id, hash)
            .await
            .unwrap_or_default();
        for p in paths {
            let Ok(pp) = ProjectPath::new(p) else {
                continue;
            };
            let src = pp.under(&self.root);
            if src == dest {
                continue;
            }
            let (d, h) = (dest.to_path_buf(), *hash);
            let copied = tokio::task::spawn_blocking(move || copy_cut(&src, &d, size, &h))
                .await
                .map_err(|e| joined(dest, e))?;
            if let Some(chunks) = copied {
                return Ok(Some(chunks));
            }
        }
        Ok(None)
    }

    /// Builds a multi-chunk file from its manifest, window by window.
    async fn build_from(
        &self,
        m: &Manifest,
        hash: &ContentHash,
        size: Option<u64>,
        dest: &Path,
        progress: &mut (impl FnMut(u64) + Send),
    ) -> Result<Vec<ChunkRef>, DownloadError> {
        let total: u64 = m.chunks.iter().map(|c| c.size as u64).sum();
        if m.hash != *hash || size.is_some_and(|s| s != m.size) || total != m.size {
            return Err(DownloadError::Mismatch(*hash));
        }
        // Keep what an interrupted build already wrote, as far as it checks out.
        let (d, entries) = (dest.to_path_buf(), m.chunks.clone());
        let mut sink = tokio::task::spawn_blocking(move || resume(&d, &entries))
            .await
            .map_err(|e| joined(dest, e))?
            .map_err(io_err(dest))?;
        let mut next = sink.chunks.len();
        if next > 0 {
            tracing::info!(%hash, offset = sink.at, "resuming a build");
            progress(sink.at);
        }
        while next < m.chunks.len() {
            let window = window(&m.chunks[next..]);
            let mut parts: Vec<Option<Bytes>> =
                window.iter().map(|e| self.ahead(&e.hash)).collect();
            // The rest from local files, looked up and read at once.
            let local: Vec<usize> = (0..window.len()).filter(|&i| parts[i].is_none()).collect();
            let wanted: Vec<(ContentHash, u64)> = local
                .iter()
                .map(|&i| (window[i].hash, window[i].size as u64))
                .collect();
            for (i, got) in local.into_iter().zip(self.local_chunks(&wanted).await) {
                parts[i] = got;
            }
            let mut missing = Vec::new();
            for (e, got) in window.iter().zip(&parts) {
                if got.is_none() && !missing.contains(&e.hash) {
                    missing.push(e.hash);
                }
            }
            let fetched = match missing.is_empty() {
                true => Vec::new(),
                false => self.fetch(&missing).await?,
            };
            let window_len = window.len();
            let entries: Vec<ManifestEntry> = window.to_vec();
            let d = dest.to_path_buf();
            let (s, placed) = tokio::task::spawn_blocking(move || {
                let mut placed = 0u64;
                for (e, part) in entries.iter().zip(parts) {
                    let bytes = match part {
                        Some(b) => b,
                        None => {
                            let at = missing.iter().position(|h| *h == e.hash);
                            match at.and_then(|i| fetched.get(i)) {
                                Some(b) => b.clone(),
                                None => {
                                    return Err(std::io::Error::other("a fetched chunk is missing"))
                                }
                            }
                        }
                    };
                    sink.put(e.hash, &bytes)?;
                    placed += bytes.len() as u64;
                }
                Ok((sink, placed))
            })
            .await
            .map_err(|e| joined(&d, e))?
            .map_err(io_err(dest))?;
            sink = s;
            progress(placed);
            next += window_len;
        }
        self.finish(sink, hash).await
    }

    /// Checks the whole file's hash and makes it durable (see
    /// [`super::durable`]); a wrong file is removed.
    async fn finish(&self, sink: Sink, hash: &ContentHash) -> Result<Vec<ChunkRef>, DownloadError> {
        let Sink {
            file,
            path,
            hasher,
            chunks,
            at,
        } = sink;
        if ContentHash::from(hasher.finalize()) != *hash {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(DownloadError::Mismatch(*hash));
        }
        self.syncer.sync(file, at).await.map_err(io_err(&path))?;
        Ok(chunks)
    }
}

/// The next entries to place in one go: at most [`FETCH_BYTES`] of content
/// and [`MAX_FETCH_IDS`] chunks.
fn window(entries: &[ManifestEntry]) -> &[ManifestEntry] {
    let mut bytes = 0u64;
    for (i, e) in entries.iter().enumerate() {
        bytes += e.size as u64;
        if i > 0 && (i >= MAX_FETCH_IDS || bytes > FETCH_BYTES) {
            return &entries[..i];
        }
    }
    entries
}

fn open_sink(dest: &Path, keep: bool) -> Result<Sink, DownloadError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(!keep)
        .open(dest)
        .map_err(io_err(dest))?;
    Ok(Sink {
        file,
        path: dest.to_path_buf(),
        hasher: blake3::Hasher::new(),
        at: 0,
        chunks: Vec::new(),
    })
}

/// Opens `dest` for a build of `entries`, keeping the leading chunks an
/// earlier build wrote that still hash right; the rest is cut off.
fn resume(dest: &Path, entries: &[ManifestEntry]) -> std::io::Result<Sink> {
    let mut sink = open_sink(dest, true).map_err(|e| match e {
        DownloadError::Io(_, e) => e,
        other => std::io::Error::other(other.to_string()),
    })?;
    let have = sink.file.metadata()?.len();
    let mut buf = Vec::new();
    for e in entries {
        let len = e.size as u64;
        if sink.at + len > have {
            break;
        }
        buf.resize(len as usize, 0);
        sink.file.read_exact(&mut buf)?;
        if ContentHash::of(&buf) != e.hash {
            break;
        }
        sink.hasher.update(&buf);
        sink.chunks.push(ChunkRef {
            offset: sink.at,
            len: e.size,
            hash: e.hash,
        });
        sink.at += len;
    }
    sink.file.set_len(sink.at)?;
    sink.file.seek(SeekFrom::Start(sink.at))?;
    Ok(sink)
}

/// Copies `src` to `dest` while cutting it; the chunks if it had `size`
/// bytes hashing to `hash`, else `None` (and `dest` removed).
fn copy_cut(src: &Path, dest: &Path, size: u64, hash: &ContentHash) -> Option<Vec<ChunkRef>> {
    let meta = std::fs::symlink_metadata(src).ok()?;
    if !meta.is_file() || meta.len() != size {
        return None;
    }
    let input = std::fs::File::open(src).ok()?;
    let mut out = std::fs::File::create(dest).ok()?;
    let cut = chunking::cut_each(
        std::io::BufReader::with_capacity(256 * 1024, input),
        |_, b| out.write_all(b),
    );
    match cut {
        Ok(c) if c.hash == *hash && c.size == size && out.sync_all().is_ok() => Some(c.chunks),
        _ => {
            drop(out);
            let _ = std::fs::remove_file(dest);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        let mut x = 88172645463325252u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn a_resumed_build_keeps_the_chunks_that_check_out_and_cuts_the_rest() {
        let bytes = data(1 << 20);
        let cut = chunking::cut(&bytes[..]).unwrap();
        assert!(cut.chunks.len() > 4);
        let entries = cut.manifest().chunks;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("t");
        // Three whole chunks, then half of the fourth, then garbage.
        let third = cut.chunks[3];
        let mut partial = bytes[..(third.offset + third.len as u64 / 2) as usize].to_vec();
        partial.extend_from_slice(&[0xAA; 5000]);
        std::fs::write(&dest, &partial).unwrap();
        let sink = resume(&dest, &entries).unwrap();
        assert_eq!(sink.chunks.len(), 3);
        assert_eq!(sink.at, third.offset);
        assert_eq!(std::fs::metadata(&dest).unwrap().len(), third.offset);
        // A damaged first chunk keeps nothing.
        let mut bad = bytes.clone();
        bad[10] ^= 1;
        std::fs::write(&dest, &bad).unwrap();
        let sink = resume(&dest, &entries).unwrap();
        assert_eq!((sink.chunks.len(), sink.at), (0, 0));
    }

    #[test]
    fn windows_stay_within_one_fetch() {
        let e = |size| ManifestEntry {
            hash: ContentHash::of(b"x"),
            size,
        };
        let big: Vec<ManifestEntry> = (0..200).map(|_| e(256 * 1024)).collect();
        assert_eq!(window(&big).len(), 64);
        let small: Vec<ManifestEntry> = (0..5000).map(|_| e(10)).collect();
        assert_eq!(window(&small).len(), MAX_FETCH_IDS);
    }
}
