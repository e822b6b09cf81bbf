//! `LiveFeed`: each followed project's events, once each and in seq order,
//! from Socket.IO while the socket is up and from `GET events?since_seq`
//! polling while it is not.
//!
//! One socket per server carries every project: on each (re)connect it
//! subscribes to all of them with `since_seq` = the cursor, so the server
//! replays what was missed. Socket and poller both feed one processor that
//! drops seqs it has seen, fills gaps from the log, and hands events on.
//! The connection is always `live`, `polling` or `offline`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client, ClientBuilder, ReconnectSettings};
use rust_socketio::{Event, Payload, TransportType};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use vidsync_protocol::{
    ProjectEvent, SubscribeAck, EV_PROJECT_EVENT, EV_SUBSCRIBE, EV_UNSUBSCRIBE,
};

use crate::api::ApiClient;
use crate::Transport;

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
        let initial = if transport == Transport::PollingOnly {
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
            conn: conn_tx,
            raw: raw_tx,
            out: out_tx,
        });
        tokio::spawn(process(shared.clone(), raw_rx, cancel.clone()));
        tokio::spawn(report_connection(shared.clone(), conn_rx, cancel.clone()));
        tokio::spawn(poll(shared.clone(), poll_interval, cancel.clone()));
        if transport != Transport::PollingOnly {
            tokio::spawn(run_socket(
                shared.clone(),
                transport == Transport::WebsocketOnly,
                cancel,
            ));
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

/// Dedupes by seq, fills gaps from the log, hands events on in order.
async fn process(
    shared: Arc<Shared>,
    mut raw: mpsc::UnboundedReceiver<RawEvent>,
    cancel: CancellationToken,
) {
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => return,
            ev = raw.recv() => match ev { Some(ev) => ev, None => return },
        };
        let Some(cursor) = cursor_of(&shared, &ev.project_id) else {
            continue;
        };
        note_head(&shared, &ev.project_id, ev.seq);
        if ev.seq <= cursor {
            continue;
        }
        if ev.seq > cursor + 1 {
            // Missed some: read them from the log first.
            let mut at = cursor;
            while at + 1 < ev.seq {
                match shared.api.raw_events(&ev.project_id, at, PAGE).await {
                    Ok(page) if !page.events.is_empty() => {
                        note_head(&shared, &ev.project_id, page.head_seq);
                        for e in page
                            .events
                            .into_iter()
                            .filter_map(RawEvent::from_value)
                            .filter(|e| e.seq < ev.seq)
                        {
                            at = hand_on(&shared, e).unwrap_or(at);
                        }
                    }
                    Ok(_) => break,
                    Err(e) => {
                        tracing::debug!(%e, "gap fill failed; the poller or replay will bring them");
                        break;
                    }
                }
            }
            if at + 1 != ev.seq {
                continue;
            }
        }
        hand_on(&shared, ev);
    }
}

/// Advances the cursor and emits, if `ev` is the next one.
fn hand_on(shared: &Shared, ev: RawEvent) -> Option<u64> {
    {
        let mut cursors = shared.cursors.lock().ok()?;
        let c = cursors.get_mut(&ev.project_id)?;
        if ev.seq != *c + 1 {
            return None;
        }
        *c = ev.seq;
    }
    let seq = ev.seq;
    let msg = match ev.event {
        Ok(e) => FeedEvent::Event(e),
        Err(message) => FeedEvent::Invalid {
            project_id: ev.project_id,
            seq,
            message,
        },
    };
    let _ = shared.out.send(msg);
    Some(seq)
}

