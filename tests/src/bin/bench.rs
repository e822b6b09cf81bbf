//! `make bench`: the server's figures on loopback, printed, never asserted.
//!
//! 1. Fan-out, ours against the Node socket.io 4 reference
//!    (`tests/bench-ref/`) in the same run with the same lean load generator
//!    (`loadgen`, a runtime of its own with `--loadgen-threads` workers, as
//!    many as cores by default): N bare websocket subscribers in one
//!    project, then 200 changes posted one at a time; latency from POST sent
//!    to event read at every subscriber (p50, p99, max), the ratio, each
//!    server's resident memory per subscribed socket and peak RSS, and the
//!    CPU seconds of the server and of the load generator over the events.
//! 2. Append throughput with no subscribers: batches of 1 and of 100
//!    changes per request, 4 concurrent posters.
//! 3. Client: latency from a file's last write in A to the event at B over
//!    100 trials, debounce 500 ms and 50 ms; the start-up scan of a generated
//!    tree of 10,000 files / 200 MB next to plain BLAKE3 hashing of the same
//!    files in the same run.
//!
//! 4. Content v2 (issue 10's workloads): 1 MiB overwritten inside a synced
//!    256 MiB file and a rename of a synced 64 MiB file (bytes moved, both
//!    ways, both clients; seconds; CPU seconds per client), then the
//!    2,000-file burst and the join of 10,000 files (tree, chunks).
//!
//! 5. History (issue 13): `tree` at head and at an old seq for a project of
//!    100,000 files and 1,000,000 events (a page of 1,000 and the whole
//!    tree), and a `rewind` of 10,000 paths: seconds until a receiving
//!    client is identical again. Only with `--only history`.
//!
//! 6. Transport (issue 11): last write in A -> event at B with A posting up
//!    the socket and with A posting by HTTP, debounce 50 ms, p50/p99.
//!
//! Flags: `--only server|client|fanout|burst|join|content|history|transport`
//! (fanout: part 1 alone; burst: the 2,000-file burst alone; join: the
//! 10,000-file join alone; content: part 4; history: part 5; transport: part
//! 6), `--subscribers N[,M...]` (default 1000,10000), `--events N`
//! (200), `--trials N` (100), `--loadgen-threads N` (cores),
//! `--burst-debounce MS[,MS...]` (500,50: the burst's debounces).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use vidsync_e2e::{create_change, Api, TestServer};

#[path = "bench/compare.rs"]
mod compare;
#[path = "bench/loadgen.rs"]
mod loadgen;

struct Args {
    subscribers: Vec<usize>,
    events: usize,
    trials: usize,
    only: Option<String>,
    /// Worker threads of the fan-out load generator.
    loadgen_threads: usize,
    /// The debounces the burst runs at.
    burst_debounce: Vec<u64>,
}

const USAGE: &str = "vidsync-bench: Vidsync's performance figures, printed (see `make bench`).
Runs the server and clients named by VIDSYNC_SERVER_BIN and VIDSYNC_BIN; TMPDIR sets the disk.

  --only server|client|fanout|burst|join|content|history|transport
                           one part (history runs only when named)
  --subscribers N[,M...]   fan-out subscribers (1000,10000)
  --events N               fan-out changes posted (200)
  --trials N               client latency trials (100)
  --loadgen-threads N      fan-out load generator workers (cores)
  --burst-debounce MS[,MS...]  the 2,000-file burst's debounces (500,50)";

