//! The sender's side of content v2: makes sure the server has the content
//! of a batch of changes, moving only what it lacks.
//!
//! One-chunk files (≤ `CHUNK_MIN` bytes) are their own chunk: their hashes
//! go into one `chunks/missing` with the chunks of the bigger files. The
//! bigger files are first asked for whole, all in one `chunks/missing`
//! (`files`; a rename or a copy of content the server has costs nothing
//! more), else cut, and after its
//! missing chunks its manifest goes up. Missing chunks of many files are
//! packed into few `POST chunks` bodies. A file that no longer has the
//! change's content is `Superseded`: the newer change the watcher brings
//! covers it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt;
use vidsync_protocol::chunking::{ChunkRef, Manifest, CHUNK_MIN};
use vidsync_protocol::{Change, ContentHash, MAX_MANIFESTS_PER_REQUEST, MAX_MISSING_IDS};

use super::{frames, FETCH_BYTES};
use crate::api::{ApiClient, ApiError};
use crate::state::LocalState;

/// What became of one change's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// The server has it (or the change has none): post the change.
    Ready,
    /// The file moved on since: drop the change.
    Superseded,
}

/// A file whose chunks are known: (path on disk, its chunks).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub file: PathBuf,
    pub hash: ContentHash,
    pub size: u64,
    pub chunks: Vec<ChunkRef>,
    /// A one-chunk file's bytes, read (and hashed to `hash`) by
    /// [`prepare`]: sent as they are, not read from the file again.
    pub bytes: Option<Bytes>,
}

/// Big files asked for whole at once.
const HEADS_AT_ONCE: usize = 8;
/// Manifest entries per `POST manifests` (≈ 90 bytes of JSON each).
const MANIFEST_ENTRIES_PER_REQUEST: usize = 100_000;

