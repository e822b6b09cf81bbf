//! File events for a folder, debounced (`notify` + `notify-debouncer-full`,
//! 500 ms by default): a burst of writes to one path and an editor's
//! write-temp-then-rename arrive as one batch of paths to look at. The
//! watcher only schedules; the scanner decides what changed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use tokio::sync::mpsc;

use crate::{Error, Result};

/// Keeps the OS watch alive; dropping it stops watching.
pub struct FolderWatch {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

/// Starts watching `root` recursively; batches of touched paths arrive on
/// the returned channel.
pub fn watch(
    root: &Path,
    debounce: Duration,
) -> Result<(FolderWatch, mpsc::UnboundedReceiver<Vec<PathBuf>>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    // The debouncer checks for quiet paths every tick; its default (a
    // quarter of the timeout) would add up to 125 ms to a 500 ms debounce.
    let tick = (debounce / 20).clamp(Duration::from_millis(5), Duration::from_millis(25));
    let mut debouncer =
        new_debouncer(
            debounce,
            Some(tick),
            move |res: DebounceEventResult| match res {
                Ok(events) => {
                    let mut paths: Vec<PathBuf> =
                        events.into_iter().flat_map(|e| e.event.paths).collect();
                    paths.sort();
                    paths.dedup();
                    if !paths.is_empty() {
                        let _ = tx.send(paths);
                    }
                }
                Err(errors) => {
                    for e in errors {
                        tracing::warn!(%e, "file watcher error");
                    }
                }
            },
        )
        .map_err(|e| Error::Watch(e.to_string()))?;
    debouncer
        .watch(root, RecursiveMode::Recursive)
        .map_err(|e| Error::Watch(format!("{}: {e}", root.display())))?;
    Ok((
        FolderWatch {
            _debouncer: debouncer,
        },
        rx,
    ))
}
