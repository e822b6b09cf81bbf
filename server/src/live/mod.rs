//! The live feed: Socket.IO auth at the handshake, `subscribe:project` /
//! `unsubscribe:project`, delivery of `project:event`, and changes coming
//! up the socket (`files:update`, [`update`]).
//!
//! The connect middleware authenticates the token *and* registers the
//! socket's handlers: socketioxide sends the connect acknowledgement right
//! after the middleware and runs the connect handler as a separate task, so
//! handlers registered there would miss events a client emits as soon as it
//! is connected. A socket's messages are handled one at a time, in the order
//! they arrived ([`session`]); each subscription is a forwarder task
//! ([`forward`]) fed by the project's channel in the [`hub`]. The socket also
//! joins room `project:<id>`, so the room lists subscribers. Sockets of a
//! revoked token are closed ([`revocations`]). Who is subscribed where is
//! told to each project's room ([`presence`]).

mod forward;
mod hub;
mod polling;
mod presence;
mod reply;
pub mod revocations;
mod session;
mod update;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde::Deserialize;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;
use socketioxide::SocketIo;
use vidsync_protocol::{
    check_id, room_name, ErrorCode, SubscribeAck, SubscribeRequest, EV_FILES_UPDATE, EV_SUBSCRIBE,
    EV_UNSUBSCRIBE,
};

use crate::db::Access;
use crate::AppState;
pub use hub::{Hub, LiveEvent, LIVE_CHANNEL_CAPACITY};
pub use polling::{count_polls, PollGates, PACKETS_PER_POLL};
use session::{Session, Subscription, Turn};

type Ack = reply::Reply<LocalAdapter>;

/// Packets queued per socket (see `app()`). A polling response is bounded
/// by [`polling`], not by this.
pub const MAX_QUEUED_PACKETS: usize = 15;

/// Read buffer of a websocket (see `app()`); engineioxide's default is 4 KiB.
pub const WS_READ_BUFFER_BYTES: usize = 1024;

#[derive(Deserialize)]
struct Auth {
    token: String,
    /// How the client names itself in presence (v2, optional).
    #[serde(default)]
    client_id: Option<String>,
}

#[derive(Debug)]
struct Refused(std::borrow::Cow<'static, str>);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Connect middleware: a socket without a valid token is never opened; an
/// accepted one has its handlers before the client hears it is connected.
async fn authenticate(
    socket: SocketRef,
    State(state): State<AppState>,
    TryData(auth): TryData<Auth>,
) -> Result<(), Refused> {
    let Ok(auth) = auth else {
        return Err(Refused(
            "unauthorized: the handshake auth must be {\"token\": \"<token>\"}".into(),
        ));
    };
    if let Some(id) = &auth.client_id {
        if let Err(e) = check_id("client_id", id) {
            return Err(Refused(format!("bad_request: {e}").into()));
        }
    }
    let user = match crate::auth::user_for_token(&state, &auth.token).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            metrics::counter!("vidsync_token_refusals_total", "via" => "socket").increment(1);
            return Err(Refused("unauthorized: unknown or revoked token".into()));
        }
        Err(_) => return Err(Refused("internal error while checking the token".into())),
    };
    socket.extensions.insert(Session::new(
        user,
        crate::auth::token_hash(&auth.token),
        auth.client_id,
    ));
    socket.on(EV_SUBSCRIBE, on_subscribe);
    socket.on(EV_UNSUBSCRIBE, on_unsubscribe);
    socket.on(EV_FILES_UPDATE, update::on_files_update);
    socket.on_disconnect(on_disconnect);
    Ok(())
}

/// Runs after the connect acknowledgement: counts the socket, unless its
/// token was revoked while it connected.
async fn on_connect(socket: SocketRef, State(state): State<AppState>) {
    let Some(session) = socket.extensions.get::<Session>() else {
        return;
    };
    if state.hub.socket_opened(&socket, &session) {
        state.socket_opened();
        tracing::debug!(sid = %socket.id, user = %session.user.name, transport = ?socket.transport_type(), "socket connected");
    } else if !session.is_closed() {
        tracing::info!(sid = %socket.id, user = %session.user.name, "token revoked; closing socket");
        let _ = socket.disconnect();
    }
}

