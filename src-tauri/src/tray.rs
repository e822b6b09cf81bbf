//! The tray icon: its tooltip tells the overall state; its menu opens the
//! window, pauses or resumes every folder, or quits. Conflicts raise a
//! desktop notification.

use tauri::menu::{Menu, MenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Emitter, Manager};
use tauri_plugin_notification::NotificationExt;
use vidsync_client::Config;

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
                    let _ = crate::commands::set_paused(&st, &id, paused).await;
                }
                let _ = app.emit("folders-changed", ());
                refresh(&app).await;
            });
        }
        "quit" => app.exit(0),
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
            let busy = statuses.iter().filter(|s| s.badge != "up to date").count();
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

pub fn notify_conflict(app: &AppHandle, path: &str, copy: &str) {
    let shown = app
        .notification()
        .builder()
        .title("Vidsync: conflict")
        .body(format!(
            "{path} changed on both sides. Your version is kept as {copy}."
        ))
        .show();
    if let Err(e) = shown {
        tracing::debug!(%e, "notification");
    }
}
