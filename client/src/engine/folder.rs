//! The folder loop: one task per linked folder, owning that folder's state
//! (pending remote events, the cursor, what to look at again, errors). Like
//! Syncthing's per-folder loop, it does one thing at a time, so taking in a
//! remote event, scanning and posting never interleave on a folder; every
//! input is a message or a timer, nothing is polled.
//!
//! Each turn: take in pending remote events in order (stop at the first
//! that must wait: the cursor never passes it), then look at what the
//! watcher reported, then post the outbox; then wait for the next message
//! or timer. The cursor is saved after the events it covers are done.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vidsync_protocol::ProjectEvent;

use super::placed::Placed;
use super::status::{badge, EngineEvent, FolderStatus, Transfer};
use super::Ctx;
use crate::feed::Connection;
use crate::scan::IgnoreRules;
use crate::watch::WatchMsg;
use crate::FolderLink;

/// What reaches a folder loop from outside.
#[derive(Debug)]
// One message per event, moved once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Msg {
    Remote(ProjectEvent),
    /// The next seq is an event this client cannot read.
    Invalid {
        seq: u64,
        message: String,
    },
    FeedError(String),
    Connection(Connection),
    /// Who is subscribed changed (read from the feed at the next status).
    Presence,
}

/// One remote seq still to be done.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Pending {
    Event(ProjectEvent),
    Invalid { seq: u64, message: String },
}

pub(crate) struct FolderLoop {
    pub(super) ctx: Arc<Ctx>,
    pub(super) link: FolderLink,
    /// Remote seqs handed to us and not done yet, in order.
    pub(super) pending: VecDeque<Pending>,
    /// The newest seq done (applied or set aside), and the one saved.
    pub(super) done_seq: u64,
    saved_seq: u64,
    /// The newest seq told to the user as a `RemoteEvent`.
    pub(super) announced_seq: u64,
    /// When pending events may be tried again (after a transient failure).
    pub(super) remote_retry_at: Option<Instant>,
    pub(super) remote_delays: Backoff,
    /// The outbox may hold something to post.
    pub(super) outbox_dirty: bool,
    pub(super) upload_retry_at: Option<Instant>,
    pub(super) upload_delays: Backoff,
    /// Paths to look at (from the watcher or a recheck), and a full rescan.
    pub(super) to_look: BTreeSet<PathBuf>,
    pub(super) rescan: bool,
    /// Index entries marked stale before the next look (so the file is
    /// hashed again and compared with this agreed version).
    pub(super) stale: Vec<(vidsync_protocol::ProjectPath, vidsync_protocol::ContentHash)>,
    /// Paths that were being written: looked at again at `recheck_at`.
    pub(super) recheck_at: Option<Instant>,
    pub(super) recheck: BTreeSet<PathBuf>,
    /// Paths this loop wrote or deleted that the watcher has not reported
    /// back yet, with when they are next looked at (see [`Placed`]).
    pub(super) placed: Placed,
    /// When set-aside events are tried again.
    pub(super) aside_at: Instant,
    pub(super) rules: IgnoreRules,
    /// Errors that are not in the database (watcher, feed, local state).
    pub(super) watch_error: Option<String>,
    pub(super) feed_error: Option<String>,
    /// Why pending events wait (a transient failure), for the logs/status.
    pub(super) waiting: Option<String>,
    /// Where new versions are built from, with chunks fetched ahead.
    pub(super) content: crate::content::Content,
    /// Events applied whose state writes are not written yet (see
    /// [`FolderLoop::take_in_pending`]).
    pub(super) unflushed: Vec<ProjectEvent>,
    /// Paths whose version was taken ahead of the feed after a 409, with
    /// that event's seq: the feed's events for the path up to it are not
    /// applied again (kept in `state.db` too, until the cursor passes).
    pub(super) ahead: HashMap<String, u64>,
}

/// Retry delays: doubling from 250 ms to 10 s, with jitter.
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(super) fn next(&mut self) -> Option<Duration> {
        use rand::Rng;
        let d = self.next;
        self.next = (d * 2).min(Duration::from_secs(10));
        let jitter = rand::rng().random_range(0..=d.as_millis() as u64 / 2);
        Some(d + Duration::from_millis(jitter))
    }
}

pub(super) fn delays() -> Backoff {
    Backoff {
        next: Duration::from_millis(250),
    }
}

