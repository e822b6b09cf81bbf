//! Content-defined chunking shared by client and server, so both cut a file
//! at the same places: FastCDC (2020 variant, normalization level 1, seed 0)
//! with [`CHUNK_MIN`] / [`CHUNK_AVG`] / [`CHUNK_MAX`]. Each chunk is named by
//! the BLAKE3 hash of its bytes; the file keeps its whole-file BLAKE3 hash as
//! its identity. A file of at most [`CHUNK_MIN`] bytes (the empty file too)
//! is one chunk, whose hash is therefore the file's hash.

use std::io::Read;

use fastcdc::v2020::{Error as CdcError, StreamCDC};

use crate::ContentHash;

/// Smallest chunk (except a file's last one).
pub const CHUNK_MIN: u32 = 16 * 1024;
/// Average chunk size FastCDC aims for.
pub const CHUNK_AVG: u32 = 64 * 1024;
/// Largest chunk; also the largest frame the chunk routes accept.
pub const CHUNK_MAX: u32 = 256 * 1024;

/// One chunk of a file: where it starts, how long it is, its BLAKE3 hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef {
    pub offset: u64,
    pub len: u32,
    pub hash: ContentHash,
}

/// A file cut into chunks, with the whole-file hash from the same pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunked {
    pub hash: ContentHash,
    pub size: u64,
    pub chunks: Vec<ChunkRef>,
}

/// Cuts `source` into chunks, calling `each` with every chunk's reference and
/// bytes in order (so a caller may store or send them as they come), and
/// returns the whole-file hash and chunk list. Memory stays flat: one
/// [`CHUNK_MAX`] buffer, whatever the file's size.
pub fn cut_each<R, F>(mut source: R, mut each: F) -> std::io::Result<Chunked>
where
    R: Read,
    F: FnMut(&ChunkRef, &[u8]) -> std::io::Result<()>,
{
    // Not generic below: fastcdc's `StreamCDC<R>` is compiled where `R` is
    // named, and here that is this (optimized) crate, not the caller's.
    cut_dyn(&mut source, &mut each)
}

type EachChunk<'a> = dyn FnMut(&ChunkRef, &[u8]) -> std::io::Result<()> + 'a;

fn cut_dyn(source: &mut dyn Read, each: &mut EachChunk<'_>) -> std::io::Result<Chunked> {
    let mut whole = blake3::Hasher::new();
    let mut chunks = Vec::new();
    let mut size = 0u64;
    for item in StreamCDC::new(source, CHUNK_MIN, CHUNK_AVG, CHUNK_MAX) {
        let data = item.map_err(|e| match e {
            CdcError::IoError(io) => io,
            other => std::io::Error::other(other.to_string()),
        })?;
        whole.update(&data.data);
        let chunk = ChunkRef {
            offset: data.offset,
            len: data.length as u32,
            hash: ContentHash::from(blake3::hash(&data.data)),
        };
        size += data.length as u64;
        each(&chunk, &data.data)?;
        chunks.push(chunk);
    }
    if chunks.is_empty() {
        // The empty file: one empty chunk, so every file has ≥ 1 chunk.
        let chunk = ChunkRef {
            offset: 0,
            len: 0,
            hash: ContentHash::from(blake3::hash(b"")),
        };
        each(&chunk, &[])?;
        chunks.push(chunk);
    }
    Ok(Chunked {
        hash: ContentHash::from(whole.finalize()),
        size,
        chunks,
    })
}

/// What [`cut`] makes of `data` when it is at most [`CHUNK_MIN`] bytes (one
/// chunk, the file's hash), without its zeroed [`CHUNK_MAX`] buffer: for
/// the small files a caller has read whole. `None` if `data` is bigger.
pub fn one_chunk(data: &[u8]) -> Option<Chunked> {
    if data.len() > CHUNK_MIN as usize {
        return None;
    }
    let hash = ContentHash::from(blake3::hash(data));
    Some(Chunked {
        hash,
        size: data.len() as u64,
        chunks: vec![ChunkRef {
            offset: 0,
            len: data.len() as u32,
            hash,
        }],
    })
}

/// [`cut_each`] without a per-chunk callback.
pub fn cut<R: Read>(source: R) -> std::io::Result<Chunked> {
    cut_each(source, |_, _| Ok(()))
}

/// One entry of a manifest: a chunk's hash and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ManifestEntry {
    pub hash: ContentHash,
    pub size: u32,
}

