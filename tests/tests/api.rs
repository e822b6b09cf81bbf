//! Every HTTP endpoint of PROTOCOL.md against the real server: the success
//! path and each error status of the table, with "refused changes nothing"
//! checked against the event log.

use serde_json::{json, Value};
use vidsync_e2e::{create_change, TestServer};

/// POSTs headers announcing `len` bytes with `Expect: 100-continue` and
/// reads the final answer, sending no body.
async fn over_limit_post(
    server: &TestServer,
    token: &str,
    path: &str,
    len: usize,
) -> anyhow::Result<(u16, Value)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await?;
    // Read the head, then as many body bytes as it announces.
    let mut buf = Vec::new();
    let read_answer = async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = sock.read(&mut chunk).await?;
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let want = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_string())
                    })
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= want || n == 0 {
                    return Ok::<_, std::io::Error>(());
                }
            } else if n == 0 {
                return Ok(());
            }
        }
    };
    tokio::time::timeout(vidsync_e2e::DEADLINE, read_answer).await??;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

#[tokio::test]
async fn health_needs_no_token_and_reports_db_and_connections() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let resp = reqwest::get(format!("{}/health", server.url)).await?;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await?;
    assert_eq!(body, json!({"status": "ok", "connections": 0, "db": "ok"}));
    let resp = reqwest::get(format!("{}/metrics", server.url)).await?;
    assert_eq!(resp.status(), 200);
    Ok(())
}