impl FolderLoop {
    pub(crate) fn new(ctx: Arc<Ctx>, link: FolderLink, since: u64) -> FolderLoop {
        let rules = IgnoreRules::load(&link.path);
        let content = crate::content::Content::new(
            ctx.api.clone(),
            ctx.state.clone(),
            link.path.clone(),
            link.project_id.clone(),
        );
        FolderLoop {
            content,
            aside_at: Instant::now(),
            ctx,
            link,
            pending: VecDeque::new(),
            done_seq: since,
            saved_seq: since,
            announced_seq: since,
            remote_retry_at: None,
            remote_delays: delays(),
            outbox_dirty: true,
            upload_retry_at: None,
            upload_delays: delays(),
            to_look: BTreeSet::new(),
            rescan: true,
            stale: Vec::new(),
            recheck_at: None,
            recheck: BTreeSet::new(),
            placed: Placed::default(),
            rules,
            watch_error: None,
            feed_error: None,
            waiting: None,
            unflushed: Vec::new(),
            ahead: HashMap::new(),
        }
    }

    /// Remote versions still to bring in (files, bytes): the pending
    /// events of other clients that carry content, but `except` (the one
    /// being applied).
    pub(super) fn down_left(&self, except: Option<u64>) -> (u64, u64) {
        let own = &self.ctx.client_id;
        self.pending
            .iter()
            .filter_map(|p| match p {
                Pending::Event(ev) => Some(ev),
                Pending::Invalid { .. } => None,
            })
            .filter(|ev| {
                ev.seq > self.done_seq
                    && Some(ev.seq) != except
                    && ev.origin.client_id != *own
                    && ev.change.op != vidsync_protocol::Op::Delete
            })
            .fold((0, 0), |(n, b), ev| {
                (n + 1, b + ev.change.size.unwrap_or(0))
            })
    }

    pub(super) fn pid(&self) -> &str {
        &self.link.project_id
    }

    pub(super) fn emit(&self, ev: EngineEvent) {
        self.ctx.board.emit(ev);
    }

    /// Runs until cancelled or the engine drops the inbox.
    pub(crate) async fn run(
        mut self,
        mut inbox: mpsc::UnboundedReceiver<Msg>,
        cancel: CancellationToken,
    ) {
        // Watch first, then scan: nothing that changes during the scan is missed.
        let watched = if self.link.mode.sends() {
            match crate::watch::watch(&self.link.path, self.ctx.debounce) {
                Ok((w, rx)) => Some((w, rx)),
                Err(e) => {
                    self.watch_error = Some(e.to_string());
                    None
                }
            }
        } else {
            None
        };
        let (_watch, mut batches) = match watched {
            Some((w, rx)) => (Some(w), Some(rx)),
            None => (None, None),
        };
        match self.ctx.state.taken_ahead(self.pid()).await {
            Ok(ahead) => self.ahead = ahead,
            Err(e) => tracing::error!(%e, project = %self.pid(), "reading versions taken ahead"),
        }
        self.refresh_status(true).await;
        loop {
            self.turn(batches.as_mut()).await;
            let wake = self.next_timer();
            tokio::select! {
                _ = cancel.cancelled() => break,
                m = inbox.recv() => match m {
                    Some(m) => self.hear(m),
                    None => break,
                },
                w = recv_watch(&mut batches) => match w {
                    Some(WatchMsg::Paths(p)) => self.reported(p),
                    Some(WatchMsg::Rescan) => self.rescan = true,
                    None => {
                        batches = None;
                        self.watch_error = Some("the file watcher stopped".into());
                        self.rescan = true;
                    }
                },
                _ = sleep_until(wake) => self.timers(),
            }
            // Take whatever else is already waiting before acting on it: a
            // backlog of watcher batches becomes one look, not one each.
            while let Ok(m) = inbox.try_recv() {
                self.hear(m);
            }
            if let Some(rx) = batches.as_mut() {
                self.take_watched(rx);
            }
        }
        self.save_cursor().await;
    }

    fn hear(&mut self, m: Msg) {
        match m {
            Msg::Remote(ev) => self.pending.push_back(Pending::Event(ev)),
            Msg::Invalid { seq, message } => {
                self.pending.push_back(Pending::Invalid { seq, message })
            }
            Msg::FeedError(e) => {
                tracing::warn!(project = %self.pid(), %e, "feed error");
                self.emit(EngineEvent::Error {
                    project_id: Some(self.pid().to_string()),
                    message: e.clone(),
                });
                self.feed_error = Some(e);
            }
            Msg::Presence => {}
            Msg::Connection(c) => {
                if matches!(c, Connection::Live | Connection::Polling) {
                    // Back online: whatever waited on the network goes now.
                    self.remote_retry_at = self.remote_retry_at.map(|_| Instant::now());
                    self.upload_retry_at = self.upload_retry_at.map(|_| Instant::now());
                }
            }
        }
    }

