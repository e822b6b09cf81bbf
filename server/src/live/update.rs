//! `files:update`: changes appended over the socket (PROTOCOL.md v2,
//! "Changes over the socket"). The batch goes through the same
//! [`crate::changes::append_changes`] as the HTTP route, after the same
//! per-user rate limit, and the ack carries what the HTTP answer would:
//! `{"ok": true, "events", "head_seq"}` or `{"ok": false, "error"}`.
//!
//! Like every message of a socket, it takes effect in arrival order
//! ([`super::session`]): two batches emitted one after the other are
//! appended in that order.

use std::time::Instant;

use serde_json::Value;
use socketioxide::extract::{SocketRef, State, TryData};
use vidsync_protocol::{SocketUpdate, UpdateAck, UpdateResponse};

use super::session::{Session, Turn};
use super::Ack;
use crate::changes::{append_changes, Via};
use crate::error::AppError;
use crate::AppState;

pub(super) async fn on_files_update(
    socket: SocketRef,
    State(state): State<AppState>,
    TryData(req): TryData<Value>,
    ack_sender: Ack,
    turn: Turn,
) {
    let received = Instant::now();
    let Some((session, _turn)) = turn.wait().await else {
        return;
    };
    let req = req.map_err(|e| e.to_string());
    let answer = match handle(&state, &session, req, received).await {
        Ok(resp) => UpdateAck::ok(resp),
        Err(e) => {
            tracing::debug!(sid = %socket.id, code = e.code().as_str(), "files:update refused");
            UpdateAck::err(e.detail())
        }
    };
    ack_sender.send(&answer).await;
}

async fn handle(
    state: &AppState,
    session: &Session,
    req: Result<Value, String>,
    received: Instant,
) -> Result<UpdateResponse, AppError> {
    // The socket's token was checked at the handshake; one revoked since
    // (its socket not closed yet) no longer appends anything.
    if state.hub.is_revoked(&session.token_hash) {
        return Err(AppError::unauthorized("unknown or revoked token"));
    }
    crate::auth::check_rate(state, &session.user)?;
    let req = req
        .and_then(|v| serde_json::from_value::<SocketUpdate>(v).map_err(|e| e.to_string()))
        .map_err(|e| {
            AppError::bad_request(format!(
                "expected {{\"project_id\": \"...\", \"client_id\": \"...\", \"changes\": [...]}}: {e}"
            ))
        })?;
    let (project_id, body) = req.split();
    append_changes(
        state,
        &session.user,
        &project_id,
        body,
        Via::Socket,
        received,
    )
    .await
}
