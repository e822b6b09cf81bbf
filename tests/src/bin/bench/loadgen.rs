//! A lean fan-out load generator for any server that speaks the subset of
//! the protocol a fan-out needs: `POST /api/projects`, `POST
//! .../files/update`, and Socket.IO `subscribe:project` / `project:event`
//! over websocket.
//!
//! Each subscriber is a bare websocket ([`vidsync_e2e::raw`]), so the
//! generator costs little next to the server it measures. It runs on one
//! thread of its own, so both servers in a run meet the same load.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use vidsync_e2e::raw::RawSubscriber;

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
    let mut sub = match RawSubscriber::subscribe(&target.url, &target.token, project_id, i).await {
        Ok(s) => {
            let _ = ready.send(Ok(()));
            s
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return Ok(());
        }
    };
    while let Some(seq) = sub.next_seq().await {
        let _ = deliveries.send((seq, Instant::now()));
    }
    Ok(())
}
