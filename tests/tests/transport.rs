//! How a client's changes travel (issue 11): up the socket (`files:update`)
//! while it is live, by HTTP when the socket cannot carry a batch — and a
//! batch the socket lost on the way is sent again by HTTP with the same
//! change ids, so the log has each change once.

use serde_json::Value;
use vidsync_e2e::proxy::Proxy;
use vidsync_e2e::{linked_pair, linked_pair_at, wait_for, Api, ClientDir, TestServer};

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
    let (a, b, id, api) = linked_pair_at(&server, &proxy.url(), &server.url, "receive").await?;

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

/// What the server saw of one client's connection, from `/metrics`.
#[derive(Debug, PartialEq)]
struct Seen {
    /// Engine.IO sessions opened on polling / on websocket, upgrades.
    polling_opens: f64,
    websocket_opens: f64,
    upgrades: f64,
    /// Open sockets on websocket / polling now.
    on_websocket: f64,
    on_polling: f64,
}

async fn seen(server: &TestServer) -> anyhow::Result<Seen> {
    Ok(Seen {
        polling_opens: count(
            server,
            "vidsync_engineio_opens_total{transport=\"polling\"}",
        )
        .await?,
        websocket_opens: count(
            server,
            "vidsync_engineio_opens_total{transport=\"websocket\"}",
        )
        .await?,
        upgrades: count(server, "vidsync_engineio_upgrades_total").await?,
        on_websocket: count(server, "vidsync_socket_transport{transport=\"websocket\"}").await?,
        on_polling: count(server, "vidsync_socket_transport{transport=\"polling\"}").await?,
    })
}

/// One client with preference `pref` (set with `vidsync set --transport`)
/// writes a file; returns what the server saw of its connection and how
/// many batches came up the socket and by HTTP. `proxy_kills_websockets`:
/// the client reaches the server through a proxy that refuses websockets.
async fn run_with(pref: &str, proxy_kills_websockets: bool) -> anyhow::Result<(Seen, f64, f64)> {
    let server = TestServer::start().await?;
    let proxy = Proxy::start(([127, 0, 0, 1], server.port).into()).await?;
    if proxy_kills_websockets {
        proxy.kill_websockets();
    }
    let a = ClientDir::new()?;
    let token = server.add_user("alice").await?;
    a.ok(&["login", "--server", &proxy.url(), "--token", &token])
        .await?;
    let id = a
        .ok(&["share", &a.folder.to_string_lossy(), "--name", "p"])
        .await?;
    a.ok(&["set", "--transport", pref]).await?;
    let http_before = count(&server, HTTP_BATCHES).await?;
    let mut ra = a.run(&[])?;
    let want = if pref == "http-only" || pref == "polling-only" {
        "polling"
    } else {
        "live"
    };
    ra.wait_status(want, |s| s["connection"] == want).await?;
    a.write("note.txt", pref.as_bytes())?;
    ra.wait_for("uploaded", |v| uploaded(v, "note.txt")).await?;
    let api = server.api(&token);
    assert_eq!(
        paths_in_log(&api, &id).await?,
        vec![("note.txt".to_string(), 1)]
    );
    let seen = seen(&server).await?;
    let socket = count(&server, SOCKET_BATCHES).await?;
    let http = count(&server, HTTP_BATCHES).await? - http_before;
    ra.stop().await?;
    Ok((seen, socket, http))
}

#[tokio::test]
async fn websocket_only_opens_a_websocket_and_posts_on_it() -> anyhow::Result<()> {
    let (seen, socket, http) = run_with("websocket-only", false).await?;
    assert_eq!(
        seen,
        Seen {
            polling_opens: 0.0,
            websocket_opens: 1.0,
            upgrades: 0.0,
            on_websocket: 1.0,
            on_polling: 0.0
        }
    );
    assert_eq!((socket, http), (1.0, 0.0));
    Ok(())
}

