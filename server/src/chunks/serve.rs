//! The v1 blob routes over chunked content: `GET`/`HEAD` (with `Range`)
//! stream the chunks of a manifest, one at a time (memory flat), never a
//! damaged one, and a whole `PUT` is cut into chunks and a manifest (which
//! also rewrites any chunk of it stored damaged or quarantined).

use std::path::PathBuf;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use vidsync_protocol::chunking::{cut_each, Manifest, ManifestEntry};
use vidsync_protocol::ContentHash;

use super::content::insert_manifests;
use super::store::ChunkStore;
use crate::blobs::acts_on_range;
use crate::error::{AppError, AppResult};
use crate::AppState;

/// The byte range `[start, end)` a request asks for, `None` for all of it;
/// `Err` when a single range lies outside the file (416).
fn wanted(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(v) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    if !acts_on_range(v) {
        return Ok(None);
    }
    let spec = v.split_once('=').map(|(_, s)| s.trim()).unwrap_or("");
    let (a, b) = spec.split_once('-').unwrap_or(("", ""));
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 || size == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size)
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let last = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse().map_err(|_| ())?
        };
        if start >= size {
            return Err(());
        }
        (start, last.min(size - 1) + 1)
    };
    Ok(Some(range))
}

/// The chunks of `entries` not stored with their size (damaged ones are
/// quarantined on the way): a stat each, no read.
pub async fn absent_chunks(
    store: &ChunkStore,
    project_id: &str,
    entries: Vec<ManifestEntry>,
) -> AppResult<Vec<ContentHash>> {
    let (store, pid) = (store.clone(), project_id.to_string());
    tokio::task::spawn_blocking(move || {
        let mut absent = Vec::new();
        for e in entries {
            if !absent.contains(&e.hash) && !store.intact(&pid, &e.hash, e.size as u64)? {
                absent.push(e.hash);
            }
        }
        Ok(absent)
    })
    .await
    .map_err(|e| AppError::io("checking chunks", std::io::Error::other(e)))?
    .map_err(|e| AppError::io("checking chunks", e))
}

/// Serves a manifest's bytes (or a range of them). Every chunk the range
/// needs is checked first ([`absent_chunks`]): when one is not stored whole,
/// nothing is sent and `Err` lists them. Each chunk is hashed as it is read:
/// one damaged since (same size, other bytes) is quarantined and the body
/// is cut off there (short of its `Content-Length`), its bytes never sent.
pub async fn serve_manifest(
    store: ChunkStore,
    project_id: String,
    m: Manifest,
    headers: &HeaderMap,
) -> AppResult<Result<Response, Vec<ContentHash>>> {
    let size = m.size;
    let Some((start, end, status)) = span(headers, size) else {
        return Ok(Ok(unsatisfiable(size)));
    };
    // The chunks that overlap, with their offset in the file.
    let mut pieces = Vec::new();
    let mut at = 0u64;
    for c in &m.chunks {
        let next = at + c.size as u64;
        if next > start && at < end {
            pieces.push((*c, at));
        }
        at = next;
    }
    let needed = pieces.iter().map(|(c, _)| *c).collect();
    let absent = absent_chunks(&store, &project_id, needed).await?;
    if !absent.is_empty() {
        return Ok(Err(absent));
    }
    let body = stream::unfold(Some(pieces.into_iter()), move |it| {
        let store = store.clone();
        let project_id = project_id.clone();
        async move {
            let mut it = it?;
            let (c, at) = it.next()?;
            let read =
                tokio::task::spawn_blocking(move || store.read_checked(&project_id, &c.hash)).await;
            let bytes = match read {
                Ok(Ok(Some(bytes))) => bytes,
                Ok(Ok(None)) => {
                    let e = format!("chunk {} is missing or damaged: body cut off", c.hash);
                    return Some((Err(std::io::Error::other(e)), None));
                }
                Ok(Err(e)) => return Some((Err(e), None)),
                Err(e) => return Some((Err(std::io::Error::other(e)), None)),
            };
            let from = start.saturating_sub(at) as usize;
            let to = ((end - at) as usize).min(bytes.len());
            Some((Ok(Bytes::from(bytes).slice(from..to)), Some(it)))
        }
    });
    Ok(Ok(respond(
        Body::from_stream(body),
        (start, end, status),
        size,
    )))
}

/// The part of a file of `size` bytes a request asks for: `[start, end)`
/// and the status to answer with; `None` when it lies outside (416).
fn span(headers: &HeaderMap, size: u64) -> Option<(u64, u64, StatusCode)> {
    match wanted(headers, size) {
        Err(()) => None,
        Ok(None) => Some((0, size, StatusCode::OK)),
        Ok(Some((s, e))) => Some((s, e, StatusCode::PARTIAL_CONTENT)),
    }
}

fn unsatisfiable(size: u64) -> Response {
    (
        StatusCode::RANGE_NOT_SATISFIABLE,
        [(header::CONTENT_RANGE, format!("bytes */{size}"))],
    )
        .into_response()
}

/// Serves a one-chunk file from its bytes, read and checked whole before
/// any is sent (at most 256 KiB), or the range of them a request asks for.
pub fn serve_bytes(bytes: Vec<u8>, headers: &HeaderMap) -> Response {
    let size = bytes.len() as u64;
    let Some((start, end, status)) = span(headers, size) else {
        return unsatisfiable(size);
    };
    let body = Bytes::from(bytes).slice(start as usize..end as usize);
    respond(Body::from(body), (start, end, status), size)
}

/// The response for `[start, end)` of a file of `size` bytes.
fn respond(body: Body, (start, end, status): (u64, u64, StatusCode), size: u64) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, (end - start).into());
    h.insert(
        header::ACCEPT_RANGES,
        header::HeaderValue::from_static("bytes"),
    );
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = format!("bytes {start}-{}/{size}", end - 1).parse() {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    resp
}

/// Cuts a just-stored whole blob into chunks and a manifest, then removes
/// the whole copy (the manifest is written first, so it is always served).
pub async fn chunk_whole_blob(state: &AppState, project_id: &str, path: PathBuf) -> AppResult<()> {
    let store = state.chunks.clone();
    let pid = project_id.to_string();
    let p = path.clone();
    let chunked = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&p)?;
        cut_each(std::io::BufReader::new(file), |c, bytes| {
            store.put_hashed(&pid, &c.hash, bytes).map(|_| ())
        })
    })
    .await
    .map_err(|e| AppError::io("chunking blob", std::io::Error::other(e)))?
    .map_err(|e| AppError::io("chunking blob", e))?;
    if chunked.chunks.len() > 1 {
        insert_manifests(state, project_id, &[chunked.manifest()]).await?;
    }
    // A concurrent PUT of the same content may have removed it already.
    if let Err(e) = tokio::fs::remove_file(&path).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(AppError::io("removing chunked blob", e));
        }
    }
    Ok(())
}
