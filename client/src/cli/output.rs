//! How the CLI words things: engine events, status lines, log lines, the
//! catch-up's outcome, and errors with what the user can do next.

use anyhow::anyhow;
use vidsync_client::usecase::{CatchUp, UseCaseError};
use vidsync_client::{ConnectionDetail, EngineEvent, FolderStatus};
use vidsync_protocol::ProjectEvent;

/// Adds what a user can do next to a use-case's refusal.
pub fn explain(e: UseCaseError) -> anyhow::Error {
    match e {
        UseCaseError::TokenRefused(_) => {
            anyhow!("{e}; run `vidsync login` with a valid token")
        }
        e => anyhow!(e),
    }
}

pub fn print_catch_up(c: &CatchUp) {
    if c.failed == 0 {
        println!("{} path(s) brought up to seq {}", c.files, c.head);
    } else {
        println!(
            "{} of {} path(s) could not be brought over; `vidsync run` will try again",
            c.failed, c.files
        );
    }
}

pub fn print_statuses(statuses: &[FolderStatus], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(statuses)?);
    } else if statuses.is_empty() {
        println!("no linked folders: use `vidsync share DIR` or `vidsync join CODE DIR`");
    } else {
        for s in statuses {
            println!("{}", status_line(s));
        }
    }
    Ok(())
}

/// One engine event as the line `vidsync run` prints (JSON with `--json`),
/// without its newline; `None` if it cannot be written.
pub fn engine_event_line(ev: &EngineEvent, json: bool) -> Option<String> {
    if json {
        return serde_json::to_string(ev).ok();
    }
    Some(match ev {
        EngineEvent::StatusChanged { status } => status_line(status),
        EngineEvent::ChangeQueued { path, op, .. } => {
            format!("queued    {:<6} {path}", op.as_str())
        }
        EngineEvent::ChangeUploaded { path, op, seq, .. } => {
            format!("uploaded  {:<6} {path} (seq {seq})", op.as_str())
        }
        EngineEvent::RemoteEvent { event, .. } => event_line(event),
        EngineEvent::Applied { path, conflict, .. } => match conflict {
            Some(c) => format!("synced    {path} (your version kept as {c})"),
            None => format!("synced    {path}"),
        },
        EngineEvent::Error { message, .. } => format!("error     {message}"),
    })
}

fn status_line(s: &FolderStatus) -> String {
    let connection = ConnectionDetail::describe(
        s.connection,
        s.connection_detail.as_ref(),
        time::OffsetDateTime::now_utc(),
    );
    let mut line = format!(
        "{:<20} {:<20} {:<8} queued {:<5} seq {:<6} {}",
        s.name,
        s.badge,
        connection,
        s.queued,
        s.last_seq,
        s.path.display()
    );
    if let Some(e) = &s.error {
        line.push_str(&format!("  ({e})"));
    }
    if let Some(reason) = s.connection_detail.as_ref().and_then(|d| d.reason.as_ref()) {
        line.push_str(&format!("\n  connection: {reason}"));
    }
    for a in &s.set_aside {
        line.push_str(&format!(
            "\n  set aside: {} (event {}): {}",
            a.path, a.seq, a.reason
        ));
    }
    line
}

pub fn event_line(e: &ProjectEvent) -> String {
    format!(
        "#{:<6} {:<6} {}  {} bytes  by {}@{}  {}",
        e.seq,
        e.change.op.as_str(),
        e.change.path,
        e.change
            .size
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into()),
        e.origin.user,
        e.origin.client_id,
        e.created_at
    )
}
