// `make bench`, the page: a tab open on a project that receives 50 events/s
// for a minute. Prints the tab's JS heap, DOM nodes and main-thread CPU at
// the start and the end (from Chromium's own Performance metrics), and the
// feed's length (capped). Figures only; nothing is asserted.
// Env: VIDSYNC_SERVER_BIN.

import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SERVER, quiet, roots, until, startServer, Browser, cleanUp, sleep } from "./harness.mjs";

const RATE = 50;
const SECONDS = Number(process.env.SECONDS_OF_EVENTS ?? 60);

async function metrics(b) {
  const m = await b.wd("POST", b.s("/goog/cdp/execute"), { cmd: "Performance.getMetrics", params: {} });
  return Object.fromEntries(m.metrics.map((x) => [x.name, x.value]));
}

async function main() {
  const root = mkdtempSync(join(tmpdir(), "vidsync-web-bench-"));
  roots.push(root);
  const dataDir = join(root, "data");
  const url = await startServer(dataDir);
  const token = execFileSync(SERVER, ["user", "add", "bench", "--data-dir", dataDir], { env: quiet }).toString().trim();
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  const project = await (await fetch(`${url}/api/projects`, { method: "POST", headers, body: JSON.stringify({ name: "bench" }) })).json();
  const b = new Browser();
  await b.open(1280, 900);
  try {
    await b.go(`${url}/`);
    await until("the page", async () => (await b.script("return document.body.dataset.ready")) === "true");
    await b.type("#token", token);
    await b.click("#sign-in-form button");
    await until("the project list", async () => (await b.text("#projects"))?.includes("bench"));
    await b.click("#projects a");
    await until("live", async () => (await b.text("#connection")) === "live");
    await b.wd("POST", b.s("/goog/cdp/execute"), { cmd: "Performance.enable", params: {} });
    await b.wd("POST", b.s("/goog/cdp/execute"), { cmd: "HeapProfiler.collectGarbage", params: {} });
    const start = await metrics(b);
    const t0 = Date.now();
    let sent = 0;
    while (Date.now() - t0 < SECONDS * 1000) {
      const due = Math.floor(((Date.now() - t0) / 1000) * RATE);
      while (sent < due) {
        const path = `d${sent % 20}/f${sent % 500}.txt`;
        const hash = sent.toString(16).padStart(64, "0");
        const r = await fetch(`${url}/api/projects/${project.id}/files/update`, {
          method: "POST",
          headers,
          body: JSON.stringify({ client_id: "bench", changes: [{ path, op: "update", hash, size: sent }] }),
        });
        if (!r.ok) throw new Error(`post: ${r.status}`);
        sent += 1;
      }
      await sleep(5);
    }
    await until("the last event in the feed", async () => (await b.script("return document.querySelector('#feed li')?.dataset.seq")) === String(sent));
    await b.wd("POST", b.s("/goog/cdp/execute"), { cmd: "HeapProfiler.collectGarbage", params: {} });
    const end = await metrics(b);
    const wall = (Date.now() - t0) / 1000;
    const mb = (x) => (x / 1048576).toFixed(1);
    const feed = await b.script("return document.querySelectorAll('#feed li').length");
    const files = await b.script("return document.querySelectorAll('#tree button.file').length");
    console.log(`page: ${sent} events at ${RATE}/s over ${wall.toFixed(0)} s into one open project tab (headless Chromium)`);
    console.log(`  JS heap ${mb(start.JSHeapUsedSize)} MiB -> ${mb(end.JSHeapUsedSize)} MiB (after GC); DOM nodes ${start.Nodes} -> ${end.Nodes}; feed ${feed} items (cap 200); tree ${files} files`);
    console.log(`  main thread busy ${(end.TaskDuration - start.TaskDuration).toFixed(2)} s of ${wall.toFixed(0)} s (${((100 * (end.TaskDuration - start.TaskDuration)) / wall).toFixed(1)}%), script ${(end.ScriptDuration - start.ScriptDuration).toFixed(2)} s, layout ${(end.LayoutDuration - start.LayoutDuration).toFixed(2)} s`);
  } finally {
    await b.close();
    cleanUp();
  }
}

main().catch((e) => {
  console.error(e);
  cleanUp();
  process.exit(1);
});
