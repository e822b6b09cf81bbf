//! The Vidsync wire protocol (v1): the types that cross the network between
//! `vidsync-server` and its clients, and the rules that every party checks the
//! same way — which paths are acceptable, what a content hash looks like, what
//! an error body says.
//!
//! This crate does no I/O and knows nothing of HTTP or Socket.IO transports;
//! the server and the client own those. `docs/protocol.md` is the prose twin
//! of these types.

pub mod chunking;
mod error;
mod hash;
mod path;
mod types;

pub use error::{ConflictEntry, ErrorBody, ErrorCode, ErrorDetail};
pub use hash::{ContentHash, HashError};
pub use path::{
    is_bidi_control, is_zero_width, PathError, ProjectPath, MAX_COMPONENT_BYTES, MAX_PATH_BYTES,
};
pub use types::{
    check_id, Change, ChangeError, EventsPage, Health, Invite, Limits, Op, Origin, Presence,
    Present, Project, ProjectEvent, RawChange, Role, SocketUpdate, SubscribeAck, SubscribeRequest,
    UpdateAck, UpdateRequest, UpdateResponse, MAX_ID_BYTES,
};

/// Socket.IO event a client emits to join a project's room.
pub const EV_SUBSCRIBE: &str = "subscribe:project";
/// Socket.IO event a client emits to leave a project's room.
pub const EV_UNSUBSCRIBE: &str = "unsubscribe:project";
/// Socket.IO event a client emits to append changes (v2), with an ack.
pub const EV_FILES_UPDATE: &str = "files:update";
/// Socket.IO event the server emits for every appended event.
pub const EV_PROJECT_EVENT: &str = "project:event";
/// Socket.IO event the server emits to a project's room when who is
/// subscribed changes (v2): a [`Presence`].
pub const EV_PROJECT_PRESENCE: &str = "project:presence";

/// Name of the Socket.IO room that carries a project's events.
pub fn room_name(project_id: &str) -> String {
    format!("project:{project_id}")
}

/// Largest accepted JSON request body.
pub const MAX_JSON_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Most changes in one `files/update` request.
pub const MAX_CHANGES_PER_REQUEST: usize = 10_000;
/// Default and largest page size of `GET events`.
pub const DEFAULT_EVENTS_PAGE: u32 = 1_000;
pub const MAX_EVENTS_PAGE: u32 = 10_000;
/// Default largest blob a server accepts.
pub const DEFAULT_MAX_BLOB_BYTES: u64 = 1024 * 1024 * 1024;
/// Largest incoming Socket.IO message.
pub const MAX_SOCKET_MESSAGE_BYTES: u64 = 1024 * 1024;

/// Most chunk ids in one `chunks/missing` request.
pub const MAX_MISSING_IDS: usize = 10_000;
/// Largest body of `POST chunks` (frames) and of a `chunks/fetch` answer.
pub const MAX_CHUNK_BATCH_BYTES: u64 = 32 * 1024 * 1024;
/// Most chunk ids in one `chunks/fetch` request.
pub const MAX_FETCH_IDS: usize = 1_024;
/// Bytes of a frame's header: 32-byte raw BLAKE3 hash, u32 big-endian length.
pub const FRAME_HEADER_BYTES: usize = 36;
/// Most manifests in one `POST manifests` request.
pub const MAX_MANIFESTS_PER_REQUEST: usize = 1_000;
/// Default and largest page of `GET tree`.
pub const DEFAULT_TREE_PAGE: u32 = 1_000;
pub const MAX_TREE_PAGE: u32 = 10_000;
