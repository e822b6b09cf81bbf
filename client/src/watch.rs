//! File events for a folder, debounced (500 ms by default): a burst of
//! writes and an editor's write-temp-then-rename arrive as a batch of
//! paths to look at once they have been quiet for the debounce (a path
//! written again later comes again; the scanner finds what, if anything,
//! changed). The watcher only schedules; the scanner decides what changed. When the OS says events were lost (an inotify
//! queue overflow: a rescan flag, or an event with no paths) or the watcher
//! fails, it asks for a full rescan.
//!
//! The OS watch is `notify`'s; the debouncing is [`Quiet`], here. It was
//! `notify-debouncer-full` 0.7, which cost too much for
//! what the engine takes from it (paths only): every tick it drained and
//! rebuilt its whole map of waiting paths (each path hashed again), so a
//! burst cost in proportion to paths waiting × ticks — about 50 ms of CPU
//! per client for 2,000 new files, 15% of a client's CPU there — and
//! it folded a file's events into their net effect (a file moved and then
//! deleted in one window was reported under its last name only), which the
//! engine had to work around. [`Quiet`] keeps the paths in the order their
//! events came, so a path costs one entry per event however long it waits,
//! and it reports every path an event named.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::{Error, Result};

/// Keeps the OS watch alive; dropping it stops watching (and the thread
/// that debounces, once the watch's event handler is gone).
pub struct FolderWatch {
    _watcher: notify::RecommendedWatcher,
}

/// What the watcher asks the folder to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchMsg {
    /// Look at these paths (absolute; files or directories).
    Paths(Vec<PathBuf>),
    /// Events were lost: look at the whole folder.
    Rescan,
}

/// What one raw event asks for: nothing, a rescan, or paths to look at
/// once they are quiet.
#[derive(Debug, PartialEq, Eq)]
enum Raw {
    /// Why events may have been lost.
    Rescan(String),
    Paths(Vec<PathBuf>),
}