async fn on_disconnect(
    s: SocketRef,
    io: SocketIo,
    State(state): State<AppState>,
    reason: DisconnectReason,
) {
    if let Some(session) = s.extensions.get::<Session>() {
        session.close();
    }
    state.hub.presence.disconnected(&io, s.id).await;
    if state.hub.socket_closed(s.id) {
        state.socket_closed();
    }
    tracing::debug!(sid = %s.id, ?reason, "socket disconnected");
}

async fn ack(ack: Ack, body: SubscribeAck) {
    ack.send(&body).await
}

async fn internal(ack_sender: Ack) {
    ack(
        ack_sender,
        SubscribeAck::err(ErrorCode::Internal, "internal server error"),
    )
    .await
}

async fn on_subscribe(
    socket: SocketRef,
    io: SocketIo,
    State(state): State<AppState>,
    TryData(req): TryData<serde_json::Value>,
    ack_sender: Ack,
    turn: Turn,
) {
    let Some((session, _turn)) = turn.wait().await else {
        return;
    };
    let Ok(Ok(req)) = req.map(serde_json::from_value::<SubscribeRequest>) else {
        return ack(
            ack_sender,
            SubscribeAck::err(
                ErrorCode::BadRequest,
                "expected \"<project_id>\" or {\"project_id\": \"...\", \"since_seq\": <int>}",
            ),
        )
        .await;
    };
    let project_id = req.project_id().to_string();
    let refusal = match state.db.role_in(&project_id, &session.user).await {
        Ok(Ok(_)) => None,
        Ok(Err(Access::NoProject)) => Some(SubscribeAck::err(
            ErrorCode::NotFound,
            format!("no project {project_id:?}"),
        )),
        Ok(Err(Access::NotMember)) => Some(SubscribeAck::err(
            ErrorCode::Forbidden,
            "you are not a member of this project",
        )),
        Err(e) => {
            tracing::error!(%e, "membership check");
            return internal(ack_sender).await;
        }
    };
    if let Some(refusal) = refusal {
        return ack(ack_sender, refusal).await;
    }
    // Listen before reading the head: nothing committed after this point
    // can be missed, and anything seen twice is dropped by the cursor.
    let Some(listener) = state.hub.listen(&project_id) else {
        return internal(ack_sender).await;
    };
    let head = match state.db.head_seq(&project_id).await {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(%e, "reading head");
            return internal(ack_sender).await;
        }
    };
    let cursor = req.since_seq().unwrap_or(head);
    socket.join(room_name(&project_id));
    let present = state
        .hub
        .presence
        .subscribed(
            &io,
            &project_id,
            socket.id,
            &session.user.name,
            session.client_id.as_deref(),
        )
        .await;
    if session.is_closed() {
        // Gone while subscribing: its disconnect may have missed this entry.
        state.hub.presence.disconnected(&io, socket.id).await;
    }
    ack(
        ack_sender,
        SubscribeAck {
            present: Some(present),
            ..SubscribeAck::ok(head)
        },
    )
    .await;
    tracing::debug!(sid = %socket.id, project = %project_id, cursor, head, "subscribed");
    let stopped = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(
        forward::Forwarder {
            socket: socket.clone(),
            db: state.db.clone(),
            project_id: project_id.clone(),
            cursor,
            listener,
            stopped: stopped.clone(),
        }
        .run(),
    );
    session.subscribed(
        &project_id,
        Subscription {
            task: task.abort_handle(),
            stopped,
        },
    );
    if session.is_closed() {
        // Disconnected while subscribing: nothing else would stop it.
        session.close();
    }
}

async fn on_unsubscribe(
    socket: SocketRef,
    io: SocketIo,
    State(state): State<AppState>,
    TryData(project_id): TryData<String>,
    ack_sender: Ack,
    turn: Turn,
) {
    let Some((session, _turn)) = turn.wait().await else {
        return;
    };
    match project_id {
        Ok(project_id) => {
            session.unsubscribed(&project_id);
            socket.leave(room_name(&project_id));
            state
                .hub
                .presence
                .unsubscribed(&io, &project_id, socket.id)
                .await;
            ack(
                ack_sender,
                SubscribeAck {
                    ok: true,
                    head_seq: None,
                    error: None,
                    present: None,
                },
            )
            .await;
        }
        Err(_) => {
            ack(
                ack_sender,
                SubscribeAck::err(ErrorCode::BadRequest, "expected \"<project_id>\""),
            )
            .await
        }
    }
}

/// Registers the default namespace with its auth middleware.
pub fn register(io: &SocketIo) {
    io.ns("/", on_connect.with(authenticate));
}
