//! A bound on the packets of one HTTP long-polling response.
//!
//! python-socketio (python-engineio's `Payload.max_decode_packets`, 16 by
//! default) drops the connection when a polling response holds more than 16
//! packets. engineioxide answers a poll with everything in the socket's queue,
//! taken one by one until the queue is empty, while our senders keep filling
//! it from other threads: the queue's size alone does not bound a response.
//!
//! So every packet we send to a polling socket goes through its [`PollGate`]:
//! at most [`PACKETS_PER_POLL`] between two answered polls. The
//! [`count_polls`] middleware, around the Socket.IO layer, numbers the polls
//! that took packets out of the queue (a response is built only once its
//! packets are taken, and the client sends its next poll only after it got
//! it). A response then holds only packets sent while the count had one of
//! two values: at most `2 × PACKETS_PER_POLL` of ours, plus Engine.IO's own
//! (a ping, the no-op of an upgrade, the connect packet).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use socketioxide::adapter::Adapter;
use socketioxide::socket::Socket;
use socketioxide::TransportType;
use tokio::sync::watch;

/// Packets of ours a polling socket may be sent between two answered polls.
pub const PACKETS_PER_POLL: u32 = 6;
/// Largest handshake answer read to learn the session id.
const MAX_OPEN_PACKET: usize = 4096;
/// How often a sender held back by the gate looks whether the socket moved
/// to websocket (an upgrade ends the polls that would wake it).
const TRANSPORT_RECHECK: Duration = Duration::from_millis(50);

/// The open polling sessions by Engine.IO session id. Entries are weak: a
/// gate lives as long as its Engine.IO session keeps the handshake request.
#[derive(Default)]
pub struct PollGates {
    by_sid: Mutex<HashMap<String, Weak<PollGate>>>,
}

/// One polling session's count of answered polls and the packets sent since.
#[derive(Default)]
pub struct PollGate {
    /// Polls answered with packets taken from the queue.
    answered: watch::Sender<u64>,
    /// (count seen, packets sent while it had that value).
    window: Mutex<(u64, u32)>,
    /// Set once the session id is known: until then nothing counts polls,
    /// so the gate does not hold anything back.
    armed: OnceLock<()>,
}

/// The gate as stored in the handshake request's extensions (which the
/// Engine.IO session keeps, see `SocketRef::req_parts`).
#[derive(Clone)]
pub struct GateRef(pub Arc<PollGate>);

impl PollGate {
    /// Runs `send` once the socket may take one more packet, unless
    /// `polling()` says the socket no longer polls (then at once). Returns
    /// `None` if `gone()` becomes true while waiting.
    pub async fn send<R>(
        &self,
        polling: impl Fn() -> bool,
        gone: impl Fn() -> bool,
        send: impl FnOnce() -> R,
    ) -> Option<R> {
        let mut send = Some(send);
        loop {
            let mut answered = self.answered.subscribe();
            if let Some(result) = self.try_send(&polling, &mut send) {
                return Some(result);
            }
            if gone() {
                return None;
            }
            let _ = tokio::time::timeout(TRANSPORT_RECHECK, answered.changed()).await;
        }
    }

    /// Sends if the window has room; the window is held while sending, so
    /// each packet counts in the window that was open when it was queued.
    fn try_send<R>(
        &self,
        polling: impl Fn() -> bool,
        send: &mut Option<impl FnOnce() -> R>,
    ) -> Option<R> {
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let before = *self.answered.borrow();
        if window.0 != before {
            *window = (before, 0);
        }
        let open = self.armed.get().is_none() || !polling();
        if !open && window.1 >= PACKETS_PER_POLL {
            return None;
        }
        let result = (send.take()?)();
        window.1 += 1;
        let after = *self.answered.borrow();
        if after != before {
            // A poll was answered while sending: the packet may belong to
            // the new window too.
            *window = (after, 1);
        }
        Some(result)
    }

    fn answered(&self) {
        self.answered.send_modify(|n| *n += 1);
    }
}

/// Sends one packet to `socket` with `send`: through its gate while it
/// polls, at once otherwise. `None` if `gone()` while held back.
pub async fn send_to<A: Adapter, R>(
    socket: &Socket<A>,
    gone: impl Fn() -> bool,
    send: impl FnOnce() -> R,
) -> Option<R> {
    match socket.req_parts().extensions.get::<GateRef>() {
        Some(GateRef(gate)) => {
            let polling = || socket.transport_type() == TransportType::Polling;
            gate.send(polling, || gone() || !socket.connected(), send)
                .await
        }
        None => Some(send()),
    }
}

impl PollGates {
    fn register(&self, sid: String, gate: &Arc<PollGate>) {
        let mut by_sid = self.by_sid.lock().unwrap_or_else(|e| e.into_inner());
        // Sessions end without telling us: forget the dead ones whenever the
        // map has doubled since the last sweep (amortised O(1) per session).
        if by_sid.len() >= 64 && by_sid.len().is_power_of_two() {
            by_sid.retain(|_, gate| gate.strong_count() > 0);
        }
        by_sid.insert(sid, Arc::downgrade(gate));
        let _ = gate.armed.set(());
    }

