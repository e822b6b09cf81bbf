//! Request, response and event bodies of PROTOCOL.md, one Rust type each.

use serde::{Deserialize, Serialize};

use crate::{ContentHash, ErrorCode, ErrorDetail, HashError, PathError, ProjectPath};

/// What happened to a path.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Op {
    Create,
    Update,
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        match s {
            "create" => Some(Op::Create),
            "update" => Some(Op::Update),
            "delete" => Some(Op::Delete),
            _ => None,
        }
    }
}

/// A change as it arrives on the wire, before its fields are checked.
/// Missing or wrongly typed fields already fail here (400); values that are
/// well-formed JSON but unacceptable fail in [`Change::try_from`] (422).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RawChange {
    pub path: String,
    pub op: String,
    #[serde(default)]
    pub hash: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub mtime: Option<String>,
    #[serde(default)]
    pub change_id: Option<String>,
    /// Absent: no conflict check. `null`: the path must not exist now.
    /// A hash: the path's current version must be that one (else 409).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub base_hash: Option<Option<String>>,
}

/// Tells a field that is present (even as `null`) from one that is absent:
/// with `#[serde(default)]`, absent stays `None` and `null` becomes `Some(None)`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A checked change: its path is a [`ProjectPath`], `create`/`update` carry
/// a hash and a size, `delete` carries neither.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawChange")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub path: ProjectPath,
    pub op: Op,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub hash: Option<ContentHash>,
    pub size: Option<u64>,
    pub mtime: Option<String>,
    /// Present in requests (idempotency key); never in broadcast events.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub change_id: Option<String>,
    /// The version this change was made from (PROTOCOL.md v2, "Conflict
    /// check"): `None` = no check; `Some(None)` = the path did not exist;
    /// `Some(Some(h))` = it was at `h`. Never in broadcast events.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub base_hash: Option<Option<ContentHash>>,
}

/// Longest accepted `change_id` / `client_id`, in bytes.
pub const MAX_ID_BYTES: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("{0}")]
    Path(#[from] PathError),
    #[error("{0}")]
    Hash(#[from] HashError),
    #[error("{0}")]
    Unprocessable(String),
}

impl ChangeError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ChangeError::Path(_) => ErrorCode::InvalidPath,
            ChangeError::Hash(_) => ErrorCode::InvalidHash,
            ChangeError::Unprocessable(_) => ErrorCode::Unprocessable,
        }
    }
}

impl TryFrom<RawChange> for Change {
    type Error = ChangeError;

    fn try_from(raw: RawChange) -> Result<Self, Self::Error> {
        let unprocessable = |m: String| ChangeError::Unprocessable(m);
        let path = ProjectPath::new(raw.path)?;
        let op = Op::parse(&raw.op).ok_or_else(|| {
            unprocessable(format!(
                "unknown op {:?}: expected create, update or delete",
                raw.op
            ))
        })?;
        let hash = match (op, raw.hash) {
            (Op::Delete, Some(_)) => return Err(unprocessable("a delete carries no hash".into())),
            (Op::Delete, None) => None,
            (_, None) => return Err(unprocessable(format!("a {} needs a hash", op.as_str()))),
            (_, Some(h)) => Some(h.parse::<ContentHash>()?),
        };
        let size = match (op, raw.size) {
            (Op::Delete, Some(_)) => return Err(unprocessable("a delete carries no size".into())),
            (Op::Delete, None) => None,
            (_, None) => return Err(unprocessable(format!("a {} needs a size", op.as_str()))),
            (_, Some(s)) => Some(s),
        };
        if let Some(m) = &raw.mtime {
            time::OffsetDateTime::parse(m, &time::format_description::well_known::Rfc3339)
                .map_err(|_| unprocessable(format!("mtime {m:?} is not an RFC 3339 time")))?;
        }
        if let Some(id) = &raw.change_id {
            check_id("change_id", id).map_err(unprocessable)?;
        }
        let base_hash = match raw.base_hash {
            None => None,
            Some(None) => Some(None),
            Some(Some(h)) => Some(Some(h.parse::<ContentHash>()?)),
        };
        Ok(Change {
            path,
            op,
            hash,
            size,
            mtime: raw.mtime,
            change_id: raw.change_id,
            base_hash,
        })
    }
}

