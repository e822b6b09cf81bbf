//! `vidsync-server`: parses flags and environment, then runs the library.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use vidsync_server::{auth, Config, Db, DEFAULT_MAX_PROJECTS_PER_USER};

#[derive(Parser)]
#[command(
    name = "vidsync-server",
    version,
    about = "Vidsync server: project event log over HTTP + Socket.IO"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP and Socket.IO (the default).
    Serve(ServeArgs),
    /// Manage users and their tokens.
    #[command(subcommand)]
    User(UserCommand),
    /// Check what `serve` would start with (same flags and variables): the
    /// settings, the data directory, the database and its migrations, the
    /// free space. Changes nothing; exits non-zero if a check fails.
    Check(ServeArgs),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create the user if needed and print one new token for them.
    Add {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke every token of a user.
    Revoke {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Args, Clone)]
struct StoreArgs {
    /// Directory for the embedded database and the blobs.
    #[arg(
        long,
        env = "VIDSYNC_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    data_dir: PathBuf,
    /// Database URL (sqlite://PATH); defaults to DATA_DIR/vidsync.db.
    #[arg(long, env = "VIDSYNC_DATABASE_URL", global = true)]
    database_url: Option<String>,
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "VIDSYNC_LISTEN", default_value = "127.0.0.1:5000")]
    listen: SocketAddr,
    /// Largest blob accepted, in bytes.
    #[arg(long, env = "VIDSYNC_MAX_BLOB_BYTES", default_value_t = vidsync_protocol::DEFAULT_MAX_BLOB_BYTES)]
    max_blob_bytes: u64,
    /// API requests per second allowed per user, bursts up to 5x (0: no limit).
    #[arg(long, env = "VIDSYNC_RATE_LIMIT", default_value_t = 2000)]
    rate_limit: u32,
    /// Serve without Socket.IO: clients fall back to polling the event log.
    #[arg(long, env = "VIDSYNC_DISABLE_LIVE")]
    disable_live: bool,
    /// Projects one user may own; creating one more is refused (403).
    #[arg(long, env = "VIDSYNC_MAX_PROJECTS_PER_USER", default_value_t = DEFAULT_MAX_PROJECTS_PER_USER)]
    max_projects_per_user: u32,
    /// Seconds a connection may take to send request headers (also the idle keep-alive limit).
    #[arg(long, env = "VIDSYNC_HEADER_TIMEOUT", default_value_t = 30)]
    header_timeout: u64,
    /// Engine.IO ping interval, in ms (a silent socket is closed after
    /// interval + timeout).
    #[arg(long, env = "VIDSYNC_PING_INTERVAL_MS", default_value_t = 25_000)]
    ping_interval_ms: u64,
    /// Engine.IO ping timeout, in ms.
    #[arg(long, env = "VIDSYNC_PING_TIMEOUT_MS", default_value_t = 20_000)]
    ping_timeout_ms: u64,
    /// Origins (`https://host[:port]`, comma-separated) whose pages may open a
    /// socket here, besides the server's own page; clients that send no
    /// Origin (native ones) are not affected.
    #[arg(long, env = "VIDSYNC_ALLOWED_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    allowed_origins: Vec<String>,
    /// Serve HTTPS (and wss) with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "VIDSYNC_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "VIDSYNC_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Days the content of a replaced or deleted version is kept (the current
    /// version of every path is always kept; events are never deleted).
    #[arg(long, env = "VIDSYNC_KEEP_VERSIONS_DAYS", default_value_t = 30)]
    keep_versions_days: u32,
    /// Seconds between two retention collections.
    #[arg(long, env = "VIDSYNC_GC_INTERVAL", default_value_t = 3600)]
    gc_interval_secs: u64,
    /// Seconds an upload in flight (content no event names yet), or content a
    /// client was just told is present, is safe from collection.
    #[arg(long, env = "VIDSYNC_GC_GRACE", default_value_t = 3600)]
    gc_grace_secs: u64,
    /// Threads that run requests and live delivery (0: one per CPU core).
    #[arg(long, env = "VIDSYNC_WORKER_THREADS", default_value_t = 0)]
    worker_threads: usize,
    #[command(flatten)]
    store: StoreArgs,
}

fn valid_user_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    anyhow::ensure!(
        ok,
        "a user name is 1–64 characters of A–Z, a–z, 0–9, '.', '_' or '-'"
    );
    Ok(())
}

