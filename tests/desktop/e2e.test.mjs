// The desktop app end to end: the real window (under Xvfb), driven over
// WebDriver (tauri-driver + WebKitWebDriver) against a real server, with a
// second client (the `vidsync` CLI) on the same project.
// Env: VIDSYNC_SERVER_BIN, VIDSYNC_BIN, VIDSYNC_DESKTOP_BIN, SCREENSHOT_DIR.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync, existsSync, readFileSync, readdirSync } from "node:fs";
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

test("settings through the window (a bad token changes nothing), then pause and resume a folder", async () => {
  const w = newWorld();
  const url = await w.startServer();
  const appDir = join(w.root, "app2-config");
  const bobDir = join(w.root, "bob2-config");
  w.cli(bobDir, "login", "--server", url, "--token", w.token("bob2"));
  const good = w.token("carol");
  // No login: the app starts empty and is set up through its Settings dialog.
  await w.openApp(appDir);
  await until("the page", async () => (await w.text("#projects-empty")).includes("Share a folder"));
  await w.click("#open-settings");
  await w.type("#server-url", url);
  await w.type("#server-token", "vst_not-a-real-token");
  await w.click("#test-connection");
  await until("the refusal", async () => (await w.text("#message")).includes("refused the token"));
  await w.click("#save-settings");
  await until("the refusal again", async () => (await w.text("#message")).includes("refused the token"));
  const cfgFile = join(appDir, "config.json");
  const saved = () => (existsSync(cfgFile) ? JSON.parse(readFileSync(cfgFile, "utf8")) : {});
  assert.equal(saved().token ?? null, null, "a refused token is not saved");
  await w.script("document.getElementById('server-token').value = ''");
  await w.type("#server-token", good);
  await w.click("#test-connection");
  await until("the connection test", async () => (await w.text("#settings-result")).startsWith("Connected to"));
  assert.equal(await w.text("#message"), "", "a successful test clears the earlier refusal");
  await w.shot("6-settings");
  await w.click("#save-settings");
  await until("saved", async () => (await w.text("#settings-result")) === "Saved.");
  assert.equal(saved().token, good);
  assert.equal(saved().server, url);
  await w.click("#close-settings");

  const folder = join(w.root, "paused-site");
  mkdirSync(folder);
  writeFileSync(join(folder, "a.txt"), "a\n");
  await w.shareThroughUi(folder);
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
