//! A subscriber that stops reading must not slow the others, and when it
//! reads again it gets every event it missed, in order, once: it falls far
//! more than the live channel holds (256 events) behind, so it has to catch
//! up from the log and hand over to live events again.

use std::time::Duration;

use serde_json::Value;
use vidsync_e2e::raw::RawSubscriber;
use vidsync_e2e::{create_change, TestServer};

/// Events posted while the slow subscriber does not read.
const BATCHES: usize = 4;
const PER_BATCH: usize = 1500;
/// Bounds a whole phase, not a speed: far above what it takes.
const DEADLINE: Duration = Duration::from_secs(120);

/// A path of about 4 KB (components of at most 255 bytes), so a few
/// thousand events overflow the kernel's socket buffers of a reader that
/// stopped, and the server's queue for it fills.
fn long_path(batch: usize, i: usize) -> String {
    let dir = vec!["d".repeat(250); 15].join("/");
    format!("{dir}/b{batch}-f{i}.txt")
}

async fn read_seqs(sub: &mut RawSubscriber, count: usize) -> Vec<u64> {
    let mut seqs = Vec::with_capacity(count);
    while seqs.len() < count {
        match sub.next_seq().await {
            Some(seq) => seqs.push(seq),
            None => break,
        }
    }
    seqs
}

#[tokio::test]
async fn a_stalled_subscriber_catches_up_in_order_and_does_not_slow_a_fast_one(
) -> anyhow::Result<()> {
    let server = TestServer::start_with(&["--rate-limit", "0"]).await?;
    let token = server.add_user("alice").await?;
    let api = server.api(&token);
    let id = api.new_project("slow").await?;
    let mut slow = RawSubscriber::subscribe(&server.url, &token, &id, 0).await?;
    let mut fast = RawSubscriber::subscribe(&server.url, &token, &id, 1).await?;
    let total = BATCHES * PER_BATCH;
    let fast_reader = tokio::spawn(async move {
        let seqs = read_seqs(&mut fast, total).await;
        (fast, seqs)
    });

    // The slow subscriber reads nothing while every batch is posted and the
    // fast one reads all of it.
    for batch in 0..BATCHES {
        let changes: Vec<Value> = (0..PER_BATCH)
            .map(|i| create_change(&long_path(batch, i), b"x", None))
            .collect();
        api.update(&id, "writer", changes).await?;
    }
    let (_fast, fast_seqs) = tokio::time::timeout(DEADLINE, fast_reader).await??;
    let expected: Vec<u64> = (1..=total as u64).collect();
    assert_eq!(fast_seqs.len(), total, "the fast subscriber was held up");
    assert!(
        fast_seqs == expected,
        "the fast subscriber's events are out of order"
    );

    // Now it reads: everything, in order, no gap, no duplicate.
    let slow_seqs = tokio::time::timeout(DEADLINE, read_seqs(&mut slow, total)).await?;
    let first_bad = slow_seqs
        .iter()
        .zip(&expected)
        .position(|(got, want)| got != want);
    assert_eq!(
        (slow_seqs.len(), first_bad),
        (total, None),
        "the slow subscriber's events: {} received, first out of place at {:?}",
        slow_seqs.len(),
        first_bad.map(|i| &slow_seqs[i.saturating_sub(2)..(i + 3).min(slow_seqs.len())])
    );

    // Live delivery goes on for it afterwards.
    api.update(&id, "writer", vec![create_change("after.txt", b"y", None)])
        .await?;
    let next = tokio::time::timeout(DEADLINE, slow.next_seq()).await?;
    assert_eq!(next, Some(total as u64 + 1));
    Ok(())
}
