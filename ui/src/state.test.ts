import { describe, expect, it } from "vitest";
import {
  badgeOf,
  connectionText,
  emptyState,
  formatBytes,
  headerConnection,
  meterStep,
  progressView,
  expire,
  FEED_CAP,
  overall,
  pushFeed,
  reduce,
  SYNCED_MS,
  type FolderStatus,
  type EngineEvent,
} from "./state";

const status = (over: Partial<FolderStatus> = {}): FolderStatus => ({
  project_id: "p1",
  name: "site",
  path: "/home/a/site",
  mode: "send-receive",
  badge: { kind: "up_to_date", count: 0 },
  connection: "live",
  connection_detail: null,
  queued: 0,
  last_seq: 3,
  error: null,
  set_aside: [],
  transfer: { down_files: 0, down_bytes: 0, up_files: 0, up_bytes: 0 },
  present: [],
  ...over,
});

const remote = (seq: number, path = `f${seq}.txt`): EngineEvent => ({
  type: "remote_event",
  project_id: "p1",
  event: {
    seq,
    project_id: "p1",
    change: { path, op: "create", hash: "ab".repeat(32), size: 1, mtime: null },
    origin: { client_id: "c", user: "bob" },
    created_at: "2026-11-22T10:00:00Z",
  },
});

describe("badgeOf", () => {
  it("follows the engine's typed badge, in the CLI's words", () => {
    expect(badgeOf(status(), false)).toEqual({ text: "up to date", kind: "up_to_date" });
    expect(badgeOf(status({ badge: { kind: "syncing", count: 3 } }), false)).toEqual({ text: "syncing (3)", kind: "syncing" });
    expect(badgeOf(status({ badge: { kind: "offline", count: 2 } }), false)).toEqual({ text: "offline (2 queued)", kind: "offline" });
    expect(badgeOf(status({ badge: { kind: "conflict", count: 1 } }), false)).toEqual({ text: "conflict (1)", kind: "conflict" });
    expect(badgeOf(status({ badge: { kind: "error", count: 0 }, error: "nope" }), false)).toEqual({ text: "error", kind: "error" });
    expect(badgeOf(status({ badge: { kind: "paused", count: 0 } }), false).text).toBe("paused");
  });
  it("says paused when the user paused the folder, whatever the engine says", () => {
    expect(badgeOf(status({ badge: { kind: "syncing", count: 3 } }), true)).toEqual({ text: "paused", kind: "paused" });
    expect(badgeOf(undefined, true).text).toBe("paused");
  });
});

describe("feed", () => {
  it("is newest first, capped, and free of duplicates", () => {
    let s = emptyState();
    for (let i = 1; i <= FEED_CAP + 50; i++) s = reduce(s, remote(i), 0);
    expect(s.feed.length).toBe(FEED_CAP);
    expect(s.feed[0].key).toBe(`p1:${FEED_CAP + 50}`);
    expect(s.feed[FEED_CAP - 1].key).toBe("p1:51");
    const again = reduce(s, remote(FEED_CAP + 50), 0);
    expect(again.feed).toBe(s.feed);
  });
  it("records who made a change", () => {
    const s = reduce(emptyState(), remote(1, "src/a.rs"), 0);
    expect(s.feed[0]).toMatchObject({ path: "src/a.rs", op: "create", who: "bob" });
    const mine = reduce(s, { type: "change_uploaded", project_id: "p1", path: "b", op: "update", seq: 2 }, 0);
    expect(mine.feed[0]).toMatchObject({ path: "b", who: "you" });
    expect(pushFeed(mine.feed, mine.feed[0])).toBe(mine.feed);
  });
});

describe("synced badges", () => {
  it("appear for each applied change and fade after 2 s", () => {
    let s = reduce(emptyState(), { type: "applied", project_id: "p1", path: "a", op: "create", seq: 1, conflict: null }, 1000);
    s = reduce(s, { type: "applied", project_id: "p1", path: "b", op: "create", seq: 2, conflict: null }, 2500);
    expect(expire(s.synced, 2999).map((b) => b.path)).toEqual(["a", "b"]);
    expect(expire(s.synced, 1000 + SYNCED_MS).map((b) => b.path)).toEqual(["b"]);
    expect(expire(s.synced, 2500 + SYNCED_MS)).toEqual([]);
  });
});