fn parse_args() -> Result<Args> {
    let mut args = Args {
        subscribers: vec![1000, 10_000],
        events: 200,
        trials: 100,
        only: None,
        loadgen_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        burst_debounce: vec![500, 50],
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "--help" || a == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let v = it.next().with_context(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--subscribers" => {
                args.subscribers = v
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()?
            }
            "--events" => args.events = v.parse()?,
            "--trials" => args.trials = v.parse()?,
            "--only" => args.only = Some(v),
            "--loadgen-threads" => args.loadgen_threads = v.parse()?,
            "--burst-debounce" => {
                args.burst_debounce = v
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()?
            }
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

async fn throughput(api: &Api, batch: usize, total_events: usize) -> Result<f64> {
    let id = api.create_project(&format!("append-{batch}")).await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
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
                    .map(|k| {
                        create_change(
                            &format!("d{r}/f{k}"),
                            format!("{r}-{k}").as_bytes(),
                            Some(&format!("{w}-{r}-{k}")),
                        )
                    })
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
    println!(
        "vidsync benchmark (release build, loopback, {} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    if matches!(args.only.as_deref(), None | Some("server" | "fanout")) {
        server_bench(&args).await?;
    }
    match args.only.as_deref() {
        Some("server" | "fanout") => {}
        Some("burst") => burst_bench(&args).await?,
        Some("join") => join_bench().await?,
        Some("content") => content_bench(&args).await?,
        Some("history") => history_bench().await?,
        Some("transport") => transport_bench(&args).await?,
        _ => {
            transport_bench(&args).await?;
            client_bench(&args).await?
        }
    }
    Ok(())
}

/// Issue 10's two big-file workloads between two send-receive clients.
async fn content_bench(args: &Args) -> Result<()> {
    use vidsync_e2e::moves::{bytes, measure, overwrite, Moved};
    let show = |what: &str, m: &Moved| {
        println!(
            "content: {what}: {:.2} MiB moved (A sent {:.2}, got {:.2}; B sent {:.2}, got {:.2}; {} + {} requests), {:.2} s to identical at B (debounce 500 ms), CPU A {:.2} s + B {:.2} s",
            m.bytes() as f64 / 1048576.0,
            m.a.sent as f64 / 1048576.0,
            m.a.received as f64 / 1048576.0,
            m.b.sent as f64 / 1048576.0,
            m.b.received as f64 / 1048576.0,
            m.a.requests,
            m.b.requests,
            m.wall.as_secs_f64(),
            m.cpu_a,
            m.cpu_b
        );
    };
    let server = TestServer::start().await?;
    let (a, b, _id, _api) = vidsync_e2e::linked_pair(&server, "send-receive").await?;
    a.write("big.bin", &bytes(256, 256 << 20))?;
    let file = a.folder.join("big.bin");
    let m = measure(&a, &b, &[], || async {
        overwrite(&file, 128 << 20, &bytes(257, 1 << 20))
    })
    .await?;
    show("1 MiB overwritten inside a synced 256 MiB file", &m);

    let server = TestServer::start().await?;
    let (a, b, _id, _api) = vidsync_e2e::linked_pair(&server, "send-receive").await?;
    a.write("raw/take.mov", &bytes(64, 64 << 20))?;
    let root = a.folder.clone();
    let m = measure(&a, &b, &[], || async move {
        std::fs::create_dir_all(root.join("final"))?;
        std::fs::rename(root.join("raw/take.mov"), root.join("final/take.mov"))?;
        Ok(())
    })
    .await?;
    show("rename of a synced 64 MiB file", &m);
    burst_bench(args).await?;
    join_bench().await
}

/// A one-way burst into two send-receive clients (issue 9's CPU figure).
async fn burst_bench(args: &Args) -> Result<()> {
    for &debounce in &args.burst_debounce {
        let r = vidsync_e2e::burst::run(2000, debounce).await?;
        println!(
            "client: burst of {} x 1 KiB files in 20 dirs, both send-receive, debounce {debounce} ms: identical at B after {:.2} s (checked by {:.2} s); CPU A {:.2} s + B {:.2} s = {:.2} s, server {:.2} s; events posted by A {}, by B {} (echoes)",
            r.files,
            r.wall.as_secs_f64(),
            r.confirmed.as_secs_f64(),
            r.cpu_a,
            r.cpu_b,
            r.cpu_a + r.cpu_b,
            r.cpu_server,
            r.posted_a,
            r.posted_b
        );
        println!("  {}", r.phases);
    }
    Ok(())
}

async fn client_bench(args: &Args) -> Result<()> {
    println!(
        "client: last write in A -> event at B, and -> identical bytes in B ({} trials each):",
        args.trials
    );
    for debounce in [500u64, 50] {
        let server = TestServer::start().await?;
        let (a, b, _id, _api) = vidsync_e2e::linked_pair(&server, "receive").await?;
        let d = debounce.to_string();
        let mut ra = a.run(&["--debounce-ms", &d])?;
        let mut rb = b.run(&[])?;
        rb.wait_status("B live", |s| s["connection"] == "live")
            .await?;
        ra.wait_status("A live", |s| s["connection"] == "live")
            .await?;
        let sizes: &[(usize, &str)] = if debounce == 500 {
            &[(1024, "1 KiB"), (10 << 20, "10 MiB")]
        } else {
            &[(1024, "1 KiB")]
        };
        for &(size, label) in sizes {
            let (mut to_event, mut to_bytes) = (Vec::new(), Vec::new());
            let mut content = vec![0u8; size];
            for i in 0..args.trials {
                let name = format!("t{size}-{i}.bin");
                content[..8].copy_from_slice(&(i as u64).to_le_bytes());
                a.write(&name, &content)?;
                let written = Instant::now();
                rb.wait_for("trial event", |v| {
                    v["type"] == "remote_event" && v["event"]["change"]["path"] == name.as_str()
                })
                .await?;
                to_event.push(written.elapsed());
                rb.wait_for("trial applied", |v| {
                    v["type"] == "applied" && v["path"] == name.as_str()
                })
                .await?;
                to_bytes.push(written.elapsed());
                rb.forget();
            }
            to_event.sort();
            to_bytes.sort();
            println!(
                "  debounce {debounce:>3} ms, {label:>6}: event p50 {}, p99 {} (p50 - debounce {}); identical bytes p50 {}, p99 {} (p50 - debounce {})",
                ms(percentile(&to_event, 0.5)),
                ms(percentile(&to_event, 0.99)),
                ms(percentile(&to_event, 0.5).saturating_sub(Duration::from_millis(debounce))),
                ms(percentile(&to_bytes, 0.5)),
                ms(percentile(&to_bytes, 0.99)),
                ms(percentile(&to_bytes, 0.5).saturating_sub(Duration::from_millis(debounce))),
            );
        }
        ra.stop().await?;
        rb.stop().await?;
    }

    content_bench(args).await?;
    scan_bench().await
}

/// Issue 11: a change posted up the socket (`files:update`) against the
/// same change posted by HTTP: last write in A (debounce 50 ms) -> event at
/// B (live socket), over the trials; the server's counters say which way
/// the batches went.
async fn transport_bench(args: &Args) -> Result<()> {
    println!(
        "transport: last write in A -> event at B, debounce 50 ms ({} trials each):",
        args.trials
    );
    for (label, pref) in [("socket", "websocket-first"), ("HTTP", "http-only")] {
        let server = TestServer::start().await?;
        let (a, b, _id, _api) = vidsync_e2e::linked_pair(&server, "receive").await?;
        let mut ra = a.run(&["--debounce-ms", "50", "--transport", pref])?;
        let mut rb = b.run(&[])?;
        rb.wait_status("B live", |s| s["connection"] == "live")
            .await?;
        let want = if pref == "http-only" {
            "polling"
        } else {
            "live"
        };
        ra.wait_status("A connected", |s| s["connection"] == want)
            .await?;
        let mut took = Vec::with_capacity(args.trials);
        for i in 0..args.trials {
            let name = format!("t-{i}.txt");
            a.write(&name, format!("trial {i}").as_bytes())?;
            let written = Instant::now();
            rb.wait_for("trial event", |v| {
                v["type"] == "remote_event" && v["event"]["change"]["path"] == name.as_str()
            })
            .await?;
            took.push(written.elapsed());
            rb.forget();
        }
        took.sort();
        let batches = |via: &str| {
            let name = format!("vidsync_update_requests_total{{via=\"{via}\"}}");
            let server = &server;
            async move { server.metric(&name).await.map(|v| v.unwrap_or(0.0)) }
        };
        println!(
            "  {label:>6} path ({pref}): p50 {}, p99 {} (p50 - debounce {}); batches up the socket {}, by HTTP {}",
            ms(percentile(&took, 0.5)),
            ms(percentile(&took, 0.99)),
            ms(percentile(&took, 0.5).saturating_sub(Duration::from_millis(50))),
            batches("socket").await?,
            batches("http").await?,
        );
        ra.stop().await?;
        rb.stop().await?;
    }
    Ok(())
}

/// The start-up scan of a generated tree, next to plain hashing.
async fn scan_bench() -> Result<()> {
    let tree = tempfile::tempdir()?;
    let (files, bytes) = generate_tree(tree.path(), 10_000, 200 * 1024 * 1024)?;
    let mb = bytes as f64 / (1024.0 * 1024.0);
    let root = tree.path().to_path_buf();
    let raw = tokio::task::spawn_blocking(move || -> Result<(Duration, std::path::PathBuf)> {
        // Plain hashing of the same files (also warms the page cache).
        let started = Instant::now();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir)? {
                let p = e?.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let mut h = blake3::Hasher::new();
                    h.update_reader(std::fs::File::open(&p)?)?;
                    std::hint::black_box(h.finalize());
                }
            }
        }
        Ok((started.elapsed(), root))
    })
    .await??;
    let (raw_time, root) = raw;
    let scan = tokio::task::spawn_blocking(move || {
        let rules = vidsync_client::scan::IgnoreRules::load(&root);
        let started = Instant::now();
        let diffs =
            vidsync_client::scan::scan(&root, &rules, &Default::default(), Duration::ZERO).diffs;
        (started.elapsed(), diffs.len())
    })
    .await?;
    let (scan_time, found) = scan;
    println!("client: start-up scan of {files} files / {mb:.0} MiB (warm cache, one thread):");
    println!(
        "  scanner:      {:>8.0} files/s {:>7.0} MiB/s ({found} creates found)",
        files as f64 / scan_time.as_secs_f64(),
        mb / scan_time.as_secs_f64()
    );
    println!(
        "  plain BLAKE3: {:>8.0} files/s {:>7.0} MiB/s",
        files as f64 / raw_time.as_secs_f64(),
        mb / raw_time.as_secs_f64()
    );
    println!(
        "  scanner / plain hashing: {:.2}",
        raw_time.as_secs_f64() / scan_time.as_secs_f64()
    );
    drop(tree);
    Ok(())
}

