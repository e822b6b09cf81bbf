//! The scanner: the truth about a folder. The watcher only says where to
//! look; this module looks — ignore rules (`.vidsyncignore`, gitignore
//! syntax, plus `.git/` and the client's own temp files, always), size and
//! mtime against the index, then BLAKE3 for what may have changed — and
//! says what changed as protocol `Change`s.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use vidsync_protocol::chunking::{self, ChunkRef, Chunked};
use vidsync_protocol::{Change, ContentHash, Op, ProjectPath};

use crate::state::IndexEntry;

/// Name of the ignore file in a folder's root.
pub const IGNORE_FILE: &str = ".vidsyncignore";
/// Prefix of the client's own temporary files (never synced).
pub const TEMP_PREFIX: &str = ".vidsync-tmp-";

/// Whether a file name is one of this client's temp files (a version
/// being built): never synced, never looked at.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// The ignore rules of one folder.
#[derive(Clone)]
pub struct IgnoreRules {
    root: PathBuf,
    rules: Gitignore,
}

impl IgnoreRules {
    /// Reads `<root>/.vidsyncignore` if there is one. A broken line is
    /// logged and skipped; the rest still apply.
    pub fn load(root: &Path) -> IgnoreRules {
        let mut b = GitignoreBuilder::new(root);
        let file = root.join(IGNORE_FILE);
        if file.exists() {
            if let Some(e) = b.add(&file) {
                tracing::warn!(file = %file.display(), %e, "some ignore rules could not be read");
            }
        }
        let rules = b.build().unwrap_or_else(|e| {
            tracing::warn!(%e, "ignore rules unusable; ignoring only the built-in ones");
            Gitignore::empty()
        });
        IgnoreRules {
            root: root.to_path_buf(),
            rules,
        }
    }

    /// Whether a path (relative to the root) is left out of syncing.
    pub fn is_ignored(&self, rel: &Path, is_dir: bool) -> bool {
        for c in rel.components() {
            let s = c.as_os_str().to_string_lossy();
            if s == ".git" || is_temp_name(&s) {
                return true;
            }
        }
        self.rules
            .matched_path_or_any_parents(self.root.join(rel), is_dir)
            .is_ignore()
    }
}

/// One difference between a folder and the index: the change to queue
/// (None when only the index needs refreshing) and the new index entry
/// (None for a deleted file).
#[derive(Debug, Clone)]
pub struct Diff {
    pub path: ProjectPath,
    pub change: Option<Change>,
    pub entry: Option<IndexEntry>,
    /// The file's chunks when it has more than one (for the chunk index).
    pub chunks: Vec<ChunkRef>,
}

/// A file cut into content-defined chunks, with its whole-file BLAKE3,
/// in one pass (memory flat whatever its size).
pub fn cut_file(path: &Path) -> std::io::Result<Chunked> {
    cut_file_keeping_small(path).map(|(c, _)| c)
}

/// [`cut_file`], also giving the bytes of a file that is one chunk (read
/// whole anyway), so a sender need not read it again.
pub fn cut_file_keeping_small(path: &Path) -> std::io::Result<(Chunked, Option<Vec<u8>>)> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len <= chunking::CHUNK_MIN as u64 {
        // Most files of a project: read whole into a buffer their size (a
        // cut streams through 512 KiB of buffers, allocated per file).
        let mut data = Vec::with_capacity(len as usize + 1);
        (&mut f)
            .take(chunking::CHUNK_MIN as u64 + 1)
            .read_to_end(&mut data)?;
        if let Some(c) = chunking::one_chunk(&data) {
            return Ok((c, Some(data)));
        }
        // It grew since: cut what was read and the rest.
        return Ok((chunking::cut(std::io::Cursor::new(data).chain(f))?, None));
    }
    Ok((
        chunking::cut(std::io::BufReader::with_capacity(256 * 1024, f))?,
        None,
    ))
}

/// BLAKE3 of a file's bytes, read in chunks.
pub fn hash_file(path: &Path) -> std::io::Result<(ContentHash, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    // Sized to the file (it may grow: the loop reads to the end).
    let len = f.metadata()?.len();
    let mut buf = vec![0u8; (len as usize + 1).clamp(8 * 1024, 256 * 1024)];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hasher.finalize().into(), total))
}

