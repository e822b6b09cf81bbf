//! Table tests of [`number`]: seqs, retries and every base_hash case.

use super::*;

fn h(s: &str) -> ContentHash {
    ContentHash::of(s.as_bytes())
}

fn p(s: &str) -> ProjectPath {
    ProjectPath::new(s).unwrap()
}

fn origin() -> Origin {
    Origin {
        client_id: "c".into(),
        user: "u".into(),
    }
}

fn change(path: &str, op: Op, content: Option<&str>, base: Option<Option<&str>>) -> Change {
    Change {
        path: p(path),
        op,
        hash: content.map(h),
        size: content.map(|c| c.len() as u64),
        mtime: None,
        change_id: None,
        base_hash: base.map(|b| b.map(h)),
    }
}

fn with_id(mut c: Change, id: &str) -> Change {
    c.change_id = Some(id.into());
    c
}

fn stored(seq: u64, c: &Change) -> ProjectEvent {
    ProjectEvent {
        seq,
        project_id: "p".into(),
        change: Change {
            change_id: None,
            base_hash: None,
            ..c.clone()
        },
        origin: origin(),
        created_at: "t0".into(),
    }
}

struct World {
    head: u64,
    known: HashMap<String, ProjectEvent>,
    current: HashMap<ProjectPath, ProjectEvent>,
}

impl World {
    fn new(head: u64) -> World {
        World {
            head,
            known: HashMap::new(),
            current: HashMap::new(),
        }
    }
    fn with_current(mut self, seq: u64, c: Change) -> World {
        self.current.insert(c.path.clone(), stored(seq, &c));
        self
    }
    fn run(&self, changes: &[Change]) -> Result<Numbered, Conflicts> {
        let o = origin();
        let facts = Facts {
            project_id: "p",
            origin: &o,
            now: "t1",
            head: self.head,
            known: &self.known,
            current: &self.current,
        };
        number(&facts, changes)
    }
}

fn seqs(n: &Numbered) -> Vec<u64> {
    n.events.iter().map(|e| e.seq).collect()
}

#[test]
fn fresh_changes_get_the_next_seqs_in_order() {
    let n = World::new(7)
        .run(&[
            change("a", Op::Create, Some("1"), None),
            change("b", Op::Create, Some("2"), None),
        ])
        .unwrap();
    assert_eq!(seqs(&n), vec![8, 9]);
    assert_eq!(n.head, 9);
    assert_eq!(n.fresh.len(), 2);
    assert!(n.events.iter().all(|e| e.change.base_hash.is_none()));
}

#[test]
fn known_and_repeated_change_ids_reuse_their_event() {
    let mut w = World::new(3);
    let first = stored(2, &change("a", Op::Create, Some("1"), None));
    w.known.insert("k".into(), first.clone());
    let n = w
        .run(&[
            with_id(change("a", Op::Create, Some("1"), None), "k"),
            with_id(change("b", Op::Create, Some("2"), None), "n"),
            with_id(change("b", Op::Create, Some("2"), None), "n"),
        ])
        .unwrap();
    assert_eq!(seqs(&n), vec![2, 4, 4]);
    assert_eq!(n.head, 4);
    assert_eq!(n.fresh.len(), 1);
    assert_eq!(n.fresh[0].change_id.as_deref(), Some("n"));
}

/// Each row: what the log holds for "f" (None: nothing), the change's
/// base_hash, and whether it is accepted.
#[test]
fn base_hash_against_the_log() {
    let create_x = change("f", Op::Create, Some("x"), None);
    let delete = change("f", Op::Delete, None, None);
    type Row = (Option<Change>, Option<Option<&'static str>>, bool);
    let rows: Vec<Row> = vec![
        (None, None, true),
        (None, Some(None), true),
        (None, Some(Some("x")), false),
        (Some(create_x.clone()), None, true),
        (Some(create_x.clone()), Some(Some("x")), true),
        (Some(create_x.clone()), Some(Some("y")), false),
        (Some(create_x.clone()), Some(None), false),
        (Some(delete.clone()), Some(None), true),
        (Some(delete.clone()), Some(Some("x")), false),
    ];
    for (i, (log, base, ok)) in rows.into_iter().enumerate() {
        let mut w = World::new(5);
        if let Some(c) = log.clone() {
            w = w.with_current(5, c);
        }
        let got = w.run(&[change("f", Op::Update, Some("z"), base)]);
        assert_eq!(got.is_ok(), ok, "row {i}: log {log:?} base {base:?}");
        if let Err(c) = got {
            assert_eq!(c.entries.len(), 1);
            assert_eq!(c.entries[0].path, p("f"));
            assert_eq!(c.entries[0].current, log.map(|l| stored(5, &l)), "row {i}");
        }
    }
}

#[test]
fn earlier_changes_of_the_request_count() {
    let w = World::new(0);
    // create then update on top of it: accepted.
    let n = w
        .run(&[
            change("f", Op::Create, Some("a"), Some(None)),
            change("f", Op::Update, Some("b"), Some(Some("a"))),
            change("f", Op::Delete, None, Some(Some("b"))),
            change("f", Op::Create, Some("c"), Some(None)),
        ])
        .unwrap();
    assert_eq!(seqs(&n), vec![1, 2, 3, 4]);
    // Two changes both made from "nothing": the second is stale.
    let err = w
        .run(&[
            change("f", Op::Create, Some("a"), Some(None)),
            change("f", Op::Create, Some("b"), Some(None)),
        ])
        .unwrap_err();
    assert_eq!(err.entries.len(), 1);
    assert_eq!(err.entries[0].current, None);
    assert!(err.message.contains("changes[0]"), "{}", err.message);
}

#[test]
fn one_stale_change_refuses_all_and_each_path_is_listed_once() {
    let w = World::new(2)
        .with_current(1, change("a", Op::Create, Some("a1"), None))
        .with_current(2, change("b", Op::Create, Some("b1"), None));
    let err = w
        .run(&[
            change("ok", Op::Create, Some("1"), Some(None)),
            change("a", Op::Update, Some("a2"), Some(Some("old"))),
            change("a", Op::Update, Some("a3"), Some(Some("older"))),
            change("b", Op::Delete, None, Some(Some("zzz"))),
        ])
        .unwrap_err();
    let paths: Vec<&str> = err.entries.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, vec!["a", "b"]);
    assert_eq!(err.entries[1].current.as_ref().map(|e| e.seq), Some(2));
}

#[test]
fn a_retry_with_a_stale_base_still_gets_its_first_event() {
    let mut w = World::new(9).with_current(9, change("f", Op::Update, Some("newer"), None));
    let first = stored(4, &change("f", Op::Update, Some("mine"), None));
    w.known.insert("k".into(), first.clone());
    let n = w
        .run(&[with_id(
            change("f", Op::Update, Some("mine"), Some(Some("old"))),
            "k",
        )])
        .unwrap();
    assert_eq!(n.events, vec![first]);
    assert!(n.fresh.is_empty());
    assert_eq!(n.head, 9);
}
