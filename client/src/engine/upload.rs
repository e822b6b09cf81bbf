//! Posting the outbox: content first (only what the server lacks, see
//! [`crate::content::send`]), then the changes in batches, each with its
//! `base_hash`, up the socket when it is live (`files:update`) and by HTTP
//! otherwise or when the socket does not answer (see [`crate::feed`]). A 200 makes the posted versions the
//! agreed ones. A 409 `conflict` means another client got there first: for
//! each stale path the local bytes are kept as a conflict copy, the
//! current version is taken, and the copy is sent as a new file, so both
//! folders end identical and no version is lost. Network trouble, 5xx and
//! 429 are retried with back-off; other refusals are parked (badge `error`).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;
use vidsync_protocol::{Change, ConflictEntry, ContentHash, Op};

use super::folder::FolderLoop;
use super::status::EngineEvent;
use crate::api::ApiError;
use crate::content::SendOutcome;
use crate::feed::SocketPost;
use crate::state::Queued;
use crate::watch::WatchMsg;

/// Changes posted per request.
const UPLOAD_BATCH: u32 = 500;
/// Looks an upload run makes between its batches, at most (see
/// [`FolderLoop::upload_pending`]).
const LOOKS_PER_UPLOAD: usize = 4;

impl FolderLoop {
    /// Posts until the outbox is empty, or schedules a retry.
    pub(super) async fn upload(&mut self, watch: Option<&mut UnboundedReceiver<WatchMsg>>) {
        match self.upload_pending(watch).await {
            Ok(()) => {
                self.outbox_dirty = false;
                self.upload_retry_at = None;
                self.upload_delays = super::folder::delays();
            }
            Err(e) => {
                let wait = self.upload_delays.next().unwrap_or(Duration::from_secs(10));
                tracing::debug!(%e, ?wait, project = %self.pid(), "upload failed; will retry");
                self.upload_retry_at = Some(Instant::now() + wait);
            }
        }
    }

    /// Posts the outbox batch by batch, in order. While a batch is posted
    /// (and the server appends it), the next one is read and its content
    /// sent: content may reach the server early, a change never does.
    ///
    /// Paths the watcher reports meanwhile are looked at between two
    /// batches, so what they queue goes up in this run: a burst the
    /// debouncer lets out in two batches had its second part wait until
    /// the first was all posted (seen: 1,100 files, then 900 a third of a
    /// second later). A look may change the outbox, so the batch read
    /// ahead is then read again (its content is on the server already:
    /// asking again is one cheap request). At most [`LOOKS_PER_UPLOAD`]
    /// looks, so the run still ends while the folder keeps changing.
    async fn upload_pending(
        &mut self,
        mut watch: Option<&mut UnboundedReceiver<WatchMsg>>,
    ) -> Result<(), ApiError> {
        let pid = self.pid().to_string();
        let root = self.link.path.clone();
        let ctx = self.ctx.clone();
        let mut ahead: Option<Read> = None;
        // Bounded: a folder written to without pause would otherwise keep
        // this run going, and remote events, timers and the cursor wait
        // until a run ends.
        let mut looks_left = LOOKS_PER_UPLOAD;
        loop {
            // What waits to go up shows, batch by batch.
            self.refresh_status(false).await;
            let read = match ahead.take() {
                Some(r) => r,
                None => match read_and_send(&ctx, &pid, &root, 0).await? {
                    Some(r) => r,
                    None => return Ok(()),
                },
            };
            let last_id = read.last_id;
            let send = self.ready(read).await?;
            if send.is_empty() {
                continue;
            }
            let changes: Vec<Change> = send.iter().map(|q| q.change.clone()).collect();
            let ids: Vec<i64> = send.iter().map(|q| q.id).collect();
            let (posted, next) = tokio::join!(
                self.post(&pid, &changes),
                read_and_send(&ctx, &pid, &root, last_id)
            );
            match posted {
                Ok(resp) => self.posted(&pid, &ids, &changes, &resp.events).await,
                Err(ApiError::Refused {
                    status: 409,
                    conflicts,
                    ..
                }) if !conflicts.is_empty() => {
                    // Resolving changes the outbox: the next batch is read again.
                    self.resolve(&pid, conflicts).await;
                    continue;
                }
                Err(e) if e.retryable() => return Err(e),
                Err(e) => self.refuse(&ids, &e).await,
            }
            ahead = next?;
            if looks_left == 0 {
                continue;
            }
            if let Some(rx) = watch.as_deref_mut() {
                self.take_watched(rx);
            }
            if self.rescan || !self.to_look.is_empty() {
                looks_left -= 1;
                self.look().await;
                ahead = None;
            }
        }
    }

    /// Posts one batch: up the socket when it can carry it, else (or when
    /// it fails to answer) the same batch, same change ids, by HTTP.
    async fn post(
        &self,
        pid: &str,
        changes: &[Change],
    ) -> Result<vidsync_protocol::UpdateResponse, ApiError> {
        let client_id = &self.ctx.client_id;
        match self.ctx.feed.post_changes(pid, client_id, changes).await {
            SocketPost::Answered(answer) => {
                tracing::debug!(project = %pid, n = changes.len(), "batch posted over the socket");
                answer
            }
            SocketPost::NotSent(why) => {
                tracing::debug!(project = %pid, n = changes.len(), why, "batch posted by HTTP");
                self.ctx.api.post_changes(pid, client_id, changes).await
            }
        }
    }

