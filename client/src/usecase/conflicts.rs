//! The conflicts list and its three answers. A conflict copy
//! (`name.sync-conflict-<stamp>-<client>.ext`, see [`crate::conflict`])
//! holds the local version that lost; the path itself holds the version
//! that won. Resolving is plain file work in the folder — the watcher sends
//! it on like any other change:
//! - keep mine: the copy's bytes replace the path, the copy goes;
//! - keep theirs: the copy goes;
//! - keep both: both files stay; the copy stops counting as a conflict.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Result, UseCaseError};
use crate::state::LocalState;
use crate::{Config, Engine};

/// One conflict copy and the path it is a copy of.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictCopy {
    /// The copy, relative to the folder.
    pub copy: String,
    /// The path it conflicts with, relative to the folder.
    pub original: String,
}

/// Which version a resolved conflict keeps.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Keep {
    /// The copy (the local version that lost).
    Mine,
    /// The path as it is (the version that won).
    Theirs,
    /// Both, as two files.
    Both,
}

/// The path a conflict copy name stands for: `a/b.sync-conflict-…-c.txt`
/// → `a/b.txt`.
pub fn original_of(copy: &str) -> Option<String> {
    let (dir, name) = match copy.rfind('/') {
        Some(i) => (&copy[..=i], &copy[i + 1..]),
        None => ("", copy),
    };
    let at = name.find(".sync-conflict-")?;
    let stem = &name[..at];
    let rest = &name[at + ".sync-conflict-".len()..];
    // The stamp, client id and counter hold no dot: what follows one is the extension.
    let ext = rest.find('.').map(|i| &rest[i..]).unwrap_or("");
    Some(format!("{dir}{stem}{ext}"))
}

async fn with_state<T>(
    dir: &Path,
    engine: Option<&Engine>,
    f: impl AsyncFnOnce(&LocalState) -> Result<T>,
) -> Result<T> {
    match engine {
        Some(e) => f(&e.local_state()).await,
        None => {
            let state = LocalState::open(dir).await?;
            let out = f(&state).await;
            state.close().await;
            out
        }
    }
}

/// The project's conflict copies that are still in its folder.
pub async fn list(
    dir: &Path,
    engine: Option<&Engine>,
    project_id: &str,
) -> Result<Vec<ConflictCopy>> {
    let cfg = Config::load(dir)?;
    let link = super::history::project_for(&cfg, Some(project_id), Path::new("/"))?;
    with_state(dir, engine, async |state| {
        Ok(state
            .conflicts(project_id)
            .await?
            .into_iter()
            .filter(|c| link.path.join(c).exists())
            .filter_map(|copy| original_of(&copy).map(|original| ConflictCopy { copy, original }))
            .collect())
    })
    .await
}

/// Resolves one conflict copy of the project (it must be in [`list`]).
pub async fn resolve(
    dir: &Path,
    engine: Option<&Engine>,
    project_id: &str,
    copy: &str,
    keep: Keep,
) -> Result<ConflictCopy> {
    let cfg = Config::load(dir)?;
    let link = super::history::project_for(&cfg, Some(project_id), Path::new("/"))?;
    let Some(found) = list(dir, engine, project_id)
        .await?
        .into_iter()
        .find(|c| c.copy == copy)
    else {
        return Err(UseCaseError::NoConflict(copy.to_string()));
    };
    let (from, to) = (link.path.join(&found.copy), link.path.join(&found.original));
    let folder_err = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| UseCaseError::Folder { what, path, source }
    };
    match keep {
        Keep::Mine => std::fs::rename(&from, &to).map_err(folder_err("replace", &to))?,
        Keep::Theirs => std::fs::remove_file(&from).map_err(folder_err("remove", &from))?,
        Keep::Both => {}
    }
    with_state(dir, engine, async |state| {
        Ok(state.remove_conflict(project_id, &found.copy).await?)
    })
    .await?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::original_of;

    #[test]
    fn a_copy_name_gives_back_its_original() {
        assert_eq!(
            original_of("docs/f.sync-conflict-20261206-053000-c_1a2b.txt").as_deref(),
            Some("docs/f.txt")
        );
        assert_eq!(
            original_of("f.tar.sync-conflict-20261206-053000-c_1a2b-2.gz").as_deref(),
            Some("f.tar.gz")
        );
        assert_eq!(
            original_of("Makefile.sync-conflict-20261206-053000-c_1a2b").as_deref(),
            Some("Makefile")
        );
        assert_eq!(original_of("plain.txt"), None);
    }
}
