// The page's state logic, free of DOM and Tauri so Vitest can check it:
// what a folder's badge says, how the activity feed grows and is capped,
// which "Synced: path" badges are still showing.

// The types shared with Rust are generated from it (ts-rs, `make bindings`).
import type { Badge } from "./generated/Badge";
import type { BadgeKind } from "./generated/BadgeKind";
import type { Connection } from "./generated/Connection";
import type { EngineEvent } from "./generated/EngineEvent";
import type { FolderStatus } from "./generated/FolderStatus";
import type { Transfer } from "./generated/Transfer";

export type { Badge, BadgeKind, Connection, EngineEvent, FolderStatus, Transfer };
export type { ProjectEvent } from "./generated/ProjectEvent";
export type { SetAside } from "./generated/SetAside";

export interface FeedItem {
  key: string;
  project_id: string;
  path: string;
  op: string;
  who: string;
  when: string;
}

export interface SyncedBadge {
  project_id: string;
  path: string;
  until: number;
}

export interface UiState {
  folders: Record<string, FolderStatus>;
  paused: Record<string, boolean>;
  feed: FeedItem[];
  synced: SyncedBadge[];
  connection: Connection;
  /** Per project: its transfer lately (progress bar, ETA). */
  meters: Record<string, Meter>;
}

/** Most activity items kept (older ones drop off). */
export const FEED_CAP = 200;
/** How long a "Synced: path" badge shows, in ms. */
export const SYNCED_MS = 2000;

export function emptyState(): UiState {
  return { folders: {}, paused: {}, feed: [], synced: [], connection: "offline", meters: {} };
}

/** A badge's words, as the CLI prints them (Rust's `Display` for `Badge`). */
export function badgeText(b: Badge): string {
  switch (b.kind) {
    case "up_to_date":
      return "up to date";
    case "syncing":
      return `syncing (${b.count})`;
    case "offline":
      return `offline (${b.count} queued)`;
    case "conflict":
      return `conflict (${b.count})`;
    case "error":
      return "error";
    case "paused":
      return "paused";
  }
}

/** The badge a folder shows: the engine's, unless the user paused it.
 * `kind` names the CSS class (`badge-<kind>`). */
export function badgeOf(status: FolderStatus | undefined, paused: boolean): { text: string; kind: BadgeKind } {
  if (paused) return { text: "paused", kind: "paused" };
  if (!status) return { text: "starting", kind: "syncing" };
  // Versions still coming in count as syncing too (the engine's badge
  // counts what waits to go up).
  const incoming = status.transfer?.down_files ?? 0;
  if (status.badge.kind === "up_to_date" && incoming > 0) {
    return { text: badgeText({ kind: "syncing", count: incoming }), kind: "syncing" };
  }
  return { text: badgeText(status.badge), kind: status.badge.kind };
}

/** Folds one engine event into the state (returns a new state). */
export function reduce(state: UiState, ev: EngineEvent, now: number): UiState {
  switch (ev.type) {
    case "status_changed": {
      const pid = ev.status.project_id;
      const meters = { ...state.meters };
      const m = meterStep(meters[pid], ev.status.transfer, now);
      if (m) meters[pid] = m;
      else delete meters[pid];
      return {
        ...state,
        folders: { ...state.folders, [pid]: ev.status },
        connection: ev.status.connection,
        meters,
      };
    }
    case "remote_event": {
      const e = ev.event;
      const item: FeedItem = {
        key: `${e.project_id}:${e.seq}`,
        project_id: e.project_id,
        path: e.change.path,
        op: e.change.op,
        who: e.origin.user,
        when: e.created_at,
      };
      return { ...state, feed: pushFeed(state.feed, item) };
    }
    case "change_uploaded": {
      const item: FeedItem = {
        key: `${ev.project_id}:${ev.seq}`,
        project_id: ev.project_id,
        path: ev.path,
        op: ev.op,
        who: "you",
        when: new Date(now).toISOString(),
      };
      return { ...state, feed: pushFeed(state.feed, item) };
    }
    case "applied":
      return {
        ...state,
        synced: [...expire(state.synced, now), { project_id: ev.project_id, path: ev.path, until: now + SYNCED_MS }],
      };
    default:
      return state;
  }
}

/** Newest first, no duplicate keys, at most FEED_CAP items. */
export function pushFeed(feed: FeedItem[], item: FeedItem): FeedItem[] {
  if (feed.some((f) => f.key === item.key)) return feed;
  return [item, ...feed].slice(0, FEED_CAP);
}

/** The "Synced" badges still showing at `now`. */
export function expire(synced: SyncedBadge[], now: number): SyncedBadge[] {
  return synced.filter((s) => s.until > now);
}

/** Connection states, worst first. */
const WORST_FIRST: Connection[] = ["failed", "offline", "reconnecting", "connecting", "polling", "live"];

