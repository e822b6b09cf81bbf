// The desktop app end to end: the real window (under Xvfb), driven over
// WebDriver (tauri-driver + WebKitWebDriver) against a real server, with a
// second client (the `vidsync` CLI) on the same project.
// Env: VIDSYNC_SERVER_BIN, VIDSYNC_BIN, VIDSYNC_DESKTOP_BIN, SCREENSHOT_DIR.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync, existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { World, until, sleep, CLI } from "./harness.mjs";

// One world (server, app, clients) per test; the app is single-instance, so
// each test closes its world before the next opens the app again.
const worlds = [];
const newWorld = () => {
  const w = new World();
  worlds.push(w);
  return w;
};
after(() => Promise.all(worlds.map((w) => w.close())));

test("link a folder in the window, see another client's change live, follow the server going away and back", async () => {
  const w = newWorld();
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

  // The server goes away: reconnecting, with the time to the next try.
  // It comes back: live.
  w.server.kill("SIGTERM");
  await until("server exit", () => Promise.resolve(w.server.exitCode !== null));
  await until("reconnecting", async () => /^reconnecting in \d+ s$/.test(await w.text("#connection")));
  await w.shot("3-reconnecting");
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
  await w.close();
});

test("first run: the welcome screen (a bad token or CA file changes nothing), Share a folder, start at login; then pause and resume a folder", async () => {
  const w = newWorld();
  const url = await w.startServer();
  const appDir = join(w.root, "app2-config");
  const bobDir = join(w.root, "bob2-config");
  w.cli(bobDir, "login", "--server", url, "--token", w.token("bob2"));
  const good = w.token("carol");
  // No login: the app opens on its welcome screen, and the header says why it is not connected.
  await w.openApp(appDir);
  await until("the welcome screen", async () => (await w.script("return !document.getElementById('welcome').hidden && document.getElementById('main').hidden")) === true);
  assert.equal(await w.text("#connection"), "not signed in");
  await w.shots("1-welcome");
  await w.type("#welcome-server", url);
  await w.type("#welcome-token", "vst_not-a-real-token");
  await w.click("#welcome-test");
  await until("the refusal", async () => (await w.text("#message")).includes("refused the token"));
  await w.click("#welcome-connect");
  await until("the refusal again", async () => (await w.text("#message")).includes("refused the token"));
  const cfgFile = join(appDir, "config.json");
  const saved = () => (existsSync(cfgFile) ? JSON.parse(readFileSync(cfgFile, "utf8")) : {});
  assert.equal(saved().token ?? null, null, "a refused token is not saved");
  await w.script("document.getElementById('welcome-token').value = ''");
  await w.type("#welcome-token", good);
  // A CA file that is not there: said so, nothing saved.
  await w.type("#welcome-ca", join(w.root, "no-such-ca.pem"));
  await w.click("#welcome-connect");
  await until("the CA file refusal", async () => (await w.text("#message")).includes("cannot read the CA file"));
  assert.equal(saved().token ?? null, null, "nothing saved with a bad CA file");
  await w.script("document.getElementById('welcome-ca').value = ''");
  await w.click("#welcome-test");
  await until("the connection test", async () => (await w.text("#welcome-result")).startsWith("Connected to"));
  assert.equal(await w.text("#message"), "", "a successful test clears the earlier refusal");
  await w.shots("2-welcome-tested");
  await w.click("#welcome-connect");
  // Signed in: the first screen offers "Share a folder" and "Join with a code".
  await until("the main screen", async () => (await w.script("return document.getElementById('welcome').hidden && !document.getElementById('main').hidden")) === true);
  await until("the empty state", async () => (await w.text("#projects-empty")).includes("Share a folder"));
  assert.ok((await w.text("#projects-section")).includes("Join with a code"));
  assert.equal(await w.text("#connection"), "signed in · no folders yet");
  assert.equal(saved().token, good);
  assert.equal(saved().server, url);
  await w.shots("3-signed-in");
  await w.resize(1280, 900);

  // Start at login: off until the first share, then on (an autostart entry under HOME).
  const autostartDir = join(w.home, ".config", "autostart");
  const entries = () => (existsSync(autostartDir) ? readdirSync(autostartDir).filter((n) => n.endsWith(".desktop")) : []);
  assert.deepEqual(entries(), [], "no autostart entry before the first share");
  const folder = join(w.root, "paused-site");
  mkdirSync(folder);
  writeFileSync(join(folder, "a.txt"), "a\n");
  await w.shareThroughUi(folder);
  assert.equal(entries().length, 1, "the first share turns start at login on");
  await w.click("#open-settings");
  assert.equal(await w.script("return document.getElementById('server-url').value"), url);
  await until("the toggle on", async () => (await w.script("return document.getElementById('autostart').checked")) === true);
  await w.shots("4-settings");
  await w.resize(1280, 900);
  await w.click("#autostart");
  await until("the entry gone", async () => entries().length === 0);
  assert.equal(await w.script("return document.getElementById('autostart').checked"), false);
  await w.click("#close-settings");
  const projectId = saved().folders[0].project_id;
  const code = w.cli(appDir, "invite", projectId);
  const bobFolder = join(w.root, "bob2-site");
  w.cli(bobDir, "join", code, bobFolder, "--mode", "send-receive");
  w.spawn(CLI, ["--config-dir", bobDir, "run"], { stdio: "ignore", env: { ...process.env, RUST_LOG: "warn" } });
  await until("bob's copy", async () => existsSync(join(bobFolder, "a.txt")));

  // Pause: the badge says so, the link is saved as paused, and nothing moves either way.
  await w.click(`#projects li[data-project="${projectId}"] .actions button:first-child`);
  await until("paused badge", async () => (await w.text("#projects [data-testid=badge]")) === "paused");
  assert.equal(saved().folders[0].paused, true);
  writeFileSync(join(folder, "while-paused.txt"), "mine\n");
  writeFileSync(join(bobFolder, "from-bob.txt"), "bob's\n");
  // Bob's change is on the server (his log shows it)...
  await until("bob's change logged", async () => w.cli(bobDir, "log", projectId).includes("from-bob.txt"));
  await w.shot("7-paused");
  // ...and stays out of the paused folder; the paused folder's file stays out of bob's.
  // (A bounded observation window: a paused folder that still synced would show it within it.)
  const watchUntil = Date.now() + 3000;
  while (Date.now() < watchUntil) {
    assert.ok(!existsSync(join(folder, "from-bob.txt")), "a paused folder received a change");
    assert.ok(!existsSync(join(bobFolder, "while-paused.txt")), "a paused folder sent a change");
    await sleep(100);
  }

  // Resume: both changes cross, the badge is back to up to date.
  await w.click(`#projects li[data-project="${projectId}"] .actions button:first-child`);
  await until("bob's file after resume", async () => existsSync(join(folder, "from-bob.txt")));
  await until("our file at bob after resume", async () => existsSync(join(bobFolder, "while-paused.txt")));
  await until("up to date", async () => (await w.text("#projects [data-testid=badge]")) === "up to date");
  assert.equal(saved().folders[0].paused, false);
  await w.shot("8-resumed");
});

