// The browser page vidsync-server serves at /: sign in with a token (kept in
// this tab's sessionStorage only), see the projects, open one to watch its
// files and activity live over Socket.IO, look at any past seq, a file's
// versions, download one (checked against its BLAKE3 hash in WebAssembly:
// the protocol crate itself), and upload by drag and drop.

import { io, type Socket } from "socket.io-client";
import init, { Hasher, check_path, hash_hex } from "./wasm/vidsync_wasm.js";

type Change = { path: string; op: "create" | "update" | "delete"; hash: string | null; size: number | null; mtime: string | null };
type ProjectEvent = { seq: number; project_id: string; change: Change; origin: { client_id: string; user: string }; created_at: string };
type Project = { id: string; name: string; owner: string; role: string; head_seq: number; members: number };
type TreeFile = { path: string; hash: string; size: number; mtime: string | null; seq: number };
type Present = { user: string; client_id: string | null; since: string };
type Ack = { ok: boolean; head_seq?: number; present?: Present[]; error?: { code: string; message: string }; events?: ProjectEvent[] };

const TOKEN = "vidsync-token";
const CLIENT = "vidsync-web-client";
const FEED_CAP = 200;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function el(tag: string, attrs: Record<string, string> = {}, text = ""): HTMLElement {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  if (text) n.textContent = text;
  return n;
}

function say(text: string, info = false) {
  const m = $("message");
  m.textContent = text;
  m.className = info ? "info" : "";
  m.hidden = text === "";
}

class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

function token(): string | null {
  return sessionStorage.getItem(TOKEN);
}

function clientId(): string {
  let id = sessionStorage.getItem(CLIENT);
  if (!id) {
    id = `web-${crypto.getRandomValues(new Uint32Array(2)).join("")}`;
    sessionStorage.setItem(CLIENT, id);
  }
  return id;
}

