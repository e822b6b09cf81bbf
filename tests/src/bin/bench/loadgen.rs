//! A lean fan-out load generator for any server that speaks the subset of
//! the protocol a fan-out needs: `POST /api/projects`, `POST
//! .../files/update`, and Socket.IO `subscribe:project` / `project:event`
//! over websocket.
//!
//! Each subscriber is a bare Engine.IO v4 / Socket.IO v5 websocket (no
//! Socket.IO client library): it answers pings and reads only the `seq` of
//! each event, so the generator costs little next to the server it
//! measures. It runs on one thread of its own, so both servers in a run
//! meet the same load. Connections come from 127.0.0.1–127.0.0.8, so tens
//! of thousands of them do not run out of loopback ports.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpSocket;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Where to send the load.
#[derive(Clone)]
pub struct Target {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub token: String,
}

/// What one fan-out run measured.
pub struct Fanout {
    pub subscribed: usize,
    pub connect_secs: f64,
    /// POST sent -> event read, one per delivery, sorted.
    pub latencies: Vec<Duration>,
    /// Events that did not reach every subscriber within 10 s.
    pub incomplete: usize,
}

/// (seq, when it was read)
type Delivery = (u64, Instant);

/// Runs `fanout` on a fresh single-threaded runtime on its own thread.
/// `subscribed` runs once every subscriber is in, before the first post.
pub fn run_on_own_thread(
    target: Target,
    n: usize,
    events: usize,
    subscribed: impl FnOnce() + Send + 'static,
) -> Result<Fanout> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(fanout(&target, n, events, subscribed))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("load generator thread panicked"))?
}

async fn fanout(
    target: &Target,
    n: usize,
    events: usize,
    on_subscribed: impl FnOnce(),
) -> Result<Fanout> {
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{}/api/projects", target.url))
        .bearer_auth(&target.token)
        .json(&json!({ "name": format!("fanout-{n}") }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = created["id"].as_str().context("project id")?.to_string();
    let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
    let started = Instant::now();
    let mut subscribed = 0;
    let mut tasks = Vec::with_capacity(n);
    for wave in (0..n).collect::<Vec<_>>().chunks(200) {
        let mut ready = Vec::new();
        for &i in wave {
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
            let (target, id, tx) = (target.clone(), id.clone(), tx.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = subscriber(i, &target, &id, tx, ready_tx).await {
                    tracing::debug!("subscriber {i}: {e:#}");
                }
            }));
            ready.push(ready_rx);
        }
        for r in ready {
            match tokio::time::timeout(Duration::from_secs(30), r).await {
                Ok(Ok(Ok(()))) => subscribed += 1,
                Ok(Ok(Err(e))) => println!("    a subscriber failed: {e:#}"),
                _ => println!("    a subscriber never got its subscribe ack"),
            }
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    drop(tx);
    on_subscribed();
    let mut latencies = Vec::with_capacity(subscribed * events);
    let mut incomplete = 0;
    for i in 0..events {
        let seq = i as u64 + 1;
        let sent = Instant::now();
        let hash = blake3::hash(format!("{i}").as_bytes()).to_hex().to_string();
        let body = json!({"client_id": "bench", "changes": [{
            "path": format!("f{i}"), "op": "create", "hash": hash, "size": 1,
            "mtime": null, "change_id": null}]});
        http.post(format!("{}/api/projects/{id}/files/update", target.url))
            .bearer_auth(&target.token)
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut got = 0;
        while got < subscribed {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((s, at))) if s == seq => {
                    latencies.push(at.duration_since(sent));
                    got += 1;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        if got < subscribed {
            incomplete += 1;
        }
    }
    for t in tasks {
        t.abort();
    }
    latencies.sort();
    Ok(Fanout {
        subscribed,
        connect_secs,
        latencies,
        incomplete,
    })
}

/// One websocket subscriber: handshake, subscribe, then report each event.
async fn subscriber(
    i: usize,
    target: &Target,
    project_id: &str,
    deliveries: mpsc::UnboundedSender<Delivery>,
    ready: tokio::sync::oneshot::Sender<Result<()>>,
) -> Result<()> {
    let mut ready = Some(ready);
    let result = async {
        let server: SocketAddr = target
            .url
            .trim_start_matches("http://")
            .parse()
            .context("target url must be http://IP:PORT")?;
        let socket = TcpSocket::new_v4()?;
        let local = Ipv4Addr::new(127, 0, 0, 1 + (i % 8) as u8);
        socket.bind(SocketAddr::new(IpAddr::V4(local), 0))?;
        let tcp = socket.connect(server).await?;
        tcp.set_nodelay(true)?;
        let url = format!("ws://{server}/socket.io/?EIO=4&transport=websocket");
        let (ws, _) = tokio_tungstenite::client_async(url, tcp).await?;
        let (mut sink, mut stream) = ws.split();
        let connect = format!("40{}", json!({ "token": target.token }));
        let subscribe = format!("421{}", json!(["subscribe:project", project_id]));
        loop {
            let Some(msg) = stream.next().await else {
                bail!("closed during the handshake");
            };
            let Message::Text(text) = msg? else { continue };
            match text.as_str() {
                t if t.starts_with("0{") => sink.send(Message::text(connect.clone())).await?,
                t if t.starts_with("40") => sink.send(Message::text(subscribe.clone())).await?,
                t if t.starts_with("44") => bail!("connect refused: {t}"),
                "2" => sink.send(Message::text("3")).await?,
                t if t.starts_with("431") => {
                    anyhow::ensure!(t.contains("\"ok\":true"), "subscribe refused: {t}");
                    return Ok((sink, stream));
                }
                _ => {}
            }
        }
    }
    .await;
    let (mut sink, mut stream) = match result {
        Ok(s) => {
            if let Some(r) = ready.take() {
                let _ = r.send(Ok(()));
            }
            s
        }
        Err(e) => {
            let msg = format!("{e:#}");
            if let Some(r) = ready.take() {
                let _ = r.send(Err(e));
            }
            bail!(msg);
        }
    };
    while let Some(msg) = stream.next().await {
        let Message::Text(text) = msg? else { continue };
        let at = Instant::now();
        if text.as_str() == "2" {
            sink.send(Message::text("3")).await?;
        } else if let Some(seq) = event_seq(text.as_str()) {
            let _ = deliveries.send((seq, at));
        }
    }
    Ok(())
}

/// The `seq` of a `42["project:event",{...}]` packet, without parsing the rest.
fn event_seq(packet: &str) -> Option<u64> {
    let rest = packet.strip_prefix("42[\"project:event\",")?;
    let at = rest.find("\"seq\":")? + "\"seq\":".len();
    let digits: String = rest[at..]
        .chars()
        .skip_while(|c| c.is_whitespace())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}
