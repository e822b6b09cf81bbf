//! Content v2 on the client: files move as content-defined chunks
//! (`vidsync_protocol::chunking`, `docs/protocol.md` "Content v2").
//!
//! - [`send`]: the sender's side. A batch of changes is cut into chunks,
//!   the server is asked which it lacks, only those go up (many files'
//!   chunks in few requests), then the manifests of multi-chunk files.
//! - [`build`]: the receiver's side. A version is built in a temp file from
//!   what is already on disk — a local file with the same content (a
//!   rename, a copy), chunks of other files (the previous version of the
//!   path) found through the local chunk index — plus the chunks fetched
//!   in batches; every chunk and the whole file are checked against their
//!   hashes. [`Content::prefetch`] fetches the one-chunk files of many
//!   pending events in one request before they are applied one by one.
//!
//! Writing the built file into place (conflict copies, rename, index) stays
//! with the applier; what to send stays with the folder loop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use vidsync_protocol::chunking::CHUNK_MAX;
use vidsync_protocol::{ContentHash, ProjectPath, MAX_FETCH_IDS};

use crate::api::{ApiClient, DownloadError};
use crate::state::{ChunkSource, LocalState};

mod build;
mod durable;
pub mod frames;
pub mod send;

pub use send::{send_content, Prepared, SendOutcome};

/// Bytes of chunks fetched per request (under the server's 32 MiB bound,
/// and what a build holds in memory at once).
pub(crate) const FETCH_BYTES: u64 = 16 * 1024 * 1024;
/// Bytes of one-chunk files a [`Content::prefetch`] holds at most.
const PREFETCH_BYTES: u64 = 64 * 1024 * 1024;

/// One project's content as seen from one folder: the server, the local
/// chunk index, and chunks fetched ahead for the events about to be applied.
#[derive(Clone)]
pub struct Content {
    pub api: ApiClient,
    pub state: LocalState,
    pub root: PathBuf,
    pub project_id: String,
    /// Small files fetched ahead, by hash (see [`Content::prefetch`]).
    ahead: Arc<Mutex<HashMap<ContentHash, Bytes>>>,
    /// Makes built files durable, sharing flushes between builds.
    syncer: durable::Syncer,
}

impl Content {
    pub fn new(api: ApiClient, state: LocalState, root: PathBuf, project_id: String) -> Content {
        Content {
            api,
            state,
            root,
            project_id,
            ahead: Arc::default(),
            syncer: durable::Syncer::default(),
        }
    }

    /// Fetches, in as few requests as the limits allow, the content of the
    /// files of at most one chunk's size (256 KiB) among `wanted` (hash,
    /// size) that no local file has (the server's `chunks/fetch` serves such
    /// a file by its hash however it stores it),
    /// and keeps it for the builds that follow. What was kept from an
    /// earlier call is dropped. A failure only means the builds fetch
    /// for themselves.
    pub async fn prefetch(&self, wanted: &[(ContentHash, u64)]) {
        if let Ok(mut ahead) = self.ahead.lock() {
            ahead.clear();
        }
        let small: Vec<ContentHash> = wanted
            .iter()
            .filter(|(_, size)| *size <= CHUNK_MAX as u64)
            .map(|(h, _)| *h)
            .collect();
        // A file some local file already has is copied, not fetched.
        let local = self
            .state
            .hashes_on_disk(&self.project_id, &small)
            .await
            .unwrap_or_default();
        let mut ids = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut total = 0u64;
        for (hash, size) in wanted {
            if *size > CHUNK_MAX as u64 || local.contains(hash) || !seen.insert(*hash) {
                continue;
            }
            if total + size > PREFETCH_BYTES {
                break;
            }
            total += size;
            ids.push((*hash, *size));
        }
        for batch in batches(&ids, |(_, s)| *s) {
            let hashes: Vec<ContentHash> = batch.iter().map(|(h, _)| *h).collect();
            match self.fetch(&hashes).await {
                Ok(got) => {
                    if let Ok(mut ahead) = self.ahead.lock() {
                        ahead.extend(hashes.into_iter().zip(got));
                    }
                }
                Err(e) => {
                    tracing::debug!(%e, "prefetch failed; builds fetch for themselves");
                    return;
                }
            }
        }
    }

