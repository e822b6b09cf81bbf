//! Two people save one file at once (issue 9, item 2): with `base_hash`
//! and the server's 409, both folders end identical and both versions
//! survive, one of them as a conflict copy.

use vidsync_e2e::{linked_pair, tree_hashes, visible, wait_for, TestServer};

#[tokio::test]
async fn two_writers_at_once_end_identical_with_both_versions() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (a, b, _id, _api) = linked_pair(&server, "send-receive").await?;
    let mut ra = a.run(&["--debounce-ms", "50"])?;
    let mut rb = b.run(&["--debounce-ms", "50"])?;
    ra.wait_status("A up", |s| s["connection"] == "live")
        .await?;
    rb.wait_status("B up", |s| s["connection"] == "live")
        .await?;
    for trial in 0..10 {
        let name = format!("f{trial}.txt");
        let (va, vb) = (
            format!("A's version {trial}"),
            format!("B's version {trial}"),
        );
        a.write(&name, va.as_bytes())?;
        b.write(&name, vb.as_bytes())?;
        let (ha, hb) = (
            blake3::hash(va.as_bytes()).to_hex().to_string(),
            blake3::hash(vb.as_bytes()).to_hex().to_string(),
        );
        let tree = wait_for(
            &format!("trial {trial}: identical folders with both versions"),
            || async {
                let ta = visible(tree_hashes(&a.folder).ok()?);
                let tb = visible(tree_hashes(&b.folder).ok()?);
                let both = ta.values().any(|h| *h == ha) && ta.values().any(|h| *h == hb);
                (ta == tb && both).then_some(ta)
            },
        )
        .await?;
        let copies = tree
            .keys()
            .filter(|p| p.starts_with(&format!("f{trial}.sync-conflict-")))
            .count();
        assert_eq!(copies, 1, "trial {trial}: one conflict copy: {tree:?}");
    }
    ra.stop().await?;
    rb.stop().await?;
    Ok(())
}

/// A 409 makes a client take the current version ahead of its feed. If the
/// user then deletes the file again and that delete is accepted, the taken
/// event arriving later through the feed must not put the file back (it
/// did: the folder kept the file, the log said deleted, and both sides
/// called it agreed — found by the convergence test, seed 741455 under
/// load). A's feed here is only the event log, polled hourly until A
/// restarts after its second delete; then the taken event comes through the
/// feed.
#[tokio::test]
async fn a_version_taken_after_a_conflict_is_not_applied_again_by_the_feed() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (a, b, id, api) = linked_pair(&server, "send-receive").await?;
    a.ok(&[
        "set",
        "--transport",
        "http-only",
        "--poll-interval-ms",
        "3600000",
    ])
    .await?;
    let mut ra = a.run(&["--debounce-ms", "50"])?;
    let mut rb = b.run(&["--debounce-ms", "50"])?;
    a.write("f.txt", b"one")?;
    wait_for("f at B", || async {
        (std::fs::read(b.folder.join("f.txt")).ok()? == b"one").then_some(())
    })
    .await?;
    b.write("f.txt", b"two")?;
    wait_for("B's edit logged", || async {
        (api.head_seq(&id).await == 2).then_some(())
    })
    .await?;
    // A has not heard of B's edit: its delete meets a 409, and A takes
    // B's version (the file comes back with B's bytes).
    std::fs::remove_file(a.folder.join("f.txt"))?;
    wait_for("B's version taken at A", || async {
        (std::fs::read(a.folder.join("f.txt")).ok()? == b"two").then_some(())
    })
    .await?;
    assert_eq!(api.head_seq(&id).await, 2, "the stale delete was refused");
    // Deleted again, against the version A took: accepted.
    std::fs::remove_file(a.folder.join("f.txt"))?;
    wait_for("A's delete logged", || async {
        (api.head_seq(&id).await == 3).then_some(())
    })
    .await?;
    // The feed brings B's edit (seq 2) and A's delete (seq 3): A restarts
    // polling often.
    ra.stop().await?;
    a.ok(&["set", "--poll-interval-ms", "200"]).await?;
    let mut ra = a.run(&["--debounce-ms", "50"])?;
    ra.wait_status("A took in seq 3", |s| s["last_seq"] == 3)
        .await?;
    wait_for("f gone at B", || async {
        (!b.folder.join("f.txt").exists()).then_some(())
    })
    .await?;
    assert!(
        !a.folder.join("f.txt").exists(),
        "the taken version came back through the feed after A deleted it"
    );
    let log = api.all_events(&id).await?;
    assert_eq!(log.len(), 3, "nothing more was posted: {log:?}");
    ra.stop().await?;
    rb.stop().await?;
    Ok(())
}