async function api(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${token() ?? ""}`);
  const res = await fetch(path, { ...init, headers });
  if (!res.ok) {
    let code = "error";
    let message = `${res.status} ${res.statusText}`;
    try {
      const body = await res.json();
      code = body?.error?.code ?? code;
      message = body?.error?.message ?? message;
    } catch {
      // not JSON
    }
    if (res.status === 401) signOut("The server refused this token (unknown or revoked). Sign in again.");
    throw new ApiError(res.status, code, message);
  }
  return res;
}

async function json<T>(path: string): Promise<T> {
  return (await api(path)).json() as Promise<T>;
}

// ----- state -----------------------------------------------------------

let socket: Socket | undefined;
let projects: Project[] = [];
const presence = new Map<string, Present[]>();
/** The open project: its head, the seq shown (null: live), the tree shown
 * and the seq it was loaded at (live events at or below it are in it). */
let current: { project: Project; head: number; atSeq: number | null; tree: Map<string, TreeFile>; loadedAt: number } | undefined;
const feed: ProjectEvent[] = [];

// ----- socket ----------------------------------------------------------

function setConnection(text: string, kind: string) {
  const c = $("connection");
  c.hidden = false;
  c.textContent = text;
  c.className = `conn conn-${kind}`;
}

function connect() {
  socket?.disconnect();
  const s = io({ auth: { token: token(), client_id: clientId() }, transports: ["websocket", "polling"], reconnectionDelayMax: 8000 });
  socket = s;
  setConnection("connecting", "offline");
  s.on("connect", () => {
    setConnection(s.io.engine.transport.name === "websocket" ? "live" : "polling", s.io.engine.transport.name === "websocket" ? "live" : "polling");
    s.io.engine.once("upgrade", () => setConnection("live", "live"));
    for (const p of projects) subscribe(p);
  });
  s.on("disconnect", () => setConnection("offline", "offline"));
  s.on("connect_error", (e) => {
    setConnection("offline", "offline");
    if (String(e.message).toLowerCase().includes("unauthorized") || String(e.message).toLowerCase().includes("token")) {
      signOut("The server refused this token (unknown or revoked). Sign in again.");
    }
  });
  s.io.on("reconnect_attempt", (n) => {
    const secs = Math.min(8, 0.5 * 2 ** (n - 1));
    setConnection(`reconnecting in ${Math.max(1, Math.round(secs))} s`, "reconnecting");
  });
  s.on("project:event", (ev: ProjectEvent) => onEvent(ev));
  s.on("project:presence", (p: { project_id: string; present: Present[] }) => {
    presence.set(p.project_id, p.present);
    renderPresence();
  });
}

function subscribe(p: Project) {
  const since = current?.project.id === p.id ? current.head : p.head_seq;
  socket?.timeout(20000).emit("subscribe:project", { project_id: p.id, since_seq: since }, (err: unknown, ack: Ack) => {
    if (err || !ack) return;
    if (!ack.ok) {
      say(ack.error?.message ?? "subscription refused");
      return;
    }
    if (ack.present) presence.set(p.id, ack.present);
    renderPresence();
  });
}

function onEvent(ev: ProjectEvent) {
  const p = projects.find((x) => x.id === ev.project_id);
  if (p && ev.seq > p.head_seq) p.head_seq = ev.seq;
  if (!current || current.project.id !== ev.project_id) {
    if (!current) renderProjects();
    return;
  }
  if (feed.some((f) => f.seq === ev.seq)) return;
  current.head = Math.max(current.head, ev.seq);
  feed.unshift(ev);
  if (feed.length > FEED_CAP) feed.length = FEED_CAP;
  dirty.feed = true;
  const slider = $("seq") as HTMLInputElement;
  const live = current.atSeq === null;
  slider.max = String(current.head);
  if (live && ev.seq > current.loadedAt) {
    current.loadedAt = ev.seq;
    slider.value = String(current.head);
    $("seq-out").textContent = `${current.head} (live)`;
    if (ev.change.op === "delete") current.tree.delete(ev.change.path);
    else current.tree.set(ev.change.path, { path: ev.change.path, hash: ev.change.hash ?? "", size: ev.change.size ?? 0, mtime: ev.change.mtime, seq: ev.seq });
    dirty.paths.add(ev.change.path);
  }
  scheduleRender();
}

/** What changed since the last paint; painted at most every RENDER_MS, so a
 * burst of events costs one rebuild, not one per event. */
const dirty = { feed: false, paths: new Set<string>() };
const RENDER_MS = 200;
let renderTimer: ReturnType<typeof setTimeout> | undefined;
function scheduleRender() {
  if (renderTimer) return;
  renderTimer = setTimeout(() => {
    renderTimer = undefined;
    if (dirty.feed) renderFeed();
    if (dirty.paths.size) patchTree(dirty.paths);
    dirty.feed = false;
    dirty.paths = new Set();
  }, RENDER_MS);
}

// ----- views -----------------------------------------------------------

function show(view: "sign-in" | "projects-view" | "project-view") {
  for (const v of ["sign-in", "projects-view", "project-view"]) $(v).hidden = v !== view;
  $("sign-out").hidden = view === "sign-in";
}

function signOut(why = "") {
  sessionStorage.removeItem(TOKEN);
  socket?.disconnect();
  socket = undefined;
  current = undefined;
  $("connection").hidden = true;
  show("sign-in");
  say(why);
}

async function signIn(t: string) {
  sessionStorage.setItem(TOKEN, t);
  try {
    await loadProjects();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    sessionStorage.removeItem(TOKEN);
    say(`Cannot reach the server: ${(e as Error).message}`);
    return;
  }
  say("");
  connect();
  route();
}

async function loadProjects() {
  const body = await json<{ projects: Project[] }>("/api/projects");
  projects = body.projects;
}

/** The project list, updated in place (a link being clicked is never
 * replaced under the pointer by a presence or head update). */
function renderProjects() {
  const list = $("projects");
  $("projects-empty").hidden = projects.length > 0;
  const ids = projects.map((p) => p.id).join(",");
  if (list.dataset.ids !== ids) {
    list.replaceChildren();
    list.dataset.ids = ids;
    for (const p of projects) {
      const li = el("li", { "data-project": p.id });
      li.append(
        el("a", { href: `#p=${encodeURIComponent(p.id)}` }, p.name),
        el("span", { class: "meta" }),
        el("div", { class: "present", "data-testid": "present" }),
      );
      list.append(li);
    }
  }
  for (const p of projects) {
    const li = list.querySelector(`li[data-project="${CSS.escape(p.id)}"]`);
    if (!li) continue;
    const here = presence.get(p.id) ?? [];
    const meta = `  · seq ${p.head_seq} · ${p.members} member${p.members === 1 ? "" : "s"} · owner ${p.owner} · you: ${p.role}`;
    const who = here.length ? `here now: ${names(here)}` : "nobody here now";
    const [, m, w] = Array.from(li.children) as HTMLElement[];
    if (m.textContent !== meta) m.textContent = meta;
    if (w.textContent !== who) w.textContent = who;
  }
}

