//! `ApiClient`: the server's HTTP API with this client's token, and the
//! one distinction callers need from its failures: worth retrying or not.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::json;
use vidsync_protocol::chunking::Manifest;
use vidsync_protocol::{
    Change, ConflictEntry, ContentHash, ErrorBody, EventsPage, Invite, Project, ProjectEvent,
    UpdateRequest, UpdateResponse,
};
#[cfg(doc)]
use vidsync_protocol::{MAX_CHUNK_BATCH_BYTES, MAX_FETCH_IDS, MAX_MISSING_IDS};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The server could not be reached or the exchange broke off.
    #[error("cannot reach the server at {url}: {message}")]
    Network { url: String, message: String },
    /// The server answered with an error status.
    #[error("{message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
        /// With 409 `conflict`: each stale path and its current event.
        conflicts: Vec<ConflictEntry>,
    },
}

impl ApiError {
    /// Network trouble, 5xx and 429 are worth retrying; other 4xx are not.
    pub fn retryable(&self) -> bool {
        match self {
            ApiError::Network { .. } => true,
            ApiError::Refused { status, .. } => *status >= 500 || *status == 429,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Refused { status, .. } => Some(*status),
            ApiError::Network { .. } => None,
        }
    }
}

#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    /// The TLS settings of `http`, for the Socket.IO connection to share
    /// (set when a private CA is trusted).
    tls: Option<native_tls::TlsConnector>,
    base: String,
    token: String,
    /// What went through this client (all clones share it).
    traffic: Arc<Counters>,
}

/// Requests made and body bytes sent and received, since the client was
/// made: what `status.json` reports, and what the byte-count tests read.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
}

/// A reading of [`ApiClient::traffic`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Traffic {
    pub requests: u64,
    /// Request body bytes.
    pub sent: u64,
    /// Response body bytes.
    pub received: u64,
}

impl ApiClient {
    pub fn new(server: &str, token: &str) -> Result<ApiClient, ApiError> {
        Self::with_ca(server, token, None)
    }

