//! Many files with the same content in one directory. A receiver builds
//! several versions at once (a run of live events, or a join's parallel
//! downloads); each must get its own temp file. They used to share one,
//! named by the content alone: the first rename took it away from the
//! others, which were set aside with "No such file or directory".

use vidsync_e2e::{linked_pair, tree_hashes, visible, wait_for, ClientDir, TestServer};

const FLAGS: &[&str] = &["--debounce-ms", "100"];
const FILES: usize = 40;

#[tokio::test]
async fn files_of_one_content_in_one_directory_all_arrive_live_and_on_join() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (a, b, id, api) = linked_pair(&server, "send-receive").await?;
    let (mut ra, mut rb) = (a.run(FLAGS)?, b.run(FLAGS)?);
    for r in [&mut ra, &mut rb] {
        r.wait_status("live", |s| s["connection"] == "live").await?;
    }
    for i in 0..FILES {
        a.write(&format!("same/f{i:02}.txt"), b"the same bytes\n")?;
    }
    wait_for("A's events", || async {
        (api.head_seq(&id).await >= FILES as u64).then_some(())
    })
    .await?;
    let want = visible(tree_hashes(&a.folder)?);
    assert_eq!(want.len(), FILES);
    wait_for("B has every file", || async {
        (visible(tree_hashes(&b.folder).ok()?) == want).then_some(())
    })
    .await?;
    let errors: Vec<_> = rb
        .all_seen()
        .iter()
        .filter(|v| v["type"] == "error")
        .collect();
    assert!(errors.is_empty(), "B set events aside: {errors:?}");

    // A late joiner downloads them several at a time.
    let tc = server.add_user("carol").await?;
    let c = ClientDir::new()?;
    c.ok(&["login", "--server", &server.url, "--token", &tc])
        .await?;
    let code = a.ok(&["invite", &id]).await?;
    c.ok(&[
        "join",
        &code,
        &c.folder.to_string_lossy(),
        "--mode",
        "receive",
    ])
    .await?;
    assert_eq!(
        visible(tree_hashes(&c.folder)?),
        want,
        "the join brought every file over"
    );
    ra.stop().await?;
    rb.stop().await?;
    Ok(())
}
