//! The tray icon: its tooltip tells the overall state; its menu opens the
//! window, pauses or resumes every folder, or quits (after the engine has
//! shut down). Conflicts raise a desktop notification.

use tauri::menu::{Menu, MenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Emitter, Manager};
use tauri_plugin_notification::NotificationExt;
use vidsync_client::{BadgeKind, Config};

use crate::state::state;

const TRAY_ID: &str = "main";

pub fn build(app: &AppHandle) -> tauri::Result<()> {
    let open = MenuItem::with_id(app, "open", "Open Vidsync", true, None::<&str>)?;
    let pause = MenuItem::with_id(app, "pause-all", "Pause all", true, None::<&str>)?;
    let resume = MenuItem::with_id(app, "resume-all", "Resume all", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&open, &pause, &resume, &quit])?;
    let mut tray = TrayIconBuilder::with_id(TRAY_ID)
        .menu(&menu)
        .tooltip("Vidsync");
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    tray.on_menu_event(|app, event| match event.id.as_ref() {
        "open" => show_window(app),
        "pause-all" | "resume-all" => {
            let paused = event.id.as_ref() == "pause-all";
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                let st = state(&app);
                let ids: Vec<String> = Config::load(&st.dir)
                    .map(|c| c.folders.into_iter().map(|f| f.project_id).collect())
                    .unwrap_or_default();
                for id in ids {
                    if let Err(e) = st.set_paused(&id, paused).await {
                        tracing::warn!(project = %id, message = %e.message, "pause from the tray");
                    }
                }
                let _ = app.emit("folders-changed", ());
                refresh(&app).await;
            });
        }
        "quit" => crate::state::quit(app, 0),
        _ => {}
    })
    .build(app)?;
    Ok(())
}

pub fn show_window(app: &AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

/// Sets the tray tooltip to the overall state.
pub async fn refresh(app: &AppHandle) {
    let st = state(app);
    let text = match st.engine().await {
        None => "Vidsync: not connected".to_string(),
        Some(e) => {
            let statuses = e.statuses();
            let busy = statuses
                .iter()
                .filter(|s| s.badge.kind != BadgeKind::UpToDate)
                .count();
            format!(
                "Vidsync: {} · {}",
                e.connection().as_str(),
                if busy == 0 {
                    "up to date".to_string()
                } else {
                    format!("{busy} folder(s) need attention")
                }
            )
        }
    };
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        let _ = tray.set_tooltip(Some(text));
    }
}

/// What the app told the user outside the window (a desktop notification),
/// also sent to the page as `notified` so the window shows it too: a user
/// without a notification daemon still learns of the conflict.
#[derive(Debug, Clone, serde::Serialize, ts_rs::TS)]
pub struct Notice {
    pub title: String,
    pub body: String,
}

pub fn notify_conflict(app: &AppHandle, path: &str, copy: &str) {
    let notice = Notice {
        title: "Vidsync: conflict".into(),
        body: format!("{path} changed on both sides. Your version is kept as {copy}."),
    };
    let shown = app
        .notification()
        .builder()
        .title(&notice.title)
        .body(&notice.body)
        .show();
    if let Err(e) = shown {
        tracing::debug!(%e, "notification");
    }
    if let Err(e) = app.emit("notified", &notice) {
        tracing::warn!(%e, "emit the notice to the page");
    }
}
