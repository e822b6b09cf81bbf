//! The live side's shared state: one in-process channel per project with
//! subscribers (from the appender to the forwarders), and the open sockets
//! by token (so a revoked token's sockets can be closed).
//!
//! A project's channel exists only while it has a subscriber: the last
//! [`Listener`] to go frees it. Each event is serialised once, in
//! [`Hub::publish`], and the same JSON text is shared by every forwarder.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::value::RawValue;
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;
use tokio::sync::broadcast;
use vidsync_protocol::ProjectEvent;

use super::session::Session;

/// Events a project's channel holds for a forwarder that has not taken them
/// yet. A forwarder further behind reads the log instead (lag), so this only
/// needs to cover a burst between two wake-ups, not a whole batch; each slot
/// costs a few dozen bytes, allocated when the channel is made.
pub const LIVE_CHANNEL_CAPACITY: usize = 256;

/// An appended event on its way to live subscribers.
pub struct LiveEvent {
    pub seq: u64,
    /// The event as JSON, serialised once for every socket.
    pub json: Box<RawValue>,
    /// When the request that made it arrived: for the latency histogram.
    pub received: Instant,
}

#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<LiveEvent>>>>,
    sockets: Mutex<Sockets>,
    /// Who is subscribed to which project.
    pub presence: super::presence::PresenceBoard,
}

#[derive(Default)]
struct Sockets {
    open: HashMap<Sid, (SocketRef, Session)>,
    /// Hashes of revoked tokens, as last read from the store.
    revoked: HashSet<String>,
}

/// A forwarder's end of a project's channel; frees the channel when it is
/// the last one.
pub struct Listener {
    hub: Arc<Hub>,
    project_id: String,
    rx: Option<broadcast::Receiver<Arc<LiveEvent>>>,
}

impl Listener {
    pub async fn recv(&mut self) -> Result<Arc<LiveEvent>, broadcast::error::RecvError> {
        match &mut self.rx {
            Some(rx) => rx.recv().await,
            None => Err(broadcast::error::RecvError::Closed),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let Ok(mut channels) = self.hub.channels.lock() else {
            return;
        };
        // Dropped under the lock, so a concurrent subscribe either sees the
        // channel before this check or makes a new one after it.
        drop(self.rx.take());
        if channels
            .get(&self.project_id)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            channels.remove(&self.project_id);
            metrics::gauge!("vidsync_live_projects").set(channels.len() as f64);
        }
    }
}

impl Hub {
    /// Called by the appender after commit, still under the writer lock.
    pub fn publish(&self, project_id: &str, events: &[ProjectEvent], received: Instant) {
        let Some(tx) = self
            .channels
            .lock()
            .ok()
            .and_then(|c| c.get(project_id).cloned())
        else {
            return;
        };
        for ev in events {
            let json = match serde_json::value::to_raw_value(ev) {
                Ok(json) => json,
                Err(e) => {
                    // Subscribers will find the event in the log (a gap).
                    tracing::error!(%e, seq = ev.seq, "cannot serialise an event");
                    continue;
                }
            };
            let _ = tx.send(Arc::new(LiveEvent {
                seq: ev.seq,
                json,
                received,
            }));
        }
    }

    /// Listens to `project_id`'s new events from now on.
    pub fn listen(self: &Arc<Self>, project_id: &str) -> Option<Listener> {
        let mut channels = self.channels.lock().ok()?;
        let tx = channels
            .entry(project_id.to_string())
            .or_insert_with(|| broadcast::channel(LIVE_CHANNEL_CAPACITY).0);
        let rx = tx.subscribe();
        metrics::gauge!("vidsync_live_projects").set(channels.len() as f64);
        Some(Listener {
            hub: self.clone(),
            project_id: project_id.to_string(),
            rx: Some(rx),
        })
    }

    /// Projects with a live channel (with at least one subscriber).
    pub fn live_projects(&self) -> usize {
        self.channels.lock().map_or(0, |c| c.len())
    }

    /// Records an open socket; `false` (and nothing recorded) if its token
    /// was revoked meanwhile or the socket is already gone.
    pub fn socket_opened(&self, socket: &SocketRef, session: &Session) -> bool {
        let Ok(mut sockets) = self.sockets.lock() else {
            return false;
        };
        if sockets.revoked.contains(&session.token_hash) {
            return false;
        }
        sockets
            .open
            .insert(socket.id, (socket.clone(), session.clone()));
        // `Session::close` runs before `socket_closed`: checked after the
        // insert, a socket closed meanwhile is never left behind.
        if session.is_closed() {
            sockets.open.remove(&socket.id);
            return false;
        }
        true
    }

    /// Open sockets by the Engine.IO transport they use now
    /// (`(websocket, polling)`): a polling socket that upgraded counts as
    /// websocket.
    pub fn sockets_by_transport(&self) -> (u64, u64) {
        let Ok(sockets) = self.sockets.lock() else {
            return (0, 0);
        };
        sockets
            .open
            .values()
            .fold((0, 0), |(ws, polling), (socket, _)| {
                match socket.transport_type() {
                    socketioxide::TransportType::Websocket => (ws + 1, polling),
                    socketioxide::TransportType::Polling => (ws, polling + 1),
                }
            })
    }

    /// Whether a token (by hash) was revoked, as last read from the store.
    pub fn is_revoked(&self, token_hash: &str) -> bool {
        self.sockets
            .lock()
            .map_or(true, |s| s.revoked.contains(token_hash))
    }

    /// Forgets a socket; `true` if it was recorded.
    pub fn socket_closed(&self, sid: Sid) -> bool {
        self.sockets
            .lock()
            .is_ok_and(|mut s| s.open.remove(&sid).is_some())
    }

    /// Takes the current set of revoked token hashes and returns the open
    /// sockets that use one of them.
    pub fn revoked(&self, revoked: HashSet<String>) -> Vec<SocketRef> {
        let Ok(mut sockets) = self.sockets.lock() else {
            return Vec::new();
        };
        sockets.revoked = revoked;
        let sockets = &*sockets;
        sockets
            .open
            .values()
            .filter(|(_, session)| sockets.revoked.contains(&session.token_hash))
            .map(|(socket, _)| socket.clone())
            .collect()
    }
}