/** The overall connection: the worst of the folders'. */
export function overall(folders: FolderStatus[]): Connection {
  if (folders.length === 0) return "offline";
  return WORST_FIRST.find((c) => folders.some((f) => f.connection === c)) ?? "live";
}

/** The indicator's words for connection `conn` at `now` (ms):
 * "reconnecting in 4 s", "failed, not retrying", or the state's name. */
export function connectionText(folders: FolderStatus[], conn: Connection, now: number): string {
  const detail = folders.find((f) => f.connection === conn)?.connection_detail;
  if (conn === "reconnecting" && detail?.next_try_at) {
    const secs = Math.max(0, Math.ceil((Date.parse(detail.next_try_at) - now) / 1000));
    return `reconnecting in ${secs} s`;
  }
  if (conn === "failed" && detail?.will_retry === false) return "failed, not retrying";
  return conn;
}

/** The header's words and colour class: never a bare "offline" — it says
 * why (not signed in, no folders yet, the server's silence or refusal). */
export function headerConnection(
  signedIn: boolean,
  folders: FolderStatus[],
  fallback: Connection,
  now: number,
): { text: string; kind: string } {
  if (!signedIn) return { text: "not signed in", kind: "offline" };
  if (folders.length === 0) return { text: "signed in · no folders yet", kind: "idle" };
  const conn = overall(folders) ?? fallback;
  const detail = folders.find((f) => f.connection === conn)?.connection_detail;
  if (conn === "offline") {
    return { text: `offline: ${detail?.reason ?? "the server does not answer"}`, kind: conn };
  }
  if (conn === "failed") {
    const why = detail?.reason?.includes("unauthorized") ? "the server refused the token" : detail?.reason;
    const head = connectionText(folders, conn, now);
    return { text: why ? `${head}: ${why}` : head, kind: conn };
  }
  return { text: connectionText(folders, conn, now), kind: conn };
}

/** What a folder's transfer has looked like lately, for a progress bar and
 * an ETA: the most bytes left since it started (the bar's whole) and
 * (time, bytes left) samples of the last ETA_WINDOW_MS. */
export interface Meter {
  peakBytes: number;
  peakFiles: number;
  samples: { t: number; left: number }[];
}

/** How far back the transfer rate is measured, in ms. */
export const ETA_WINDOW_MS = 10_000;

/** Files and bytes left of a folder's transfer, both ways. */
export function left(t: Transfer | undefined): { files: number; bytes: number } {
  if (!t) return { files: 0, bytes: 0 };
  return { files: t.down_files + t.up_files, bytes: t.down_bytes + t.up_bytes };
}

/** The meter after a new status at `now`; undefined once nothing is left. */
export function meterStep(m: Meter | undefined, t: Transfer | undefined, now: number): Meter | undefined {
  const l = left(t);
  if (l.files === 0 && l.bytes === 0) return undefined;
  const samples = [...(m?.samples ?? []), { t: now, left: l.bytes }].filter((s) => s.t >= now - ETA_WINDOW_MS);
  return {
    peakBytes: Math.max(m?.peakBytes ?? 0, l.bytes),
    peakFiles: Math.max(m?.peakFiles ?? 0, l.files),
    samples,
  };
}

/** Bytes in the units people read: 0 B, 512 B, 1.5 KiB, 200 MiB, 1.2 GiB. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} ${units[i]}` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** "45 s", "3 min", "2 h 5 min". */
export function formatDuration(secs: number): string {
  if (secs < 60) return `${Math.max(1, Math.round(secs))} s`;
  if (secs < 3600) return `${Math.round(secs / 60)} min`;
  const h = Math.floor(secs / 3600);
  return `${h} h ${Math.round((secs - h * 3600) / 60)} min`;
}

/** What the progress bar shows: the share done (0–1), the words (files
 * and bytes left, which way, the ETA once a rate is known), or null when
 * nothing is moving. */
export function progressView(
  t: Transfer | undefined,
  m: Meter | undefined,
): { fraction: number; text: string; etaSecs: number | null } | null {
  const l = left(t);
  if (!t || !m || (l.files === 0 && l.bytes === 0)) return null;
  const fraction = m.peakBytes > 0 ? Math.min(1, Math.max(0, 1 - l.bytes / m.peakBytes)) : 0;
  const first = m.samples[0];
  const last = m.samples[m.samples.length - 1];
  let etaSecs: number | null = null;
  if (first && last && last.t > first.t && first.left > last.left) {
    const rate = (first.left - last.left) / ((last.t - first.t) / 1000);
    etaSecs = last.left / rate;
  }
  const ways = [t.down_files || t.down_bytes ? "↓" : "", t.up_files || t.up_bytes ? "↑" : ""].join("");
  const files = `${l.files} file${l.files === 1 ? "" : "s"}`;
  const eta = etaSecs === null ? "" : `, about ${formatDuration(etaSecs)} left`;
  return { fraction, text: `${ways} ${files}, ${formatBytes(l.bytes)} to go${eta}`, etaSecs };
}