function names(ps: Present[]): string {
  return ps.map((p) => (p.client_id ? `${p.user} (${p.client_id})` : p.user)).join(", ");
}

function renderPresence() {
  if (current) {
    const here = presence.get(current.project.id) ?? [];
    $("present").textContent = here.length ? `Here now: ${names(here)}` : "Nobody else here now";
  } else {
    renderProjects();
  }
}

/** Adds the feed's new items on top and drops those past the cap. */
function renderFeed() {
  const ol = $("feed");
  const top = Number((ol.firstElementChild as HTMLElement | null)?.dataset.seq ?? -1);
  const fresh = feed.filter((ev) => ev.seq > top);
  if (fresh.length === feed.length) ol.replaceChildren();
  for (const ev of fresh.reverse()) {
    const li = el("li", { "data-seq": String(ev.seq) });
    li.append(el("span", { class: "op" }, ev.change.op), document.createTextNode(ev.change.path));
    li.append(el("div", { class: "meta" }, `seq ${ev.seq} · ${ev.origin.user} · ${new Date(ev.created_at).toLocaleTimeString()}`));
    ol.prepend(li);
  }
  while (ol.children.length > FEED_CAP) ol.lastElementChild?.remove();
}

/** The tree's folders (`a/b/` → its <ul>; "" → the root) and files
 * (path → its <li>), so that a live event changes one entry, not the tree. */
const dirUls = new Map<string, HTMLElement>();
const fileLis = new Map<string, HTMLElement>();

/** A child's sort key: its folder path or its file path. */
function keyOf(n: Element): string {
  const h = n as HTMLElement;
  return h.dataset.dir ?? (h.querySelector("button.file") as HTMLElement | null)?.dataset.path ?? "";
}

/** Puts `child` among `parent`'s children in path order. */
function insertSorted(parent: HTMLElement, child: HTMLElement, key: string) {
  const next = Array.from(parent.children).find((c) => keyOf(c) > key);
  parent.insertBefore(child, next ?? null);
}

function dirOf(dir: string): HTMLElement {
  const have = dirUls.get(dir);
  if (have) return have;
  const parent = dir.slice(0, dir.slice(0, -1).lastIndexOf("/") + 1);
  const li = el("li", { class: "dir", "data-dir": dir });
  li.append(el("span", { class: "dirname", tabindex: "0" }, dir.slice(parent.length)));
  const ul = el("ul", { "data-dir": dir });
  li.append(ul);
  insertSorted(dirOf(parent), li, dir);
  dirUls.set(dir, ul);
  return ul;
}

function fileEntry(f: TreeFile): HTMLElement {
  const slash = f.path.lastIndexOf("/");
  const b = el("button", { type: "button", class: "file", "data-path": f.path }, f.path.slice(slash + 1));
  b.title = `${f.size} bytes, seq ${f.seq}`;
  b.addEventListener("click", () => void openFile(f.path));
  const li = el("li");
  li.append(b);
  return li;
}

function treeCount() {
  if (!current) return;
  const n = current.tree.size;
  $("tree-at").textContent = current.atSeq === null ? `(${n} at head, live)` : `(${n} at seq ${current.atSeq})`;
}

