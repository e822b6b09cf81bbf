//! Content sync end to end: receiving folders end up byte-identical to the
//! sender's, concurrent edits keep both versions, a hostile server cannot
//! make the client write outside its folder, large files stream, and a
//! killed download resumes without a partial file under the real name.

use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use vidsync_e2e::{linked_pair, tree_hashes, wait_for, ClientDir, TestServer};

fn without_ignored(t: BTreeMap<String, String>) -> BTreeMap<String, String> {
    t.into_iter()
        .filter(|(p, _)| !p.starts_with(".vidsync-tmp-"))
        .collect()
}

#[tokio::test]
async fn a_thousand_files_converge_after_join_and_after_200_random_changes() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (a, b, id, api) = linked_pair(&server, "receive").await?;
    // B's join above ran before A had anything; unlink nothing, B catches up by run.
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    for i in 0..1000 {
        let dir = format!("d{}/e{}", i % 10, i % 7);
        let size = match i {
            0 | 1 => 20 * 1024 * 1024,
            i if i % 100 == 0 => 1024 * 1024,
            i if i % 97 == 0 => 0,
            _ => rng.random_range(1..16 * 1024),
        };
        let bytes: Vec<u8> = if i % 2 == 0 {
            (0..size).map(|_| rng.random()).collect()
        } else {
            (0..size).map(|k| b"lorem ipsum dolor\n"[k % 18]).collect()
        };
        a.write(
            &format!("{dir}/file{i}.{}", if i % 2 == 0 { "bin" } else { "txt" }),
            &bytes,
        )?;
    }
    let mut ra = a.run(&[])?;
    wait_for("1000 events", || async {
        (api.head_seq(&id).await >= 1000).then_some(())
    })
    .await?;

    // C joins late into an empty folder: `join` brings it to the current state.
    let tc = server.add_user("carol").await?;
    let c = ClientDir::new()?;
    c.ok(&["login", "--server", &server.url, "--token", &tc])
        .await?;
    let code = a.ok(&["invite", &id]).await?;
    let cfolder = c.folder.to_string_lossy().to_string();
    c.ok(&["join", &code, &cfolder, "--mode", "receive"])
        .await?;
    assert_eq!(
        without_ignored(tree_hashes(&c.folder)?),
        tree_hashes(&a.folder)?,
        "C after join"
    );

    // B (joined before anything existed) follows by running.
    let mut rb = b.run(&[])?;
    rb.wait_status("B has everything", |s| s["last_seq"].as_u64() >= Some(1000))
        .await?;
    assert_eq!(
        without_ignored(tree_hashes(&b.folder)?),
        tree_hashes(&a.folder)?,
        "B after run"
    );

    // 200 random creates, updates and deletes in A.
    let mut files: Vec<String> = tree_hashes(&a.folder)?
        .into_keys()
        .filter(|p| !p.starts_with(".vidsync"))
        .collect();
    for k in 0..200 {
        match rng.random_range(0..3) {
            0 => {
                let p = format!("new/n{}/f{k}.dat", k % 5);
                a.write(&p, format!("created {k}").as_bytes())?;
                files.push(p);
            }
            1 if !files.is_empty() => {
                let p = files[rng.random_range(0..files.len())].clone();
                a.write(&p, format!("updated {k}").as_bytes())?;
            }
            _ if !files.is_empty() => {
                let p = files.swap_remove(rng.random_range(0..files.len()));
                std::fs::remove_file(a.folder.join(&p))?;
            }
            _ => {}
        }
    }
    a.write("zz-last.txt", b"the end")?;
    ra.wait_for("last uploaded", |v| {
        v["type"] == "change_uploaded" && v["path"] == "zz-last.txt"
    })
    .await?;
    ra.wait_status("A up to date", |s| s["badge"]["kind"] == "up_to_date")
        .await?;
    let final_head = api.head_seq(&id).await;
    rb.wait_status("B at head", |s| s["last_seq"].as_u64() >= Some(final_head))
        .await?;
    let want = tree_hashes(&a.folder)?;
    assert_eq!(
        without_ignored(tree_hashes(&b.folder)?),
        want,
        "B after 200 changes"
    );
    // Directories emptied by deletes are gone in B too.
    ra.stop().await?;
    rb.stop().await?;
    Ok(())
}

