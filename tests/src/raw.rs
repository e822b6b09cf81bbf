//! A bare Engine.IO v4 / Socket.IO v5 websocket subscriber, with no
//! Socket.IO client library in between: it sends `subscribe:project` the
//! instant the server's connect acknowledgement arrives, answers pings and
//! reads only the `seq` of each event. The fan-out load generator and the
//! "emit right after connect" test use it. Connections come from
//! 127.0.0.1–127.0.0.8, so tens of thousands do not run out of ports. Its
//! read buffer is small: tungstenite zero-fills the whole buffer (128 KiB by
//! default) before every read, which made that memset most of the load
//! generator's CPU.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{bail, Context, Result};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

/// Read buffer of a subscriber's websocket (an event is a few hundred bytes).
const READ_BUFFER: usize = 4096;

/// A subscribed raw socket.
pub struct RawSubscriber {
    sink: SplitSink<Ws, Message>,
    stream: SplitStream<Ws>,
}

impl RawSubscriber {
    /// Connects to `url` (`http://IP:PORT`) with `token` and subscribes to
    /// `project_id` from its connect handler; returns once the ack is `ok`.
    /// `i` picks the local address.
    pub async fn subscribe(url: &str, token: &str, project_id: &str, i: usize) -> Result<Self> {
        let server: SocketAddr = url
            .trim_start_matches("http://")
            .parse()
            .context("url must be http://IP:PORT")?;
        let socket = TcpSocket::new_v4()?;
        let local = Ipv4Addr::new(127, 0, 0, 1 + (i % 8) as u8);
        socket.bind(SocketAddr::new(IpAddr::V4(local), 0))?;
        let tcp = socket.connect(server).await?;
        tcp.set_nodelay(true)?;
        let ws_url = format!("ws://{server}/socket.io/?EIO=4&transport=websocket");
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0);
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(ws_url, tcp, Some(config)).await?;
        let (mut sink, mut stream) = ws.split();
        let connect = format!("40{}", json!({ "token": token }));
        let subscribe = format!("421{}", json!(["subscribe:project", project_id]));
        while let Some(msg) = stream.next().await {
            let Message::Text(text) = msg? else { continue };
            match text.as_str() {
                t if t.starts_with("0{") => sink.send(Message::text(connect.clone())).await?,
                t if t.starts_with("40") => sink.send(Message::text(subscribe.clone())).await?,
                t if t.starts_with("44") => bail!("connect refused: {t}"),
                "2" => sink.send(Message::text("3")).await?,
                t if t.starts_with("431") => {
                    anyhow::ensure!(t.contains("\"ok\":true"), "subscribe refused: {t}");
                    return Ok(RawSubscriber { sink, stream });
                }
                _ => {}
            }
        }
        bail!("closed before the subscribe ack")
    }

    /// The seq of the next `project:event` (pings are answered meanwhile);
    /// `None` once the socket is closed.
    pub async fn next_seq(&mut self) -> Option<u64> {
        while let Some(msg) = self.stream.next().await {
            let Ok(Message::Text(text)) = msg else {
                continue;
            };
            if text.as_str() == "2" {
                self.sink.send(Message::text("3")).await.ok()?;
            } else if let Some(seq) = event_seq(text.as_str()) {
                return Some(seq);
            }
        }
        None
    }
}

/// The `seq` of a `42["project:event",{...}]` packet, without parsing the rest.
fn event_seq(packet: &str) -> Option<u64> {
    let rest = packet.strip_prefix("42[\"project:event\",")?;
    let at = rest.find("\"seq\":")? + "\"seq\":".len();
    let digits = rest[at..].trim_start();
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}
