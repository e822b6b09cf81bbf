//! A full disk never yields a false acknowledgement (issue 8, items 1–2).
//!
//! The server runs with its data dir on a real 24 MiB tmpfs that the test
//! fills. Every change answered 200 must be in the log — also after a
//! `kill -9` and a restart — every refusal is 507 `insufficient_storage` with
//! the JSON error body, and once space is freed the very next post succeeds
//! without a restart. Needs root for `mount` (CI has it); elsewhere the test
//! says why it skips.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::Value;
use vidsync_e2e::tmpfs::{MountError, Tmpfs};
use vidsync_e2e::{create_change, TestServer};

fn mount_or_skip(size_mib: u32) -> Option<Tmpfs> {
    match Tmpfs::mount(size_mib) {
        Ok(t) => Some(t),
        Err(e @ MountError::NotPermitted(_)) => {
            eprintln!("SKIPPED: {e}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// (seq → path) of every event a 200 answered.
fn acknowledged(body: &Value, into: &mut BTreeMap<u64, String>) {
    for ev in body["events"].as_array().into_iter().flatten() {
        let seq = ev["seq"].as_u64().expect("seq");
        let path = ev["change"]["path"].as_str().expect("path").to_string();
        into.insert(seq, path);
    }
}

fn logged(events: &[Value]) -> BTreeMap<u64, String> {
    events
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().expect("seq"),
                e["change"]["path"].as_str().expect("path").to_string(),
            )
        })
        .collect()
}

fn assert_disk_full_body(status: u16, body: &Value) {
    assert_eq!(status, 507, "refusal on a full disk: {body}");
    assert_eq!(body["error"]["code"], "insufficient_storage", "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn full_disk_never_acknowledges_what_it_did_not_store() -> Result<()> {
    let Some(fs) = mount_or_skip(24) else {
        return Ok(());
    };
    let mut server = TestServer::start_in(Some(fs.path()), &["--rate-limit", "0"]).await?;
    let token = server.add_user("alice").await?;
    let api = server.api(&token);
    let project = api.new_project("full").await?;
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    let (s, body) = api
        .update(&project, "c", vec![create_change("before", b"x", None)])
        .await?;
    assert_eq!(s, 200, "{body}");
    acknowledged(&body, &mut acked);

    fs.fill("filler")?;
    let mut refused = 0;
    // Four posters at once, so every pooled connection meets the full disk.
    for round in 0..60 {
        let api = &api;
        let project = &project;
        let posts = (0..4).map(|w| async move {
            let changes = (0..20)
                .map(|i| {
                    let path = format!("r{round}/w{w}/{i}-{}", "x".repeat(120));
                    create_change(&path, path.as_bytes(), None)
                })
                .collect();
            api.update(project, &format!("w{w}"), changes).await
        });
        for reply in futures_util::future::join_all(posts).await {
            let (s, body) = reply?;
            if s == 200 {
                acknowledged(&body, &mut acked);
            } else {
                assert_disk_full_body(s, &body);
                refused += 1;
            }
        }
    }
    assert!(
        refused > 0,
        "the disk never filled: the test proves nothing"
    );
    // Reads still work, and everything acknowledged is there.
    assert_eq!(
        logged(&api.all_events(&project).await?),
        acked,
        "log vs 200s while full"
    );

    // Space comes back: the very next post is stored, no restart.
    std::fs::remove_file(fs.path().join("filler"))?;
    let (s, body) = api
        .update(&project, "c", vec![create_change("after", b"y", None)])
        .await?;
    assert_eq!(s, 200, "first post after freeing space: {body}");
    acknowledged(&body, &mut acked);
    let head = body["head_seq"].as_u64().expect("head");
    assert_eq!(head, acked.len() as u64, "seq stays gap-free");

    // Nothing acknowledged lived only in memory.
    server.kill9().await?;
    server.restart().await?;
    let api = server.api(&token);
    let events = api.all_events(&project).await?;
    assert_eq!(
        logged(&events),
        acked,
        "log vs 200s after kill -9 and restart"
    );
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=head).collect::<Vec<_>>());
    server.kill9().await?;
    Ok(())
}

/// A 1 MiB upload onto a disk with less room than that is refused (507),
/// never stored cut short; once there is room the same upload is stored
/// whole and served whole.
#[tokio::test]
async fn blob_upload_on_a_nearly_full_disk_is_whole_or_refused() -> Result<()> {
    let Some(fs) = mount_or_skip(24) else {
        return Ok(());
    };
    let mut server = TestServer::start_in(Some(fs.path()), &[]).await?;
    let token = server.add_user("alice").await?;
    let api = server.api(&token);
    let project = api.new_project("blobs").await?;
    let bytes: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let hash = blake3::hash(&bytes).to_hex().to_string();
    let url = format!("/api/projects/{project}/blobs/{hash}");

    // Leave about 600 KiB: less than the blob.
    let total = fs.fill("filler")?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(fs.path().join("filler"))?
        .set_len(total.saturating_sub(600 * 1024))?;
    for _ in 0..3 {
        let (s, body) = api.put_blob(&project, &hash, bytes.clone()).await?;
        assert_disk_full_body(s, &body);
        let (s, _) = api.get(&url).await?;
        assert_eq!(s, 404, "a refused upload is not served");
    }

    std::fs::remove_file(fs.path().join("filler"))?;
    let (s, body) = api.put_blob(&project, &hash, bytes.clone()).await?;
    assert_eq!(s, 201, "{body}");
    let got = api
        .http
        .get(api.url(&url))
        .bearer_auth(&token)
        .send()
        .await?
        .bytes()
        .await?;
    assert_eq!(got.len(), bytes.len());
    assert!(got.as_ref() == bytes.as_slice());
    server.kill9().await?;
    Ok(())
}