/// Sorts one raw event. This client's own temp files (a version being
/// built) are never synced: a receiver's every file would bring three of
/// their events to look at for nothing. Nor is a file opened (notify 8
/// watches IN_OPEN): every file this client reads (to hash it, to send it)
/// would come back as a path to look at a debounce later.
fn sort_event(event: notify::Result<Event>) -> Option<Raw> {
    match event {
        Ok(e) if e.need_rescan() => Some(Raw::Rescan("the OS lost file events".into())),
        Ok(e) if e.paths.is_empty() => Some(Raw::Rescan(format!("an event without paths: {e:?}"))),
        Ok(e) if only_read(&e.kind) => None,
        Ok(e) => {
            let paths: Vec<PathBuf> = e.paths.into_iter().filter(|p| !is_temp(p)).collect();
            (!paths.is_empty()).then_some(Raw::Paths(paths))
        }
        Err(e) => Some(Raw::Rescan(format!("file watcher error: {e}"))),
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

/// Paths waiting until their events are `delay` old, in the order the
/// events came. When the oldest is due, every path whose event came within
/// a `grain` after it goes too, as one batch: a burst's first events (its
/// new directories, made within a millisecond) then go together, and a
/// look at those directories finds all of the burst at once (let go one
/// by one, a burst of 2,000 files was looked at, recorded and sent in two
/// or three parts, and took up to 15% longer). So a path goes up to a
/// `grain` early or, as batches are a `grain` apart at least, late. A path
/// with events more than a `grain` apart is let go for each; events of one
/// path less than a `grain` apart count as one (the first).
struct Quiet {
    delay: Duration,
    grain: Duration,
    queue: VecDeque<(Instant, PathBuf)>,
    /// When each path in `queue` was last queued.
    newest: HashMap<PathBuf, Instant>,
    /// When the last batch was let go.
    last_batch: Option<Instant>,
}

impl Quiet {
    fn new(delay: Duration, grain: Duration) -> Quiet {
        Quiet {
            delay,
            grain,
            queue: VecDeque::new(),
            newest: HashMap::new(),
            last_batch: None,
        }
    }

    fn add(&mut self, path: PathBuf, now: Instant) {
        if let Some(t) = self.newest.get(&path) {
            if now.saturating_duration_since(*t) < self.grain {
                return;
            }
        }
        self.newest.insert(path.clone(), now);
        self.queue.push_back((now, path));
    }

    /// When the next batch is due, if anything waits.
    fn next_batch(&self) -> Option<Instant> {
        let (t, _) = self.queue.front()?;
        let due = *t + self.delay;
        Some(match self.last_batch {
            Some(last) => due.max(last + self.grain),
            None => due,
        })
    }

    /// The paths due at `now` (sorted, each once); empty before
    /// [`Quiet::next_batch`].
    fn take_due(&mut self, now: Instant) -> Vec<PathBuf> {
        if self.next_batch().is_none_or(|at| at > now) {
            return Vec::new();
        }
        let mut due = Vec::new();
        while self
            .queue
            .front()
            .is_some_and(|(t, _)| *t + self.delay <= now + self.grain)
        {
            let Some((t, path)) = self.queue.pop_front() else {
                break;
            };
            if self.newest.get(&path) == Some(&t) {
                self.newest.remove(&path);
            }
            due.push(path);
        }
        self.last_batch = Some(now);
        due.sort();
        due.dedup();
        due
    }
}

/// Debounces sorted events from `rx` into `tx` until either side is gone.
/// A rescan is asked for at once, but at most once a `grain` (a watcher
/// that keeps failing would otherwise flood the engine and the log).
fn debounce(
    rx: Receiver<Raw>,
    tx: mpsc::UnboundedSender<WatchMsg>,
    delay: Duration,
    grain: Duration,
) {
    let mut quiet = Quiet::new(delay, grain);
    // A rescan asked for and not sent yet: why, and from when it may go.
    let mut rescan: Option<(String, Instant)> = None;
    let mut last_rescan: Option<Instant> = None;
    loop {
        let wake = [quiet.next_batch(), rescan.as_ref().map(|(_, at)| *at)]
            .into_iter()
            .flatten()
            .min();
        let got = match wake {
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match got {
            Ok(Raw::Rescan(why)) => {
                if rescan.is_none() {
                    let at = last_rescan.map_or_else(Instant::now, |l| l + grain);
                    rescan = Some((why, at));
                }
            }
            Ok(Raw::Paths(paths)) => {
                let now = Instant::now();
                for p in paths {
                    quiet.add(p, now);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        if let Some((why, _)) = rescan.take_if(|(_, at)| *at <= now) {
            tracing::warn!(%why, "rescanning the folder");
            last_rescan = Some(now);
            if tx.send(WatchMsg::Rescan).is_err() {
                return;
            }
        }
        let due = quiet.take_due(now);
        if due.is_empty() {
            continue;
        }
        tracing::debug!(n = due.len(), first = %due[0].display(), waiting = quiet.queue.len(), "paths quiet");
        if tx.send(WatchMsg::Paths(due)).is_err() {
            return;
        }
    }
}

/// Starts watching `root` recursively; what to look at arrives on the
/// returned channel.
pub fn watch(
    root: &Path,
    debounce_for: Duration,
) -> Result<(FolderWatch, mpsc::UnboundedReceiver<WatchMsg>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (raw_tx, raw_rx) = std::sync::mpsc::channel();
    // Batches at most this often; a path is let go up to this late or
    // early. At most a quarter of the debounce: a new directory's watch is
    // added only after notify has read all events waiting, and a look at it
    // before then may miss files written into it meanwhile, so most of the
    // debounce stays as margin.
    let grain = (debounce_for / 20)
        .clamp(Duration::from_millis(5), Duration::from_millis(25))
        .min(debounce_for / 4);
    std::thread::Builder::new()
        .name("vidsync debounce".into())
        .spawn(move || debounce(raw_rx, tx, debounce_for, grain))
        .map_err(|e| Error::Watch(e.to_string()))?;
    let mut watcher = notify::recommended_watcher(move |e: notify::Result<Event>| {
        // Sorted here, on notify's thread: most raw events (opens, temp
        // files) never cross. The debouncing thread ends when this
        // handler is dropped with the watcher.
        if let Some(raw) = sort_event(e) {
            let _ = raw_tx.send(raw);
        }
    })
    .map_err(|e| Error::Watch(e.to_string()))?;
    watcher
        .watch(root, RecursiveMode::Recursive)
        .map_err(|e| Error::Watch(format!("{}: {e}", root.display())))?;
    Ok((FolderWatch { _watcher: watcher }, rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, Flag, ModifyKind, RenameMode};

    const MS: Duration = Duration::from_millis(1);

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn an_overflow_a_pathless_event_or_an_error_asks_for_a_rescan() {
        let rescan = |r: Option<Raw>| matches!(r, Some(Raw::Rescan(_)));
        let overflow = Event::new(EventKind::Other).set_flag(Flag::Rescan);
        assert!(rescan(sort_event(Ok(overflow))));
        let pathless = Event::new(EventKind::Modify(ModifyKind::Any));
        assert!(rescan(sort_event(Ok(pathless))));
        let err = notify::Error::generic("queue overflow");
        assert!(rescan(sort_event(Err(err))));
    }

    /// Opening or reading a file changes nothing: no path to look at. A
    /// close after a write, a write, a create still bring theirs; a temp
    /// file of ours never does, and a rename from one keeps its target.
    #[test]
    fn opens_and_temp_files_are_dropped_and_changes_kept() {
        let e = |k: EventKind, paths: &[&str]| {
            let mut ev = Event::new(k);
            for x in paths {
                ev = ev.add_path(p(x));
            }
            sort_event(Ok(ev))
        };
        assert_eq!(
            e(
                EventKind::Access(AccessKind::Open(AccessMode::Any)),
                &["/a"]
            ),
            None
        );
        assert_eq!(
            e(
                EventKind::Access(AccessKind::Close(AccessMode::Read)),
                &["/a"]
            ),
            None
        );
        let kept = [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Create(CreateKind::File),
        ];
        for k in kept {
            assert_eq!(e(k, &["/b"]), Some(Raw::Paths(vec![p("/b")])), "{k:?}");
        }
        let temp = format!("/d/{}abc", crate::scan::TEMP_PREFIX);
        assert_eq!(e(EventKind::Create(CreateKind::File), &[&temp]), None);
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert_eq!(e(both, &[&temp, "/d/f"]), Some(Raw::Paths(vec![p("/d/f")])));
        // Both names of a rename are kept: the old one is gone, and the
        // scanner sends its removal.
        assert_eq!(
            e(both, &["/d/old", "/d/new"]),
            Some(Raw::Paths(vec![p("/d/old"), p("/d/new")]))
        );
    }

    #[test]
    fn a_path_is_let_go_once_its_event_is_a_delay_old_with_those_a_grain_after() {
        let t0 = Instant::now();
        let mut q = Quiet::new(500 * MS, 25 * MS);
        assert_eq!(q.next_batch(), None);
        q.add(p("/b"), t0);
        q.add(p("/a"), t0 + 10 * MS);
        q.add(p("/b"), t0 + 12 * MS); // within a grain of its first: one
        q.add(p("/d"), t0 + 30 * MS);
        q.add(p("/c"), t0 + 200 * MS);
        assert_eq!(q.next_batch(), Some(t0 + 500 * MS));
        let early = q.take_due(t0 + 499 * MS);
        assert!(early.is_empty(), "nothing before the delay");
        // With the first: what came within a grain after it.
        assert_eq!(q.take_due(t0 + 500 * MS), vec![p("/a"), p("/b")]);
        assert_eq!(q.next_batch(), Some(t0 + 530 * MS));
        assert_eq!(q.take_due(t0 + 530 * MS), vec![p("/d")]);
        // The next batch waits for its path's delay.
        assert_eq!(q.next_batch(), Some(t0 + 700 * MS));
        assert!(q.take_due(t0 + 699 * MS).is_empty());
        assert_eq!(q.take_due(t0 + 700 * MS), vec![p("/c")]);
        assert_eq!(q.next_batch(), None);
    }

    /// A path written again later than a grain after its first event is let
    /// go for each (as each write may have been read half-done the first
    /// time); after it was let go, a new event queues it again.
    #[test]
    fn a_path_with_events_apart_is_let_go_for_each() {
        let t0 = Instant::now();
        let mut q = Quiet::new(500 * MS, 25 * MS);
        q.add(p("/a"), t0);
        q.add(p("/a"), t0 + 300 * MS);
        assert_eq!(q.take_due(t0 + 500 * MS), vec![p("/a")]);
        assert_eq!(q.take_due(t0 + 800 * MS), vec![p("/a")]);
        assert_eq!(q.next_batch(), None);
        q.add(p("/a"), t0 + 810 * MS);
        assert_eq!(q.take_due(t0 + 1310 * MS), vec![p("/a")]);
    }

    /// Paths coming due one after another go in batches a grain apart, not
    /// one batch each (each batch is a look at the disk).
    #[test]
    fn batches_are_at_least_a_grain_apart() {
        let t0 = Instant::now();
        let mut q = Quiet::new(500 * MS, 25 * MS);
        for i in 0..100u32 {
            q.add(p(&format!("/f{i:03}")), t0 + i * MS);
        }
        assert_eq!(q.take_due(t0 + 500 * MS).len(), 26, "0 to 25 ms");
        assert_eq!(q.next_batch(), Some(t0 + 526 * MS));
        assert!(q.take_due(t0 + 525 * MS).is_empty());
        assert_eq!(q.take_due(t0 + 526 * MS).len(), 26, "26 to 51 ms");
        assert_eq!(q.take_due(t0 + 600 * MS).len(), 48);
    }

    /// The real thing: a file written in a watched folder is reported
    /// once its events are quiet, its temp-file sibling and a read are not.
    /// (A 400 ms debounce: its 20 ms grain takes a file's create, write and
    /// close as one even on a loaded machine.)
    #[tokio::test]
    async fn a_write_is_reported_after_the_debounce() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let (_w, mut rx) = watch(&root, 400 * MS).unwrap();
        let started = Instant::now();
        std::fs::write(root.join("f.txt"), "x").unwrap();
        std::fs::write(root.join(format!("{}1", crate::scan::TEMP_PREFIX)), "t").unwrap();
        let msg = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(started.elapsed() >= 380 * MS, "not before the debounce");
        assert_eq!(msg, WatchMsg::Paths(vec![root.join("f.txt")]));
        // Reading it brings nothing.
        std::fs::read(root.join("f.txt")).unwrap();
        std::fs::write(root.join("g.txt"), "y").unwrap();
        let msg = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(msg, WatchMsg::Paths(vec![root.join("g.txt")]));
    }

    /// A watcher that keeps failing asks for a rescan at once, and then at
    /// most once a grain.
    #[tokio::test]
    async fn rescans_go_at_once_then_once_a_grain() {
        let (raw_tx, raw_rx) = std::sync::mpsc::channel();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let grain = 50 * MS;
        std::thread::spawn(move || debounce(raw_rx, tx, 200 * MS, grain));
        let started = Instant::now();
        for _ in 0..1000 {
            raw_tx.send(Raw::Rescan("test".into())).unwrap();
        }
        let first = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(first.unwrap(), Some(WatchMsg::Rescan));
        let second = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(second.unwrap(), Some(WatchMsg::Rescan));
        assert!(started.elapsed() >= grain, "the second waits a grain");
        drop(raw_tx);
        // The thread ends and closes the channel; in all, at most one
        // rescan per grain went.
        let mut n = 2;
        while let Some(m) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
        {
            assert_eq!(m, WatchMsg::Rescan);
            n += 1;
        }
        let grains = started.elapsed().as_millis() / grain.as_millis();
        assert!(n <= grains + 1, "{n} rescans in {grains} grains");
    }
}