    /// A client that also trusts the CA certificate(s) in `ca_file` (PEM).
    pub fn with_ca(
        server: &str,
        token: &str,
        ca_file: Option<&Path>,
    ) -> Result<ApiClient, ApiError> {
        let base = server.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ApiError::Network {
                url: base,
                message: "the server URL must start with http:// or https://".into(),
            });
        }
        let tls = match ca_file {
            Some(file) => Some(tls_trusting(file).map_err(|message| ApiError::Network {
                url: base.clone(),
                message,
            })?),
            None => None,
        };
        let mut builder = reqwest::Client::builder();
        if let Some(tls) = &tls {
            builder = builder.use_preconfigured_tls(tls.clone());
        }
        let http = builder
            .connect_timeout(Duration::from_secs(5))
            // A stalled exchange (a dead peer, a proxy that stopped passing
            // bytes) fails instead of hanging a folder for good.
            .read_timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| ApiError::Network {
                url: base.clone(),
                message: e.to_string(),
            })?;
        Ok(ApiClient {
            http,
            tls,
            base,
            token: token.to_string(),
            traffic: Arc::default(),
        })
    }

    /// What went through this client so far.
    pub fn traffic(&self) -> Traffic {
        Traffic {
            requests: self.traffic.requests.load(Ordering::Relaxed),
            sent: self.traffic.sent.load(Ordering::Relaxed),
            received: self.traffic.received.load(Ordering::Relaxed),
        }
    }

    fn sent(&self, n: u64) {
        self.traffic.sent.fetch_add(n, Ordering::Relaxed);
    }

    fn received(&self, n: u64) {
        self.traffic.received.fetch_add(n, Ordering::Relaxed);
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// The TLS connector trusting `--ca-file`, if one was given.
    pub fn tls_connector(&self) -> Option<&native_tls::TlsConnector> {
        self.tls.as_ref()
    }

    fn net(&self, e: reqwest::Error) -> ApiError {
        let mut message = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            // Some layers repeat their source's text (OpenSSL's reason twice).
            let text = s.to_string();
            if !message.contains(&text) {
                message = format!("{message}: {text}");
            }
            src = s.source();
        }
        if untrusted_certificate(&message) {
            message.push_str(
                " (the server's TLS certificate is not trusted here: if a private CA signed \
                 it, log in again with `--ca-file CA.pem`)",
            );
        }
        ApiError::Network {
            url: self.base.clone(),
            message,
        }
    }

    async fn decode<T: DeserializeOwned>(&self, resp: reqwest::Response) -> Result<T, ApiError> {
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| self.net(e))?;
        self.received(bytes.len() as u64);
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes).map_err(|e| ApiError::Refused {
                status,
                code: "bad_response".into(),
                message: format!("the server's answer was not understood: {e}"),
                conflicts: Vec::new(),
            });
        }
        Err(refusal(status, &bytes))
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.traffic.requests.fetch_add(1, Ordering::Relaxed);
        self.http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
    }

    /// A JSON request body, counted as sent.
    fn json_body(&self, value: &impl serde::Serialize) -> Result<Vec<u8>, ApiError> {
        let bytes = serde_json::to_vec(value).map_err(|e| ApiError::Network {
            url: self.base.clone(),
            message: format!("encoding a request: {e}"),
        })?;
        self.sent(bytes.len() as u64);
        Ok(bytes)
    }

    /// POSTs `value` as JSON to `path` and decodes the answer.
    async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        value: &impl serde::Serialize,
    ) -> Result<T, ApiError> {
        let body = self.json_body(value)?;
        self.send(
            self.req(reqwest::Method::POST, path)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body),
        )
        .await
    }

    async fn send<T: DeserializeOwned>(&self, rb: reqwest::RequestBuilder) -> Result<T, ApiError> {
        let resp = rb
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| self.net(e))?;
        self.decode(resp).await
    }

    pub async fn projects(&self) -> Result<Vec<Project>, ApiError> {
        #[derive(serde::Deserialize)]
        struct List {
            projects: Vec<Project>,
        }
        let list: List = self
            .send(self.req(reqwest::Method::GET, "/api/projects"))
            .await?;
        Ok(list.projects)
    }

    pub async fn project(&self, id: &str) -> Result<Project, ApiError> {
        self.send(self.req(reqwest::Method::GET, &format!("/api/projects/{id}")))
            .await
    }

    pub async fn create_project(&self, name: &str) -> Result<Project, ApiError> {
        self.send(
            self.req(reqwest::Method::POST, "/api/projects")
                .body(self.json_body(&json!({ "name": name }))?)
                .header(reqwest::header::CONTENT_TYPE, "application/json"),
        )
        .await
    }

    pub async fn create_invite(&self, project_id: &str) -> Result<Invite, ApiError> {
        self.send(
            self.req(
                reqwest::Method::POST,
                &format!("/api/projects/{project_id}/invites"),
            )
            .body(self.json_body(&json!({}))?)
            .header(reqwest::header::CONTENT_TYPE, "application/json"),
        )
        .await
    }

    pub async fn accept_invite(&self, code: &str) -> Result<Project, ApiError> {
        if code.is_empty()
            || !code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ApiError::Refused {
                status: 404,
                code: "not_found".into(),
                message: "unknown invite code".into(),
                conflicts: Vec::new(),
            });
        }
        self.send(
            self.req(
                reqwest::Method::POST,
                &format!("/api/invites/{code}/accept"),
            )
            .body(self.json_body(&json!({}))?)
            .header(reqwest::header::CONTENT_TYPE, "application/json"),
        )
        .await
    }

    pub async fn post_changes(
        &self,
        project_id: &str,
        client_id: &str,
        changes: &[Change],
    ) -> Result<UpdateResponse, ApiError> {
        let body = UpdateRequest {
            client_id: client_id.to_string(),
            changes: changes.to_vec(),
        };
        self.send(
            self.req(
                reqwest::Method::POST,
                &format!("/api/projects/{project_id}/files/update"),
            )
            .body(self.json_body(&body)?)
            .header(reqwest::header::CONTENT_TYPE, "application/json"),
        )
        .await
    }

    pub async fn events(
        &self,
        project_id: &str,
        since: u64,
        limit: u32,
    ) -> Result<EventsPage, ApiError> {
        let path = format!("/api/projects/{project_id}/events?since_seq={since}&limit={limit}");
        self.send(self.req(reqwest::Method::GET, &path)).await
    }

    /// A page of events as raw JSON, so that one unreadable event (say, a
    /// path this client refuses) can be skipped without losing the page.
    pub async fn raw_events(
        &self,
        project_id: &str,
        since: u64,
        limit: u32,
    ) -> Result<RawPage, ApiError> {
        let path = format!("/api/projects/{project_id}/events?since_seq={since}&limit={limit}");
        self.send(self.req(reqwest::Method::GET, &path)).await
    }

    /// Downloads a blob into `dest`, resuming after the bytes `dest`
    /// already holds (`Range`), and checks the whole file against `hash`.
    pub async fn download_blob(
        &self,
        project_id: &str,
        hash: &ContentHash,
        dest: &Path,
        mut progress: impl FnMut(u64),
    ) -> Result<(), DownloadError> {
        use futures_util::StreamExt;
        use tokio::io::AsyncWriteExt;
        let have = tokio::fs::metadata(dest)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        let mut rb = self.req(
            reqwest::Method::GET,
            &format!("/api/projects/{project_id}/blobs/{hash}"),
        );
        if have > 0 {
            rb = rb.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let resp = rb
            .send()
            .await
            .map_err(|e| DownloadError::Api(self.net(e)))?;
        let status = resp.status().as_u16();
        let append = match status {
            206 => true,
            200 => false,
            // The temp file is already whole (or longer than the blob).
            416 => return verify(dest, hash).await,
            _ => {
                let bytes = resp.bytes().await.unwrap_or_default();
                return Err(DownloadError::Api(refusal(status, &bytes)));
            }
        };
        if append && have > 0 {
            tracing::info!(%hash, offset = have, "resuming download");
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(dest)
            .await
            .map_err(|e| DownloadError::Io(dest.display().to_string(), e))?;
        progress(if append { have } else { 0 });
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| DownloadError::Api(self.net(e)))?;
            self.received(chunk.len() as u64);
            file.write_all(&chunk)
                .await
                .map_err(|e| DownloadError::Io(dest.display().to_string(), e))?;
            progress(chunk.len() as u64);
        }
        file.sync_all()
            .await
            .map_err(|e| DownloadError::Io(dest.display().to_string(), e))?;
        drop(file);
        verify(dest, hash).await
    }

    /// Whether the server already has a blob.
    pub async fn has_blob(&self, project_id: &str, hash: &ContentHash) -> Result<bool, ApiError> {
        let resp = self
            .req(
                reqwest::Method::HEAD,
                &format!("/api/projects/{project_id}/blobs/{hash}"),
            )
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| self.net(e))?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            s => Err(refusal(s, b"")),
        }
    }

    /// Streams a file up as the blob `hash`.
    pub async fn put_blob(
        &self,
        project_id: &str,
        hash: &ContentHash,
        file: &Path,
    ) -> Result<(), ApiError> {
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|e| ApiError::Network {
                url: self.base.clone(),
                message: format!("{}: {e}", file.display()),
            })?;
        let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
        self.sent(len);
        let body =
            reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024));
        let resp = self
            .req(
                reqwest::Method::PUT,
                &format!("/api/projects/{project_id}/blobs/{hash}"),
            )
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body)
            .send()
            .await
            .map_err(|e| self.net(e))?;
        let status = resp.status().as_u16();
        if status == 200 || status == 201 {
            return Ok(());
        }
        let bytes = resp.bytes().await.unwrap_or_default();
        Err(refusal(status, &bytes))
    }
    /// Of `ids`, those the server does not store (`chunks/missing`; at
    /// most [`MAX_MISSING_IDS`] a call).
    pub async fn chunks_missing(
        &self,
        project_id: &str,
        ids: &[ContentHash],
    ) -> Result<Vec<ContentHash>, ApiError> {
        #[derive(serde::Deserialize)]
        struct Missing {
            missing: Vec<ContentHash>,
        }
        let m: Missing = self
            .post_json(
                &format!("/api/projects/{project_id}/chunks/missing"),
                &json!({ "chunks": ids }),
            )
            .await?;
        Ok(m.missing)
    }

    /// Of `files` (whole files' hashes), those whose content the server
    /// cannot serve, in one request per 10,000; `None` from a server that
    /// does not answer for files (then ask with `HEAD`).
    pub async fn files_missing(
        &self,
        project_id: &str,
        files: &[ContentHash],
    ) -> Result<Option<Vec<ContentHash>>, ApiError> {
        #[derive(serde::Deserialize)]
        struct Missing {
            missing_files: Option<Vec<ContentHash>>,
        }
        let mut out = Vec::new();
        for part in files.chunks(vidsync_protocol::MAX_MISSING_IDS) {
            let asked = self
                .post_json::<Missing>(
                    &format!("/api/projects/{project_id}/chunks/missing"),
                    &json!({ "chunks": [], "files": part }),
                )
                .await;
            let m = match asked {
                Ok(m) => m,
                // A server without content v2 routes.
                Err(ApiError::Refused {
                    status: 404 | 405, ..
                }) => return Ok(None),
                Err(e) => return Err(e),
            };
            match m.missing_files {
                Some(v) => out.extend(v),
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    }

    /// Uploads a body of frames (see [`crate::content::frames`]).
    pub async fn upload_chunks(&self, project_id: &str, frames: Vec<u8>) -> Result<(), ApiError> {
        self.sent(frames.len() as u64);
        let _: serde_json::Value = self
            .send(
                self.req(
                    reqwest::Method::POST,
                    &format!("/api/projects/{project_id}/chunks"),
                )
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(frames),
            )
            .await?;
        Ok(())
    }

    /// The chunks `ids`, in order, as one body of frames (at most
    /// [`MAX_FETCH_IDS`] and [`MAX_CHUNK_BATCH_BYTES`] a call).
    pub async fn fetch_chunks(
        &self,
        project_id: &str,
        ids: &[ContentHash],
    ) -> Result<bytes::Bytes, ApiError> {
        let body = self.json_body(&json!({ "chunks": ids }))?;
        let resp = self
            .req(
                reqwest::Method::POST,
                &format!("/api/projects/{project_id}/chunks/fetch"),
            )
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .map_err(|e| self.net(e))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| self.net(e))?;
        self.received(bytes.len() as u64);
        if status != 200 {
            return Err(refusal(status, &bytes));
        }
        Ok(bytes)
    }

    /// Stores manifests (each only once all its chunks are on the server).
    pub async fn post_manifests(
        &self,
        project_id: &str,
        manifests: &[Manifest],
    ) -> Result<(), ApiError> {
        let _: serde_json::Value = self
            .post_json(
                &format!("/api/projects/{project_id}/manifests"),
                &json!({ "manifests": manifests }),
            )
            .await?;
        Ok(())
    }

    /// The manifest of `hash`; `None` when the server has none (a legacy
    /// whole blob, fetched whole instead). Asked for packed (36 bytes an
    /// entry instead of about 90 as JSON); a JSON answer is read too.
    pub async fn manifest(
        &self,
        project_id: &str,
        hash: &ContentHash,
    ) -> Result<Option<Manifest>, ApiError> {
        let resp = self
            .req(
                reqwest::Method::GET,
                &format!("/api/projects/{project_id}/manifests/{hash}"),
            )
            .header(
                reqwest::header::ACCEPT,
                "application/octet-stream, application/json",
            )
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| self.net(e))?;
        let status = resp.status().as_u16();
        let packed = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/octet-stream"));
        let bytes = resp.bytes().await.map_err(|e| self.net(e))?;
        self.received(bytes.len() as u64);
        let bad = |message: String| ApiError::Refused {
            status,
            code: "bad_response".into(),
            message,
            conflicts: Vec::new(),
        };
        match status {
            200 if packed => {
                let chunks = vidsync_protocol::chunking::unpack_entries(&bytes)
                    .ok_or_else(|| bad("a packed manifest of partial entries".into()))?;
                let size = chunks.iter().map(|c| c.size as u64).sum();
                Ok(Some(Manifest {
                    hash: *hash,
                    size,
                    chunks,
                }))
            }
            200 => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| bad(format!("the server's answer was not understood: {e}"))),
            404 => Ok(None),
            _ => Err(refusal(status, &bytes)),
        }
    }

    /// Versions of `path`, newest first, older than `before_seq` (`GET history`).
    pub async fn history(
        &self,
        project_id: &str,
        path: &str,
        before_seq: Option<u64>,
        limit: u32,
    ) -> Result<HistoryPage, ApiError> {
        let mut rb = self
            .req(
                reqwest::Method::GET,
                &format!("/api/projects/{project_id}/history"),
            )
            .query(&[("path", path), ("limit", &limit.to_string())]);
        if let Some(b) = before_seq {
            rb = rb.query(&[("before_seq", b.to_string())]);
        }
        self.send(rb).await
    }

    /// `POST restore`: `request` as the protocol spells it (see
    /// [`RestoreRequest`]); a 410 `gone` when retention removed a version.
    pub async fn restore(
        &self,
        project_id: &str,
        request: &RestoreRequest,
    ) -> Result<RestoreOutcome, ApiError> {
        self.post_json(&format!("/api/projects/{project_id}/restore"), request)
            .await
    }

    /// One page of the project's files at head (`GET tree`), after `after`.
    pub async fn tree(
        &self,
        project_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<RawTreePage, ApiError> {
        let mut rb = self
            .req(
                reqwest::Method::GET,
                &format!("/api/projects/{project_id}/tree"),
            )
            .query(&[("limit", limit.to_string())]);
        if let Some(a) = after {
            rb = rb.query(&[("after", a)]);
        }
        self.send(rb).await
    }
}

