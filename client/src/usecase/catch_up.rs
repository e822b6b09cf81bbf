//! The catch-up after a join: the newest version of every path of the
//! project, read from the server's current-state index (`GET tree`, so it
//! costs O(files), not O(events)), built (several at once, small files
//! fetched in batches ahead) into the new folder, and the cursor moved to
//! the tree's seq if every path came over. What is not brought over here
//! (or changed while the tree was read) the folder's loop replays from
//! the cursor.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt;
use vidsync_protocol::chunking::CHUNK_MAX;
use vidsync_protocol::{Change, ContentHash, Op, Origin, ProjectEvent, ProjectPath};

use super::Result;
use crate::api::ApiClient;
use crate::apply::{Applier, ApplyError};
use crate::state::LocalState;
use crate::{Config, FolderLink};

/// How many downloads of bigger files run at once (distinct paths, so they
/// never race).
const PARALLEL: usize = 8;
/// How many files of at most one chunk (fetched ahead, held in memory
/// anyway) are built at once: many, so that one flush to disk covers many
/// of them (see `content::durable`).
const PARALLEL_SMALL: usize = 128;
/// Page size when reading the tree.
const PAGE: u32 = 5_000;
/// Paths whose small files are fetched ahead in one go.
const WINDOW: usize = 2_000;

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
    let content = crate::content::Content::new(
        api.clone(),
        state.clone(),
        link.path.clone(),
        link.project_id.clone(),
    );
    let applier = Applier {
        content: content.clone(),
        state: state.clone(),
        root: link.path.clone(),
        project_id: link.project_id.clone(),
        client_id: cfg.client_id.clone(),
        mode: link.mode,
        // One transaction per window (the paths of a tree are distinct).
        deferred: Some(Default::default()),
    };
    let done = AtomicUsize::new(0);
    let mut oks: Vec<bool> = Vec::with_capacity(files);
    for window in todo.chunks(WINDOW) {
        let wanted: Vec<_> = window
            .iter()
            .filter_map(|e| Some((e.change.hash?, e.change.size?)))
            .collect();
        content.prefetch(&wanted).await;
        let paths: Vec<&str> = window.iter().map(|e| e.change.path.as_str()).collect();
        applier.preload(&paths, &[]).await;
        // The futures are made first: a stream of closures over borrowed
        // events would not be `Send` (a shell may run this on any thread).
        let (small, big): (Vec<&ProjectEvent>, Vec<&ProjectEvent>) = window
            .iter()
            .partition(|ev| ev.change.size.unwrap_or(0) <= CHUNK_MAX as u64);
        let small: Vec<_> = small
            .into_iter()
            .map(|ev| apply_one(&applier, ev, &done, files, progress))
            .collect();
        let big: Vec<_> = big
            .into_iter()
            .map(|ev| apply_one(&applier, ev, &done, files, progress))
            .collect();
        let (small_oks, big_oks) = futures_util::join!(
            futures_util::stream::iter(small)
                .buffer_unordered(PARALLEL_SMALL)
                .collect::<Vec<bool>>(),
            futures_util::stream::iter(big)
                .buffer_unordered(PARALLEL)
                .collect::<Vec<bool>>(),
        );
        oks.extend(small_oks);
        oks.extend(big_oks);
        applier.flush().await?;
    }
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

/// The newest version of every path, as events (in path order), from the
/// server's tree; and the seq the tree was read at (the first page's:
/// anything later the folder's loop replays).
async fn newest_versions(
    api: &ApiClient,
    project_id: &str,
    progress: &dyn Progress,
) -> Result<(Vec<ProjectEvent>, u64)> {
    let mut todo = Vec::new();
    let mut at_seq: Option<u64> = None;
    let mut after: Option<String> = None;
    loop {
        let page = api.tree(project_id, after.as_deref(), PAGE).await?;
        at_seq.get_or_insert(page.at_seq);
        for v in page.files {
            let seq = v["seq"].as_u64().unwrap_or(0);
            match serde_json::from_value::<TreeFile>(v) {
                Ok(f) => todo.push(f.into_event(project_id)),
                Err(e) => progress.skipped(seq, &e.to_string()),
            }
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    Ok((todo, at_seq.unwrap_or(0)))
}

/// One file of `GET tree`.
#[derive(serde::Deserialize)]
struct TreeFile {
    path: ProjectPath,
    hash: ContentHash,
    size: Option<u64>,
    mtime: Option<String>,
    seq: u64,
}

impl TreeFile {
    /// The file as the event that made it (its origin is not in the tree).
    fn into_event(self, project_id: &str) -> ProjectEvent {
        ProjectEvent {
            seq: self.seq,
            project_id: project_id.to_string(),
            change: Change {
                path: self.path,
                op: Op::Create,
                hash: Some(self.hash),
                size: self.size,
                mtime: self.mtime,
                change_id: None,
                base_hash: None,
            },
            origin: Origin {
                client_id: String::new(),
                user: String::new(),
            },
            created_at: String::new(),
        }
    }
}
