//! A file the engine has just placed (a download), renamed or deleted by
//! the user before the watcher's debounce window is over. The old name must
//! still be looked at (the convergence test found this: seed 99122 left a
//! renamed file on the server that one client had deleted, when the
//! debouncer, notify-debouncer-full, folded such a file's events into their
//! net effect — a rename reported under the new name only, a delete not at
//! all).
//!
//! B runs with a 3 s debounce so that its rename lands inside the window
//! however loaded the machine is; A is a plain send-receive peer.

use std::collections::BTreeMap;

use serde_json::Value;
use vidsync_e2e::{linked_pair, tree_hashes, visible, wait_for, ClientDir, TestServer};

fn applied(v: &Value, path: &str) -> bool {
    v["type"] == "applied" && v["path"] == path
}

fn hash(b: &[u8]) -> String {
    blake3::hash(b).to_hex().to_string()
}

async fn same_tree(
    dir: &ClientDir,
    want: BTreeMap<String, String>,
    what: &str,
) -> anyhow::Result<()> {
    wait_for(what, || {
        let now = tree_hashes(&dir.folder).map(visible).ok();
        let want = want.clone();
        async move { (now == Some(want)).then_some(()) }
    })
    .await
}

#[tokio::test]
async fn a_just_downloaded_file_renamed_at_once_is_renamed_everywhere() -> anyhow::Result<()> {
    vidsync_e2e::init_logs();
    let server = TestServer::start().await?;
    let (a, b, _id, _api) = linked_pair(&server, "send-receive").await?;
    let mut ra = a.run(&[])?;
    let mut rb = b.run(&["--debounce-ms", "3000"])?;
    rb.wait_status("B live", |s| s["connection"] == "live")
        .await?;
    ra.wait_status("A live", |s| s["connection"] == "live")
        .await?;

    a.write("doc.txt", b"from A")?;
    rb.wait_for("doc.txt placed at B", |v| applied(v, "doc.txt"))
        .await?;
    std::fs::rename(b.folder.join("doc.txt"), b.folder.join("moved.txt"))?;

    let want = BTreeMap::from([("moved.txt".to_string(), hash(b"from A"))]);
    same_tree(&a, want.clone(), "A holds moved.txt only").await?;
    same_tree(&b, want, "B holds moved.txt only").await?;
    ra.stop().await?;
    rb.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_just_downloaded_file_renamed_then_deleted_is_deleted_everywhere() -> anyhow::Result<()> {
    vidsync_e2e::init_logs();
    let server = TestServer::start().await?;
    let (a, b, id, api) = linked_pair(&server, "send-receive").await?;
    let mut ra = a.run(&[])?;
    let mut rb = b.run(&["--debounce-ms", "3000"])?;
    rb.wait_status("B live", |s| s["connection"] == "live")
        .await?;
    ra.wait_status("A live", |s| s["connection"] == "live")
        .await?;

    a.write("doc.txt", b"from A")?;
    rb.wait_for("doc.txt placed at B", |v| applied(v, "doc.txt"))
        .await?;
    std::fs::rename(b.folder.join("doc.txt"), b.folder.join("moved.txt"))?;
    std::fs::remove_file(b.folder.join("moved.txt"))?;

    same_tree(&a, BTreeMap::new(), "A's folder empty").await?;
    let last = api.all_events(&id).await?;
    let last = last.last().map(|e| e["change"].clone());
    assert_eq!(
        last.as_ref().map(|c| (c["path"].clone(), c["op"].clone())),
        Some(("doc.txt".into(), "delete".into())),
        "the log ends with doc.txt deleted: {last:?}"
    );
    ra.stop().await?;
    rb.stop().await?;
    Ok(())
}

/// A path the engine has just written (a remote version applied) gets a
/// local file renamed over it within the debounce: both changes go out —
/// the path's new bytes and the removal of the renamed file. (The desktop
/// conflict test's "Keep mine" does exactly this with a conflict copy.)
#[tokio::test]
async fn a_file_renamed_over_a_just_placed_path_sends_both_changes() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (a, b, _id, _api) = linked_pair(&server, "send-receive").await?;
    a.ok(&["set", "--debounce-ms", "3000"]).await?;
    let mut ra = a.run(&[])?;
    let mut rb = b.run(&["--debounce-ms", "50"])?;
    a.write("keep.txt", b"mine\n")?;
    a.write("f.txt", b"base\n")?;
    wait_for("both at B", || async {
        (std::fs::read(b.folder.join("keep.txt")).ok()? == b"mine\n"
            && std::fs::read(b.folder.join("f.txt")).ok()? == b"base\n")
            .then_some(())
    })
    .await?;
    // B changes f.txt; A applies it (A's engine has just written f.txt).
    b.write("f.txt", b"theirs\n")?;
    wait_for("B's version at A", || async {
        (std::fs::read(a.folder.join("f.txt")).ok()? == b"theirs\n").then_some(())
    })
    .await?;
    // At once, A's user puts keep.txt in f.txt's place.
    std::fs::rename(a.folder.join("keep.txt"), a.folder.join("f.txt"))?;
    wait_for("A's rename at B", || async {
        (std::fs::read(b.folder.join("f.txt")).ok()? == b"mine\n"
            && !b.folder.join("keep.txt").exists())
        .then_some(())
    })
    .await?;
    ra.stop().await?;
    rb.stop().await?;
    Ok(())
}

/// The desktop conflict flow with the CLI: both save f.txt at once, the
/// slow sender (3 s debounce) ends with the other's version and a conflict
/// copy of its own; "keep mine" renames the copy over f.txt. The other
/// side gets both: f.txt with the copy's bytes, and the copy gone.
#[tokio::test]
async fn keep_mine_after_a_conflict_sends_the_file_and_the_copy_s_removal() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (a, b, _id, _api) = linked_pair(&server, "send-receive").await?;
    a.ok(&["set", "--debounce-ms", "3000"]).await?;
    let mut ra = a.run(&[])?;
    let mut rb = b.run(&["--debounce-ms", "50"])?;
    a.write("f.txt", b"base\n")?;
    wait_for("f at B", || async {
        (std::fs::read(b.folder.join("f.txt")).ok()? == b"base\n").then_some(())
    })
    .await?;
    a.write("f.txt", b"A's version\n")?;
    b.write("f.txt", b"B's version\n")?;
    let copy = wait_for("A's conflict copy at B", || async {
        std::fs::read_dir(&b.folder)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .find(|n| n.contains(".sync-conflict-"))
    })
    .await?;
    wait_for("the copy at A too", || async {
        a.folder.join(&copy).exists().then_some(())
    })
    .await?;
    a.ok(&[
        "resolve",
        &a.folder.join(&copy).to_string_lossy(),
        "--keep",
        "mine",
    ])
    .await?;
    wait_for("A's version in place at B, the copy gone", || async {
        (std::fs::read(b.folder.join("f.txt")).ok()? == b"A's version\n"
            && !b.folder.join(&copy).exists())
        .then_some(())
    })
    .await?;
    ra.stop().await?;
    rb.stop().await?;
    Ok(())
}
