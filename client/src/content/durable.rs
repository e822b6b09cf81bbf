//! Group commit for built files. A version is written to its temp file,
//! made durable, then renamed over its target, so a crash never leaves a
//! half-written file under the real name. Made durable one `fsync` at a
//! time, a join of 10,000 small files on a journaled ext4 spent about half
//! its time in fsync (one journal commit each). On Linux, builds that finish
//! at about the same time share one `syncfs(2)` of their file system
//! instead: a flush that begins after a file's bytes were written covers
//! that file. `syncfs` reports a failed write-back since Linux 5.8.
//! Elsewhere each file is `fsync`ed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Makes built files durable, sharing flushes per file system.
#[derive(Clone, Default)]
pub struct Syncer {
    /// One queue per file system (`st_dev`): a flush of one covers only it.
    queues: Arc<Mutex<HashMap<u64, Arc<Queue>>>>,
}

#[derive(Default)]
struct Queue {
    /// Files asked for so far (each takes the next number once its bytes
    /// are written).
    asked: AtomicU64,
    /// Every file numbered up to this is durable.
    done: AtomicU64,
    /// One flush at a time; the others wait, then see whether it covered them.
    turn: tokio::sync::Mutex<()>,
}

impl Syncer {
    /// Returns once `file`'s written bytes (`len` of them) are on disk.
    /// A file bigger than one chunk gets its own `fsync`: its own bytes
    /// are most of the flush, and a `syncfs` would also write out whatever
    /// else is dirty on that file system.
    pub async fn sync(&self, file: std::fs::File, len: u64) -> std::io::Result<()> {
        if len > vidsync_protocol::chunking::CHUNK_MAX as u64 {
            return blocking(move || file.sync_all()).await;
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::MetadataExt;
            let dev = file.metadata()?.dev();
            let queue = self
                .queues
                .lock()
                .ok()
                .map(|mut q| q.entry(dev).or_default().clone());
            let Some(queue) = queue else {
                return blocking(move || file.sync_all()).await;
            };
            let ticket = queue.asked.fetch_add(1, Ordering::SeqCst) + 1;
            // Let the other builds polled with this one (a group applied
            // at once) write their files first: the first flush then covers
            // them all, instead of this file alone and a second for the rest.
            tokio::task::yield_now().await;
            let _turn = queue.turn.lock().await;
            if queue.done.load(Ordering::SeqCst) >= ticket {
                return Ok(());
            }
            // Everything numbered so far was written before this flush begins.
            let upto = queue.asked.load(Ordering::SeqCst);
            blocking(move || rustix::fs::syncfs(&file).map_err(std::io::Error::from)).await?;
            queue.done.fetch_max(upto, Ordering::SeqCst);
            Ok(())
        }
        #[cfg(not(target_os = "linux"))]
        {
            blocking(move || file.sync_all()).await
        }
    }
}

async fn blocking(f: impl FnOnce() -> std::io::Result<()> + Send + 'static) -> std::io::Result<()> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Many files synced at once all come back done, and each one's bytes
    /// are whole (what a flush covers is checked by the disk-full and
    /// kill tests end to end; here: no caller is left waiting or skipped
    /// before a flush that began after its write).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_synced_at_once_share_flushes_and_all_return() {
        let dir = tempfile::tempdir().unwrap();
        let syncer = Syncer::default();
        let mut tasks = Vec::new();
        for i in 0..64 {
            let (syncer, path) = (syncer.clone(), dir.path().join(format!("f{i}")));
            tasks.push(tokio::spawn(async move {
                let mut f = std::fs::File::create(&path).unwrap();
                f.write_all(&[i as u8; 4096]).unwrap();
                syncer.sync(f, 4096).await.unwrap();
                path
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            let path = t.await.unwrap();
            assert_eq!(std::fs::read(path).unwrap(), vec![i as u8; 4096]);
        }
        #[cfg(target_os = "linux")]
        {
            let queues = syncer.queues.lock().unwrap();
            let q = queues.values().next().unwrap();
            assert_eq!(q.asked.load(Ordering::SeqCst), 64);
            assert_eq!(
                q.done.load(Ordering::SeqCst),
                64,
                "the last flush covered all"
            );
        }
    }
}
