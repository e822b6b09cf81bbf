//! The Socket.IO contract against the real server with a real
//! `rust_socketio` client: auth at the handshake, `subscribe:project` acks,
//! room delivery exactly once, `since_seq` replay handing over to live
//! events with no gap and no duplicate, both transports.

use rust_socketio::TransportType;
use serde_json::{json, Value};
use vidsync_e2e::{create_change, wait_for, ConnectFailure, Live, TestServer};

fn seq(ev: &Value) -> u64 {
    ev["seq"].as_u64().expect("event has a seq")
}

#[tokio::test]
async fn handshake_without_a_valid_token_gets_connect_error() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    server.add_user("alice").await?;
    for auth in [
        Some(json!({"token": "vst_wrong"})),
        Some(json!({"nope": 1})),
        None,
    ] {
        match Live::connect_with(&server.url, auth.clone(), TransportType::Websocket).await {
            Err(ConnectFailure::Refused(msg)) => assert!(!msg.is_empty()),
            Err(ConnectFailure::Other(e)) => panic!("{auth:?}: expected connect_error, got {e}"),
            Ok(_) => panic!("{auth:?}: a socket was opened"),
        }
    }
    // And no socket was counted as open.
    let health: Value = reqwest::get(format!("{}/health", server.url))
        .await?
        .json()
        .await?;
    assert_eq!(health["connections"], 0);
    Ok(())
}

#[tokio::test]
async fn subscribe_acks_and_refusals() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let alice_token = server.add_user("alice").await?;
    let mallory_token = server.add_user("mallory").await?;
    let alice = server.api(&alice_token);
    let id = alice.new_project("demo").await?;
    alice
        .update(&id, "c", vec![create_change("a", b"a", None)])
        .await?;

    let live = Live::connect(&server.url, &alice_token).await?;
    let ack = live.subscribe(&id, None).await?;
    assert_eq!((&ack["ok"], &ack["head_seq"]), (&json!(true), &json!(1)));
    assert_eq!(ack["present"][0]["user"], "alice");
    let ack = live.subscribe("p_unknown", None).await?;
    assert_eq!(
        (ack["ok"].as_bool(), ack["error"]["code"].as_str()),
        (Some(false), Some("not_found"))
    );
    let ack = live
        .request("subscribe:project", json!({"since_seq": 3}))
        .await?;
    assert_eq!(
        (ack["ok"].as_bool(), ack["error"]["code"].as_str()),
        (Some(false), Some("bad_request"))
    );

    let outsider = Live::connect(&server.url, &mallory_token).await?;
    let ack = outsider.subscribe(&id, Some(0)).await?;
    assert_eq!(
        (ack["ok"].as_bool(), ack["error"]["code"].as_str()),
        (Some(false), Some("forbidden"))
    );
    let health: Value = reqwest::get(format!("{}/health", server.url))
        .await?
        .json()
        .await?;
    assert_eq!(health["connections"], 2);
    Ok(())
}

#[tokio::test]
async fn two_subscribers_get_each_event_once_and_outsiders_none() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let alice_token = server.add_user("alice").await?;
    let bob_token = server.add_user("bob").await?;
    let carol_token = server.add_user("carol").await?;
    let alice = server.api(&alice_token);
    let bob = server.api(&bob_token);
    let carol = server.api(&carol_token);
    let id = alice.new_project("shared").await?;
    alice.invite(&id, &bob).await?;
    let carols = carol.new_project("carol's own").await?;

    let mut a = Live::connect(&server.url, &alice_token).await?;
    // Bob on the polling transport: both Engine.IO transports work.
    let mut b = Live::connect_with(
        &server.url,
        Some(json!({"token": bob_token})),
        TransportType::Polling,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut c = Live::connect(&server.url, &carol_token).await?;
    assert_eq!(a.subscribe(&id, None).await?["ok"], true);
    assert_eq!(b.subscribe(&id, None).await?["ok"], true);
    assert_eq!(c.subscribe(&id, None).await?["ok"], false);
    assert_eq!(c.subscribe(&carols, None).await?["ok"], true);

    let (s, _) = alice
        .update(
            &id,
            "laptop",
            vec![create_change("doc.txt", b"v1", Some("x1"))],
        )
        .await?;
    assert_eq!(s, 200);
    for live in [&mut a, &mut b] {
        let ev = live.next_event().await?;
        assert_eq!(
            (
                seq(&ev),
                ev["change"]["path"].as_str(),
                ev["project_id"].as_str()
            ),
            (1, Some("doc.txt"), Some(id.as_str()))
        );
        assert_eq!(ev["origin"]["client_id"], "laptop");
    }
    // A retry of the same change is not broadcast again; the next event is 2.
    alice
        .update(
            &id,
            "laptop",
            vec![create_change("doc.txt", b"v1", Some("x1"))],
        )
        .await?;
    alice
        .update(
            &id,
            "laptop",
            vec![create_change("marker", b"m", Some("x2"))],
        )
        .await?;
    for live in [&mut a, &mut b] {
        let ev = live.next_event().await?;
        assert_eq!(
            (seq(&ev), ev["change"]["path"].as_str()),
            (2, Some("marker")),
            "no duplicate before the marker"
        );
    }
    // Carol sees her own project's event and nothing of the other's; the
    // order of appends makes her event a barrier after alice's two.
    carol
        .update(&carols, "c", vec![create_change("hers", b"h", None)])
        .await?;
    let ev = c.next_event().await?;
    assert_eq!(ev["project_id"], carols.as_str());
    assert!(c.drain().is_empty());

    // Unsubscribe stops delivery to that socket only.
    let ack = b.request("unsubscribe:project", json!(id)).await?;
    assert_eq!(ack["ok"], true);
    alice
        .update(&id, "laptop", vec![create_change("after", b"x", None)])
        .await?;
    assert_eq!(seq(&a.next_event().await?), 3);
    bob.update(&id, "bob", vec![create_change("after2", b"y", None)])
        .await?;
    assert_eq!(seq(&a.next_event().await?), 4);
    assert!(b.drain().is_empty(), "unsubscribed socket got events");
    Ok(())
}

