//! Every linked folder's status: from the running engine when the shell
//! has one, else from the `status.json` of a live `vidsync run`, else
//! worked out from the local state (nothing connected; what is waiting).

use std::path::Path;

use super::Result;
use crate::engine::status::{badge, FolderStatus};
use crate::state::LocalState;
use crate::{Config, Connection, Engine, FolderLink};

/// One status per linked folder, in the config's order.
pub async fn status(dir: &Path, engine: Option<&Engine>) -> Result<Vec<FolderStatus>> {
    let cfg = Config::load(dir)?;
    let live = match engine {
        Some(e) => e.statuses(),
        None => from_status_file(dir),
    };
    let mut state = None;
    let mut out = Vec::with_capacity(cfg.folders.len());
    for link in &cfg.folders {
        if let Some(s) = live.iter().find(|s| s.project_id == link.project_id) {
            out.push(s.clone());
            continue;
        }
        if state.is_none() {
            state = Some(match engine {
                Some(e) => e.local_state(),
                None => LocalState::open(dir).await?,
            });
        }
        if let Some(state) = &state {
            out.push(not_running(state, link).await?);
        }
    }
    if let (Some(state), None) = (state, engine) {
        state.close().await;
    }
    Ok(out)
}

/// The statuses a running `vidsync run` last wrote, if it still runs.
fn from_status_file(dir: &Path) -> Vec<FolderStatus> {
    std::fs::read(dir.join("status.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .filter(|v| v["pid"].as_u64().is_some_and(alive))
        .and_then(|v| serde_json::from_value(v["folders"].clone()).ok())
        .unwrap_or_default()
}

/// Whether the process that wrote status.json is still alive.
fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A folder no loop runs for: nothing is connected; show what is waiting.
async fn not_running(state: &LocalState, f: &FolderLink) -> Result<FolderStatus> {
    let (queued, refused) = state.outbox_summary(&f.project_id).await?;
    let set_aside = state.aside_list(&f.project_id).await?;
    let error = refused.or_else(|| {
        set_aside
            .first()
            .map(|a| format!("{} not applied (event {}): {}", a.path, a.seq, a.reason))
    });
    let conflicts = state
        .conflicts(&f.project_id)
        .await?
        .iter()
        .filter(|p| f.path.join(p).exists())
        .count();
    let connection = Connection::Offline;
    Ok(FolderStatus {
        project_id: f.project_id.clone(),
        name: f.name.clone(),
        path: f.path.clone(),
        mode: f.mode,
        badge: badge(queued, connection, error.as_deref(), conflicts, f.paused),
        connection,
        connection_detail: None,
        queued,
        last_seq: state.cursor(&f.project_id).await?,
        error,
        set_aside,
        transfer: Default::default(),
        present: Vec::new(),
    })
}