/** A folder's files (top level) and their bytes, as a sorted list. */
const contents = (dir) =>
  readdirSync(dir)
    .filter((n) => !n.startsWith("."))
    .sort()
    .map((n) => [n, readFileSync(join(dir, n), "utf8")]);

test("the same file written in the app's folder and by a CLI client at once: conflict (1), the copy, a notice, identical folders", async () => {
  const w = newWorld();
  const url = await w.startServer();
  const appDir = join(w.root, "app3-config");
  const bobDir = join(w.root, "bob3-config");
  w.cli(appDir, "login", "--server", url, "--token", w.token("dana"));
  w.cli(bobDir, "login", "--server", url, "--token", w.token("erin"));
  // The app sends its write 3 s after it, bob after 50 ms: both writes land
  // within a few ms, and the app's is the one that finds the other first
  // (the stale side, which keeps its bytes as the conflict copy).
  w.cli(appDir, "set", "--debounce-ms", "3000");
  w.cli(bobDir, "set", "--debounce-ms", "50");
  await w.openApp(appDir);
  await until("the page", async () => (await w.text("#projects-empty")).includes("Share a folder"));
  const folder = join(w.root, "both-site");
  mkdirSync(folder);
  writeFileSync(join(folder, "f.txt"), "base\n");
  await w.shareThroughUi(folder);
  const projectId = JSON.parse(w.cli(appDir, "status", "--json"))[0].project_id;
  const code = w.cli(appDir, "invite", projectId);
  const bobFolder = join(w.root, "bob3-site");
  w.cli(bobDir, "join", code, bobFolder, "--mode", "send-receive");
  w.spawn(CLI, ["--config-dir", bobDir, "run"], { stdio: "ignore", env: { ...process.env, RUST_LOG: "warn" } });
  await until("bob's copy", async () => existsSync(join(bobFolder, "f.txt")));

  writeFileSync(join(folder, "f.txt"), "the app's version\n");
  writeFileSync(join(bobFolder, "f.txt"), "bob's version\n");

  await until("the conflict badge", async () => (await w.text("#projects [data-testid=badge]")) === "conflict (1)", 30000);
  // The notification the app asked for shows in the window too.
  const message = await until("the conflict notice", async () => {
    const m = await w.text("#message");
    return m.includes("f.txt changed on both sides") ? m : undefined;
  });
  const copies = readdirSync(folder).filter((n) => n.includes(".sync-conflict-"));
  assert.equal(copies.length, 1, `one conflict copy: ${copies}`);
  assert.equal(readFileSync(join(folder, copies[0]), "utf8"), "the app's version\n", "the copy holds the app's bytes");
  assert.ok(message.includes(copies[0]), `the notice names the copy: ${message}`);
  // Both folders end identical: bob's version in place, the app's as the copy.
  await until("identical folders", async () => JSON.stringify(contents(folder)) === JSON.stringify(contents(bobFolder)), 30000);
  assert.equal(readFileSync(join(folder, "f.txt"), "utf8"), "bob's version\n");
  await w.shot("9-conflict");

  // The conflicts list: "Keep mine" puts the app's version back in place,
  // the copy goes, the badge clears, and bob's folder follows.
  await w.click(`#projects li[data-project="${projectId}"] .actions button.conflicts`);
  await until("the copy in the list", async () => (await w.text("#conflicts-list")).includes(copies[0]));
  await w.shot("13-conflicts");
  await w.click(`#conflicts-list li[data-copy="${copies[0]}"] button[data-keep="mine"]`);
  await until("the answer", async () => (await w.text("#conflicts-result")).includes("now holds your version"));
  assert.equal(readFileSync(join(folder, "f.txt"), "utf8"), "the app's version\n");
  assert.ok(!existsSync(join(folder, copies[0])), "the copy is gone");
  await until("bob has the app's version", async () => readFileSync(join(bobFolder, "f.txt"), "utf8") === "the app's version\n", 30000);
  await until("bob's copy gone too", async () => !existsSync(join(bobFolder, copies[0])), 30000);
  await w.click("#close-conflicts");
  await until("the badge clears", async () => (await w.text("#projects [data-testid=badge]")) === "up to date", 30000);
  await w.shot("14-conflict-resolved");
});

