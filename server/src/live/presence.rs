//! Who is subscribed to which project (PROTOCOL.md v2, "Presence"): one
//! entry per subscribed socket, with its user, the `client_id` it named in
//! its handshake and since when. Every change (subscribe, unsubscribe,
//! disconnect) sends the project's whole list to its room as
//! `project:presence`.
//!
//! The list is changed and sent under one lock, so the rooms see the lists
//! in the order the changes happened: a client may simply keep the last one.
//! A presence packet that cannot be queued to a socket (its queue full) is
//! dropped for that socket only; the next change sends the whole list again.

use std::collections::HashMap;

use socketioxide::socket::Sid;
use socketioxide::SocketIo;
use tokio::sync::Mutex;
use vidsync_protocol::{room_name, Presence, Present, EV_PROJECT_PRESENCE};

#[derive(Default)]
pub struct PresenceBoard {
    /// Project id → its subscribed sockets, in the order they subscribed.
    projects: Mutex<HashMap<String, Vec<(Sid, Present)>>>,
}

impl PresenceBoard {
    /// `sid` subscribed to `project_id` (again: it keeps its `since`);
    /// tells the room and returns the list for the subscriber's ack.
    pub async fn subscribed(
        &self,
        io: &SocketIo,
        project_id: &str,
        sid: Sid,
        user: &str,
        client_id: Option<&str>,
    ) -> Vec<Present> {
        let mut projects = self.projects.lock().await;
        let list = projects.entry(project_id.to_string()).or_default();
        if !list.iter().any(|(s, _)| *s == sid) {
            list.push((
                sid,
                Present {
                    user: user.to_string(),
                    client_id: client_id.map(str::to_string),
                    since: crate::clock::now_rfc3339(),
                },
            ));
        }
        let present: Vec<Present> = list.iter().map(|(_, p)| p.clone()).collect();
        announce(io, project_id, present.clone()).await;
        present
    }

    /// `sid` left `project_id`; tells the room if it was there.
    pub async fn unsubscribed(&self, io: &SocketIo, project_id: &str, sid: Sid) {
        let mut projects = self.projects.lock().await;
        if let Some(present) = remove(&mut projects, project_id, sid) {
            announce(io, project_id, present).await;
        }
    }

    /// `sid` is gone: every project it was in is told.
    pub async fn disconnected(&self, io: &SocketIo, sid: Sid) {
        let mut projects = self.projects.lock().await;
        let ids: Vec<String> = projects
            .iter()
            .filter(|(_, list)| list.iter().any(|(s, _)| *s == sid))
            .map(|(id, _)| id.clone())
            .collect();
        for project_id in ids {
            if let Some(present) = remove(&mut projects, &project_id, sid) {
                announce(io, &project_id, present).await;
            }
        }
    }
}

/// Takes `sid` out of `project_id`'s list; the list left, if it was there.
fn remove(
    projects: &mut HashMap<String, Vec<(Sid, Present)>>,
    project_id: &str,
    sid: Sid,
) -> Option<Vec<Present>> {
    let list = projects.get_mut(project_id)?;
    let before = list.len();
    list.retain(|(s, _)| *s != sid);
    if list.len() == before {
        return None;
    }
    let present = list.iter().map(|(_, p)| p.clone()).collect();
    if list.is_empty() {
        projects.remove(project_id);
    }
    Some(present)
}

async fn announce(io: &SocketIo, project_id: &str, present: Vec<Present>) {
    let body = Presence {
        project_id: project_id.to_string(),
        present,
    };
    if let Err(e) = io
        .to(room_name(project_id))
        .emit(EV_PROJECT_PRESENCE, &body)
        .await
    {
        tracing::debug!(project = %project_id, %e, "presence not queued to every socket");
    }
}
