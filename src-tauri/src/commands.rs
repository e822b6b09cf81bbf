//! Tauri commands: the page's only way to act. Each one is a thin call into
//! the client library; errors reach the page as `{kind, message}`.

use std::path::PathBuf;

use serde::Serialize;
use tauri::{AppHandle, State};
use vidsync_client::api::{ApiClient, ApiError};
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
    let statuses = match state.engine().await {
        Some(e) => e.statuses(),
        None => Vec::new(),
    };
    Ok(Snapshot {
        server: cfg.server.clone(),
        has_token: cfg.token.is_some(),
        transport: cfg.transport,
        debounce_ms: cfg.debounce_ms,
        links: cfg.folders,
        statuses,
    })
}

fn api(cfg: &Config) -> Res<ApiClient> {
    let (server, token) = cfg.credentials().map_err(|_| {
        UiError::new(
            "settings",
            "Not connected: enter the server URL and a token in Settings.",
        )
    })?;
    Ok(ApiClient::new(&server, &token)?)
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
    let api = ApiClient::new(&server, &token)?;
    let projects = api.projects().await?;
    Ok(format!(
        "Connected to {} ({} project(s) visible).",
        api.base(),
        projects.len()
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
    let mut cfg = Config::load(&state.dir)?;
    let token = if token.is_empty() {
        cfg.token.clone().unwrap_or_default()
    } else {
        token
    };
    let api = ApiClient::new(&server, &token)?;
    api.projects().await?;
    cfg.server = Some(api.base().to_string());
    cfg.token = Some(token);
    cfg.transport = transport;
    cfg.debounce_ms = debounce_ms.clamp(50, 10_000);
    cfg.save(&state.dir)?;
    state.restart(&app).await?;
    Ok(())
}

fn absolute(path: &str) -> Res<PathBuf> {
    let p = PathBuf::from(path);
    if !p.is_absolute() {
        return Err(UiError::new(
            "path",
            "Choose a folder with its full path (or use Browse…).",
        ));
    }
    std::fs::create_dir_all(&p)
        .map_err(|e| UiError::new("path", format!("{}: {e}", p.display())))?;
    Ok(p)
}

async fn link_and_start(state: &AppState, link: FolderLink) -> Res<()> {
    let mut cfg = Config::load(&state.dir)?;
    cfg.link(link.clone());
    cfg.save(&state.dir)?;
    if let Some(engine) = state.engine().await {
        engine.start_folder(link).await?;
    }
    Ok(())
}

#[tauri::command]
pub async fn add_folder(
    state: State<'_, AppState>,
    path: String,
    name: Option<String>,
) -> Res<String> {
    let cfg = Config::load(&state.dir)?;
    let api = api(&cfg)?;
    let path = absolute(&path)?;
    let name = name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| {
        path.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "project".into())
    });
    let project = api.create_project(&name).await?;
    let link = FolderLink {
        project_id: project.id.clone(),
        name: project.name,
        path,
        mode: Mode::SendReceive,
        paused: false,
    };
    link_and_start(&state, link).await?;
    Ok(project.id)
}

#[tauri::command]
pub async fn join_project(
    state: State<'_, AppState>,
    code: String,
    path: String,
    mode: Mode,
) -> Res<String> {
    let cfg = Config::load(&state.dir)?;
    let api = api(&cfg)?;
    let path = absolute(&path)?;
    let project = api.accept_invite(code.trim()).await.map_err(|e| match e {
        ApiError::Refused { status: 404, .. } => {
            UiError::new("not_found", "Unknown or expired invite code.")
        }
        e => e.into(),
    })?;
    let link = FolderLink {
        project_id: project.id.clone(),
        name: project.name,
        path,
        mode,
        paused: false,
    };
    link_and_start(&state, link).await?;
    Ok(project.id)
}

#[tauri::command]
pub async fn invite(state: State<'_, AppState>, project_id: String) -> Res<String> {
    let cfg = Config::load(&state.dir)?;
    Ok(api(&cfg)?.create_invite(&project_id).await?.code)
}

#[tauri::command]
pub async fn remove_folder(state: State<'_, AppState>, project_id: String) -> Res<()> {
    if let Some(engine) = state.engine().await {
        engine.stop_folder(&project_id).await;
    }
    let mut cfg = Config::load(&state.dir)?;
    cfg.folders.retain(|f| f.project_id != project_id);
    cfg.save(&state.dir)?;
    Ok(())
}

#[tauri::command]
pub async fn pause_folder(state: State<'_, AppState>, project_id: String, paused: bool) -> Res<()> {
    state.set_paused(&project_id, paused).await
}
