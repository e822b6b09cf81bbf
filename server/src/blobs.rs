//! File content, addressed by BLAKE3 hash, stored per project under
//! `<data-dir>/blobs/<project>/<2 hex>/<hash>`. Uploads stream to a temp file
//! while hashing, and only bytes that hash to their name are kept; downloads
//! support `HEAD` and `Range`. Memory stays flat whatever the size.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::Router;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tower::ServiceExt;
use vidsync_protocol::{ContentHash, ErrorCode};

use crate::api::require_member;
use crate::auth::{random_hex, AuthUser};
use crate::error::{AppError, AppResult};
use crate::AppState;

#[derive(Clone)]
pub struct BlobStore {
    root: PathBuf,
    tmp: PathBuf,
    pub max_bytes: u64,
}

impl BlobStore {
    pub fn open(data_dir: &Path, max_bytes: u64) -> std::io::Result<BlobStore> {
        let root = data_dir.join("blobs");
        let tmp = data_dir.join("tmp");
        std::fs::create_dir_all(&root)?;
        std::fs::create_dir_all(&tmp)?;
        // Leftovers of uploads cut short by a crash.
        for entry in std::fs::read_dir(&tmp)? {
            let _ = std::fs::remove_file(entry?.path());
        }
        Ok(BlobStore {
            root,
            tmp,
            max_bytes,
        })
    }

    fn path_of(&self, project_id: &str, hash: &ContentHash) -> PathBuf {
        let hex = hash.to_hex();
        // Project ids are server-made hex strings, but never trust a URL
        // segment with the file system: hash it into a fixed-form name.
        let dir = blake3::hash(project_id.as_bytes()).to_hex();
        self.root.join(&dir[..32]).join(&hex[..2]).join(hex)
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/projects/{project_id}/blobs/{hash}",
        put(put_blob).get(get_blob).head(get_blob),
    )
}

fn parse_hash(s: &str) -> AppResult<ContentHash> {
    s.parse().map_err(|e: vidsync_protocol::HashError| {
        AppError::new(ErrorCode::InvalidHash, e.to_string())
    })
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

async fn put_blob(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    UrlPath((project_id, hash)): UrlPath<(String, String)>,
    req: Request,
) -> AppResult<Response> {
    require_member(&state, &project_id, &user).await?;
    let hash = parse_hash(&hash)?;
    let store = &state.blobs;
    let too_large = || {
        AppError::too_large(format!(
            "blob is over the server's limit of {} bytes",
            store.max_bytes
        ))
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > store.max_bytes) {
        return Err(too_large());
    }

    let tmp_path = store.tmp.join(format!("upload-{}", random_hex(12)));
    let guard = TempGuard(Some(tmp_path.clone()));
    let mut file = tokio::fs::File::create(&tmp_path)
        .await
        .map_err(|e| AppError::internal("creating blob temp file", e))?;
    let mut hasher = blake3::Hasher::new();
    let mut written: u64 = 0;
    let mut stream = req.into_body().into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| AppError::bad_request(format!("upload interrupted: {e}")))?;
        written += chunk.len() as u64;
        if written > store.max_bytes {
            return Err(too_large());
        }
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(|e| AppError::internal("writing blob", e))?;
    }
    let got = ContentHash::from(hasher.finalize());
    if got != hash {
        return Err(AppError::new(
            ErrorCode::InvalidHash,
            format!("the uploaded bytes hash to {got}, not {hash}"),
        ));
    }
    file.sync_all()
        .await
        .map_err(|e| AppError::internal("syncing blob", e))?;
    drop(file);

    let dest = store.path_of(&project_id, &hash);
    if tokio::fs::try_exists(&dest).await.unwrap_or(false) {
        return Ok(StatusCode::OK.into_response());
    }
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| AppError::internal("creating blob dir", e))?;
    }
    tokio::fs::rename(&tmp_path, &dest)
        .await
        .map_err(|e| AppError::internal("storing blob", e))?;
    std::mem::forget(guard);
    metrics::counter!("vidsync_blob_bytes_stored_total").increment(written);
    Ok(StatusCode::CREATED.into_response())
}

async fn get_blob(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    UrlPath((project_id, hash)): UrlPath<(String, String)>,
    req: Request,
) -> AppResult<Response> {
    require_member(&state, &project_id, &user).await?;
    let hash = parse_hash(&hash)?;
    let path = state.blobs.path_of(&project_id, &hash);
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        return Err(AppError::not_found(format!(
            "no blob {hash} in this project"
        )));
    }
    let served = tower_http::services::ServeFile::new(&path)
        .oneshot(req)
        .await
        .map_err(|e| AppError::internal("serving blob", e))?;
    Ok(served.map(Body::new))
}
