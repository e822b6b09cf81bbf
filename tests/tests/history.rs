//! History, restore, rewind and undo from the CLI, end to end with two
//! real clients running: a rewind after a mass delete brings every folder
//! back byte-identical and shows in the log as new events; `undo --client`
//! undoes one client's changes and keeps the others'; `history` lists a
//! file's versions and `restore` brings one back.

use std::collections::BTreeMap;

use vidsync_e2e::{linked_pair, tree_hashes, visible, wait_for, ClientDir, TestServer};

const FLAGS: &[&str] = &["--debounce-ms", "100"];

/// Waits until `c`'s folder is exactly `want`.
async fn until_tree(
    what: &str,
    c: &ClientDir,
    want: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    wait_for(what, || async {
        (visible(tree_hashes(&c.folder).ok()?) == *want).then_some(())
    })
    .await
}

fn client_id(c: &ClientDir) -> anyhow::Result<String> {
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.config.path().join("config.json"))?)?;
    Ok(cfg["client_id"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn rewind_after_500_deletes_and_20_edits_brings_every_folder_back() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (a, b, id, api) = linked_pair(&server, "send-receive").await?;
    for i in 0..520 {
        a.write(
            &format!("d{}/f{i}.txt", i % 10),
            format!("file {i}\n").as_bytes(),
        )?;
    }
    let (mut ra, mut rb) = (a.run(FLAGS)?, b.run(FLAGS)?);
    wait_for("520 events", || async {
        (api.head_seq(&id).await >= 520).then_some(())
    })
    .await?;
    let before = tree_hashes(&a.folder)?;
    until_tree("B has the 520 files", &b, &before).await?;
    let point = api.head_seq(&id).await;

    // The accident: 500 deletes and 20 edits.
    for i in 0..500 {
        std::fs::remove_file(a.folder.join(format!("d{}/f{i}.txt", i % 10)))?;
    }
    for i in 500..520 {
        a.write(
            &format!("d{}/f{i}.txt", i % 10),
            format!("edited {i}\n").as_bytes(),
        )?;
    }
    wait_for("the accident's 520 events", || async {
        (api.head_seq(&id).await >= point + 520).then_some(())
    })
    .await?;
    let after = tree_hashes(&a.folder)?;
    assert_eq!(after.len(), 20);
    until_tree("B has the accident", &b, &after).await?;
    let accident_head = api.head_seq(&id).await;

    let to = point.to_string();
    // A dry run says what would change and changes nothing.
    let dry = a
        .ok(&["rewind", "--project", &id, "--to", &to, "--dry-run"])
        .await?;
    assert!(dry.contains("520 path(s) to change"), "{dry}");
    // Over 100 paths with no terminal to ask on and no --yes: refused.
    let asked = a.cmd(&["rewind", "--project", &id, "--to", &to]).await?;
    assert!(
        !asked.ok && asked.stderr.contains("--yes"),
        "{}",
        asked.stderr
    );
    assert_eq!(api.head_seq(&id).await, accident_head);

    let done = a
        .ok(&["rewind", "--project", &id, "--to", &to, "--yes"])
        .await?;
    assert!(done.contains("restored 520 path(s)"), "{done}");
    until_tree("A back as before", &a, &before).await?;
    until_tree("B back as before", &b, &before).await?;
    // The log keeps the past and shows the rewind as 520 new events by A.
    let events = api.all_events(&id).await?;
    assert_eq!(events.len() as u64, accident_head + 520);
    let by = format!("{}:restore", client_id(&a)?);
    for e in &events[accident_head as usize..] {
        assert_eq!(e["origin"]["client_id"], by.as_str());
    }
    // Neither folder posted the restored files back as changes of its own.
    assert_eq!(api.head_seq(&id).await, accident_head + 520);
    ra.stop().await?;
    rb.stop().await?;
    Ok(())
}

#[tokio::test]
async fn undo_client_reverts_its_changes_keeps_others_and_history_restores_one_file(
) -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (a, b, id, api) = linked_pair(&server, "send-receive").await?;
    for i in 0..30 {
        a.write(&format!("f{i}.txt"), format!("v0 {i}\n").as_bytes())?;
    }
    let (mut ra, mut rb) = (a.run(FLAGS)?, b.run(FLAGS)?);
    wait_for("30 events", || async {
        (api.head_seq(&id).await >= 30).then_some(())
    })
    .await?;
    until_tree("B has the 30 files", &b, &tree_hashes(&a.folder)?).await?;
    let point = api.head_seq(&id).await;

    // B's burst: 10 deletes and 5 edits. Then A changes two files of its own.
    for i in 0..10 {
        std::fs::remove_file(b.folder.join(format!("f{i}.txt")))?;
    }
    for i in 10..15 {
        b.write(&format!("f{i}.txt"), b"encrypted!")?;
    }
    wait_for("B's 15 events", || async {
        (api.head_seq(&id).await >= point + 15).then_some(())
    })
    .await?;
    until_tree("A has B's burst", &a, &tree_hashes(&b.folder)?).await?;
    a.write("f20.txt", b"A's own later edit\n")?;
    a.write("f10.txt", b"A fixed this one by hand\n")?;
    wait_for("A's 2 events", || async {
        (api.head_seq(&id).await >= point + 17).then_some(())
    })
    .await?;
    until_tree("B has A's edits", &b, &tree_hashes(&a.folder)?).await?;

    let b_client = client_id(&b)?;
    let out = a
        .ok(&[
            "undo",
            "--project",
            &id,
            "--client",
            &b_client,
            "--since",
            &point.to_string(),
        ])
        .await?;
    assert!(out.contains("keep       f10.txt"), "{out}");
    let mut want = BTreeMap::new();
    for i in 0..30 {
        let text = match i {
            10 => "A fixed this one by hand\n".to_string(),
            20 => "A's own later edit\n".to_string(),
            i => format!("v0 {i}\n"),
        };
        want.insert(
            format!("f{i}.txt"),
            blake3::hash(text.as_bytes()).to_hex().to_string(),
        );
    }
    until_tree("A after undo", &a, &want).await?;
    until_tree("B after undo", &b, &want).await?;

    // history lists f20's versions, newest first, with their origin.
    let f20 = a.folder.join("f20.txt").to_string_lossy().to_string();
    let hist = a.ok(&["history", &f20, "--json"]).await?;
    let versions: Vec<serde_json::Value> = serde_json::from_str(&hist)?;
    assert_eq!(versions.len(), 2, "{hist}");
    assert!(versions[0]["seq"].as_u64() > versions[1]["seq"].as_u64());
    assert_eq!(versions[0]["origin"]["client_id"], client_id(&a)?.as_str());
    let first = versions[1]["seq"].as_u64().unwrap_or(0).to_string();
    // restore it to its first version: both folders follow.
    a.ok(&["restore", &f20, "--at", &first]).await?;
    want.insert(
        "f20.txt".into(),
        blake3::hash(b"v0 20\n").to_hex().to_string(),
    );
    until_tree("A after restore", &a, &want).await?;
    until_tree("B after restore", &b, &want).await?;
    // A path outside every linked folder: a clear error.
    let outside = a.cmd(&["history", "/etc/hostname"]).await?;
    assert!(
        !outside.ok && outside.stderr.contains("not inside a linked folder"),
        "{}",
        outside.stderr
    );
    ra.stop().await?;
    rb.stop().await?;
    Ok(())
}
