//! Client engine v2 under faults (issue 9, items 1–6), with the real
//! binaries: a download cut by a server crash resumes and the cursor waits
//! for it; a receiver-side failure is set aside visibly and retried; a
//! burst is not echoed back; a file still being written is never logged
//! half-written; `status.json` never goes backwards.

use std::time::Duration;

use serde_json::Value;
use vidsync_e2e::{linked_pair, tree_hashes, wait_for, Api, ClientDir, TestServer};

fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

fn temp_files(root: &std::path::Path) -> Vec<String> {
    tree_hashes(root)
        .map(|t| {
            t.into_keys()
                .filter(|p| {
                    p.rsplit('/')
                        .next()
                        .is_some_and(|n| n.starts_with(".vidsync-tmp-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn events_of(api: &Api, id: &str) -> anyhow::Result<Vec<Value>> {
    api.all_events(id).await
}

/// The seq of the newest event for `path`, if any.
async fn seq_of(api: &Api, id: &str, path: &str) -> Option<u64> {
    let evs = events_of(api, id).await.ok()?;
    evs.iter()
        .rev()
        .find(|e| e["change"]["path"] == path)
        .and_then(|e| e["seq"].as_u64())
}

fn status_seq(c: &ClientDir) -> u64 {
    c.status_file()
        .and_then(|v| v["folders"][0]["last_seq"].as_u64())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_download_cut_by_a_server_crash_resumes_and_the_cursor_waits() -> anyhow::Result<()> {
    let mut server = TestServer::start().await?;
    let (a, b, id, api) = linked_pair(&server, "receive").await?;
    // Big enough to take a few seconds to fetch in a debug build on loopback.
    let big: Vec<u8> = (0..96u32 * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    a.write("big.bin", &big)?;
    let mut ra = a.run(&[])?;
    let seq = wait_for("big.bin posted", || async {
        seq_of(&api, &id, "big.bin").await
    })
    .await?;
    ra.stop().await?;
    let mut rb = b.run(&[])?;
    wait_for("B downloading", || async {
        let t = temp_files(&b.folder);
        let started = t
            .iter()
            .any(|p| std::fs::metadata(b.folder.join(p)).is_ok_and(|m| m.len() > 0));
        started.then_some(())
    })
    .await?;
    server.kill9().await?;
    // The event is not done: the cursor (saved and shown) stays before it.
    rb.wait_status("B reconnecting", |s| s["connection"] == "reconnecting")
        .await?;
    assert!(status_seq(&b) < seq, "cursor passed an undone event");
    assert!(
        !b.folder.join("big.bin").exists(),
        "no partial file under the real name"
    );
    server.restart().await?;
    let want = blake3_hex(&big);
    wait_for("big.bin arrives after the restart", || async {
        let got = tree_hashes(&b.folder).ok()?;
        (got.get("big.bin") == Some(&want)).then_some(())
    })
    .await?;
    wait_for("cursor past it", || async {
        (status_seq(&b) >= seq).then_some(())
    })
    .await?;
    assert!(temp_files(&b.folder).is_empty(), "temp file left behind");
    rb.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_receiver_side_failure_is_set_aside_visibly_and_retried() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (a, b, id, api) = linked_pair(&server, "receive").await?;
    // In B, `sub` is a symlink: the client refuses to write through it.
    let elsewhere = tempfile::tempdir()?;
    std::os::unix::fs::symlink(elsewhere.path(), b.folder.join("sub"))?;
    let mut rb = b.run_env(&[], &[("VIDSYNC_RETRY_MS", "300")])?;
    a.write("sub/f.txt", b"through a symlink")?;
    a.write("later.txt", b"a later event")?;
    let mut ra = a.run(&[])?;
    wait_for("both posted", || async {
        seq_of(&api, &id, "later.txt").await
    })
    .await?;
    // The later event is applied, the refused one stays visible.
    wait_for("later.txt in B", || async {
        b.folder.join("later.txt").exists().then_some(())
    })
    .await?;
    let st = rb
        .wait_status("error badge naming the path", |s| {
            s["badge"]["kind"] == "error"
                && s["set_aside"]
                    .as_array()
                    .is_some_and(|v| v.iter().any(|x| x["path"] == "sub/f.txt"))
        })
        .await?;
    let error = st["status"]["error"].as_str().unwrap_or("");
    assert!(
        error.contains("sub/f.txt") && error.contains("symlink"),
        "{st}"
    );
    let out = b.ok(&["status"]).await?;
    assert!(out.contains("sub/f.txt"), "vidsync status lists it: {out}");
    assert!(
        elsewhere.path().read_dir()?.next().is_none(),
        "nothing written through the link"
    );
    // Fix the cause: the retry brings the file.
    std::fs::remove_file(b.folder.join("sub"))?;
    wait_for("sub/f.txt after the retry", || async {
        std::fs::read(b.folder.join("sub/f.txt"))
            .ok()
            .filter(|b| b == b"through a symlink")
    })
    .await?;
    rb.wait_status("error cleared", |s| s["badge"]["kind"] == "up_to_date")
        .await?;
    ra.stop().await?;
    rb.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_burst_received_by_a_send_receive_client_is_not_echoed() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (a, b, id, api) = linked_pair(&server, "send-receive").await?;
    let mut rb = b.run(&["--debounce-ms", "50"])?;
    let mut ra = a.run(&["--debounce-ms", "50"])?;
    ra.wait_status("A up", |s| s["badge"]["kind"] == "up_to_date")
        .await?;
    for i in 0..2000 {
        a.write(
            &format!("burst/d{}/f{i}.txt", i % 20),
            format!("file {i}").as_bytes(),
        )?;
    }
    let b_id = client_id(&b)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        // A temp file may vanish under the walk: count again then.
        let n = tree_hashes(&b.folder)
            .map(|t| t.keys().filter(|p| !p.contains(".vidsync-tmp-")).count())
            .unwrap_or(0);
        if n >= 2000 {
            break;
        }
        let posted = events_of(&api, &id).await?.len();
        assert!(
            tokio::time::Instant::now() < deadline,
            "B has {n} files of 2000 ({posted} events posted)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A marker from B: B's loop handles its watcher batches in order, so
    // any echo of the burst would be posted before it.
    b.write("b-marker.txt", b"done")?;
    wait_for("B's marker posted", || async {
        seq_of(&api, &id, "b-marker.txt").await
    })
    .await?;
    let echoes: Vec<String> = events_of(&api, &id)
        .await?
        .iter()
        .filter(|e| e["origin"]["client_id"] == b_id.as_str())
        .filter(|e| e["change"]["path"] != "b-marker.txt")
        .map(|e| e["change"]["path"].to_string())
        .collect();
    assert!(
        echoes.is_empty(),
        "B re-posted {} files: {:?}",
        echoes.len(),
        &echoes[..echoes.len().min(5)]
    );
    ra.stop().await?;
    rb.stop().await?;
    Ok(())
}

fn client_id(c: &ClientDir) -> anyhow::Result<String> {
    let cfg: Value = serde_json::from_slice(&std::fs::read(c.config.path().join("config.json"))?)?;
    cfg["client_id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no client_id in config"))
}

#[tokio::test]
async fn a_file_still_being_written_is_never_logged_half_written() -> anyhow::Result<()> {
    use std::io::Write;
    let server = TestServer::start().await?;
    let (a, _b, id, api) = linked_pair(&server, "receive").await?;
    let mut ra = a.run(&["--debounce-ms", "50"])?;
    ra.wait_status("A up", |s| s["badge"]["kind"] == "up_to_date")
        .await?;
    // Grows for about 1.5 s, never pausing as long as the debounce.
    let path = a.folder.join("growing.bin");
    let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let mut f = std::fs::File::create(&path)?;
    let mut all = Vec::new();
    for _ in 0..150 {
        f.write_all(&chunk)?;
        all.extend_from_slice(&chunk);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(f);
    let want = blake3_hex(&all);
    wait_for("the whole file posted", || async {
        let evs = events_of(&api, &id).await.ok()?;
        evs.iter()
            .any(|e| e["change"]["path"] == "growing.bin" && e["change"]["hash"] == want.as_str())
            .then_some(())
    })
    .await?;
    let versions: Vec<Value> = events_of(&api, &id)
        .await?
        .into_iter()
        .filter(|e| e["change"]["path"] == "growing.bin")
        .map(|e| e["change"]["size"].clone())
        .collect();
    assert_eq!(
        versions,
        vec![Value::from(all.len())],
        "partial versions were logged"
    );
    ra.stop().await?;
    Ok(())
}

#[tokio::test]
async fn status_json_never_goes_backwards() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (a, b, id, api) = linked_pair(&server, "send-receive").await?;
    let mut ra = a.run(&["--debounce-ms", "50"])?;
    let mut rb = b.run(&["--debounce-ms", "50"])?;
    ra.wait_status("A up", |s| s["badge"]["kind"] == "up_to_date")
        .await?;
    for i in 0..1000 {
        a.write(&format!("s/f{i}.txt"), format!("{i}").as_bytes())?;
    }
    let (mut last_a, mut last_b) = (0, 0);
    let head = wait_for("all posted", || async {
        let (_, page) = api.events(&id, u64::MAX / 2).await.ok()?;
        let head = page["head_seq"].as_u64()?;
        (head >= 1000).then_some(head)
    })
    .await?;
    let deadline = tokio::time::Instant::now() + vidsync_e2e::DEADLINE;
    loop {
        let (sa, sb) = (status_seq(&a), status_seq(&b));
        assert!(
            sa >= last_a && sb >= last_b,
            "status.json went back: A {last_a}->{sa}, B {last_b}->{sb}"
        );
        (last_a, last_b) = (sa, sb);
        if sa >= head && sb >= head {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status.json stuck at A {sa}, B {sb} < {head}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    ra.stop().await?;
    rb.stop().await?;
    Ok(())
}