test("a file's history in the window: versions with who and when, 'Restore this version', and a rewind preview", async () => {
  const w = newWorld();
  const url = await w.startServer();
  const appDir = join(w.root, "app4-config");
  w.cli(appDir, "login", "--server", url, "--token", w.token("fay"));
  w.cli(appDir, "set", "--debounce-ms", "100");
  await w.openApp(appDir);
  await until("the page", async () => (await w.text("#projects-empty")).includes("Share a folder"));
  const folder = join(w.root, "history-site");
  mkdirSync(folder);
  writeFileSync(join(folder, "notes.txt"), "first draft\n");
  writeFileSync(join(folder, "other.txt"), "other\n");
  await w.shareThroughUi(folder);
  const versions = () => JSON.parse(w.cli(appDir, "history", join(folder, "notes.txt"), "--json"));
  writeFileSync(join(folder, "notes.txt"), "second draft\n");
  await until("version 2 on the server", async () => versions().length === 2);
  writeFileSync(join(folder, "notes.txt"), "third draft, oops\n");
  await until("version 3 on the server", async () => versions().length === 3);
  const first = versions()[2].seq;

  await w.click(`#projects li .actions button.history`);
  await until("the file list", async () => (await w.text("#history-files")).includes("notes.txt"));
  await w.click(`#history-files button[data-path="notes.txt"]`);
  await until("three versions", async () => (await w.script("return document.querySelectorAll('#versions tr').length")) === 3);
  const table = await w.text("#versions");
  assert.ok(table.includes("fay"), `the versions name who: ${table}`);
  assert.ok(table.includes("current"), `the newest is marked current: ${table}`);
  await w.shot("10-history");

  await w.click(`#versions tr[data-seq="${first}"] button.restore`);
  await until("the restore's answer", async () => (await w.text("#history-result")).includes("Restored notes.txt"));
  await until("the folder has the first draft again", async () => readFileSync(join(folder, "notes.txt"), "utf8") === "first draft\n");
  await until("four versions listed", async () => (await w.script("return document.querySelectorAll('#versions tr').length")) === 4);
  await w.shot("11-history-restored");

  // Rewind preview to before other.txt existed: it would be deleted; nothing changes yet.
  await w.type("#rewind-seq", "0");
  await w.click("#rewind-preview-button");
  await until("the preview", async () => (await w.text("#rewind-preview")).includes("delete other.txt"));
  assert.ok(existsSync(join(folder, "other.txt")), "a preview changes nothing");
  await w.shot("12-rewind-preview");
  await w.click("#close-history");
  await w.close();
});