/// A page of `GET tree` with its files left as JSON, so that one entry
/// this client cannot read is skipped, not the page.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct RawTreePage {
    pub at_seq: u64,
    pub files: Vec<serde_json::Value>,
    pub next: Option<String>,
}

/// A page of `GET events` with the events left as JSON.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct RawPage {
    pub events: Vec<serde_json::Value>,
    pub head_seq: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(transparent)]
    Api(ApiError),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The bytes do not hash to the blob's name: the server is wrong.
    #[error("the server sent bytes that do not match hash {0}")]
    Mismatch(ContentHash),
}

async fn verify(dest: &Path, hash: &ContentHash) -> Result<(), DownloadError> {
    let d = dest.to_path_buf();
    let got = tokio::task::spawn_blocking(move || crate::scan::hash_file(&d))
        .await
        .map_err(|e| DownloadError::Io(dest.display().to_string(), std::io::Error::other(e)))?
        .map_err(|e| DownloadError::Io(dest.display().to_string(), e))?;
    if &got.0 != hash {
        let _ = tokio::fs::remove_file(dest).await;
        return Err(DownloadError::Mismatch(*hash));
    }
    Ok(())
}

fn refusal(status: u16, bytes: &[u8]) -> ApiError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => ApiError::Refused {
            status,
            code: body.error.code.as_str().to_string(),
            message: body.error.message,
            conflicts: body.error.conflicts.unwrap_or_default(),
        },
        Err(_) => ApiError::Refused {
            status,
            code: "http".into(),
            message: format!("the server answered HTTP {status}"),
            conflicts: Vec::new(),
        },
    }
}

