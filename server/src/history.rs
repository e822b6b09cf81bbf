//! History and restore (PROTOCOL.md v2, "State, history and restore"):
//! every version of a path, newest first; and `restore`, which appends — in
//! one transaction, under the writer lock — the changes that bring chosen
//! paths back to their state at a past seq or time. Nothing is rewritten:
//! the past stays in the log, and a restore is itself new events.
//!
//! Both lean on the `events_by_path` index (migration 0004): a path's newest
//! event before a bound is one index seek, so a restore costs O(paths it
//! looks at), never O(events).

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::{Row, SqliteConnection};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vidsync_protocol::{check_id, Change, ContentHash, ErrorCode, Op, ProjectEvent, ProjectPath};

use crate::api::require_member;
use crate::auth::AuthUser;
use crate::chunks::content::locate;
use crate::db::{DbError, DbResult};
use crate::error::{AppError, AppResult};
use crate::event_log::event_from_row;
use crate::json::ApiJson;
use crate::AppState;

/// Versions a history page holds by default, and at most.
const DEFAULT_HISTORY_PAGE: u32 = 100;
const MAX_HISTORY_PAGE: u32 = 1000;
/// Paths a restore may name one by one.
const MAX_RESTORE_PATHS: usize = 10_000;

const EVENT_COLUMNS: &str =
    "e.seq, e.path, e.op, e.hash, e.size, e.mtime, e.client_id, e.user_name, e.created_at";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_history))
        .routes(routes!(post_restore))
        .layer(axum::middleware::map_response(crate::error::json_errors))
}

#[derive(Deserialize)]
struct HistoryQuery {
    path: Option<String>,
    before_seq: Option<u64>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/projects/{project_id}/history", tag = "history", security(("token" = [])),
    description = "Every version of one path, newest first, with who and when: `{\"events\": [Event], \"next_before_seq\": N|null}` (`next_before_seq` continues).",
    params(("project_id" = String, Path, description = "A project id, as `Project.id`"),
        ("path" = String, Query, description = "The path, as in events"),
        ("before_seq" = Option<u64>, Query, description = "Only versions older than this seq"),
        ("limit" = Option<u32>, Query, description = "Versions a page: default 100, at most 1,000")),
    responses((status = 200, body = Object), crate::openapi::Refusals))]
async fn get_history(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(project_id): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> AppResult<Json<serde_json::Value>> {
    let Query(q) =
        query.map_err(|e| AppError::bad_request(format!("bad query: {}", e.body_text())))?;
    require_member(&state, &project_id, &user).await?;
    let path = parse_path(q.path.as_deref().unwrap_or(""))?;
    let limit = match q.limit {
        None => DEFAULT_HISTORY_PAGE,
        Some(0) => return Err(AppError::bad_request("limit must be at least 1")),
        Some(l) => l.min(MAX_HISTORY_PAGE),
    };
    let before = q.before_seq.unwrap_or(u64::MAX).min(i64::MAX as u64) as i64;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {EVENT_COLUMNS} FROM events e INDEXED BY events_by_path
         WHERE e.project_id = ? AND e.path = ? AND e.seq < ?
         ORDER BY e.seq DESC LIMIT ?"
    )))
    .bind(&project_id)
    .bind(path.as_str())
    .bind(before)
    .bind(limit as i64 + 1)
    .fetch_all(&state.db.pool)
    .await
    .map_err(DbError::from)?;
    let mut events = rows
        .iter()
        .map(|r| event_from_row(&project_id, r))
        .collect::<DbResult<Vec<_>>>()?;
    let next = if events.len() > limit as usize {
        events.truncate(limit as usize);
        events.last().map(|e| e.seq)
    } else {
        None
    };
    Ok(Json(
        serde_json::json!({ "events": events, "next_before_seq": next }),
    ))
}

fn parse_path(raw: &str) -> AppResult<ProjectPath> {
    ProjectPath::new(raw).map_err(|e| AppError::new(ErrorCode::InvalidPath, format!("path: {e}")))
}

