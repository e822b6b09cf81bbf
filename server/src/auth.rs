//! Who is calling: bearer tokens for HTTP (`Authorization: Bearer …` or
//! `X-Auth-Token`), the same tokens in the Socket.IO handshake. Tokens are
//! random, shown once, and stored only as their BLAKE3 hash.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::RngCore;

use crate::db::User;
use crate::error::AppError;
use crate::AppState;

/// A new random token: `vst_` and 64 hex characters (256 bits).
pub fn new_token() -> String {
    format!("vst_{}", random_hex(32))
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the store keeps of a token.
pub fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// Looks a presented token up; `None` for unknown or revoked ones.
pub async fn user_for_token(state: &AppState, token: &str) -> Result<Option<User>, AppError> {
    if token.is_empty() || token.len() > 256 {
        return Ok(None);
    }
    Ok(state.db.user_by_token_hash(&token_hash(token)).await?)
}

/// Per-user token buckets for `/api/...` requests.
pub type Limiter = governor::DefaultKeyedRateLimiter<i64>;

/// A limiter allowing `per_second` requests per user, bursts up to 5x.
pub fn limiter(per_second: u32) -> Option<Limiter> {
    let rate = std::num::NonZeroU32::new(per_second)?;
    let burst = std::num::NonZeroU32::new(per_second.saturating_mul(5)).unwrap_or(rate);
    Some(governor::RateLimiter::keyed(
        governor::Quota::per_second(rate).allow_burst(burst),
    ))
}

/// Takes one request from `user`'s bucket: 429 `rate_limited` when it is
/// empty. Every `/api/...` request and every socket `files:update` counts.
pub fn check_rate(state: &AppState, user: &User) -> Result<(), AppError> {
    if let Some(limiter) = &state.limiter {
        if limiter.check_key(&user.id).is_err() {
            return Err(AppError::new(
                vidsync_protocol::ErrorCode::RateLimited,
                "too many requests: slow down and retry",
            ));
        }
    }
    Ok(())
}

/// The authenticated caller of an `/api/...` request.
pub struct AuthUser(pub User);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let token = match (header("authorization"), header("x-auth-token")) {
            (Some(auth), _) => {
                let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
                if !scheme.eq_ignore_ascii_case("bearer") {
                    return Err(AppError::unauthorized(
                        "Authorization must be 'Bearer <token>'",
                    ));
                }
                rest.trim().to_string()
            }
            (None, Some(t)) => t.trim().to_string(),
            (None, None) => {
                return Err(AppError::unauthorized(
                    "missing token: send 'Authorization: Bearer <token>'",
                ))
            }
        };
        let Some(user) = user_for_token(state, &token).await? else {
            metrics::counter!("vidsync_token_refusals_total", "via" => "http").increment(1);
            return Err(AppError::unauthorized("unknown or revoked token"));
        };
        check_rate(state, &user)?;
        Ok(AuthUser(user))
    }
}