fn config(store: &StoreArgs, max_blob_bytes: u64) -> Config {
    Config {
        database_url: store.database_url.clone(),
        max_blob_bytes,
        ..Config::new(&store.data_dir)
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

async fn open_db(store: &StoreArgs) -> anyhow::Result<Db> {
    let cfg = config(store, 0);
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data directory {}", cfg.data_dir.display()))?;
    Ok(Db::open(&cfg.database_url()).await?)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = runtime(&cli)
        .context("starting the async runtime")
        .and_then(|rt| rt.block_on(run(cli)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vidsync-server: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `serve` runs on `--worker-threads` threads (one per core by default);
/// the user commands on one.
fn runtime(cli: &Cli) -> std::io::Result<tokio::runtime::Runtime> {
    let serve = match &cli.command {
        Some(Command::Serve(args)) => args,
        None => &cli.serve,
        Some(Command::User(_) | Command::Check(_)) => {
            return tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if serve.worker_threads > 0 {
        builder.worker_threads(serve.worker_threads);
    }
    builder.enable_all().build()
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(vidsync_server::redact_secrets(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        ))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Some(Command::User(UserCommand::Add { name, store })) => {
            valid_user_name(&name)?;
            let db = open_db(&store).await?;
            let token = auth::new_token();
            db.add_user_token(&name, &auth::token_hash(&token)).await?;
            db.close().await;
            println!("{token}");
            Ok(())
        }
        Some(Command::User(UserCommand::Revoke { name, store })) => {
            let db = open_db(&store).await?;
            let n = db.revoke_tokens(&name).await?;
            db.close().await;
            eprintln!("revoked {n} token(s) of {name}");
            Ok(())
        }
        Some(Command::Check(args)) => check(args).await,
        Some(Command::Serve(args)) => serve(args).await,
        None => serve(cli.serve).await,
    }
}

/// Prints one line per finding; an error (exit 1) if any is a problem.
async fn check(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = config(&args.store, args.max_blob_bytes);
    let listen = vidsync_server::check::Listen {
        addr: args.listen,
        tls: args.tls_cert.clone().zip(args.tls_key.clone()),
    };
    let findings = vidsync_server::check::run(&cfg, &listen).await;
    // Written, not println!: a closed pipe (`check | head`) is not a panic.
    let mut out = std::io::stdout().lock();
    for f in &findings {
        let _ = writeln!(out, "{f}");
    }
    let problems = findings
        .iter()
        .filter(|f| f.level == vidsync_server::check::Level::Problem)
        .count();
    anyhow::ensure!(problems == 0, "{problems} check(s) failed");
    let _ = writeln!(out, "all checks passed");
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut cfg = config(&args.store, args.max_blob_bytes);
    cfg.live = !args.disable_live;
    cfg.rate_limit = args.rate_limit;
    cfg.max_projects_per_user = args.max_projects_per_user;
    cfg.header_timeout = std::time::Duration::from_secs(args.header_timeout.max(1));
    cfg.keep_versions = std::time::Duration::from_secs(u64::from(args.keep_versions_days) * 86_400);
    cfg.gc_interval = Some(std::time::Duration::from_secs(args.gc_interval_secs.max(1)));
    cfg.gc_grace = std::time::Duration::from_secs(args.gc_grace_secs);
    cfg.ping_interval = std::time::Duration::from_millis(args.ping_interval_ms.max(100));
    cfg.ping_timeout = std::time::Duration::from_millis(args.ping_timeout_ms.max(100));
    cfg.allowed_origins = args.allowed_origins.clone();
    // Read before the store opens: a wrong path fails fast.
    let tls = match args.tls_cert.as_deref().zip(args.tls_key.as_deref()) {
        Some((cert, key)) => Some(vidsync_server::tls::load(cert, key)?),
        None => None,
    };
    // Migrations run before the port opens: once it is open, the store is ready.
    let state = vidsync_server::open_state(&cfg).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    if tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(
            "plain HTTP on {addr}, which is not a loopback address: tokens and files cross \
             the network unencrypted; give --tls-cert and --tls-key, or serve through a \
             reverse proxy that terminates TLS"
        );
    }
    tracing::info!(data_dir = %cfg.data_dir.display(), "vidsync-server listening on {scheme}://{addr}");
    // A line on stdout that scripts and tests can wait for.
    println!("vidsync-server listening on {scheme}://{addr}");
    match tls {
        Some(tls) => {
            vidsync_server::serve_tls(listener, state, tls.acceptor, shutdown_signal()).await?
        }
        None => vidsync_server::serve(listener, state, shutdown_signal()).await?,
    }
    Ok(())
}

/// An origin as browsers send it: `http(s)://host[:port]`, no path.
fn parse_origin(s: &str) -> Result<String, String> {
    let s = s.trim().trim_end_matches('/');
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| format!("{s:?}: an origin starts with http:// or https://"))?;
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ', '@']) {
        return Err(format!(
            "{s:?}: an origin is scheme://host[:port], with no path (like https://sync.example.com)"
        ));
    }
    Ok(s.to_ascii_lowercase())
}
