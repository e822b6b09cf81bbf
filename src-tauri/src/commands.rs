//! Tauri commands: the page's only way to act. Each one is a thin call of a
//! [`vidsync_client::usecase`] function; errors reach the page as
//! `{kind, message}`.

use serde::Serialize;
use tauri::{AppHandle, Emitter, State};
use tauri_plugin_autostart::ManagerExt as _;
use tauri_plugin_opener::OpenerExt as _;
use vidsync_client::usecase::overview::Overview;
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
    /// The private CA certificate trusted for the server, if any.
    ca_file: Option<String>,
    /// Whether the app starts at login.
    autostart: bool,
    /// This installation's id on the wire (to tell itself in presence).
    client_id: String,
    transport: Transport,
    debounce_ms: u64,
    links: Vec<FolderLink>,
    statuses: Vec<FolderStatus>,
}

async fn snapshot_of(app: &AppHandle, state: &AppState) -> Res<Snapshot> {
    let cfg = Config::load(&state.dir)?;
    let engine = state.engine().await;
    let statuses = usecase::status(&state.dir, engine.as_ref()).await?;
    Ok(Snapshot {
        server: cfg.server.clone(),
        has_token: cfg.token.is_some(),
        ca_file: cfg.ca_file.map(|p| p.display().to_string()),
        autostart: app.autolaunch().is_enabled().unwrap_or(false),
        client_id: cfg.client_id.clone(),
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
    let mut not_started = None;
    if state.engine().await.is_none() {
        // E.g. `vidsync run` already syncs with this config dir: the page
        // still shows the settings and folders, and says why nothing syncs.
        not_started = state.restart(&app).await.err();
    }
    let snap = snapshot_of(&app, &state).await?;
    if let Some(e) = not_started {
        tracing::warn!(%e, "the engine did not start");
        let notice = crate::tray::Notice {
            title: "Vidsync is not syncing".into(),
            body: format!("Not syncing: {e}"),
        };
        if let Err(e) = app.emit("notified", &notice) {
            tracing::warn!(%e, "emit to the page");
        }
    }
    Ok(snap)
}

#[tauri::command]
pub async fn snapshot(app: AppHandle, state: State<'_, AppState>) -> Res<Snapshot> {
    snapshot_of(&app, &state).await
}

/// An optional file path from a form field: empty means none.
fn ca_path(ca_file: Option<String>) -> Option<std::path::PathBuf> {
    ca_file
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .map(std::path::PathBuf::from)
}

#[tauri::command]
pub async fn test_connection(
    server: String,
    token: String,
    ca_file: Option<String>,
) -> Res<String> {
    let ok = usecase::check_with_ca(&server, &token, ca_path(ca_file).as_deref()).await?;
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
    ca_file: Option<String>,
) -> Res<()> {
    // An empty token field keeps the saved token.
    let token = match token.is_empty() {
        true => Config::load(&state.dir)?.token.unwrap_or_default(),
        false => token,
    };
    usecase::login_with_ca(&state.dir, &server, &token, ca_path(ca_file).as_deref()).await?;
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

/// The first share or join turns "start at login" on, unless the user
/// has chosen already (the toggle leaves a mark in the config dir).
fn autostart_after_first_link(app: &AppHandle, state: &AppState, links_before: usize) {
    if links_before > 0 || state.dir.join(AUTOSTART_CHOSEN).exists() {
        return;
    }
    if let Err(e) = app.autolaunch().enable() {
        tracing::warn!(%e, "could not turn on start at login");
    }
}

/// Marks that the user chose "start at login" themselves.
const AUTOSTART_CHOSEN: &str = "desktop-autostart-chosen";

#[tauri::command]
pub async fn set_autostart(app: AppHandle, state: State<'_, AppState>, enabled: bool) -> Res<bool> {
    let launcher = app.autolaunch();
    let done = if enabled {
        launcher.enable()
    } else {
        launcher.disable()
    };
    done.map_err(|e| UiError::new("autostart", format!("Start at login: {e}")))?;
    std::fs::write(
        state.dir.join(AUTOSTART_CHOSEN),
        if enabled { "on\n" } else { "off\n" },
    )
    .map_err(|e| UiError::new("client", format!("Cannot save the choice: {e}")))?;
    Ok(launcher.is_enabled().unwrap_or(enabled))
}

#[tauri::command]
pub async fn add_folder(
    app: AppHandle,
    state: State<'_, AppState>,
    path: String,
    name: Option<String>,
) -> Res<String> {
    let path = full_path(&path)?;
    let before = Config::load(&state.dir)?.folders.len();
    let engine = state.engine().await;
    let link = usecase::share(&state.dir, &path, name, engine.as_ref()).await?;
    autostart_after_first_link(&app, &state, before);
    Ok(link.project_id)
}

#[tauri::command]
pub async fn join_project(
    app: AppHandle,
    state: State<'_, AppState>,
    code: String,
    path: String,
    mode: Mode,
) -> Res<String> {
    let path = full_path(&path)?;
    let before = Config::load(&state.dir)?.folders.len();
    let engine = state.engine().await;
    let joined = usecase::join(&state.dir, &code, &path, mode, engine.as_ref(), &Quiet).await?;
    autostart_after_first_link(&app, &state, before);
    Ok(joined.link.project_id)
}

/// The project view's figures from the server (files, size, owner, last change).
#[tauri::command]
pub async fn project_overview(state: State<'_, AppState>, project_id: String) -> Res<Overview> {
    Ok(usecase::overview::overview(&state.dir, &project_id).await?)
}

/// Opens a linked folder in the system's file manager.
#[tauri::command]
pub async fn open_folder(
    app: AppHandle,
    state: State<'_, AppState>,
    project_id: String,
) -> Res<()> {
    let cfg = Config::load(&state.dir)?;
    let link = cfg
        .folders
        .iter()
        .find(|f| f.project_id == project_id)
        .ok_or_else(|| UiError::new("not_found", "No such folder."))?;
    app.opener()
        .open_path(link.path.display().to_string(), None::<&str>)
        .map_err(|e| UiError::new("open", format!("Cannot open {}: {e}", link.path.display())))
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
