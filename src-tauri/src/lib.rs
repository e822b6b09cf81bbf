//! The Vidsync desktop app: a Tauri v2 shell over `vidsync_client`. The
//! engine runs here (Socket.IO, polling fallback, outbox, applier); the page
//! in `ui/` only shows its events and calls the [`commands`]. Closing the
//! window keeps syncing in the tray; a second launch focuses the first.

#[cfg(test)]
mod bindings;
mod commands;
mod error;
mod history;
mod state;
mod tray;

use tauri::{Manager, RunEvent, WindowEvent};

/// Same config dir as the CLI: a folder linked with `vidsync` shows up here.
fn config_dir() -> std::path::PathBuf {
    std::env::var_os("VIDSYNC_CONFIG_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(vidsync_client::config::default_dir)
}

pub fn run() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    let result = tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            tray::show_window(app)
        }))
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            None,
        ))
        .manage(state::AppState::new(config_dir()))
        .invoke_handler(tauri::generate_handler![
            commands::ready,
            commands::snapshot,
            commands::test_connection,
            commands::save_settings,
            commands::add_folder,
            commands::join_project,
            commands::invite,
            commands::remove_folder,
            commands::pause_folder,
            commands::set_autostart,
            commands::project_overview,
            commands::open_folder,
            history::project_files,
            history::file_history,
            history::restore_version,
            history::rewind_preview,
            history::rewind,
            history::conflicts,
            history::resolve_conflict,
        ])
        .setup(|app| {
            tray::build(app.handle())?;
            Ok(())
        })
        .on_window_event(|window, event| {
            // Closing the window hides it; syncing goes on in the tray.
            if let WindowEvent::CloseRequested { api, .. } = event {
                if window.app_handle().tray_by_id("main").is_some() {
                    let _ = window.hide();
                    api.prevent_close();
                }
            }
        })
        .build(tauri::generate_context!());
    let app = match result {
        Ok(app) => app,
        Err(e) => {
            eprintln!("vidsync-desktop: error: {e}");
            std::process::exit(1);
        }
    };
    app.run(|app, event| {
        // Every way out (tray Quit, the last window closed, `exit`) waits
        // for the engine's shutdown first, then exits again.
        if let RunEvent::ExitRequested { code, api, .. } = event {
            if !state::may_exit(app) {
                api.prevent_exit();
                state::quit(app, code.unwrap_or(0));
            }
        }
    });
}
