//! The pure part of an append: which change of a request gets which event.
//!
//! Given the project's head, the events already appended for the request's
//! `change_id`s and the current event of every path that carries a
//! `base_hash`, [`number`] decides — without I/O — which changes are retries
//! (their first event is returned again), which get the next seqs, and
//! whether any `base_hash` is stale (then the whole request is refused and
//! nothing gets a seq). The store (`db`) reads those facts and writes the
//! outcome inside one transaction; this module owns the rules.

use std::collections::HashMap;

use vidsync_protocol::{Change, ConflictEntry, ContentHash, Op, Origin, ProjectEvent, ProjectPath};

/// What the store knows, read inside the append transaction.
pub struct Facts<'a> {
    pub project_id: &'a str,
    pub origin: &'a Origin,
    /// Timestamp given to every fresh event of the request.
    pub now: &'a str,
    /// The project's newest seq before this request.
    pub head: u64,
    /// Events already appended for this client's `change_id`s.
    pub known: &'a HashMap<String, ProjectEvent>,
    /// The newest event of each path that carries a `base_hash` (absent:
    /// the path has no event at all).
    pub current: &'a HashMap<ProjectPath, ProjectEvent>,
}

/// A fresh event and the `change_id` it was made for (the idempotency key
/// stored with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fresh {
    pub event: ProjectEvent,
    pub change_id: Option<String>,
}

/// The outcome of numbering an accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbered {
    /// One event per change, in request order.
    pub events: Vec<ProjectEvent>,
    /// The events to insert (and broadcast), in seq order.
    pub fresh: Vec<Fresh>,
    /// The project's head after the request.
    pub head: u64,
}

/// A refused request: every path whose `base_hash` did not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflicts {
    pub entries: Vec<ConflictEntry>,
    pub message: String,
}

/// The version an event leaves its path at: its hash, `None` after a delete.
pub fn version_of(event: &ProjectEvent) -> Option<ContentHash> {
    match event.change.op {
        Op::Delete => None,
        Op::Create | Op::Update => event.change.hash,
    }
}

/// Numbers `changes` (see the module doc). Rules:
/// - a change whose `change_id` is known gets its first event back and is not
///   checked (a retry of an accepted change must not turn into a 409);
/// - a `change_id` repeated inside the request gets the first one's event;
/// - a `base_hash` is compared with the path's version after the earlier
///   changes of the same request, else after the log's newest event for it;
/// - any mismatch refuses the request: `Err` lists each stale path once, with
///   its newest event in the log (`None`: the path has no event).
pub fn number(facts: &Facts<'_>, changes: &[Change]) -> Result<Numbered, Conflicts> {
    let mut head = facts.head;
    let mut events: Vec<ProjectEvent> = Vec::with_capacity(changes.len());
    let mut fresh: Vec<Fresh> = Vec::new();
    let mut in_batch: HashMap<&str, usize> = HashMap::new();
    // Version of a path after the fresh changes so far, and which change set it.
    let mut batch_version: HashMap<&ProjectPath, (Option<ContentHash>, usize)> = HashMap::new();
    let mut conflicts: Vec<ConflictEntry> = Vec::new();
    let mut reasons: Vec<String> = Vec::new();

    for (i, change) in changes.iter().enumerate() {
        if let Some(cid) = change.change_id.as_deref() {
            if let Some(ev) = facts.known.get(cid) {
                events.push(ev.clone());
                continue;
            }
            if let Some(&j) = in_batch.get(cid) {
                events.push(events[j].clone());
                continue;
            }
            in_batch.insert(cid, events.len());
        }
        if let Some(base) = change.base_hash {
            let stored = facts.current.get(&change.path);
            let (now_at, set_by) = match batch_version.get(&change.path) {
                Some(&(v, j)) => (v, Some(j)),
                None => (stored.and_then(version_of), None),
            };
            if base != now_at && !conflicts.iter().any(|c| c.path == change.path) {
                reasons.push(describe(i, change, base, now_at, set_by));
                conflicts.push(ConflictEntry {
                    path: change.path.clone(),
                    current: stored.cloned(),
                });
            }
        }
        head += 1;
        let event = ProjectEvent {
            seq: head,
            project_id: facts.project_id.to_string(),
            change: Change {
                change_id: None,
                base_hash: None,
                ..change.clone()
            },
            origin: facts.origin.clone(),
            created_at: facts.now.to_string(),
        };
        batch_version.insert(&change.path, (version_of(&event), i));
        fresh.push(Fresh {
            event: event.clone(),
            change_id: change.change_id.clone(),
        });
        events.push(event);
    }

    if !conflicts.is_empty() {
        return Err(Conflicts {
            message: format!(
                "{} path(s) changed since your base version, nothing was appended: {}",
                conflicts.len(),
                reasons.join("; ")
            ),
            entries: conflicts,
        });
    }
    Ok(Numbered {
        events,
        fresh,
        head,
    })
}

fn describe(
    i: usize,
    change: &Change,
    base: Option<ContentHash>,
    now_at: Option<ContentHash>,
    set_by: Option<usize>,
) -> String {
    let show = |h: Option<ContentHash>| h.map_or("none".to_string(), |h| h.to_hex());
    let by = match set_by {
        Some(j) => format!(" (after changes[{j}] of this request)"),
        None => String::new(),
    };
    format!(
        "changes[{i}] {}: base {} but current {}{by}",
        change.path.as_str(),
        show(base),
        show(now_at)
    )
}

#[cfg(test)]
#[path = "numbering_tests.rs"]
mod tests;
