//! `vidsync-server check` (issue 12): passes on a data dir a server made and
//! runs on, fails with a clear line on a missing, read-only or full one.
//! The read-only and full cases need root for `mount` (CI has it);
//! elsewhere they say why they skip.

use std::path::Path;
use std::process::Output;

use anyhow::Result;
use vidsync_e2e::tmpfs::mount_or_skip;
use vidsync_e2e::{server_bin, TestServer};

async fn check(data_dir: &Path, extra: &[&str]) -> Result<Output> {
    Ok(tokio::process::Command::new(server_bin())
        .arg("check")
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .await?)
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The lines of the report that failed.
fn failures(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.starts_with("FAIL")).collect()
}

#[tokio::test]
async fn passes_on_the_data_dir_of_a_running_server() -> Result<()> {
    let server = TestServer::start().await?;
    server.add_user("alice").await?;
    let out = check(server.data_dir(), &["--max-blob-bytes", "1048576"]).await?;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(failures(&stdout).is_empty(), "{stdout}");
    assert!(stdout.contains("quick_check ok"), "{stdout}");
    // Every migration this binary carries is applied: none pending.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("ok") && l.contains("migrations") && !l.contains("next start")),
        "{stdout}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    Ok(())
}

#[tokio::test]
async fn plain_http_on_a_public_address_is_a_warning_not_a_failure() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = check(
        dir.path(),
        &["--listen", "0.0.0.0:5000", "--max-blob-bytes", "1048576"],
    )
    .await?;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let warning = stdout
        .lines()
        .find(|l| l.starts_with("warn") && l.contains("config"))
        .unwrap_or_else(|| panic!("no config warning in {stdout}"));
    assert!(warning.contains("--tls-cert"), "{warning}");
    Ok(())
}

#[tokio::test]
async fn fails_clearly_on_a_missing_data_dir() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("not-there");
    let out = check(&missing, &[]).await?;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    let fails = failures(&stdout);
    assert!(
        fails
            .iter()
            .any(|l| l.contains("data dir") && l.contains("does not exist")),
        "{stdout}"
    );
    assert!(stderr.contains("check(s) failed"), "{stderr}");
    // check creates nothing.
    assert!(!missing.exists());
    Ok(())
}

#[tokio::test]
async fn fails_clearly_on_a_read_only_data_dir() -> Result<()> {
    let Some(fs) = mount_or_skip(16) else {
        return Ok(());
    };
    let mut server = TestServer::start_in(Some(fs.path()), &["--max-blob-bytes", "1024"]).await?;
    server.add_user("alice").await?;
    server.stop().await?;
    fs.remount_read_only()?;
    let out = check(fs.path(), &["--max-blob-bytes", "1024"]).await?;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    let fails = failures(&stdout);
    assert!(
        fails.iter().any(|l| l.contains("data dir")
            && l.contains("cannot write")
            && l.contains("Read-only")),
        "{stdout}"
    );
    assert!(stderr.contains("check(s) failed"), "{stderr}");
    Ok(())
}

#[tokio::test]
async fn fails_clearly_when_the_largest_upload_would_not_fit() -> Result<()> {
    let Some(fs) = mount_or_skip(8) else {
        return Ok(());
    };
    let out = check(fs.path(), &["--max-blob-bytes", "16777216"]).await?;
    let (stdout, _) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        failures(&stdout)
            .iter()
            .any(|l| l.contains("free space") && l.contains("--max-blob-bytes")),
        "{stdout}"
    );
    Ok(())
}

/// A data dir restored without `small-chunks.db` (it holds every chunk
/// under 16 KiB, the small files): `check` fails naming it, and the server
/// refuses to start, instead of serving every small file as missing.
#[tokio::test]
async fn a_data_dir_restored_without_the_small_chunk_table_is_refused() -> Result<()> {
    let mut server = TestServer::start().await?;
    server.add_user("alice").await?;
    server.stop().await?;
    let dir = server.data_dir().to_path_buf();
    let out = check(&dir, &[]).await?;
    assert!(out.status.success(), "{:?}", text(&out));
    for suffix in ["", "-wal", "-shm"] {
        let f = dir.join(format!("small-chunks.db{suffix}"));
        if f.exists() {
            std::fs::remove_file(f)?;
        }
    }

    let out = check(&dir, &[]).await?;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        failures(&stdout)
            .iter()
            .any(|l| l.contains("small-chunks.db is missing")),
        "{stdout}"
    );
    let serve = tokio::process::Command::new(server_bin())
        .arg("serve")
        .arg("--data-dir")
        .arg(&dir)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), serve)
        .await
        .map_err(|_| anyhow::anyhow!("the server started without small-chunks.db"))??;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("small-chunks.db is missing"), "{stderr}");
    assert!(
        !dir.join("small-chunks.db").exists(),
        "an empty table was made"
    );
    Ok(())
}
