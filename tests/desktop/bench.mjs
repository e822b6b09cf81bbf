// `make bench`, desktop part: the window open on a project receiving 50
// events/s for a minute; prints the app's RSS and CPU, the feed's length
// and DOM size, and how long the page takes to answer. Figures, not asserts.

import { readFileSync, readdirSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { blake3 } from "@noble/hashes/blake3.js";
import { World, sleep } from "./harness.mjs";

const SECONDS = Number(process.env.BENCH_SECONDS || 60);
const RATE = 50;
const w = new World();

function appPid() {
  for (const d of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      if (readFileSync(`/proc/${d}/comm`, "utf8").trim().startsWith("vidsync-deskto")) return Number(d);
    } catch {}
  }
  throw new Error("app process not found");
}
function sample(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k) => Number(status.match(new RegExp(`${k}:\\s+(\\d+)`))[1]);
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024, cpuTicks: Number(stat[11]) + Number(stat[12]) };
}

try {
  const url = await w.startServer();
  const appDir = join(w.root, "app-config");
  const token = w.token("alice");
  const bobToken = w.token("bob");
  w.cli(appDir, "login", "--server", url, "--token", token);
  await w.openApp(appDir);
  const folder = join(w.root, "site");
  mkdirSync(folder);
  writeFileSync(join(folder, "readme.txt"), "x");
  await w.shareThroughUi(folder);
  const projectId = JSON.parse(w.cli(appDir, "status", "--json"))[0].project_id;
  const bobDir = join(w.root, "bob-config");
  w.cli(bobDir, "login", "--server", url, "--token", bobToken);
  w.cli(bobDir, "join", w.cli(appDir, "invite", projectId), join(w.root, "bob"), "--mode", "send");

  // One small blob, named by many paths.
  const bytes = Buffer.from("bench content\n");
  const blake = Buffer.from(blake3(bytes)).toString("hex");
  const auth = { authorization: `Bearer ${bobToken}` };
  const put = await fetch(`${url}/api/projects/${projectId}/blobs/${blake}`, { method: "PUT", headers: auth, body: bytes });
  if (put.status !== 201) throw new Error(`blob upload: ${put.status}`);

  const pid = appPid();
  const hz = 100;
  const before = sample(pid);
  const started = Date.now();
  let sent = 0;
  let worstAnswer = 0;
  const answers = [];
  let running = true;
  // The page is asked for its feed and DOM size every 2 s, beside the stream.
  const sampler = (async () => {
    while (running) {
      const t0 = Date.now();
      const dom = await w.script("return [document.querySelectorAll('#feed li').length, document.getElementsByTagName('*').length]");
      const took = Date.now() - t0;
      worstAnswer = Math.max(worstAnswer, took);
      answers.push({ at: Math.round((Date.now() - started) / 1000), feed: dom[0], nodes: dom[1], took });
      await sleep(2000);
    }
  })();
  while (Date.now() - started < SECONDS * 1000) {
    const due = Math.floor(((Date.now() - started) / 1000) * RATE);
    while (sent < due) {
      const change = { path: `stream/f${sent}.txt`, op: "create", hash: blake, size: bytes.length, mtime: null, change_id: `b${sent}` };
      const r = await fetch(`${url}/api/projects/${projectId}/files/update`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ client_id: "bench", changes: [change] }),
      });
      if (r.status !== 200) throw new Error(`post: ${r.status}`);
      sent++;
    }
    await sleep(5);
  }
  running = false;
  await sampler;
  const elapsed = (Date.now() - started) / 1000;
  const after = sample(pid);
  const last = await w.script("return [document.querySelectorAll('#feed li').length, document.getElementsByTagName('*').length]");
  console.log(`desktop: ${sent} events in ${elapsed.toFixed(0)} s (${(sent / elapsed).toFixed(0)}/s) into an open window`);
  console.log(`  app (Rust side) RSS ${before.rss.toFixed(0)} -> ${after.rss.toFixed(0)} MiB (peak ${after.hwm.toFixed(0)} MiB), CPU ${(((after.cpuTicks - before.cpuTicks) / hz / elapsed) * 100).toFixed(0)}% of one core`);
  console.log(`  page: feed items ${last[0]} (cap 200), DOM elements ${last[1]}; answered WebDriver scripts in <= ${worstAnswer} ms`);
  const pick = answers.filter((_, i) => i % Math.ceil(answers.length / 6 || 1) === 0);
  console.log(`  samples (s: feed/DOM/answer ms): ${pick.map((a) => `${a.at}: ${a.feed}/${a.nodes}/${a.took}`).join(", ")}`);
  await w.shot("bench-end");
} finally {
  await w.close();
}
