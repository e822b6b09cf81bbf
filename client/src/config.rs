//! The client's settings and linked folders, kept as `config.json` in the
//! config directory (default: the platform's config dir + `vidsync`;
//! `--config-dir` / `VIDSYNC_CONFIG_DIR` override it, so several clients can
//! run on one machine). Written atomically (temp file + rename).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How the live feed reaches the server.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// Socket.IO straight over WebSocket, else over Engine.IO polling;
    /// changes go up the socket; the event log is polled while it is down.
    #[default]
    WebsocketFirst,
    /// Socket.IO over WebSocket only; the event log is polled while it is down.
    WebsocketOnly,
    /// Socket.IO starting on Engine.IO polling, upgraded to WebSocket when
    /// that works (what socket.io clients do by default).
    HttpFirst,
    /// No socket: poll the event log and post changes by HTTP
    /// (`polling-only`, its old name, is accepted too).
    #[serde(alias = "polling-only")]
    #[value(alias = "polling-only")]
    HttpOnly,
}

impl Transport {
    /// Whether this preference opens a socket at all.
    pub fn uses_socket(self) -> bool {
        self != Transport::HttpOnly
    }
}

/// What a linked folder does (as in Syncthing).
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Upload local changes, never apply remote ones.
    Send,
    /// Mirror remote changes, never upload.
    Receive,
    /// Both.
    #[default]
    SendReceive,
}

impl Mode {
    pub fn sends(self) -> bool {
        matches!(self, Mode::Send | Mode::SendReceive)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Send => "send",
            Mode::Receive => "receive",
            Mode::SendReceive => "send-receive",
        }
    }
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderLink {
    pub project_id: String,
    pub name: String,
    pub path: PathBuf,
    pub mode: Mode,
    /// Paused by the user: linked, but not synced until resumed.
    #[serde(default)]
    pub paused: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub server: Option<String>,
    pub token: Option<String>,
    /// This installation's id on the wire (`origin.client_id`).
    pub client_id: String,
    #[serde(default)]
    pub transport: Transport,
    #[serde(default = "default_debounce")]
    pub debounce_ms: u64,
    #[serde(default = "default_poll")]
    pub poll_interval_ms: u64,
    #[serde(default)]
    pub folders: Vec<FolderLink>,
    /// A PEM CA certificate trusted for this server besides the system's
    /// (a private CA); set by `vidsync login --ca-file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

fn default_debounce() -> u64 {
    500
}
fn default_poll() -> u64 {
    2000
}

impl Config {
    fn fresh() -> Config {
        Config {
            server: None,
            token: None,
            client_id: format!("c_{}", crate::random_hex(6)),
            transport: Transport::default(),
            debounce_ms: default_debounce(),
            poll_interval_ms: default_poll(),
            folders: Vec::new(),
            ca_file: None,
        }
    }

    /// Reads `config.json` from `dir`, or makes (and saves) a fresh one.
    pub fn load(dir: &Path) -> Result<Config> {
        let file = dir.join("config.json");
        match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::Config(format!("{} is not valid: {e}", file.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let cfg = Config::fresh();
                cfg.save(dir)?;
                Ok(cfg)
            }
            Err(e) => Err(Error::io(&file, e)),
        }
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let file = dir.join("config.json");
        let tmp = dir.join(".config.json.tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::Config(e.to_string()))?;
        std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &file).map_err(|e| Error::io(&file, e))?;
        Ok(())
    }

    /// Server URL and token, or the error that says to log in.
    pub fn credentials(&self) -> Result<(String, String)> {
        match (&self.server, &self.token) {
            (Some(s), Some(t)) => Ok((s.clone(), t.clone())),
            _ => Err(Error::Config(
                "not logged in: run `vidsync login --server URL --token TOKEN` first".into(),
            )),
        }
    }

    pub fn folder(&self, project_id: &str) -> Option<&FolderLink> {
        self.folders.iter().find(|f| f.project_id == project_id)
    }

    /// Links a folder (replacing an earlier link of the same project).
    pub fn link(&mut self, link: FolderLink) {
        self.folders.retain(|f| f.project_id != link.project_id);
        self.folders.push(link);
    }
}

/// The default config directory.
pub fn default_dir() -> PathBuf {
    dirs::config_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("vidsync")
}
