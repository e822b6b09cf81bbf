//! `LiveFeed`: each followed project's events, once each and in seq order,
//! from Socket.IO while the socket is up and from `GET events?since_seq`
//! polling while it is not.
//!
//! One socket per server carries every project: on each (re)connect it
//! subscribes to all of them with `since_seq` = the cursor, so the server
//! replays what was missed. Socket and poller both feed one processor that
//! drops seqs it has seen, fills gaps from the log, and hands events on.
//! The connection is one of [`Connection`]'s states; `reconnecting` and
//! `failed` come with a [`ConnectionDetail`] (next try, will it retry).
//! Who else is subscribed to each project (the server's `project:presence`)
//! is kept while the socket is up ([`LiveFeed::presence`]).
//!
//! Parts: this module (the feed's handle, cursors, connection state),
//! [`log`] (gap filling, ordering and polling from the event log),
//! [`socket`] (the Socket.IO connection and its subscriptions), [`post`]
//! (batches of changes sent up the socket, for the uploader).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use vidsync_protocol::{Present, ProjectEvent, EV_UNSUBSCRIBE};

use crate::api::ApiClient;
use crate::Transport;

mod log;
mod post;
mod socket;

use log::{poll, process};
pub use post::{SocketPost, ACK_DEADLINE};
pub use socket::PROBE_AFTER;
use socket::{run_socket, subscribe, LiveSocket};

/// How a client currently hears about remote changes.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Connection {
    /// The socket's first connect is under way.
    Connecting,
    /// The socket is up and subscribed.
    Live,
    /// The socket is down and the server does not answer: the next try is
    /// scheduled (see [`ConnectionDetail`]).
    Reconnecting,
    /// No socket (by preference, or it cannot connect), but the server
    /// answers over HTTP: the event log is polled.
    Polling,
    /// The server does not answer, and no socket try is scheduled.
    Offline,
    /// The server refused this client (an unknown or revoked token): it
    /// does not try again by itself.
    Failed,
}

impl Connection {
    pub fn as_str(self) -> &'static str {
        match self {
            Connection::Connecting => "connecting",
            Connection::Live => "live",
            Connection::Reconnecting => "reconnecting",
            Connection::Polling => "polling",
            Connection::Offline => "offline",
            Connection::Failed => "failed",
        }
    }

    /// Whether the server cannot be reached now (changes wait).
    pub fn is_down(self) -> bool {
        matches!(
            self,
            Connection::Reconnecting | Connection::Offline | Connection::Failed
        )
    }
}

/// More about a `reconnecting` or `failed` connection.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConnectionDetail {
    /// `reconnecting`: the number of the next try (1: the first retry).
    pub attempt: Option<u32>,
    /// `reconnecting`: when the next try is made (RFC 3339, UTC).
    pub next_try_at: Option<String>,
    /// `failed`: whether the client tries again by itself.
    pub will_retry: Option<bool>,
    /// Why the last try failed.
    pub reason: Option<String>,
}

impl ConnectionDetail {
    /// How a user is told the connection, as of `now`: "reconnecting in
    /// 4 s (try 3)", "failed, not retrying", or the state's name.
    pub fn describe(state: Connection, detail: Option<&Self>, now: time::OffsetDateTime) -> String {
        let next = detail.and_then(|d| d.next_try_at.as_deref()).and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        });
        match (state, next) {
            (Connection::Reconnecting, Some(at)) => {
                let ms = (at - now).whole_milliseconds().max(0);
                let secs = (ms + 999) / 1000;
                match detail.and_then(|d| d.attempt) {
                    Some(n) => format!("reconnecting in {secs} s (try {n})"),
                    None => format!("reconnecting in {secs} s"),
                }
            }
            (Connection::Failed, _) if detail.and_then(|d| d.will_retry) == Some(false) => {
                "failed, not retrying".to_string()
            }
            (state, _) => state.as_str().to_string(),
        }
    }
}

/// The connection as shown: its state and, for some states, the detail.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    state: Connection,
    detail: Option<ConnectionDetail>,
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
    /// Who is subscribed to a project changed ([`LiveFeed::presence`]).
    Presence {
        project_id: String,
    },
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
    /// How this client names itself in the handshake (presence).
    client_id: Option<String>,
    /// The newest `project:presence` list per followed project; emptied
    /// while the socket is down (nobody is known to be there).
    presence: Mutex<HashMap<String, Vec<Present>>>,
    /// Last seq handed on, per followed project.
    cursors: Mutex<HashMap<String, u64>>,
    /// Newest head the server reported, per project.
    heads: Mutex<HashMap<String, u64>>,
    socket_up: AtomicBool,
    /// Set once the server refused the token: nothing is tried again.
    failed: AtomicBool,
    /// The socket's next scheduled try, while it is down.
    retry: Mutex<Option<ConnectionDetail>>,
    /// The socket's back-off.
    schedule: Mutex<socket::Schedule>,
    /// The socket now connected, if any (one per connection: see
    /// [`socket::run_socket`]).
    client: tokio::sync::Mutex<Option<LiveSocket>>,
    /// How long an ack may take: then a batch goes by HTTP, and the
    /// socket is replaced.
    ack_deadline: Duration,
    /// A socket heard from for this long is asked whether it still reads
    /// ([`socket::PROBE_AFTER`]).
    probe_after: Duration,
    /// When the socket last gave a sign that it reads: an event, a
    /// presence list, an ack, the connect.
    heard: Mutex<Instant>,
    conn: watch::Sender<Link>,
    raw: mpsc::UnboundedSender<RawEvent>,
    out: mpsc::UnboundedSender<FeedEvent>,
}