/// Joining late: 10,000 files / 200 MB shared by A, then C joins.
async fn join_bench() -> Result<()> {
    let server = TestServer::start().await?;
    let (a, _b, id, api) = vidsync_e2e::linked_pair(&server, "receive").await?;
    let (files, bytes) = generate_tree(&a.folder, 10_000, 200 * 1024 * 1024)?;
    let mb = bytes as f64 / (1024.0 * 1024.0);
    let started = Instant::now();
    let mut ra = a.run(&[])?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (_, p) = api.events(&id, u64::MAX / 2).await?;
        if p["head_seq"].as_u64() >= Some(files as u64) {
            break;
        }
        if Instant::now() > deadline {
            bail!("A did not share {files} files within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let share_time = started.elapsed();
    let tc = server.add_user("carol").await?;
    let c = vidsync_e2e::ClientDir::new()?;
    c.ok(&["login", "--server", &server.url, "--token", &tc])
        .await?;
    let code = a.ok(&["invite", &id]).await?;
    let started = Instant::now();
    c.ok(&[
        "join",
        &code,
        &c.folder.to_string_lossy(),
        "--mode",
        "receive",
    ])
    .await?;
    let join_time = started.elapsed();
    println!("client: {files} files / {mb:.0} MiB");
    println!(
        "  share (scan, upload, post): {:.1} s, {:>6.0} files/s {:>6.1} MiB/s",
        share_time.as_secs_f64(),
        files as f64 / share_time.as_secs_f64(),
        mb / share_time.as_secs_f64()
    );
    println!(
        "  join (download, verify, write): {:.1} s, {:>6.0} files/s {:>6.1} MiB/s",
        join_time.as_secs_f64(),
        files as f64 / join_time.as_secs_f64(),
        mb / join_time.as_secs_f64()
    );
    ra.stop().await?;
    Ok(())
}

/// `n` files in 100 directories, `total` bytes in all, sizes spread 0..2x mean.
fn generate_tree(root: &std::path::Path, n: usize, total: usize) -> Result<(usize, u64)> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mean = total / n;
    let mut written = 0u64;
    let mut buf = vec![0u8; mean * 2];
    rng.fill(&mut buf[..]);
    for i in 0..n {
        let dir = root.join(format!("d{:02}/e{}", i % 100, i % 7));
        std::fs::create_dir_all(&dir)?;
        let size = rng.random_range(0..=mean * 2);
        let off = rng.random_range(0..=buf.len() - size);
        let mut content = buf[off..off + size].to_vec();
        if size >= 8 {
            content[..8].copy_from_slice(&(i as u64).to_le_bytes());
        }
        std::fs::write(dir.join(format!("f{i}.bin")), &content)?;
        written += size as u64;
    }
    Ok((n, written))
}

async fn server_bench(args: &Args) -> Result<()> {
    // No rate limit: the load generator is one user.
    let server = TestServer::start_with(&["--rate-limit", "0"]).await?;
    let token = server.add_user("bench").await?;
    let api = server.api(&token);

    let reference = compare::Reference::start(&token).await;
    if let Err(e) = &reference {
        println!("(Node reference not started: {e:#}; only our server is measured)");
    }
    for &n in &args.subscribers {
        compare::fan_out_both(
            &server,
            &token,
            reference.as_ref().ok(),
            n,
            args.events,
            args.loadgen_threads,
        )
        .await;
    }
    drop(reference);
    if args.only.as_deref() == Some("fanout") {
        return Ok(());
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

/// Issue 13's figures: `tree` on a big log, and a big rewind end to end.
async fn history_bench() -> Result<()> {
    const FILES: usize = 100_000;
    const EVENTS: usize = 1_000_000;
    let server = TestServer::start().await?;
    let token = server.add_user("alice").await?;
    let api = server.api(&token);
    let id = api.new_project("history").await?;
    let started = Instant::now();
    let batch = vidsync_protocol::MAX_CHANGES_PER_REQUEST;
    for b in 0..EVENTS / batch {
        let changes = (0..batch)
            .map(|i| {
                let n = b * batch + i;
                let mut c = create_change(
                    &format!("d{:03}/f{}.txt", n % FILES % 1000, n % FILES),
                    format!("version {n}").as_bytes(),
                    None,
                );
                // A tenth of the later versions are deletes.
                if n >= FILES && n % 10 == 3 {
                    c = serde_json::json!({ "path": c["path"], "op": "delete" });
                }
                c
            })
            .collect();
        let (status, body) = api.update(&id, "loader", changes).await?;
        if status != 200 {
            bail!("loading events: {status} {body}");
        }
    }
    println!(
        "history: {EVENTS} events over {FILES} paths loaded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for (what, at) in [("head", None), ("seq 500,000", Some(500_000u64))] {
        let mut after: Option<String> = None;
        let mut pages = 0u32;
        let mut files = 0usize;
        let mut first_page = Duration::ZERO;
        let whole = Instant::now();
        loop {
            let mut url = format!("/api/projects/{id}/tree?limit=1000");
            if let Some(s) = at {
                url.push_str(&format!("&at_seq={s}"));
            }
            if let Some(a) = &after {
                url.push_str(&format!("&after={}", urlencode(a)));
            }
            let t = Instant::now();
            let (status, page) = api.get(&url).await?;
            if pages == 0 {
                first_page = t.elapsed();
            }
            if status != 200 {
                bail!("tree: {status} {page}");
            }
            pages += 1;
            files += page["files"].as_array().map_or(0, Vec::len);
            match page["next"].as_str() {
                Some(n) => after = Some(n.to_string()),
                None => break,
            }
        }
        let total = whole.elapsed();
        println!(
            "  tree at {what}: {files} files in {pages} pages of 1,000: first page {:.1} ms, mean page {:.1} ms, whole tree {:.2} s",
            first_page.as_secs_f64() * 1000.0,
            total.as_secs_f64() * 1000.0 / f64::from(pages.max(1)),
            total.as_secs_f64()
        );
    }

    // A rewind of 10,000 paths, until a receiving client is identical.
    let server = TestServer::start().await?;
    let (a, b, id, api) = vidsync_e2e::linked_pair(&server, "receive").await?;
    for i in 0..10_000 {
        a.write(
            &format!("d{:02}/f{i}.txt", i % 100),
            format!("file {i}\n").as_bytes(),
        )?;
    }
    let (mut ra, mut rb) = (a.run(&[])?, b.run(&[])?);
    let head = |api: Api, id: String| async move {
        api.events(&id, u64::MAX / 2)
            .await
            .ok()
            .and_then(|(_, p)| p["head_seq"].as_u64())
            .unwrap_or(0)
    };
    let wait = |what: &'static str, cond: Box<dyn Fn() -> bool>| async move {
        let deadline = Instant::now() + Duration::from_secs(900);
        while !cond() {
            if Instant::now() > deadline {
                bail!("{what}: not within 15 minutes");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok::<(), anyhow::Error>(())
    };
    let before = vidsync_e2e::tree_hashes(&a.folder)?;
    let bf = b.folder.clone();
    let want = before.clone();
    wait(
        "B has the 10,000 files",
        Box::new(move || {
            vidsync_e2e::tree_hashes(&bf).map(vidsync_e2e::visible).ok() == Some(want.clone())
        }),
    )
    .await?;
    let point = head(api.clone(), id.clone()).await;
    for i in 0..100 {
        std::fs::remove_dir_all(a.folder.join(format!("d{i:02}")))?;
    }
    let bf = b.folder.clone();
    wait(
        "B has the deletes",
        Box::new(move || {
            vidsync_e2e::tree_hashes(&bf)
                .map(|t| vidsync_e2e::visible(t).is_empty())
                .unwrap_or(false)
        }),
    )
    .await?;
    let started = Instant::now();
    a.ok(&[
        "rewind",
        "--project",
        &id,
        "--to",
        &point.to_string(),
        "--yes",
    ])
    .await?;
    let answered = started.elapsed();
    let bf = b.folder.clone();
    let want = before.clone();
    wait(
        "B identical after the rewind",
        Box::new(move || {
            vidsync_e2e::tree_hashes(&bf).map(vidsync_e2e::visible).ok() == Some(want.clone())
        }),
    )
    .await?;
    println!(
        "  rewind of 10,000 paths: restore answered in {:.2} s (dry run + restore), receiving client identical after {:.2} s",
        answered.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    ra.stop().await?;
    rb.stop().await?;
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
