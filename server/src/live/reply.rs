//! Acknowledgements that are not lost when a socket's queue is full.
//!
//! socketioxide's `AckSender` is consumed by a failed send, and a full queue
//! (a forwarder of the same socket filling it) makes the send fail. [`Reply`]
//! keeps the socket and the ack id and makes a fresh `AckSender` for each
//! attempt, waiting for room in between like the forwarders do.

use std::convert::Infallible;
use std::sync::Arc;

use serde::Serialize;
use socketioxide::adapter::Adapter;
use socketioxide::extract::AckSender;
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;
use socketioxide::{SendError, SocketError};

use super::forward::RoomWait;

/// Where the answer to one message goes (nowhere if it asked for none).
pub struct Reply<A: Adapter> {
    socket: Arc<Socket<A>>,
    ack_id: Option<i64>,
}

impl<A: Adapter> FromMessageParts<A> for Reply<A> {
    type Error = Infallible;

    fn from_message_parts(
        s: &Arc<Socket<A>>,
        _: &mut socketioxide_core::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(Reply {
            socket: s.clone(),
            ack_id: *ack_id,
        })
    }
}

impl<A: Adapter> Reply<A> {
    /// Sends the acknowledgement, waiting while the socket's queue is full.
    pub async fn send<T: Serialize + ?Sized>(self, body: &T) {
        let mut room = RoomWait::new();
        loop {
            let Ok(sender) = AckSender::from_message_parts(
                &self.socket,
                &mut socketioxide_core::Value::Bytes(bytes::Bytes::new()),
                &self.ack_id,
            );
            let Some(sent) =
                super::polling::send_to(&self.socket, || false, || sender.send(body)).await
            else {
                return;
            };
            match sent {
                Ok(()) => return,
                Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                    if !room.wait().await {
                        tracing::warn!(sid = %self.socket.id, "socket stuck with a full queue; ack dropped");
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!(%e, "could not send ack");
                    return;
                }
            }
        }
    }
}
