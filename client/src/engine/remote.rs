//! Taking in remote events, in seq order. Each event is applied by the
//! executor ([`crate::apply::Applier`], which plans with
//! [`crate::plan::plan_remote`] and re-checks the disk before it acts).
//! Three outcomes: done (the cursor may pass it); must wait (the server or
//! the network is away: the event stays first in line and is tried again
//! with back-off — nothing after it is taken in); or set aside (it cannot
//! be applied here: kept in the database with its reason, shown as badge
//! `error` and by `vidsync status`, and tried again on a timer).
//!
//! Events that cannot touch each other (small files, distinct paths none
//! of which is above another, all writes or all deletes) are applied at
//! once, up to [`GROUP`]; their outcomes are still taken in seq order, so
//! the cursor only ever passes a done prefix.

use std::time::Duration;

use tokio::time::Instant;
use vidsync_protocol::chunking::CHUNK_MAX;
use vidsync_protocol::{Op, ProjectEvent};

use super::folder::{FolderLoop, Pending};

/// How often a run whose local state could not be written is tried again.
const LOCAL_STATE_RETRY: Duration = Duration::from_secs(1);
/// Pending events whose small files are fetched in one go.
const PREFETCH_EVENTS: usize = 2_000;
/// Events applied at once at most (see [`FolderLoop::group_at_front`]):
/// many, so that one flush to disk covers many files (`content::durable`).
const GROUP: usize = 128;
/// Events applied between two writes of the cursor and the status.
const FLUSH_EVERY: usize = 256;
use super::status::EngineEvent;
use crate::apply::{Applied, Applier};

/// How often a download's bytes are told, at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// A file from this size on shows as a transfer as soon as it starts.
const BIG_FILE: u64 = 1024 * 1024;

/// How many of `events`, from the first, may be applied at once: all
/// deletes or all writes, and no path equal to or above another's.
fn independent_prefix(events: &[&ProjectEvent]) -> usize {
    let mut paths = std::collections::HashSet::new();
    let mut dirs = std::collections::HashSet::new();
    let deletes = events.first().map(|e| e.change.op == Op::Delete);
    for (n, ev) in events.iter().enumerate() {
        let path = ev.change.path.as_str();
        let above: Vec<&str> = path.match_indices('/').map(|(i, _)| &path[..i]).collect();
        if Some(ev.change.op == Op::Delete) != deletes
            || paths.contains(path)
            || dirs.contains(path)
            || above.iter().any(|d| paths.contains(d))
        {
            return n;
        }
        paths.insert(path);
        dirs.extend(above);
    }
    events.len()
}

impl FolderLoop {
    pub(super) fn applier(&self) -> Applier {
        Applier {
            content: self.content.clone(),
            state: self.ctx.state.clone(),
            root: self.link.path.clone(),
            project_id: self.link.project_id.clone(),
            client_id: self.ctx.client_id.clone(),
            mode: self.link.mode,
            deferred: None,
        }
    }

    /// Takes in pending events until they are all done or one must wait.
    /// The state writes of a run of applied events go in one transaction,
    /// written before anything else reads or writes the local state (a
    /// set-aside, the cursor, the end of the run).
    pub(super) async fn take_in_pending(&mut self) {
        let mut applier = self.applier();
        applier.deferred = Some(Default::default());
        self.take_in_run(&applier).await;
        self.flush(&applier).await;
    }

    /// The local state could not be written after a run of events was
    /// applied: the events are put back in line (nothing of what they wrote
    /// was kept) and tried again every [`LOCAL_STATE_RETRY`]; applied again,
    /// they find their version on disk and only write the state. A fixed,
    /// short wait, not the network back-off: a local disk that fills comes
    /// back when the user frees space, and sync should resume then.
    async fn state_write_failed(&mut self, applier: &Applier, e: crate::Error) {
        applier.forget();
        let back = std::mem::take(&mut self.unflushed);
        if let Some(first) = back.first() {
            self.done_seq = first.seq.saturating_sub(1);
        }
        for ev in back.into_iter().rev() {
            self.pending.push_front(Pending::Event(ev));
        }
        let wait = LOCAL_STATE_RETRY;
        tracing::warn!(project = %self.pid(), %e, ?wait, "writing applied events to the local state failed; they wait");
        self.waiting = Some(format!("the local state cannot be written: {e}"));
        self.remote_retry_at = Some(Instant::now() + wait);
    }

