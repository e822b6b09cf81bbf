//! The HTTP API of PROTOCOL.md: projects, invites, changes in, events out,
//! health and metrics. Handlers get parsed, checked values; the store and the
//! live feed do the rest.

use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vidsync_protocol::{
    is_bidi_control, is_zero_width, EventsPage, Health, Invite, Limits, Project, Role,
    UpdateRequest, UpdateResponse, DEFAULT_EVENTS_PAGE, MAX_EVENTS_PAGE,
};

use crate::auth::{random_hex, AuthUser};
use crate::changes::Via;
use crate::db::{Access, User};
use crate::error::{AppError, AppResult};
use crate::json::ApiJson;
use crate::{openapi, AppState};

/// How long an invite code stays valid.
const INVITE_TTL: time::Duration = time::Duration::days(7);
/// Longest project name, in bytes.
const MAX_NAME_BYTES: usize = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_project, list_projects))
        .routes(routes!(get_project))
        .routes(routes!(create_invite))
        .routes(routes!(accept_invite))
        .routes(routes!(post_changes))
        .routes(routes!(get_events))
        .routes(routes!(limits))
        .layer(axum::middleware::map_response(crate::error::json_errors))
}

/// What needs no token.
pub fn open_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(metrics_text))
        .routes(routes!(openapi::document_json))
        .layer(axum::middleware::map_response(crate::error::json_errors))
}

fn access_error(access: Access, project_id: &str) -> AppError {
    match access {
        Access::NoProject => AppError::not_found(format!("no project {project_id:?}")),
        Access::NotMember => AppError::forbidden("you are not a member of this project"),
    }
}

/// The caller's role in the project, or the 404/403 that says why not.
pub async fn require_member(state: &AppState, project_id: &str, user: &User) -> AppResult<Role> {
    state
        .db
        .role_in(project_id, user)
        .await?
        .map_err(|a| access_error(a, project_id))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct NewProject {
    name: String,
}

#[utoipa::path(post, path = "/api/projects", tag = "projects", security(("token" = [])),
    request_body(content = NewProject, description = "`name`: 1–200 bytes of printable text"),
    responses((status = 201, description = "Created; the caller owns it", body = Project), openapi::Refusals))]
async fn create_project(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(body): ApiJson<NewProject>,
) -> AppResult<(StatusCode, Json<Project>)> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(AppError::unprocessable(format!(
            "a project name is 1–{MAX_NAME_BYTES} bytes of printable text"
        )));
    }
    if name.chars().any(|c| is_bidi_control(c) || is_zero_width(c)) {
        return Err(AppError::unprocessable(
            "a project name may not contain bidirectional controls or zero-width characters",
        ));
    }
    let id = format!("p_{}", random_hex(12));
    let Some(project) = state
        .db
        .create_project(&id, name, &user, state.max_projects_per_user)
        .await?
    else {
        return Err(AppError::forbidden(format!(
            "you already own {} projects, the most this server allows (--max-projects-per-user)",
            state.max_projects_per_user
        )));
    };
    tracing::info!(project = %id, user = %user.name, "project created");
    Ok((StatusCode::CREATED, Json(project)))
}

#[utoipa::path(get, path = "/api/limits", tag = "projects", security(("token" = [])),
    responses((status = 200, description = "What this server accepts", body = Limits), openapi::Refusals))]
async fn limits(State(state): State<AppState>, AuthUser(_user): AuthUser) -> Json<Limits> {
    Json(Limits {
        max_blob_bytes: state.blobs.max_bytes,
    })
}

#[utoipa::path(get, path = "/api/projects", tag = "projects", security(("token" = [])),
    responses((status = 200, description = "The projects the caller is a member of", body = openapi::ProjectList), openapi::Refusals))]
async fn list_projects(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> AppResult<Response> {
    let projects = state.db.projects_of(&user).await?;
    Ok(Json(serde_json::json!({ "projects": projects })).into_response())
}

#[utoipa::path(get, path = "/api/projects/{project_id}", tag = "projects", security(("token" = [])),
    params(("project_id" = String, Path, description = "A project id, as `Project.id`")),
    responses((status = 200, body = Project), openapi::Refusals))]
async fn get_project(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(project_id): Path<String>,
) -> AppResult<Json<Project>> {
    let project = state
        .db
        .project_for(&project_id, &user)
        .await?
        .map_err(|a| access_error(a, &project_id))?;
    Ok(Json(project))
}

#[utoipa::path(post, path = "/api/projects/{project_id}/invites", tag = "projects", security(("token" = [])),
    description = "Owner only. The code is valid for 7 days.",
    params(("project_id" = String, Path, description = "A project id, as `Project.id`")),
    responses((status = 201, body = Invite), openapi::Refusals))]
