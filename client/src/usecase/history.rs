//! A path's versions, and going back: restore one path, rewind a folder or
//! the whole project, undo one client's changes. The server does the work
//! (`GET history`, `POST restore`); here a local path becomes a project and
//! a project path, and a point in time the protocol's `at_seq`/`at_time`.

use std::path::{Path, PathBuf};

use vidsync_protocol::{ProjectEvent, ProjectPath};

use super::{api_of, Result, UseCaseError};
use crate::api::{RestoreOutcome, RestoreRequest};
use crate::config::FolderLink;
use crate::Config;

/// Most versions `history` reads (pages of 1,000).
const MAX_HISTORY: usize = 100_000;

/// A point in a project's past: a seq, or a time (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Point {
    Seq(u64),
    Time(String),
}

impl std::str::FromStr for Point {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Point, String> {
        if let Ok(seq) = s.parse::<u64>() {
            return Ok(Point::Seq(seq));
        }
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map(|_| Point::Time(s.to_string()))
            .map_err(|_| {
                format!("{s:?} is neither a seq (a number, as `vidsync history` shows) nor an RFC 3339 time like 2026-12-06T10:00:00Z")
            })
    }
}

/// The linked folder that holds `path` (which may no longer exist), and
/// `path` as a project path.
pub fn locate(cfg: &Config, path: &Path) -> Result<(FolderLink, ProjectPath)> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|source| UseCaseError::Folder {
                what: "resolve",
                path: path.to_path_buf(),
                source,
            })?
            .join(path)
    };
    // The nearest existing ancestor, canonical, plus the rest as given.
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut full = std::fs::canonicalize(&existing).unwrap_or(existing);
    full.extend(rest.iter().rev());
    for link in &cfg.folders {
        let root = std::fs::canonicalize(&link.path).unwrap_or_else(|_| link.path.clone());
        if let Ok(rel) = full.strip_prefix(&root) {
            if rel.as_os_str().is_empty() {
                continue;
            }
            let p = ProjectPath::from_relative(rel).map_err(|e| UseCaseError::Folder {
                what: "use",
                path: path.to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })?;
            return Ok((link.clone(), p));
        }
    }
    Err(UseCaseError::NotInLinkedFolder(path.to_path_buf()))
}

/// The project a command without a path acts on: `project` when given,
/// else the linked folder that holds `cwd`, else the only linked folder.
pub fn project_for(cfg: &Config, project: Option<&str>, cwd: &Path) -> Result<FolderLink> {
    if let Some(id) = project {
        return cfg
            .folders
            .iter()
            .find(|l| l.project_id == id)
            .cloned()
            .ok_or_else(|| UseCaseError::NotLinked(id.to_string()));
    }
    let cwd = std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf());
    let holding = cfg
        .folders
        .iter()
        .find(|l| std::fs::canonicalize(&l.path).is_ok_and(|root| cwd.starts_with(root)));
    match (holding, cfg.folders.as_slice()) {
        (Some(l), _) => Ok(l.clone()),
        (None, [only]) => Ok(only.clone()),
        (None, _) => Err(UseCaseError::WhichProject(PathBuf::from(&cwd))),
    }
}

/// Every version of project path `path` in linked project `project_id`,
/// newest first.
pub async fn versions(dir: &Path, project_id: &str, path: &str) -> Result<Vec<ProjectEvent>> {
    let cfg = Config::load(dir)?;
    let link = project_for(&cfg, Some(project_id), Path::new("/"))?;
    let api = api_of(&cfg)?;
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let page = api.history(&link.project_id, path, before, 1000).await?;
        out.extend(page.events);
        match page.next_before_seq {
            Some(n) if out.len() < MAX_HISTORY => before = Some(n),
            _ => break,
        }
    }
    Ok(out)
}

/// The paths of the project's files at head (at most `max`), sorted.
pub async fn files(dir: &Path, project_id: &str, max: usize) -> Result<Vec<String>> {
    let cfg = Config::load(dir)?;
    let api = api_of(&cfg)?;
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = api.tree(project_id, after.as_deref(), 1000).await?;
        out.extend(
            page.files
                .iter()
                .filter_map(|f| f["path"].as_str().map(str::to_string)),
        );
        match page.next {
            Some(n) if out.len() < max => after = Some(n),
            _ => break,
        }
    }
    out.truncate(max);
    Ok(out)
}

/// Every version of `path`, newest first.
pub async fn history(dir: &Path, path: &Path) -> Result<(FolderLink, Vec<ProjectEvent>)> {
    let cfg = Config::load(dir)?;
    let (link, p) = locate(&cfg, path)?;
    let events = versions(dir, &link.project_id, p.as_str()).await?;
    Ok((link, events))
}

/// What to bring back, and to when.
#[derive(Debug, Clone)]
pub struct Going {
    pub to: Point,
    pub paths: Option<Vec<String>>,
    pub prefix: Option<String>,
    pub changed_by: Option<String>,
    pub dry_run: bool,
}

/// The origin a restore's events carry: not this client's own id, or its
/// own engine would take them for changes it made itself (already on disk)
/// and not write them.
pub fn restore_client_id(client_id: &str) -> String {
    format!("{client_id}:restore")
}

/// Asks the server to restore (or, with `dry_run`, to say what a restore
/// would change) in `link`'s project, as this client.
pub async fn restore(dir: &Path, link: &FolderLink, going: &Going) -> Result<RestoreOutcome> {
    let cfg = Config::load(dir)?;
    let (at_seq, at_time) = match &going.to {
        Point::Seq(s) => (Some(*s), None),
        Point::Time(t) => (None, Some(t.clone())),
    };
    let request = RestoreRequest {
        client_id: restore_client_id(&cfg.client_id),
        at_seq,
        at_time,
        paths: going.paths.clone(),
        prefix: going.prefix.clone(),
        changed_by: going.changed_by.clone(),
        dry_run: going.dry_run,
    };
    Ok(api_of(&cfg)?.restore(&link.project_id, &request).await?)
}
