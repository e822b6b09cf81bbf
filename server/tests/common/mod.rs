//! In-process harness for contract tests: the real router (`app(state)`) on
//! a fresh data directory, driven with `oneshot` requests, no socket, no
//! process. Real-binary tests (crashes, sockets) live in `tests/`.

#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Method, Request};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use vidsync_server::{auth, Config};

pub struct App {
    pub router: Router,
    pub state: vidsync_server::AppState,
    pub dir: tempfile::TempDir,
}

/// Status, headers and JSON body (Null when the body is not JSON).
pub struct Reply {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub bytes: Vec<u8>,
}

pub fn config(dir: &std::path::Path) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        database_url: None,
        max_blob_bytes: 64 * 1024 * 1024,
        live: true,
        rate_limit: 0,
        max_projects_per_user: 1000,
    }
}

impl App {
    pub async fn new() -> App {
        Self::with(|_| {}).await
    }

    /// A fresh app whose config `tweak` may change first.
    pub async fn with(tweak: impl FnOnce(&mut Config)) -> App {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = config(dir.path());
        tweak(&mut cfg);
        let state = vidsync_server::open_state(&cfg).await.expect("open state");
        let (router, _io) = vidsync_server::app(state.clone());
        App { router, state, dir }
    }

    /// Creates a user; returns a token of theirs.
    pub async fn user(&self, name: &str) -> String {
        let token = auth::new_token();
        self.state
            .db
            .add_user_token(name, &auth::token_hash(&token))
            .await
            .expect("add user");
        token
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            bytes,
        }
    }

    pub async fn call(&self, method: Method, uri: &str, token: &str, body: Option<Value>) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"));
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).expect("request")).await
    }

    pub async fn post(&self, uri: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, uri, token, Some(body)).await
    }

    pub async fn get(&self, uri: &str, token: &str) -> Reply {
        self.call(Method::GET, uri, token, None).await
    }

    /// Creates a project as `token`'s user; returns its id.
    pub async fn project(&self, token: &str, name: &str) -> String {
        let r = self
            .post("/api/projects", token, json!({ "name": name }))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_str().expect("id").to_string()
    }

    pub async fn update(
        &self,
        token: &str,
        project: &str,
        client: &str,
        changes: Vec<Value>,
    ) -> Reply {
        self.post(
            &format!("/api/projects/{project}/files/update"),
            token,
            json!({ "client_id": client, "changes": changes }),
        )
        .await
    }

    pub async fn events(&self, token: &str, project: &str) -> Vec<Value> {
        let r = self
            .get(
                &format!("/api/projects/{project}/events?since_seq=0&limit=10000"),
                token,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["events"].as_array().cloned().unwrap_or_default()
    }
}

pub fn hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// A create/update change of `path` to `content`, with an optional base.
/// `base`: None = no base_hash field; Some(None) = null; Some(Some(b)) = hash of b.
pub fn change(path: &str, op: &str, content: Option<&[u8]>, base: Option<Option<&[u8]>>) -> Value {
    let mut c = json!({ "path": path, "op": op });
    if let Some(bytes) = content {
        c["hash"] = json!(hash(bytes));
        c["size"] = json!(bytes.len());
    }
    if let Some(b) = base {
        c["base_hash"] = match b {
            None => Value::Null,
            Some(b) => json!(hash(b)),
        };
    }
    c
}