#[tokio::test]
async fn projects_and_invites() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let alice = server.api(&server.add_user("alice").await?);
    let bob = server.api(&server.add_user("bob").await?);
    let carol = server.api(&server.add_user("carol").await?);

    // Auth: none, wrong, revoked; the X-Auth-Token alias.
    let (s, b) = alice.with_token("").get("/api/projects").await?;
    assert_eq!((s, code(&b)), (401, "unauthorized"));
    let (s, b) = alice.with_token("vst_wrong").get("/api/projects").await?;
    assert_eq!((s, code(&b)), (401, "unauthorized"));
    let resp = reqwest::Client::new()
        .get(alice.url("/api/projects"))
        .header("X-Auth-Token", &alice.token)
        .send()
        .await?;
    assert_eq!(resp.status(), 200);

    // Create, list, get.
    let p = alice.create_project("demo").await?;
    let id = p["id"].as_str().unwrap().to_string();
    assert_eq!(
        (
            p["name"].as_str(),
            p["owner"].as_str(),
            p["role"].as_str(),
            p["head_seq"].as_u64()
        ),
        (Some("demo"), Some("alice"), Some("owner"), Some(0))
    );
    assert!(p["created_at"].as_str().unwrap().ends_with('Z'));
    let (s, b) = alice.get("/api/projects").await?;
    assert_eq!(s, 200);
    assert_eq!(b["projects"].as_array().unwrap().len(), 1);
    assert_eq!(b["projects"][0]["id"], id.as_str());
    let (s, b) = alice.get(&format!("/api/projects/{id}")).await?;
    assert_eq!((s, b["id"].as_str()), (200, Some(id.as_str())));

    // Bad create bodies.
    let (s, b) = alice.post_raw("/api/projects", "{\"name\": ").await?;
    assert_eq!((s, code(&b)), (400, "bad_request"));
    let (s, b) = alice.post("/api/projects", &json!({"name": 5})).await?;
    assert_eq!((s, code(&b)), (400, "bad_request"));
    let (s, b) = alice.post("/api/projects", &json!({})).await?;
    assert_eq!((s, code(&b)), (400, "bad_request"));
    let (s, b) = alice.post("/api/projects", &json!({"name": "  "})).await?;
    assert_eq!((s, code(&b)), (422, "unprocessable"));

    // Non-member and unknown project.
    let (s, b) = bob.get(&format!("/api/projects/{id}")).await?;
    assert_eq!((s, code(&b)), (403, "forbidden"));
    let (s, b) = bob.get("/api/projects").await?;
    assert_eq!((s, b["projects"].as_array().map(Vec::len)), (200, Some(0)));
    let (s, b) = alice.get("/api/projects/p_nope").await?;
    assert_eq!((s, code(&b)), (404, "not_found"));

    // Invites: owner only; accept makes a member.
    let (s, b) = bob
        .post(&format!("/api/projects/{id}/invites"), &json!({}))
        .await?;
    assert_eq!((s, code(&b)), (403, "forbidden"));
    let (s, b) = alice
        .post("/api/projects/p_nope/invites", &json!({}))
        .await?;
    assert_eq!((s, code(&b)), (404, "not_found"));
    let (s, inv) = alice
        .post(&format!("/api/projects/{id}/invites"), &json!({}))
        .await?;
    assert_eq!(s, 201);
    assert_eq!(inv["project_id"], id.as_str());
    assert!(inv["expires_at"].as_str().is_some());
    let code_str = inv["code"].as_str().unwrap();
    let (s, b) = bob
        .post("/api/invites/not-a-code/accept", &json!({}))
        .await?;
    assert_eq!((s, code(&b)), (404, "not_found"));
    let (s, b) = bob
        .post(&format!("/api/invites/{code_str}/accept"), &json!({}))
        .await?;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["id"].as_str(), b["role"].as_str(), b["owner"].as_str()),
        (Some(id.as_str()), Some("member"), Some("alice"))
    );
    let (s, _) = bob.get(&format!("/api/projects/{id}")).await?;
    assert_eq!(s, 200);
    // A member cannot invite; accepting twice is harmless; the owner stays owner.
    let (s, _) = bob
        .post(&format!("/api/projects/{id}/invites"), &json!({}))
        .await?;
    assert_eq!(s, 403);
    let (s, b) = bob
        .post(&format!("/api/invites/{code_str}/accept"), &json!({}))
        .await?;
    assert_eq!((s, b["role"].as_str()), (200, Some("member")));
    let (s, b) = alice
        .post(&format!("/api/invites/{code_str}/accept"), &json!({}))
        .await?;
    assert_eq!((s, b["role"].as_str()), (200, Some("owner")));
    // Carol is still outside.
    let (s, _) = carol.get(&format!("/api/projects/{id}")).await?;
    assert_eq!(s, 403);

    // A revoked token stops working at once.
    server.admin(&["user", "revoke", "bob"]).await?;
    let (s, b) = bob.get("/api/projects").await?;
    assert_eq!((s, code(&b)), (401, "unauthorized"));

    // Unknown endpoints answer with the error body too.
    let (s, b) = alice.get("/api/nothing-here").await?;
    assert_eq!((s, code(&b)), (404, "not_found"));
    Ok(())
}

