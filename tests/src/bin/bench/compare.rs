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
}

async fn measure(
    url: &str,
    token: &str,
    pid: Option<u32>,
    n: usize,
    events: usize,
) -> Result<Measured> {
    let before = pid.and_then(rss_kib);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let target = Target {
        url: url.to_string(),
        token: token.to_string(),
    };
    let run = tokio::task::spawn_blocking(move || {
        loadgen::run_on_own_thread(target, n, events, move || {
            let _ = tx.send(pid.and_then(rss_kib));
        })
    })
    .await??;
    let after = rx.await.ok().flatten();
    let kib_per_socket = match (before, after) {
        (Some(b), Some(a)) if run.subscribed > 0 => Some((a - b) / run.subscribed as f64),
        _ => None,
    };
    Ok(Measured {
        run,
        kib_per_socket,
        peak_mib: pid.and_then(peak_rss_mib),
    })
}

fn print(name: &str, m: &Measured) {
    let l = &m.run.latencies;
    println!(
        "  {name:<10} {} subscribed in {:.1} s; {} deliveries: p50 {}, p99 {}, max {}{}; {} per socket; peak RSS {}",
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
        m.kib_per_socket.map_or("?".into(), |k| format!("{k:.1} KiB")),
        m.peak_mib.map_or("?".into(), |r| format!("{r:.1} MiB")),
    );
}

/// Runs `n` subscribers x `events` against ours, then the reference.
pub async fn fan_out_both(
    server: &TestServer,
    token: &str,
    reference: Option<&Reference>,
    n: usize,
    events: usize,
) {
    println!("fan-out, {n} websocket subscribers, {events} events (POST sent -> event read):");
    let ours = match measure(&server.url, token, server.pid(), n, events).await {
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
    let theirs = match measure(&reference.url, token, reference.pid(), n, events).await {
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
        let p99 = |m: &Measured| percentile(&m.run.latencies, 0.99).as_secs_f64();
        if p99(&theirs) > 0.0 {
            println!(
                "  p99 ratio vidsync / node: {:.2} (target <= 0.5 at 1,000; our p99 < 100 ms at 10,000)",
                p99(&ours) / p99(&theirs)
            );
        }
    }
}
