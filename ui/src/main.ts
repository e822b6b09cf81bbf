// The desktop page: shows what the Rust side's engine reports and sends the
// user's actions to it as Tauri commands. It never talks to the server.

import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import { open } from "@tauri-apps/plugin-dialog";
import type { FolderLink } from "./generated/FolderLink";
import type { Overview } from "./generated/Overview";
import type { Notice } from "./generated/Notice";
import type { Snapshot } from "./generated/Snapshot";
import type { UiError } from "./generated/UiError";
import { openConflicts, wireConflicts } from "./conflicts";
import { openHistory, wireHistory } from "./history";
import { $, el } from "./dom";
import {
  badgeOf,
  emptyState,
  expire,
  formatBytes,
  headerConnection,
  progressView,
  reduce,
  type EngineEvent,
  type UiState,
} from "./state";

let state: UiState = emptyState();
let links: FolderLink[] = [];
/** Whether a server URL and token are saved (else the welcome screen). */
let signedIn = false;
/** The project whose view is open, if any. */
let openProject: string | null = null;

let messageTimer: ReturnType<typeof setTimeout> | undefined;
function showMessage(text: string, info = false) {
  const m = $("message");
  m.textContent = text;
  m.className = info ? "info" : "";
  m.hidden = text === "";
  clearTimeout(messageTimer);
  // Information fades; errors stay until the next message.
  if (info && text) messageTimer = setTimeout(() => showMessage(""), 6000);
}

async function call<T>(cmd: string, args: Record<string, unknown> = {}): Promise<T | undefined> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    const err = e as UiError;
    showMessage(err?.message ?? String(e));
    return undefined;
  }
}

let scheduled = false;
/** Renders at most once per frame, however many events arrive. */
function scheduleRender() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    render();
  });
}

let projectsKey = "";
function render() {
  const now = Date.now();
  state = { ...state, synced: expire(state.synced, now) };
  const statuses = Object.values(state.folders);
  const header = headerConnection(signedIn, links.length === 0 ? [] : statuses, state.connection, now);
  const c = $("connection");
  if (c.textContent !== header.text) {
    c.textContent = header.text;
    c.className = `conn conn-${header.kind}`;
  }
  $("welcome").hidden = signedIn;
  $("main").hidden = !signedIn;
  // The project list is rebuilt only when something in it changed.
  const key = JSON.stringify([links, links.map((l) => state.folders[l.project_id]?.badge), statuses.map((s) => s.error)]);
  if (key !== projectsKey) {
    projectsKey = key;
    renderProjects();
  }
  renderProjectView();
  renderFeed();
  renderSynced();
}

function renderProjects() {
  const list = $("projects");
  list.replaceChildren();
  $("projects-empty").hidden = links.length > 0;
  for (const link of links) {
    const st = state.folders[link.project_id];
    const badge = badgeOf(st, link.paused);
    const li = el("li", { "data-project": link.project_id });
    const title = el("div");
    const open = el("button", { type: "button", class: "open-project", title: "Open the project view" }, link.name);
    open.addEventListener("click", () => openProjectView(link.project_id));
    title.append(open, el("div", { class: "path" }, `${link.path} · ${link.mode}`));
    const b = el("span", { class: `badge badge-${badge.kind}`, tabindex: "0", "data-testid": "badge" }, badge.text);
    if (st?.error) {
      b.title = st.error;
      b.addEventListener("click", () => showMessage(st.error ?? ""));
    }
    const actions = el("div", { class: "actions" });
    const pause = el("button", { type: "button" }, link.paused ? "Resume" : "Pause");
    pause.addEventListener("click", async () => {
      await call("pause_folder", { projectId: link.project_id, paused: !link.paused });
      await refresh();
    });
    const invite = el("button", { type: "button" }, "Invite");
    invite.addEventListener("click", async () => {
      const code = await call<string>("invite", { projectId: link.project_id });
      if (code) showMessage(`Invite code for ${link.name}: ${code}`, true);
    });
    const remove = el("button", { type: "button" }, "Remove");
    remove.addEventListener("click", async () => {
      await call("remove_folder", { projectId: link.project_id });
      await refresh();
    });
    const history = el("button", { type: "button", class: "history" }, "History…");
    history.addEventListener("click", () => void openHistory(link));
    actions.append(pause, invite, history, remove);
    if (badge.kind === "conflict") {
      const conflicts = el("button", { type: "button", class: "conflicts" }, "Conflicts…");
      conflicts.addEventListener("click", () => void openConflicts(link));
      actions.prepend(conflicts);
    }
    li.append(title, b, actions);
    list.append(li);
  }
}

