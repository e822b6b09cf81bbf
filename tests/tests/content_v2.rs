//! Content v2 against the real binary: a 64 MiB whole `PUT` served back
//! byte-identical with and without `Range`; an edited version uploaded
//! chunk-wise moves only its new chunks (bytes counted); a `kill -9` in the
//! middle of a chunk upload leaves no chunk of it stored or served.

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use vidsync_client::content::frames;
use vidsync_e2e::moves::bytes;
use vidsync_e2e::TestServer;
use vidsync_protocol::chunking::cut_each;

/// (chunk ids, frames of the chunks for which `keep` is true, manifest).
fn chunked(data: &[u8], keep: impl Fn(&str) -> bool) -> (Vec<String>, Vec<u8>, Value) {
    let mut ids = Vec::new();
    let mut frames = Vec::new();
    let c = cut_each(data, |c, b| {
        let hex = c.hash.to_hex();
        if keep(&hex) {
            frames::encode(&mut frames, &c.hash, b);
        }
        ids.push(hex);
        Ok(())
    })
    .expect("chunking in memory");
    (
        ids,
        frames,
        serde_json::to_value(c.manifest()).expect("manifest json"),
    )
}

#[tokio::test]
async fn whole_put_ranged_get_and_a_chunkwise_edit_moving_only_new_chunks() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let api = server.api(&server.add_user("alice").await?);
    let p = api.new_project("big").await?;
    let data = bytes(64, 64 * 1024 * 1024);
    let h = blake3::hash(&data).to_hex().to_string();
    assert_eq!(api.put_blob(&p, &h, data.clone()).await?.0, 201);
    let blob = format!("/api/projects/{p}/blobs/{h}");
    let (s, got) = api.get_bytes(&blob, None).await?;
    assert_eq!(s, 200);
    assert!(got == data, "whole GET differs");
    let (s, got) = api
        .get_bytes(&blob, Some("bytes=30000000-40000000"))
        .await?;
    assert_eq!(s, 206);
    assert!(got == data[30_000_000..40_000_001], "ranged GET differs");

    // The server cuts a whole PUT into chunks after answering: wait for it.
    let man = format!("/api/projects/{p}/manifests/{h}");
    vidsync_e2e::wait_for("the whole PUT's manifest", || async {
        let (s, body) = api.get(&man).await.ok()?;
        (s == 200).then_some(body)
    })
    .await?;

    // Overwrite 1 MiB in the middle, then move only what the server lacks.
    let mut edited = data.clone();
    edited[32 << 20..33 << 20].copy_from_slice(&bytes(7, 1 << 20));
    let (ids, _, manifest) = chunked(&edited, |_| false);
    let (s, body) = api
        .post(
            &format!("/api/projects/{p}/chunks/missing"),
            &json!({ "chunks": ids }),
        )
        .await?;
    assert_eq!(s, 200, "{body}");
    let missing: Vec<String> = serde_json::from_value(body["missing"].clone())?;
    let (_, frames, _) = chunked(&edited, |hex| missing.iter().any(|m| m == hex));
    let sent = frames.len();
    println!(
        "chunk-wise edit: {} of {} chunks missing, {sent} bytes sent",
        missing.len(),
        ids.len()
    );
    assert!(sent <= 3 << 20, "a 1 MiB edit sent {sent} bytes");
    assert!(sent >= 1 << 20, "the edit's bytes must go up: {sent}");
    let (s, body) = api.post_frames(&p, frames).await?;
    assert_eq!(
        (s, body["stored"].as_u64()),
        (200, Some(missing.len() as u64)),
        "{body}"
    );
    let (s, body) = api
        .post(
            &format!("/api/projects/{p}/manifests"),
            &json!({ "manifests": [manifest] }),
        )
        .await?;
    assert_eq!(s, 200, "{body}");
    let h2 = blake3::hash(&edited).to_hex().to_string();
    let (s, got) = api
        .get_bytes(&format!("/api/projects/{p}/blobs/{h2}"), None)
        .await?;
    assert_eq!(s, 200);
    assert!(got == edited, "edited GET differs");
    Ok(())
}

#[tokio::test]
async fn kill_9_during_a_chunk_upload_stores_none_of_it() -> anyhow::Result<()> {
    let mut server = TestServer::start().await?;
    let token = server.add_user("alice").await?;
    let api = server.api(&token);
    let p = api.new_project("killed").await?;
    let data = bytes(9, 8 << 20);
    let (ids, frames, _) = chunked(&data, |_| true);
    // Raw HTTP: announce the whole body, send half, then kill the server.
    let addr = api
        .base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr).await?;
    let head = format!(
        "POST /api/projects/{p}/chunks HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n",
        frames.len()
    );
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(&frames[..frames.len() / 2]).await?;
    sock.flush().await?;
    server.kill9().await?;
    drop(sock);
    server.restart().await?;
    let api = server.api(&token);
    let (s, body) = api
        .post(
            &format!("/api/projects/{p}/chunks/missing"),
            &json!({ "chunks": ids }),
        )
        .await?;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body["missing"].as_array().map(Vec::len),
        Some(ids.len()),
        "a chunk of the cut upload is stored"
    );
    let (s, body) = api
        .post(
            &format!("/api/projects/{p}/chunks/fetch"),
            &json!({ "chunks": [ids[0]] }),
        )
        .await?;
    assert_eq!(s, 404, "{body}");
    // And the same upload whole, after the restart, is stored.
    let (s, body) = api.post_frames(&p, frames).await?;
    assert_eq!(
        (s, body["stored"].as_u64()),
        (200, Some(ids.len() as u64)),
        "{body}"
    );
    Ok(())
}
