//! Appending a batch of changes: the one place where the HTTP route
//! (`POST /api/projects/{id}/files/update`, in [`crate::api`]) and the socket
//! event (`files:update`, in [`crate::live`]) check a batch, append it and
//! publish it, so both answer alike: same codes, rules, limits, idempotency
//! and all-or-none. Authentication and the per-user rate limit stay with each
//! transport (the token is checked per request over HTTP, once per socket at
//! the handshake); the limit itself is [`crate::auth::check_rate`].

use std::time::Instant;

use vidsync_protocol::{check_id, Change, UpdateRequest, UpdateResponse, MAX_CHANGES_PER_REQUEST};

use crate::api::require_member;
use crate::db::User;
use crate::error::{AppError, AppResult};
use crate::AppState;

/// How a batch reached the server: a label of the counters in `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Http,
    Socket,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Http => "http",
            Via::Socket => "socket",
        }
    }
}

/// Checks `body` and appends its changes to `project_id`'s log for `user`
/// in one transaction; the fresh events are published to live subscribers
/// after the commit. `received`: when the request arrived (latency figures).
pub async fn append_changes(
    state: &AppState,
    user: &User,
    project_id: &str,
    body: UpdateRequest,
    via: Via,
    received: Instant,
) -> AppResult<UpdateResponse> {
    metrics::counter!("vidsync_update_requests_total", "via" => via.as_str()).increment(1);
    require_member(state, project_id, user).await?;
    check_id("client_id", &body.client_id).map_err(AppError::unprocessable)?;
    let n = body.changes.len();
    if n == 0 || n > MAX_CHANGES_PER_REQUEST {
        return Err(AppError::unprocessable(format!(
            "a request carries 1–{MAX_CHANGES_PER_REQUEST} changes, this one has {n}"
        )));
    }
    let mut changes = Vec::with_capacity(n);
    for (i, raw) in body.changes.into_iter().enumerate() {
        let change = Change::try_from(raw)
            .map_err(|e| AppError::new(e.code(), format!("changes[{i}]: {e}")))?;
        changes.push(change);
    }
    let hub = state.hub.clone();
    let appended = state
        .db
        .append(project_id, user, &body.client_id, &changes, |fresh| {
            hub.publish(project_id, fresh, received);
        })
        .await?;
    metrics::counter!("vidsync_events_appended_total").increment(appended.fresh.len() as u64);
    metrics::counter!("vidsync_update_changes_total", "via" => via.as_str()).increment(n as u64);
    tracing::debug!(project = %project_id, via = via.as_str(), appended = appended.fresh.len(), head = appended.head_seq, "changes appended");
    Ok(UpdateResponse {
        events: appended.events,
        head_seq: appended.head_seq,
    })
}