/** Adds the new feed items on top and drops the ones past the cap; with a
 * project open, only that project's. */
let feedFilter: string | null = null;
function renderFeed() {
  const feed = $("feed");
  if (feedFilter !== openProject) {
    feedFilter = openProject;
    feed.replaceChildren();
    const link = links.find((l) => l.project_id === openProject);
    $("activity-title").textContent = link ? `Activity in ${link.name}` : "Activity";
  }
  const items = openProject ? state.feed.filter((f) => f.project_id === openProject) : state.feed;
  $("feed-empty").hidden = items.length > 0;
  const first = (feed.firstElementChild as HTMLElement | null)?.dataset.key;
  const fresh = [];
  for (const item of items) {
    if (item.key === first) break;
    fresh.push(item);
  }
  for (const item of fresh.reverse()) {
    const li = el("li", { "data-path": item.path, "data-key": item.key });
    li.append(el("span", { class: "op" }, item.op), document.createTextNode(item.path));
    li.append(el("div", { class: "meta" }, `${item.who} · ${new Date(item.when).toLocaleTimeString()}`));
    feed.prepend(li);
  }
  while (feed.children.length > items.length) feed.lastElementChild?.remove();
}

/** When the open project's overview was last asked for, and its seq then. */
let overviewAsked = 0;
let overviewSeq = -1;

function openProjectView(projectId: string) {
  openProject = projectId;
  overviewAsked = 0;
  overviewSeq = -1;
  for (const id of ["pv-files", "pv-size", "pv-last", "pv-owner"]) $(id).textContent = "…";
  $("projects-section").hidden = true;
  $("project-view").hidden = false;
  render();
  ($("pv-back") as HTMLButtonElement).focus();
}

function closeProjectView() {
  openProject = null;
  $("project-view").hidden = true;
  $("projects-section").hidden = false;
  render();
}

/** The figures from the server: asked again when the project moved on
 * (at most every 2 s). */
async function loadOverview(projectId: string) {
  const ov = await call<Overview>("project_overview", { projectId });
  if (!ov || openProject !== projectId) return;
  $("pv-files").textContent = `${ov.files.toLocaleString()}${ov.truncated ? "+" : ""}`;
  $("pv-size").textContent = formatBytes(ov.bytes);
  const last = ov.last_change;
  $("pv-last").textContent = last
    ? `${last.change.op} ${last.change.path} by ${last.origin.user}, ${new Date(last.created_at).toLocaleString()}`
    : "nothing yet";
  $("pv-owner").textContent = ov.role === "owner" ? `${ov.owner} (you)` : `${ov.owner} · you are a member`;
}

