//! What users see of the engine: each folder's [`FolderStatus`] and badge,
//! the [`EngineEvent`]s told to the shell, and `status.json` (what
//! `vidsync status` reads while `run` goes). The [`Board`] holds the
//! statuses; it writes `status.json` under the same lock that changes
//! them, so the file never shows an older state than one already written.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use vidsync_protocol::{Op, Present, ProjectEvent};

use crate::feed::{Connection, ConnectionDetail};
use crate::state::SetAside;
use crate::Mode;

/// A folder's state as users see it.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderStatus {
    pub project_id: String,
    pub name: String,
    pub path: PathBuf,
    pub mode: Mode,
    /// What the folder shows: [`Badge`] (its text is its `Display`).
    pub badge: Badge,
    pub connection: Connection,
    /// With `reconnecting` and `failed`: the next try, or that none comes.
    #[serde(default)]
    pub connection_detail: Option<ConnectionDetail>,
    pub queued: u64,
    /// The newest seq of the project's log this folder is done with.
    pub last_seq: u64,
    pub error: Option<String>,
    /// Remote events not applied, with the reason (retried on a timer).
    #[serde(default)]
    pub set_aside: Vec<SetAside>,
    /// What is left to move (all zero when the folder is in step).
    #[serde(default)]
    pub transfer: Transfer,
    /// Who is subscribed to the project now, this client included, as the
    /// server last said; empty while the socket is down.
    #[serde(default)]
    pub present: Vec<Present>,
}

/// What a folder still has to move: remote versions to bring in (`down`)
/// and local changes to post (`up`), in files and bytes. A file being
/// downloaded counts with the bytes it still lacks.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub down_files: u64,
    pub down_bytes: u64,
    pub up_files: u64,
    pub up_bytes: u64,
}

impl Transfer {
    pub fn is_idle(&self) -> bool {
        *self == Transfer::default()
    }
}

/// What the engine tells its shell.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EngineEvent {
    StatusChanged {
        status: FolderStatus,
    },
    ChangeQueued {
        project_id: String,
        path: String,
        op: Op,
    },
    ChangeUploaded {
        project_id: String,
        path: String,
        op: Op,
        seq: u64,
    },
    RemoteEvent {
        project_id: String,
        event: ProjectEvent,
    },
    /// A remote change is now in the folder ("Synced: path").
    Applied {
        project_id: String,
        path: String,
        op: Op,
        seq: u64,
        conflict: Option<String>,
    },
    Error {
        project_id: Option<String>,
        message: String,
    },
}

/// The kinds of badge of DESIGN.md, "Badges".
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadgeKind {
    UpToDate,
    Syncing,
    Offline,
    Error,
    Conflict,
    Paused,
}

/// A folder's badge, typed so a shell never parses text: `count` is the
/// queued changes (`syncing`, `offline`) or the conflict copies
/// (`conflict`), else 0. `Display` gives the words users see:
/// `up to date`, `syncing (n)`, `offline (n queued)`, `conflict (n)`,
/// `error`, `paused`.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Badge {
    pub kind: BadgeKind,
    pub count: u64,
}

impl Badge {
    pub fn new(kind: BadgeKind, count: u64) -> Badge {
        Badge { kind, count }
    }
}

impl std::fmt::Display for Badge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.count;
        let text = match self.kind {
            BadgeKind::UpToDate => "up to date".to_string(),
            BadgeKind::Syncing => format!("syncing ({n})"),
            BadgeKind::Offline => format!("offline ({n} queued)"),
            BadgeKind::Error => "error".to_string(),
            BadgeKind::Conflict => format!("conflict ({n})"),
            BadgeKind::Paused => "paused".to_string(),
        };
        // `pad`, so width and alignment flags work on a badge.
        f.pad(&text)
    }
}

/// The badge for a folder (DESIGN.md, "Badges"): the first that holds of
/// paused, error, conflict, offline with changes queued, syncing.
pub fn badge(
    queued: u64,
    connection: Connection,
    error: Option<&str>,
    conflicts: usize,
    paused: bool,
) -> Badge {
    if paused {
        Badge::new(BadgeKind::Paused, 0)
    } else if error.is_some() {
        Badge::new(BadgeKind::Error, 0)
    } else if conflicts > 0 {
        Badge::new(BadgeKind::Conflict, conflicts as u64)
    } else if queued > 0 && connection.is_down() {
        Badge::new(BadgeKind::Offline, queued)
    } else if queued > 0 {
        Badge::new(BadgeKind::Syncing, queued)
    } else {
        Badge::new(BadgeKind::UpToDate, 0)
    }
}

/// Every folder's status, and the one place that tells it.
pub(crate) struct Board {
    dir: PathBuf,
    statuses: Mutex<HashMap<String, FolderStatus>>,
    events: broadcast::Sender<EngineEvent>,
    /// Whose HTTP traffic `status.json` reports, if any.
    api: Option<crate::api::ApiClient>,
}

impl Board {
    pub(crate) fn new(
        dir: &Path,
        events: broadcast::Sender<EngineEvent>,
        api: Option<crate::api::ApiClient>,
    ) -> Board {
        Board {
            dir: dir.to_path_buf(),
            statuses: Mutex::new(HashMap::new()),
            events,
            api,
        }
    }

    /// Rewrites `status.json` as it stands (with the newest traffic
    /// figures): at shutdown, so the last word is complete.
    pub(crate) fn flush(&self) {
        if let Ok(map) = self.statuses.lock() {
            self.write_file(&map);
        }
    }

    pub(crate) fn emit(&self, ev: EngineEvent) {
        // No subscriber is not an error: the shell may not listen yet.
        let _ = self.events.send(ev);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.events.subscribe()
    }

