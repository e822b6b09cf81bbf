//! `Engine`: the sync loop for every linked folder of one config dir.
//!
//! Per sending folder: a watcher feeds the scanner, whose diffs go to the
//! outbox together with the index update; an uploader drains the outbox in
//! batches (blobs first), retrying with back-off on network trouble, 5xx
//! and 429, and parking changes the server refuses (the badge says
//! `error`). For all folders: one [`LiveFeed`] brings each project's events
//! in order. Everything the engine does is told as [`EngineEvent`]s, so the
//! CLI and the desktop app need no sync logic of their own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vidsync_protocol::{Op, ProjectEvent};

use crate::api::{ApiClient, ApiError};
use crate::feed::{FeedEvent, LiveFeed};
use crate::scan::{self, IgnoreRules};
use crate::state::LocalState;
use crate::{Config, Error, FolderLink, Mode, Result};

pub use crate::feed::Connection;

/// Changes posted per request.
const UPLOAD_BATCH: u32 = 500;
/// Files at least this big are checked with HEAD before uploading.
const ASK_FIRST_BYTES: u64 = 1 << 20;
/// Blob uploads under way at once.
const BLOB_CONCURRENCY: usize = 8;

/// What became of a change's content.
enum BlobOutcome {
    Ready,
    Superseded,
    Retry(ApiError),
    Refused(ApiError),
}

/// A folder's state as users see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderStatus {
    pub project_id: String,
    pub name: String,
    pub path: PathBuf,
    pub mode: Mode,
    /// `up to date`, `syncing (n)`, `offline (n queued)`, `error`, `paused`.
    pub badge: String,
    pub connection: Connection,
    pub queued: u64,
    pub last_seq: u64,
    pub error: Option<String>,
}

/// What the engine tells its shell.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EngineEvent {
    StatusChanged {
        status: FolderStatus,
    },
    ChangeQueued {
        project_id: String,
        path: String,
        op: Op,
    },
    ChangeUploaded {
        project_id: String,
        path: String,
        op: Op,
        seq: u64,
    },
    RemoteEvent {
        project_id: String,
        event: ProjectEvent,
    },
    /// A remote change is now in the folder ("Synced: path").
    Applied {
        project_id: String,
        path: String,
        op: Op,
        seq: u64,
        conflict: Option<String>,
    },
    Error {
        project_id: Option<String>,
        message: String,
    },
}

/// The badge for a folder (DESIGN.md, "Badges").
pub fn badge(
    queued: u64,
    connection: Connection,
    error: Option<&str>,
    conflicts: usize,
    paused: bool,
) -> String {
    if paused {
        "paused".into()
    } else if error.is_some() {
        "error".into()
    } else if conflicts > 0 {
        format!("conflict ({conflicts})")
    } else if queued > 0 && connection == Connection::Offline {
        format!("offline ({queued} queued)")
    } else if queued > 0 {
        format!("syncing ({queued})")
    } else {
        "up to date".into()
    }
}

