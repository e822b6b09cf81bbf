//! `vidsync-server check`: what an operator runs before (or instead of)
//! starting the service to learn whether it can start and keep running —
//! the settings, the data directory, the database and its migrations, the
//! free space. It reads and probes, never repairs, migrates or creates
//! anything but a probe file it removes at once; `serve` does the rest.
//!
//! The result is a list of [`Finding`]s; the binary prints them and exits
//! non-zero when one is a [`Level::Problem`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::Config;

mod database;

/// Below this much free space (or a tenth of the filesystem) check warns.
const LOW_SPACE_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Fewer free inodes than this is a problem: every upload and chunk is a file.
const MIN_FREE_INODES: u64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    /// Works, but an operator should know (e.g. plain HTTP on a public address).
    Warning,
    /// The server would not start, or would fail soon.
    Problem,
}

impl Level {
    pub fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warn",
            Level::Problem => "FAIL",
        }
    }
}

/// One line of the report: what was looked at, and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    /// `config`, `data dir`, `database`, `free space`.
    pub area: &'static str,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<5} {:<11} {}",
            self.level.label(),
            self.area,
            self.message
        )
    }
}

/// The settings `serve` would start with that are not in [`Config`].
#[derive(Debug, Clone)]
pub struct Listen {
    pub addr: SocketAddr,
    /// `--tls-cert` and `--tls-key`, when given.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// Runs every check; a failed one does not stop the next.
pub async fn run(config: &Config, listen: &Listen) -> Vec<Finding> {
    let mut out = vec![listen_finding(listen)];
    if let Some((cert, key)) = &listen.tls {
        out.push(tls_finding(cert, key));
    }
    out.extend(data_dir(&config.data_dir));
    out.extend(database::check(&config.database_url(), &config.data_dir).await);
    out.extend(free_space(&config.data_dir, config.max_blob_bytes));
    out
}

fn finding(level: Level, area: &'static str, message: impl Into<String>) -> Finding {
    Finding {
        level,
        area,
        message: message.into(),
    }
}

fn listen_finding(listen: &Listen) -> Finding {
    let tls = listen.tls.is_some();
    let scheme = if tls { "https" } else { "http" };
    let at = format!("listens on {scheme}://{}", listen.addr);
    if tls || listen.addr.ip().is_loopback() {
        finding(Level::Ok, "config", at)
    } else {
        finding(
            Level::Warning,
            "config",
            format!(
                "{at}: plain HTTP on a non-loopback address sends tokens and files \
                 unencrypted; give --tls-cert/--tls-key or put a TLS reverse proxy in front"
            ),
        )
    }
}

/// The certificate and key load and go together, as `serve` would load them.
fn tls_finding(cert: &Path, key: &Path) -> Finding {
    match crate::tls::load(cert, key) {
        Ok(loaded) => finding(
            Level::Ok,
            "tls",
            format!(
                "{} ({} certificate(s)) and {} load and match",
                cert.display(),
                loaded.chain_len,
                key.display()
            ),
        ),
        Err(e) => finding(Level::Problem, "tls", e.to_string()),
    }
}

/// Exists, is a directory, and this user can create files in it and in
/// each of its subdirectories.
fn data_dir(dir: &Path) -> Vec<Finding> {
    const AREA: &str = "data dir";
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return vec![finding(
                Level::Problem,
                AREA,
                format!(
                    "{} does not exist: create it owned by the user the server runs as \
                     (e.g. install -d -o vidsync -g vidsync -m 0750 {})",
                    dir.display(),
                    dir.display()
                ),
            )]
        }
        Err(e) => {
            return vec![finding(
                Level::Problem,
                AREA,
                format!("{}: {e}", dir.display()),
            )]
        }
    };
    if !meta.is_dir() {
        return vec![finding(
            Level::Problem,
            AREA,
            format!("{} is not a directory", dir.display()),
        )];
    }
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(
        ["blobs", "chunks", "tmp", "quarantine"]
            .iter()
            .map(|d| dir.join(d))
            .filter(|d| d.is_dir()),
    );
    let mut unwritable = Vec::new();
    for d in &dirs {
        if let Err(e) = probe_write(d) {
            unwritable.push(format!("{}: {e}", d.display()));
        }
    }
    if unwritable.is_empty() {
        out.push(finding(
            Level::Ok,
            AREA,
            format!("{} is writable", dir.display()),
        ));
    } else {
        out.push(finding(
            Level::Problem,
            AREA,
            format!("cannot write in {}", unwritable.join("; ")),
        ));
    }
    if let Some(w) = root_warning(dir, &meta) {
        out.push(w);
    }
    out
}

