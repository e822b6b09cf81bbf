//! The HTTP face of the blob store: `PUT` (201 stored or repaired, 200
//! already stored whole), `GET`/`HEAD` with `Range` (never a damaged
//! byte: 404 instead), membership checked first. The bytes, hashing
//! and the "always whole" rule live in [`crate::blob_store`].

use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vidsync_protocol::{ContentHash, ErrorCode};

use crate::api::require_member;
use crate::auth::AuthUser;
use crate::blob_store::{PutError, Stored};
use crate::chunks::content::{locate, Content};
use crate::chunks::serve::{absent_chunks, chunk_whole_blob, serve_manifest};
use crate::error::{AppError, AppResult};
use crate::AppState;

pub use crate::blob_store::BlobStore;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_blob, get_blob))
        .layer(axum::middleware::map_response(crate::error::json_errors))
}

/// Whether a `Range` header is one this server acts on: a single
/// well-formed `bytes` range. Anything else is ignored and the whole blob is
/// served (200), as RFC 9110 allows: an unknown unit, a multi-range request
/// (no multipart answers here), a malformed spec. A single well-formed range
/// that lies outside the blob still gets 416.
pub fn acts_on_range(value: &str) -> bool {
    let Some((unit, spec)) = value.trim().split_once('=') else {
        return false;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return false;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return false;
    };
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (num(first), num(last)) {
        (Some(a), Some(b)) => a <= b,
        (Some(_), None) => last.is_empty(),
        (None, Some(_)) => first.is_empty(),
        (None, None) => false,
    }
}

fn parse_hash(s: &str) -> AppResult<ContentHash> {
    s.parse().map_err(|e: vidsync_protocol::HashError| {
        AppError::new(ErrorCode::InvalidHash, e.to_string())
    })
}

impl From<PutError> for AppError {
    fn from(e: PutError) -> Self {
        match e {
            PutError::Body(m) => AppError::bad_request(format!("upload interrupted: {m}")),
            e @ PutError::TooLarge(_) => AppError::too_large(e.to_string()),
            e @ PutError::WrongHash { .. } => AppError::new(ErrorCode::InvalidHash, e.to_string()),
            PutError::Io { context, source } => AppError::io(context, source),
        }
    }
}

#[utoipa::path(put, path = "/api/projects/{project_id}/blobs/{hash}", tag = "content", security(("token" = [])),
    description = "A whole file's bytes, streamed; they must hash to `hash` (else 422 `invalid_hash`).",
    params(("project_id" = String, Path, description = "A project id, as `Project.id`"), ("hash" = String, Path, description = "BLAKE3 of the whole file, 64 lowercase hex digits")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, description = "Stored (or a damaged copy repaired)"),
        (status = 200, description = "Already stored whole"), crate::openapi::Refusals))]
async fn put_blob(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    UrlPath((project_id, hash)): UrlPath<(String, String)>,
    req: Request,
) -> AppResult<Response> {
    require_member(&state, &project_id, &user).await?;
    let hash = parse_hash(&hash)?;
    let store = &state.blobs;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > store.max_bytes) {
        return Err(PutError::TooLarge(store.max_bytes).into());
    }
    let gate = state.retention.gate.read().await;
    state.retention.claims.claim(&project_id, [&hash]);
    let before = locate(&state, &project_id, &hash).await?;
    drop(gate);
    let body = req.into_body().into_data_stream();
    let stored = store.put(&project_id, hash, body).await?;
    // 200 only when the content was already stored whole; a damaged or
    // quarantined chunk of it is rewritten by the cutting below.
    let was_whole = match (before, stored) {
        (_, Stored::Existing) => true,
        (None, Stored::New(_)) => false,
        (Some(Content::Chunks(m)), Stored::New(_)) => {
            absent_chunks(&state.chunks, &project_id, m.chunks)
                .await?
                .is_empty()
        }
        (Some(Content::Whole { size, .. } | Content::OneChunk { size }), Stored::New(n)) => {
            size == n
        }
    };
    // Cut into chunks + manifest after answering (a 1 GiB file takes a
    // while); until then the whole copy is served, as in v1.
    let (st, pid, path) = (
        state.clone(),
        project_id.clone(),
        store.path_of(&project_id, &hash),
    );
    tokio::spawn(async move {
        if let Err(e) = chunk_whole_blob(&st, &pid, path).await {
            tracing::warn!(blob = %hash, error = %e, "chunking a whole upload failed; it stays whole");
        }
    });
    match stored {
        Stored::New(bytes) if !was_whole => {
            metrics::counter!("vidsync_blob_bytes_stored_total").increment(bytes);
            Ok(StatusCode::CREATED.into_response())
        }
        _ => Ok(StatusCode::OK.into_response()),
    }
}