struct FolderRun {
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

struct Inner {
    dir: PathBuf,
    client_id: String,
    debounce: Duration,
    folders_cfg: Mutex<Vec<FolderLink>>,
    state: LocalState,
    api: ApiClient,
    feed: LiveFeed,
    events: broadcast::Sender<EngineEvent>,
    running: tokio::sync::Mutex<HashMap<String, FolderRun>>,
    status: Mutex<HashMap<String, FolderStatus>>,
    /// Errors per project that are not outbox refusals (feed, watcher).
    errors: Mutex<HashMap<String, String>>,
    /// The last seq fully taken in (applied) per project.
    taken: Mutex<HashMap<String, u64>>,
    /// Held while a remote event is applied and while local changes are
    /// posted, so the two never interleave on one project.
    apply_lock: tokio::sync::Mutex<()>,
    cancel: CancellationToken,
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// Opens the config dir's state and starts the live feed for every
    /// linked folder (folders themselves start with [`Engine::start_all`]).
    pub async fn open(dir: &Path) -> Result<Engine> {
        let config = Config::load(dir)?;
        let (server, token) = config.credentials()?;
        let api = ApiClient::new(&server, &token)?;
        let state = LocalState::open(dir).await?;
        let mut cursors = HashMap::new();
        for f in &config.folders {
            cursors.insert(f.project_id.clone(), state.cursor(&f.project_id).await?);
        }
        let cursors_taken = cursors.clone();
        let cancel = CancellationToken::new();
        let (feed, feed_rx) = LiveFeed::start(
            api.clone(),
            config.transport,
            Duration::from_millis(config.poll_interval_ms.max(100)),
            cursors,
            cancel.child_token(),
        );
        let (events, _) = broadcast::channel(4096);
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            client_id: config.client_id.clone(),
            debounce: Duration::from_millis(config.debounce_ms),
            folders_cfg: Mutex::new(config.folders.clone()),
            state,
            api,
            feed,
            events,
            running: Default::default(),
            status: Default::default(),
            errors: Default::default(),
            taken: Mutex::new(cursors_taken),
            apply_lock: Default::default(),
            cancel,
        });
        let engine = Engine { inner };
        tokio::spawn(engine.clone().consume_feed(feed_rx));
        Ok(engine)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.inner.events.subscribe()
    }

    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    pub fn connection(&self) -> Connection {
        self.inner.feed.connection()
    }

    pub fn statuses(&self) -> Vec<FolderStatus> {
        let mut v: Vec<FolderStatus> = self
            .inner
            .status
            .lock()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.name.cmp(&b.name).then(a.project_id.cmp(&b.project_id)));
        v
    }

    fn emit(&self, ev: EngineEvent) {
        let _ = self.inner.events.send(ev);
    }

    /// Starts every linked folder.
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
        let since = self.inner.state.cursor(&link.project_id).await?;
        if let Ok(mut t) = self.inner.taken.lock() {
            t.insert(link.project_id.clone(), since);
        }
        self.inner.feed.add_project(&link.project_id, since).await;
        let cancel = self.inner.cancel.child_token();
        let mut tasks = Vec::new();
        std::fs::create_dir_all(&link.path).map_err(|e| Error::io(&link.path, e))?;
        if link.mode.sends() {
            let kick = Arc::new(Notify::new());
            tasks.push(tokio::spawn(self.clone().watch_folder(
                link.clone(),
                kick.clone(),
                cancel.clone(),
            )));
            tasks.push(tokio::spawn(self.clone().upload_folder(
                link.clone(),
                kick,
                cancel.clone(),
            )));
        }
        self.inner
            .running
            .lock()
            .await
            .insert(link.project_id.clone(), FolderRun { cancel, tasks });
        tracing::info!(project = %link.project_id, path = %link.path.display(), mode = link.mode.as_str(), "folder started");
        // Told even if unchanged: a shell that subscribed just now learns it.
        self.update_status(&link.project_id, true).await;
        Ok(())
    }

    pub async fn stop_folder(&self, project_id: &str) {
        let run = self.inner.running.lock().await.remove(project_id);
        if let Some(run) = run {
            run.cancel.cancel();
            for t in run.tasks {
                let _ = t.await;
            }
            self.inner.feed.remove_project(project_id).await;
        }
    }

    /// Stops everything and waits for the folders' tasks.
    pub async fn shutdown(&self) {
        let ids: Vec<String> = self.inner.running.lock().await.keys().cloned().collect();
        for id in ids {
            self.stop_folder(&id).await;
        }
        self.inner.cancel.cancel();
        self.inner.state.close().await;
    }

    fn link(&self, project_id: &str) -> Option<FolderLink> {
        self.inner
            .folders_cfg
            .lock()
            .ok()?
            .iter()
            .find(|f| f.project_id == project_id)
            .cloned()
    }

    /// Recomputes a folder's status; tells the shell if it changed.
    async fn refresh_status(&self, project_id: &str) {
        self.update_status(project_id, false).await
    }

    async fn update_status(&self, project_id: &str, always: bool) {
        let Some(link) = self.link(project_id) else {
            return;
        };
        let (queued, refused) = self
            .inner
            .state
            .outbox_summary(project_id)
            .await
            .unwrap_or((0, None));
        let last_seq = self.inner.state.cursor(project_id).await.unwrap_or(0);
        let connection = self.inner.feed.connection();
        let other = self
            .inner
            .errors
            .lock()
            .ok()
            .and_then(|e| e.get(project_id).cloned());
        let error = refused.or(other);
        let conflicts = self.conflict_count(&link).await;
        let status = FolderStatus {
            project_id: project_id.to_string(),
            name: link.name.clone(),
            path: link.path.clone(),
            mode: link.mode,
            badge: badge(queued, connection, error.as_deref(), conflicts, false),
            connection,
            queued,
            last_seq,
            error,
        };
        let changed = self
            .inner
            .status
            .lock()
            .map(|mut s| s.insert(project_id.to_string(), status.clone()).as_ref() != Some(&status))
            .unwrap_or(false);
        if changed || always {
            self.write_status_file();
            self.emit(EngineEvent::StatusChanged { status });
        }
    }

    /// Conflict copies this client made that are still in the folder.
    async fn conflict_count(&self, link: &FolderLink) -> usize {
        let paths = self
            .inner
            .state
            .conflicts(&link.project_id)
            .await
            .unwrap_or_default();
        paths.iter().filter(|p| link.path.join(p).exists()).count()
    }

    async fn refresh_all(&self) {
        let ids: Vec<String> = self
            .inner
            .folders_cfg
            .lock()
            .map(|f| f.iter().map(|l| l.project_id.clone()).collect())
            .unwrap_or_default();
        for id in ids {
            self.refresh_status(&id).await;
        }
    }

    /// `status.json`: what `vidsync status` shows while `run` is going.
    fn write_status_file(&self) {
        let body = serde_json::json!({
            "pid": std::process::id(),
            "updated_at": crate::now_rfc3339(),
            "folders": self.statuses(),
        });
        let file = self.inner.dir.join("status.json");
        let tmp = self.inner.dir.join(".status.json.tmp");
        if let Ok(bytes) = serde_json::to_vec_pretty(&body) {
            if std::fs::write(&tmp, bytes)
                .and_then(|_| std::fs::rename(&tmp, &file))
                .is_err()
            {
                tracing::debug!("could not write status.json");
            }
        }
    }

    fn set_error(&self, project_id: &str, message: Option<String>) {
        if let Ok(mut e) = self.inner.errors.lock() {
            match message {
                Some(m) => e.insert(project_id.to_string(), m),
                None => e.remove(project_id),
            };
        }
    }

    async fn consume_feed(self, mut rx: tokio::sync::mpsc::UnboundedReceiver<FeedEvent>) {
        while let Some(first) = rx.recv().await {
            // Take what is already waiting too, then save cursors and tell
            // statuses once per project: a burst of events costs one update.
            let mut cursors: HashMap<String, u64> = HashMap::new();
            let mut touched: std::collections::BTreeSet<String> = Default::default();
            let mut all = false;
            let mut next = Some(first);
            let mut n = 0;
            while let Some(msg) = next.take() {
                match msg {
                    FeedEvent::Event(ev) => {
                        let pid = ev.project_id.clone();
                        {
                            let _applying = self.inner.apply_lock.lock().await;
                            self.take_in(&ev).await;
                            if let Ok(mut t) = self.inner.taken.lock() {
                                t.insert(pid.clone(), ev.seq);
                            }
                        }
                        cursors.insert(pid.clone(), ev.seq);
                        touched.insert(pid);
                    }
                    FeedEvent::Invalid {
                        project_id,
                        seq,
                        message,
                    } => {
                        let message = format!("event {seq} skipped: {message}");
                        tracing::warn!(project = %project_id, %message);
                        if let Ok(mut t) = self.inner.taken.lock() {
                            t.insert(project_id.clone(), seq);
                        }
                        cursors.insert(project_id.clone(), seq);
                        self.set_error(&project_id, Some(message.clone()));
                        self.emit(EngineEvent::Error {
                            project_id: Some(project_id.clone()),
                            message,
                        });
                        touched.insert(project_id);
                    }
                    FeedEvent::Connection(_) => all = true,
                    FeedEvent::Error {
                        project_id,
                        message,
                    } => {
                        tracing::warn!(project = %project_id, %message, "feed error");
                        self.set_error(&project_id, Some(message.clone()));
                        self.emit(EngineEvent::Error {
                            project_id: Some(project_id.clone()),
                            message,
                        });
                        touched.insert(project_id);
                    }
                }
                n += 1;
                if n < 500 {
                    next = rx.try_recv().ok();
                }
            }
            // Saved after the events are applied: a crash replays them (the
            // applier then finds them done, or resumes their downloads).
            for (pid, seq) in cursors {
                if let Err(e) = self.inner.state.set_cursor(&pid, seq).await {
                    tracing::error!(%e, "saving cursor");
                }
            }
            if all {
                self.refresh_all().await;
            } else {
                for pid in touched {
                    self.refresh_status(&pid).await;
                }
            }
        }
    }

    fn applier(&self, link: &FolderLink) -> crate::apply::Applier {
        crate::apply::Applier {
            api: self.inner.api.clone(),
            state: self.inner.state.clone(),
            root: link.path.clone(),
            project_id: link.project_id.clone(),
            client_id: self.inner.client_id.clone(),
        }
    }

    /// One event of the log: our own echo is noted as agreed; a remote one
    /// is applied to receiving folders and told to the shell.
    async fn take_in(&self, ev: &ProjectEvent) {
        let Some(link) = self.link(&ev.project_id) else {
            return;
        };
        let pid = &ev.project_id;
        let own = ev.origin.client_id == self.inner.client_id;
        if link.mode == Mode::Send {
            if !own {
                self.emit(EngineEvent::RemoteEvent {
                    project_id: pid.clone(),
                    event: ev.clone(),
                });
            }
            return;
        }
        let applier = self.applier(&link);
        if own {
            if let Err(e) = applier.note_own(ev).await {
                tracing::error!(%e, "noting own event");
            }
            return;
        }
        tracing::debug!(project = %pid, seq = ev.seq, path = %ev.change.path, "remote event");
        self.emit(EngineEvent::RemoteEvent {
            project_id: pid.clone(),
            event: ev.clone(),
        });
        match applier.apply(ev, |_| {}).await {
            Ok(applied) => {
                let conflict = match applied {
                    crate::apply::Applied::Wrote { conflict }
                    | crate::apply::Applied::Deleted { conflict } => conflict,
                    _ => None,
                };
                self.set_error(pid, None);
                self.emit(EngineEvent::Applied {
                    project_id: pid.clone(),
                    path: ev.change.path.to_string(),
                    op: ev.change.op,
                    seq: ev.seq,
                    conflict,
                });
            }
            Err(e) => {
                let message = format!("could not apply event {} ({}): {e}", ev.seq, ev.change.path);
                tracing::warn!(project = %pid, %message);
                self.set_error(pid, Some(message.clone()));
                self.emit(EngineEvent::Error {
                    project_id: Some(pid.clone()),
                    message,
                });
            }
        }
    }

    async fn record_diffs(&self, link: &FolderLink, diffs: Vec<scan::Diff>) -> usize {
        let mut queued = 0;
        for d in diffs {
            // Echo suppression, second line: what is on disk is exactly the
            // version last agreed with the project (e.g. just applied), so
            // there is nothing to send.
            if link.mode != Mode::Send {
                let agreed = self
                    .inner
                    .state
                    .base(&link.project_id, d.path.as_str())
                    .await
                    .ok()
                    .flatten();
                let same = d.change.as_ref().is_some_and(|c| {
                    c.op != vidsync_protocol::Op::Delete && c.hash.is_some() && c.hash == agreed
                });
                if same {
                    // Anything still queued for the path is superseded too.
                    if let Err(e) = self
                        .inner
                        .state
                        .applied(&link.project_id, &d.path, d.entry.as_ref(), agreed.as_ref())
                        .await
                    {
                        tracing::error!(%e, path = %d.path, "could not record the index");
                    }
                    continue;
                }
            }
            match self
                .inner
                .state
                .record(
                    &link.project_id,
                    &d.path,
                    d.change.as_ref(),
                    d.entry.as_ref(),
                )
                .await
            {
                Ok(()) => {
                    if let Some(c) = d.change {
                        queued += 1;
                        self.emit(EngineEvent::ChangeQueued {
                            project_id: link.project_id.clone(),
                            path: c.path.to_string(),
                            op: c.op,
                        });
                    }
                }
                Err(e) => tracing::error!(%e, path = %d.path, "could not record a change"),
            }
        }
        queued
    }

    /// Scans the folder (or just `paths`) against the index and queues what
    /// changed; returns how many changes were queued.
    async fn look(
        &self,
        link: &FolderLink,
        rules: &IgnoreRules,
        paths: Option<Vec<PathBuf>>,
    ) -> usize {
        let index = self
            .inner
            .state
            .index(&link.project_id)
            .await
            .unwrap_or_default();
        let (root, rules) = (link.path.clone(), rules.clone());
        let diffs = tokio::task::spawn_blocking(move || match paths {
            None => scan::scan(&root, &rules, &index),
            Some(paths) => scan::rescan(&root, &rules, &index, &paths),
        })
        .await
        .unwrap_or_default();
        self.record_diffs(link, diffs).await
    }

    async fn watch_folder(self, link: FolderLink, kick: Arc<Notify>, cancel: CancellationToken) {
        let root = link.path.clone();
        // Watch first, then scan: nothing that changes during the scan is missed.
        let (watch, mut batches) = match crate::watch::watch(&root, self.inner.debounce) {
            Ok(w) => w,
            Err(e) => {
                self.set_error(&link.project_id, Some(e.to_string()));
                self.emit(EngineEvent::Error {
                    project_id: Some(link.project_id.clone()),
                    message: e.to_string(),
                });
                self.refresh_status(&link.project_id).await;
                return;
            }
        };
        let mut rules = IgnoreRules::load(&root);
        let n = self.look(&link, &rules, None).await;
        tracing::info!(project = %link.project_id, changes = n, "start-up scan done");
        kick.notify_one();
        self.refresh_status(&link.project_id).await;
        loop {
            let paths = tokio::select! {
                _ = cancel.cancelled() => break,
                p = batches.recv() => match p { Some(p) => p, None => break },
            };
            if paths.iter().any(|p| p == &root.join(scan::IGNORE_FILE)) {
                rules = IgnoreRules::load(&root);
            }
            if self.look(&link, &rules, Some(paths)).await > 0 {
                kick.notify_one();
                self.refresh_status(&link.project_id).await;
            }
        }
        drop(watch);
    }

    async fn upload_folder(self, link: FolderLink, kick: Arc<Notify>, cancel: CancellationToken) {
        let mut delays = retry_delays();
        loop {
            let retry_in = match self.upload_pending(&link).await {
                Ok(()) => {
                    delays = retry_delays();
                    None
                }
                Err(e) => {
                    let wait = delays.next().unwrap_or(Duration::from_secs(30));
                    tracing::debug!(%e, ?wait, project = %link.project_id, "upload failed; will retry");
                    Some(wait)
                }
            };
            self.refresh_status(&link.project_id).await;
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = kick.notified() => {}
                _ = async { match retry_in { Some(d) => tokio::time::sleep(d).await, None => std::future::pending().await } } => {}
            }
        }
    }

    /// Posts queued changes until the outbox is empty or a retryable
    /// failure stops it (returned).
    async fn upload_pending(&self, link: &FolderLink) -> std::result::Result<(), ApiError> {
        let pid = &link.project_id;
        loop {
            // Catch up first, and hold off the applier while posting: a
            // remote change to a path we changed is then applied (keeping
            // ours as a conflict copy) before ours could go up.
            if !link.mode.sends()
                || self
                    .inner
                    .state
                    .outbox_summary(pid)
                    .await
                    .map(|s| s.0)
                    .unwrap_or(0)
                    == 0
            {
                return Ok(());
            }
            self.wait_caught_up(pid).await?;
            let _posting = self.inner.apply_lock.lock().await;
            let batch = match self.inner.state.outbox_batch(pid, UPLOAD_BATCH).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(%e, "reading the outbox");
                    return Ok(());
                }
            };
            if batch.is_empty() {
                return Ok(());
            }
            // Blobs first, several at a time; results in batch order.
            let outcomes: Vec<(crate::state::Queued, BlobOutcome)> =
                futures_util::stream::iter(batch.into_iter().map(|q| async move {
                    let outcome = self.ensure_blob(pid, &link.path, &q.change).await;
                    (q, outcome)
                }))
                .buffered(BLOB_CONCURRENCY)
                .collect()
                .await;
            let mut send = Vec::with_capacity(outcomes.len());
            let mut superseded = Vec::new();
            for (q, outcome) in outcomes {
                match outcome {
                    BlobOutcome::Ready => send.push(q),
                    BlobOutcome::Superseded => superseded.push(q.id),
                    BlobOutcome::Retry(e) => return Err(e),
                    BlobOutcome::Refused(e) => self.refuse(pid, &[q.id], &e).await,
                }
            }
            if !superseded.is_empty() {
                let _ = self.inner.state.outbox_remove(&superseded).await;
            }
            if send.is_empty() {
                continue;
            }
            let changes: Vec<_> = send.iter().map(|q| q.change.clone()).collect();
            let ids: Vec<i64> = send.iter().map(|q| q.id).collect();
            match self
                .inner
                .api
                .post_changes(pid, &self.inner.client_id, &changes)
                .await
            {
                Ok(resp) => {
                    if let Err(e) = self.inner.state.outbox_remove(&ids).await {
                        tracing::error!(%e, "clearing the outbox");
                    }
                    self.set_error(pid, None);
                    for (c, ev) in changes.iter().zip(resp.events.iter()) {
                        self.emit(EngineEvent::ChangeUploaded {
                            project_id: pid.clone(),
                            path: c.path.to_string(),
                            op: c.op,
                            seq: ev.seq,
                        });
                    }
                    tracing::debug!(project = %pid, n = changes.len(), head = resp.head_seq, "changes posted");
                }
                Err(e) if e.retryable() => return Err(e),
                Err(e) => self.refuse(pid, &ids, &e).await,
            }
        }
    }

    /// Makes sure the server has the content a change names.
    async fn ensure_blob(
        &self,
        pid: &str,
        root: &Path,
        change: &vidsync_protocol::Change,
    ) -> BlobOutcome {
        let Some(hash) = change.hash else {
            return BlobOutcome::Ready;
        };
        let file = change.path.under(root);
        // Asking first only pays for big files; a small one just goes up
        // (the server answers 200 if it had it).
        if change.size.unwrap_or(0) >= ASK_FIRST_BYTES {
            match self.inner.api.has_blob(pid, &hash).await {
                Ok(true) => return BlobOutcome::Ready,
                Ok(false) => {}
                Err(e) if e.retryable() => return BlobOutcome::Retry(e),
                Err(e) => return BlobOutcome::Refused(e),
            }
        }
        match self.inner.api.put_blob(pid, &hash, &file).await {
            Ok(()) => BlobOutcome::Ready,
            // The file changed or went since: a newer change covers it.
            Err(ApiError::Refused { status: 422, .. }) => BlobOutcome::Superseded,
            Err(e) if e.retryable() && !file.exists() => BlobOutcome::Superseded,
            Err(e) if e.retryable() => BlobOutcome::Retry(e),
            Err(e) => BlobOutcome::Refused(e),
        }
    }

    async fn wait_caught_up(&self, project_id: &str) -> std::result::Result<(), ApiError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let caught_up = || {
            let taken = self
                .inner
                .taken
                .lock()
                .ok()
                .and_then(|t| t.get(project_id).copied())
                .unwrap_or(0);
            self.inner.feed.head(project_id).is_some_and(|h| taken >= h)
        };
        while !caught_up() {
            if tokio::time::Instant::now() >= deadline {
                return Err(ApiError::Network {
                    url: self.inner.api.base().to_string(),
                    message: "not caught up with the event log yet".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    async fn refuse(&self, project_id: &str, ids: &[i64], e: &ApiError) {
        let message = format!("the server refused a change: {e}");
        tracing::warn!(project = %project_id, %message);
        if let Err(err) = self.inner.state.outbox_fail(ids, &message).await {
            tracing::error!(%err, "parking a refused change");
        }
        self.emit(EngineEvent::Error {
            project_id: Some(project_id.to_string()),
            message,
        });
    }
}

fn retry_delays() -> impl Iterator<Item = Duration> {
    crate::backoff(Duration::from_millis(500), Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badge_follows_design() {
        assert_eq!(badge(0, Connection::Live, None, 0, false), "up to date");
        assert_eq!(badge(3, Connection::Live, None, 0, false), "syncing (3)");
        assert_eq!(badge(3, Connection::Polling, None, 0, false), "syncing (3)");
        assert_eq!(
            badge(2, Connection::Offline, None, 0, false),
            "offline (2 queued)"
        );
        assert_eq!(badge(0, Connection::Offline, None, 0, false), "up to date");
        assert_eq!(badge(2, Connection::Live, Some("nope"), 1, false), "error");
        assert_eq!(badge(0, Connection::Live, None, 2, false), "conflict (2)");
        assert_eq!(badge(2, Connection::Live, Some("nope"), 0, true), "paused");
    }
}
