//! File events for a folder, debounced (`notify` + `notify-debouncer-full`,
//! 500 ms by default): a burst of writes to one path and an editor's
//! write-temp-then-rename arrive as one batch of paths to look at. The
//! watcher only schedules; the scanner decides what changed. When the OS
//! says events were lost (an inotify queue overflow: a rescan flag, or an
//! event with no paths) or the watcher fails, it asks for a full rescan.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use tokio::sync::mpsc;

use crate::{Error, Result};

/// Keeps the OS watch alive; dropping it stops watching.
pub struct FolderWatch {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

/// What the watcher asks the folder to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchMsg {
    /// Look at these paths (absolute; files or directories).
    Paths(Vec<PathBuf>),
    /// Events were lost: look at the whole folder.
    Rescan,
}

/// Turns one debounced batch into what to ask for.
pub fn triage(result: DebounceEventResult) -> Option<WatchMsg> {
    match result {
        Ok(events) => {
            let lost = events
                .iter()
                .any(|e| e.event.need_rescan() || e.event.paths.is_empty());
            if lost {
                tracing::warn!("the file watcher lost events; rescanning the folder");
                return Some(WatchMsg::Rescan);
            }
            // This client's own temp files (a version being built) are never
            // synced: a receiver's every file would bring four of their
            // events to look at for nothing. Nor is a file opened (notify
            // 8 watches IN_OPEN): every file this client reads (to hash it,
            // to send it) came back as a path to look at a debounce later.
            let mut paths: Vec<PathBuf> = events
                .into_iter()
                .filter(|e| !only_read(&e.event.kind))
                .flat_map(|e| e.event.paths)
                .filter(|p| !is_temp(p))
                .collect();
            paths.sort();
            paths.dedup();
            (!paths.is_empty()).then_some(WatchMsg::Paths(paths))
        }
        Err(errors) => {
            for e in errors {
                tracing::warn!(%e, "file watcher error; rescanning the folder");
            }
            Some(WatchMsg::Rescan)
        }
    }
}

/// An event that says a file was opened or read, not changed. A close
/// after writing (IN_CLOSE_WRITE) is an access event too, and it stays, as
/// does any access a backend cannot tell apart.
fn only_read(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Access(
            AccessKind::Open(_)
                | AccessKind::Read
                | AccessKind::Close(AccessMode::Read | AccessMode::Execute)
        )
    )
}

fn is_temp(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(crate::scan::is_temp_name)
}

/// Starts watching `root` recursively; what to look at arrives on the
/// returned channel.
pub fn watch(
    root: &Path,
    debounce: Duration,
) -> Result<(FolderWatch, mpsc::UnboundedReceiver<WatchMsg>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    // The debouncer checks for quiet paths every tick; its default (a
    // quarter of the timeout) would add up to 125 ms to a 500 ms debounce.
    let tick = (debounce / 20).clamp(Duration::from_millis(5), Duration::from_millis(25));
    let mut debouncer = new_debouncer(debounce, Some(tick), move |res: DebounceEventResult| {
        if let Some(msg) = triage(res) {
            // The folder is gone only when it stops: nothing to tell.
            let _ = tx.send(msg);
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{Event, EventKind, Flag, ModifyKind};
    use notify_debouncer_full::DebouncedEvent;

    fn ev(e: Event) -> DebouncedEvent {
        DebouncedEvent::new(e, std::time::Instant::now())
    }

    #[test]
    fn an_overflow_or_a_pathless_event_asks_for_a_rescan() {
        let overflow = Event::new(EventKind::Other).set_flag(Flag::Rescan);
        assert_eq!(triage(Ok(vec![ev(overflow)])), Some(WatchMsg::Rescan));
        let pathless = Event::new(EventKind::Modify(ModifyKind::Any));
        assert_eq!(triage(Ok(vec![ev(pathless)])), Some(WatchMsg::Rescan));
        let err = notify::Error::generic("queue overflow");
        assert_eq!(triage(Err(vec![err])), Some(WatchMsg::Rescan));
    }

    #[test]
    fn paths_are_deduplicated() {
        let e = |p: &str| ev(Event::new(EventKind::Any).add_path(PathBuf::from(p)));
        assert_eq!(
            triage(Ok(vec![e("/a"), e("/b"), e("/a")])),
            Some(WatchMsg::Paths(vec!["/a".into(), "/b".into()]))
        );
        assert_eq!(triage(Ok(vec![])), None);
        let temp = format!("/d/{}abc", crate::scan::TEMP_PREFIX);
        assert_eq!(
            triage(Ok(vec![e(&temp), e("/d/f")])),
            Some(WatchMsg::Paths(vec!["/d/f".into()]))
        );
        assert_eq!(triage(Ok(vec![e(&temp)])), None);
    }

    /// Opening or reading a file changes nothing: no path to look at. A
    /// close after a write, a write, a create still bring theirs.
    #[test]
    fn a_file_only_opened_is_not_looked_at() {
        use notify::event::{AccessKind, AccessMode, CreateKind, DataChange};
        let e = |k: EventKind, p: &str| ev(Event::new(k).add_path(PathBuf::from(p)));
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        let read = EventKind::Access(AccessKind::Close(AccessMode::Read));
        assert_eq!(triage(Ok(vec![e(open, "/a"), e(read, "/a")])), None);
        let written = EventKind::Access(AccessKind::Close(AccessMode::Write));
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let created = EventKind::Create(CreateKind::File);
        assert_eq!(
            triage(Ok(vec![
                e(open, "/a"),
                e(written, "/b"),
                e(data, "/c"),
                e(created, "/d")
            ])),
            Some(WatchMsg::Paths(vec!["/b".into(), "/c".into(), "/d".into()]))
        );
    }
}