test("the project view: files, size, last change and by whom, who is here (a second client comes and goes), progress of a 200 MiB download", async () => {
  const w = newWorld();
  const url = await w.startServer();
  const appDir = join(w.root, "app5-config");
  const bobDir = join(w.root, "bob5-config");
  w.cli(appDir, "login", "--server", url, "--token", w.token("gina"));
  w.cli(bobDir, "login", "--server", url, "--token", w.token("hal"));
  await w.openApp(appDir);
  await until("the page", async () => (await w.text("#projects-empty")).includes("Share a folder"));
  const folder = join(w.root, "big-site");
  mkdirSync(folder);
  writeFileSync(join(folder, "readme.txt"), "hello\n");
  await w.shareThroughUi(folder);
  const projectId = JSON.parse(w.cli(appDir, "status", "--json"))[0].project_id;
  const appClient = JSON.parse(readFileSync(join(appDir, "config.json"), "utf8")).client_id;

  await w.click(`#projects li[data-project="${projectId}"] .open-project`);
  await until("the figures", async () => (await w.text("#pv-files")) === "1");
  assert.equal(await w.text("#pv-size"), "6 B");
  assert.ok((await w.text("#pv-last")).includes("readme.txt by gina"), await w.text("#pv-last"));
  assert.equal(await w.text("#pv-owner"), "gina (you)");
  assert.equal(await w.text("#pv-mode"), "send & receive");
  assert.equal(await w.text("#activity-title"), "Activity in big-site");
  await until("this app present", async () => (await w.text("#pv-present")).includes("this app"));
  assert.equal(await w.script(`return document.querySelectorAll('#pv-present li[data-client="${appClient}"]').length`), 1);

  // A second client (the CLI) joins and runs: it shows up here.
  const code = w.cli(appDir, "invite", projectId);
  const bobFolder = join(w.root, "bob5-site");
  w.cli(bobDir, "join", code, bobFolder, "--mode", "send-receive");
  const bobClient = JSON.parse(readFileSync(join(bobDir, "config.json"), "utf8")).client_id;
  const bob = w.spawn(CLI, ["--config-dir", bobDir, "run"], { stdio: "ignore", env: { ...process.env, RUST_LOG: "warn" } });
  await until("bob present", async () => (await w.script(`return document.querySelectorAll('#pv-present li[data-client="${bobClient}"]').length`)) === 1);
  assert.ok((await w.text("#pv-present")).includes("hal"));
  await w.shots("5-project-presence");
  await w.resize(1280, 900);

  // Bob writes 200 MiB (random: no chunk is shared); the app shows it coming in
  // (seen at 800x600; the upload below at 1280x900).
  await w.resize(800, 600);
  const size = 200 * 1024 * 1024;
  writeFileSync(join(bobFolder, "big.bin"), randomBytes(size));
  const progress = await until(
    "the progress bar",
    async () => {
      const shown = await w.script("return !document.getElementById('pv-progress').hidden");
      const text = await w.text("#pv-progress-text");
      return shown && text.includes("to go") ? text : undefined;
    },
    120000,
  );
  console.log(`progress shown: ${progress}`);
  assert.match(progress, /^↓ 1 file, [\d.]+ (MiB|KiB) to go/);
  // The bar moves while the bytes come, and an ETA shows once a rate is known.
  const readings = [];
  await until(
    "the bar gone",
    async () => {
      const [hidden, value, text] = await w.script(
        "return [document.getElementById('pv-progress').hidden, document.getElementById('pv-bar').value, document.getElementById('pv-progress-text').textContent]",
      );
      if (!hidden && value > 0 && value < 1 && !readings.some((r) => r.value > 0 && r.value < 1)) await w.shot("6-progress-down-800x600");
      if (!hidden) readings.push({ value, text });
      return hidden;
    },
    120000,
  );
  console.log(`progress readings: ${readings.length}, e.g. ${JSON.stringify(readings[Math.floor(readings.length / 2)])}`);
  assert.ok(readings.some((r) => r.value > 0 && r.value < 1), `the bar moved: ${JSON.stringify(readings.slice(0, 5))}`);
  assert.ok(readings.some((r) => /about \d+ (s|min) left$/.test(r.text)), `an ETA: ${JSON.stringify(readings.slice(-5))}`);
  assert.equal(statSync(join(folder, "big.bin")).size, size);
  await w.resize(1280, 900);
  await until("the new figures", async () => (await w.text("#pv-files")) === "2", 30000);
  assert.equal(await w.text("#pv-size"), "200 MiB");
  assert.ok((await w.text("#pv-last")).includes("big.bin by hal"), await w.text("#pv-last"));
  assert.ok((await w.text("#feed")).includes("big.bin"));
  await w.shots("7-project-synced");
  await w.resize(1280, 900);

  // The app sends 200 MiB: the bar shows it going up until the server has it.
  writeFileSync(join(folder, "up.bin"), randomBytes(size));
  const up = [];
  await until(
    "the upload shown and done",
    async () => {
      const [hidden, text] = await w.script("return [document.getElementById('pv-progress').hidden, document.getElementById('pv-progress-text').textContent]");
      if (!hidden && text.startsWith("↑") && up.length === 0) await w.shot("6-progress-up-1280x900");
      if (!hidden) up.push(text);
      return up.length > 0 && hidden;
    },
    120000,
  );
  console.log(`upload readings: ${up.length}, first ${up[0]}`);
  assert.ok(up.some((t) => t.startsWith("↑ 1 file, 200 MiB to go")), JSON.stringify(up.slice(0, 3)));
  await until("bob has it", async () => existsSync(join(bobFolder, "up.bin")) && statSync(join(bobFolder, "up.bin")).size === size, 120000);

  // Bob stops: he is gone from the list.
  process.kill(-bob.pid, "SIGTERM");
  await until("bob gone", async () => (await w.script(`return document.querySelectorAll('#pv-present li[data-client="${bobClient}"]').length`)) === 0, 30000);
  await w.click("#pv-back");
  await until("the list again", async () => (await w.text("#activity-title")) === "Activity");
  await w.close();
});

test("a dark system theme makes the page dark", async () => {
  const w = newWorld();
  await w.startServer();
  // GTK's dark variant is what WebKitGTK reports as prefers-color-scheme: dark.
  await w.openApp(join(w.root, "app6-config"), { GTK_THEME: "Adwaita:dark" });
  assert.equal(await w.script("return matchMedia('(prefers-color-scheme: dark)').matches"), true);
  const bg = await w.script("return getComputedStyle(document.documentElement).backgroundColor");
  assert.equal(bg, "rgb(21, 25, 31)", "the dark background");
  await w.shots("8-welcome-dark");
  await w.close();
});
