//! Linking folders to projects: share (a new project), join (by invite
//! code, then the catch-up), invite, pause and resume, remove. Each saves
//! the config and, given the shell's running [`Engine`], starts or stops
//! the folder's loop to match.

use std::path::Path;

use super::catch_up::{catch_up, CatchUp, Progress};
use super::{api_of, folder_path, Result, UseCaseError};
use crate::api::ApiError;
use crate::{Config, Engine, FolderLink, Mode};

/// Creates a project named `name` (default: the folder's name) and links
/// `folder` to it, `send-receive`. Returns the new link.
pub async fn share(
    dir: &Path,
    folder: &Path,
    name: Option<String>,
    engine: Option<&Engine>,
) -> Result<FolderLink> {
    let cfg = Config::load(dir)?;
    let api = api_of(&cfg)?;
    let path = folder_path(folder)?;
    let name = name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| {
        path.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "project".into())
    });
    let project = api.create_project(&name).await?;
    let link = FolderLink {
        project_id: project.id,
        name: project.name,
        path,
        mode: Mode::SendReceive,
        paused: false,
    };
    link_and_start(dir, link, engine).await
}

/// What [`join`] did.
#[derive(Debug, Clone)]
pub struct Joined {
    pub link: FolderLink,
    /// The catch-up download (none for a `send` folder).
    pub catch_up: Option<CatchUp>,
}

/// Accepts an invite, links `folder` to its project in `mode`, and (unless
/// `send`) brings the folder to the project's current state before the
/// folder's loop starts. The link stays saved even if the catch-up fails
/// part-way: the loop goes on from the saved cursor.
pub async fn join(
    dir: &Path,
    code: &str,
    folder: &Path,
    mode: Mode,
    engine: Option<&Engine>,
    progress: &dyn Progress,
) -> Result<Joined> {
    let mut cfg = Config::load(dir)?;
    let api = api_of(&cfg)?;
    let code = code.trim();
    let project = api.accept_invite(code).await.map_err(|e| match e {
        ApiError::Refused { status: 404, .. } => UseCaseError::UnknownInvite(code.to_string()),
        e => e.into(),
    })?;
    let link = FolderLink {
        project_id: project.id,
        name: project.name,
        path: folder_path(folder)?,
        mode,
        paused: false,
    };
    cfg.link(link.clone());
    cfg.save(dir)?;
    progress.linked(&link);
    let catch_up = match mode {
        Mode::Send => None,
        _ => {
            let state = engine.map(|e| e.local_state());
            Some(catch_up(dir, &cfg, &api, &link, state, progress).await?)
        }
    };
    if let Some(engine) = engine {
        engine.start_folder(link.clone()).await?;
    }
    Ok(Joined { link, catch_up })
}

/// A new invite code for a project this user owns.
pub async fn invite(dir: &Path, project_id: &str) -> Result<String> {
    let cfg = Config::load(dir)?;
    Ok(api_of(&cfg)?.create_invite(project_id).await?.code)
}

/// Pauses (or resumes) a linked folder: saved in the config, then its loop
/// is stopped (or started).
pub async fn set_paused(
    dir: &Path,
    project_id: &str,
    paused: bool,
    engine: Option<&Engine>,
) -> Result<FolderLink> {
    let mut cfg = Config::load(dir)?;
    let Some(link) = cfg.folders.iter_mut().find(|f| f.project_id == project_id) else {
        return Err(UseCaseError::NotLinked(project_id.to_string()));
    };
    link.paused = paused;
    let link = link.clone();
    cfg.save(dir)?;
    if let Some(engine) = engine {
        if paused {
            engine.stop_folder(project_id).await;
        } else {
            engine.start_folder(link.clone()).await?;
        }
    }
    Ok(link)
}

/// Unlinks a folder (its files stay where they are): its loop stops, the
/// link leaves the config. Returns the link it was.
pub async fn remove(dir: &Path, project_id: &str, engine: Option<&Engine>) -> Result<FolderLink> {
    let mut cfg = Config::load(dir)?;
    let Some(link) = cfg.folder(project_id).cloned() else {
        return Err(UseCaseError::NotLinked(project_id.to_string()));
    };
    if let Some(engine) = engine {
        engine.stop_folder(project_id).await;
    }
    cfg.folders.retain(|f| f.project_id != project_id);
    cfg.save(dir)?;
    Ok(link)
}

/// Saves a new link and starts its loop if an engine runs.
async fn link_and_start(
    dir: &Path,
    link: FolderLink,
    engine: Option<&Engine>,
) -> Result<FolderLink> {
    let mut cfg = Config::load(dir)?;
    cfg.link(link.clone());
    cfg.save(dir)?;
    if let Some(engine) = engine {
        engine.start_folder(link.clone()).await?;
    }
    Ok(link)
}