/// `POST …/restore`'s body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    pub client_id: String,
    /// The point to go back to: a seq…
    pub at_seq: Option<u64>,
    /// …or a time (RFC 3339): the state after the last event at or before it.
    pub at_time: Option<String>,
    /// Only these paths.
    pub paths: Option<Vec<String>>,
    /// Only paths under this prefix (`dir/` for a folder).
    pub prefix: Option<String>,
    /// Undo one client's changes since the point: only paths it changed
    /// after it, each back to its version before that client's first change.
    pub changed_by: Option<String>,
    /// Answer what would be appended, append nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a restore appended (or, with `dry_run`, would append).
#[derive(Serialize, utoipa::ToSchema)]
pub struct RestoreResponse {
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<ProjectEvent>,
    pub head_seq: u64,
    /// The seq the paths were brought back to (from `at_seq` or `at_time`).
    pub at_seq: u64,
    /// With `dry_run`: the changes a restore would append now.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub changes: Option<Vec<Change>>,
    /// With `changed_by`: paths that client changed but someone changed
    /// after it, left as they are.
    pub kept: Vec<String>,
}

#[utoipa::path(post, path = "/api/projects/{project_id}/restore", tag = "history", security(("token" = [])),
    description = "Appends, in one transaction, the changes that bring the chosen paths (all when neither `paths` nor `prefix`) back to their state at `at_seq` or `at_time`; with `changed_by`, only the paths that client changed since. A version whose content retention removed: 410 `gone`, nothing appended. `dry_run`: the changes, nothing appended.",
    params(("project_id" = String, Path, description = "A project id, as `Project.id`")),
    request_body = RestoreRequest,
    responses((status = 200, body = RestoreResponse), crate::openapi::Refusals))]
async fn post_restore(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(project_id): Path<String>,
    ApiJson(body): ApiJson<RestoreRequest>,
) -> AppResult<Json<RestoreResponse>> {
    let received = std::time::Instant::now();
    require_member(&state, &project_id, &user).await?;
    check_id("client_id", &body.client_id).map_err(AppError::unprocessable)?;
    let selection = Selection::parse(&body)?;
    let writer = state.db.lock_writer().await;
    let head = state.db.head_seq(&project_id).await?;
    let at_seq = match (body.at_seq, body.at_time.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(AppError::unprocessable("give at_seq or at_time, not both"))
        }
        (None, None) => return Err(AppError::unprocessable("at_seq or at_time is required")),
        (Some(s), None) if s > head => {
            return Err(AppError::unprocessable(format!(
                "at_seq {s} is after the project's head ({head})"
            )))
        }
        (Some(s), None) => s,
        (None, Some(t)) => seq_at_time(&state, &project_id, head, t).await?,
    };
    let mut conn = state.db.pool.acquire().await.map_err(DbError::from)?;
    let plan = plan(&mut conn, &project_id, at_seq, &selection).await?;
    drop(conn);
    // Every version brought back must still have its content.
    let mut gone = Vec::new();
    for c in &plan.changes {
        if let Some(hash) = &c.hash {
            if !content_present(&state, &project_id, hash).await? {
                gone.push(c.path.as_str().to_string());
            }
        }
    }
    if !gone.is_empty() {
        let n = gone.len();
        gone.truncate(10);
        return Err(AppError::new(
            ErrorCode::Gone,
            format!(
                "the content of {n} version(s) to restore was removed by retention (--keep-versions-days), nothing was restored: {}{}",
                gone.join(", "),
                if n > 10 { ", …" } else { "" }
            ),
        ));
    }
    if body.dry_run || plan.changes.is_empty() {
        return Ok(Json(RestoreResponse {
            events: vec![],
            head_seq: head,
            at_seq,
            changes: body.dry_run.then_some(plan.changes),
            kept: plan.kept,
        }));
    }
    let hub = state.hub.clone();
    let appended = state
        .db
        .append_locked(
            &writer,
            &project_id,
            &user,
            &body.client_id,
            &plan.changes,
            |fresh| hub.publish(&project_id, fresh, received),
        )
        .await?;
    drop(writer);
    metrics::counter!("vidsync_events_appended_total").increment(appended.fresh.len() as u64);
    tracing::info!(project = %project_id, user = %user.name, at_seq, restored = appended.fresh.len(), "restore appended");
    Ok(Json(RestoreResponse {
        events: appended.events,
        head_seq: appended.head_seq,
        at_seq,
        changes: None,
        kept: plan.kept,
    }))
}

