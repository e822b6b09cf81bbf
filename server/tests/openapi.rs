//! `GET /api/openapi.json` (issue 12): an OpenAPI 3.1 document, served
//! without a token, that lists every route the router has — and only those.
//!
//! Both come from `vidsync_server::routes()`, where each handler is
//! registered by its `#[utoipa::path]`. This test holds the two together
//! from the outside: every documented (method, path) is answered by a
//! handler (never the 404 fallback, never 405), every other method on a
//! documented path is 405, and no source file registers a route any other
//! way (which would serve it undocumented).

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use axum::http::Method;
use common::App;
use serde_json::Value;

const METHODS: [&str; 6] = ["get", "head", "post", "put", "delete", "patch"];

/// (method, path template) of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((m.to_string(), path.clone()));
            }
        }
    }
    out
}

/// A template with its `{params}` filled in.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|seg| match seg {
            "{hash}" => "ab".repeat(32),
            s if s.starts_with('{') => "p0000000000000000".to_string(),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn the_document_is_served_without_a_token_and_is_openapi_3_1() {
    let app = App::new().await;
    let r = app.get("/api/openapi.json", "").await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.bytes));
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    assert_eq!(r.body["openapi"], "3.1.0");
    assert!(r.body["components"]["securitySchemes"]["token"].is_object());
    // Every $ref points at a schema the document has.
    let text = String::from_utf8_lossy(&r.bytes).into_owned();
    let schemas = r.body["components"]["schemas"]
        .as_object()
        .expect("schemas");
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap_or_default();
        assert!(schemas.contains_key(name), "dangling $ref {name}");
    }
}

#[tokio::test]
async fn every_route_the_router_has_is_documented_and_no_other() {
    let app = App::new().await;
    let token = app.user("alice").await;
    let doc = app.get("/api/openapi.json", "").await.body;
    let ops = operations(&doc);
    // The areas: projects, invites, events, blobs, chunks, manifests,
    // tree, health, metrics, this document.
    assert!(ops.len() >= 17, "{ops:?}");
    let documented_paths: BTreeSet<&String> = ops.iter().map(|(_, p)| p).collect();
    for path in documented_paths {
        let uri = concrete(path);
        for m in METHODS {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).expect("method");
            let r = app.call(method, &uri, &token, None).await;
            let documented = ops.contains(&(m.to_string(), path.clone()));
            // axum answers HEAD with the GET handler where no HEAD is given.
            let served_as_get = m == "head" && ops.contains(&("get".to_string(), path.clone()));
            if documented || served_as_get {
                assert_ne!(r.status, 405, "{m} {path}: documented but not routed");
                let fallback = r.status == 404
                    && r.body["error"]["message"].as_str() == Some("no such endpoint");
                assert!(!fallback, "{m} {path}: documented but not routed");
            } else {
                assert_eq!(
                    r.status, 405,
                    "{m} {path} is answered ({}) but not documented",
                    r.status
                );
            }
        }
    }
}

/// The rest of "no other": a route registered with axum's own `.route()`
/// (or nested, or as a service) would bypass the document.
#[test]
fn every_route_is_registered_through_its_utoipa_path() {
    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() > 10);
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for call in [".route(", ".route_service(", ".nest(", ".nest_service("] {
                if code.contains(call) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "routes registered without routes!(), so missing from the OpenAPI document:\n{}",
        found.join("\n")
    );
}
