//! A project at a glance, as the server knows it: its files and their
//! total size at head, its owner and the caller's role, and the newest
//! change with who made it. The desktop's project view shows it; who is
//! present and what is left to move come from the engine's status.

use std::path::Path;

use serde::Serialize;
use vidsync_protocol::ProjectEvent;

use super::{api_of, Result};
use crate::Config;

/// Files counted at most (one tree page per 1,000 files).
pub const MAX_COUNTED_FILES: usize = 200_000;

/// What [`overview`] tells about a project.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overview {
    pub project_id: String,
    pub name: String,
    pub owner: String,
    /// `owner` or `member`: the caller's role.
    pub role: String,
    pub head_seq: u64,
    /// Files at head, and their bytes.
    pub files: u64,
    pub bytes: u64,
    /// Whether there were more files than [`MAX_COUNTED_FILES`] (the
    /// figures then count only those).
    pub truncated: bool,
    /// The newest event of the project, if any.
    pub last_change: Option<ProjectEvent>,
}

/// Asks the server about `project_id` (a project the caller is a member of).
pub async fn overview(dir: &Path, project_id: &str) -> Result<Overview> {
    let cfg = Config::load(dir)?;
    let api = api_of(&cfg)?;
    let project = api.project(project_id).await?;
    let (mut files, mut bytes, mut truncated) = (0u64, 0u64, false);
    let mut after: Option<String> = None;
    loop {
        let page = api.tree(project_id, after.as_deref(), 1000).await?;
        for f in &page.files {
            files += 1;
            bytes += f["size"].as_u64().unwrap_or(0);
        }
        match page.next {
            Some(n) if (files as usize) < MAX_COUNTED_FILES => after = Some(n),
            Some(_) => {
                truncated = true;
                break;
            }
            None => break,
        }
    }
    let last_change = match project.head_seq {
        0 => None,
        head => api
            .events(project_id, head - 1, 1)
            .await?
            .events
            .into_iter()
            .next(),
    };
    Ok(Overview {
        project_id: project.id,
        name: project.name,
        owner: project.owner,
        role: project.role.as_str().to_string(),
        head_seq: project.head_seq,
        files,
        bytes,
        truncated,
        last_change,
    })
}