/// Which paths a restore looks at.
enum Selection {
    All,
    Prefix(String),
    Paths(Vec<ProjectPath>),
}

struct Filter {
    scope: Selection,
    changed_by: Option<String>,
}

impl Selection {
    fn parse(body: &RestoreRequest) -> AppResult<Filter> {
        let scope = match (&body.paths, &body.prefix) {
            (Some(_), Some(_)) => {
                return Err(AppError::unprocessable("give paths or prefix, not both"))
            }
            (Some(paths), None) => {
                if paths.is_empty() || paths.len() > MAX_RESTORE_PATHS {
                    return Err(AppError::unprocessable(format!(
                        "paths lists 1–{MAX_RESTORE_PATHS} paths, this one has {}",
                        paths.len()
                    )));
                }
                let mut parsed = paths
                    .iter()
                    .map(|p| parse_path(p))
                    .collect::<AppResult<Vec<_>>>()?;
                parsed.sort();
                parsed.dedup();
                Selection::Paths(parsed)
            }
            (None, Some(prefix)) if prefix.is_empty() => Selection::All,
            (None, Some(prefix)) => {
                // A prefix is a path or the start of one ("docs/" for a folder).
                parse_path(prefix.trim_end_matches('/'))?;
                Selection::Prefix(prefix.clone())
            }
            (None, None) => Selection::All,
        };
        if let Some(c) = &body.changed_by {
            check_id("changed_by", c).map_err(AppError::unprocessable)?;
        }
        Ok(Filter {
            scope,
            changed_by: body.changed_by.clone(),
        })
    }
}

/// The changes a restore appends, and the paths `changed_by` leaves alone.
struct Plan {
    changes: Vec<Change>,
    kept: Vec<String>,
}

/// A path's newest event now, and its newest event before the bound.
struct PathState {
    now: Option<ProjectEvent>,
    then: Option<ProjectEvent>,
}

async fn plan(
    conn: &mut SqliteConnection,
    project_id: &str,
    at_seq: u64,
    filter: &Filter,
) -> AppResult<Plan> {
    let mut kept = Vec::new();
    // path → exclusive bound: the version brought back is the path's newest
    // event with a seq below it.
    let bounds: BTreeMap<String, u64> = match &filter.changed_by {
        None => {
            let paths = match &filter.scope {
                Selection::Paths(p) => p.iter().map(|p| p.as_str().to_string()).collect(),
                Selection::All => known_paths(conn, project_id, "").await?,
                Selection::Prefix(prefix) => known_paths(conn, project_id, prefix).await?,
            };
            paths.into_iter().map(|p| (p, at_seq + 1)).collect()
        }
        Some(client) => {
            // Each path the client changed after the point, with its first
            // such change: the version before that one comes back.
            let rows = sqlx::query(
                "SELECT path, MIN(seq) FROM events
                 WHERE project_id = ? AND seq > ? AND client_id = ? GROUP BY path",
            )
            .bind(project_id)
            .bind(at_seq as i64)
            .bind(client)
            .fetch_all(&mut *conn)
            .await
            .map_err(DbError::from)?;
            rows.iter()
                .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1) as u64))
                .filter(|(p, _)| match &filter.scope {
                    Selection::All => true,
                    Selection::Prefix(prefix) => p.starts_with(prefix.as_str()),
                    Selection::Paths(paths) => paths.iter().any(|q| q.as_str() == p),
                })
                .collect()
        }
    };
    let mut changes = Vec::new();
    for (path, bound) in &bounds {
        let st = path_state(conn, project_id, path, *bound).await?;
        if let (Some(client), Some(now)) = (&filter.changed_by, &st.now) {
            if &now.origin.client_id != client {
                kept.push(path.clone());
                continue;
            }
        }
        let live = |e: &Option<ProjectEvent>| {
            e.as_ref()
                .filter(|e| e.change.op != Op::Delete)
                .map(|e| e.change.clone())
        };
        let (now, then) = (live(&st.now), live(&st.then));
        let change = match (&now, then) {
            (None, None) => continue,
            (Some(n), Some(t)) if n.hash == t.hash => continue,
            (Some(n), None) => Change {
                path: n.path.clone(),
                op: Op::Delete,
                hash: None,
                size: None,
                mtime: None,
                change_id: None,
                base_hash: Some(n.hash),
            },
            (_, Some(t)) => Change {
                op: if now.is_some() {
                    Op::Update
                } else {
                    Op::Create
                },
                base_hash: Some(now.as_ref().and_then(|n| n.hash)),
                change_id: None,
                ..t
            },
        };
        changes.push(change);
    }
    Ok(Plan { changes, kept })
}