/// Creates, syncs and removes a small file: what the server does with every
/// upload. (`access(2)` would not see a read-only mount or a full disk.)
fn probe_write(dir: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let path = dir.join(format!(".vidsync-check-{}", std::process::id()));
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut f| {
            f.write_all(b"vidsync check\n")?;
            f.sync_all()
        });
    let _ = std::fs::remove_file(&path);
    result
}

/// Root can write anywhere: "writable" then says nothing about the user the
/// service runs as.
fn root_warning(dir: &Path, meta: &std::fs::Metadata) -> Option<Finding> {
    use std::os::unix::fs::MetadataExt;
    let owner = meta.uid();
    if !rustix::process::geteuid().is_root() || owner == 0 {
        return None;
    }
    Some(finding(
        Level::Warning,
        "data dir",
        format!(
            "checked as root, but {} belongs to uid {owner}: run check as the service's user \
             (e.g. sudo -u vidsync vidsync-server check ...)",
            dir.display()
        ),
    ))
}

/// Room for at least one upload of the largest size allowed, and files to
/// put it in.
fn free_space(dir: &Path, max_blob_bytes: u64) -> Vec<Finding> {
    const AREA: &str = "free space";
    let st = match rustix::fs::statvfs(dir) {
        Ok(st) => st,
        // The data dir finding already says why.
        Err(_) if !dir.is_dir() => return Vec::new(),
        Err(e) => {
            return vec![finding(
                Level::Problem,
                AREA,
                format!("statvfs {}: {e}", dir.display()),
            )]
        }
    };
    let avail = st.f_bavail.saturating_mul(st.f_frsize);
    let total = st.f_blocks.saturating_mul(st.f_frsize);
    let mut out = Vec::new();
    let said = format!(
        "{} available of {} on {}",
        bytes(avail),
        bytes(total),
        dir.display()
    );
    if avail < max_blob_bytes {
        out.push(finding(
            Level::Problem,
            AREA,
            format!(
                "{said}: less than one upload of the largest size allowed \
                 (--max-blob-bytes {})",
                bytes(max_blob_bytes)
            ),
        ));
    } else if avail < LOW_SPACE_BYTES.min(total / 10) {
        out.push(finding(
            Level::Warning,
            AREA,
            format!("{said}: running low"),
        ));
    } else {
        out.push(finding(Level::Ok, AREA, said));
    }
    // Filesystems without inode limits report 0 files in all.
    if st.f_files > 0 && st.f_favail < MIN_FREE_INODES {
        out.push(finding(
            Level::Problem,
            AREA,
            format!("only {} free inodes (files) left", st.f_favail),
        ));
    }
    out
}

/// `1.5 GiB`, for people.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_reads_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn plain_http_off_loopback_is_a_warning() {
        let at = |s: &str, tls: bool| Listen {
            addr: s.parse().expect("address"),
            tls: tls.then(|| ("cert.pem".into(), "key.pem".into())),
        };
        assert_eq!(
            listen_finding(&at("127.0.0.1:5000", false)).level,
            Level::Ok
        );
        assert_eq!(listen_finding(&at("[::1]:5000", false)).level, Level::Ok);
        assert_eq!(
            listen_finding(&at("0.0.0.0:5000", false)).level,
            Level::Warning
        );
        assert_eq!(listen_finding(&at("0.0.0.0:5000", true)).level, Level::Ok);
    }

    #[tokio::test]
    async fn a_fresh_directory_passes_and_a_missing_one_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let listen = Listen {
            addr: "127.0.0.1:5000".parse().expect("address"),
            tls: None,
        };
        let mut cfg = Config::new(dir.path());
        cfg.max_blob_bytes = 1024;
        let found = run(&cfg, &listen).await;
        assert!(found.iter().all(|f| f.level < Level::Problem), "{found:?}");

        let cfg = Config::new(dir.path().join("missing"));
        let found = run(&cfg, &listen).await;
        assert!(
            found
                .iter()
                .any(|f| f.level == Level::Problem && f.message.contains("does not exist")),
            "{found:?}"
        );
    }
}