async fn create_invite(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(project_id): Path<String>,
) -> AppResult<(StatusCode, Json<Invite>)> {
    if require_member(&state, &project_id, &user).await? != Role::Owner {
        return Err(AppError::forbidden("only the project's owner can invite"));
    }
    let code = random_hex(16);
    let expires_at = crate::clock::rfc3339(time::OffsetDateTime::now_utc() + INVITE_TTL);
    state
        .db
        .create_invite(&code, &project_id, &user, &expires_at)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Invite {
            code,
            project_id,
            expires_at,
        }),
    ))
}

#[utoipa::path(post, path = "/api/invites/{code}/accept", tag = "projects", security(("token" = [])),
    description = "The caller becomes a member of the invite's project.",
    params(("code" = String, Path, description = "The invite code")),
    responses((status = 200, body = Project), openapi::Refusals))]
async fn accept_invite(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(code): Path<String>,
) -> AppResult<Json<Project>> {
    let Some((project_id, expires_at)) = state.db.invite(&code).await? else {
        return Err(AppError::not_found("unknown invite code"));
    };
    let expired =
        time::OffsetDateTime::parse(&expires_at, &time::format_description::well_known::Rfc3339)
            .map(|t| t <= time::OffsetDateTime::now_utc())
            .unwrap_or(true);
    if expired {
        return Err(AppError::not_found("this invite code has expired"));
    }
    state.db.add_member(&project_id, &user).await?;
    tracing::info!(project = %project_id, user = %user.name, "invite accepted");
    let project = state
        .db
        .project_for(&project_id, &user)
        .await?
        .map_err(|a| access_error(a, &project_id))?;
    Ok(Json(project))
}

#[utoipa::path(post, path = "/api/projects/{project_id}/files/update", tag = "events", security(("token" = [])),
    description = "Appends 1–10,000 changes in one transaction (all or none); one event per change, in order. A `(client_id, change_id)` already appended answers the first event again. A stale `base_hash` is a 409 `conflict`.",
    params(("project_id" = String, Path, description = "A project id, as `Project.id`")),
    request_body = UpdateRequest,
    responses((status = 200, body = UpdateResponse), openapi::Refusals))]
async fn post_changes(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(project_id): Path<String>,
    ApiJson(body): ApiJson<UpdateRequest>,
) -> AppResult<Json<UpdateResponse>> {
    let received = Instant::now();
    let resp =
        crate::changes::append_changes(&state, &user, &project_id, body, Via::Http, received)
            .await?;
    Ok(Json(resp))
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default)]
    since_seq: u64,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/projects/{project_id}/events", tag = "events", security(("token" = [])),
    description = "Events with `seq > since_seq`, in order: the polling fallback and the catch-up after a gap.",
    params(("project_id" = String, Path, description = "A project id, as `Project.id`"),
        ("since_seq" = Option<u64>, Query, description = "Default 0"),
        ("limit" = Option<u32>, Query, description = "Default 1,000, at most 10,000")),
    responses((status = 200, body = EventsPage), openapi::Refusals))]
async fn get_events(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(project_id): Path<String>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> AppResult<Json<EventsPage>> {
    let Query(q) =
        query.map_err(|e| AppError::bad_request(format!("bad query: {}", e.body_text())))?;
    require_member(&state, &project_id, &user).await?;
    let limit = match q.limit {
        None => DEFAULT_EVENTS_PAGE,
        Some(0) => return Err(AppError::bad_request("limit must be at least 1")),
        Some(l) => l.min(MAX_EVENTS_PAGE),
    };
    // Events first: the head read after them is never behind the page.
    let events = state
        .db
        .events_since(&project_id, q.since_seq, limit)
        .await?;
    let head_seq = state.db.head_seq(&project_id).await?;
    Ok(Json(EventsPage { events, head_seq }))
}

#[utoipa::path(get, path = "/health", tag = "operations",
    description = "No token needed.",
    responses((status = 200, body = Health), (status = 503, description = "The database does not answer (`status`: `degraded`)", body = Health)))]
async fn health(State(state): State<AppState>) -> Response {
    let connections = state.connections();
    let db_ok = matches!(
        tokio::time::timeout(Duration::from_secs(2), state.db.ping()).await,
        Ok(Ok(()))
    );
    let (status, body) = if db_ok {
        (
            StatusCode::OK,
            Health {
                status: "ok".into(),
                connections,
                db: "ok".into(),
            },
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Health {
                status: "degraded".into(),
                connections,
                db: "unavailable".into(),
            },
        )
    };
    (status, Json(body)).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    description = "Prometheus text format. No token needed: keep it off the public network.",
    responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics_text(State(state): State<AppState>) -> Response {
    metrics::gauge!("vidsync_socket_connections").set(state.connections() as f64);
    let (websocket, polling) = state.hub.sockets_by_transport();
    metrics::gauge!("vidsync_socket_transport", "transport" => "websocket").set(websocket as f64);
    metrics::gauge!("vidsync_socket_transport", "transport" => "polling").set(polling as f64);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
        .into_response()
}

pub async fn not_found() -> AppError {
    AppError::not_found("no such endpoint")
}
