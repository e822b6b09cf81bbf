//! The feed's side that reads the event log: one processor that drops
//! seqs already handed on, fills gaps from `GET events`, and hands events
//! on in order; and the poller, which reads the log while the socket is
//! not live.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::socket::{fail, subscribe};
use super::{
    current, cursor_of, note_head, projects, set_conn, set_link, Connection, FeedEvent, RawEvent,
    Shared, PAGE,
};

/// Dedupes by seq, fills gaps from the log, hands events on in order.
pub(super) async fn process(
    shared: Arc<Shared>,
    mut raw: mpsc::UnboundedReceiver<RawEvent>,
    cancel: CancellationToken,
) {
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => return,
            ev = raw.recv() => match ev { Some(ev) => ev, None => return },
        };
        let Some(cursor) = cursor_of(&shared, &ev.project_id) else {
            continue;
        };
        note_head(&shared, &ev.project_id, ev.seq);
        if ev.seq <= cursor {
            continue;
        }
        if ev.seq > cursor + 1 {
            // Missed some: read them from the log first.
            let mut at = cursor;
            while at + 1 < ev.seq {
                match shared.api.raw_events(&ev.project_id, at, PAGE).await {
                    Ok(page) if !page.events.is_empty() => {
                        note_head(&shared, &ev.project_id, page.head_seq);
                        for e in page
                            .events
                            .into_iter()
                            .filter_map(RawEvent::from_value)
                            .filter(|e| e.seq < ev.seq)
                        {
                            at = hand_on(&shared, e).unwrap_or(at);
                        }
                    }
                    Ok(_) => break,
                    Err(e) => {
                        tracing::debug!(%e, "gap fill failed; the poller or replay will bring them");
                        break;
                    }
                }
            }
            if at + 1 != ev.seq {
                continue;
            }
        }
        hand_on(&shared, ev);
    }
}

/// Advances the cursor and emits, if `ev` is the next one.
fn hand_on(shared: &Shared, ev: RawEvent) -> Option<u64> {
    {
        let mut cursors = shared.cursors.lock().ok()?;
        let c = cursors.get_mut(&ev.project_id)?;
        if ev.seq != *c + 1 {
            return None;
        }
        *c = ev.seq;
    }
    let seq = ev.seq;
    let msg = match ev.event {
        Ok(e) => FeedEvent::Event(e),
        Err(message) => FeedEvent::Invalid {
            project_id: ev.project_id,
            seq,
            message,
        },
    };
    let _ = shared.out.send(msg);
    Some(seq)
}

/// Polls the log of every project while the socket is not live.
pub(super) async fn poll(shared: Arc<Shared>, every: Duration, cancel: CancellationToken) {
    loop {
        if shared.failed.load(Ordering::SeqCst) {
            // The token was refused: asking again would be refused too.
            return;
        }
        // A socket that is up but never got its subscribe acks: ask again.
        if shared.socket_up.load(Ordering::SeqCst) && current(&shared) != Connection::Live {
            if let Some(client) = shared
                .client
                .lock()
                .await
                .as_ref()
                .map(|l| l.client.clone())
            {
                let projects = projects(&shared);
                for (pid, since) in projects {
                    subscribe(&shared, &client, &pid, since).await;
                }
            }
        }
        if !(shared.socket_up.load(Ordering::SeqCst) && current(&shared) == Connection::Live) {
            let projects = projects(&shared);
            let mut reachable = true;
            for (pid, since) in projects {
                let mut since = since;
                loop {
                    match shared.api.raw_events(&pid, since, PAGE).await {
                        Ok(page) => {
                            note_head(&shared, &pid, page.head_seq);
                            let n = page.events.len();
                            for e in page.events.into_iter().filter_map(RawEvent::from_value) {
                                since = e.seq;
                                let _ = shared.raw.send(e);
                            }
                            if n < PAGE as usize {
                                break;
                            }
                        }
                        Err(e) if e.retryable() => {
                            tracing::debug!(%e, "poll failed");
                            reachable = false;
                            break;
                        }
                        Err(e) if e.status() == Some(401) => {
                            // The token is refused: nothing more is tried.
                            fail(&shared, e.to_string());
                            return;
                        }
                        Err(e) => {
                            let _ = shared.out.send(FeedEvent::Error {
                                project_id: pid.clone(),
                                message: e.to_string(),
                            });
                            break;
                        }
                    }
                }
                if !reachable {
                    break;
                }
            }
            if !shared.socket_up.load(Ordering::SeqCst) || current(&shared) != Connection::Live {
                // Unreachable: `reconnecting` while the socket has a try
                // scheduled (or `connecting` during its first), else offline.
                let retry = shared.retry.lock().ok().and_then(|r| r.clone());
                match (reachable, retry) {
                    (true, _) => set_conn(&shared, Connection::Polling),
                    (false, Some(detail)) => {
                        set_link(&shared, Connection::Reconnecting, Some(detail))
                    }
                    (false, None) if current(&shared) == Connection::Connecting => {}
                    (false, None) => set_conn(&shared, Connection::Offline),
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