    /// Acts on what sending a batch's content did: returns the changes
    /// ready to post, creates and updates before deletes (so a receiver
    /// still has a renamed file's old name to build the new one from);
    /// drops the superseded ones; parks the batch if the server refused
    /// its content.
    async fn ready(&mut self, read: Read) -> Result<Vec<Queued>, ApiError> {
        let outcomes = match read.content {
            Ok(o) => o,
            Err(e) if e.retryable() => return Err(e),
            Err(e) => {
                let ids: Vec<i64> = read.rows.iter().map(|q| q.id).collect();
                self.refuse(&ids, &e).await;
                return Ok(Vec::new());
            }
        };
        let (send, superseded) = carry_bases(read.rows, &outcomes);
        for id in superseded {
            if let Err(e) = self.ctx.state.outbox_supersede(id).await {
                tracing::error!(%e, "dropping a superseded change");
            }
        }
        Ok(deletes_last(send))
    }

    /// After a 200: the rows leave the outbox and the posted versions are
    /// the agreed ones.
    async fn posted(
        &mut self,
        pid: &str,
        ids: &[i64],
        changes: &[Change],
        events: &[vidsync_protocol::ProjectEvent],
    ) {
        // Two edits of one path can be in one batch: its last is what it
        // now is.
        let mut last: HashMap<&str, Option<ContentHash>> = HashMap::new();
        for c in changes {
            last.insert(c.path.as_str(), c.hash);
        }
        let bases: Vec<(&str, Option<ContentHash>)> = last.into_iter().collect();
        if let Err(e) = self.ctx.state.posted(pid, ids, &bases).await {
            // The rows stay queued: posted again, the server answers them
            // as duplicates (same change ids) and this is done again.
            tracing::error!(%e, "recording a posted batch");
        }
        for (c, ev) in changes.iter().zip(events.iter()) {
            self.emit(EngineEvent::ChangeUploaded {
                project_id: pid.to_string(),
                path: c.path.to_string(),
                op: c.op,
                seq: ev.seq,
            });
        }
        tracing::debug!(project = %pid, n = changes.len(), "changes posted");
    }

