//! Local changes: looking at what the watcher reported (or the whole folder)
//! with the scanner, and deciding with [`crate::plan::plan_local`] what each
//! difference becomes — nothing, an index refresh, or a change queued in
//! the outbox with the base it was made from. Files still being written
//! are looked at again after the debounce, never sent half-written.

use std::path::PathBuf;

use tokio::time::Instant;
use vidsync_protocol::Change;

use super::folder::FolderLoop;
use super::status::EngineEvent;
use crate::plan::{plan_local, LocalAction};
use crate::scan::{self, Diff, IgnoreRules, Looked};
use crate::state::{Batch, Known};

impl FolderLoop {
    /// Looks at the folder (all of it after a rescan request, else the
    /// paths reported) and queues what changed.
    pub(super) async fn look(&mut self) {
        if !self.link.mode.sends() {
            // A receive-only folder sends nothing; conflicts with local
            // edits are found when remote events are applied.
            self.rescan = false;
            self.to_look.clear();
            return;
        }
        let pid = self.pid().to_string();
        for (p, h) in std::mem::take(&mut self.stale) {
            if let Err(e) = self.ctx.state.index_stale(&pid, p.as_str(), &h).await {
                tracing::error!(%e, "marking an index entry stale");
            }
        }
        let index = match self.ctx.state.index(&pid).await {
            Ok(i) => i,
            Err(e) => {
                // Never an empty index instead: everything would be re-sent.
                self.watch_error = Some(format!("the local index cannot be read: {e}"));
                return;
            }
        };
        let root = self.link.path.clone();
        let ignore_changed = self.to_look.contains(&root.join(scan::IGNORE_FILE));
        if ignore_changed || self.rescan {
            self.rules = IgnoreRules::load(&root);
        }
        let paths: Option<Vec<PathBuf>> = match std::mem::take(&mut self.rescan) {
            true => None,
            false => Some(std::mem::take(&mut self.to_look).into_iter().collect()),
        };
        self.to_look.clear();
        let rules = self.rules.clone();
        let quiet = self.ctx.debounce / 2;
        let started = std::time::Instant::now();
        let looked = tokio::task::spawn_blocking(move || match paths {
            None => scan::scan(&root, &rules, &index, quiet),
            Some(paths) => scan::rescan(&root, &rules, &index, &paths, quiet),
        })
        .await;
        let Looked { diffs, unstable } = match looked {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(%e, "the scan failed; rescanning");
                self.rescan = true;
                return;
            }
        };
        tracing::debug!(project = %pid, diffs = diffs.len(), unstable = unstable.len(), took = ?started.elapsed(), "looked");
        if !diffs.is_empty() {
            let t = std::time::Instant::now();
            let recorded = self.record_all(&pid, diffs).await;
            tracing::debug!(project = %pid, took = ?t.elapsed(), "changes recorded");
            match recorded {
                Ok(queued) => {
                    self.outbox_dirty |= !queued.is_empty();
                    for (path, op) in queued {
                        self.emit(EngineEvent::ChangeQueued {
                            project_id: pid.clone(),
                            path,
                            op,
                        });
                    }
                }
                Err(e) => {
                    tracing::error!(%e, "could not record the changes; rescanning later");
                    self.rescan = true;
                }
            }
        }
        if !unstable.is_empty() {
            tracing::debug!(
                n = unstable.len(),
                "files still being written; looking again"
            );
            let root = &self.link.path;
            self.recheck.extend(unstable.iter().map(|p| p.under(root)));
            // A whole debounce, not just `quiet`: looking again after
            // `quiet` (tried for the burst's tail) made the desktop conflict
            // test fail every time (a receiver kept a conflict copy the
            // sender had deleted); not understood yet, see the notes.
            self.recheck_at = Some(Instant::now() + self.ctx.debounce);
        }
    }

    /// Plans each difference and records it (index, and the change if
    /// any), all in one transaction; returns what was queued. On error
    /// nothing is kept and the caller rescans.
    async fn record_all(
        &self,
        pid: &str,
        diffs: Vec<Diff>,
    ) -> crate::Result<Vec<(String, vidsync_protocol::Op)>> {
        let mut batch = self.ctx.state.batch().await?;
        let changed: Vec<&str> = diffs
            .iter()
            .filter(|d| d.change.is_some())
            .map(|d| d.path.as_str())
            .collect();
        let known = batch.known(pid, &changed).await?;
        let mut queued = Vec::new();
        for d in diffs {
            if let Some(change) = record_one(&mut batch, &known, pid, d, self.link.mode).await? {
                queued.push((change.path.to_string(), change.op));
            }
        }
        batch.commit().await?;
        Ok(queued)
    }
}

/// Plans one difference and records it (with the file's chunks, for the
/// chunk index); returns the change queued, if any.
async fn record_one(
    batch: &mut Batch,
    known: &Known,
    pid: &str,
    mut d: Diff,
    mode: crate::Mode,
) -> crate::Result<Option<Change>> {
    let chunks = std::mem::take(&mut d.chunks);
    let (path, hash) = (d.path.clone(), d.entry.as_ref().map(|e| e.hash));
    let queued = record_planned(batch, known, pid, d, mode).await?;
    if let Some(hash) = hash.filter(|_| !chunks.is_empty()) {
        batch.set_chunks(pid, &path, &hash, &chunks).await?;
    }
    Ok(queued)
}

/// Plans one difference and records it; returns the change queued, if any.
async fn record_planned(
    batch: &mut Batch,
    known: &Known,
    pid: &str,
    d: Diff,
    mode: crate::Mode,
) -> crate::Result<Option<Change>> {
    let Some(scanned) = d.change else {
        batch.record(pid, &d.path, None, d.entry.as_ref()).await?;
        return Ok(None);
    };
    let now = d.entry.as_ref().map(|e| e.hash);
    let agreed = known.bases.get(d.path.as_str()).copied();
    let last = known.queued.get(d.path.as_str()).copied().unwrap_or(agreed);
    match plan_local(now, last, agreed, mode) {
        LocalAction::IndexOnly => {
            batch.record(pid, &d.path, None, d.entry.as_ref()).await?;
            Ok(None)
        }
        LocalAction::Agreed => {
            // Back at the agreed version (e.g. just applied): nothing to
            // send, and anything queued for the path is moot.
            batch
                .applied(pid, &d.path, d.entry.as_ref(), agreed.as_ref())
                .await?;
            Ok(None)
        }
        LocalAction::Upload { op, base } => {
            let change = Change {
                op,
                base_hash: base,
                ..scanned
            };
            batch
                .record(pid, &d.path, Some(&change), d.entry.as_ref())
                .await?;
            Ok(Some(change))
        }
    }
}
