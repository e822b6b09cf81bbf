//! The feed's Socket.IO side: one connection per server, subscribed to
//! every followed project with `since_seq` = its cursor on each
//! (re)connect; events it receives go to the log processor.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client, ClientBuilder, ReconnectSettings};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vidsync_protocol::{
    Presence, SubscribeAck, EV_PROJECT_EVENT, EV_PROJECT_PRESENCE, EV_SUBSCRIBE,
};

use super::{
    current, note_head, projects, set_conn, set_link, Connection, ConnectionDetail, FeedEvent,
    RawEvent, Shared,
};
use crate::Transport;

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

/// Keeps a Socket.IO connection up. Until it first connects, this loop
/// tries (each try over the preference's transports in order) with the
/// back-off of [`Schedule`]; after that rust_socketio reconnects by itself,
/// each of its tries waiting for the same schedule in `on_reconnect`. A
/// connect refused for the token ends it all: `failed`, no more tries.
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
        let mut result = Err("no transport to try".to_string());
        for kind in attempts(transport) {
            let builder = client_builder(&shared, kind, tx.clone());
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
                let _ = client.disconnect().await;
                return;
            }
            Some(Ok(Some(Outcome::Connected))) => None,
            Some(Ok(Some(Outcome::Refused(m)))) => Some(m),
            Some(Ok(Some(Outcome::Closed))) => Some("the server closed the socket".into()),
            Some(_) => Some(format!("no connect within {CONNECT_DEADLINE:?}")),
        };
        if let Some(problem) = problem {
            let _ = client.disconnect().await;
            if is_token_refusal(&problem) {
                return fail(&shared, problem);
            }
            if !wait_to_retry(&shared, problem, &cancel).await {
                return;
            }
            continue;
        }
        *shared.client.lock().await = Some(client.clone());
        // rust_socketio reconnects after a lost transport from now on; a
        // refusal, or a disconnect by the server, comes back here.
        let problem = loop {
            tokio::select! {
                _ = cancel.cancelled() => {
                    let _ = client.disconnect().await;
                    return;
                }
                o = outcomes.recv() => match o {
                    Some(Outcome::Refused(m)) => break m,
                    Some(Outcome::Closed) => break "the server closed the socket".to_string(),
                    Some(Outcome::Connected) => {}
                    None => return,
                },
            }
        };
        *shared.client.lock().await = None;
        let _ = client.disconnect().await;
        if is_token_refusal(&problem) {
            return fail(&shared, problem);
        }
        // Closed by the server, or refused for another reason (it could not
        // check the token): rust_socketio does not try again; this loop does.
        if !wait_to_retry(&shared, problem, &cancel).await {
            return;
        }
    }
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
) -> ClientBuilder {
    let (s_connect, s_event, s_presence, s_close, s_error, s_reconnect) = (
        shared.clone(),
        shared.clone(),
        shared.clone(),
        shared.clone(),
        shared.clone(),
        shared.clone(),
    );
    let (on_error_outcomes, on_close_outcomes) = (outcomes.clone(), outcomes.clone());
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
        .reconnect(true)
        // A disconnect by the server comes back to `run_socket` instead.
        .reconnect_on_disconnect(false)
        // The back-off is ours ([`Schedule`], waited in `on_reconnect`).
        .reconnect_delay(1, 1)
        .on(Event::Connect, move |_, client: Client| {
            let _ = outcomes.send(Outcome::Connected);
            on_connect(s_connect.clone(), client).boxed()
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
            socket_down(&s_close);
            let _ = on_close_outcomes.send(Outcome::Closed);
            async {}.boxed()
        })
        .on(Event::Error, move |p, _| {
            let text = format!("{p:?}");
            tracing::debug!(%text, "socket error");
            socket_down(&s_error);
            if text.contains("ConnectError") {
                let _ = on_error_outcomes.send(Outcome::Refused(text));
            }
            async {}.boxed()
        })
        .on_reconnect(move || {
            // Runs before each reconnect try: the socket is down.
            let shared = s_reconnect.clone();
            async move {
                socket_down(&shared);
                if shared.failed.load(Ordering::SeqCst) {
                    // Refused for good: this client is being closed.
                    std::future::pending::<()>().await;
                }
                let wait = schedule_retry(&shared, "the connection was lost".into());
                tokio::time::sleep(wait).await;
                ReconnectSettings::new()
            }
            .boxed()
        })
}

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
async fn on_connect(shared: Arc<Shared>, client: Client) {
    if let Ok(mut s) = shared.schedule.lock() {
        *s = Schedule::default();
    }
    if let Ok(mut r) = shared.retry.lock() {
        *r = None;
    }
    *shared.client.lock().await = Some(client.clone());
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