/// Test help: sets `file`'s mtime to 2 s ago (older than any "just
/// written" window).
#[cfg(test)]
pub(crate) fn age(file: &Path) {
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(2);
    std::fs::File::options()
        .write(true)
        .open(file)
        .unwrap()
        .set_modified(old)
        .unwrap();
}

/// Whether a file still has the size and mtime its index entry recorded:
/// then it is taken to hold the entry's version, unread. An entry indexed
/// stale (mtime -1) never matches.
pub(crate) fn stat_matches(entry: &IndexEntry, meta: &std::fs::Metadata) -> bool {
    entry.size == meta.len() && entry.mtime_ns == mtime_ns(meta)
}

pub(crate) fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

fn mtime_rfc3339(ns: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(ns as i128)
        .ok()
        .map(crate::rfc3339)
}

fn new_change(path: &ProjectPath, op: Op, entry: Option<&IndexEntry>) -> Change {
    Change {
        path: path.clone(),
        op,
        hash: entry.map(|e| e.hash),
        size: entry.map(|e| e.size),
        mtime: entry.and_then(|e| mtime_rfc3339(e.mtime_ns)),
        change_id: Some(crate::random_hex(12)),
        base_hash: None,
    }
}

/// What looking at one path found (returned by value, used at once).
#[allow(clippy::large_enum_variant)]
enum Look {
    Same,
    Diff(Diff),
    /// Being written: size or mtime moved across the hash, or the last
    /// write is younger than the quiet period. Look again later.
    Unstable,
}

/// What a scan found: differences to act on, and paths to look at again.
#[derive(Debug, Default)]
pub struct Looked {
    pub diffs: Vec<Diff>,
    pub unstable: Vec<ProjectPath>,
}

impl Looked {
    fn push(&mut self, path: &ProjectPath, look: Look) {
        match look {
            Look::Same => {}
            Look::Diff(d) => self.diffs.push(d),
            Look::Unstable => self.unstable.push(path.clone()),
        }
    }
}

/// Whether a file was written within `quiet` of now (a future mtime counts
/// as old: waiting would not make it any older).
pub(crate) fn written_lately(mtime_ns: i64, quiet: std::time::Duration) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    let age = now - mtime_ns as i128;
    age >= 0 && age < quiet.as_nanos() as i128
}

/// Compares one path on disk with its index entry. A file is hashed only
/// once it is quiet, and its hash counts only if size and mtime stayed put
/// across the hash: a file being written is never taken for a version.
fn diff_one(
    root: &Path,
    path: &ProjectPath,
    known: Option<&IndexEntry>,
    quiet: std::time::Duration,
) -> Look {
    let full = path.under(root);
    let meta = match std::fs::symlink_metadata(&full) {
        Ok(m) if m.is_file() => Some(m),
        _ => None,
    };
    let Some(meta) = meta else {
        return match known {
            None => Look::Same,
            Some(_) => Look::Diff(Diff {
                path: path.clone(),
                change: Some(new_change(path, Op::Delete, None)),
                entry: None,
                chunks: Vec::new(),
            }),
        };
    };
    let mtime = mtime_ns(&meta);
    if known.is_some_and(|k| stat_matches(k, &meta)) {
        return Look::Same;
    }
    if written_lately(mtime, quiet) {
        return Look::Unstable;
    }
    let (hash, size, chunks) = match cut_file(&full) {
        Ok(c) if c.chunks.len() > 1 => (c.hash, c.size, c.chunks),
        Ok(c) => (c.hash, c.size, Vec::new()),
        Err(e) => {
            // Vanished or unreadable between stat and read: look again.
            tracing::debug!(path = %full.display(), %e, "could not hash");
            return Look::Unstable;
        }
    };
    let after = std::fs::symlink_metadata(&full);
    let stable =
        after.is_ok_and(|a| a.len() == size && mtime_ns(&a) == mtime && size == meta.len());
    if !stable {
        return Look::Unstable;
    }
    let entry = IndexEntry {
        size,
        mtime_ns: mtime,
        hash,
    };
    let op = match known {
        Some(k) if k.hash == hash => {
            return Look::Diff(Diff {
                path: path.clone(),
                change: None,
                entry: Some(entry),
                chunks,
            })
        }
        Some(_) => Op::Update,
        None => Op::Create,
    };
    Look::Diff(Diff {
        path: path.clone(),
        change: Some(new_change(path, op, Some(&entry))),
        entry: Some(entry),
        chunks,
    })
}

