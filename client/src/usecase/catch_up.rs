//! The catch-up after a join: the newest version of every path of the
//! project, downloaded (several at once) into the new folder, and the
//! cursor moved to the log's head if every path came over. What is not
//! brought over here the folder's loop replays from the cursor.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt;
use vidsync_protocol::{Op, ProjectEvent};

use super::Result;
use crate::api::ApiClient;
use crate::apply::{Applier, ApplyError};
use crate::state::LocalState;
use crate::{Config, FolderLink};

/// How many downloads run at once (distinct paths, so they never race).
const PARALLEL: usize = 8;
/// Page size when reading the log.
const PAGE: u32 = 1000;

/// What the catch-up did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    /// Distinct paths it had to bring over.
    pub files: usize,
    /// How many of them could not be (the folder's loop tries them again).
    pub failed: usize,
    /// The log's head when it read it; the cursor is there if none failed.
    pub head: u64,
}

/// Hears how a join goes, e.g. to draw a progress bar. Every method does
/// nothing by default.
pub trait Progress: Sync {
    /// The folder is linked (the catch-up, if any, comes next).
    fn linked(&self, _link: &FolderLink) {}
    /// What is to be brought over: paths and their total bytes.
    fn planned(&self, _files: usize, _bytes: u64) {}
    /// More bytes arrived.
    fn bytes(&self, _n: u64) {}
    /// One more path is done (`done` of `files`), well or not.
    fn file_done(&self, _done: usize, _files: usize) {}
    /// A path could not be brought over.
    fn failed(&self, _path: &str, _error: &ApplyError) {}
    /// An event of the log is not one this client can read.
    fn skipped(&self, _seq: u64, _error: &str) {}
    /// The downloads are over.
    fn finished(&self) {}
}

/// A [`Progress`] that hears nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// Brings `link`'s folder to the project's current state. Uses `state` if
/// the shell has it open (a running engine), else opens the config dir's.
pub(crate) async fn catch_up(
    dir: &Path,
    cfg: &Config,
    api: &ApiClient,
    link: &FolderLink,
    state: Option<LocalState>,
    progress: &dyn Progress,
) -> Result<CatchUp> {
    let (state, owned) = match state {
        Some(s) => (s, false),
        None => (LocalState::open(dir).await?, true),
    };
    let result = bring_over(cfg, api, link, &state, progress).await;
    if owned {
        state.close().await;
    }
    result
}

async fn bring_over(
    cfg: &Config,
    api: &ApiClient,
    link: &FolderLink,
    state: &LocalState,
    progress: &dyn Progress,
) -> Result<CatchUp> {
    let (todo, head) = newest_versions(api, &link.project_id, progress).await?;
    let bytes: u64 = todo
        .iter()
        .filter(|e| e.change.op != Op::Delete)
        .filter_map(|e| e.change.size)
        .sum();
    let files = todo.len();
    progress.planned(files, bytes);
    let applier = Applier {
        api: api.clone(),
        state: state.clone(),
        root: link.path.clone(),
        project_id: link.project_id.clone(),
        client_id: cfg.client_id.clone(),
        mode: link.mode,
    };
    let done = AtomicUsize::new(0);
    // The futures are made first: a stream of closures over borrowed events
    // would not be `Send` (a shell may run this on any thread).
    let downloads: Vec<_> = todo
        .iter()
        .map(|ev| apply_one(&applier, ev, &done, files, progress))
        .collect();
    let oks: Vec<bool> = futures_util::stream::iter(downloads)
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    progress.finished();
    let failed = oks.iter().filter(|ok| !**ok).count();
    if failed == 0 {
        state.set_cursor(&link.project_id, head).await?;
    }
    Ok(CatchUp {
        files,
        failed,
        head,
    })
}

/// Applies one event; tells `progress`; whether it went well.
async fn apply_one(
    applier: &Applier,
    ev: &ProjectEvent,
    done: &AtomicUsize,
    files: usize,
    progress: &dyn Progress,
) -> bool {
    let res = applier.apply(ev, |n| progress.bytes(n)).await;
    progress.file_done(done.fetch_add(1, Ordering::Relaxed) + 1, files);
    if let Err(e) = &res {
        progress.failed(ev.change.path.as_str(), e);
    }
    res.is_ok()
}

/// The newest event of every path in the log, in seq order, and the head.
async fn newest_versions(
    api: &ApiClient,
    project_id: &str,
    progress: &dyn Progress,
) -> Result<(Vec<ProjectEvent>, u64)> {
    let mut latest: BTreeMap<String, ProjectEvent> = BTreeMap::new();
    let (mut since, mut head) = (0, 0);
    loop {
        let page = api.raw_events(project_id, since, PAGE).await?;
        head = head.max(page.head_seq);
        let n = page.events.len();
        for v in page.events {
            let seq = v["seq"].as_u64().unwrap_or(since + 1);
            since = since.max(seq);
            match serde_json::from_value::<ProjectEvent>(v) {
                Ok(ev) => {
                    latest.insert(ev.change.path.to_string(), ev);
                }
                Err(e) => progress.skipped(seq, &e.to_string()),
            }
        }
        if n < PAGE as usize {
            break;
        }
    }
    let mut todo: Vec<ProjectEvent> = latest.into_values().collect();
    todo.sort_by_key(|e| e.seq);
    Ok((todo, head))
}
