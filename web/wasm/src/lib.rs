//! What the browser page needs of the protocol, compiled to WebAssembly
//! (browsers have no BLAKE3): a file's hash, streamed in pieces, and the
//! path rules — the same code the server and the clients run, so the page
//! and the server agree by construction. Built by `make web` with
//! `wasm-bindgen --target web` into `web/src/wasm/`.

use wasm_bindgen::prelude::*;

/// A BLAKE3 hash fed piece by piece (a large download or upload is never
/// held whole just to hash it).
#[wasm_bindgen]
pub struct Hasher(blake3::Hasher);

#[wasm_bindgen]
impl Hasher {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Hasher {
        Hasher(blake3::Hasher::new())
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The hash as the protocol writes it (64 lowercase hex digits).
    pub fn finalize(&self) -> String {
        vidsync_protocol::ContentHash::from(self.0.finalize()).to_hex()
    }
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher::new()
    }
}

/// The protocol hash of `bytes`.
#[wasm_bindgen]
pub fn hash_hex(bytes: &[u8]) -> String {
    vidsync_protocol::ContentHash::of(bytes).to_hex()
}

/// `path` as the protocol accepts it, or the reason it does not (the
/// server's own words).
#[wasm_bindgen]
pub fn check_path(path: &str) -> Result<String, String> {
    vidsync_protocol::ProjectPath::new(path)
        .map(|p| p.as_str().to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_hash_like_the_whole_and_paths_follow_the_protocol() {
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let mut h = Hasher::new();
        for piece in data.chunks(7919) {
            h.update(piece);
        }
        assert_eq!(h.finalize(), hash_hex(&data));
        assert_eq!(hash_hex(b""), blake3::hash(b"").to_hex().to_string());
        assert_eq!(check_path("a/b.txt").as_deref(), Ok("a/b.txt"));
        assert!(check_path("../etc/passwd").is_err());
        assert!(check_path("/abs").is_err());
    }
}
