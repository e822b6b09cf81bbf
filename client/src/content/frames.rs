//! The chunk frame format of `POST chunks` and `chunks/fetch` answers
//! (`docs/protocol.md`): `[32-byte raw BLAKE3][u32 big-endian length][bytes]`,
//! back to back. Decoding checks every frame's bytes against its hash, so
//! nothing the server sends is taken on trust.

use bytes::Bytes;
use vidsync_protocol::chunking::CHUNK_MAX;
use vidsync_protocol::{ContentHash, FRAME_HEADER_BYTES};

/// A body of frames that does not decode, or bytes that are not what
/// their frame says.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame {0}: truncated")]
    Truncated(usize),
    #[error("frame {0}: {1} bytes, over the chunk limit")]
    TooLarge(usize, u32),
    #[error("frame {0}: its bytes do not hash to {1}")]
    Mismatch(usize, ContentHash),
}

/// Appends one frame to `out`.
pub fn encode(out: &mut Vec<u8>, hash: &ContentHash, bytes: &[u8]) {
    out.extend_from_slice(hash.as_bytes());
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The bytes a frame of `len` content bytes takes.
pub fn framed_len(len: u64) -> u64 {
    FRAME_HEADER_BYTES as u64 + len
}

/// Splits a body of frames, checking each one's hash.
pub fn decode(body: &Bytes) -> Result<Vec<(ContentHash, Bytes)>, FrameError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < body.len() {
        let i = out.len();
        let header = body
            .get(at..at + FRAME_HEADER_BYTES)
            .ok_or(FrameError::Truncated(i))?;
        let mut raw = [0u8; 32];
        raw.copy_from_slice(&header[..32]);
        let hash = ContentHash::from(blake3::Hash::from_bytes(raw));
        let mut len = [0u8; 4];
        len.copy_from_slice(&header[32..36]);
        let len = u32::from_be_bytes(len);
        if len > CHUNK_MAX {
            return Err(FrameError::TooLarge(i, len));
        }
        let start = at + FRAME_HEADER_BYTES;
        let end = start + len as usize;
        if end > body.len() {
            return Err(FrameError::Truncated(i));
        }
        let bytes = body.slice(start..end);
        if ContentHash::of(&bytes) != hash {
            return Err(FrameError::Mismatch(i, hash));
        }
        out.push((hash, bytes));
        at = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_damage_is_refused() {
        let parts: [&[u8]; 3] = [b"", b"one", &[7u8; 1000]];
        let mut body = Vec::new();
        for p in parts {
            encode(&mut body, &ContentHash::of(p), p);
        }
        let got = decode(&Bytes::from(body.clone())).unwrap();
        assert_eq!(got.len(), 3);
        for ((h, b), p) in got.iter().zip(parts) {
            assert_eq!(&b[..], p);
            assert_eq!(*h, ContentHash::of(p));
        }
        let mut bad = body.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            decode(&Bytes::from(bad)),
            Err(FrameError::Mismatch(2, _))
        ));
        body.truncate(body.len() - 1);
        assert!(matches!(
            decode(&Bytes::from(body)),
            Err(FrameError::Truncated(2))
        ));
    }
}