    /// Writes what the run applied so far; `false` if that failed (the
    /// run's events are back in line).
    async fn flush(&mut self, applier: &Applier) -> bool {
        match applier.flush().await {
            Ok(()) => {
                self.unflushed.clear();
                true
            }
            Err(e) => {
                self.state_write_failed(applier, e).await;
                false
            }
        }
    }

    async fn take_in_run(&mut self, applier: &Applier) {
        let mut fetched_until = 0u64;
        let mut since_flush = 0usize;
        while let Some(next) = self.pending.front() {
            let seq = match next {
                Pending::Event(ev) => ev.seq,
                Pending::Invalid { seq, .. } => *seq,
            };
            if seq > fetched_until && self.pending.len() > 1 {
                fetched_until = self.fetch_ahead().await.max(seq);
                continue;
            }
            if seq <= self.done_seq {
                // Already done (a replay after a restart of the feed).
                self.pending.pop_front();
                continue;
            }
            let group = self.group_at_front(fetched_until);
            let (done, wait) = match group.len() {
                0 | 1 => {
                    let outcome = match next {
                        Pending::Event(ev) => {
                            let ev = ev.clone();
                            self.take_in(applier, &ev).await
                        }
                        Pending::Invalid { seq, message } => {
                            let (seq, message) = (*seq, message.clone());
                            self.set_aside(applier, seq, "?", &message, None).await
                        }
                    };
                    match outcome {
                        Ok(()) => (1, None),
                        Err(why) => (0, Some(why)),
                    }
                }
                _ => self.take_in_group(applier, &group).await,
            };
            for _ in 0..done {
                let Some(Pending::Event(ev)) = self.pending.pop_front() else {
                    continue;
                };
                self.done_seq = ev.seq;
                self.unflushed.push(ev);
            }
            if done > 0 {
                // An invalid event popped above moves the cursor too.
                self.done_seq = self.done_seq.max(seq);
                self.waiting = None;
                self.feed_error = None;
                self.remote_retry_at = None;
                self.remote_delays = super::folder::delays();
            }
            if let Some(why) = wait {
                let wait = self.remote_delays.next().unwrap_or(Duration::from_secs(10));
                let seq = self.done_seq + 1;
                tracing::info!(project = %self.pid(), seq, %why, ?wait, "event waits; will retry");
                self.waiting = Some(why);
                self.remote_retry_at = Some(Instant::now() + wait);
                return;
            }
            // Tell progress during long bursts without a status per event.
            since_flush += done;
            if since_flush >= FLUSH_EVERY {
                since_flush = 0;
                if !self.flush(applier).await {
                    return;
                }
                self.save_cursor().await;
                self.refresh_status(false).await;
            }
        }
        self.remote_retry_at = None;
    }

    /// The events at the front of the line that may be applied at once:
    /// files of at most one chunk, fetched ahead, all deletes or all writes, none
    /// at or above another's path (a file and a directory of the same
    /// name, or a delete emptying a directory another event writes into,
    /// must go in order). Fewer than two: apply the front alone.
    fn group_at_front(&self, fetched_until: u64) -> Vec<ProjectEvent> {
        let mut candidates = Vec::new();
        for p in self.pending.iter().take(GROUP) {
            let Pending::Event(ev) = p else { break };
            let fits = ev.seq > self.done_seq
                && ev.seq <= fetched_until
                && ev.change.size.unwrap_or(0) <= CHUNK_MAX as u64
                && !self.taken_ahead(ev);
            if !fits {
                break;
            }
            candidates.push(ev);
        }
        let n = independent_prefix(&candidates);
        candidates[..n].iter().map(|ev| (*ev).clone()).collect()
    }