#[tokio::test]
async fn websocket_first_opens_a_websocket_else_polls() -> anyhow::Result<()> {
    let (seen, socket, http) = run_with("websocket-first", false).await?;
    assert_eq!(
        (seen.websocket_opens, seen.polling_opens, seen.on_websocket),
        (1.0, 0.0, 1.0),
        "{seen:?}"
    );
    assert_eq!((socket, http), (1.0, 0.0));
    // Where websockets cannot pass, the socket runs on Engine.IO polling,
    // and changes still go up it.
    let (seen, socket, http) = run_with("websocket-first", true).await?;
    assert_eq!(
        (seen.polling_opens, seen.on_polling, seen.on_websocket),
        (1.0, 1.0, 0.0),
        "{seen:?}"
    );
    assert_eq!((socket, http), (1.0, 0.0));
    Ok(())
}

#[tokio::test]
async fn http_first_opens_on_polling_and_upgrades() -> anyhow::Result<()> {
    let (seen, socket, http) = run_with("http-first", false).await?;
    assert_eq!(
        seen,
        Seen {
            polling_opens: 1.0,
            websocket_opens: 0.0,
            upgrades: 1.0,
            on_websocket: 1.0,
            on_polling: 0.0
        }
    );
    assert_eq!((socket, http), (1.0, 0.0));
    // No websocket: it stays on polling (rust_engineio opens a second
    // polling session after the failed upgrade).
    let (seen, socket, _) = run_with("http-first", true).await?;
    assert!(seen.polling_opens >= 1.0, "{seen:?}");
    assert_eq!((seen.on_polling, seen.on_websocket), (1.0, 0.0), "{seen:?}");
    assert_eq!(socket, 1.0);
    Ok(())
}

#[tokio::test]
async fn http_only_opens_no_socket_and_posts_by_http() -> anyhow::Result<()> {
    // `polling-only` is the old name of `http-only`.
    for pref in ["http-only", "polling-only"] {
        let (seen, socket, http) = run_with(pref, false).await?;
        assert_eq!(
            seen,
            Seen {
                polling_opens: 0.0,
                websocket_opens: 0.0,
                upgrades: 0.0,
                on_websocket: 0.0,
                on_polling: 0.0
            }
        );
        assert_eq!((socket, http), (0.0, 1.0));
    }
    Ok(())
}

/// `reconnecting` with its detail, as `status.json` and `status --json`
/// carry it: the try's number and a next-try time in the near future.
fn reconnecting(s: &Value) -> bool {
    let detail = &s["connection_detail"];
    let next = detail["next_try_at"].as_str().and_then(|t| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
    });
    s["connection"] == "reconnecting"
        && detail["attempt"].as_u64().is_some_and(|n| n >= 1)
        // Back-off is at most 8 s (plus jitter and a loaded machine).
        && next.is_some_and(|t| t - time::OffsetDateTime::now_utc() < time::Duration::seconds(20))
}

