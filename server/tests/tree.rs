//! `GET …/tree` at head: newest version per path, deletes left out, sorted,
//! paged with `next`, filtered by `prefix`; `at_seq` reads the past, and
//! one after the head is 422.

mod common;

use common::{change, App};

#[tokio::test]
async fn tree_pages_the_current_files_sorted_without_deleted_ones() {
    let app = App::new().await;
    let t = app.user("alice").await;
    let p = app.project(&t, "t").await;
    let r = app
        .update(
            &t,
            &p,
            "c1",
            vec![
                change("a/1", "create", Some(b"one"), None),
                change("a/2", "create", Some(b"two"), None),
                change("b/3", "create", Some(b"three"), None),
                change("a/0", "create", Some(b"zero"), None),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .update(
            &t,
            &p,
            "c1",
            vec![
                change("a/2", "update", Some(b"two v2"), None),
                change("a/0", "delete", None, None),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .get(&format!("/api/projects/{p}/tree?limit=2"), &t)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let paths: Vec<&str> = r.body["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["a/1", "a/2"]);
    assert_eq!(r.body["files"][1]["hash"], common::hash(b"two v2"));
    assert_eq!(r.body["next"], "a/2");
    let r = app
        .get(&format!("/api/projects/{p}/tree?limit=2&after=a/2"), &t)
        .await;
    assert_eq!(r.body["files"][0]["path"], "b/3");
    assert_eq!(r.body["next"], serde_json::Value::Null);
    let r = app
        .get(&format!("/api/projects/{p}/tree?prefix=b/"), &t)
        .await;
    assert_eq!(r.body["files"].as_array().unwrap().len(), 1);
    // Seq 4 is the end of the first request: a/0 there, a/2 at "two".
    let r = app
        .get(&format!("/api/projects/{p}/tree?at_seq=4"), &t)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["at_seq"], 4);
    let files = r.body["files"].as_array().unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["a/0", "a/1", "a/2", "b/3"]);
    assert_eq!(files[2]["hash"], common::hash(b"two"));
    // Seq 2: only the first two creates; paged one at a time.
    let r = app
        .get(&format!("/api/projects/{p}/tree?at_seq=2&limit=1"), &t)
        .await;
    assert_eq!(r.body["files"][0]["path"], "a/1");
    assert_eq!(r.body["next"], "a/1");
    let r = app
        .get(
            &format!("/api/projects/{p}/tree?at_seq=2&limit=1&after=a/1"),
            &t,
        )
        .await;
    assert_eq!(r.body["files"][0]["path"], "a/2");
    assert_eq!(r.body["next"], serde_json::Value::Null);
    let r = app
        .get(&format!("/api/projects/{p}/tree?at_seq=0"), &t)
        .await;
    assert_eq!(r.body["files"].as_array().unwrap().len(), 0);
    let r = app
        .get(&format!("/api/projects/{p}/tree?at_seq=7"), &t)
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["error"]["code"], "unprocessable");
}
