// The history view: a project's files, a file's versions (who, when, from
// which client) with "Restore this version", and "Rewind to…" with a
// preview of what would change. Everything goes through Tauri commands;
// the server does the restoring, and the engine brings the folder along.

import { invoke } from "@tauri-apps/api/core";
import type { Change } from "./generated/Change";
import type { FolderLink } from "./generated/FolderLink";
import type { ProjectEvent } from "./generated/ProjectEvent";
import type { UiError } from "./generated/UiError";
import { $, el } from "./dom";
import { formatBytes } from "./state";

let current: FolderLink | undefined;

/** Invokes a command; a refusal is shown in the dialog, and is `undefined`. */
async function call<T>(cmd: string, args: Record<string, unknown> = {}): Promise<T | undefined> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    const err = e as UiError;
    const out = $("history-result");
    out.textContent = err?.message ?? String(e);
    out.className = "error";
    return undefined;
  }
}

function say(text: string) {
  const out = $("history-result");
  out.textContent = text;
  out.className = "";
}

/** Opens the history dialog on `link`'s project. */
export async function openHistory(link: FolderLink) {
  current = link;
  $("history-title").textContent = `History of ${link.name}`;
  say("");
  $("versions").replaceChildren();
  $("versions-title").textContent = "Pick a file to see its versions.";
  $("rewind-preview").replaceChildren();
  ($("history") as HTMLDialogElement).showModal();
  const files = await call<string[]>("project_files", { projectId: link.project_id });
  const list = $("history-files");
  list.replaceChildren();
  for (const path of files ?? []) {
    const b = el("button", { type: "button", "data-path": path }, path);
    b.addEventListener("click", () => void showVersions(path));
    const li = el("li");
    li.append(b);
    list.append(li);
  }
  $("history-files-empty").hidden = (files ?? []).length > 0;
}

async function showVersions(path: string) {
  if (!current) return;
  const link = current;
  for (const b of Array.from($("history-files").querySelectorAll("button"))) {
    b.setAttribute("aria-pressed", String(b.dataset.path === path));
  }
  const versions = (await call<ProjectEvent[]>("file_history", { projectId: link.project_id, path })) ?? [];
  $("versions-title").textContent = `${path}: ${versions.length} version(s), newest first`;
  const body = $("versions");
  body.replaceChildren();
  versions.forEach((v, i) => {
    const tr = el("tr", { "data-seq": String(v.seq) });
    const when = new Date(v.created_at).toLocaleString();
    tr.append(
      el("td", {}, String(v.seq)),
      el("td", {}, when),
      el("td", {}, v.origin.user),
      el("td", { class: "client" }, v.origin.client_id),
      el("td", {}, v.change.op),
      el("td", { class: "num" }, v.change.size === null ? "" : formatBytes(v.change.size)),
    );
    const cell = el("td");
    if (i === 0) {
      cell.append(el("span", { class: "hint" }, "current"));
    } else if (v.change.op !== "delete") {
      const b = el("button", { type: "button", class: "restore" }, "Restore this version");
      b.addEventListener("click", async () => {
        const msg = await call<string>("restore_version", { projectId: link.project_id, path, seq: v.seq });
        if (msg) {
          say(msg);
          await showVersions(path);
        }
      });
      cell.append(b);
    }
    tr.append(cell);
    body.append(tr);
  });
}

function describe(c: Change): string {
  switch (c.op) {
    case "delete":
      return `delete ${c.path}`;
    case "create":
      return `bring back ${c.path}`;
    default:
      return `restore ${c.path}`;
  }
}

async function preview() {
  if (!current) return;
  const seq = Number(($("rewind-seq") as HTMLInputElement).value);
  const out = $("rewind-preview");
  out.replaceChildren();
  const changes = await call<Change[]>("rewind_preview", { projectId: current.project_id, seq });
  if (!changes) return;
  if (changes.length === 0) {
    out.append(el("li", {}, `Already as it was at seq ${seq}: nothing would change.`));
    return;
  }
  for (const c of changes.slice(0, 200)) out.append(el("li", { "data-op": c.op }, describe(c)));
  if (changes.length > 200) out.append(el("li", {}, `… and ${changes.length - 200} more`));
  say(`Rewinding to seq ${seq} changes ${changes.length} path(s).`);
}

async function rewind() {
  if (!current) return;
  const seq = Number(($("rewind-seq") as HTMLInputElement).value);
  const msg = await call<string>("rewind", { projectId: current.project_id, seq });
  if (msg) {
    say(msg);
    $("rewind-preview").replaceChildren();
  }
}

/** Wires the dialog's own controls (once, at start). */
export function wireHistory() {
  $("close-history").addEventListener("click", () => ($("history") as HTMLDialogElement).close());
  $("rewind-preview-button").addEventListener("click", () => void preview());
  $("rewind-button").addEventListener("click", () => void rewind());
}
