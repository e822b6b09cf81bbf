//! The feed's Socket.IO side: one connection per server, subscribed to
//! every followed project with `since_seq` = its cursor on each
//! (re)connect; events it receives go to the log processor.
//!
//! Each connection gets a new rust_socketio `Client`, and a `Client` never
//! outlives its connection. rust_socketio 0.6 keeps the acks a `Client`
//! waits for in one list, under random ids from 0..999; an ack that never
//! comes (its connection was lost, or the server did not answer) stays in
//! that list for good. Once two entries share an id, the ack for that id
//! makes its reader task panic (`handle_ack` removes by indexes it took
//! under an earlier lock) or answers the wrong caller, and a socket whose
//! reader died hears nothing more while it still looks up. So a lost
//! connection, an ack missed or misrouted, or a socket that does not
//! answer a probe after [`PROBE_AFTER`] of silence: the `Client` is
//! dropped and a new one connects.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client, ClientBuilder, ReconnectSettings};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use vidsync_protocol::{
    Presence, SubscribeAck, EV_FILES_UPDATE, EV_PROJECT_EVENT, EV_PROJECT_PRESENCE, EV_SUBSCRIBE,
};

use super::{
    current, heard, note_head, projects, set_conn, set_link, Connection, ConnectionDetail,
    FeedEvent, RawEvent, Shared,
};
use crate::Transport;

/// How long a connected socket may be silent before it is asked whether
/// it still reads (`VIDSYNC_SOCKET_PROBE_MS` overrides it).
pub const PROBE_AFTER: Duration = Duration::from_secs(30);

/// The socket of the current connection, and the way to give it up.
#[derive(Clone)]
pub(super) struct LiveSocket {
    pub(super) client: Client,
    outcomes: mpsc::UnboundedSender<Outcome>,
}

impl LiveSocket {
    /// This socket cannot be trusted any more (`why`): [`run_socket`]
    /// drops it and connects a new one. Said of a socket already replaced,
    /// it does nothing.
    pub(super) fn give_up(&self, why: &str) {
        tracing::debug!(why, "socket given up");
        let _ = self.outcomes.send(Outcome::Lost(why.to_string()));
    }
}

pub(super) async fn subscribe(shared: &Arc<Shared>, client: &Client, project_id: &str, since: u64) {
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
                    heard(&shared);
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

/// The Engine.IO transports a connect attempt tries, in order.
fn attempts(transport: Transport) -> Vec<TransportType> {
    match transport {
        Transport::WebsocketOnly => vec![TransportType::Websocket],
        Transport::WebsocketFirst => vec![TransportType::Websocket, TransportType::Polling],
        // A polling handshake, then the upgrade (polling if it fails).
        Transport::HttpFirst => vec![TransportType::Any],
        Transport::HttpOnly => Vec::new(),
    }
}

/// What a socket's namespace answered to a connect.
#[derive(Debug)]
enum Outcome {
    Connected,
    /// `connect_error`, with the server's message.
    Refused(String),
    /// The server disconnected the socket (e.g. its token was revoked).
    Closed,
    /// The connection was lost, or the socket is given up
    /// ([`LiveSocket::give_up`]).
    Lost(String),
}

/// The socket's back-off: tries since it was last connected, and the
/// delays (0.5 s doubling to 8 s, with jitter).
pub(super) struct Schedule {
    attempt: u32,
    delays: Box<dyn Iterator<Item = Duration> + Send>,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            attempt: 0,
            delays: Box::new(crate::backoff(
                Duration::from_millis(500),
                Duration::from_secs(8),
            )),
        }
    }
}