describe("connection", () => {
  it("follows status changes and is the worst of all folders", () => {
    const s = reduce(emptyState(), { type: "status_changed", status: status({ connection: "polling" }) }, 0);
    expect(s.connection).toBe("polling");
    expect(overall([status(), status({ connection: "polling" })])).toBe("polling");
    expect(overall([status(), status({ connection: "offline" })])).toBe("offline");
    expect(overall([status()])).toBe("live");
    expect(overall([])).toBe("offline");
    expect(overall([status({ connection: "reconnecting" }), status({ connection: "polling" })])).toBe("reconnecting");
    expect(overall([status({ connection: "reconnecting" }), status({ connection: "failed" })])).toBe("failed");
  });

  it("says when the next try is, and that a refused token is not tried again", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    const reconnecting = status({
      connection: "reconnecting",
      connection_detail: { attempt: 3, next_try_at: "2026-01-01T00:00:03.200Z", will_retry: null, reason: "down" },
    });
    expect(connectionText([status(), reconnecting], "reconnecting", now)).toBe("reconnecting in 4 s");
    expect(connectionText([reconnecting], "reconnecting", now + 10_000)).toBe("reconnecting in 0 s");
    const failed = status({
      connection: "failed",
      connection_detail: { attempt: null, next_try_at: null, will_retry: false, reason: "revoked" },
    });
    expect(connectionText([failed], "failed", now)).toBe("failed, not retrying");
    expect(connectionText([status()], "live", now)).toBe("live");
  });
});

describe("the header", () => {
  it("never says a bare offline", () => {
    expect(headerConnection(false, [], "offline", 0)).toEqual({ text: "not signed in", kind: "offline" });
    expect(headerConnection(true, [], "offline", 0).text).toBe("signed in · no folders yet");
    const off = status({ connection: "offline" });
    expect(headerConnection(true, [off], "offline", 0).text).toBe("offline: the server does not answer");
    const why = status({ connection: "offline", connection_detail: { attempt: null, next_try_at: null, will_retry: null, reason: "connection refused" } });
    expect(headerConnection(true, [why], "offline", 0).text).toBe("offline: connection refused");
    const refused = status({ connection: "failed", connection_detail: { attempt: null, next_try_at: null, will_retry: false, reason: "unauthorized: unknown or revoked token" } });
    expect(headerConnection(true, [refused], "failed", 0).text).toBe("failed, not retrying: the server refused the token");
    expect(headerConnection(true, [status()], "offline", 0)).toEqual({ text: "live", kind: "live" });
  });
});

describe("progress", () => {
  const t = (down_files: number, down_bytes: number, up_files = 0, up_bytes = 0) => ({ down_files, down_bytes, up_files, up_bytes });
  const MiB = 1024 * 1024;

  it("has no bar when nothing moves, and a bar with files, bytes and an ETA when it does", () => {
    expect(meterStep(undefined, t(0, 0), 0)).toBeUndefined();
    expect(progressView(t(0, 0), undefined)).toBeNull();
    let m = meterStep(undefined, t(1, 200 * MiB), 1000);
    let v = progressView(t(1, 200 * MiB), m);
    expect(v).toEqual({ fraction: 0, text: "↓ 1 file, 200 MiB to go", etaSecs: null });
    // 50 MiB in 1 s: 150 MiB left at 50 MiB/s is 3 s.
    m = meterStep(m, t(1, 150 * MiB), 2000);
    v = progressView(t(1, 150 * MiB), m);
    expect(v?.fraction).toBeCloseTo(0.25);
    expect(v?.etaSecs).toBeCloseTo(3);
    expect(v?.text).toBe("↓ 1 file, 150 MiB to go, about 3 s left");
    // Both ways, and samples older than the window are dropped.
    m = meterStep(m, t(1, 100 * MiB, 2, 10), 20_000);
    expect(m?.samples.length).toBe(1);
    expect(progressView(t(1, 100 * MiB, 2, 10), m)?.text).toBe("↓↑ 3 files, 100 MiB to go");
    expect(meterStep(m, t(0, 0), 21_000)).toBeUndefined();
  });

  it("formats bytes", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(200 * 1024 * 1024)).toBe("200 MiB");
  });

  it("keeps a meter per project in the state", () => {
    let s = reduce(emptyState(), { type: "status_changed", status: status({ transfer: t(2, 100) }) }, 1);
    expect(s.meters.p1.peakBytes).toBe(100);
    s = reduce(s, { type: "status_changed", status: status() }, 2);
    expect(s.meters.p1).toBeUndefined();
  });
});

describe("the badge while versions come in", () => {
  it("says syncing with the files still to come", () => {
    const t = { down_files: 2, down_bytes: 10, up_files: 0, up_bytes: 0 };
    expect(badgeOf(status({ transfer: t }), false)).toEqual({ text: "syncing (2)", kind: "syncing" });
    expect(badgeOf(status({ transfer: t, badge: { kind: "conflict", count: 1 } }), false).text).toBe("conflict (1)");
    expect(badgeOf(status({ transfer: t }), true).text).toBe("paused");
  });
});
