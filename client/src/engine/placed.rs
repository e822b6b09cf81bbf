//! Paths the engine placed itself, watched until the watcher reports them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

/// Paths the engine itself wrote or deleted, until the watcher reports them.
///
/// A guard against a watcher that does not report a path the engine wrote:
/// its rename or deletion by the user would never be sent. (The debouncer
/// used before, notify-debouncer-full 0.7, folded a file's events into
/// their net effect: a file that appeared in the window and was then
/// renamed was reported under its new name only, and one that appeared and
/// was deleted not at all. `crate::watch` reports every path an event
/// names, and this guard stays for watchers that miss events, such as a
/// directory's first files written before its watch is added.) So each
/// placed path is looked at once the debounce has passed without the
/// watcher reporting it, and again each window until it is reported (a
/// report means the debouncer has let go of it), or for at most
/// [`Placed::GIVE_UP`].
#[derive(Default)]
pub(crate) struct Placed {
    /// Path -> (first placed, next look).
    paths: std::collections::BTreeMap<PathBuf, (Instant, Instant)>,
}

impl Placed {
    const GIVE_UP: Duration = Duration::from_secs(60);

    /// The engine wrote or deleted `path`.
    pub(crate) fn insert(&mut self, path: PathBuf, debounce: Duration) {
        let now = Instant::now();
        let first = self.paths.get(&path).map_or(now, |(f, _)| *f);
        self.paths.insert(path, (first, now + debounce * 2));
    }

    /// The watcher reported `path`; whether the engine had placed it.
    pub(super) fn reported(&mut self, path: &Path) -> bool {
        self.paths.remove(path).is_some()
    }

    pub(super) fn next_at(&self) -> Option<Instant> {
        self.paths.values().map(|(_, at)| *at).min()
    }

    /// The paths due for a look; each is due again one window later.
    pub(super) fn due(&mut self, now: Instant, debounce: Duration) -> Vec<PathBuf> {
        let mut due = Vec::new();
        self.paths.retain(|p, (first, at)| {
            if *at > now {
                return true;
            }
            due.push(p.clone());
            *at = now + debounce * 2;
            now.duration_since(*first) < Self::GIVE_UP
        });
        due
    }
}