/// A file's content as its ordered chunks (`POST`/`GET …/manifests`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub hash: ContentHash,
    pub size: u64,
    pub chunks: Vec<ManifestEntry>,
}

/// Bytes of one packed manifest entry: 32-byte raw hash, u32 BE size.
pub const PACKED_ENTRY_BYTES: usize = 36;

/// A manifest's entries packed back to back (`[32-byte hash][u32 BE size]`):
/// how the server stores them, and the `application/octet-stream` answer
/// of `GET …/manifests/{hash}` (40% of the JSON's size).
pub fn pack_entries(entries: &[ManifestEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * PACKED_ENTRY_BYTES);
    for e in entries {
        out.extend_from_slice(e.hash.as_bytes());
        out.extend_from_slice(&e.size.to_be_bytes());
    }
    out
}

/// The entries of [`pack_entries`]; `None` if `bytes` is not a whole
/// number of entries.
pub fn unpack_entries(bytes: &[u8]) -> Option<Vec<ManifestEntry>> {
    if !bytes.len().is_multiple_of(PACKED_ENTRY_BYTES) {
        return None;
    }
    let entries = bytes
        .chunks_exact(PACKED_ENTRY_BYTES)
        .map(|e| {
            let mut h = [0u8; 32];
            h.copy_from_slice(&e[..32]);
            let mut n = [0u8; 4];
            n.copy_from_slice(&e[32..]);
            ManifestEntry {
                hash: ContentHash::from(blake3::Hash::from_bytes(h)),
                size: u32::from_be_bytes(n),
            }
        })
        .collect();
    Some(entries)
}

impl Chunked {
    /// This file's manifest.
    pub fn manifest(&self) -> Manifest {
        Manifest {
            hash: self.hash,
            size: self.size,
            chunks: self
                .chunks
                .iter()
                .map(|c| ManifestEntry {
                    hash: c.hash,
                    size: c.len,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn packed_entries_round_trip() {
        let c = cut(&bytes(9, 1 << 20)[..]).unwrap();
        let m = c.manifest();
        let packed = pack_entries(&m.chunks);
        assert_eq!(packed.len(), m.chunks.len() * PACKED_ENTRY_BYTES);
        assert_eq!(unpack_entries(&packed), Some(m.chunks));
        assert_eq!(unpack_entries(&packed[1..]), None);
    }

    #[test]
    fn small_and_empty_files_are_one_chunk_with_the_files_hash() {
        for n in [0usize, 1, 1000, CHUNK_MIN as usize] {
            let data = bytes(7, n);
            let c = cut(&data[..]).unwrap();
            assert_eq!(c.chunks.len(), 1, "{n} bytes");
            assert_eq!(c.chunks[0].hash, c.hash);
            assert_eq!(c.hash, ContentHash::from(blake3::hash(&data)));
            assert_eq!(c.size, n as u64);
            assert_eq!(one_chunk(&data), Some(c), "{n} bytes, read whole");
        }
        assert_eq!(one_chunk(&bytes(7, CHUNK_MIN as usize + 1)), None);
    }

    #[test]
    fn chunks_cover_the_file_within_the_bounds_and_an_edit_changes_few() {
        let mut data = bytes(42, 8 * 1024 * 1024);
        let a = cut(&data[..]).unwrap();
        assert_eq!(a.hash, ContentHash::from(blake3::hash(&data)));
        let mut at = 0u64;
        for (i, c) in a.chunks.iter().enumerate() {
            assert_eq!(c.offset, at);
            assert!(c.len <= CHUNK_MAX);
            if i + 1 < a.chunks.len() {
                assert!(c.len >= CHUNK_MIN);
            }
            let s = &data[c.offset as usize..(c.offset + c.len as u64) as usize];
            assert_eq!(c.hash, ContentHash::from(blake3::hash(s)));
            at += c.len as u64;
        }
        assert_eq!(at, data.len() as u64);
        // Overwrite 64 KiB in the middle: only chunks near it change.
        data[4_000_000..4_065_536].fill(0xAB);
        let b = cut(&data[..]).unwrap();
        let old: std::collections::HashSet<_> = a.chunks.iter().map(|c| c.hash).collect();
        let new = b.chunks.iter().filter(|c| !old.contains(&c.hash)).count();
        assert!(new <= 6, "{new} of {} chunks changed", b.chunks.len());
    }
}
