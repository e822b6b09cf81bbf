//! Posting the outbox: blobs first (several at once), then the changes in
//! batches, each with its `base_hash`. A 200 makes the posted versions the
//! agreed ones. A 409 `conflict` means another client got there first: for
//! each stale path the local bytes are kept as a conflict copy, the
//! current version is taken, and the copy is sent as a new file, so both
//! folders end identical and no version is lost. Network trouble, 5xx and
//! 429 are retried with back-off; other refusals are parked (badge `error`).

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;
use vidsync_protocol::{Change, ConflictEntry};

use super::folder::FolderLoop;
use super::status::EngineEvent;
use crate::api::ApiError;
use crate::state::Queued;

/// Changes posted per request.
const UPLOAD_BATCH: u32 = 500;
/// Files at least this big are checked with HEAD before uploading.
const ASK_FIRST_BYTES: u64 = 1 << 20;
/// Blob uploads under way at once.
const BLOB_CONCURRENCY: usize = 8;

/// What became of a change's content.
enum BlobOutcome {
    Ready,
    Superseded,
    Retry(ApiError),
    Refused(ApiError),
}

impl FolderLoop {
    /// Posts until the outbox is empty, or schedules a retry.
    pub(super) async fn upload(&mut self) {
        match self.upload_pending().await {
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

    async fn upload_pending(&mut self) -> Result<(), ApiError> {
        let pid = self.pid().to_string();
        loop {
            let batch = match self.ctx.state.outbox_batch(&pid, UPLOAD_BATCH).await {
                Ok(b) => b,
                Err(e) => {
                    return Err(ApiError::Network {
                        url: "local state".into(),
                        message: e.to_string(),
                    })
                }
            };
            if batch.is_empty() {
                return Ok(());
            }
            let send = self.blobs_for(&pid, batch).await?;
            if send.is_empty() {
                continue;
            }
            let changes: Vec<Change> = send.iter().map(|q| q.change.clone()).collect();
            let ids: Vec<i64> = send.iter().map(|q| q.id).collect();
            let posted = self
                .ctx
                .api
                .post_changes(&pid, &self.ctx.client_id, &changes)
                .await;
            match posted {
                Ok(resp) => self.posted(&pid, &ids, &changes, &resp.events).await,
                Err(ApiError::Refused {
                    status: 409,
                    conflicts,
                    ..
                }) if !conflicts.is_empty() => self.resolve(&pid, conflicts).await,
                Err(e) if e.retryable() => return Err(e),
                Err(e) => self.refuse(&ids, &e).await,
            }
        }
    }

    /// Makes sure the server has each change's content; returns the changes
    /// ready to post (superseded ones are dropped, refused ones parked).
    async fn blobs_for(&mut self, pid: &str, batch: Vec<Queued>) -> Result<Vec<Queued>, ApiError> {
        let root = self.link.path.clone();
        let ctx = self.ctx.clone();
        let outcomes: Vec<(Queued, BlobOutcome)> =
            futures_util::stream::iter(batch.into_iter().map(|q| {
                let (ctx, root) = (ctx.clone(), root.clone());
                async move {
                    let outcome = ensure_blob(&ctx.api, pid, &root, &q.change).await;
                    (q, outcome)
                }
            }))
            .buffered(BLOB_CONCURRENCY)
            .collect()
            .await;
        let mut send = Vec::with_capacity(outcomes.len());
        let mut superseded = Vec::new();
        for (q, outcome) in outcomes {
            match outcome {
                BlobOutcome::Ready => send.push(q),
                BlobOutcome::Superseded => superseded.push(q.id),
                BlobOutcome::Retry(e) => return Err(e),
                BlobOutcome::Refused(e) => self.refuse(&[q.id], &e).await,
            }
        }
        for id in superseded {
            if let Err(e) = self.ctx.state.outbox_supersede(id).await {
                tracing::error!(%e, "dropping a superseded change");
            }
        }
        Ok(send)
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
        let state = &self.ctx.state;
        if let Err(e) = state.outbox_remove(ids).await {
            tracing::error!(%e, "clearing the outbox");
        }
        for (c, ev) in changes.iter().zip(events.iter()) {
            if let Err(e) = state.set_base(pid, c.path.as_str(), c.hash.as_ref()).await {
                tracing::error!(%e, "recording the agreed version");
            }
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
            match taken {
                Ok(Some(copy)) => {
                    self.to_look.insert(self.link.path.join(&copy));
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

/// Makes sure the server has the content a change names.
async fn ensure_blob(
    api: &crate::api::ApiClient,
    pid: &str,
    root: &Path,
    change: &Change,
) -> BlobOutcome {
    let Some(hash) = change.hash else {
        return BlobOutcome::Ready;
    };
    let file = change.path.under(root);
    // Asking first only pays for big files; a small one just goes up (the
    // server answers 200 if it had it).
    if change.size.unwrap_or(0) >= ASK_FIRST_BYTES {
        match api.has_blob(pid, &hash).await {
            Ok(true) => return BlobOutcome::Ready,
            Ok(false) => {}
            Err(e) if e.retryable() => return BlobOutcome::Retry(e),
            Err(e) => return BlobOutcome::Refused(e),
        }
    }
    match api.put_blob(pid, &hash, &file).await {
        Ok(()) => BlobOutcome::Ready,
        // The file changed or went since: a newer change covers it.
        Err(ApiError::Refused { status: 422, .. }) => BlobOutcome::Superseded,
        Err(e) if e.retryable() && !file.exists() => BlobOutcome::Superseded,
        Err(e) if e.retryable() => BlobOutcome::Retry(e),
        Err(e) => BlobOutcome::Refused(e),
    }
}