    /// Applies a group from [`FolderLoop::group_at_front`] at once; returns
    /// how many of its events, from the first, are done, and why the next
    /// one must wait, if one must. An event after one that must wait is
    /// applied again with it later: if it was applied now, that finds its
    /// version in place.
    async fn take_in_group(
        &mut self,
        applier: &Applier,
        group: &[ProjectEvent],
    ) -> (usize, Option<String>) {
        for ev in group {
            self.announce(ev);
        }
        let started = std::time::Instant::now();
        let paths: Vec<&str> = group.iter().map(|e| e.change.path.as_str()).collect();
        let own: Vec<&str> = group
            .iter()
            .filter(|e| e.origin.client_id == self.ctx.client_id)
            .map(|e| e.change.path.as_str())
            .collect();
        applier.preload(&paths, &own).await;
        let results =
            futures_util::future::join_all(group.iter().map(|ev| applier.apply(ev, |_| {}))).await;
        tracing::debug!(project = %self.pid(), n = group.len(), took = ?started.elapsed(), "group applied");
        let (mut done, mut wait) = (0, None);
        for (ev, result) in group.iter().zip(results) {
            match result {
                Ok(applied) => {
                    self.after_applied(ev, applied);
                    if wait.is_none() {
                        done += 1;
                    }
                }
                Err(e) if wait.is_some() => {
                    tracing::debug!(seq = ev.seq, %e, "not applied; tried again after the one that waits");
                }
                Err(e) if e.retry_soon() => wait = Some(e.to_string()),
                Err(e) => {
                    let path = ev.change.path.to_string();
                    match self
                        .set_aside(applier, ev.seq, &path, &e.to_string(), Some(ev))
                        .await
                    {
                        Ok(()) => done += 1,
                        Err(why) => wait = Some(why),
                    }
                }
            }
        }
        (done, wait)
    }

    /// Fetches the small files of the next pending events in few requests
    /// (see [`crate::content::Content::prefetch`]); returns the last seq
    /// it looked at.
    async fn fetch_ahead(&mut self) -> u64 {
        let mut wanted = Vec::new();
        let mut last = 0;
        for p in self.pending.iter().take(PREFETCH_EVENTS) {
            if let Pending::Event(ev) = p {
                last = ev.seq;
                let theirs = ev.origin.client_id != self.ctx.client_id;
                if let (true, Some(h), Some(s)) = (theirs, ev.change.hash, ev.change.size) {
                    wanted.push((h, s));
                }
            }
        }
        if wanted.len() > 1 {
            let started = std::time::Instant::now();
            self.content.prefetch(&wanted).await;
            tracing::debug!(project = %self.pid(), n = wanted.len(), took = ?started.elapsed(), "fetched ahead");
        }
        last
    }

    /// Whether the feed's event for a path is at or before the version
    /// taken ahead for it after a 409: that version is in place (or the user
    /// has moved on from it since, and said so to the server), so applying
    /// the event again would undo what came after it.
    pub(super) fn taken_ahead(&self, ev: &ProjectEvent) -> bool {
        let upto = self.ahead.get(ev.change.path.as_str());
        let done = upto.is_some_and(|&s| ev.seq <= s);
        if done {
            tracing::debug!(project = %self.pid(), seq = ev.seq, path = %ev.change.path, ?upto, "already taken ahead after a conflict");
        }
        done
    }