#[tokio::test]
async fn a_server_that_is_down_shows_reconnecting_then_live() -> anyhow::Result<()> {
    let mut server = TestServer::start().await?;
    let (a, _b, _id, _api) = linked_pair(&server, "receive").await?;
    a.ok(&["set", "--poll-interval-ms", "300"]).await?;
    let mut ra = a.run(&[])?;
    ra.wait_status("A live", |s| s["connection"] == "live")
        .await?;
    server.stop().await?;
    let st = ra.wait_status("A reconnecting", reconnecting).await?;
    // Each try is counted: a later one has a higher number.
    let first = st["status"]["connection_detail"]["attempt"]
        .as_u64()
        .unwrap_or(u64::MAX);
    ra.wait_status("a later try", |s| {
        reconnecting(s) && s["connection_detail"]["attempt"].as_u64() > Some(first)
    })
    .await?;
    // `vidsync status` says it too, in both forms.
    let json: Value = serde_json::from_str(&a.ok(&["status", "--json"]).await?)?;
    assert!(reconnecting(&json[0]), "{json}");
    let text = a.ok(&["status"]).await?;
    assert!(text.contains("reconnecting in "), "{text}");

    server.restart().await?;
    let st = ra
        .wait_status("A live again", |s| s["connection"] == "live")
        .await?;
    assert!(st["status"]["connection_detail"].is_null(), "{st}");
    ra.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_revoked_token_fails_and_is_not_tried_again() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (a, _b, _id, _api) = linked_pair(&server, "receive").await?;
    a.ok(&["set", "--poll-interval-ms", "300"]).await?;
    let mut ra = a.run(&[])?;
    ra.wait_status("A live", |s| s["connection"] == "live")
        .await?;
    server.admin(&["user", "revoke", "alice"]).await?;
    let st = ra
        .wait_status("A failed", |s| s["connection"] == "failed")
        .await?;
    let detail = &st["status"]["connection_detail"];
    assert_eq!(detail["will_retry"], false, "{st}");
    // The socket's connect_error or the poller's 401, whichever came first.
    assert!(
        detail["reason"]
            .as_str()
            .is_some_and(|r| r.contains("unauthorized") || r.contains("revoked token")),
        "{st}"
    );
    let text = a.ok(&["status"]).await?;
    assert!(text.contains("failed, not retrying"), "{text}");
    // No retry loop: over a window longer than the first back-off steps
    // (0.5 + 1 + 2 s), no socket is opened and the token is not presented
    // again (neither by the socket nor by the event-log poller).
    let opens = |s: Seen| s.polling_opens + s.websocket_opens;
    let refusals = || async {
        let http = count(&server, "vidsync_token_refusals_total{via=\"http\"}").await?;
        let socket = count(&server, "vidsync_token_refusals_total{via=\"socket\"}").await?;
        anyhow::Ok((http, socket))
    };
    let (opens_before, refusals_before) = (opens(seen(&server).await?), refusals().await?);
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(
        opens(seen(&server).await?),
        opens_before,
        "the socket was tried again"
    );
    assert_eq!(
        refusals().await?,
        refusals_before,
        "the token was tried again"
    );
    assert_eq!(
        a.status_file()
            .map(|s| s["folders"][0]["connection"].clone()),
        Some(Value::from("failed"))
    );
    ra.stop().await?;
    Ok(())
}

/// A websocket that stops answering (the proxy drops all the server sends
/// on it, pings included, while the TCP connection stays open) is counted
/// as down within the server's ping interval + ping timeout.
#[tokio::test]
async fn a_silent_websocket_is_down_within_ping_interval_plus_timeout() -> anyhow::Result<()> {
    let (interval_ms, timeout_ms) = (1000u64, 1000u64);
    let server = TestServer::start_with(&[
        "--ping-interval-ms",
        &interval_ms.to_string(),
        "--ping-timeout-ms",
        &timeout_ms.to_string(),
    ])
    .await?;
    let proxy = Proxy::start(([127, 0, 0, 1], server.port).into()).await?;
    let a = ClientDir::new()?;
    let token = server.add_user("alice").await?;
    a.ok(&["login", "--server", &proxy.url(), "--token", &token])
        .await?;
    a.ok(&["share", &a.folder.to_string_lossy(), "--name", "p"])
        .await?;
    a.ok(&["set", "--poll-interval-ms", "200"]).await?;
    let mut ra = a.run(&["--transport", "websocket-only"])?;
    ra.wait_status("A live", |s| s["connection"] == "live")
        .await?;
    ra.forget();
    proxy.kill_websockets();
    let silent = std::time::Instant::now();
    ra.wait_status("A no longer live", |s| s["connection"] != "live")
        .await?;
    let took = silent.elapsed();
    println!("a silent websocket was counted down after {took:?}");
    // The last ping came at most one interval before the proxy went silent;
    // the status is written within a poll after detection.
    let bound = std::time::Duration::from_millis(interval_ms + timeout_ms + 1500);
    assert!(took <= bound, "detected after {took:?}, bound {bound:?}");
    ra.stop().await?;
    Ok(())
}