    /// A 409: for each stale path, keep ours as a conflict copy (to be sent
    /// as a new file) and take the current version.
    async fn resolve(&mut self, pid: &str, conflicts: Vec<ConflictEntry>) {
        let applier = self.applier();
        for entry in conflicts {
            let path = entry.path;
            tracing::info!(project = %pid, %path, "conflict: another version came first");
            if let Err(e) = self.ctx.state.outbox_drop_path(pid, path.as_str()).await {
                tracing::error!(%e, "dropping a stale change");
                continue;
            }
            let taken = applier.take_current(&path, entry.current.as_ref()).await;
            if let (Ok(_), Some(current)) = (&taken, &entry.current) {
                // Taken before the feed brings it: the feed must not apply
                // it (or an older event of the path) again once the user
                // has moved on from it.
                let seq = current.seq;
                let at = self.ahead.entry(path.to_string()).or_insert(seq);
                *at = (*at).max(seq);
                if let Err(e) = self
                    .ctx
                    .state
                    .set_taken_ahead(pid, path.as_str(), seq)
                    .await
                {
                    tracing::error!(%e, %path, "remembering a version taken ahead");
                }
                // Looked at again after the debounce even if the watcher
                // never reports it (see `Placed`).
                self.placed
                    .insert(path.under(&self.link.path), self.ctx.debounce);
            }
            match taken {
                Ok(Some(copy)) => {
                    self.copy_made(&copy);
                    let (op, seq) = entry
                        .current
                        .as_ref()
                        .map(|e| (e.change.op, e.seq))
                        .unwrap_or((vidsync_protocol::Op::Delete, 0));
                    self.emit(EngineEvent::Applied {
                        project_id: pid.to_string(),
                        path: path.to_string(),
                        op,
                        seq,
                        conflict: Some(copy),
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    // The path is looked at again; its event comes through
                    // the feed in any case.
                    tracing::warn!(%e, %path, "could not take the current version yet");
                }
            }
            self.to_look.insert(path.under(&self.link.path));
        }
    }

    async fn refuse(&mut self, ids: &[i64], e: &ApiError) {
        let message = format!("the server refused a change: {e}");
        tracing::warn!(project = %self.pid(), %message);
        if let Err(err) = self.ctx.state.outbox_fail(ids, &message).await {
            tracing::error!(%err, "parking a refused change");
        }
        self.emit(EngineEvent::Error {
            project_id: Some(self.pid().to_string()),
            message,
        });
    }
}

/// A batch read from the outbox and what sending its content did, not
/// acted on yet.
struct Read {
    /// The newest row read: the next batch starts after it.
    last_id: i64,
    rows: Vec<Queued>,
    content: Result<Vec<SendOutcome>, ApiError>,
}

/// Reads the batch after row `after` and makes sure the server has its
/// content. `None`: nothing more is queued.
async fn read_and_send(
    ctx: &super::Ctx,
    pid: &str,
    root: &std::path::Path,
    after: i64,
) -> Result<Option<Read>, ApiError> {
    let rows = ctx
        .state
        .outbox_batch_after(pid, after, UPLOAD_BATCH)
        .await
        .map_err(|e| ApiError::Network {
            url: "local state".into(),
            message: e.to_string(),
        })?;
    let Some(last_id) = rows.last().map(|q| q.id) else {
        return Ok(None);
    };
    let started = std::time::Instant::now();
    let changes: Vec<Change> = rows.iter().map(|q| q.change.clone()).collect();
    let content = crate::content::send_content(&ctx.api, &ctx.state, pid, root, &changes).await;
    tracing::debug!(project = %pid, n = rows.len(), took = ?started.elapsed(), "content sent");
    Ok(Some(Read {
        last_id,
        rows,
        content,
    }))
}

/// Splits a batch by outcome: the changes to post, and the ids of the
/// superseded ones. A superseded change hands its base to the next change
/// of its path, as [`crate::state::LocalState::outbox_supersede`] does in
/// the outbox, so what is posted carries the base the server knows.
fn carry_bases(rows: Vec<Queued>, outcomes: &[SendOutcome]) -> (Vec<Queued>, Vec<i64>) {
    let mut handed: HashMap<String, Option<Option<ContentHash>>> = HashMap::new();
    let mut send = Vec::with_capacity(rows.len());
    let mut superseded = Vec::new();
    for (mut q, outcome) in rows.into_iter().zip(outcomes) {
        if let Some(base) = handed.remove(q.change.path.as_str()) {
            q.change.base_hash = base;
        }
        match outcome {
            SendOutcome::Ready => send.push(q),
            SendOutcome::Superseded => {
                handed.insert(q.change.path.to_string(), q.change.base_hash);
                superseded.push(q.id);
            }
        }
    }
    (send, superseded)
}

/// Orders a batch so deletes come after creates and updates, except a
/// delete of a file where the batch puts a directory (`a` deleted, `a/b`
/// created), which must come first. Otherwise the order is kept.
fn deletes_last(batch: Vec<Queued>) -> Vec<Queued> {
    let dirs: HashSet<&str> = batch
        .iter()
        .filter(|q| q.change.op != Op::Delete)
        .flat_map(|q| {
            let p = q.change.path.as_str();
            p.match_indices('/').map(move |(i, _)| &p[..i])
        })
        .collect();
    let first = |q: &Queued| q.change.op != Op::Delete || dirs.contains(q.change.path.as_str());
    let (mut ordered, later): (Vec<&Queued>, Vec<&Queued>) = batch.iter().partition(|q| first(q));
    ordered.extend(later);
    let order: Vec<i64> = ordered.iter().map(|q| q.id).collect();
    let mut by_id: std::collections::HashMap<i64, Queued> =
        batch.into_iter().map(|q| (q.id, q)).collect();
    order
        .into_iter()
        .filter_map(|id| by_id.remove(&id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(id: i64, op: Op, path: &str) -> Queued {
        Queued {
            id,
            change: Change {
                path: vidsync_protocol::ProjectPath::new(path).unwrap(),
                op,
                hash: None,
                size: None,
                mtime: None,
                change_id: None,
                base_hash: None,
            },
        }
    }

    /// Two edits of "a" queued; the first one's content is gone: the second
    /// goes up against the first one's base (what the server has), and an
    /// unrelated path keeps its own.
    #[test]
    fn a_superseded_change_hands_its_base_to_the_next_of_its_path() {
        let base = |s: &str| Some(Some(ContentHash::of(s.as_bytes())));
        let mut rows = vec![
            q(1, Op::Update, "a"),
            q(2, Op::Update, "b"),
            q(3, Op::Update, "a"),
        ];
        rows[0].change.base_hash = base("agreed");
        rows[1].change.base_hash = base("b0");
        rows[2].change.base_hash = base("first edit");
        use SendOutcome::{Ready, Superseded};
        let (send, gone) = carry_bases(rows, &[Superseded, Ready, Ready]);
        assert_eq!(gone, vec![1]);
        let ids: Vec<i64> = send.iter().map(|q| q.id).collect();
        assert_eq!(ids, vec![2, 3]);
        assert_eq!(send[0].change.base_hash, base("b0"));
        assert_eq!(send[1].change.base_hash, base("agreed"));
    }

    #[test]
    fn deletes_go_last_unless_a_directory_takes_their_place() {
        let batch = vec![
            q(1, Op::Delete, "old.bin"),
            q(2, Op::Delete, "a"),
            q(3, Op::Create, "new.bin"),
            q(4, Op::Create, "a/b/c"),
            q(5, Op::Update, "x"),
        ];
        let ids: Vec<i64> = deletes_last(batch).iter().map(|q| q.id).collect();
        assert_eq!(ids, vec![2, 3, 4, 5, 1]);
    }
}