/// Every file under `root` that is not ignored, as project paths.
fn walk(root: &Path, under: &Path, rules: &IgnoreRules) -> BTreeSet<ProjectPath> {
    let mut out = BTreeSet::new();
    let walker = ignore::WalkBuilder::new(under)
        .standard_filters(false)
        .follow_links(false)
        .filter_entry({
            let root = root.to_path_buf();
            let rules = rules.clone();
            move |e| {
                let rel = e.path().strip_prefix(&root).unwrap_or(e.path());
                rel.as_os_str().is_empty()
                    || !rules.is_ignored(rel, e.file_type().is_some_and(|t| t.is_dir()))
            }
        })
        .build();
    for entry in walker.flatten() {
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        match ProjectPath::from_relative(rel) {
            Ok(p) => {
                out.insert(p);
            }
            Err(e) => {
                tracing::warn!(path = %entry.path().display(), %e, "cannot sync this name; skipped")
            }
        }
    }
    out
}

/// A full scan: every difference between the folder and the index.
pub fn scan(
    root: &Path,
    rules: &IgnoreRules,
    index: &HashMap<String, IndexEntry>,
    quiet: std::time::Duration,
) -> Looked {
    let on_disk = walk(root, root, rules);
    let gone: Vec<ProjectPath> = {
        let present: std::collections::HashSet<&str> = on_disk.iter().map(|p| p.as_str()).collect();
        index
            .keys()
            .filter(|p| !present.contains(p.as_str()))
            .filter_map(|p| ProjectPath::new(p.clone()).ok())
            .collect()
    };
    let all: Vec<ProjectPath> = on_disk.into_iter().chain(gone).collect();
    diff_all(root, &all, index, quiet)
}

/// Paths a thread of [`diff_all`] takes at least.
const PATHS_PER_THREAD: usize = 256;

/// [`diff_one`] for each path, in order. Many paths are split over the
/// cores: a look is mostly stats, reads and hashing of independent files,
/// and one thread left the other core idle while the peers waited for the
/// first change of a burst.
fn diff_all(
    root: &Path,
    paths: &[ProjectPath],
    index: &HashMap<String, IndexEntry>,
    quiet: std::time::Duration,
) -> Looked {
    let diff = |part: &[ProjectPath]| -> Vec<Look> {
        part.iter()
            .map(|p| diff_one(root, p, index.get(p.as_str()), quiet))
            .collect()
    };
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(paths.len() / PATHS_PER_THREAD)
        .max(1);
    let looks: Vec<Look> = match threads {
        1 => diff(paths),
        n => std::thread::scope(|s| {
            let parts: Vec<_> = paths
                .chunks(paths.len().div_ceil(n))
                .map(|part| (part, s.spawn(move || diff(part))))
                .collect();
            // A part whose thread panicked is looked at again here.
            parts
                .into_iter()
                .flat_map(|(part, t)| t.join().unwrap_or_else(|_| diff(part)))
                .collect()
        }),
    };
    let mut out = Looked::default();
    for (p, look) in paths.iter().zip(looks) {
        out.push(p, look);
    }
    out
}

/// The project paths of `paths` (absolute, under `root`) that can be
/// synced: what [`rescan`] looks at and below.
pub fn relative_paths(root: &Path, paths: &[PathBuf]) -> Vec<ProjectPath> {
    paths
        .iter()
        .filter_map(|abs| abs.strip_prefix(root).ok())
        .filter(|rel| !rel.as_os_str().is_empty())
        .filter_map(|rel| ProjectPath::from_relative(rel).ok())
        .collect()
}

