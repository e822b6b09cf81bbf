//! `AppError`: every way a request can fail, as causes that keep their
//! source. [`AppError::detail`] is the one place that maps a cause to a code
//! and the `{code, message, ...}` object (of an HTTP error body, see
//! [`AppError::into_response`], or of a socket ack), and the one place that
//! logs internal failures (with their cause, which the client never sees).
//! Constructors only describe; they do not log.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use vidsync_protocol::{ErrorBody, ErrorCode, ErrorDetail};

use crate::db::DbError;
use crate::event_log::AppendError;
use crate::numbering::Conflicts;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A refusal of the request itself (4xx): its code and what to fix.
    #[error("{message}")]
    Refused { code: ErrorCode, message: String },
    /// A stale `base_hash`: 409 with the conflicts list.
    #[error("{}", .0.message)]
    Conflict(Conflicts),
    /// The disk is full (SQLite or the blob store): 507, nothing stored.
    #[error("disk full while {context}: {source}")]
    StorageFull {
        context: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("database: {0}")]
    Db(#[source] DbError),
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError::Refused {
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, m)
    }
    pub fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, m)
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, m)
    }
    pub fn unprocessable(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unprocessable, m)
    }
    pub fn too_large(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::PayloadTooLarge, m)
    }

    /// An I/O failure of the server's own files; a full disk is told apart.
    pub fn io(context: &'static str, source: std::io::Error) -> Self {
        if is_storage_full(&source) {
            AppError::StorageFull {
                context,
                source: Box::new(source),
            }
        } else {
            AppError::Io { context, source }
        }
    }

    /// The protocol code this error is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::Refused { code, .. } => *code,
            AppError::Conflict(_) => ErrorCode::Conflict,
            AppError::StorageFull { .. } => ErrorCode::InsufficientStorage,
            AppError::Db(_) | AppError::Io { .. } => ErrorCode::Internal,
        }
    }
}

/// ENOSPC / EDQUOT, however std names them.
pub fn is_storage_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
        || matches!(e.raw_os_error(), Some(28) | Some(122))
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        if e.is_storage_full() {
            AppError::StorageFull {
                context: "writing the database",
                source: Box::new(e),
            }
        } else {
            AppError::Db(e)
        }
    }
}

impl From<AppendError> for AppError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Conflict(c) => AppError::Conflict(c),
            AppendError::Db(e) => e.into(),
        }
    }
}

impl AppError {
    /// The `error` object of the answer (HTTP body or socket ack); logs
    /// internal failures, whose cause the client never sees.
    pub fn detail(&self) -> ErrorDetail {
        let code = self.code();
        match self {
            AppError::Refused { message, .. } => ErrorBody::new(code, message.clone()).error,
            AppError::Conflict(c) => {
                let mut b = ErrorBody::new(code, c.message.clone());
                b.error.conflicts = Some(c.entries.clone());
                b.error
            }
            AppError::StorageFull { .. } => {
                tracing::error!(error = %self, "refused: disk full");
                ErrorBody::new(
                    code,
                    "the server's disk is full; nothing was stored, try again later",
                )
                .error
            }
            AppError::Db(_) | AppError::Io { .. } => {
                tracing::error!(error = %self, "internal error");
                ErrorBody::new(code, "internal server error").error
            }
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let code = self.code();
        let status =
            StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            error: self.detail(),
        };
        let mut resp = (status, Json(body)).into_response();
        let retry_after = match code {
            ErrorCode::RateLimited => Some("1"),
            ErrorCode::InsufficientStorage => Some("30"),
            _ => None,
        };
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(secs));
        }
        resp
    }
}

/// Response middleware for every route of ours: an error answer made by
/// something other than [`AppError`] (axum's 405, tower-http's 416, ...)
/// gets the protocol's JSON error body, keeping its status and headers
/// (`Allow`, `Content-Range`).
pub async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            ErrorCode::MethodNotAllowed,
            "this method is not allowed on this resource (see Allow)",
        ),
        StatusCode::RANGE_NOT_SATISFIABLE => (
            ErrorCode::RangeNotSatisfiable,
            "the requested range is outside the content (see Content-Range)",
        ),
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, "not found"),
        StatusCode::PAYLOAD_TOO_LARGE => (ErrorCode::PayloadTooLarge, "request body too large"),
        s if s.is_client_error() => (ErrorCode::BadRequest, "the request was refused"),
        _ => (ErrorCode::Internal, "internal server error"),
    };
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_vec(&ErrorBody::new(code, message)).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(body))
}