#[tokio::test]
async fn changes_in_events_out_and_idempotent_retries() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let alice = server.api(&server.add_user("alice").await?);
    let id = alice.new_project("demo").await?;

    let (s, b) = alice
        .update(
            &id,
            "laptop",
            vec![
                create_change("src/a.txt", b"one", Some("c1")),
                create_change("src/b.txt", b"two", Some("c2")),
                json!({"path": "old.txt", "op": "delete", "change_id": "c3"}),
            ],
        )
        .await?;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["head_seq"], 3);
    let evs = b["events"].as_array().unwrap();
    assert_eq!(
        evs.iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(evs[0]["change"]["path"], "src/a.txt");
    assert_eq!(
        evs[0]["change"]["hash"],
        blake3::hash(b"one").to_hex().as_str()
    );
    assert_eq!(evs[0]["change"]["size"], 3);
    assert!(
        evs[0]["change"].get("change_id").is_none(),
        "events carry no change_id"
    );
    assert_eq!(
        evs[0]["origin"],
        json!({"client_id": "laptop", "user": "alice"})
    );
    assert_eq!(evs[0]["project_id"], id.as_str());
    assert_eq!(evs[2]["change"]["op"], "delete");
    assert_eq!(evs[2]["change"]["hash"], Value::Null);

    // The same change_ids again (a retry), mixed with one new change.
    let (s, b2) = alice
        .update(
            &id,
            "laptop",
            vec![
                create_change("src/a.txt", b"one", Some("c1")),
                create_change("src/c.txt", b"three", Some("c4")),
                create_change("src/b.txt", b"two", Some("c2")),
            ],
        )
        .await?;
    assert_eq!(s, 200);
    let seqs: Vec<u64> = b2["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 4, 2]);
    assert_eq!(b2["events"][0], evs[0], "a retry returns the first event");
    assert_eq!(b2["head_seq"], 4);
    // The same change_id from another client is another change.
    let (_, b3) = alice
        .update(
            &id,
            "desktop",
            vec![create_change("src/a.txt", b"one", Some("c1"))],
        )
        .await?;
    assert_eq!(b3["events"][0]["seq"], 5);

    // Events: since_seq, limit, head.
    let (s, page) = alice
        .get(&format!("/api/projects/{id}/events?since_seq=1&limit=2"))
        .await?;
    assert_eq!(s, 200);
    assert_eq!(page["head_seq"], 5);
    let seqs: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![2, 3]);
    let (_, page) = alice.get(&format!("/api/projects/{id}/events")).await?;
    assert_eq!(page["events"].as_array().unwrap().len(), 5);
    let (_, page) = alice
        .get(&format!("/api/projects/{id}/events?since_seq=5"))
        .await?;
    assert_eq!(page["events"].as_array().unwrap().len(), 0);
    for bad in ["since_seq=-1", "since_seq=abc", "limit=0", "limit=x"] {
        let (s, b) = alice
            .get(&format!("/api/projects/{id}/events?{bad}"))
            .await?;
        assert_eq!((s, code(&b)), (400, "bad_request"), "{bad}");
    }
    let (s, b) = alice.get("/api/projects/p_nope/events").await?;
    assert_eq!((s, code(&b)), (404, "not_found"));
    Ok(())
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let alice = server.api(&server.add_user("alice").await?);
    let mallory = server.api(&server.add_user("mallory").await?);
    let id = alice.new_project("demo").await?;
    let (s, _) = alice
        .update(&id, "c", vec![create_change("ok.txt", b"ok", None)])
        .await?;
    assert_eq!(s, 200);
    let url = format!("/api/projects/{id}/files/update");
    let h = blake3::hash(b"x").to_hex().to_string();
    let change = |path: &str| json!({"path": path, "op": "create", "hash": h, "size": 1});

    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "../x",
            json!({"client_id": "c", "changes": [change("../x")]}),
            422,
            "invalid_path",
        ),
        (
            "/etc/passwd",
            json!({"client_id": "c", "changes": [change("/etc/passwd")]}),
            422,
            "invalid_path",
        ),
        (
            "a//b",
            json!({"client_id": "c", "changes": [change("a//b")]}),
            422,
            "invalid_path",
        ),
        (
            "C:\\x",
            json!({"client_id": "c", "changes": [change("C:\\x")]}),
            422,
            "invalid_path",
        ),
        (
            "NUL",
            json!({"client_id": "c", "changes": [change("a\u{0}b")]}),
            422,
            "invalid_path",
        ),
        (
            "unknown op",
            json!({"client_id": "c", "changes": [{"path": "a", "op": "rename", "hash": h, "size": 1}]}),
            422,
            "unprocessable",
        ),
        (
            "create without hash",
            json!({"client_id": "c", "changes": [{"path": "a", "op": "create", "size": 1}]}),
            422,
            "unprocessable",
        ),
        (
            "bad hash",
            json!({"client_id": "c", "changes": [{"path": "a", "op": "create", "hash": "abc", "size": 1}]}),
            422,
            "invalid_hash",
        ),
        (
            "no changes",
            json!({"client_id": "c", "changes": []}),
            422,
            "unprocessable",
        ),
        (
            "wrong type",
            json!({"client_id": "c", "changes": [{"path": 7, "op": "create"}]}),
            400,
            "bad_request",
        ),
        (
            "missing client_id",
            json!({"changes": [change("a")]}),
            400,
            "bad_request",
        ),
        // One bad change spoils the whole request: all or none.
        (
            "good then bad",
            json!({"client_id": "c", "changes": [change("fine"), change("../bad")]}),
            422,
            "invalid_path",
        ),
    ];
    for (what, body, status, want) in cases {
        let (s, b) = alice.post(&url, &body).await?;
        assert_eq!((s, code(&b)), (status, want), "{what}: {b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}"
        );
    }
    let (s, b) = alice
        .post_raw(&url, "{\"client_id\": \"c\", \"changes\": [")
        .await?;
    assert_eq!((s, code(&b)), (400, "bad_request"), "malformed JSON");
    // Over 32 MiB: refused from its Content-Length, before the body is sent
    // (as curl does it, with `Expect: 100-continue`).
    let (s, b) = over_limit_post(&server, &alice.token, &url, 33 * 1024 * 1024).await?;
    assert_eq!((s, code(&b)), (413, "payload_too_large"));
    // Without a Content-Length (chunked), the limit holds while reading.
    let big = format!(
        "{{\"client_id\": \"c\", \"changes\": [], \"pad\": \"{}\"}}",
        "x".repeat(33 * 1024 * 1024)
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .into_bytes()
        .chunks(1 << 20)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    // The server may answer 413 and close while the client is still sending;
    // either way nothing may be appended (checked below).
    if let Ok((s, b)) = alice.post_raw(&url, body).await {
        assert_eq!((s, code(&b)), (413, "payload_too_large"));
    }
    // That connection may have been cut mid-upload: use fresh ones.
    let alice = server.api(&alice.token);
    // Wrong token, non-member.
    let (s, b) = alice
        .with_token("vst_nope")
        .post(&url, &json!({"client_id": "c", "changes": [change("a")]}))
        .await?;
    assert_eq!((s, code(&b)), (401, "unauthorized"));
    let (s, b) = mallory
        .post(&url, &json!({"client_id": "c", "changes": [change("a")]}))
        .await?;
    assert_eq!((s, code(&b)), (403, "forbidden"));

    // Nothing was appended by any of that.
    let (_, page) = alice.events(&id, 0).await?;
    assert_eq!(page["head_seq"], 1);
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    Ok(())
}

