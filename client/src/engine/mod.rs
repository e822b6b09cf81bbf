//! `Engine`: every linked folder of one config dir, kept in sync.
//!
//! Each running folder has one task (its [`folder`] loop) that owns the
//! folder's state; the watcher, the live feed, upload and download results
//! and timers reach it as messages. The engine itself only starts and stops
//! those loops, routes the [`LiveFeed`]'s events to them, and keeps the
//! [`status::Board`]. Everything it does is told as [`EngineEvent`]s, so the
//! CLI and the desktop app need no sync logic of their own.

mod folder;
mod local;
mod placed;
mod remote;
pub mod status;
mod upload;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::ApiClient;
use crate::feed::{FeedEvent, LiveFeed};
use crate::state::LocalState;
use crate::{Config, Error, FolderLink, Result};

pub use crate::feed::{Connection, ConnectionDetail};
pub use status::{badge, Badge, BadgeKind, EngineEvent, FolderStatus, Transfer};

use folder::Msg;

/// What every folder loop shares (read-only, or safe to share).
pub(crate) struct Ctx {
    pub(crate) client_id: String,
    pub(crate) debounce: Duration,
    pub(crate) state: LocalState,
    pub(crate) api: ApiClient,
    pub(crate) feed: LiveFeed,
    pub(crate) board: status::Board,
    /// How often set-aside events are tried again.
    pub(crate) aside_retry: Duration,
}

