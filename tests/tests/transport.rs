//! How a client's changes travel (issue 11): up the socket (`files:update`)
//! while it is live, by HTTP when the socket cannot carry a batch — and a
//! batch the socket lost on the way is sent again by HTTP with the same
//! change ids, so the log has each change once.

use serde_json::Value;
use vidsync_e2e::proxy::Proxy;
use vidsync_e2e::{linked_pair, wait_for, Api, ClientDir, TestServer};

const SOCKET_BATCHES: &str = "vidsync_update_requests_total{via=\"socket\"}";
const HTTP_BATCHES: &str = "vidsync_update_requests_total{via=\"http\"}";

async fn count(server: &TestServer, name: &str) -> anyhow::Result<f64> {
    Ok(server.metric(name).await?.unwrap_or(0.0))
}

fn uploaded(v: &Value, path: &str) -> bool {
    v["type"] == "change_uploaded" && v["path"] == path
}

fn remote_path(v: &Value, path: &str) -> bool {
    v["type"] == "remote_event" && v["event"]["change"]["path"] == path
}

/// Each path of the log and how many events it has.
async fn paths_in_log(api: &Api, id: &str) -> anyhow::Result<Vec<(String, usize)>> {
    let mut out: std::collections::BTreeMap<String, usize> = Default::default();
    for e in api.all_events(id).await? {
        *out.entry(e["change"]["path"].as_str().unwrap_or("").to_string())
            .or_default() += 1;
    }
    Ok(out.into_iter().collect())
}

#[tokio::test]
async fn with_the_socket_up_changes_go_up_the_socket() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (a, b, id, api) = linked_pair(&server, "receive").await?;
    let mut ra = a.run(&[])?;
    let mut rb = b.run(&[])?;
    ra.wait_status("A live", |s| s["connection"] == "live")
        .await?;
    rb.wait_status("B live", |s| s["connection"] == "live")
        .await?;
    let http_before = count(&server, HTTP_BATCHES).await?;

    for i in 0..3 {
        a.write(&format!("doc{i}.txt"), format!("text {i}").as_bytes())?;
    }
    for i in 0..3 {
        let path = format!("doc{i}.txt");
        ra.wait_for("uploaded", |v| uploaded(v, &path)).await?;
        rb.wait_for("at B", |v| remote_path(v, &path)).await?;
    }
    assert!(count(&server, SOCKET_BATCHES).await? >= 1.0);
    assert_eq!(
        count(&server, HTTP_BATCHES).await?,
        http_before,
        "a batch went by HTTP while the socket was live"
    );
    assert_eq!(
        paths_in_log(&api, &id).await?,
        vec![
            ("doc0.txt".to_string(), 1),
            ("doc1.txt".to_string(), 1),
            ("doc2.txt".to_string(), 1)
        ]
    );
    ra.stop().await?;
    rb.stop().await?;
    Ok(())
}

/// The websocket dies one way while a batch is on it: the server appends
/// the batch but its ack never arrives. After the ack deadline the client
/// sends the same batch by HTTP, which answers the events of the first
/// append: the log has each change once, and the peer hears each once.
#[tokio::test]
async fn a_batch_whose_websocket_dies_goes_by_http_and_is_logged_once() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let proxy = Proxy::start(([127, 0, 0, 1], server.port).into()).await?;
    let (a, b) = (ClientDir::new()?, ClientDir::new()?);
    let ta = server.add_user("alice").await?;
    let tb = server.add_user("bob").await?;
    a.ok(&["login", "--server", &proxy.url(), "--token", &ta])
        .await?;
    b.ok(&["login", "--server", &server.url, "--token", &tb])
        .await?;
    let id = a
        .ok(&["share", &a.folder.to_string_lossy(), "--name", "p"])
        .await?;
    let code = a.ok(&["invite", &id]).await?;
    b.ok(&[
        "join",
        &code,
        &b.folder.to_string_lossy(),
        "--mode",
        "receive",
    ])
    .await?;
    let api = server.api(&ta);

    let mut ra = a.run_env(
        &["--transport", "websocket-only"],
        &[("VIDSYNC_ACK_TIMEOUT_MS", "1500")],
    )?;
    let mut rb = b.run(&[])?;
    ra.wait_status("A live", |s| s["connection"] == "live")
        .await?;
    rb.wait_status("B live", |s| s["connection"] == "live")
        .await?;
    let (socket_before, http_before) = (
        count(&server, SOCKET_BATCHES).await?,
        count(&server, HTTP_BATCHES).await?,
    );

    proxy.kill_websockets();
    let paths: Vec<String> = (0..5).map(|i| format!("lost/{i}.bin")).collect();
    for p in &paths {
        a.write(p, p.as_bytes())?;
    }
    for p in &paths {
        ra.wait_for("uploaded", |v| uploaded(v, p)).await?;
        rb.wait_for("at B", |v| remote_path(v, p)).await?;
    }
    // The batch did go up the socket (and was appended there), and came
    // again by HTTP.
    assert!(count(&server, SOCKET_BATCHES).await? > socket_before);
    assert!(count(&server, HTTP_BATCHES).await? > http_before);
    let want: Vec<(String, usize)> = paths.iter().map(|p| (p.clone(), 1)).collect();
    assert_eq!(paths_in_log(&api, &id).await?, want);
    // B heard each event once.
    let heard: Vec<&Value> = rb
        .seen
        .iter()
        .filter(|v| v["type"] == "remote_event")
        .collect();
    assert_eq!(heard.len(), paths.len(), "{heard:?}");
    // Nothing else is on its way: A's outbox is empty.
    wait_for("A's outbox to be empty", || async {
        let st = a.status_file()?;
        (st["folders"][0]["queued"] == 0).then_some(())
    })
    .await?;
    ra.stop().await?;
    rb.stop().await?;
    Ok(())
}
