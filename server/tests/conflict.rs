//! The v2 conflict check (`base_hash`, 409 `conflict`) through the real
//! router, in process.

mod common;

use common::{change, hash, App};
use serde_json::json;

async fn setup() -> (App, String, String) {
    let app = App::new().await;
    let token = app.user("alice").await;
    let project = app.project(&token, "p").await;
    (app, token, project)
}

#[tokio::test]
async fn a_stale_base_is_refused_with_the_current_event_and_nothing_appended() {
    let (app, t, p) = setup().await;
    let first = app
        .update(
            &t,
            &p,
            "a",
            vec![change("f.txt", "create", Some(b"A"), Some(None))],
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let winner = first.body["events"][0].clone();

    // Made from "no file" too, but the file exists now.
    let r = app
        .update(
            &t,
            &p,
            "b",
            vec![
                change("other.txt", "create", Some(b"o"), None),
                change("f.txt", "create", Some(b"B"), Some(None)),
            ],
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "conflict");
    let conflicts = r.body["error"]["conflicts"].as_array().expect("conflicts");
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0]["path"], "f.txt");
    assert_eq!(conflicts[0]["current"], winner);
    // All or none: other.txt was not appended either.
    assert_eq!(app.events(&t, &p).await.len(), 1);

    // Made from the current version: accepted.
    let r = app
        .update(
            &t,
            &p,
            "b",
            vec![change("f.txt", "update", Some(b"B"), Some(Some(b"A")))],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["events"][0]["seq"], 2);
    assert!(r.body["events"][0]["change"].get("base_hash").is_none());
}

#[tokio::test]
async fn a_delete_makes_the_version_null() {
    let (app, t, p) = setup().await;
    let ok = |r: &common::Reply| assert_eq!(r.status, 200, "{}", r.body);
    ok(&app
        .update(&t, &p, "a", vec![change("f", "create", Some(b"1"), None)])
        .await);
    ok(&app
        .update(
            &t,
            &p,
            "a",
            vec![change("f", "delete", None, Some(Some(b"1")))],
        )
        .await);
    // Stale: still thinks it holds "1".
    let r = app
        .update(
            &t,
            &p,
            "b",
            vec![change("f", "update", Some(b"2"), Some(Some(b"1")))],
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let current = &r.body["error"]["conflicts"][0]["current"];
    assert_eq!(current["seq"], 2);
    assert_eq!(current["change"]["op"], "delete");
    // A create made from "nothing" is right again.
    ok(&app
        .update(
            &t,
            &p,
            "b",
            vec![change("f", "create", Some(b"2"), Some(None))],
        )
        .await);
}

#[tokio::test]
async fn a_path_that_never_existed_conflicts_with_null_current() {
    let (app, t, p) = setup().await;
    let r = app
        .update(
            &t,
            &p,
            "a",
            vec![change("new", "update", Some(b"x"), Some(Some(b"y")))],
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body["error"]["conflicts"][0]["current"].is_null());
    assert_eq!(app.events(&t, &p).await.len(), 0);
}

#[tokio::test]
async fn earlier_changes_of_the_same_request_count() {
    let (app, t, p) = setup().await;
    let r = app
        .update(
            &t,
            &p,
            "a",
            vec![
                change("f", "create", Some(b"1"), Some(None)),
                change("f", "update", Some(b"2"), Some(Some(b"1"))),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .update(
            &t,
            &p,
            "a",
            vec![
                change("g", "create", Some(b"1"), Some(None)),
                change("g", "create", Some(b"2"), Some(None)),
            ],
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(app.events(&t, &p).await.len(), 2);
}

#[tokio::test]
async fn a_retry_of_an_accepted_change_is_not_a_conflict() {
    let (app, t, p) = setup().await;
    let mut c = change("f", "create", Some(b"1"), Some(None));
    c["change_id"] = json!("c1");
    let first = app.update(&t, &p, "a", vec![c.clone()]).await;
    assert_eq!(first.status, 200, "{}", first.body);
    // Its base is stale now (the path exists), but it is the same change.
    let again = app.update(&t, &p, "a", vec![c]).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["events"], first.body["events"]);
    assert_eq!(app.events(&t, &p).await.len(), 1);
}

#[tokio::test]
async fn a_bad_base_hash_is_422_invalid_hash() {
    let (app, t, p) = setup().await;
    let mut c = change("f", "create", Some(b"1"), None);
    c["base_hash"] = json!("not-a-hash");
    let r = app.update(&t, &p, "a", vec![c]).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "invalid_hash");
    let _ = hash(b"");
}

#[tokio::test]
async fn without_base_hash_v1_appends_unconditionally() {
    let (app, t, p) = setup().await;
    for content in [b"1", b"2", b"3"] {
        let r = app
            .update(
                &t,
                &p,
                "a",
                vec![change("f", "create", Some(content), None)],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(app.events(&t, &p).await.len(), 3);
}

/// Many writers with the same base at once: exactly one wins per path, and
/// every loser is told the winner's event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_with_one_base_exactly_one_wins() {
    let (app, t, p) = setup().await;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (app, t, p) = (app.clone(), t.clone(), p.clone());
        tasks.push(tokio::spawn(async move {
            let content = format!("writer {w}");
            app.update(
                &t,
                &p,
                &format!("c{w}"),
                vec![change(
                    "same.txt",
                    "create",
                    Some(content.as_bytes()),
                    Some(None),
                )],
            )
            .await
        }));
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.expect("task"));
    }
    let winners: Vec<_> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        winners.len(),
        1,
        "statuses: {:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let winner = &winners[0].body["events"][0];
    for r in replies.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 409, "{}", r.body);
        assert_eq!(&r.body["error"]["conflicts"][0]["current"], winner);
    }
    assert_eq!(app.events(&t, &p).await.len(), 1);
}
