//! The error the page sees from a command: `{kind, message}`, with `kind` a
//! short word the page can branch on and `message` a sentence for the user.

use serde::Serialize;
use vidsync_client::api::ApiError;
use vidsync_client::usecase::UseCaseError;

#[derive(Debug, Serialize, ts_rs::TS)]
pub struct UiError {
    pub kind: &'static str,
    pub message: String,
}

impl UiError {
    pub fn new(kind: &'static str, message: impl Into<String>) -> UiError {
        UiError {
            kind,
            message: message.into(),
        }
    }
}

impl From<vidsync_client::Error> for UiError {
    fn from(e: vidsync_client::Error) -> Self {
        UiError::new("client", e.to_string())
    }
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        match &e {
            ApiError::Network { .. } => UiError::new("network", e.to_string()),
            ApiError::Refused { status: 401, .. } => UiError::new(
                "auth",
                "The server refused the token. Check it in Settings.",
            ),
            ApiError::Refused { status: 404, .. } => UiError::new("not_found", e.to_string()),
            ApiError::Refused { .. } => UiError::new("refused", e.to_string()),
        }
    }
}

impl From<UseCaseError> for UiError {
    fn from(e: UseCaseError) -> Self {
        match e {
            UseCaseError::NotLoggedIn => UiError::new(
                "settings",
                "Not connected: enter the server URL and a token in Settings.",
            ),
            UseCaseError::TokenRefused(e) | UseCaseError::Api(e) => e.into(),
            UseCaseError::UnknownInvite(_) => {
                UiError::new("not_found", "Unknown or expired invite code.")
            }
            UseCaseError::NotLinked(_) => UiError::new("not_found", "No such folder."),
            UseCaseError::NoConflict(_) => {
                UiError::new("not_found", "That conflict is already resolved.")
            }
            UseCaseError::Folder { .. }
            | UseCaseError::NotInLinkedFolder(_)
            | UseCaseError::WhichProject(_) => UiError::new("path", e.to_string()),
            UseCaseError::Client(e) => e.into(),
        }
    }
}

pub type Res<T> = Result<T, UiError>;