    /// A chunk fetched ahead, if any.
    fn ahead(&self, hash: &ContentHash) -> Option<Bytes> {
        self.ahead.lock().ok()?.get(hash).cloned()
    }

    /// Fetches `ids` (within one request's limits), in order, checked:
    /// frames that do not check out, or other chunks than asked, are a
    /// wrong download (`Mismatch`, named by the first id).
    async fn fetch(&self, ids: &[ContentHash]) -> Result<Vec<Bytes>, DownloadError> {
        let body = self
            .api
            .fetch_chunks(&self.project_id, ids)
            .await
            .map_err(DownloadError::Api)?;
        let wrong =
            || DownloadError::Mismatch(ids.first().copied().unwrap_or(ContentHash::of(b"")));
        let frames = frames::decode(&body).map_err(|e| {
            tracing::warn!(%e, "chunks/fetch sent frames that do not check out");
            wrong()
        })?;
        if frames.len() != ids.len() || frames.iter().zip(ids).any(|((h, _), id)| h != id) {
            return Err(wrong());
        }
        Ok(frames.into_iter().map(|(_, b)| b).collect())
    }

    /// The chunk `hash` of `len` bytes from a local file, re-hashed; `None`
    /// when no local file has it (any more).
    async fn local_chunk(&self, hash: &ContentHash, len: u64) -> Option<Bytes> {
        self.local_chunks(&[(*hash, len)]).await.pop().flatten()
    }

    /// [`Content::local_chunk`] for each of `wanted`, in order: their
    /// sources looked up at once and read on one blocking thread, each
    /// file opened once.
    async fn local_chunks(&self, wanted: &[(ContentHash, u64)]) -> Vec<Option<Bytes>> {
        let hashes: Vec<ContentHash> = wanted.iter().map(|(h, _)| *h).collect();
        let Ok(mut sources) = self.state.chunk_sources(&self.project_id, &hashes).await else {
            return vec![None; wanted.len()];
        };
        let want: Vec<(ContentHash, u64, Vec<ChunkSource>)> = wanted
            .iter()
            .map(|(h, len)| (*h, *len, sources.remove(h).unwrap_or_default()))
            .collect();
        let root = self.root.clone();
        let n = wanted.len();
        tokio::task::spawn_blocking(move || {
            let mut open = std::collections::HashMap::new();
            want.iter()
                .map(|(hash, len, srcs)| {
                    srcs.iter()
                        .filter(|s| s.len == *len)
                        .find_map(|s| read_local_cached(&root, s, hash, &mut open))
                })
                .collect()
        })
        .await
        .unwrap_or_else(|_| vec![None; n])
    }
}

/// Reads a chunk from a local file and checks its hash; each file opened
/// (or not) is kept in `open` for the next chunk from it.
fn read_local_cached(
    root: &Path,
    src: &ChunkSource,
    hash: &ContentHash,
    open: &mut std::collections::HashMap<String, Option<std::fs::File>>,
) -> Option<Bytes> {
    let f = open
        .entry(src.path.clone())
        .or_insert_with(|| open_local(root, &src.path))
        .as_mut()?;
    // A file shorter than the chunk's end fails the read.
    read_checked(f, src.offset, src.len, hash).map(Bytes::from)
}

/// A regular file under `root` reached by a valid project path, opened.
fn open_local(root: &Path, path: &str) -> Option<std::fs::File> {
    let path = ProjectPath::new(path.to_string()).ok()?.under(root);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() {
        return None;
    }
    std::fs::File::open(&path).ok()
}

/// `len` bytes of `f` from `offset`, if they hash to `hash` (the file may
/// have changed since it was indexed or cut).
pub(crate) fn read_checked(
    f: &mut std::fs::File,
    offset: u64,
    len: u64,
    hash: &ContentHash,
) -> Option<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    f.seek(SeekFrom::Start(offset)).ok()?;
    let mut buf = vec![0u8; len as usize];
    f.read_exact(&mut buf).ok()?;
    (ContentHash::of(&buf) == *hash).then_some(buf)
}

