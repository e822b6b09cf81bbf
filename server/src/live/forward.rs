//! A forwarder: the task that brings one project's events to one socket.
//!
//! It has a cursor (the last seq the socket got). It first replays
//! `seq > cursor` from the event log, then takes live events from the
//! project's channel. Any gap — the hand-over from replay to live, a lagging
//! channel — is filled from the log, so the socket gets every event exactly
//! once and in order, and a slow socket is slowed down (back-pressure), never
//! silently skipped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use socketioxide::extract::SocketRef;
use socketioxide::{SendError, SocketError};
use tokio::sync::broadcast::error::RecvError;
use vidsync_protocol::EV_PROJECT_EVENT;

use super::hub::Listener;
use crate::db::Db;

/// Page size of replays from the log.
const REPLAY_PAGE: u32 = 1000;
/// How long a socket may stay full before it is dropped as stuck.
const STUCK_AFTER: Duration = Duration::from_secs(60);
/// First and longest pause while a socket's queue is full.
const FULL_PAUSE: (Duration, Duration) = (Duration::from_millis(1), Duration::from_millis(20));

pub struct Forwarder {
    pub socket: SocketRef,
    pub db: Db,
    pub project_id: String,
    pub cursor: u64,
    pub listener: Listener,
    /// Set by unsubscribe and disconnect: nothing more is emitted.
    pub stopped: Arc<AtomicBool>,
}

/// The socket is gone, stuck or unsubscribed: the forwarder ends.
struct Gone;

impl Forwarder {
    pub async fn run(mut self) {
        if self.catch_up().await.is_err() {
            return;
        }
        loop {
            match self.listener.recv().await {
                Ok(live) => {
                    if live.seq <= self.cursor {
                        continue;
                    }
                    if live.seq > self.cursor + 1 && self.catch_up().await.is_err() {
                        return;
                    }
                    if live.seq == self.cursor + 1 {
                        if self.deliver(&*live.json).await.is_err() {
                            return;
                        }
                        self.cursor = live.seq;
                        metrics::histogram!("vidsync_broadcast_latency_seconds")
                            .record(live.received.elapsed().as_secs_f64());
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(sid = %self.socket.id, skipped = n, "live channel lagged; reading the log");
                    if self.catch_up().await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Sends every logged event after the cursor, advancing it.
    async fn catch_up(&mut self) -> Result<(), Gone> {
        loop {
            let page = match self
                .db
                .events_since(&self.project_id, self.cursor, REPLAY_PAGE)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(%e, project = %self.project_id, "replay read failed; disconnecting socket");
                    let _ = self.socket.clone().disconnect();
                    return Err(Gone);
                }
            };
            let full = page.len() as u32 == REPLAY_PAGE;
            for ev in &page {
                self.deliver(ev).await?;
                self.cursor = ev.seq;
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Sends one event, waiting while the socket's queue is full.
    async fn deliver<T: Serialize + ?Sized>(&self, ev: &T) -> Result<(), Gone> {
        let mut room = RoomWait::new();
        loop {
            if self.stopped.load(Ordering::SeqCst) {
                return Err(Gone);
            }
            let stopped = || self.stopped.load(Ordering::SeqCst);
            let sent = super::polling::send_to(&self.socket, stopped, || {
                self.socket.emit(EV_PROJECT_EVENT, ev)
            });
            let Some(sent) = sent.await else {
                return Err(Gone);
            };
            match sent {
                Ok(()) => return Ok(()),
                Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                    if !room.wait().await {
                        tracing::warn!(sid = %self.socket.id, "socket stuck with a full queue; disconnecting it");
                        let _ = self.socket.clone().disconnect();
                        return Err(Gone);
                    }
                }
                Err(e) => {
                    tracing::debug!(sid = %self.socket.id, %e, "socket closed");
                    return Err(Gone);
                }
            }
        }
    }
}

/// Waiting for room in a full socket queue. socketioxide 0.18 offers no way
/// to await room (its `reserve` is crate-private), so this backs off from
/// 1 ms up to 20 ms while the transport drains, and gives up after
/// [`STUCK_AFTER`].
pub struct RoomWait {
    deadline: Instant,
    pause: Duration,
}

impl RoomWait {
    pub fn new() -> RoomWait {
        RoomWait {
            deadline: Instant::now() + STUCK_AFTER,
            pause: FULL_PAUSE.0,
        }
    }

    /// Pauses before the next attempt; `false` once the socket is stuck.
    pub async fn wait(&mut self) -> bool {
        if Instant::now() >= self.deadline {
            return false;
        }
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(FULL_PAUSE.1);
        true
    }
}