/// Keeps a Socket.IO connection up: each try (over the preference's
/// transports in order) makes a new `Client`; a lost or given-up
/// connection, or a disconnect by the server, is followed by the next try
/// after the back-off of [`Schedule`]. A connect refused for the token
/// ends it all: `failed`, no more tries.
pub(super) async fn run_socket(
    shared: Arc<Shared>,
    transport: Transport,
    cancel: CancellationToken,
) {
    loop {
        if cancel.is_cancelled() || shared.failed.load(Ordering::SeqCst) {
            return;
        }
        let (tx, mut outcomes) = mpsc::unbounded_channel();
        // Cancelled once this connection's `Client` is disconnected: its
        // reader, if it saw the connection end, then stops.
        let retired = CancellationToken::new();
        let mut result = Err("no transport to try".to_string());
        for kind in attempts(transport) {
            let builder = client_builder(&shared, kind, tx.clone(), retired.clone());
            // connect() has no deadline of its own.
            let attempt = tokio::time::timeout(CONNECT_DEADLINE, builder.connect()).await;
            result = match attempt {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {CONNECT_DEADLINE:?}")),
            };
            if result.is_ok() {
                break;
            }
            tracing::debug!(error = ?result.as_ref().err(), "socket connect attempt failed");
        }
        let client = match result {
            Ok(client) => client,
            Err(e) => {
                if !wait_to_retry(&shared, e, &cancel).await {
                    return;
                }
                continue;
            }
        };
        // The Engine.IO connection is open: the namespace answers with a
        // connect or a connect_error.
        let first = tokio::select! {
            _ = cancel.cancelled() => None,
            o = tokio::time::timeout(CONNECT_DEADLINE, outcomes.recv()) => Some(o),
        };
        let problem = match first {
            None => {
                retire(&client, &retired).await;
                return;
            }
            Some(Ok(Some(Outcome::Connected))) => None,
            Some(Ok(Some(Outcome::Refused(m)))) => Some(m),
            Some(Ok(Some(Outcome::Closed))) => Some("the server closed the socket".into()),
            Some(Ok(Some(Outcome::Lost(m)))) => Some(m),
            Some(_) => Some(format!("no connect within {CONNECT_DEADLINE:?}")),
        };
        if let Some(problem) = problem {
            retire(&client, &retired).await;
            if is_token_refusal(&problem) {
                return fail(&shared, problem);
            }
            if !wait_to_retry(&shared, problem, &cancel).await {
                return;
            }
            continue;
        }
        let live = LiveSocket {
            client: client.clone(),
            outcomes: tx.clone(),
        };
        *shared.client.lock().await = Some(live.clone());
        // A socket silent for `probe_after` is asked (at most one probe at
        // a time); the ticks come often enough to ask soon after.
        let probing = Arc::new(AtomicBool::new(false));
        let mut ticks = tokio::time::interval(
            (shared.probe_after / 4).clamp(Duration::from_millis(50), Duration::from_secs(5)),
        );
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let problem = loop {
            tokio::select! {
                _ = cancel.cancelled() => {
                    *shared.client.lock().await = None;
                    retire(&client, &retired).await;
                    return;
                }
                _ = ticks.tick() => probe_if_silent(&shared, &live, &probing),
                o = outcomes.recv() => match o {
                    Some(Outcome::Refused(m)) => break m,
                    Some(Outcome::Closed) => break "the server closed the socket".to_string(),
                    Some(Outcome::Lost(m)) => break m,
                    Some(Outcome::Connected) => {}
                    None => return,
                },
            }
        };
        *shared.client.lock().await = None;
        socket_down(&shared);
        retire(&client, &retired).await;
        if is_token_refusal(&problem) {
            return fail(&shared, problem);
        }
        if !wait_to_retry(&shared, problem, &cancel).await {
            return;
        }
    }
}

/// Disconnects a connection's `Client` for good, and lets its reader (if
/// it is waiting in `on_reconnect`) end.
async fn retire(client: &Client, retired: &CancellationToken) {
    // Marks the disconnect as ours first, so the reader does not reconnect;
    // on a connection already lost, sending the disconnect fails, and on
    // one that hangs it may wait: not for long.
    let _ = tokio::time::timeout(Duration::from_secs(2), client.disconnect()).await;
    retired.cancel();
}

/// If nothing has been heard from the socket for `probe_after`, asks it:
/// `files:update` with no changes, for a followed project. Any ack (the
/// server refuses an empty batch) shows the socket is read and answered;
/// none within the ack deadline gives the socket up. With no project
/// followed there is nothing to miss, and nothing is asked.
fn probe_if_silent(shared: &Arc<Shared>, live: &LiveSocket, probing: &Arc<AtomicBool>) {
    let silent = shared.heard.lock().map(|h| h.elapsed()).unwrap_or_default();
    if silent < shared.probe_after || !shared.socket_up.load(Ordering::SeqCst) {
        return;
    }
    let Some((project_id, _)) = projects(shared).into_iter().next() else {
        return;
    };
    if probing.swap(true, Ordering::SeqCst) {
        return;
    }
    let (shared, live, probing) = (shared.clone(), live.clone(), probing.clone());
    tokio::spawn(async move {
        let (tx, rx) = oneshot::channel();
        let mut tx = Some(tx);
        let body = json!({
            "project_id": project_id,
            "client_id": shared.client_id.as_deref().unwrap_or("probe"),
            "changes": [],
        });
        let deadline = shared.ack_deadline;
        let asked = async {
            live.client
                .emit_with_ack(EV_FILES_UPDATE, body, deadline, move |_, _| {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                    async {}.boxed()
                })
                .await
                .ok()?;
            rx.await.ok()
        };
        // The send is under the deadline too: a hung connection with its
        // send buffer full blocks it.
        let answered = matches!(tokio::time::timeout(deadline, asked).await, Ok(Some(())));
        if answered {
            heard(&shared);
        } else {
            tracing::debug!(?silent, "the socket did not answer a probe");
            live.give_up("the socket did not answer");
        }
        probing.store(false, Ordering::SeqCst);
    });
}

