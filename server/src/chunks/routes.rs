//! Content v2 routes: which chunks are missing, upload and fetch many chunks
//! in framed bodies, store and read manifests. Member-only; every refusal is
//! a JSON error body (see `docs/protocol.md`, "Content v2"). A chunk found
//! damaged is quarantined by the store, so it counts as missing here and the
//! next upload of it is stored.

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vidsync_protocol::chunking::{Manifest, ManifestEntry, CHUNK_MAX};
use vidsync_protocol::{
    ContentHash, ErrorCode, FRAME_HEADER_BYTES, MAX_CHUNK_BATCH_BYTES, MAX_FETCH_IDS,
    MAX_MANIFESTS_PER_REQUEST, MAX_MISSING_IDS,
};

use super::content::{insert_manifests, locate, manifest_row, Content};
use super::frames::parse_frames;
use crate::api::require_member;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};
use crate::json::ApiJson;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(missing))
        .routes(routes!(fetch))
        .routes(routes!(upload))
        .routes(routes!(post_manifests))
        .routes(routes!(get_manifest))
        .layer(axum::middleware::map_response(crate::error::json_errors))
}

#[derive(Deserialize)]
struct ChunkIds {
    chunks: Vec<ContentHash>,
}

/// `chunks/missing`: chunk ids, and (optional) whole files' hashes.
#[derive(Deserialize)]
struct MissingQuery {
    chunks: Vec<ContentHash>,
    #[serde(default)]
    files: Option<Vec<ContentHash>>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    context: &'static str,
) -> AppResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AppError::io(context, std::io::Error::other(e)))?
        .map_err(|e| AppError::io(context, e))
}

#[utoipa::path(post, path = "/api/projects/{project_id}/chunks/missing", tag = "content", security(("token" = [])),
    description = "Which of these chunks (at most 10,000) the server does not have, in request order: `{\"missing\": [hash]}`.",
    params(("project_id" = String, Path, description = "A project id, as `Project.id`")), request_body = crate::openapi::HashList,
    responses((status = 200, body = Object), crate::openapi::Refusals))]
async fn missing(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    UrlPath(project_id): UrlPath<String>,
    ApiJson(body): ApiJson<MissingQuery>,
) -> AppResult<Json<serde_json::Value>> {
    require_member(&state, &project_id, &user).await?;
    let n = body.chunks.len() + body.files.as_ref().map_or(0, Vec::len);
    if n > MAX_MISSING_IDS {
        return Err(AppError::unprocessable(format!(
            "at most {MAX_MISSING_IDS} chunk and file ids a request, this one has {n}"
        )));
    }
    // Whatever is answered present is claimed first, under the gate: the
    // client will not upload it again (see `retention`).
    let _gate = state.retention.gate.read().await;
    state.retention.claims.claim(
        &project_id,
        body.chunks.iter().chain(body.files.iter().flatten()),
    );
    let store = state.chunks.clone();
    let pid = project_id.clone();
    let missing = blocking(
        move || {
            Ok(body
                .chunks
                .into_iter()
                .filter(|h| store.size_of(&pid, h).is_none())
                .collect::<Vec<_>>())
        },
        "checking chunks",
    )
    .await?;
    let Some(files) = body.files else {
        return Ok(Json(serde_json::json!({ "missing": missing })));
    };
    let missing_files = absent_files(&state, &project_id, files).await?;
    Ok(Json(
        serde_json::json!({ "missing": missing, "missing_files": missing_files }),
    ))
}

/// Of `files` (whole files' hashes), those whose content the server cannot
/// serve: no manifest, no whole copy, no one-chunk file. The whole copy is
/// looked at first (see [`locate`]): one being cut has its manifest by the
/// time it is gone.
async fn absent_files(
    state: &AppState,
    project_id: &str,
    files: Vec<ContentHash>,
) -> AppResult<Vec<ContentHash>> {
    let (blobs, chunks, pid) = (
        state.blobs.clone(),
        state.chunks.clone(),
        project_id.to_string(),
    );
    let unknown = blocking(
        move || {
            Ok(files
                .into_iter()
                .filter(|h| !blobs.path_of(&pid, h).is_file() && chunks.size_of(&pid, h).is_none())
                .collect::<Vec<_>>())
        },
        "checking files",
    )
    .await?;
    let with_manifest = super::content::manifests_present(state, project_id, &unknown).await?;
    Ok(unknown
        .into_iter()
        .filter(|h| !with_manifest.contains(h))
        .collect())
}

