//! The live feed: Socket.IO auth at the handshake, `subscribe:project` /
//! `unsubscribe:project`, and delivery of `project:event`.
//!
//! Each subscription is a small forwarder task with a cursor (the last seq
//! the socket got). It first replays `seq > since_seq` from the event log,
//! then takes live events from the project's in-process channel, which the
//! appender fills right after each commit, in seq order. Any gap — the
//! hand-over from replay to live, a lagging channel — is filled from the log,
//! so each socket gets every event exactly once and in order, and a slow
//! socket is slowed down (back-pressure), never silently skipped.
//! The socket also joins room `project:<id>`, so the room lists subscribers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use socketioxide::extract::{AckSender, Extension, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;
use socketioxide::{SendError, SocketError, SocketIo};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;
use vidsync_protocol::{
    room_name, ErrorCode, ProjectEvent, SubscribeAck, SubscribeRequest, EV_PROJECT_EVENT,
    EV_SUBSCRIBE, EV_UNSUBSCRIBE,
};

use crate::db::{Access, Db, User};
use crate::AppState;

/// Events buffered per project for live subscribers before a slow one lags
/// (and then reads the log instead).
const LIVE_CHANNEL_CAPACITY: usize = 4096;
/// Page size of replays from the log.
const REPLAY_PAGE: u32 = 1000;
/// How long a socket may stay full before it is dropped as stuck.
const STUCK_AFTER: Duration = Duration::from_secs(60);

/// An appended event on its way to live subscribers.
pub struct LiveEvent {
    pub event: ProjectEvent,
    /// When the request that made it arrived: for the latency histogram.
    pub received: Instant,
}

/// Per-project channels from the appender to the forwarders.
#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<LiveEvent>>>>,
}

impl Hub {
    /// Called by the appender after commit, still under the writer lock.
    pub fn publish(&self, project_id: &str, events: &[ProjectEvent], received: Instant) {
        let Ok(mut channels) = self.channels.lock() else {
            return;
        };
        let Some(tx) = channels.get(project_id) else {
            return;
        };
        if tx.receiver_count() == 0 {
            channels.remove(project_id);
            return;
        }
        for ev in events {
            let _ = tx.send(Arc::new(LiveEvent {
                event: ev.clone(),
                received,
            }));
        }
    }

    fn subscribe(&self, project_id: &str) -> Option<broadcast::Receiver<Arc<LiveEvent>>> {
        let mut channels = self.channels.lock().ok()?;
        let tx = channels
            .entry(project_id.to_string())
            .or_insert_with(|| broadcast::channel(LIVE_CHANNEL_CAPACITY).0);
        Some(tx.subscribe())
    }
}

/// The forwarders of one socket, by project id.
#[derive(Clone, Default)]
struct Subscriptions(Arc<Mutex<HashMap<String, AbortHandle>>>);

impl Subscriptions {
    fn replace(&self, project_id: &str, handle: Option<AbortHandle>) {
        if let Ok(mut map) = self.0.lock() {
            let old = match handle {
                Some(h) => map.insert(project_id.to_string(), h),
                None => map.remove(project_id),
            };
            if let Some(old) = old {
                old.abort();
            }
        }
    }

    fn abort_all(&self) {
        if let Ok(mut map) = self.0.lock() {
            for (_, h) in map.drain() {
                h.abort();
            }
        }
    }
}

#[derive(Deserialize)]
struct Auth {
    token: String,
}