/// Makes sure the server has the content of each of `changes` (files
/// under `root`); one outcome per change, in order. `Err`: the batch
/// could not be sent (retry it if the error is retryable). `state` gives
/// the chunks the scanner recorded, so a big file is not cut twice.
pub async fn send_content(
    api: &ApiClient,
    state: &LocalState,
    project_id: &str,
    root: &Path,
    changes: &[Change],
) -> Result<Vec<SendOutcome>, ApiError> {
    let mut outcomes = vec![SendOutcome::Ready; changes.len()];
    // Which changes need their content looked at, and how.
    let mut small = Vec::new();
    let mut big = Vec::new();
    for (i, c) in changes.iter().enumerate() {
        if let Some(hash) = c.hash {
            let file = c.path.under(root);
            match c.size.unwrap_or(u64::MAX) <= CHUNK_MIN as u64 {
                true => small.push((i, file, hash)),
                false => big.push((i, file, hash)),
            }
        }
    }
    // Big files the server already has whole need nothing more: asked all
    // at once (`HEAD` each from a server that cannot answer for files).
    let hashes: Vec<ContentHash> = big.iter().map(|(_, _, h)| *h).collect();
    let absent = match hashes.is_empty() {
        true => Some(Vec::new()),
        false => api.files_missing(project_id, &hashes).await?,
    };
    let asked: Vec<(usize, PathBuf, ContentHash, Result<bool, ApiError>)> = match absent {
        Some(absent) => {
            let absent: HashSet<ContentHash> = absent.into_iter().collect();
            big.into_iter()
                .map(|(i, file, hash)| {
                    let has = !absent.contains(&hash);
                    (i, file, hash, Ok(has))
                })
                .collect()
        }
        None => {
            futures_util::stream::iter(big.into_iter().map(|(i, file, hash)| async move {
                let has = api.has_blob(project_id, &hash).await;
                (i, file, hash, has)
            }))
            .buffered(HEADS_AT_ONCE)
            .collect()
            .await
        }
    };
    let mut to_cut = Vec::new();
    let mut known = Vec::new();
    for (i, file, hash, has) in asked {
        match has {
            Ok(true) => {}
            Ok(false) => {
                // The scanner cut it already: its chunks are re-hashed as
                // they are packed, so a file changed since is still caught.
                let path = changes[i].path.as_str();
                let chunks = state
                    .chunks_of(project_id, path, &hash)
                    .await
                    .unwrap_or_default();
                let size: u64 = chunks.iter().map(|c| c.len as u64).sum();
                match chunks.len() > 1 && Some(size) == changes[i].size {
                    true => known.push((
                        i,
                        Prepared {
                            file,
                            hash,
                            size,
                            chunks,
                            bytes: None,
                        },
                    )),
                    false => to_cut.push((i, file, hash)),
                }
            }
            Err(e) => return Err(e),
        }
    }
    // Read what must be read: small files whole, big ones cut.
    let (mut prepared, gone) = tokio::task::spawn_blocking(move || prepare(small, to_cut))
        .await
        .map_err(|e| local(format!("reading files to send: {e}")))?;
    prepared.extend(known);
    // A file that moved on may still have its change on the server: posted
    // once already, with the answer lost. Its content is there then (it goes
    // up before its change), and the change is posted again (the server
    // knows its change id), so the next change of the path keeps the base
    // the server has. A small file's content is its one chunk, asked below
    // with the others; a big one the server has was found whole above.
    let mut ids: Vec<ContentHash> = Vec::new();
    let mut seen = HashSet::new();
    for i in &gone {
        if let Some(h) = one_chunk_of(&changes[*i]).filter(|h| seen.insert(*h)) {
            ids.push(h);
        }
    }
    // Ask which chunks the server lacks, all files at once.
    for (_, p) in &prepared {
        for c in &p.chunks {
            if seen.insert(c.hash) {
                ids.push(c.hash);
            }
        }
    }
    let mut missing = HashSet::new();
    for batch in ids.chunks(MAX_MISSING_IDS) {
        missing.extend(api.chunks_missing(project_id, batch).await?);
    }
    for i in gone {
        let on_server = one_chunk_of(&changes[i]).is_some_and(|h| !missing.contains(&h));
        if !on_server {
            outcomes[i] = SendOutcome::Superseded;
        }
    }
    // Upload them, many files' chunks per body.
    let mut wanted: Vec<Wanted> = Vec::new();
    let mut queued = HashSet::new();
    for (i, p) in &prepared {
        for c in &p.chunks {
            if missing.contains(&c.hash) && queued.insert(c.hash) {
                wanted.push((*i, p.file.clone(), *c, p.bytes.clone()));
            }
        }
    }
    let mut changed = HashSet::new();
    let mut at = 0;
    while at < wanted.len() {
        let (end, body, moved) = pack(&wanted, at).await?;
        changed.extend(moved);
        if !body.is_empty() {
            api.upload_chunks(project_id, body).await?;
        }
        at = end;
    }
    if !changed.is_empty() {
        // A file changed while its chunks were read: its chunks may have been
        // the ones other files of the batch counted on. Send the rest again
        // (each pass drops at least one change, so this ends).
        for i in &changed {
            outcomes[*i] = SendOutcome::Superseded;
        }
        let rest: Vec<usize> = (0..changes.len())
            .filter(|i| outcomes[*i] == SendOutcome::Ready)
            .collect();
        let again: Vec<Change> = rest.iter().map(|i| changes[*i].clone()).collect();
        let redone = Box::pin(send_content(api, state, project_id, root, &again)).await?;
        for (i, o) in rest.into_iter().zip(redone) {
            outcomes[i] = o;
        }
        return Ok(outcomes);
    }
    // Then the manifests of the multi-chunk files.
    let manifests: Vec<Manifest> = prepared
        .iter()
        .filter(|(_, p)| p.chunks.len() > 1)
        .map(|(_, p)| manifest(p))
        .collect();
    let mut start = 0;
    while start < manifests.len() {
        let mut end = start;
        let mut entries = 0;
        while end < manifests.len()
            && end - start < MAX_MANIFESTS_PER_REQUEST
            && (end == start
                || entries + manifests[end].chunks.len() <= MANIFEST_ENTRIES_PER_REQUEST)
        {
            entries += manifests[end].chunks.len();
            end += 1;
        }
        api.post_manifests(project_id, &manifests[start..end])
            .await?;
        start = end;
    }
    Ok(outcomes)
}

