//! A lean fan-out load generator for any server that speaks the subset of
//! the protocol a fan-out needs: `POST /api/projects`, `POST
//! .../files/update`, and Socket.IO `subscribe:project` / `project:event`
//! over websocket.
//!
//! Each subscriber is a bare websocket ([`RawSubscriber`], with a small
//! read buffer) on a multi-threaded runtime of
//! its own (`threads` workers), so the generator is not the bottleneck of
//! the server it measures: its own CPU time is measured and printed next to
//! the server's. A subscriber notes each delivery's latency itself (no
//! channel to a central task); the poster posts the next event once every
//! subscriber has the previous one.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};
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
    /// Deliveries that were not the seq after the subscriber's previous one.
    pub out_of_order: usize,
    /// Wall time of the event phase (first post to last delivery).
    pub events_secs: f64,
    /// CPU seconds of this process (the load generator) in the event phase.
    pub loadgen_cpu: Option<f64>,
}

/// What the subscribers and the poster share.
struct Shared {
    base: Instant,
    /// Per seq - 1: when its POST was sent, in ns after `base`.
    sent_ns: Vec<AtomicU64>,
    /// Per seq - 1: subscribers that have it.
    delivered: Vec<AtomicUsize>,
    /// Subscribers the poster waits for (set once all are in).
    expected: AtomicUsize,
    /// Woken when an event reached every expected subscriber.
    complete: Notify,
    latencies: Mutex<Vec<Duration>>,
    out_of_order: AtomicUsize,
}

/// CPU seconds (user + system) of process `pid` so far.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces), from field 3 on.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some((utime + stime) / 100.0)
}

/// Runs `fanout` on a fresh runtime with `threads` workers, on threads of
/// its own. `subscribed` runs once every subscriber is in, before the first
/// post; `done` after the last event.
pub fn run_on_own_runtime(
    target: Target,
    n: usize,
    events: usize,
    threads: usize,
    subscribed: impl FnOnce() + Send + 'static,
    done: impl FnOnce() + Send + 'static,
) -> Result<Fanout> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("loadgen")
            .enable_all()
            .build()?
            .block_on(fanout(&target, n, events, subscribed, done))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("load generator thread panicked"))?
}

async fn fanout(
    target: &Target,
    n: usize,
    events: usize,
    on_subscribed: impl FnOnce(),
    on_done: impl FnOnce(),
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
    let shared = Arc::new(Shared {
        base: Instant::now(),
        sent_ns: (0..events).map(|_| AtomicU64::new(0)).collect(),
        delivered: (0..events).map(|_| AtomicUsize::new(0)).collect(),
        expected: AtomicUsize::new(usize::MAX),
        complete: Notify::new(),
        latencies: Mutex::new(Vec::with_capacity(n * events)),
        out_of_order: AtomicUsize::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let mut subscribed = 0;
    let mut tasks = Vec::with_capacity(n);
    for wave in (0..n).collect::<Vec<_>>().chunks(200) {
        let mut ready = Vec::new();
        for &i in wave {
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
            let (target, id, shared, stop) =
                (target.clone(), id.clone(), shared.clone(), stop_rx.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = subscriber(i, &target, &id, shared, stop, ready_tx).await {
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
    shared.expected.store(subscribed, Ordering::SeqCst);
    on_subscribed();
    let cpu_before = cpu_secs(std::process::id());
    let events_started = Instant::now();
    let mut incomplete = 0;
    for i in 0..events {
        let hash = blake3::hash(format!("{i}").as_bytes()).to_hex().to_string();
        let body = json!({"client_id": "bench", "changes": [{
            "path": format!("f{i}"), "op": "create", "hash": hash, "size": 1,
            "mtime": null, "change_id": null}]});
        let request = http
            .post(format!("{}/api/projects/{id}/files/update", target.url))
            .bearer_auth(&target.token)
            .json(&body);
        shared.sent_ns[i].store(shared.base.elapsed().as_nanos() as u64, Ordering::SeqCst);
        request.send().await?.error_for_status()?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = shared.complete.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if shared.delivered[i].load(Ordering::SeqCst) >= subscribed {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                incomplete += 1;
                break;
            }
        }
    }
    let events_secs = events_started.elapsed().as_secs_f64();
    let loadgen_cpu = match (cpu_before, cpu_secs(std::process::id())) {
        (Some(b), Some(a)) => Some(a - b),
        _ => None,
    };
    on_done();
    let _ = stop_tx.send(true);
    for t in tasks {
        if tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .is_err()
        {
            println!("    a subscriber did not stop");
        }
    }
    let mut latencies =
        std::mem::take(&mut *shared.latencies.lock().unwrap_or_else(|e| e.into_inner()));
    latencies.sort();
    Ok(Fanout {
        subscribed,
        connect_secs,
        latencies,
        incomplete,
        out_of_order: shared.out_of_order.load(Ordering::SeqCst),
        events_secs,
        loadgen_cpu,
    })
}

/// One websocket subscriber: handshake, subscribe, then note each event's
/// latency until told to stop.
async fn subscriber(
    i: usize,
    target: &Target,
    project_id: &str,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
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
    let mut mine = Vec::with_capacity(shared.sent_ns.len());
    let mut last = 0u64;
    loop {
        let seq = tokio::select! {
            seq = sub.next_seq() => seq,
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(seq) = seq else { break };
        let now = shared.base.elapsed().as_nanos() as u64;
        if seq != last + 1 {
            shared.out_of_order.fetch_add(1, Ordering::Relaxed);
        }
        last = seq;
        let Some(k) = (seq as usize)
            .checked_sub(1)
            .filter(|&k| k < shared.sent_ns.len())
        else {
            continue;
        };
        let sent = shared.sent_ns[k].load(Ordering::SeqCst);
        mine.push(Duration::from_nanos(now.saturating_sub(sent)));
        let have = shared.delivered[k].fetch_add(1, Ordering::SeqCst) + 1;
        if have == shared.expected.load(Ordering::SeqCst) {
            shared.complete.notify_waiters();
        }
    }
    shared
        .latencies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(mine);
    Ok(())
}
