//! What the shell keeps between commands: the config dir and the running
//! engine (none until the user has given a server and token), the task
//! that forwards the engine's events to the page, and the way out: every
//! exit (tray Quit, last window closed, `app.exit`) first shuts the engine
//! down and waits for it ([`quit`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use tauri::{AppHandle, Emitter, Manager};
use tokio_util::sync::CancellationToken;
use vidsync_client::usecase;
use vidsync_client::{Config, Engine, EngineEvent};

use crate::error::Res;

pub struct AppState {
    pub dir: PathBuf,
    pub running: tokio::sync::Mutex<Option<Running>>,
    /// Set once the engine has been shut down for good: exit may proceed.
    stopped_for_exit: AtomicBool,
    /// Set when a shutdown for exit is under way (one at a time).
    quitting: AtomicBool,
}

pub struct Running {
    pub engine: Engine,
    forward: CancellationToken,
}

impl AppState {
    pub fn new(dir: PathBuf) -> AppState {
        AppState {
            dir,
            running: tokio::sync::Mutex::new(None),
            stopped_for_exit: AtomicBool::new(false),
            quitting: AtomicBool::new(false),
        }
    }

    /// (Re)starts the engine from the saved config, if it has credentials,
    /// forwarding its events to the page as `engine`.
    pub async fn restart(&self, app: &AppHandle) -> Result<(), vidsync_client::Error> {
        self.stop().await;
        let cfg = Config::load(&self.dir)?;
        if cfg.credentials().is_err() {
            return Ok(());
        }
        let engine = Engine::open(&self.dir, cfg).await?;
        let mut events = engine.subscribe();
        let forward = CancellationToken::new();
        let stop = forward.clone();
        let app2 = app.clone();
        tauri::async_runtime::spawn(async move {
            loop {
                let ev = tokio::select! {
                    _ = stop.cancelled() => return,
                    ev = events.recv() => ev,
                };
                match ev {
                    Ok(ev) => {
                        if let EngineEvent::Applied {
                            conflict: Some(copy),
                            path,
                            ..
                        } = &ev
                        {
                            crate::tray::notify_conflict(&app2, path, copy);
                        }
                        if let EngineEvent::StatusChanged { .. } = &ev {
                            crate::tray::refresh(&app2).await;
                        }
                        if let Err(e) = app2.emit("engine", &ev) {
                            tracing::warn!(%e, "emit to the page");
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "page fell behind the engine");
                        let _ = app2.emit("folders-changed", ());
                    }
                    Err(_) => return,
                }
            }
        });
        engine.start_all().await?;
        *self.running.lock().await = Some(Running { engine, forward });
        Ok(())
    }

    pub async fn stop(&self) {
        if let Some(r) = self.running.lock().await.take() {
            r.forward.cancel();
            r.engine.shutdown().await;
        }
    }

    /// Pauses (or resumes) one folder; the page's toggle and the tray's
    /// "Pause all" both come here.
    pub async fn set_paused(&self, project_id: &str, paused: bool) -> Res<()> {
        let engine = self.engine().await;
        usecase::set_paused(&self.dir, project_id, paused, engine.as_ref()).await?;
        Ok(())
    }

    pub async fn engine(&self) -> Option<Engine> {
        self.running.lock().await.as_ref().map(|r| r.engine.clone())
    }
}

pub fn state(app: &AppHandle) -> tauri::State<'_, AppState> {
    app.state::<AppState>()
}

/// Whether the process may exit now: true once [`quit`] has shut the
/// engine down. Until then the exit request is to be prevented and
/// [`quit`] called, which exits again when the engine is done.
pub fn may_exit(app: &AppHandle) -> bool {
    state(app).stopped_for_exit.load(Ordering::SeqCst)
}

/// Shuts the engine down (its loops finish what they hold, the local state
/// is closed) and then exits the process with `code`. Calling it again
/// while a shutdown runs does nothing.
pub fn quit(app: &AppHandle, code: i32) {
    let st = state(app);
    if st.quitting.swap(true, Ordering::SeqCst) {
        return;
    }
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let st = state(&app);
        st.stop().await;
        tracing::info!("engine shut down; exiting");
        st.stopped_for_exit.store(true, Ordering::SeqCst);
        app.exit(code);
    });
}