    /// Applies one event. `Err`: it must wait (nothing was set aside).
    async fn take_in(&mut self, applier: &Applier, ev: &ProjectEvent) -> Result<(), String> {
        if self.taken_ahead(ev) {
            return Ok(());
        }
        self.announce(ev);
        let own = ev.origin.client_id == self.ctx.client_id;
        // While a file comes in, its bytes show on the status, at most
        // four times a second.
        let theirs = !own && matches!(ev.change.op, Op::Create | Op::Update);
        let (rest_files, rest_bytes) = self.down_left(Some(ev.seq));
        let size = ev.change.size.unwrap_or(0);
        let ctx = self.ctx.clone();
        let (board, pid) = (&ctx.board, ev.project_id.as_str());
        if theirs && size >= BIG_FILE {
            // The whole of a big file shows before its first bytes come.
            board.set_transfer(
                pid,
                super::status::Transfer {
                    down_files: rest_files + 1,
                    down_bytes: rest_bytes + size,
                    ..board.transfer(pid)
                },
            );
        }
        let mut placed = 0u64;
        let mut told = std::time::Instant::now();
        let progress = |n: u64| {
            placed += n;
            if theirs && told.elapsed() >= PROGRESS_EVERY {
                told = std::time::Instant::now();
                board.set_transfer(
                    pid,
                    super::status::Transfer {
                        down_files: rest_files + 1,
                        down_bytes: rest_bytes + size.saturating_sub(placed),
                        ..board.transfer(pid)
                    },
                );
            }
        };
        match applier.apply(ev, progress).await {
            Ok(done) => {
                self.after_applied(ev, done);
                Ok(())
            }
            Err(e) if e.retry_soon() => Err(e.to_string()),
            Err(e) => {
                let path = ev.change.path.to_string();
                self.set_aside(applier, ev.seq, &path, &e.to_string(), Some(ev))
                    .await
            }
        }
    }

    /// Tells a remote event, once, even when it must wait and is tried again.
    fn announce(&mut self, ev: &ProjectEvent) {
        let own = ev.origin.client_id == self.ctx.client_id;
        if !own && ev.seq > self.announced_seq {
            self.announced_seq = ev.seq;
            self.emit(EngineEvent::RemoteEvent {
                project_id: ev.project_id.clone(),
                event: ev.clone(),
            });
        }
    }

    fn after_applied(&mut self, ev: &ProjectEvent, done: Applied) {
        let conflict = match done {
            Applied::Recheck => {
                // Our own version came back but the file moved on: look again.
                self.recheck_own(ev);
                return;
            }
            Applied::Wrote { conflict } | Applied::Deleted { conflict } => conflict,
            Applied::Adopted => None,
            Applied::Agreed | Applied::Ignored => return,
        };
        if self.link.mode.sends() {
            let path = ev.change.path.under(&self.link.path);
            self.placed.insert(path, self.ctx.debounce);
        }
        if let Some(copy) = &conflict {
            self.copy_made(copy);
        }
        self.emit(EngineEvent::Applied {
            project_id: ev.project_id.clone(),
            path: ev.change.path.to_string(),
            op: ev.change.op,
            seq: ev.seq,
            conflict,
        });
    }

    /// A conflict copy this loop made (a new local file): looked at now, to
    /// send it, and again after the debounce like any path the loop placed.
    /// If the user renames it back over the file within the watcher's
    /// window ("keep mine"), a debouncer that folds events (as
    /// notify-debouncer-full did) reports the chain `f → copy → f` as one
    /// event for `f`, and the copy's removal would never be seen.
    pub(super) fn copy_made(&mut self, copy: &str) {
        let copy = self.link.path.join(copy);
        self.to_look.insert(copy.clone());
        self.placed.insert(copy, self.ctx.debounce);
    }

    /// Keeps an event aside with its reason. `Err` if even that failed
    /// (the local database): then it must wait like a transient failure.
    async fn set_aside(
        &mut self,
        applier: &Applier,
        seq: u64,
        path: &str,
        reason: &str,
        ev: Option<&ProjectEvent>,
    ) -> Result<(), String> {
        tracing::warn!(project = %self.pid(), seq, path, reason, "event set aside");
        // What the events before it wrote comes first.
        applier
            .flush()
            .await
            .map_err(|e| format!("could not write applied events: {e}"))?;
        self.ctx
            .state
            .set_aside(self.pid(), seq, path, reason, ev)
            .await
            .map_err(|e| format!("could not keep event {seq} aside: {e}"))?;
        self.emit(EngineEvent::Error {
            project_id: Some(self.pid().to_string()),
            message: format!("{path}: event {seq} not applied: {reason}"),
        });
        Ok(())
    }

