//! The HTTP API as an OpenAPI 3.1 document, served at `GET /api/openapi.json`.
//!
//! Each handler carries its `#[utoipa::path]`; the area routers register
//! handlers with `utoipa_axum::routes!`, which reads method and path from that
//! same attribute, so a route cannot be served without being documented
//! ([`crate::routes`] gives both halves). This module adds what is shared:
//! the title, the bearer-token scheme, the refusal bodies, and a few bodies
//! that are not protocol types. Socket.IO (`/socket.io/`) is not HTTP API and
//! is described in `docs/protocol.md`.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi, ToSchema};
use vidsync_protocol::{ConflictEntry, ErrorBody, ErrorCode, ErrorDetail, Project, RawChange};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Vidsync server",
        description = "Projects, invites, the event log, file content (blobs, chunks, manifests) \
and the tree. Every `/api/` route but this document needs `Authorization: Bearer <token>` \
(`vidsync-server user add`). Live events go over Socket.IO on `/socket.io/` (see docs/protocol.md).",
        license(name = "MIT OR Apache-2.0")
    ),
    components(schemas(ErrorBody, ErrorDetail, ErrorCode, ConflictEntry, RawChange)),
    modifiers(&BearerToken),
    tags(
        (name = "projects", description = "Projects, members and invites"),
        (name = "events", description = "Changes in, events out"),
        (name = "content", description = "File content: whole blobs, chunks, manifests, the tree"),
        (name = "operations", description = "Health, metrics and this document; no token")
    )
)]
pub struct ApiDoc;

/// The `token` security scheme the paths name.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// What any route may refuse with: every refusal has the JSON error body.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum Refusals {
    /// Malformed request (`bad_request`), or a value refused (422, `unprocessable`, `invalid_hash`, ...).
    #[response(status = "4XX")]
    Client(#[to_schema] ErrorBody),
    /// `internal`, `unavailable` or `insufficient_storage` (507).
    #[response(status = "5XX")]
    Server(ErrorBody),
}

/// Body of `GET /api/projects`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ProjectList {
    pub projects: Vec<Project>,
}

/// A list of content hashes (64 lowercase hex digits each).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HashList {
    pub chunks: Vec<String>,
}

/// The document, made once from the routes.
pub fn document() -> &'static Document {
    static DOC: OnceLock<Document> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = crate::routes().into_openapi();
        distinct_head_ids(&mut doc);
        doc
    })
}

/// A handler routed for both GET and HEAD is one operation to utoipa;
/// OpenAPI wants each operation id once, so HEAD's gets a suffix.
fn distinct_head_ids(doc: &mut Document) {
    for item in doc.paths.paths.values_mut() {
        let get_id = item.get.as_ref().and_then(|op| op.operation_id.clone());
        if let Some(head) = item.head.as_mut() {
            if head.operation_id.is_some() && head.operation_id == get_id {
                head.operation_id = get_id.map(|id| format!("{id}_head"));
            }
        }
    }
}

#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    description = "This document. No token needed.",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json")))]
pub async fn document_json() -> impl IntoResponse {
    static TEXT: OnceLock<String> = OnceLock::new();
    let text = TEXT.get_or_init(|| {
        // Plain structs of strings and maps: serializing cannot fail.
        serde_json::to_string(document()).unwrap_or_default()
    });
    ([(header::CONTENT_TYPE, "application/json")], text.as_str())
}