/// Checks a client-chosen identifier: 1–255 bytes, no control characters.
pub fn check_id(what: &str, id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(format!("{what} must be 1–{MAX_ID_BYTES} bytes"));
    }
    if id.chars().any(char::is_control) {
        return Err(format!("{what} must not contain control characters"));
    }
    Ok(())
}

/// Body of `POST /api/projects/{id}/files/update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateRequest<C = RawChange> {
    pub client_id: String,
    pub changes: Vec<C>,
}

/// Answer to `files/update`: one event per change, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateResponse {
    pub events: Vec<ProjectEvent>,
    pub head_seq: u64,
}

/// Payload of the socket's `files:update` (PROTOCOL.md v2, "Changes over
/// the socket"): the HTTP body plus the project it is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketUpdate<C = RawChange> {
    pub project_id: String,
    pub client_id: String,
    pub changes: Vec<C>,
}

impl<C> SocketUpdate<C> {
    /// The project, and the request as the HTTP route takes it.
    pub fn split(self) -> (String, UpdateRequest<C>) {
        (
            self.project_id,
            UpdateRequest {
                client_id: self.client_id,
                changes: self.changes,
            },
        )
    }
}

/// Acknowledgement of `files:update`: `{"ok": true, "events", "head_seq"}`
/// or `{"ok": false, "error": {...}}` (the HTTP error body's `error`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateAck {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<ProjectEvent>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

impl UpdateAck {
    pub fn ok(resp: UpdateResponse) -> Self {
        UpdateAck {
            ok: true,
            events: Some(resp.events),
            head_seq: Some(resp.head_seq),
            error: None,
        }
    }

    pub fn err(error: ErrorDetail) -> Self {
        UpdateAck {
            ok: false,
            events: None,
            head_seq: None,
            error: Some(error),
        }
    }

    /// The answer as the HTTP route gives it: the response, or the error.
    pub fn into_result(self) -> Result<UpdateResponse, Option<ErrorDetail>> {
        match (self.ok, self.events, self.head_seq) {
            (true, Some(events), Some(head_seq)) => Ok(UpdateResponse { events, head_seq }),
            _ => Err(self.error),
        }
    }
}

/// Who made an event.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Origin {
    pub client_id: String,
    pub user: String,
}

/// One entry of a project's event log.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectEvent {
    pub seq: u64,
    pub project_id: String,
    pub change: Change,
    pub origin: Origin,
    pub created_at: String,
}

/// Answer to `GET /api/projects/{id}/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventsPage {
    pub events: Vec<ProjectEvent>,
    pub head_seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    Owner,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Member => "member",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Project {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub role: Role,
    pub head_seq: u64,
    pub created_at: String,
    /// How many users are members (v2; absent from a v1 server's answer).
    #[serde(default)]
    pub members: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Invite {
    pub code: String,
    pub project_id: String,
    pub expires_at: String,
}

/// Payload of `subscribe:project`: a bare project id, or an object that
/// also names the last seq the client has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SubscribeRequest {
    Id(String),
    WithSince {
        project_id: String,
        #[serde(default)]
        since_seq: Option<u64>,
    },
}

impl SubscribeRequest {
    pub fn project_id(&self) -> &str {
        match self {
            SubscribeRequest::Id(id) => id,
            SubscribeRequest::WithSince { project_id, .. } => project_id,
        }
    }

    pub fn since_seq(&self) -> Option<u64> {
        match self {
            SubscribeRequest::Id(_) => None,
            SubscribeRequest::WithSince { since_seq, .. } => *since_seq,
        }
    }
}

/// Acknowledgement of `subscribe:project`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeAck {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
    /// Who is subscribed to the project now, the new subscriber included (v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<Vec<Present>>,
}

impl SubscribeAck {
    pub fn ok(head_seq: u64) -> Self {
        SubscribeAck {
            ok: true,
            head_seq: Some(head_seq),
            error: None,
            present: None,
        }
    }

    pub fn err(code: ErrorCode, message: impl Into<String>) -> Self {
        SubscribeAck {
            ok: false,
            head_seq: None,
            error: Some(ErrorDetail {
                code,
                message: message.into(),
                conflicts: None,
            }),
            present: None,
        }
    }
}

