//! The Vidsync sync engine, headless: it watches linked folders, turns what
//! changed into protocol `Change`s, keeps them in a durable outbox until the
//! server has them, and follows each project's event log live (Socket.IO,
//! else polling). The `vidsync` CLI and the desktop app are thin shells
//! over [`Engine`].
//!
//! Parts: [`config`] (settings, linked folders), [`state`] (local SQLite:
//! outbox, file index, cursors), [`scan`] (ignore rules, hashing, diff
//! against the index), [`watch`] (debounced file events), [`api`] (HTTP),
//! [`feed`] (live events with polling fallback), [`plan`] (pure decisions),
//! [`apply`] and [`conflict`] (executors for remote events), [`engine`]
//! (one loop per folder), [`usecase`] (what a user can do, for both shells).

pub mod api;
pub mod apply;
pub mod config;
pub mod conflict;
pub mod content;
pub mod engine;
pub mod feed;
pub mod plan;
pub mod scan;
pub mod state;
pub mod usecase;
pub mod watch;

use std::path::Path;

pub use config::{Config, FolderLink, Mode, Transport};
pub use engine::{
    Badge, BadgeKind, Connection, ConnectionDetail, Engine, EngineEvent, FolderStatus, Transfer,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("local state: {0}")]
    State(#[from] sqlx::Error),
    #[error("local state migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Api(#[from] api::ApiError),
    #[error("file watcher: {0}")]
    Watch(String),
    /// Another engine (the desktop app or `vidsync run`) holds this config
    /// dir: two would both watch, send and write the same folders.
    #[error("another Vidsync is already syncing with {0} (the desktop app, or `vidsync run`): stop it first, or give this one its own config dir (--config-dir)")]
    AlreadyRunning(String),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; n];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Exponential back-off delays from `min` to `max`, with jitter, forever.
pub(crate) fn backoff(
    min: std::time::Duration,
    max: std::time::Duration,
) -> impl Iterator<Item = std::time::Duration> {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_jitter()
        .without_max_times()
        .build()
}

pub(crate) fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