#[utoipa::path(post, path = "/api/projects/{project_id}/chunks", tag = "content", security(("token" = [])),
    description = "Chunks in frames (`[32-byte hash][u32 BE length][bytes]` each), body at most 32 MiB: `{\"stored\", \"present\"}`.",
    params(("project_id" = String, Path, description = "A project id, as `Project.id`")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = Object), crate::openapi::Refusals))]
async fn upload(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    UrlPath(project_id): UrlPath<String>,
    req: Request,
) -> AppResult<Json<serde_json::Value>> {
    require_member(&state, &project_id, &user).await?;
    let limit = MAX_CHUNK_BATCH_BYTES as usize;
    let body = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| {
            if std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            {
                AppError::too_large(format!("a chunk upload body is at most {limit} bytes"))
            } else {
                AppError::bad_request(format!("upload interrupted: {e}"))
            }
        })?;
    let frames = parse_frames(&body)?;
    // A chunk bigger than the largest file this server takes can be part
    // of no file it would accept.
    let max = state.blobs.max_bytes;
    if let Some(f) = frames.iter().find(|f| f.bytes.len() as u64 > max) {
        return Err(AppError::too_large(format!(
            "chunk {} is {} bytes, over this server's blob size limit of {max} bytes",
            f.hash,
            f.bytes.len()
        )));
    }
    let _gate = state.retention.gate.read().await;
    state
        .retention
        .claims
        .claim(&project_id, frames.iter().map(|f| &f.hash));
    let store = state.chunks.clone();
    let (stored, present) = blocking(
        // Each frame was hashed by `parse_frames`.
        move || store.put_many(&project_id, frames.iter().map(|f| (&f.hash, &f.bytes[..]))),
        "storing chunk",
    )
    .await?;
    Ok(Json(
        serde_json::json!({ "stored": stored, "present": present }),
    ))
}

#[utoipa::path(post, path = "/api/projects/{project_id}/chunks/fetch", tag = "content", security(("token" = [])),
    description = "These chunks (at most 1,024), as frames in request order.",
    params(("project_id" = String, Path, description = "A project id, as `Project.id`")), request_body = crate::openapi::HashList,
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), crate::openapi::Refusals))]
async fn fetch(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    UrlPath(project_id): UrlPath<String>,
    ApiJson(body): ApiJson<ChunkIds>,
) -> AppResult<Response> {
    require_member(&state, &project_id, &user).await?;
    let n = body.chunks.len();
    if n > MAX_FETCH_IDS {
        return Err(AppError::unprocessable(format!(
            "at most {MAX_FETCH_IDS} chunk ids a fetch, this one has {n}"
        )));
    }
    // A whole upload may be cut into chunks (its whole copy removed) between
    // finding it and reading it: then the ids are looked up once more.
    let mut out = read_ids(&state, &project_id, &body.chunks).await?;
    if let Err((_, true)) = out {
        out = read_ids(&state, &project_id, &body.chunks).await?;
    }
    let out = out.map_err(|(h, _)| {
        AppError::not_found(format!("no chunk {h} in this project (found damaged)"))
    })?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from(Bytes::from(out)),
    )
        .into_response())
}

