//! `vidsync`: the headless client. Parses the command line and drives the
//! library ([`cli`] holds the commands and how their results are printed);
//! every error a user can act on ends as one line on stderr and a non-zero
//! exit.

mod cli;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use vidsync_client::config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let dir = args.config_dir.clone().unwrap_or_else(config::default_dir);
    match cli::run(&dir, args.command).await {
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
