//! One socket's live state: who it is (user and token), the order in which
//! its messages are handled, and its running subscriptions.
//!
//! socketioxide spawns a task per incoming message, and tokio does not run
//! spawned tasks in the order they were spawned; a `subscribe:project`
//! followed at once by `unsubscribe:project` could then be handled in the
//! wrong order. Extractors, though, run synchronously on the receive path,
//! in arrival order: the [`Turn`] extractor takes a ticket there, and a
//! handler waits for its ticket's turn before doing anything, so a socket's
//! messages take effect one at a time, in the order the client sent them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use socketioxide::adapter::Adapter;
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::db::User;

/// A socket's state, shared by its handlers through the socket's extensions.
#[derive(Clone)]
pub struct Session(Arc<Inner>);

pub struct Inner {
    pub user: User,
    /// BLAKE3 hash of the token the socket connected with: a revoked token
    /// closes the socket.
    pub token_hash: String,
    /// The `client_id` the socket named in its handshake (presence).
    pub client_id: Option<String>,
    /// Next ticket to hand out, in message arrival order.
    next_ticket: AtomicU64,
    /// The ticket whose turn it is.
    serving: watch::Sender<u64>,
    /// Set once the socket is gone (see `Hub::socket_opened`).
    closed: AtomicBool,
    subscriptions: Mutex<HashMap<String, Subscription>>,
}

impl std::ops::Deref for Session {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// A running forwarder of one project to one socket.
pub struct Subscription {
    pub task: AbortHandle,
    /// Checked by the forwarder before every emit: once an unsubscribe is
    /// acknowledged, nothing more of that project reaches the socket.
    pub stopped: Arc<AtomicBool>,
}

impl Subscription {
    fn stop(self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.task.abort();
    }
}

impl Session {
    pub fn new(user: User, token_hash: String, client_id: Option<String>) -> Session {
        Session(Arc::new(Inner {
            user,
            token_hash,
            client_id,
            next_ticket: AtomicU64::new(0),
            serving: watch::Sender::new(0),
            closed: AtomicBool::new(false),
            subscriptions: Mutex::default(),
        }))
    }

    /// Starts (or replaces) the subscription to `project_id`.
    pub fn subscribed(&self, project_id: &str, sub: Subscription) {
        let old = self
            .subscriptions
            .lock()
            .ok()
            .and_then(|mut m| m.insert(project_id.to_string(), sub));
        if let Some(old) = old {
            old.stop();
        }
    }

    /// Ends the subscription to `project_id`, if any.
    pub fn unsubscribed(&self, project_id: &str) {
        let old = self
            .subscriptions
            .lock()
            .ok()
            .and_then(|mut m| m.remove(project_id));
        if let Some(old) = old {
            old.stop();
        }
    }

    /// The socket is gone: every forwarder stops.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let all: Vec<Subscription> = match self.subscriptions.lock() {
            Ok(mut m) => m.drain().map(|(_, s)| s).collect(),
            Err(_) => Vec::new(),
        };
        for sub in all {
            sub.stop();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

/// A message's place in its socket's order (see the module doc). Put it
/// last among a handler's extractors: a ticket taken by a handler that is
/// then not called would stall the socket's later messages.
pub struct Turn {
    session: Option<Session>,
    ticket: u64,
}

impl<A: Adapter> FromMessageParts<A> for Turn {
    type Error = Infallible;

    fn from_message_parts(
        s: &Arc<Socket<A>>,
        _: &mut socketioxide_core::Value,
        _: &Option<i64>,
    ) -> Result<Self, Infallible> {
        let session = s.extensions.get::<Session>();
        let ticket = session
            .as_ref()
            .map_or(0, |s| s.next_ticket.fetch_add(1, Ordering::SeqCst));
        Ok(Turn { session, ticket })
    }
}

/// Held while a message is handled; the next message's turn comes when it
/// is dropped (also if the handler panics or its task is cancelled).
pub struct TurnGuard {
    session: Session,
}

impl Drop for TurnGuard {
    fn drop(&mut self) {
        self.session.serving.send_modify(|n| *n += 1);
    }
}

impl Turn {
    /// Waits until every earlier message of this socket was handled.
    /// `None` for a socket without a session (not authenticated).
    pub async fn wait(self) -> Option<(Session, TurnGuard)> {
        let session = self.session?;
        let mut serving = session.serving.subscribe();
        let ticket = self.ticket;
        // The sender lives in the session we hold: this cannot fail.
        let _ = serving.wait_for(|&n| n == ticket).await;
        Some((session.clone(), TurnGuard { session }))
    }
}
