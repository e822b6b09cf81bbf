//! Conflict copies: the name a kept local version takes
//! (`name.sync-conflict-YYYYMMDD-HHMMSS-<client>.ext`), keeping one, and
//! the answer to a 409: keep ours as a copy and take the current version.

use std::path::Path;

use vidsync_protocol::{Op, ProjectEvent, ProjectPath};

use crate::apply::{io, Applier, ApplyError};

/// The name a conflict copy of `path` takes.
pub fn conflict_name(path: &ProjectPath, client_id: &str, at: time::OffsetDateTime) -> String {
    let name = path.components().last().unwrap_or("file");
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], Some(&name[i + 1..])),
        _ => (name, None),
    };
    let stamp = format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        at.year(),
        at.month() as u8,
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    match ext {
        Some(ext) => format!("{stem}.sync-conflict-{stamp}-{client_id}.{ext}"),
        None => format!("{stem}.sync-conflict-{stamp}-{client_id}"),
    }
}

impl Applier {
    /// Renames the local file at `path` to a conflict copy beside it.
    pub(crate) async fn keep_local(
        &self,
        path: &ProjectPath,
        parent: &Path,
    ) -> Result<String, ApplyError> {
        let now = time::OffsetDateTime::now_utc();
        let mut name = conflict_name(path, &self.client_id, now);
        let mut n = 1;
        while parent.join(&name).exists() {
            name = format!("{}-{n}", conflict_name(path, &self.client_id, now));
            n += 1;
        }
        let from = path.under(&self.root);
        let to = parent.join(&name);
        std::fs::rename(&from, &to).map_err(io(&from))?;
        let rel = to
            .strip_prefix(&self.root)
            .unwrap_or(&to)
            .to_string_lossy()
            .to_string();
        self.state.add_conflict(&self.project_id, &rel).await?;
        tracing::warn!(path = %path, copy = %rel, "conflict: the local version is kept as a copy");
        Ok(rel)
    }

    /// After a 409 for `path`: if the file holds bytes other than the
    /// current version, keep them as a conflict copy (returned); then take
    /// the current version (`None` or a delete: the path is gone).
    pub async fn take_current(
        &self,
        path: &ProjectPath,
        current: Option<&ProjectEvent>,
    ) -> Result<Option<String>, ApplyError> {
        let want = current
            .filter(|e| e.change.op != Op::Delete)
            .and_then(|e| e.change.hash);
        let disk = self.disk_hash(path).await?.map(|d| d.0);
        let copy = match disk {
            Some(d) if Some(d) != want => {
                let parent = self.safe_parent(path)?;
                Some(self.keep_local(path, &parent).await?)
            }
            _ => None,
        };
        match current {
            // Planned as someone else's event: the file is (now) not ours.
            Some(ev) => {
                self.apply_as(ev, false, |_| {}).await?;
            }
            None => {
                self.state
                    .applied(&self.project_id, path, None, None)
                    .await?;
            }
        }
        Ok(copy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_names_keep_the_extension() {
        let at = time::macros::datetime!(2026-11-22 08:05:09 UTC);
        let p = |s: &str| ProjectPath::new(s).unwrap();
        assert_eq!(
            conflict_name(&p("a/report.final.txt"), "c_1", at),
            "report.final.sync-conflict-20261122-080509-c_1.txt"
        );
        assert_eq!(
            conflict_name(&p("Makefile"), "c_1", at),
            "Makefile.sync-conflict-20261122-080509-c_1"
        );
        assert_eq!(
            conflict_name(&p(".bashrc"), "c_1", at),
            ".bashrc.sync-conflict-20261122-080509-c_1"
        );
    }
}