/** The whole tree as nested folders; each folder (and the root) takes drops. */
function renderTree() {
  if (!current) return;
  const root = $("tree");
  root.replaceChildren();
  dirUls.clear();
  fileLis.clear();
  dirUls.set("", root);
  const files = [...current.tree.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  for (const f of files) {
    const li = fileEntry(f);
    dirOf(f.path.slice(0, f.path.lastIndexOf("/") + 1)).append(li);
    fileLis.set(f.path, li);
  }
  treeCount();
}

/** Brings the entries of `paths` in line with the tree, and only those. */
function patchTree(paths: Set<string>) {
  if (!current) return;
  for (const path of paths) {
    const f = current.tree.get(path);
    const li = fileLis.get(path);
    if (f && li) {
      (li.firstElementChild as HTMLElement).title = `${f.size} bytes, seq ${f.seq}`;
    } else if (f) {
      const entry = fileEntry(f);
      insertSorted(dirOf(path.slice(0, path.lastIndexOf("/") + 1)), entry, path);
      fileLis.set(path, entry);
    } else if (li) {
      let ul = li.parentElement;
      li.remove();
      fileLis.delete(path);
      // Folders left empty go too.
      while (ul && ul.id !== "tree" && ul.children.length === 0) {
        const dirLi = ul.parentElement;
        dirUls.delete(ul.dataset.dir ?? "");
        ul = dirLi?.parentElement ?? null;
        dirLi?.remove();
      }
    }
  }
  treeCount();
}

async function loadTree(atSeq: number | null): Promise<Map<string, TreeFile>> {
  if (!current) return new Map();
  const out = new Map<string, TreeFile>();
  let after: string | null = null;
  let at: number | null = atSeq;
  for (;;) {
    const q = new URLSearchParams({ limit: "1000" });
    if (at !== null) q.set("at_seq", String(at));
    if (after) q.set("after", after);
    const page = await json<{ at_seq: number; files: TreeFile[]; next: string | null }>(`/api/projects/${current.project.id}/tree?${q}`);
    at = page.at_seq;
    for (const f of page.files) out.set(f.path, f);
    if (!page.next) break;
    after = page.next;
  }
  if (atSeq === null && at !== null) current.head = Math.max(current.head, at);
  return out;
}

async function openProject(id: string) {
  const p = projects.find((x) => x.id === id);
  if (!p) {
    say("No such project, or you are not a member of it.");
    location.hash = "";
    return;
  }
  current = { project: p, head: p.head_seq, atSeq: null, tree: new Map(), loadedAt: 0 };
  feed.length = 0;
  show("project-view");
  $("project-title").textContent = p.name;
  $("file-view").hidden = true;
  current.tree = await loadTree(null);
  current.loadedAt = current.head;
  const slider = $("seq") as HTMLInputElement;
  slider.max = String(current.head);
  slider.value = String(current.head);
  $("seq-out").textContent = `${current.head} (live)`;
  // The recent past in the feed, then live events on top.
  const since = Math.max(0, current.head - 50);
  const page = await json<{ events: ProjectEvent[] }>(`/api/projects/${id}/events?since_seq=${since}&limit=50`);
  for (const ev of page.events) feed.unshift(ev);
  renderFeed();
  renderTree();
  renderPresence();
}

async function atSeq(value: number) {
  if (!current) return;
  const live = value >= current.head;
  current.atSeq = live ? null : value;
  $("seq-out").textContent = live ? `${current.head} (live)` : String(value);
  current.tree = await loadTree(current.atSeq);
  if (live) current.loadedAt = current.head;
  renderTree();
}

// ----- a file: versions, download, preview -----------------------------

const TEXT = /\.(txt|md|json|js|ts|css|html|csv|rs|py|toml|yaml|yml|xml|log|sh)$/i;
const IMAGE = /\.(png|jpe?g|gif|webp|svg)$/i;

async function openFile(path: string) {
  if (!current) return;
  const view = $("file-view");
  view.hidden = false;
  $("file-title").textContent = path;
  $("file-status").textContent = "";
  $("file-text").hidden = true;
  ($("file-image") as HTMLImageElement).hidden = true;
  const hist = await json<{ events: ProjectEvent[] }>(`/api/projects/${current.project.id}/history?path=${encodeURIComponent(path)}`);
  const ol = $("versions");
  ol.replaceChildren();
  hist.events.forEach((ev, i) => {
    const li = el("li", { "data-seq": String(ev.seq) });
    li.append(el("span", {}, `seq ${ev.seq} · ${ev.change.op} · ${ev.origin.user} · ${new Date(ev.created_at).toLocaleString()}${ev.change.size !== null ? ` · ${ev.change.size} bytes` : ""} `));
    if (ev.change.hash) {
      const d = el("button", { type: "button", class: "download" }, "Download");
      d.addEventListener("click", () => void download(ev, true));
      const v = el("button", { type: "button", class: "view" }, "View");
      v.addEventListener("click", () => void download(ev, false));
      li.append(d, v);
      const prev = hist.events.slice(i + 1).find((e) => e.change.hash);
      if (prev && TEXT.test(path)) {
        const diff = el("button", { type: "button", class: "diff" }, "Changes");
        diff.addEventListener("click", () => void showDiff(prev, ev));
        li.append(diff);
      }
    }
    ol.append(li);
  });
}

/** The bytes of a version, hashed piece by piece as they arrive; refused
 * (with the reason shown) unless they hash to the version's hash. */
async function fetchVerified(ev: ProjectEvent): Promise<Uint8Array> {
  if (!current || !ev.change.hash) throw new Error("a delete has no content");
  // Not from the browser's cache: the bytes checked are the bytes served now.
  const res = await api(`/api/projects/${current.project.id}/blobs/${ev.change.hash}`, { cache: "no-store" });
  const reader = res.body?.getReader();
  if (!reader) throw new Error("no body");
  const hasher = new Hasher();
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    hasher.update(value);
    parts.push(value);
    total += value.length;
  }
  const got = hasher.finalize();
  hasher.free();
  if (got !== ev.change.hash) {
    throw new Error(`Refused: the downloaded bytes of ${ev.change.path} (seq ${ev.seq}) hash to ${got.slice(0, 12)}…, not ${ev.change.hash.slice(0, 12)}…; they were not saved.`);
  }
  const all = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}

