//! Tauri commands of the history view: a project's files, a file's
//! versions, "Restore this version", and "Rewind to…" with its preview.
//! Thin calls of [`vidsync_client::usecase::history`].

use tauri::State;
use vidsync_client::usecase::history::{self as uc, Going, Point};
use vidsync_protocol::{Change, ProjectEvent};

use crate::error::Res;
use crate::state::AppState;

/// Files listed in the history view at most.
const MAX_FILES: usize = 5000;

#[tauri::command]
pub async fn project_files(state: State<'_, AppState>, project_id: String) -> Res<Vec<String>> {
    Ok(uc::files(&state.dir, &project_id, MAX_FILES).await?)
}

#[tauri::command]
pub async fn file_history(
    state: State<'_, AppState>,
    project_id: String,
    path: String,
) -> Res<Vec<ProjectEvent>> {
    Ok(uc::versions(&state.dir, &project_id, &path).await?)
}

fn going(seq: u64, paths: Option<Vec<String>>, dry_run: bool) -> Going {
    Going {
        to: Point::Seq(seq),
        paths,
        prefix: None,
        changed_by: None,
        dry_run,
    }
}

async fn link_of(state: &AppState, project_id: &str) -> Res<vidsync_client::FolderLink> {
    let cfg = vidsync_client::Config::load(&state.dir)?;
    Ok(uc::project_for(
        &cfg,
        Some(project_id),
        std::path::Path::new("/"),
    )?)
}

/// Brings `path` back to its version at `seq`; says what happened.
#[tauri::command]
pub async fn restore_version(
    state: State<'_, AppState>,
    project_id: String,
    path: String,
    seq: u64,
) -> Res<String> {
    let link = link_of(&state, &project_id).await?;
    let done = uc::restore(
        &state.dir,
        &link,
        &going(seq, Some(vec![path.clone()]), false),
    )
    .await?;
    Ok(match done.events.len() {
        0 => format!("{path} is already that version."),
        _ => format!("Restored {path} to its version of seq {seq}."),
    })
}

/// What "Rewind to `seq`" would change, changing nothing.
#[tauri::command]
pub async fn rewind_preview(
    state: State<'_, AppState>,
    project_id: String,
    seq: u64,
) -> Res<Vec<Change>> {
    let link = link_of(&state, &project_id).await?;
    let plan = uc::restore(&state.dir, &link, &going(seq, None, true)).await?;
    Ok(plan.changes.unwrap_or_default())
}

#[tauri::command]
pub async fn rewind(state: State<'_, AppState>, project_id: String, seq: u64) -> Res<String> {
    let link = link_of(&state, &project_id).await?;
    let done = uc::restore(&state.dir, &link, &going(seq, None, false)).await?;
    Ok(format!(
        "Rewound {} to seq {}: {} path(s) changed.",
        link.name,
        done.at_seq,
        done.events.len()
    ))
}

#[tauri::command]
pub async fn conflicts(
    state: State<'_, AppState>,
    project_id: String,
) -> Res<Vec<vidsync_client::usecase::conflicts::ConflictCopy>> {
    let engine = state.engine().await;
    Ok(vidsync_client::usecase::conflicts::list(&state.dir, engine.as_ref(), &project_id).await?)
}

#[tauri::command]
pub async fn resolve_conflict(
    state: State<'_, AppState>,
    project_id: String,
    copy: String,
    keep: vidsync_client::usecase::conflicts::Keep,
) -> Res<String> {
    use vidsync_client::usecase::conflicts::{resolve, Keep};
    let engine = state.engine().await;
    let done = resolve(&state.dir, engine.as_ref(), &project_id, &copy, keep).await?;
    Ok(match keep {
        Keep::Mine => format!("{} now holds your version.", done.original),
        Keep::Theirs => format!("Kept theirs: {} removed.", done.copy),
        Keep::Both => format!("Both kept: {} and {}.", done.original, done.copy),
    })
}
