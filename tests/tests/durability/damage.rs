//! Damaged stored content: a chunk file cut short (by an old server's full
//! disk, or by hand) is quarantined at start-up and never served (404), is
//! listed by `chunks/missing`, and the next upload of it (a whole `PUT` or a
//! chunk upload) stores it whole again.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use vidsync_client::content::frames;
use vidsync_e2e::{create_change, wait_for, Api, TestServer};
use vidsync_protocol::chunking::cut_each;

/// Where the server keeps a whole blob (see `server/src/blob_store.rs`).
fn blob_file(data: &Path, project: &str, hash: &str) -> PathBuf {
    store_file(&data.join("blobs"), project, hash)
}

/// Where the server keeps a chunk (see `server/src/chunks/store.rs`).
fn chunk_file(data: &Path, project: &str, hash: &str) -> PathBuf {
    store_file(&data.join("chunks"), project, hash)
}

fn store_file(root: &Path, project: &str, hash: &str) -> PathBuf {
    let dir = blake3::hash(project.as_bytes()).to_hex();
    root.join(&dir[..32]).join(&hash[..2]).join(hash)
}

fn hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Pseudo-random bytes (xorshift) whose cut points these tests count on:
/// `loose` (50,000 bytes) is one chunk, `named` several.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `data`'s chunks as (hex id, bytes), and its manifest as JSON.
fn chunks_of(data: &[u8]) -> (Vec<(String, Vec<u8>)>, Value) {
    let mut chunks = Vec::new();
    let cut = cut_each(data, |c, b| {
        chunks.push((c.hash.to_hex(), b.to_vec()));
        Ok(())
    })
    .expect("chunking in memory");
    let manifest = serde_json::to_value(cut.manifest()).expect("manifest json");
    (chunks, manifest)
}

async fn post_chunks(
    api: &Api,
    project: &str,
    chunks: &[&(String, Vec<u8>)],
) -> anyhow::Result<(u16, Value)> {
    let mut body = Vec::new();
    for (id, bytes) in chunks {
        frames::encode(&mut body, &id.parse()?, bytes);
    }
    api.post_frames(project, body).await
}

async fn missing(api: &Api, project: &str, ids: &[&str]) -> anyhow::Result<Vec<String>> {
    let (s, body) = api
        .post(
            &format!("/api/projects/{project}/chunks/missing"),
            &json!({ "chunks": ids }),
        )
        .await?;
    anyhow::ensure!(s == 200, "chunks/missing: {s} {body}");
    Ok(serde_json::from_value(body["missing"].clone())?)
}

/// The bytes a `GET …/blobs/{hash}` answers, with its status.
async fn get_blob(api: &Api, project: &str, bytes: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
    api.get_bytes(
        &format!("/api/projects/{project}/blobs/{}", hex(bytes)),
        None,
    )
    .await
}

async fn assert_served_whole(api: &Api, project: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let (s, got) = get_blob(api, project, bytes).await?;
    assert_eq!(s, 200);
    assert!(
        got == bytes,
        "served {} bytes, not the {} stored",
        got.len(),
        bytes.len()
    );
    Ok(())
}

/// The server cuts a whole `PUT` into chunks after answering, then removes
/// the whole copy: wait for that.
async fn wait_chunked(server: &TestServer, project: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let whole = blob_file(server.data_dir(), project, &hex(bytes));
    wait_for("a whole PUT cut into chunks", || async {
        (!whole.exists()).then_some(())
    })
    .await
}

/// Cuts a stored chunk short where the server keeps it: a chunk under the
/// chunker's minimum is a row of `small-chunks.db` (see
/// `server/src/chunks/small.rs`), a bigger one a file.
fn cut_short_chunk(
    data: &Path,
    project: &str,
    hash: &str,
    whole: usize,
    len: u64,
) -> anyhow::Result<()> {
    if whole >= vidsync_protocol::chunking::CHUNK_MIN as usize {
        return cut_short(&chunk_file(data, project, hash), len);
    }
    let key = hash.parse::<vidsync_protocol::ContentHash>()?;
    let db = rusqlite::Connection::open(data.join("small-chunks.db"))?;
    let n = db.execute(
        "UPDATE small_chunks SET bytes = substr(bytes, 1, ?1) WHERE project_id = ?2 AND hash = ?3",
        rusqlite::params![len as i64, project, &key.as_bytes()[..]],
    )?;
    anyhow::ensure!(n == 1, "small chunk {hash} is not stored");
    Ok(())
}

fn cut_short(file: &Path, len: u64) -> anyhow::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)?
        .set_len(len)?;
    Ok(())
}