/// How long a connect may take (Engine.IO, then the namespace).
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// A `connect_error` that says the token is not accepted: trying again
/// would be refused the same way.
fn is_token_refusal(message: &str) -> bool {
    message.contains("unauthorized")
}

/// The server refused the token: `failed`, and nothing tries again.
pub(super) fn fail(shared: &Shared, reason: String) {
    tracing::warn!(server = %shared.api.base(), %reason, "the server refused the token; not trying again");
    shared.failed.store(true, Ordering::SeqCst);
    shared.socket_up.store(false, Ordering::SeqCst);
    if let Ok(mut r) = shared.retry.lock() {
        *r = None;
    }
    let detail = ConnectionDetail {
        will_retry: Some(false),
        reason: Some(reason),
        ..ConnectionDetail::default()
    };
    set_link(shared, Connection::Failed, Some(detail));
}

/// Schedules the next try after `reason`, shows it (`reconnecting`, unless
/// the server answers over HTTP: then the poller shows `polling`), and
/// waits for it. `false`: cancelled, or the token refused, meanwhile.
async fn wait_to_retry(shared: &Shared, reason: String, cancel: &CancellationToken) -> bool {
    if shared.failed.load(Ordering::SeqCst) {
        return false;
    }
    let wait = schedule_retry(shared, reason);
    tokio::select! {
        _ = cancel.cancelled() => false,
        // The poller may have been refused the token meanwhile.
        _ = tokio::time::sleep(wait) => !shared.failed.load(Ordering::SeqCst),
    }
}

fn schedule_retry(shared: &Shared, reason: String) -> Duration {
    let (attempt, wait) = match shared.schedule.lock() {
        Ok(mut s) => {
            s.attempt += 1;
            (s.attempt, s.delays.next().unwrap_or(Duration::from_secs(8)))
        }
        Err(_) => (1, Duration::from_secs(8)),
    };
    let at = time::OffsetDateTime::now_utc() + wait;
    let detail = ConnectionDetail {
        attempt: Some(attempt),
        next_try_at: Some(crate::rfc3339(at)),
        will_retry: None,
        reason: Some(reason),
    };
    tracing::debug!(attempt, ?wait, reason = ?detail.reason, "socket: next try scheduled");
    if let Ok(mut r) = shared.retry.lock() {
        *r = Some(detail.clone());
    }
    if current(shared) != Connection::Polling {
        set_link(shared, Connection::Reconnecting, Some(detail));
    }
    wait
}

/// The client's settings and its handlers, each a call of a function below.
fn client_builder(
    shared: &Arc<Shared>,
    transport: TransportType,
    outcomes: mpsc::UnboundedSender<Outcome>,
    retired: CancellationToken,
) -> ClientBuilder {
    let (s_connect, s_event, s_presence, s_close, s_error, s_reconnect) = (
        shared.clone(),
        shared.clone(),
        shared.clone(),
        shared.clone(),
        shared.clone(),
        shared.clone(),
    );
    let (on_error_outcomes, on_close_outcomes, lost) =
        (outcomes.clone(), outcomes.clone(), outcomes.clone());
    // A retired `Client`'s reader can still run for a while (on a hung
    // connection, until rust_engineio's ping check ends it): what it says
    // no longer concerns the connection state.
    let (r_connect, r_close, r_error) = (retired.clone(), retired.clone(), retired.clone());
    let builder = ClientBuilder::new(shared.api.base());
    // The same trust as the HTTP client (a `--ca-file` CA).
    let builder = match shared.api.tls_connector() {
        Some(tls) => builder.tls_config(tls.clone()),
        None => builder,
    };
    builder
        .transport_type(transport)
        .auth(match &shared.client_id {
            Some(id) => json!({ "token": shared.api.token(), "client_id": id }),
            None => json!({ "token": shared.api.token() }),
        })
        // rust_socketio's reconnect keeps the `Client`, and with it the
        // acks lost with the connection (see the module's doc). Its reader
        // calls `on_reconnect` when the connection ends: that reports the
        // loss to `run_socket` and waits until `run_socket` has
        // disconnected this `Client` (so the reader stops), then makes its
        // one try fail at once.
        .reconnect(true)
        .max_reconnect_attempts(1)
        .reconnect_on_disconnect(false)
        .reconnect_delay(1, 1)
        .on(Event::Connect, move |_, client: Client| {
            if r_connect.is_cancelled() {
                // A connect that came after `run_socket` gave up waiting
                // for it: rust_socketio has just marked the disconnect as
                // not ours, so its reader would reconnect; this marks it
                // ours again, and the reader ends with the connection.
                let retired = r_connect.clone();
                return async move { retire(&client, &retired).await }.boxed();
            }
            let live = LiveSocket {
                client,
                outcomes: outcomes.clone(),
            };
            let _ = outcomes.send(Outcome::Connected);
            on_connect(s_connect.clone(), live).boxed()
        })
        .on(EV_PROJECT_EVENT, move |p, _| {
            on_project_event(&s_event, p);
            async {}.boxed()
        })
        .on(EV_PROJECT_PRESENCE, move |p, _| {
            on_presence(&s_presence, p);
            async {}.boxed()
        })
        .on(Event::Close, move |_, _| {
            if r_close.is_cancelled() {
                return async {}.boxed();
            }
            socket_down(&s_close);
            let _ = on_close_outcomes.send(Outcome::Closed);
            async {}.boxed()
        })
        .on(Event::Error, move |p, _| {
            let text = format!("{p:?}");
            tracing::debug!(%text, "socket error");
            if r_error.is_cancelled() {
                return async {}.boxed();
            }
            socket_down(&s_error);
            if text.contains("ConnectError") {
                let _ = on_error_outcomes.send(Outcome::Refused(text));
            }
            async {}.boxed()
        })
        .on_reconnect(move || {
            // The connection ended.
            let shared = s_reconnect.clone();
            let lost = lost.clone();
            let retired = retired.clone();
            async move {
                if !retired.is_cancelled() {
                    socket_down(&shared);
                    let _ = lost.send(Outcome::Lost("the connection was lost".into()));
                }
                retired.cancelled().await;
                let mut settings = ReconnectSettings::new();
                settings.address(NO_ADDRESS);
                settings
            }
            .boxed()
        })
}

