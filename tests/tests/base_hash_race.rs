//! The v2 conflict check against the real server binary: two clients that
//! post a version of the same path made from the same base at the same time.
//! Exactly one is appended; the other gets 409 `conflict` naming the winner.

use anyhow::Result;
use serde_json::{json, Value};
use vidsync_e2e::{create_change, TestServer};

fn with_base(mut change: Value, base: Option<&[u8]>) -> Value {
    change["base_hash"] = match base {
        None => Value::Null,
        Some(b) => json!(blake3::hash(b).to_hex().to_string()),
    };
    change
}

#[tokio::test]
async fn two_clients_same_path_same_base_one_wins_the_other_gets_409() -> Result<()> {
    let server = TestServer::start().await?;
    let alice = server.api(&server.add_user("alice").await?);
    let bob = server.api(&server.add_user("bob").await?);
    let project = alice.new_project("race").await?;
    alice.invite(&project, &bob).await?;

    for round in 0..20 {
        let path = format!("f{round}.txt");
        // Both start from "no file" on even rounds, from a shared version on odd ones.
        let base: Option<Vec<u8>> = if round % 2 == 1 {
            let seed = alice
                .update(&project, "seed", vec![create_change(&path, b"base", None)])
                .await?;
            assert_eq!(seed.0, 200, "{}", seed.1);
            Some(b"base".to_vec())
        } else {
            None
        };
        let a = with_base(create_change(&path, b"from alice", None), base.as_deref());
        let b = with_base(create_change(&path, b"from bob", None), base.as_deref());
        let (ra, rb) = tokio::join!(
            alice.update(&project, "alice-1", vec![a]),
            bob.update(&project, "bob-1", vec![b]),
        );
        let (ra, rb) = (ra?, rb?);
        let (win, lose) = match (ra.0, rb.0) {
            (200, 409) => (ra, rb),
            (409, 200) => (rb, ra),
            other => panic!(
                "round {round}: expected one 200 and one 409, got {other:?}: {} / {}",
                ra.1, rb.1
            ),
        };
        assert_eq!(lose.1["error"]["code"], "conflict");
        assert_eq!(lose.1["error"]["conflicts"][0]["path"], path.as_str());
        assert_eq!(
            lose.1["error"]["conflicts"][0]["current"],
            win.1["events"][0]
        );
    }
    // Nothing but the seeds and the winners is in the log.
    assert_eq!(alice.all_events(&project).await?.len(), 10 + 20);
    Ok(())
}
