//! The manifest check: sizes add up, every chunk is stored whole with its
//! size (a damaged one is quarantined and reported missing), and the chunks
//! streamed through BLAKE3 give the file's hash.

use vidsync_protocol::chunking::Manifest;

use super::store::ChunkStore;

/// `Ok(Err(why))` when the manifest is refused; `Err` on an I/O failure.
pub fn check_manifest(
    store: &ChunkStore,
    project_id: &str,
    m: &Manifest,
) -> std::io::Result<Result<(), String>> {
    if m.chunks.is_empty() {
        return Ok(Err("a manifest lists at least one chunk".into()));
    }
    let sum: u64 = m.chunks.iter().map(|c| c.size as u64).sum();
    if sum != m.size {
        return Ok(Err(format!(
            "its chunks add up to {sum} bytes, not {}",
            m.size
        )));
    }
    let mut missing = Vec::new();
    for c in &m.chunks {
        match store.size_of(project_id, &c.hash) {
            None => missing.push(c.hash.to_hex()),
            // Stored whole (its bytes hash to its name), then the entry's
            // size is wrong; else it was damaged (now quarantined): missing.
            Some(n) if n != c.size as u64 => match store.read_checked(project_id, &c.hash)? {
                Some(_) => {
                    return Ok(Err(format!(
                        "chunk {} is {n} bytes, not {}",
                        c.hash, c.size
                    )))
                }
                None => missing.push(c.hash.to_hex()),
            },
            Some(_) => {}
        }
    }
    if !missing.is_empty() {
        return Ok(Err(format!("missing chunks: {}", missing.join(", "))));
    }
    // Each chunk is checked as it is read: one damaged with its size intact
    // is quarantined and reported missing, so the sender uploads it again.
    let mut whole = blake3::Hasher::new();
    for c in &m.chunks {
        match store.read_checked(project_id, &c.hash)? {
            Some(bytes) => {
                whole.update(&bytes);
            }
            None => missing.push(c.hash.to_hex()),
        }
    }
    if !missing.is_empty() {
        return Ok(Err(format!("missing chunks: {}", missing.join(", "))));
    }
    let got = vidsync_protocol::ContentHash::from(whole.finalize());
    if got != m.hash {
        return Ok(Err(format!("its chunks hash to {got}, not {}", m.hash)));
    }
    Ok(Ok(()))
}