/// Not a URL: a retired `Client`'s reconnect try fails before any request.
const NO_ADDRESS: &str = "";

/// Connected: the back-off starts over; subscribe to every followed
/// project from its cursor.
///
/// The client is stored before `socket_up` is set, and the projects are
/// read after: a project added meanwhile ([`super::LiveFeed::add_project`]
/// inserts its cursor, then reads `socket_up`) is either in the list read
/// here or sees the socket up with a client to subscribe on. Storing the
/// client only after `connect()` returned left a window where neither
/// subscribed it, and the folder stayed `live` without ever hearing an
/// event.
async fn on_connect(shared: Arc<Shared>, live: LiveSocket) {
    if let Ok(mut s) = shared.schedule.lock() {
        *s = Schedule::default();
    }
    if let Ok(mut r) = shared.retry.lock() {
        *r = None;
    }
    heard(&shared);
    let client = live.client.clone();
    *shared.client.lock().await = Some(live);
    shared.socket_up.store(true, Ordering::SeqCst);
    let projects = projects(&shared);
    if projects.is_empty() {
        set_conn(&shared, Connection::Live);
    }
    for (pid, since) in projects {
        subscribe(&shared, &client, &pid, since).await;
    }
}

/// Events from the room go to the processor, which orders them.
fn on_project_event(shared: &Shared, p: Payload) {
    heard(shared);
    let Payload::Text(values) = p else {
        return;
    };
    for v in values {
        match RawEvent::from_value(v) {
            Some(ev) => {
                let _ = shared.raw.send(ev);
            }
            None => tracing::warn!("project:event without project_id or seq skipped"),
        }
    }
}

/// The server's list of who is subscribed to a followed project (the
/// newest is the truth: the server sends them in order).
fn on_presence(shared: &Shared, p: Payload) {
    heard(shared);
    let Payload::Text(values) = p else {
        return;
    };
    for v in values {
        let Ok(body) = serde_json::from_value::<Presence>(v) else {
            tracing::warn!("malformed project:presence skipped");
            continue;
        };
        if !shared
            .cursors
            .lock()
            .is_ok_and(|c| c.contains_key(&body.project_id))
        {
            continue;
        }
        if let Ok(mut map) = shared.presence.lock() {
            map.insert(body.project_id.clone(), body.present);
        }
        let _ = shared.out.send(FeedEvent::Presence {
            project_id: body.project_id,
        });
    }
}

/// The socket is down: no longer live (the poller takes over), and
/// nobody is known to be present.
fn socket_down(shared: &Shared) {
    let cleared: Vec<String> = match shared.presence.lock() {
        Ok(mut map) => map.drain().map(|(id, _)| id).collect(),
        Err(_) => Vec::new(),
    };
    for project_id in cleared {
        let _ = shared.out.send(FeedEvent::Presence { project_id });
    }
    shared.socket_up.store(false, Ordering::SeqCst);
    if current(shared) == Connection::Live {
        set_conn(shared, Connection::Polling);
    }
}
