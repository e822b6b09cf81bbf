//! Settings: the server and token (checked against the server before they
//! are saved), and the sync preferences (transport, debounce, polling).

use std::path::Path;

use super::Result;
use crate::api::ApiClient;
use crate::{Config, Transport};

/// A server that accepted a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedIn {
    /// The server's URL as saved (no trailing slash).
    pub server: String,
    /// How many projects the token can see there.
    pub projects: usize,
}

/// Asks the server whether it takes `token`; saves nothing.
pub async fn check(server: &str, token: &str) -> Result<LoggedIn> {
    check_with_ca(server, token, None).await
}

/// [`check`], also trusting the CA certificate in `ca_file`.
pub async fn check_with_ca(server: &str, token: &str, ca_file: Option<&Path>) -> Result<LoggedIn> {
    let api = ApiClient::with_ca(server, token, ca_file)?;
    let projects = api.projects().await?;
    Ok(LoggedIn {
        server: api.base().to_string(),
        projects: projects.len(),
    })
}

/// Checks `token` against `server`, then saves both. A refused token
/// changes nothing.
pub async fn login(dir: &Path, server: &str, token: &str) -> Result<LoggedIn> {
    login_with_ca(dir, server, token, None).await
}

/// [`login`] that also trusts (and saves) the CA certificate in `ca_file`
/// — for a server whose certificate a private CA signed. Saved as an
/// absolute path; `None` forgets a saved one.
pub async fn login_with_ca(
    dir: &Path,
    server: &str,
    token: &str,
    ca_file: Option<&Path>,
) -> Result<LoggedIn> {
    let ca_file = match ca_file {
        Some(f) => Some(std::path::absolute(f).map_err(|e| crate::Error::io(f, e))?),
        None => None,
    };
    let ok = check_with_ca(server, token, ca_file.as_deref()).await?;
    let mut cfg = Config::load(dir)?;
    cfg.server = Some(ok.server.clone());
    cfg.token = Some(token.to_string());
    cfg.ca_file = ca_file;
    cfg.save(dir)?;
    Ok(ok)
}

/// Preferences to change; `None` keeps the saved value.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    pub transport: Option<Transport>,
    pub debounce_ms: Option<u64>,
    pub poll_interval_ms: Option<u64>,
}

/// Saves the given preferences; returns the config as saved.
pub fn set(dir: &Path, s: Settings) -> Result<Config> {
    let mut cfg = Config::load(dir)?;
    if let Some(t) = s.transport {
        cfg.transport = t;
    }
    if let Some(d) = s.debounce_ms {
        cfg.debounce_ms = d;
    }
    if let Some(p) = s.poll_interval_ms {
        cfg.poll_interval_ms = p;
    }
    cfg.save(dir)?;
    Ok(cfg)
}
