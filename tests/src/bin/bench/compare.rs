//! The fan-out comparison: the same load against our server and the Node
//! socket.io reference (`tests/bench-ref/reference-server.mjs`), printed
//! side by side.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::process::{Child, Command};
use vidsync_e2e::TestServer;

use super::loadgen::{self, Fanout, Target};
use super::{ms, peak_rss_mib, percentile};

/// The Node reference server, killed on drop.
pub struct Reference {
    pub url: String,
    child: Child,
}

impl Reference {
    /// Starts `node reference-server.mjs PORT TOKEN` from `tests/bench-ref`
    /// (or `VIDSYNC_BENCH_REF`), after `npm ci` there.
    pub async fn start(token: &str) -> Result<Reference> {
        let dir = std::env::var_os("VIDSYNC_BENCH_REF")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench-ref"));
        anyhow::ensure!(
            dir.join("node_modules/socket.io").exists(),
            "run `npm ci` in {} first (make bench does)",
            dir.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("node")
            .arg("reference-server.mjs")
            .arg(port.to_string())
            .arg(token)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting node")?;
        let url = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the reference server did not listen within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Reference { url, child })
    }

    fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// Resident memory now (VmRSS), in KiB.
fn rss_kib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Measured {
    run: Fanout,
    /// KiB of resident memory per subscribed socket (after subscribing, less before).
    kib_per_socket: Option<f64>,
    peak_mib: Option<f64>,
    /// The server's CPU seconds over the event phase.
    server_cpu: Option<f64>,
}

/// The load average now, as `/proc/loadavg` has it (1, 5, 15 min).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn measure(
    url: &str,
    token: &str,
    pid: Option<u32>,
    n: usize,
    events: usize,
    threads: usize,
) -> Result<Measured> {
    let before = pid.and_then(rss_kib);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let target = Target {
        url: url.to_string(),
        token: token.to_string(),
    };
    let run = tokio::task::spawn_blocking(move || {
        loadgen::run_on_own_runtime(
            target,
            n,
            events,
            threads,
            move || {
                let _ = tx.send((pid.and_then(rss_kib), pid.and_then(loadgen::cpu_secs)));
            },
            move || {
                let _ = done_tx.send(pid.and_then(loadgen::cpu_secs));
            },
        )
    })
    .await??;
    let (after, cpu_before) = rx.await.unwrap_or((None, None));
    let cpu_after = done_rx.await.ok().flatten();
    let kib_per_socket = match (before, after) {
        (Some(b), Some(a)) if run.subscribed > 0 => Some((a - b) / run.subscribed as f64),
        _ => None,
    };
    let server_cpu = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) => Some(a - b),
        _ => None,
    };
    Ok(Measured {
        run,
        kib_per_socket,
        peak_mib: pid.and_then(peak_rss_mib),
        server_cpu,
    })
}

fn print(name: &str, m: &Measured) {
    let l = &m.run.latencies;
    let secs = |s: Option<f64>| s.map_or("?".into(), |s| format!("{s:.2} s"));
    println!(
        "  {name:<10} {} subscribed in {:.1} s; {} deliveries: p50 {}, p99 {}, max {}{}{}; {} per socket; peak RSS {}",
        m.run.subscribed,
        m.run.connect_secs,
        l.len(),
        ms(percentile(l, 0.50)),
        ms(percentile(l, 0.99)),
        ms(l.last().copied().unwrap_or_default()),
        if m.run.incomplete > 0 {
            format!(" ({} events not at every subscriber within 10 s)", m.run.incomplete)
        } else {
            String::new()
        },
        if m.run.out_of_order > 0 {
            format!(" ({} deliveries out of order or repeated)", m.run.out_of_order)
        } else {
            String::new()
        },
        m.kib_per_socket.map_or("?".into(), |k| format!("{k:.1} KiB")),
        m.peak_mib.map_or("?".into(), |r| format!("{r:.1} MiB")),
    );
    println!(
        "  {:<10} events took {:.2} s wall; CPU: server {}, load generator {}; load average after: {}",
        "",
        m.run.events_secs,
        secs(m.server_cpu),
        secs(m.run.loadgen_cpu),
        loadavg(),
    );
}

/// Runs `n` subscribers x `events` against ours, then the reference.
pub async fn fan_out_both(
    server: &TestServer,
    token: &str,
    reference: Option<&Reference>,
    n: usize,
    events: usize,
    threads: usize,
) {
    println!(
        "fan-out, {n} websocket subscribers, {events} events (POST sent -> event read), load generator on {threads} threads, load average before: {}:",
        loadavg()
    );
    let ours = match measure(&server.url, token, server.pid(), n, events, threads).await {
        Ok(m) => {
            print("vidsync", &m);
            Some(m)
        }
        Err(e) => {
            println!("  vidsync failed: {e:#}");
            None
        }
    };
    let Some(reference) = reference else { return };
    let theirs = match measure(&reference.url, token, reference.pid(), n, events, threads).await {
        Ok(m) => {
            print("node ref", &m);
            m
        }
        Err(e) => {
            println!("  node reference failed: {e:#}");
            return;
        }
    };
    if let Some(ours) = ours {
        let p = |m: &Measured, q| percentile(&m.run.latencies, q).as_secs_f64();
        if p(&theirs, 0.99) > 0.0 && p(&theirs, 0.5) > 0.0 {
            println!(
                "  ratio vidsync / node: p99 {:.2}, p50 {:.2} (target: p99 <= 0.5 at 1,000; our p99 < 100 ms at 10,000)",
                p(&ours, 0.99) / p(&theirs, 0.99),
                p(&ours, 0.5) / p(&theirs, 0.5)
            );
        }
    }
}
