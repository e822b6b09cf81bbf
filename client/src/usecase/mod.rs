//! What a user can do with Vidsync, written once: log in and change
//! settings ([`settings`]), share a folder, join one by invite code (with
//! the catch-up download), invite, pause and resume, remove a link
//! ([`folders`], [`catch_up`]), and every folder's [`status`].
//!
//! The CLI and the desktop app are thin calls of these functions: they
//! choose how results and [`UseCaseError`]s are shown, nothing else. A
//! shell that runs an [`Engine`] passes it, so a change of links takes
//! effect at once; without one, only the config is changed.

pub mod catch_up;
pub mod conflicts;
pub mod folders;
pub mod history;
pub mod overview;
pub mod settings;
pub mod status;

use std::path::{Path, PathBuf};

use crate::api::{ApiClient, ApiError};
use crate::Config;

pub use catch_up::{CatchUp, Progress, Quiet};
pub use folders::{invite, join, remove, set_paused, share, Joined};
pub use settings::{check, check_with_ca, login, login_with_ca, set, LoggedIn, Settings};
pub use status::status;

#[cfg(doc)]
use crate::Engine;

/// Why a use-case did not happen. Nothing was changed when one is
/// returned, except where a variant says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum UseCaseError {
    /// No server URL or token saved yet.
    #[error("not logged in: run `vidsync login --server URL --token TOKEN` first")]
    NotLoggedIn,
    /// The server does not know the token (401).
    #[error("the server refused the token (unknown or revoked): {0}")]
    TokenRefused(ApiError),
    #[error("unknown or expired invite code {0:?}")]
    UnknownInvite(String),
    #[error("no linked folder for project {0:?}")]
    NotLinked(String),
    #[error("{0:?} is not a conflict copy of this project (see `vidsync conflicts`)")]
    NoConflict(String),
    #[error("{} is not inside a linked folder (see `vidsync status`)", .0.display())]
    NotInLinkedFolder(PathBuf),
    #[error("{} is not inside a linked folder and several are linked: say which with --project ID (see `vidsync status`)", .0.display())]
    WhichProject(PathBuf),
    /// The folder to link cannot be made or resolved.
    #[error("cannot {what} {}: {source}", path.display())]
    Folder {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Api(ApiError),
    #[error(transparent)]
    Client(#[from] crate::Error),
}

impl From<ApiError> for UseCaseError {
    fn from(e: ApiError) -> Self {
        match e.status() {
            Some(401) => UseCaseError::TokenRefused(e),
            _ => UseCaseError::Api(e),
        }
    }
}

pub type Result<T> = std::result::Result<T, UseCaseError>;

/// The API client of a logged-in config.
pub fn api_of(cfg: &Config) -> Result<ApiClient> {
    let (server, token) = cfg.credentials().map_err(|_| UseCaseError::NotLoggedIn)?;
    Ok(ApiClient::with_ca(&server, &token, cfg.ca_file.as_deref())?)
}

/// Creates `dir` if needed and returns its canonical path.
pub(crate) fn folder_path(dir: &Path) -> Result<PathBuf> {
    let err = |what| {
        move |source| UseCaseError::Folder {
            what,
            path: dir.to_path_buf(),
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(err("create"))?;
    std::fs::canonicalize(dir).map_err(err("use"))
}