#[derive(Debug)]
struct Refused(&'static str);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Connect middleware: a socket without a valid token is never opened.
async fn authenticate(
    socket: SocketRef,
    State(state): State<AppState>,
    TryData(auth): TryData<Auth>,
) -> Result<(), Refused> {
    let Ok(auth) = auth else {
        return Err(Refused(
            "unauthorized: the handshake auth must be {\"token\": \"<token>\"}",
        ));
    };
    match crate::auth::user_for_token(&state, &auth.token).await {
        Ok(Some(user)) => {
            socket.extensions.insert(user);
            Ok(())
        }
        Ok(None) => Err(Refused("unauthorized: unknown or revoked token")),
        Err(_) => Err(Refused("internal error while checking the token")),
    }
}

async fn on_connect(
    socket: SocketRef,
    State(state): State<AppState>,
    Extension(user): Extension<User>,
) {
    state.socket_opened();
    tracing::debug!(sid = %socket.id, user = %user.name, "socket connected");
    let subs = Subscriptions::default();
    socket.extensions.insert(subs.clone());
    socket.on(EV_SUBSCRIBE, on_subscribe);
    socket.on(EV_UNSUBSCRIBE, on_unsubscribe);
    socket.on_disconnect(
        async move |s: SocketRef, State(state): State<AppState>, reason: DisconnectReason| {
            subs.abort_all();
            state.socket_closed();
            tracing::debug!(sid = %s.id, ?reason, "socket disconnected");
        },
    );
}

fn ack(ack: AckSender, body: SubscribeAck) {
    if let Err(e) = ack.send(&body) {
        tracing::debug!(%e, "could not send ack");
    }
}

async fn on_subscribe(
    socket: SocketRef,
    State(state): State<AppState>,
    Extension(user): Extension<User>,
    Extension(subs): Extension<Subscriptions>,
    TryData(req): TryData<serde_json::Value>,
    ack_sender: AckSender,
) {
    let req =
        match req.map(serde_json::from_value::<SubscribeRequest>) {
            Ok(Ok(r)) => r,
            _ => return ack(
                ack_sender,
                SubscribeAck::err(
                    ErrorCode::BadRequest,
                    "expected \"<project_id>\" or {\"project_id\": \"...\", \"since_seq\": <int>}",
                ),
            ),
        };
    let project_id = req.project_id().to_string();
    match state.db.role_in(&project_id, &user).await {
        Ok(Ok(_)) => {}
        Ok(Err(Access::NoProject)) => {
            return ack(
                ack_sender,
                SubscribeAck::err(ErrorCode::NotFound, format!("no project {project_id:?}")),
            )
        }
        Ok(Err(Access::NotMember)) => {
            return ack(
                ack_sender,
                SubscribeAck::err(ErrorCode::Forbidden, "you are not a member of this project"),
            )
        }
        Err(e) => {
            tracing::error!(%e, "membership check");
            return ack(
                ack_sender,
                SubscribeAck::err(ErrorCode::Internal, "internal server error"),
            );
        }
    }
    // Listen before reading the head: nothing committed after this point
    // can be missed, and anything seen twice is dropped by the cursor.
    let Some(rx) = state.hub.subscribe(&project_id) else {
        return ack(
            ack_sender,
            SubscribeAck::err(ErrorCode::Internal, "internal server error"),
        );
    };
    let head = match state.db.head_seq(&project_id).await {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(%e, "reading head");
            return ack(
                ack_sender,
                SubscribeAck::err(ErrorCode::Internal, "internal server error"),
            );
        }
    };
    let cursor = req.since_seq().unwrap_or(head);
    socket.join(room_name(&project_id));
    ack(ack_sender, SubscribeAck::ok(head));
    tracing::debug!(sid = %socket.id, project = %project_id, cursor, head, "subscribed");
    let task = tokio::spawn(forward(
        socket.clone(),
        state.db.clone(),
        project_id.clone(),
        cursor,
        rx,
    ));
    subs.replace(&project_id, Some(task.abort_handle()));
}

async fn on_unsubscribe(
    socket: SocketRef,
    Extension(subs): Extension<Subscriptions>,
    TryData(project_id): TryData<String>,
    ack_sender: AckSender,
) {
    match project_id {
        Ok(project_id) => {
            subs.replace(&project_id, None);
            socket.leave(room_name(&project_id));
            ack(
                ack_sender,
                SubscribeAck {
                    ok: true,
                    head_seq: None,
                    error: None,
                },
            );
        }
        Err(_) => ack(
            ack_sender,
            SubscribeAck::err(ErrorCode::BadRequest, "expected \"<project_id>\""),
        ),
    }
}

/// The socket is gone (or stuck): the forwarder ends.
struct Gone;

/// Sends one event, waiting while the socket's queue is full.
async fn deliver(socket: &SocketRef, ev: &ProjectEvent) -> Result<(), Gone> {
    let deadline = Instant::now() + STUCK_AFTER;
    loop {
        match socket.emit(EV_PROJECT_EVENT, ev) {
            Ok(()) => return Ok(()),
            Err(SendError::Socket(SocketError::InternalChannelFull))
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                tracing::warn!(sid = %socket.id, "socket stuck with a full queue; disconnecting it");
                let _ = socket.clone().disconnect();
                return Err(Gone);
            }
            Err(e) => {
                tracing::debug!(sid = %socket.id, %e, "socket closed");
                return Err(Gone);
            }
        }
    }
}

/// Sends every logged event after `cursor`, advancing it.
async fn catch_up(
    socket: &SocketRef,
    db: &Db,
    project_id: &str,
    cursor: &mut u64,
) -> Result<(), Gone> {
    loop {
        let page = match db.events_since(project_id, *cursor, REPLAY_PAGE).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(%e, project = %project_id, "replay read failed; disconnecting socket");
                let _ = socket.clone().disconnect();
                return Err(Gone);
            }
        };
        let full = page.len() as u32 == REPLAY_PAGE;
        for ev in &page {
            deliver(socket, ev).await?;
            *cursor = ev.seq;
        }
        if !full {
            return Ok(());
        }
    }
}

async fn forward(
    socket: SocketRef,
    db: Db,
    project_id: String,
    mut cursor: u64,
    mut rx: broadcast::Receiver<Arc<LiveEvent>>,
) {
    if catch_up(&socket, &db, &project_id, &mut cursor)
        .await
        .is_err()
    {
        return;
    }
    loop {
        match rx.recv().await {
            Ok(live) => {
                let seq = live.event.seq;
                if seq <= cursor {
                    continue;
                }
                if seq > cursor + 1
                    && catch_up(&socket, &db, &project_id, &mut cursor)
                        .await
                        .is_err()
                {
                    return;
                }
                if seq == cursor + 1 {
                    if deliver(&socket, &live.event).await.is_err() {
                        return;
                    }
                    cursor = seq;
                    metrics::histogram!("vidsync_broadcast_latency_seconds")
                        .record(live.received.elapsed().as_secs_f64());
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::debug!(sid = %socket.id, skipped = n, "live channel lagged; reading the log");
                if catch_up(&socket, &db, &project_id, &mut cursor)
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Registers the default namespace with its auth middleware.
pub fn register(io: &SocketIo) {
    io.ns("/", on_connect.with(authenticate));
}