#[derive(Clone)]
pub struct LiveFeed {
    shared: Arc<Shared>,
}

impl LiveFeed {
    /// Starts following `projects` (id → last seq already taken in),
    /// naming itself `client_id` to the server (presence), if given.
    pub fn start(
        api: ApiClient,
        client_id: Option<String>,
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
            Connection::Connecting
        };
        let (conn_tx, conn_rx) = watch::channel(Link {
            state: initial,
            detail: None,
        });
        let shared = Arc::new(Shared {
            api,
            client_id,
            presence: Mutex::new(HashMap::new()),
            cursors: Mutex::new(projects),
            heads: Mutex::new(HashMap::new()),
            socket_up: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            retry: Mutex::new(None),
            schedule: Mutex::default(),
            client: tokio::sync::Mutex::new(None),
            ack_deadline: env_ms("VIDSYNC_ACK_TIMEOUT_MS").unwrap_or(ACK_DEADLINE),
            probe_after: env_ms("VIDSYNC_SOCKET_PROBE_MS").unwrap_or(PROBE_AFTER),
            heard: Mutex::new(Instant::now()),
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
        self.shared.conn.borrow().state
    }

    /// The detail of a `reconnecting` or `failed` connection.
    pub fn connection_detail(&self) -> Option<ConnectionDetail> {
        self.shared.conn.borrow().detail.clone()
    }

    /// Who is subscribed to a project now, as the server last said
    /// (this client included); empty while the socket is down.
    pub fn presence(&self, project_id: &str) -> Vec<Present> {
        self.shared
            .presence
            .lock()
            .ok()
            .and_then(|p| p.get(project_id).cloned())
            .unwrap_or_default()
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
            if let Some(live) = self.shared.client.lock().await.as_ref() {
                subscribe(&self.shared, &live.client, project_id, since).await;
            }
        }
    }

    pub async fn remove_project(&self, project_id: &str) {
        if let Ok(mut c) = self.shared.cursors.lock() {
            c.remove(project_id);
        }
        if let Ok(mut p) = self.shared.presence.lock() {
            p.remove(project_id);
        }
        if let Some(live) = self.shared.client.lock().await.as_ref() {
            let _ = live.client.emit(EV_UNSUBSCRIBE, json!(project_id)).await;
        }
    }
}

/// A duration in milliseconds from the environment (tests set them).
fn env_ms(name: &str) -> Option<Duration> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
}

/// The socket gave a sign that it reads.
fn heard(shared: &Shared) {
    if let Ok(mut h) = shared.heard.lock() {
        *h = Instant::now();
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

/// Shows state `c` (without detail). A `failed` connection stays so.
fn set_conn(shared: &Shared, c: Connection) {
    set_link(shared, c, None);
}

fn set_link(shared: &Shared, state: Connection, detail: Option<ConnectionDetail>) {
    let link = Link { state, detail };
    shared.conn.send_if_modified(|cur| {
        let changed = cur.state != Connection::Failed && *cur != link;
        if changed {
            *cur = link;
        }
        changed
    });
}

fn current(shared: &Shared) -> Connection {
    shared.conn.borrow().state
}

async fn report_connection(
    shared: Arc<Shared>,
    mut rx: watch::Receiver<Link>,
    cancel: CancellationToken,
) {
    let first = rx.borrow_and_update().state;
    let _ = shared.out.send(FeedEvent::Connection(first));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = rx.changed() => {
                if r.is_err() { return; }
                let link = rx.borrow_and_update().clone();
                tracing::info!(server = %shared.api.base(), connection = link.state.as_str(), detail = ?link.detail, "connection changed");
                let _ = shared.out.send(FeedEvent::Connection(link.state));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_described_with_its_next_try() {
        let now = time::macros::datetime!(2026-01-01 0:00 UTC);
        let detail = ConnectionDetail {
            attempt: Some(3),
            next_try_at: Some("2026-01-01T00:00:03.2Z".into()),
            ..ConnectionDetail::default()
        };
        let describe = ConnectionDetail::describe;
        assert_eq!(
            describe(Connection::Reconnecting, Some(&detail), now),
            "reconnecting in 4 s (try 3)"
        );
        let later = now + time::Duration::seconds(10);
        assert_eq!(
            describe(Connection::Reconnecting, Some(&detail), later),
            "reconnecting in 0 s (try 3)"
        );
        let refused = ConnectionDetail {
            will_retry: Some(false),
            ..ConnectionDetail::default()
        };
        assert_eq!(
            describe(Connection::Failed, Some(&refused), now),
            "failed, not retrying"
        );
        assert_eq!(describe(Connection::Live, None, now), "live");
        assert_eq!(
            describe(Connection::Reconnecting, None, now),
            "reconnecting"
        );
    }

    #[test]
    fn reconnecting_offline_and_failed_are_down() {
        assert!(Connection::Reconnecting.is_down());
        assert!(Connection::Failed.is_down());
        assert!(Connection::Offline.is_down());
        assert!(!Connection::Connecting.is_down());
        assert!(!Connection::Polling.is_down());
        assert!(!Connection::Live.is_down());
    }
}