/// A TLS connector trusting the system's roots and every certificate in
/// `file` (PEM).
fn tls_trusting(file: &Path) -> Result<native_tls::TlsConnector, String> {
    let pem = std::fs::read(file)
        .map_err(|e| format!("cannot read the CA file {}: {e}", file.display()))?;
    let ca = native_tls::Certificate::from_pem(&pem)
        .map_err(|e| format!("{} is not a PEM certificate: {e}", file.display()))?;
    native_tls::TlsConnector::builder()
        .add_root_certificate(ca)
        .build()
        .map_err(|e| format!("TLS setup with {}: {e}", file.display()))
}

/// OpenSSL's ways of saying the chain does not lead to a trusted root.
fn untrusted_certificate(message: &str) -> bool {
    [
        "certificate verify failed",
        "self-signed certificate",
        "self signed certificate",
        "unable to get local issuer certificate",
    ]
    .iter()
    .any(|m| message.contains(m))
}

/// A page of `GET history`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct HistoryPage {
    pub events: Vec<ProjectEvent>,
    pub next_before_seq: Option<u64>,
}

/// The body of `POST restore`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreRequest {
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_by: Option<String>,
    pub dry_run: bool,
}

/// What `POST restore` appended (or would, with `dry_run`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct RestoreOutcome {
    pub events: Vec<ProjectEvent>,
    pub head_seq: u64,
    pub at_seq: u64,
    #[serde(default)]
    pub changes: Option<Vec<Change>>,
    #[serde(default)]
    pub kept: Vec<String>,
}
