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
use crate::state::Known;

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
        // A look at some paths reads only their part of the index.
        let index = match &paths {
            None => self.ctx.state.index(&pid).await,
            Some(paths) => {
                let rels = scan::relative_paths(&root, paths);
                let rels: Vec<&str> = rels.iter().map(|p| p.as_str()).collect();
                self.ctx.state.index_for(&pid, &rels).await
            }
        };
        let index = match index {
            Ok(i) => i,
            Err(e) => {
                // Never an empty index instead: everything would be re-sent.
                self.watch_error = Some(format!("the local index cannot be read: {e}"));
                // Looked at once the index can be read.
                match paths {
                    None => self.rescan = true,
                    Some(p) => self.to_look.extend(p),
                }
                return;
            }
        };
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
    /// nothing is kept and the caller rescans. The paths are distinct (one
    /// difference each), so all is written at once (a few queries, see
    /// [`crate::state::Batch::record_many`]), not query by query.
    async fn record_all(
        &self,
        pid: &str,
        mut diffs: Vec<Diff>,
    ) -> crate::Result<Vec<(String, vidsync_protocol::Op)>> {
        let mut batch = self.ctx.state.batch().await?;
        let changed: Vec<&str> = diffs
            .iter()
            .filter(|d| d.change.is_some())
            .map(|d| d.path.as_str())
            .collect();
        let known = batch.known(pid, &changed).await?;
        let chunks: Vec<_> = diffs
            .iter_mut()
            .map(|d| std::mem::take(&mut d.chunks))
            .collect();
        let mut index = Vec::with_capacity(diffs.len());
        let mut agreed = Vec::new();
        let mut queue = Vec::new();
        for d in &diffs {
            index.push((d.path.as_str(), d.entry.as_ref()));
            match plan_one(&known, d, self.link.mode) {
                Recorded::Index => {}
                Recorded::Agreed(base) => agreed.push((d.path.as_str(), base)),
                Recorded::Queued(change) => queue.push(change),
            }
        }
        batch.record_many(pid, &index, &agreed, &queue).await?;
        for (d, chunks) in diffs.iter().zip(&chunks) {
            if let (Some(e), false) = (&d.entry, chunks.is_empty()) {
                batch.set_chunks(pid, &d.path, &e.hash, chunks).await?;
            }
        }
        batch.commit().await?;
        Ok(queue
            .into_iter()
            .map(|c| (c.path.to_string(), c.op))
            .collect())
    }
}

/// What one difference records besides its index entry.
enum Recorded {
    /// Nothing more.
    Index,
    /// Back at the agreed version (e.g. just applied): nothing to send,
    /// and anything queued for the path is moot.
    Agreed(Option<vidsync_protocol::ContentHash>),
    /// A change to send.
    Queued(Change),
}

/// Plans one difference from what is agreed and queued for its path.
fn plan_one(known: &Known, d: &Diff, mode: crate::Mode) -> Recorded {
    let Some(scanned) = &d.change else {
        return Recorded::Index;
    };
    let now = d.entry.as_ref().map(|e| e.hash);
    let agreed = known.bases.get(d.path.as_str()).copied();
    let last = known.queued.get(d.path.as_str()).copied().unwrap_or(agreed);
    match plan_local(now, last, agreed, mode) {
        LocalAction::IndexOnly => Recorded::Index,
        LocalAction::Agreed => Recorded::Agreed(agreed),
        LocalAction::Upload { op, base } => Recorded::Queued(Change {
            op,
            base_hash: base,
            ..scanned.clone()
        }),
    }
}