#[tokio::test]
async fn blobs_are_checked_stored_and_served_with_ranges() -> anyhow::Result<()> {
    let server = TestServer::start_with(&["--max-blob-bytes", "100000"]).await?;
    let alice = server.api(&server.add_user("alice").await?);
    let mallory = server.api(&server.add_user("mallory").await?);
    let id = alice.new_project("demo").await?;
    let other = alice.new_project("other").await?;
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let hash = blake3::hash(&bytes).to_hex().to_string();

    let (s, _) = alice.put_blob(&id, &hash, bytes.clone()).await?;
    assert_eq!(s, 201);
    let (s, _) = alice.put_blob(&id, &hash, bytes.clone()).await?;
    assert_eq!(s, 200, "already there");
    let (s, b) = alice
        .put_blob(&id, &hash, b"not those bytes".to_vec())
        .await?;
    assert_eq!((s, code(&b)), (422, "invalid_hash"));
    let wrong = blake3::hash(b"other").to_hex().to_string();
    let (s, b) = alice.put_blob(&id, &wrong, bytes.clone()).await?;
    assert_eq!((s, code(&b)), (422, "invalid_hash"));
    let (s, b) = alice.put_blob(&id, "XYZ", bytes.clone()).await?;
    assert_eq!((s, code(&b)), (422, "invalid_hash"));
    let big = vec![7u8; 100_001];
    let (s, b) = alice
        .put_blob(&id, &blake3::hash(&big).to_hex(), big.clone())
        .await?;
    assert_eq!((s, code(&b)), (413, "payload_too_large"));
    let (s, b) = mallory.put_blob(&id, &hash, bytes.clone()).await?;
    assert_eq!((s, code(&b)), (403, "forbidden"));
    let (s, b) = alice
        .with_token("bad")
        .put_blob(&id, &hash, bytes.clone())
        .await?;
    assert_eq!((s, code(&b)), (401, "unauthorized"));

    let http = reqwest::Client::new();
    let blob_url = alice.url(&format!("/api/projects/{id}/blobs/{hash}"));
    let resp = http.get(&blob_url).bearer_auth(&alice.token).send().await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await?.as_ref(), bytes.as_slice());
    let resp = http
        .head(&blob_url)
        .bearer_auth(&alice.token)
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "50000");
    let resp = http
        .get(&blob_url)
        .bearer_auth(&alice.token)
        .header("Range", "bytes=1000-")
        .send()
        .await?;
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await?.as_ref(), &bytes[1000..]);
    let resp = http
        .get(&blob_url)
        .bearer_auth(&alice.token)
        .header("Range", "bytes=10-19")
        .send()
        .await?;
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await?.as_ref(), &bytes[10..20]);

    let (s, b) = alice
        .get(&format!("/api/projects/{id}/blobs/{wrong}"))
        .await?;
    assert_eq!((s, code(&b)), (404, "not_found"));
    // Blobs belong to their project.
    let (s, _) = alice
        .get(&format!("/api/projects/{other}/blobs/{hash}"))
        .await?;
    assert_eq!(s, 404);
    let (s, b) = mallory
        .get(&format!("/api/projects/{id}/blobs/{hash}"))
        .await?;
    assert_eq!((s, code(&b)), (403, "forbidden"));
    // No temp file is left behind by the refused uploads.
    let leftovers = std::fs::read_dir(server.data_dir().join("tmp"))?.count();
    assert_eq!(leftovers, 0);
    Ok(())
}