/// Polls the log of every project while the socket is not live.
async fn poll(shared: Arc<Shared>, every: Duration, cancel: CancellationToken) {
    loop {
        // A socket that is up but never got its subscribe acks: ask again.
        if shared.socket_up.load(Ordering::SeqCst) && *shared.conn.borrow() != Connection::Live {
            if let Some(client) = shared.client.lock().await.clone() {
                let projects: Vec<(String, u64)> = shared
                    .cursors
                    .lock()
                    .map(|c| c.iter().map(|(k, v)| (k.clone(), *v)).collect())
                    .unwrap_or_default();
                for (pid, since) in projects {
                    subscribe(&shared, &client, &pid, since).await;
                }
            }
        }
        if !(shared.socket_up.load(Ordering::SeqCst) && *shared.conn.borrow() == Connection::Live) {
            let projects: Vec<(String, u64)> = shared
                .cursors
                .lock()
                .map(|c| c.iter().map(|(k, v)| (k.clone(), *v)).collect())
                .unwrap_or_default();
            let mut reachable = true;
            for (pid, since) in projects {
                let mut since = since;
                loop {
                    match shared.api.raw_events(&pid, since, PAGE).await {
                        Ok(page) => {
                            note_head(&shared, &pid, page.head_seq);
                            let n = page.events.len();
                            for e in page.events.into_iter().filter_map(RawEvent::from_value) {
                                since = e.seq;
                                let _ = shared.raw.send(e);
                            }
                            if n < PAGE as usize {
                                break;
                            }
                        }
                        Err(e) if e.retryable() => {
                            tracing::debug!(%e, "poll failed");
                            reachable = false;
                            break;
                        }
                        Err(e) => {
                            let _ = shared.out.send(FeedEvent::Error {
                                project_id: pid.clone(),
                                message: e.to_string(),
                            });
                            break;
                        }
                    }
                }
                if !reachable {
                    break;
                }
            }
            if !shared.socket_up.load(Ordering::SeqCst) || *shared.conn.borrow() != Connection::Live
            {
                set_conn(
                    &shared,
                    if reachable {
                        Connection::Polling
                    } else {
                        Connection::Offline
                    },
                );
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

async fn subscribe(shared: &Arc<Shared>, client: &Client, project_id: &str, since: u64) {
    let shared2 = shared.clone();
    let pid = project_id.to_string();
    let res = client
        .emit_with_ack(
            EV_SUBSCRIBE,
            json!({ "project_id": project_id, "since_seq": since }),
            Duration::from_secs(20),
            move |p: Payload, _| {
                let shared = shared2.clone();
                let pid = pid.clone();
                async move {
                    let Some(ack) = ack_of(p) else { return };
                    if let Some(h) = ack.head_seq {
                        note_head(&shared, &pid, h);
                    }
                    if ack.ok {
                        if shared.socket_up.load(Ordering::SeqCst) {
                            set_conn(&shared, Connection::Live);
                        }
                    } else {
                        let message = ack
                            .error
                            .map(|e| e.message)
                            .unwrap_or_else(|| "subscription refused".into());
                        let _ = shared.out.send(FeedEvent::Error {
                            project_id: pid,
                            message,
                        });
                    }
                }
                .boxed()
            },
        )
        .await;
    if let Err(e) = res {
        tracing::debug!(%e, "subscribe could not be sent");
    }
}

/// rust_socketio hands an ack's argument list over as `[[ack]]` or `[ack]`.
fn ack_of(p: Payload) -> Option<SubscribeAck> {
    let Payload::Text(values) = p else {
        return None;
    };
    let mut v = values.into_iter().next()?;
    if let Value::Array(mut inner) = v {
        v = if inner.is_empty() {
            return None;
        } else {
            inner.remove(0)
        };
    }
    serde_json::from_value(v).ok()
}

/// Keeps a Socket.IO connection up: first connect with back-off (0.5 s →
/// 8 s, jitter); after that rust_socketio reconnects by itself.
async fn run_socket(shared: Arc<Shared>, websocket_only: bool, cancel: CancellationToken) {
    let mut delays = backoff();
    loop {
        if cancel.is_cancelled() {
            return;
        }
        let s_connect = shared.clone();
        let s_event = shared.clone();
        let s_reconnect = shared.clone();
        let s_close = shared.clone();
        let s_error = shared.clone();
        let builder = ClientBuilder::new(shared.api.base())
            .transport_type(if websocket_only {
                TransportType::Websocket
            } else {
                TransportType::Any
            })
            .auth(json!({ "token": shared.api.token() }))
            .reconnect(true)
            .reconnect_on_disconnect(true)
            .reconnect_delay(500, 8000)
            .on(Event::Connect, move |_, client: Client| {
                let shared = s_connect.clone();
                async move {
                    shared.socket_up.store(true, Ordering::SeqCst);
                    let projects: Vec<(String, u64)> = shared
                        .cursors
                        .lock()
                        .map(|c| c.iter().map(|(k, v)| (k.clone(), *v)).collect())
                        .unwrap_or_default();
                    if projects.is_empty() {
                        set_conn(&shared, Connection::Live);
                    }
                    for (pid, since) in projects {
                        subscribe(&shared, &client, &pid, since).await;
                    }
                }
                .boxed()
            })
            .on(EV_PROJECT_EVENT, move |p, _| {
                let shared = s_event.clone();
                async move {
                    if let Payload::Text(values) = p {
                        for v in values {
                            match RawEvent::from_value(v) {
                                Some(ev) => {
                                    let _ = shared.raw.send(ev);
                                }
                                None => tracing::warn!(
                                    "project:event without project_id or seq skipped"
                                ),
                            }
                        }
                    }
                }
                .boxed()
            })
            .on(Event::Close, move |_, _| {
                let shared = s_close.clone();
                async move {
                    shared.socket_up.store(false, Ordering::SeqCst);
                    if *shared.conn.borrow() == Connection::Live {
                        set_conn(&shared, Connection::Polling);
                    }
                }
                .boxed()
            })
            .on(Event::Error, move |p, _| {
                let shared = s_error.clone();
                async move {
                    tracing::debug!(?p, "socket error");
                    shared.socket_up.store(false, Ordering::SeqCst);
                    if *shared.conn.borrow() == Connection::Live {
                        set_conn(&shared, Connection::Polling);
                    }
                }
                .boxed()
            })
            .on_reconnect(move || {
                let shared = s_reconnect.clone();
                async move {
                    // Runs before each reconnect attempt: the socket is down.
                    shared.socket_up.store(false, Ordering::SeqCst);
                    if *shared.conn.borrow() == Connection::Live {
                        set_conn(&shared, Connection::Polling);
                    }
                    ReconnectSettings::new()
                }
                .boxed()
            });
        // connect() has no deadline of its own.
        let attempt = tokio::time::timeout(Duration::from_secs(10), builder.connect()).await;
        let result = match attempt {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("no answer within 10 s".to_string()),
        };
        match result {
            Ok(client) => {
                *shared.client.lock().await = Some(client.clone());
                cancel.cancelled().await;
                let _ = client.disconnect().await;
                return;
            }
            Err(e) => {
                let wait = delays.next().unwrap_or(Duration::from_secs(8));
                tracing::debug!(%e, ?wait, "socket connect failed");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// Reconnect delays: 0.5 s doubling to 8 s, with jitter.
fn backoff() -> impl Iterator<Item = Duration> {
    crate::backoff(Duration::from_millis(500), Duration::from_secs(8))
}
