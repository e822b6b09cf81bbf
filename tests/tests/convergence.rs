//! Randomized convergence with faults (issue 9): three clients (two
//! `send-receive` writers, one `receive`) on one server behind a TCP proxy;
//! a seeded random mix of creates, edits, renames, deletes and same-file
//! concurrent edits, while the test kill -9s and restarts the server and
//! the clients and cuts or stalls connections. At the end every folder is
//! identical to the server's state (the tree the event log folds to), and
//! every version a writer left in place exists as a file or a conflict copy
//! somewhere (or in the log, when another client later replaced it).
//!
//! Each run prints its seed; `VIDSYNC_SEED=n` replays one seed;
//! `VIDSYNC_SEEDS=n` sets how many seeds run (default 20) from
//! `VIDSYNC_SEED_BASE` (default: a random base).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{bail, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vidsync_e2e::proxy::Proxy;
use vidsync_e2e::{tree_hashes, visible, Api, ClientDir, RunningClient, TestServer};

const OPS: usize = 14;
const WRITERS: usize = 2;

fn hash(b: &[u8]) -> String {
    blake3::hash(b).to_hex().to_string()
}

/// The tree the event log folds to: newest version of each path.
async fn server_tree(api: &Api, id: &str) -> Result<BTreeMap<String, String>> {
    let mut tree = BTreeMap::new();
    for e in api.all_events(id).await? {
        let path = e["change"]["path"].as_str().unwrap_or_default().to_string();
        match e["change"]["op"].as_str() {
            Some("delete") => tree.remove(&path),
            _ => tree.insert(
                path,
                e["change"]["hash"].as_str().unwrap_or_default().to_string(),
            ),
        };
    }
    Ok(tree)
}

/// Every hash the log ever held.
async fn logged(api: &Api, id: &str) -> Result<BTreeSet<String>> {
    Ok(api
        .all_events(id)
        .await?
        .iter()
        .filter_map(|e| e["change"]["hash"].as_str().map(str::to_string))
        .collect())
}

struct World {
    server: TestServer,
    proxy: Proxy,
    api: Api,
    id: String,
    dirs: Vec<ClientDir>,
    runs: Vec<Option<RunningClient>>,
}

impl World {
    async fn new() -> Result<World> {
        let server = TestServer::start().await?;
        let target = server.url.trim_start_matches("http://").parse()?;
        let proxy = Proxy::start(target).await?;
        let mut dirs = Vec::new();
        let mut tokens = Vec::new();
        for name in ["alice", "bob", "carol"] {
            let token = server.add_user(name).await?;
            let d = ClientDir::new()?;
            d.ok(&["login", "--server", &proxy.url(), "--token", &token])
                .await?;
            dirs.push(d);
            tokens.push(token);
        }
        let folder = dirs[0].folder.to_string_lossy().to_string();
        let id = dirs[0].ok(&["share", &folder, "--name", "conv"]).await?;
        for (i, mode) in [(1, "send-receive"), (2, "receive")] {
            let code = dirs[0].ok(&["invite", &id]).await?;
            let f = dirs[i].folder.to_string_lossy().to_string();
            dirs[i].ok(&["join", &code, &f, "--mode", mode]).await?;
        }
        let api = server.api(&tokens[0]);
        for (i, d) in dirs.iter().enumerate() {
            println!("client {i} logs as [{}]", d.label());
        }
        let mut w = World {
            server,
            proxy,
            api,
            id,
            dirs,
            runs: vec![None, None, None],
        };
        for i in 0..3 {
            w.start(i)?;
        }
        Ok(w)
    }

    fn start(&mut self, i: usize) -> Result<()> {
        let run = self.dirs[i].run_logged(
            &["--debounce-ms", "50"],
            &[("VIDSYNC_RETRY_MS", "500")],
            CLIENT_LOG,
        )?;
        self.runs[i] = Some(run);
        Ok(())
    }

    async fn kill_client(&mut self, i: usize) -> Result<()> {
        if let Some(mut r) = self.runs[i].take() {
            r.kill9().await?;
        }
        self.start(i)
    }
}

/// What the writers did, to check that nothing they left was lost.
#[derive(Default)]
struct Record {
    /// (writer, path) -> the last content that writer put there, if it
    /// did not move or delete it since.
    left: BTreeMap<(usize, String), String>,
    /// Versions written by concurrent edits: both must survive.
    concurrent: Vec<String>,
    /// Paths not touched again after a concurrent edit.
    frozen: BTreeSet<String>,
    n: usize,
}

