//! Content v2 through the real router, in process: chunk upload, missing,
//! fetch, manifests, v1 blob routes over chunked content, and every bad
//! input answered 4xx with the JSON body and nothing stored.

mod common;

use axum::body::Body;
use axum::http::Request;
use common::{hash, App, Reply};
use serde_json::{json, Value};
use vidsync_protocol::chunking::{cut_each, CHUNK_MAX};

fn assert_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.bytes));
    assert_eq!(r.body["error"]["code"], code, "{}", r.body);
}

/// Deterministic pseudo-random bytes (xorshift, seed printed by callers).
fn bytes(seed: u64, n: usize) -> Vec<u8> {
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

fn frame(out: &mut Vec<u8>, raw_hash: &[u8; 32], data: &[u8]) {
    out.extend_from_slice(raw_hash);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
}

/// Frames of every chunk of `data`, and its manifest as JSON.
fn framed(data: &[u8]) -> (Vec<u8>, Value) {
    let mut body = Vec::new();
    let c = cut_each(data, |c, b| {
        frame(&mut body, c.hash.as_bytes(), b);
        Ok(())
    })
    .unwrap();
    (body, serde_json::to_value(c.manifest()).unwrap())
}

async fn raw_post(app: &App, t: &str, uri: &str, body: Vec<u8>) -> Reply {
    let req = Request::post(uri)
        .header("authorization", format!("Bearer {t}"))
        .header("content-type", "application/octet-stream")
        .body(Body::from(body))
        .unwrap();
    app.send(req).await
}

/// Stores `data` as chunks + manifest (both must be accepted); returns the
/// manifest.
async fn store_chunked(app: &App, t: &str, p: &str, data: &[u8]) -> Value {
    let (body, manifest) = framed(data);
    let r = raw_post(app, t, &format!("/api/projects/{p}/chunks"), body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .post(
            &format!("/api/projects/{p}/manifests"),
            t,
            json!({"manifests": [manifest.clone()]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    manifest
}

/// A v1 whole `PUT` of `data`; its status.
async fn put_whole(app: &App, t: &str, p: &str, data: &[u8]) -> u16 {
    let req = Request::put(format!("/api/projects/{p}/blobs/{}", hash(data)))
        .header("authorization", format!("Bearer {t}"))
        .body(Body::from(data.to_vec()))
        .unwrap();
    app.send(req).await.status
}

async fn setup() -> (App, String, String) {
    let app = App::new().await;
    let t = app.user("alice").await;
    let p = app.project(&t, "c").await;
    (app, t, p)
}

/// Chunks stored: files, and rows of the small-chunk table.
fn chunk_files(app: &App) -> usize {
    let db = rusqlite::Connection::open(app.dir.path().join("small-chunks.db")).unwrap();
    let rows: i64 = db
        .query_row("SELECT count(*) FROM small_chunks", [], |r| r.get(0))
        .unwrap();
    walk(&app.dir.path().join("chunks")) + rows as usize
}

fn walk(dir: &std::path::Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            if e.path().is_dir() {
                walk(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[tokio::test]
async fn chunks_go_up_framed_then_a_manifest_serves_the_file_whole_and_ranged() {
    let (app, t, p) = setup().await;
    let data = bytes(1, 1_500_000);
    let (body, manifest) = framed(&data);
    let ids: Vec<Value> = manifest["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["hash"].clone())
        .collect();
    assert!(ids.len() > 3);
    let r = app
        .post(
            &format!("/api/projects/{p}/chunks/missing"),
            &t,
            json!({"chunks": ids}),
        )
        .await;
    assert_eq!(r.body["missing"].as_array().unwrap().len(), ids.len());
    let r = raw_post(&app, &t, &format!("/api/projects/{p}/chunks"), body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["stored"].as_u64(), Some(ids.len() as u64));
    let r = raw_post(&app, &t, &format!("/api/projects/{p}/chunks"), body.clone()).await;
    assert_eq!(r.body["present"].as_u64(), Some(ids.len() as u64));
    let r = app
        .post(
            &format!("/api/projects/{p}/chunks/missing"),
            &t,
            json!({"chunks": ids}),
        )
        .await;
    assert_eq!(r.body["missing"], json!([]));
    let r = app
        .post(
            &format!("/api/projects/{p}/manifests"),
            &t,
            json!({"manifests": [manifest]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let h = hash(&data);
    let r = app
        .get(&format!("/api/projects/{p}/manifests/{h}"), &t)
        .await;
    assert_eq!(r.body, manifest);
    let r = app.get(&format!("/api/projects/{p}/blobs/{h}"), &t).await;
    assert_eq!(r.status, 200);
    assert!(r.bytes == data, "whole GET differs");
    for (range, from, to) in [
        ("bytes=100000-700000", 100_000, 700_001),
        ("bytes=-10", data.len() - 10, data.len()),
        ("bytes=1499990-", 1_499_990, data.len()),
    ] {
        let req = Request::get(format!("/api/projects/{p}/blobs/{h}"))
            .header("authorization", format!("Bearer {t}"))
            .header("range", range)
            .body(Body::empty())
            .unwrap();
        let r = app.send(req).await;
        assert_eq!(r.status, 206, "{range}");
        assert!(r.bytes == data[from..to], "{range}");
    }
    let r = app
        .post(
            &format!("/api/projects/{p}/chunks/fetch"),
            &t,
            json!({"chunks": ids}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.bytes == body, "fetch answers the same frames");
}

#[tokio::test]
async fn a_whole_put_is_chunked_and_served_back() {
    let (app, t, p) = setup().await;
    let data = bytes(2, 1_000_000);
    let h = hash(&data);
    let req = Request::put(format!("/api/projects/{p}/blobs/{h}"))
        .header("authorization", format!("Bearer {t}"))
        .body(Body::from(data.clone()))
        .unwrap();
    assert_eq!(app.send(req).await.status, 201);
    // Served whole at once; cut into chunks + manifest shortly after.
    let r = app.get(&format!("/api/projects/{p}/blobs/{h}"), &t).await;
    assert!(r.bytes == data);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = app
            .get(&format!("/api/projects/{p}/manifests/{h}"), &t)
            .await;
        if r.status == 200 && r.body["chunks"].as_array().is_some_and(|c| c.len() > 1) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no manifest after a whole PUT: {}",
            r.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let r = app.get(&format!("/api/projects/{p}/blobs/{h}"), &t).await;
    assert!(r.bytes == data);
}

/// `chunks/fetch` also serves a small file (at most 256 KiB) by its own
/// hash, however it is stored: as several chunks + manifest, or as a whole
/// upload not cut yet; a bigger file's hash stays unknown there (404).
#[tokio::test]
async fn fetch_serves_small_files_by_their_hash_however_they_are_stored() {
    let (app, t, p) = setup().await;
    // 200 KB of noise: several chunks, one manifest.
    let chunked = bytes(11, 200_000);
    let manifest = store_chunked(&app, &t, &p, &chunked).await;
    assert!(manifest["chunks"].as_array().unwrap().len() > 1);
    // 100 KB uploaded whole (served whole until it is cut).
    let whole = bytes(12, 100_000);
    let wh = hash(&whole);
    assert_eq!(put_whole(&app, &t, &p, &whole).await, 201);
    let ch = hash(&chunked);
    let r = app
        .post(
            &format!("/api/projects/{p}/chunks/fetch"),
            &t,
            json!({"chunks": [ch, wh]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.bytes));
    let mut want = Vec::new();
    frame(&mut want, blake3::hash(&chunked).as_bytes(), &chunked);
    frame(&mut want, blake3::hash(&whole).as_bytes(), &whole);
    assert!(r.bytes == want, "frames of both files, in order");
    // Over 256 KiB: not a fetchable id (fetch its chunks, or GET it).
    let big = bytes(13, 300_000);
    store_chunked(&app, &t, &p, &big).await;
    let r = app
        .post(
            &format!("/api/projects/{p}/chunks/fetch"),
            &t,
            json!({"chunks": [hash(&big)]}),
        )
        .await;
    assert_error(&r, 404, "not_found");
}

/// `chunks/missing` with `files` says which whole files the server cannot
/// serve, whatever their form; without `files` the answer is as before.
/// A small file (one chunk under 16 KiB) is a row of the small-chunk
/// table: served whole, by range, to a HEAD, and 416 outside it. One kept
/// as a file by an older server (`chunks/<project>/<2 hex>/<hash>`) is
/// still found: not listed missing, served, fetched.
#[tokio::test]
async fn a_small_file_is_served_from_its_row_and_from_an_older_servers_file() {
    let (app, t, p) = setup().await;
    let row = bytes(11, 1000);
    let (body, _) = framed(&row);
    let r = raw_post(&app, &t, &format!("/api/projects/{p}/chunks"), body).await;
    assert_eq!(r.body["stored"].as_u64(), Some(1), "{}", r.body);
    assert_eq!(chunk_files(&app), 1);
    assert_eq!(
        walk(&app.dir.path().join("chunks")),
        0,
        "kept as a row, not a file"
    );
    let uri = format!("/api/projects/{p}/blobs/{}", hash(&row));
    let r = app.get(&uri, &t).await;
    assert!(r.status == 200 && r.bytes == row, "{}", r.status);
    let ranged = |range: &str, method: &str| {
        Request::builder()
            .method(method)
            .uri(&uri)
            .header("authorization", format!("Bearer {t}"))
            .header("range", range)
            .body(Body::empty())
            .unwrap()
    };
    let r = app.send(ranged("bytes=10-19", "GET")).await;
    assert!(r.status == 206 && r.bytes == row[10..20], "{}", r.status);
    let r = app.send(ranged("bytes=5000-", "GET")).await;
    assert_eq!(r.status, 416);
    let r = app.send(ranged("bytes=0-", "HEAD")).await;
    assert_eq!(r.status, 206);
    assert!(r.bytes.is_empty(), "a HEAD has no body");

    // An older server's layout: the chunk as a file named by its hash.
    let old = bytes(12, 2000);
    let h = hash(&old);
    let dir = blake3::hash(p.as_bytes()).to_hex();
    let fan = app.dir.path().join("chunks").join(&dir[..32]).join(&h[..2]);
    std::fs::create_dir_all(&fan).unwrap();
    std::fs::write(fan.join(&h), &old).unwrap();
    let r = app
        .post(
            &format!("/api/projects/{p}/chunks/missing"),
            &t,
            json!({"chunks": [h]}),
        )
        .await;
    assert_eq!(r.body["missing"], json!([]));
    let r = app.get(&format!("/api/projects/{p}/blobs/{h}"), &t).await;
    assert!(r.status == 200 && r.bytes == old, "{}", r.status);
    let r = app
        .post(
            &format!("/api/projects/{p}/chunks/fetch"),
            &t,
            json!({"chunks": [h]}),
        )
        .await;
    let (frames, _) = framed(&old);
    assert!(r.status == 200 && r.bytes == frames, "{}", r.status);
}

#[tokio::test]
async fn missing_answers_for_whole_files_too() {
    let (app, t, p) = setup().await;
    let chunked = bytes(21, 700_000);
    store_chunked(&app, &t, &p, &chunked).await;
    let whole = bytes(22, 50_000);
    assert_eq!(put_whole(&app, &t, &p, &whole).await, 201);
    let absent = hash(&bytes(23, 30_000));
    let files = json!([hash(&chunked), absent, hash(&whole)]);
    let r = app
        .post(
            &format!("/api/projects/{p}/chunks/missing"),
            &t,
            json!({"chunks": [hash(&chunked)], "files": files}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The whole file's hash is no chunk: a manifest listing it would need it uploaded.
    assert_eq!(r.body["missing"], json!([hash(&chunked)]));
    assert_eq!(r.body["missing_files"], json!([absent]));
    let r = app
        .post(
            &format!("/api/projects/{p}/chunks/missing"),
            &t,
            json!({"chunks": [absent]}),
        )
        .await;
    assert_eq!(r.body, json!({"missing": [absent]}));
    let many: Vec<String> = (0..10_001u32).map(|i| hash(&i.to_le_bytes())).collect();
    let r = app
        .post(
            &format!("/api/projects/{p}/chunks/missing"),
            &t,
            json!({"chunks": many[..5000], "files": many[5000..]}),
        )
        .await;
    assert_error(&r, 422, "unprocessable");
}

/// The hand-over from a whole upload to its chunks (chunks stored, manifest
/// committed, whole copy removed) runs while GETs come in: every GET, at
/// whatever step it lands, gets the bytes (CI once got 404 between the
/// manifest lookup and the whole-copy lookup).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gets_racing_the_cut_of_whole_uploads_always_get_the_bytes() {
    let (app, t, p) = setup().await;
    let app = std::sync::Arc::new(app);
    for round in 0..60u64 {
        let data = std::sync::Arc::new(bytes(1000 + round, 300_000 + round as usize));
        let h = hash(&data);
        assert_eq!(put_whole(&app, &t, &p, &data).await, 201);
        let mut readers = Vec::new();
        for _ in 0..6 {
            let (app, t, p, h, data) = (app.clone(), t.clone(), p.clone(), h.clone(), data.clone());
            readers.push(tokio::spawn(async move {
                for _ in 0..40 {
                    let r = app.get(&format!("/api/projects/{p}/blobs/{h}"), &t).await;
                    assert_eq!(
                        r.status,
                        200,
                        "round {round}: {}",
                        String::from_utf8_lossy(&r.bytes)
                    );
                    assert!(r.bytes == *data, "round {round}: wrong bytes");
                }
            }));
        }
        for r in readers {
            r.await.unwrap();
        }
    }
}

#[tokio::test]
async fn bad_frames_are_refused_and_store_nothing() {
    let (app, t, p) = setup().await;
    let good = bytes(3, 1000);
    let good_hash = *blake3::hash(&good).as_bytes();
    let uri = format!("/api/projects/{p}/chunks");
    // wrong hash in the second frame
    let mut body = Vec::new();
    frame(&mut body, &good_hash, &good);
    frame(&mut body, &good_hash, b"not these bytes");
    assert_error(&raw_post(&app, &t, &uri, body).await, 422, "invalid_hash");
    // oversize frame
    let big = bytes(4, CHUNK_MAX as usize + 1);
    let mut body = Vec::new();
    frame(&mut body, &good_hash, &good);
    frame(&mut body, blake3::hash(&big).as_bytes(), &big);
    assert_error(
        &raw_post(&app, &t, &uri, body).await,
        413,
        "payload_too_large",
    );
    // truncated frame and truncated header
    let mut body = Vec::new();
    frame(&mut body, &good_hash, &good);
    body.truncate(body.len() - 1);
    assert_error(&raw_post(&app, &t, &uri, body).await, 400, "bad_request");
    let mut body = Vec::new();
    frame(&mut body, &good_hash, &good);
    body.extend_from_slice(&[1, 2, 3]);
    assert_error(&raw_post(&app, &t, &uri, body).await, 400, "bad_request");
    assert_eq!(chunk_files(&app), 0, "a refused upload stored a chunk");
}

#[tokio::test]
async fn bad_manifests_and_id_lists_are_refused_and_store_nothing() {
    let (app, t, p) = setup().await;
    let data = bytes(5, 600_000);
    let (body, manifest) = framed(&data);
    // chunks not uploaded yet: missing ones listed
    let r = app
        .post(
            &format!("/api/projects/{p}/manifests"),
            &t,
            json!({"manifests": [manifest]}),
        )
        .await;
    assert_error(&r, 422, "unprocessable");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("missing chunks"));
    assert_eq!(
        raw_post(&app, &t, &format!("/api/projects/{p}/chunks"), body)
            .await
            .status,
        200
    );
    // sizes that do not add up
    let mut m = manifest.clone();
    m["size"] = json!(data.len() + 1);
    let r = app
        .post(
            &format!("/api/projects/{p}/manifests"),
            &t,
            json!({"manifests": [manifest.clone(), m]}),
        )
        .await;
    assert_error(&r, 422, "unprocessable");
    // chunks in the wrong order: sizes add up, the hash does not
    let mut m = manifest.clone();
    m["chunks"].as_array_mut().unwrap().swap(0, 1);
    let r = app
        .post(
            &format!("/api/projects/{p}/manifests"),
            &t,
            json!({"manifests": [m]}),
        )
        .await;
    assert_error(&r, 422, "unprocessable");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("hash to"));
    let h = hash(&data);
    assert_error(
        &app.get(&format!("/api/projects/{p}/manifests/{h}"), &t)
            .await,
        404,
        "not_found",
    );
    // unknown chunk in a fetch; too many ids
    let unknown = hash(b"never uploaded");
    let r = app
        .post(
            &format!("/api/projects/{p}/chunks/fetch"),
            &t,
            json!({"chunks": [unknown]}),
        )
        .await;
    assert_error(&r, 404, "not_found");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&unknown));
    let many: Vec<String> = (0..10_001u32).map(|i| hash(&i.to_be_bytes())).collect();
    let r = app
        .post(
            &format!("/api/projects/{p}/chunks/missing"),
            &t,
            json!({"chunks": many}),
        )
        .await;
    assert_error(&r, 422, "unprocessable");
    let r = app
        .post(
            &format!("/api/projects/{p}/chunks/fetch"),
            &t,
            json!({"chunks": many[..1025]}),
        )
        .await;
    assert_error(&r, 422, "unprocessable");
}

#[tokio::test]
async fn chunk_routes_are_member_only() {
    let (app, _t, p) = setup().await;
    let bob = app.user("bob").await;
    let r = app
        .post(
            &format!("/api/projects/{p}/chunks/missing"),
            &bob,
            json!({"chunks": []}),
        )
        .await;
    assert!(r.status == 403 || r.status == 404, "{}", r.status);
    assert!(r.body["error"]["code"].is_string());
}

/// A chunk damaged while the server runs is never served: cut short, the
/// `GET` answers 404 before any byte; same size but wrong bytes, a fetch
/// answers 404 naming it. Either way it is quarantined, so `chunks/missing`
/// lists it and the next upload stores it whole again.
#[tokio::test]
async fn a_chunk_damaged_while_running_is_not_served_and_counts_as_missing() {
    let (app, t, p) = setup().await;
    let data = bytes(9, 600_000);
    let (body, manifest) = framed(&data);
    let ids: Vec<String> = manifest["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["hash"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.len() > 3);
    let r = raw_post(&app, &t, &format!("/api/projects/{p}/chunks"), body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .post(
            &format!("/api/projects/{p}/manifests"),
            &t,
            json!({"manifests": [manifest]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let dir = blake3::hash(p.as_bytes()).to_hex();
    let file = |id: &str| {
        app.dir
            .path()
            .join("chunks")
            .join(&dir[..32])
            .join(&id[..2])
            .join(id)
    };
    let missing_uri = format!("/api/projects/{p}/chunks/missing");
    let missing = || app.post(&missing_uri, &t, json!({"chunks": ids}));
    let blob = format!("/api/projects/{p}/blobs/{}", hash(&data));

    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(file(&ids[1]))
        .unwrap();
    f.set_len(100).unwrap();
    assert_error(&app.get(&blob, &t).await, 404, "not_found");
    assert_eq!(missing().await.body["missing"], json!([ids[1]]));

    let mut flipped = std::fs::read(file(&ids[2])).unwrap();
    flipped[7] ^= 0xff;
    std::fs::write(file(&ids[2]), flipped).unwrap();
    let r = app
        .post(
            &format!("/api/projects/{p}/chunks/fetch"),
            &t,
            json!({"chunks": [ids[2]]}),
        )
        .await;
    assert_error(&r, 404, "not_found");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&ids[2]),
        "{}",
        r.body
    );
    assert_eq!(missing().await.body["missing"], json!([ids[1], ids[2]]));

    let r = raw_post(&app, &t, &format!("/api/projects/{p}/chunks"), body).await;
    assert_eq!(
        (r.status, r.body["stored"].as_u64()),
        (200, Some(2)),
        "{}",
        r.body
    );
    assert_eq!(missing().await.body["missing"], json!([]));
    let r = app.get(&blob, &t).await;
    assert_eq!(r.status, 200);
    assert!(r.bytes == data, "served whole after the upload");
}
