//! `files:update` over the socket (PROTOCOL.md v2, "Changes over the
//! socket") against the real server with a real `rust_socketio` client: the
//! ack carries what the HTTP route answers, with the same codes, rules,
//! idempotency (shared with HTTP), all-or-none and per-user rate limit.

use rust_socketio::TransportType;
use serde_json::{json, Value};
use vidsync_e2e::{create_change, Api, Live, TestServer};

const FILES_UPDATE: &str = "files:update";

fn update(project_id: &str, client_id: &str, changes: Vec<Value>) -> Value {
    json!({ "project_id": project_id, "client_id": client_id, "changes": changes })
}

/// `head_seq` as the log has it.
async fn head(api: &Api, project_id: &str) -> anyhow::Result<u64> {
    let (s, page) = api.events(project_id, 0).await?;
    assert_eq!(s, 200, "{page}");
    Ok(page["head_seq"].as_u64().unwrap_or_default())
}

#[tokio::test]
async fn changes_up_the_socket_are_acked_broadcast_and_idempotent() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let alice_token = server.add_user("alice").await?;
    let bob_token = server.add_user("bob").await?;
    let alice = server.api(&alice_token);
    let id = alice.new_project("demo").await?;
    alice.invite(&id, &server.api(&bob_token)).await?;
    let mut bob = Live::connect(&server.url, &bob_token).await?;
    bob.subscribe(&id, Some(0)).await?;

    for (tag, transport) in [
        ("ws", TransportType::Websocket),
        ("polling", TransportType::Polling),
    ] {
        let live = Live::connect_with(
            &server.url,
            Some(json!({ "token": alice_token })),
            transport,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let n = head(&alice, &id).await?;
        let batch = update(
            &id,
            "laptop",
            vec![
                create_change(&format!("{tag}/a.txt"), b"a", Some(&format!("{tag}-1"))),
                create_change(&format!("{tag}/b.txt"), b"b", Some(&format!("{tag}-2"))),
            ],
        );
        let ack = live.request(FILES_UPDATE, batch.clone()).await?;
        assert_eq!(ack["ok"], true, "{ack}");
        assert_eq!(ack["head_seq"], n + 2, "{ack}");
        let events = ack["events"].as_array().cloned().unwrap_or_default();
        let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
        assert_eq!(seqs, vec![n + 1, n + 2]);
        assert_eq!(events[0]["change"]["path"], format!("{tag}/a.txt"));
        assert_eq!(events[0]["origin"]["client_id"], "laptop");
        assert_eq!(events[0]["origin"]["user"], "alice");
        assert!(events[0]["change"].get("change_id").is_none());
        // A peer hears both, once each.
        assert_eq!(bob.next_event().await?["seq"], n + 1);
        assert_eq!(bob.next_event().await?["seq"], n + 2);

        // The same batch again (a retry): the first events, nothing appended.
        let again = live.request(FILES_UPDATE, batch).await?;
        assert_eq!(again["events"], ack["events"]);
        assert_eq!(again["head_seq"], n + 2);
        // The same change id by HTTP: the same event too (one key space).
        let (s, body) = alice
            .update(
                &id,
                "laptop",
                vec![create_change(
                    &format!("{tag}/b.txt"),
                    b"b",
                    Some(&format!("{tag}-2")),
                )],
            )
            .await?;
        assert_eq!(s, 200);
        assert_eq!(body["events"][0], events[1]);
        assert_eq!(head(&alice, &id).await?, n + 2);
        live.client.disconnect().await?;
    }
    assert!(bob.drain().is_empty(), "a retry was broadcast again");
    // Four batches came up the socket, two by HTTP.
    assert_eq!(
        server
            .metric("vidsync_update_requests_total{via=\"socket\"}")
            .await?,
        Some(4.0)
    );
    assert_eq!(
        server
            .metric("vidsync_update_requests_total{via=\"http\"}")
            .await?,
        Some(2.0)
    );
    Ok(())
}