#[tokio::test]
async fn since_seq_replays_missed_events_then_hands_over_to_live() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let token = server.add_user("alice").await?;
    let api = server.api(&token);
    let id = api.new_project("busy").await?;

    // The subscriber got seq 1..=10, then went away.
    let batch = |from: usize, n: usize| -> Vec<Value> {
        (from..from + n)
            .map(|i| {
                create_change(
                    &format!("f{i}"),
                    format!("{i}").as_bytes(),
                    Some(&format!("c{i}")),
                )
            })
            .collect()
    };
    api.update(&id, "writer", batch(0, 10)).await?;
    // 500 events it missed while disconnected.
    for k in 0..5 {
        let (s, _) = api.update(&id, "writer", batch(10 + k * 100, 100)).await?;
        assert_eq!(s, 200);
    }

    // A writer keeps posting during the hand-over.
    let writer = {
        let api = api.clone();
        let id = id.clone();
        tokio::spawn(async move {
            for i in 0..60 {
                let c = create_change(&format!("live{i}"), b"l", Some(&format!("l{i}")));
                let (s, _) = api.update(&id, "writer", vec![c]).await?;
                anyhow::ensure!(s == 200);
            }
            anyhow::Ok(())
        })
    };
    let mut live = Live::connect(&server.url, &token).await?;
    let ack = live.subscribe(&id, Some(10)).await?;
    assert_eq!(ack["ok"], true);
    writer.await??;
    let last = 510 + 60;
    let mut got = Vec::new();
    while got.len() < (last - 10) as usize {
        got.push(seq(&live.next_event().await?));
    }
    let want: Vec<u64> = (11..=last).collect();
    assert_eq!(got, want, "every missed and live event once, in order");

    // And live after that.
    api.update(&id, "writer", vec![create_change("tail", b"t", None)])
        .await?;
    assert_eq!(seq(&live.next_event().await?), last + 1);
    assert!(live.drain().is_empty());
    Ok(())
}

#[tokio::test]
async fn resubscribe_after_reconnect_catches_up() -> anyhow::Result<()> {
    let mut server = TestServer::start().await?;
    let token = server.add_user("alice").await?;
    let api = server.api(&token);
    let id = api.new_project("p").await?;
    let mut live = Live::connect(&server.url, &token).await?;
    live.subscribe(&id, Some(0)).await?;
    api.update(&id, "w", vec![create_change("one", b"1", None)])
        .await?;
    assert_eq!(seq(&live.next_event().await?), 1);

    // Server restarts; the client reconnects by itself and subscribes again
    // from the last seq it has.
    server.restart().await?;
    let api = server.api(&token);
    api.update(&id, "w", vec![create_change("two", b"2", None)])
        .await?;
    live.next_connect().await?;
    let ack = live.subscribe(&id, Some(1)).await?;
    assert_eq!(ack["head_seq"], 2);
    assert_eq!(seq(&live.next_event().await?), 2);
    let health = wait_for("one connection", || async {
        let h: Value = reqwest::get(format!("{}/health", server.url))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (h["connections"] == 1).then_some(h)
    })
    .await?;
    assert_eq!(health["status"], "ok");
    Ok(())
}

/// A project followed the moment the socket comes up (what the engine does
/// when a folder starts right after the feed connected) is subscribed:
/// its events arrive over the socket. The feed's connect handler used to
/// read the followed projects before the client was stored for
/// `add_project`, so a project added in between was never subscribed and
/// its folder stayed `live` hearing nothing (1 of ~30 runs of
/// `transport::with_the_socket_up_changes_go_up_the_socket`). The log is
/// not polled here (a minute apart), so only the socket can deliver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_followed_as_the_socket_connects_hears_its_events() -> anyhow::Result<()> {
    use std::time::Duration;
    use vidsync_client::api::ApiClient;
    use vidsync_client::feed::{Connection, FeedEvent, LiveFeed};
    use vidsync_client::Transport;

    let server = TestServer::start().await?;
    let token = server.add_user("alice").await?;
    let api = server.api(&token);
    let id = api.new_project("p").await?;
    for round in 0..60u64 {
        let cancel = tokio_util::sync::CancellationToken::new();
        let (feed, mut rx) = LiveFeed::start(
            ApiClient::new(&server.url, &token)?,
            None,
            Transport::WebsocketFirst,
            Duration::from_secs(60),
            Default::default(),
            cancel.clone(),
        );
        // Added the moment the socket is up (as the feed's own state says,
        // before its owner could hear it).
        let deadline = Duration::from_secs(10);
        let live = async {
            while feed.connection() != Connection::Live {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(deadline, live)
            .await
            .map_err(|_| anyhow::anyhow!("round {round}: the feed never went live"))?;
        feed.add_project(&id, round).await;
        let path = format!("f{round}");
        api.update(&id, "w", vec![create_change(&path, b"x", None)])
            .await?;
        let heard = tokio::time::timeout(deadline, async {
            while let Some(m) = rx.recv().await {
                if let FeedEvent::Event(e) = m {
                    return Some(e.seq);
                }
            }
            None
        })
        .await;
        assert_eq!(
            heard.ok().flatten(),
            Some(round + 1),
            "round {round}: a project added as the socket came up heard nothing"
        );
        cancel.cancel();
    }
    Ok(())
}