/// A chunk damaged while the server was down is quarantined at start-up,
/// whatever names it: a manifest (its size is compared), the event log as a
/// one-chunk file, or nothing (a chunk uploaded, its change not posted:
/// its bytes are hashed). Not served (404, JSON body); uploaded again,
/// whole or chunk-wise, served whole.
#[tokio::test]
async fn damaged_chunks_are_quarantined_at_start_up() -> anyhow::Result<()> {
    let mut server = TestServer::start().await?;
    let token = server.add_user("alice").await?;
    let api = server.api(&token);
    let id = api.new_project("q").await?;
    let named = noise(1, 400_000);
    let small = noise(2, 10_000);
    let loose = noise(3, 50_000);
    let intact = b"left alone".to_vec();
    for b in [&named, &small, &loose, &intact] {
        assert_eq!(api.put_blob(&id, &hex(b), b.clone()).await?.0, 201);
        wait_chunked(&server, &id, b).await?;
    }
    // `named`, `small` and `intact` are in the log (with their size); `loose` is not.
    let changes = vec![
        create_change("named", &named, None),
        create_change("small", &small, None),
        create_change("intact", &intact, None),
    ];
    let (s, body) = api.update(&id, "a", changes).await?;
    assert_eq!(s, 200, "{body}");
    let (named_chunks, _) = chunks_of(&named);
    let (small_chunks, _) = chunks_of(&small);
    let (loose_chunks, _) = chunks_of(&loose);
    assert!(named_chunks.len() > 2, "{} chunks", named_chunks.len());
    assert_eq!((small_chunks.len(), loose_chunks.len()), (1, 1));
    let damaged = [&named_chunks[1], &small_chunks[0], &loose_chunks[0]];

    server.stop().await?;
    for (chunk, bytes) in damaged {
        let half = bytes.len() as u64 / 2;
        cut_short_chunk(server.data_dir(), &id, chunk, bytes.len(), half)?;
    }
    server.restart().await?;
    let api = server.api(&token);
    for b in [&named, &small, &loose] {
        let (s, body) = api
            .get(&format!("/api/projects/{id}/blobs/{}", hex(b)))
            .await?;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (404, Some("not_found")),
            "damaged content is not served: {body}"
        );
    }
    let quarantined = std::fs::read_dir(server.data_dir().join("quarantine"))?.count();
    assert_eq!(quarantined, 3);
    assert_served_whole(&api, &id, &intact).await?;

    // Uploaded again, whole: 201 (it was not stored whole), then served.
    assert_eq!(api.put_blob(&id, &hex(&named), named.clone()).await?.0, 201);
    assert_served_whole(&api, &id, &named).await?;
    wait_chunked(&server, &id, &named).await?;
    assert_served_whole(&api, &id, &named).await?;
    // Uploaded again chunk-wise: the chunk is stored, the content served.
    for (b, chunk) in [(&small, damaged[1]), (&loose, damaged[2])] {
        let (s, body) = post_chunks(&api, &id, &[chunk]).await?;
        assert_eq!((s, body["stored"].as_u64()), (200, Some(1)), "{body}");
        assert_served_whole(&api, &id, b).await?;
    }
    Ok(())
}

/// A damaged chunk under a stored manifest (found while the server runs) is
/// rewritten by the next whole upload of that hash, which answers 201 (the
/// content was not whole), not 200 "already there"; a chunk upload
/// rewrites it too.
#[tokio::test]
async fn a_damaged_stored_copy_is_replaced_by_the_next_upload() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let token = server.add_user("alice").await?;
    let api = server.api(&token);
    let id = api.new_project("r").await?;
    let bytes = noise(4, 300_000);
    let hash = hex(&bytes);
    assert_eq!(api.put_blob(&id, &hash, bytes.clone()).await?.0, 201);
    wait_chunked(&server, &id, &bytes).await?;
    let (chunks, _) = chunks_of(&bytes);
    let chunk = &chunks[1];
    let file = chunk_file(server.data_dir(), &id, &chunk.0);
    let whole_size = chunk.1.len() as u64;

    cut_short(&file, 1000)?;
    assert_eq!(api.put_blob(&id, &hash, bytes.clone()).await?.0, 201);
    assert_served_whole(&api, &id, &bytes).await?;
    wait_chunked(&server, &id, &bytes).await?;
    assert_eq!(std::fs::metadata(&file)?.len(), whole_size);
    assert_served_whole(&api, &id, &bytes).await?;
    assert_eq!(api.put_blob(&id, &hash, bytes.clone()).await?.0, 200);
    wait_chunked(&server, &id, &bytes).await?;

    cut_short(&file, 1000)?;
    let (s, body) = post_chunks(&api, &id, &[chunk]).await?;
    assert_eq!(
        (s, body["stored"].as_u64(), body["present"].as_u64()),
        (200, Some(1), Some(0)),
        "{body}"
    );
    assert_eq!(std::fs::metadata(&file)?.len(), whole_size);
    assert_served_whole(&api, &id, &bytes).await?;
    Ok(())
}

/// `chunks/missing` lists a chunk found damaged (here at start-up), so a
/// sender uploads it again; once it has, nothing is missing.
#[tokio::test]
async fn chunks_missing_lists_a_damaged_chunk() -> anyhow::Result<()> {
    let mut server = TestServer::start().await?;
    let token = server.add_user("alice").await?;
    let api = server.api(&token);
    let id = api.new_project("m").await?;
    let data = noise(5, 500_000);
    let (chunks, manifest) = chunks_of(&data);
    let all: Vec<&(String, Vec<u8>)> = chunks.iter().collect();
    let ids: Vec<&str> = chunks.iter().map(|(h, _)| h.as_str()).collect();
    let (s, body) = post_chunks(&api, &id, &all).await?;
    assert_eq!(s, 200, "{body}");
    let (s, body) = api
        .post(
            &format!("/api/projects/{id}/manifests"),
            &json!({ "manifests": [manifest] }),
        )
        .await?;
    assert_eq!(s, 200, "{body}");
    assert_eq!(missing(&api, &id, &ids).await?, Vec::<String>::new());

    server.stop().await?;
    cut_short(&chunk_file(server.data_dir(), &id, &chunks[2].0), 10)?;
    server.restart().await?;
    let api = server.api(&token);
    assert_eq!(missing(&api, &id, &ids).await?, vec![chunks[2].0.clone()]);

    let (s, body) = post_chunks(&api, &id, &[&chunks[2]]).await?;
    assert_eq!((s, body["stored"].as_u64()), (200, Some(1)), "{body}");
    assert_eq!(missing(&api, &id, &ids).await?, Vec::<String>::new());
    assert_served_whole(&api, &id, &data).await?;
    Ok(())
}