function renderProjectView() {
  const pid = openProject;
  if (!pid) return;
  const link = links.find((l) => l.project_id === pid);
  if (!link) return closeProjectView();
  const st = state.folders[pid];
  const now = Date.now();
  const seq = st?.last_seq ?? 0;
  if (seq !== overviewSeq && now - overviewAsked > 2000) {
    overviewAsked = now;
    overviewSeq = seq;
    void loadOverview(pid);
  }
  $("pv-name").textContent = link.name;
  $("pv-path").textContent = link.path;
  const badge = badgeOf(st, link.paused);
  const b = $("pv-badge");
  b.textContent = badge.text;
  b.className = `badge badge-${badge.kind}`;
  $("pv-mode").textContent = { "send-receive": "send & receive", receive: "receive only", send: "send only" }[link.mode];
  const pv = progressView(st?.transfer, state.meters[pid]);
  $("pv-progress").hidden = pv === null;
  if (pv) {
    ($("pv-bar") as HTMLProgressElement).value = pv.fraction;
    $("pv-progress-text").textContent = pv.text;
  }
  const present = st?.present ?? [];
  const list = $("pv-present");
  const key = JSON.stringify(present);
  if (list.dataset.key !== key) {
    list.dataset.key = key;
    list.replaceChildren();
    if (present.length === 0) list.append(el("li", { class: "empty" }, "Nobody connected (or this app is offline)."));
    for (const p of present) {
      const li = el("li", { "data-client": p.client_id ?? "" });
      li.append(el("strong", {}, p.user));
      const you = p.client_id !== null && p.client_id === myClientId;
      li.append(document.createTextNode(` ${you ? "· this app" : p.client_id ? `· ${p.client_id}` : ""}`));
      li.append(el("span", { class: "meta" }, ` since ${new Date(p.since).toLocaleTimeString()}`));
      list.append(li);
    }
  }
}

/** The newest few "Synced" badges; each fades after two seconds. */
function renderSynced() {
  const synced = $("synced");
  const showing = state.synced.slice(-5);
  const keys = showing.map((s) => `${s.project_id}:${s.path}:${s.until}`);
  for (const n of Array.from(synced.children)) {
    if (!keys.includes((n as HTMLElement).dataset.key ?? "")) n.remove();
  }
  const present = new Set(Array.from(synced.children).map((n) => (n as HTMLElement).dataset.key));
  showing.forEach((s, i) => {
    if (!present.has(keys[i])) synced.append(el("span", { "data-key": keys[i] }, `Synced: ${s.path}`));
  });
}

let myClientId: string | null = null;

function applySnapshot(snap: Snapshot) {
  links = snap.links;
  signedIn = Boolean(snap.server && snap.has_token);
  myClientId = snap.client_id;
  $("server-name").textContent = snap.server ?? "";
  ($("server-ca") as HTMLInputElement).value = snap.ca_file ?? "";
  ($("autostart") as HTMLInputElement).checked = snap.autostart;
  projectsKey = "";
  for (const s of snap.statuses) state = reduce(state, { type: "status_changed", status: s }, Date.now());
  ($("server-url") as HTMLInputElement).value = snap.server ?? "";
  ($("transport") as HTMLSelectElement).value = snap.transport;
  ($("debounce") as HTMLInputElement).value = String(snap.debounce_ms);
  render();
}

async function refresh() {
  const snap = await call<Snapshot>("snapshot");
  if (snap) applySnapshot(snap);
}

async function pickFolder(target: string) {
  const dir = await open({ directory: true, multiple: false });
  if (typeof dir === "string") ($(target) as HTMLInputElement).value = dir;
}

function settingsArgs() {
  return {
    server: ($("server-url") as HTMLInputElement).value.trim(),
    token: ($("server-token") as HTMLInputElement).value.trim(),
    transport: ($("transport") as HTMLSelectElement).value,
    debounceMs: Number(($("debounce") as HTMLInputElement).value) || 500,
    caFile: ($("server-ca") as HTMLInputElement).value.trim() || null,
  };
}

function welcomeArgs() {
  return {
    server: ($("welcome-server") as HTMLInputElement).value.trim(),
    token: ($("welcome-token") as HTMLInputElement).value.trim(),
    caFile: ($("welcome-ca") as HTMLInputElement).value.trim() || null,
  };
}

async function main() {
  // Listen first, then tell the Rust side we are ready: no event is lost.
  await listen<EngineEvent>("engine", (e) => {
    state = reduce(state, e.payload, Date.now());
    if (e.payload.type === "error") showMessage(e.payload.message);
    scheduleRender();
  });
  await listen("folders-changed", () => void refresh());
  // What the app raised as a desktop notification (a conflict) shows here
  // too, and stays until the next message.
  await listen<Notice>("notified", (e) => showMessage(e.payload.body));
  const snap = await call<Snapshot>("ready");
  if (snap) applySnapshot(snap);
  setInterval(scheduleRender, 250);
  // The page is ready for input: tests wait for this, not for static text.
  document.body.dataset.ready = "true";
}