    /// Tries the set-aside events again, oldest first.
    pub(super) async fn retry_set_aside(&mut self) {
        let events = match self.ctx.state.aside_events(self.pid()).await {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(%e, "reading set-aside events");
                return;
            }
        };
        let applier = self.applier();
        for ev in events {
            let result = match self.taken_ahead(&ev) {
                true => Ok(crate::apply::Applied::Ignored),
                false => applier.apply(&ev, |_| {}).await,
            };
            match result {
                Ok(done) => {
                    tracing::info!(project = %self.pid(), seq = ev.seq, path = %ev.change.path, "set-aside event applied");
                    let cleared = self
                        .ctx
                        .state
                        .aside_clear(self.pid(), ev.change.path.as_str(), ev.seq)
                        .await;
                    if let Err(e) = cleared {
                        tracing::error!(%e, "clearing a set-aside event");
                    }
                    self.after_applied(&ev, done);
                }
                Err(e) => {
                    let reason = e.to_string();
                    tracing::debug!(seq = ev.seq, %reason, "set-aside event still fails");
                    let path = ev.change.path.to_string();
                    let kept = self
                        .ctx
                        .state
                        .set_aside(self.pid(), ev.seq, &path, &reason, Some(&ev))
                        .await;
                    if let Err(e) = kept {
                        tracing::error!(%e, "updating a set-aside event");
                    }
                }
            }
        }
    }

    /// Marks the index entry of our own event's path stale and looks at the
    /// file again, so bytes newer than that version (or its deletion) get
    /// sent. The entry is kept: dropping it would lose a delete not yet seen.
    fn recheck_own(&mut self, ev: &ProjectEvent) {
        if let Some(h) = ev.change.hash {
            self.stale.push((ev.change.path.clone(), h));
        }
        self.to_look.insert(ev.change.path.under(&self.link.path));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, op: Op, path: &str) -> ProjectEvent {
        serde_json::from_value(serde_json::json!({
            "seq": seq,
            "project_id": "p",
            "change": {
                "op": op.as_str(),
                "path": path,
                "hash": (op != Op::Delete).then(|| vidsync_protocol::ContentHash::of(path.as_bytes()).to_hex()),
                "size": (op != Op::Delete).then_some(1),
            },
            "origin": {"user": "u", "client_id": "c"},
            "created_at": "2026-12-06T00:00:00Z",
        }))
        .unwrap()
    }

    fn prefix(events: &[ProjectEvent]) -> usize {
        independent_prefix(&events.iter().collect::<Vec<_>>())
    }

    #[test]
    fn distinct_files_go_together() {
        let evs = [
            ev(1, Op::Create, "a/x"),
            ev(2, Op::Create, "a/y"),
            ev(3, Op::Update, "b"),
        ];
        assert_eq!(prefix(&evs), 3);
    }

    #[test]
    fn a_path_twice_or_under_another_waits_its_turn() {
        let twice = [ev(1, Op::Create, "a"), ev(2, Op::Update, "a")];
        assert_eq!(prefix(&twice), 1);
        // A file, then a directory of the same name (after its delete), in
        // either order of nesting.
        let below = [ev(1, Op::Create, "a"), ev(2, Op::Create, "a/b")];
        assert_eq!(prefix(&below), 1);
        let above = [ev(1, Op::Create, "a/b/c"), ev(2, Op::Create, "a/b")];
        assert_eq!(prefix(&above), 1);
        // Only whole components count: "ab" is not under "a".
        let sibling = [ev(1, Op::Create, "a"), ev(2, Op::Create, "ab/c")];
        assert_eq!(prefix(&sibling), 2);
    }

    #[test]
    fn deletes_and_writes_never_mix() {
        // A delete may empty a directory another event is writing into.
        let evs = [
            ev(1, Op::Delete, "d/x"),
            ev(2, Op::Delete, "d/y"),
            ev(3, Op::Create, "d/z"),
        ];
        assert_eq!(prefix(&evs), 2);
        let evs = [ev(1, Op::Create, "d/z"), ev(2, Op::Delete, "d/x")];
        assert_eq!(prefix(&evs), 1);
    }
}
