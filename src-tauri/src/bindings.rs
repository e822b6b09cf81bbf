//! The TypeScript declarations of everything the page and this shell
//! exchange (the engine's events and statuses, the snapshot, the UI error,
//! the notice), generated from the Rust types with `ts-rs` into
//! `ui/src/generated/`. The test here fails when those files are stale;
//! `VIDSYNC_WRITE_BINDINGS=1 cargo test -p vidsync-desktop bindings`
//! rewrites them (`make bindings`).

use std::path::{Path, PathBuf};

use ts_rs::{Config, ExportError, TS};
use vidsync_client::{EngineEvent, FolderLink, Transport};

use crate::commands::Snapshot;
use crate::error::UiError;
use crate::tray::Notice;

/// Where the page keeps the generated files.
fn generated_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/generated")
}

/// Writes every shared type (and what it refers to) into `dir`, one
/// `<Type>.ts` each. Integers are JavaScript numbers: the page never sees
/// one past 2^53 (seqs and sizes stay far below).
fn export_into(dir: &Path) -> Result<(), ExportError> {
    let cfg = Config::new().with_large_int("number").with_out_dir(dir);
    EngineEvent::export_all(&cfg)?;
    Snapshot::export_all(&cfg)?;
    FolderLink::export_all(&cfg)?;
    Transport::export_all(&cfg)?;
    UiError::export_all(&cfg)?;
    Notice::export_all(&cfg)?;
    vidsync_client::usecase::conflicts::ConflictCopy::export_all(&cfg)?;
    vidsync_client::usecase::conflicts::Keep::export_all(&cfg)?;
    vidsync_client::usecase::overview::Overview::export_all(&cfg)?;
    Ok(())
}

/// The `.ts` files of `dir` and their text, sorted by name.
fn read_dir(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "ts"))
                .map(|p| {
                    let name = p.file_name().unwrap_or_default().to_string_lossy().into();
                    (name, std::fs::read_to_string(&p).unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn generated_types_are_current() {
    let target = generated_dir();
    if std::env::var_os("VIDSYNC_WRITE_BINDINGS").is_some() {
        let _ = std::fs::remove_dir_all(&target);
        export_into(&target).expect("write the bindings");
        return;
    }
    let fresh = tempfile::tempdir().expect("a temp dir");
    export_into(fresh.path()).expect("generate the bindings");
    let want = read_dir(fresh.path());
    let have = read_dir(&target);
    let names = |v: &[(String, String)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&have),
        names(&want),
        "ui/src/generated is stale (files differ): run `make bindings`"
    );
    for ((name, have), (_, want)) in have.iter().zip(&want) {
        assert_eq!(
            have, want,
            "ui/src/generated/{name} is stale: run `make bindings`"
        );
    }
}
