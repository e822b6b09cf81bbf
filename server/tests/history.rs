//! History, restore and retention through the real router, in process:
//! every version of a path in order with its origin; restore by paths,
//! prefix, whole project, time and `changed_by`, in one transaction and
//! only as new events; every bad input refused with nothing appended; and
//! the retention collector (with its clock passed in) collecting superseded
//! content, never a current version, never an upload racing it.

mod common;

use axum::body::Body;
use axum::http::Request;
use common::{hash, App};
use serde_json::{json, Value};
use vidsync_server::retention::collect;

/// Stores `data` whole (the v1 route; the server cuts it into chunks).
async fn put(app: &App, t: &str, p: &str, data: &[u8]) {
    let req = Request::put(format!("/api/projects/{p}/blobs/{}", hash(data)))
        .header("authorization", format!("Bearer {t}"))
        .body(Body::from(data.to_vec()))
        .unwrap();
    let status = app.send(req).await.status;
    assert!(status == 201 || status == 200, "PUT: {status}");
}

async fn get_blob(app: &App, t: &str, p: &str, h: &str) -> (u16, Vec<u8>, Value) {
    let r = app.get(&format!("/api/projects/{p}/blobs/{h}"), t).await;
    (r.status, r.bytes, r.body)
}

/// Uploads `data` and posts it as `path`'s new version by `client`; its seq.
async fn write(app: &App, t: &str, p: &str, client: &str, path: &str, data: &[u8]) -> u64 {
    put(app, t, p, data).await;
    let r = app
        .update(
            t,
            p,
            client,
            vec![json!({"path": path, "op": "update", "hash": hash(data), "size": data.len()})],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["head_seq"].as_u64().unwrap()
}

async fn delete(app: &App, t: &str, p: &str, client: &str, path: &str) -> u64 {
    let r = app
        .update(t, p, client, vec![json!({"path": path, "op": "delete"})])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["head_seq"].as_u64().unwrap()
}

/// The tree at head as path → hash.
async fn tree(app: &App, t: &str, p: &str) -> Vec<(String, String)> {
    let r = app.get(&format!("/api/projects/{p}/tree"), t).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["hash"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn head(app: &App, t: &str, p: &str) -> u64 {
    let r = app
        .get(&format!("/api/projects/{p}/events?since_seq=0&limit=1"), t)
        .await;
    r.body["head_seq"].as_u64().unwrap()
}

/// Files (not directories) anywhere under `dir`.
fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        files_under(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

async fn restore(app: &App, t: &str, p: &str, body: Value) -> common::Reply {
    app.post(&format!("/api/projects/{p}/restore"), t, body)
        .await
}

#[tokio::test]
async fn history_lists_every_version_of_a_path_newest_first_with_its_origin() {
    let app = App::new().await;
    let t = app.user("alice").await;
    let bob = app.user("bob").await;
    let p = app.project(&t, "h").await;
    write(&app, &t, &p, "laptop", "notes.txt", b"v1").await;
    write(&app, &t, &p, "laptop", "other.txt", b"x").await;
    write(&app, &t, &p, "desktop", "notes.txt", b"v2").await;
    delete(&app, &t, &p, "desktop", "notes.txt").await;
    write(&app, &t, &p, "laptop", "notes.txt", b"v3").await;

    let r = app
        .get(&format!("/api/projects/{p}/history?path=notes.txt"), &t)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let evs = r.body["events"].as_array().unwrap();
    let seqs: Vec<u64> = evs.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [5, 4, 3, 1]);
    let ops: Vec<&str> = evs
        .iter()
        .map(|e| e["change"]["op"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["update", "delete", "update", "update"]);
    assert_eq!(evs[1]["origin"]["client_id"], "desktop");
    assert_eq!(evs[0]["origin"]["client_id"], "laptop");
    assert_eq!(evs[0]["origin"]["user"], "alice");
    assert_eq!(evs[3]["change"]["hash"], hash(b"v1"));
    assert!(evs[0]["created_at"].is_string());
    assert_eq!(r.body["next_before_seq"], Value::Null);

    // Paged: two at a time, continued with next_before_seq.
    let r = app
        .get(
            &format!("/api/projects/{p}/history?path=notes.txt&limit=2"),
            &t,
        )
        .await;
    assert_eq!(r.body["events"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["next_before_seq"], 4);
    let r = app
        .get(
            &format!("/api/projects/{p}/history?path=notes.txt&limit=2&before_seq=4"),
            &t,
        )
        .await;
    let seqs: Vec<u64> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 1]);

    let r = app
        .get(&format!("/api/projects/{p}/history?path=nothing"), &t)
        .await;
    assert_eq!(r.body["events"].as_array().unwrap().len(), 0);
    let r = app
        .get(&format!("/api/projects/{p}/history?path=../x"), &t)
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (422, Some("invalid_path"))
    );
    let r = app.get(&format!("/api/projects/{p}/history"), &t).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = app
        .get(&format!("/api/projects/{p}/history?path=notes.txt"), &bob)
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn restore_appends_the_changes_that_bring_paths_back_and_nothing_more() {
    let app = App::new().await;
    let t = app.user("alice").await;
    let p = app.project(&t, "r").await;
    write(&app, &t, &p, "a", "doc/a.txt", b"a1").await; // 1
    write(&app, &t, &p, "a", "doc/b.txt", b"b1").await; // 2
    write(&app, &t, &p, "a", "top.txt", b"t1").await; // 3
    write(&app, &t, &p, "a", "doc/a.txt", b"a2").await; // 4
    delete(&app, &t, &p, "a", "doc/b.txt").await; // 5
    write(&app, &t, &p, "a", "doc/c.txt", b"c1").await; // 6
    write(&app, &t, &p, "a", "top.txt", b"t2").await; // 7

    // A dry run says what would change and appends nothing.
    let r = restore(
        &app,
        &t,
        &p,
        json!({"client_id": "a", "at_seq": 3, "dry_run": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["events"].as_array().unwrap().len(), 0);
    let mut planned: Vec<(String, String)> = r.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().into(),
                c["op"].as_str().unwrap().into(),
            )
        })
        .collect();
    planned.sort();
    assert_eq!(
        planned,
        [
            ("doc/a.txt".to_string(), "update".to_string()),
            ("doc/b.txt".into(), "create".into()),
            ("doc/c.txt".into(), "delete".into()),
            ("top.txt".into(), "update".into()),
        ]
    );
    assert_eq!(head(&app, &t, &p).await, 7);

    // One path.
    let r = restore(
        &app,
        &t,
        &p,
        json!({"client_id": "a", "at_seq": 3, "paths": ["top.txt"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["events"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["events"][0]["change"]["hash"], hash(b"t1"));
    assert_eq!(r.body["head_seq"], 8);

    // A prefix: doc/ back to seq 3; top.txt (already back) untouched.
    let r = restore(
        &app,
        &t,
        &p,
        json!({"client_id": "a", "at_seq": 3, "prefix": "doc/"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["events"].as_array().unwrap().len(), 3);
    assert_eq!(r.body["head_seq"], 11);
    let mut want = vec![
        ("doc/a.txt".to_string(), hash(b"a1")),
        ("doc/b.txt".into(), hash(b"b1")),
        ("top.txt".into(), hash(b"t1")),
    ];
    want.sort();
    assert_eq!(tree(&app, &t, &p).await, want);
    // The tree at seq 3 is what head is now.
    let r = app
        .get(&format!("/api/projects/{p}/tree?at_seq=3"), &t)
        .await;
    let then: Vec<(String, String)> = r.body["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().into(),
                f["hash"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(then, want);

    // Nothing left to change: nothing appended.
    let r = restore(&app, &t, &p, json!({"client_id": "a", "at_seq": 3})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["events"].as_array().unwrap().len(), 0);
    assert_eq!(r.body["head_seq"], 11);

    // The whole project forward again to seq 7: the past stays in the log.
    let r = restore(&app, &t, &p, json!({"client_id": "a", "at_seq": 7})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["events"].as_array().unwrap().len(), 4);
    let mut want = vec![
        ("doc/a.txt".to_string(), hash(b"a2")),
        ("doc/c.txt".into(), hash(b"c1")),
        ("top.txt".into(), hash(b"t2")),
    ];
    want.sort();
    assert_eq!(tree(&app, &t, &p).await, want);
    assert_eq!(app.events(&t, &p).await.len(), 15);
}

#[tokio::test]
async fn restore_at_a_time_finds_the_last_event_at_or_before_it() {
    let app = App::new().await;
    let t = app.user("alice").await;
    let p = app.project(&t, "t").await;
    write(&app, &t, &p, "a", "f", b"one").await;
    let at = app.events(&t, &p).await[0]["created_at"]
        .as_str()
        .unwrap()
        .to_string();
    // The next event is stamped later than `at` (wait for the clock to move).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while vidsync_server::clock::now_rfc3339() == at {
        assert!(
            std::time::Instant::now() < deadline,
            "the clock does not move"
        );
        tokio::task::yield_now().await;
    }
    write(&app, &t, &p, "a", "f", b"two").await;
    let r = restore(
        &app,
        &t,
        &p,
        json!({"client_id": "a", "at_time": at, "dry_run": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["at_seq"], 1);
    assert_eq!(r.body["changes"][0]["hash"], hash(b"one"));
    let r = restore(
        &app,
        &t,
        &p,
        json!({"client_id": "a", "at_time": "2000-01-01T00:00:00Z", "dry_run": true}),
    )
    .await;
    assert_eq!(r.body["at_seq"], 0);
    assert_eq!(r.body["changes"][0]["op"], "delete");
    let r = restore(
        &app,
        &t,
        &p,
        json!({"client_id": "a", "at_time": "2999-01-01T00:00:00Z", "dry_run": true}),
    )
    .await;
    assert_eq!(r.body["at_seq"], 2);
    assert_eq!(r.body["changes"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn undo_changed_by_reverts_only_that_clients_paths_and_keeps_later_changes_of_others() {
    let app = App::new().await;
    let t = app.user("alice").await;
    let p = app.project(&t, "u").await;
    for (f, b) in [("x", b"x0"), ("y", b"y0"), ("z", b"z0"), ("o", b"o0")] {
        write(&app, &t, &p, "good", f, b).await;
    }
    let point = 4;
    write(&app, &t, &p, "good", "x", b"x-good").await; // someone else, before the burst
    write(&app, &t, &p, "bad", "x", b"x-bad").await;
    write(&app, &t, &p, "bad", "y", b"y-bad").await;
    delete(&app, &t, &p, "bad", "z").await;
    write(&app, &t, &p, "bad", "w", b"w-bad").await;
    write(&app, &t, &p, "good", "y", b"y-good-later").await; // someone else, after
    write(&app, &t, &p, "good", "o", b"o1").await; // someone else's own path

    let r = restore(
        &app,
        &t,
        &p,
        json!({"client_id": "admin", "at_seq": point, "changed_by": "bad"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["kept"], json!(["y"]));
    let mut want = vec![
        ("o".to_string(), hash(b"o1")),
        ("x".into(), hash(b"x-good")),
        ("y".into(), hash(b"y-good-later")),
        ("z".into(), hash(b"z0")),
    ];
    want.sort();
    assert_eq!(tree(&app, &t, &p).await, want);
    for e in r.body["events"].as_array().unwrap() {
        assert_eq!(e["origin"]["client_id"], "admin");
    }
}

#[tokio::test]
async fn bad_restores_are_refused_with_nothing_appended() {
    let app = App::new().await;
    let t = app.user("alice").await;
    let bob = app.user("bob").await;
    let p = app.project(&t, "b").await;
    write(&app, &t, &p, "a", "f", b"one").await;
    write(&app, &t, &p, "a", "f", b"two").await;
    let cases = [
        (json!({"client_id": "a", "at_seq": 9}), 422, "unprocessable"),
        (json!({"client_id": "a"}), 422, "unprocessable"),
        (
            json!({"client_id": "a", "at_seq": 1, "at_time": "2026-01-01T00:00:00Z"}),
            422,
            "unprocessable",
        ),
        (
            json!({"client_id": "a", "at_time": "yesterday"}),
            422,
            "unprocessable",
        ),
        (
            json!({"client_id": "a", "at_seq": 1, "paths": ["../etc/passwd"]}),
            422,
            "invalid_path",
        ),
        (
            json!({"client_id": "a", "at_seq": 1, "paths": []}),
            422,
            "unprocessable",
        ),
        (
            json!({"client_id": "a", "at_seq": 1, "paths": ["f"], "prefix": "d/"}),
            422,
            "unprocessable",
        ),
        (json!({"client_id": "", "at_seq": 1}), 422, "unprocessable"),
        (
            json!({"client_id": "a", "at_seq": 1, "surprise": true}),
            400,
            "bad_request",
        ),
        (json!({"client_id": "a", "at_seq": -1}), 400, "bad_request"),
    ];
    for (body, status, code) in cases {
        let r = restore(&app, &t, &p, body.clone()).await;
        assert_eq!(
            (r.status, r.body["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {}",
            r.body
        );
    }
    let r = restore(&app, &bob, &p, json!({"client_id": "a", "at_seq": 1})).await;
    assert_eq!(r.status, 403);
    assert_eq!(head(&app, &t, &p).await, 2);
}

#[tokio::test]
async fn retention_collects_superseded_content_never_a_current_version_and_restores_of_it_are_410()
{
    let app = App::with(|c| {
        c.keep_versions = std::time::Duration::from_secs(30 * 86_400);
        c.gc_grace = std::time::Duration::ZERO;
    })
    .await;
    let t = app.user("alice").await;
    let p = app.project(&t, "g").await;
    let big: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 251) as u8).collect();
    write(&app, &t, &p, "a", "f", b"version one").await; // 1
    write(&app, &t, &p, "a", "f", &big).await; // 2 (chunked)
    write(&app, &t, &p, "a", "f", b"version three").await; // 3
    write(&app, &t, &p, "a", "gone-later", b"deleted file").await; // 4
    delete(&app, &t, &p, "a", "gone-later").await; // 5
    write(&app, &t, &p, "a", "g", b"current").await; // 6
                                                     // Let the background cutting of the whole uploads finish first.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while files_under(&app.dir.path().join("blobs")) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "whole uploads never cut"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // Within the 30 days: nothing goes.
    let now = time::OffsetDateTime::now_utc();
    let c = collect(&app.state, now).await.unwrap();
    assert_eq!((c.chunks, c.blobs, c.manifests), (0, 0, 0), "{c:?}");
    for v in [
        &b"version one"[..],
        &big,
        b"version three",
        b"deleted file",
        b"current",
    ] {
        assert_eq!(get_blob(&app, &t, &p, &hash(v)).await.0, 200);
    }

    // 31 days on: the superseded and deleted versions go; current ones stay.
    let c = collect(&app.state, now + time::Duration::days(31))
        .await
        .unwrap();
    assert!(c.chunks >= 3 && c.manifests >= 1, "{c:?}");
    for v in [&b"version one"[..], &big, b"deleted file"] {
        let (status, _, body) = get_blob(&app, &t, &p, &hash(v)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (410, Some("gone")),
            "{body}"
        );
    }
    for v in [&b"version three"[..], b"current"] {
        let (status, bytes, _) = get_blob(&app, &t, &p, &hash(v)).await;
        assert_eq!((status, bytes.as_slice()), (200, v));
    }
    // Restoring a collected version: 410, nothing appended.
    let r = restore(
        &app,
        &t,
        &p,
        json!({"client_id": "a", "at_seq": 2, "paths": ["f"]}),
    )
    .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (410, Some("gone")),
        "{}",
        r.body
    );
    let r = restore(&app, &t, &p, json!({"client_id": "a", "at_seq": 4})).await;
    assert_eq!(r.status, 410, "{}", r.body);
    assert_eq!(head(&app, &t, &p).await, 6);
    // A second collection finds nothing more.
    let c = collect(&app.state, now + time::Duration::days(31))
        .await
        .unwrap();
    assert_eq!((c.chunks, c.blobs, c.manifests), (0, 0, 0), "{c:?}");
}

#[tokio::test]
async fn zero_day_retention_collects_at_once_and_uploading_it_again_brings_it_back() {
    let app = App::with(|c| {
        c.keep_versions = std::time::Duration::ZERO;
        c.gc_grace = std::time::Duration::ZERO;
    })
    .await;
    let t = app.user("alice").await;
    let p = app.project(&t, "z").await;
    write(&app, &t, &p, "a", "f", b"old").await;
    write(&app, &t, &p, "a", "f", b"new").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        collect(&app.state, time::OffsetDateTime::now_utc())
            .await
            .unwrap();
        if get_blob(&app, &t, &p, &hash(b"old")).await.0 == 410 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "old content never collected"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(get_blob(&app, &t, &p, &hash(b"new")).await.1, b"new");
    // Uploaded and named again, it is served again.
    write(&app, &t, &p, "a", "f", b"old").await;
    collect(&app.state, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(get_blob(&app, &t, &p, &hash(b"old")).await.1, b"old");
}

/// Uploads and changes race collections that run back to back, with 0-day
/// retention: every version is superseded within milliseconds. Half the
/// changes reuse old content the server already has (the client asks
/// `missing`, is told it is present, and posts the change without
/// uploading). At the end every path's current content is served whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_racing_uploads_and_reuse_loses_nothing() {
    // A grace longer than a client's missing → change round trip here, even
    // on a loaded 2-core machine (300 ms was not: with a release build
    // running beside it, PUT → change took longer and the test failed as
    // the design says it should — past the grace, content is fair game),
    // and shorter than the test: claims expire during it.
    let app = App::with(|c| {
        c.keep_versions = std::time::Duration::ZERO;
        c.gc_grace = std::time::Duration::from_millis(1500);
    })
    .await;
    let t = app.user("alice").await;
    let p = app.project(&t, "race").await;
    let seed: u64 = std::env::var("VIDSYNC_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("seed {seed} (replay with VIDSYNC_SEED={seed})");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = {
        let (state, stop) = (app.state.clone(), stop.clone());
        tokio::spawn(async move {
            let mut runs = 0u32;
            let mut collected = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || runs == 0 {
                let c = collect(&state, time::OffsetDateTime::now_utc())
                    .await
                    .unwrap();
                collected += c.chunks + c.blobs;
                runs += 1;
                tokio::task::yield_now().await;
            }
            (runs, collected)
        })
    };
    let mut x = seed | 1;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut used: Vec<Vec<u8>> = Vec::new();
    let mut current: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    for i in 0..150u64 {
        let path = format!("f{}", rnd() % 6);
        let reuse = !used.is_empty() && rnd() % 2 == 0;
        let data = if reuse {
            used[(rnd() % used.len() as u64) as usize].clone()
        } else {
            let n = 1 + (rnd() % 300_000) as usize;
            let b: Vec<u8> = (0..n).map(|j| (j as u64 ^ i ^ seed) as u8).collect();
            used.push(b.clone());
            b
        };
        let h = hash(&data);
        let r = app
            .post(
                &format!("/api/projects/{p}/chunks/missing"),
                &t,
                json!({"chunks": [], "files": [h]}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        if !r.body["missing_files"].as_array().unwrap().is_empty() {
            put(&app, &t, &p, &data).await;
        }
        // The worst moment: a collection between "present" and the change.
        collect(&app.state, time::OffsetDateTime::now_utc())
            .await
            .unwrap();
        let r = app
            .update(
                &t,
                &p,
                "c",
                vec![json!({"path": path, "op": "update", "hash": h, "size": data.len()})],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let (status, _, body) = get_blob(&app, &t, &p, &h).await;
        assert_eq!(
            status, 200,
            "change {i} ({path}, reused: {reuse}): {body} (seed {seed})"
        );
        current.insert(path, data);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (runs, collected) = collector.await.unwrap();
    println!("{runs} collections, {collected} files collected while uploading");
    assert!(
        collected > 0,
        "the collections collected nothing: the race was not run"
    );
    for (path, data) in &current {
        let (status, bytes, body) = get_blob(&app, &t, &p, &hash(data)).await;
        assert_eq!(status, 200, "{path}: {body} (seed {seed})");
        assert!(bytes == *data, "{path}: wrong bytes (seed {seed})");
    }
}

/// The dedupe race, made to happen: old content the server still has is
/// answered "present", a collection runs, then the change naming it comes.
/// The answer claimed it, so the collection leaves it.
#[tokio::test]
async fn a_collection_between_a_present_answer_and_the_change_keeps_the_content() {
    let grace = std::time::Duration::from_millis(1500);
    let app = App::with(|c| {
        c.keep_versions = std::time::Duration::ZERO;
        c.gc_grace = grace;
    })
    .await;
    let t = app.user("alice").await;
    let p = app.project(&t, "claims").await;
    let old: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    write(&app, &t, &p, "c", "f", &old).await;
    let uploaded = std::time::Instant::now();
    write(&app, &t, &p, "c", "f", b"newer").await;
    // Until the upload's own claim has expired (a condition on the clock,
    // with a deadline): from then on only a new claim can keep it.
    while uploaded.elapsed() <= grace {
        assert!(uploaded.elapsed() < grace * 20, "clock");
        tokio::task::yield_now().await;
    }
    let r = app
        .post(
            &format!("/api/projects/{p}/chunks/missing"),
            &t,
            json!({"chunks": [], "files": [hash(&old)]}),
        )
        .await;
    assert_eq!(
        r.body["missing_files"],
        json!([]),
        "the old content is still stored: {}",
        r.body
    );
    collect(&app.state, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    let r = app
        .update(
            &t,
            &p,
            "c",
            vec![json!({"path": "f", "op": "update", "hash": hash(&old), "size": old.len()})],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (status, bytes, body) = get_blob(&app, &t, &p, &hash(&old)).await;
    assert_eq!(status, 200, "{body}");
    assert!(bytes == old);
    // Once the claim is over, the collection does take what is superseded.
    write(&app, &t, &p, "c", "f", b"newest").await;
    let now = std::time::Instant::now();
    while now.elapsed() <= grace {
        tokio::task::yield_now().await;
    }
    collect(&app.state, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(get_blob(&app, &t, &p, &hash(&old)).await.0, 410);
}
