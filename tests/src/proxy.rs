//! A loopback TCP proxy for fault tests: clients talk to the proxy, the
//! proxy to the server. The test can cut every open connection at once
//! ([`Proxy::cut`]) or stall them — bytes stop flowing both ways, sockets
//! stay open — until [`Proxy::resume`]. New connections are accepted all
//! along (a stalled proxy holds their bytes too).

use std::net::SocketAddr;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub addr: SocketAddr,
    cuts: watch::Sender<u64>,
    stalled: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `target` on a free loopback port.
    pub async fn start(target: SocketAddr) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (cuts, cut_rx) = watch::channel(0u64);
        let (stalled, stall_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let (cut, stall) = (cut_rx.clone(), stall_rx.clone());
                tokio::spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(target).await {
                        let _ = inbound.set_nodelay(true);
                        let _ = outbound.set_nodelay(true);
                        pipe(inbound, outbound, cut, stall).await;
                    }
                });
            }
        });
        Ok(Proxy {
            addr,
            cuts,
            stalled,
            task,
        })
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
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

/// Copies both ways until either side closes or the proxy cuts.
async fn pipe(
    a: TcpStream,
    b: TcpStream,
    mut cut: watch::Receiver<u64>,
    stall: watch::Receiver<bool>,
) {
    // Only cuts after this connection opened count.
    cut.borrow_and_update();
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    let up = copy(ar, bw, stall.clone());
    let down = copy(br, aw, stall);
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
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
