//! What the shell keeps between commands: the config dir and the running
//! engine (none until the user has given a server and token), and the
//! task that forwards the engine's events to the page.

use std::path::PathBuf;

use tauri::{AppHandle, Emitter, Manager};
use tokio_util::sync::CancellationToken;
use vidsync_client::{Config, Engine, EngineEvent};

pub struct AppState {
    pub dir: PathBuf,
    pub running: tokio::sync::Mutex<Option<Running>>,
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
        let engine = Engine::open(&self.dir).await?;
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

    pub async fn engine(&self) -> Option<Engine> {
        self.running.lock().await.as_ref().map(|r| r.engine.clone())
    }
}

pub fn state(app: &AppHandle) -> tauri::State<'_, AppState> {
    app.state::<AppState>()
}
