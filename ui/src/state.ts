// The page's state logic, free of DOM and Tauri so Vitest can check it:
// what a folder's badge says, how the activity feed grows and is capped,
// which "Synced: path" badges are still showing.

// The types shared with Rust are generated from it (ts-rs, `make bindings`).
import type { Badge } from "./generated/Badge";
import type { BadgeKind } from "./generated/BadgeKind";
import type { Connection } from "./generated/Connection";
import type { EngineEvent } from "./generated/EngineEvent";
import type { FolderStatus } from "./generated/FolderStatus";

export type { Badge, BadgeKind, Connection, EngineEvent, FolderStatus };
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
}

/** Most activity items kept (older ones drop off). */
export const FEED_CAP = 200;
/** How long a "Synced: path" badge shows, in ms. */
export const SYNCED_MS = 2000;

export function emptyState(): UiState {
  return { folders: {}, paused: {}, feed: [], synced: [], connection: "offline" };
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
  return { text: badgeText(status.badge), kind: status.badge.kind };
}

/** Folds one engine event into the state (returns a new state). */
export function reduce(state: UiState, ev: EngineEvent, now: number): UiState {
  switch (ev.type) {
    case "status_changed":
      return {
        ...state,
        folders: { ...state.folders, [ev.status.project_id]: ev.status },
        connection: ev.status.connection,
      };
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
