//! `vidsync-server`: a project's event log over HTTP and Socket.IO on one port.
//!
//! The library runs, the binary binds: [`serve`] (or [`serve_tls`]) takes a
//! bound listener, the state and a shutdown future, so tests and `main` start
//! the same code. Areas: [`api`] (HTTP endpoints), [`blobs`] (file content),
//! [`live`] (Socket.IO), [`db`] (SQLite store and event log), [`auth`]
//! (tokens), [`openapi`] (the API's description), [`tls`] (built-in TLS),
//! [`check`] (`vidsync-server check`).

pub mod api;
pub mod auth;
pub mod blob_store;
pub mod blobs;
pub mod changes;
pub mod check;
pub mod chunks;
pub mod clock;
pub mod db;
pub mod error;
pub mod event_log;
pub mod history;
pub mod json;
pub mod live;
pub mod numbering;
pub mod openapi;
pub mod retention;
mod serve;
pub mod tls;
pub mod tree;
pub mod web;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use socketioxide::SocketIo;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use clock::{now_rfc3339, rfc3339};
pub use db::Db;
pub use serve::{serve, serve_tls};

/// Default of `--max-projects-per-user` (PROTOCOL.md v2 limits).
pub const DEFAULT_MAX_PROJECTS_PER_USER: u32 = 1_000;

/// What `serve` needs to know; `main` fills it from flags and environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Holds `vidsync.db` (unless `database_url` says otherwise) and `blobs/`.
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub max_blob_bytes: u64,
    /// Serve Socket.IO (false: HTTP only, clients poll).
    pub live: bool,
    /// API requests per second allowed per user (0: no limit).
    pub rate_limit: u32,
    /// Projects one user may own (403 `forbidden` past it).
    pub max_projects_per_user: u32,
    /// How long a connection may take to send a request's headers, and how
    /// long an idle keep-alive connection stays open.
    pub header_timeout: Duration,
    /// How long the content of a superseded version is kept.
    pub keep_versions: Duration,
    /// How often the retention collector runs (None: never on its own).
    pub gc_interval: Option<Duration>,
    /// Content no event names yet, or that a client was told is present,
    /// is left alone this long.
    pub gc_grace: Duration,
    /// Engine.IO heartbeat: a ping every `ping_interval`; a socket that has
    /// not answered within `ping_timeout` after it is closed.
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Origins (`scheme://host[:port]`) a browser may open a socket from,
    /// besides the server's own.
    pub allowed_origins: Vec<String>,
}

impl Config {
    /// The defaults `serve` starts with, for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: data_dir.into(),
            database_url: None,
            max_blob_bytes: vidsync_protocol::DEFAULT_MAX_BLOB_BYTES,
            live: true,
            rate_limit: 0,
            max_projects_per_user: DEFAULT_MAX_PROJECTS_PER_USER,
            header_timeout: Duration::from_secs(30),
            keep_versions: Duration::from_secs(30 * 86_400),
            gc_interval: Some(Duration::from_secs(3600)),
            gc_grace: Duration::from_secs(3600),
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            allowed_origins: Vec::new(),
        }
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| Db::url_for_data_dir(&self.data_dir))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot prepare data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "{0} is missing: it holds every chunk under 16 KiB (the small files). \
         Put it back from the backup it was taken with (README, Backup), then start again"
    )]
    MissingStore(PathBuf),
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub db: Db,
    pub blobs: blobs::BlobStore,
    pub chunks: chunks::ChunkStore,
    pub hub: Arc<live::Hub>,
    pub metrics: PrometheusHandle,
    pub live: bool,
    /// Per-user request limiter for `/api/...` (None: no limit).
    pub limiter: Option<auth::Limiter>,
    /// Projects one user may own.
    pub max_projects_per_user: u32,
    /// Open Socket.IO sockets, for `/health` and `/metrics`.
    connections: AtomicU64,
    /// Read by the revocation watcher through its own connection.
    database_url: String,
    header_timeout: Duration,
    pub retention: retention::Retention,
    /// Engine.IO heartbeat (see [`Config`]).
    ping: (Duration, Duration),
    allowed_origins: web::AllowedOrigins,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
    fn socket_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }
    fn socket_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The process-wide Prometheus recorder (installed once).
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            handle
        })
        .clone()
}