#[tokio::test]
async fn too_many_requests_get_429_and_change_nothing() -> anyhow::Result<()> {
    // 2 requests per second per user, bursts of 10.
    let server = TestServer::start_with(&["--rate-limit", "2"]).await?;
    let alice = server.api(&server.add_user("alice").await?);
    let bob = server.api(&server.add_user("bob").await?);
    let id = alice.new_project("busy").await?;
    let mut limited = None;
    for i in 0..30 {
        let (s, b) = alice
            .update(&id, "c", vec![create_change(&format!("f{i}"), b"x", None)])
            .await?;
        if s == 429 {
            limited = Some((i, b));
            break;
        }
        assert_eq!(s, 200);
    }
    let (i, body) = limited.expect("a burst of 30 is limited");
    assert_eq!(code(&body), "rate_limited");
    // The refused change is not in the log; another user is not limited.
    let (_, page) = bob.get("/api/projects").await?;
    assert!(page["projects"].is_array());
    wait_for_head(&server, &alice.token, &id, i as u64).await?;
    Ok(())
}

/// Waits until the limiter lets alice read again, then checks the head.
async fn wait_for_head(
    server: &TestServer,
    token: &str,
    id: &str,
    want: u64,
) -> anyhow::Result<()> {
    let api = server.api(token);
    let page = vidsync_e2e::wait_for("the limiter to let a read through", || async {
        let (s, p) = api.events(id, 0).await.ok()?;
        (s == 200).then_some(p)
    })
    .await?;
    assert_eq!(page["head_seq"], want);
    Ok(())
}
