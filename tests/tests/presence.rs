//! Presence (PROTOCOL.md v2): `project:presence` to the room on every
//! subscribe, unsubscribe and disconnect; the subscribe ack lists who is
//! there; clients name themselves with `client_id` in the handshake auth.

use rust_socketio::TransportType;
use serde_json::{json, Value};
use vidsync_e2e::{linked_pair, wait_for, ClientDir, ConnectFailure, Live, TestServer};

/// `(user, client_id)` of each entry of a presence list.
fn who(present: &Value) -> Vec<(String, Option<String>)> {
    present
        .as_array()
        .expect("present is a list")
        .iter()
        .map(|p| {
            assert!(
                time::OffsetDateTime::parse(
                    p["since"].as_str().expect("since"),
                    &time::format_description::well_known::Rfc3339
                )
                .is_ok(),
                "since is RFC 3339: {p}"
            );
            (
                p["user"].as_str().expect("user").to_string(),
                p["client_id"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn entry(user: &str, client_id: Option<&str>) -> (String, Option<String>) {
    (user.to_string(), client_id.map(str::to_string))
}

#[tokio::test]
async fn presence_follows_subscribe_unsubscribe_and_disconnect() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let alice_token = server.add_user("alice").await?;
    let bob_token = server.add_user("bob").await?;
    let carol_token = server.add_user("carol").await?;
    let alice = server.api(&alice_token);
    let bob = server.api(&bob_token);
    let id = alice.new_project("shared").await?;
    alice.invite(&id, &bob).await?;

    let mut a = Live::connect_with(
        &server.url,
        Some(json!({"token": alice_token, "client_id": "laptop"})),
        TransportType::Websocket,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let ack = a.subscribe(&id, None).await?;
    assert_eq!(ack["ok"], true);
    assert_eq!(who(&ack["present"]), vec![entry("alice", Some("laptop"))]);
    let p = a.next_presence().await?;
    assert_eq!(p["project_id"], id.as_str());
    assert_eq!(who(&p["present"]), vec![entry("alice", Some("laptop"))]);
    let alice_since = p["present"][0]["since"].clone();

    // Bob, on polling and without a client_id: both are listed, alice first.
    let mut b = Live::connect_with(
        &server.url,
        Some(json!({"token": bob_token})),
        TransportType::Polling,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let ack = b.subscribe(&id, Some(0)).await?;
    let both = vec![entry("alice", Some("laptop")), entry("bob", None)];
    assert_eq!(who(&ack["present"]), both);
    assert_eq!(who(&a.next_presence().await?["present"]), both);
    assert_eq!(who(&b.next_presence().await?["present"]), both);

    // Carol is no member: refused, and nobody hears of her.
    let mut c = Live::connect(&server.url, &carol_token).await?;
    let ack = c.subscribe(&id, None).await?;
    assert_eq!(ack["ok"], false);
    assert!(
        ack.get("present").is_none(),
        "a refusal lists nobody: {ack}"
    );

    // Alice subscribing again keeps her place and her `since`.
    let ack = a.subscribe(&id, None).await?;
    assert_eq!(who(&ack["present"]), both);
    assert_eq!(ack["present"][0]["since"], alice_since);
    assert_eq!(who(&a.next_presence().await?["present"]), both);
    assert_eq!(who(&b.next_presence().await?["present"]), both);

    // Bob unsubscribes: alice sees her alone.
    let ack = b.request("unsubscribe:project", json!(id)).await?;
    assert_eq!(ack["ok"], true);
    assert_eq!(
        who(&a.next_presence().await?["present"]),
        vec![entry("alice", Some("laptop"))]
    );

    // Bob back, then his socket goes away: alice sees him come and go.
    assert_eq!(b.subscribe(&id, None).await?["ok"], true);
    assert_eq!(who(&a.next_presence().await?["present"]), both);
    b.client.disconnect().await?;
    assert_eq!(
        who(&a.next_presence().await?["present"]),
        vec![entry("alice", Some("laptop"))]
    );

    // Carol's socket was never told anything of this project.
    let ack = c.subscribe("p_unknown", None).await?;
    assert_eq!(ack["ok"], false);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(0), c.next_presence())
            .await
            .map_or(true, |r| r.is_err()),
        "an outsider got a presence list"
    );
    Ok(())
}

#[tokio::test]
async fn a_bad_client_id_is_refused_at_the_handshake() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let token = server.add_user("alice").await?;
    for client_id in [
        json!(""),
        json!("a\u{7}b"),
        json!("x".repeat(300)),
        json!(5),
    ] {
        let auth = json!({"token": token, "client_id": client_id});
        match Live::connect_with(&server.url, Some(auth), TransportType::Websocket).await {
            Err(ConnectFailure::Refused(msg)) => assert!(!msg.is_empty()),
            Err(ConnectFailure::Other(e)) => panic!("{client_id}: expected connect_error, got {e}"),
            Ok(_) => panic!("{client_id}: a socket was opened"),
        }
    }
    let health: Value = reqwest::get(format!("{}/health", server.url))
        .await?
        .json()
        .await?;
    assert_eq!(health["connections"], 0);
    Ok(())
}

/// The `client_id` a client installation saved in its config.
fn client_id_of(dir: &ClientDir) -> String {
    let cfg: Value = serde_json::from_slice(
        &std::fs::read(dir.config.path().join("config.json")).expect("config.json"),
    )
    .expect("config.json is JSON");
    cfg["client_id"].as_str().expect("client_id").to_string()
}

/// The `client_id`s a status lists as present, sorted.
fn present_ids(status: &Value) -> Vec<String> {
    let mut ids: Vec<String> = status["present"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["client_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

#[tokio::test]
async fn the_vidsync_client_names_itself_and_shows_who_is_present() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (a, b, _id, _api) = linked_pair(&server, "send-receive").await?;
    let (ida, idb) = (client_id_of(&a), client_id_of(&b));
    let mut ra = a.run(&[])?;
    ra.wait_status("A alone", |s| present_ids(s) == vec![ida.clone()])
        .await?;
    let mut rb = b.run(&[])?;
    let mut both = vec![ida.clone(), idb.clone()];
    both.sort();
    let seen = ra
        .wait_status("A sees B", |s| present_ids(s) == both)
        .await?;
    let users: Vec<&str> = seen["status"]["present"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["user"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        users.contains(&"alice") && users.contains(&"bob"),
        "{users:?}"
    );
    rb.wait_status("B sees A", |s| present_ids(s) == both)
        .await?;
    // status.json (what `vidsync status --json` reads) has it too.
    wait_for("present in A's status.json", || async {
        a.status_file()
            .filter(|v| present_ids(&v["folders"][0]) == both)
            .map(|_| ())
    })
    .await?;

    rb.kill9().await?;
    ra.wait_status("A alone again", |s| present_ids(s) == vec![ida.clone()])
        .await?;
    Ok(())
}
