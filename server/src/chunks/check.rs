//! The start-up check of the chunk store, run before anything is served:
//! every stored chunk whose size is not the one its content has is
//! quarantined (see [`ChunkStore::quarantine`]). Cheap: a stat per chunk
//! file, the sizes of the small-chunk rows in one query per project.
//! The size a chunk must have comes from the manifests that list it (sizes
//! checked when the manifest was stored), else from the events that name it
//! as a one-chunk file; only a chunk neither names (uploaded, its manifest
//! or change not posted yet), or whose size no event gives, is read and
//! hashed (≤ 256 KiB each).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use vidsync_protocol::chunking::CHUNK_MAX;
use vidsync_protocol::ContentHash;

use super::content::manifest_chunk_sizes;
use super::store::ChunkStore;
use crate::blob_store::{hash_file, read_dirs, KnownSizes};
use crate::db::Db;
use crate::ServeError;

/// What a chunk of one project should be: its manifests' chunk sizes, and
/// the sizes events give each hash.
struct Expected {
    project: Option<String>,
    manifests: HashMap<ContentHash, u32>,
    events: Arc<KnownSizes>,
}

/// Checks every stored chunk; returns how many were quarantined.
pub async fn check_all(
    db: &Db,
    store: &ChunkStore,
    events: Arc<KnownSizes>,
    projects: &[String],
) -> Result<usize, ServeError> {
    let by_dir: HashMap<_, _> = projects.iter().map(|p| (store.project_dir(p), p)).collect();
    let data_dir = |e| ServeError::DataDir(store.root.clone(), e);
    let mut moved = 0;
    for dir in read_dirs(&store.root).map_err(data_dir)? {
        // A project's manifests, loaded one project at a time.
        let project = by_dir.get(&dir).map(|p| p.to_string());
        let manifests = match &project {
            Some(p) => manifest_chunk_sizes(db, p).await?,
            None => HashMap::new(),
        };
        let expected = Expected {
            project,
            manifests,
            events: events.clone(),
        };
        let store = store.clone();
        moved += tokio::task::spawn_blocking(move || store.check_dir(&dir, &expected))
            .await
            .map_err(std::io::Error::other)?
            .map_err(data_dir)?;
    }
    moved += check_rows(db, store, &events).await?;
    Ok(moved)
}

/// The same check of the small-chunk rows, project by project.
async fn check_rows(
    db: &Db,
    store: &ChunkStore,
    events: &Arc<KnownSizes>,
) -> Result<usize, ServeError> {
    let table = |e| ServeError::DataDir(store.root.clone(), e);
    let small = store.small.clone();
    let projects = tokio::task::spawn_blocking(move || small.projects())
        .await
        .map_err(std::io::Error::other)
        .map_err(table)?
        .map_err(table)?;
    let mut moved = 0;
    for project in projects {
        let expected = Expected {
            manifests: manifest_chunk_sizes(db, &project).await?,
            project: Some(project),
            events: events.clone(),
        };
        let store = store.clone();
        moved += tokio::task::spawn_blocking(move || store.check_rows(&expected))
            .await
            .map_err(std::io::Error::other)
            .map_err(table)?
            .map_err(table)?;
    }
    Ok(moved)
}

impl ChunkStore {
    /// Checks the chunks of one project directory (blocking).
    fn check_dir(&self, dir: &Path, expected: &Expected) -> std::io::Result<usize> {
        let mut moved = 0;
        for prefix_dir in read_dirs(dir)? {
            for entry in std::fs::read_dir(&prefix_dir)? {
                let path = entry?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let hash = name.parse::<ContentHash>().ok();
                let why = match &hash {
                    None => Some("its name is not a hash".to_string()),
                    Some(hash) => damage(&path, hash, expected)?,
                };
                if let Some(why) = why {
                    self.quarantine(&path, hash.as_ref(), &why)?;
                    moved += 1;
                }
            }
        }
        Ok(moved)
    }
}

impl ChunkStore {
    /// Checks the small-chunk rows of one project (blocking). A row whose
    /// size nothing explains is read and hashed.
    fn check_rows(&self, expected: &Expected) -> std::io::Result<usize> {
        let Some(project) = &expected.project else {
            return Ok(0);
        };
        let mut moved = 0;
        for row in self.small.list(project)? {
            let why = match explained(row.size, &row.hash, expected) {
                Some(why) => why,
                None => match self.small.get(project, &row.hash)? {
                    Some(bytes) => {
                        let got = ContentHash::of(&bytes);
                        (got != row.hash).then(|| format!("its {} bytes hash to {got}", row.size))
                    }
                    None => None,
                },
            };
            if let Some(why) = why {
                moved += usize::from(self.quarantine_row(project, &row.hash, &why)?);
            }
        }
        Ok(moved)
    }
}

/// What a chunk's size says: `Some(None)` whole, `Some(Some(why))` not
/// whole, `None` nothing says (its bytes decide).
fn explained(len: u64, hash: &ContentHash, expected: &Expected) -> Option<Option<String>> {
    if let Some(&want) = expected.manifests.get(hash) {
        return Some((len != want as u64).then(|| format!("{len} bytes, a manifest says {want}")));
    }
    let logged = expected
        .project
        .as_ref()
        .and_then(|p| expected.events.get(&(p.clone(), *hash)));
    if logged.is_some_and(|sizes| sizes.contains(&len)) {
        return Some(None);
    }
    (len > CHUNK_MAX as u64).then(|| Some(format!("{len} bytes, over the chunk limit")))
}

/// Why a stored chunk is not whole, if it is not.
fn damage(path: &Path, hash: &ContentHash, expected: &Expected) -> std::io::Result<Option<String>> {
    let len = std::fs::metadata(path)?.len();
    if let Some(found) = explained(len, hash, expected) {
        return Ok(found);
    }
    let got = hash_file(path)?;
    Ok((got != *hash).then(|| format!("its {len} bytes hash to {got}")))
}