    /// The earliest timer, if any.
    fn next_timer(&self) -> Option<Instant> {
        [
            self.remote_retry_at,
            self.upload_retry_at,
            self.recheck_at,
            self.placed.next_at(),
            Some(self.aside_at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Moves due timers' work into the next turn.
    fn timers(&mut self) {
        let now = Instant::now();
        if self.recheck_at.is_some_and(|t| t <= now) {
            self.recheck_at = None;
            let paths = std::mem::take(&mut self.recheck);
            self.to_look.extend(paths);
        }
        let due = self.placed.due(now, self.ctx.debounce);
        self.to_look.extend(due);
    }

    /// Takes what the watcher has reported so far.
    pub(super) fn take_watched(&mut self, rx: &mut mpsc::UnboundedReceiver<WatchMsg>) {
        while let Ok(w) = rx.try_recv() {
            match w {
                WatchMsg::Paths(p) => self.reported(p),
                WatchMsg::Rescan => self.rescan = true,
            }
        }
    }

    /// Paths the watcher reported: to look at, and no longer unreported.
    fn reported(&mut self, paths: Vec<PathBuf>) {
        for p in &paths {
            self.placed.reported(p);
        }
        self.to_look.extend(paths);
    }

    /// One round of work, in order: remote events, local looks, uploads,
    /// set-aside retries; then the status.
    async fn turn(&mut self, watch: Option<&mut mpsc::UnboundedReceiver<WatchMsg>>) {
        let now = Instant::now();
        tracing::trace!(
            pending = self.pending.len(),
            look = self.to_look.len(),
            rescan = self.rescan,
            dirty = self.outbox_dirty,
            "turn"
        );
        if self.remote_retry_at.is_none_or(|t| t <= now) {
            self.take_in_pending().await;
        }
        if self.rescan || !self.to_look.is_empty() {
            self.look().await;
        }
        let remote_clear = self.pending.is_empty();
        let may_upload = self.upload_retry_at.is_none_or(|t| t <= now);
        if self.link.mode.sends() && self.outbox_dirty && remote_clear && may_upload {
            self.upload(watch).await;
        }
        if self.aside_at <= now {
            self.retry_set_aside().await;
            self.aside_at = Instant::now() + self.ctx.aside_retry;
        }
        self.save_cursor().await;
        self.refresh_status(false).await;
    }

    /// Saves the cursor once the events up to it are done.
    pub(super) async fn save_cursor(&mut self) {
        if self.done_seq <= self.saved_seq {
            return;
        }
        match self.ctx.state.set_cursor(self.pid(), self.done_seq).await {
            Ok(()) => self.saved_seq = self.done_seq,
            Err(e) => tracing::error!(%e, project = %self.pid(), "saving the cursor"),
        }
        let saved = self.saved_seq;
        if self.ahead.values().any(|&s| s <= saved) {
            // The feed can no longer bring those events again.
            match self.ctx.state.drop_taken_ahead(self.pid(), saved).await {
                Ok(()) => self.ahead.retain(|_, s| *s > saved),
                Err(e) => {
                    tracing::error!(%e, project = %self.pid(), "forgetting versions taken ahead")
                }
            }
        }
    }

    /// Recomputes the folder's status and puts it on the board.
    pub(super) async fn refresh_status(&self, always: bool) {
        let state = &self.ctx.state;
        let pid = self.pid();
        let (queued, refused) = match state.outbox_summary(pid).await {
            Ok(s) => s,
            Err(e) => (0, Some(format!("the local state cannot be read: {e}"))),
        };
        let set_aside = state.aside_list(pid).await.unwrap_or_default();
        let aside_error = set_aside
            .first()
            .map(|a| format!("{} not applied (event {}): {}", a.path, a.seq, a.reason));
        let conflicts = state
            .conflicts(pid)
            .await
            .unwrap_or_default()
            .iter()
            .filter(|p| self.link.path.join(p).exists())
            .count();
        let connection = self.ctx.feed.connection();
        let connection_detail = self.ctx.feed.connection_detail();
        let up_bytes = state.outbox_bytes(pid).await.unwrap_or(0);
        let (down_files, down_bytes) = self.down_left(None);
        let transfer = Transfer {
            down_files,
            down_bytes,
            up_files: queued,
            up_bytes,
        };
        let error = refused
            .or(aside_error)
            .or_else(|| self.watch_error.clone())
            .or_else(|| self.feed_error.clone());
        let status = FolderStatus {
            project_id: pid.to_string(),
            name: self.link.name.clone(),
            path: self.link.path.clone(),
            mode: self.link.mode,
            badge: badge(queued, connection, error.as_deref(), conflicts, false),
            connection,
            connection_detail,
            queued,
            last_seq: self.saved_seq,
            error,
            set_aside,
            transfer,
            present: self.ctx.feed.presence(pid),
        };
        self.ctx.board.set(status, always);
    }
}

async fn recv_watch(rx: &mut Option<mpsc::UnboundedReceiver<WatchMsg>>) -> Option<WatchMsg> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
