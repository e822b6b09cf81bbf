//! A loopback TCP proxy for fault tests: clients talk to the proxy, the
//! proxy to the server. The test can cut every open connection at once
//! ([`Proxy::cut`]) or stall them — bytes stop flowing both ways, sockets
//! stay open — until [`Proxy::resume`]. New connections are accepted all
//! along (a stalled proxy holds their bytes too). It can also kill
//! websockets alone ([`Proxy::kill_websockets`]) while plain HTTP (and
//! Engine.IO polling) passes, or freeze the websockets open now for good
//! while everything else passes ([`Proxy::freeze_websockets`]).

use std::net::SocketAddr;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub addr: SocketAddr,
    cuts: watch::Sender<u64>,
    stalled: watch::Sender<bool>,
    ws_dead: watch::Sender<bool>,
    freezes: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `target` on a free loopback port.
    pub async fn start(target: SocketAddr) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (cuts, cut_rx) = watch::channel(0u64);
        let (stalled, stall_rx) = watch::channel(false);
        let (ws_dead, ws_dead_rx) = watch::channel(false);
        let (freezes, freeze_rx) = watch::channel(0u64);
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let (cut, stall, ws_dead) = (cut_rx.clone(), stall_rx.clone(), ws_dead_rx.clone());
                let freezes = freeze_rx.clone();
                tokio::spawn(async move {
                    let websocket = is_websocket(&inbound).await;
                    if websocket && *ws_dead.borrow() {
                        return;
                    }
                    if let Ok(outbound) = TcpStream::connect(target).await {
                        let _ = inbound.set_nodelay(true);
                        let _ = outbound.set_nodelay(true);
                        let mute = websocket.then_some(ws_dead);
                        let frozen = websocket.then(|| Frozen::new(freezes));
                        pipe(inbound, outbound, cut, stall, mute, frozen).await;
                    }
                });
            }
        });
        Ok(Proxy {
            addr,
            cuts,
            stalled,
            ws_dead,
            freezes,
            task,
        })
    }

    /// Freezes every websocket open now: its bytes stop both ways for
    /// good, and its TCP connection stays open (a peer that hangs without
    /// closing). Websockets opened later, and plain HTTP, pass.
    pub fn freeze_websockets(&self) {
        self.freezes.send_modify(|g| *g += 1);
    }

    /// The URL clients use to reach the server through the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every open connection (new ones are accepted).
    pub fn cut(&self) {
        self.cuts.send_modify(|g| *g += 1);
    }

    /// Stops passing bytes on every connection, open or new.
    pub fn stall(&self) {
        let _ = self.stalled.send(true);
    }

    pub fn resume(&self) {
        let _ = self.stalled.send(false);
    }

    /// Kills websockets, and only them: on an open one, what the server
    /// sends is dropped from now on (what the client sends still arrives,
    /// as with a connection that died one way); a new one is closed at once.
    /// Plain HTTP requests, Engine.IO polling included, pass.
    pub fn kill_websockets(&self) {
        let _ = self.ws_dead.send(true);
    }

    /// Lets new websockets through again (killed ones stay dead).
    pub fn revive_websockets(&self) {
        let _ = self.ws_dead.send(false);
    }
}

/// Whether a new connection opens with a websocket upgrade request (its
/// first bytes are read without taking them).
async fn is_websocket(inbound: &TcpStream) -> bool {
    let mut head = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let n = match tokio::time::timeout_at(deadline, inbound.peek(&mut head)).await {
            Ok(Ok(n)) => n,
            _ => return false,
        };
        let text = String::from_utf8_lossy(&head[..n]).to_ascii_lowercase();
        if text.contains("\r\n\r\n") || n == 0 || n == head.len() {
            return text.contains("upgrade: websocket");
        }
        // Only part of the head came yet.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

/// Whether a connection is frozen: a freeze after it was accepted.
#[derive(Clone)]
struct Frozen {
    freezes: watch::Receiver<u64>,
    born: u64,
}

impl Frozen {
    fn new(freezes: watch::Receiver<u64>) -> Frozen {
        let born = *freezes.borrow();
        Frozen { freezes, born }
    }

    /// Waits for good once frozen (until the proxy goes away).
    async fn hold(&mut self) {
        while *self.freezes.borrow() > self.born {
            if self.freezes.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Copies both ways until either side closes or the proxy cuts.
async fn pipe(
    a: TcpStream,
    b: TcpStream,
    mut cut: watch::Receiver<u64>,
    stall: watch::Receiver<bool>,
    mute: Option<watch::Receiver<bool>>,
    frozen: Option<Frozen>,
) {
    // Only cuts after this connection opened count.
    cut.borrow_and_update();
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    let up = copy(ar, bw, stall.clone(), None, frozen.clone());
    let down = copy(br, aw, stall, mute, frozen);
    tokio::select! {
        // A dropped sender (the proxy went away) cuts too.
        _ = cut.changed() => {}
        _ = up => {}
        _ = down => {}
    }
}

async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stall: watch::Receiver<bool>,
    mute: Option<watch::Receiver<bool>>,
    mut frozen: Option<Frozen>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Hold the bytes while stalled.
        while *stall.borrow() {
            if stall.changed().await.is_err() {
                return;
            }
        }
        if let Some(f) = frozen.as_mut() {
            f.hold().await;
        }
        if mute.as_ref().is_some_and(|m| *m.borrow()) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
