//! `vidsync`: the headless client. Parses the command line and drives the
//! library; every error a user can act on ends as one line on stderr and a
//! non-zero exit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use vidsync_client::api::{ApiClient, ApiError};
use vidsync_client::feed::{FeedEvent, LiveFeed};
use vidsync_client::{
    config, Config, Engine, EngineEvent, FolderLink, FolderStatus, Mode, Transport,
};
use vidsync_protocol::ProjectEvent;

#[derive(Parser)]
#[command(
    name = "vidsync",
    version,
    about = "Vidsync: live project-folder sync through your own server"
)]
struct Cli {
    /// Where settings and local state live (several clients can share a machine).
    #[arg(long, env = "VIDSYNC_CONFIG_DIR", global = true)]
    config_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Store the server URL and token (checked against the server).
    Login {
        #[arg(long)]
        server: String,
        #[arg(long)]
        token: String,
    },
    /// Create a project for DIR and link DIR to it; prints the project id.
    Share {
        dir: PathBuf,
        #[arg(long)]
        name: Option<String>,
    },
    /// Print an invite code for a project you own.
    Invite { project_id: String },
    /// Join a project by invite code and link DIR to it.
    Join {
        code: String,
        dir: PathBuf,
        #[arg(long, value_enum, default_value_t = Mode::SendReceive)]
        mode: Mode,
    },
    /// Sync every linked folder until SIGINT/SIGTERM.
    Run {
        /// Debounce for file events, in ms (default from settings: 500).
        #[arg(long)]
        debounce_ms: Option<u64>,
        #[arg(long, value_enum)]
        transport: Option<Transport>,
        /// Print engine events as JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// One line per linked folder: badge, connection, queued, last seq.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Print a project's events; with --follow, keep printing new ones.
    Log {
        project_id: String,
        #[arg(long)]
        follow: bool,
        #[arg(long)]
        json: bool,
    },
    /// Change settings: transport preference, debounce, poll interval.
    Set {
        #[arg(long, value_enum)]
        transport: Option<Transport>,
        #[arg(long)]
        debounce_ms: Option<u64>,
        #[arg(long)]
        poll_interval_ms: Option<u64>,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let dir = cli.config_dir.clone().unwrap_or_else(config::default_dir);
    match run(&dir, cli.command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vidsync: error: {}", one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

fn api_of(cfg: &Config) -> Result<ApiClient> {
    let (server, token) = cfg.credentials()?;
    Ok(ApiClient::new(&server, &token)?)
}

/// Adds what a user can do next to the server's refusals.
fn explain(e: ApiError) -> anyhow::Error {
    match &e {
        ApiError::Refused { status: 401, .. } => anyhow!("the server refused the token (unknown or revoked): {e}; run `vidsync login` with a valid token"),
        _ => anyhow!(e),
    }
}

fn absolute(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::canonicalize(dir).with_context(|| format!("cannot use {}", dir.display()))
}

async fn run(dir: &Path, command: Command) -> Result<()> {
    match command {
        Command::Login { server, token } => {
            let api = ApiClient::new(&server, &token)?;
            let projects = api.projects().await.map_err(explain)?;
            let mut cfg = Config::load(dir)?;
            cfg.server = Some(api.base().to_string());
            cfg.token = Some(token);
            cfg.save(dir)?;
            println!(
                "logged in to {} ({} project(s) visible)",
                api.base(),
                projects.len()
            );
        }
        Command::Share { dir: folder, name } => {
            let mut cfg = Config::load(dir)?;
            let api = api_of(&cfg)?;
            let path = absolute(&folder)?;
            let name = name.unwrap_or_else(|| {
                path.file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_else(|| "project".into())
            });
            let project = api.create_project(&name).await.map_err(explain)?;
            cfg.link(FolderLink {
                project_id: project.id.clone(),
                name: project.name,
                path,
                mode: Mode::SendReceive,
                paused: false,
            });
            cfg.save(dir)?;
            println!("{}", project.id);
        }
        Command::Invite { project_id } => {
            let cfg = Config::load(dir)?;
            let invite = api_of(&cfg)?
                .create_invite(&project_id)
                .await
                .map_err(explain)?;
            println!("{}", invite.code);
        }
        Command::Join {
            code,
            dir: folder,
            mode,
        } => {
            let mut cfg = Config::load(dir)?;
            let api = api_of(&cfg)?;
            let project = api.accept_invite(&code).await.map_err(|e| match e {
                ApiError::Refused { status: 404, .. } => {
                    anyhow!("unknown or expired invite code {code:?}")
                }
                e => explain(e),
            })?;
            let path = absolute(&folder)?;
            cfg.link(FolderLink {
                project_id: project.id.clone(),
                name: project.name.clone(),
                path: path.clone(),
                mode,
                paused: false,
            });
            cfg.save(dir)?;
            println!(
                "joined {} ({}) in {} as {}",
                project.name,
                project.id,
                path.display(),
                mode.as_str()
            );
            if mode != Mode::Send {
                catch_up(dir, &cfg, &api, &project.id, &path).await?;
            }
        }
        Command::Set {
            transport,
            debounce_ms,
            poll_interval_ms,
        } => {
            let mut cfg = Config::load(dir)?;
            if let Some(t) = transport {
                cfg.transport = t;
            }
            if let Some(d) = debounce_ms {
                cfg.debounce_ms = d;
            }
            if let Some(p) = poll_interval_ms {
                cfg.poll_interval_ms = p;
            }
            cfg.save(dir)?;
        }
        Command::Run {
            debounce_ms,
            transport,
            json,
        } => run_engine(dir, debounce_ms, transport, json).await?,
        Command::Status { json } => status(dir, json).await?,
        Command::Log {
            project_id,
            follow,
            json,
        } => log(dir, &project_id, follow, json).await?,
    }
    Ok(())
}

/// Brings a newly joined folder to the project's current state: the newest
/// version of every path, downloaded with a progress bar on a terminal.
async fn catch_up(
    dir: &Path,
    cfg: &Config,
    api: &ApiClient,
    project_id: &str,
    root: &Path,
) -> Result<()> {
    use std::collections::BTreeMap;
    use vidsync_client::api::RawPage;
    let state = vidsync_client::state::LocalState::open(dir).await?;
    let mut latest: BTreeMap<String, ProjectEvent> = BTreeMap::new();
    let mut since = 0;
    let mut head = 0;
    loop {
        let page: RawPage = api
            .raw_events(project_id, since, 1000)
            .await
            .map_err(explain)?;
        head = head.max(page.head_seq);
        let n = page.events.len();
        for v in page.events {
            let seq = v["seq"].as_u64().unwrap_or(since + 1);
            since = since.max(seq);
            match serde_json::from_value::<ProjectEvent>(v) {
                Ok(ev) => {
                    latest.insert(ev.change.path.to_string(), ev);
                }
                Err(e) => eprintln!("vidsync: event {seq} skipped: {e}"),
            }
        }
        if n < 1000 {
            break;
        }
    }
    let mut todo: Vec<ProjectEvent> = latest.into_values().collect();
    todo.sort_by_key(|e| e.seq);
    let total_bytes: u64 = todo
        .iter()
        .filter(|e| e.change.op != vidsync_protocol::Op::Delete)
        .filter_map(|e| e.change.size)
        .sum();
    let files = todo.len();
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total_bytes),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let applier = vidsync_client::apply::Applier {
        api: api.clone(),
        state: state.clone(),
        root: root.to_path_buf(),
        project_id: project_id.to_string(),
        client_id: cfg.client_id.clone(),
        mode: cfg
            .folder(project_id)
            .map(|f| f.mode)
            .unwrap_or(Mode::SendReceive),
    };
    // Distinct paths: several downloads at once.
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<bool> = futures_util::stream::iter(todo.iter().map(|ev| {
        let (applier, bar, done) = (&applier, &bar, &done);
        async move {
            let res = applier.apply(ev, |n| bar.inc(n)).await;
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            bar.set_message(format!("{n}/{files} files"));
            match res {
                Ok(_) => true,
                Err(e) => {
                    bar.suspend(|| eprintln!("vidsync: {}: {e}", ev.change.path));
                    false
                }
            }
        }
    }))
    .buffer_unordered(8)
    .collect()
    .await;
    let failed = results.iter().filter(|ok| !**ok).count();
    bar.finish_and_clear();
    if failed == 0 {
        state.set_cursor(project_id, head).await?;
        println!("{files} path(s) brought up to seq {head}");
    } else {
        println!(
            "{} of {files} path(s) could not be brought over; `vidsync run` will try again",
            failed
        );
    }
    state.close().await;
    Ok(())
}

async fn shutdown_signal() {
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

async fn run_engine(
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
    if debounce_ms.is_some() || transport.is_some() {
        let saved = cfg.clone();
        cfg.debounce_ms = debounce_ms.unwrap_or(cfg.debounce_ms);
        cfg.transport = transport.unwrap_or(cfg.transport);
        cfg.save(dir)?;
        let engine = Engine::open(dir).await;
        saved.save(dir)?;
        return drive(engine?, json).await;
    }
    drive(Engine::open(dir).await?, json).await
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

fn print_engine_event(ev: &EngineEvent, json: bool) {
    if json {
        if let Ok(line) = serde_json::to_string(ev) {
            println!("{line}");
        }
        return;
    }
    match ev {
        EngineEvent::StatusChanged { status } => println!("{}", status_line(status)),
        EngineEvent::ChangeQueued { path, op, .. } => {
            println!("queued    {:<6} {path}", op.as_str())
        }
        EngineEvent::ChangeUploaded { path, op, seq, .. } => {
            println!("uploaded  {:<6} {path} (seq {seq})", op.as_str())
        }
        EngineEvent::RemoteEvent { event, .. } => println!("{}", event_line(event)),
        EngineEvent::Applied { path, conflict, .. } => match conflict {
            Some(c) => println!("synced    {path} (your version kept as {c})"),
            None => println!("synced    {path}"),
        },
        EngineEvent::Error { message, .. } => println!("error     {message}"),
    }
}

fn status_line(s: &FolderStatus) -> String {
    let mut line = format!(
        "{:<20} {:<20} {:<8} queued {:<5} seq {:<6} {}",
        s.name,
        s.badge,
        s.connection.as_str(),
        s.queued,
        s.last_seq,
        s.path.display()
    );
    if let Some(e) = &s.error {
        line.push_str(&format!("  ({e})"));
    }
    for a in &s.set_aside {
        line.push_str(&format!(
            "\n  set aside: {} (event {}): {}",
            a.path, a.seq, a.reason
        ));
    }
    line
}

fn event_line(e: &ProjectEvent) -> String {
    format!(
        "#{:<6} {:<6} {}  {} bytes  by {}@{}  {}",
        e.seq,
        e.change.op.as_str(),
        e.change.path,
        e.change
            .size
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into()),
        e.origin.user,
        e.origin.client_id,
        e.created_at
    )
}

/// Whether the `run` process that wrote status.json is still alive.
fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

async fn status(dir: &Path, json: bool) -> Result<()> {
    let cfg = Config::load(dir)?;
    let live: Vec<FolderStatus> = std::fs::read(dir.join("status.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .filter(|v| v["pid"].as_u64().is_some_and(alive))
        .and_then(|v| serde_json::from_value(v["folders"].clone()).ok())
        .unwrap_or_default();
    let state = vidsync_client::state::LocalState::open(dir).await?;
    let mut out = Vec::new();
    for f in &cfg.folders {
        let s = match live.iter().find(|s| s.project_id == f.project_id) {
            Some(s) => s.clone(),
            None => {
                // Not running: nothing is connected; show what is waiting.
                let (queued, refused) = state.outbox_summary(&f.project_id).await?;
                let set_aside = state.aside_list(&f.project_id).await?;
                let error = refused.or_else(|| {
                    set_aside
                        .first()
                        .map(|a| format!("{} not applied (event {}): {}", a.path, a.seq, a.reason))
                });
                let conflicts = state
                    .conflicts(&f.project_id)
                    .await?
                    .iter()
                    .filter(|p| f.path.join(p).exists())
                    .count();
                let connection = vidsync_client::Connection::Offline;
                FolderStatus {
                    project_id: f.project_id.clone(),
                    name: f.name.clone(),
                    path: f.path.clone(),
                    mode: f.mode,
                    badge: vidsync_client::engine::badge(
                        queued,
                        connection,
                        error.as_deref(),
                        conflicts,
                        false,
                    ),
                    connection,
                    queued,
                    last_seq: state.cursor(&f.project_id).await?,
                    error,
                    set_aside,
                }
            }
        };
        out.push(s);
    }
    state.close().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if out.is_empty() {
        println!("no linked folders: use `vidsync share DIR` or `vidsync join CODE DIR`");
    } else {
        for s in &out {
            println!("{}", status_line(s));
        }
    }
    Ok(())
}

async fn log(dir: &Path, project_id: &str, follow: bool, json: bool) -> Result<()> {
    let cfg = Config::load(dir)?;
    let api = api_of(&cfg)?;
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
            .map_err(|e| match e {
                ApiError::Refused { status: 404, .. } => {
                    anyhow!("no project {project_id:?} on this server")
                }
                ApiError::Refused { status: 403, .. } => {
                    anyhow!("you are not a member of project {project_id:?}")
                }
                e => explain(e),
            })?;
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
    let (_feed, mut rx) = LiveFeed::start(
        api,
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
                None => break,
            }
        }
    }
    cancel.cancel();
    Ok(())
}
