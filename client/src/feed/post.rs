//! Changes up the socket (PROTOCOL.md v2, "Changes over the socket"): a
//! batch is emitted as `files:update` and its ack is the server's answer,
//! as the HTTP route would give it. When the socket cannot carry a batch —
//! no socket, a socket that is not up, a batch over the socket's 1 MiB
//! message limit, an emit that fails, no ack within the deadline, an ack
//! that is not this batch's — the caller sends the same batch by HTTP.
//! A missed or misrouted ack also gives the socket up: rust_socketio's list
//! of awaited acks can no longer be trusted (see [`super::socket`]), and a
//! new connection replaces it.
//! The batch keeps its `change_id`s, so a batch the server did append
//! (its ack lost) is not appended again: the HTTP answer is its first
//! events.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::FutureExt;
use rust_socketio::Payload;
use serde_json::Value;
use tokio::sync::oneshot;
use vidsync_protocol::{
    Change, SocketUpdate, UpdateAck, UpdateResponse, EV_FILES_UPDATE, MAX_SOCKET_MESSAGE_BYTES,
};

use super::LiveFeed;
use crate::api::ApiError;

/// How long an ack may take by default (`VIDSYNC_ACK_TIMEOUT_MS` overrides
/// it): then the batch goes by HTTP.
pub const ACK_DEADLINE: Duration = Duration::from_secs(10);

/// Room left in a socket message for the Socket.IO packet around the
/// payload (event name, ack id).
const PACKET_OVERHEAD: usize = 1024;

/// What became of a batch offered to the socket.
#[derive(Debug)]
pub enum SocketPost {
    /// The server answered: its events, or its refusal (as over HTTP).
    Answered(Result<UpdateResponse, ApiError>),
    /// The socket did not carry it (why): send it by HTTP.
    NotSent(&'static str),
}

impl LiveFeed {
    /// Offers a batch to the socket and waits for the server's answer.
    pub async fn post_changes(
        &self,
        project_id: &str,
        client_id: &str,
        changes: &[Change],
    ) -> SocketPost {
        let shared = &self.shared;
        if !shared.socket_up.load(Ordering::SeqCst) {
            return SocketPost::NotSent("the socket is not up");
        }
        let Some(live) = shared.client.lock().await.clone() else {
            return SocketPost::NotSent("no socket");
        };
        let body = SocketUpdate {
            project_id: project_id.to_string(),
            client_id: client_id.to_string(),
            changes: changes.to_vec(),
        };
        let Ok(payload) = serde_json::to_value(&body) else {
            return SocketPost::NotSent("the batch could not be encoded");
        };
        if payload.to_string().len() + PACKET_OVERHEAD > MAX_SOCKET_MESSAGE_BYTES as usize {
            return SocketPost::NotSent("the batch is over the socket's message limit");
        }
        let (tx, rx) = oneshot::channel();
        let mut tx = Some(tx);
        let deadline = shared.ack_deadline;
        let emit =
            live.client
                .emit_with_ack(EV_FILES_UPDATE, payload, deadline, move |p: Payload, _| {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(p);
                    }
                    async {}.boxed()
                });
        // A connection that hangs with its send buffer full blocks the send.
        match tokio::time::timeout(deadline, emit).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(%e, "files:update could not be sent");
                return SocketPost::NotSent("the socket could not send");
            }
            Err(_) => {
                let why = "the socket did not take the batch within the deadline";
                live.give_up(why);
                return SocketPost::NotSent(why);
            }
        }
        let payload = match tokio::time::timeout(deadline, rx).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) | Err(_) => {
                let why = "no ack within the deadline";
                live.give_up(why);
                return SocketPost::NotSent(why);
            }
        };
        super::heard(shared);
        match answer_of(payload, changes) {
            Some(answer) => SocketPost::Answered(answer),
            None => {
                let why = "the ack was not this batch's";
                live.give_up(why);
                SocketPost::NotSent(why)
            }
        }
    }
}

/// The server's answer in an ack, if the ack is one for `changes`: an ok
/// ack has one event per change, on the same paths. (rust_socketio 0.6 may
/// hand one request's ack to another when their random ack ids collide.)
fn answer_of(p: Payload, changes: &[Change]) -> Option<Result<UpdateResponse, ApiError>> {
    let Payload::Text(values) = p else {
        return None;
    };
    let mut v = values.into_iter().next()?;
    if let Value::Array(inner) = &mut v {
        if inner.is_empty() {
            return None;
        }
        v = inner.remove(0);
    }
    let ack: UpdateAck = serde_json::from_value(v).ok()?;
    match ack.into_result() {
        Ok(resp) => {
            let same = resp.events.len() == changes.len()
                && resp
                    .events
                    .iter()
                    .zip(changes)
                    .all(|(e, c)| e.change.path == c.path);
            same.then_some(Ok(resp))
        }
        Err(Some(e)) => Some(Err(ApiError::Refused {
            status: e.code.status(),
            code: e.code.as_str().to_string(),
            message: e.message,
            conflicts: e.conflicts.unwrap_or_default(),
        })),
        Err(None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(path: &str) -> Change {
        serde_json::from_value(json!({"path": path, "op": "delete"})).unwrap()
    }

    fn event(seq: u64, path: &str) -> Value {
        json!({"seq": seq, "project_id": "p", "change": {"path": path, "op": "delete",
            "hash": null, "size": null, "mtime": null},
            "origin": {"client_id": "c", "user": "u"}, "created_at": "2026-01-01T00:00:00Z"})
    }

    #[test]
    fn an_ok_ack_must_be_this_batchs() {
        let changes = [change("a"), change("b")];
        let ok = json!([{"ok": true, "events": [event(1, "a"), event(2, "b")], "head_seq": 2}]);
        let answer = answer_of(Payload::Text(vec![ok]), &changes);
        assert!(matches!(answer, Some(Ok(r)) if r.head_seq == 2));
        // Another batch's ack, a subscribe ack, nothing: not an answer.
        for other in [
            json!([{"ok": true, "events": [event(1, "a"), event(2, "x")], "head_seq": 2}]),
            json!([{"ok": true, "events": [event(1, "a")], "head_seq": 1}]),
            json!([{"ok": true, "head_seq": 7}]),
            json!([]),
        ] {
            assert!(answer_of(Payload::Text(vec![other]), &changes).is_none());
        }
    }

    #[test]
    fn a_refusal_is_the_http_refusal() {
        let err = json!([{"ok": false, "error": {"code": "rate_limited", "message": "slow"}}]);
        match answer_of(Payload::Text(vec![err]), &[change("a")]) {
            Some(Err(e)) => {
                assert_eq!(e.status(), Some(429));
                assert!(e.retryable());
            }
            other => panic!("{other:?}"),
        }
    }
}
