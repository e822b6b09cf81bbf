//! The browser page (`web/`, built by `make web` into `web/dist`): served
//! at `GET /` and `GET /assets/…` from files embedded in the binary (a
//! release build carries them; a debug build reads `web/dist` from disk),
//! so the one binary is the whole deployment. And the Origin rule of
//! PROTOCOL.md v2 "Browsers": a Socket.IO request that carries an `Origin`
//! is accepted only from the server's own origin or one of
//! `--allowed-origins`; one with no `Origin` (a native client) always is.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

#[derive(rust_embed::Embed)]
#[folder = "../web/dist/"]
#[allow_missing = true]
struct Page;

/// The page's routes (no token: the page signs in by itself). Vite puts
/// every asset straight in `assets/`, so one path segment names each.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(asset))
}

#[utoipa::path(get, path = "/", tag = "web",
    description = "The browser page (HTML). No token needed: it signs in by itself.",
    responses((status = 200, content_type = "text/html", body = String),
        (status = 503, description = "The server was built without its page", content_type = "text/plain", body = String)))]
async fn index() -> Response {
    match Page::get("index.html") {
        Some(f) => file_response("index.html", f.data.into_owned()),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "This server was built without its web page: run `make web`, then build the server again.\n",
        )
            .into_response(),
    }
}

#[utoipa::path(get, path = "/assets/{file}", tag = "web",
    description = "The page's scripts, styles and WebAssembly.",
    params(("file" = String, Path, description = "A file name from the page")),
    responses((status = 200, description = "The file", body = Vec<u8>), (status = 404, description = "No such file")))]
async fn asset(Path(file): Path<String>) -> Response {
    let name = format!("assets/{file}");
    match Page::get(&name) {
        Some(f) => file_response(&name, f.data.into_owned()),
        None => crate::error::AppError::not_found("no such file").into_response(),
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

fn file_response(name: &str, bytes: Vec<u8>) -> Response {
    let mut resp = Body::from(bytes).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    // No request leaves for anywhere else; scripts only from here (the
    // WASM module is compiled from here too).
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' blob: data:; connect-src 'self' ws: wss:; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// The origins a browser may open a socket from, besides the server's own.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins(pub Arc<Vec<String>>);

/// Whether `origin` (`scheme://host[:port]`) is the origin of a request
/// that came to `host` (its Host header): same host and port.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    !authority.is_empty() && authority.eq_ignore_ascii_case(host)
}

/// Refuses (403) a Socket.IO request whose `Origin` is neither this
/// server's nor an allowed one.
pub async fn check_origin(
    State(allowed): State<AllowedOrigins>,
    req: Request,
    next: Next,
) -> Response {
    if !req.uri().path().starts_with("/socket.io") {
        return next.run(req).await;
    }
    let headers: &HeaderMap = req.headers();
    let Some(origin) = headers.get(header::ORIGIN) else {
        return next.run(req).await;
    };
    let origin = origin.to_str().unwrap_or("");
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let ok = same_origin(origin, host)
        || allowed
            .0
            .iter()
            .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin));
    if ok {
        next.run(req).await
    } else {
        tracing::info!(%origin, "socket refused: origin not allowed (--allowed-origins)");
        crate::error::AppError::forbidden(format!(
            "origin {origin} may not open a socket here (the server's --allowed-origins)"
        ))
        .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::same_origin;

    #[test]
    fn the_same_host_and_port_is_the_same_origin() {
        assert!(same_origin("http://127.0.0.1:5000", Some("127.0.0.1:5000")));
        assert!(same_origin("https://Sync.Example", Some("sync.example")));
        assert!(!same_origin("http://evil.example", Some("127.0.0.1:5000")));
        assert!(!same_origin(
            "http://127.0.0.1:5001",
            Some("127.0.0.1:5000")
        ));
        assert!(!same_origin("null", Some("127.0.0.1:5000")));
        assert!(!same_origin("http://127.0.0.1:5000", None));
    }
}