/// A websocket that hangs without closing (the proxy freezes it: no byte
/// either way, the TCP connection open) while the server's pings are too
/// far apart to notice. This is also what a client sees whose socket reader
/// died (rust_socketio 0.6 panics on two awaited acks with one id): the
/// socket looks up and hears nothing.
/// - A, which posts (and probes only after a minute of silence), misses the
///   ack: the batch goes by HTTP, and A gives the socket up and connects a
///   new one.
/// - B, which only receives, hears nothing for the probe interval (1 s),
///   asks, gets no answer and connects a new one, which replays what it
///   missed.
/// - A socket that answers its probes is kept, before and after.
#[tokio::test]
async fn a_socket_that_hangs_is_replaced_and_what_it_missed_arrives() -> anyhow::Result<()> {
    let server = TestServer::start_with(&[
        "--ping-interval-ms",
        "600000",
        "--ping-timeout-ms",
        "600000",
    ])
    .await?;
    let proxy = Proxy::start(([127, 0, 0, 1], server.port).into()).await?;
    let (a, b, id, api) = linked_pair_at(&server, &proxy.url(), &proxy.url(), "receive").await?;
    let ws = ["--transport", "websocket-only"];
    let ack = ("VIDSYNC_ACK_TIMEOUT_MS", "2000");
    let mut ra = a.run_env(&ws, &[ack, ("VIDSYNC_SOCKET_PROBE_MS", "60000")])?;
    let mut rb = b.run_env(&ws, &[ack, ("VIDSYNC_SOCKET_PROBE_MS", "1000")])?;
    ra.wait_status("A live", |s| s["connection"] == "live")
        .await?;
    rb.wait_status("B live", |s| s["connection"] == "live")
        .await?;
    let opens = || {
        count(
            &server,
            "vidsync_engineio_opens_total{transport=\"websocket\"}",
        )
    };

    // Kept: B's probes are answered (each is one refused empty batch).
    let kept = || async {
        let (opens_before, probes_before) = (opens().await?, count(&server, SOCKET_BATCHES).await?);
        wait_for("three of B's probes answered", || async {
            let n = count(&server, SOCKET_BATCHES).await.ok()?;
            (n >= probes_before + 3.0).then_some(())
        })
        .await?;
        assert_eq!(
            opens().await?,
            opens_before,
            "a socket that answers was replaced"
        );
        anyhow::Ok(opens_before)
    };
    let opens_before = kept().await?;

    proxy.freeze_websockets();
    a.write("while-hung.txt", b"sent while the socket hung")?;
    ra.wait_for("uploaded", |v| uploaded(v, "while-hung.txt"))
        .await?;
    rb.wait_for("at B", |v| remote_path(v, "while-hung.txt"))
        .await?;
    wait_for("the file at B", || async {
        let bytes = std::fs::read(b.folder.join("while-hung.txt")).ok()?;
        (bytes == b"sent while the socket hung").then_some(())
    })
    .await?;
    // Both connected again, on new sockets, and are live.
    wait_for("two new websockets", || async {
        let n = opens().await.ok()?;
        (n >= opens_before + 2.0).then_some(())
    })
    .await?;
    ra.wait_status("A live again", |s| s["connection"] == "live")
        .await?;
    rb.wait_status("B live again", |s| s["connection"] == "live")
        .await?;
    // The new sockets are kept, and B hears over its own: a second file
    // reaches B with no socket opened meanwhile.
    let opens_after = kept().await?;
    a.write("after.txt", b"after")?;
    rb.wait_for("after.txt at B", |v| remote_path(v, "after.txt"))
        .await?;
    assert_eq!(opens().await?, opens_after, "a new socket was needed again");
    assert_eq!(
        paths_in_log(&api, &id).await?,
        vec![
            ("after.txt".to_string(), 1),
            ("while-hung.txt".to_string(), 1)
        ]
    );
    ra.stop().await?;
    rb.stop().await?;
    Ok(())
}