    fn get(&self, sid: &str) -> Option<Arc<PollGate>> {
        let by_sid = self.by_sid.lock().unwrap_or_else(|e| e.into_inner());
        by_sid.get(sid).and_then(Weak::upgrade)
    }
}

/// The query parameters of an Engine.IO request that matter here.
struct EngineQuery<'a> {
    polling: bool,
    sid: Option<&'a str>,
}

fn engine_query(req: &Request) -> Option<EngineQuery<'_>> {
    if req.method() != Method::GET || !req.uri().path().starts_with("/socket.io") {
        return None;
    }
    let mut q = EngineQuery {
        polling: false,
        sid: None,
    };
    for pair in req.uri().query()?.split('&') {
        match pair.split_once('=') {
            Some(("transport", t)) => q.polling = t == "polling",
            Some(("sid", sid)) => q.sid = Some(sid),
            _ => {}
        }
    }
    Some(q)
}

/// Middleware around the Socket.IO layer: gives each polling session a
/// [`PollGate`] and counts its answered polls.
pub async fn count_polls(
    State(gates): State<Arc<PollGates>>,
    mut req: Request,
    next: Next,
) -> Response {
    let (polling, sid) = match engine_query(&req) {
        Some(q) => (q.polling, q.sid.map(str::to_string)),
        None => return next.run(req).await,
    };
    // Which transport each Engine.IO session opened on, and upgrades.
    match (&sid, polling) {
        (None, true) => {
            metrics::counter!("vidsync_engineio_opens_total", "transport" => "polling").increment(1)
        }
        (None, false) => {
            metrics::counter!("vidsync_engineio_opens_total", "transport" => "websocket")
                .increment(1)
        }
        (Some(_), false) => metrics::counter!("vidsync_engineio_upgrades_total").increment(1),
        (Some(_), true) => {}
    }
    match sid {
        Some(_) if !polling => next.run(req).await,
        Some(sid) => {
            let gate = gates.get(&sid);
            let res = next.run(req).await;
            // A poll answered with packets (the one-byte no-op of an upgrade
            // took nothing from the queue; skipping a count is always safe).
            let len = res
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok());
            let len: u64 = len.and_then(|v| v.parse().ok()).unwrap_or(0);
            if let Some(gate) = gate.filter(|_| res.status() == StatusCode::OK && len > 1) {
                gate.answered();
            }
            res
        }
        None if !polling => next.run(req).await,
        None => {
            let gate = Arc::new(PollGate::default());
            req.extensions_mut().insert(GateRef(gate.clone()));
            let res = next.run(req).await;
            register_handshake(&gates, &gate, res).await
        }
    }
}

/// Reads the session id from a polling handshake's open packet
/// (`0{"sid":…}`) and registers the session's gate under it.
async fn register_handshake(gates: &PollGates, gate: &Arc<PollGate>, res: Response) -> Response {
    if res.status() != StatusCode::OK {
        return res;
    }
    let (parts, body) = res.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_OPEN_PACKET).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(%e, "unreadable Engine.IO handshake answer");
            return Response::from_parts(parts, Body::empty());
        }
    };
    #[derive(serde::Deserialize)]
    struct Open {
        sid: String,
    }
    match bytes.strip_prefix(b"0").map(serde_json::from_slice::<Open>) {
        Some(Ok(open)) => gates.register(open.sid, gate),
        _ => tracing::warn!("Engine.IO handshake without a session id; its polls are not bounded"),
    }
    Response::from_parts(parts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn armed() -> Arc<PollGate> {
        let gate = Arc::new(PollGate::default());
        PollGates::default().register("s".into(), &gate);
        gate
    }

    async fn sends(gate: &PollGate, polling: bool, n: u32) -> u32 {
        let sent = AtomicU32::new(0);
        for _ in 0..n {
            let once = gate.send(|| polling, || false, || sent.fetch_add(1, Ordering::SeqCst));
            if tokio::time::timeout(TRANSPORT_RECHECK * 4, once)
                .await
                .is_err()
            {
                break;
            }
        }
        sent.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_polling_socket_gets_a_window_per_answered_poll() {
        let gate = armed();
        assert_eq!(sends(&gate, true, 10).await, PACKETS_PER_POLL);
        gate.answered();
        assert_eq!(sends(&gate, true, 10).await, PACKETS_PER_POLL);
    }

    #[tokio::test]
    async fn a_waiting_sender_is_woken_by_an_answered_poll() {
        let gate = armed();
        assert_eq!(sends(&gate, true, PACKETS_PER_POLL).await, PACKETS_PER_POLL);
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.send(|| true, || false, || ()).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        gate.answered();
        let woken = tokio::time::timeout(Duration::from_secs(10), waiting).await;
        assert!(matches!(woken, Ok(Ok(Some(())))));
    }

    #[tokio::test]
    async fn websocket_and_unarmed_gates_hold_nothing_back() {
        assert_eq!(sends(&armed(), false, 50).await, 50);
        assert_eq!(sends(&PollGate::default(), true, 50).await, 50);
    }

    #[tokio::test]
    async fn a_sender_held_back_gives_up_when_the_socket_is_gone() {
        let gate = armed();
        assert_eq!(sends(&gate, true, PACKETS_PER_POLL).await, PACKETS_PER_POLL);
        let sent = gate.send(|| true, || true, || ()).await;
        assert!(sent.is_none());
    }
}