/// The frames of `ids`: each a stored chunk, or else the content of a file
/// of at most one chunk's size stored another way (several chunks, or a
/// whole upload not cut yet), so a receiver fetches many small files at
/// once. `Err((id, whole))`: that id's bytes were gone or did not check out
/// (a damaged chunk is quarantined); `whole` if it was a whole copy.
async fn read_ids(
    state: &AppState,
    project_id: &str,
    ids: &[ContentHash],
) -> AppResult<Result<Vec<u8>, (ContentHash, bool)>> {
    let mut sources = Vec::with_capacity(ids.len());
    let mut total = 0u64;
    let (store, pid, hs) = (state.chunks.clone(), project_id.to_string(), ids.to_vec());
    let sizes = blocking(
        move || {
            Ok(hs
                .iter()
                .map(|h| store.size_of(&pid, h))
                .collect::<Vec<_>>())
        },
        "looking up chunks",
    )
    .await?;
    for (h, size) in ids.iter().zip(sizes) {
        let source = match size {
            Some(size) => Some((Source::Chunk, size)),
            None => small_content(state, project_id, h).await?,
        };
        let Some((source, size)) = source else {
            return Err(AppError::not_found(format!("no chunk {h} in this project")));
        };
        total += FRAME_HEADER_BYTES as u64 + size;
        sources.push((*h, source));
    }
    if total > MAX_CHUNK_BATCH_BYTES {
        return Err(AppError::unprocessable(format!(
            "these chunks come to {total} bytes, over the {MAX_CHUNK_BATCH_BYTES}-byte limit of a fetch"
        )));
    }
    // Each chunk is hashed as it is read, before anything is sent.
    let (store, pid) = (state.chunks.clone(), project_id.to_string());
    blocking(
        move || {
            let mut out = Vec::with_capacity(total as usize);
            for (h, source) in &sources {
                let Some(bytes) = source.read(&store, &pid, h)? else {
                    return Ok(Err((*h, matches!(source, Source::Whole(_)))));
                };
                out.extend_from_slice(h.as_bytes());
                out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                out.extend_from_slice(&bytes);
            }
            Ok(Ok(out))
        },
        "reading chunks",
    )
    .await
}

/// Where a fetched id's bytes come from.
enum Source {
    Chunk,
    /// A small file stored as several chunks.
    Chunks(Vec<ManifestEntry>),
    /// A small whole upload not cut into chunks yet.
    Whole(std::path::PathBuf),
}

impl Source {
    /// The bytes of `hash`, checked against it; `None` when they are gone or
    /// do not check out (a damaged chunk is quarantined by the store).
    fn read(
        &self,
        store: &super::store::ChunkStore,
        project_id: &str,
        hash: &ContentHash,
    ) -> std::io::Result<Option<Vec<u8>>> {
        match self {
            Source::Chunk => store.read_checked(project_id, hash),
            Source::Chunks(entries) => {
                let mut out = Vec::new();
                for e in entries {
                    match store.read_checked(project_id, &e.hash)? {
                        Some(b) => out.extend_from_slice(&b),
                        None => return Ok(None),
                    }
                }
                Ok((ContentHash::of(&out) == *hash).then_some(out))
            }
            Source::Whole(path) => {
                use std::io::Read;
                let mut out = Vec::new();
                match std::fs::File::open(path) {
                    Ok(f) => f.take(CHUNK_MAX as u64 + 1).read_to_end(&mut out)?,
                    // Cut into chunks meanwhile: they hold it now.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Ok(None);
                    }
                    Err(e) => return Err(e),
                };
                Ok((ContentHash::of(&out) == *hash).then_some(out))
            }
        }
    }
}

/// A file's content of at most [`CHUNK_MAX`] bytes stored other than as one
/// chunk, with its size.
async fn small_content(
    state: &AppState,
    project_id: &str,
    hash: &ContentHash,
) -> AppResult<Option<(Source, u64)>> {
    Ok(match locate(state, project_id, hash).await? {
        Some(Content::Chunks(m)) if m.size <= CHUNK_MAX as u64 => {
            Some((Source::Chunks(m.chunks), m.size))
        }
        Some(Content::Whole { path, size }) if size <= CHUNK_MAX as u64 => {
            Some((Source::Whole(path), size))
        }
        _ => None,
    })
}

#[derive(Deserialize)]
struct ManifestBatch {
    manifests: Vec<Manifest>,
}

#[utoipa::path(post, path = "/api/projects/{project_id}/manifests", tag = "content", security(("token" = [])),
    description = "`{\"manifests\": [{\"hash\", \"size\", \"chunks\": [{\"hash\", \"size\"}]}]}` (at most 1,000), each stored once its chunks are all present and hash to the file: `{\"stored\"}`.",
    params(("project_id" = String, Path, description = "A project id, as `Project.id`")), request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = Object), crate::openapi::Refusals))]
