//! Content v2 between two real clients, counted in bytes and requests (the
//! figures each client's HTTP layer reports in `status.json`), not times:
//! a 1 MiB overwrite inside a 64 MiB file moves at most 3 MiB in all; a
//! rename of a 16 MiB file moves at most 64 KiB; 200 small files go up in
//! at most 10 requests. Each test first lets both clients settle and
//! restarts them (so the counters start at zero, after everything before
//! the change), makes the change, waits until B's folder is identical and
//! stops both (the last `status.json` is written at shutdown): what the
//! counters say then is the change's cost plus the start-up's (an upper
//! bound).

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use serde_json::Value;
use vidsync_e2e::{
    linked_pair, tree_hashes, visible, wait_for, ClientDir, RunningClient, TestServer,
};

fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// (requests, sent, received) from a client's `status.json`.
fn traffic(c: &ClientDir) -> (u64, u64, u64) {
    let s = c.status_file().unwrap_or(Value::Null);
    let h = &s["http"];
    (
        h["requests"].as_u64().unwrap_or(0),
        h["sent"].as_u64().unwrap_or(0),
        h["received"].as_u64().unwrap_or(0),
    )
}

/// Waits until B's folder shows what A's does, then until both say
/// `up to date`.
async fn settle(
    a: &ClientDir,
    b: &ClientDir,
    ra: &mut RunningClient,
    rb: &mut RunningClient,
) -> anyhow::Result<()> {
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
    for (r, who) in [(ra, "A"), (rb, "B")] {
        r.forget();
        wait_for(&format!("{who} up to date"), || {
            let dir = if who == "A" { a } else { b };
            let s = dir.status_file();
            async move {
                let s = s?;
                let f = s["folders"].as_array()?.first()?.clone();
                (f["badge"]["kind"] == "up_to_date").then_some(())
            }
        })
        .await?;
    }
    Ok(())
}

/// Starts both clients, lets them settle, and starts them again: the
/// counters of the running pair cover only what comes next.
async fn started(a: &ClientDir, b: &ClientDir) -> anyhow::Result<(RunningClient, RunningClient)> {
    let mut ra = a.run(&["--debounce-ms", "200"])?;
    let mut rb = b.run(&["--debounce-ms", "200"])?;
    settle(a, b, &mut ra, &mut rb).await?;
    ra.stop().await?;
    rb.stop().await?;
    Ok((
        a.run(&["--debounce-ms", "200"])?,
        b.run(&["--debounce-ms", "200"])?,
    ))
}

/// Waits for B to match A, stops both, returns what each moved.
async fn finished(
    a: &ClientDir,
    b: &ClientDir,
    mut ra: RunningClient,
    mut rb: RunningClient,
) -> anyhow::Result<((u64, u64, u64), (u64, u64, u64))> {
    settle(a, b, &mut ra, &mut rb).await?;
    ra.stop().await?;
    rb.stop().await?;
    Ok((traffic(a), traffic(b)))
}

fn overwrite(path: &Path, at: u64, with: &[u8]) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.seek(SeekFrom::Start(at))?;
    f.write_all(with)?;
    f.sync_all()?;
    Ok(())
}

#[tokio::test]
async fn a_1mib_overwrite_inside_a_64mib_file_moves_at_most_3mib() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (a, b, _id, _api) = linked_pair(&server, "send-receive").await?;
    a.write("video/big.bin", &bytes(1, 64 << 20))?;
    let (ra, rb) = started(&a, &b).await?;

    overwrite(
        &a.folder.join("video/big.bin"),
        32 << 20,
        &bytes(2, 1 << 20),
    )?;
    let (ta, tb) = finished(&a, &b, ra, rb).await?;
    let total = ta.1 + ta.2 + tb.1 + tb.2;
    println!(
        "1 MiB edit in 64 MiB: A {ta:?}, B {tb:?} (requests, sent, received); {total} bytes in all"
    );
    assert!(total <= 3 << 20, "the edit moved {total} bytes");
    assert!(
        ta.1 >= 1 << 20,
        "the edit's bytes must go up: A sent {}",
        ta.1
    );
    assert!(
        tb.2 >= 1 << 20,
        "the edit's bytes must come down: B got {}",
        tb.2
    );
    Ok(())
}

#[tokio::test]
async fn a_rename_of_a_16mib_file_moves_at_most_64kib() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (a, b, _id, _api) = linked_pair(&server, "send-receive").await?;
    a.write("raw/take1.mov", &bytes(3, 16 << 20))?;
    let (ra, rb) = started(&a, &b).await?;

    std::fs::create_dir_all(a.folder.join("final"))?;
    std::fs::rename(
        a.folder.join("raw/take1.mov"),
        a.folder.join("final/take1.mov"),
    )?;
    let (ta, tb) = finished(&a, &b, ra, rb).await?;
    let total = ta.1 + ta.2 + tb.1 + tb.2;
    println!(
        "rename of 16 MiB: A {ta:?}, B {tb:?} (requests, sent, received); {total} bytes in all"
    );
    assert!(b.folder.join("final/take1.mov").exists() && !b.folder.join("raw/take1.mov").exists());
    assert!(total <= 64 << 10, "the rename moved {total} bytes");
    Ok(())
}

#[tokio::test]
async fn two_hundred_small_files_go_up_in_at_most_10_requests() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (a, b, _id, _api) = linked_pair(&server, "send-receive").await?;
    a.write("seed.txt", b"settled")?;
    let (ra, rb) = started(&a, &b).await?;

    for i in 0..200 {
        a.write(&format!("d{}/f{i}.txt", i % 10), &bytes(100 + i, 1024))?;
    }
    let (ta, tb) = finished(&a, &b, ra, rb).await?;
    println!("200 small files: A {ta:?}, B {tb:?} (requests, sent, received)");
    assert!(ta.0 <= 10, "A made {} requests for 200 files", ta.0);
    assert!(tb.0 <= 10, "B made {} requests to fetch 200 files", tb.0);
    Ok(())
}