/// One socket subscribed to a project (v2 presence): its user, the
/// `client_id` it named in its handshake `auth` (if any), and since when.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Present {
    pub user: String,
    pub client_id: Option<String>,
    /// RFC 3339, UTC: when this socket subscribed.
    pub since: String,
}

/// Body of `project:presence`: everyone subscribed to the project now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub project_id: String,
    pub present: Vec<Present>,
}

/// Body of `GET /api/limits`: what this server accepts, so a client can
/// refuse early and say why (a browser cannot read a 413 sent before it has
/// finished sending the body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Limits {
    /// The largest file content `PUT blobs/{hash}` takes, in bytes.
    pub max_blob_bytes: u64,
}

/// Body of `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: String,
    pub connections: u64,
    pub db: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(v: serde_json::Value) -> Result<Change, ChangeError> {
        Change::try_from(serde_json::from_value::<RawChange>(v).unwrap())
    }

    #[test]
    fn checks_each_field_with_its_code() {
        let h = ContentHash::of(b"x").to_hex();
        assert!(raw(json!({"path":"a","op":"create","hash":h,"size":1})).is_ok());
        assert!(raw(json!({"path":"a","op":"delete"})).is_ok());
        assert!(raw(json!({"path":"a","op":"delete","hash":null,"size":null})).is_ok());
        let code = |v| raw(v).unwrap_err().code();
        assert_eq!(
            code(json!({"path":"../a","op":"create","hash":h,"size":1})),
            ErrorCode::InvalidPath
        );
        assert_eq!(
            code(json!({"path":"a","op":"create","hash":"ABC","size":1})),
            ErrorCode::InvalidHash
        );
        assert_eq!(
            code(json!({"path":"a","op":"move","hash":h,"size":1})),
            ErrorCode::Unprocessable
        );
        assert_eq!(
            code(json!({"path":"a","op":"create","size":1})),
            ErrorCode::Unprocessable
        );
        assert_eq!(
            code(json!({"path":"a","op":"update","hash":h})),
            ErrorCode::Unprocessable
        );
        assert_eq!(
            code(json!({"path":"a","op":"delete","hash":h})),
            ErrorCode::Unprocessable
        );
        assert_eq!(
            code(json!({"path":"a","op":"create","hash":h,"size":1,"mtime":"yesterday"})),
            ErrorCode::Unprocessable
        );
        assert_eq!(
            code(json!({"path":"a","op":"create","hash":h,"size":1,"change_id":""})),
            ErrorCode::Unprocessable
        );
    }

    #[test]
    fn event_change_omits_change_id() {
        let c = raw(json!({"path":"a","op":"delete","change_id":"c1"})).unwrap();
        let mut e = c.clone();
        e.change_id = None;
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            json!({"path":"a","op":"delete","hash":null,"size":null,"mtime":null})
        );
        assert_eq!(serde_json::to_value(&c).unwrap()["change_id"], "c1");
    }

    #[test]
    fn base_hash_absent_null_and_set_are_three_things() {
        let h = ContentHash::of(b"x");
        let c = raw(json!({"path":"a","op":"delete"})).unwrap();
        assert_eq!(c.base_hash, None);
        assert!(serde_json::to_value(&c).unwrap().get("base_hash").is_none());
        let c = raw(json!({"path":"a","op":"delete","base_hash":null})).unwrap();
        assert_eq!(c.base_hash, Some(None));
        assert_eq!(serde_json::to_value(&c).unwrap()["base_hash"], json!(null));
        let c = raw(json!({"path":"a","op":"delete","base_hash":h.to_hex()})).unwrap();
        assert_eq!(c.base_hash, Some(Some(h)));
        let back: Change = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert_eq!(
            raw(json!({"path":"a","op":"delete","base_hash":"nope"}))
                .unwrap_err()
                .code(),
            ErrorCode::InvalidHash
        );
    }

    #[test]
    fn subscribe_accepts_both_forms() {
        let a: SubscribeRequest = serde_json::from_value(json!("p1")).unwrap();
        assert_eq!((a.project_id(), a.since_seq()), ("p1", None));
        let b: SubscribeRequest =
            serde_json::from_value(json!({"project_id":"p2","since_seq":7})).unwrap();
        assert_eq!((b.project_id(), b.since_seq()), ("p2", Some(7)));
        assert!(serde_json::from_value::<SubscribeRequest>(json!(42)).is_err());
    }
}
