//! The CLI's long-running commands: `run` (the engine, its events printed
//! until SIGINT/SIGTERM) and `log` (a project's events, optionally
//! followed live).

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use tokio_util::sync::CancellationToken;
use vidsync_client::api::ApiError;
use vidsync_client::feed::{FeedEvent, LiveFeed};
use vidsync_client::usecase::api_of;
use vidsync_client::{Config, Engine, Transport};
use vidsync_protocol::ProjectEvent;

use super::output::{event_line, explain, print_engine_event};

pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term => {} }
}

pub async fn run_engine(
    dir: &Path,
    debounce_ms: Option<u64>,
    transport: Option<Transport>,
    json: bool,
) -> Result<()> {
    let mut cfg = Config::load(dir)?;
    if cfg.folders.is_empty() {
        bail!("no linked folders: use `vidsync share DIR` or `vidsync join CODE DIR` first");
    }
    // Flags apply to this run only; they are not saved.
    cfg.debounce_ms = debounce_ms.unwrap_or(cfg.debounce_ms);
    cfg.transport = transport.unwrap_or(cfg.transport);
    drive(Engine::open(dir, cfg).await?, json).await
}

async fn drive(engine: Engine, json: bool) -> Result<()> {
    let mut events = engine.subscribe();
    engine.start_all().await?;
    let printer = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(ev) => print_engine_event(&ev, json),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "output fell behind")
                }
                Err(_) => return,
            }
        }
    });
    shutdown_signal().await;
    tracing::info!("stopping");
    engine.shutdown().await;
    printer.abort();
    Ok(())
}

pub async fn log(dir: &Path, project_id: &str, follow: bool, json: bool) -> Result<()> {
    let cfg = Config::load(dir)?;
    let api = api_of(&cfg).map_err(explain)?;
    let print = |e: &ProjectEvent| {
        if json {
            if let Ok(l) = serde_json::to_string(e) {
                println!("{l}");
            }
        } else {
            println!("{}", event_line(e));
        }
    };
    let mut since = 0;
    loop {
        let page = api
            .events(project_id, since, 1000)
            .await
            .map_err(|e| refused(e, project_id))?;
        let n = page.events.len();
        for e in &page.events {
            print(e);
            since = e.seq;
        }
        if n < 1000 {
            break;
        }
    }
    if !follow {
        return Ok(());
    }
    let cancel = CancellationToken::new();
    let projects = [(project_id.to_string(), since)].into_iter().collect();
    // Unnamed in presence: a log reader is not a syncing client.
    let (_feed, mut rx) = LiveFeed::start(
        api,
        None,
        cfg.transport,
        Duration::from_millis(cfg.poll_interval_ms.max(100)),
        projects,
        cancel.clone(),
    );
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            m = rx.recv() => match m {
                Some(FeedEvent::Event(e)) => print(&e),
                Some(FeedEvent::Connection(c)) => eprintln!("vidsync: connection {}", c.as_str()),
                Some(FeedEvent::Error { message, .. }) => eprintln!("vidsync: {message}"),
                Some(FeedEvent::Invalid { seq, message, .. }) => eprintln!("vidsync: event {seq} skipped: {message}"),
                Some(FeedEvent::Presence { .. }) => {}
                None => break,
            }
        }
    }
    cancel.cancel();
    Ok(())
}

/// The log's refusals, worded for the user.
fn refused(e: ApiError, project_id: &str) -> anyhow::Error {
    match e {
        ApiError::Refused { status: 404, .. } => {
            anyhow!("no project {project_id:?} on this server")
        }
        ApiError::Refused { status: 403, .. } => {
            anyhow!("you are not a member of project {project_id:?}")
        }
        e => explain(e.into()),
    }
}
