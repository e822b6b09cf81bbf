//! `LiveFeed`: each followed project's events, once each and in seq order,
//! from Socket.IO while the socket is up and from `GET events?since_seq`
//! polling while it is not.
//!
//! One socket per server carries every project: on each (re)connect it
//! subscribes to all of them with `since_seq` = the cursor, so the server
//! replays what was missed. Socket and poller both feed one processor that
//! drops seqs it has seen, fills gaps from the log, and hands events on.
//! The connection is always `live`, `polling` or `offline`.
//!
//! Parts: this module (the feed's handle, cursors, connection state),
//! [`log`] (gap filling, ordering and polling from the event log),
//! [`socket`] (the Socket.IO connection and its subscriptions), [`post`]
//! (batches of changes sent up the socket, for the uploader).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rust_socketio::asynchronous::Client;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use vidsync_protocol::{ProjectEvent, EV_UNSUBSCRIBE};

use crate::api::ApiClient;
use crate::Transport;

mod log;
mod post;
mod socket;

use log::{poll, process};
pub use post::{SocketPost, ACK_DEADLINE};
use socket::{run_socket, subscribe};

/// How a client currently hears about remote changes.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Connection {
    Live,
    Polling,
    Offline,
}

impl Connection {
    pub fn as_str(self) -> &'static str {
        match self {
            Connection::Live => "live",
            Connection::Polling => "polling",
            Connection::Offline => "offline",
        }
    }
}

/// What the feed hands to its owner.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum FeedEvent {
    /// The next event of a project (seq = previous + 1).
    Event(ProjectEvent),
    /// The next seq of a project, but not an event this client accepts
    /// (a bad path, a malformed body): skipped, and said so.
    Invalid {
        project_id: String,
        seq: u64,
        message: String,
    },
    Connection(Connection),
    /// A refusal about one project (e.g. no longer a member).
    Error {
        project_id: String,
        message: String,
    },
}

/// Page size when polling or filling a gap.
const PAGE: u32 = 1000;

/// An event as it came, before it is checked.
struct RawEvent {
    project_id: String,
    seq: u64,
    event: Result<ProjectEvent, String>,
}

impl RawEvent {
    fn from_value(v: Value) -> Option<RawEvent> {
        let project_id = v.get("project_id")?.as_str()?.to_string();
        let seq = v.get("seq")?.as_u64()?;
        let event = serde_json::from_value::<ProjectEvent>(v).map_err(|e| e.to_string());
        Some(RawEvent {
            project_id,
            seq,
            event,
        })
    }
}

struct Shared {
    api: ApiClient,
    /// Last seq handed on, per followed project.
    cursors: Mutex<HashMap<String, u64>>,
    /// Newest head the server reported, per project.
    heads: Mutex<HashMap<String, u64>>,
    socket_up: AtomicBool,
    client: tokio::sync::Mutex<Option<Client>>,
    /// How long a `files:update` ack may take before the batch goes by HTTP.
    ack_deadline: Duration,
    conn: watch::Sender<Connection>,
    raw: mpsc::UnboundedSender<RawEvent>,
    out: mpsc::UnboundedSender<FeedEvent>,
}

#[derive(Clone)]
pub struct LiveFeed {
    shared: Arc<Shared>,
}

impl LiveFeed {
    /// Starts following `projects` (id → last seq already taken in).
    pub fn start(
        api: ApiClient,
        transport: Transport,
        poll_interval: Duration,
        projects: HashMap<String, u64>,
        cancel: CancellationToken,
    ) -> (LiveFeed, mpsc::UnboundedReceiver<FeedEvent>) {
        let (raw_tx, raw_rx) = mpsc::unbounded_channel();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let initial = if !transport.uses_socket() {
            Connection::Polling
        } else {
            Connection::Offline
        };
        let (conn_tx, conn_rx) = watch::channel(initial);
        let shared = Arc::new(Shared {
            api,
            cursors: Mutex::new(projects),
            heads: Mutex::new(HashMap::new()),
            socket_up: AtomicBool::new(false),
            client: tokio::sync::Mutex::new(None),
            ack_deadline: std::env::var("VIDSYNC_ACK_TIMEOUT_MS")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(ACK_DEADLINE, Duration::from_millis),
            conn: conn_tx,
            raw: raw_tx,
            out: out_tx,
        });
        tokio::spawn(process(shared.clone(), raw_rx, cancel.clone()));
        tokio::spawn(report_connection(shared.clone(), conn_rx, cancel.clone()));
        tokio::spawn(poll(shared.clone(), poll_interval, cancel.clone()));
        if transport.uses_socket() {
            tokio::spawn(run_socket(shared.clone(), transport, cancel));
        }
        (LiveFeed { shared }, out_rx)
    }

    pub fn connection(&self) -> Connection {
        *self.shared.conn.borrow()
    }

    /// The newest head the server reported for a project, if any yet.
    pub fn head(&self, project_id: &str) -> Option<u64> {
        self.shared
            .heads
            .lock()
            .ok()
            .and_then(|h| h.get(project_id).copied())
    }

    /// Moves a project's cursor forward (after a catch-up done elsewhere).
    pub fn advance(&self, project_id: &str, seq: u64) {
        if let Ok(mut c) = self.shared.cursors.lock() {
            if let Some(cur) = c.get_mut(project_id) {
                *cur = (*cur).max(seq);
            }
        }
    }

    /// Follows one more project from `since`.
    pub async fn add_project(&self, project_id: &str, since: u64) {
        if let Ok(mut c) = self.shared.cursors.lock() {
            c.insert(project_id.to_string(), since);
        }
        if self.shared.socket_up.load(Ordering::SeqCst) {
            if let Some(client) = self.shared.client.lock().await.as_ref() {
                subscribe(&self.shared, client, project_id, since).await;
            }
        }
    }

    pub async fn remove_project(&self, project_id: &str) {
        if let Ok(mut c) = self.shared.cursors.lock() {
            c.remove(project_id);
        }
        if let Some(client) = self.shared.client.lock().await.as_ref() {
            let _ = client.emit(EV_UNSUBSCRIBE, json!(project_id)).await;
        }
    }
}

fn cursor_of(shared: &Shared, project_id: &str) -> Option<u64> {
    shared.cursors.lock().ok()?.get(project_id).copied()
}

fn note_head(shared: &Shared, project_id: &str, head: u64) {
    if let Ok(mut h) = shared.heads.lock() {
        let e = h.entry(project_id.to_string()).or_insert(0);
        *e = (*e).max(head);
    }
}

fn set_conn(shared: &Shared, c: Connection) {
    shared.conn.send_if_modified(|cur| {
        let changed = *cur != c;
        *cur = c;
        changed
    });
}

async fn report_connection(
    shared: Arc<Shared>,
    mut rx: watch::Receiver<Connection>,
    cancel: CancellationToken,
) {
    let first = *rx.borrow_and_update();
    let _ = shared.out.send(FeedEvent::Connection(first));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = rx.changed() => {
                if r.is_err() { return; }
                let c = *rx.borrow_and_update();
                tracing::info!(server = %shared.api.base(), connection = c.as_str(), "connection changed");
                let _ = shared.out.send(FeedEvent::Connection(c));
            }
        }
    }
}

/// Every followed project and its cursor, as a list.
fn projects(shared: &Shared) -> Vec<(String, u64)> {
    shared
        .cursors
        .lock()
        .map(|c| c.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default()
}