/// Each refusal: the ack's `error` is exactly the HTTP body's `error`, and
/// nothing is appended.
#[tokio::test]
async fn refusals_over_the_socket_are_the_http_ones() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let alice_token = server.add_user("alice").await?;
    let mallory_token = server.add_user("mallory").await?;
    let alice = server.api(&alice_token);
    let mallory = server.api(&mallory_token);
    let id = alice.new_project("demo").await?;
    let (s, first) = alice
        .update(&id, "c", vec![create_change("a", b"a", Some("c-1"))])
        .await?;
    assert_eq!(s, 200);
    let live = Live::connect(&server.url, &alice_token).await?;
    let outsider = Live::connect(&server.url, &mallory_token).await?;

    let mut stale = create_change("a", b"a2", None);
    stale["op"] = json!("update");
    stale["base_hash"] = json!(blake3::hash(b"old").to_hex().to_string());
    let many: Vec<Value> = (0..10_001)
        .map(|i| json!({"path": format!("f{i}"), "op": "delete"}))
        .collect();
    let cases: Vec<(&str, &str, Vec<Value>, &str)> = vec![
        (
            "not_found",
            "p_nope",
            vec![create_change("x", b"x", None)],
            "alice",
        ),
        (
            "forbidden",
            &id,
            vec![create_change("x", b"x", None)],
            "mallory",
        ),
        ("unprocessable", &id, vec![], "alice"),
        (
            "invalid_path",
            &id,
            vec![
                create_change("ok", b"x", None),
                create_change("../up", b"x", None),
            ],
            "alice",
        ),
        (
            "conflict",
            &id,
            vec![create_change("new", b"n", None), stale],
            "alice",
        ),
    ];
    for (want, project, changes, who) in cases {
        let (socket, api) = if who == "alice" {
            (&live, &alice)
        } else {
            (&outsider, &mallory)
        };
        let ack = socket
            .request(FILES_UPDATE, update(project, "c", changes.clone()))
            .await?;
        assert_eq!(ack["ok"], false, "{want}: {ack}");
        assert_eq!(ack["error"]["code"], want, "{ack}");
        assert!(ack.get("events").is_none());
        let (status, body) = api.update(project, "c", changes).await?;
        assert_ne!(status, 200);
        assert_eq!(ack["error"], body["error"], "{want}");
        if want == "conflict" {
            let conflicts = ack["error"]["conflicts"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert_eq!(conflicts.len(), 1, "{ack}");
            assert_eq!(conflicts[0]["path"], "a");
            assert_eq!(conflicts[0]["current"], first["events"][0]);
        }
    }
    // More changes than a request may carry: refused whole (the payload is
    // under the socket's 1 MiB message limit).
    let big = update(&id, "c", many);
    assert!(big.to_string().len() < 1024 * 1024);
    let ack = live.request(FILES_UPDATE, big).await?;
    assert_eq!(ack["error"]["code"], "unprocessable", "{ack}");
    // Malformed payloads: 400 `bad_request`.
    for bad in [
        json!("just a string"),
        json!({"project_id": id, "changes": []}),
        json!({"project_id": id, "client_id": "c", "changes": [{"path": "a"}]}),
        json!({"project_id": 7, "client_id": "c", "changes": []}),
    ] {
        let ack = live.request(FILES_UPDATE, bad.clone()).await?;
        assert_eq!(
            (ack["ok"].as_bool(), ack["error"]["code"].as_str()),
            (Some(false), Some("bad_request")),
            "{bad}: {ack}"
        );
    }
    // Nothing of it reached the log.
    assert_eq!(head(&alice, &id).await?, 1);
    Ok(())
}

/// One bucket per user, whichever way the requests come.
#[tokio::test]
async fn the_rate_limit_counts_socket_and_http_requests_alike() -> anyhow::Result<()> {
    // 2 requests per second per user, bursts of 10.
    let server = TestServer::start_with(&["--rate-limit", "2"]).await?;
    let alice_token = server.add_user("alice").await?;
    let alice = server.api(&alice_token);
    let id = alice.new_project("busy").await?; // one request
    let live = Live::connect(&server.url, &alice_token).await?;
    let mut accepted = 0u64;
    let mut limited = None;
    for i in 0..30 {
        let batch = update(&id, "c", vec![create_change(&format!("f{i}"), b"x", None)]);
        let ack = live.request(FILES_UPDATE, batch).await?;
        if ack["ok"] == true {
            accepted += 1;
            continue;
        }
        limited = Some(ack);
        break;
    }
    let ack = limited.expect("a burst of 30 is limited");
    assert_eq!(ack["error"]["code"], "rate_limited", "{ack}");
    assert!(accepted < 10, "the HTTP request shares the bucket");
    // The refused batch is not in the log (read once the bucket refills).
    let head = vidsync_e2e::wait_for("the limiter to let a read through", || async {
        let (s, p) = alice.events(&id, 0).await.ok()?;
        (s == 200).then(|| p["head_seq"].as_u64()).flatten()
    })
    .await?;
    assert_eq!(head, accepted);
    Ok(())
}
