//! Table tests of the planner: every combination of local state × remote
//! op × mode, checked against a written table and against the invariants.

use super::*;

fn h(s: &str) -> Option<ContentHash> {
    Some(ContentHash::of(s.as_bytes()))
}

const MODES: [Mode; 3] = [Mode::Send, Mode::Receive, Mode::SendReceive];

/// The disk states a path can be in, relative to agreed `a` and remote `r`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Disk {
    Absent,
    Agreed,
    Remote,
    Other,
}

fn disk_hash(d: Disk, agreed: Option<ContentHash>) -> Option<ContentHash> {
    match d {
        Disk::Absent => None,
        // With nothing agreed, "agreed bytes" cannot be on disk.
        Disk::Agreed => agreed,
        Disk::Remote => h("remote"),
        Disk::Other => h("local edit"),
    }
}

/// The expected action for a non-own event in a receiving folder, written
/// out case by case.
fn expected(op: Op, disk: Disk, agreed_some: bool) -> RemoteAction {
    use Disk::*;
    use RemoteAction::*;
    match (op, disk, agreed_some) {
        (Op::Delete, Absent, _) => Agree { recheck: false },
        (Op::Delete, Agreed, true) => Delete { keep_local: false },
        (Op::Delete, Agreed, false) => Agree { recheck: false }, // no file
        (Op::Delete, Remote | Other, _) => Delete { keep_local: true },
        (_, Absent, _) => Download { keep_local: false },
        (_, Agreed, true) => Download { keep_local: false },
        (_, Agreed, false) => Download { keep_local: false }, // no file
        (_, Remote, _) => Adopt,
        (_, Other, _) => Download { keep_local: true },
    }
}

#[test]
fn every_remote_case_follows_the_table_and_the_invariants() {
    let mut cases = 0;
    for mode in MODES {
        for own in [false, true] {
            for op in [Op::Create, Op::Update, Op::Delete] {
                for disk in [Disk::Absent, Disk::Agreed, Disk::Remote, Disk::Other] {
                    for agreed in [None, h("agreed")] {
                        let hash = if op == Op::Delete { None } else { h("remote") };
                        let facts = Facts {
                            disk: disk_hash(disk, agreed),
                            agreed,
                        };
                        let got = plan_remote(facts, Remote { op, hash, own }, mode);
                        let case =
                            format!("{mode:?} own={own} {op:?} disk={disk:?} agreed={agreed:?}");
                        cases += 1;
                        if own {
                            assert_eq!(
                                got,
                                RemoteAction::Agree {
                                    recheck: facts.disk != hash
                                },
                                "{case}"
                            );
                            continue;
                        }
                        if mode == Mode::Send {
                            assert_eq!(got, RemoteAction::Ignore, "{case}");
                            continue;
                        }
                        // Disk::Other with Remote-equal hash cannot happen; the
                        // table covers the rest.
                        let disk_now = if facts.disk.is_none() {
                            Disk::Absent
                        } else {
                            disk
                        };
                        assert_eq!(got, expected(op, disk_now, agreed.is_some()), "{case}");
                        // Invariant: unagreed local bytes are kept when touched.
                        if let Some(d) = facts.disk {
                            let touches = matches!(
                                got,
                                RemoteAction::Download { keep_local: false }
                                    | RemoteAction::Delete { keep_local: false }
                            );
                            if touches {
                                assert_eq!(Some(d), agreed, "lost local bytes: {case}");
                            }
                        }
                    }
                }
            }
        }
    }
    assert_eq!(cases, 3 * 2 * 3 * 4 * 2);
}

#[test]
fn a_write_without_a_hash_is_set_aside() {
    for mode in [Mode::Receive, Mode::SendReceive] {
        let got = plan_remote(
            Facts {
                disk: None,
                agreed: None,
            },
            Remote {
                op: Op::Create,
                hash: None,
                own: false,
            },
            mode,
        );
        assert!(
            matches!(got, RemoteAction::SetAside(_)),
            "{mode:?}: {got:?}"
        );
    }
}

/// (now, last, agreed, expected in send-receive).
type Row = (
    Option<ContentHash>,
    Option<ContentHash>,
    Option<ContentHash>,
    LocalAction,
);

#[test]
fn every_local_case_follows_the_table() {
    use LocalAction::*;
    let (a, q, n) = (h("agreed"), h("queued"), h("new"));
    // (now, last, agreed) -> expected for send-receive.
    let table: Vec<Row> = vec![
        // A new file.
        (
            n,
            None,
            None,
            Upload {
                op: Op::Create,
                base: Some(None),
            },
        ),
        // Edited from the agreed version.
        (
            n,
            a,
            a,
            Upload {
                op: Op::Update,
                base: Some(a),
            },
        ),
        // Edited again while the first edit is still queued: chained base.
        (
            n,
            q,
            a,
            Upload {
                op: Op::Update,
                base: Some(q),
            },
        ),
        // Deleted.
        (
            None,
            a,
            a,
            Upload {
                op: Op::Delete,
                base: Some(a),
            },
        ),
        (
            None,
            q,
            a,
            Upload {
                op: Op::Delete,
                base: Some(q),
            },
        ),
        // Back to the agreed version (an echo, or an undo): nothing to send.
        (a, a, a, Agreed),
        (a, q, a, Agreed),
        // Same as what is already queued.
        (q, q, a, IndexOnly),
        // Gone, and never existed for the server.
        (None, None, None, IndexOnly),
        // Re-created after a queued delete.
        (
            n,
            None,
            a,
            Upload {
                op: Op::Create,
                base: Some(None),
            },
        ),
    ];
    for (now, last, agreed, want) in table {
        let case = format!("now={now:?} last={last:?} agreed={agreed:?}");
        assert_eq!(
            plan_local(now, last, agreed, Mode::SendReceive),
            want,
            "{case}"
        );
        // Receive never uploads.
        assert_eq!(
            plan_local(now, last, agreed, Mode::Receive),
            IndexOnly,
            "{case}"
        );
        // Send uploads the same changes, without a check.
        let send = match want {
            Upload { op, .. } => Upload { op, base: None },
            other => other,
        };
        assert_eq!(plan_local(now, last, agreed, Mode::Send), send, "{case}");
    }
}
