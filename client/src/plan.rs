//! The planner: pure decisions, no I/O. Given what a folder knows about one
//! path (the file on disk, the version both sides last agreed on, what is
//! still queued to send) and one input (a remote event, or a local diff
//! found by the scanner), [`plan_remote`] and [`plan_local`] say what to do.
//! Executors (`apply`, `engine::upload`) do it, re-checking the disk first.
//!
//! Invariants, tested on every combination below:
//! - local bytes that are not the agreed version are never overwritten or
//!   removed without first being kept as a conflict copy;
//! - a `send` folder never changes its disk for a remote event; a `receive`
//!   folder never uploads;
//! - an echo (our own event, or a local diff equal to the agreed version)
//!   is never sent again.

use vidsync_protocol::{ContentHash, Op};

use crate::Mode;

/// What a folder knows about one path when it plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// The hash of the file on disk now (`None`: no file).
    pub disk: Option<ContentHash>,
    /// The version both sides last agreed on (`None`: none, or deleted).
    pub agreed: Option<ContentHash>,
}

/// A remote event as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remote {
    pub op: Op,
    pub hash: Option<ContentHash>,
    /// The event came from this client (an echo of its own post).
    pub own: bool,
}

/// What to do with a remote event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteAction {
    /// Nothing on disk to change; the event's version is now agreed.
    /// `recheck`: our own event, but the disk has moved on since (or a
    /// response was lost): look at the file again so the newer bytes are
    /// sent against this version.
    Agree { recheck: bool },
    /// The disk already holds the remote version: remember it as agreed.
    Adopt,
    /// Download the remote version and put it in place; first keep the
    /// local file as a conflict copy if `keep_local`.
    Download { keep_local: bool },
    /// Remove the file; or, if it holds unagreed bytes, keep it as a
    /// conflict copy instead.
    Delete { keep_local: bool },
    /// Not applied; kept visible with this reason (the cursor moves on).
    SetAside(&'static str),
    /// Nothing at all (a `send` folder hearing others' events).
    Ignore,
}

/// Decides what a remote event does to a path.
pub fn plan_remote(facts: Facts, ev: Remote, mode: Mode) -> RemoteAction {
    if ev.own {
        // Our own post coming back: it is agreed.
        return RemoteAction::Agree {
            recheck: facts.disk != ev.hash,
        };
    }
    if mode == Mode::Send {
        return RemoteAction::Ignore;
    }
    let unagreed = |d: ContentHash| facts.agreed != Some(d);
    match (ev.op, facts.disk) {
        (Op::Delete, None) => RemoteAction::Agree { recheck: false },
        (Op::Delete, Some(d)) => RemoteAction::Delete {
            keep_local: unagreed(d),
        },
        (_, _) if ev.hash.is_none() => RemoteAction::SetAside("the event names no content hash"),
        // A local delete loses to a remote write: the file comes back.
        (_, None) => RemoteAction::Download { keep_local: false },
        (_, Some(d)) if Some(d) == ev.hash => RemoteAction::Adopt,
        (_, Some(d)) => RemoteAction::Download {
            keep_local: unagreed(d),
        },
    }
}

/// What to do with a local difference the scanner found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalAction {
    /// Only remember the file in the index (nothing to send).
    IndexOnly,
    /// The disk is back at the agreed version: remember it and drop
    /// whatever is still queued for the path.
    Agreed,
    /// Queue this change. `base`: the `base_hash` to send (`None`: no
    /// check, `Some(None)`: the path must not exist, `Some(Some(h))`).
    Upload {
        op: Op,
        base: Option<Option<ContentHash>>,
    },
}

/// Decides what a local difference becomes. `now`: the file's hash
/// (`None`: gone); `last`: the newest version the server has or will have
/// from us (the hash of the newest queued change for the path if any, else
/// the agreed version).
pub fn plan_local(
    now: Option<ContentHash>,
    last: Option<ContentHash>,
    agreed: Option<ContentHash>,
    mode: Mode,
) -> LocalAction {
    if !mode.sends() {
        return LocalAction::IndexOnly;
    }
    if now.is_some() && now == agreed {
        return LocalAction::Agreed;
    }
    if now == last {
        // Nothing new beyond what is queued (or a delete of what never was).
        return LocalAction::IndexOnly;
    }
    let op = match (now, last) {
        (None, _) => Op::Delete,
        (Some(_), None) => Op::Create,
        (Some(_), Some(_)) => Op::Update,
    };
    let base = match mode {
        // A send-only folder is the source of truth: no check.
        Mode::Send => None,
        _ => Some(last),
    };
    LocalAction::Upload { op, base }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