    /// Sets a folder's status; tells the shell and rewrites `status.json`
    /// if it changed (or `always`).
    pub(crate) fn set(&self, status: FolderStatus, always: bool) {
        let Ok(mut map) = self.statuses.lock() else {
            return;
        };
        let changed = map
            .insert(status.project_id.clone(), status.clone())
            .as_ref()
            != Some(&status);
        if changed || always {
            self.write_file(&map);
            self.emit(EngineEvent::StatusChanged { status });
        }
    }

    /// Changes only the `transfer` of a folder's status (while a file is
    /// being downloaded); tells the shell if it changed.
    pub(crate) fn set_transfer(&self, project_id: &str, transfer: Transfer) {
        let Ok(mut map) = self.statuses.lock() else {
            return;
        };
        let Some(status) = map.get_mut(project_id) else {
            return;
        };
        if status.transfer == transfer {
            return;
        }
        status.transfer = transfer;
        let status = status.clone();
        self.write_file(&map);
        self.emit(EngineEvent::StatusChanged { status });
    }

    /// A folder's `transfer` as last set.
    pub(crate) fn transfer(&self, project_id: &str) -> Transfer {
        self.statuses
            .lock()
            .ok()
            .and_then(|m| m.get(project_id).map(|s| s.transfer))
            .unwrap_or_default()
    }

    pub(crate) fn remove(&self, project_id: &str) {
        if let Ok(mut map) = self.statuses.lock() {
            if map.remove(project_id).is_some() {
                self.write_file(&map);
            }
        }
    }

    pub(crate) fn all(&self) -> Vec<FolderStatus> {
        let mut v: Vec<FolderStatus> = self
            .statuses
            .lock()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.name.cmp(&b.name).then(a.project_id.cmp(&b.project_id)));
        v
    }

    /// Called with the lock held: writes are in the order of changes.
    fn write_file(&self, map: &HashMap<String, FolderStatus>) {
        let mut folders: Vec<&FolderStatus> = map.values().collect();
        folders.sort_by(|a, b| a.name.cmp(&b.name).then(a.project_id.cmp(&b.project_id)));
        let body = serde_json::json!({
            "pid": std::process::id(),
            "updated_at": crate::now_rfc3339(),
            "folders": folders,
            // HTTP requests and body bytes since the engine started.
            "http": self.api.as_ref().map(|a| a.traffic()),
        });
        let file = self.dir.join("status.json");
        let tmp = self.dir.join(".status.json.tmp");
        let written = serde_json::to_vec_pretty(&body)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|_| std::fs::rename(&tmp, &file));
        if let Err(e) = written {
            tracing::warn!(%e, "could not write status.json");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badge_follows_design() {
        let text = |b: Badge| b.to_string();
        assert_eq!(
            text(badge(0, Connection::Live, None, 0, false)),
            "up to date"
        );
        assert_eq!(
            text(badge(3, Connection::Live, None, 0, false)),
            "syncing (3)"
        );
        assert_eq!(
            text(badge(3, Connection::Polling, None, 0, false)),
            "syncing (3)"
        );
        assert_eq!(
            badge(2, Connection::Offline, None, 0, false),
            Badge::new(BadgeKind::Offline, 2)
        );
        assert_eq!(
            text(badge(2, Connection::Offline, None, 0, false)),
            "offline (2 queued)"
        );
        assert_eq!(
            text(badge(0, Connection::Offline, None, 0, false)),
            "up to date"
        );
        assert_eq!(
            text(badge(2, Connection::Live, Some("nope"), 1, false)),
            "error"
        );
        assert_eq!(
            badge(0, Connection::Live, None, 2, false),
            Badge::new(BadgeKind::Conflict, 2)
        );
        assert_eq!(
            text(badge(0, Connection::Live, None, 2, false)),
            "conflict (2)"
        );
        assert_eq!(
            text(badge(2, Connection::Live, Some("nope"), 0, true)),
            "paused"
        );
    }

    #[test]
    fn badge_is_kind_and_count_on_the_wire() {
        let b = badge(3, Connection::Offline, None, 0, false);
        let v = serde_json::to_value(b).unwrap();
        assert_eq!(v, serde_json::json!({ "kind": "offline", "count": 3 }));
        assert_eq!(serde_json::from_value::<Badge>(v).unwrap(), b);
        assert_eq!(
            format!("{:<12}|", Badge::new(BadgeKind::Paused, 0)),
            "paused      |"
        );
    }

    #[test]
    fn status_json_follows_the_newest_set_from_many_threads() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, _) = broadcast::channel(16);
        let board = std::sync::Arc::new(Board::new(dir.path(), tx, None));
        let status = |seq: u64| FolderStatus {
            project_id: "p".into(),
            name: "n".into(),
            path: "/x".into(),
            mode: Mode::SendReceive,
            badge: Badge::new(BadgeKind::UpToDate, 0),
            connection: Connection::Live,
            connection_detail: None,
            queued: 0,
            last_seq: seq,
            error: None,
            set_aside: vec![],
            transfer: Transfer::default(),
            present: vec![],
        };
        // Each thread sets increasing seqs for its own project; the file must
        // end with every project's newest value.
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let board = board.clone();
                std::thread::spawn(move || {
                    for seq in 1..=200 {
                        let mut s = status(seq);
                        s.project_id = format!("p{t}");
                        board.set(s, false);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("status.json")).unwrap())
                .unwrap();
        let seqs: Vec<u64> = v["folders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["last_seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, vec![200, 200, 200, 200]);
    }
}
