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
