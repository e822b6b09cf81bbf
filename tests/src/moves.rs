//! Content v2 moves between two real clients, measured by what each
//! client's HTTP layer counted (`status.json`'s `http`: requests, body
//! bytes sent and received) and by CPU seconds: used by the byte-count
//! tests (`tests/content_moves.rs`) and the benchmark's content workloads.
//!
//! A measurement lets both clients settle, restarts them (so the counters
//! start at zero after everything before the change), makes the change,
//! waits until B's folder is identical to A's and both say `up to date`,
//! and stops both (the last `status.json` is written at shutdown). What
//! the counters say then is the change's cost plus the start-up's: an
//! upper bound.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;

use crate::burst::cpu_seconds;
use crate::{tree_hashes, visible, wait_for, ClientDir, RunningClient};

/// Requests and body bytes one client moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub requests: u64,
    pub sent: u64,
    pub received: u64,
}

/// What one change cost.
#[derive(Debug, Clone, Copy)]
pub struct Moved {
    pub a: Traffic,
    pub b: Traffic,
    /// From the change made to B identical.
    pub wall: Duration,
    /// CPU seconds of A and B over the same span.
    pub cpu_a: f64,
    pub cpu_b: f64,
}

impl Moved {
    /// Body bytes that crossed the network, both ways, both clients.
    pub fn bytes(&self) -> u64 {
        self.a.sent + self.a.received + self.b.sent + self.b.received
    }
}

/// A client's counters from its `status.json`.
pub fn traffic(c: &ClientDir) -> Traffic {
    let s = c.status_file().unwrap_or(Value::Null);
    let h = &s["http"];
    Traffic {
        requests: h["requests"].as_u64().unwrap_or(0),
        sent: h["sent"].as_u64().unwrap_or(0),
        received: h["received"].as_u64().unwrap_or(0),
    }
}

/// Waits until B's folder shows what A's does, then until both say
/// `up to date`.
pub async fn settle(a: &ClientDir, b: &ClientDir) -> Result<()> {
    let (fa, fb) = (a.folder.clone(), b.folder.clone());
    wait_for("B identical to A", || {
        let (fa, fb) = (fa.clone(), fb.clone());
        async move {
            let ta = visible(tree_hashes(&fa).ok()?);
            let tb = visible(tree_hashes(&fb).ok()?);
            (ta == tb).then_some(())
        }
    })
    .await?;
    for (dir, who) in [(a, "A"), (b, "B")] {
        wait_for(&format!("{who} up to date"), || {
            let s = dir.status_file();
            async move {
                let f = s?["folders"].as_array()?.first()?.clone();
                (f["badge"]["kind"] == "up_to_date").then_some(())
            }
        })
        .await?;
    }
    Ok(())
}

/// Runs A and B (`send-receive` pair of [`crate::linked_pair`]) with
/// `flags`, lets them settle, then measures `change`.
pub async fn measure<F, Fut>(
    a: &ClientDir,
    b: &ClientDir,
    flags: &[&str],
    change: F,
) -> Result<Moved>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut ra = a.run(flags)?;
    let mut rb = b.run(flags)?;
    settle(a, b).await?;
    ra.stop().await?;
    rb.stop().await?;
    let mut ra: RunningClient = a.run(flags)?;
    let mut rb: RunningClient = b.run(flags)?;
    settle(a, b).await?;
    let (pa, pb) = (ra.pid().unwrap_or(0), rb.pid().unwrap_or(0));
    let (ca, cb) = (
        cpu_seconds(pa).unwrap_or(0.0),
        cpu_seconds(pb).unwrap_or(0.0),
    );
    let started = Instant::now();
    change().await?;
    settle(a, b).await?;
    let wall = started.elapsed();
    let (cpu_a, cpu_b) = (
        cpu_seconds(pa).unwrap_or(0.0) - ca,
        cpu_seconds(pb).unwrap_or(0.0) - cb,
    );
    ra.stop().await?;
    rb.stop().await?;
    Ok(Moved {
        a: traffic(a),
        b: traffic(b),
        wall,
        cpu_a,
        cpu_b,
    })
}

/// `n` bytes of a seeded xorshift stream (fast, and no two seeds alike).
pub fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Overwrites `with.len()` bytes of the file at `path` from `at`.
pub fn overwrite(path: &std::path::Path, at: u64, with: &[u8]) -> Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.seek(SeekFrom::Start(at))?;
    f.write_all(with)?;
    f.sync_all()?;
    Ok(())
}
