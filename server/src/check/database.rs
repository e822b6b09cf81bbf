//! The database part of `check`: the file exists (or will be made), this
//! user can write it, it opens read-only, passes `quick_check`, and carries
//! no migration this binary does not know.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};

use super::{finding, Finding, Level};

/// Opens the database read-only: its integrity, and its migrations against
/// the ones this binary carries.
pub(super) async fn check(url: &str, data_dir: &Path) -> Vec<Finding> {
    const AREA: &str = "database";
    let opts = match SqliteConnectOptions::from_str(url) {
        Ok(o) if url.starts_with("sqlite:") => o,
        Ok(_) => {
            return vec![finding(
                Level::Problem,
                AREA,
                format!("{url:?}: only sqlite: URLs are supported"),
            )]
        }
        Err(e) => return vec![finding(Level::Problem, AREA, format!("{url:?}: {e}"))],
    };
    let file: PathBuf = opts.get_filename().to_path_buf();
    let known = crate::db::MIGRATOR.iter().count();
    if !file.exists() {
        let parent = file.parent().unwrap_or(Path::new("."));
        if !parent.is_dir() {
            // A missing data dir has its own finding already.
            if parent == data_dir {
                return Vec::new();
            }
            return vec![finding(
                Level::Problem,
                AREA,
                format!(
                    "{}: directory {} does not exist",
                    file.display(),
                    parent.display()
                ),
            )];
        }
        return vec![finding(
            Level::Ok,
            AREA,
            format!(
                "{} does not exist yet: the first start creates it ({known} migrations)",
                file.display()
            ),
        )];
    }
    let mut out = Vec::new();
    // `user add` run as root leaves root-owned files the service cannot write.
    let not_writable = not_writable(&file);
    if !not_writable.is_empty() {
        out.push(finding(
            Level::Problem,
            AREA,
            format!(
                "not writable by this user: {} (chown them to the user the server runs as)",
                not_writable.join(", ")
            ),
        ));
    }
    let opts = opts.read_only(true).create_if_missing(false);
    let mut conn = match opts.connect().await {
        Ok(c) => c,
        Err(e) => {
            out.push(finding(
                Level::Problem,
                AREA,
                format!("cannot open {}: {e}", file.display()),
            ));
            return out;
        }
    };
    out.push(integrity(&mut conn, &file).await);
    out.push(migrations(&mut conn).await);
    out.extend(small_chunks(&mut conn, data_dir).await);
    let _ = conn.close().await;
    out
}

/// The small-chunk table's file: there once the server made it (a restore
/// without it would serve every small file as missing), and writable.
async fn small_chunks(conn: &mut sqlx::SqliteConnection, data_dir: &Path) -> Vec<Finding> {
    let file = data_dir.join(crate::chunks::small::FILE);
    // No such table: a database from before the small-chunk table.
    let made = sqlx::query("SELECT 1 FROM store_layout WHERE name = ?")
        .bind(crate::chunks::small::MADE)
        .fetch_optional(&mut *conn)
        .await
        .is_ok_and(|r| r.is_some());
    if !file.exists() {
        return made
            .then(|| {
                finding(
                    Level::Problem,
                    "database",
                    format!(
                        "{} is missing: it holds every chunk under 16 KiB; put it back from the backup",
                        file.display()
                    ),
                )
            })
            .into_iter()
            .collect();
    }
    let not_writable = not_writable(&file);
    if not_writable.is_empty() {
        return Vec::new();
    }
    vec![finding(
        Level::Problem,
        "database",
        format!(
            "not writable by this user: {} (chown them to the user the server runs as)",
            not_writable.join(", ")
        ),
    )]
}

/// `file` and its `-wal` and `-shm`, those that exist and this user
/// cannot write.
fn not_writable(file: &Path) -> Vec<String> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| PathBuf::from(format!("{}{suffix}", file.display())))
        .filter(|f| f.exists())
        .filter(|f| rustix::fs::access(f, rustix::fs::Access::WRITE_OK).is_err())
        .map(|f| f.display().to_string())
        .collect()
}

async fn integrity(conn: &mut sqlx::SqliteConnection, file: &Path) -> Finding {
    match sqlx::query("PRAGMA quick_check")
        .fetch_all(&mut *conn)
        .await
    {
        Ok(rows) => {
            let lines: Vec<String> = rows
                .iter()
                .filter_map(|r| r.try_get::<String, _>(0).ok())
                .collect();
            if lines == ["ok"] {
                finding(
                    Level::Ok,
                    "database",
                    format!("{} opens; quick_check ok", file.display()),
                )
            } else {
                finding(
                    Level::Problem,
                    "database",
                    format!(
                        "{} is damaged (quick_check: {}): restore it from a backup",
                        file.display(),
                        lines.join("; ")
                    ),
                )
            }
        }
        Err(e) => finding(
            Level::Problem,
            "database",
            format!("cannot read {}: {e}", file.display()),
        ),
    }
}

/// Applied migrations against this binary's: pending ones are fine (serve
/// runs them), unknown or changed ones mean another version made the file.
async fn migrations(conn: &mut sqlx::SqliteConnection) -> Finding {
    const AREA: &str = "migrations";
    let rows = match sqlx::query("SELECT version, checksum, success FROM _sqlx_migrations")
        .fetch_all(&mut *conn)
        .await
    {
        Ok(rows) => rows,
        Err(e) if e.to_string().contains("no such table") => {
            return finding(
                Level::Ok,
                AREA,
                "none applied yet: the first start runs them",
            )
        }
        Err(e) => return finding(Level::Problem, AREA, format!("cannot read: {e}")),
    };
    let ours: Vec<_> = crate::db::MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .collect();
    let mut unknown = Vec::new();
    let mut changed = Vec::new();
    let mut failed = Vec::new();
    let mut applied = 0;
    for row in &rows {
        let version: i64 = row.try_get("version").unwrap_or_default();
        let checksum: Vec<u8> = row.try_get("checksum").unwrap_or_default();
        let success: bool = row.try_get("success").unwrap_or(false);
        if !success {
            failed.push(version);
        }
        match ours.iter().find(|m| m.version == version) {
            None => unknown.push(version),
            Some(m) if *m.checksum != checksum[..] => changed.push(version),
            Some(_) => applied += 1,
        }
    }
    if !unknown.is_empty() {
        return finding(
            Level::Problem,
            AREA,
            format!(
                "the database has migrations this binary does not know ({unknown:?}): \
                 a newer vidsync-server made it; upgrade, or restore a backup from before"
            ),
        );
    }
    if !changed.is_empty() || !failed.is_empty() {
        return finding(
            Level::Problem,
            AREA,
            format!("migrations changed {changed:?} or failed {failed:?}: restore a backup"),
        );
    }
    let pending = ours.len() - applied;
    if pending == 0 {
        finding(
            Level::Ok,
            AREA,
            format!("{applied} of {} applied", ours.len()),
        )
    } else {
        finding(
            Level::Ok,
            AREA,
            format!(
                "{applied} of {} applied; the next start runs the other {pending} \
                 (back up first: they are one-way)",
                ours.len()
            ),
        )
    }
}
