//! A hostile server: a test double that speaks the API but sends paths
//! that escape the folder, a path through a symlink, and a blob whose bytes
//! do not match its hash. The client writes nothing outside its folder,
//! logs and skips each bad event, and its badge says `error`. The double
//! speaks v1 content only (whole blobs): the client's chunk requests get
//! 404 and it falls back to the blob routes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use vidsync_e2e::{ClientDir, RunningClient};

struct Double {
    events: Vec<Value>,
    blobs: HashMap<String, Vec<u8>>,
}

fn hash(b: &[u8]) -> String {
    blake3::hash(b).to_hex().to_string()
}

fn event(seq: u64, path: &str, bytes: &[u8]) -> Value {
    json!({
        "seq": seq, "project_id": "p_evil",
        "change": {"path": path, "op": "create", "hash": hash(bytes), "size": bytes.len(), "mtime": null},
        "origin": {"client_id": "evil", "user": "mallory"}, "created_at": "2026-11-22T00:00:00Z"
    })
}

async fn events(
    State(d): State<Arc<Double>>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let since: u64 = q.get("since_seq").and_then(|s| s.parse().ok()).unwrap_or(0);
    let evs: Vec<&Value> = d
        .events
        .iter()
        .filter(|e| e["seq"].as_u64().unwrap_or(0) > since)
        .collect();
    Json(json!({"events": evs, "head_seq": d.events.len()}))
}

/// `GET tree`: the newest event of each path as the double's "files", so
/// join meets the same hostile paths through the tree.
async fn tree(State(d): State<Arc<Double>>) -> Json<Value> {
    let files: Vec<Value> = d
        .events
        .iter()
        .map(|e| {
            let c = &e["change"];
            json!({"path": c["path"], "hash": c["hash"], "size": c["size"], "mtime": null, "seq": e["seq"]})
        })
        .collect();
    Json(json!({"at_seq": d.events.len(), "files": files, "next": null}))
}

async fn blob(State(d): State<Arc<Double>>, Path((_, h)): Path<(String, String)>) -> Response {
    match d.blobs.get(&h) {
        Some(b) => b.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[tokio::test]
async fn a_hostile_server_cannot_write_outside_the_folder() -> anyhow::Result<()> {
    let good = b"good bytes".to_vec();
    let claimed = b"what the hash says".to_vec();
    let outside = tempfile::tempdir()?;
    let d = Arc::new(Double {
        events: vec![
            event(1, "../escape.txt", &good),
            event(2, "/tmp/abs-escape.txt", &good),
            event(3, "sub/mismatch.txt", &claimed),
            event(4, "sub/good.txt", &good),
            event(5, "link/pwned.txt", &good),
            event(6, "C:\\evil.txt", &good),
        ],
        blobs: [
            (hash(&good), good.clone()),
            (hash(&claimed), b"other bytes entirely".to_vec()),
        ]
        .into_iter()
        .collect(),
    });
    let app = Router::new()
        .route("/api/projects", get(|| async { Json(json!({"projects": []})) }))
        .route(
            "/api/invites/{code}/accept",
            post(|| async {
                Json(json!({"id": "p_evil", "name": "evil", "owner": "mallory", "role": "member", "head_seq": 6, "created_at": "2026-11-22T00:00:00Z"}))
            }),
        )
        .route("/api/projects/{id}/events", get(events))
        .route("/api/projects/{id}/tree", get(tree))
        .route("/api/projects/{id}/blobs/{hash}", get(blob))
        .with_state(d);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let c = ClientDir::new()?;
    // A symlink inside the folder that points outside it.
    std::os::unix::fs::symlink(outside.path(), c.folder.join("link"))?;
    c.ok(&["login", "--server", &url, "--token", "vst_whatever"])
        .await?;
    c.ok(&[
        "set",
        "--transport",
        "polling-only",
        "--poll-interval-ms",
        "200",
    ])
    .await?;
    let folder = c.folder.to_string_lossy().to_string();
    let out = c
        .cmd(&["join", "CODE1", &folder, "--mode", "receive"])
        .await?;
    assert!(out.ok, "join itself works: {out:?}");
    assert!(
        out.stderr.contains("skipped"),
        "bad events are reported: {}",
        out.stderr
    );

    let mut run: RunningClient = c.run(&[])?;
    let st = run
        .wait_status("error badge", |s| {
            s["badge"]["kind"] == "error" && s["last_seq"] == 6
        })
        .await?;
    assert!(st["status"]["error"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    let errors: Vec<String> = run
        .seen
        .iter()
        .filter(|v| v["type"] == "error")
        .map(|v| v["message"].to_string())
        .collect();
    assert!(errors.len() >= 4, "each bad event is reported: {errors:?}");
    run.stop().await?;

    // Only the good file exists; nothing escaped.
    let parent = c.folder.parent().unwrap();
    assert!(!parent.join("escape.txt").exists());
    assert!(!std::path::Path::new("/tmp/abs-escape.txt").exists());
    assert!(
        !outside.path().join("pwned.txt").exists(),
        "nothing written through the symlink"
    );
    assert_eq!(std::fs::read(c.folder.join("sub/good.txt"))?, good);
    assert!(
        !c.folder.join("sub/mismatch.txt").exists(),
        "mismatched bytes are not kept"
    );
    let mut names: Vec<String> = std::fs::read_dir(c.folder.join("sub"))?
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(names, vec!["good.txt"], "no temp file left behind");
    Ok(())
}
