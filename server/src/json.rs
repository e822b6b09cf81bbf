//! `ApiJson<T>`: a JSON body extractor whose every refusal is a protocol
//! error body (413 over the limit, 400 for anything that is not the expected
//! JSON), whatever the request's content type says.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::AppError;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let too_large = || {
            AppError::too_large(format!(
                "request body is over {} bytes",
                vidsync_protocol::MAX_JSON_BODY_BYTES
            ))
        };
        // Refuse on the announced length before reading (and before a
        // `100 Continue` invites the client to send it all).
        let announced = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if announced.is_some_and(|n| n > vidsync_protocol::MAX_JSON_BODY_BYTES) {
            return Err(too_large());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                AppError::bad_request(format!("could not read the request body: {rej}"))
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| AppError::bad_request(format!("invalid JSON body: {e}")))
    }
}
