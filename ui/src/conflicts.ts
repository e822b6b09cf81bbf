// The conflicts list: each conflict copy in a project's folder, with "Keep
// mine" (the copy replaces the file), "Keep theirs" (the copy goes) and
// "Keep both" (the copy stays as a file of its own). The Rust side does the
// file work; the engine sends it on like any other change.

import { invoke } from "@tauri-apps/api/core";
import type { ConflictCopy } from "./generated/ConflictCopy";
import type { FolderLink } from "./generated/FolderLink";
import type { Keep } from "./generated/Keep";
import type { UiError } from "./generated/UiError";
import { $ } from "./dom";

let current: FolderLink | undefined;

function say(text: string, error = false) {
  const out = $("conflicts-result");
  out.textContent = text;
  out.className = error ? "error" : "";
}

async function call<T>(cmd: string, args: Record<string, unknown>): Promise<T | undefined> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    say((e as UiError)?.message ?? String(e), true);
    return undefined;
  }
}

const choices: [Keep, string][] = [
  ["mine", "Keep mine"],
  ["theirs", "Keep theirs"],
  ["both", "Keep both"],
];

async function load() {
  if (!current) return;
  const link = current;
  const list = (await call<ConflictCopy[]>("conflicts", { projectId: link.project_id })) ?? [];
  const body = $("conflicts-list");
  body.replaceChildren();
  $("conflicts-empty").hidden = list.length > 0;
  for (const c of list) {
    const li = document.createElement("li");
    li.dataset.copy = c.copy;
    const what = document.createElement("div");
    const strong = document.createElement("strong");
    strong.textContent = c.original;
    const copy = document.createElement("div");
    copy.className = "path";
    copy.textContent = `your version: ${c.copy}`;
    what.append(strong, copy);
    const actions = document.createElement("div");
    actions.className = "actions";
    for (const [keep, label] of choices) {
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.keep = keep;
      b.textContent = label;
      b.addEventListener("click", async () => {
        const msg = await call<string>("resolve_conflict", { projectId: link.project_id, copy: c.copy, keep });
        if (msg) {
          say(msg);
          await load();
        }
      });
      actions.append(b);
    }
    li.append(what, actions);
    body.append(li);
  }
}

/** Opens the conflicts dialog on `link`'s project. */
export async function openConflicts(link: FolderLink) {
  current = link;
  $("conflicts-title").textContent = `Conflicts in ${link.name}`;
  say("");
  ($("conflicts") as HTMLDialogElement).showModal();
  await load();
}

export function wireConflicts() {
  $("close-conflicts").addEventListener("click", () => ($("conflicts") as HTMLDialogElement).close());
}
