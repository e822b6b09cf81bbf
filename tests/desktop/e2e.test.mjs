// The desktop app end to end: the real window (under Xvfb), driven over
// WebDriver (tauri-driver + WebKitWebDriver) against a real server, with a
// second client (the `vidsync` CLI) on the same project.
// Env: VIDSYNC_SERVER_BIN, VIDSYNC_BIN, VIDSYNC_DESKTOP_BIN, SCREENSHOT_DIR.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { World, until, CLI } from "./harness.mjs";

const w = new World();
after(() => w.close());

test("link a folder in the window, see another client's change live, follow the server going away and back", async () => {
  const url = await w.startServer();
  const port = url.split(":").pop();
  const appDir = join(w.root, "app-config");
  const bobDir = join(w.root, "bob-config");
  w.cli(appDir, "login", "--server", url, "--token", w.token("alice"));
  w.cli(bobDir, "login", "--server", url, "--token", w.token("bob"));
  w.cli(appDir, "set", "--poll-interval-ms", "500");
  await w.openApp(appDir);

  // The empty state says what to do; then a folder is linked through the UI.
  await until("the page", async () => (await w.text("#projects-empty")).includes("Share a folder"));
  await w.shot("1-empty");
  const folder = join(w.root, "site");
  mkdirSync(folder);
  writeFileSync(join(folder, "readme.txt"), "hello from the app's folder\n");
  await w.shareThroughUi(folder);

  // A second client joins and writes a file.
  const projectId = JSON.parse(w.cli(appDir, "status", "--json"))[0].project_id;
  const code = w.cli(appDir, "invite", projectId);
  const bobFolder = join(w.root, "bob-site");
  w.cli(bobDir, "join", code, bobFolder, "--mode", "send-receive");
  w.spawn(CLI, ["--config-dir", bobDir, "run"], { stdio: "ignore", env: { ...process.env, RUST_LOG: "warn" } });
  await until("bob's copy", async () => existsSync(join(bobFolder, "readme.txt")));
  writeFileSync(join(bobFolder, "from-bob.txt"), "bob was here\n");
  const written = Date.now();
  // The feed and the "Synced" badge show it within 3 s.
  await until("the event in the feed", async () => (await w.text("#feed")).includes("from-bob.txt"), 3000);
  await until("the synced badge", async () => (await w.text("#synced")).includes("Synced: from-bob.txt"), 3000 - (Date.now() - written));
  console.log(`feed and badge showed bob's change ${Date.now() - written} ms after the write`);
  await w.shot("2-live-feed");

  // The server goes away: offline. It comes back: live.
  w.server.kill("SIGTERM");
  await until("server exit", () => Promise.resolve(w.server.exitCode !== null));
  await until("offline", async () => (await w.text("#connection")) === "offline");
  await w.shot("3-offline");
  await w.startServer(`127.0.0.1:${port}`);
  await until("live again", async () => (await w.text("#connection")) === "live", 30000);
  await w.shot("4-live-again");

  // The smallest supported size still shows everything.
  await w.wd("POST", `/session/${w.session}/window/rect`, { width: 800, height: 600 });
  // Two animation frames: the page has laid out and painted at the new size.
  const width = await w.wd("POST", `/session/${w.session}/execute/async`, {
    script: "const done = arguments[arguments.length - 1]; requestAnimationFrame(() => requestAnimationFrame(() => done(document.documentElement.clientWidth)));",
    args: [],
  });
  assert.ok(width <= 800 && width > 700, `page width ${width}`);
  console.log(`page width at 800x600: ${width}`);
  await w.shot("5-800x600");
});
