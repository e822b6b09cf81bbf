//! The chunk frame format: `[32-byte raw BLAKE3][u32 BE length][bytes]`,
//! back to back. Every frame is checked before any is stored.

use axum::body::Bytes;
use vidsync_protocol::chunking::CHUNK_MAX;
use vidsync_protocol::{ContentHash, ErrorCode, FRAME_HEADER_BYTES};

use crate::error::{AppError, AppResult};

pub struct Frame {
    pub hash: ContentHash,
    pub bytes: Bytes,
}

/// Splits and verifies a body of frames (hash, size bound, no truncation).
pub fn parse_frames(body: &Bytes) -> AppResult<Vec<Frame>> {
    let mut frames = Vec::new();
    let mut at = 0usize;
    while at < body.len() {
        let i = frames.len();
        if body.len() - at < FRAME_HEADER_BYTES {
            return Err(AppError::bad_request(format!(
                "frame {i} at byte {at}: truncated header ({} of {FRAME_HEADER_BYTES} bytes)",
                body.len() - at
            )));
        }
        let mut raw = [0u8; 32];
        raw.copy_from_slice(&body[at..at + 32]);
        let hash = ContentHash::from(blake3::Hash::from_bytes(raw));
        let mut len = [0u8; 4];
        len.copy_from_slice(&body[at + 32..at + 36]);
        let len = u32::from_be_bytes(len);
        if len > CHUNK_MAX {
            return Err(AppError::too_large(format!(
                "frame {i} ({hash}): {len} bytes, over the chunk limit of {CHUNK_MAX}"
            )));
        }
        let start = at + FRAME_HEADER_BYTES;
        let end = start + len as usize;
        if end > body.len() {
            return Err(AppError::bad_request(format!(
                "frame {i} ({hash}): truncated, {len} bytes announced, {} sent",
                body.len() - start
            )));
        }
        let bytes = body.slice(start..end);
        let got = ContentHash::from(blake3::hash(&bytes));
        if got != hash {
            return Err(AppError::new(
                ErrorCode::InvalidHash,
                format!("frame {i}: its bytes hash to {got}, not {hash}"),
            ));
        }
        frames.push(Frame { hash, bytes });
        at = end;
    }
    Ok(frames)
}
