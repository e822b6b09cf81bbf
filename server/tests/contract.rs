//! Contract cases of PROTOCOL.md through the real router, in process:
//! every error has the JSON body (405, 416, unknown routes), `Range`
//! handling, names and paths that could spoof what a feed shows, and the
//! per-user project limit.

mod common;

use axum::body::Body;
use axum::http::{Method, Request};
use common::{change, hash, App, Reply};
use serde_json::{json, Value};

fn assert_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.bytes));
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "{status}"
    );
    assert_eq!(r.body["error"]["code"], code, "{}", r.body);
    assert!(r.body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

async fn blob_app() -> (App, String, String, Vec<u8>, String) {
    let app = App::new().await;
    let t = app.user("alice").await;
    let p = app.project(&t, "b").await;
    let bytes: Vec<u8> = (0..1000u32).map(|i| (i % 256) as u8).collect();
    let h = hash(&bytes);
    let req = Request::put(format!("/api/projects/{p}/blobs/{h}"))
        .header("authorization", format!("Bearer {t}"))
        .body(Body::from(bytes.clone()))
        .unwrap();
    assert_eq!(app.send(req).await.status, 201);
    (app, t, p, bytes, h)
}

async fn get_range(app: &App, t: &str, p: &str, h: &str, range: &str) -> Reply {
    let req = Request::get(format!("/api/projects/{p}/blobs/{h}"))
        .header("authorization", format!("Bearer {t}"))
        .header("range", range)
        .body(Body::empty())
        .unwrap();
    app.send(req).await
}

#[tokio::test]
async fn method_not_allowed_has_the_json_body_and_allow() {
    let app = App::new().await;
    let t = app.user("alice").await;
    let r = app.call(Method::DELETE, "/api/projects", &t, None).await;
    assert_error(&r, 405, "method_not_allowed");
    assert!(r.headers.get("allow").is_some());
    let r = app.call(Method::POST, "/health", &t, Some(json!({}))).await;
    assert_error(&r, 405, "method_not_allowed");
    let p = app.project(&t, "x").await;
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/projects/{p}/blobs/{}", hash(b"")),
            &t,
            None,
        )
        .await;
    assert_error(&r, 405, "method_not_allowed");
}

#[tokio::test]
async fn unknown_routes_have_the_json_body() {
    let app = App::new().await;
    let t = app.user("alice").await;
    for uri in ["/nope", "/api/nope", "/api/projects/x/y/z"] {
        let r = app.get(uri, &t).await;
        assert_error(&r, 404, "not_found");
    }
}

#[tokio::test]
async fn unsatisfiable_range_is_416_with_the_json_body() {
    let (app, t, p, _, h) = blob_app().await;
    let r = get_range(&app, &t, &p, &h, "bytes=5000-").await;
    assert_error(&r, 416, "range_not_satisfiable");
    assert_eq!(
        r.headers.get("content-range").and_then(|v| v.to_str().ok()),
        Some("bytes */1000")
    );
}

#[tokio::test]
async fn single_ranges_are_206() {
    let (app, t, p, bytes, h) = blob_app().await;
    let r = get_range(&app, &t, &p, &h, "bytes=10-19").await;
    assert_eq!(r.status, 206);
    assert_eq!(r.bytes, bytes[10..20]);
    let r = get_range(&app, &t, &p, &h, "bytes=990-").await;
    assert_eq!((r.status, r.bytes.as_slice()), (206, &bytes[990..]));
}

#[tokio::test]
async fn multi_range_and_unknown_units_get_the_whole_blob() {
    let (app, t, p, bytes, h) = blob_app().await;
    for range in [
        "bytes=0-9,20-29",
        "bytes=0-0,-1",
        "items=0-5",
        "bytes=9-2",
        "bytes=x",
    ] {
        let r = get_range(&app, &t, &p, &h, range).await;
        assert_eq!(
            r.status,
            200,
            "{range}: {}",
            String::from_utf8_lossy(&r.bytes)
        );
        assert_eq!(r.bytes, bytes, "{range}");
    }
}

#[tokio::test]
async fn bidi_controls_in_paths_are_422_invalid_path() {
    let app = App::new().await;
    let t = app.user("alice").await;
    let p = app.project(&t, "x").await;
    for path in ["report\u{202E}fdp.exe", "a/\u{2067}b", "\u{200E}x"] {
        let r = app
            .update(&t, &p, "c", vec![change(path, "create", Some(b"1"), None)])
            .await;
        assert_error(&r, 422, "invalid_path");
    }
    assert!(app.events(&t, &p).await.is_empty());
}

#[tokio::test]
async fn spoofing_characters_in_project_names_are_422() {
    let app = App::new().await;
    let t = app.user("alice").await;
    for name in [
        "pay\u{202E}lanigiro",
        "a\u{2066}b",
        "zero\u{200B}width",
        "bom\u{FEFF}",
        "wj\u{2060}",
    ] {
        let r = app.post("/api/projects", &t, json!({ "name": name })).await;
        assert_error(&r, 422, "unprocessable");
    }
    let r = app.get("/api/projects", &t).await;
    assert_eq!(r.body["projects"], Value::Array(vec![]));
    // Ordinary non-ASCII names stay fine.
    app.project(&t, "Fotos für Oma — 2026").await;
}

#[tokio::test]
async fn a_user_may_own_at_most_max_projects() {
    let app = App::with(|c| c.max_projects_per_user = 3).await;
    let t = app.user("alice").await;
    let other = app.user("bob").await;
    for i in 0..3 {
        app.project(&t, &format!("p{i}")).await;
    }
    let r = app
        .post("/api/projects", &t, json!({ "name": "one more" }))
        .await;
    assert_error(&r, 403, "forbidden");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("3 projects"));
    assert_eq!(
        app.get("/api/projects", &t).await.body["projects"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // Someone else's quota is their own.
    app.project(&other, "bob's").await;
}

#[tokio::test]
async fn the_project_limit_holds_under_concurrent_creates() {
    let app = std::sync::Arc::new(App::with(|c| c.max_projects_per_user = 5).await);
    let t = app.user("alice").await;
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (app, t) = (app.clone(), t.clone());
            tokio::spawn(async move {
                app.post("/api/projects", &t, json!({ "name": format!("p{i}") }))
                    .await
                    .status
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            201 => created += 1,
            403 => {}
            other => panic!("status {other}"),
        }
    }
    assert_eq!(created, 5);
}

#[tokio::test]
async fn limits_tell_the_blob_limit_to_a_signed_in_caller() {
    let app = App::with(|c| c.max_blob_bytes = 12_345).await;
    let t = app.user("alice").await;
    let r = app.get("/api/limits", &t).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({ "max_blob_bytes": 12_345 }));
    let r = app.get("/api/limits", "not-a-token").await;
    assert_error(&r, 401, "unauthorized");
}