/** The forms and buttons. Wired before anything is awaited, so a click that
 * comes early never falls through to the browser's own form submission
 * (which would reload the page and drop what was typed). */
function wireControls() {
  $("add-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const path = ($("add-path") as HTMLInputElement).value.trim();
    const name = ($("add-name") as HTMLInputElement).value.trim();
    const id = await call<string>("add_folder", { path, name: name || null });
    if (id) {
      showMessage(`Sharing ${path}`, true);
      await refresh();
    }
  });
  $("join-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const code = ($("join-code") as HTMLInputElement).value.trim();
    const path = ($("join-path") as HTMLInputElement).value.trim();
    const mode = ($("join-mode") as HTMLSelectElement).value;
    const id = await call<string>("join_project", { code, path, mode });
    if (id) {
      showMessage(`Joined; syncing into ${path}`, true);
      await refresh();
    }
  });
  $("welcome-test").addEventListener("click", async () => {
    const a = welcomeArgs();
    $("welcome-result").textContent = "Trying…";
    const r = await call<string>("test_connection", a);
    if (r) showMessage("");
    $("welcome-result").textContent = r ?? "Connection failed (see the message above).";
  });
  $("welcome-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const a = welcomeArgs();
    const snapNow = await call<Snapshot>("snapshot");
    const ok = await call("save_settings", {
      ...a,
      transport: snapNow?.transport ?? "websocket-first",
      debounceMs: snapNow?.debounce_ms ?? 500,
    });
    if (ok !== undefined) {
      showMessage("Connected. Share a folder, or join a project with a code.", true);
      await refresh();
      ($("add-path") as HTMLInputElement).focus();
    }
  });
  $("welcome-ca-browse").addEventListener("click", async () => {
    const f = await open({ directory: false, multiple: false, filters: [{ name: "PEM certificate", extensions: ["pem", "crt", "cer"] }] });
    if (typeof f === "string") ($("welcome-ca") as HTMLInputElement).value = f;
  });
  $("autostart").addEventListener("change", async () => {
    const box = $("autostart") as HTMLInputElement;
    const on = await call<boolean>("set_autostart", { enabled: box.checked });
    box.checked = on ?? !box.checked;
  });
  $("pv-back").addEventListener("click", closeProjectView);
  $("pv-open").addEventListener("click", () => {
    if (openProject) void call("open_folder", { projectId: openProject });
  });
  $("pv-invite").addEventListener("click", async () => {
    const link = links.find((l) => l.project_id === openProject);
    if (!link) return;
    const code = await call<string>("invite", { projectId: link.project_id });
    if (code) showMessage(`Invite code for ${link.name}: ${code}`, true);
  });
  $("pv-history").addEventListener("click", () => {
    const link = links.find((l) => l.project_id === openProject);
    if (link) void openHistory(link);
  });
  $("browse-add").addEventListener("click", () => void pickFolder("add-path"));
  $("browse-join").addEventListener("click", () => void pickFolder("join-path"));
  const dialog = $("settings") as HTMLDialogElement;
  $("open-settings").addEventListener("click", () => dialog.showModal());
  $("close-settings").addEventListener("click", () => dialog.close());
  $("test-connection").addEventListener("click", async () => {
    const a = settingsArgs();
    const r = await call<string>("test_connection", { server: a.server, token: a.token, caFile: a.caFile });
    // A success clears the refusal of an earlier try.
    if (r) showMessage("");
    $("settings-result").textContent = r ?? "Connection failed (see the message above).";
  });
  $("save-settings").addEventListener("click", async () => {
    const ok = await call("save_settings", settingsArgs());
    if (ok !== undefined) {
      $("settings-result").textContent = "Saved.";
      showMessage("");
      await refresh();
    }
  });
}

wireControls();
wireHistory();
wireConflicts();
void main();