#[utoipa::path(method(get, head), path = "/api/projects/{project_id}/blobs/{hash}", tag = "content", security(("token" = [])),
    description = "A file's bytes, from whichever form holds them (whole or chunks). One `Range: bytes=` range is honoured (206, 416).",
    params(("project_id" = String, Path, description = "A project id, as `Project.id`"), ("hash" = String, Path, description = "BLAKE3 of the whole file, 64 lowercase hex digits")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The range asked", content_type = "application/octet-stream", body = Vec<u8>),
        crate::openapi::Refusals))]
async fn get_blob(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    UrlPath((project_id, hash)): UrlPath<(String, String)>,
    mut req: Request,
) -> AppResult<Response> {
    require_member(&state, &project_id, &user).await?;
    let hash = parse_hash(&hash)?;
    // A HEAD is a client asking whether to upload: what it finds is claimed.
    let _gate = if req.method() == axum::http::Method::HEAD {
        let gate = state.retention.gate.read().await;
        state.retention.claims.claim(&project_id, [&hash]);
        Some(gate)
    } else {
        None
    };
    let ignored = req
        .headers()
        .get(header::RANGE)
        .is_some_and(|v| !v.to_str().is_ok_and(acts_on_range));
    if ignored {
        req.headers_mut().remove(header::RANGE);
    }
    let no_blob = || AppError::not_found(format!("no blob {hash} in this project"));
    // A whole upload may be cut into chunks (and its whole copy removed)
    // between finding it and opening it: then it is looked up once more.
    for attempt in 0..2 {
        // Only a whole copy is served from a file from here on.
        let path = match locate(&state, &project_id, &hash).await? {
            None if crate::retention::was_collected(&state, &project_id, &hash).await? => {
                return Err(AppError::new(
                    vidsync_protocol::ErrorCode::Gone,
                    format!("the content {hash} was removed by retention (--keep-versions-days)"),
                ))
            }
            None => return Err(no_blob()),
            Some(Content::Chunks(m)) => {
                let store = state.chunks.clone();
                match serve_manifest(store, project_id.clone(), m, req.headers()).await? {
                    Ok(served) => return Ok(served),
                    // A whole upload of it, not cut into chunks yet, is whole.
                    Err(_) if state.blobs.contains(&project_id, &hash).await => {
                        state.blobs.path_of(&project_id, &hash)
                    }
                    Err(absent) => return Err(incomplete(&hash, &absent)),
                }
            }
            Some(Content::OneChunk { .. }) => {
                // At most 256 KiB: its bytes are checked before any is sent.
                let (store, pid) = (state.chunks.clone(), project_id.clone());
                let checked = tokio::task::spawn_blocking(move || store.read_checked(&pid, &hash))
                    .await
                    .map_err(|e| AppError::io("reading chunk", std::io::Error::other(e)))?
                    .map_err(|e| AppError::io("reading chunk", e))?;
                return match checked {
                    Some(bytes) => Ok(crate::chunks::serve::serve_bytes(bytes, req.headers())),
                    None => Err(no_blob()),
                };
            }
            Some(Content::Whole { path, .. }) => path,
        };
        let mut file_req = Request::new(Body::empty());
        *file_req.method_mut() = req.method().clone();
        *file_req.uri_mut() = req.uri().clone();
        *file_req.headers_mut() = req.headers().clone();
        let served = match tower_http::services::ServeFile::new(&path)
            .oneshot(file_req)
            .await
        {
            Ok(served) => served,
            Err(never) => match never {},
        };
        if attempt == 0 && served.status() == StatusCode::NOT_FOUND {
            tracing::debug!(blob = %hash, "the whole copy went (cut into chunks): looking again");
            continue;
        }
        return Ok(served.map(Body::new));
    }
    Err(no_blob())
}

/// 404 for content whose manifest is stored but some chunk is not (never
/// uploaded, or found damaged and quarantined): uploading it again repairs.
fn incomplete(hash: &ContentHash, absent: &[ContentHash]) -> AppError {
    let more = match absent.len() {
        0 | 1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    let first = absent.first().map(ContentHash::to_hex).unwrap_or_default();
    AppError::not_found(format!(
        "{hash} is not stored whole: chunk {first}{more} missing or damaged; upload it again"
    ))
}

#[cfg(test)]
mod tests {
    use super::acts_on_range;

    #[test]
    fn only_single_well_formed_byte_ranges_are_acted_on() {
        for v in [
            "bytes=0-10",
            "bytes=5-",
            "bytes=-100",
            "BYTES = 3-3",
            "bytes=0-0",
        ] {
            assert!(acts_on_range(v), "{v}");
        }
        for v in [
            "items=0-10",
            "bytes=0-1,5-6",
            "bytes=5-2",
            "bytes=abc",
            "bytes=-",
            "bytes",
            "bytes=1-2-3",
            "",
        ] {
            assert!(!acts_on_range(v), "{v}");
        }
    }
}