fn pick_file(rng: &mut StdRng, dir: &ClientDir, rec: &Record) -> Option<String> {
    let files: Vec<String> = visible(tree_hashes(&dir.folder).ok()?)
        .into_keys()
        .filter(|p| !p.contains(".sync-conflict-") && !rec.frozen.contains(p))
        .collect();
    (!files.is_empty()).then(|| files[rng.random_range(0..files.len())].clone())
}

/// A new file's bytes: mostly a line, sometimes 40–400 KB (several
/// content-defined chunks), always unique to the op.
fn body(rng: &mut StdRng, seed: u64, n: usize, who: usize) -> Vec<u8> {
    let mut v = format!("seed {seed} op {n} by {who}\n").into_bytes();
    if rng.random_range(0..100) < 30 {
        let len = rng.random_range(40_000..400_000);
        v.extend(vidsync_e2e::moves::bytes(seed ^ (n as u64) << 20, len));
    }
    v
}

/// An edit of a multi-chunk file: 4 KiB overwritten in place (the rest is
/// chunks the receivers already have), unique to the op.
fn edited(old: &[u8], rng: &mut StdRng, seed: u64, n: usize, who: usize) -> Vec<u8> {
    let mut v = old.to_vec();
    let mut patch = format!("seed {seed} op {n} by {who}\n").into_bytes();
    patch.resize(4096, b'#');
    let at = rng.random_range(0..v.len() - patch.len());
    v[at..at + patch.len()].copy_from_slice(&patch);
    v
}

async fn one_op(w: &mut World, rng: &mut StdRng, rec: &mut Record, seed: u64) -> Result<()> {
    rec.n += 1;
    let who = rng.random_range(0..WRITERS);
    let content = body(rng, seed, rec.n, who);
    let roll = rng.random_range(0..100);
    println!("op {}: roll {roll} by client {who}", rec.n);
    match roll {
        0..=24 => {
            let p = format!("d{}/n{}.txt", rng.random_range(0..3), rec.n);
            w.dirs[who].write(&p, &content)?;
            rec.left.insert((who, p), hash(&content));
        }
        25..=44 => {
            if let Some(p) = pick_file(rng, &w.dirs[who], rec) {
                let old = std::fs::read(w.dirs[who].folder.join(&p)).unwrap_or_default();
                let content = match old.len() > 64 * 1024 {
                    true => edited(&old, rng, seed, rec.n, who),
                    false => content,
                };
                w.dirs[who].write(&p, &content)?;
                rec.left.insert((who, p), hash(&content));
            }
        }
        45..=54 => {
            if let Some(p) = pick_file(rng, &w.dirs[who], rec) {
                let to = format!("r{}.txt", rec.n);
                println!("op {}: client {who} renames {p} to {to}", rec.n);
                if std::fs::rename(w.dirs[who].folder.join(&p), w.dirs[who].folder.join(&to))
                    .is_ok()
                {
                    if let Some(h) = rec.left.remove(&(who, p)) {
                        rec.left.insert((who, to), h);
                    }
                }
            }
        }
        55..=64 => {
            if let Some(p) = pick_file(rng, &w.dirs[who], rec) {
                if std::fs::remove_file(w.dirs[who].folder.join(&p)).is_ok() {
                    rec.left.remove(&(who, p));
                }
            }
        }
        65..=76 => {
            // Both writers save one file within a few ms.
            let p = format!("c{}.txt", rec.n);
            let other = format!("seed {seed} op {} by {}\n", rec.n, 1 - who).into_bytes();
            w.dirs[who].write(&p, &content)?;
            w.dirs[1 - who].write(&p, &other)?;
            rec.concurrent.push(hash(&content));
            rec.concurrent.push(hash(&other));
            rec.frozen.insert(p);
        }
        77..=82 => {
            println!("op {}: the server is killed and restarted", rec.n);
            w.server.kill9().await?;
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
            w.server.restart().await?;
        }
        83..=89 => {
            let victim = rng.random_range(0..3);
            println!("op {}: client {victim} is killed and restarted", rec.n);
            w.kill_client(victim).await?
        }
        90..=94 => {
            println!("op {}: the proxy cuts every connection", rec.n);
            w.proxy.cut()
        }
        _ => {
            println!("op {}: the proxy stalls", rec.n);
            w.proxy.stall();
            tokio::time::sleep(Duration::from_millis(rng.random_range(50..400))).await;
            w.proxy.resume();
        }
    }
    // Workload pacing, not a wait for a condition.
    tokio::time::sleep(Duration::from_millis(rng.random_range(0..120))).await;
    Ok(())
}

