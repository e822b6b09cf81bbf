//! The `vidsync` binary's commands: clap's view of the command line, and
//! each command as a thin call of a [`vidsync_client::usecase`] function
//! (or of the engine, for `run`) followed by printing its result. No sync
//! logic lives here.

mod history;
mod output;
mod progress;
mod watch;

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Parser, Subcommand};
use vidsync_client::usecase::{self, Settings};
use vidsync_client::{Mode, Transport};

use output::explain;

#[derive(Parser)]
#[command(
    name = "vidsync",
    version,
    about = "Vidsync: live project-folder sync through your own server"
)]
pub struct Cli {
    /// Where settings and local state live (several clients can share a machine).
    #[arg(long, env = "VIDSYNC_CONFIG_DIR", global = true)]
    pub config_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Store the server URL and token (checked against the server).
    Login {
        #[arg(long)]
        server: String,
        #[arg(long)]
        token: String,
        /// A PEM CA certificate to trust for this server (a private CA).
        #[arg(long)]
        ca_file: Option<PathBuf>,
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
    /// Pause a linked folder (a `run` already going picks it up when restarted).
    Pause { project_id: String },
    /// Resume a paused folder (a `run` already going picks it up when restarted).
    Resume { project_id: String },
    /// Unlink a folder; its files stay where they are.
    Remove { project_id: String },
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
    /// Every version of a file (seq, time, user, client, size), newest first.
    History {
        path: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Bring one file (or folder) back to how it was at a seq or time.
    Restore {
        path: PathBuf,
        /// A seq (from `vidsync history`) or an RFC 3339 time.
        #[arg(long)]
        at: usecase::history::Point,
        /// Do not ask before changing more than 100 paths.
        #[arg(long)]
        yes: bool,
    },
    /// Bring a whole project (or everything under --prefix) back to a seq or time.
    Rewind {
        /// A seq or an RFC 3339 time.
        #[arg(long)]
        to: usecase::history::Point,
        /// Only paths under this project path (`docs/` for a folder).
        #[arg(long)]
        prefix: Option<String>,
        /// The project (default: the linked folder you are in, or the only one).
        #[arg(long)]
        project: Option<String>,
        /// Print what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        yes: bool,
    },
    /// Undo what one client changed since a seq or time (others' later changes stay).
    Undo {
        /// The client whose changes to undo (`origin.client_id`, as `vidsync history` shows).
        #[arg(long)]
        client: String,
        /// A seq or an RFC 3339 time.
        #[arg(long)]
        since: usecase::history::Point,
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        yes: bool,
    },
    /// The conflict copies in a project's folder, with the file each is a copy of.
    Conflicts {
        #[arg(long)]
        project: Option<String>,
    },
    /// Resolve a conflict copy: keep mine (the copy replaces the file),
    /// theirs (the copy goes) or both (the copy stays as a file of its own).
    Resolve {
        copy: PathBuf,
        #[arg(long, value_enum)]
        keep: usecase::conflicts::Keep,
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

pub async fn run(dir: &Path, command: Command) -> Result<()> {
    match command {
        Command::Login {
            server,
            token,
            ca_file,
        } => {
            let ok = usecase::login_with_ca(dir, &server, &token, ca_file.as_deref())
                .await
                .map_err(explain)?;
            println!(
                "logged in to {} ({} project(s) visible)",
                ok.server, ok.projects
            );
        }
        Command::Share { dir: folder, name } => {
            let link = usecase::share(dir, &folder, name, None)
                .await
                .map_err(explain)?;
            println!("{}", link.project_id);
        }
        Command::Invite { project_id } => {
            println!(
                "{}",
                usecase::invite(dir, &project_id).await.map_err(explain)?
            );
        }
        Command::Join {
            code,
            dir: folder,
            mode,
        } => {
            let bar = progress::Bar::new();
            let joined = usecase::join(dir, &code, &folder, mode, None, &bar)
                .await
                .map_err(explain)?;
            if let Some(c) = joined.catch_up {
                output::print_catch_up(&c);
            }
        }
        Command::Pause { project_id } => pause(dir, &project_id, true).await?,
        Command::Resume { project_id } => pause(dir, &project_id, false).await?,
        Command::Remove { project_id } => {
            let link = usecase::remove(dir, &project_id, None)
                .await
                .map_err(explain)?;
            println!(
                "removed {} ({}); its files stay in {}",
                link.name,
                link.project_id,
                link.path.display()
            );
        }
        Command::Set {
            transport,
            debounce_ms,
            poll_interval_ms,
        } => {
            let s = Settings {
                transport,
                debounce_ms,
                poll_interval_ms,
            };
            usecase::set(dir, s).map_err(explain)?;
        }
        Command::Run {
            debounce_ms,
            transport,
            json,
        } => watch::run_engine(dir, debounce_ms, transport, json).await?,
        Command::Status { json } => {
            let statuses = usecase::status(dir, None).await.map_err(explain)?;
            output::print_statuses(&statuses, json)?;
        }
        Command::Log {
            project_id,
            follow,
            json,
        } => watch::log(dir, &project_id, follow, json).await?,
        Command::Conflicts { project } => history::conflicts(dir, project.as_deref()).await?,
        Command::Resolve { copy, keep } => history::resolve(dir, &copy, keep).await?,
        Command::History { path, json } => history::history(dir, &path, json).await?,
        Command::Restore { path, at, yes } => history::restore(dir, &path, at, yes).await?,
        Command::Rewind {
            to,
            prefix,
            project,
            dry_run,
            yes,
        } => {
            let going = history::going(to, prefix, None, dry_run);
            history::rewind(dir, project.as_deref(), going, yes).await?
        }
        Command::Undo {
            client,
            since,
            project,
            dry_run,
            yes,
        } => {
            let going = history::going(since, None, Some(client), dry_run);
            history::rewind(dir, project.as_deref(), going, yes).await?
        }
    }
    Ok(())
}

async fn pause(dir: &Path, project_id: &str, paused: bool) -> Result<()> {
    let link = usecase::set_paused(dir, project_id, paused, None)
        .await
        .map_err(explain)?;
    let what = if paused { "paused" } else { "resumed" };
    println!("{what} {} ({})", link.name, link.project_id);
    Ok(())
}
