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
use tokio_util::sync::CancellationToken;
use vidsync_protocol::{SubscribeAck, EV_PROJECT_EVENT, EV_SUBSCRIBE};

use super::{note_head, projects, set_conn, Connection, FeedEvent, RawEvent, Shared};
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

/// Keeps a Socket.IO connection up: first connect with back-off (0.5 s →
/// 8 s, jitter), each attempt over the preference's transports in order;
/// after that rust_socketio reconnects by itself.
pub(super) async fn run_socket(
    shared: Arc<Shared>,
    transport: Transport,
    cancel: CancellationToken,
) {
    let mut delays = backoff();
    loop {
        if cancel.is_cancelled() {
            return;
        }
        let mut result = Err("no transport to try".to_string());
        for kind in attempts(transport) {
            let builder = client_builder(&shared, kind);
            // connect() has no deadline of its own.
            let attempt = tokio::time::timeout(Duration::from_secs(10), builder.connect()).await;
            result = match attempt {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("no answer within 10 s".to_string()),
            };
            if result.is_ok() {
                break;
            }
            tracing::debug!(error = ?result.as_ref().err(), "socket connect attempt failed");
        }
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

/// The client's settings and its handlers, each a call of a function below.
fn client_builder(shared: &Arc<Shared>, transport: TransportType) -> ClientBuilder {
    let (s_connect, s_event, s_close, s_error, s_reconnect) = (
        shared.clone(),
        shared.clone(),
        shared.clone(),
        shared.clone(),
        shared.clone(),
    );
    let builder = ClientBuilder::new(shared.api.base());
    // The same trust as the HTTP client (a `--ca-file` CA).
    let builder = match shared.api.tls_connector() {
        Some(tls) => builder.tls_config(tls.clone()),
        None => builder,
    };
    builder
        .transport_type(transport)
        .auth(json!({ "token": shared.api.token() }))
        .reconnect(true)
        .reconnect_on_disconnect(true)
        .reconnect_delay(500, 8000)
        .on(Event::Connect, move |_, client: Client| {
            on_connect(s_connect.clone(), client).boxed()
        })
        .on(EV_PROJECT_EVENT, move |p, _| {
            on_project_event(&s_event, p);
            async {}.boxed()
        })
        .on(Event::Close, move |_, _| {
            socket_down(&s_close);
            async {}.boxed()
        })
        .on(Event::Error, move |p, _| {
            tracing::debug!(?p, "socket error");
            socket_down(&s_error);
            async {}.boxed()
        })
        .on_reconnect(move || {
            // Runs before each reconnect attempt: the socket is down.
            socket_down(&s_reconnect);
            async { ReconnectSettings::new() }.boxed()
        })
}

/// Connected: subscribe to every followed project from its cursor.
async fn on_connect(shared: Arc<Shared>, client: Client) {
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

/// The socket is down: no longer live (the poller takes over).
fn socket_down(shared: &Shared) {
    shared.socket_up.store(false, Ordering::SeqCst);
    if *shared.conn.borrow() == Connection::Live {
        set_conn(shared, Connection::Polling);
    }
}

/// Reconnect delays: 0.5 s doubling to 8 s, with jitter.
fn backoff() -> impl Iterator<Item = Duration> {
    crate::backoff(Duration::from_millis(500), Duration::from_secs(8))
}