/// Waits until all folders equal the server's tree (deadline 90 s).
async fn converge(w: &World) -> Result<BTreeMap<String, String>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    loop {
        let server = server_tree(&w.api, &w.id).await?;
        // A folder is read while its client may be writing: a temp file
        // renamed away between listing and reading fails that read. Such a
        // folder is not settled yet; it is read again on the next round.
        let read: Result<Vec<_>> = w
            .dirs
            .iter()
            .map(|d| tree_hashes(&d.folder).map(visible))
            .collect();
        let trees = match read {
            Ok(t) => t,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(%e, "a folder changed while it was read");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        if trees.iter().all(|t| *t == server) {
            return Ok(server);
        }
        if tokio::time::Instant::now() >= deadline {
            let diff: Vec<Vec<String>> = trees
                .iter()
                .map(|t| {
                    t.keys()
                        .chain(server.keys())
                        .filter(|k| t.get(*k) != server.get(*k))
                        .map(|k| {
                            let short = |h: Option<&String>| {
                                h.map(|h| h[..8].to_string()).unwrap_or("-".into())
                            };
                            format!("{k}: {} (server {})", short(t.get(k)), short(server.get(k)))
                        })
                        .collect()
                })
                .collect();
            bail!("folders did not converge to the server's tree; differing paths per client: {diff:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What each client logs, kept to be shown when a seed fails: CI keeps
/// only the test's output, and a failure there cannot be replayed with
/// more logging (it depends on timing as much as on the seed).
const CLIENT_LOG: &str =
    "warn,vidsync_client::engine=debug,vidsync_client::feed=debug,vidsync_client::apply=info";

/// Lines of each client's log shown when a seed fails.
const LOG_TAIL: usize = 150;

async fn run_seed(seed: u64) -> Result<()> {
    let mut w = World::new().await?;
    let result = run_ops(seed, &mut w).await;
    if result.is_err() {
        for (i, d) in w.dirs.iter().enumerate() {
            println!(
                "--- client {i}: the last {LOG_TAIL} lines of its log ---\n{}",
                d.log_tail(LOG_TAIL)
            );
        }
    }
    result
}

async fn run_ops(seed: u64, w: &mut World) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut rec = Record::default();
    for _ in 0..OPS {
        one_op(w, &mut rng, &mut rec, seed).await?;
    }
    w.proxy.resume();
    let tree = converge(w).await?;
    let present: BTreeSet<&String> = tree.values().collect();
    let log = logged(&w.api, &w.id).await?;
    for h in &rec.concurrent {
        if !present.contains(h) {
            bail!("a concurrently written version {h} is neither a file nor a conflict copy");
        }
    }
    for ((who, p), h) in &rec.left {
        if !present.contains(h) && !log.contains(h) {
            bail!("client {who}'s version {h} of {p} was lost (not in any folder nor the log)");
        }
    }
    // Ended hard: a client restarted by the last op may not have set up
    // its SIGTERM handler yet (graceful stop is tested in client.rs).
    for r in w.runs.iter_mut().flatten() {
        r.kill9().await?;
    }
    Ok(())
}

#[tokio::test]
async fn folders_converge_under_faults_for_many_seeds() -> Result<()> {
    vidsync_e2e::init_logs();
    let seeds: Vec<u64> = match std::env::var("VIDSYNC_SEED") {
        Ok(s) => vec![s.parse()?],
        Err(_) => {
            let n: u64 = std::env::var("VIDSYNC_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(20);
            let base: u64 = match std::env::var("VIDSYNC_SEED_BASE") {
                Ok(b) => b.parse()?,
                Err(_) => rand::rng().random_range(0..1_000_000),
            };
            (base..base + n).collect()
        }
    };
    for seed in seeds {
        println!("convergence seed {seed} (replay: VIDSYNC_SEED={seed})");
        let started = std::time::Instant::now();
        if let Err(e) = run_seed(seed).await {
            bail!("seed {seed} failed: {e:#} (replay: VIDSYNC_SEED={seed})");
        }
        println!(
            "seed {seed} converged in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
