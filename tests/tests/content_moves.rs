//! Content v2 between two real clients, counted in bytes and requests (the
//! figures each client's HTTP layer reports, see `vidsync_e2e::moves`),
//! not times: a 1 MiB overwrite inside a 64 MiB file moves at most 3 MiB
//! in all; a rename of a 16 MiB file moves at most 64 KiB; 200 small files
//! go up in at most 10 requests.

use vidsync_e2e::moves::{bytes, measure, overwrite};
use vidsync_e2e::{linked_pair, TestServer};

const FLAGS: &[&str] = &["--debounce-ms", "200"];

#[tokio::test]
async fn a_1mib_overwrite_inside_a_64mib_file_moves_at_most_3mib() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (a, b, _id, _api) = linked_pair(&server, "send-receive").await?;
    a.write("video/big.bin", &bytes(1, 64 << 20))?;
    let file = a.folder.join("video/big.bin");
    let m = measure(&a, &b, FLAGS, || async {
        overwrite(&file, 32 << 20, &bytes(2, 1 << 20))
    })
    .await?;
    println!("1 MiB edit in 64 MiB: {m:?}; {} bytes in all", m.bytes());
    assert!(m.bytes() <= 3 << 20, "the edit moved {} bytes", m.bytes());
    assert!(m.a.sent >= 1 << 20, "the edit's bytes must go up: {m:?}");
    assert!(
        m.b.received >= 1 << 20,
        "the edit's bytes must come down: {m:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_rename_of_a_16mib_file_moves_at_most_64kib() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (a, b, _id, _api) = linked_pair(&server, "send-receive").await?;
    a.write("raw/take1.mov", &bytes(3, 16 << 20))?;
    let root = a.folder.clone();
    let m = measure(&a, &b, FLAGS, || async move {
        std::fs::create_dir_all(root.join("final"))?;
        std::fs::rename(root.join("raw/take1.mov"), root.join("final/take1.mov"))?;
        Ok(())
    })
    .await?;
    println!("rename of 16 MiB: {m:?}; {} bytes in all", m.bytes());
    assert!(b.folder.join("final/take1.mov").exists());
    assert!(!b.folder.join("raw/take1.mov").exists());
    assert!(
        m.bytes() <= 64 << 10,
        "the rename moved {} bytes",
        m.bytes()
    );
    Ok(())
}

#[tokio::test]
async fn two_hundred_small_files_go_up_in_at_most_10_requests() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let (a, b, _id, _api) = linked_pair(&server, "send-receive").await?;
    a.write("seed.txt", b"settled")?;
    // The 200 files arrive at once: written beside the folder, on the same
    // disk, and their ten directories moved in. Written in place, they
    // arrived over as long as the disk took: on a slow moment of this
    // machine (0.6 ms a file in /tmp) that was longer than the debounce's
    // grain, so the engine rightly sent them as they came, in more batches
    // (12 requests), and the test measured the disk, not the batching.
    let staging = a
        .folder
        .parent()
        .ok_or_else(|| anyhow::anyhow!("the folder has no parent"))?
        .join("staging");
    for i in 0..200 {
        let dir = staging.join(format!("d{}", i % 10));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("f{i}.txt")), bytes(100 + i, 1024))?;
    }
    let m = measure(&a, &b, FLAGS, || async {
        for d in 0..10 {
            let name = format!("d{d}");
            std::fs::rename(staging.join(&name), a.folder.join(&name))?;
        }
        Ok(())
    })
    .await?;
    println!("200 small files: {m:?}");
    assert!(
        m.a.requests <= 10,
        "A made {} requests for 200 files",
        m.a.requests
    );
    assert!(m.a.sent >= 200 * 1024, "every file's bytes went up: {m:?}");
    Ok(())
}