/// Splits items into runs that fit one `chunks/fetch` (≤ [`MAX_FETCH_IDS`]
/// ids, ≤ [`FETCH_BYTES`] of content).
pub(crate) fn batches<T>(items: &[T], size: impl Fn(&T) -> u64) -> Vec<&[T]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0usize, 0u64);
    for (i, item) in items.iter().enumerate() {
        let s = frames::framed_len(size(item));
        if i > start && (i - start >= MAX_FETCH_IDS || bytes + s > FETCH_BYTES) {
            out.push(&items[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += s;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_batches_respect_the_id_and_byte_limits() {
        let sizes: Vec<u64> = vec![1000; 3000];
        let b = batches(&sizes, |s| *s);
        assert_eq!(
            b.iter().map(|b| b.len()).collect::<Vec<_>>(),
            vec![1024, 1024, 952]
        );
        let big: Vec<u64> = vec![200 * 1024; 200];
        for run in batches(&big, |s| *s) {
            let bytes: u64 = run.iter().map(|s| frames::framed_len(*s)).sum();
            assert!(bytes <= FETCH_BYTES, "{bytes}");
        }
        assert!(batches(&Vec::<u64>::new(), |s| *s).is_empty());
    }

    /// The local chunk index is a hint: read at once, the chunks of a file
    /// that still hold their bytes come back, and one changed since it was
    /// indexed, one past the file's end now, one asked with another length,
    /// and one nobody has, do not (they are fetched instead).
    #[tokio::test]
    async fn local_chunks_are_rechecked_and_a_changed_one_is_not_used() {
        use crate::apply::StateWrite;
        use crate::state::IndexEntry;
        use vidsync_protocol::chunking::ChunkRef;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("folder");
        std::fs::create_dir_all(&root).unwrap();
        let state = LocalState::open(dir.path()).await.unwrap();
        let parts: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 4096]).collect();
        let big: Vec<u8> = parts.concat();
        std::fs::write(root.join("big.bin"), &big).unwrap();
        std::fs::write(root.join("small.txt"), b"one chunk").unwrap();
        let chunks: Vec<ChunkRef> = (0..3)
            .map(|i| ChunkRef {
                offset: i as u64 * 4096,
                len: 4096,
                hash: ContentHash::of(&parts[i]),
            })
            .collect();
        let applied = |path: &str, bytes: &[u8], chunks: Vec<ChunkRef>| StateWrite::Applied {
            path: ProjectPath::new(path.to_string()).unwrap(),
            entry: Some(IndexEntry {
                size: bytes.len() as u64,
                mtime_ns: 1,
                hash: ContentHash::of(bytes),
            }),
            base: Some(ContentHash::of(bytes)),
            seq: 1,
            chunks,
        };
        let writes = [
            applied("big.bin", &big, chunks.clone()),
            applied("small.txt", b"one chunk", vec![]),
        ];
        state.write_applied("p", &writes).await.unwrap();
        let api = ApiClient::new("http://127.0.0.1:9", "t").unwrap();
        let content = Content::new(api, state, root.clone(), "p".into());
        let small = ContentHash::of(b"one chunk");
        let nobody = ContentHash::of(b"nobody has this");
        let mut wanted: Vec<(ContentHash, u64)> = chunks.iter().map(|c| (c.hash, 4096)).collect();
        wanted.extend([(small, 9), (small, 8), (nobody, 4)]);
        let got = content.local_chunks(&wanted).await;
        let want: Vec<Option<Bytes>> = vec![
            Some(parts[0].clone().into()),
            Some(parts[1].clone().into()),
            Some(parts[2].clone().into()),
            Some(Bytes::from_static(b"one chunk")),
            None,
            None,
        ];
        assert_eq!(got, want);
        // The middle chunk changes and the file loses its last chunk.
        let mut changed = parts[0].clone();
        changed.extend(vec![9u8; 4096]);
        std::fs::write(root.join("big.bin"), &changed).unwrap();
        let got = content.local_chunks(&wanted[..4]).await;
        assert_eq!(
            got,
            vec![
                Some(parts[0].clone().into()),
                None,
                None,
                Some(Bytes::from_static(b"one chunk"))
            ]
        );
    }
}