/// The one chunk `change`'s content is, if it is small (its hash: the
/// chunk query says if the server has it).
fn one_chunk_of(change: &Change) -> Option<ContentHash> {
    change
        .hash
        .filter(|_| change.size.is_some_and(|s| s <= CHUNK_MIN as u64))
}

fn manifest(p: &Prepared) -> Manifest {
    vidsync_protocol::chunking::Chunked {
        hash: p.hash,
        size: p.size,
        chunks: p.chunks.clone(),
    }
    .manifest()
}

fn local(message: String) -> ApiError {
    ApiError::Network {
        url: "local files".into(),
        message,
    }
}

/// Reads small files whole and cuts big ones; returns what is ready (by
/// change index) and the changes whose file no longer has their content.
#[allow(clippy::type_complexity)]
fn prepare(
    small: Vec<(usize, PathBuf, ContentHash)>,
    big: Vec<(usize, PathBuf, ContentHash)>,
) -> (Vec<(usize, Prepared)>, Vec<usize>) {
    let mut ready = Vec::new();
    let mut gone = Vec::new();
    for (i, file, hash) in small.into_iter().chain(big) {
        match crate::scan::cut_file_keeping_small(&file) {
            Ok((c, bytes)) if c.hash == hash => ready.push((
                i,
                Prepared {
                    file,
                    hash,
                    size: c.size,
                    chunks: c.chunks,
                    bytes: bytes.map(Bytes::from),
                },
            )),
            Ok(_) => gone.push(i),
            Err(e) => {
                tracing::debug!(file = %file.display(), %e, "a file to send is gone");
                gone.push(i);
            }
        }
    }
    (ready, gone)
}

/// A chunk to upload: the change it is for, its file, where it is in the
/// file, and its bytes if they were read already.
type Wanted = (usize, PathBuf, ChunkRef, Option<Bytes>);

/// Frames `wanted[at..]` into one body of at most [`FETCH_BYTES`], reading
/// each chunk from its file and re-checking it (bytes read already are
/// framed as they are). Returns where the next body starts, the body, and
/// the changes whose file changed meanwhile.
async fn pack(wanted: &[Wanted], at: usize) -> Result<(usize, Vec<u8>, Vec<usize>), ApiError> {
    let mut end = at;
    let mut bytes = 0u64;
    while end < wanted.len() {
        let len = frames::framed_len(wanted[end].2.len as u64);
        if end > at && bytes + len > FETCH_BYTES {
            break;
        }
        bytes += len;
        end += 1;
    }
    let slice: Vec<Wanted> = wanted[at..end].to_vec();
    let (body, moved) = tokio::task::spawn_blocking(move || {
        let mut body = Vec::with_capacity(bytes as usize);
        let mut moved = Vec::new();
        let mut files: HashMap<PathBuf, Option<std::fs::File>> = HashMap::new();
        for (i, file, c, read) in &slice {
            if let Some(b) = read {
                frames::encode(&mut body, &c.hash, b);
                continue;
            }
            let f = files
                .entry(file.clone())
                .or_insert_with(|| std::fs::File::open(file).ok());
            match f
                .as_mut()
                .and_then(|f| super::read_checked(f, c.offset, c.len as u64, &c.hash))
            {
                Some(b) => frames::encode(&mut body, &c.hash, &b),
                None => moved.push(*i),
            }
        }
        (body, moved)
    })
    .await
    .map_err(|e| local(format!("reading chunks to send: {e}")))?;
    Ok((end, body, moved))
}
