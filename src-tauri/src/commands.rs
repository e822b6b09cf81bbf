//! Tauri commands: the page's only way to act. Each one is a thin call of a
//! [`vidsync_client::usecase`] function; errors reach the page as
//! `{kind, message}`.

use serde::Serialize;
use tauri::{AppHandle, State};
use vidsync_client::usecase::{self, Quiet, Settings};
use vidsync_client::{Config, FolderLink, FolderStatus, Mode, Transport};

use crate::error::{Res, UiError};
use crate::state::AppState;

/// What the page gets from `ready` and `snapshot`: the settings (never
/// the token itself), the linked folders and their statuses.
#[derive(Serialize, ts_rs::TS)]
pub struct Snapshot {
    server: Option<String>,
    has_token: bool,
    transport: Transport,
    debounce_ms: u64,
    links: Vec<FolderLink>,
    statuses: Vec<FolderStatus>,
}

async fn snapshot_of(state: &AppState) -> Res<Snapshot> {
    let cfg = Config::load(&state.dir)?;
    let engine = state.engine().await;
    let statuses = usecase::status(&state.dir, engine.as_ref()).await?;
    Ok(Snapshot {
        server: cfg.server.clone(),
        has_token: cfg.token.is_some(),
        transport: cfg.transport,
        debounce_ms: cfg.debounce_ms,
        links: cfg.folders,
        statuses,
    })
}

/// The page is listening: start the engine (events flow from now on) and
/// hand over the current state.
#[tauri::command]
pub async fn ready(app: AppHandle, state: State<'_, AppState>) -> Res<Snapshot> {
    if state.engine().await.is_none() {
        state.restart(&app).await?;
    }
    snapshot_of(&state).await
}

#[tauri::command]
pub async fn snapshot(state: State<'_, AppState>) -> Res<Snapshot> {
    snapshot_of(&state).await
}

#[tauri::command]
pub async fn test_connection(server: String, token: String) -> Res<String> {
    let ok = usecase::check(&server, &token).await?;
    Ok(format!(
        "Connected to {} ({} project(s) visible).",
        ok.server, ok.projects
    ))
}

#[tauri::command]
pub async fn save_settings(
    app: AppHandle,
    state: State<'_, AppState>,
    server: String,
    token: String,
    transport: Transport,
    debounce_ms: u64,
) -> Res<()> {
    // An empty token field keeps the saved token.
    let token = match token.is_empty() {
        true => Config::load(&state.dir)?.token.unwrap_or_default(),
        false => token,
    };
    usecase::login(&state.dir, &server, &token).await?;
    let prefs = Settings {
        transport: Some(transport),
        debounce_ms: Some(debounce_ms.clamp(50, 10_000)),
        poll_interval_ms: None,
    };
    usecase::set(&state.dir, prefs)?;
    state.restart(&app).await?;
    Ok(())
}

/// A folder the user typed or picked: only a full path means one place.
fn full_path(path: &str) -> Res<std::path::PathBuf> {
    let p = std::path::PathBuf::from(path);
    if !p.is_absolute() {
        return Err(UiError::new(
            "path",
            "Choose a folder with its full path (or use Browse…).",
        ));
    }
    Ok(p)
}

#[tauri::command]
pub async fn add_folder(
    state: State<'_, AppState>,
    path: String,
    name: Option<String>,
) -> Res<String> {
    let path = full_path(&path)?;
    let engine = state.engine().await;
    let link = usecase::share(&state.dir, &path, name, engine.as_ref()).await?;
    Ok(link.project_id)
}

#[tauri::command]
pub async fn join_project(
    state: State<'_, AppState>,
    code: String,
    path: String,
    mode: Mode,
) -> Res<String> {
    let path = full_path(&path)?;
    let engine = state.engine().await;
    let joined = usecase::join(&state.dir, &code, &path, mode, engine.as_ref(), &Quiet).await?;
    Ok(joined.link.project_id)
}

#[tauri::command]
pub async fn invite(state: State<'_, AppState>, project_id: String) -> Res<String> {
    Ok(usecase::invite(&state.dir, &project_id).await?)
}

#[tauri::command]
pub async fn remove_folder(state: State<'_, AppState>, project_id: String) -> Res<()> {
    let engine = state.engine().await;
    usecase::remove(&state.dir, &project_id, engine.as_ref()).await?;
    Ok(())
}

#[tauri::command]
pub async fn pause_folder(state: State<'_, AppState>, project_id: String, paused: bool) -> Res<()> {
    state.set_paused(&project_id, paused).await
}