/// Opens the store (running migrations) and the blob directory.
pub async fn open_state(config: &Config) -> Result<AppState, ServeError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| ServeError::DataDir(config.data_dir.clone(), e))?;
    let db = Db::open(&config.database_url()).await?;
    let blobs = blobs::BlobStore::open(&config.data_dir, config.max_blob_bytes)
        .map_err(|e| ServeError::DataDir(config.data_dir.clone(), e))?;
    let small = config.data_dir.join(chunks::small::FILE);
    let made = db.layout_marked(chunks::small::MADE).await?;
    if made && !small.exists() {
        return Err(ServeError::MissingStore(small));
    }
    let chunks = chunks::ChunkStore::open(&config.data_dir)
        .map_err(|e| ServeError::DataDir(config.data_dir.clone(), e))?;
    if !made {
        db.mark_layout(chunks::small::MADE).await?;
    }
    check_stored_content(&db, &blobs, &chunks, &config.data_dir).await?;
    Ok(AppState(Arc::new(Inner {
        db,
        blobs,
        chunks,
        hub: Arc::default(),
        metrics: metrics_handle(),
        live: config.live,
        limiter: auth::limiter(config.rate_limit),
        max_projects_per_user: config.max_projects_per_user,
        connections: AtomicU64::new(0),
        database_url: config.database_url(),
        header_timeout: config.header_timeout,
        retention: retention::Retention {
            keep: config.keep_versions,
            interval: config.gc_interval,
            grace: config.gc_grace,
            claims: retention::Claims::new(config.gc_grace),
            gate: Default::default(),
        },
        ping: (config.ping_interval, config.ping_timeout),
        allowed_origins: web::AllowedOrigins(Arc::new(config.allowed_origins.clone())),
    })))
}

/// Quarantines stored blobs and chunks that are not whole, before anything
/// is served.
async fn check_stored_content(
    db: &Db,
    blobs: &blobs::BlobStore,
    chunks: &chunks::ChunkStore,
    data_dir: &std::path::Path,
) -> Result<(), ServeError> {
    let (known, projects) = db.blob_sizes().await?;
    let known = Arc::new(known);
    let (store, sizes, ids) = (blobs.clone(), known.clone(), projects.clone());
    let moved = tokio::task::spawn_blocking(move || store.check_all(&sizes, &ids))
        .await
        .map_err(std::io::Error::other)?
        .map_err(|e| ServeError::DataDir(data_dir.to_path_buf(), e))?;
    if moved > 0 {
        tracing::warn!(moved, "damaged blobs quarantined at start-up");
    }
    let moved = chunks::check::check_all(db, chunks, known, &projects).await?;
    if moved > 0 {
        tracing::warn!(moved, "damaged chunks quarantined at start-up");
    }
    Ok(())
}

/// Every HTTP route with its documentation: each is registered through its
/// handler's `#[utoipa::path]`, so the router and the OpenAPI document
/// ([`openapi::document`]) come from the same list.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(api::router().layer(DefaultBodyLimit::max(vidsync_protocol::MAX_JSON_BODY_BYTES)))
        .merge(blobs::router().layer(DefaultBodyLimit::disable()))
        .merge(chunks::router().layer(DefaultBodyLimit::max(vidsync_protocol::MAX_JSON_BODY_BYTES)))
        .merge(tree::router())
        .merge(
            history::router().layer(DefaultBodyLimit::max(vidsync_protocol::MAX_JSON_BODY_BYTES)),
        )
        .merge(api::open_router())
        .merge(web::router())
}

/// The whole HTTP + Socket.IO application.
pub fn app(state: AppState) -> (Router, SocketIo) {
    let (layer, io) = SocketIo::builder()
        .with_state(state.clone())
        // A polling response carries every packet queued for the socket, even
        // those queued while it is being made: `live::count_polls` bounds
        // what a polling socket is sent per poll (python-socketio refuses more
        // than 16 packets). Forwarders and acks wait for room in a full queue.
        .max_buffer_size(live::MAX_QUEUED_PACKETS)
        .max_payload(vidsync_protocol::MAX_SOCKET_MESSAGE_BYTES)
        .ws_max_message_size(vidsync_protocol::MAX_SOCKET_MESSAGE_BYTES as usize)
        // Each websocket's read buffer is filled with zeroes up to this size
        // (resident memory per socket); clients send only small messages
        // here, and a larger one is read in several steps.
        .ws_read_buffer_size(live::WS_READ_BUFFER_BYTES)
        .ping_interval(state.ping.0)
        .ping_timeout(state.ping.1)
        .build_layer();
    live::register(&io);
    let live = state.live;
    let (router, _) = routes().split_for_parts();
    let allowed = state.allowed_origins.clone();
    let router = router.fallback(api::not_found).with_state(state);
    let router = if live {
        let gates = Arc::new(live::PollGates::default());
        router
            .layer(layer)
            .layer(axum::middleware::from_fn_with_state(
                gates,
                live::count_polls,
            ))
            .layer(axum::middleware::from_fn_with_state(
                allowed,
                web::check_origin,
            ))
    } else {
        router
    };
    (router.layer(TraceLayer::new_for_http()), io)
}

/// Keeps the Socket.IO crates' packet dumps out of the log whatever
/// `RUST_LOG` asks for: the connect packet carries the token.
pub fn redact_secrets(filter: tracing_subscriber::EnvFilter) -> tracing_subscriber::EnvFilter {
    [
        "socketioxide",
        "engineioxide",
        "socketioxide_core",
        "socketioxide_parser_common",
    ]
    .into_iter()
    .filter_map(|target| format!("{target}=info").parse().ok())
    .fold(filter, |f, directive| f.add_directive(directive))
}
