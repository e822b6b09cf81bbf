//! Closes the sockets of revoked tokens, also when `vidsync-server user
//! revoke` runs as another process against the same database.
//!
//! A task with its own read connection counts the revoked tokens every
//! [`POLL`]; when the count changes it reads their hashes and closes every
//! open socket that connected with one of them. (A socket that connects
//! while this runs is checked against the same set when it is recorded, see
//! `Hub::socket_opened`.) HTTP requests check their token on every request
//! and need none of this.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};

use crate::AppState;

/// How often the store is asked; a revocation takes effect within this.
pub const POLL: Duration = Duration::from_millis(250);

/// Watches `database_url` until `stop` resolves.
pub async fn watch(
    state: AppState,
    database_url: String,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut conn: Option<SqliteConnection> = None;
    let mut seen: Option<i64> = None;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        if conn.is_none() {
            conn = connect(&database_url).await;
        }
        let Some(c) = conn.as_mut() else { continue };
        match check(c, &mut seen).await {
            Ok(Some(revoked)) => close_revoked(&state, revoked),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(%e, "reading revoked tokens; will retry");
                conn = None;
            }
        }
    }
}

async fn connect(url: &str) -> Option<SqliteConnection> {
    let opts = match SqliteConnectOptions::from_str(url) {
        Ok(o) => o.read_only(true),
        Err(e) => {
            tracing::warn!(%e, "revocation watcher: bad database url");
            return None;
        }
    };
    match SqliteConnection::connect_with(&opts).await {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(%e, "revocation watcher cannot open the database");
            None
        }
    }
}

/// The set of revoked token hashes if their number changed since `seen`.
async fn check(
    conn: &mut SqliteConnection,
    seen: &mut Option<i64>,
) -> Result<Option<HashSet<String>>, sqlx::Error> {
    let count: i64 = sqlx::query("SELECT count(*) FROM tokens WHERE revoked_at IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?
        .get(0);
    if *seen == Some(count) {
        return Ok(None);
    }
    let rows = sqlx::query("SELECT token_hash FROM tokens WHERE revoked_at IS NOT NULL")
        .fetch_all(&mut *conn)
        .await?;
    *seen = Some(count);
    Ok(Some(rows.iter().map(|r| r.get(0)).collect()))
}

fn close_revoked(state: &AppState, revoked: HashSet<String>) {
    for socket in state.hub.revoked(revoked) {
        tracing::info!(sid = %socket.id, "token revoked; closing socket");
        if let Err(e) = socket.disconnect() {
            tracing::debug!(%e, "closing a revoked socket");
        }
    }
}
