//! `make bench`: the server's figures on loopback, printed, never asserted.
//!
//! 1. Fan-out: N websocket subscribers (rust_socketio) in one room, then 200
//!    changes posted one at a time; latency from POST sent to event received
//!    at every subscriber (p50, p99, max) and the server's peak RSS.
//! 2. Append throughput with no subscribers: batches of 1 and of 100
//!    changes per request, 4 concurrent posters.
//! Flags: `--subscribers N[,M...]` (default 1000,10000), `--events N` (200).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::FutureExt;
use rust_socketio::asynchronous::ClientBuilder;
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use vidsync_e2e::{create_change, Api, TestServer};

struct Args {
    subscribers: Vec<usize>,
    events: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args { subscribers: vec![1000, 10_000], events: 200 };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let v = it.next().with_context(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--subscribers" => {
                args.subscribers = v.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>()?
            }
            "--events" => args.events = v.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The server's peak resident set (VmHWM) in MiB.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A (seq, time received) for every delivery to every subscriber.
type Delivery = (u64, Instant);

async fn connect_subscriber(url: &str, token: &str, project_id: &str, tx: mpsc::UnboundedSender<Delivery>) -> Result<rust_socketio::asynchronous::Client> {
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<()>();
    let client = ClientBuilder::new(url)
        .transport_type(TransportType::Websocket)
        .auth(json!({ "token": token }))
        .reconnect(false)
        .on(Event::Connect, move |_, _| {
            let ready = ready_tx.clone();
            async move {
                let _ = ready.send(());
            }
            .boxed()
        })
        .on(vidsync_protocol::EV_PROJECT_EVENT, move |p, _| {
            let tx = tx.clone();
            let at = Instant::now();
            async move {
                if let Payload::Text(values) = p {
                    for v in values {
                        if let Some(seq) = v["seq"].as_u64() {
                            let _ = tx.send((seq, at));
                        }
                    }
                }
            }
            .boxed()
        })
        .connect()
        .await?;
    tokio::time::timeout(Duration::from_secs(30), ready_rx.recv()).await.context("connect")?;
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<()>();
    client
        .emit_with_ack(vidsync_protocol::EV_SUBSCRIBE, json!(project_id), Duration::from_secs(30), move |_, _| {
            let tx = ack_tx.clone();
            async move {
                let _ = tx.send(());
            }
            .boxed()
        })
        .await?;
    tokio::time::timeout(Duration::from_secs(30), ack_rx.recv()).await.context("subscribe ack")?;
    Ok(client)
}

async fn fan_out(server: &TestServer, api: &Api, token: &str, n: usize, events: usize) -> Result<()> {
    let id = api.create_project(&format!("fanout-{n}")).await?["id"].as_str().unwrap_or_default().to_string();
    let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
    let started = Instant::now();
    let mut clients = Vec::with_capacity(n);
    let connected = Arc::new(AtomicUsize::new(0));
    // Connect in waves of 50 at a time.
    for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
        let mut wave = Vec::new();
        for _ in chunk {
            let (url, token, id, tx) = (server.url.clone(), token.to_string(), id.clone(), tx.clone());
            let connected = connected.clone();
            wave.push(tokio::spawn(async move {
                let c = connect_subscriber(&url, &token, &id, tx).await;
                connected.fetch_add(1, Ordering::Relaxed);
                c
            }));
        }
        for w in wave {
            match w.await? {
                Ok(c) => clients.push(c),
                Err(e) => {
                    println!("  subscriber {} failed to connect: {e:#}", clients.len());
                    break;
                }
            }
        }
        if clients.len() < connected.load(Ordering::Relaxed) {
            break;
        }
    }
    let subs = clients.len();
    println!("  {subs} of {n} subscribers connected and subscribed in {:.1} s", started.elapsed().as_secs_f64());
    drop(tx);

    let mut latencies = Vec::with_capacity(subs * events);
    let mut incomplete = 0usize;
    for i in 0..events {
        let seq = i as u64 + 1;
        let sent = Instant::now();
        let (s, _) = api.update(&id, "bench", vec![create_change(&format!("f{i}"), format!("{i}").as_bytes(), None)]).await?;
        if s != 200 {
            bail!("post {i}: status {s}");
        }
        let mut got = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while got < subs {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((sq, at))) if sq == seq => {
                    latencies.push(at.duration_since(sent));
                    got += 1;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        if got < subs {
            incomplete += 1;
        }
    }
    latencies.sort();
    println!(
        "  {events} events x {subs} subscribers: {} deliveries; POST sent -> received: p50 {}, p99 {}, max {}{}",
        latencies.len(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
        if incomplete > 0 { format!(" ({incomplete} events not seen by every subscriber within 10 s)") } else { String::new() }
    );
    if let Some(pid) = server.pid() {
        if let Some(rss) = peak_rss_mib(pid) {
            println!("  server peak RSS so far: {rss:.1} MiB");
        }
    }
    for c in clients {
        let _ = c.disconnect().await;
    }
    Ok(())
}

async fn throughput(api: &Api, batch: usize, total_events: usize) -> Result<f64> {
    let id = api.create_project(&format!("append-{batch}")).await?["id"].as_str().unwrap_or_default().to_string();
    let requests = total_events / batch;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut posters = Vec::new();
    for w in 0..4 {
        let (api, id, next) = (api.clone(), id.clone(), next.clone());
        posters.push(tokio::spawn(async move {
            loop {
                let r = next.fetch_add(1, Ordering::Relaxed);
                if r >= requests {
                    return anyhow::Ok(());
                }
                let changes: Vec<Value> = (0..batch)
                    .map(|k| create_change(&format!("d{r}/f{k}"), format!("{r}-{k}").as_bytes(), Some(&format!("{w}-{r}-{k}"))))
                    .collect();
                let (s, _) = api.update(&id, "bench", changes).await?;
                anyhow::ensure!(s == 200, "status {s}");
            }
        }));
    }
    for p in posters {
        p.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok((requests * batch) as f64 / secs)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let server = TestServer::start().await?;
    let token = server.add_user("bench").await?;
    let api = server.api(&token);
    println!("vidsync-server benchmark (release build, loopback, {} cores)", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));

    for &n in &args.subscribers {
        println!("fan-out with {n} websocket subscribers:");
        if let Err(e) = fan_out(&server, &api, &token, n, args.events).await {
            println!("  failed: {e:#}");
        }
    }
    println!("append throughput (4 concurrent posters, no subscribers):");
    for (batch, total) in [(1usize, 4_000usize), (100, 100_000)] {
        let eps = throughput(&api, batch, total).await?;
        println!("  batches of {batch:>3}: {eps:>9.0} events/s ({total} events)");
    }
    if let Some(pid) = server.pid() {
        if let Some(rss) = peak_rss_mib(pid) {
            println!("server peak RSS over the whole run: {rss:.1} MiB");
        }
    }
    Ok(())
}