async fn post_manifests(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    UrlPath(project_id): UrlPath<String>,
    ApiJson(body): ApiJson<ManifestBatch>,
) -> AppResult<Json<serde_json::Value>> {
    require_member(&state, &project_id, &user).await?;
    let n = body.manifests.len();
    if n > MAX_MANIFESTS_PER_REQUEST {
        return Err(AppError::unprocessable(format!(
            "at most {MAX_MANIFESTS_PER_REQUEST} manifests a request, this one has {n}"
        )));
    }
    let max = state.blobs.max_bytes;
    if let Some((i, m)) = body
        .manifests
        .iter()
        .enumerate()
        .find(|(_, m)| m.size > max)
    {
        return Err(AppError::too_large(format!(
            "manifests[{i}] ({}): {} bytes, over this server's blob size limit of {max} bytes",
            m.hash, m.size
        )));
    }
    let _gate = state.retention.gate.read().await;
    for m in &body.manifests {
        state.retention.claims.claim(
            &project_id,
            std::iter::once(&m.hash).chain(m.chunks.iter().map(|c| &c.hash)),
        );
    }
    let store = state.chunks.clone();
    let pid = project_id.clone();
    let manifests = body.manifests;
    let manifests = blocking(
        move || {
            for (i, m) in manifests.iter().enumerate() {
                if let Err(why) = super::verify::check_manifest(&store, &pid, m)? {
                    return Ok(Err(format!("manifests[{i}] ({}): {why}", m.hash)));
                }
            }
            Ok(Ok(manifests))
        },
        "checking manifest",
    )
    .await?
    .map_err(|m| AppError::new(ErrorCode::Unprocessable, m))?;
    insert_manifests(&state, &project_id, &manifests).await?;
    Ok(Json(serde_json::json!({ "stored": manifests.len() })))
}

/// `GET manifests/{hash}`: JSON, or with `Accept: application/octet-stream`
/// the entries packed (36 bytes each, see `pack_entries`).
#[utoipa::path(get, path = "/api/projects/{project_id}/manifests/{hash}", tag = "content", security(("token" = [])),
    description = "A file's manifest as JSON, or packed (`Accept: application/octet-stream`: `[32-byte hash][u32 BE size]` an entry).",
    params(("project_id" = String, Path, description = "A project id, as `Project.id`"), ("hash" = String, Path, description = "BLAKE3 of the whole file, 64 lowercase hex digits")),
    responses((status = 200, body = Object), (status = 200, content_type = "application/octet-stream", body = Vec<u8>), crate::openapi::Refusals))]
async fn get_manifest(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    UrlPath((project_id, hash)): UrlPath<(String, String)>,
    headers: axum::http::HeaderMap,
) -> AppResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let packed = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/octet-stream"));
    let m = find_manifest(&state, &project_id, &user, &hash).await?;
    Ok(match packed {
        true => (
            [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
            vidsync_protocol::chunking::pack_entries(&m.chunks),
        )
            .into_response(),
        false => Json(m).into_response(),
    })
}

async fn find_manifest(
    state: &AppState,
    project_id: &str,
    user: &crate::db::User,
    hash: &str,
) -> AppResult<Manifest> {
    require_member(state, project_id, user).await?;
    let hash: ContentHash = hash.parse().map_err(|e: vidsync_protocol::HashError| {
        AppError::new(ErrorCode::InvalidHash, e.to_string())
    })?;
    // A manifest first (a whole upload being cut has both for a moment),
    // else whatever holds the content.
    if let Some(m) = manifest_row(state, project_id, &hash).await? {
        return Ok(m);
    }
    match locate(state, project_id, &hash).await? {
        Some(Content::Chunks(m)) => Ok(m),
        Some(Content::Whole { size, .. } | Content::OneChunk { size })
            if size <= CHUNK_MAX as u64 =>
        {
            Ok(Manifest {
                hash,
                size,
                chunks: vec![ManifestEntry {
                    hash,
                    size: size as u32,
                }],
            })
        }
        // A large legacy blob has no manifest: fetch it whole (v1 GET).
        Some(Content::Whole { .. }) => Err(AppError::not_found(format!(
            "{hash} is stored whole (an old upload): fetch it with GET …/blobs/{hash}"
        ))),
        // A "chunk" over the chunk limit is damaged: not content.
        Some(Content::OneChunk { .. }) | None => Err(AppError::not_found(format!(
            "no content {hash} in this project"
        ))),
    }
}
