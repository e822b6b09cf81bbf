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

use super::output::{engine_event_line, event_line, explain};

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
    let events = engine.subscribe();
    engine.start_all().await?;
    let printer = tokio::spawn(print_events(events, json));
    shutdown_signal().await;
    tracing::info!("stopping");
    engine.shutdown().await;
    printer.abort();
    Ok(())
}

/// Prints engine events, one line each. The lines of all events waiting
/// are written at once: a burst of 2,000 files made one write to stdout
/// (and one wake-up of whatever reads it) per line, four per file.
async fn print_events(
    mut events: tokio::sync::broadcast::Receiver<vidsync_client::EngineEvent>,
    json: bool,
) {
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    /// Written out when this much waits, even if more events do.
    const FLUSH_AT: usize = 64 * 1024;
    let mut out = String::new();
    loop {
        // Wait for one event, then take all that wait.
        let mut got = Some(events.recv().await);
        while let Some(r) = got {
            match r {
                Ok(ev) => {
                    if let Some(line) = engine_event_line(&ev, json) {
                        out.push_str(&line);
                        out.push('\n');
                    }
                }
                Err(RecvError::Lagged(n)) => tracing::warn!(skipped = n, "output fell behind"),
                Err(RecvError::Closed) => {
                    write_out(&mut out);
                    return;
                }
            }
            if out.len() >= FLUSH_AT {
                write_out(&mut out);
                tokio::task::yield_now().await;
            }
            got = match events.try_recv() {
                Ok(ev) => Some(Ok(ev)),
                Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
                Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
                Err(TryRecvError::Empty) => None,
            };
        }
        write_out(&mut out);
        // `try_recv` does not count against the task's budget: let the
        // worker run others between two writes.
        tokio::task::yield_now().await;
    }
}

/// Writes `out` to stdout and empties it. Nothing to do if stdout is gone
/// (a closed pipe).
fn write_out(out: &mut String) {
    use std::io::Write;
    if out.is_empty() {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush());
    out.clear();
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