async function download(ev: ProjectEvent, save: boolean) {
  const status = $("file-status");
  status.className = "";
  status.textContent = `Downloading seq ${ev.seq}…`;
  let bytes: Uint8Array;
  try {
    bytes = await fetchVerified(ev);
  } catch (e) {
    status.className = "error";
    status.textContent = (e as Error).message;
    $("file-text").hidden = true;
    ($("file-image") as HTMLImageElement).hidden = true;
    return;
  }
  status.textContent = `Verified: ${bytes.length} bytes, BLAKE3 ${ev.change.hash?.slice(0, 12)}…`;
  const name = ev.change.path.split("/").pop() ?? "file";
  if (save) {
    const url = URL.createObjectURL(new Blob([bytes as BlobPart]));
    const a = el("a", { href: url, download: name }) as HTMLAnchorElement;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    return;
  }
  if (IMAGE.test(name)) {
    const img = $("file-image") as HTMLImageElement;
    img.src = URL.createObjectURL(new Blob([bytes as BlobPart], { type: name.endsWith(".svg") ? "image/svg+xml" : "" }));
    img.alt = name;
    img.hidden = false;
    $("file-text").hidden = true;
  } else {
    const pre = $("file-text");
    pre.textContent = new TextDecoder().decode(bytes.slice(0, 1 << 20));
    pre.hidden = false;
    ($("file-image") as HTMLImageElement).hidden = true;
  }
}

/** A line diff (longest common subsequence) of two small text versions. */
async function showDiff(older: ProjectEvent, newer: ProjectEvent) {
  const status = $("file-status");
  try {
    const [a, b] = await Promise.all([fetchVerified(older), fetchVerified(newer)]);
    const x = new TextDecoder().decode(a).split("\n");
    const y = new TextDecoder().decode(b).split("\n");
    if (x.length * y.length > 4_000_000) throw new Error("too large to compare here");
    const n = x.length;
    const m = y.length;
    const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
    for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    const out: string[] = [];
    let i = 0;
    let j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && x[i] === y[j]) out.push(`  ${x[i++]}`), j++;
      else if (j < m && (i >= n || lcs[i][j + 1] >= lcs[i + 1][j])) out.push(`+ ${y[j++]}`);
      else out.push(`- ${x[i++]}`);
    }
    const pre = $("file-text");
    pre.textContent = out.join("\n");
    pre.hidden = false;
    status.className = "";
    status.textContent = `Changes from seq ${older.seq} to seq ${newer.seq}`;
  } catch (e) {
    status.className = "error";
    status.textContent = (e as Error).message;
  }
}