/// Differences at the paths a watcher reported (files or directories,
/// absolute), including everything below a directory and index entries
/// below a path that is gone.
pub fn rescan(
    root: &Path,
    rules: &IgnoreRules,
    index: &HashMap<String, IndexEntry>,
    paths: &[PathBuf],
    quiet: std::time::Duration,
) -> Looked {
    let mut candidates: BTreeSet<ProjectPath> = BTreeSet::new();
    // Sorted, so what is under a path is one range, not a pass over all.
    let known: BTreeSet<&str> = index.keys().map(String::as_str).collect();
    for abs in paths {
        let Ok(rel) = abs.strip_prefix(root) else {
            continue;
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        // One stat per reported path.
        let resolved = std::fs::metadata(abs);
        let is_dir = resolved.as_ref().is_ok_and(|m| m.is_dir());
        if rules.is_ignored(rel, is_dir) {
            continue;
        }
        let Ok(p) = ProjectPath::from_relative(rel) else {
            tracing::warn!(path = %abs.display(), "cannot sync this name; skipped");
            continue;
        };
        if is_dir {
            candidates.extend(walk(root, abs, rules));
        } else {
            candidates.insert(p.clone());
        }
        let prefix = format!("{}/", p.as_str());
        let under = known
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .take_while(|k| k.starts_with(&prefix));
        for k in under {
            if let Ok(kp) = ProjectPath::new(k.to_string()) {
                candidates.insert(kp);
            }
        }
    }
    let candidates: Vec<ProjectPath> = candidates.into_iter().collect();
    diff_all(root, &candidates, index, quiet)
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: std::time::Duration = std::time::Duration::ZERO;

    /// An entry indexed as stale (mtime -1: just placed, or marked) is
    /// hashed at the next look: unchanged, only the index is refreshed; a
    /// same-size write that kept the stat is found.
    #[test]
    fn a_stale_entry_is_hashed_and_a_same_size_write_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let f = root.join("f.txt");
        std::fs::write(&f, "op 5 by 0").unwrap();
        age(&f);
        let p = ProjectPath::new("f.txt".to_string()).unwrap();
        let stale = |content: &str| IndexEntry {
            size: 9,
            mtime_ns: -1,
            hash: ContentHash::of(content.as_bytes()),
        };
        match diff_one(root, &p, Some(&stale("op 5 by 0")), Q) {
            Look::Diff(d) => {
                assert!(d.change.is_none(), "same content: only the index");
                assert!(d.entry.is_some_and(|e| e.mtime_ns > 0));
            }
            _ => panic!("a stale entry must be hashed"),
        }
        match diff_one(root, &p, Some(&stale("op 6 by 1")), Q) {
            Look::Diff(d) => assert_eq!(d.change.map(|c| c.op), Some(Op::Update)),
            _ => panic!("a same-size write must be found"),
        }
    }

    /// A small file read whole is cut as the streamed cut cuts it.
    #[test]
    fn a_file_is_cut_the_same_whatever_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let min = chunking::CHUNK_MIN as usize;
        for n in [0, 1, 1000, min, min + 1, 1 << 20] {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 + i / 251) as u8).collect();
            let f = dir.path().join(format!("f{n}"));
            std::fs::write(&f, &data).unwrap();
            assert_eq!(
                cut_file(&f).unwrap(),
                chunking::cut(&data[..]).unwrap(),
                "{n} bytes"
            );
            assert_eq!(hash_file(&f).unwrap(), (ContentHash::of(&data), n as u64));
            // A one-chunk file's bytes come with its cut, for a sender.
            let (c, bytes) = cut_file_keeping_small(&f).unwrap();
            assert_eq!(c, chunking::cut(&data[..]).unwrap());
            assert_eq!(bytes, (n <= min).then(|| data.clone()), "{n} bytes");
        }
    }

    #[test]
    fn a_file_written_lately_is_looked_at_again_not_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("growing"), "partial").unwrap();
        let rules = IgnoreRules::load(root);
        let index = HashMap::new();
        let quiet = std::time::Duration::from_secs(60);
        let looked = scan(root, &rules, &index, quiet);
        assert!(looked.diffs.is_empty());
        assert_eq!(looked.unstable.len(), 1);
        assert_eq!(looked.unstable[0].as_str(), "growing");
        // Once quiet, it is a version.
        let looked = scan(root, &rules, &index, Q);
        assert_eq!(looked.diffs.len(), 1);
        assert!(looked.unstable.is_empty());
    }

    #[test]
    fn scan_finds_creates_updates_deletes_and_honours_ignores() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/deep")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join("src/a.rs"), "a").unwrap();
        std::fs::write(root.join("src/deep/b.rs"), "b").unwrap();
        std::fs::write(root.join(".git/HEAD"), "ref").unwrap();
        std::fs::write(root.join("debug.log"), "noise").unwrap();
        std::fs::write(root.join(format!("{TEMP_PREFIX}x")), "tmp").unwrap();
        std::fs::write(root.join(IGNORE_FILE), "*.log\n").unwrap();
        let rules = IgnoreRules::load(root);

        let mut index = HashMap::new();
        let diffs = scan(root, &rules, &index, Q).diffs;
        let mut created: Vec<&str> = diffs.iter().map(|d| d.path.as_str()).collect();
        created.sort();
        assert_eq!(created, vec![IGNORE_FILE, "src/a.rs", "src/deep/b.rs"]);
        assert!(diffs
            .iter()
            .all(|d| d.change.as_ref().unwrap().op == Op::Create));
        for d in &diffs {
            index.insert(d.path.as_str().to_string(), d.entry.clone().unwrap());
        }
        assert!(
            scan(root, &rules, &index, Q).diffs.is_empty(),
            "nothing changed, nothing found"
        );

        std::fs::write(root.join("src/a.rs"), "a2").unwrap();
        std::fs::remove_file(root.join("src/deep/b.rs")).unwrap();
        let diffs = scan(root, &rules, &index, Q).diffs;
        let ops: HashMap<&str, Op> = diffs
            .iter()
            .map(|d| (d.path.as_str(), d.change.as_ref().unwrap().op))
            .collect();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops["src/a.rs"], Op::Update);
        assert_eq!(ops["src/deep/b.rs"], Op::Delete);
        let upd = diffs
            .iter()
            .find(|d| d.path.as_str() == "src/a.rs")
            .unwrap();
        assert_eq!(
            upd.change.as_ref().unwrap().hash,
            Some(ContentHash::of(b"a2"))
        );
    }

    #[test]
    fn rescan_of_a_removed_directory_deletes_what_was_below() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("d/e")).unwrap();
        std::fs::write(root.join("d/e/f"), "f").unwrap();
        let rules = IgnoreRules::load(root);
        let mut index = HashMap::new();
        for d in scan(root, &rules, &index, Q).diffs {
            index.insert(d.path.as_str().to_string(), d.entry.unwrap());
        }
        std::fs::remove_dir_all(root.join("d")).unwrap();
        let diffs = rescan(root, &rules, &index, &[root.join("d")], Q).diffs;
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].path.as_str(), "d/e/f");
        assert_eq!(diffs[0].change.as_ref().unwrap().op, Op::Delete);
    }

    /// A look at many paths is split over threads; what it finds is the
    /// same as one at a time, in path order, with nothing lost or doubled.
    #[test]
    fn a_look_at_many_paths_finds_each_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let n = PATHS_PER_THREAD * 3 + 7;
        for i in 0..n {
            let d = root.join(format!("d{}", i % 3));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(format!("f{i:04}")), i.to_string()).unwrap();
        }
        let rules = IgnoreRules::load(root);
        let mut index = HashMap::new();
        let first = scan(root, &rules, &index, Q);
        let paths: Vec<&str> = first.diffs.iter().map(|d| d.path.as_str()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(paths.len(), n);
        assert_eq!(paths, sorted, "in path order, each once");
        for d in first.diffs {
            index.insert(d.path.as_str().to_string(), d.entry.unwrap());
        }
        // Every third file changed, every fifth deleted: a look at the
        // three directories finds exactly those.
        let mut want = Vec::new();
        for i in 0..n {
            let f = root.join(format!("d{}/f{i:04}", i % 3));
            if i % 5 == 0 {
                std::fs::remove_file(&f).unwrap();
                want.push((format!("d{}/f{i:04}", i % 3), Op::Delete));
            } else if i % 3 == 0 {
                std::fs::write(&f, format!("{i} changed")).unwrap();
                want.push((format!("d{}/f{i:04}", i % 3), Op::Update));
            }
        }
        want.sort_by(|a, b| a.0.cmp(&b.0));
        let dirs: Vec<PathBuf> = (0..3).map(|d| root.join(format!("d{d}"))).collect();
        let looked = rescan(root, &rules, &index, &dirs, Q);
        let got: Vec<(String, Op)> = looked
            .diffs
            .iter()
            .map(|d| (d.path.as_str().to_string(), d.change.as_ref().unwrap().op))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn touching_without_changing_bytes_only_refreshes_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("x"), "same").unwrap();
        let rules = IgnoreRules::load(root);
        let mut index = HashMap::new();
        for d in scan(root, &rules, &index, Q).diffs {
            index.insert(d.path.as_str().to_string(), d.entry.unwrap());
        }
        let e = index.get_mut("x").unwrap();
        e.mtime_ns -= 1_000_000_000;
        let diffs = rescan(root, &rules, &index, &[root.join("x")], Q).diffs;
        assert_eq!(diffs.len(), 1);
        assert!(diffs[0].change.is_none());
    }
}
