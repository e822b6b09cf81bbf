//! `GET …/tree`: the project's files at head or at any past seq, from the
//! current-state index (`current_versions`, migration 0002) joined with each
//! path's newest event (at or before the seq): sorted by path, paged,
//! deleted paths left out. Costs O(files), not O(events).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use sqlx::Row;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vidsync_protocol::{DEFAULT_TREE_PAGE, MAX_TREE_PAGE};

use crate::api::require_member;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_tree))
        .layer(axum::middleware::map_response(crate::error::json_errors))
}

#[derive(Deserialize)]
struct TreeQuery {
    at_seq: Option<u64>,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    after: String,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/projects/{project_id}/tree", tag = "content", security(("token" = [])),
    description = "The project's files at head or at `at_seq` (deleted paths left out), sorted by path, paged: `{\"at_seq\", \"files\": [{\"path\", \"hash\", \"size\", \"mtime\", \"seq\"}], \"next\"}`.",
    params(("project_id" = String, Path, description = "A project id, as `Project.id`"),
        ("at_seq" = Option<u64>, Query, description = "The seq the tree is read at: default head; later pages pass the first page's `at_seq`"),
        ("prefix" = Option<String>, Query, description = "Only paths under this prefix"),
        ("after" = Option<String>, Query, description = "The page after this path (the previous page's `next`)"),
        ("limit" = Option<u32>, Query, description = "Files a page")),
    responses((status = 200, body = Object), crate::openapi::Refusals))]
async fn get_tree(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(project_id): Path<String>,
    query: Result<Query<TreeQuery>, QueryRejection>,
) -> AppResult<Json<serde_json::Value>> {
    let Query(q) =
        query.map_err(|e| AppError::bad_request(format!("bad query: {}", e.body_text())))?;
    require_member(&state, &project_id, &user).await?;
    let head = state.db.head_seq(&project_id).await?;
    let at = match q.at_seq {
        Some(s) if s > head => {
            return Err(AppError::unprocessable(format!(
                "at_seq {s} is after the project's head ({head})"
            )))
        }
        Some(s) => s,
        None => head,
    };
    let limit = match q.limit {
        None => DEFAULT_TREE_PAGE,
        Some(0) => return Err(AppError::bad_request("limit must be at least 1")),
        Some(l) => l.min(MAX_TREE_PAGE),
    };
    // Paths between prefix and prefix + U+10FFFF, after `after`.
    let upper = format!("{}\u{10FFFF}", q.prefix);
    let lower = if q.after.as_str() > q.prefix.as_str() {
        q.after.clone()
    } else {
        String::new()
    };
    // At head: each path's newest event is in the current-state index. In
    // the past: every path the index knows (a path is never removed from
    // it), each with its newest event at or before `at` — one seek in
    // `events_by_path` per path, so O(paths), whatever the log's length.
    let sql = if at == head {
        "SELECT e.path, e.hash, e.size, e.mtime, e.seq
         FROM current_versions c JOIN events e ON e.project_id = c.project_id AND e.seq = c.seq
         WHERE c.project_id = ?1 AND c.path >= ?2 AND c.path < ?3 AND c.path > ?4 AND e.op != 'delete'
           AND ?6 >= 0
         ORDER BY c.path LIMIT ?5"
    } else {
        "SELECT e.path, e.hash, e.size, e.mtime, e.seq
         FROM current_versions c JOIN events e ON e.project_id = c.project_id AND e.seq = (
             SELECT x.seq FROM events x INDEXED BY events_by_path
             WHERE x.project_id = c.project_id AND x.path = c.path AND x.seq <= ?6
             ORDER BY x.seq DESC LIMIT 1)
         WHERE c.project_id = ?1 AND c.path >= ?2 AND c.path < ?3 AND c.path > ?4 AND e.op != 'delete'
         ORDER BY c.path LIMIT ?5"
    };
    let rows = sqlx::query(sql)
        .bind(&project_id)
        .bind(&q.prefix)
        .bind(&upper)
        .bind(&lower)
        .bind(limit as i64 + 1)
        .bind(at.min(i64::MAX as u64) as i64)
        .fetch_all(&state.db.pool)
        .await
        .map_err(crate::db::DbError::from)?;
    let mut files: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "path": r.get::<String, _>(0),
                "hash": r.get::<Option<String>, _>(1),
                "size": r.get::<Option<i64>, _>(2),
                "mtime": r.get::<Option<String>, _>(3),
                "seq": r.get::<i64, _>(4),
            })
        })
        .collect();
    let next = if files.len() > limit as usize {
        files.truncate(limit as usize);
        files.last().map(|f| f["path"].clone())
    } else {
        None
    };
    Ok(Json(
        serde_json::json!({ "at_seq": at, "files": files, "next": next }),
    ))
}