// ----- upload by drag and drop -----------------------------------------

let limits: Promise<{ max_blob_bytes: number } | undefined> | undefined;

/** The server's per-file limit (`GET /api/limits`), asked once. A file over
 * it is refused here: the server's 413 comes before the browser has sent the
 * body, and the browser then reports only "Failed to fetch". */
async function maxBlobBytes(): Promise<number | undefined> {
  limits ??= json<{ max_blob_bytes: number }>("/api/limits").catch(() => {
    limits = undefined; // asked again next time
    return undefined;
  });
  return (await limits)?.max_blob_bytes;
}

function mib(n: number): string {
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

async function upload(dir: string, files: FileList) {
  if (!current || !socket) return;
  if (current.atSeq !== null) {
    say("Go back to live (move the slider to the end) to upload.");
    return;
  }
  for (const file of Array.from(files)) {
    let path: string;
    try {
      path = check_path(dir + file.name);
    } catch (e) {
      say(`Cannot upload ${file.name}: ${e}`);
      continue;
    }
    const max = await maxBlobBytes();
    if (max !== undefined && file.size > max) {
      say(`Cannot upload ${path}: ${mib(file.size)} is over this server's limit of ${mib(max)} per file.`);
      continue;
    }
    const bytes = new Uint8Array(await file.arrayBuffer());
    const hash = hash_hex(bytes);
    try {
      await api(`/api/projects/${current.project.id}/blobs/${hash}`, { method: "PUT", body: bytes as BodyInit, headers: { "content-type": "application/octet-stream" } });
    } catch (e) {
      say(`Cannot upload ${path}: ${(e as Error).message}`);
      continue;
    }
    const before = current.tree.get(path);
    const change = {
      path,
      op: before ? "update" : "create",
      hash,
      size: bytes.length,
      mtime: new Date(file.lastModified).toISOString(),
      change_id: `${clientId()}-${Date.now()}-${hash.slice(0, 8)}`,
      base_hash: before ? before.hash : null,
    };
    const ack: Ack = await socket
      .timeout(20000)
      .emitWithAck("files:update", { project_id: current.project.id, client_id: clientId(), changes: [change] })
      .catch((e: Error) => ({ ok: false, error: { code: "timeout", message: e.message } }));
    if (!ack.ok) say(`${path} was not changed: ${ack.error?.message ?? "refused"}`);
    else say(`Uploaded ${path}`, true);
  }
}

function wireDrops() {
  const zone = $("project-view");
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    (e.target as HTMLElement).closest("[data-dir]")?.classList.add("drop");
  });
  zone.addEventListener("dragleave", (e) => (e.target as HTMLElement).closest("[data-dir]")?.classList.remove("drop"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    const target = (e.target as HTMLElement).closest("[data-dir]") as HTMLElement | null;
    target?.classList.remove("drop");
    const dir = target?.dataset.dir ?? "";
    if (e.dataTransfer?.files.length) void upload(dir, e.dataTransfer.files);
  });
}

// ----- routing ---------------------------------------------------------

function route() {
  if (!token()) {
    show("sign-in");
    return;
  }
  const m = /^#p=(.+)$/.exec(location.hash);
  if (m) {
    void openProject(decodeURIComponent(m[1])).catch((e) => say((e as Error).message));
  } else {
    current = undefined;
    show("projects-view");
    renderProjects();
  }
}

async function main() {
  await init();
  $("sign-in-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = $("token") as HTMLInputElement;
    const t = input.value.trim();
    input.value = "";
    void signIn(t);
  });
  $("sign-out").addEventListener("click", () => signOut(""));
  $("seq").addEventListener("change", (e) => void atSeq(Number((e.target as HTMLInputElement).value)));
  $("seq").addEventListener("input", (e) => ($("seq-out").textContent = (e.target as HTMLInputElement).value));
  window.addEventListener("hashchange", route);
  wireDrops();
  const t = token();
  if (t) await signIn(t);
  else route();
  document.body.dataset.ready = "true";
}

void main();
