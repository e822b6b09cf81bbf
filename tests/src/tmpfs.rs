//! A small real filesystem for disk-full tests: a tmpfs of a given size,
//! mounted on a fresh temp directory and unmounted when dropped. The tests
//! run as root (CI does); where `mount` is refused for lack of privilege the
//! caller gets [`MountError::NotPermitted`] and skips with that reason.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

/// A mounted tmpfs; unmounted (lazily, so a dying server cannot keep it
/// busy) and removed on drop.
pub struct Tmpfs {
    // Field order: unmount in Drop before the TempDir removes the directory.
    dir: Option<tempfile::TempDir>,
}

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mounting a tmpfs is not permitted here ({0}); run the tests as root")]
    NotPermitted(String),
    #[error("mount failed: {0}")]
    Failed(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Tmpfs {
    /// Mounts a tmpfs of `size_mib` MiB.
    pub fn mount(size_mib: u32) -> Result<Tmpfs, MountError> {
        let dir = tempfile::tempdir()?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size_mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
            let lower = err.to_lowercase();
            if lower.contains("permission denied")
                || lower.contains("not permitted")
                || lower.contains("must be superuser")
                || lower.contains("only root")
            {
                return Err(MountError::NotPermitted(err));
            }
            return Err(MountError::Failed(err));
        }
        Ok(Tmpfs { dir: Some(dir) })
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("mounted").path()
    }

    /// Makes the filesystem read-only (what a failing disk, or a mount an
    /// operator got wrong, looks like to the server).
    pub fn remount_read_only(&self) -> Result<()> {
        let out = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.path())
            .output()?;
        if !out.status.success() {
            bail!(
                "remount ro: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Writes `name` until the filesystem is full; returns the bytes written.
    pub fn fill(&self, name: &str) -> Result<u64> {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path().join(name))?;
        let chunk = vec![0xa5u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => total += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => bail!("filling the tmpfs: {e}"),
            }
        }
        // Top off the last partial page too.
        let mut small = [0u8; 512];
        small.fill(0x5a);
        while let Ok(n) = f.write(&small) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        Ok(total)
    }

    /// Free bytes left, as statvfs reports them (via `df`).
    pub fn free_bytes(&self) -> Result<u64> {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(self.path())
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let n = text
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("df said {text:?}"))?;
        Ok(n)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = Command::new("umount").arg("-l").arg(dir.path()).status();
            drop(dir);
        }
    }
}

/// A tmpfs of `size_mib` MiB, or `None` (and the reason on stderr) where
/// mounting is not permitted, so the calling test skips; any other mount
/// failure panics.
pub fn mount_or_skip(size_mib: u32) -> Option<Tmpfs> {
    match Tmpfs::mount(size_mib) {
        Ok(t) => Some(t),
        Err(e @ MountError::NotPermitted(_)) => {
            eprintln!("SKIPPED: {e}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}