/// Every path the project ever had under `prefix` (deleted ones too: a
/// restore may bring them back), from the current-state index.
async fn known_paths(
    conn: &mut SqliteConnection,
    project_id: &str,
    prefix: &str,
) -> DbResult<Vec<String>> {
    let upper = format!("{prefix}\u{10FFFF}");
    let rows = sqlx::query(
        "SELECT path FROM current_versions WHERE project_id = ? AND path >= ? AND path < ? ORDER BY path",
    )
    .bind(project_id)
    .bind(prefix)
    .bind(&upper)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// A path's newest event, and its newest event with a seq below `bound`.
async fn path_state(
    conn: &mut SqliteConnection,
    project_id: &str,
    path: &str,
    bound: u64,
) -> DbResult<PathState> {
    let newest_below = |bound: i64| {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM events e INDEXED BY events_by_path
             WHERE e.project_id = ? AND e.path = ? AND e.seq < ?
             ORDER BY e.seq DESC LIMIT 1"
        )))
        .bind(project_id)
        .bind(path)
        .bind(bound)
    };
    let now = newest_below(i64::MAX)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| event_from_row(project_id, &r))
        .transpose()?;
    let then = newest_below(bound.min(i64::MAX as u64) as i64)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| event_from_row(project_id, &r))
        .transpose()?;
    Ok(PathState { now, then })
}

/// The seq of the newest event at or before `time`: a binary search over
/// seq (appends stamp `created_at` under the writer lock, so it grows with
/// seq), O(log events) lookups. 0 when the project had no event yet.
async fn seq_at_time(state: &AppState, project_id: &str, head: u64, time: &str) -> AppResult<u64> {
    let parse =
        |s: &str| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339);
    let t = parse(time).map_err(|e| {
        AppError::unprocessable(format!(
            "at_time {time:?} is not an RFC 3339 time (like 2026-12-06T10:00:00Z): {e}"
        ))
    })?;
    let (mut lo, mut hi) = (0u64, head); // answer in [lo, hi]
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        let row = sqlx::query("SELECT created_at FROM events WHERE project_id = ? AND seq = ?")
            .bind(project_id)
            .bind(mid as i64)
            .fetch_optional(&state.db.pool)
            .await
            .map_err(DbError::from)?;
        let stamped = row
            .map(|r| r.get::<String, _>(0))
            .ok_or_else(|| DbError::Corrupt(format!("no event {mid} in {project_id}")))?;
        let at = parse(&stamped)
            .map_err(|e| DbError::Corrupt(format!("event {mid} in {project_id}: {e}")))?;
        if at <= t {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(lo)
}

/// Whether the content of `hash` is stored (whole, as a manifest, or as one
/// chunk) and not collected.
pub async fn content_present(
    state: &AppState,
    project_id: &str,
    hash: &ContentHash,
) -> AppResult<bool> {
    Ok(locate(state, project_id, hash).await?.is_some())
}