/// A running folder loop.
struct FolderRun {
    tx: mpsc::UnboundedSender<Msg>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

struct Inner {
    /// `engine.lock` in the config dir, locked while this engine runs
    /// (released by [`Engine::shutdown`], or by the OS if the process dies).
    lock: Mutex<Option<std::fs::File>>,
    ctx: Arc<Ctx>,
    folders_cfg: Mutex<Vec<FolderLink>>,
    running: tokio::sync::Mutex<HashMap<String, FolderRun>>,
    /// Where feed events go, per project: the running loops' inboxes.
    routes: Mutex<HashMap<String, mpsc::UnboundedSender<Msg>>>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// Runs `config` (as given: it need not be the saved one, e.g. with a
    /// `run` flag's debounce) over the local state in `dir`, where
    /// `status.json` is written too, and starts the live feed (folders
    /// themselves start with [`Engine::start_all`] / [`Engine::start_folder`]).
    pub async fn open(dir: &Path, config: Config) -> Result<Engine> {
        let (server, token) = config.credentials()?;
        let lock = lock_dir(dir)?;
        let api = ApiClient::with_ca(&server, &token, config.ca_file.as_deref())?;
        let state = LocalState::open(dir).await?;
        let cancel = CancellationToken::new();
        let (feed, feed_rx) = LiveFeed::start(
            api.clone(),
            Some(config.client_id.clone()),
            config.transport,
            Duration::from_millis(config.poll_interval_ms.max(100)),
            HashMap::new(),
            cancel.child_token(),
        );
        let (events, _) = broadcast::channel(4096);
        let aside_ms = std::env::var("VIDSYNC_RETRY_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(30_000);
        let ctx = Arc::new(Ctx {
            client_id: config.client_id.clone(),
            debounce: Duration::from_millis(config.debounce_ms),
            state,
            board: status::Board::new(dir, events, Some(api.clone())),
            api,
            feed,
            aside_retry: Duration::from_millis(aside_ms.max(100)),
        });
        let inner = Arc::new(Inner {
            lock: Mutex::new(Some(lock)),
            ctx,
            folders_cfg: Mutex::new(config.folders.clone()),
            running: Default::default(),
            routes: Default::default(),
            cancel,
            tracker: TaskTracker::new(),
        });
        let engine = Engine { inner };
        engine
            .inner
            .tracker
            .spawn(engine.clone().route_feed(feed_rx));
        Ok(engine)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.inner.ctx.board.subscribe()
    }

    pub fn client_id(&self) -> &str {
        &self.inner.ctx.client_id
    }

    pub fn connection(&self) -> Connection {
        self.inner.ctx.feed.connection()
    }

    pub fn statuses(&self) -> Vec<FolderStatus> {
        self.inner.ctx.board.all()
    }

    /// The local state the engine has open (for use-cases run beside it).
    pub(crate) fn local_state(&self) -> LocalState {
        self.inner.ctx.state.clone()
    }

    /// Starts every linked folder that is not paused.
    pub async fn start_all(&self) -> Result<()> {
        let links = self
            .inner
            .folders_cfg
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default();
        for link in links.into_iter().filter(|l| !l.paused) {
            self.start_folder(link).await?;
        }
        Ok(())
    }

    /// Starts syncing one folder (restarting it if it runs).
    pub async fn start_folder(&self, link: FolderLink) -> Result<()> {
        self.stop_folder(&link.project_id).await;
        if let Ok(mut cfg) = self.inner.folders_cfg.lock() {
            cfg.retain(|f| f.project_id != link.project_id);
            cfg.push(link.clone());
        }
        std::fs::create_dir_all(&link.path).map_err(|e| Error::io(&link.path, e))?;
        let ctx = &self.inner.ctx;
        let since = ctx.state.cursor(&link.project_id).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let cancel = self.inner.cancel.child_token();
        let tracker = TaskTracker::new();
        let run = folder::FolderLoop::new(ctx.clone(), link.clone(), since);
        tracker.spawn(run.run(rx, cancel.clone()));
        tracker.close();
        if let Ok(mut routes) = self.inner.routes.lock() {
            routes.insert(link.project_id.clone(), tx.clone());
        }
        // Follow the project only once the loop can hear its events.
        ctx.feed.add_project(&link.project_id, since).await;
        self.inner.running.lock().await.insert(
            link.project_id.clone(),
            FolderRun {
                tx,
                cancel,
                tracker,
            },
        );
        tracing::info!(project = %link.project_id, path = %link.path.display(), mode = link.mode.as_str(), "folder started");
        Ok(())
    }

    /// Stops one folder's loop and waits for it to end.
    pub async fn stop_folder(&self, project_id: &str) {
        let run = self.inner.running.lock().await.remove(project_id);
        if let Ok(mut routes) = self.inner.routes.lock() {
            routes.remove(project_id);
        }
        if let Some(run) = run {
            self.inner.ctx.feed.remove_project(project_id).await;
            run.cancel.cancel();
            drop(run.tx);
            run.tracker.wait().await;
            self.inner.ctx.board.remove(project_id);
        }
    }

    /// Stops every folder and the feed, and waits for all of their tasks.
    pub async fn shutdown(&self) {
        let ids: Vec<String> = self.inner.running.lock().await.keys().cloned().collect();
        for id in ids {
            self.stop_folder(&id).await;
        }
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
        self.inner.ctx.board.flush();
        self.inner.ctx.state.close().await;
        // Another engine may start on this dir now (the desktop app's
        // restart opens the next one while clones of this one live on).
        if let Ok(mut l) = self.inner.lock.lock() {
            l.take();
        }
    }

    /// The feed's events, each to the loop of its project. An event for a
    /// folder that is not running is dropped: its loop replays from the
    /// saved cursor when it starts.
    async fn route_feed(self, mut rx: mpsc::UnboundedReceiver<FeedEvent>) {
        loop {
            let msg = tokio::select! {
                _ = self.inner.cancel.cancelled() => return,
                m = rx.recv() => match m { Some(m) => m, None => return },
            };
            let Ok(routes) = self.inner.routes.lock() else {
                return;
            };
            let (pid, msg) = match msg {
                FeedEvent::Event(ev) => (ev.project_id.clone(), Msg::Remote(ev)),
                FeedEvent::Invalid {
                    project_id,
                    seq,
                    message,
                } => (project_id, Msg::Invalid { seq, message }),
                FeedEvent::Error {
                    project_id,
                    message,
                } => (project_id, Msg::FeedError(message)),
                FeedEvent::Presence { project_id } => (project_id, Msg::Presence),
                FeedEvent::Connection(c) => {
                    for tx in routes.values() {
                        let _ = tx.send(Msg::Connection(c));
                    }
                    continue;
                }
            };
            if let Some(tx) = routes.get(&pid) {
                // A closed inbox means the loop is stopping: nothing to do.
                let _ = tx.send(msg);
            }
        }
    }
}

/// Locks `dir/engine.lock` for this engine, or says who has it.
fn lock_dir(dir: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join("engine.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(Error::AlreadyRunning(dir.display().to_string()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}