#[tokio::test]
async fn concurrent_edits_while_b_is_offline_keep_both_versions_on_both_sides() -> anyhow::Result<()>
{
    let server = TestServer::start().await?;
    let (a, b, _id, _api) = linked_pair(&server, "send-receive").await?;
    a.write("notes/doc.txt", b"original\n")?;
    let mut ra = a.run(&[])?;
    let mut rb = b.run(&[])?;
    rb.wait_for("doc at B", |v| {
        v["type"] == "applied" && v["path"] == "notes/doc.txt"
    })
    .await?;
    rb.stop().await?;

    // Both edit the same file; B is not running.
    a.write("notes/doc.txt", b"original\nA's line\n")?;
    ra.wait_for("A's edit up", |v| {
        v["type"] == "change_uploaded" && v["path"] == "notes/doc.txt" && v["op"] == "update"
    })
    .await?;
    b.write("notes/doc.txt", b"original\nB's line\n")?;

    let mut rb = b.run(&[])?;
    let applied = rb
        .wait_for("conflict at B", |v| {
            v["type"] == "applied" && !v["conflict"].is_null()
        })
        .await?;
    let copy = applied["conflict"].as_str().unwrap().to_string();
    assert!(
        copy.starts_with("notes/doc.sync-conflict-") && copy.ends_with(".txt"),
        "{copy}"
    );
    ra.wait_for("copy at A", |v| {
        v["type"] == "applied" && v["path"] == copy.as_str()
    })
    .await?;
    rb.wait_status("B says conflict", |s| {
        s["badge"] == serde_json::json!({ "kind": "conflict", "count": 1 })
    })
    .await?;

    for side in [&a, &b] {
        let t = without_ignored(tree_hashes(&side.folder)?);
        assert_eq!(
            std::fs::read(side.folder.join("notes/doc.txt"))?,
            b"original\nA's line\n"
        );
        assert_eq!(
            std::fs::read(side.folder.join(&copy))?,
            b"original\nB's line\n"
        );
        assert_eq!(t.len(), 2, "{t:?}");
    }
    ra.stop().await?;
    rb.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_large_file_streams_with_flat_memory() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (a, b, _id, _api) = linked_pair(&server, "receive").await?;
    // 1 GiB of varied bytes, written in 1 MiB chunks.
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(a.folder.join("big.bin"))?);
        let mut chunk = vec![0u8; 1 << 20];
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        rng.fill(&mut chunk[..]);
        for i in 0..1024u32 {
            chunk[..4].copy_from_slice(&i.to_le_bytes());
            f.write_all(&chunk)?;
        }
        f.flush()?;
    }
    let mut ra = a.run(&[])?;
    let mut rb = b.run(&[])?;
    ra.wait_for("big uploaded", |v| {
        v["type"] == "change_uploaded" && v["path"] == "big.bin"
    })
    .await?;
    rb.wait_for("big applied", |v| {
        v["type"] == "applied" && v["path"] == "big.bin"
    })
    .await?;
    let (pa, pb) = (ra.pid().unwrap(), rb.pid().unwrap());
    let (rss_a, rss_b) = (
        vidsync_e2e::peak_rss(pa).unwrap_or(0),
        vidsync_e2e::peak_rss(pb).unwrap_or(0),
    );
    println!(
        "peak RSS: sender {} MiB, receiver {} MiB",
        rss_a >> 20,
        rss_b >> 20
    );
    assert!(
        rss_a > 0 && rss_a < 100 << 20,
        "sender peak RSS {} MiB",
        rss_a >> 20
    );
    assert!(
        rss_b > 0 && rss_b < 100 << 20,
        "receiver peak RSS {} MiB",
        rss_b >> 20
    );
    assert_eq!(tree_hashes(&b.folder)?, tree_hashes(&a.folder)?);
    ra.stop().await?;
    rb.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_download_killed_midway_leaves_no_partial_file_and_resumes() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (a, b, _id, _api) = linked_pair(&server, "receive").await?;
    let mut bytes = vec![0u8; 300 << 20];
    rand::rngs::StdRng::seed_from_u64(3).fill(&mut bytes[..]);
    a.write("video.raw", &bytes)?;
    let mut ra = a.run(&[])?;
    ra.wait_for("uploaded", |v| {
        v["type"] == "change_uploaded" && v["path"] == "video.raw"
    })
    .await?;

    let mut rb = b.run(&[])?;
    let folder = b.folder.clone();
    let partial = wait_for("a partial download", || {
        let folder = folder.clone();
        async move {
            std::fs::read_dir(&folder).ok()?.flatten().find_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let len = e.metadata().ok()?.len();
                (name.starts_with(".vidsync-tmp-") && len > (8 << 20) && len < (300 << 20))
                    .then_some((e.path(), len))
            })
        }
    })
    .await?;
    rb.kill9().await?;
    assert!(
        !b.folder.join("video.raw").exists(),
        "no partial file under the real name"
    );
    let left = std::fs::metadata(&partial.0)?.len();
    assert!(left >= partial.1, "the partial download stays for resuming");

    let mut rb = b.run(&[])?;
    rb.wait_for("applied after restart", |v| {
        v["type"] == "applied" && v["path"] == "video.raw"
    })
    .await?;
    assert_eq!(std::fs::read(b.folder.join("video.raw"))?, bytes);
    assert!(!partial.0.exists(), "the temp file became the real file");
    ra.stop().await?;
    rb.stop().await?;
    Ok(())
}
